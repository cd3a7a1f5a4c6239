-- (buffered mode) an ORM-like transaction: create an event, change it in a
-- savepoint that is read and rolled back, change it again, check, then
-- commit or roll back
\set tenant random(1, 20)
\set reg random(1, 5)
\set day random(0, 29)
\set fin random(0, 2)
BEGIN;
INSERT INTO events (tenant, region, kind, amount, qty, price, flagged, created_at, note)
VALUES (:tenant, 'r' || :reg, 4, 600, 5, 5.00, true,
        timestamp '2026-01-01' + make_interval(days => :day), 'savepoint')
RETURNING id AS newid \gset
SAVEPOINT s1;
UPDATE events SET deleted = true, qty = qty + 1, price = price + 1, tenant = tenant % 20 + 1 WHERE id = :newid;
SELECT stress_assert(:tenant, 'r' || :reg);
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
UPDATE events SET qty = qty + 10, price = NULL WHERE id = :newid;
RELEASE SAVEPOINT s2;
UPDATE events SET deleted = true WHERE id = :newid;
UPDATE events SET deleted = false, price = 7.00 WHERE id = :newid;
SELECT stress_assert(:tenant, 'r' || :reg);
\if :fin = 0
ROLLBACK;
\else
COMMIT;
\endif
