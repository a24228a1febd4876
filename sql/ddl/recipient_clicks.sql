-- For analysts: each (campaign, recipient)'s final outcome with its clicks (push sends; multicast clicks
-- cannot be attributed to a recipient). Join on recipient (the LINE user ID) with your own tables.
CREATE OR REPLACE VIEW `{dataset}.recipient_clicks` AS
SELECT
  o.campaign_id,
  o.recipient,
  o.outcome,
  o.reason,
  o.logged_at AS outcome_at,
  COALESCE(k.clicks, 0) AS clicks,
  COALESCE(k.links_clicked, 0) AS links_clicked,
  k.first_click_at,
  k.last_click_at
FROM `{dataset}.recipient_outcomes` AS o
LEFT JOIN (
  SELECT
    campaign_id,
    recipient,
    COUNTIF(counted) AS clicks,
    COUNT(DISTINCT link_id) AS links_clicked,
    MIN(clicked_at) AS first_click_at,
    MAX(clicked_at) AS last_click_at
  FROM `{dataset}.click_events`
  WHERE recipient IS NOT NULL
  GROUP BY campaign_id, recipient
) AS k
ON k.campaign_id = o.campaign_id AND k.recipient = o.recipient
