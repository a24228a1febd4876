-- A campaign's click totals: delivered recipients, clicks (deduplicated), raw click rows, unique clickers
-- (push sends only: NULL when no click carries a recipient), CTR = unique clickers / delivered, and
-- clicks per delivered recipient (defined for multicast too).
WITH delivered AS (
  SELECT COUNT(*) AS delivered
  FROM `{dataset}.recipient_outcomes`
  WHERE campaign_id = @campaign AND outcome = 'delivered'
),
clicks AS (
  SELECT
    COUNTIF(counted) AS clicks,
    COUNT(DISTINCT recipient) AS clickers,
    COUNTIF(recipient IS NOT NULL) AS attributed
  FROM `{dataset}.click_events`
  WHERE campaign_id = @campaign
),
raw AS (
  SELECT COUNT(*) AS raw_clicks FROM `{dataset}.click_logs` WHERE campaign_id = @campaign
)
SELECT
  delivered,
  clicks,
  raw_clicks,
  IF(attributed > 0, clickers, NULL) AS unique_clickers,
  IF(attributed > 0 AND delivered > 0, clickers / delivered, NULL) AS ctr,
  IF(delivered > 0, clicks / delivered, NULL) AS clicks_per_delivered
FROM delivered CROSS JOIN clicks CROSS JOIN raw
