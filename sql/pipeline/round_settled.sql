-- How many recipients of a round have a definite outcome in the logs (delivered, failed, retryable, validated).
-- When it equals the round's target count, every batch is settled and its logs have landed.
SELECT COUNT(DISTINCT recipient) AS settled
FROM `{dataset}.delivery_logs`, UNNEST(recipients) AS recipient
WHERE campaign_id = @campaign AND round = @round
