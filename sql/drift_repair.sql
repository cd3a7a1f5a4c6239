--
-- drift_repair: a counter broken behind its back (its triggers disabled, or
-- session_replication_role = replica) is caught by verify(), which reports
-- exactly the drifted keys, and repaired by rebuild(), which returns how
-- many counter rows it changed; afterwards verify() is empty again.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_drift;
SET search_path = regress_drift, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

-- reported_keys(counter): the keys verify() reports, one per row
CREATE FUNCTION reported_keys(c regclass) RETURNS SETOF jsonb LANGUAGE sql AS $$
  SELECT key FROM counters.verify(c)
$$;
-- same_keys(counter, keys): verify() reports exactly these keys, each once
CREATE FUNCTION same_keys(c regclass, keys jsonb[]) RETURNS boolean LANGUAGE sql AS $$
  SELECT NOT EXISTS (SELECT * FROM reported_keys(c) EXCEPT ALL SELECT unnest(keys))
     AND NOT EXISTS (SELECT unnest(keys) EXCEPT ALL SELECT * FROM reported_keys(c))
$$;
CREATE FUNCTION ub(u int, b int) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('user_id', u, 'blog_id', b)
$$;

CREATE TABLE post (id int PRIMARY KEY, user_id int, blog_id int, is_published boolean, rating int);
INSERT INTO post SELECT g, g % 5, g % 3, g % 4 <> 0, g % 7 FROM generate_series(1, 300) g;
SELECT make_counter('user_blog_posts',
  $$SELECT user_id, blog_id, count(*) AS posts, sum(rating) AS rating FROM post WHERE is_published GROUP BY user_id, blog_id$$);
SELECT make_counter('all_posts',
  $$SELECT count(*) AS posts, sum(rating) AS rating FROM post$$);
SELECT chk_all() AS "exact at start";
-- an exact counter: verify() is empty, rebuild() changes nothing
SELECT count(*) AS verify_rows FROM counters.verify('user_blog_posts');
SELECT counters.rebuild('user_blog_posts') AS rows_changed;
SELECT counters.rebuild('all_posts') AS rows_changed;

-- break it: writes with the counter triggers disabled
-- (post g has user_id g % 5, blog_id g % 3 and is published unless g % 4 = 0)
ALTER TABLE post DISABLE TRIGGER USER;
INSERT INTO post VALUES (1000, 9, 9, true, 5);                -- new key (9,9)
UPDATE post SET rating = rating + 1 WHERE id = 1;              -- (1,1): its sum changes
DELETE FROM post WHERE user_id = 2 AND blog_id = 2;            -- (2,2): every row gone
UPDATE post SET blog_id = 1 WHERE id = 3;                      -- (3,0) -> (3,1)
UPDATE post SET user_id = 4 WHERE id = 6;                      -- (1,0) -> (4,0)
UPDATE post SET is_published = false WHERE id = 5;             -- (0,2) loses a post
UPDATE post SET rating = rating + 1 WHERE id = 4;              -- a draft: no key of user_blog_posts
ALTER TABLE post ENABLE TRIGGER USER;

-- verify() reports exactly the touched keys, with stored and expected sides
SELECT chk('user_blog_posts', query) <> 'ok' AS drift_detected FROM expect WHERE counter = 'user_blog_posts'::regclass;
SELECT same_keys('user_blog_posts',
                 ARRAY[ub(9, 9), ub(1, 1), ub(2, 2), ub(3, 0), ub(3, 1), ub(1, 0), ub(4, 0), ub(0, 2)])
       AS exactly_the_touched_keys;
SELECT key, stored IS NULL AS stored_missing, expected IS NULL AS expected_missing
  FROM counters.verify('user_blog_posts') ORDER BY key::text;
-- the expected side is what the query says now
SELECT bool_and(v.expected = jsonb_build_object('posts', q.posts, 'rating', q.rating)) AS expected_is_the_query
  FROM counters.verify('user_blog_posts') v
  JOIN (SELECT user_id, blog_id, count(*) AS posts, sum(rating) AS rating FROM post WHERE is_published GROUP BY user_id, blog_id) q
    ON v.key = ub(q.user_id, q.blog_id);
-- the stored side is what the counter holds
SELECT bool_and(v.stored = jsonb_build_object('posts', c.posts, 'rating', c.rating)) AS stored_is_the_counter
  FROM counters.verify('user_blog_posts') v
  JOIN user_blog_posts c ON v.key = ub(c.user_id, c.blog_id);
-- the global counter drifted too: one row
SELECT key, stored IS NOT NULL AND expected IS NOT NULL AS both_sides FROM counters.verify('all_posts');

-- writes on drifted keys still work, and keep them drifted, not more
INSERT INTO post VALUES (1001, 2, 2, true, 1);                 -- the key whose rows were deleted behind its back
UPDATE post SET rating = rating + 1 WHERE id = 1;              -- drifted (1,1) again
UPDATE post SET rating = 0 WHERE id = 100;                     -- an exact key
SELECT same_keys('user_blog_posts',
                 ARRAY[ub(9, 9), ub(1, 1), ub(2, 2), ub(3, 0), ub(3, 1), ub(1, 0), ub(4, 0), ub(0, 2)])
       AS same_drifted_keys;
-- even a delta on a key the counter lacks must not make the write fail
UPDATE post SET rating = rating + 1 WHERE id = 1000;
DELETE FROM post WHERE id = 1000;
SELECT same_keys('user_blog_posts', ARRAY[ub(1, 1), ub(2, 2), ub(3, 0), ub(3, 1), ub(1, 0), ub(4, 0), ub(0, 2)])
    OR same_keys('user_blog_posts', ARRAY[ub(9, 9), ub(1, 1), ub(2, 2), ub(3, 0), ub(3, 1), ub(1, 0), ub(4, 0), ub(0, 2)])
       AS same_drifted_keys;

-- rebuild() returns the number of rows it changed: one per reported key
SELECT count(*) AS n_reported FROM counters.verify('user_blog_posts') \gset
SELECT :n_reported > 0 AND counters.rebuild('user_blog_posts') = :n_reported AS rebuild_changed_the_reported_rows;
SELECT count(*) AS n_reported FROM counters.verify('all_posts') \gset
SELECT :n_reported > 0 AND counters.rebuild('all_posts') = :n_reported AS rebuild_changed_the_reported_rows;
SELECT count(*) AS verify_rows_after_rebuild FROM counters.verify('user_blog_posts');
SELECT chk_all() AS "repaired";
-- and it stays exact
UPDATE post SET user_id = user_id + 1 WHERE id % 10 = 0;
DELETE FROM post WHERE id % 17 = 0;
SELECT chk_all() AS "exact after repair";
SELECT counters.rebuild('user_blog_posts') AS rows_changed_when_exact;

-- only the insert trigger disabled: only inserted keys drift
ALTER TABLE post DISABLE TRIGGER counters_insert;
INSERT INTO post VALUES (2000, 7, 1, true, 1), (2001, 7, 2, true, 2), (2002, 7, 2, false, 3);
UPDATE post SET rating = rating + 10 WHERE id = 7;      -- still counted: the update trigger is on
ALTER TABLE post ENABLE TRIGGER counters_insert;
SELECT same_keys('user_blog_posts', ARRAY[ub(7, 1), ub(7, 2)]) AS only_inserted_keys;
SELECT count(*) AS n_reported FROM counters.verify('user_blog_posts') \gset
SELECT :n_reported > 0 AND counters.rebuild('user_blog_posts') = :n_reported AS rebuild_changed_the_reported_rows;
SELECT counters.rebuild('all_posts') AS all_posts_rows_changed;
SELECT chk_all() AS "repaired after insert drift";

-- TRUNCATE behind its back: every stored key is reported, the global row too
ALTER TABLE post DISABLE TRIGGER counters_truncate;
TRUNCATE post;
ALTER TABLE post ENABLE TRIGGER counters_truncate;
SELECT (SELECT count(*) FROM counters.verify('user_blog_posts')) = (SELECT count(*) FROM user_blog_posts) AS every_key_reported;
SELECT bool_and(expected IS NULL) AS nothing_expected FROM counters.verify('user_blog_posts');
SELECT count(*) AS global_rows_reported FROM counters.verify('all_posts');
SELECT count(*) AS n_reported FROM counters.verify('user_blog_posts') \gset
SELECT :n_reported > 0 AND counters.rebuild('user_blog_posts') = :n_reported AS rebuild_changed_the_reported_rows;
SELECT counters.rebuild('all_posts') AS all_posts_rows_changed;
SELECT chk_all() AS "repaired after truncate drift";
SELECT count(*) = 1 AS global_row_kept FROM all_posts;

-- session_replication_role = replica (a logical replication subscriber's
-- apply, or a session that set it) skips ordinary triggers, but not
-- counters: their row trigger counts there
INSERT INTO post SELECT g, g % 3, g % 2, true, g FROM generate_series(1, 50) g;
SELECT chk_all() AS "refilled";
SET session_replication_role = replica;
UPDATE post SET user_id = 8 WHERE id BETWEEN 1 AND 3;
INSERT INTO post VALUES (3000, 8, 1, true, 5);
DELETE FROM post WHERE id = 4;
RESET session_replication_role;
SELECT chk_all() AS "replica writes counted";

-- rebuild is transactional: rolled back, the drift is back
ALTER TABLE post DISABLE TRIGGER USER;
DELETE FROM post WHERE id = 50;
ALTER TABLE post ENABLE TRIGGER USER;
SELECT count(*) AS n_reported FROM counters.verify('user_blog_posts') \gset
BEGIN;
SELECT :n_reported > 0 AND counters.rebuild('user_blog_posts') = :n_reported AS rebuild_changed_the_reported_rows;
SELECT count(*) AS verify_rows_in_transaction FROM counters.verify('user_blog_posts');
ROLLBACK;
SELECT :n_reported > 0 AND count(*) = :n_reported AS drift_back_after_rollback FROM counters.verify('user_blog_posts');
SELECT :n_reported > 0 AND counters.rebuild('user_blog_posts') = :n_reported AS rebuild_changed_the_reported_rows;
SELECT counters.rebuild('all_posts') AS all_posts_rows_changed;
SELECT chk_all() AS "final";

-- clean up
SELECT counters.drop_counter(counter) FROM expect ORDER BY counter::text;
DELETE FROM expect;
SELECT count(*) AS counter_triggers_left FROM pg_trigger WHERE tgrelid = 'post'::regclass AND NOT tgisinternal;
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_drift CASCADE;
