-- new notifications for one user
\set user random(1, 50)
\set n random(1, 5)
INSERT INTO notification (user_id) SELECT :user FROM generate_series(1, :n);
