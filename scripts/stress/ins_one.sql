-- one event, random attributes (NULL region, amount, qty or price now and then)
\set tenant random(1, 20)
\set reg random(0, 5)
\set kind random(0, 9)
\set amt random(-100, 1000)
\set qty random(-5, 50)
\set pr random(-10000, 100000)
\set flag random(0, 3)
\set day random(0, 29)
\set sec random(0, 86399)
INSERT INTO events (tenant, region, kind, amount, qty, price, flagged, created_at)
VALUES (:tenant, NULLIF('r' || :reg, 'r0'), :kind,
        CASE WHEN :amt < 0 THEN NULL ELSE :amt END,
        CASE WHEN :qty < 0 THEN NULL ELSE :qty END,
        CASE WHEN :pr < 0 THEN NULL ELSE :pr / 100.0 END,
        :flag = 0,
        timestamp '2026-01-01' + make_interval(days => :day, secs => :sec));
