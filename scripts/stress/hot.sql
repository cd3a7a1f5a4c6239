-- (buffered mode) everybody inserts into the same keys of every counter
INSERT INTO events (tenant, region, kind, amount, qty, price, created_at, note)
VALUES (1, 'r1', 1, 1, 1, 0.01, timestamp '2026-01-01 12:00', 'hot');
