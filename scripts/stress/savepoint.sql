-- an ORM-like transaction: create an event, change it (and move it to the
-- next tenant) in a savepoint that is rolled back, change it again, then
-- commit or roll back.  In buffered mode (pgbench -D buffered=1) it reads
-- the counters in one statement with their queries (stress_assert) inside
-- the savepoint and before the end.  In immediate mode it reads nothing, so
-- its deltas are applied once, at commit, to the counter rows of the INSERT's
-- keys: the event is flagged and not deleted, and keeps its keys.
\set tenant random(1, 20)
\set reg random(0, 5)
\set day random(0, 29)
\set fin random(0, 2)
BEGIN;
INSERT INTO events (tenant, region, kind, amount, qty, price, flagged, created_at, note)
VALUES (:tenant, NULLIF('r' || :reg, 'r0'), 4, 600, 5, 5.00, true,
        timestamp '2026-01-01' + make_interval(days => :day), 'savepoint')
RETURNING id AS newid \gset
SAVEPOINT s1;
UPDATE events SET deleted = true, qty = qty + 1, price = price + 1, tenant = tenant % 20 + 1 WHERE id = :newid;
\if :buffered
SELECT stress_assert(:tenant, NULLIF('r' || :reg, 'r0'));
\endif
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
UPDATE events SET qty = qty + 10, price = NULL WHERE id = :newid;
RELEASE SAVEPOINT s2;
UPDATE events SET deleted = true WHERE id = :newid;
UPDATE events SET deleted = false, price = 7.00 WHERE id = :newid;
\if :buffered
SELECT stress_assert(:tenant, NULLIF('r' || :reg, 'r0'));
\endif
\if :fin = 0
ROLLBACK;
\else
COMMIT;
\endif
