-- How many distinct user IDs a segment returns now (the console's segment preview and the approval rule).
SELECT COUNT(DISTINCT user_id) AS n FROM ({segment_sql})
