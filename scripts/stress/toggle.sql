-- soft delete / restore one event: it leaves or enters every filtered counter
-- (and, in buffered mode, moves between the two groups of the hot counter)
SELECT last_value AS maxid FROM events_id_seq \gset
\set id random(1, :maxid)
UPDATE events SET deleted = NOT deleted WHERE id = :id;
