--
-- privileges: maintenance runs as the counter's owner, so a role that may
-- only write the source keeps the counters exact, and cannot write the
-- counter itself; only the source's owner may declare a counter on it;
-- writes to a counter are refused (42809, hint counters.rebuild), even for
-- its owner; maintenance does not depend on the writer's search_path.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS counters;
DROP ROLE IF EXISTS regress_counters_owner;
DROP ROLE IF EXISTS regress_counters_app;
DROP ROLE IF EXISTS regress_counters_other;
RESET client_min_messages;
CREATE ROLE regress_counters_owner;
CREATE ROLE regress_counters_app;
CREATE ROLE regress_counters_other;
CREATE SCHEMA regress_priv;
GRANT USAGE, CREATE ON SCHEMA regress_priv TO regress_counters_owner;
GRANT USAGE, CREATE ON SCHEMA regress_priv TO regress_counters_app, regress_counters_other;
CREATE SCHEMA regress_priv_evil AUTHORIZATION regress_counters_app;
SET search_path = regress_priv, public;
SELECT count(*) AS defs_before FROM counters.counter_def \gset

\set ECHO none
\i sql/include/helpers.sql
\set ECHO all

-- the owner makes a table and counters on it
SET ROLE regress_counters_owner;
CREATE TABLE doc (id int PRIMARY KEY, owner_id int, status text, size int);
INSERT INTO doc VALUES (1, 1, 'draft', 10), (2, 1, 'final', 20), (3, 2, 'draft', NULL);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON doc TO regress_counters_app;
GRANT SELECT ON doc TO regress_counters_other;
SELECT counters.create_counter('doc_status',
  $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT counters.create_counter('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);
-- the owner reads them, and lets the application read one
SELECT count(*) > 0 AS owner_reads FROM doc_status;
GRANT SELECT ON doc_total TO regress_counters_app;
RESET ROLE;
SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class
 WHERE oid IN ('doc_status'::regclass, 'doc_total'::regclass) ORDER BY 1;
SELECT chk('doc_status', $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT chk('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);

-- the application writes the source: every kind of write keeps the counters exact
SET ROLE regress_counters_app;
INSERT INTO doc VALUES (4, 2, 'final', 40), (5, 3, 'draft', 5);
UPDATE doc SET status = 'final' WHERE id = 1;
UPDATE doc SET size = size * 2 WHERE owner_id = 2;
DELETE FROM doc WHERE id = 5;
INSERT INTO doc VALUES (1, 9, 'x', 1) ON CONFLICT (id) DO UPDATE SET owner_id = 3;
MERGE INTO doc d USING (VALUES (2, 'archived'), (6, 'draft')) s(id, status) ON d.id = s.id
WHEN MATCHED THEN UPDATE SET status = s.status
WHEN NOT MATCHED THEN INSERT VALUES (s.id, 4, s.status, 6);
COPY doc FROM STDIN;
7	4	final	70
\.
SELECT n > 0 AS app_reads_granted_counter FROM doc_total;
RESET ROLE;
SELECT chk('doc_status', $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT chk('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);

-- the application cannot read an ungranted counter, nor write any counter
-- or storage table
SET ROLE regress_counters_app;
SELECT try_sql('SELECT * FROM doc_status');
SELECT try_sql($$INSERT INTO doc_status VALUES (1, 'x', 1, 1)$$);
SELECT try_sql($$INSERT INTO doc_total VALUES (1, 1)$$);
SELECT try_sql('UPDATE doc_total SET n = 0');
SELECT try_sql('DELETE FROM doc_total');
SELECT try_sql(format('INSERT INTO %s DEFAULT VALUES', storage_of('doc_status')));
SELECT try_sql(format('UPDATE %s SET n = 0', storage_of('doc_total')));
SELECT try_sql(format('DELETE FROM %s', storage_of('doc_status')));
SELECT try_sql(format('TRUNCATE %s', storage_of('doc_status')));
-- nor drop, rebuild or redefine them
SELECT try_sql($$SELECT counters.drop_counter('doc_status')$$);
SELECT try_sql('DROP VIEW doc_status');
SELECT try_sql($$SELECT counters.rebuild('doc_status')$$);
-- nor read an ungranted counter through verify()
SELECT try_sql($$SELECT * FROM counters.verify('doc_status')$$);
-- but it may verify the counter it may read (it may read the source too)
SELECT try_sql($$SELECT * FROM counters.verify('doc_total')$$);
SELECT try_sql(format('DROP TABLE %s', storage_of('doc_status')));
-- nor declare a counter on a table it may write but does not own (though it
-- may create relations in the schema)
SELECT count(*) AS defs_now FROM counters.counter_def \gset
SELECT try_sql($$SELECT counters.create_counter('app_counter', 'SELECT status, count(*) AS n FROM doc GROUP BY status')$$);
RESET ROLE;
SELECT count(*) = :defs_now AS no_definition_added FROM counters.counter_def;

-- a role that may only read the source cannot declare a counter on it either
SELECT count(*) AS defs_now FROM counters.counter_def \gset
SET ROLE regress_counters_other;
SELECT try_sql($$SELECT counters.create_counter('other_counter', 'SELECT status, count(*) AS n FROM doc GROUP BY status')$$);
SELECT try_sql($$SELECT counters.create_counter('regress_priv.other_counter', 'SELECT count(*) AS n FROM doc')$$);
RESET ROLE;
SELECT count(*) = :defs_now AS no_definition_added FROM counters.counter_def;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'doc'::regclass AND NOT tgisinternal ORDER BY 1;

-- the owner of the counter cannot write it either: 42809 with a hint
SET ROLE regress_counters_owner;
SELECT try_sql($$INSERT INTO doc_status VALUES (1, 'x', 1, 1)$$);
SELECT try_sql($$UPDATE doc_status SET n = n + 1$$);
SELECT try_sql($$DELETE FROM doc_status$$);
SELECT try_sql($$INSERT INTO doc_total VALUES (0, NULL)$$);
-- but may drop its counters; it needs no privilege on the storage schema
SELECT counters.create_counter('doc_tmp', $$SELECT status, count(*) AS n FROM doc GROUP BY status$$);
SELECT counters.drop_counter('doc_tmp');
RESET ROLE;
-- nor can a superuser
SELECT try_sql($$INSERT INTO doc_status VALUES (1, 'x', 1, 1)$$);
SELECT try_sql($$UPDATE doc_total SET n = 0$$);
SELECT chk('doc_status', $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT chk('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);

-- maintenance does not use the writer's search_path: operators planted by
-- the application in its own schema, first in its search_path, change nothing
SET ROLE regress_counters_app;
CREATE FUNCTION regress_priv_evil.bad_int8pl(bigint, bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS 'SELECT 1000000::bigint';
CREATE FUNCTION regress_priv_evil.bad_numericpl(numeric, numeric) RETURNS numeric
  LANGUAGE sql IMMUTABLE AS 'SELECT 1000000::numeric';
CREATE FUNCTION regress_priv_evil.bad_int8mi(bigint, bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE AS 'SELECT 1000000::bigint';
CREATE FUNCTION regress_priv_evil.bad_numericmi(numeric, numeric) RETURNS numeric
  LANGUAGE sql IMMUTABLE AS 'SELECT 1000000::numeric';
CREATE FUNCTION regress_priv_evil.bad_int4eq(int, int) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE FUNCTION regress_priv_evil.bad_texteq(text, text) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE FUNCTION regress_priv_evil.bad_int8eq(bigint, bigint) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR regress_priv_evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_priv_evil.bad_int8pl);
CREATE OPERATOR regress_priv_evil.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = regress_priv_evil.bad_numericpl);
CREATE OPERATOR regress_priv_evil.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_priv_evil.bad_int8mi);
CREATE OPERATOR regress_priv_evil.- (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = regress_priv_evil.bad_numericmi);
CREATE OPERATOR regress_priv_evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = regress_priv_evil.bad_int4eq);
CREATE OPERATOR regress_priv_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_priv_evil.bad_texteq);
CREATE OPERATOR regress_priv_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_priv_evil.bad_int8eq);
SET search_path = regress_priv_evil, pg_catalog, regress_priv;
INSERT INTO doc VALUES (10, 1, 'final', 100), (11, 5, 'draft', 1), (12, 5, 'draft', NULL);
UPDATE doc SET size = size + 1 WHERE id BETWEEN 1 AND 4;
UPDATE doc SET status = 'draft' WHERE id BETWEEN 10 AND 10;
DELETE FROM doc WHERE id BETWEEN 11 AND 11;
-- ... also when the application reads a counter inside its transaction
BEGIN;
INSERT INTO doc VALUES (13, 6, 'final', 13);
SELECT n > 0 AS read_in_transaction FROM doc_total;
UPDATE doc SET size = size + 1 WHERE id BETWEEN 13 AND 13;
COMMIT;
SET search_path = regress_priv, public;
RESET ROLE;
SELECT chk('doc_status', $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT chk('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);

-- the application writes and reads the granted counter in one transaction;
-- reading the other counter is refused and changes nothing
SET ROLE regress_counters_app;
BEGIN;
INSERT INTO doc VALUES (20, 7, 'draft', 20), (21, 7, 'draft', NULL);
SELECT n = (SELECT count(*) FROM doc) AS own_writes_counted FROM doc_total;
DELETE FROM doc WHERE id = 20;
SAVEPOINT s;
SELECT try_sql('SELECT * FROM doc_status');
ROLLBACK TO SAVEPOINT s;
UPDATE doc SET size = 5 WHERE id = 21;
COMMIT;
RESET ROLE;
SELECT chk('doc_status', $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT chk('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);

-- the application empties the table
SET ROLE regress_counters_app;
TRUNCATE doc;
INSERT INTO doc VALUES (1, 1, 'new', 1);
RESET ROLE;
SELECT chk('doc_status', $$SELECT owner_id, status, count(*) AS n, sum(size) AS bytes FROM doc GROUP BY owner_id, status$$);
SELECT chk('doc_total', $$SELECT count(*) AS n, sum(size) AS bytes FROM doc$$);

-- clean up
SET ROLE regress_counters_owner;
SELECT counters.drop_counter('doc_status');
SELECT counters.drop_counter('doc_total');
RESET ROLE;
SELECT count(*) AS counter_triggers_left FROM pg_trigger WHERE tgrelid = 'doc'::regclass AND NOT tgisinternal;
SELECT count(*) = :defs_before AS definitions_gone FROM counters.counter_def;
SET client_min_messages = warning;
DROP SCHEMA regress_priv CASCADE;
DROP SCHEMA regress_priv_evil CASCADE;
DROP ROLE regress_counters_owner;
DROP ROLE regress_counters_app;
DROP ROLE regress_counters_other;
