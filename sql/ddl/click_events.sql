-- Clicks as the stats count them: each click_id once (Pub/Sub delivers at least once), bots (link previews,
-- crawlers) left out, and `counted` false for a double tap: the same recipient on the same link again within
-- 5 seconds of their previous tap. Multicast clicks have no recipient: each of them counts.
CREATE OR REPLACE VIEW `{dataset}.click_events` AS
SELECT
  click_id, campaign_id, link_id, recipient, user_agent_class, country, clicked_at,
  (recipient IS NULL OR previous_at IS NULL OR TIMESTAMP_DIFF(clicked_at, previous_at, SECOND) >= 5) AS counted
FROM (
  SELECT
    *,
    LAG(clicked_at) OVER (PARTITION BY campaign_id, link_id, recipient ORDER BY clicked_at, click_id) AS previous_at
  FROM (
    SELECT click_id, campaign_id, link_id, recipient, user_agent_class, country, clicked_at
    FROM (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY click_id ORDER BY clicked_at) AS copy
      FROM `{dataset}.click_logs`
    )
    WHERE copy = 1 AND COALESCE(user_agent_class, '') != 'bot'
  )
)
