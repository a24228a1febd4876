-- One row per LINE request outcome (or per group of recipients settled without a request).
-- In production a BigQuery subscription writes the delivery-log topic's JSON messages into this table with
-- use_table_schema, so these columns are exactly the fields of segcast::domain::DeliveryLogRow.
-- Rows may repeat (Pub/Sub delivers at least once): readers deduplicate by log_id (see recipient_outcomes).
CREATE TABLE IF NOT EXISTS `{dataset}.delivery_logs` (
  log_id STRING NOT NULL,
  campaign_id STRING NOT NULL,
  round INT64 NOT NULL,
  batch_id STRING NOT NULL,
  channel_id STRING NOT NULL,
  endpoint STRING NOT NULL,
  retry_key STRING,
  recipients ARRAY<STRING>,
  recipient_count INT64 NOT NULL,
  outcome STRING NOT NULL,
  reason STRING,
  http_status INT64,
  line_request_id STRING,
  detail STRING,
  logged_at TIMESTAMP NOT NULL
)
