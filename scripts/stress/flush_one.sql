-- buffered mode's flushing client: flush one of the six counters
\set i random(1, 6)
INSERT INTO stress_flush_log
SELECT counters.flush(name::regclass)
  FROM (SELECT name, row_number() OVER (ORDER BY name) AS i FROM stress_counter) s
 WHERE i = :i;
