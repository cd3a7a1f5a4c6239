-- 2..60 events in one statement, over many keys of every counter
\set n random(2, 60)
\set r random(1, 1000000000)
INSERT INTO events (tenant, region, kind, amount, qty, price, flagged, deleted, created_at, note)
SELECT 1 + h % 20,
       NULLIF('r' || (h / 20) % 6, 'r0'),
       ((h / 120) % 10)::smallint,
       CASE WHEN (h / 1200) % 11 = 0 THEN NULL ELSE (h / 13200) % 1000 END,
       CASE WHEN (h / 7) % 9 = 0 THEN NULL ELSE ((h / 63) % 50)::int END,
       CASE WHEN (h / 11) % 8 = 0 THEN NULL ELSE ((h / 88) % 100000) / 100.0 END,
       (h / 3) % 4 = 0,
       (h / 5) % 10 = 0,
       timestamp '2026-01-01' + make_interval(days => ((h / 17) % 30)::int, secs => ((h / 510) % 86400)::int),
       'bulk'
  FROM (SELECT abs(hashint8(g::bigint * 1000003 + :r))::bigint AS h
          FROM generate_series(1, :n) g) s;
