-- scripts/stress/schema.sql: the schema, initial rows, counters and checks
-- of scripts/check-stress (also used by t/010_crash.pl).
--
-- The psql variable mode ('immediate', the default, or 'buffered') is the
-- mode of every counter.  Two sources.  events carries five counters in both
-- modes: a multi-column key with sums of bigint, numeric and integer; a
-- counter without GROUP BY; a key that is an expression (date_trunc on a
-- timestamp); count(expr) under a filter; and expression keys that can be
-- NULL.  In immediate mode notification carries the seed's unread counters;
-- in buffered mode events carries a sixth counter instead, a two-group hot
-- key that every writer moves.  stress_counter lists every counter with its
-- defining query; the checks below run those queries themselves and compare
-- (EXCEPT ALL both ways), besides asking counters.verify().
\set ON_ERROR_STOP on
\if :{?mode}
\else
\set mode immediate
\endif
SELECT :'mode' = 'buffered' AS buffered \gset
SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS counters;

CREATE TABLE events (
    id bigserial PRIMARY KEY,
    tenant int NOT NULL,
    region text,
    kind smallint NOT NULL,
    amount bigint,
    qty int,
    price numeric(12,2),
    flagged boolean NOT NULL DEFAULT false,
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL,
    note text
);

CREATE TABLE notification (
    id bigserial PRIMARY KEY,
    user_id int NOT NULL,
    has_readed boolean NOT NULL DEFAULT false
);
CREATE INDEX ON notification (user_id);

-- initial rows, before the counters exist (create_counter fills from them);
-- the same pseudo-random derivation as scripts/stress/ins_bulk.sql
INSERT INTO events (tenant, region, kind, amount, qty, price, flagged, deleted, created_at, note)
SELECT 1 + h % 20,
       NULLIF('r' || (h / 20) % 6, 'r0'),
       ((h / 120) % 10)::smallint,
       CASE WHEN (h / 1200) % 11 = 0 THEN NULL ELSE (h / 13200) % 1000 END,
       CASE WHEN (h / 7) % 9 = 0 THEN NULL ELSE ((h / 63) % 50)::int END,
       CASE WHEN (h / 11) % 8 = 0 THEN NULL ELSE ((h / 88) % 100000) / 100.0 END,
       (h / 3) % 4 = 0,
       (h / 5) % 10 = 0,
       timestamp '2026-01-01' + make_interval(days => ((h / 17) % 30)::int, secs => ((h / 510) % 86400)::int),
       'initial'
  FROM (SELECT abs(hashint8(g::bigint * 1000003))::bigint AS h
          FROM generate_series(1, 5000) g) s;

INSERT INTO notification (user_id, has_readed)
SELECT 1 + g % 50, g % 3 = 0 FROM generate_series(1, 2000) g;

CREATE TABLE stress_counter (name text PRIMARY KEY, query text NOT NULL);
INSERT INTO stress_counter VALUES
  ('c_tenant_region', $$SELECT tenant, region, count(*) AS n, sum(amount) AS amount, sum(price) AS price, sum(qty) AS qty FROM events WHERE NOT deleted GROUP BY tenant, region$$),
  ('c_total', $$SELECT count(*) AS n, sum(amount) AS amount, count(region) AS with_region, sum(kind) AS kinds FROM events$$),
  ('c_day', $$SELECT date_trunc('day', created_at) AS day, count(*) AS n, sum(qty) AS qty FROM events WHERE NOT deleted GROUP BY date_trunc('day', created_at)$$),
  ('c_flagged', $$SELECT tenant, count(amount) AS with_amount, count(*) AS n FROM events WHERE flagged AND NOT deleted GROUP BY tenant$$),
  ('c_kind_big', $$SELECT kind % 3 AS kind_mod, amount > 500 AS big, count(*) AS n, sum(price) AS price FROM events GROUP BY kind % 3, amount > 500$$);
\if :buffered
INSERT INTO stress_counter VALUES
  ('c_hot', $$SELECT deleted, count(*) AS n, sum(qty) AS qty FROM events GROUP BY deleted$$);
\else
INSERT INTO stress_counter VALUES
  ('c_unread', $$SELECT user_id, count(*) AS unread FROM notification WHERE NOT has_readed GROUP BY user_id$$),
  ('c_unread_total', $$SELECT count(*) AS unread FROM notification WHERE NOT has_readed$$);
\endif

SELECT count(counters.create_counter(name, query, :'mode')) AS counters_created
  FROM (SELECT * FROM stress_counter ORDER BY name) s;

-- One row per counter: its rows, the rows of its query, the query's rows
-- missing from it, its rows not in the query, verify()'s rows, its mode.
CREATE FUNCTION stress_compare(OUT counter text, OUT counter_rows bigint,
                               OUT query_rows bigint, OUT missing bigint,
                               OUT extra bigint, OUT verify_rows bigint, OUT mode text)
RETURNS SETOF record LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT s.name, s.query FROM stress_counter s ORDER BY s.name LOOP
        counter := r.name;
        EXECUTE format('SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM (%s) q)', r.name, r.query)
           INTO counter_rows, query_rows;
        EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL SELECT * FROM %s) x', r.query, r.name)
           INTO missing;
        EXECUTE format('SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL (%s)) x', r.name, r.query)
           INTO extra;
        SELECT count(*) INTO verify_rows FROM counters.verify(r.name::regclass);
        SELECT c.mode INTO mode FROM counters.counters c WHERE c.counter = r.name::regclass;
        RETURN NEXT;
    END LOOP;
END
$f$;

-- Raise an error naming every counter that differs from its query.
CREATE FUNCTION stress_check() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(format('%s (missing %s, extra %s, verify %s)', counter, missing, extra, verify_rows), '; ')
      INTO bad
      FROM stress_compare()
     WHERE missing <> 0 OR extra <> 0 OR verify_rows <> 0;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'counters drifted: %', bad;
    END IF;
    RETURN 'exact';
END
$f$;

-- Immediate mode's read-your-writes inside a writing transaction
-- (scripts/stress/read_own.sql):
-- the unread counters, read in one statement with their queries, must agree.
-- Reading a counter applies the transaction's pending deltas first, which
-- may wait for another transaction that holds the same counter rows.
CREATE FUNCTION stress_check_unread(u int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    got text;
BEGIN
    SELECT format('user %s: counter %s, query %s; total: counter %s, query %s',
                  u, c.unread, q.unread, t.unread, qt.unread)
      INTO got
      FROM (SELECT (SELECT unread FROM c_unread WHERE user_id = u) AS unread) c,
           (SELECT nullif(count(*), 0) AS unread FROM notification
             WHERE NOT has_readed AND user_id = u) q,
           (SELECT unread FROM c_unread_total) t,
           (SELECT count(*) AS unread FROM notification WHERE NOT has_readed) qt
     WHERE c.unread IS DISTINCT FROM q.unread OR t.unread IS DISTINCT FROM qt.unread;
    IF got IS NOT NULL THEN
        RAISE EXCEPTION 'a counter read inside a writing transaction differs from its query: %', got;
    END IF;
    RETURN 'exact';
END
$f$;

-- Buffered mode's read-your-writes under concurrency (rollback.sql,
-- savepoint.sql, read_own_events.sql): in ONE statement (one snapshot),
-- the counter rows of one (tenant, region) key, of the hot counter and of
-- the global counter against the query; raises an error on any difference.
CREATE FUNCTION stress_assert(t int, r text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    bad bigint;
BEGIN
    WITH c AS (SELECT tenant, region, n, amount, price, qty FROM c_tenant_region
                WHERE tenant = t AND region IS NOT DISTINCT FROM r),
         q AS (SELECT tenant, region, count(*) AS n, sum(amount) AS amount, sum(price) AS price, sum(qty) AS qty
                 FROM events WHERE NOT deleted AND tenant = t AND region IS NOT DISTINCT FROM r
                GROUP BY tenant, region),
         hc AS (SELECT deleted, n, qty FROM c_hot),
         hq AS (SELECT deleted, count(*) AS n, sum(qty) AS qty FROM events GROUP BY deleted),
         tc AS (SELECT n, amount, with_region, kinds FROM c_total),
         tq AS (SELECT count(*) AS n, sum(amount) AS amount, count(region) AS with_region, sum(kind) AS kinds FROM events)
    SELECT (SELECT count(*) FROM (SELECT * FROM c EXCEPT ALL SELECT * FROM q) x)
         + (SELECT count(*) FROM (SELECT * FROM q EXCEPT ALL SELECT * FROM c) x)
         + (SELECT count(*) FROM (SELECT * FROM hc EXCEPT ALL SELECT * FROM hq) x)
         + (SELECT count(*) FROM (SELECT * FROM hq EXCEPT ALL SELECT * FROM hc) x)
         + (SELECT count(*) FROM (SELECT * FROM tc EXCEPT ALL SELECT * FROM tq) x)
         + (SELECT count(*) FROM (SELECT * FROM tq EXCEPT ALL SELECT * FROM tc) x)
      INTO bad;
    IF bad <> 0 THEN
        RAISE EXCEPTION 'read-your-writes: counters differ from their queries inside a transaction (key %, %): % rows', t, r, bad;
    END IF;
END
$f$;

-- Recorded deltas not yet folded, per counter (none in immediate mode).
CREATE FUNCTION stress_pending(OUT counter text, OUT deltas bigint)
RETURNS SETOF record LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT s.name, d.deltas FROM stress_counter s
               JOIN counters.counter_def d ON d.counter = s.name::regclass ORDER BY s.name LOOP
        counter := r.name;
        EXECUTE format('SELECT count(*) FROM %s', r.deltas) INTO deltas;
        RETURN NEXT;
    END LOOP;
END
$f$;

-- What buffered mode's flushing client folded, one row per flush() call.
CREATE TABLE stress_flush_log (folded bigint NOT NULL);
