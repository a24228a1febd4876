-- A campaign's clicks per hour (UTC): deduplicated clicks and distinct clickers (NULL for multicast).
SELECT
  FORMAT_TIMESTAMP('%Y-%m-%dT%H:00:00Z', TIMESTAMP_TRUNC(clicked_at, HOUR)) AS hour,
  COUNTIF(counted) AS clicks,
  IF(COUNTIF(recipient IS NOT NULL) > 0, COUNT(DISTINCT recipient), NULL) AS unique_clickers
FROM `{dataset}.click_events`
WHERE campaign_id = @campaign
GROUP BY hour
ORDER BY hour
