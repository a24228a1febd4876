-- Campaign dimensions (which content, segment and channel a campaign used), appended by segcast when it
-- refreshes a campaign's stats; readers take each campaign's latest row. Feeds the per-segment and per-content
-- stats, and analysts can join it with their own tables.
CREATE TABLE IF NOT EXISTS `{dataset}.campaigns` (
  campaign_id STRING NOT NULL,
  name STRING,
  content_id STRING NOT NULL,
  segment_id STRING NOT NULL,
  channel_id STRING NOT NULL,
  send_at TIMESTAMP,
  recorded_at TIMESTAMP NOT NULL
)
