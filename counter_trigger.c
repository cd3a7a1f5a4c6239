/*-------------------------------------------------------------------------
 *
 * counter_trigger.c
 *	  The triggers of the counters extension: maintenance on source tables,
 *	  write refusal on counter relations, the guard of storage tables, and
 *	  the dependencies of a counter recorded when its definition row is
 *	  inserted.
 *
 * The maintenance trigger is one AFTER ... FOR EACH STATEMENT trigger per
 * event with transition tables (and, where session_replication_role is
 * replica, as on a logical replication subscriber, an AFTER ... FOR EACH
 * ROW trigger, since PostgreSQL fires no statement trigger there).  Every row of the transition tables is fed
 * into the transaction's pending deltas (counter_pending.c): the old
 * version with sign -1, the new one with sign +1, at their own keys (the
 * "universal formula").  The deltas are applied once, at commit or before
 * a read of the counter.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "replication/worker_internal.h"
#include "rewrite/rewriteSupport.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "counter_ops.h"
#include "counters.h"

COUNTERS_FUNCTION(counters_maintain);
COUNTERS_FUNCTION(counters_refuse_write);
COUNTERS_FUNCTION(counters_guard_storage);
COUNTERS_FUNCTION(counters_on_def_insert);

/*
 * feed_transition_tables: feed one statement's transition tables into the
 * transaction's pending deltas: every old row with sign -1, every new row
 * with sign +1.  Each tuple is read once; each counter evaluates its own
 * expressions on it.  The rows of the counted table itself are read into
 * a slot kept with its cached counters (kept_slot, when the caller has no
 * use of it up the stack); a partition's, into a slot of its own.
 */
static void
feed_transition_tables(CountersFeed *feed, TriggerData *trigdata,
					   bool kept_slot)
{
	SourceCounters *sc = feed->sc;
	Relation	rel = trigdata->tg_relation;
	TupleTableSlot *slot;
	Tuplestorestate *stores[2];
	int			signs[2] = {-1, +1};
	int			s;

	kept_slot = kept_slot && RelationGetRelid(rel) == sc->source;
	if (kept_slot && sc->feed_slot == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(sc->cxt);

		sc->feed_slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(rel)),
												 &TTSOpsMinimalTuple);
		MemoryContextSwitchTo(oldcxt);
	}
	slot = kept_slot ? sc->feed_slot :
		MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	stores[0] = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? NULL : trigdata->tg_oldtable;
	stores[1] = TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? NULL : trigdata->tg_newtable;
	for (s = 0; s < 2; s++)
	{
		Tuplestorestate *ts = stores[s];

		if (ts == NULL)
			continue;
		tuplestore_rescan(ts);
		while (tuplestore_gettupleslot(ts, true, false, slot))
			counters_feed_row(feed, slot, signs[s]);
	}
	if (kept_slot)
		ExecClearTuple(slot);
	else
		ExecDropSingleTupleTableSlot(slot);
}

/*
 * feed_row_versions: feed the old (sign -1) and new (sign +1) versions of
 * the row an AFTER ... FOR EACH ROW trigger fired for.
 */
static void
feed_row_versions(CountersFeed *feed, TriggerData *trigdata)
{
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		counters_feed_row(feed, trigdata->tg_trigslot, +1);
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		counters_feed_row(feed, trigdata->tg_trigslot, -1);
	else
	{
		counters_feed_row(feed, trigdata->tg_trigslot, -1);
		counters_feed_row(feed, trigdata->tg_newslot, +1);
	}
}

/*
 * maintain: feed what the trigger saw into the pending deltas of the
 * source's counters, with an expression context that is made once per
 * backend and kept, since most statements change a row or two and making
 * one costs more than using it.  A nested maintenance (a function called
 * by a counter's expression writing a counted table) makes its own.  The
 * deltas are applied at commit or before a read; when they outgrow
 * work_mem they are moved to disk meanwhile, sorted by key.
 */
static void
maintain(SourceCounters *sc, TriggerData *trigdata, Oid root)
{
	static ExprContext *kept_econtext = NULL;
	static bool kept_in_use = false;
	ExprContext *econtext;
	CountersFeed feed;
	bool		row = TRIGGER_FIRED_FOR_ROW(trigdata->tg_event);

	if (kept_in_use)
	{
		econtext = CreateStandaloneExprContext();
		counters_feed_begin(&feed, sc, trigdata->tg_relation, root, econtext);
		if (row)
			feed_row_versions(&feed, trigdata);
		else
			feed_transition_tables(&feed, trigdata, false);
		counters_feed_end(&feed);
		FreeExprContext(econtext, true);
		return;
	}

	if (kept_econtext == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		kept_econtext = CreateStandaloneExprContext();
		MemoryContextSwitchTo(oldcxt);
	}
	econtext = kept_econtext;
	kept_in_use = true;
	PG_TRY();
	{
		counters_feed_begin(&feed, sc, trigdata->tg_relation, root, econtext);
		if (row)
			feed_row_versions(&feed, trigdata);
		else
			feed_transition_tables(&feed, trigdata, true);
		counters_feed_end(&feed);
	}
	PG_FINALLY();
	{
		ResetExprContext(econtext);
		kept_in_use = false;
	}
	PG_END_TRY();
}

/*
 * counters_maintain: the statement trigger on source tables.
 */
Datum
counters_maintain(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	SourceCounters *volatile sc;
	Oid			relid;
	volatile Oid root = InvalidOid;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!(TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)) ||
		(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) &&
		 TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.maintain() must be called as an AFTER trigger"),
				 errhint("Let counters.create_counter() install the triggers.")));

	/*
	 * The row trigger counts where session_replication_role is replica
	 * (PostgreSQL fires no statement trigger in a logical replication
	 * worker), the statement triggers everywhere else: whatever ALTER TABLE
	 * ... ENABLE TRIGGER made of their firing conditions, a change is never
	 * counted twice.
	 */
	if (!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) &&
		(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) != 0) !=
		(SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA))
		return PointerGetDatum(NULL);

	/* a partition's rows count for its partitioned root's counters */
	relid = RelationGetRelid(trigdata->tg_relation);
	if (trigdata->tg_relation->rd_rel->relispartition)
	{
		root = counters_partition_root(relid);
		if (!OidIsValid(root))
			return PointerGetDatum(NULL);
		if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		{
			/* BEFORE TRUNCATE: take away the rows about to disappear */
			counters_feed_relation(relid, root, -1, false);
			return PointerGetDatum(NULL);
		}
		relid = root;
	}

	if (TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) &&
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) &&
		trigdata->tg_oldtable == NULL && trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on \"%s\" has no transition tables",
						trigdata->tg_trigger->tgname,
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Let counters.create_counter() install the triggers.")));

	sc = counters_get_source(relid);

	/*
	 * A shard of a Citus table (counter_citus.c): its rows are converted to
	 * its table's layout if they differ.  A TRUNCATE of the table empties
	 * its counters where it runs, through the table's own trigger: its
	 * shards' do nothing.
	 */
	if (sc->counters == NIL ||
		(sc->citus_shard && TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)))
	{
		counters_release_source(sc);
		return PointerGetDatum(NULL);
	}
	if (sc->citus_shard)
		root = sc->root;

	/*
	 * pg_dump and pg_upgrade do not keep the mark that keeps hidden tables
	 * out of logical decoding: the first write after them sets it again.
	 * Not on a Citus table's shards, which Citus moves between nodes by
	 * logical replication, their counters' storage shards with them.
	 */
	if (!sc->marks_checked && !OidIsValid(sc->shell))
	{
		ListCell   *lc;

		foreach(lc, sc->counters)
		{
			CounterDef *def = ((CounterState *) lfirst(lc))->def;

			counters_mark_unpublished(def->storage);
			counters_mark_unpublished(def->deltas);
		}
		sc->marks_checked = true;
	}

	PG_TRY();
	{
		if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		{
			ListCell   *lc;

			/* earlier deltas first, so that nothing survives the truncate */
			counters_pending_apply();
			counters_spi_connect();
			foreach(lc, sc->counters)
				counters_apply_truncate((CounterState *) lfirst(lc));
			SPI_finish();
		}
		else
		{
			maintain(sc, trigdata, root);

			/*
			 * A shard written in a transaction block, as Citus writes shards
			 * in a distributed transaction that it ends with PREPARE
			 * TRANSACTION: apply now, at the end of the statement.  Applied
			 * at PREPARE, a counter row lock could be waited for by a
			 * transaction whose coordinator waits in turn for the prepared
			 * transaction holding it on another node: a cycle through
			 * prepared transactions, which no deadlock detector sees.
			 * Taken while the statement runs, every wait is between active
			 * backends, where Citus's distributed deadlock detection sees
			 * it.  Buffered mode records without waiting, at commit.
			 */
			if (sc->citus_shard && IsTransactionBlock())
			{
				ListCell   *lc;

				foreach(lc, sc->counters)
				{
					if (!((CounterState *) lfirst(lc))->def->buffered)
					{
						counters_pending_apply();
						break;
					}
				}
			}
		}
	}
	PG_FINALLY();
	{
		counters_release_source(sc);
	}
	PG_END_TRY();

	return PointerGetDatum(NULL);
}

/*
 * counters_refuse_write: INSTEAD OF trigger on counter relations.  Counter
 * rows are a function of the source; writing them directly would make the
 * counter lie.
 */
Datum
counters_refuse_write(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.refuse_write() must be called as a trigger")));

	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot write to counter relation \"%s\"",
					RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("A counter is maintained from its source table and changes only when the source changes."),
			 errhint("Change the rows of the source table instead; to repair a counter, use counters.rebuild().")));
	PG_RETURN_NULL();			/* keep compiler quiet */
}

/*
 * counters_guard_storage: BEFORE statement trigger on storage tables that
 * refuses every write not made by counter maintenance.
 */
Datum
counters_guard_storage(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.guard_storage() must be called as a trigger")));

	/*
	 * As a BEFORE ... FOR EACH ROW trigger, enabled only where
	 * session_replication_role is replica: rows that logical replication
	 * brings into a counter's hidden tables or into counters.counter_def
	 * are dropped on arrival.  Each side of a replication keeps its own
	 * counters, from the source rows it has; copying the other side's
	 * storage, deltas or definitions would make them wrong.  Other writes
	 * in that role (counter maintenance, a restore) go through.
	 */
	if (TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		if (!counters_in_maintenance() && MyLogicalRepWorker != NULL)
			return PointerGetDatum(NULL);
		return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
							   trigdata->tg_newtuple : trigdata->tg_trigtuple);
	}

	/*
	 * Citus runs maintenance of a counter over a Citus table (its first
	 * fill, a rebuild, a TRUNCATE, moving shards) on the shards of its
	 * storage from backends of its own; the statements were checked where
	 * they were issued (counters_citus_check_query).
	 */
	if (!counters_in_maintenance() &&
		!(counters_citus_internal_backend() && counters_citus_present()))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot write to counter storage table \"%s\"",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("Counter storage is written only by counter maintenance."),
				 errhint("Change the rows of the source table instead; to repair a counter, use counters.rebuild().")));
	return PointerGetDatum(NULL);
}

/*
 * counters_on_def_insert: AFTER INSERT trigger on counters.counter_def.
 * Records the dependencies of a counter's relations, for new counters and
 * for counters restored by pg_dump (which does not dump pg_depend) or
 * adopted from a dump of one schema.
 */
Datum
counters_on_def_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	CounterDef	def;
	bool		isnull;
	Oid			rule;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.on_def_insert() must be called as a row trigger")));
	desc = RelationGetDescr(trigdata->tg_relation);
	tup = trigdata->tg_trigtuple;
	memset(&def, 0, sizeof(def));
	def.counter = DatumGetObjectId(heap_getattr(tup, 1, desc, &isnull));
	def.storage = DatumGetObjectId(heap_getattr(tup, 2, desc, &isnull));
	def.definition = DatumGetObjectId(heap_getattr(tup, 4, desc, &isnull));
	def.deltas = DatumGetObjectId(heap_getattr(tup, 5, desc, &isnull));

	rule = get_rewrite_oid(def.counter, ViewSelectRuleName, true);
	if (!OidIsValid(rule) || get_rel_relkind(def.definition) != RELKIND_VIEW)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("counter definition does not name a counter view and a definition view")));

	counters_spi_connect();
	values[0] = ObjectIdGetDatum(rule);
	values[1] = ObjectIdGetDatum(def.definition);
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_depend WHERE classid OPERATOR(pg_catalog.=) "
							  "'pg_catalog.pg_rewrite'::pg_catalog.regclass AND objid OPERATOR(pg_catalog.=) $1 "
							  "AND refobjid OPERATOR(pg_catalog.=) $2",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading pg_depend failed");
	if (SPI_processed == 0)
		counters_record_dependencies(&def, false);
	counters_mark_unpublished(def.storage);
	counters_mark_unpublished(def.deltas);
	SPI_finish();
	return PointerGetDatum(NULL);
}
