-- Per segment across campaigns: campaigns, delivered recipients, deduplicated clicks, unique clickers summed over
-- campaigns (push sends; a person clicking in two campaigns counts in each), and CTR = unique clickers /
-- delivered over the campaigns whose clicks carry recipients. Campaign dimensions come from `campaigns`.
WITH campaign AS (
  SELECT campaign_id, segment_id
  FROM (
    SELECT campaign_id, segment_id, ROW_NUMBER() OVER (PARTITION BY campaign_id ORDER BY recorded_at DESC) AS latest
    FROM `{dataset}.campaigns`
  )
  WHERE latest = 1
),
delivered AS (
  SELECT campaign_id, COUNT(*) AS delivered
  FROM `{dataset}.recipient_outcomes`
  WHERE outcome = 'delivered'
  GROUP BY campaign_id
),
clicks AS (
  SELECT
    campaign_id,
    COUNTIF(counted) AS clicks,
    COUNT(DISTINCT recipient) AS clickers,
    COUNTIF(recipient IS NOT NULL) AS attributed
  FROM `{dataset}.click_events`
  GROUP BY campaign_id
)
SELECT
  campaign.segment_id,
  COUNT(*) AS campaigns,
  SUM(COALESCE(delivered.delivered, 0)) AS delivered,
  SUM(COALESCE(clicks.clicks, 0)) AS clicks,
  SUM(IF(clicks.attributed > 0, clicks.clickers, 0)) AS unique_clickers,
  IF(SUM(IF(clicks.attributed > 0, delivered.delivered, 0)) > 0,
     SUM(IF(clicks.attributed > 0, clicks.clickers, 0)) / SUM(IF(clicks.attributed > 0, delivered.delivered, 0)),
     NULL) AS ctr
FROM campaign
LEFT JOIN delivered ON delivered.campaign_id = campaign.campaign_id
LEFT JOIN clicks ON clicks.campaign_id = campaign.campaign_id
GROUP BY campaign.segment_id
ORDER BY campaign.segment_id
