-- move one event to another tenant, region, day and kind
SELECT last_value AS maxid FROM events_id_seq \gset
\set id random(1, :maxid)
\set tenant random(1, 20)
\set reg random(0, 5)
\set hours random(-48, 48)
\set kind random(0, 9)
UPDATE events
   SET tenant = :tenant, region = NULLIF('r' || :reg, 'r0'), kind = :kind,
       created_at = created_at + make_interval(hours => :hours)
 WHERE id = :id;
