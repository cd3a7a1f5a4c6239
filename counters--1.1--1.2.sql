/* counters--1.1--1.2.sql: upgrade from version 1.1 to 1.2 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION counters UPDATE" to load this file. \quit

-- 1.2: on a subscriber of a two-phase subscription (two_phase = on), the
-- apply worker records the deltas of immediate-mode counters instead of
-- changing counter rows, which a prepared transaction would keep locked
-- against the transactions applied before its COMMIT PREPARED; those
-- counters' views read the recorded deltas too.  CREATE SUBSCRIPTION now
-- gives them such views: the event trigger that follows DDL also fires for
-- it.  An event trigger's tags cannot be altered: it is made again, as a
-- fresh install of 1.2 makes it.
--
-- Counters that already exist on such a subscriber keep their views until
-- set_mode(counter, 'immediate') is run for them (this script cannot
-- replace views that are not the extension's); until then the apply worker
-- changes their rows as 1.1 did, and logs a WARNING that says so.
DROP EVENT TRIGGER counters_ddl_end;

CREATE EVENT TRIGGER counters_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE', 'ALTER VIEW',
                 'ALTER SCHEMA', 'CREATE SUBSCRIPTION')
    EXECUTE FUNCTION counters.on_ddl_end();

-- Storage and deltas tables made by a library older than this version's
-- get fill factor 50, as create_counter gives them now: a counter row, and
-- the delta row a backend recorded a key in last, are updated in place all
-- the time, and room on their pages keeps those updates HOT (no new index
-- entry per update).  A new setting applies to pages filled from now on.
-- Tables of counters over Citus tables are left as they are (their shards
-- live on other nodes).
DO $fillfactor$
DECLARE
    citus boolean := pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;
    distributed boolean;
    rel pg_catalog.regclass;
BEGIN
    FOR rel IN
        SELECT c.oid::pg_catalog.regclass
          FROM counters.counter_def d
          JOIN pg_catalog.pg_class c
            ON c.oid OPERATOR(pg_catalog.=) ANY (ARRAY[d.storage::pg_catalog.oid, d.deltas::pg_catalog.oid])
         WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
           AND NOT COALESCE('fillfactor=50' OPERATOR(pg_catalog.=) ANY (c.reloptions), false)
         ORDER BY c.oid
    LOOP
        IF citus THEN
            EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition '
                    'WHERE logicalrelid OPERATOR(pg_catalog.=) $1)'
               INTO distributed USING rel;
            CONTINUE WHEN distributed;
        END IF;
        EXECUTE pg_catalog.format('ALTER TABLE %s SET (fillfactor = 50)', rel);
    END LOOP;
END
$fillfactor$;
