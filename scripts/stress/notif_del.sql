-- delete one notification
SELECT last_value AS maxid FROM notification_id_seq \gset
\set id random(1, :maxid)
DELETE FROM notification WHERE id = :id;
