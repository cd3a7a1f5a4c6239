--
-- sql/include/helpers.sql: the helpers the regression suites share, in one
-- place.  Each suite includes this file right after it has created its
-- schema and put it first in search_path, so every helper (and the table
-- expect) is created in that suite's own schema; the helpers name expect and
-- each other unqualified, so at run time they resolve through the calling
-- suite's search_path.  A suite includes it with echo off:
--
--     \set ECHO none
--     \i sql/include/helpers.sql
--     \set ECHO all
--
-- (pg_regress feeds each suite to psql on stdin, from the directory make runs
-- in, the top of the checkout: \i finds the file from there.)
--
-- Two helpers report as much as their suite wants; a suite that wants less
-- sets these psql variables between \set ECHO none and the \i:
--   try_sql_shows  what try_sql() returns of an error after its SQLSTATE and
--                  message: 'detail, hint' (the default), 'hint' or 'none'
--   chk_all_lists  on (the default): chk_all() says 'ok: <the counters>';
--                  off: just 'ok' ('no counters' when none is registered)
--
\if :{?try_sql_shows}
\else
\set try_sql_shows 'detail, hint'
\endif
\if :{?chk_all_lists}
\else
\set chk_all_lists on
\endif

-- chk(counter, query): 'ok' when the counter equals its defining query
-- (EXCEPT ALL both ways, so duplicates and NULL keys count) and
-- counters.verify() reports nothing; otherwise a DRIFT line.
CREATE FUNCTION chk(c regclass, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  extra bigint;
  missing bigint;
  reported bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL (%s)) d', c, q) INTO extra;
  EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL SELECT * FROM %s) d', q, c) INTO missing;
  SELECT count(*) INTO reported FROM counters.verify(c);
  IF extra = 0 AND missing = 0 AND reported = 0 THEN
    RETURN 'ok';
  END IF;
  RETURN format('DRIFT %s: %s rows not in the query, %s query rows missing, verify() reports %s',
                c, extra, missing, reported);
END $$;

-- expect: every counter of the suite with the query it stands for;
-- make_counter() declares a counter and registers it here.
CREATE TABLE expect (counter regclass PRIMARY KEY, query text NOT NULL);
CREATE FUNCTION make_counter(name text, q text, mode text DEFAULT 'immediate') RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
  c regclass;
BEGIN
  c := counters.create_counter(name, q, mode);
  INSERT INTO expect VALUES (c, q);
  RETURN c;
END $$;

-- chk_all(): 'ok: <counters>' when every registered counter is exact ('ok'
-- or 'no counters' with chk_all_lists off), else the drifts
CREATE FUNCTION chk_all(lists boolean DEFAULT :'chk_all_lists') RETURNS text
LANGUAGE sql AS $$
  SELECT CASE WHEN count(*) = 0 AND NOT lists THEN 'no counters'
              WHEN bool_and(r = 'ok') THEN 'ok' || CASE WHEN lists THEN ': ' || string_agg(c::text, ', ' ORDER BY c::text)
                                                        ELSE '' END
              ELSE string_agg(r, E'\n' ORDER BY c::text) FILTER (WHERE r <> 'ok') END
    FROM (SELECT counter AS c, chk(counter, query) AS r FROM expect) x
$$;

-- storage_state(): physical identity (ctid, xmin) of every stored counter
-- row; unchanged when a statement wrote nothing to the counters
CREATE FUNCTION storage_state() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  s regclass;
  part text;
  r text := '';
BEGIN
  FOR s IN SELECT d.storage FROM counters.counter_def d JOIN expect e USING (counter) ORDER BY d.storage::text
  LOOP
    EXECUTE format('SELECT coalesce(string_agg(ctid::text || '':'' || xmin::text, '','' ORDER BY ctid), '''') FROM %s', s)
      INTO part;
    r := r || s::text || '=' || part || ';';
  END LOOP;
  RETURN r;
END $$;

-- try_sql(sql): runs sql; returns 'no error', or the error as
-- 'SQLSTATE: message' with its detail and hint (as try_sql_shows says; the
-- numbers of hidden relations _counters_c<N>_data/_query masked)
CREATE FUNCTION try_sql(s text, shows text DEFAULT :'try_sql_shows') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  st text;
  msg text;
  det text;
  hnt text;
BEGIN
  EXECUTE s;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN regexp_replace(st || ': ' || msg
                        || CASE WHEN det <> '' AND shows ~ '\mdetail\M' THEN E'\nDETAIL: ' || det ELSE '' END
                        || CASE WHEN hnt <> '' AND shows ~ '\mhint\M' THEN E'\nHINT: ' || hnt ELSE '' END,
                        '_counters_c[0-9]+_', '_counters_c<N>_', 'g');
END $$;

-- storage_of(counter), deltas_of(counter): its hidden tables
CREATE FUNCTION storage_of(c regclass) RETURNS regclass LANGUAGE sql AS $$
  SELECT storage FROM counters.counter_def WHERE counter = c
$$;
CREATE FUNCTION deltas_of(c regclass) RETURNS regclass LANGUAGE sql AS $$
  SELECT deltas FROM counters.counter_def WHERE counter = c
$$;

-- hidden_prefix(counter): '<schema>.<counter>.', the prefix of the names of
-- its hidden relations in the schema counters (storage, deltas, definition
-- view, their indexes)
CREATE FUNCTION hidden_prefix(c regclass) RETURNS text LANGUAGE sql AS $$
  SELECT left(s.relname, -length('data'))
    FROM counters.counter_def d JOIN pg_class s ON s.oid = d.storage WHERE d.counter = c
$$;

-- n_defs(): how many counter definitions exist
CREATE FUNCTION n_defs() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM counters.counter_def $$;

-- n_triggers(rel): how many counters maintenance triggers rel has (five on
-- a table or leaf partition, four on a partitioned table)
CREATE FUNCTION n_triggers(rel regclass) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM pg_trigger
   WHERE tgrelid = rel AND NOT tgisinternal
     AND tgname IN ('counters_insert', 'counters_update', 'counters_delete', 'counters_truncate',
                    'counters_replica')
$$;
