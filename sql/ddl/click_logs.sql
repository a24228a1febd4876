-- One row per click through the click redirect (written like delivery logs: topic -> BigQuery subscription).
CREATE TABLE IF NOT EXISTS `{dataset}.click_logs` (
  click_id STRING NOT NULL,
  campaign_id STRING NOT NULL,
  link_id STRING NOT NULL,
  recipient STRING,
  user_agent_class STRING,
  country STRING,
  clicked_at TIMESTAMP NOT NULL
)
