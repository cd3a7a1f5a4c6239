/* counters--1.2.sql: a fresh install of version 1.2 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION counters" to load this file. \quit

-- The schema counters holds every object of the extension and is one of
-- them, so that pg_dump does not dump it (restoring into a database that
-- has the extension then works).  Version 1.0 had it made by CREATE
-- EXTENSION, outside the extension; a database upgraded from 1.0, or
-- restored from a dump of it (CREATE SCHEMA counters, then CREATE EXTENSION
-- ... WITH SCHEMA counters), has such a schema: it becomes the extension's,
-- provided a superuser owns it.  The extension itself is recorded in
-- pg_catalog (pinned: nothing to depend on).
DO $normalize$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'counters');
    nsp oid := pg_catalog.to_regnamespace('counters');
BEGIN
    IF nsp IS NULL THEN
        CREATE SCHEMA counters;
    ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                       WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                         AND d.objid OPERATOR(pg_catalog.=) nsp
                         AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                         AND d.refobjid OPERATOR(pg_catalog.=) ext
                         AND d.deptype OPERATOR(pg_catalog.=) 'e') THEN
        IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
                  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
                 WHERE n.oid OPERATOR(pg_catalog.=) nsp) THEN
            RAISE EXCEPTION 'schema "counters" already exists and is not owned by a superuser'
                USING ERRCODE = '42P06',
                      HINT = 'Drop or rename that schema, then create the extension.';
        END IF;
        DELETE FROM pg_catalog.pg_depend d
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.objid OPERATOR(pg_catalog.=) ext
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) nsp;
        INSERT INTO pg_catalog.pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
        VALUES ('pg_catalog.pg_namespace'::pg_catalog.regclass, nsp, 0,
                'pg_catalog.pg_extension'::pg_catalog.regclass, ext, 0, 'e');
    END IF;
    DELETE FROM pg_catalog.pg_depend d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.objid OPERATOR(pg_catalog.=) ext
       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass;
    UPDATE pg_catalog.pg_extension SET extnamespace = 'pg_catalog'::pg_catalog.regnamespace
     WHERE oid OPERATOR(pg_catalog.=) ext;
END
$normalize$;

GRANT USAGE ON SCHEMA counters TO PUBLIC;

-- Numbered the hidden relations of counters in version 1.0; kept so that
-- dumps of 1.0 restore.
CREATE SEQUENCE counters.storage_seq;
GRANT USAGE ON SEQUENCE counters.storage_seq TO PUBLIC;

-- One row per counter.  A counter is four relations: the counter view the
-- user reads, and three hidden ones in this schema, named after it: its
-- storage table ("<schema>.<counter>.data"), the table of recorded deltas
-- that buffered mode folds into the storage (".deltas"), and the
-- definition view that holds the defining query as PostgreSQL stores
-- views (".query": node trees, with dependencies on the source's columns,
-- followed through renames and written by pg_dump).  They are regclass so
-- that pg_dump writes them by name.
CREATE TABLE counters.counter_def (
    counter regclass PRIMARY KEY,
    storage regclass NOT NULL UNIQUE,
    source regclass NOT NULL,
    definition regclass NOT NULL UNIQUE,
    deltas regclass NOT NULL UNIQUE,
    query text NOT NULL,
    mode text NOT NULL DEFAULT 'immediate'
        CHECK (mode IN ('immediate', 'buffered'))
);
CREATE INDEX counter_def_source_idx ON counters.counter_def (source);

-- Records the dependencies of a counter's relations, also when pg_restore
-- loads this table (pg_dump does not dump pg_depend).
CREATE FUNCTION counters.on_def_insert()
RETURNS trigger
AS 'MODULE_PATHNAME', 'counters_on_def_insert'
LANGUAGE C;
REVOKE ALL ON FUNCTION counters.on_def_insert() FROM PUBLIC;
CREATE TRIGGER counter_def_dependencies AFTER INSERT ON counters.counter_def
    FOR EACH ROW EXECUTE FUNCTION counters.on_def_insert();
-- also where session_replication_role is replica (a restore, a subscriber)
ALTER TABLE counters.counter_def ENABLE ALWAYS TRIGGER counter_def_dependencies;
GRANT SELECT ON counters.counter_def TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('counters.counter_def', '');
SELECT pg_catalog.pg_extension_config_dump('counters.storage_seq', '');

CREATE VIEW counters.counters AS
    SELECT counter, source, query, mode,
           pg_catalog.pg_get_viewdef(definition) AS definition
      FROM counters.counter_def;
GRANT SELECT ON counters.counters TO PUBLIC;
COMMENT ON VIEW counters.counters IS 'one row per counter: relation, source table, defining query as given, mode, and the definition as it reads now (after renames)';

CREATE FUNCTION counters.create_counter(name text, query text,
                                        mode text DEFAULT 'immediate')
RETURNS regclass
AS 'MODULE_PATHNAME', 'counters_create_counter'
LANGUAGE C;
COMMENT ON FUNCTION counters.create_counter(text, text, text) IS
    'declare a counter: a relation kept equal to a GROUP BY count/sum query over one table';

CREATE FUNCTION counters.drop_counter(counter regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'counters_drop_counter'
LANGUAGE C STRICT;
COMMENT ON FUNCTION counters.drop_counter(regclass) IS
    'remove a counter, its definition and, with the last counter of a source, its triggers';

CREATE FUNCTION counters.verify(counter regclass,
                                OUT key jsonb, OUT stored jsonb, OUT expected jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'counters_verify'
LANGUAGE C STRICT;
COMMENT ON FUNCTION counters.verify(regclass) IS
    'keys where a counter differs from its defining query; empty when exact';

CREATE FUNCTION counters.flush(counter regclass DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'counters_flush'
LANGUAGE C;
COMMENT ON FUNCTION counters.flush(regclass) IS
    'fold the recorded deltas of a buffered counter (of all counters when NULL) into its rows; returns how many were folded';

CREATE FUNCTION counters.set_mode(counter regclass, mode text)
RETURNS void
AS 'MODULE_PATHNAME', 'counters_set_mode'
LANGUAGE C STRICT;
COMMENT ON FUNCTION counters.set_mode(regclass, text) IS
    'switch a counter between immediate and buffered mode';

CREATE FUNCTION counters.rebuild(counter regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'counters_rebuild'
LANGUAGE C STRICT;
COMMENT ON FUNCTION counters.rebuild(regclass) IS
    'recompute a counter from its source, locking out writers; returns the number of rows changed';

-- Trigger functions: maintenance on sources, write refusal on counters.
CREATE FUNCTION counters.maintain()
RETURNS trigger
AS 'MODULE_PATHNAME', 'counters_maintain'
LANGUAGE C;

CREATE FUNCTION counters.refuse_write()
RETURNS trigger
AS 'MODULE_PATHNAME', 'counters_refuse_write'
LANGUAGE C;

CREATE FUNCTION counters.guard_storage()
RETURNS trigger
AS 'MODULE_PATHNAME', 'counters_guard_storage'
LANGUAGE C;

-- Forget counters whose relation, storage or source is dropped.
CREATE FUNCTION counters.on_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'counters_on_sql_drop'
LANGUAGE C;

CREATE EVENT TRIGGER counters_sql_drop ON sql_drop
    EXECUTE FUNCTION counters.on_sql_drop();

-- Follow partitions created, attached, detached and dropped under counted
-- tables, counters renamed or moved to another schema, owners changed and
-- sources made (un)logged; lock sources before DROP EXTENSION or DROP
-- SCHEMA takes counters along; refuse inheritance that counters could not
-- follow, owners a counter cannot have, and CREATE OR REPLACE VIEW of a
-- counter or of its definition view.  After CREATE SUBSCRIPTION of a
-- two-phase subscription, immediate-mode counters read their recorded
-- deltas too, which its apply worker records instead of changing counter
-- rows (1.2).
CREATE FUNCTION counters.on_ddl_start()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'counters_on_ddl_start'
LANGUAGE C;

CREATE FUNCTION counters.on_ddl_end()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'counters_on_ddl_end'
LANGUAGE C;

CREATE EVENT TRIGGER counters_ddl_start ON ddl_command_start
    WHEN TAG IN ('DROP TABLE', 'DROP VIEW', 'ALTER TABLE', 'ALTER VIEW', 'CREATE VIEW',
                 'DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION counters.on_ddl_start();

CREATE EVENT TRIGGER counters_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE', 'ALTER VIEW',
                 'ALTER SCHEMA', 'CREATE SUBSCRIPTION')
    EXECUTE FUNCTION counters.on_ddl_end();

REVOKE ALL ON FUNCTION counters.on_ddl_start() FROM PUBLIC;
REVOKE ALL ON FUNCTION counters.on_ddl_end() FROM PUBLIC;
REVOKE ALL ON FUNCTION counters.on_sql_drop() FROM PUBLIC;

-- Each side of a logical replication keeps its own counters: definitions
-- that a publication FOR ALL TABLES brings are dropped on arrival, as are
-- rows of hidden tables (see counters_guard_storage).
CREATE TRIGGER counters_replicated BEFORE INSERT OR UPDATE OR DELETE ON counters.counter_def
    FOR EACH ROW EXECUTE FUNCTION counters.guard_storage();
ALTER TABLE counters.counter_def ENABLE REPLICA TRIGGER counters_replicated;

-- What each counter's maintenance did since the server started (the
-- library must be in shared_preload_libraries; without it there are no
-- figures): transactions whose deltas were applied (immediate mode) or
-- recorded (buffered mode), and the rows they wrote; folds and the delta
-- rows they folded; verify and rebuild, with the rows they found wrong;
-- time spent, and when each happened last.
CREATE FUNCTION counters.read_stats(
    OUT counter oid,
    OUT applies bigint, OUT applied_rows bigint, OUT apply_ms double precision, OUT last_apply timestamptz,
    OUT records bigint, OUT recorded_rows bigint, OUT record_ms double precision, OUT last_record timestamptz,
    OUT folds bigint, OUT folded_rows bigint, OUT fold_ms double precision, OUT last_fold timestamptz,
    OUT verifies bigint, OUT verify_drift bigint, OUT verify_ms double precision, OUT last_verify timestamptz,
    OUT rebuilds bigint, OUT rebuilt_rows bigint, OUT rebuild_ms double precision, OUT last_rebuild timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'counters_read_stats'
LANGUAGE C;

CREATE VIEW counters.stats AS
    SELECT d.counter, d.mode,
           COALESCE(s.applies, 0) AS applies, COALESCE(s.applied_rows, 0) AS applied_rows,
           COALESCE(s.apply_ms, 0) AS apply_ms, s.last_apply,
           COALESCE(s.records, 0) AS records, COALESCE(s.recorded_rows, 0) AS recorded_rows,
           COALESCE(s.record_ms, 0) AS record_ms, s.last_record,
           COALESCE(s.folds, 0) AS folds, COALESCE(s.folded_rows, 0) AS folded_rows,
           COALESCE(s.fold_ms, 0) AS fold_ms, s.last_fold,
           COALESCE(s.verifies, 0) AS verifies, s.verify_drift, s.last_verify,
           COALESCE(s.rebuilds, 0) AS rebuilds, s.rebuilt_rows, s.last_rebuild
      FROM counters.counter_def d
      LEFT JOIN counters.read_stats() s ON s.counter OPERATOR(pg_catalog.=) d.counter::pg_catalog.oid;
GRANT SELECT ON counters.stats TO PUBLIC;
COMMENT ON VIEW counters.stats IS 'per counter since the server started: deltas applied or recorded, folded, verify and rebuild, with rows and milliseconds';

CREATE FUNCTION counters.reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'counters_reset_stats'
LANGUAGE C;
REVOKE ALL ON FUNCTION counters.reset_stats() FROM PUBLIC;
COMMENT ON FUNCTION counters.reset_stats() IS
    'start the statistics of this database''s counters (view counters.stats) from zero';

CREATE FUNCTION counters.apply_pending()
RETURNS bigint
AS 'MODULE_PATHNAME', 'counters_apply_now'
LANGUAGE C;
COMMENT ON FUNCTION counters.apply_pending() IS
    'apply the transaction''s pending deltas now instead of at commit; returns the counter rows written or recorded';

-- Brings counters of version 1.0's layout (declared under 1.0, or restored
-- from a dump of it) to this version's: hidden relations in this schema,
-- named after their counter, and the triggers of replica mode.
-- ALTER EXTENSION counters UPDATE runs it.
CREATE FUNCTION counters.upgrade_layout()
RETURNS void
AS 'MODULE_PATHNAME', 'counters_migrate_1_1'
LANGUAGE C;
REVOKE ALL ON FUNCTION counters.upgrade_layout() FROM PUBLIC;
COMMENT ON FUNCTION counters.upgrade_layout() IS
    'bring counters of version 1.0''s layout (hidden relations next to the counter) to the current one';

-- Counters over Citus tables keep their deltas next to the source's
-- shards: flush() asks every node to fold those it holds with
-- flush_local(), which the background worker of each node runs.
CREATE FUNCTION counters.flush_local(counter regclass DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'counters_flush_local'
LANGUAGE C;
COMMENT ON FUNCTION counters.flush_local(regclass) IS
    'flush(), but of counters over Citus tables only the deltas held by this node';

-- The _counters_shard of the partial rows that count a row of a
-- hash-distributed Citus table (first fill and rebuild of such counters).
CREATE FUNCTION counters.citus_shard_key(source regclass, value anyelement)
RETURNS anyelement
AS 'MODULE_PATHNAME', 'counters_citus_shard_key_fn'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION counters.citus_shard_key(regclass, anyelement) IS
    'the shard''s value under which counters over a Citus table count a row whose distribution column holds value';
