-- A campaign's failed recipients and why, for the console's CSV export (each recipient once, final outcome).
SELECT
  recipient AS user_id,
  COALESCE(reason, '') AS reason,
  FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%SZ', logged_at) AS failed_at
FROM `{dataset}.recipient_outcomes`
WHERE campaign_id = @campaign AND outcome = 'failed'
ORDER BY recipient
