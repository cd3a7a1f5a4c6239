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
