--
-- partitions: counters over partitioned tables.  A counter is declared on
-- the partitioned table (range partitioning with a list sub-partitioned
-- partition and default partitions; a list-partitioned table) and stays
-- exact whether rows are written through the partitioned table or directly
-- into a partition (INSERT, UPDATE, DELETE, MERGE, COPY, TRUNCATE), when an
-- UPDATE moves rows between partitions and between keys, and when
-- partitions are created, attached (their rows counted at that moment),
-- detached (their rows no longer counted, no counters triggers left on
-- them) or dropped; partitions whose columns are in another order or that
-- have dropped columns; several counters on one partitioned table (keyed,
-- global, filtered, buffered); each row counts exactly once.  Refused: a
-- counter on a partition, on a table in an inheritance tree, inheriting
-- from a counted table (CREATE TABLE ... INHERITS, ALTER TABLE ...
-- INHERIT), attaching a table that has counters of its own, foreign-table
-- partitions.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
DROP SERVER IF EXISTS regress_part_srv;
DROP FOREIGN DATA WRAPPER IF EXISTS regress_part_fdw;
RESET client_min_messages;
CREATE SCHEMA regress_part;
SET search_path = regress_part, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
-- try_sql() shows an error's SQLSTATE and message only
\set try_sql_shows none
\i sql/include/helpers.sql
\set ECHO all
-- tree_triggers(root): 'ok' when the table and every partition below it
-- have the counters triggers (four statement triggers, and on a leaf the
-- row trigger of replica mode); else the relations that lack some
CREATE FUNCTION tree_triggers(root regclass) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce('missing on ' || string_agg(relid::text, ', ' ORDER BY relid::text)
                    FILTER (WHERE n_triggers(relid) <> CASE WHEN isleaf THEN 5 ELSE 4 END), 'ok')
    FROM pg_partition_tree(root)
$$;
-- triggers_left(root): how many counters triggers the table and the
-- partitions below it still have (0 for a table no counter counts)
CREATE FUNCTION triggers_left(root regclass) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(n_triggers(relid)), 0)::bigint FROM pg_partition_tree(root)
$$;
-- flush_chk(): flush the buffered counters, then chk_all()
CREATE FUNCTION flush_chk() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM counters.flush(counter) FROM counters.counters
   WHERE mode = 'buffered' AND counter IN (SELECT counter FROM expect);
  RETURN chk_all();
END $$;

-- ---------------------------------------------------------------------
-- A range-partitioned table: a plain partition, a partition that is
-- list-partitioned again (with a default sub-partition), a default
-- partition.  Rows are in it before the counters exist.
-- ---------------------------------------------------------------------
CREATE TABLE ev (id int NOT NULL, region text NOT NULL, day date NOT NULL, kind text, amount int)
  PARTITION BY RANGE (day);
CREATE TABLE ev_jan PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE ev_feb PARTITION OF ev FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')
  PARTITION BY LIST (region);
CREATE TABLE ev_feb_eu PARTITION OF ev_feb FOR VALUES IN ('eu');
CREATE TABLE ev_feb_us PARTITION OF ev_feb FOR VALUES IN ('us');
CREATE TABLE ev_feb_other PARTITION OF ev_feb DEFAULT;
CREATE TABLE ev_default PARTITION OF ev DEFAULT;
INSERT INTO ev VALUES
  (1, 'eu', '2024-01-03', 'click', 5),  (2, 'us', '2024-01-04', 'view', 12),
  (3, 'eu', '2024-02-05', 'click', 30), (4, 'us', '2024-02-06', NULL, NULL),
  (5, 'ap', '2024-02-07', 'view', 7),   (6, 'eu', '2025-06-01', 'click', 50),
  (7, 'us', '2023-12-31', 'view', 3);
SELECT string_agg(DISTINCT tableoid::regclass::text, ', ') AS partitions_with_rows FROM ev;

-- four counters on it: keyed, global, filtered, buffered
SELECT make_counter('ev_by_region', $$SELECT region, kind, count(*) AS n, sum(amount) AS total FROM ev GROUP BY region, kind$$);
SELECT make_counter('ev_total', $$SELECT count(*) AS n, sum(amount) AS total, count(kind) AS with_kind FROM ev$$);
SELECT make_counter('ev_big', $$SELECT region, count(*) AS n FROM ev WHERE amount > 10 GROUP BY region$$);
SELECT make_counter('ev_by_day', $$SELECT day, count(*) AS n, sum(amount) AS total FROM ev GROUP BY day$$, 'buffered');
SELECT chk_all() AS "filled from rows in every partition";
-- the triggers are on the partitioned table and on every partition
SELECT tree_triggers('ev') AS triggers;

-- writes through the partitioned table, routed to every partition
INSERT INTO ev VALUES
  (10, 'eu', '2024-01-10', 'click', 11), (11, 'us', '2024-02-10', 'view', 21),
  (12, 'xx', '2024-02-11', 'click', 1),  (13, 'eu', '2026-01-01', NULL, 100),
  (14, 'eu', '2024-02-12', 'view', NULL);
SELECT chk_all() AS "insert through the root";
-- writes directly into partitions: a plain one, a sub-partitioned one, a
-- leaf of it, the default partitions
INSERT INTO ev_jan VALUES (20, 'ap', '2024-01-20', 'view', 15);
INSERT INTO ev_feb VALUES (21, 'eu', '2024-02-20', 'click', 16), (22, 'zz', '2024-02-21', 'view', 2);
INSERT INTO ev_feb_us VALUES (23, 'us', '2024-02-22', 'click', 17);
INSERT INTO ev_feb_other VALUES (24, 'ap', '2024-02-23', NULL, 18);
INSERT INTO ev_default VALUES (25, 'us', '2027-01-01', 'view', 19);
SELECT chk_all() AS "insert into partitions";
SELECT string_agg(DISTINCT tableoid::regclass::text, ', ') AS partitions_with_rows FROM ev;
-- a row that does not fit the partition is refused, nothing counted
SELECT try_sql($$INSERT INTO ev_jan VALUES (26, 'eu', '2024-02-01', 'click', 1)$$);
SELECT chk_all() AS "refused insert";

-- UPDATE through the root: in place, between keys, and moving rows between
-- partitions (jan -> feb sub-partitions, feb -> default, between the
-- sub-partitions, default -> jan)
UPDATE ev SET amount = amount + 1 WHERE region = 'us';
SELECT chk_all() AS "update in place through the root";
UPDATE ev SET kind = 'click', region = 'ap' WHERE id IN (2, 14);
SELECT chk_all() AS "update between keys through the root";
SELECT tableoid::regclass AS partition_before FROM ev WHERE id = 1;
UPDATE ev SET day = day + 31 WHERE id IN (1, 10, 20);
SELECT tableoid::regclass AS partition_after FROM ev WHERE id = 1;
SELECT chk_all() AS "update moving rows jan -> feb";
UPDATE ev SET day = '2028-01-01', amount = amount * 2 WHERE id = 3;
UPDATE ev SET region = 'us' WHERE id IN (21, 22);
UPDATE ev SET day = '2024-01-15', region = 'eu' WHERE id = 25;
SELECT chk_all() AS "update moving rows feb->default, within feb, default->jan";
UPDATE ev SET day = day + 3650, region = region || '!' WHERE day >= '2025-01-01';
SELECT chk_all() AS "update moving many rows and keys";
-- UPDATE directly on partitions: in place, on a sub-partitioned partition
-- moving rows between its sub-partitions; a move out of the partition is
-- refused and counts nothing
UPDATE ev_jan SET kind = 'view', amount = coalesce(amount, 0) + 5;
UPDATE ev_feb SET region = 'eu' WHERE region = 'us';
UPDATE ev_feb_other SET amount = amount - 1 WHERE region = 'xx';
SELECT chk_all() AS "update on partitions";
SELECT try_sql($$UPDATE ev_jan SET day = '2024-02-01'$$);
SELECT try_sql($$UPDATE ev_feb_eu SET region = 'us'$$);
SELECT chk_all() AS "refused updates";

-- MERGE with an UPDATE action into a counted partitioned table is refused:
-- in PostgreSQL 15 the rows such an UPDATE moves between partitions are
-- missing from the transition tables.  MERGE without UPDATE, and MERGE
-- into a leaf partition (which cannot move rows), work.
SELECT try_sql($$MERGE INTO ev t
USING (VALUES (1, '2024-01-25'::date), (5, '2024-01-26'::date), (30, '2024-02-25'::date)) s(id, day)
   ON t.id = s.id
 WHEN MATCHED THEN UPDATE SET day = s.day, amount = coalesce(t.amount, 0) + 1
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'eu', s.day, 'merge', 9)$$);
SELECT try_sql($$MERGE INTO ev_feb t
USING (VALUES (21)) s(id) ON t.id = s.id
 WHEN MATCHED THEN UPDATE SET region = 'us'$$);
SELECT chk_all() AS "merge with update refused";
MERGE INTO ev t
USING (VALUES (1, '2024-01-25'::date), (5, '2024-01-26'::date), (30, '2024-02-25'::date)) s(id, day)
   ON t.id = s.id
 WHEN MATCHED THEN DELETE
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'eu', s.day, 'merge', 9);
SELECT chk_all() AS "merge through the root (delete, insert)";
MERGE INTO ev_jan t
USING (VALUES (10), (3)) s(id) ON t.id = s.id
 WHEN MATCHED THEN UPDATE SET amount = coalesce(t.amount, 0) + 5;
SELECT chk_all() AS "merge with update into a leaf partition";
MERGE INTO ev_feb t
USING (VALUES (21), (31)) s(id) ON t.id = s.id
 WHEN MATCHED THEN DELETE
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'us', '2024-02-27', 'merge', 4);
SELECT chk_all() AS "merge into a partition";
-- (rebuild() finds nothing to repair, so a drift above does not spill into
-- the steps below)
SELECT counter, counters.rebuild(counter) = 0 AS nothing_to_repair
  FROM expect ORDER BY counter::text;

-- DELETE through the root and directly from partitions
DELETE FROM ev WHERE id IN (11, 12);
DELETE FROM ev_jan WHERE kind = 'view' AND amount < 10;
DELETE FROM ev_feb_eu WHERE id = 21;
DELETE FROM ev_default WHERE region LIKE '%!';
SELECT chk_all() AS "delete through the root and from partitions";

-- COPY FROM STDIN into the root and into partitions
COPY ev (id, region, day, kind, amount) FROM STDIN;
40	eu	2024-01-05	click	40
41	us	2024-02-05	view	41
42	ap	2024-02-06	\N	42
43	eu	2030-01-01	click	\N
\.
COPY ev_jan FROM STDIN WITH (FORMAT csv);
44,us,2024-01-06,view,44
45,us,2024-01-07,,
\.
COPY ev_feb_other FROM STDIN;
46	mx	2024-02-08	click	46
\.
SELECT chk_all() AS "copy into the root and into partitions";
SELECT flush_chk() AS "after a flush";

-- in a transaction: writes to several partitions, a rolled back savepoint,
-- a rolled back transaction
BEGIN;
INSERT INTO ev_jan VALUES (50, 'eu', '2024-01-09', 'click', 1);
SAVEPOINT s1;
UPDATE ev SET day = '2024-02-09' WHERE id = 50;
DELETE FROM ev_feb WHERE id = 42;
SELECT chk_all() AS "inside a transaction";
ROLLBACK TO SAVEPOINT s1;
SELECT chk_all() AS "after rollback to savepoint";
COMMIT;
BEGIN;
DELETE FROM ev;
TRUNCATE ev_jan;
SELECT chk_all() AS "inside a transaction that empties the table";
ROLLBACK;
SELECT chk_all() AS "after rollback";

-- TRUNCATE: one partition, a sub-partitioned partition, a leaf and a
-- partition in one statement, then the whole table
SELECT count(*) > 0 AS jan_has_rows FROM ev_jan;
TRUNCATE ev_jan;
SELECT chk_all() AS "truncate one partition";
SELECT count(*) > 0 AS feb_has_rows FROM ev_feb;
TRUNCATE ev_feb;
SELECT chk_all() AS "truncate a sub-partitioned partition";
INSERT INTO ev VALUES (60, 'eu', '2024-01-01', 'click', 6), (61, 'us', '2024-02-01', 'view', 61),
                      (62, 'eu', '2024-02-02', 'click', 62), (63, 'ap', '2031-01-01', NULL, 63);
TRUNCATE ev_feb_us, ev_default;
SELECT chk_all() AS "truncate a leaf and a partition in one statement";
INSERT INTO ev SELECT g, (ARRAY['eu', 'us', 'ap'])[g % 3 + 1],
                      CASE WHEN g % 7 = 0 THEN '2030-01-01'::date + g ELSE '2024-01-01'::date + g % 60 END,
                      'k' || g % 4, nullif(g % 50, 0)
  FROM generate_series(100, 300) g;
SELECT chk_all() AS "bulk insert through the root";
SELECT flush_chk() AS "after a flush";
TRUNCATE ev;
SELECT chk_all() AS "truncate the partitioned table";
SELECT n = 0 AND total IS NULL AS global_row_is_zero FROM ev_total;
INSERT INTO ev SELECT g, (ARRAY['eu', 'us', 'ap'])[g % 3 + 1],
                      CASE WHEN g % 7 = 0 THEN '2030-01-01'::date + g ELSE '2024-01-01'::date + g % 60 END,
                      'k' || g % 4, nullif(g % 50, 0)
  FROM generate_series(100, 200) g;
SELECT chk_all() AS "refilled";

-- ---------------------------------------------------------------------
-- Partitions created later get the triggers (also a sub-partitioned one
-- and its sub-partitions)
-- ---------------------------------------------------------------------
CREATE TABLE ev_mar PARTITION OF ev FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
SELECT NOT EXISTS (SELECT FROM ev_mar) AS new_partition_empty;
CREATE TABLE ev_apr PARTITION OF ev FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')
  PARTITION BY LIST (region);
CREATE TABLE ev_apr_eu PARTITION OF ev_apr FOR VALUES IN ('eu');
CREATE TABLE ev_apr_rest PARTITION OF ev_apr DEFAULT;
CREATE TABLE ev_feb_nz PARTITION OF ev_feb FOR VALUES IN ('nz');
SELECT tree_triggers('ev') AS triggers;
INSERT INTO ev VALUES (400, 'eu', '2024-03-05', 'click', 4), (401, 'us', '2024-04-05', 'view', 40),
                      (402, 'eu', '2024-04-06', 'view', 41), (403, 'ap', '2024-02-15', 'click', 42);
INSERT INTO ev_mar VALUES (404, 'ap', '2024-03-06', 'click', 43);
INSERT INTO ev_apr_eu VALUES (405, 'eu', '2024-04-07', NULL, 44);
INSERT INTO ev_feb_nz VALUES (406, 'nz', '2024-02-16', 'view', 45);
UPDATE ev SET day = day + 31 WHERE id IN (400, 403, 406);
UPDATE ev_apr SET region = 'us' WHERE id = 405;
DELETE FROM ev_mar WHERE id = 404;
SELECT chk_all() AS "partitions created later";

-- ---------------------------------------------------------------------
-- ATTACH: a table with rows in it is counted at the moment it is attached
-- ---------------------------------------------------------------------
CREATE TABLE ev_may (LIKE ev);
INSERT INTO ev_may VALUES (500, 'eu', '2024-05-01', 'click', 50), (501, 'us', '2024-05-02', 'view', 51),
                          (502, 'eu', '2024-05-03', NULL, NULL);
SELECT n_triggers('ev_may') AS triggers_before_attach, chk_all() AS "not counted before attach";
SELECT n AS n_before FROM ev_total \gset
ALTER TABLE ev ATTACH PARTITION ev_may FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
SELECT n = :n_before + 3 AS attached_rows_counted, chk_all() AS "attached with rows" FROM ev_total;
SELECT n_triggers('ev_may') AS triggers_after_attach;
INSERT INTO ev_may VALUES (503, 'ap', '2024-05-04', 'click', 53);
UPDATE ev SET day = '2024-05-05' WHERE id IN (401, 402);
UPDATE ev_may SET amount = 1 WHERE amount IS NULL;
DELETE FROM ev_may WHERE id = 500;
SELECT chk_all() AS "writes to an attached partition";

-- a table whose columns are in another order and that has dropped columns,
-- attached with rows; written through the root and directly
CREATE TABLE ev_jun (junk1 text, amount int, kind text, junk2 int, day date NOT NULL, id int NOT NULL,
                     region text NOT NULL);
ALTER TABLE ev_jun DROP COLUMN junk1;
ALTER TABLE ev_jun DROP COLUMN junk2;
INSERT INTO ev_jun (id, region, day, kind, amount) VALUES
  (600, 'eu', '2024-06-01', 'click', 60), (601, 'us', '2024-06-02', 'view', NULL), (602, 'ap', '2024-06-03', NULL, 62);
ALTER TABLE ev ATTACH PARTITION ev_jun FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
SELECT chk_all() AS "attached a table with another column order and dropped columns";
INSERT INTO ev_jun (id, region, day, kind, amount) VALUES (603, 'eu', '2024-06-04', 'view', 63);
INSERT INTO ev_jun VALUES (64, 'click', '2024-06-05', 604, 'us');
INSERT INTO ev VALUES (605, 'ap', '2024-06-06', 'view', 65);
UPDATE ev_jun SET region = 'eu', amount = amount + 1 WHERE id IN (601, 602);
UPDATE ev SET day = '2024-06-10' WHERE id IN (500, 501, 503);
UPDATE ev SET day = '2024-03-10' WHERE id = 600;
DELETE FROM ev_jun WHERE id = 603;
COPY ev_jun (id, region, day, kind, amount) FROM STDIN;
606	us	2024-06-07	click	66
\.
SELECT chk_all() AS "writes to a partition with another column order";
TRUNCATE ev_jun;
SELECT chk_all() AS "truncate a partition with another column order";
INSERT INTO ev VALUES (607, 'eu', '2024-06-08', 'click', 67);

-- a partitioned table with rows in its partitions (one of them with
-- another column order), attached as a whole; and a table attached to a
-- sub-partitioned partition
CREATE TABLE ev_jul (kind text, region text NOT NULL, gone int, amount int, id int NOT NULL, day date NOT NULL)
  PARTITION BY LIST (region);
ALTER TABLE ev_jul DROP COLUMN gone;
CREATE TABLE ev_jul_eu PARTITION OF ev_jul FOR VALUES IN ('eu');
CREATE TABLE ev_jul_rest (region text NOT NULL, dropme int, day date NOT NULL, amount int, kind text, id int NOT NULL);
ALTER TABLE ev_jul_rest DROP COLUMN dropme;
ALTER TABLE ev_jul ATTACH PARTITION ev_jul_rest DEFAULT;
INSERT INTO ev_jul (id, region, day, kind, amount) VALUES
  (700, 'eu', '2024-07-01', 'click', 70), (701, 'us', '2024-07-02', 'view', 71), (702, 'ap', '2024-07-03', NULL, 72);
SELECT triggers_left('ev_jul') AS triggers_before_attach;
ALTER TABLE ev ATTACH PARTITION ev_jul FOR VALUES FROM ('2024-07-01') TO ('2024-08-01');
SELECT tree_triggers('ev') AS triggers;
SELECT chk_all() AS "attached a partitioned table with rows";
CREATE TABLE ev_feb_mx (LIKE ev);
INSERT INTO ev_feb_mx VALUES (710, 'mx', '2024-02-10', 'click', 80);
DELETE FROM ev_feb_other WHERE region = 'mx';
ALTER TABLE ev_feb ATTACH PARTITION ev_feb_mx FOR VALUES IN ('mx');
SELECT chk_all() AS "attached to a sub-partitioned partition";
INSERT INTO ev_jul_rest VALUES ('us', '2024-07-04', 73, 'view', 703);
INSERT INTO ev_jul VALUES ('view', 'eu', 74, 704, '2024-07-05');
UPDATE ev_jul SET region = 'eu' WHERE id = 701;
UPDATE ev_jul SET amount = amount + 1, kind = 'jul' WHERE region = 'eu';
UPDATE ev SET region = 'mx', day = '2024-02-11' WHERE id = 702;
DELETE FROM ev_jul_eu WHERE id = 700;
SELECT chk_all() AS "writes to attached partitions";
SELECT flush_chk() AS "after a flush";

-- ---------------------------------------------------------------------
-- DETACH: the rows stop counting; the detached table has no counters
-- triggers and writing to it changes nothing
-- ---------------------------------------------------------------------
SELECT count(*) > 0 AS may_has_rows FROM ev_may;
ALTER TABLE ev DETACH PARTITION ev_may;
SELECT chk_all() AS "detached a partition", n_triggers('ev_may') AS triggers_on_detached;
INSERT INTO ev_may VALUES (510, 'eu', '2024-05-10', 'click', 1);
UPDATE ev_may SET region = 'zz';
DELETE FROM ev_may WHERE id = 510;
TRUNCATE ev_may;
SELECT chk_all() AS "writes to the detached table count nothing";
-- a sub-partitioned partition: no triggers left anywhere in its tree
ALTER TABLE ev DETACH PARTITION ev_jul;
SELECT chk_all() AS "detached a sub-partitioned partition", triggers_left('ev_jul') AS triggers_on_detached_tree;
INSERT INTO ev_jul (id, region, day, kind, amount) VALUES (720, 'eu', '2024-07-20', 'click', 1), (721, 'us', '2024-07-21', 'view', 1);
INSERT INTO ev_jul_rest VALUES ('us', '2024-07-22', 1, 'view', 722);
DELETE FROM ev_jul_eu;
SELECT chk_all() AS "writes to the detached tree count nothing";
-- a sub-partition detached from a sub-partitioned partition
ALTER TABLE ev_feb DETACH PARTITION ev_feb_mx;
SELECT chk_all() AS "detached a sub-partition", n_triggers('ev_feb_mx') AS triggers_on_detached;
-- detached and attached again in one transaction
BEGIN;
ALTER TABLE ev DETACH PARTITION ev_jun;
INSERT INTO ev_jun VALUES (1, 'view', '2024-06-20', 620, 'eu');
SELECT chk_all() AS "detached in a transaction", n_triggers('ev_jun') AS triggers_on_detached;
ALTER TABLE ev ATTACH PARTITION ev_jun FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
SELECT chk_all() AS "attached again in the transaction", n_triggers('ev_jun') AS triggers_on_attached;
COMMIT;
SELECT chk_all() AS "after commit";
-- rows written and the partition detached in one transaction
BEGIN;
INSERT INTO ev_jun VALUES (1, 'view', '2024-06-20', 621, 'us');
UPDATE ev SET day = '2024-06-21' WHERE id IN (400, 605);
ALTER TABLE ev DETACH PARTITION ev_jun;
SELECT chk_all() AS "written and detached in a transaction";
ALTER TABLE ev ATTACH PARTITION ev_jun FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
COMMIT;
SELECT chk_all() AS "after commit";
-- an attach rolled back leaves the counters as they were
INSERT INTO ev_may VALUES (512, 'eu', '2024-05-12', 'click', 2);
BEGIN;
ALTER TABLE ev ATTACH PARTITION ev_may FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
INSERT INTO ev_may VALUES (511, 'eu', '2024-05-11', 'click', 1);
ROLLBACK;
SELECT chk_all() AS "attach rolled back", n_triggers('ev_may') AS triggers_on_ev_may;

-- ---------------------------------------------------------------------
-- DROP TABLE of partitions: their rows stop counting
-- ---------------------------------------------------------------------
SELECT count(*) > 0 AS mar_has_rows FROM ev_mar;
DROP TABLE ev_mar;
SELECT chk_all() AS "dropped a partition";
SELECT count(*) > 0 AS apr_has_rows FROM ev_apr;
DROP TABLE ev_apr;
SELECT chk_all() AS "dropped a sub-partitioned partition";
INSERT INTO ev VALUES (800, 'ap', '2024-02-15', 'view', 8), (801, 'us', '2024-02-16', 'click', 9);
DROP TABLE ev_feb_nz, ev_feb_us;
SELECT chk_all() AS "dropped two sub-partitions in one statement";
BEGIN;
DROP TABLE ev_jun;
SELECT chk_all() AS "dropped in a transaction";
ROLLBACK;
SELECT chk_all() AS "drop rolled back";
INSERT INTO ev_jun VALUES (1, 'view', '2024-06-21', 622, 'us');
SELECT chk_all() AS "the partition is still counted";
SELECT tree_triggers('ev') AS triggers;

-- ---------------------------------------------------------------------
-- A list-partitioned table; a partition detached concurrently
-- ---------------------------------------------------------------------
-- (the counters exist before the partitions do)
CREATE TABLE lst (id int NOT NULL, grp text NOT NULL, v int, PRIMARY KEY (id, grp)) PARTITION BY LIST (grp);
SELECT make_counter('lst_by_grp', $$SELECT grp, count(*) AS n, sum(v) AS total FROM lst GROUP BY grp$$);
SELECT make_counter('lst_by_parity', $$SELECT v % 2 AS parity, count(*) AS n FROM lst GROUP BY v % 2$$);
CREATE TABLE lst_a PARTITION OF lst FOR VALUES IN ('a', 'aa');
CREATE TABLE lst_b PARTITION OF lst FOR VALUES IN ('b');
CREATE TABLE lst_c PARTITION OF lst FOR VALUES IN ('c');
SELECT tree_triggers('lst') AS triggers;
INSERT INTO lst SELECT g, (ARRAY['a', 'aa', 'b', 'c'])[g % 4 + 1], g FROM generate_series(1, 40) g;
SELECT chk_all() AS "partitions created after the counters";
-- INSERT ... ON CONFLICT through the root and into a partition
INSERT INTO lst VALUES (1, 'aa', 100), (2, 'b', 200), (41, 'c', 41), (42, 'a', 42)
  ON CONFLICT (id, grp) DO UPDATE SET v = lst.v + excluded.v;
INSERT INTO lst_b VALUES (2, 'b', 1), (6, 'b', 6), (43, 'b', 43) ON CONFLICT DO NOTHING;
INSERT INTO lst_c VALUES (3, 'c', 1), (44, 'c', 44) ON CONFLICT (id, grp) DO UPDATE SET v = excluded.v * 3;
SELECT chk_all() AS "insert on conflict";
UPDATE lst SET grp = 'b' WHERE grp = 'aa' AND v < 20;
UPDATE lst_c SET v = v + 1;
DELETE FROM lst_b WHERE v > 30;
SELECT chk_all() AS "list partitioning";
ALTER TABLE lst DETACH PARTITION lst_c CONCURRENTLY;
SELECT chk_all() AS "detached concurrently", n_triggers('lst_c') AS triggers_on_detached;
INSERT INTO lst_c VALUES (99, 'c', 1);
SELECT chk_all() AS "writes to the detached table count nothing";
DELETE FROM expect WHERE counter IN ('lst_by_grp'::regclass, 'lst_by_parity'::regclass);
SET client_min_messages = warning;
DROP TABLE lst CASCADE;
RESET client_min_messages;
SELECT triggers_left('lst_c') AS triggers_left;

-- ---------------------------------------------------------------------
-- Refusals
-- ---------------------------------------------------------------------
SELECT n_triggers('ev') AS ev_triggers, count(*) AS defs FROM counters.counter_def \gset
-- a counter on a partition, or a sub-partition
SELECT try_sql($$SELECT counters.create_counter('on_part', 'SELECT count(*) AS n FROM ev_jan')$$);
SELECT try_sql($$SELECT counters.create_counter('on_subpart', 'SELECT region, count(*) AS n FROM ev_feb GROUP BY region')$$);
SELECT try_sql($$SELECT counters.create_counter('on_leaf', 'SELECT count(*) AS n FROM ev_feb_eu')$$);
-- table inheritance: a counter on a parent or a child is refused
CREATE TABLE inh_parent (id int, k int);
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT try_sql($$SELECT counters.create_counter('on_inh_parent', 'SELECT k, count(*) AS n FROM inh_parent GROUP BY k')$$);
SELECT try_sql($$SELECT counters.create_counter('on_inh_child', 'SELECT k, count(*) AS n FROM inh_child GROUP BY k')$$);
-- a counted table cannot get inheritance children or parents
CREATE TABLE plain_src (id int, k int);
INSERT INTO plain_src VALUES (1, 1), (2, 2);
SELECT make_counter('plain_k', $$SELECT k, count(*) AS n FROM plain_src GROUP BY k$$);
SELECT try_sql($$CREATE TABLE plain_child () INHERITS (plain_src)$$);
SELECT to_regclass('plain_child') IS NULL AS child_not_created;
CREATE TABLE would_be_child (id int, k int);
SELECT try_sql($$ALTER TABLE would_be_child INHERIT plain_src$$);
SELECT try_sql($$ALTER TABLE plain_src INHERIT inh_parent$$);
SELECT count(*) AS inheritance_links FROM pg_inherits
 WHERE inhparent = 'plain_src'::regclass OR inhrelid = 'plain_src'::regclass;
INSERT INTO plain_src VALUES (3, 1);
SELECT chk_all() AS "after refused inheritance";
-- a table with counters of its own cannot become a partition
CREATE TABLE ev_aug (LIKE ev);
INSERT INTO ev_aug VALUES (900, 'eu', '2024-08-01', 'click', 90);
SELECT make_counter('ev_aug_n', $$SELECT count(*) AS n FROM ev_aug$$);
SELECT try_sql($$ALTER TABLE ev ATTACH PARTITION ev_aug FOR VALUES FROM ('2024-08-01') TO ('2024-09-01')$$);
SELECT try_sql($$ALTER TABLE ev_feb ATTACH PARTITION ev_aug FOR VALUES IN ('eu2')$$);
SELECT relispartition AS is_partition FROM pg_class WHERE oid = 'ev_aug'::regclass;
-- nor a partition of a table no counter counts
CREATE TABLE other_root (LIKE ev) PARTITION BY RANGE (day);
SELECT try_sql($$ALTER TABLE other_root ATTACH PARTITION ev_aug FOR VALUES FROM ('2024-08-01') TO ('2024-09-01')$$);
INSERT INTO ev_aug VALUES (901, 'us', '2024-08-02', 'view', 91);
SELECT chk_all() AS "after refused attach";
-- foreign-table partitions
CREATE FOREIGN DATA WRAPPER regress_part_fdw;
CREATE SERVER regress_part_srv FOREIGN DATA WRAPPER regress_part_fdw;
SELECT try_sql($$CREATE FOREIGN TABLE ev_ft PARTITION OF ev FOR VALUES FROM ('2024-09-01') TO ('2024-10-01') SERVER regress_part_srv$$);
SELECT to_regclass('ev_ft') IS NULL AS foreign_partition_not_created;
CREATE FOREIGN TABLE ev_ft2 (id int NOT NULL, region text NOT NULL, day date NOT NULL, kind text, amount int)
  SERVER regress_part_srv;
SELECT try_sql($$ALTER TABLE ev ATTACH PARTITION ev_ft2 FOR VALUES FROM ('2024-10-01') TO ('2024-11-01')$$);
SELECT try_sql($$ALTER TABLE ev_feb ATTACH PARTITION ev_ft2 FOR VALUES IN ('fr')$$);
SELECT count(*) AS foreign_partitions FROM pg_inherits WHERE inhrelid = 'ev_ft2'::regclass;
-- a partitioned table that already has a foreign partition cannot be counted
CREATE TABLE with_ft (id int NOT NULL, region text NOT NULL, day date NOT NULL, kind text, amount int)
  PARTITION BY RANGE (day);
CREATE TABLE with_ft_local PARTITION OF with_ft FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
ALTER TABLE with_ft ATTACH PARTITION ev_ft2 FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
SELECT try_sql($$SELECT counters.create_counter('with_ft_n', 'SELECT count(*) AS n FROM with_ft')$$);
-- nothing of the refused statements was left behind
SELECT n_triggers('ev') = :ev_triggers AS ev_triggers_unchanged,
       (SELECT count(*) FROM counters.counter_def) = :defs + 2 AS only_plain_k_and_ev_aug_n_added,
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'regress_part'::regnamespace
           AND relname IN ('on_part', 'on_subpart', 'on_leaf', 'on_inh_parent', 'on_inh_child', 'with_ft_n'))
         AS refused_counters_created,
       triggers_left('with_ft') AS with_ft_triggers, n_triggers('inh_parent') + n_triggers('inh_child') AS inh_triggers;
SELECT tree_triggers('ev') AS triggers;
INSERT INTO ev VALUES (1000, 'eu', '2024-01-30', 'click', 10), (1001, 'us', '2024-02-28', 'view', 11);
UPDATE ev SET day = '2024-06-30' WHERE id = 1000;
SELECT chk_all() AS "still exact after the refusals";
SELECT flush_chk() AS "after a flush";

-- ---------------------------------------------------------------------
-- Clean up: DROP TABLE ... CASCADE of the partitioned table takes its
-- counters, their definitions and every trigger
-- ---------------------------------------------------------------------
SELECT count(*) AS defs FROM counters.counter_def \gset
SELECT count(*) AS ev_counters FROM counters.counters WHERE source = 'ev'::regclass;
DELETE FROM expect WHERE counter IN (SELECT counter FROM counters.counters WHERE source = 'ev'::regclass);
SET client_min_messages = warning;
DROP TABLE ev CASCADE;
RESET client_min_messages;
SELECT (SELECT count(*) FROM counters.counter_def) = :defs - 4 AS ev_definitions_gone,
       to_regclass('ev_by_region') IS NULL AND to_regclass('ev_total') IS NULL
         AND to_regclass('ev_big') IS NULL AND to_regclass('ev_by_day') IS NULL AS ev_counters_gone;
SELECT chk_all() AS "remaining counters";
DELETE FROM expect;
SET client_min_messages = warning;
DROP SCHEMA regress_part CASCADE;
DROP SERVER regress_part_srv;
DROP FOREIGN DATA WRAPPER regress_part_fdw;
RESET client_min_messages;
SELECT count(*) = :defs_before AS definitions_as_before FROM counters.counter_def;
