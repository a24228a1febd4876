(SELECT user_id FROM t) UNION ALL (SELECT """x;
y""" AS user_id) # tail