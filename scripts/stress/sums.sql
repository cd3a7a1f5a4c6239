-- change summed values of one event, to and from NULL now and then
SELECT last_value AS maxid FROM events_id_seq \gset
\set id random(1, :maxid)
\set d random(-300, 300)
\set q random(-10, 10)
\set nul random(0, 9)
UPDATE events
   SET amount = CASE WHEN :nul = 0 THEN NULL ELSE coalesce(amount, 0) + :d END,
       qty = CASE WHEN :nul = 1 THEN NULL ELSE coalesce(qty, 0) + :q END,
       price = CASE WHEN :nul = 2 THEN NULL ELSE coalesce(price, 0) + :d / 100.0 END
 WHERE id = :id;
