/*-------------------------------------------------------------------------
 *
 * counter_stats.h
 *	  Per-counter statistics (counter_stats.c), part of the utilities
 *	  layer: every layer may count what it does.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_STATS_H
#define COUNTER_STATS_H

#include "nodes/execnodes.h"
#include "portability/instr_time.h"

/* what happened to a counter */
typedef enum CounterEvent
{
	CE_APPLY,					/* a transaction's deltas written (immediate) */
	CE_RECORD,					/* a transaction's deltas recorded (buffered) */
	CE_FOLD,					/* recorded deltas folded */
	CE_VERIFY,					/* compared with its query */
	CE_REBUILD					/* recomputed */
} CounterEvent;

extern bool counters_track_stats;

extern void counters_stats_count(Oid counter, CounterEvent event, int64 rows,
								 instr_time *started);
extern void counters_stats_forget(Oid counter);
extern void counters_stats_fill(ReturnSetInfo *rsinfo);
extern void counters_stats_reset(void);
extern void counters_stats_init(void);

#endif							/* COUNTER_STATS_H */
