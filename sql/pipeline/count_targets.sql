-- Valid targets (in the target table) and distinct invalid values (logged by log_invalid_targets).
SELECT
  (SELECT COUNT(*) FROM `{dataset}.targets_{campaign}`) AS valid_targets,
  (SELECT COUNT(DISTINCT recipient) FROM `{dataset}.delivery_logs`, UNNEST(recipients) AS recipient
    WHERE campaign_id = @campaign AND reason = 'invalid_user_id') AS invalid_targets
