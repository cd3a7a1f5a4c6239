/*-------------------------------------------------------------------------
 *
 * counter_pending.c
 *	  The deltas of the current transaction, applied once: at commit, or
 *	  earlier when something is about to read a counter they touch.
 *
 * The maintenance trigger does not write counter rows itself.  It feeds
 * the statement's changed rows in (counters_feed_row), and their deltas
 * are summed in a transaction-local map, so that a transaction of
 * many small statements (an ORM saving objects one by one) updates each
 * counter row once instead of building a long chain of row versions, and
 * so that counter row locks are held only from the apply to the commit.
 *
 * Read-your-writes still holds: the ExecutorStart hook (counters.c) applies
 * the pending deltas before any query whose plan reads a counter relation or storage
 * table with deltas pending, and verify() and rebuild() read through the
 * executor too.  The deltas are also applied when they outgrow work_mem,
 * before a TRUNCATE of a source, and just before commit or PREPARE.
 *
 * Subtransactions: each set of deltas remembers the subtransaction whose
 * changes it holds (its origin) and, once applied, the subtransaction that
 * wrote them.  Rolling back the origin discards the set; rolling back the
 * writer makes the set pending again (its writes are gone, its changes are
 * not); committing a subtransaction hands both to the parent.  A set is
 * forgotten once its writes and its changes belong to the same
 * subtransaction, since they now stand or fall together.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "counter_pending.h"
#include "counter_write.h"

/* The deltas of one source's counters within one PendingSet */
typedef struct PendingSource
{
	SourceCounters *sc;			/* holds a reference */
	List	   *maps;			/* one DeltaMap per counter of sc */
} PendingSource;

/* Deltas recorded in one subtransaction */
typedef struct PendingSet
{
	SubTransactionId origin;	/* whose changes these are */
	SubTransactionId writer;	/* who applied them, or Invalid */
	bool		applied_once;	/* takes no new deltas (its sorts are read) */
	MemoryContext cxt;
	List	   *sources;		/* PendingSource, in first-use order */
} PendingSet;

static List *pending_sets = NIL;	/* in TopTransactionContext */
static bool applying = false;

/*
 * A set's memory lives under pending_cxt, for as long as the backend, so
 * that the set of a committed transaction can serve the next one: most
 * transactions write one counted table, and making a set, its source and
 * its maps costs more than emptying them (see recycle_set).
 */
static MemoryContext pending_cxt = NULL;
static PendingSet *recycled = NULL;

/* rows fed since the memory the deltas take was last checked */
static int	rows_since_check = 0;

static int64 apply_pending_sets(void);

/*
 * free_set: forget a set, drop its references to cached counters and free
 * its memory.
 */
static void
free_set(PendingSet *set)
{
	ListCell   *lc;

	foreach(lc, set->sources)
	{
		PendingSource *ps = (PendingSource *) lfirst(lc);
		ListCell   *mc;

		foreach(mc, ps->maps)
			counters_delta_free((DeltaMap *) lfirst(mc));
		counters_release_source(ps->sc);
	}
	MemoryContextDelete(set->cxt);
}

/*
 * recycle_set: keep the set of a transaction that committed for the next
 * transaction, when it is the simple case: one source, still valid, whose
 * maps never moved deltas to disk.  Returns false when the set must be
 * freed instead.  The maps are emptied when the set is used again: after
 * the commit record, nothing may allocate and fail.
 */
static bool
recycle_set(PendingSet *set)
{
	PendingSource *ps;
	ListCell   *mc;

	if (recycled != NULL || list_length(set->sources) != 1)
		return false;
	ps = (PendingSource *) linitial(set->sources);
	if (!ps->sc->valid)
		return false;
	foreach(mc, ps->maps)
	{
		if (((DeltaMap *) lfirst(mc))->spill != NULL)
			return false;
	}
	recycled = set;
	return true;
}

/*
 * new_set: an empty set for the current subtransaction's changes: the
 * recycled one, emptied, when it holds maps for sc (the cached counters
 * counters_get_source gives now, so still valid), else a new one.
 */
static PendingSet *
new_set(SourceCounters *sc, SubTransactionId subid)
{
	PendingSet *set = recycled;
	MemoryContext cxt;

	if (set != NULL)
	{
		PendingSource *ps = (PendingSource *) linitial(set->sources);
		ListCell   *mc;

		/* emptied before it is taken: an error leaves it recycled */
		if (ps->sc == sc)
		{
			foreach(mc, ps->maps)
				counters_delta_clear((DeltaMap *) lfirst(mc));
			recycled = NULL;
		}
		else
		{
			recycled = NULL;
			free_set(set);
			set = NULL;
		}
	}
	if (set == NULL)
	{
		if (pending_cxt == NULL)
			pending_cxt = AllocSetContextCreate(TopMemoryContext,
												"counters pending",
												ALLOCSET_SMALL_SIZES);
		cxt = AllocSetContextCreate(pending_cxt, "counters pending deltas",
									ALLOCSET_DEFAULT_SIZES);
		set = MemoryContextAllocZero(cxt, sizeof(PendingSet));
		set->cxt = cxt;
	}
	set->origin = subid;
	set->writer = InvalidSubTransactionId;
	set->applied_once = false;
	return set;
}

/*
 * forget_settled_sets: drop the sets whose writes and changes now belong to
 * one subtransaction (they stand or fall together from now on).
 */
static void
forget_settled_sets(void)
{
	ListCell   *lc;

	foreach(lc, pending_sets)
	{
		PendingSet *set = (PendingSet *) lfirst(lc);

		if (set->writer == set->origin)
		{
			free_set(set);
			pending_sets = foreach_delete_current(pending_sets, lc);
		}
	}
}

/*
 * pending_maps_for: the DeltaMaps that the current subtransaction's
 * changes to a source go into, made on first use.
 */
static List *
pending_maps_for(SourceCounters *sc)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	PendingSet *set = NULL;
	PendingSource *ps;
	MemoryContext oldcxt;
	ListCell   *lc;

	foreach(lc, pending_sets)
	{
		PendingSet *s = (PendingSet *) lfirst(lc);

		if (s->origin == subid && s->writer == InvalidSubTransactionId &&
			!s->applied_once)
		{
			set = s;
			break;
		}
	}
	if (set == NULL)
	{
		set = new_set(sc, subid);
		oldcxt = MemoryContextSwitchTo(TopTransactionContext);
		pending_sets = lappend(pending_sets, set);
		MemoryContextSwitchTo(oldcxt);
	}

	foreach(lc, set->sources)
	{
		ps = (PendingSource *) lfirst(lc);
		if (ps->sc == sc)
			return ps->maps;
	}

	oldcxt = MemoryContextSwitchTo(set->cxt);
	ps = palloc0(sizeof(PendingSource));
	ps->sc = sc;
	sc->refcount++;
	foreach(lc, sc->counters)
		ps->maps = lappend(ps->maps,
						   counters_delta_create((CounterState *) lfirst(lc), set->cxt));
	set->sources = lappend(set->sources, ps);
	MemoryContextSwitchTo(oldcxt);
	return ps->maps;
}

/*
 * for_each_unapplied_map: call fn on every DeltaMap of the sets not applied
 * yet.  A walk without allocations: the memory check runs once per
 * statement and every 1024 rows.
 */
static void
for_each_unapplied_map(void (*fn) (DeltaMap *dm, void *arg), void *arg)
{
	ListCell   *lc;

	foreach(lc, pending_sets)
	{
		PendingSet *set = (PendingSet *) lfirst(lc);
		ListCell   *pl;

		if (set->writer != InvalidSubTransactionId)
			continue;
		foreach(pl, set->sources)
		{
			ListCell   *mc;

			foreach(mc, ((PendingSource *) lfirst(pl))->maps)
				fn((DeltaMap *) lfirst(mc), arg);
		}
	}
}

/* for_each_unapplied_map callbacks */
static void
add_table_memory(DeltaMap *dm, void *arg)
{
	*(Size *) arg += counters_delta_memory(dm);
}

static void
spill_map(DeltaMap *dm, void *arg)
{
	counters_delta_spill(dm);
}

/*
 * pending_over_limit: whether the pending deltas' tables hold more than
 * work_mem.
 */
static bool
pending_over_limit(void)
{
	Size		total = 0;

	for_each_unapplied_map(add_table_memory, &total);
	return total > (Size) work_mem * 1024;
}

/*
 * pending_spill: move the pending deltas out of memory, into per-counter
 * sorts by key (see delta_spill), when they outgrow work_mem.  They are
 * applied with everything else, in key order, at commit or before a read.
 */
static void
pending_spill(void)
{
	for_each_unapplied_map(spill_map, NULL);
}

/*
 * compare_sources: order pending sources by source oid, so that every
 * transaction applies (and locks) in the same order.
 */
static int
compare_sources(const ListCell *a, const ListCell *b)
{
	Oid			oa = ((PendingSource *) lfirst(a))->sc->source;
	Oid			ob = ((PendingSource *) lfirst(b))->sc->source;

	return oa < ob ? -1 : (oa > ob ? 1 : 0);
}

/*
 * apply_set: write one set's deltas into the storage tables; returns how
 * many rows were written.
 */
static int64
apply_set(PendingSet *set)
{
	ListCell   *lc;
	int64		rows = 0;

	list_sort(set->sources, compare_sources);
	foreach(lc, set->sources)
	{
		PendingSource *ps = (PendingSource *) lfirst(lc);
		ListCell   *mc;

		foreach(mc, ps->maps)
		{
			DeltaMap   *dm = (DeltaMap *) lfirst(mc);

			/*
			 * A counter dropped in this transaction has nothing to update.
			 * Dropping it invalidated the cached source, so only then is
			 * the catalog asked.
			 */
			if (!ps->sc->valid &&
				!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(dm->cs->def->storage)))
				continue;
			rows += counters_apply_deltas(dm);
		}
	}
	return rows;
}

/*
 * counters_pending_apply: apply every pending delta now, as the current
 * subtransaction; returns how many counter rows were written.
 */
int64
counters_pending_apply(void)
{
	int64		rows = apply_pending_sets();

	forget_settled_sets();
	return rows;
}

/*
 * apply_pending_sets: counters_pending_apply, without forgetting the sets it
 * settles (at commit, the end of the transaction forgets everything).
 */
static int64
apply_pending_sets(void)
{
	SubTransactionId subid;
	ListCell   *lc;
	bool		save_read_only;
	volatile int64 rows = 0;

	if (pending_sets == NIL || applying)
		return 0;

	subid = GetCurrentSubTransactionId();
	applying = true;
	counters_writes_begin();

	/*
	 * The deltas come from writes this transaction made while it could; a
	 * SET TRANSACTION READ ONLY since must not lose them (or fail the
	 * commit).
	 */
	save_read_only = XactReadOnly;
	XactReadOnly = false;
	PG_TRY();
	{
		foreach(lc, pending_sets)
		{
			PendingSet *set = (PendingSet *) lfirst(lc);

			if (set->writer != InvalidSubTransactionId)
				continue;
			rows += apply_set(set);
			set->writer = subid;
			set->applied_once = true;
		}
	}
	PG_CATCH();
	{
		/* the (sub)transaction abort cleans up SPI and snapshots */
		applying = false;
		XactReadOnly = save_read_only;
		counters_writes_reset();
		PG_RE_THROW();
	}
	PG_END_TRY();
	applying = false;
	XactReadOnly = save_read_only;
	counters_writes_end();
	return rows;
}

/*
 * counters_pending_discard: forget everything (transaction end); after a
 * commit, keep a set for the next transaction (recycle_set).
 */
void
counters_pending_discard(bool committed)
{
	ListCell   *lc;

	foreach(lc, pending_sets)
	{
		PendingSet *set = (PendingSet *) lfirst(lc);

		if (!committed || !recycle_set(set))
			free_set(set);
	}
	pending_sets = NIL;
	applying = false;
}

/*
 * reads_pending_counter: whether a plan reads a relation of a counter with
 * deltas pending.
 */
static bool
reads_pending_counter(PlannedStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->relationOids)
	{
		Oid			relid = lfirst_oid(lc);
		ListCell   *sl;

		foreach(sl, pending_sets)
		{
			PendingSet *set = (PendingSet *) lfirst(sl);
			ListCell   *pl;

			if (set->writer != InvalidSubTransactionId)
				continue;
			foreach(pl, set->sources)
			{
				PendingSource *ps = (PendingSource *) lfirst(pl);
				ListCell   *cl;

				foreach(cl, ps->sc->counters)
				{
					CounterDef *def = ((CounterState *) lfirst(cl))->def;

					if (def->storage == relid || def->counter == relid ||
						def->deltas == relid)
						return true;
				}
			}
		}
	}
	return false;
}

/*
 * counters_pending_before_query: before a query runs, apply the pending
 * deltas of the counters it reads, so that it reads its own transaction's
 * writes.
 */
void
counters_pending_before_query(QueryDesc *queryDesc)
{
	if (pending_sets == NIL || applying ||
		!reads_pending_counter(queryDesc->plannedstmt))
		return;

	counters_pending_apply();
	CommandCounterIncrement();

	/*
	 * The query's snapshot was taken before the deltas were written.  In
	 * READ COMMITTED, the apply built on rows committed after that snapshot,
	 * so the query takes a new one, as if it had started a moment later, and
	 * sees the counter rows and the source rows as of the same instant.
	 * With a transaction snapshot, the apply could only build on rows that
	 * snapshot sees (or fail), so it is enough to let the query see the
	 * transaction's own latest writes: it gets a copy of its snapshot with
	 * the current command id.  A copy, never the snapshot itself, which the
	 * statement that called us (a function reading the counter in the WHERE
	 * clause of an UPDATE, say) shares, and which must go on seeing what it
	 * saw when it started.
	 */
	if (queryDesc->snapshot != NULL)
	{
		Snapshot	snapshot;

		if (IsolationUsesXactSnapshot())
		{
			PushCopiedSnapshot(queryDesc->snapshot);
			UpdateActiveSnapshotCommandId();
			snapshot = RegisterSnapshot(GetActiveSnapshot());
			PopActiveSnapshot();
		}
		else
			snapshot = RegisterSnapshot(GetTransactionSnapshot());
		UnregisterSnapshot(queryDesc->snapshot);
		queryDesc->snapshot = snapshot;
	}
}

/*
 * counters_pending_at_commit: apply everything just before commit or
 * PREPARE TRANSACTION (the end of the transaction forgets the sets).
 *
 * PostgreSQL stops the COMMIT statement's statement_timeout before it
 * commits, but the apply may wait for counter row locks: the timeout is
 * started again for it, so that statement_timeout bounds the COMMIT as it
 * bounds any other statement.
 */
void
counters_pending_at_commit(void)
{
	volatile bool timeout = false;

	if (pending_sets == NIL)
		return;
	if (StatementTimeout > 0 && !get_timeout_active(STATEMENT_TIMEOUT))
	{
		enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
		timeout = true;
	}
	PG_TRY();
	{
		(void) apply_pending_sets();
	}
	PG_FINALLY();
	{
		if (timeout)
			disable_timeout(STATEMENT_TIMEOUT, false);
	}
	PG_END_TRY();
}

/*
 * counters_pending_subxact: hand sets to the parent on commit; on
 * rollback, discard the changes and un-apply the writes made in the
 * subtransaction.
 */
void
counters_pending_subxact(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	if (pending_sets == NIL)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		applying = false;

	foreach(lc, pending_sets)
	{
		PendingSet *set = (PendingSet *) lfirst(lc);

		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			if (set->origin == mySubid)
				set->origin = parentSubid;
			if (set->writer == mySubid)
				set->writer = parentSubid;
		}
		else if (set->origin == mySubid)
			set->writer = set->origin;	/* changes gone: discard the set */
		else if (set->writer == mySubid)
			set->writer = InvalidSubTransactionId;
	}
	forget_settled_sets();
}

/*
 * counters_feed_begin: get ready to feed rows of rel into the pending
 * deltas of sc's counters.  Rows of a partition (root valid) are seen in
 * the layout of the counted root.  Expressions are evaluated in econtext,
 * whose per-tuple memory is reset after every row.
 *
 * A counter's expressions are evaluated as its owner, inside a
 * security-restricted operation, as PostgreSQL evaluates index expressions
 * during maintenance: the functions they call are the owner's, and never
 * run with the rights of the role that happens to write the source.  When
 * all counters of the source have one owner (the usual case), the switch
 * is made once for the whole feed.
 */
void
counters_feed_begin(CountersFeed *feed, SourceCounters *sc, Relation rel,
					Oid root, ExprContext *econtext)
{
	ListCell   *lc;
	Oid			owner = InvalidOid;

	memset(feed, 0, sizeof(CountersFeed));
	feed->sc = sc;
	feed->maps = pending_maps_for(sc);
	feed->econtext = econtext;
	foreach(lc, sc->counters)
	{
		Oid			o = ((CounterState *) lfirst(lc))->owner;

		if (foreach_current_index(lc) == 0)
			owner = o;
		else if (o != owner)
			owner = InvalidOid;
	}
	if (OidIsValid(owner))
	{
		counters_become(&feed->role, owner, 0);
		feed->as_owner = true;
	}
	if (OidIsValid(root) && root != RelationGetRelid(rel))
	{
		feed->rootrel = table_open(root, AccessShareLock);
		feed->map = convert_tuples_by_name(RelationGetDescr(rel),
										   RelationGetDescr(feed->rootrel));
		feed->rootslot = MakeSingleTupleTableSlot(RelationGetDescr(feed->rootrel),
												  &TTSOpsVirtual);
	}
}

/*
 * counters_feed_row: one row version of the source goes in: for every
 * counter, -value at its key (sign -1, an old version) or +value (sign +1,
 * a new one).  Memory stays bounded: past work_mem, what the maps hold is
 * moved to disk, sorted by key.
 */
void
counters_feed_row(CountersFeed *feed, TupleTableSlot *slot, int sign)
{
	ListCell   *lc;

	if (feed->map != NULL)
		slot = execute_attr_map_slot(feed->map->attrMap, slot, feed->rootslot);
	foreach(lc, feed->maps)
	{
		DeltaMap   *dm = (DeltaMap *) lfirst(lc);
		CountersRole role;

		if (feed->as_owner)
			counters_delta_add(dm, feed->econtext, slot, sign);
		else
		{
			counters_become(&role, dm->cs->owner, 0);
			counters_delta_add(dm, feed->econtext, slot, sign);
			counters_unbecome(&role);
		}
	}
	ResetExprContext(feed->econtext);

	if (++rows_since_check >= 1024)
	{
		rows_since_check = 0;
		CHECK_FOR_INTERRUPTS();
		if (pending_over_limit())
			pending_spill();
	}
}

/*
 * counters_feed_end: done feeding.  The memory the deltas take is checked
 * every 1024 rows fed, whichever statements fed them (counters_feed_row).
 */
void
counters_feed_end(CountersFeed *feed)
{
	if (feed->as_owner)
		counters_unbecome(&feed->role);
	if (feed->rootrel != NULL)
	{
		ExecDropSingleTupleTableSlot(feed->rootslot);
		table_close(feed->rootrel, AccessShareLock);
	}
}

/*
 * counters_feed_relation: feed every row stored in relid (and, when
 * recurse, in the partitions below it) into the pending deltas of root's
 * counters, with the given sign: a partition attached, detached, dropped
 * or truncated.  The caller holds a lock that keeps writers out.
 */
void
counters_feed_relation(Oid relid, Oid root, int sign, bool recurse)
{
	SourceCounters *sc = counters_get_source(root);
	MemoryContext cxt;
	MemoryContext oldcxt;
	ExprContext *econtext;
	Snapshot	snapshot;
	ListCell   *lc;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "counters feed",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	econtext = CreateStandaloneExprContext();
	snapshot = RegisterSnapshot(GetLatestSnapshot());

	foreach(lc, recurse ? find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid))
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		CountersFeed feed;
		TupleTableSlot *slot;
		TableScanDesc scan;

		if (rel->rd_rel->relkind != RELKIND_RELATION)
		{
			table_close(rel, AccessShareLock);
			continue;
		}
		counters_feed_begin(&feed, sc, rel, root, econtext);
		slot = table_slot_create(rel, NULL);
		scan = table_beginscan(rel, snapshot, 0, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
			counters_feed_row(&feed, slot, sign);
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		counters_feed_end(&feed);
		table_close(rel, AccessShareLock);
	}

	UnregisterSnapshot(snapshot);
	FreeExprContext(econtext, true);
	counters_release_source(sc);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}
