/*-------------------------------------------------------------------------
 *
 * counters.c
 *	  Entry points of the counters extension: module initialisation, the
 *	  maintenance trigger on source tables, the triggers that refuse writes
 *	  to counter relations, and the event trigger that forgets dropped
 *	  counters.
 *
 * The maintenance trigger is one AFTER ... FOR EACH STATEMENT trigger per
 * event with transition tables.  For every changed row it subtracts the
 * row's old contribution at its old key and adds the new contribution at
 * the new key (the "universal formula"), sums those deltas per key, and
 * applies them once per statement.  It runs as the owner of each counter,
 * so that a role that may only write the source still keeps its counters
 * exact.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tupconvert.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "counters.h"

PG_MODULE_MAGIC;

/*
 * Depth of maintenance writes in progress in this backend.  The guard
 * trigger on storage tables lets writes through only while it is positive.
 */
int			counters_maintenance_depth = 0;

PG_FUNCTION_INFO_V1(counters_maintain);
PG_FUNCTION_INFO_V1(counters_refuse_write);
PG_FUNCTION_INFO_V1(counters_guard_storage);
PG_FUNCTION_INFO_V1(counters_on_sql_drop);

void		_PG_init(void);

/*
 * _PG_init: register the invalidation callbacks of the definition cache,
 * the hooks that apply pending deltas, the GUCs and, when preloaded, the
 * background worker.
 */
void
_PG_init(void)
{
	counters_init_cache();
	pending_init();
	counters_worker_init();
}

/*
 * counters_begin_maintenance: become the counter's owner for maintenance
 * writes, the way PostgreSQL runs index expressions as the table owner, and
 * let the storage guard know that the writes are ours.
 */
void
counters_begin_maintenance(Oid owner, Oid *save_userid, int *save_sec_context)
{
	GetUserIdAndSecContext(save_userid, save_sec_context);
	SetUserIdAndSecContext(owner,
						   *save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	counters_maintenance_depth++;
}

/*
 * counters_end_maintenance: undo counters_begin_maintenance.  On error the
 * transaction (or subtransaction) abort restores the user id; the depth is
 * reset by the callers' PG_FINALLY blocks.
 */
void
counters_end_maintenance(Oid save_userid, int save_sec_context)
{
	counters_maintenance_depth--;
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * counters_set_safe_search_path: make generated SQL independent of the
 * caller's search_path for the rest of the current GUC nest level.  Returns
 * the nest level to pass to AtEOXact_GUC.
 */
int
counters_set_safe_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * counters_spi_exec: run one generated statement through SPI and fail on
 * anything but the expected result code.  Used for rare DDL and repairs,
 * never on the maintenance path.
 */
void
counters_spi_exec(const char *sql, int expected)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expected)
		elog(ERROR, "counters: SPI_execute failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
}

/*
 * fold_transition_tables: fold one statement's transition tables into the
 * transaction's pending deltas of every counter on the source.  Each tuple
 * is read once; each counter evaluates its own expressions on it, in
 * econtext.  Allocations go to the trigger call's memory, which is reset
 * after the call.
 */
static void
fold_transition_tables(SourceCounters *sc, TriggerData *trigdata, Oid root,
					   ExprContext *econtext)
{
	Relation	rel = trigdata->tg_relation;
	Relation	rootrel = NULL;
	TupleConversionMap *map = NULL;
	TupleTableSlot *rootslot = NULL;
	TupleTableSlot *slot;
	List	   *maps;
	ListCell   *lc;
	Tuplestorestate *stores[2];
	int			signs[2] = {-1, +1};
	int			s;

	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel),
									&TTSOpsMinimalTuple);
	maps = pending_maps_for(sc);

	/* rows of a partition are seen in the layout of the counted root */
	if (OidIsValid(root))
	{
		rootrel = table_open(root, AccessShareLock);
		map = convert_tuples_by_name(RelationGetDescr(rel),
									 RelationGetDescr(rootrel));
		rootslot = MakeSingleTupleTableSlot(RelationGetDescr(rootrel),
											&TTSOpsVirtual);
	}

	stores[0] = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? NULL : trigdata->tg_oldtable;
	stores[1] = TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? NULL : trigdata->tg_newtable;

	for (s = 0; s < 2; s++)
	{
		Tuplestorestate *ts = stores[s];
		int64		n = 0;

		if (ts == NULL)
			continue;
		tuplestore_rescan(ts);
		while (tuplestore_gettupleslot(ts, true, false, slot))
		{
			TupleTableSlot *in = slot;

			if (map != NULL)
				in = execute_attr_map_slot(map->attrMap, slot, rootslot);
			foreach(lc, maps)
				delta_add_tuple((DeltaMap *) lfirst(lc), econtext, in,
								signs[s]);
			ResetExprContext(econtext);

			/* keep memory bounded: move what we hold to disk, by key */
			if ((++n & 1023) == 0 && pending_over_limit())
				pending_spill();
		}
	}

	if (pending_over_limit())
		pending_spill();

	if (rootrel != NULL)
	{
		ExecDropSingleTupleTableSlot(rootslot);
		table_close(rootrel, AccessShareLock);
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * maintain_statement: fold_transition_tables with an expression context
 * that is made once per backend and kept, since most statements change a
 * row or two and making one costs more than using it.  A nested
 * maintenance (a function called by a counter's expression writing a
 * counted table) makes its own.  The deltas are applied at commit or
 * before a read; when they outgrow work_mem they are moved to disk
 * meanwhile, sorted by key.
 */
static void
maintain_statement(SourceCounters *sc, TriggerData *trigdata, Oid root)
{
	static ExprContext *kept_econtext = NULL;
	static bool kept_in_use = false;
	ExprContext *econtext;

	if (kept_in_use)
	{
		econtext = CreateStandaloneExprContext();
		fold_transition_tables(sc, trigdata, root, econtext);
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
		fold_transition_tables(sc, trigdata, root, econtext);
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
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!(TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		  TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.maintain() must be called as an AFTER ... FOR EACH STATEMENT trigger")));

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
			counters_feed_rows(relid, root, -1, false);
			return PointerGetDatum(NULL);
		}
		relid = root;
	}

	if (!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) &&
		trigdata->tg_oldtable == NULL && trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on \"%s\" has no transition tables",
						trigdata->tg_trigger->tgname,
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Let counters.create_counter() install the triggers.")));

	sc = counters_get_source(relid, true);
	if (sc->counters == NIL)
	{
		counters_release_source(sc);
		return PointerGetDatum(NULL);
	}

	PG_TRY();
	{
		if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		{
			ListCell   *lc;

			/* earlier deltas first, so that nothing survives the truncate */
			pending_apply();
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			foreach(lc, sc->counters)
				apply_truncate((CounterState *) lfirst(lc));
			SPI_finish();
		}
		else
			maintain_statement(sc, trigdata, root);
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

	if (counters_maintenance_depth <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot write to counter storage table \"%s\"",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("Counter storage is written only by counter maintenance."),
				 errhint("Change the rows of the source table instead; to repair a counter, use counters.rebuild().")));
	return PointerGetDatum(NULL);
}

/*
 * counters_on_sql_drop: when a counter relation, its storage or its source
 * is dropped (directly or by CASCADE), remove the definition, the storage
 * and, with the last counter of a source, the source's triggers.
 */
Datum
counters_on_sql_drop(PG_FUNCTION_ARGS)
{
	List	   *dropped = NIL;
	uint64		i;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.on_sql_drop() must be called as an event trigger")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	counters_spi_exec("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
					  "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					  "AND objsubid OPERATOR(pg_catalog.=) 0",
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			dropped = lappend_oid(dropped, DatumGetObjectId(d));
	}

	if (dropped != NIL)
		counters_forget_dropped(dropped);

	SPI_finish();
	PG_RETURN_VOID();
}
