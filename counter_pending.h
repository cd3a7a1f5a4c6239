/*-------------------------------------------------------------------------
 *
 * counter_pending.h
 *	  The transaction's pending deltas (counter_pending.c): changed rows go
 *	  in, summed per counter and key; they are applied once, at commit or
 *	  before a query reads a counter they touch.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_PENDING_H
#define COUNTER_PENDING_H

#include "access/tupconvert.h"
#include "access/xact.h"
#include "executor/execdesc.h"
#include "utils/relcache.h"

#include "counter_delta.h"

/*
 * Feeding changed rows into the pending deltas of a source's counters:
 * counters_feed_begin, counters_feed_row per row version (sign -1 for an
 * old version, +1 for a new one), counters_feed_end.
 */
typedef struct CountersFeed
{
	SourceCounters *sc;
	List	   *maps;			/* the DeltaMaps the rows go into */
	ExprContext *econtext;		/* per-row memory, reset after each row */
	Relation	rootrel;		/* rows of a partition: the counted root */
	TupleConversionMap *map;	/* partition layout to the root's */
	TupleTableSlot *rootslot;
	bool		as_owner;		/* switched to the counters' one owner */
	CountersRole role;
} CountersFeed;

extern void counters_feed_begin(CountersFeed *feed, SourceCounters *sc,
								Relation rel, Oid root, ExprContext *econtext);
extern void counters_feed_row(CountersFeed *feed, TupleTableSlot *slot,
							  int sign);
extern void counters_feed_end(CountersFeed *feed);
extern void counters_feed_relation(Oid relid, Oid root, int sign,
								   bool recurse);

extern int64 counters_pending_apply(void);
extern void counters_pending_before_query(QueryDesc *queryDesc);
extern void counters_pending_at_commit(void);
extern void counters_pending_discard(bool committed);
extern void counters_pending_subxact(SubXactEvent event,
									 SubTransactionId mySubid,
									 SubTransactionId parentSubid);

#endif							/* COUNTER_PENDING_H */
