-- delete one event
SELECT last_value AS maxid FROM events_id_seq \gset
\set id random(1, :maxid)
DELETE FROM events WHERE id = :id;
