/* counters--1.0--1.1.sql: upgrade from version 1.0 to 1.1 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION counters UPDATE" to load this file. \quit

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

-- Each side of a logical replication keeps its own counters: definitions
-- that a publication FOR ALL TABLES brings are dropped on arrival, as are
-- rows of hidden tables (see counters_guard_storage).
CREATE TRIGGER counters_replicated BEFORE INSERT OR UPDATE OR DELETE ON counters.counter_def
    FOR EACH ROW EXECUTE FUNCTION counters.guard_storage();
ALTER TABLE counters.counter_def ENABLE REPLICA TRIGGER counters_replicated;
-- dependencies are recorded also where session_replication_role is replica
ALTER TABLE counters.counter_def ENABLE ALWAYS TRIGGER counter_def_dependencies;

-- More DDL is followed or guarded (see counters--1.1.sql).
DROP EVENT TRIGGER counters_ddl_start;
DROP EVENT TRIGGER counters_ddl_end;
CREATE EVENT TRIGGER counters_ddl_start ON ddl_command_start
    WHEN TAG IN ('DROP TABLE', 'DROP VIEW', 'ALTER TABLE', 'ALTER VIEW', 'CREATE VIEW',
                 'DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION counters.on_ddl_start();
CREATE EVENT TRIGGER counters_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE', 'ALTER VIEW',
                 'ALTER SCHEMA')
    EXECUTE FUNCTION counters.on_ddl_end();

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

-- A database made by a build from before buffered mode (which called
-- itself 1.0 too) lacks what buffered mode needs; counters_migrate makes
-- the deltas tables.
ALTER TABLE counters.counter_def ADD COLUMN IF NOT EXISTS deltas regclass;
CREATE OR REPLACE FUNCTION counters.flush(counter regclass DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'counters_flush'
LANGUAGE C;
COMMENT ON FUNCTION counters.flush(regclass) IS
    'fold the recorded deltas of a buffered counter (of all counters when NULL) into its rows; returns how many were folded';
CREATE OR REPLACE FUNCTION counters.set_mode(counter regclass, mode text)
RETURNS void
AS 'MODULE_PATHNAME', 'counters_set_mode'
LANGUAGE C STRICT;
COMMENT ON FUNCTION counters.set_mode(regclass, text) IS
    'switch a counter between immediate and buffered mode';

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

-- Counters declared under 1.0: hidden relations move into this schema,
-- named after their counter; sources get the triggers that count on
-- logical replication subscribers (counter_define.c, counters_migrate).
SELECT counters.upgrade_layout();
ALTER TABLE counters.counter_def ALTER COLUMN deltas SET NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint
                    WHERE conrelid OPERATOR(pg_catalog.=) 'counters.counter_def'::pg_catalog.regclass
                      AND contype OPERATOR(pg_catalog.=) 'u'
                      AND conkey OPERATOR(pg_catalog.=) ARRAY[(SELECT attnum FROM pg_catalog.pg_attribute
                           WHERE attrelid OPERATOR(pg_catalog.=) 'counters.counter_def'::pg_catalog.regclass
                             AND attname OPERATOR(pg_catalog.=) 'deltas')]) THEN
        ALTER TABLE counters.counter_def ADD UNIQUE (deltas);
    END IF;
END
$$;
