-- (buffered mode) writes then reads in one transaction: each read sees the transaction's own
-- uncommitted changes, exactly (one statement compares counter and query)
\set tenant random(1, 20)
\set reg random(0, 5)
\set q random(0, 50)
\set fin random(0, 3)
BEGIN;
INSERT INTO events (tenant, region, kind, amount, qty, price, created_at, note)
VALUES (:tenant, NULLIF('r' || :reg, 'r0'), 5, :q * 3, :q, :q / 4.0, timestamp '2026-01-20', 'read own')
RETURNING id AS newid \gset
SELECT stress_assert(:tenant, NULLIF('r' || :reg, 'r0'));
UPDATE events SET qty = NULL, deleted = :q % 2 = 0 WHERE id = :newid;
SELECT stress_assert(:tenant, NULLIF('r' || :reg, 'r0'));
DELETE FROM events WHERE id = :newid - 7;
SELECT stress_assert(:tenant, NULLIF('r' || :reg, 'r0'));
\if :fin = 0
ROLLBACK;
\else
COMMIT;
\endif
