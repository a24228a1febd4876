-- The diff retry: targets EXCEPT DISTINCT recipients already settled for good (delivered, validated, or failed
-- for a reason that retrying cannot change). What remains is still owed: it becomes the next round's table, or
-- is settled by log_remaining.sql when the campaign ends.
CREATE OR REPLACE TABLE `{dataset}.{owed_table}` AS
SELECT targets.*
FROM `{dataset}.targets_{campaign}` AS targets
JOIN (
  SELECT user_id FROM `{dataset}.targets_{campaign}`
  EXCEPT DISTINCT
  SELECT recipient FROM `{dataset}.delivery_logs`, UNNEST(recipients) AS recipient
  WHERE campaign_id = @campaign AND outcome IN ('delivered', 'validated', 'failed')
) AS owed
ON targets.user_id = owed.user_id
