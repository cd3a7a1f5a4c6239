--
-- bad_input: every refused definition gives a real SQLSTATE (never XX000),
-- a message saying what is wrong, a hint where one helps, and leaves nothing
-- behind: no trigger on the source, no relation, no definition.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_bad;
SET search_path = regress_bad, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

-- try_create(query [, name [, mode]]): create_counter that must fail; returns
-- try_sql()'s 'SQLSTATE: message' with detail and hint.  A counter that gets
-- created is reported as ACCEPTED and rolled back.
CREATE FUNCTION try_create(q text, name text DEFAULT 'bad_counter', mode text DEFAULT 'immediate')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r text;
BEGIN
  r := try_sql(format('SELECT counters.create_counter(%L, %L, %L)', name, q, mode));
  IF r = 'no error' THEN
    RAISE EXCEPTION 'counter % was created', name USING ERRCODE = 'QA001';
  END IF;
  RETURN r;
EXCEPTION WHEN SQLSTATE 'QA001' THEN
  RETURN 'ACCEPTED (an error was expected)';
END $$;
-- footprint(): what create_counter could leave behind
CREATE FUNCTION footprint() RETURNS text LANGUAGE sql AS $$
  SELECT format('triggers %s, relations %s, types %s, depends %s, definitions %s, hidden relations %s',
                (SELECT count(*) FROM pg_trigger),
                (SELECT count(*) FROM pg_class),
                (SELECT count(*) FROM pg_type),
                (SELECT count(*) FROM pg_depend),
                (SELECT count(*) FROM counters.counter_def),
                (SELECT count(*) FROM pg_class WHERE relname LIKE '\_counters\_%'))
$$;

CREATE TABLE t (id int PRIMARY KEY, k int, k2 text, v int, r real, d double precision,
                ts timestamptz, tsl timestamp, j json, flag boolean);
CREATE TABLE t2 (id int PRIMARY KEY, w int);
INSERT INTO t VALUES (1, 1, 'a', 1, 1.5, 2.5, '2024-01-01 00:00+00', '2024-01-01', '{}', true);
CREATE FUNCTION my_volatile(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1';
CREATE FUNCTION my_stable(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1';
CREATE FUNCTION my_immutable(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
SELECT footprint() AS fp0 \gset

-- volatile and stable functions in keys, filter and aggregate arguments
SELECT try_create($$SELECT (random() * 10)::int AS r, count(*) FROM t GROUP BY 1$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE random() > 0.5 GROUP BY k$$);
SELECT try_create($$SELECT k, sum((random() * 10)::int) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE ts > now() GROUP BY k$$);
SELECT try_create($$SELECT date_trunc('day', ts) AS day, count(*) FROM t GROUP BY 1$$);
SELECT try_create($$SELECT k, sum(extract(epoch FROM now())::int) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT my_volatile(k) AS mk, count(*) FROM t GROUP BY 1$$);
SELECT try_create($$SELECT k, count(my_stable(v)) AS n FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE k2::regclass IS NOT NULL GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE nextval('counters.storage_seq') > 0 GROUP BY k$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- joins, subqueries, CTEs
SELECT try_create($$SELECT t.k, count(*) FROM t JOIN t2 ON t2.id = t.id GROUP BY t.k$$);
SELECT try_create($$SELECT t.k, count(*) FROM t, t2 WHERE t2.id = t.id GROUP BY t.k$$);
SELECT try_create($$SELECT t.k, count(*) FROM t LEFT JOIN t2 USING (id) GROUP BY t.k$$);
SELECT try_create($$SELECT k, count(*) FROM (SELECT * FROM t) s GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE id IN (SELECT id FROM t2) GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE EXISTS (SELECT FROM t2 WHERE t2.id = t.id) GROUP BY k$$);
SELECT try_create($$SELECT k, sum((SELECT max(w) FROM t2)) AS s FROM t GROUP BY k$$);
SELECT try_create($$WITH x AS (SELECT * FROM t) SELECT k, count(*) FROM x GROUP BY k$$);
SELECT try_create($$WITH x AS (SELECT 1) SELECT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t, LATERAL (SELECT 1) l GROUP BY k$$);
SELECT try_create($$SELECT count(*) FROM generate_series(1, 3)$$);
SELECT try_create($$SELECT count(*) FROM (VALUES (1)) v(x)$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- set operations, DISTINCT, HAVING, ORDER BY, LIMIT, locking
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k UNION SELECT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k UNION ALL SELECT 1, 1$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k INTERSECT SELECT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k EXCEPT SELECT 1, 1$$);
SELECT try_create($$SELECT DISTINCT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT DISTINCT ON (k) k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k HAVING count(*) > 1$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k ORDER BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k LIMIT 10$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k OFFSET 1$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k FETCH FIRST 1 ROW ONLY$$);
SELECT try_create($$SELECT count(*) FROM t FOR UPDATE$$);
SELECT try_create($$SELECT k, count(*) FROM t TABLESAMPLE bernoulli (50) GROUP BY k$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- window functions, grouping sets, FILTER, DISTINCT and ORDER BY in aggregates
SELECT try_create($$SELECT k, count(*), rank() OVER (ORDER BY k) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) OVER (PARTITION BY k) FROM t$$);
SELECT try_create($$SELECT k, sum(count(*)) OVER () AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, k2, count(*) FROM t GROUP BY GROUPING SETS ((k), (k2))$$);
SELECT try_create($$SELECT k, k2, count(*) FROM t GROUP BY ROLLUP (k, k2)$$);
SELECT try_create($$SELECT k, k2, count(*) FROM t GROUP BY CUBE (k, k2)$$);
SELECT try_create($$SELECT k, count(*) FILTER (WHERE v > 0) AS n FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(v) FILTER (WHERE flag) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(DISTINCT v) AS n FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(DISTINCT v) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(v ORDER BY v) AS s FROM t GROUP BY k$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- aggregates other than count and sum; sums over floating point and other types
SELECT try_create($$SELECT k, avg(v) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, min(v) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, max(v) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, string_agg(k2, ',') AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, bool_or(flag) AS b FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, array_agg(v) AS a FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(r) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(d) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(v::float8) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(tsl - tsl) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(v::money) AS s FROM t GROUP BY k$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- aggregates inside expressions, entries that are neither key nor aggregate,
-- keys missing from the select list, no aggregate at all
SELECT try_create($$SELECT k, count(*) + 1 AS n FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, sum(v) * 2 AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, coalesce(sum(v), 0) AS s FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*)::int AS n FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, 1 AS one, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, k + 1 AS k1, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, v, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k, k2$$);
SELECT try_create($$SELECT k, v FROM t$$);
SELECT try_create($$SELECT * FROM t$$);
SELECT try_create($$SELECT k, count(*) FROM t$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- output column names: duplicates, reserved names
SELECT try_create($$SELECT k, count(*), count(v) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) AS k FROM t GROUP BY k$$);
SELECT try_create($$SELECT k AS n, count(*) AS n FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) AS _counters_rows FROM t GROUP BY k$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- key types without equality
SELECT try_create($$SELECT j, count(*) FROM t GROUP BY j$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- sources that are not plain tables, temporary tables, counters
CREATE VIEW v_t AS SELECT * FROM t;
CREATE MATERIALIZED VIEW mv_t AS SELECT * FROM t;
CREATE FOREIGN DATA WRAPPER regress_counters_dummy;
CREATE SERVER regress_counters_server FOREIGN DATA WRAPPER regress_counters_dummy;
CREATE FOREIGN TABLE ft (k int, v int) SERVER regress_counters_server;
CREATE TEMP TABLE tmp_t (k int, v int);
CREATE SEQUENCE seq_t;
CREATE TABLE inh_parent (k int);
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT counters.create_counter('good_counter', $$SELECT k, count(*) AS n FROM t GROUP BY k$$);
SELECT footprint() AS fp0 \gset
SELECT try_create($$SELECT k, count(*) FROM v_t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM mv_t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM ft GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM tmp_t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM pg_temp.tmp_t GROUP BY k$$);
SELECT try_create($$SELECT count(*) FROM seq_t$$);
SELECT try_create($$SELECT k, count(*) FROM inh_parent GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM inh_child GROUP BY k$$);
SELECT try_create($$SELECT k, sum(n) AS s FROM good_counter GROUP BY k$$);
SELECT try_create($$SELECT relkind, count(*) FROM pg_class GROUP BY relkind$$);
SELECT try_create($$SELECT count(*) FROM no_such_table$$);
SELECT try_create($$SELECT no_such_column, count(*) FROM t GROUP BY 1$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- names: taken by a table, a view, a counter; in a schema that does not exist
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 't2');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'v_t');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'good_counter');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'no_such_schema.c');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, '');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'a.b.c.d');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, '"unterminated');
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- modes ('buffered' is a valid mode, tested with buffered counters)
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'bad_counter', 'sometimes');
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'bad_counter', '');
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- not one SELECT: several statements, other statements, empty, malformed
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k; SELECT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k; DROP TABLE t2$$);
SELECT try_create($$INSERT INTO t2 VALUES (1, 1)$$);
SELECT try_create($$DELETE FROM t2 RETURNING id, w$$);
SELECT try_create($$VALUES (1, 2)$$);
SELECT try_create($$TABLE t$$);
SELECT try_create($$SELECT 1$$);
SELECT try_create($$SELECT count(*)$$);
SELECT try_create($$SELECT k, count(*) INTO new_table FROM t GROUP BY k$$);
SELECT try_create($$EXPLAIN SELECT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$CREATE TABLE x (a int)$$);
SELECT try_create('');
SELECT try_create('   ');
SELECT try_create('-- only a comment');
SELECT try_create(';');
SELECT try_create($$SELECT k, count(* FROM t GROUP BY k$$);
SELECT try_create($$SELEKT k, count(*) FROM t GROUP BY k$$);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY$$);
SELECT try_create($$SELECT k, count(*) FROM t WHERE $1 > 0 GROUP BY k$$);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- NULL arguments
SELECT try_create(NULL);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, NULL);
SELECT try_create($$SELECT k, count(*) FROM t GROUP BY k$$, 'bad_counter', NULL);
SELECT footprint() = :'fp0' AS nothing_left_behind;

-- the same errors at top level, not in a subtransaction: nothing is left
-- behind, and the source and its counter keep working
\set VERBOSITY terse
SELECT counters.create_counter('bad_counter', $$SELECT k, avg(v) FROM t GROUP BY k$$);
\echo :LAST_ERROR_SQLSTATE
SELECT counters.create_counter('bad_counter', $$SELECT k, count(*) FROM v_t GROUP BY k$$);
\echo :LAST_ERROR_SQLSTATE
SELECT counters.create_counter('bad_counter', $$SELECT k, count(*) FROM t WHERE random() > 0 GROUP BY k$$);
\echo :LAST_ERROR_SQLSTATE
SELECT counters.create_counter('good_counter', $$SELECT k, count(*) FROM t GROUP BY k$$);
\echo :LAST_ERROR_SQLSTATE
SELECT counters.create_counter('bad_counter', $$SELECT k, count(* FROM t GROUP BY k$$);
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT counters.create_counter('bad_counter', $$SELECT k, sum(r) FROM t GROUP BY k$$);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
\set VERBOSITY default
SELECT footprint() = :'fp0' AS nothing_left_behind;
SELECT tgname FROM pg_trigger WHERE tgrelid = 't'::regclass ORDER BY 1;
SELECT count(*) AS t2_triggers FROM pg_trigger WHERE tgrelid = 't2'::regclass;
INSERT INTO t (id, k, v) VALUES (2, 1, 2), (3, 2, 3);
UPDATE t SET k = 3 WHERE id = 1;
SELECT chk('good_counter', $$SELECT k, count(*) AS n FROM t GROUP BY k$$);
-- after all these failures a good counter can still be created on t2
SELECT counters.create_counter('t2_counter', $$SELECT w, count(*) AS n FROM t2 GROUP BY w$$);
INSERT INTO t2 VALUES (1, 1), (2, 1), (3, NULL);
SELECT chk('t2_counter', $$SELECT w, count(*) AS n FROM t2 GROUP BY w$$);

-- clean up
SELECT counters.drop_counter('good_counter');
SELECT counters.drop_counter('t2_counter');
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_bad CASCADE;
DROP SERVER regress_counters_server;
DROP FOREIGN DATA WRAPPER regress_counters_dummy;
