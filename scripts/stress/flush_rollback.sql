-- buffered mode's flushing client: a flush that rolls back: everything it folded is recorded again
BEGIN;
SELECT counters.flush();
SELECT n FROM c_total;
ROLLBACK;
