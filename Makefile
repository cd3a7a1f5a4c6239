# Makefile for the counters extension (PGXS)

MODULE_big = counters
OBJS = \
	counters.o \
	counter_define.o \
	counter_catalog.o \
	counter_layout.o \
	counter_delta.o \
	counter_apply.o \
	counter_direct.o \
	counter_pending.o \
	counter_flush.o \
	counter_worker.o \
	counter_partition.o \
	counter_check.o

EXTENSION = counters
DATA = counters--1.0.sql
PGFILEDESC = "counters - exact counters maintained by triggers"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared header
$(OBJS): counters.h
