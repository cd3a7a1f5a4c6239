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

#include "access/htup.h"
#include "storage/buf.h"
#include "utils/relcache.h"

#include "counter_delta.h"

/* counter_apply.c */
extern int64 counters_apply_deltas(DeltaMap *dm);
extern void counters_apply_truncate(CounterState *cs);

/* counter_buffered.c: the rows a backend wrote last, in both modes */
extern uint32 counters_key_hash(CounterState *cs, TupleDesc desc, Datum *values,
								bool *isnull);
extern bool counters_recall_row(CounterState *cs, uint32 hash, ItemPointer tid);
extern void counters_remember_row(CounterState *cs, uint32 hash, ItemPointer tid);
extern void counters_forget_row(CounterState *cs, uint32 hash);
extern Buffer counters_read_row(Relation rel, ItemPointer tid, HeapTuple tuple,
								bool prune_any);
extern bool counters_row_is_latest(HeapTupleHeader tup, bool own_ok);
extern bool counters_toast_snapshot(HeapTupleHeader tup);
extern bool counters_same_key(CounterState *cs, TupleDesc desc, Datum *rowvals,
							  bool *rownulls, Datum *values, bool *isnull);

/* counter_buffered.c: buffered mode */
extern void counters_record_rows(CounterState *cs, Datum **values,
								 char **nulls, int nrows);
extern int64 counters_fold(CounterDef *def, bool all);
extern List *counters_flushable(void);

#endif							/* COUNTER_WRITE_H */
