--
-- transactions: a counter reads exactly its query at every moment of a
-- transaction, whatever the order of writes, reads, savepoints, rollbacks
-- and DDL: reads right after writes, savepoints rolled back with and without
-- reads inside them, exception blocks, statements bigger than work_mem inside
-- savepoints, TRUNCATE between writes, verify() and rebuild() inside a
-- transaction, counters created and dropped while the transaction has
-- uncounted writes, reads through cursors, functions and views.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_tx;
SET search_path = regress_tx, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

CREATE TABLE ev (id int PRIMARY KEY, k int, v int);
SELECT make_counter('ev_k', $$SELECT k, count(*) AS n, sum(v) AS total FROM ev GROUP BY k$$);
SELECT make_counter('ev_total', $$SELECT count(*) AS n, sum(v) AS total FROM ev$$);
INSERT INTO ev SELECT g, g % 5, g FROM generate_series(1, 20) g;
SELECT chk_all() AS "start";

-- writes, then a savepoint rolled back with no read in between
BEGIN;
INSERT INTO ev VALUES (100, 1, 100);
SAVEPOINT s;
INSERT INTO ev VALUES (101, 1, 101);
UPDATE ev SET k = 9 WHERE id < 5;
DELETE FROM ev WHERE id = 10;
ROLLBACK TO SAVEPOINT s;
UPDATE ev SET v = v + 1 WHERE id = 100;
COMMIT;
SELECT chk_all() AS "savepoint rolled back unread";

-- writes before a savepoint, read inside it, then rolled back to it
BEGIN;
INSERT INTO ev VALUES (110, 2, 110);
SAVEPOINT s;
SELECT count(*) > 0 AS read_inside FROM ev_k;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT chk_all() AS "read inside a rolled back savepoint";
BEGIN;
INSERT INTO ev VALUES (111, 2, 111);
SAVEPOINT s;
SELECT count(*) > 0 AS read_inside FROM ev_k;
ROLLBACK TO SAVEPOINT s;
SELECT chk_all() AS "after the rollback, in the transaction";
ROLLBACK;
SELECT chk_all() AS "all rolled back";

-- writes inside a savepoint, read inside a nested one, the nested rolled
-- back, the outer released
BEGIN;
SAVEPOINT a;
INSERT INTO ev VALUES (120, 3, 120);
SAVEPOINT b;
SELECT count(*) > 0 AS read_inside FROM ev_total;
INSERT INTO ev VALUES (121, 3, 121);
ROLLBACK TO SAVEPOINT b;
RELEASE SAVEPOINT a;
SELECT chk_all() AS "nested savepoints, in the transaction";
COMMIT;
SELECT chk_all() AS "nested savepoints";

-- writes in a savepoint, read, released, and the transaction rolled back
BEGIN;
SAVEPOINT a;
DELETE FROM ev WHERE k = 3;
SELECT count(*) >= 0 AS read_inside FROM ev_k;
RELEASE SAVEPOINT a;
ROLLBACK;
SELECT chk_all() AS "released then rolled back";

-- many savepoints, each with a write, every other one rolled back
BEGIN;
SAVEPOINT s1; INSERT INTO ev VALUES (131, 4, 1);
SAVEPOINT s2; INSERT INTO ev VALUES (132, 4, 2);
ROLLBACK TO SAVEPOINT s2;
SAVEPOINT s3; UPDATE ev SET v = v * 10 WHERE id = 131;
SAVEPOINT s4; DELETE FROM ev WHERE id = 131;
ROLLBACK TO SAVEPOINT s4;
RELEASE SAVEPOINT s3;
SAVEPOINT s5; INSERT INTO ev VALUES (135, 4, 5);
RELEASE SAVEPOINT s1;
COMMIT;
SELECT chk_all() AS "many savepoints";

-- exception blocks: writes, reads and a failure inside, writes after
DO $$
DECLARE
  n bigint;
BEGIN
  INSERT INTO ev VALUES (140, 5, 140);
  BEGIN
    INSERT INTO ev VALUES (141, 5, 141);
    SELECT sum(total) INTO n FROM ev_k;
    UPDATE ev SET k = 6 WHERE id = 140;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
  BEGIN
    UPDATE ev SET v = v + 1 WHERE k = 5;
    INSERT INTO ev VALUES (1, 0, 0);             -- duplicate key: fails
  EXCEPTION WHEN unique_violation THEN
    NULL;
  END;
  INSERT INTO ev VALUES (142, 5, 142);
END $$;
SELECT chk_all() AS "exception blocks";

-- a function that writes and reads the counter in a loop
CREATE FUNCTION write_and_read(times int) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  ok boolean := true;
BEGIN
  FOR i IN 1 .. times LOOP
    INSERT INTO ev VALUES (1000 + i, i % 3, i);
    IF (SELECT coalesce(sum(n), 0) FROM ev_k) <> (SELECT count(*) FROM ev) THEN
      ok := false;
    END IF;
    UPDATE ev SET k = k + 1 WHERE id = 1000 + i - 1;
  END LOOP;
  RETURN ok;
END $$;
SELECT write_and_read(50) AS every_read_exact;
SELECT chk_all() AS "writes and reads in a function";

-- reads through a cursor, a view over the counter, COPY and a SQL function
CREATE VIEW ev_k_big AS SELECT k, n FROM ev_k WHERE n > 1;
CREATE FUNCTION ev_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT n FROM ev_total';
BEGIN;
INSERT INTO ev VALUES (200, 7, 200), (201, 7, 201);
DECLARE c CURSOR FOR SELECT n FROM ev_k WHERE k = 7;
FETCH c;
CLOSE c;
INSERT INTO ev VALUES (202, 8, 202), (203, 8, 203);
SELECT n = 2 AS seen_through_view FROM ev_k_big WHERE k = 8;
DELETE FROM ev WHERE id = 203;
SELECT ev_count() = (SELECT count(*) FROM ev) AS seen_through_function;
UPDATE ev SET k = 8 WHERE id = 200;
COPY (SELECT k, n FROM ev_k WHERE k IN (7, 8) ORDER BY k) TO STDOUT;
COMMIT;
SELECT chk_all() AS "reads through other paths";
DROP VIEW ev_k_big;

-- verify() and rebuild() inside a transaction with unread writes
BEGIN;
INSERT INTO ev VALUES (300, 1, 300);
UPDATE ev SET v = v + 1 WHERE k = 2;
SELECT count(*) AS verify_rows FROM counters.verify('ev_k');
DELETE FROM ev WHERE id = 300;
SELECT counters.rebuild('ev_k') AS rows_changed;
INSERT INTO ev VALUES (301, 1, 301);
SELECT counters.rebuild('ev_total') AS rows_changed;
COMMIT;
SELECT chk_all() AS "verify and rebuild in a transaction";

-- TRUNCATE between unread writes
BEGIN;
INSERT INTO ev VALUES (400, 4, 400);
TRUNCATE ev;
INSERT INTO ev VALUES (401, 4, 401), (402, NULL, 402);
UPDATE ev SET v = 0 WHERE id = 402;
COMMIT;
SELECT chk_all() AS "truncate between writes";
BEGIN;
INSERT INTO ev VALUES (403, 4, 403);
SAVEPOINT s;
TRUNCATE ev;
INSERT INTO ev VALUES (404, 5, 404);
ROLLBACK TO SAVEPOINT s;
INSERT INTO ev VALUES (405, 5, 405);
COMMIT;
SELECT chk_all() AS "truncate rolled back between writes";

-- more deltas than work_mem inside a savepoint that is rolled back
SET work_mem = '64kB';
BEGIN;
INSERT INTO ev SELECT g, g, 1 FROM generate_series(10000, 14999) g;
SAVEPOINT s;
INSERT INTO ev SELECT g, g, 1 FROM generate_series(20000, 29999) g;
UPDATE ev SET v = 2 WHERE id BETWEEN 10000 AND 14999;
ROLLBACK TO SAVEPOINT s;
UPDATE ev SET v = 3 WHERE id BETWEEN 10000 AND 10099;
COMMIT;
RESET work_mem;
SELECT chk_all() AS "big savepoint rolled back";
SET work_mem = '64kB';
BEGIN;
SAVEPOINT s;
INSERT INTO ev SELECT g, g, 1 FROM generate_series(30000, 39999) g;
RELEASE SAVEPOINT s;
SAVEPOINT t;
DELETE FROM ev WHERE id BETWEEN 30000 AND 34999;
ROLLBACK TO SAVEPOINT t;
COMMIT;
RESET work_mem;
SELECT chk_all() AS "big savepoint released";
DELETE FROM ev WHERE id >= 10000;
SELECT chk_all() AS "big rows deleted";

-- counters created and dropped while the transaction has unread writes
BEGIN;
INSERT INTO ev VALUES (500, 1, 500);
SELECT make_counter('ev_v', $$SELECT v % 2 AS parity, count(*) AS n FROM ev GROUP BY 1$$);
INSERT INTO ev VALUES (501, 1, 501);
UPDATE ev SET v = v + 1 WHERE id IN (500, 501);
COMMIT;
SELECT chk_all() AS "counter created between writes";
BEGIN;
INSERT INTO ev VALUES (502, 2, 502);
DELETE FROM expect WHERE counter = 'ev_v'::regclass;
SELECT counters.drop_counter('ev_v');
INSERT INTO ev VALUES (503, 2, 503);
COMMIT;
SELECT chk_all() AS "counter dropped between writes";
BEGIN;
INSERT INTO ev VALUES (504, 3, 504);
DELETE FROM expect WHERE counter = 'ev_total'::regclass;
DROP VIEW ev_total CASCADE;
COMMIT;
SELECT chk_all() AS "counter view dropped after writes";
SELECT make_counter('ev_total', $$SELECT count(*) AS n, sum(v) AS total FROM ev$$);

-- the source's DDL between unread writes
BEGIN;
INSERT INTO ev VALUES (600, 6, 600);
ALTER TABLE ev ADD COLUMN note text;
INSERT INTO ev VALUES (601, 6, 601, 'x');
ALTER TABLE ev RENAME COLUMN v TO val;
UPDATE expect SET query = replace(query, 'sum(v)', 'sum(val)');
UPDATE ev SET val = val + 1 WHERE id IN (600, 601);
COMMIT;
SELECT chk_all() AS "DDL between writes";

-- a source dropped with its counters while its writes are unread
CREATE TABLE ev2 (k int);
SELECT make_counter('ev2_k', $$SELECT k, count(*) AS n FROM ev2 GROUP BY k$$);
BEGIN;
INSERT INTO ev2 VALUES (1), (2);
INSERT INTO ev VALUES (700, 7, 700);
DELETE FROM expect WHERE counter = 'ev2_k'::regclass;
SET client_min_messages = warning;
DROP TABLE ev2 CASCADE;
RESET client_min_messages;
COMMIT;
SELECT chk_all() AS "source dropped after writes";

-- clean up
SELECT counters.drop_counter(counter) FROM expect ORDER BY counter::text;
DELETE FROM expect;
SELECT count(*) AS counter_triggers_left FROM pg_trigger WHERE tgrelid = 'ev'::regclass AND NOT tgisinternal;
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_tx CASCADE;
