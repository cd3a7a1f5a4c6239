--
-- core_api: the SQL API.  create_counter returns regclass and names the
-- relation as CREATE TABLE would; counters.counters lists counters;
-- drop_counter and DROP VIEW remove the relation, its storage, its
-- definition and, with the last counter of a source, the source's triggers;
-- everything is transactional; the source's DDL (new, dropped and renamed
-- columns, renamed table) does not break a counter, dropping what a counter
-- uses is refused unless CASCADE; DROP EXTENSION.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
RESET client_min_messages;
CREATE SCHEMA regress_api;
CREATE SCHEMA regress_api_other;
SET search_path = regress_api, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all
-- the counter triggers of a table
CREATE FUNCTION source_triggers(t regclass) RETURNS TABLE (tgname name, tgenabled "char", def text)
LANGUAGE sql AS $$
  SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
   WHERE tgrelid = t AND NOT tgisinternal ORDER BY tgname
$$;
-- the hidden relations of a counter (its storage table, its deltas table,
-- its definition view, their indexes) are in the schema counters, named
-- after it: hidden_prefix(counter) is its '<schema>.<counter>.',
-- hidden_left(prefixes) how many relations with these prefixes exist,
-- n_hidden() how many relations of the schema counters are not the
-- extension's own
CREATE FUNCTION hidden_left(prefixes text[]) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_class c, unnest(prefixes) p WHERE starts_with(c.relname, p)
$$;
CREATE FUNCTION n_hidden() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_class c
   WHERE c.relnamespace = to_regnamespace('counters')
     AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                        AND d.objid = c.oid AND d.deptype = 'e')
$$;

-- the extension and its API
SELECT extname, extrelocatable, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'counters';
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result
  FROM pg_proc p
 WHERE p.pronamespace = 'counters'::regnamespace
   AND p.proname IN ('create_counter', 'drop_counter', 'verify', 'rebuild')
 ORDER BY p.proname;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'counters.counters'::regclass AND attnum > 0 ORDER BY attnum;

CREATE TABLE src (id int PRIMARY KEY, k int, v int, note text);
INSERT INTO src VALUES (1, 1, 10, 'a'), (2, 1, 20, 'b'), (3, 2, NULL, 'c');
SELECT count(*) AS triggers_before FROM source_triggers('src');
SELECT n_defs() AS ndefs \gset

-- create_counter returns the new relation as regclass
SELECT counters.create_counter('by_k', $$SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k$$) AS created;
INSERT INTO expect VALUES ('by_k', $$SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k$$);
SELECT pg_typeof(counters.create_counter('by_k_nonnull', $$SELECT k, count(v) AS n FROM src GROUP BY k$$)) AS returns;
INSERT INTO expect VALUES ('by_k_nonnull', $$SELECT k, count(v) AS n FROM src GROUP BY k$$);
-- filled from the rows already there
SELECT chk_all() AS "filled";
-- one definition and hidden relations each
SELECT n_defs() = :ndefs + 2 AS two_definitions,
       hidden_prefix('by_k') <> hidden_prefix('by_k_nonnull') AS distinct_prefixes,
       hidden_left(ARRAY[hidden_prefix('by_k')]) >= 2 AND hidden_left(ARRAY[hidden_prefix('by_k_nonnull')]) >= 2
         AS hidden_relations;
-- the counter is a view in the current schema, owned by its creator; its
-- storage table and its definition view are hidden relations in the
-- schema counters, named after it
SELECT c.relname, c.relnamespace::regnamespace AS schema, c.relkind,
       c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owned_by_creator
  FROM pg_class c WHERE c.oid IN ('by_k'::regclass, 'by_k_nonnull'::regclass) ORDER BY 1;
SELECT s.relnamespace::regnamespace AS storage_schema, s.relkind AS storage_kind,
       s.relname AS storage_name,
       q.relnamespace::regnamespace AS definition_schema, q.relkind AS definition_kind,
       q.relname AS definition_name
  FROM counters.counter_def d JOIN pg_class s ON s.oid = d.storage JOIN pg_class q ON q.oid = d.definition
 WHERE d.counter = 'by_k'::regclass;
-- counters.counters: relation, source, the query as given, mode
SELECT counter, source, query, mode FROM counters.counters WHERE source = 'src'::regclass ORDER BY counter::text;
-- the source has the four statement triggers (the truncate trigger fires
-- always) and the row trigger that counts where session_replication_role is
-- replica
SELECT * FROM source_triggers('src');

-- a schema-qualified name puts the counter in that schema
SELECT make_counter('regress_api_other.k_total', $$SELECT count(*) AS n, sum(v) AS total FROM src$$);
SELECT relnamespace::regnamespace AS schema FROM pg_class WHERE oid = 'regress_api_other.k_total'::regclass;
-- an unqualified name puts it in the current schema
SET search_path = regress_api_other, regress_api, public;
SELECT make_counter('k_small', $$SELECT k, count(*) AS n FROM src WHERE v < 15 GROUP BY k$$);
SELECT relnamespace::regnamespace AS schema FROM pg_class WHERE oid = 'k_small'::regclass;
SET search_path = regress_api, public;
-- the name is read as an identifier, as CREATE TABLE would: quoted names
-- keep case and spaces, unquoted names are folded to lower case
SELECT make_counter('"K Mixed"', $$SELECT k, sum(v) AS total FROM src GROUP BY k$$);
SELECT make_counter('K_Folded', $$SELECT k, sum(v) AS total FROM src GROUP BY k$$);
SELECT make_counter('"regress_api_other"."Quoted Schema Qualified"', $$SELECT count(*) AS n FROM src$$);
SELECT relname, relnamespace::regnamespace AS schema FROM pg_class
 WHERE oid IN ('"K Mixed"'::regclass, 'k_folded'::regclass, 'regress_api_other."Quoted Schema Qualified"'::regclass)
 ORDER BY 1;
-- an explicit mode
SELECT make_counter('k_immediate', $$SELECT v, count(*) AS n FROM src GROUP BY v$$, 'immediate');
SELECT counter, mode FROM counters.counters WHERE source = 'src'::regclass ORDER BY counter::text;

-- all of them are maintained
INSERT INTO src VALUES (4, 2, 5, 'd'), (5, NULL, 1, 'e');
UPDATE src SET k = 3 WHERE id = 1;
DELETE FROM src WHERE id = 2;
SELECT chk_all() AS "eight counters on one source";
SELECT count(*) AS triggers_with_eight_counters FROM source_triggers('src');

-- drop_counter removes the relation, its storage and its definition
SELECT n_defs() AS ndefs \gset
SELECT storage AS dropped_storage, hidden_prefix(counter) AS dropped_prefix
  FROM counters.counter_def WHERE counter = 'by_k_nonnull'::regclass \gset
DELETE FROM expect WHERE counter::text = 'by_k_nonnull';
SELECT counters.drop_counter('by_k_nonnull');
SELECT to_regclass('by_k_nonnull') IS NULL AS relation_gone,
       to_regclass(:'dropped_storage') IS NULL AS storage_gone,
       n_defs() = :ndefs - 1 AS definition_gone,
       hidden_left(ARRAY[:'dropped_prefix']) = 0 AS hidden_relations_gone;
-- the source keeps its triggers while other counters are on it
SELECT tgname FROM source_triggers('src');
INSERT INTO src VALUES (6, 1, 6, 'f');
SELECT chk_all() AS "after drop_counter";

-- DROP VIEW does the same
SELECT n_defs() AS ndefs \gset
SELECT storage AS dropped_storage, hidden_prefix(counter) AS dropped_prefix
  FROM counters.counter_def WHERE counter = 'regress_api_other.k_total'::regclass \gset
DELETE FROM expect WHERE counter = 'regress_api_other.k_total'::regclass;
DROP VIEW regress_api_other.k_total;
SELECT to_regclass('regress_api_other.k_total') IS NULL AS relation_gone,
       to_regclass(:'dropped_storage') IS NULL AS storage_gone,
       n_defs() = :ndefs - 1 AS definition_gone,
       hidden_left(ARRAY[:'dropped_prefix']) = 0 AS hidden_relations_gone;
-- two at once
SELECT array_agg(hidden_prefix(c))::text AS dropped_prefixes
  FROM unnest(ARRAY['"K Mixed"'::regclass, 'k_folded'::regclass]) c \gset
DELETE FROM expect WHERE counter IN ('"K Mixed"'::regclass, 'k_folded'::regclass);
DROP VIEW "K Mixed", k_folded;
SELECT n_defs() = :ndefs - 3 AS definitions_gone, hidden_left(:'dropped_prefixes'::text[]) = 0 AS hidden_relations_gone;
-- DROP SCHEMA ... CASCADE takes the counters in it
SELECT array_agg(hidden_prefix(counter))::text AS dropped_prefixes
  FROM counters.counter_def WHERE counter::text LIKE 'regress_api_other.%' \gset
DELETE FROM expect WHERE counter::text LIKE 'regress_api_other.%';
SET client_min_messages = warning;
DROP SCHEMA regress_api_other CASCADE;
RESET client_min_messages;
SELECT n_defs() = :ndefs - 5 AS definitions_gone, hidden_left(:'dropped_prefixes'::text[]) = 0 AS hidden_relations_gone;
UPDATE src SET v = v + 1;
SELECT chk_all() AS "after DROP VIEW and DROP SCHEMA";
SELECT tgname FROM source_triggers('src');

-- the last counter of a source takes the triggers with it: drop_counter ...
DELETE FROM expect WHERE counter::text = 'k_immediate';
SELECT counters.drop_counter('k_immediate');
SELECT count(*) AS triggers_with_one_counter FROM source_triggers('src');
DELETE FROM expect WHERE counter::text = 'by_k';
SELECT counters.drop_counter('by_k');
SELECT count(*) AS triggers_without_counters FROM source_triggers('src');
SELECT n_defs() = :defs_before AS no_definitions_left;
-- ... and DROP VIEW
CREATE TABLE src2 (k int, v int);
SELECT make_counter('src2_k', $$SELECT k, count(*) AS n FROM src2 GROUP BY k$$);
SELECT count(*) AS src2_triggers FROM source_triggers('src2');
DELETE FROM expect WHERE counter::text = 'src2_k';
DROP VIEW src2_k;
SELECT count(*) AS src2_triggers_after_drop_view FROM source_triggers('src2');
-- the source works without counters
INSERT INTO src2 VALUES (1, 1);
UPDATE src SET v = v + 1;
SELECT n_defs() = :defs_before AS no_definitions_left;

-- create_counter is transactional: rolled back, nothing is left
SELECT n_defs() AS ndefs, n_hidden() AS nhidden, (SELECT count(*) FROM pg_class) AS nclass \gset
BEGIN;
SELECT make_counter('tx_counter', $$SELECT k, count(*) AS n FROM src GROUP BY k$$);
INSERT INTO src VALUES (10, 10, 10, 'tx');
SELECT chk_all() AS "created in a transaction";
ROLLBACK;
SELECT to_regclass('tx_counter') IS NULL AS relation_gone, n_defs() = :ndefs AS no_definition,
       n_hidden() = :nhidden AS no_hidden, (SELECT count(*) FROM pg_class) = :nclass AS no_relation,
       (SELECT count(*) FROM source_triggers('src')) = 0 AS no_trigger;
-- writes after the rollback, then the same name again
INSERT INTO src VALUES (11, 1, 1, 'x');
SELECT make_counter('tx_counter', $$SELECT k, count(*) AS n, sum(v) AS total FROM src GROUP BY k$$);
INSERT INTO src VALUES (12, 1, 2, 'y');
SELECT chk_all() AS "created again";
-- drop_counter rolled back: the counter stays and is maintained
BEGIN;
DELETE FROM expect WHERE counter::text = 'tx_counter';
SELECT counters.drop_counter('tx_counter');
INSERT INTO src VALUES (13, 1, 3, 'z');
ROLLBACK;
INSERT INTO src VALUES (14, 2, 4, 'w');
SELECT chk_all() AS "drop rolled back";
SELECT count(*) AS triggers_after_drop_rolled_back FROM source_triggers('src');
-- dropped and created with another query in one transaction
BEGIN;
DELETE FROM expect WHERE counter::text = 'tx_counter';
SELECT counters.drop_counter('tx_counter');
SELECT make_counter('tx_counter', $$SELECT v, count(*) AS n FROM src WHERE k IS NOT NULL GROUP BY v$$);
UPDATE src SET v = v * 2 WHERE id > 10;
SELECT chk_all() AS "replaced in a transaction";
COMMIT;
DELETE FROM src WHERE id = 14;
SELECT chk_all() AS "replaced";

-- the source's DDL: a new column, a dropped uncounted column
SELECT make_counter('src_by_note', $$SELECT k, count(v) AS n, sum(v) AS total FROM src WHERE id > 1 GROUP BY k$$);
ALTER TABLE src ADD COLUMN extra text DEFAULT 'x';
INSERT INTO src VALUES (20, 5, 50, 'new', 'e');
UPDATE src SET extra = 'y', v = v + 1 WHERE id < 5;
SELECT chk_all() AS "after ADD COLUMN";
ALTER TABLE src ALTER COLUMN extra TYPE varchar(20), ALTER COLUMN note TYPE varchar(20);
INSERT INTO src VALUES (24, 5, 5, 'rewritten', 'e');
UPDATE src SET v = v + 1, extra = 'z' WHERE id > 10;
SELECT chk_all() AS "after a table rewrite";
ALTER TABLE src DROP COLUMN note;
INSERT INTO src VALUES (21, 5, 51, 'e'), (22, NULL, 52, NULL);
UPDATE src SET k = k + 1 WHERE id > 20;
DELETE FROM src WHERE id = 3;
SELECT chk_all() AS "after DROP COLUMN of an uncounted column";
-- renamed columns and a renamed table
ALTER TABLE src RENAME COLUMN v TO val;
ALTER TABLE src RENAME COLUMN k TO key;
ALTER TABLE src RENAME TO src_renamed;
UPDATE expect SET query = regexp_replace(regexp_replace(regexp_replace(query,
         '\mv\M', 'val', 'g'), '\mk\M', 'key', 'g'), '\msrc\M', 'src_renamed', 'g');
INSERT INTO src_renamed VALUES (23, 5, 1, 'r');
UPDATE src_renamed SET val = val + 1, key = coalesce(key, 0) WHERE id > 20;
SELECT chk_all() AS "after renames";
SELECT DISTINCT source FROM counters.counters WHERE counter IN (SELECT counter FROM expect);
-- dropping or retyping a counted column, or dropping the table, is refused
SELECT try_sql('ALTER TABLE src_renamed DROP COLUMN val');
SELECT try_sql('ALTER TABLE src_renamed DROP COLUMN key');
SELECT try_sql('ALTER TABLE src_renamed DROP COLUMN id');
SELECT try_sql('ALTER TABLE src_renamed ALTER COLUMN val TYPE bigint');
SELECT try_sql('DROP TABLE src_renamed');
UPDATE src_renamed SET val = val + 1;
SELECT chk_all() AS "after refused DDL";
-- ... unless CASCADE, which takes the counters with it
SELECT n_defs() AS ndefs, hidden_prefix('src_by_note') AS dropped_prefix, hidden_prefix('tx_counter') AS kept_prefix \gset
DELETE FROM expect WHERE counter::text = 'src_by_note';
SET client_min_messages = warning;
ALTER TABLE src_renamed DROP COLUMN id CASCADE;
RESET client_min_messages;
SELECT to_regclass('src_by_note') IS NULL AS counter_on_id_gone, to_regclass('tx_counter') IS NOT NULL AS other_kept,
       n_defs() = :ndefs - 1 AS definition_gone, hidden_left(ARRAY[:'dropped_prefix']) = 0 AS hidden_relations_gone,
       hidden_left(ARRAY[:'kept_prefix']) >= 2 AS others_hidden_relations_kept;
INSERT INTO src_renamed VALUES (1, 1, 'after');
SELECT chk_all() AS "after DROP COLUMN CASCADE";
DELETE FROM expect WHERE counter::text = 'tx_counter';
SET client_min_messages = warning;
DROP TABLE src_renamed CASCADE;
RESET client_min_messages;
SELECT to_regclass('tx_counter') IS NULL AS counter_gone, n_defs() = :defs_before AS no_definitions_left,
       hidden_left(ARRAY[:'kept_prefix']) = 0 AS hidden_relations_gone;

-- an unlogged source: a crash empties it, so its counters' storage must be
-- unlogged too (emptied with it)
CREATE UNLOGGED TABLE src_unlogged (k int);
SELECT make_counter('unlogged_k', $$SELECT k, count(*) AS n FROM src_unlogged GROUP BY k$$);
SELECT make_counter('unlogged_total', $$SELECT count(*) AS n FROM src_unlogged$$);
SELECT d.counter, src.relpersistence AS source_persistence, s.relpersistence AS storage_persistence
  FROM counters.counter_def d JOIN pg_class s ON s.oid = d.storage JOIN pg_class src ON src.oid = d.source
 WHERE d.source = 'src_unlogged'::regclass ORDER BY 1;
INSERT INTO src_unlogged VALUES (1), (2), (2);
SELECT chk_all() AS "unlogged source";
DELETE FROM expect WHERE counter IN ('unlogged_k'::regclass, 'unlogged_total'::regclass);
SET client_min_messages = warning;
DROP TABLE src_unlogged CASCADE;
RESET client_min_messages;

-- the functions refuse relations that are not counters
CREATE TABLE plain (a int);
CREATE VIEW plain_view AS SELECT a FROM plain;
SELECT try_sql($$SELECT counters.drop_counter('plain')$$);
SELECT try_sql($$SELECT counters.drop_counter('plain_view')$$);
SELECT try_sql($$SELECT * FROM counters.verify('plain')$$);
SELECT try_sql($$SELECT counters.rebuild('plain_view')$$);
SELECT try_sql($$SELECT counters.drop_counter('no_such_counter')$$);

-- DROP EXTENSION: refused while counters exist, CASCADE removes them and the
-- triggers; the source stays usable
CREATE TABLE src3 (k int, v int);
INSERT INTO src3 VALUES (1, 1);
SELECT make_counter('src3_k', $$SELECT k, count(*) AS n FROM src3 GROUP BY k$$);
SELECT try_sql('DROP EXTENSION counters') ~ '^2BP01: ' AS drop_extension_refused;
DELETE FROM expect WHERE counter::text = 'src3_k';
SET client_min_messages = warning;
DROP EXTENSION counters CASCADE;
RESET client_min_messages;
SELECT to_regclass('src3_k') IS NULL AS counter_gone, count(*) AS src3_triggers FROM source_triggers('src3');
INSERT INTO src3 VALUES (2, 2);
UPDATE src3 SET v = v + 1;
DELETE FROM src3 WHERE k = 1;
-- the hidden relations are gone, with the schema counters, which belongs to
-- the extension
SELECT nspname FROM pg_namespace WHERE nspname = 'counters';
CREATE EXTENSION counters;
SELECT make_counter('src3_k', $$SELECT k, count(*) AS n, sum(v) AS total FROM src3 GROUP BY k$$);
INSERT INTO src3 VALUES (3, 3);
SELECT chk_all() AS "extension created again";
SELECT counters.drop_counter('src3_k');
DELETE FROM expect;

SET client_min_messages = warning;
DROP SCHEMA regress_api CASCADE;
