/*-------------------------------------------------------------------------
 *
 * bench_floor.c
 *	  The "floor" variant of bench/instructions: an AFTER ... FOR EACH
 *	  STATEMENT trigger in C, with transition tables, that does nothing.
 *
 * It is what any statement-level maintenance with transition tables costs
 * before it does any work: PostgreSQL sets up the transition capture,
 * copies every changed row into the transition tables (for a DELETE or an
 * UPDATE it fetches the old row for that), queues and fires the trigger.
 * The counters extension cannot cost less than this; bench/instructions
 * reports it next to the other variants.  It is not part of the counters
 * extension: bench/instructions builds and installs it into the
 * PostgreSQL it measures.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(bench_floor_trigger);

/*
 * bench_floor_trigger: a statement trigger that returns at once, leaving
 * its transition tables unread.
 */
Datum
bench_floor_trigger(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "bench_floor_trigger: not called by the trigger manager");
	return PointerGetDatum(NULL);
}
