--
-- semantics: a counter is exactly its query.  SELECT * has the query's
-- columns (names, types, order); PostgreSQL's default names; result types
-- of count and sum; groups exist while a source row matches; NULL keys form
-- one group; sums over only NULLs are NULL; count(expr) skips NULLs; a global
-- counter always has one row; expression and multi-column keys; keys of many
-- types; quoted names; several counters on one source; statements that
-- change nothing counted write nothing.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_sem;
SET search_path = regress_sem, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

-- shape(counter): the columns of SELECT * FROM counter
CREATE FUNCTION shape(c regclass) RETURNS TABLE (attnum smallint, attname name, type text)
LANGUAGE sql AS $$
  SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a WHERE a.attrelid = c AND a.attnum > 0 AND NOT a.attisdropped
   ORDER BY a.attnum
$$;
-- same_shape(counter, query): true when the counter's columns are the
-- query's columns: same names, types, typmods, collations, same order
CREATE FUNCTION same_shape(c regclass, q text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  probe oid;
  result boolean;
BEGIN
  EXECUTE format('CREATE TEMP VIEW shape_probe AS %s', q);
  SELECT oid INTO probe FROM pg_class WHERE relname = 'shape_probe' AND relnamespace = pg_my_temp_schema();
  SELECT NOT EXISTS (
           (SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute
             WHERE attrelid = c AND attnum > 0 AND NOT attisdropped
            EXCEPT
            SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute
             WHERE attrelid = probe AND attnum > 0)
           UNION ALL
           (SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute
             WHERE attrelid = probe AND attnum > 0
            EXCEPT
            SELECT attnum, attname, atttypid, atttypmod, attcollation FROM pg_attribute
             WHERE attrelid = c AND attnum > 0 AND NOT attisdropped))
    INTO result;
  DROP VIEW shape_probe;
  RETURN result;
END $$;

CREATE TABLE m (
    id    int PRIMARY KEY,
    a     int,
    b     int,
    name  text,
    ts    timestamp,
    s     smallint,
    i     int,
    big   bigint,
    num   numeric(12,2),
    code  varchar(20),
    price numeric(10,2),
    f     float8,
    flag  boolean
);

-- result types of the aggregates: count -> bigint, sum(smallint|int) ->
-- bigint, sum(bigint|numeric) -> numeric
SELECT make_counter('c_types',
  $$SELECT a, count(*), sum(s) AS sum_s, sum(i) AS sum_i, sum(big) AS sum_big,
           sum(num) AS sum_num, count(i) AS count_i
      FROM m GROUP BY a$$);
SELECT * FROM shape('c_types');
-- PostgreSQL's default names: ?column?, function names, column names
SELECT make_counter('c_names',
  $$SELECT a + b, lower(name), date_trunc('day', ts), code, price, count(*), sum(i)
      FROM m GROUP BY 1, 2, 3, code, price$$);
SELECT * FROM shape('c_names');
-- aggregates before keys, keys in another order than GROUP BY
SELECT make_counter('c_order',
  $$SELECT count(*) AS n, b, sum(i) AS total, a FROM m GROUP BY a, b$$);
SELECT * FROM shape('c_order');
-- global counters: no GROUP BY
SELECT make_counter('c_global',
  $$SELECT count(*) AS n, sum(i) AS total, count(i) AS nonnull FROM m$$);
SELECT make_counter('c_global_filtered',
  $$SELECT sum(big) AS big_total FROM m WHERE flag$$);
-- expression keys
SELECT make_counter('c_lower',
  $$SELECT lower(name) AS lname, count(*) AS n FROM m WHERE name IS NOT NULL GROUP BY lower(name)$$);
SELECT make_counter('c_day',
  $$SELECT date_trunc('day', ts) AS day, count(*) AS n, sum(num) AS amount FROM m GROUP BY date_trunc('day', ts)$$);
SELECT make_counter('c_exprs',
  $$SELECT coalesce(a, -1) AS a0, a % 3 AS a_mod, i > 0 AS positive,
           CASE WHEN flag THEN 'y' ELSE 'n' END AS yn,
           count(nullif(i, 0)) AS nonzero, sum(i::bigint * 2 + 1) AS odd_sum, sum(s::numeric / 4) AS quarter
      FROM m
     WHERE lower(coalesce(name, '')) <> 'skip'
     GROUP BY 1, 2, 3, 4$$);
-- a float key (sums over floats are refused, keys are fine)
SELECT make_counter('c_float', $$SELECT f, count(*) AS n FROM m GROUP BY f$$);
-- the source aliased and schema-qualified, the counter in the current schema
SELECT make_counter('c_alias',
  $$SELECT x.a, count(*) AS n, sum(x.i) AS total FROM regress_sem.m AS x WHERE x.flag GROUP BY x.a$$);
-- keywords in any case, comments, odd spacing
SELECT make_counter('c_spacing',
  $$ select   B ,
            COUNT( * ) as "N"   -- the number of rows
       from M   /* the table */
      where FLAG is not true
      group by B $$);
SELECT * FROM shape('c_spacing');

-- every counter has exactly its query's columns
SELECT counter, same_shape(counter, query) FROM expect ORDER BY counter::text;
-- and they are all exact on the empty source
SELECT chk_all() AS "empty source";

-- the global counters have exactly one row on the empty source
SELECT count(*) = 1 AS one_row, bool_and(n = 0 AND total IS NULL AND nonnull = 0) AS zero_and_null FROM c_global;
SELECT count(*) = 1 AS one_row, bool_and(big_total IS NULL) AS null_sum FROM c_global_filtered;

INSERT INTO m VALUES
    (1, 1, 1, 'Foo', '2024-01-01 10:00', 1, 10, 100, 1.50, 'x', 9.99, 0.5, true),
    (2, 1, 1, 'FOO', '2024-01-01 23:59:59', 2, 20, 200, 2.25, 'x', 9.99, 0.5, false),
    (3, 1, 2, 'bar', '2024-01-02 00:00', 3, NULL, NULL, NULL, 'y', NULL, 1.5, NULL),
    (4, 2, 2, NULL, NULL, NULL, 40, 400, 4.00, NULL, 1.00, NULL, true);
SELECT chk_all() AS "first rows";

-- lower(name) puts 'Foo' and 'FOO' in one group; date_trunc puts one day in one group
SELECT n = 2 AS foo_one_group FROM c_lower WHERE lname = 'foo';
SELECT n = 2 AS one_day_one_group FROM c_day WHERE day = '2024-01-01';

-- a group row exists while at least one row matches
INSERT INTO m (id, a, b, i) VALUES (10, 7, 7, 1), (11, 7, 7, 2);
SELECT chk_all() AS "group (7,7) with two rows";
DELETE FROM m WHERE id = 10;
SELECT chk_all() AS "group (7,7) with one row";
SELECT EXISTS (SELECT FROM c_order WHERE a = 7 AND b = 7) AS row_still_there;
DELETE FROM m WHERE id = 11;
SELECT chk_all() AS "group (7,7) with no row";
SELECT NOT EXISTS (SELECT FROM c_order WHERE a = 7 AND b = 7) AS row_gone;
-- leaving a group by update, and by the filter
INSERT INTO m (id, a, b, i, flag) VALUES (12, 8, 8, 1, true);
UPDATE m SET a = 9 WHERE id = 12;
SELECT chk_all() AS "row moved from group 8 to group 9";
SELECT NOT EXISTS (SELECT FROM c_alias WHERE a = 8) AS old_group_gone, EXISTS (SELECT FROM c_alias WHERE a = 9) AS new_group_there;
UPDATE m SET flag = false WHERE id = 12;
SELECT chk_all() AS "row left the filter";
SELECT NOT EXISTS (SELECT FROM c_alias WHERE a = 9) AS filtered_group_gone;

-- NULL keys form ONE group, in every combination
INSERT INTO m (id, a, b, i) VALUES
    (20, NULL, NULL, 1), (21, NULL, NULL, 2), (22, NULL, 1, 3), (23, NULL, 1, NULL), (24, 1, NULL, 5), (25, 1, NULL, 6);
SELECT chk_all() AS "NULL keys";
SELECT count(*) = 1 AS one_null_null_group FROM c_order WHERE a IS NULL AND b IS NULL;
SELECT count(*) = 1 AS one_null_1_group FROM c_order WHERE a IS NULL AND b = 1;
SELECT count(*) = 1 AS one_1_null_group FROM c_order WHERE a = 1 AND b IS NULL;
UPDATE m SET a = NULL WHERE id = 24;
SELECT chk_all() AS "row moved into NULL group";
DELETE FROM m WHERE id IN (20, 21, 24);
SELECT chk_all() AS "NULL group emptied";
SELECT NOT EXISTS (SELECT FROM c_order WHERE a IS NULL AND b IS NULL) AS null_group_gone;

-- a sum over only NULL values is NULL; count(expr) skips NULLs
INSERT INTO m (id, a, b, i) VALUES (30, 50, 50, NULL), (31, 50, 50, NULL);
SELECT chk_all() AS "group of NULL values";
SELECT n = 2 AND total IS NULL AS null_sum FROM c_order WHERE a = 50 AND b = 50;
SELECT nonnull = (SELECT count(i) FROM m) AS count_skips_nulls FROM c_global;
INSERT INTO m (id, a, b, i) VALUES (32, 50, 50, 5);
SELECT chk_all() AS "one value in the group";
SELECT total = 5 AS sum_of_one FROM c_order WHERE a = 50 AND b = 50;
DELETE FROM m WHERE id = 32;
SELECT chk_all() AS "the value deleted again";
SELECT total IS NULL AS null_again FROM c_order WHERE a = 50 AND b = 50;
UPDATE m SET i = 7 WHERE id = 30;
UPDATE m SET i = NULL WHERE id = 30;
SELECT chk_all() AS "value set and reset to NULL";
SELECT total IS NULL AS null_again FROM c_order WHERE a = 50 AND b = 50;
-- values that cancel out: the sum is 0, not NULL
INSERT INTO m (id, a, b, i) VALUES (33, 50, 50, 5), (34, 50, 50, -5);
SELECT chk_all() AS "values cancel out";
SELECT total = 0 AS zero_not_null FROM c_order WHERE a = 50 AND b = 50;

-- sums do not overflow: sum(int) is bigint, sum(bigint) is numeric
INSERT INTO m (id, a, b, i, big, flag) SELECT g, 60, 60, 2147483647, 9223372036854775807, true FROM generate_series(40, 45) g;
SELECT chk_all() AS "huge values";
SELECT total > 2147483647 AS beyond_int FROM c_order WHERE a = 60 AND b = 60;
SELECT big_total > 9223372036854775807 AS beyond_bigint FROM c_global_filtered;
INSERT INTO m (id, a, b, i, big, flag) VALUES (46, 60, 60, -2147483647, -9223372036854775808, true);
DELETE FROM m WHERE id BETWEEN 40 AND 43;
SELECT chk_all() AS "huge values removed";
-- numeric sums are exact
INSERT INTO m (id, a, num, s) SELECT g, 70, 0.01, 1 FROM generate_series(100, 1099) g;
SELECT chk_all() AS "a thousand cents";
SELECT amount = (SELECT sum(num) FROM m WHERE ts IS NULL) AS exact FROM c_day WHERE day IS NULL;

-- numeric NaN and infinities: a sum with a NaN is NaN, with +Infinity is
-- Infinity, with both infinities NaN, and finite again once they are gone
CREATE TABLE special (id int PRIMARY KEY, k int, x numeric);
SELECT make_counter('c_special', $$SELECT k, count(*) AS n, sum(x) AS s FROM special GROUP BY k$$);
INSERT INTO special VALUES (1, 1, 1.5), (2, 1, 'NaN'), (3, 2, 'Infinity'), (4, 2, 1), (5, 3, '-Infinity'),
                           (6, 3, 'Infinity'), (7, 4, 'NaN'), (8, 4, 'NaN'), (9, 5, 2);
SELECT chk_all() AS "special values";
DELETE FROM special WHERE id IN (2, 3, 5);
SELECT chk_all() AS "some special values deleted";
UPDATE special SET x = 7 WHERE id IN (6, 7);
UPDATE special SET x = 'NaN' WHERE id = 9;
SELECT chk_all() AS "special values updated";
UPDATE special SET x = 1 WHERE x = 'NaN';
SELECT chk_all() AS "no special value left";
DELETE FROM expect WHERE counter = 'c_special'::regclass;
SELECT counters.drop_counter('c_special');

-- float keys: 0 and -0 are one group, NaN is one group
INSERT INTO m (id, f) VALUES (1200, 0), (1201, '-0'), (1202, 'NaN'), (1203, 'NaN'), (1204, 'Infinity');
SELECT chk_all() AS "float keys";
SELECT count(*) = 1 AS one_zero_group FROM c_float WHERE f = 0;
SELECT count(*) = 1 AS one_nan_group FROM c_float WHERE f = 'NaN';

-- more rows, mixed, then everything changes
INSERT INTO m SELECT g, g % 5, g % 3, CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN 'skip' ELSE 'n' || g % 7 END,
                     '2024-02-01'::timestamp + g * interval '7 hours', (g % 9)::smallint, g % 17 - 8, g * 1000,
                     g / 7.0, 'c' || g % 2, g % 5, g % 4 / 2.0, g % 3 = 0
  FROM generate_series(2000, 2999) g;
SELECT chk_all() AS "a thousand mixed rows";
UPDATE m SET a = b, b = a, name = upper(name), ts = ts + interval '13 hours', i = -i, flag = NOT flag WHERE id % 2 = 0;
SELECT chk_all() AS "everything changes";
DELETE FROM m WHERE id % 3 = 1;
SELECT chk_all() AS "a third deleted";

-- statements that change nothing counted write nothing
SELECT storage_state() AS st0 \gset
UPDATE m SET id = id + 100000 WHERE id < 50;                      -- uncounted column
UPDATE m SET name = upper(name) WHERE name IS NOT NULL;           -- lower(name) unchanged
UPDATE m SET a = a, b = b, i = i, num = num;                       -- same values
UPDATE m SET code = code WHERE false;                              -- no row
DELETE FROM m WHERE id < 0;                                        -- no row
SELECT chk_all() AS "statements changing nothing counted";
SELECT storage_state() = :'st0' AS nothing_written;
-- only the counters of changed keys are written
SELECT storage_state() AS st0 \gset
INSERT INTO m (id, a, b, i) VALUES (5000, 1, 1, 0);
SELECT chk_all() AS "one row";
SELECT storage_state() <> :'st0' AS written;

-- the global counters after deleting every row, and after TRUNCATE
DELETE FROM m;
SELECT chk_all() AS "all rows deleted";
SELECT count(*) = 1 AS one_row, bool_and(n = 0 AND total IS NULL AND nonnull = 0) AS zero_and_null FROM c_global;
INSERT INTO m (id, i, big, flag) VALUES (1, 1, 1, true), (2, NULL, NULL, NULL);
SELECT chk_all() AS "rows again";
TRUNCATE m;
SELECT chk_all() AS "truncated";
SELECT count(*) = 1 AS one_row, bool_and(n = 0 AND total IS NULL AND nonnull = 0) AS zero_and_null FROM c_global;
SELECT count(*) = 1 AS one_row, bool_and(big_total IS NULL) AS null_sum FROM c_global_filtered;
SELECT count(*) = 0 AS keyed_empty FROM c_order;

-- a counter created on a table that already has rows, and a global counter
-- created on an empty table
INSERT INTO m (id, a, b, i) SELECT g, g % 4, NULL, g FROM generate_series(1, 100) g;
SELECT make_counter('c_late', $$SELECT a, b, count(*) AS n, sum(i) AS total FROM m GROUP BY a, b$$);
CREATE TABLE empty_t (v int);
SELECT make_counter('c_empty_global', $$SELECT count(*) AS n, sum(v) AS total FROM empty_t$$);
SELECT chk_all() AS "created late, created empty";
SELECT count(*) = 1 AS one_row FROM c_empty_global;

-- keys of other types: date, uuid, jsonb, an enum, a range, a "C" collated
-- text; a sum over a domain over integer
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN amount AS integer CHECK (VALUE >= 0);
CREATE TABLE kinds (id int PRIMARY KEY, d date, u uuid, arr int[], j jsonb, e mood, dom amount, t text COLLATE "C", r int4range);
SELECT make_counter('c_kinds',
  $$SELECT d, u, j, e, t, r, count(*) AS n, sum(dom) AS total FROM kinds GROUP BY d, u, j, e, t, r$$);
SELECT * FROM shape('c_kinds');
SELECT same_shape('c_kinds', query) FROM expect WHERE counter = 'c_kinds'::regclass;
INSERT INTO kinds VALUES
    (1, '2024-01-01', '00000000-0000-0000-0000-000000000001', '{1,2}', '{"a": 1}', 'ok', 1, 'a', '[1,5)'),
    (2, '2024-01-01', '00000000-0000-0000-0000-000000000001', '{1,2}', '{"a": 1}', 'ok', 2, 'a', '[1,4]'),
    (3, '2024-01-01', '00000000-0000-0000-0000-000000000001', '{2,1}', '{"a": 1}', 'ok', 3, 'A', 'empty'),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (5, NULL, NULL, '{}', 'null', 'sad', 5, '', '(,)');
SELECT chk_all() AS "keys of many types";
UPDATE kinds SET e = 'happy', j = j || '{"b": 2}' WHERE id IN (1, 4);
DELETE FROM kinds WHERE id = 2;
SELECT chk_all() AS "keys of many types changed";

-- an array key: {1,2} and {2,1} are two groups, NULL and {} two more
SELECT counters.create_counter('c_arr', $$SELECT arr, count(*) AS n, sum(dom) AS total FROM kinds GROUP BY arr$$);
SELECT chk('c_arr', $$SELECT arr, count(*) AS n, sum(dom) AS total FROM kinds GROUP BY arr$$);
INSERT INTO kinds (id, arr, dom) VALUES (6, '{2,1}', 6), (7, '{}', NULL), (8, '{NULL}', 8);
UPDATE kinds SET arr = arr || 3 WHERE id = 1;
DELETE FROM kinds WHERE id = 5;
SELECT chk('c_arr', $$SELECT arr, count(*) AS n, sum(dom) AS total FROM kinds GROUP BY arr$$);
SELECT counters.drop_counter('c_arr');

-- a key under a nondeterministic collation: 'abc', 'ABC' and 'Abc' are one
-- group, whichever spelling the counter shows; a key over a generated column
CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE ci (id int PRIMARY KEY, name text COLLATE case_insensitive, g int GENERATED ALWAYS AS (id % 3) STORED);
SELECT make_counter('c_ci', $$SELECT name, count(*) AS n FROM ci GROUP BY name$$);
SELECT make_counter('c_generated', $$SELECT g, count(*) AS n FROM ci GROUP BY g$$);
INSERT INTO ci VALUES (1, 'abc'), (2, 'ABC'), (3, 'Abc'), (4, 'x');
SELECT chk_all() AS "case-insensitive keys";
SELECT count(*) = 1 AS one_group FROM c_ci WHERE name = 'ABC';
DELETE FROM ci WHERE id = 1;
UPDATE ci SET id = id + 10 WHERE id > 2;
SELECT chk_all() AS "first spelling deleted";
DELETE FROM expect WHERE counter IN ('c_ci'::regclass, 'c_generated'::regclass);
SELECT counters.drop_counter('c_ci');
SELECT counters.drop_counter('c_generated');

-- keys only, no aggregate: the set of keys in use
SELECT make_counter('c_keys_only', $$SELECT e, t FROM kinds GROUP BY e, t$$);
SELECT * FROM shape('c_keys_only');
INSERT INTO kinds (id, e, t) VALUES (20, 'ok', 'a'), (21, 'happy', 'new');
DELETE FROM kinds WHERE id IN (1, 21);
UPDATE kinds SET t = 'b' WHERE id = 3;
SELECT chk_all() AS "keys only";

-- quoted identifiers everywhere: table, columns, output names, counter name
CREATE TABLE "Odd Table" ("group" text, "Mixed Case" int, "with space" numeric, "select" int);
SELECT make_counter('"Odd Counter"',
  $$SELECT "group", "Mixed Case" AS "Key", count(*) AS "count(*)", sum("with space") AS "Sum Of",
           sum("select") AS "from"
      FROM "Odd Table" GROUP BY "group", "Mixed Case"$$);
SELECT relname FROM pg_class WHERE oid = '"Odd Counter"'::regclass;
SELECT * FROM shape('"Odd Counter"');
INSERT INTO "Odd Table" VALUES ('a', 1, 1.5, 1), ('a', 1, 2.5, NULL), (NULL, NULL, NULL, 3), ('b''c', 2, -1, 4);
UPDATE "Odd Table" SET "Mixed Case" = 3 WHERE "group" = 'a' AND "with space" > 2;
DELETE FROM "Odd Table" WHERE "select" = 3;
SELECT chk_all() AS "quoted identifiers";

-- column names that a generated statement might use for itself
CREATE TABLE clash (x int, u int, v int, f int, src int, kk int, "key" int, stored int, expected int);
SELECT make_counter('c_clash',
  $$SELECT x, u, src, kk, "key", stored, expected, count(*) AS v, sum(v) AS f, count(f) AS n
      FROM clash GROUP BY x, u, src, kk, "key", stored, expected$$);
INSERT INTO clash SELECT g % 2, g % 3, g, g, g % 2, g % 3, g % 2, g % 3, g % 2 FROM generate_series(1, 30) g;
UPDATE clash SET x = x + 1, v = v * 2 WHERE u = 1;
DELETE FROM clash WHERE src = 0;
SELECT chk_all() AS "clashing names";
SELECT count(*) AS verify_rows FROM counters.verify('c_clash');
SELECT counters.rebuild('c_clash') AS rows_changed;

-- clean up
SELECT counters.drop_counter(counter) FROM expect ORDER BY counter::text;
DELETE FROM expect;
SELECT count(*) AS counter_triggers_left FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'regress_sem'::regnamespace AND t.tgname LIKE 'counters%';
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_sem CASCADE;
