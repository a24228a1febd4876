-- The segment's values that are not LINE user IDs (NULL, malformed) are never sent: each distinct value is
-- logged once as failed with reason invalid_user_id (NULL as the empty string). Idempotent by log_id.
INSERT INTO `{dataset}.delivery_logs`
  (log_id, campaign_id, round, batch_id, channel_id, endpoint, retry_key, recipients, recipient_count,
   outcome, reason, http_status, line_request_id, detail, logged_at)
SELECT
  CONCAT('invalid:', @campaign, ':', raw_id),
  @campaign, 0, CONCAT(@campaign, '.invalid'), @channel, 'none', NULL, [raw_id], 1,
  'failed', 'invalid_user_id', NULL, NULL, 'not a LINE user ID', CURRENT_TIMESTAMP()
FROM (
  SELECT DISTINCT COALESCE(segment.user_id, '') AS raw_id
  FROM ({segment_sql}) AS segment
  WHERE segment.user_id IS NULL OR NOT REGEXP_CONTAINS(segment.user_id, r'^U[0-9a-f]{32}$')
)
WHERE raw_id NOT IN (
  SELECT recipient FROM `{dataset}.delivery_logs`, UNNEST(recipients) AS recipient
  WHERE campaign_id = @campaign AND reason = 'invalid_user_id'
)
