-- The campaign's target table: each valid LINE user ID of the segment once, with the segment's other columns
-- (used to personalise push content). Re-running replaces it, so a crash during extraction is harmless.
CREATE OR REPLACE TABLE `{dataset}.targets_{campaign}` AS
SELECT * EXCEPT (rank_in_user)
FROM (
  SELECT segment.*, ROW_NUMBER() OVER (PARTITION BY segment.user_id ORDER BY segment.user_id) AS rank_in_user
  FROM ({segment_sql}) AS segment
  WHERE segment.user_id IS NOT NULL AND REGEXP_CONTAINS(segment.user_id, r'^U[0-9a-f]{32}$')
)
WHERE rank_in_user = 1
