-- flag / unflag a range of events
SELECT last_value AS maxid FROM events_id_seq \gset
\set a random(1, :maxid)
\set n random(1, 40)
UPDATE events SET flagged = NOT flagged WHERE id BETWEEN :a AND :a + :n;
