SELECT user_id FROM `p.d.users` WHERE name != 'a;b' -- every member
