-- A few rows of a segment, as the console's preview shows them.
SELECT * FROM ({segment_sql}) LIMIT 10
