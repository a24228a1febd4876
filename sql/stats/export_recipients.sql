-- A campaign's per-recipient outcomes and clicks for the CSV export, every column as a string, by recipient.
SELECT
  campaign_id,
  recipient,
  outcome,
  reason,
  FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%SZ', outcome_at) AS outcome_at,
  CAST(clicks AS STRING) AS clicks,
  CAST(links_clicked AS STRING) AS links_clicked,
  FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%SZ', first_click_at) AS first_click_at,
  FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%SZ', last_click_at) AS last_click_at
FROM `{dataset}.recipient_clicks`
WHERE campaign_id = @campaign
ORDER BY recipient
