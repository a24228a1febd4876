-- A round's recipients as sharded NDJSON files: the durable, resumable work list the fan-out streams.
-- Ordered so that re-exporting gives the same files (batch ids derive from file and line).
EXPORT DATA OPTIONS (
  uri = 'gs://{bucket}/campaigns/{campaign}/round-{round}/targets-*.json',
  format = 'JSON',
  overwrite = true
) AS
SELECT * FROM `{dataset}.{round_table}` ORDER BY user_id
