/*-------------------------------------------------------------------------
 *
 * counter_write.h
 *	  Writing a transaction's summed deltas: into counter rows in immediate
 *	  mode (counter_apply.c), into delta rows in buffered mode, and folding
 *	  those into counter rows later (counter_buffered.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_WRITE_H
#define COUNTER_WRITE_H

#include "counter_delta.h"

/* counter_apply.c */
extern int64 counters_apply_deltas(DeltaMap *dm);
extern void counters_apply_truncate(CounterState *cs);

/* counter_buffered.c */
extern void counters_record_rows(CounterState *cs, Datum **values,
								 char **nulls, int nrows);
extern int64 counters_fold(CounterDef *def, bool all);
extern List *counters_flushable(void);

#endif							/* COUNTER_WRITE_H */
