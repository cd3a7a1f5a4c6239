/*-------------------------------------------------------------------------
 *
 * counter_pending.c
 *	  The deltas of the current transaction, applied once: at commit, or
 *	  earlier when something is about to read a counter they touch.
 *
 * The maintenance trigger does not write counter rows itself.  It adds the
 * statement's deltas to a transaction-local map, so that a transaction of
 * many small statements (an ORM saving objects one by one) updates each
 * counter row once instead of building a long chain of row versions, and
 * so that counter row locks are held only from the apply to the commit.
 *
 * Read-your-writes still holds: an ExecutorStart hook applies the pending
 * deltas before any query whose plan reads a counter relation or storage
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

#include "access/xact.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "catalog/pg_class.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "counters.h"

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

/* What pending_apply set up for the writes that need it (see apply_set) */
static bool apply_spi_connected = false;
static bool apply_snapshot_pushed = false;

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

static void apply_pending_sets(void);

/*
 * free_set: forget a set and drop its references to cached counters.  Its
 * memory is freed too, unless the transaction is ending and frees it with
 * TopTransactionContext anyway.
 */
static void
free_set(PendingSet *set, bool xact_end)
{
	ListCell   *lc;

	foreach(lc, set->sources)
	{
		PendingSource *ps = (PendingSource *) lfirst(lc);
		ListCell   *mc;

		foreach(mc, ps->maps)
			delta_free((DeltaMap *) lfirst(mc));
		counters_release_source(ps->sc);
	}
	if (!xact_end)
	{
		MemoryContextDelete(set->cxt);
		pfree(set);
	}
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
			free_set(set, false);
			pending_sets = foreach_delete_current(pending_sets, lc);
		}
	}
}

/*
 * pending_maps_for: the DeltaMaps that the current subtransaction's
 * changes to a source go into, made on first use.
 */
List *
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
		oldcxt = MemoryContextSwitchTo(TopTransactionContext);
		set = palloc0(sizeof(PendingSet));
		set->origin = subid;
		set->writer = InvalidSubTransactionId;
		set->cxt = AllocSetContextCreate(TopTransactionContext,
										 "counters pending deltas",
										 ALLOCSET_DEFAULT_SIZES);
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
						   delta_create((CounterState *) lfirst(lc), set->cxt));
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
	*(Size *) arg += MemoryContextMemAllocated(dm->tablecxt, true);
}

static void
spill_map(DeltaMap *dm, void *arg)
{
	delta_spill(dm);
}

/*
 * pending_over_limit: whether the pending deltas' tables hold more than
 * work_mem.
 */
bool
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
void
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
 * pending_prepare_writes: during an apply, connect to SPI and make sure a
 * snapshot is active, before the first statement the apply runs through
 * SPI (an upsert).  Buffered recording and in-place updates of existing
 * counter rows need neither, so most transactions never pay for them.
 * Outside an apply (TRUNCATE), the caller has connected already.
 */
void
pending_prepare_writes(void)
{
	if (!applying)
		return;

	/* at commit there is no statement, hence no snapshot: take one */
	if (!apply_snapshot_pushed && !ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		apply_snapshot_pushed = true;
	}
	if (!apply_spi_connected)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		apply_spi_connected = true;
	}
}

/*
 * apply_set: write one set's deltas into the storage tables.
 */
static void
apply_set(PendingSet *set)
{
	ListCell   *lc;

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
			apply_deltas(dm);
		}
	}
}

/*
 * pending_apply: apply every pending delta now, as the current
 * subtransaction.
 */
void
pending_apply(void)
{
	apply_pending_sets();
	forget_settled_sets();
}

/*
 * apply_pending_sets: pending_apply, without forgetting the sets it
 * settles (at commit, the end of the transaction forgets everything).
 */
static void
apply_pending_sets(void)
{
	SubTransactionId subid;
	ListCell   *lc;

	if (pending_sets == NIL || applying)
		return;

	subid = GetCurrentSubTransactionId();
	applying = true;
	apply_spi_connected = false;
	apply_snapshot_pushed = false;
	PG_TRY();
	{
		foreach(lc, pending_sets)
		{
			PendingSet *set = (PendingSet *) lfirst(lc);

			if (set->writer != InvalidSubTransactionId)
				continue;
			apply_set(set);
			set->writer = subid;
			set->applied_once = true;
		}
		if (apply_spi_connected)
			SPI_finish();
	}
	PG_FINALLY();
	{
		/* on error, the (sub)transaction abort cleans up SPI and snapshots */
		applying = false;
		apply_spi_connected = false;
	}
	PG_END_TRY();
	if (apply_snapshot_pushed)
		PopActiveSnapshot();
	apply_snapshot_pushed = false;
}

/*
 * pending_discard_all: forget everything (transaction end).
 */
static void
pending_discard_all(void)
{
	ListCell   *lc;

	foreach(lc, pending_sets)
		free_set((PendingSet *) lfirst(lc), true);
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
 * refuse_moving_merge: PostgreSQL 15's MERGE leaves rows that an UPDATE
 * action moves to another partition out of the transition tables, so the
 * counters of a partitioned table would not see them.  Refuse MERGE with
 * an UPDATE action on a counted partitioned table.
 */
static void
refuse_moving_merge(PlannedStmt *stmt)
{
	ModifyTable *mt;
	RangeTblEntry *rte;
	ListCell   *lc;
	bool		updates = false;

	if (stmt->commandType != CMD_MERGE || !IsA(stmt->planTree, ModifyTable))
		return;
	mt = (ModifyTable *) stmt->planTree;
	rte = rt_fetch(mt->nominalRelation, stmt->rtable);
	if (rte->relkind != RELKIND_PARTITIONED_TABLE)
		return;
	foreach(lc, mt->mergeActionLists)
	{
		ListCell   *ac;

		foreach(ac, (List *) lfirst(lc))
			if (((MergeAction *) lfirst(ac))->commandType == CMD_UPDATE)
				updates = true;
	}
	if (updates && (counters_has_counters(rte->relid) ||
					OidIsValid(counters_partition_root(rte->relid))))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("MERGE with an UPDATE action is not supported on partitioned table \"%s\", whose rows are counted",
						get_rel_name(rte->relid)),
				 errdetail("In PostgreSQL 15, rows that MERGE moves between partitions are missing from the transition tables that keep counters exact."),
				 errhint("Use UPDATE, INSERT ... ON CONFLICT and DELETE statements instead.")));
}

/*
 * counters_ExecutorStart: refuse what counters could not follow, and apply
 * pending deltas before a query reads them.
 */
static void
counters_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	refuse_moving_merge(queryDesc->plannedstmt);

	if (pending_sets != NIL && !applying &&
		reads_pending_counter(queryDesc->plannedstmt))
	{
		pending_apply();
		CommandCounterIncrement();

		/*
		 * The query's snapshot was taken before the deltas were written.  In
		 * READ COMMITTED, the apply built on rows committed after that
		 * snapshot, so the query takes a new one, as if it had started a
		 * moment later, and sees the counter rows and the source rows as of
		 * the same instant.  With a transaction snapshot, the apply could
		 * only build on rows that snapshot sees (or fail), so it is enough
		 * to let the query see the transaction's own latest writes.
		 */
		if (queryDesc->snapshot != NULL)
		{
			if (IsolationUsesXactSnapshot())
				queryDesc->snapshot->curcid = GetCurrentCommandId(false);
			else
			{
				UnregisterSnapshot(queryDesc->snapshot);
				queryDesc->snapshot = RegisterSnapshot(GetTransactionSnapshot());
			}
		}
	}

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * xact_callback: apply before commit; forget at the end.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			apply_pending_sets();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending_discard_all();
			break;
		default:
			break;
	}
}

/*
 * subxact_callback: hand sets to the parent on commit; on rollback,
 * discard the changes and un-apply the writes made in the subtransaction.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
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
 * pending_init: install the hook and callbacks (from _PG_init).
 */
void
pending_init(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = counters_ExecutorStart;
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
