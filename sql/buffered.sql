--
-- buffered: counters in buffered mode.  Maintenance only records deltas
-- in the counter's deltas table (a new row per touched key, or a new
-- version of the row the backend recorded that key in last); reading the
-- counter adds storage and deltas, so it is exact at every moment, the
-- reader's own uncommitted changes included; counters.flush() folds
-- committed deltas into the storage.  Every kind of
-- write keeps the counters equal to their queries both before and after a
-- flush; rollbacks and savepoints leave no delta behind; groups leave the
-- view at once and the storage at the flush; set_mode switches either way
-- without losing a delta; rebuild, drop_counter, the privileges model and
-- the errors of the core hold in buffered mode.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
DROP ROLE IF EXISTS regress_buf_owner;
DROP ROLE IF EXISTS regress_buf_app;
RESET client_min_messages;
-- what follows counts pending deltas: it expects no background worker
-- folding them meanwhile (scripts/test's cluster has no
-- shared_preload_libraries; t/020_worker.pl tests the worker)
SELECT count(*) AS flush_launchers FROM pg_stat_activity WHERE backend_type = 'counters flush launcher';
CREATE SCHEMA regress_buf;
SET search_path = regress_buf, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
-- try_sql() shows an error's hint but not its detail; chk_all() says just 'ok'
\set try_sql_shows hint
\set chk_all_lists off
\i sql/include/helpers.sql
\set ECHO all
-- rows_in(relation): how many rows a table holds
CREATE FUNCTION rows_in(r regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', r) INTO n;
  RETURN n;
END $$;
-- pending(): recorded deltas not yet folded, over every registered counter
CREATE FUNCTION pending() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(rows_in(deltas_of(counter))), 0)::bigint FROM expect
$$;
-- step(): the check after every write: every counter exact with its deltas
-- pending, then a flush of each registered counter (did it fold anything?),
-- no delta left, and every counter exact again from its storage alone.
CREATE FUNCTION step() RETURNS TABLE (before_flush text, pending_before boolean,
                                      folded boolean, pending_after bigint, after_flush text)
LANGUAGE plpgsql AS $$
DECLARE
  f bigint;
BEGIN
  before_flush := chk_all();
  pending_before := pending() > 0;
  SELECT coalesce(sum(counters.flush(counter)), 0) INTO f FROM expect;
  folded := f > 0;
  pending_after := pending();
  after_flush := chk_all();
  RETURN NEXT;
END $$;

-- ---------------------------------------------------------------------
-- creating buffered counters: a keyed one, a multi-column key with sums,
-- a global counter (no GROUP BY) and an expression key, on rows already
-- there; with the mode as third argument or by name
-- ---------------------------------------------------------------------
CREATE TABLE item (
  id int PRIMARY KEY,
  shop int,
  cat text,
  qty int,
  price numeric,
  hidden boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL
);
INSERT INTO item
SELECT g, g % 4, CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || g % 3 END,
       CASE WHEN g % 7 = 0 THEN NULL ELSE g END, g / 4.0, g % 6 = 0,
       timestamp '2026-03-01' + make_interval(hours => g * 5)
  FROM generate_series(1, 40) g;

INSERT INTO expect VALUES
  (counters.create_counter('shop_n',
     $$SELECT shop, count(*) AS n FROM item WHERE NOT hidden GROUP BY shop$$, 'buffered'),
   $$SELECT shop, count(*) AS n FROM item WHERE NOT hidden GROUP BY shop$$),
  (counters.create_counter('shop_cat',
     $$SELECT shop, cat, count(*) AS n, sum(qty) AS qty, sum(price) AS price, count(qty) AS with_qty FROM item GROUP BY shop, cat$$,
     mode => 'buffered'),
   $$SELECT shop, cat, count(*) AS n, sum(qty) AS qty, sum(price) AS price, count(qty) AS with_qty FROM item GROUP BY shop, cat$$),
  (counters.create_counter('item_total',
     $$SELECT count(*) AS n, sum(qty) AS qty, sum(price) AS price FROM item$$, mode => 'buffered'),
   $$SELECT count(*) AS n, sum(qty) AS qty, sum(price) AS price FROM item$$),
  (counters.create_counter('per_day',
     $$SELECT date_trunc('day', created_at) AS day, count(*) AS n, sum(qty) AS qty FROM item WHERE NOT hidden GROUP BY 1$$,
     'buffered'),
   $$SELECT date_trunc('day', created_at) AS day, count(*) AS n, sum(qty) AS qty FROM item WHERE NOT hidden GROUP BY 1$$);

-- counters.counters shows the mode; the four relations of each counter
SELECT counter, source, mode FROM counters.counters WHERE counter IN (SELECT counter FROM expect) ORDER BY 1::text;
SELECT d.counter,
       regexp_replace(d.storage::text, '[0-9]+', 'N') AS storage,
       regexp_replace(d.definition::text, '[0-9]+', 'N') AS definition,
       regexp_replace(d.deltas::text, '[0-9]+', 'N') AS deltas,
       (SELECT relkind FROM pg_class WHERE oid = d.deltas) AS deltas_kind
  FROM counters.counter_def d JOIN expect USING (counter) ORDER BY 1::text;
-- filled from the rows already there: the storage holds them, no delta yet
SELECT pending() AS pending_after_create;
SELECT * FROM step();
SELECT * FROM item_total;
SELECT * FROM shop_n ORDER BY shop;

-- ---------------------------------------------------------------------
-- every kind of write, each checked before and after a flush
-- ---------------------------------------------------------------------
-- multi-row INSERT, over new and existing keys, NULL keys and NULL values
INSERT INTO item VALUES
  (41, 1, 'c1', 5, 1.25, false, '2026-03-02 10:00'),
  (42, 9, 'new', NULL, NULL, false, '2026-04-01 00:00'),
  (43, NULL, NULL, 7, 0.5, true, '2026-03-02 11:00'),
  (44, NULL, NULL, NULL, NULL, false, '2026-04-02 00:00');
SELECT pending() > 0 AS recorded;
SELECT * FROM step();

-- UPDATE by a condition: rows move between keys (every key column and the
-- expression key), summed values change to and from NULL
UPDATE item SET shop = shop + 1, cat = coalesce(cat, 'c0') || 'x',
                created_at = created_at + interval '1 day'
 WHERE id % 3 = 0;
UPDATE item SET qty = CASE WHEN qty IS NULL THEN id ELSE NULL END,
                price = price * 2
 WHERE id BETWEEN 10 AND 20;
SELECT * FROM step();

-- UPDATE toggling the filter: rows leave and enter shop_n and per_day
UPDATE item SET hidden = NOT hidden WHERE id % 4 = 1;
SELECT * FROM step();

-- an UPDATE that changes nothing counted records nothing
UPDATE item SET hidden = hidden WHERE id < 10;
SELECT pending() AS recorded_by_no_op_update;
SELECT * FROM step();

-- DELETE by a condition
DELETE FROM item WHERE id % 5 = 2;
SELECT * FROM step();

-- INSERT ... ON CONFLICT DO UPDATE (some rows conflict and move, some are new)
INSERT INTO item VALUES
  (1, 7, 'c7', 70, 7.5, false, '2026-03-09'),
  (3, 7, 'c7', NULL, 1, true, '2026-03-09'),
  (100, 7, 'c7', 100, 10, false, '2026-03-09')
ON CONFLICT (id) DO UPDATE SET shop = excluded.shop, cat = excluded.cat,
                               qty = excluded.qty, hidden = excluded.hidden;
-- ... and DO NOTHING
INSERT INTO item VALUES (100, 8, 'c8', 1, 1, false, '2026-03-09'),
                        (101, 8, 'c8', 1, 1, false, '2026-03-09')
ON CONFLICT DO NOTHING;
SELECT * FROM step();

-- MERGE: update, delete and insert in one statement
MERGE INTO item i
USING (VALUES (4, 'upd'), (5, 'del'), (8, 'upd'), (200, 'ins'), (201, 'ins')) s(id, what)
   ON i.id = s.id
 WHEN MATCHED AND s.what = 'del' THEN DELETE
 WHEN MATCHED THEN UPDATE SET qty = coalesce(i.qty, 0) + 1000, shop = 3
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 2, 'merged', s.id, s.id / 10.0, false, '2026-05-01');
SELECT * FROM step();

-- COPY
COPY item FROM STDIN;
300	2	c2	3	0.3	f	2026-03-03 03:00:00
301	2	c2	\N	\N	t	2026-03-03 04:00:00
302	\N	\N	4	0.4	f	2026-06-01 00:00:00
\.
SELECT * FROM step();

-- a writable CTE that deletes and re-inserts moved rows
WITH moved AS (DELETE FROM item WHERE shop = 2 RETURNING *)
INSERT INTO item SELECT id, 12, cat, qty, price, hidden, created_at FROM moved;
SELECT * FROM step();

-- several statements in one transaction: one delta row per touched key
BEGIN;
INSERT INTO item VALUES (400, 1, 'c1', 1, 1, false, '2026-03-05');
INSERT INTO item VALUES (401, 1, 'c1', 2, 2, false, '2026-03-05');
UPDATE item SET qty = qty + 1 WHERE id IN (400, 401);
COMMIT;
SELECT rows_in(deltas_of('item_total')) AS item_total_delta_rows,
       rows_in(deltas_of('shop_n')) AS shop_n_delta_rows;
SELECT * FROM step();

-- TRUNCATE with deltas pending, in a transaction that wrote before it
INSERT INTO item VALUES (500, 5, 'c5', 5, 5, false, '2026-03-05');
BEGIN;
INSERT INTO item VALUES (501, 5, 'c5', 5, 5, false, '2026-03-05');
TRUNCATE item;
INSERT INTO item VALUES (502, 6, 'c6', 6, 6, false, '2026-03-06'),
                        (503, 6, NULL, NULL, NULL, true, '2026-03-06');
SELECT chk_all() AS in_transaction_after_truncate;
COMMIT;
SELECT * FROM step();
-- TRUNCATE to empty: the global counter keeps its one row (count 0, sums NULL)
TRUNCATE item;
SELECT * FROM step();
SELECT * FROM item_total;
SELECT count(*) AS keyed_rows FROM shop_cat;

-- refill for what follows
INSERT INTO item
SELECT g, g % 4, 'c' || g % 3, g, g / 4.0, g % 6 = 0,
       timestamp '2026-03-01' + make_interval(hours => g * 5)
  FROM generate_series(1, 40) g;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- reads inside a transaction see its own writes; rollbacks leave nothing
-- ---------------------------------------------------------------------
SELECT pending() AS pending_at_start;
BEGIN;
INSERT INTO item VALUES (600, 60, 'x', 6, 6, false, '2026-07-01');
UPDATE item SET shop = 60 WHERE id BETWEEN 1 AND 3;
SELECT n AS shop60_own_writes FROM shop_n WHERE shop = 60;
SELECT n = (SELECT count(*) FROM item) AS total_own_writes FROM item_total;
SELECT chk_all() AS read_your_writes;
SELECT pending() > 0 AS recorded_before_read;
DELETE FROM item WHERE id = 600;
SELECT n AS shop60_after_delete FROM shop_n WHERE shop = 60;
SELECT chk_all() AS read_your_writes_again;
ROLLBACK;
SELECT pending() AS pending_after_rollback;
SELECT count(*) AS shop60_rows FROM shop_n WHERE shop = 60;
SELECT * FROM step();

-- ROLLBACK TO SAVEPOINT: writes read inside the savepoint, then undone
BEGIN;
INSERT INTO item VALUES (700, 70, 'x', 7, 7, false, '2026-07-01');
SELECT n AS shop70_before_savepoint FROM shop_n WHERE shop = 70;
SELECT pending() AS pending_before_savepoint \gset
SAVEPOINT s1;
INSERT INTO item VALUES (701, 71, 'y', 7, 7, false, '2026-07-02');
UPDATE item SET shop = 71 WHERE id = 700;
SELECT shop, n FROM shop_n WHERE shop IN (70, 71) ORDER BY shop;
SELECT chk_all() AS inside_savepoint;
SELECT pending() > :pending_before_savepoint AS recorded_inside_savepoint;
ROLLBACK TO SAVEPOINT s1;
SELECT pending() = :pending_before_savepoint AS savepoint_deltas_gone;
SELECT shop, n FROM shop_n WHERE shop IN (70, 71) ORDER BY shop;
SELECT chk_all() AS after_rollback_to_savepoint;
-- a savepoint rolled back without a read inside it
SAVEPOINT s2;
DELETE FROM item WHERE id <= 20;
ROLLBACK TO SAVEPOINT s2;
-- a released savepoint keeps its writes
SAVEPOINT s3;
INSERT INTO item VALUES (702, 70, 'z', 1, 1, false, '2026-07-03');
RELEASE SAVEPOINT s3;
SELECT chk_all() AS before_commit;
COMMIT;
SELECT shop, n FROM shop_n WHERE shop IN (70, 71) ORDER BY shop;
SELECT * FROM step();

-- a whole transaction of writes and reads rolled back, with nothing pending
-- before it: not one delta row is left
SELECT pending() AS pending_at_start;
BEGIN;
INSERT INTO item SELECT g, 80, 'r', g, g, false, '2026-08-01' FROM generate_series(800, 850) g;
SELECT n AS shop80 FROM shop_n WHERE shop = 80;
SAVEPOINT s;
UPDATE item SET hidden = true WHERE shop = 80;
SELECT count(*) AS shop80_rows FROM shop_n WHERE shop = 80;
RELEASE SAVEPOINT s;
ROLLBACK;
SELECT pending() AS pending_after_rollback;
SELECT * FROM step();

-- an exception block rolls back its deltas too
DO $$
BEGIN
  INSERT INTO item VALUES (900, 90, 'e', 9, 9, false, '2026-09-01');
  BEGIN
    INSERT INTO item VALUES (901, 91, 'e', 9, 9, false, '2026-09-01');
    PERFORM * FROM shop_n;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
END $$;
SELECT shop, n FROM shop_n WHERE shop IN (90, 91) ORDER BY shop;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- flush: return values, flush of one counter, of all, with nothing to do
-- ---------------------------------------------------------------------
SELECT counters.flush() = 0 AS nothing_to_flush;
SELECT counters.flush('shop_n') = 0 AS nothing_to_flush_one;
INSERT INTO item VALUES (1000, 1, 'f', 1, 1, false, '2026-03-01'),
                        (1001, 2, 'f', 1, 1, false, '2026-03-01');
-- one counter only: the others keep their deltas
SELECT counters.flush('shop_n') > 0 AS folded_shop_n;
SELECT rows_in(deltas_of('shop_n')) AS shop_n_pending,
       rows_in(deltas_of('item_total')) > 0 AS item_total_pending;
SELECT chk_all() AS after_flush_of_one;
-- all counters (NULL): the others are folded, nothing is left
SELECT counters.flush() > 0 AS folded_all;
SELECT pending() AS pending_after_flush_all;
SELECT chk_all() AS after_flush_of_all;
-- flush inside a transaction with its own writes pending folds them too
BEGIN;
INSERT INTO item VALUES (1002, 3, 'f', 1, 1, false, '2026-03-01');
SELECT counters.flush() > 0 AS folded_own_writes;
SELECT pending() AS pending_in_transaction;
SELECT chk_all() AS in_transaction_after_flush;
ROLLBACK;
-- ... and a rollback after that flush undoes both the writes and the fold
SELECT pending() AS pending_after_rollback;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- groups whose count reaches zero: gone from the view at once, from the
-- storage at the flush
-- ---------------------------------------------------------------------
INSERT INTO item VALUES (1100, 110, 'g', 1, 1, false, '2026-10-01'),
                        (1101, 110, 'g', 2, 2, false, '2026-10-01');
SELECT counters.flush() > 0 AS folded;
SELECT n AS shop110 FROM shop_n WHERE shop = 110;
CREATE FUNCTION stored_shop(s int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s WHERE shop = $1', storage_of('shop_n')) INTO n USING s;
  RETURN n;
END $$;
SELECT stored_shop(110) AS stored_rows;
DELETE FROM item WHERE shop = 110;
SELECT count(*) AS view_rows_after_delete FROM shop_n WHERE shop = 110;
SELECT count(*) AS shop_cat_rows_after_delete FROM shop_cat WHERE shop = 110;
SELECT count(*) AS day_rows_after_delete FROM per_day WHERE day = '2026-10-01';
SELECT stored_shop(110) AS stored_rows_before_flush;
SELECT chk_all() AS before_flush;
SELECT counters.flush() > 0 AS folded;
SELECT stored_shop(110) AS stored_rows_after_flush;
SELECT * FROM step();
-- a group that reaches zero and comes back before the flush
INSERT INTO item VALUES (1102, 111, 'g', 1, 1, false, '2026-10-02');
SELECT counters.flush() > 0 AS folded;
DELETE FROM item WHERE id = 1102;
INSERT INTO item VALUES (1103, 111, 'g', 5, 5, false, '2026-10-02');
SELECT n AS shop111 FROM shop_n WHERE shop = 111;
SELECT * FROM step();
SELECT stored_shop(111) AS stored_rows;

-- ---------------------------------------------------------------------
-- set_mode both ways, with deltas pending: nothing lost
-- ---------------------------------------------------------------------
INSERT INTO item VALUES (1200, 120, 'm', 1, 1, false, '2026-11-01');
UPDATE item SET qty = qty + 1 WHERE id < 10;
SELECT rows_in(deltas_of('shop_cat')) > 0 AS shop_cat_pending;
SELECT counters.set_mode('shop_cat', 'immediate');
SELECT mode FROM counters.counters WHERE counter = 'shop_cat'::regclass;
SELECT rows_in(deltas_of('shop_cat')) AS shop_cat_pending_after_switch;
SELECT chk_all() AS after_switch_to_immediate;
-- immediate mode records no delta: the storage moves at once
INSERT INTO item VALUES (1201, 120, 'm', 1, 1, false, '2026-11-01');
DELETE FROM item WHERE id = 1;
SELECT rows_in(deltas_of('shop_cat')) AS shop_cat_pending_in_immediate;
SELECT chk_all() AS immediate_writes;
-- the same mode again is a no-op
SELECT counters.set_mode('shop_cat', 'immediate');
SELECT chk_all() AS same_mode_again;
-- back to buffered: deltas recorded again
SELECT counters.set_mode('shop_cat', 'buffered');
SELECT mode FROM counters.counters WHERE counter = 'shop_cat'::regclass;
INSERT INTO item VALUES (1202, 120, 'm', 1, 1, false, '2026-11-01');
SELECT rows_in(deltas_of('shop_cat')) > 0 AS shop_cat_pending_again;
SELECT * FROM step();
-- switching inside a transaction that wrote before and after the switch,
-- read in between, with deltas of other transactions pending
INSERT INTO item VALUES (1203, 121, 'm', 1, 1, false, '2026-11-02');
BEGIN;
INSERT INTO item VALUES (1204, 121, 'm', 1, 1, false, '2026-11-02');
SELECT n AS shop121 FROM shop_n WHERE shop = 121;
SELECT counters.set_mode('shop_n', 'immediate');
INSERT INTO item VALUES (1205, 121, 'm', 1, 1, false, '2026-11-02');
SELECT n AS shop121 FROM shop_n WHERE shop = 121;
SELECT chk_all() AS in_transaction_after_switch;
SELECT counters.set_mode('shop_n', 'buffered');
UPDATE item SET shop = 122 WHERE id = 1203;
SELECT chk_all() AS in_transaction_after_switch_back;
COMMIT;
SELECT * FROM step();
-- a switch rolled back: mode and counts as before
INSERT INTO item VALUES (1206, 121, 'm', 1, 1, false, '2026-11-02');
BEGIN;
SELECT counters.set_mode('per_day', 'immediate');
INSERT INTO item VALUES (1207, 121, 'm', 1, 1, false, '2026-11-03');
ROLLBACK;
SELECT mode FROM counters.counters WHERE counter = 'per_day'::regclass;
SELECT rows_in(deltas_of('per_day')) > 0 AS per_day_still_pending;
SELECT * FROM step();
-- an immediate counter created as such, switched to buffered with its own
-- pending transaction writes
INSERT INTO expect VALUES
  (counters.create_counter('cat_n', $$SELECT cat, count(*) AS n, sum(price) AS price FROM item GROUP BY cat$$),
   $$SELECT cat, count(*) AS n, sum(price) AS price FROM item GROUP BY cat$$);
BEGIN;
UPDATE item SET cat = 'moved' WHERE id BETWEEN 5 AND 9;
SELECT counters.set_mode('cat_n', 'buffered');
UPDATE item SET cat = 'moved again' WHERE id BETWEEN 7 AND 12;
COMMIT;
SELECT mode FROM counters.counters WHERE counter = 'cat_n'::regclass;
SELECT rows_in(deltas_of('cat_n')) > 0 AS cat_n_pending;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- verify() and rebuild() in buffered mode
-- ---------------------------------------------------------------------
-- a counter broken behind its back (maintenance disabled), with deltas
-- pending: verify() reports exactly the drifted keys, rebuild() repairs it
INSERT INTO item VALUES (1300, 130, 'v', 1, 1, false, '2026-12-01');
ALTER TABLE item DISABLE TRIGGER counters_insert;
INSERT INTO item VALUES (1301, 131, 'v', 1, 1, false, '2026-12-01'),
                        (1302, 130, 'v', 1, 1, false, '2026-12-01');
ALTER TABLE item ENABLE TRIGGER counters_insert;
SELECT * FROM counters.verify('shop_n') ORDER BY key::text;
SELECT * FROM counters.verify('item_total');
SELECT rows_in(deltas_of('shop_n')) > 0 AS shop_n_pending;
SELECT counters.rebuild('shop_n') AS rebuilt_rows;
SELECT counters.rebuild('item_total') AS rebuilt_rows;
SELECT counters.rebuild('shop_cat') > 0 AS rebuilt_shop_cat;
SELECT counters.rebuild('per_day') > 0 AS rebuilt_per_day;
SELECT counters.rebuild('cat_n') > 0 AS rebuilt_cat_n;
SELECT chk_all() AS after_rebuild;
-- rebuild of an exact counter with deltas pending changes nothing visible
INSERT INTO item VALUES (1303, 130, 'v', 1, 1, false, '2026-12-01');
SELECT counters.rebuild('shop_n') >= 0 AS rebuilt;
SELECT chk_all() AS after_rebuild_with_pending;
SELECT counters.rebuild('shop_n') AS rebuilt_again;
SELECT mode FROM counters.counters WHERE counter = 'shop_n'::regclass;
SELECT * FROM step();
-- writes after a rebuild are still recorded
INSERT INTO item VALUES (1304, 130, 'v', 1, 1, false, '2026-12-01');
SELECT rows_in(deltas_of('shop_n')) > 0 AS shop_n_pending;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- writes refused on the counter, its storage and its deltas table
-- ---------------------------------------------------------------------
SELECT try_sql($$INSERT INTO shop_n VALUES (1, 1)$$);
SELECT try_sql($$UPDATE item_total SET n = 0$$);
SELECT try_sql($$DELETE FROM shop_cat$$);
SELECT try_sql(format('INSERT INTO %s SELECT * FROM %s LIMIT 1', deltas_of('shop_n'), deltas_of('shop_n')));
SELECT try_sql(format('INSERT INTO %s (shop, n, _counters_rows) VALUES (1, 100, 100)', deltas_of('shop_n')));
SELECT try_sql(format('DELETE FROM %s', deltas_of('shop_n')));
SELECT try_sql(format('UPDATE %s SET n = 0', deltas_of('shop_n')));
SELECT try_sql(format('TRUNCATE %s', deltas_of('shop_n')));
SELECT try_sql(format('UPDATE %s SET n = 0', storage_of('shop_n')));
SELECT chk_all() AS after_refused_writes;

-- ---------------------------------------------------------------------
-- drop_counter() and DROP VIEW in buffered mode, with deltas pending
-- ---------------------------------------------------------------------
INSERT INTO item VALUES (1400, 140, 'd', 1, 1, false, '2026-12-02');
SELECT storage_of('cat_n') AS cat_storage, deltas_of('cat_n') AS cat_deltas,
       (SELECT definition FROM counters.counter_def WHERE counter = 'cat_n'::regclass) AS cat_def \gset
SELECT rows_in(:'cat_deltas') > 0 AS cat_n_pending;
DELETE FROM expect WHERE counter = 'cat_n'::regclass;
SELECT counters.drop_counter('cat_n');
SELECT to_regclass('cat_n') AS counter, to_regclass(:'cat_storage') AS storage,
       to_regclass(:'cat_deltas') AS deltas, to_regclass(:'cat_def') AS definition;
SELECT count(*) AS cat_n_defs FROM counters.counter_def WHERE query LIKE '%GROUP BY cat$$%';
-- DROP VIEW of a buffered counter removes its four relations too
SELECT storage_of('per_day') AS day_storage, deltas_of('per_day') AS day_deltas \gset
DELETE FROM expect WHERE counter = 'per_day'::regclass;
DROP VIEW per_day;
SELECT to_regclass('per_day') AS counter, to_regclass(:'day_storage') AS storage,
       to_regclass(:'day_deltas') AS deltas;
-- a buffered counter created and dropped inside a transaction that writes
-- and reads before, between and after
BEGIN;
INSERT INTO item VALUES (1402, 141, 'd', 1, 1, false, '2026-12-02');
SELECT counters.create_counter('tmp_c', $$SELECT shop, count(*) AS n FROM item GROUP BY shop$$, 'buffered') IS NOT NULL AS created;
INSERT INTO item VALUES (1403, 141, 'd', 1, 1, false, '2026-12-02');
SELECT n AS tmp_shop141 FROM tmp_c WHERE shop = 141;
SELECT chk('tmp_c', $$SELECT shop, count(*) AS n FROM item GROUP BY shop$$) AS tmp_c_in_transaction;
UPDATE item SET shop = 142 WHERE id = 1402;
SELECT counters.drop_counter('tmp_c');
DELETE FROM item WHERE id = 1403;
SELECT chk_all() AS after_drop_in_transaction;
COMMIT;
SELECT to_regclass('tmp_c') AS tmp_c;
-- the others go on
INSERT INTO item VALUES (1401, 140, 'd', 1, 1, false, '2026-12-02');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'item'::regclass AND NOT tgisinternal ORDER BY 1;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- privileges: an application role that may only write the source keeps
-- buffered counters exact, cannot write the counter, its storage or its
-- deltas table, and cannot flush, switch or rebuild others' counters
-- ---------------------------------------------------------------------
CREATE ROLE regress_buf_owner;
CREATE ROLE regress_buf_app;
GRANT USAGE, CREATE ON SCHEMA regress_buf TO regress_buf_owner;
GRANT USAGE ON SCHEMA regress_buf TO regress_buf_app;
GRANT SELECT ON expect TO regress_buf_app;
SET ROLE regress_buf_owner;
CREATE TABLE acct (id int PRIMARY KEY, org int, amount bigint);
INSERT INTO acct SELECT g, g % 3, g * 10 FROM generate_series(1, 12) g;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON acct TO regress_buf_app;
SELECT counters.create_counter('acct_org', $$SELECT org, count(*) AS n, sum(amount) AS amount FROM acct GROUP BY org$$, 'buffered');
SELECT counters.create_counter('acct_total', $$SELECT count(*) AS n, sum(amount) AS amount FROM acct$$, 'buffered');
GRANT SELECT ON acct_total TO regress_buf_app;
RESET ROLE;
INSERT INTO expect VALUES
  ('acct_org', $$SELECT org, count(*) AS n, sum(amount) AS amount FROM acct GROUP BY org$$),
  ('acct_total', $$SELECT count(*) AS n, sum(amount) AS amount FROM acct$$);
SELECT chk('acct_org', $$SELECT org, count(*) AS n, sum(amount) AS amount FROM acct GROUP BY org$$);
SELECT chk('acct_total', $$SELECT count(*) AS n, sum(amount) AS amount FROM acct$$);

-- the application writes the source in every way; its deltas are recorded
-- although it has no right on the deltas table
SET ROLE regress_buf_app;
INSERT INTO acct VALUES (13, 1, 130), (14, 5, 140);
UPDATE acct SET org = org + 1 WHERE id % 2 = 0;
DELETE FROM acct WHERE id = 3;
INSERT INTO acct VALUES (1, 0, 0) ON CONFLICT (id) DO UPDATE SET amount = acct.amount + 1;
MERGE INTO acct a USING (VALUES (2), (50)) s(id) ON a.id = s.id
 WHEN MATCHED THEN UPDATE SET amount = NULL
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 7, 7);
COPY acct FROM STDIN;
60	6	600
\.
-- reads the granted counter, own uncommitted writes included
BEGIN;
INSERT INTO acct VALUES (70, 7, 70);
SELECT n = (SELECT count(*) FROM acct) AS app_reads_own_writes FROM acct_total;
SAVEPOINT s;
DELETE FROM acct WHERE id = 70;
SELECT n = (SELECT count(*) FROM acct) AS app_reads_own_delete FROM acct_total;
ROLLBACK TO SAVEPOINT s;
COMMIT;
RESET ROLE;
SELECT rows_in(deltas_of('acct_org')) > 0 AS acct_org_pending;
SELECT chk('acct_org', $$SELECT org, count(*) AS n, sum(amount) AS amount FROM acct GROUP BY org$$);
SELECT chk('acct_total', $$SELECT count(*) AS n, sum(amount) AS amount FROM acct$$);
SELECT pg_get_userbyid(relowner) AS deltas_owner FROM pg_class WHERE oid = deltas_of('acct_org');

-- what the application may not do
SET ROLE regress_buf_app;
SELECT try_sql('SELECT * FROM acct_org');
SELECT try_sql($$INSERT INTO acct_total VALUES (1, 1)$$);
SELECT try_sql(format('SELECT * FROM %s', deltas_of('acct_org')));
SELECT try_sql(format('INSERT INTO %s (org, n, amount, _counters_rows) VALUES (1, 1000, 0, 1000)', deltas_of('acct_org')));
SELECT try_sql(format('DELETE FROM %s', deltas_of('acct_total')));
SELECT try_sql(format('TRUNCATE %s', deltas_of('acct_total')));
SELECT try_sql(format('UPDATE %s SET n = 0', storage_of('acct_total')));
SELECT try_sql($$SELECT counters.flush('acct_org')$$);
SELECT try_sql($$SELECT counters.flush('acct_total')$$);
SELECT try_sql($$SELECT counters.set_mode('acct_org', 'immediate')$$);
SELECT try_sql($$SELECT counters.rebuild('acct_org')$$);
SELECT try_sql($$SELECT counters.drop_counter('acct_org')$$);
-- flush() of all counters folds only the caller's own: none here
SELECT counters.flush() AS app_flush_all;
RESET ROLE;
SELECT rows_in(deltas_of('acct_org')) > 0 AS acct_org_still_pending;
SELECT mode FROM counters.counters WHERE counter = 'acct_org'::regclass;
SELECT chk('acct_org', $$SELECT org, count(*) AS n, sum(amount) AS amount FROM acct GROUP BY org$$);

-- the owner flushes and switches its own counters (and only those)
INSERT INTO item VALUES (1500, 150, 'o', 1, 1, false, '2026-12-03');
SET ROLE regress_buf_owner;
SELECT counters.flush('acct_org') > 0 AS owner_flushed_one;
SELECT counters.flush() > 0 AS owner_flushed_all;
SELECT counters.set_mode('acct_org', 'immediate');
SELECT counters.set_mode('acct_org', 'buffered');
RESET ROLE;
SELECT rows_in(deltas_of('acct_org')) AS acct_org_pending,
       rows_in(deltas_of('acct_total')) AS acct_total_pending;
-- the owner's flush() left the superuser's counters alone
SELECT rows_in(deltas_of('shop_n')) > 0 AS shop_n_not_flushed_by_owner;
-- the application truncates
SET ROLE regress_buf_app;
INSERT INTO acct VALUES (80, 8, 80);
TRUNCATE acct;
INSERT INTO acct VALUES (81, 8, 81);
RESET ROLE;
SELECT * FROM step();

-- ---------------------------------------------------------------------
-- a backend records a key in the row it recorded that key in last (a new
-- version of it), while that row is committed and not folded: five
-- transactions on one key leave one delta row.  Rollbacks, savepoints,
-- two records in one transaction, flushes, a VACUUM that truncates the
-- deltas table and more keys than cache slots keep every counter exact.
-- ---------------------------------------------------------------------
CREATE TABLE hit (id serial PRIMARY KEY, page int, label text, w numeric);
INSERT INTO expect VALUES
  (counters.create_counter('hit_page',
     $$SELECT page, count(*) AS n, sum(w) AS w FROM hit GROUP BY page$$, 'buffered'),
   $$SELECT page, count(*) AS n, sum(w) AS w FROM hit GROUP BY page$$),
  (counters.create_counter('hit_label',
     $$SELECT page, label, count(*) AS n FROM hit GROUP BY page, label$$, 'buffered'),
   $$SELECT page, label, count(*) AS n FROM hit GROUP BY page, label$$),
  (counters.create_counter('hit_total',
     $$SELECT count(*) AS n, sum(w) AS w FROM hit$$, 'buffered'),
   $$SELECT count(*) AS n, sum(w) AS w FROM hit$$);
INSERT INTO hit (page, label, w) VALUES (1, 'a', 1.5);
INSERT INTO hit (page, label, w) VALUES (1, 'a', 2);
INSERT INTO hit (page, label, w) VALUES (1, 'a', -0.25);
INSERT INTO hit (page, label, w) VALUES (1, NULL, 1);
INSERT INTO hit (page, label, w) VALUES (1, NULL, 1);
SELECT rows_in(deltas_of('hit_page')) AS page_rows,
       rows_in(deltas_of('hit_label')) AS label_rows,
       rows_in(deltas_of('hit_total')) AS total_rows;
SELECT n, w FROM hit_page;
SELECT chk_all() AS five_transactions;
-- a rolled back transaction that recorded (its read applied the deltas)
BEGIN;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 100);
SELECT n, w FROM hit_page;
ROLLBACK;
SELECT n, w FROM hit_page;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 1);
SELECT chk_all() AS after_rollback;
-- a savepoint rolled back after a read inside it recorded both parts
BEGIN;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 3);
SAVEPOINT s;
INSERT INTO hit (page, label, w) VALUES (1, 'b', 4);
SELECT page, label, n FROM hit_label ORDER BY label;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT page, label, n FROM hit_label ORDER BY label;
SELECT chk_all() AS after_savepoint;
-- two records of one key in one transaction (a read in between)
BEGIN;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 5);
SELECT n FROM hit_total;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 6);
COMMIT;
SELECT chk_all() AS two_records_in_one_transaction;
-- a flush folds the rows; the next transaction records in a new one
SELECT counters.flush('hit_page') > 0 AS folded;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 7);
INSERT INTO hit (page, label, w) VALUES (1, 'a', 8);
SELECT rows_in(deltas_of('hit_page')) AS page_rows_after_flush;
SELECT chk_all() AS after_flush;
-- VACUUM cuts the folded deltas table to nothing: the row this backend
-- remembers is past its end
SELECT counters.flush('hit_page') > 0 AS folded;
SELECT deltas_of('hit_page') AS hit_page_deltas \gset
VACUUM :hit_page_deltas;
SELECT pg_relation_size(:'hit_page_deltas') AS deltas_bytes_after_vacuum;
INSERT INTO hit (page, label, w) VALUES (1, 'a', 9);
SELECT chk_all() AS after_vacuum;
-- 300 transactions over 100 keys: the backend remembers the row it recorded
-- each key in last, so after a key's first record (page 1's was made above)
-- every later one adds to its row: 99 or 100 new rows, not 300
CREATE PROCEDURE hit_many(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. n LOOP
    INSERT INTO hit (page, label, w) VALUES (i % 100, 'k' || i % 7, i / 3.0);
    COMMIT;
  END LOOP;
END $$;
SELECT rows_in(deltas_of('hit_page')) AS page_rows_before \gset
CALL hit_many(300);
SELECT rows_in(deltas_of('hit_page')) - :page_rows_before BETWEEN 99 AND 100 AS rows_reused;
SELECT * FROM step();
DELETE FROM expect WHERE counter IN ('hit_page'::regclass, 'hit_label'::regclass, 'hit_total'::regclass);
SELECT counters.drop_counter('hit_page');
SELECT counters.drop_counter('hit_label');
SELECT counters.drop_counter('hit_total');

-- ---------------------------------------------------------------------
-- errors
-- ---------------------------------------------------------------------
SELECT try_sql($$SELECT counters.set_mode('shop_n', 'lazy')$$);
SELECT try_sql($$SELECT counters.set_mode('shop_n', 'BUFFERED')$$);
SELECT try_sql($$SELECT counters.set_mode('shop_n', '')$$);
SELECT try_sql($$SELECT counters.set_mode('item', 'buffered')$$);
SELECT try_sql($$SELECT counters.set_mode('expect', 'immediate')$$);
SELECT try_sql(format('SELECT counters.set_mode(%L, %L)', storage_of('shop_n'), 'immediate'));
SELECT try_sql(format('SELECT counters.set_mode(%L, %L)', deltas_of('shop_n'), 'immediate'));
SELECT try_sql($$SELECT counters.flush('item')$$);
SELECT try_sql($$SELECT counters.create_counter('bad_mode', 'SELECT count(*) AS n FROM item', 'lazy')$$);
SELECT counters.set_mode('shop_n', NULL) IS NULL AS strict_null;
SELECT mode FROM counters.counters WHERE counter = 'shop_n'::regclass;
SELECT chk_all() AS after_errors;

-- ---------------------------------------------------------------------
-- clean up
-- ---------------------------------------------------------------------
SELECT counters.drop_counter('shop_n');
SELECT counters.drop_counter('shop_cat');
SELECT counters.drop_counter('item_total');
SET ROLE regress_buf_owner;
SELECT counters.drop_counter('acct_org');
SELECT counters.drop_counter('acct_total');
RESET ROLE;
SELECT count(*) AS counter_triggers_left FROM pg_trigger
 WHERE tgrelid IN ('item'::regclass, 'acct'::regclass) AND NOT tgisinternal;
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SELECT count(*) AS hidden_relations_left FROM pg_class
 WHERE relnamespace = 'regress_buf'::regnamespace AND relname LIKE '\_counters\_%';
SET client_min_messages = warning;
DROP SCHEMA regress_buf CASCADE;
DROP ROLE regress_buf_owner;
DROP ROLE regress_buf_app;
