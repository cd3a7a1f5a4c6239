--
-- schema_changes: a counter through the life of its schema.  Renaming the
-- source table, counted columns, a function used in a key, the counter,
-- the counter's schema, or moving the source or the function to another
-- schema changes nothing: the counter stays exact and maintained.  Adding,
-- dropping or retyping other columns and rewriting the table change
-- nothing.  Dropping a counted column (key, aggregate argument or filter
-- column), changing its type, dropping a function a counter uses or the
-- source is refused with an error that names the counter; CASCADE, where
-- PostgreSQL allows it, takes the counter with all four of its relations,
-- its definition and, with the last counter of the source, the source's
-- triggers.  DROP VIEW of a counter, or any DROP ... CASCADE reaching it,
-- does the same.  DISABLE TRIGGER leaves counters stale: verify() shows
-- it, rebuild() repairs it.  DROP EXTENSION counters CASCADE leaves no
-- trigger, function, relation or definition behind (checked in a
-- transaction that is rolled back, so the extension is intact afterwards).
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_sch;
CREATE SCHEMA regress_sch_c;
SET search_path = regress_sch, regress_sch_c, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
-- try_sql() shows an error's SQLSTATE and message only
\set try_sql_shows none
\i sql/include/helpers.sql
\set ECHO all
-- rename_in_queries(pattern, replacement): follow a rename in the queries
-- of expect (the queries are text; the counters follow by themselves)
CREATE FUNCTION rename_in_queries(pattern text, replacement text) RETURNS void
LANGUAGE sql AS $$
  UPDATE expect SET query = regexp_replace(query, '\m' || pattern || '\M', replacement, 'g')
$$;
-- names(sql, counters): runs sql, which must fail; true when the error's
-- message, detail or hint names every one of the given counter relations
-- (as "view <name>" or "counter <name>", qualified or not)
CREATE FUNCTION names(s text, cs text[]) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  msg text;
  det text;
  hnt text;
  all_text text;
  c text;
BEGIN
  EXECUTE s;
  RAISE EXCEPTION 'statement did not fail: %', s;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  IF msg LIKE 'statement did not fail: %' THEN
    RAISE;
  END IF;
  all_text := msg || E'\n' || coalesce(det, '') || E'\n' || coalesce(hnt, '');
  FOREACH c IN ARRAY cs LOOP
    IF all_text !~ ('(view|counter) ("?[a-z_0-9]+"?\.)?"?' || c || '"?(\M|$)') THEN
      RETURN false;
    END IF;
  END LOOP;
  RETURN true;
END $$;
-- hidden_prefix(counter): its '<schema>.<counter>.'; hidden_left(prefix):
-- how many relations with that prefix exist (its storage, deltas,
-- definition view and their indexes)
CREATE FUNCTION hidden_left(prefix text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_class WHERE starts_with(relname, prefix)
$$;
-- named_after(counter): the three hidden relations of the counter are in
-- the schema counters, named after the counter as it is named now
CREATE FUNCTION named_after(c regclass) RETURNS boolean LANGUAGE sql AS $$
  SELECT count(*) = 3 AND bool_and(r.relnamespace = 'counters'::regnamespace
                                   AND r.relname = n.nspname || '.' || v.relname || x.suffix)
    FROM counters.counter_def d
    JOIN pg_class v ON v.oid = d.counter
    JOIN pg_namespace n ON n.oid = v.relnamespace
    CROSS JOIN LATERAL (VALUES (d.storage, '.data'), (d.deltas, '.deltas'), (d.definition, '.query')) x(rel, suffix)
    JOIN pg_class r ON r.oid = x.rel
   WHERE d.counter = c
$$;

-- ---------------------------------------------------------------------
-- A source, a function used in a key, counters in another schema
-- ---------------------------------------------------------------------
CREATE FUNCTION bucket(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 / 10';
CREATE TABLE orders (id int PRIMARY KEY, cust text, status text, amount int, note text, extra int);
INSERT INTO orders SELECT g, 'cust' || g % 5, (ARRAY['new', 'paid', 'sent'])[g % 3 + 1],
                          nullif(g % 37, 0), 'note ' || g, g
  FROM generate_series(1, 200) g;
SELECT make_counter('regress_sch_c.by_cust',
  $$SELECT cust, status, count(*) AS n, sum(amount) AS total FROM orders GROUP BY cust, status$$);
SELECT make_counter('regress_sch_c.by_bucket',
  $$SELECT bucket(amount) AS b, count(*) AS n FROM orders GROUP BY bucket(amount)$$);
SELECT make_counter('regress_sch_c.big_total',
  $$SELECT count(*) AS n, sum(amount) AS total FROM orders WHERE amount > 10$$);
SELECT make_counter('regress_sch_c.by_status',
  $$SELECT status, count(*) AS n FROM orders GROUP BY status$$, 'buffered');
SELECT chk_all() AS "created";
SELECT counter, named_after(counter) AS hidden_named_after_it FROM expect ORDER BY counter::text;
SELECT n_triggers('orders') AS triggers;

-- ---------------------------------------------------------------------
-- Renames change nothing
-- ---------------------------------------------------------------------
ALTER TABLE orders RENAME TO purchases;
SELECT rename_in_queries('orders', 'purchases');
INSERT INTO purchases VALUES (201, 'cust1', 'new', 20, 'n', 1);
UPDATE purchases SET status = 'paid' WHERE id % 10 = 1;
DELETE FROM purchases WHERE id % 17 = 0;
SELECT chk_all() AS "source table renamed";
ALTER TABLE purchases RENAME COLUMN cust TO customer;
ALTER TABLE purchases RENAME COLUMN amount TO amt;
SELECT rename_in_queries('cust', 'customer');
SELECT rename_in_queries('amount', 'amt');
INSERT INTO purchases (id, customer, status, amt) VALUES (202, 'cust9', 'sent', 33), (203, NULL, NULL, 11);
UPDATE purchases SET amt = amt + 3, customer = 'cust0' WHERE id % 9 = 2;
DELETE FROM purchases WHERE id % 19 = 0;
SELECT chk_all() AS "counted columns renamed";
ALTER FUNCTION bucket(int) RENAME TO bucket10;
SELECT rename_in_queries('bucket', 'bucket10');
INSERT INTO purchases (id, customer, status, amt) VALUES (204, 'cust2', 'new', 99);
UPDATE purchases SET amt = amt * 2 WHERE id % 13 = 4;
SELECT chk_all() AS "function in a key renamed";
-- the counter itself, and the counter's schema
ALTER VIEW by_cust RENAME TO by_customer;
ALTER SCHEMA regress_sch_c RENAME TO regress_sch_counters;
INSERT INTO purchases (id, customer, status, amt) VALUES (205, 'cust3', 'paid', 5);
DELETE FROM purchases WHERE id % 23 = 0;
SELECT chk_all() AS "counter and its schema renamed";
SELECT counter, named_after(counter) AS hidden_named_after_it FROM expect ORDER BY counter::text;
-- the source and the function moved to another schema
CREATE SCHEMA regress_sch_moved;
ALTER TABLE purchases SET SCHEMA regress_sch_moved;
ALTER FUNCTION bucket10(int) SET SCHEMA regress_sch_moved;
SET search_path = regress_sch, regress_sch_counters, regress_sch_moved, public;
INSERT INTO purchases (id, customer, status, amt) VALUES (206, 'cust4', 'sent', 66);
UPDATE purchases SET status = 'sent' WHERE id % 11 = 3;
SELECT chk_all() AS "source and function moved to another schema";
SELECT counter, source, mode FROM counters.counters WHERE counter IN (SELECT counter FROM expect) ORDER BY counter::text;
SELECT n_triggers('purchases') AS triggers;
-- a counter's query is fixed: neither its view nor its definition view can
-- be replaced (refused before anything happens), other views still can
SELECT try_sql('CREATE OR REPLACE VIEW by_customer AS SELECT customer, 0::bigint AS n FROM purchases') AS replace_counter;
SELECT names('CREATE OR REPLACE VIEW by_customer AS SELECT 1 AS x', ARRAY['by_customer']) AS names_counter;
SELECT definition::regclass::text AS def_view FROM counters.counter_def WHERE counter = 'by_customer'::regclass \gset
SELECT try_sql(format('CREATE OR REPLACE VIEW %s AS SELECT 1 AS x', :'def_view')) AS replace_definition;
SELECT names(format('CREATE OR REPLACE VIEW %s AS SELECT 1 AS x', :'def_view'), ARRAY['by_customer']) AS names_counter_of_definition;
SELECT count(*) AS definition_views_unchanged FROM counters.counter_def d
 WHERE d.counter = 'by_customer'::regclass AND pg_get_viewdef(d.definition) ~ 'GROUP BY';
CREATE VIEW regress_sch_plain AS SELECT 1 AS x;
CREATE OR REPLACE VIEW regress_sch_plain AS SELECT 1 AS x, 2 AS y;
SELECT * FROM regress_sch_plain;
DROP VIEW regress_sch_plain;
INSERT INTO purchases (id, customer, status, amt) VALUES (290, 'cust5', 'paid', 7);
SELECT chk_all() AS "after refused view replacements";

-- ---------------------------------------------------------------------
-- Other columns: added, dropped, retyped; table rewrites
-- ---------------------------------------------------------------------
ALTER TABLE purchases ADD COLUMN tag text DEFAULT 'x';
ALTER TABLE purchases ADD COLUMN created timestamptz DEFAULT clock_timestamp();
INSERT INTO purchases (id, customer, status, amt, tag) VALUES (207, 'cust1', 'new', 12, 'y');
UPDATE purchases SET tag = 'z', amt = amt + 1 WHERE id % 7 = 0;
SELECT chk_all() AS "columns added (one with a rewrite)";
ALTER TABLE purchases DROP COLUMN note;
ALTER TABLE purchases ALTER COLUMN extra TYPE bigint;
INSERT INTO purchases (id, customer, status, amt, extra) VALUES (208, 'cust2', 'paid', 14, 5000000000);
UPDATE purchases SET extra = extra + 1, customer = 'cust3' WHERE id % 8 = 0;
DELETE FROM purchases WHERE id % 29 = 0;
SELECT chk_all() AS "column dropped, column retyped";
UPDATE purchases SET status = 'new' WHERE status IS NULL;
ALTER TABLE purchases ALTER COLUMN amt SET DEFAULT 1, ALTER COLUMN status SET NOT NULL,
  ALTER COLUMN customer SET STATISTICS 200;
ALTER TABLE purchases ADD CONSTRAINT amt_small CHECK (amt < 10000);
CREATE INDEX ON purchases (customer);
VACUUM FULL purchases;
CLUSTER purchases USING orders_pkey;
INSERT INTO purchases (id, customer, status) VALUES (209, 'cust4', 'new');
UPDATE purchases SET amt = amt - 1 WHERE id % 6 = 0;
SELECT chk_all() AS "defaults, constraints, indexes, rewrites";
SELECT n_triggers('purchases') AS triggers;
-- the source becomes unlogged and logged again: the storage follows it
-- (an unlogged source is emptied by a crash; its counters must be too)
ALTER TABLE purchases SET UNLOGGED;
SELECT d.counter, s.relpersistence = src.relpersistence AS storage_persistence_follows
  FROM counters.counter_def d JOIN pg_class s ON s.oid = d.storage JOIN pg_class src ON src.oid = d.source
 WHERE d.counter IN (SELECT counter FROM expect) ORDER BY d.counter::text;
INSERT INTO purchases (id, customer, status, amt) VALUES (210, 'cust0', 'new', 3);
SELECT chk_all() AS "source unlogged";
ALTER TABLE purchases SET LOGGED;
SELECT d.counter, s.relpersistence = src.relpersistence AS storage_persistence_follows
  FROM counters.counter_def d JOIN pg_class s ON s.oid = d.storage JOIN pg_class src ON src.oid = d.source
 WHERE d.counter IN (SELECT counter FROM expect) ORDER BY d.counter::text;
DELETE FROM purchases WHERE id = 210;
SELECT chk_all() AS "source logged again";

-- ---------------------------------------------------------------------
-- Dropping or retyping what a counter uses is refused, with an error that
-- names the counter
-- ---------------------------------------------------------------------
SELECT try_sql('ALTER TABLE purchases DROP COLUMN customer');
SELECT names('ALTER TABLE purchases DROP COLUMN customer', '{by_customer}') AS names_the_counter;
SELECT try_sql('ALTER TABLE purchases DROP COLUMN amt');
SELECT names('ALTER TABLE purchases DROP COLUMN amt', '{by_customer,by_bucket,big_total}') AS names_the_counters;
SELECT try_sql('ALTER TABLE purchases DROP COLUMN status');
SELECT names('ALTER TABLE purchases DROP COLUMN status', '{by_customer,by_status}') AS names_the_counters;
SELECT try_sql('ALTER TABLE purchases ALTER COLUMN amt TYPE bigint');
SELECT names('ALTER TABLE purchases ALTER COLUMN amt TYPE bigint', '{by_customer}') AS names_the_counter;
SELECT try_sql('ALTER TABLE purchases ALTER COLUMN customer TYPE varchar(20)');
SELECT names('ALTER TABLE purchases ALTER COLUMN customer TYPE varchar(20)', '{by_customer}') AS names_the_counter;
SELECT try_sql('DROP FUNCTION bucket10(int)');
SELECT names('DROP FUNCTION bucket10(int)', '{by_bucket}') AS names_the_counter;
SELECT try_sql('DROP TABLE purchases');
SELECT names('DROP TABLE purchases', '{by_customer,by_bucket,big_total,by_status}') AS names_the_counters;
SELECT try_sql('DROP SCHEMA regress_sch_moved');
-- a column used only in a counter's filter is used too
CREATE TABLE filtered (id int, k int, flag boolean, w int);
INSERT INTO filtered SELECT g, g % 4, g % 3 = 0, g FROM generate_series(1, 50) g;
SELECT make_counter('flagged', $$SELECT k, count(*) AS n FROM filtered WHERE flag GROUP BY k$$);
SELECT try_sql('ALTER TABLE filtered DROP COLUMN flag');
SELECT names('ALTER TABLE filtered DROP COLUMN flag', '{flagged}') AS names_the_counter;
SELECT try_sql('ALTER TABLE filtered ALTER COLUMN flag TYPE int USING flag::int');
SELECT names('ALTER TABLE filtered ALTER COLUMN flag TYPE int USING flag::int', '{flagged}') AS names_the_counter;
ALTER TABLE filtered DROP COLUMN w;
UPDATE filtered SET flag = NOT flag WHERE id % 5 = 0;
INSERT INTO filtered VALUES (51, 1, true);
UPDATE purchases SET amt = amt + 1 WHERE id % 4 = 0;
SELECT chk_all() AS "after the refused statements";
SELECT n_triggers('purchases') AS purchases_triggers, n_triggers('filtered') AS filtered_triggers;

-- ---------------------------------------------------------------------
-- CASCADE takes the counters with all their relations and definitions;
-- the source keeps its triggers while a counter is left on it
-- ---------------------------------------------------------------------
SELECT n_defs() AS ndefs,
       hidden_prefix('by_customer') AS p_cust, hidden_prefix('by_bucket') AS p_bucket,
       hidden_prefix('big_total') AS p_big, hidden_prefix('by_status') AS p_status \gset
DELETE FROM expect WHERE counter IN ('by_customer'::regclass, 'by_bucket'::regclass, 'big_total'::regclass);
SET client_min_messages = warning;
ALTER TABLE purchases DROP COLUMN amt CASCADE;
RESET client_min_messages;
SELECT to_regclass('by_customer') IS NULL AND to_regclass('by_bucket') IS NULL
         AND to_regclass('big_total') IS NULL AS counters_gone,
       hidden_left(:'p_cust') + hidden_left(:'p_bucket') + hidden_left(:'p_big') AS hidden_relations_left,
       n_defs() = :ndefs - 3 AS definitions_gone,
       to_regclass('by_status') IS NOT NULL AND hidden_left(:'p_status') >= 4 AS other_counter_kept,
       n_triggers('purchases') AS triggers;
INSERT INTO purchases (id, customer, status) VALUES (300, 'c', 'new');
UPDATE purchases SET status = 'paid' WHERE id % 5 = 0;
SELECT chk_all() AS "after DROP COLUMN CASCADE";
-- the last counter of a source dropped by DROP COLUMN ... CASCADE takes
-- the source's triggers with it
CREATE TABLE solo (id int, k int);
INSERT INTO solo SELECT g, g % 4 FROM generate_series(1, 20) g;
SELECT make_counter('solo_k', $$SELECT k, count(*) AS n FROM solo GROUP BY k$$, 'buffered');
INSERT INTO solo VALUES (21, 1);
SELECT n_defs() AS ndefs, hidden_prefix('solo_k') AS p \gset
DELETE FROM expect WHERE counter = 'solo_k'::regclass;
SET client_min_messages = warning;
ALTER TABLE solo DROP COLUMN k CASCADE;
RESET client_min_messages;
SELECT to_regclass('solo_k') IS NULL AS counter_gone, hidden_left(:'p') AS hidden_relations_left,
       n_defs() = :ndefs - 1 AS definition_gone, n_triggers('solo') AS triggers_after;
INSERT INTO solo VALUES (22);
-- DROP FUNCTION ... CASCADE takes the counter using it; it was the only
-- counter of its source: the source's triggers go too
CREATE TABLE readings (id int, val int);
INSERT INTO readings SELECT g, g * 3 FROM generate_series(1, 30) g;
SELECT make_counter('readings_by_bucket', $$SELECT bucket10(val) AS b, count(*) AS n FROM readings GROUP BY bucket10(val)$$);
SELECT n_triggers('readings') AS triggers_before;
SELECT n_defs() AS ndefs, hidden_prefix('readings_by_bucket') AS p \gset
DELETE FROM expect WHERE counter = 'readings_by_bucket'::regclass;
SET client_min_messages = warning;
DROP FUNCTION bucket10(int) CASCADE;
RESET client_min_messages;
SELECT to_regclass('readings_by_bucket') IS NULL AS counter_gone, hidden_left(:'p') AS hidden_relations_left,
       n_defs() = :ndefs - 1 AS definition_gone, n_triggers('readings') AS triggers_after;
INSERT INTO readings VALUES (31, 1);

-- DROP VIEW of a counter: the other counter of the source keeps the
-- triggers; the last one takes them
SELECT make_counter('readings_n', $$SELECT count(*) AS n, sum(val) AS total FROM readings$$);
SELECT make_counter('readings_odd', $$SELECT val % 2 AS odd, count(*) AS n FROM readings GROUP BY val % 2$$, 'buffered');
INSERT INTO readings VALUES (32, 7);
SELECT chk_all() AS "two counters on readings";
SELECT n_defs() AS ndefs, hidden_prefix('readings_n') AS p \gset
DELETE FROM expect WHERE counter = 'readings_n'::regclass;
DROP VIEW readings_n;
SELECT to_regclass('readings_n') IS NULL AS counter_gone, hidden_left(:'p') AS hidden_relations_left,
       n_defs() = :ndefs - 1 AS definition_gone, n_triggers('readings') AS triggers_kept;
INSERT INTO readings VALUES (33, 8);
SELECT chk_all() AS "after DROP VIEW of one counter";
SELECT hidden_prefix('readings_odd') AS p \gset
DELETE FROM expect WHERE counter = 'readings_odd'::regclass;
DROP VIEW readings_odd;
SELECT to_regclass('readings_odd') IS NULL AS counter_gone, hidden_left(:'p') AS hidden_relations_left,
       n_defs() = :ndefs - 2 AS definition_gone, n_triggers('readings') AS triggers_after_last;
-- DROP VIEW of a counter's definition view: refused, names the counter;
-- with CASCADE the counter goes with everything it has
SELECT make_counter('readings_k', $$SELECT val % 3 AS k, count(*) AS n FROM readings GROUP BY val % 3$$);
SELECT hidden_prefix('readings_k') AS p, n_defs() AS ndefs \gset
SELECT try_sql(format('DROP VIEW counters.%I', :'p' || 'query'));
SELECT names(format('DROP VIEW counters.%I', :'p' || 'query'), '{readings_k}') AS names_the_counter;
DELETE FROM expect WHERE counter = 'readings_k'::regclass;
SET client_min_messages = warning;
SELECT format('DROP VIEW counters.%I CASCADE', :'p' || 'query') AS drop_definition \gset
:drop_definition;
RESET client_min_messages;
SELECT to_regclass('readings_k') IS NULL AS counter_gone, hidden_left(:'p') AS hidden_relations_left,
       n_defs() = :ndefs - 1 AS definition_gone, n_triggers('readings') AS triggers_after;
-- DROP TABLE of a counter's storage: refused, names the counter
SELECT counters.create_counter('readings_k2', $$SELECT val % 3 AS k, count(*) AS n FROM readings GROUP BY val % 3$$);
SELECT hidden_prefix('readings_k2') AS p, n_defs() AS ndefs \gset
SELECT try_sql(format('DROP TABLE counters.%I', :'p' || 'data'));
SELECT names(format('DROP TABLE counters.%I', :'p' || 'data'), '{readings_k2}') AS names_the_counter;
-- DROP TABLE of a counter's deltas table: no half counter is left behind
-- (refused, or the whole counter goes with its definition and triggers)
SELECT format('DROP TABLE counters.%I', :'p' || 'deltas') AS drop_deltas \gset
SELECT try_sql(:'drop_deltas') <> 'no error' AS refused \gset
SELECT CASE WHEN :'refused'::boolean
            THEN chk(to_regclass('readings_k2'), $$SELECT val % 3 AS k, count(*) AS n FROM readings GROUP BY val % 3$$) = 'ok'
                 AND named_after(to_regclass('readings_k2'))
            ELSE to_regclass('readings_k2') IS NULL AND hidden_left(:'p') = 0
                 AND n_defs() = :ndefs - 1 AND n_triggers('readings') = 0
       END AS no_half_counter;
SET client_min_messages = warning;
DROP TABLE readings CASCADE;
RESET client_min_messages;
SELECT hidden_left(:'p') AS hidden_relations_left, n_defs() = :ndefs - 1 AS definition_gone;

-- DROP SCHEMA ... CASCADE of the counters' schema, the source elsewhere:
-- the counters go, the source's triggers go with the last one
CREATE SCHEMA regress_sch_gone;
CREATE TABLE sensors (id int, site text, v int);
INSERT INTO sensors SELECT g, 'site' || g % 3, g FROM generate_series(1, 20) g;
SELECT counters.create_counter('regress_sch_gone.sensors_by_site',
  $$SELECT site, count(*) AS n, sum(v) AS total FROM sensors GROUP BY site$$);
SELECT counters.create_counter('regress_sch_gone.sensors_n', $$SELECT count(*) AS n FROM sensors$$, 'buffered');
SELECT n_defs() AS ndefs, hidden_prefix('regress_sch_gone.sensors_by_site') AS p1,
       hidden_prefix('regress_sch_gone.sensors_n') AS p2 \gset
SELECT n_triggers('sensors') AS triggers_before;
SET client_min_messages = warning;
DROP SCHEMA regress_sch_gone CASCADE;
RESET client_min_messages;
SELECT hidden_left(:'p1') + hidden_left(:'p2') AS hidden_relations_left, n_defs() = :ndefs - 2 AS definitions_gone,
       n_triggers('sensors') AS triggers_after;
INSERT INTO sensors VALUES (21, 'site1', 1);

-- a counter moved to another schema: its hidden relations take names that
-- go with its new schema, and it stays exact
CREATE SCHEMA regress_sch_other;
SELECT make_counter('sensors_by_site', $$SELECT site, count(*) AS n FROM sensors GROUP BY site$$);
SELECT try_sql('ALTER VIEW sensors_by_site SET SCHEMA regress_sch_other') AS move_result \gset
SELECT named_after(counter) AS hidden_named_after_it FROM expect WHERE counter::text LIKE '%sensors_by_site';
INSERT INTO sensors VALUES (22, 'site9', 1);
SELECT chk_all() AS "counter moved to another schema";

-- DROP TABLE of the source: refused (naming the counters) unless CASCADE,
-- which takes every relation and definition of its counters
SELECT try_sql('DROP TABLE sensors');
SELECT names('DROP TABLE sensors', '{sensors_by_site}') AS names_the_counter;
SELECT n_defs() AS ndefs, hidden_prefix(counter) AS p FROM expect WHERE counter::text LIKE '%sensors_by_site' \gset
DELETE FROM expect WHERE counter::text LIKE '%sensors_by_site';
SET client_min_messages = warning;
DROP TABLE sensors CASCADE;
RESET client_min_messages;
SELECT to_regclass('sensors_by_site') IS NULL AND to_regclass('regress_sch_other.sensors_by_site') IS NULL
         AS counter_gone,
       hidden_left(:'p') AS hidden_relations_left, n_defs() = :ndefs - 1 AS definition_gone;

-- ---------------------------------------------------------------------
-- DISABLE TRIGGER: the counters go stale, verify() shows it, rebuild()
-- repairs it; ENABLE again and they are maintained
-- ---------------------------------------------------------------------
SELECT chk_all() AS "before disabling";
ALTER TABLE purchases DISABLE TRIGGER USER;
INSERT INTO purchases (id, customer, status) VALUES (400, 'c4', 'new'), (401, 'c4', 'lost');
UPDATE purchases SET status = 'sent' WHERE id % 3 = 0;
SELECT count(*) > 0 AS verify_shows_stale FROM counters.verify('by_status');
SELECT chk('by_status', query) <> 'ok' AS stale FROM expect WHERE counter = 'by_status'::regclass;
SELECT counters.rebuild('by_status') > 0 AS rebuild_changed_rows;
SELECT chk_all() AS "rebuilt";
SELECT counters.rebuild('by_status') AS rebuild_again_changes;
ALTER TABLE purchases ENABLE TRIGGER USER;
INSERT INTO purchases (id, customer, status) VALUES (402, 'c4', 'lost');
DELETE FROM purchases WHERE id % 10 = 7;
SELECT chk_all() AS "maintained after ENABLE";
-- one trigger disabled: only that kind of write goes uncounted
ALTER TABLE filtered DISABLE TRIGGER counters_delete;
DELETE FROM filtered WHERE k = 0;
INSERT INTO filtered VALUES (60, 0, true);
SELECT count(*) > 0 AS verify_shows_stale FROM counters.verify('flagged');
SELECT counters.rebuild('flagged') > 0 AS rebuild_changed_rows;
ALTER TABLE filtered ENABLE TRIGGER counters_delete;
DELETE FROM filtered WHERE k = 1;
SELECT chk_all() AS "repaired and maintained";

-- ---------------------------------------------------------------------
-- A publication FOR ALL TABLES publishes the hidden tables too, and
-- refuses updates and deletes of tables without a replica identity: they
-- identify their rows by all their columns, so maintenance, flushes and
-- set_mode go on (by_status is buffered, the others immediate)
-- ---------------------------------------------------------------------
SELECT count(*) AS hidden_tables_not_full FROM pg_class
 WHERE relname LIKE '\_counters\_c%' AND relkind = 'r' AND relreplident <> 'f';
-- (a WARNING when wal_level is below logical)
SET client_min_messages = error;
CREATE PUBLICATION regress_pub_all FOR ALL TABLES;
RESET client_min_messages;
INSERT INTO purchases (id, customer, status) VALUES (403, 'c5', 'new'), (404, 'c5', 'paid');
UPDATE purchases SET status = 'sent' WHERE id IN (400, 403);
DELETE FROM purchases WHERE id = 404;
INSERT INTO filtered VALUES (61, 1, true);
SELECT counters.flush('by_status') > 0 AS flushed;
SELECT counters.set_mode('by_status', 'immediate');
UPDATE purchases SET status = 'new' WHERE id = 403;
SELECT counters.set_mode('by_status', 'buffered');
SELECT chk_all() AS "under a publication";
DROP PUBLICATION regress_pub_all;

-- ---------------------------------------------------------------------
-- DROP EXTENSION counters CASCADE leaves nothing behind (in a transaction
-- that is rolled back: the extension and its counters are intact after)
-- ---------------------------------------------------------------------
CREATE TABLE parted (id int, k int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200);
INSERT INTO parted SELECT g, g % 5 FROM generate_series(1, 150) g;
SELECT make_counter('parted_k', $$SELECT k, count(*) AS n FROM parted GROUP BY k$$);
SELECT chk_all() AS "before DROP EXTENSION";
SELECT try_sql('DROP EXTENSION counters') ~ '^2BP01: ' AS refused_without_cascade;
BEGIN;
SET LOCAL client_min_messages = warning;
DROP EXTENSION counters CASCADE;
SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'counters\_%') AS triggers_left,
       (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'counters%') AS event_triggers_left,
       to_regnamespace('counters') IS NULL AS schema_counters_gone,
       (SELECT count(*) FROM expect e WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = e.counter)) AS counters_left,
       to_regclass('counters.counter_def') IS NULL AS definitions_gone;
-- the sources are plain tables again
INSERT INTO purchases (id, customer, status) VALUES (500, 'x', 'new');
INSERT INTO parted VALUES (199, 1);
DELETE FROM filtered;
ROLLBACK;
SELECT extname FROM pg_extension WHERE extname = 'counters';
SELECT n_triggers('purchases') AS purchases_triggers, n_triggers('parted_2') AS partition_triggers;
INSERT INTO purchases (id, customer, status) VALUES (501, 'x', 'new');
INSERT INTO parted VALUES (199, 1), (5, 4);
UPDATE parted SET id = id + 100 WHERE id < 10;
SELECT chk_all() AS "after the rolled back DROP EXTENSION";

-- clean up
DELETE FROM expect;
SET client_min_messages = warning;
DROP SCHEMA regress_sch, regress_sch_counters, regress_sch_moved, regress_sch_other CASCADE;
RESET client_min_messages;
SELECT count(*) = :defs_before AS definitions_as_before FROM counters.counter_def;
