-- Each (campaign, recipient)'s final outcome: delivered if any request for it was accepted, else validated
-- (dry runs), else its latest definite failure. Duplicate log rows (same log_id) count once.
CREATE OR REPLACE VIEW `{dataset}.recipient_outcomes` AS
SELECT campaign_id, recipient, outcome, reason, logged_at
FROM (
  SELECT
    campaign_id,
    recipient,
    outcome,
    reason,
    logged_at,
    ROW_NUMBER() OVER (
      PARTITION BY campaign_id, recipient
      ORDER BY
        CASE outcome WHEN 'delivered' THEN 0 WHEN 'validated' THEN 1 WHEN 'failed' THEN 2 ELSE 3 END,
        logged_at DESC
    ) AS rank_in_recipient
  FROM `{dataset}.delivery_logs`, UNNEST(recipients) AS recipient
)
WHERE rank_in_recipient = 1
