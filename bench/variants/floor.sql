-- Variant "floor" (bench/instructions only): C statement triggers with transition tables that do
-- nothing (bench/floor/bench_floor.c, built and installed by bench/instructions). What PostgreSQL
-- makes any statement-level maintenance with transition tables pay before it does any work: the
-- physical floor of the counters variants, whose triggers are declared the same way.
CREATE FUNCTION bench_floor_trigger() RETURNS trigger
    AS 'bench_floor', 'bench_floor_trigger' LANGUAGE C;
CREATE TRIGGER floor_insert AFTER INSERT ON posts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_floor_trigger();
CREATE TRIGGER floor_update AFTER UPDATE ON posts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_floor_trigger();
CREATE TRIGGER floor_delete AFTER DELETE ON posts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_floor_trigger();
