/*-------------------------------------------------------------------------
 *
 * counter_util.h
 *	  The bottom layer of the counters extension: running as another role,
 *	  a search_path that generated SQL cannot be fooled by, SPI helpers,
 *	  the lazily opened SPI session of an apply, and relation names.
 *
 * Layers, top to bottom (each calls only the layers below it):
 *	  entry points	counters.c (module, hooks, SQL functions),
 *					counter_trigger.c, counter_ddl.c, counter_worker.c
 *	  operations	counter_define.c, counter_check.c	  (counter_ops.h)
 *	  transaction	counter_pending.c					  (counter_pending.h)
 *	  writing		counter_apply.c (immediate mode),
 *					counter_buffered.c (buffered mode)	  (counter_write.h)
 *	  deltas		counter_delta.c, counter_layout.c	  (counter_delta.h)
 *	  catalog		counter_catalog.c, counter_query.c	  (counter_catalog.h)
 *	  utilities		counter_util.c						  (this file),
 *					counter_stats.c						  (counter_stats.h)
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_UTIL_H
#define COUNTER_UTIL_H

#include "executor/spi.h"

/*
 * SQL-callable functions are the only symbols the library exports (it is
 * built with -fvisibility=hidden, and PostgreSQL 15 loads it with
 * RTLD_GLOBAL next to other extensions).
 */
#define COUNTERS_FUNCTION(name) \
	extern PGDLLEXPORT Datum name(PG_FUNCTION_ARGS); \
	PG_FUNCTION_INFO_V1(name)

/* Running as another role (see counters_become) */
typedef struct CountersRole
{
	Oid			save_userid;
	int			save_sec_context;
	bool		maintenance;
} CountersRole;

/* flags of counters_become */
#define COUNTERS_MAINTENANCE	0x01	/* writes to counter storage allowed */
#define COUNTERS_NO_FORCE_RLS	0x02	/* the owner is not subject to FORCE RLS */

extern void counters_become(CountersRole *saved, Oid role, int flags);
extern void counters_unbecome(CountersRole *saved);
extern bool counters_in_maintenance(void);

extern int	counters_safe_search_path(void);
extern void counters_restore_search_path(int nestlevel);

extern void counters_spi_connect(void);
extern void counters_spi_exec(const char *sql, int expected);
extern List *counters_spi_oids(void);
extern SPIPlanPtr counters_spi_prepare_kept(const char *sql, int nargs,
											Oid *argtypes);

extern void counters_writes_begin(void);
extern void counters_writes_need_spi(void);
extern void counters_writes_end(void);
extern void counters_writes_reset(void);

extern char *counters_relation_name(Oid relid);
extern Oid	counters_relation_owner(Oid relid);
extern void counters_rethrow_key_too_long(Oid counter, MemoryContext cxt);

extern bool counters_in_two_phase_apply(void);
extern void counters_util_init(void);

#include "counter_stats.h"

#endif							/* COUNTER_UTIL_H */
