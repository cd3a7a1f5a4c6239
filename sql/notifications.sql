--
-- notifications: the seed scenario "a high performance counter of unread
-- notifications".  Unread notifications per user, kept by the database
-- whatever writes the table: create, mark as read (also twice, also all of a
-- user at once), delete.  Every step compares the counters with their queries.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_notify;
SET search_path = regress_notify, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

CREATE TABLE notification (
    id         bigserial PRIMARY KEY,
    user_id    integer NOT NULL,
    has_readed boolean NOT NULL DEFAULT false,
    body       text
);

-- UserNotificationsCount of the article, as a counter
SELECT make_counter('user_notifications_count',
  $$SELECT user_id, count(*) AS unread_count FROM notification WHERE NOT has_readed GROUP BY user_id$$);
-- all and unread per user in one counter, unread as a sum
SELECT make_counter('user_notifications',
  $$SELECT user_id, count(*) AS total, sum(CASE WHEN has_readed THEN 0 ELSE 1 END) AS unread
      FROM notification GROUP BY user_id$$);
-- unread notifications of the whole site
SELECT make_counter('site_unread',
  $$SELECT count(*) AS unread FROM notification WHERE NOT has_readed$$);
SELECT chk_all() AS "empty source";

-- the lookup that replaces .count(): absent row = no unread notification
CREATE FUNCTION unread_of(uid int) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce((SELECT unread_count FROM user_notifications_count WHERE user_id = uid), 0)
$$;
CREATE FUNCTION unread_right(uid int) RETURNS boolean LANGUAGE sql AS $$
  SELECT unread_of(uid) = (SELECT count(*) FROM notification WHERE user_id = uid AND NOT has_readed)
$$;

-- a new notification arrives (post_save "created")
INSERT INTO notification (user_id, body) VALUES (3074, 'welcome');
SELECT chk_all() AS "one notification";
SELECT unread_right(3074);

-- several arrive at once, for several users, one of them already read
INSERT INTO notification (user_id, has_readed, body) VALUES
    (3074, false, 'reply 1'), (3074, false, 'reply 2'), (3074, false, 'reply 3'),
    (42, false, 'hello'), (42, true, 'read on another device'), (7, false, 'ping');
SELECT chk_all() AS "several notifications";
SELECT unread_right(3074), unread_right(42), unread_right(7);

-- mark as read, the article's atomic way
UPDATE notification SET has_readed = true WHERE id = 2 AND has_readed = false;
SELECT chk_all() AS "marked as read";
SELECT unread_right(3074);

-- the same request again: zero rows match, nothing is written
SELECT storage_state() AS st0 \gset
UPDATE notification SET has_readed = true WHERE id = 2 AND has_readed = false;
SELECT chk_all() AS "marked as read again";
SELECT storage_state() = :'st0' AS nothing_written;

-- the naive way (no has_readed condition) on an already read notification:
-- the row is updated, but nothing counted changes, nothing is written
SELECT storage_state() AS st0 \gset
UPDATE notification SET has_readed = true WHERE id = 2;
SELECT chk_all() AS "naive mark of a read notification";
SELECT storage_state() = :'st0' AS nothing_written;

-- marked twice in one transaction (the article's race, serialized)
BEGIN;
UPDATE notification SET has_readed = true WHERE id = 3;
UPDATE notification SET has_readed = true WHERE id = 3;
SELECT chk_all() AS "marked twice in a transaction";
COMMIT;
SELECT unread_right(3074);

-- marked as unread again
UPDATE notification SET has_readed = false WHERE id = 3;
SELECT chk_all() AS "marked unread";

-- mark all read for one user
UPDATE notification SET has_readed = true WHERE user_id = 3074 AND NOT has_readed;
SELECT chk_all() AS "all read for a user";
SELECT unread_right(3074),
       NOT EXISTS (SELECT FROM user_notifications_count WHERE user_id = 3074) AS row_gone_at_zero;

-- a read notification is deleted: the unread counters don't change
DELETE FROM notification WHERE id = 2;
SELECT chk_all() AS "read notification deleted";

-- an unread notification is deleted
DELETE FROM notification WHERE user_id = 42 AND NOT has_readed;
SELECT chk_all() AS "unread notification deleted";
SELECT unread_right(42);

-- a burst of notifications for many users, then half of them read
INSERT INTO notification (user_id, has_readed, body)
SELECT 1 + g % 50, g % 6 = 0, 'burst ' || g FROM generate_series(1, 2000) g;
SELECT chk_all() AS "burst";
UPDATE notification SET has_readed = true WHERE id % 2 = 0;
SELECT chk_all() AS "half read";
UPDATE notification SET has_readed = true WHERE user_id BETWEEN 10 AND 20;
SELECT chk_all() AS "users 10..20 read everything";
DELETE FROM notification WHERE has_readed AND id % 3 = 0;
SELECT chk_all() AS "old read notifications purged";
-- a notification is given to another user (e.g. a merged account)
UPDATE notification SET user_id = 7 WHERE user_id = 8;
SELECT chk_all() AS "accounts merged";
SELECT bool_and(unread_right(u)) AS lookups_right FROM generate_series(1, 60) u;

-- marking as read, rolled back to a savepoint and then entirely
BEGIN;
UPDATE notification SET has_readed = true WHERE user_id = 7;
SELECT chk_all() AS "before the failure";
SAVEPOINT s;
UPDATE notification SET has_readed = false WHERE user_id = 7;
ROLLBACK TO SAVEPOINT s;
SELECT chk_all() AS "after rollback to savepoint";
ROLLBACK;
SELECT chk_all() AS "after rollback";

-- the whole table cleared
TRUNCATE notification;
SELECT chk_all() AS "truncated";
SELECT unread = 0 AS site_unread_zero FROM site_unread;

SELECT counters.drop_counter(counter) FROM expect ORDER BY counter::text;
DELETE FROM expect;
SELECT count(*) AS counter_triggers_left FROM pg_trigger WHERE tgrelid = 'notification'::regclass AND tgname LIKE 'counters%';
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_notify CASCADE;
