# Makefile for the counters extension (PGXS)

MODULE_big = counters
OBJS = \
	counters.o \
	counter_trigger.o \
	counter_ddl.o \
	counter_worker.o \
	counter_define.o \
	counter_check.o \
	counter_distribute.o \
	counter_pending.o \
	counter_apply.o \
	counter_buffered.o \
	counter_delta.o \
	counter_layout.o \
	counter_catalog.o \
	counter_query.o \
	counter_citus.o \
	counter_util.o \
	counter_stats.o

EXTENSION = counters
DATA = counters--1.0.sql counters--1.0.control counters--1.1.sql counters--1.0--1.1.sql \
	counters--1.2.sql counters--1.1--1.2.sql
PGFILEDESC = "counters - exact counters maintained by triggers"

# make installcheck runs, against a running server (PGHOST, PGPORT): pg_regress
# over sql/ (whose suites include sql/include/helpers.sql), pg_isolation_regress
# over specs/, and prove over t/, as scripts/test does.  The TAP tests start
# servers of their own, which PostgreSQL refuses to run as root: as root, make
# installcheck leaves them out and says so (scripts/test runs everything as
# postgres).  One part: make installcheck REGRESS=buffered ISOLATION= TAP_TESTS=,
# or make installcheck REGRESS= ISOLATION= PROVE_TESTS=t/010_crash.pl.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ifneq ($(shell id -u),0)
TAP_TESTS = 1
else ifneq ($(filter installcheck,$(MAKECMDGOALS)),)
$(info make installcheck as root leaves out the TAP tests (t/*.pl): they start PostgreSQL servers, which refuse to run as root; run them as postgres, or run scripts/test)
endif

# Only the SQL-callable functions are exported (see COUNTERS_FUNCTION in
# counter_util.h): PostgreSQL 15 loads libraries with RTLD_GLOBAL, next to
# other extensions' symbols.
PG_CPPFLAGS = -fvisibility=hidden -DPGDLLEXPORT='__attribute__((visibility("default")))'

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the headers of its layer and of the layers below
$(OBJS): counter_util.h counter_stats.h counter_catalog.h counter_delta.h counter_write.h \
	counter_pending.h counter_ops.h counters.h
