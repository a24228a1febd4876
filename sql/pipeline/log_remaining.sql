-- Ends the campaign for the recipients still owed (the table diff_retry.sql made): each is logged failed with the
-- given reason (retries_exhausted, canceled).
INSERT INTO `{dataset}.delivery_logs`
  (log_id, campaign_id, round, batch_id, channel_id, endpoint, retry_key, recipients, recipient_count,
   outcome, reason, http_status, line_request_id, detail, logged_at)
SELECT
  CONCAT('final:', @campaign, ':', owed.user_id),
  @campaign, @round, CONCAT(@campaign, '.final'), @channel, 'none', NULL, [owed.user_id], 1,
  'failed', @reason, NULL, NULL, NULL, CURRENT_TIMESTAMP()
FROM `{dataset}.{owed_table}` AS owed
