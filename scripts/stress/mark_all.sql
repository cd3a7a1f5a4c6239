-- "mark all as read" for one user, or unread again for one notification
\set user random(1, 50)
\set r random(0, 1)
\if :r = 0
UPDATE notification SET has_readed = true WHERE user_id = :user AND NOT has_readed;
\else
SELECT last_value AS maxid FROM notification_id_seq \gset
\set id random(1, :maxid)
UPDATE notification SET has_readed = NOT has_readed WHERE id = :id;
\endif
