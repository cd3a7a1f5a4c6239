-- a bulk change that rolls back: counters must not keep any of it.  In
-- buffered mode (pgbench -D buffered=1) the transaction first reads the
-- counters in one statement with their queries (stress_assert), which
-- records its deltas.
SELECT last_value AS maxid FROM events_id_seq \gset
\set a random(1, :maxid)
\set n random(1, 50)
\set what random(0, 2)
\set t random(1, 20)
BEGIN;
\if :what = 0
UPDATE events SET tenant = tenant % 20 + 1, amount = coalesce(amount, 0) + 1000, deleted = NOT deleted
 WHERE id BETWEEN :a AND :a + :n;
\elif :what = 1
DELETE FROM events WHERE id BETWEEN :a AND :a + :n;
\else
INSERT INTO events (tenant, region, kind, amount, qty, price, created_at, note)
SELECT :t, 'r2', 3, g, g, g, timestamp '2026-01-10', 'rolled back'
  FROM generate_series(1, :n) g;
\endif
\if :buffered
SELECT stress_assert(:t, 'r2');
\endif
ROLLBACK;
