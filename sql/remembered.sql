--
-- remembered: a backend remembers where it wrote each key's row last (the
-- counter row in immediate mode, its delta row in buffered mode) and starts
-- its next write of that key there instead of in the unique index.  That
-- TID is only a hint: every way it can go stale must fall back to the index
-- or to a new row, never count into the wrong row.  Here: the row deleted
-- by rebuild() and its line pointer reused by another key after VACUUM, the
-- table cut short by VACUUM, the row updated by someone else (rebuild),
-- versions written by rolled-back transactions and subtransactions, more
-- keys than a backend remembers, and transactions that touch a few keys,
-- some with rows and some without, some of them falling to zero.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_remembered;
SET search_path = regress_remembered, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

-- ctid_of(counter, key): where the storage row of key k is now
CREATE FUNCTION ctid_of(c regclass, key text) RETURNS tid LANGUAGE plpgsql AS $$
DECLARE
  t tid;
BEGIN
  EXECUTE format('SELECT ctid FROM %s WHERE k = $1', storage_of(c)) INTO t USING key;
  RETURN t;
END $$;

-- one_each(keys): one single-row transaction per key (a procedure commits
-- between them), value 1
CREATE TABLE t (id serial PRIMARY KEY, k text, v int);
CREATE PROCEDURE one_each(keys text[]) LANGUAGE plpgsql AS $$
DECLARE
  key text;
BEGIN
  FOREACH key IN ARRAY keys LOOP
    INSERT INTO t (k, v) VALUES (key, 1);
    COMMIT;
  END LOOP;
END $$;

SELECT make_counter('c_imm', $$SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k$$);
SELECT make_counter('c_buf', $$SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k$$, 'buffered');

-- ---------------------------------------------------------------------
-- a row deleted behind the backend's back, its line pointer taken by
-- another key
-- ---------------------------------------------------------------------
-- z, a, b, c get their rows in this order, each in a transaction of its
-- own, so this backend remembers each row (a's is the second line pointer)
CALL one_each(ARRAY['z', 'a', 'b', 'c']);
SELECT chk_all() AS "rows remembered";
SELECT ctid_of('c_imm', 'a') AS a_was \gset
-- a, b and c disappear without the triggers; rebuild() deletes their rows
-- with SQL, which this backend's memory knows nothing of
ALTER TABLE t DISABLE TRIGGER USER;
DELETE FROM t WHERE k IN ('a', 'b', 'c');
ALTER TABLE t ENABLE TRIGGER USER;
SELECT counters.rebuild('c_imm') AS rows_changed;
SELECT counters.rebuild('c_buf') >= 0 AS rebuilt;
-- VACUUM frees their line pointers (z keeps the page); c comes back first
-- and its new row takes the first free line pointer: a's
SELECT storage_of('c_imm') AS c_imm_storage \gset
VACUUM :c_imm_storage;
CALL one_each(ARRAY['c']);
SELECT ctid_of('c_imm', 'c') = :'a_was'::tid AS c_took_the_place_of_a;
-- a's remembered TID now holds c's row: a must get a row of its own
CALL one_each(ARRAY['a', 'a', 'c', 'b', 'b', 'z']);
SELECT chk_all() AS "line pointer reused by another key";

-- ---------------------------------------------------------------------
-- the table cut short by VACUUM under remembered TIDs
-- ---------------------------------------------------------------------
ALTER TABLE t DISABLE TRIGGER USER;
DELETE FROM t;
ALTER TABLE t ENABLE TRIGGER USER;
SELECT counters.rebuild('c_imm') AS rows_changed;
SELECT counters.flush('c_buf') >= 0 AS flushed;
SELECT counters.rebuild('c_buf') >= 0 AS rebuilt;
VACUUM :c_imm_storage;
SELECT pg_relation_size(:'c_imm_storage') AS storage_bytes_after_vacuum;
CALL one_each(ARRAY['z', 'a', 'z', 'a']);
SELECT chk_all() AS "table cut short";

-- ---------------------------------------------------------------------
-- the row updated by someone else since: the remembered version is old
-- ---------------------------------------------------------------------
ALTER TABLE t DISABLE TRIGGER USER;
INSERT INTO t (k, v) VALUES ('a', 100);
ALTER TABLE t ENABLE TRIGGER USER;
SELECT ctid_of('c_imm', 'a') AS a_was \gset
SELECT counters.rebuild('c_imm') AS rows_changed;
SELECT counters.rebuild('c_buf') >= 0 AS rebuilt;
SELECT ctid_of('c_imm', 'a') <> :'a_was'::tid AS a_has_a_new_version;
CALL one_each(ARRAY['a', 'z', 'a']);
SELECT chk_all() AS "row updated by someone else";

-- ---------------------------------------------------------------------
-- versions written by transactions that rolled back
-- ---------------------------------------------------------------------
-- apply_pending() writes the rows now; the rollback leaves them behind as
-- versions of an aborted transaction, the last this backend wrote
BEGIN;
INSERT INTO t (k, v) VALUES ('a', 7), ('new', 7);
SELECT counters.apply_pending() > 0 AS applied;
ROLLBACK;
CALL one_each(ARRAY['a', 'new', 'a', 'new']);
SELECT chk_all() AS "after a rollback";
-- the same in a subtransaction, and the transaction applies again at commit
BEGIN;
INSERT INTO t (k, v) VALUES ('a', 1);
SAVEPOINT s;
INSERT INTO t (k, v) VALUES ('a', 2), ('z', 2), ('sub', 2);
SELECT counters.apply_pending() > 0 AS applied;
ROLLBACK TO SAVEPOINT s;
INSERT INTO t (k, v) VALUES ('z', 3);
COMMIT;
SELECT chk_all() AS "after a rolled-back subtransaction";
CALL one_each(ARRAY['a', 'z', 'sub', 'a', 'z', 'sub']);
SELECT chk_all() AS "after a rolled-back subtransaction, again";

-- ---------------------------------------------------------------------
-- a few keys per transaction, updated in place key by key: moves between
-- keys with and without rows, groups falling to zero and coming back
-- ---------------------------------------------------------------------
INSERT INTO t (k, v) SELECT 'm' || g % 10, g FROM generate_series(1, 100) g;
SELECT chk_all() AS "many keys";
UPDATE t SET k = 'm' || (substr(k, 2)::int + 1) % 12 WHERE id = (SELECT min(id) FROM t WHERE k = 'm3');
UPDATE t SET k = 'm11' WHERE k = 'm4';
UPDATE t SET k = 'm4' WHERE k = 'm11';
UPDATE t SET k = 'm0', v = v + 1 WHERE k IN ('m1', 'm2', 'm5');
DELETE FROM t WHERE k IN ('m6', 'm7');
INSERT INTO t (k, v) VALUES ('m6', 1), ('m7', NULL), ('m8', 2);
SELECT chk_all() AS "a few keys at a time";
BEGIN;
UPDATE t SET v = v + 1 WHERE k IN ('m0', 'm3');
UPDATE t SET k = 'm9' WHERE k = 'm8';
SELECT chk_all() AS "read inside the transaction";
UPDATE t SET k = 'm8' WHERE k = 'm9' AND v IS NOT NULL;
COMMIT;
SELECT chk_all() AS "a few keys, twice in one transaction";

-- ---------------------------------------------------------------------
-- more keys than a backend remembers (8192 per counter): it starts again
-- ---------------------------------------------------------------------
CREATE PROCEDURE many(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. n LOOP
    INSERT INTO t (k, v) VALUES ('r' || i, i);
    COMMIT;
  END LOOP;
END $$;
CALL many(8500);
CALL many(8500);
SELECT chk_all() AS "more keys than remembered";
SELECT count(*) = 8500 AS every_key_counted FROM c_imm WHERE k LIKE 'r%';

-- ---------------------------------------------------------------------
-- row layouts: the next version of a counter row is a copy of the last
-- one with its bigint columns overwritten where they lie, found by walking
-- the keys before them (short and long varlena headers, a NULL key, a key
-- stored out of line in TOAST); a row with a numeric column is formed
-- again instead.  Each transaction below adds to existing rows.  Keys and
-- values that the source keeps out of line in its TOAST are fetched by the
-- trigger, and a stored row with its long key in the storage's TOAST is
-- updated and deleted at commit, where there is no snapshot to read TOAST
-- with (before this was fixed: "cannot fetch toast data without an active
-- snapshot", the COMMIT failed).
-- ---------------------------------------------------------------------
CREATE TABLE lay (id serial PRIMARY KEY, k1 text, k2 int, v int, big bigint, n numeric);
ALTER TABLE lay ALTER COLUMN k1 SET STORAGE EXTERNAL, ALTER COLUMN n SET STORAGE EXTERNAL;
SELECT make_counter('c_lay_txt', 'SELECT k1, count(*) AS n, sum(v) AS s FROM lay GROUP BY k1') IS NOT NULL AS made;
SELECT make_counter('c_lay_txt_buf', 'SELECT k1, count(*) AS n, sum(v) AS s FROM lay GROUP BY k1', 'buffered') IS NOT NULL AS made;
SELECT make_counter('c_lay_two', 'SELECT k2, k1, count(v) AS n, sum(big) AS s FROM lay GROUP BY k2, k1') IS NOT NULL AS made;
SELECT make_counter('c_lay_num', 'SELECT k2, sum(n) AS s, count(*) AS c FROM lay GROUP BY k2') IS NOT NULL AS made;
SELECT make_counter('c_lay_num_buf', 'SELECT k2, sum(n) AS s, count(*) AS c FROM lay GROUP BY k2', 'buffered') IS NOT NULL AS made;
CREATE PROCEDURE layouts(n int) LANGUAGE plpgsql AS $$
DECLARE
  keys text[] := ARRAY['', 'a', repeat('b', 126), repeat('c', 127), repeat('d', 300),
                       (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 75) i), NULL];
BEGIN
  FOR i IN 1 .. n LOOP
    INSERT INTO lay (k1, k2, v, big, n)
      VALUES (keys[1 + i % 7], i % 3, i, i * 1000000000000::bigint,
              CASE WHEN i % 4 = 0 THEN repeat('7', 5000)::numeric + i ELSE i / 7.0 END);
    COMMIT;
    UPDATE lay SET v = v + 1, big = -big WHERE id = (SELECT min(id) FROM lay WHERE k1 IS NOT DISTINCT FROM keys[1 + (i + 3) % 7]);
    COMMIT;
    IF i % 5 = 0 THEN
      DELETE FROM lay WHERE id = (SELECT max(id) FROM lay WHERE k2 = i % 3);
      COMMIT;
    END IF;
  END LOOP;
END $$;
CALL layouts(60);
SELECT chk_all() AS "row layouts";
SELECT counters.flush() >= 0 AS flushed;
CALL layouts(30);
SELECT chk_all() AS "row layouts after a flush";
-- a row with a long numeric moved to a key whose stored sum is short
INSERT INTO lay (k1, k2, v, big, n) VALUES ('x', 100, 1, 1, 1.5);
UPDATE lay SET k2 = 100 WHERE id = (SELECT min(id) FROM lay WHERE n > 10::numeric ^ 4000);
SELECT chk_all() AS "a long numeric added at commit";
SELECT count(*) = 8 AS every_text_key FROM c_lay_txt;
SELECT bool_and(k1 IS NULL OR length(k1) = ANY (ARRAY[0, 1, 126, 127, 300, 2400])) AS keys_intact FROM c_lay_txt;
SELECT count(counters.drop_counter(c)) AS dropped
  FROM unnest(ARRAY['c_lay_txt', 'c_lay_txt_buf', 'c_lay_two', 'c_lay_num', 'c_lay_num_buf']::regclass[]) c;
DELETE FROM expect WHERE NOT EXISTS (SELECT FROM pg_class WHERE oid = counter);

-- ---------------------------------------------------------------------
-- clean up
-- ---------------------------------------------------------------------
SELECT counters.drop_counter('c_imm');
SELECT counters.drop_counter('c_buf');
SELECT n_defs() = :defs_before AS defs_back;
SET client_min_messages = warning;
DROP SCHEMA regress_remembered CASCADE;
