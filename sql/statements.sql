--
-- statements: every kind of write keeps the counters exact, inside and
-- outside transactions: single and multi-row INSERT, INSERT ... SELECT,
-- UPDATE and DELETE by condition (also with FROM/USING), INSERT ... ON
-- CONFLICT, MERGE, COPY, writable CTEs, TRUNCATE, statements from functions
-- and prepared statements, cascaded writes, statements bigger than work_mem,
-- ROLLBACK, SAVEPOINT / ROLLBACK TO SAVEPOINT / RELEASE, failed statements.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_stmt;
SET search_path = regress_stmt, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

CREATE TABLE item (
    id    int PRIMARY KEY,
    grp   text,
    qty   int,
    price numeric(10,2),
    flag  boolean NOT NULL DEFAULT true
);
SELECT make_counter('item_by_grp',
  $$SELECT grp, count(*) AS n, sum(qty) AS qty, sum(price) AS amount FROM item WHERE flag GROUP BY grp$$);
SELECT make_counter('item_total',
  $$SELECT count(*) AS n, sum(qty) AS qty, sum(price) AS amount FROM item$$);
SELECT make_counter('item_by_flag_grp',
  $$SELECT flag, grp, count(qty) AS with_qty, count(*) AS n FROM item GROUP BY flag, grp$$);
SELECT chk_all() AS "empty";

-- INSERT, one row
INSERT INTO item VALUES (1, 'a', 1, 1.50);
SELECT chk_all() AS "single-row insert";

-- INSERT, several rows, NULLs in key, values and sums
INSERT INTO item VALUES (2, 'a', 2, 2.00, true), (3, 'b', NULL, 0.25, true),
                        (4, NULL, 4, NULL, false), (5, 'c', 5, 5.55, true), (6, NULL, NULL, NULL, true);
SELECT chk_all() AS "multi-row insert";

-- INSERT ... SELECT
INSERT INTO item SELECT g, chr(97 + g % 5), g % 10, (g % 100) / 4.0, g % 3 <> 0
  FROM generate_series(10, 509) g;
SELECT chk_all() AS "insert select";

-- INSERT ... RETURNING
INSERT INTO item VALUES (7, 'e', 7, 7.77) RETURNING id;
SELECT chk_all() AS "insert returning";

-- UPDATE by condition: values only
UPDATE item SET qty = qty + 1 WHERE id % 3 = 0;
SELECT chk_all() AS "update values";

-- UPDATE moving rows between groups
UPDATE item SET grp = 'b' WHERE grp = 'a';
SELECT chk_all() AS "update keys";

-- UPDATE moving rows in and out of the filter
UPDATE item SET flag = NOT flag WHERE id % 5 = 0;
SELECT chk_all() AS "update filter";

-- UPDATE setting values to NULL and back
UPDATE item SET qty = NULL, price = NULL WHERE grp = 'c';
SELECT chk_all() AS "values to NULL";
UPDATE item SET qty = id % 7, price = id / 3.0 WHERE grp = 'c';
SELECT chk_all() AS "values from NULL";
UPDATE item SET grp = NULL WHERE id % 11 = 0;
SELECT chk_all() AS "keys to NULL";

-- UPDATE of the primary key only: nothing counted changes, nothing written
SELECT storage_state() AS st0 \gset
UPDATE item SET id = id + 100000 WHERE id < 100;
SELECT chk_all() AS "update of uncounted column";
SELECT storage_state() = :'st0' AS nothing_written;

-- UPDATE ... FROM
CREATE TABLE adj (grp text, delta int);
SELECT make_counter('adj_by_grp', $$SELECT grp, count(*) AS n, sum(delta) AS total FROM adj GROUP BY grp$$);
INSERT INTO adj VALUES ('b', 10), ('c', -3), ('zz', 1);
UPDATE item i SET qty = i.qty + a.delta, grp = i.grp || '2' FROM adj a WHERE i.grp = a.grp AND i.id % 2 = 0;
SELECT chk_all() AS "update from";

-- UPDATE with a subquery in its condition
UPDATE item SET flag = false WHERE grp IN (SELECT grp FROM adj) AND qty > 5;
SELECT chk_all() AS "update with subquery";

-- statements that match no row
SELECT storage_state() AS st0 \gset
UPDATE item SET qty = 0 WHERE false;
DELETE FROM item WHERE id < 0;
INSERT INTO item SELECT * FROM item WHERE false;
SELECT chk_all() AS "statements matching nothing";
SELECT storage_state() = :'st0' AS nothing_written;

-- DELETE by condition
DELETE FROM item WHERE qty = 0;
SELECT chk_all() AS "delete by condition";

-- DELETE ... USING, DELETE ... RETURNING
DELETE FROM item i USING adj a WHERE i.grp = a.grp || '2' AND i.qty > 10;
SELECT chk_all() AS "delete using";
DELETE FROM item WHERE id = 100007 RETURNING grp, qty;
SELECT chk_all() AS "delete returning";

-- INSERT ... ON CONFLICT DO UPDATE: new rows and updated rows together
INSERT INTO item VALUES (1000, 'z', 1, 1, true), (10, 'q', 7, 7, true), (11, 'q', NULL, 8, false),
                        (1001, NULL, 2, 2, false)
  ON CONFLICT (id) DO UPDATE SET grp = excluded.grp, qty = excluded.qty,
                                 price = excluded.price, flag = excluded.flag;
SELECT chk_all() AS "upsert";

-- ... with a WHERE that skips some conflicting rows
INSERT INTO item SELECT g, 'w', 1, 1, true FROM generate_series(1000, 1010) g
  ON CONFLICT (id) DO UPDATE SET qty = item.qty + 1 WHERE item.grp = 'z';
SELECT chk_all() AS "upsert with where";

-- ... DO NOTHING
INSERT INTO item VALUES (1000, 'y', 1, 1, true), (1100, 'y', 1, 1, true) ON CONFLICT DO NOTHING;
SELECT chk_all() AS "insert on conflict do nothing";

-- MERGE: insert, update (key and value) and delete in one statement
CREATE TABLE incoming (id int, grp text, qty int, price numeric, op text);
INSERT INTO incoming VALUES
    (1000, 'm', 5, 5, 'update'), (1001, NULL, NULL, NULL, 'delete'), (1002, 'w', 9, 9, 'update'),
    (5000, 'm', 1, 1.25, 'insert'), (5001, NULL, 2, NULL, 'insert'), (5002, 'm', NULL, 3, 'insert'),
    (1003, 'x', 0, 0, 'skip');
MERGE INTO item i
USING incoming s ON i.id = s.id
WHEN MATCHED AND s.op = 'delete' THEN DELETE
WHEN MATCHED AND s.op = 'update' THEN UPDATE SET grp = s.grp, qty = s.qty, price = s.price
WHEN MATCHED THEN DO NOTHING
WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.grp, s.qty, s.price, true);
SELECT chk_all() AS "merge";
-- MERGE that only inserts, and one that only deletes
MERGE INTO item i USING (SELECT g AS id FROM generate_series(6000, 6009) g) s ON i.id = s.id
WHEN NOT MATCHED THEN INSERT (id, grp, qty, price) VALUES (s.id, 'merged', s.id % 3, 1);
SELECT chk_all() AS "merge insert only";
MERGE INTO item i USING (SELECT g AS id FROM generate_series(6000, 6004) g) s ON i.id = s.id
WHEN MATCHED THEN DELETE;
SELECT chk_all() AS "merge delete only";

-- COPY FROM STDIN, text and csv
COPY item (id, grp, qty, price, flag) FROM STDIN;
7000	copied	1	1.00	t
7001	\N	\N	\N	f
7002	copied	3	\N	t
7003	b	4	4.40	t
\.
SELECT chk_all() AS "copy text";
COPY item FROM STDIN WITH (FORMAT csv);
7100,copied,10,10.5,true
7101,,11,,true
7102,"b",12,1.2,false
\.
SELECT chk_all() AS "copy csv";

-- writable CTEs: insert, update and delete of the source in one statement
WITH ins AS (INSERT INTO item VALUES (8000, 'cte', 1, 1, true), (8001, 'cte', 2, 2, false) RETURNING id),
     upd AS (UPDATE item SET qty = qty * 2, grp = 'cte' WHERE grp = 'copied' RETURNING id),
     del AS (DELETE FROM item WHERE grp = 'merged' RETURNING id)
SELECT (SELECT count(*) FROM ins) > 0 AS inserted, (SELECT count(*) FROM upd) > 0 AS updated,
       (SELECT count(*) FROM del) > 0 AS deleted;
SELECT chk_all() AS "writable CTEs";
-- two INSERTs and two DELETEs of the source in one statement
WITH a AS (INSERT INTO item VALUES (8100, 'x2', 1, 1, true) RETURNING 1),
     b AS (INSERT INTO item VALUES (8101, 'x2', 2, 2, true), (8102, NULL, 3, 3, true) RETURNING 1),
     c AS (DELETE FROM item WHERE id = 8000 RETURNING 1),
     d AS (DELETE FROM item WHERE id = 8001 RETURNING 1)
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) + (SELECT count(*) FROM c) + (SELECT count(*) FROM d) > 0 AS done;
SELECT chk_all() AS "two inserts and two deletes";
-- rows moved by DELETE ... RETURNING feeding an INSERT
WITH moved AS (DELETE FROM item WHERE grp = 'x2' RETURNING *)
INSERT INTO item SELECT id + 100, 'y2', qty, price, flag FROM moved;
SELECT chk_all() AS "moved through a CTE";
-- a CTE writing the source and another table
WITH i AS (INSERT INTO item VALUES (8300, 'both', 1, 1, true) RETURNING grp)
INSERT INTO adj SELECT grp, 0 FROM i;
SELECT chk_all() AS "CTE writing two tables";

-- a CTE writing two sources with counters, each twice
WITH a AS (UPDATE adj SET delta = delta + 1 WHERE grp = 'b' RETURNING grp),
     b AS (INSERT INTO adj SELECT 'from-cte', count(*) FROM a RETURNING grp),
     c AS (UPDATE item SET qty = qty + 1 WHERE grp IN (SELECT grp FROM a) RETURNING id),
     d AS (DELETE FROM item WHERE grp = 'both' RETURNING id)
SELECT (SELECT count(*) FROM b) = 1 AS done;
SELECT chk_all() AS "CTE writing two sources";

-- writes through an updatable view on the source
CREATE VIEW flagged_items AS SELECT id, grp, qty, price FROM item WHERE flag WITH CHECK OPTION;
INSERT INTO flagged_items VALUES (8400, 'view', 1, 1);
UPDATE flagged_items SET qty = qty + 5, grp = 'view2' WHERE grp = 'view';
DELETE FROM flagged_items WHERE id = 8400;
UPDATE flagged_items SET price = price * 2 WHERE grp = 'y2';
SELECT chk_all() AS "writes through a view";
DROP VIEW flagged_items;

-- statements issued by a function, one row at a time, and prepared statements
CREATE FUNCTION bump(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. n LOOP
    UPDATE item SET qty = coalesce(qty, 0) + 1 WHERE id = (SELECT min(id) FROM item WHERE grp = 'b') ;
    INSERT INTO item VALUES (9000 + i, 'fn', i, i, i % 2 = 0);
    DELETE FROM item WHERE id = 9000 + i - 1 AND i % 3 = 0;
  END LOOP;
END $$;
SELECT bump(20);
SELECT chk_all() AS "statements from a function";
PREPARE ins(int, text, int) AS INSERT INTO item VALUES ($1, $2, $3, $3, true);
PREPARE mv(text, text) AS UPDATE item SET grp = $2 WHERE grp = $1;
EXECUTE ins(9500, 'prep', 1);
EXECUTE ins(9501, 'prep', 2);
EXECUTE ins(9502, NULL, 3);
EXECUTE ins(9503, 'prep', 4);
EXECUTE ins(9504, 'prep', 5);
EXECUTE ins(9505, 'prep', 6);
EXECUTE mv('prep', 'prep2');
EXECUTE mv('prep2', 'prep');
SELECT chk_all() AS "prepared statements";
DEALLOCATE ins;
DEALLOCATE mv;

-- a BEFORE ROW trigger rewrites the row: the counter sees the stored row
CREATE FUNCTION normalize_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.grp := upper(NEW.grp);
  NEW.qty := coalesce(NEW.qty, 0) * 10;
  RETURN NEW;
END $$;
CREATE TRIGGER normalize BEFORE INSERT OR UPDATE ON item FOR EACH ROW EXECUTE FUNCTION normalize_item();
INSERT INTO item VALUES (9600, 'lower', 1, 1, true), (9601, NULL, NULL, 1, true);
UPDATE item SET price = price + 1 WHERE id BETWEEN 9500 AND 9505;
SELECT chk_all() AS "before trigger rewrites rows";
-- a BEFORE trigger that skips rows
CREATE OR REPLACE FUNCTION normalize_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.grp = 'skip' THEN RETURN NULL; END IF;
  RETURN NEW;
END $$;
INSERT INTO item VALUES (9700, 'skip', 1, 1, true), (9701, 'kept', 1, 1, true);
UPDATE item SET grp = 'skip' WHERE id = 9701;
SELECT chk_all() AS "before trigger skips rows";
DROP TRIGGER normalize ON item;
DROP FUNCTION normalize_item();

-- writes made by another table's trigger (nested statements)
CREATE TABLE item_log (item_id int, grp text);
CREATE FUNCTION log_to_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO item SELECT n.item_id, n.grp, 1, 1, true FROM new_rows n;
  UPDATE item SET qty = qty + 1 WHERE grp = 'b';
  RETURN NULL;
END $$;
CREATE TRIGGER log_to_item AFTER INSERT ON item_log REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION log_to_item();
INSERT INTO item_log SELECT g, 'logged' FROM generate_series(9800, 9809) g;
SELECT chk_all() AS "nested statements";

-- a statement bigger than work_mem: many distinct keys in one statement
SET work_mem = '64kB';
INSERT INTO item SELECT g, 'k' || g, g % 13, g % 17, g % 2 = 0 FROM generate_series(200000, 229999) g;
SELECT chk_all() AS "30000 keys in one insert";
UPDATE item SET qty = qty + 1, grp = grp || 'x', flag = NOT flag WHERE id >= 200000;
SELECT chk_all() AS "30000 keys in one update";
DELETE FROM item WHERE id >= 200000 AND id % 3 <> 0;
SELECT chk_all() AS "20000 keys in one delete";
RESET work_mem;

-- transactions: own uncommitted changes are visible, ROLLBACK undoes them
BEGIN;
INSERT INTO item VALUES (10000, 'tx', 1, 1, true);
SELECT chk_all() AS "own insert inside transaction";
SELECT EXISTS (SELECT FROM item_by_grp WHERE grp = 'tx') AS own_group_visible;
UPDATE item SET grp = 'tx' WHERE grp = 'b';
DELETE FROM item WHERE grp = 'c';
SELECT chk_all() AS "own update and delete inside transaction";
ROLLBACK;
SELECT chk_all() AS "after rollback";
SELECT NOT EXISTS (SELECT FROM item_by_grp WHERE grp = 'tx') AS group_gone_after_rollback;

-- savepoints
BEGIN;
INSERT INTO item VALUES (10001, 'sp', 1, 1, true);
SAVEPOINT s1;
UPDATE item SET grp = 'sp2' WHERE id = 10001;
DELETE FROM item WHERE grp = 'b' AND id % 2 = 0;
SELECT chk_all() AS "inside savepoint s1";
ROLLBACK TO SAVEPOINT s1;
SELECT chk_all() AS "rolled back to s1";
SAVEPOINT s2;
UPDATE item SET qty = qty + 100 WHERE grp = 'sp';
RELEASE SAVEPOINT s2;
SELECT chk_all() AS "released s2";
SAVEPOINT s3;
INSERT INTO item VALUES (10002, 'sp', 5, 5, true);
SAVEPOINT s4;
DELETE FROM item WHERE grp = 'sp';
SELECT chk_all() AS "nested savepoints";
ROLLBACK TO SAVEPOINT s4;
RELEASE SAVEPOINT s3;
SELECT chk_all() AS "rolled back s4, released s3";
SAVEPOINT s5;
TRUNCATE item;
SELECT chk_all() AS "truncate inside savepoint";
ROLLBACK TO SAVEPOINT s5;
SELECT chk_all() AS "truncate rolled back";
COMMIT;
SELECT chk_all() AS "committed";

-- an error aborts the transaction and its counter changes
BEGIN;
INSERT INTO item VALUES (10100, 'err', 1, 1, true);
INSERT INTO item VALUES (10100, 'err', 1, 1, true);
ROLLBACK;
SELECT chk_all() AS "failed transaction";
-- a multi-row statement failing on its last row changes nothing
INSERT INTO item VALUES (10200, 'half', 1, 1, true), (10201, 'half', 1, 1, true), (1000, 'dup', 1, 1, true);
SELECT chk_all() AS "failed statement";
-- an exception block in a function rolls back its subtransaction
DO $$
BEGIN
  BEGIN
    INSERT INTO item VALUES (10300, 'sub', 1, 1, true);
    UPDATE item SET grp = 'sub' WHERE grp = 'b';
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
  INSERT INTO item VALUES (10301, 'after', 1, 1, true);
END $$;
SELECT chk_all() AS "exception block";

-- TRUNCATE, inside a transaction then committed, and writes after it
BEGIN;
TRUNCATE item;
SELECT chk_all() AS "truncated in transaction";
INSERT INTO item VALUES (1, 'after truncate', 1, 1, true), (2, NULL, NULL, NULL, false);
SELECT chk_all() AS "insert after truncate";
COMMIT;
SELECT chk_all() AS "truncate committed";
TRUNCATE item;
SELECT chk_all() AS "truncated";
SELECT n = 0 AND qty IS NULL AND amount IS NULL AS global_row_zero FROM item_total;

-- TRUNCATE ... CASCADE reaching the source through a foreign key
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent VALUES (1), (2);
ALTER TABLE item ADD COLUMN parent_id int REFERENCES parent;
INSERT INTO item VALUES (1, 'p', 1, 1, true, 1), (2, 'p', 2, 2, true, 2), (3, 'q', 3, 3, false, NULL);
SELECT chk_all() AS "rows with parents";
SET client_min_messages = warning;
TRUNCATE parent CASCADE;
RESET client_min_messages;
SELECT chk_all() AS "truncate cascade";

-- clean up
SELECT counters.drop_counter(counter) FROM expect ORDER BY counter::text;
DELETE FROM expect;
SELECT count(*) AS counter_triggers_left FROM pg_trigger WHERE tgrelid = 'item'::regclass AND tgname LIKE 'counters%';
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_stmt CASCADE;
