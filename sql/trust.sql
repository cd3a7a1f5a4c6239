--
-- trust: what a hostile or careless role can do through counters, and what
-- it cannot.  Nothing registers a counter but create_counter by the owner
-- of the source; a counter's code (its key, filter and value expressions)
-- runs as the counter's owner whoever writes the source or calls verify,
-- rebuild or flush; writers need no right on the counter's schema; a
-- counter belongs to its source's owner and follows it; row-level security
-- does not hide rows from a counter; reads inside a statement do not
-- change what the statement sees; composite keys work, anonymous records
-- and system column names are refused; a key too long for a btree says
-- so; SET TRANSACTION READ ONLY after writes keeps their deltas; a
-- counter flush(NULL) cannot fold does not stop the others.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
DROP ROLE IF EXISTS regress_trust_owner;
DROP ROLE IF EXISTS regress_trust_evil;
DROP ROLE IF EXISTS regress_trust_app;
DROP ROLE IF EXISTS regress_trust_heir;
RESET client_min_messages;
CREATE ROLE regress_trust_owner;
CREATE ROLE regress_trust_evil;
CREATE ROLE regress_trust_app;
CREATE ROLE regress_trust_heir;
CREATE SCHEMA regress_trust AUTHORIZATION regress_trust_owner;
CREATE SCHEMA regress_trust_evil AUTHORIZATION regress_trust_evil;
GRANT USAGE ON SCHEMA regress_trust TO PUBLIC;
SET search_path = regress_trust, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all
GRANT ALL ON ALL TABLES IN SCHEMA regress_trust TO PUBLIC;
GRANT ALL ON ALL FUNCTIONS IN SCHEMA regress_trust TO PUBLIC;

-- who ran a counter's code: the owner's key function, declared IMMUTABLE,
-- calls a VOLATILE one that logs current_user and tries to make the owner
-- a superuser (it would succeed if a superuser ran it)
CREATE TABLE regress_trust.ran_as (who name);
GRANT ALL ON regress_trust.ran_as TO PUBLIC;
ALTER TABLE regress_trust.ran_as OWNER TO regress_trust_owner;
CREATE FUNCTION regress_trust.log_me() RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO regress_trust.ran_as VALUES (current_user);
  BEGIN
    EXECUTE 'ALTER ROLE regress_trust_owner SUPERUSER';
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
END $$;
CREATE FUNCTION regress_trust.logged_key(k int) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM regress_trust.log_me();
  RETURN k % 3;
END $$;
ALTER FUNCTION regress_trust.log_me() OWNER TO regress_trust_owner;
ALTER FUNCTION regress_trust.logged_key(int) OWNER TO regress_trust_owner;

-- the victim's table and counters
CREATE TABLE regress_trust.secrets (k int, v int);
ALTER TABLE regress_trust.secrets OWNER TO regress_trust_owner;
GRANT INSERT, UPDATE, DELETE, SELECT ON regress_trust.secrets TO regress_trust_app;
INSERT INTO regress_trust.secrets SELECT i, i FROM generate_series(1, 20) i;
SET ROLE regress_trust_owner;
SELECT make_counter('regress_trust.by_key', 'SELECT logged_key(k) AS k3, count(*) AS n, sum(v) AS s FROM regress_trust.secrets GROUP BY 1');
SELECT make_counter('regress_trust.by_key_b', 'SELECT logged_key(k) AS k3, count(*) AS n FROM regress_trust.secrets GROUP BY 1', 'buffered');
RESET ROLE;

-- 1. Nothing but create_counter registers a counter.  Relations that look
-- like a counter's, in a role's own schema or in pg_temp, stay what they
-- are: every API function says they are not a counter, and writes to the
-- table they read are not counted into them.
SET ROLE regress_trust_evil;
CREATE FUNCTION regress_trust_evil.spy(k int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT k';
CREATE TABLE regress_trust_evil._counters_c900_data (k int, count bigint NOT NULL, _counters_rows bigint NOT NULL);
CREATE UNIQUE INDEX ON regress_trust_evil._counters_c900_data (k) NULLS NOT DISTINCT;
CREATE TABLE regress_trust_evil._counters_c900_deltas (LIKE regress_trust_evil._counters_c900_data);
CREATE VIEW regress_trust_evil._counters_c900_query AS
  SELECT regress_trust_evil.spy(k) AS k, count(*) FROM regress_trust.secrets GROUP BY 1;
CREATE VIEW regress_trust_evil.fake AS SELECT k, count FROM regress_trust_evil._counters_c900_data;
CREATE TEMP TABLE _counters_c901_data (k int, count bigint NOT NULL, _counters_rows bigint NOT NULL);
CREATE TEMP TABLE _counters_c901_deltas (LIKE _counters_c901_data);
CREATE TEMP VIEW fake_tmp AS SELECT k, count FROM _counters_c901_data;
SELECT try_sql($$SELECT counters.flush('regress_trust_evil.fake')$$) AS flush_fake;
SELECT try_sql($$SELECT counters.verify('regress_trust_evil.fake')$$) AS verify_fake;
SELECT try_sql($$SELECT counters.rebuild('regress_trust_evil.fake')$$) AS rebuild_fake;
SELECT try_sql($$SELECT counters.set_mode('regress_trust_evil.fake', 'buffered')$$) AS set_mode_fake;
SELECT try_sql($$SELECT counters.drop_counter('regress_trust_evil.fake')$$) AS drop_fake;
SELECT try_sql($$SELECT counters.flush('pg_temp.fake_tmp')$$) AS flush_temp;
-- another role's counter: not theirs to flush, rebuild, switch or drop
SELECT try_sql($$SELECT counters.flush('regress_trust.by_key_b')$$) AS flush_other;
SELECT try_sql($$SELECT counters.rebuild('regress_trust.by_key')$$) AS rebuild_other;
SELECT try_sql($$SELECT counters.set_mode('regress_trust.by_key', 'buffered')$$) AS set_mode_other;
SELECT try_sql($$SELECT counters.drop_counter('regress_trust.by_key')$$) AS drop_other;
SELECT try_sql($$SELECT counters.create_counter('regress_trust_evil.c', 'SELECT k, count(*) FROM regress_trust.secrets GROUP BY k')$$) AS create_on_other;
RESET ROLE;
SELECT count(*) - :defs_before AS defs_added FROM counters.counter_def;
INSERT INTO regress_trust.secrets VALUES (21, 21);
SELECT (SELECT count(*) FROM regress_trust_evil._counters_c900_data) AS fake_rows,
       (SELECT count(*) FROM regress_trust_evil._counters_c900_deltas) AS fake_deltas;
SELECT chk_all();

-- 2. A counter's code runs as its owner: when a writer without rights on
-- it, or a superuser, writes the source; when a superuser rebuilds,
-- verifies, flushes, switches the mode.  The owner never gained more.
TRUNCATE regress_trust.ran_as;
SET ROLE regress_trust_app;
INSERT INTO regress_trust.secrets VALUES (22, 22);
UPDATE regress_trust.secrets SET k = k + 1 WHERE k = 22;
DELETE FROM regress_trust.secrets WHERE k = 23;
RESET ROLE;
INSERT INTO regress_trust.secrets VALUES (24, 24);
SELECT counters.rebuild('regress_trust.by_key') AS rebuilt;
SELECT count(*) AS drift FROM counters.verify('regress_trust.by_key');
SELECT counters.flush('regress_trust.by_key_b') >= 0 AS flushed;
SELECT counters.set_mode('regress_trust.by_key_b', 'immediate');
SELECT counters.set_mode('regress_trust.by_key_b', 'buffered');
SELECT DISTINCT who FROM regress_trust.ran_as ORDER BY 1;
SELECT rolsuper AS owner_is_superuser FROM pg_roles WHERE rolname = 'regress_trust_owner';
SELECT chk_all();

-- 11. A role that may write the source but has no right on the schema that
-- holds the counter keeps it exact: new keys, several keys at once, a key
-- emptied, a counter without keys, in both modes.
CREATE SCHEMA regress_trust_stats AUTHORIZATION regress_trust_owner;
REVOKE ALL ON SCHEMA regress_trust_stats FROM PUBLIC;
CREATE TABLE regress_trust.posts (blog int, rating int);
ALTER TABLE regress_trust.posts OWNER TO regress_trust_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON regress_trust.posts TO regress_trust_app;
GRANT USAGE ON SCHEMA regress_trust_stats TO regress_trust_heir;
SET ROLE regress_trust_owner;
SELECT make_counter('regress_trust_stats.per_blog', 'SELECT blog, count(*) AS n, sum(rating) AS r FROM regress_trust.posts GROUP BY blog');
SELECT make_counter('regress_trust_stats.per_blog_b', 'SELECT blog, count(*) AS n FROM regress_trust.posts GROUP BY blog', 'buffered');
SELECT make_counter('regress_trust_stats.total', 'SELECT count(*) AS n, sum(rating) AS r FROM regress_trust.posts');
RESET ROLE;
SET ROLE regress_trust_app;
SELECT has_schema_privilege('regress_trust_stats', 'USAGE') AS app_may_use_stats;
INSERT INTO regress_trust.posts VALUES (1, 5);
INSERT INTO regress_trust.posts SELECT i % 7, i FROM generate_series(1, 50) i;
UPDATE regress_trust.posts SET blog = blog + 10 WHERE blog < 3;
DELETE FROM regress_trust.posts WHERE blog = 13;
RESET ROLE;
SELECT chk_all();

-- 12. A counter belongs to its source's owner.  ALTER TABLE ... OWNER TO
-- carries every counter of the table and its hidden relations along;
-- giving a counter alone to another role is refused, with the way to do
-- it; writes, reads, flushes and rebuild go on working.
ALTER TABLE regress_trust.posts OWNER TO regress_trust_heir;
SELECT count(*) AS relations, count(*) FILTER (WHERE c.relowner <> 'regress_trust_heir'::regrole) AS not_the_heirs
  FROM counters.counter_def d
  JOIN pg_class c ON c.oid IN (d.counter, d.storage, d.deltas, d.definition)
 WHERE d.source = 'regress_trust.posts'::regclass;
SELECT try_sql($$ALTER VIEW regress_trust_stats.per_blog OWNER TO regress_trust_evil$$) AS give_counter_away;
SELECT try_sql($$ALTER TABLE counters."regress_trust_stats.per_blog.data" OWNER TO regress_trust_evil$$) AS give_storage_away;
SELECT try_sql($$ALTER VIEW regress_trust_stats.per_blog OWNER TO regress_trust_heir$$) AS give_to_source_owner;
SET ROLE regress_trust_app;
INSERT INTO regress_trust.posts SELECT i % 9, i FROM generate_series(1, 30) i;
RESET ROLE;
SET ROLE regress_trust_heir;
SELECT counters.flush('regress_trust_stats.per_blog_b') >= 0 AS flushed;
SELECT counters.rebuild('regress_trust_stats.per_blog') AS rebuilt;
RESET ROLE;
SELECT chk_all();

-- 9. Row-level security, even forced on the owner, does not hide rows
-- from a counter: it counts every row of its source, as its triggers see
-- them, and verify, rebuild and the first fill agree.
CREATE TABLE regress_trust.rls (tenant int, v int);
ALTER TABLE regress_trust.rls OWNER TO regress_trust_owner;
INSERT INTO regress_trust.rls SELECT i % 4, i FROM generate_series(1, 40) i;
ALTER TABLE regress_trust.rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE regress_trust.rls FORCE ROW LEVEL SECURITY;
CREATE POLICY only_tenant_1 ON regress_trust.rls USING (tenant = 1) WITH CHECK (true);
GRANT SELECT, INSERT, DELETE ON regress_trust.rls TO regress_trust_app;
SET ROLE regress_trust_owner;
SELECT make_counter('regress_trust.per_tenant', 'SELECT tenant, count(*) AS n, sum(v) AS s FROM regress_trust.rls GROUP BY tenant');
SELECT make_counter('regress_trust.per_tenant_b', 'SELECT tenant, count(*) AS n FROM regress_trust.rls GROUP BY tenant', 'buffered');
SELECT count(*) AS owner_sees FROM regress_trust.rls;
INSERT INTO regress_trust.rls VALUES (2, 100), (1, 101);
RESET ROLE;
SET ROLE regress_trust_app;
INSERT INTO regress_trust.rls VALUES (3, 200);
DELETE FROM regress_trust.rls WHERE v = 1;
RESET ROLE;
SET ROLE regress_trust_owner;
SELECT count(*) AS owner_verify_rows FROM counters.verify('regress_trust.per_tenant');
SELECT counters.rebuild('regress_trust.per_tenant') AS owner_rebuilt;
RESET ROLE;
SELECT chk_all();

-- 6. In REPEATABLE READ and SERIALIZABLE, a statement that reads a counter
-- in its middle (a function in its WHERE clause) applies the transaction's
-- pending deltas, and still sees exactly what it saw when it started.
CREATE TABLE regress_trust.ev (k int);
CREATE TABLE regress_trust.other (i int);
INSERT INTO regress_trust.other SELECT generate_series(1, 2000);
SELECT make_counter('regress_trust.ev_total', 'SELECT count(*) AS n FROM regress_trust.ev');
CREATE FUNCTION regress_trust.ev_n() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT n FROM regress_trust.ev_total';
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO regress_trust.ev VALUES (1);
INSERT INTO regress_trust.other SELECT i FROM regress_trust.other WHERE regress_trust.ev_n() > 0;
SELECT count(*) AS other_rows, ev_n() AS counted FROM regress_trust.other;
INSERT INTO regress_trust.ev VALUES (2);
UPDATE regress_trust.other SET i = -i WHERE i <= 10 AND regress_trust.ev_n() = 2;
SELECT count(*) FILTER (WHERE i < 0) AS updated FROM regress_trust.other;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
INSERT INTO regress_trust.ev VALUES (3);
DELETE FROM regress_trust.other WHERE i > 2000 AND regress_trust.ev_n() = 3;
SELECT count(*) AS other_rows_after_delete FROM regress_trust.other;
COMMIT;
SELECT chk_all();

-- 7. Composite keys: a type made with CREATE TYPE works in both modes,
-- with transactions that touch several keys and rows that move between
-- keys; an anonymous record cannot be a key.
CREATE TYPE regress_trust.pair AS (a int, b text);
CREATE TABLE regress_trust.cp (p regress_trust.pair, v int);
SELECT make_counter('regress_trust.per_pair', 'SELECT p, count(*) AS n, sum(v) AS s FROM regress_trust.cp GROUP BY p');
SELECT make_counter('regress_trust.per_pair_b', 'SELECT p, count(*) AS n FROM regress_trust.cp GROUP BY p', 'buffered');
INSERT INTO regress_trust.cp VALUES (ROW(1, 'x'), 1), (ROW(2, 'y'), 2), (ROW(1, 'x'), 3), (NULL, 4);
BEGIN;
INSERT INTO regress_trust.cp SELECT ROW(i % 5, 'k' || (i % 3))::regress_trust.pair, i FROM generate_series(1, 60) i;
UPDATE regress_trust.cp SET p = ROW((p).a + 1, (p).b) WHERE v % 4 = 0;
COMMIT;
UPDATE regress_trust.cp SET p = ROW(9, 'z') WHERE v < 3;
DELETE FROM regress_trust.cp WHERE v > 50;
SELECT chk_all();
SELECT try_sql($$SELECT counters.create_counter('regress_trust.rec', 'SELECT row(p, v) AS r, count(*) FROM regress_trust.cp GROUP BY 1')$$) AS record_key;

-- 10. ONLY a partitioned table has no rows of its own: refused.  ONLY a
-- plain table is the table itself.
CREATE TABLE regress_trust.parted (k int) PARTITION BY RANGE (k);
CREATE TABLE regress_trust.parted_1 PARTITION OF regress_trust.parted FOR VALUES FROM (0) TO (100);
SELECT try_sql($$SELECT counters.create_counter('regress_trust.only_parted', 'SELECT k, count(*) FROM ONLY regress_trust.parted GROUP BY k')$$) AS only_partitioned;
SELECT make_counter('regress_trust.only_plain', 'SELECT k, count(*) AS n FROM ONLY regress_trust.ev GROUP BY k');
INSERT INTO regress_trust.ev VALUES (4), (4);
SELECT chk_all();

-- 8. Inside the triggers of the statement that changes the source, the
-- counter does not show that statement's rows yet: PostgreSQL fires row
-- triggers, and statement triggers whose names sort before counters_insert
-- (counters_update, counters_delete), before counters' own statement
-- trigger.  Statement triggers named after it see them.
CREATE TABLE regress_trust.tr (k int);
SELECT make_counter('regress_trust.tr_n', 'SELECT count(*) AS n FROM regress_trust.tr');
CREATE TABLE regress_trust.seen (trig text, counted bigint, actual bigint);
CREATE FUNCTION regress_trust.look() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO regress_trust.seen
  SELECT TG_NAME, (SELECT n FROM regress_trust.tr_n), (SELECT count(*) FROM regress_trust.tr);
  RETURN NULL;
END $$;
CREATE TRIGGER a_row AFTER INSERT ON regress_trust.tr FOR EACH ROW EXECUTE FUNCTION regress_trust.look();
CREATE TRIGGER a_stmt AFTER INSERT ON regress_trust.tr FOR EACH STATEMENT EXECUTE FUNCTION regress_trust.look();
CREATE TRIGGER z_stmt AFTER INSERT ON regress_trust.tr FOR EACH STATEMENT EXECUTE FUNCTION regress_trust.look();
INSERT INTO regress_trust.tr VALUES (1), (2);
SELECT trig, counted = actual - 2 AS counter_before_the_statement, counted = actual AS counter_after_it
  FROM regress_trust.seen ORDER BY trig;
SELECT chk_all();

-- 17. Output columns named like a system column are refused up front.
SELECT try_sql($$SELECT counters.create_counter('regress_trust.sys1', 'SELECT k AS ctid, count(*) FROM regress_trust.ev GROUP BY 1')$$) AS named_ctid;
SELECT try_sql($$SELECT counters.create_counter('regress_trust.sys2', 'SELECT k, count(*) AS xmin FROM regress_trust.ev GROUP BY 1')$$) AS named_xmin;
SELECT try_sql($$SELECT counters.create_counter('regress_trust.sys3', 'SELECT k, count(*) AS tableoid FROM regress_trust.ev GROUP BY 1')$$) AS named_tableoid;

-- 15. A key too long for the storage's btree index: the write fails with
-- an error that names the counter and says what to do; the counter stays
-- exact.
CREATE TABLE regress_trust.urls (url text);
SELECT make_counter('regress_trust.per_url', 'SELECT url, count(*) AS n FROM regress_trust.urls GROUP BY url');
SELECT make_counter('regress_trust.per_url_b', 'SELECT url, count(*) AS n FROM regress_trust.urls GROUP BY url', 'buffered');
INSERT INTO regress_trust.urls VALUES ('short');
-- (the counters are written at COMMIT: the error comes from there)
INSERT INTO regress_trust.urls SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i;
SELECT count(*) AS urls FROM regress_trust.urls;
SELECT chk_all();

-- 16b. SET TRANSACTION READ ONLY after the writes: the commit keeps them
-- and their counters.
CREATE TABLE regress_trust.ro (k int);
SELECT make_counter('regress_trust.ro_imm', 'SELECT k, count(*) AS n FROM regress_trust.ro GROUP BY k');
SELECT make_counter('regress_trust.ro_buf', 'SELECT k, count(*) AS n FROM regress_trust.ro GROUP BY k', 'buffered');
BEGIN;
INSERT INTO regress_trust.ro SELECT i % 3 FROM generate_series(1, 10) i;
SET TRANSACTION READ ONLY;
COMMIT;
BEGIN;
INSERT INTO regress_trust.ro VALUES (7);
SET TRANSACTION READ ONLY;
SELECT n AS read_after_read_only FROM regress_trust.ro_imm WHERE k = 7;
COMMIT;
SELECT count(*) AS ro_rows FROM regress_trust.ro;
SELECT chk_all();

-- 4. flush(NULL) folds every counter it can: one that cannot be folded
-- (here its owner put a trigger on its deltas table that refuses the
-- fold) is reported with a WARNING, and the others are folded.
CREATE TABLE regress_trust.f (k int);
SELECT make_counter('regress_trust.f_ok', 'SELECT k, count(*) AS n FROM regress_trust.f GROUP BY k', 'buffered');
SELECT make_counter('regress_trust.f_broken', 'SELECT count(*) AS n FROM regress_trust.f', 'buffered');
CREATE FUNCTION regress_trust.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'not today'; END $$;
SELECT format('CREATE TRIGGER refuse BEFORE DELETE ON %s FOR EACH ROW EXECUTE FUNCTION regress_trust.refuse()',
              deltas) AS ddl FROM counters.counter_def WHERE counter = 'regress_trust.f_broken'::regclass \gexec
INSERT INTO regress_trust.f SELECT i % 4 FROM generate_series(1, 20) i;
SELECT counters.flush() > 0 AS some_folded;
SELECT (SELECT count(*) FROM ONLY counters."regress_trust.f_ok.deltas") AS ok_deltas_left,
       (SELECT count(*) FROM ONLY counters."regress_trust.f_broken.deltas") > 0 AS broken_deltas_left;
SELECT chk_all();

-- clean up
RESET ROLE;
DROP VIEW pg_temp.fake_tmp;
DROP TABLE pg_temp._counters_c901_data, pg_temp._counters_c901_deltas;
SET client_min_messages = warning;
DROP SCHEMA regress_trust CASCADE;
DROP SCHEMA regress_trust_stats CASCADE;
DROP SCHEMA regress_trust_evil CASCADE;
RESET client_min_messages;
SELECT count(*) - :defs_before AS defs_left FROM counters.counter_def;
DROP ROLE regress_trust_owner;
DROP ROLE regress_trust_evil;
DROP ROLE regress_trust_app;
DROP ROLE regress_trust_heir;
