-- the seed's "mark as read" of one of the newest notifications: clients
-- often mark the same one at the same time
SELECT last_value AS maxid FROM notification_id_seq \gset
\set id random(:maxid - 30, :maxid)
UPDATE notification SET has_readed = true WHERE id = :id;
