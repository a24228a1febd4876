-- A campaign's clicks per link (same columns as campaign_clicks, plus link_id), links without clicks left out.
WITH delivered AS (
  SELECT COUNT(*) AS delivered
  FROM `{dataset}.recipient_outcomes`
  WHERE campaign_id = @campaign AND outcome = 'delivered'
),
clicks AS (
  SELECT
    link_id,
    COUNTIF(counted) AS clicks,
    COUNT(DISTINCT recipient) AS clickers,
    COUNTIF(recipient IS NOT NULL) AS attributed
  FROM `{dataset}.click_events`
  WHERE campaign_id = @campaign
  GROUP BY link_id
),
raw AS (
  SELECT link_id, COUNT(*) AS raw_clicks
  FROM `{dataset}.click_logs`
  WHERE campaign_id = @campaign
  GROUP BY link_id
)
SELECT
  raw.link_id,
  delivered,
  COALESCE(clicks.clicks, 0) AS clicks,
  raw.raw_clicks,
  IF(clicks.attributed > 0, clicks.clickers, NULL) AS unique_clickers,
  IF(clicks.attributed > 0 AND delivered > 0, clicks.clickers / delivered, NULL) AS ctr,
  IF(delivered > 0, COALESCE(clicks.clicks, 0) / delivered, NULL) AS clicks_per_delivered
FROM raw
LEFT JOIN clicks ON clicks.link_id = raw.link_id
CROSS JOIN delivered
ORDER BY raw.link_id
