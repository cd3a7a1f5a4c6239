-- read your own writes: a new notification, then the unread counters read
-- in the same transaction (which applies its deltas, perhaps after waiting
-- for another transaction), compared with their queries in one statement
\set user random(1, 50)
BEGIN;
INSERT INTO notification (user_id) VALUES (:user);
SELECT stress_check_unread(:user);
COMMIT;
