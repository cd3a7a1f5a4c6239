-- INSERT ... ON CONFLICT DO UPDATE on the primary key: a move and an amount
-- change of an existing event (perhaps one another client is changing too),
-- or the event again under its old id if it was deleted (ids stay below the
-- sequence, so inserts never collide with it)
SELECT last_value AS maxid FROM events_id_seq \gset
\set id random(1, :maxid)
\set tenant random(1, 20)
\set amt random(0, 1000)
\set day random(0, 29)
INSERT INTO events (id, tenant, region, kind, amount, qty, price, created_at, note)
VALUES (:id, :tenant, 'r1', 1, :amt, 1, 1.00, timestamp '2026-01-01' + make_interval(days => :day), 'upsert')
ON CONFLICT (id) DO UPDATE
   SET tenant = excluded.tenant, amount = coalesce(events.amount, 0) + excluded.amount;
