-- delete a range of events
SELECT last_value AS maxid FROM events_id_seq \gset
\set a random(1, :maxid)
\set n random(0, 25)
DELETE FROM events WHERE id BETWEEN :a AND :a + :n;
