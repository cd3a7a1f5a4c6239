-- buffered mode's flushing client: flush every counter
INSERT INTO stress_flush_log SELECT counters.flush();
