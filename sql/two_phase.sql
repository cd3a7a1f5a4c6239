--
-- two_phase: immediate-mode counters on a subscriber of a two-phase
-- subscription (two_phase = on).  Its apply worker prepares the
-- transactions the publisher prepared and applies the ones committed
-- meanwhile before COMMIT PREPARED: it records their deltas instead of
-- changing counter rows (a prepared transaction would keep them locked
-- against its own next transactions), and the counter view adds the
-- recorded deltas, as a buffered counter's does.  Here, without a
-- publisher (connect = false): CREATE SUBSCRIPTION gives immediate
-- counters such views, create_counter and set_mode give them while the
-- subscription exists, set_mode(c, 'immediate') takes them back after DROP
-- SUBSCRIPTION, the mode stays 'immediate' throughout (also for a counter
-- registered again from its relations, as after a restore), and every
-- counter stays equal to its query.  t/050_replication.pl runs the apply
-- worker itself.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_tp;
SET search_path = regress_tp, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\set chk_all_lists off
\i sql/include/helpers.sql
\set ECHO all

-- reads_deltas(counter): whether the counter view reads its deltas table
CREATE FUNCTION reads_deltas(c regclass) RETURNS boolean LANGUAGE sql AS $$
  SELECT EXISTS (SELECT FROM pg_depend dep JOIN pg_rewrite r ON r.oid = dep.objid
                  WHERE dep.classid = 'pg_rewrite'::regclass AND r.ev_class = c
                    AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = deltas_of(c))
$$;
CREATE FUNCTION modes() RETURNS TABLE (counter regclass, mode text, reads_deltas boolean)
LANGUAGE sql AS $$
  SELECT d.counter, d.mode, reads_deltas(d.counter)
    FROM counters.counter_def d JOIN expect e USING (counter) ORDER BY d.counter::text
$$;

CREATE TABLE posts (id int PRIMARY KEY, blog int, rating int);
INSERT INTO posts SELECT g, g % 5, g % 3 FROM generate_series(1, 100) g;
SELECT make_counter('c_key', 'SELECT blog, count(*) AS n, sum(rating) AS r FROM posts GROUP BY blog') IS NOT NULL AS made;
SELECT make_counter('c_glob', 'SELECT count(*) AS n FROM posts') IS NOT NULL AS made;
SELECT make_counter('c_buf', 'SELECT blog, count(*) AS n FROM posts GROUP BY blog', 'buffered') IS NOT NULL AS made;
SELECT * FROM modes();

-- a subscription that does not replicate prepared transactions changes nothing
CREATE SUBSCRIPTION regress_tp_plain CONNECTION 'dbname=regress_tp_nowhere' PUBLICATION p
  WITH (connect = false);
SELECT * FROM modes();

-- a two-phase one: immediate counters read their deltas, in immediate mode;
-- also one restored without its definition row (pg_dump -s), which would
-- otherwise be registered on first use, by the apply worker
DELETE FROM counters.counter_def WHERE counter = 'c_glob'::regclass;
SELECT count(*) FROM counters.counter_def WHERE counter = 'c_glob'::regclass;
CREATE SUBSCRIPTION regress_tp_sub CONNECTION 'dbname=regress_tp_nowhere' PUBLICATION p
  WITH (connect = false, two_phase = true);
SELECT subtwophasestate FROM pg_subscription WHERE subname = 'regress_tp_sub';
SELECT * FROM modes();
SELECT counter, mode FROM counters.counters WHERE counter::text LIKE 'c\_%' ORDER BY counter::text;

-- local writes still change counter rows, in the writer's transaction
INSERT INTO posts SELECT g, g % 7, g % 4 FROM generate_series(101, 200) g;
UPDATE posts SET blog = blog + 1 WHERE id % 3 = 0;
DELETE FROM posts WHERE id % 10 = 0;
SELECT (SELECT count(*) FROM counters."regress_tp.c_key.deltas") AS key_deltas,
       (SELECT count(*) FROM counters."regress_tp.c_glob.deltas") AS glob_deltas;
SELECT chk_all();

-- a round trip through buffered mode: its deltas are folded on the way
-- back, and the view still reads the deltas table
SELECT counters.set_mode('c_key', 'buffered');
SELECT counters.set_mode('c_glob', 'buffered');
UPDATE posts SET rating = rating + 1 WHERE id % 4 = 0;
INSERT INTO posts VALUES (1000, 42, 1);
SELECT counters.set_mode('c_key', 'immediate');
SELECT counters.set_mode('c_glob', 'immediate');
SELECT * FROM modes();
SELECT chk_all();
SELECT (SELECT count(*) FROM counters."regress_tp.c_key.deltas") AS key_deltas;

-- a counter declared while the subscription exists
SELECT make_counter('c_late', 'SELECT rating, count(*) AS n FROM posts GROUP BY rating') IS NOT NULL AS made;
SELECT * FROM modes();

-- registered again from its relations, as after a restore of pg_dump -s,
-- with a view that reads its deltas: still immediate
DELETE FROM counters.counter_def WHERE counter = 'c_key'::regclass;
SELECT count(*) FROM counters.verify('c_key');
SELECT * FROM modes();
SELECT chk_all();

-- without the two-phase subscription, set_mode(c, 'immediate') gives the
-- plain view back; the others keep theirs until then, and stay exact
ALTER SUBSCRIPTION regress_tp_sub SET (slot_name = NONE);
DROP SUBSCRIPTION regress_tp_sub;
SELECT counters.set_mode('c_key', 'immediate');
SELECT counters.set_mode('c_late', 'immediate');
UPDATE posts SET blog = blog - 1 WHERE id % 6 = 0;
SELECT * FROM modes();
SELECT chk_all();

ALTER SUBSCRIPTION regress_tp_plain SET (slot_name = NONE);
DROP SUBSCRIPTION regress_tp_plain;
SET client_min_messages = warning;
DROP SCHEMA regress_tp CASCADE;
RESET client_min_messages;
SELECT count(*) = :defs_before AS defs_cleaned FROM counters.counter_def;
