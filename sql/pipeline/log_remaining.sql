-- Ends the campaign for recipients still owed: each is logged failed with @reason (retries_exhausted, canceled).
INSERT INTO `{dataset}.delivery_logs`
  (log_id, campaign_id, round, batch_id, channel_id, endpoint, retry_key, recipients, recipient_count,
   outcome, reason, http_status, line_request_id, detail, logged_at)
SELECT
  CONCAT('final:', @campaign, ':', owed.user_id),
  @campaign, @round, CONCAT(@campaign, '.final'), @channel, 'none', NULL, [owed.user_id], 1,
  'failed', @reason, NULL, NULL, NULL, CURRENT_TIMESTAMP()
FROM (
  SELECT user_id FROM `{dataset}.targets_{campaign}`
  EXCEPT DISTINCT
  SELECT recipient FROM `{dataset}.delivery_logs`, UNNEST(recipients) AS recipient
  WHERE campaign_id = @campaign AND outcome IN ('delivered', 'validated', 'failed')
) AS owed
