-- A cheap upper bound of round_settled.sql: the recipients named by the round's distinct log rows (no UNNEST).
-- While it is below the round's target count the round cannot be settled, so the exact count is not run yet.
SELECT COALESCE(SUM(recipient_count), 0) AS logged
FROM (
  SELECT DISTINCT log_id, recipient_count
  FROM `{dataset}.delivery_logs`
  WHERE campaign_id = @campaign AND round = @round
)
