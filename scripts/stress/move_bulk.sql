-- move a range of events to the next tenant and kind, and a day later or earlier
SELECT last_value AS maxid FROM events_id_seq \gset
\set a random(1, :maxid)
\set n random(1, 30)
\set days random(-1, 1)
UPDATE events
   SET tenant = tenant % 20 + 1, kind = (kind + 1) % 10,
       created_at = created_at + make_interval(days => :days)
 WHERE id BETWEEN :a AND :a + :n;
