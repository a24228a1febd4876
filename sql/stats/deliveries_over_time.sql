-- A campaign's recipients by the time their final outcome was logged ({unit}: SECOND or MINUTE), for the
-- console's chart. Each recipient counts once (recipient_outcomes deduplicates repeated log rows and retries).
SELECT
  FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%SZ', TIMESTAMP_TRUNC(logged_at, {unit})) AS t,
  COUNTIF(outcome = 'delivered') AS delivered,
  COUNTIF(outcome = 'failed') AS failed
FROM `{dataset}.recipient_outcomes`
WHERE campaign_id = @campaign
GROUP BY t
ORDER BY t
