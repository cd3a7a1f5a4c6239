-- MERGE one event: delete it, change it, or insert a new one when it is gone
SELECT last_value AS maxid FROM events_id_seq \gset
\set id random(1, :maxid)
\set r random(0, 9)
\set tenant random(1, 20)
\set amt random(0, 1000)
MERGE INTO events e
USING (SELECT :id::bigint AS id) s ON e.id = s.id
WHEN MATCHED AND :r < 3 THEN DELETE
WHEN MATCHED THEN UPDATE SET tenant = :tenant, amount = :amt, deleted = NOT e.deleted
WHEN NOT MATCHED THEN
  INSERT (tenant, region, kind, amount, qty, price, created_at, note)
  VALUES (:tenant, NULL, 2, :amt, NULL, 0.50, timestamp '2026-01-15', 'merge');
