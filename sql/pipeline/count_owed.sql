-- How many recipients the owed table of the next round holds (written by diff_retry.sql).
SELECT COUNT(*) AS owed FROM `{dataset}.{owed_table}`
