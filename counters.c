/*-------------------------------------------------------------------------
 *
 * counters.c
 *	  The counters extension's module: initialisation, the hooks that tie
 *	  counter maintenance to queries and transactions, and the SQL API
 *	  (create_counter, drop_counter, verify, rebuild, flush, set_mode).
 *
 * The SQL functions only check their arguments and the caller's rights
 * and call the operations below them (counter_ops.h).  The triggers are in
 * counter_trigger.c, the event triggers in counter_ddl.c, the background
 * worker in counter_worker.c.  The layers are described in
 * counter_util.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "counter_ops.h"
#include "counters.h"

PG_MODULE_MAGIC;

COUNTERS_FUNCTION(counters_create_counter);
COUNTERS_FUNCTION(counters_drop_counter);
COUNTERS_FUNCTION(counters_verify);
COUNTERS_FUNCTION(counters_rebuild);
COUNTERS_FUNCTION(counters_flush);
COUNTERS_FUNCTION(counters_set_mode);
COUNTERS_FUNCTION(counters_migrate_1_1);
COUNTERS_FUNCTION(counters_read_stats);
COUNTERS_FUNCTION(counters_reset_stats);
COUNTERS_FUNCTION(counters_apply_now);
COUNTERS_FUNCTION(counters_flush_local);
COUNTERS_FUNCTION(counters_citus_shard_key_fn);

extern PGDLLEXPORT void _PG_init(void);

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static planner_hook_type prev_planner = NULL;

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
	counters_pending_before_query(queryDesc);

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * counters_planner: refuse what would make counters over Citus tables
 * wrong (counter_distribute.c), before Citus plans the query.
 */
static PlannedStmt *
counters_planner(Query *parse, const char *query_string, int cursorOptions,
				 ParamListInfo boundParams)
{
	counters_citus_check_query(parse);
	if (prev_planner)
		return prev_planner(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
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
			counters_pending_at_commit();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
			counters_pending_discard(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			counters_pending_discard(false);
			break;
		default:
			break;
	}
}

/*
 * subxact_callback: savepoints (see counter_pending.c).
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	counters_pending_subxact(event, mySubid, parentSubid);
}

/*
 * _PG_init: register the invalidation callbacks of the definition cache,
 * the hooks that apply pending deltas, the GUCs and, when preloaded, the
 * background worker.
 */
void
_PG_init(void)
{
	counters_util_init();
	counters_stats_init();
	counters_catalog_init();
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = counters_ExecutorStart;
	prev_planner = planner_hook;
	planner_hook = counters_planner;
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	counters_worker_init();
}

/*
 * prevent_if_read_only: the API functions that write refuse to run on a
 * hot standby, and in a read-only transaction, with PostgreSQL's own
 * SQLSTATE for both (25006) and no internal SQL in the message.
 */
static void
prevent_if_read_only(const char *what)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("counters cannot be changed during recovery"),
				 errdetail("%s writes, and this server is a standby; counters read exactly here.", what),
				 errhint("Run %s on the primary.", what)));
	PreventCommandIfReadOnly(what);
}

/*
 * counters_create_counter: SQL function create_counter(name, query, mode).
 */
Datum
counters_create_counter(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, query and mode of a counter must not be null")));
	prevent_if_read_only("counters.create_counter()");
	PG_RETURN_OID(counters_define(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  text_to_cstring(PG_GETARG_TEXT_PP(1)),
								  text_to_cstring(PG_GETARG_TEXT_PP(2))));
}

/*
 * counters_drop_counter: SQL function drop_counter(counter).
 */
Datum
counters_drop_counter(PG_FUNCTION_ARGS)
{
	prevent_if_read_only("counters.drop_counter()");
	counters_drop(PG_GETARG_OID(0));
	PG_RETURN_VOID();
}

/*
 * counters_verify: SQL function verify(counter), one row per key
 * where the counter differs from its defining query right now.
 */
Datum
counters_verify(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	counters_compare(PG_GETARG_OID(0), (ReturnSetInfo *) fcinfo->resultinfo);
	return (Datum) 0;
}

/*
 * counters_rebuild: SQL function rebuild(counter).
 */
Datum
counters_rebuild(PG_FUNCTION_ARGS)
{
	prevent_if_read_only("counters.rebuild()");
	PG_RETURN_INT64(counters_recompute(PG_GETARG_OID(0)));
}

/*
 * fold_isolated: fold one counter of flush(NULL) in a subtransaction of
 * its own, so that a counter that cannot be folded (a broken definition,
 * a trigger its owner put on its hidden tables) is reported and the
 * others are folded anyway.  Returns how many delta rows it folded.  A
 * counter over a Citus table is folded on every node, unless local (see
 * flush_counters).
 */
static int64
fold_isolated(Oid counter, bool local)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *name = counters_relation_name(counter);
	volatile int64 folded = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		CounterDef *def = counters_read_def(counter, true);

		if (def != NULL && counters_citus_table(def->storage, NULL) != CITUS_NONE)
			folded = local ? 0 : counters_citus_flush(def);
		else if (def != NULL)
			folded = counters_fold(def, false);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();		/* cancel, statement timeout: stop here */
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not flush counter %s: %s", name, edata->message),
				 edata->detail ? errdetail("%s", edata->detail) : 0,
				 errhint("The other counters were flushed; its recorded deltas stay, and reads stay exact.")));
		FreeErrorData(edata);
		folded = 0;
	}
	PG_END_TRY();
	return folded;
}

/*
 * flush_counters: flush() and flush_local(): fold the recorded deltas of
 * one counter, or of every counter the caller owns (every counter, for a
 * superuser), and return how many were folded.  The deltas of a counter
 * over a Citus table are next to its source's shards: flush() asks every
 * node to fold those it holds, flush_local() (local) folds this node's.
 */
static int64
flush_counters(FunctionCallInfo fcinfo, bool local)
{
	ListCell   *lc;
	int64		total = 0;
	int			nestlevel;

	prevent_if_read_only(local ? "counters.flush_local()" : "counters.flush()");
	counters_spi_connect();
	nestlevel = counters_safe_search_path();

	/* our own pending deltas first, so that they are folded too */
	counters_pending_apply();

	if (!PG_ARGISNULL(0))
	{
		Oid			counter = PG_GETARG_OID(0);
		CounterDef *def = counters_read_def(counter, true);

		if (!pg_class_ownercheck(counter, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));
		if (def == NULL && local)
			total = counters_citus_flush_local(counter);	/* declared elsewhere */
		else if (def == NULL)
			(void) counters_read_def(counter, false);	/* "is not a counter" */
		else if (counters_citus_table(def->storage, NULL) == CITUS_NONE)
			total = counters_fold(def, false);
		else
			total = local ? counters_citus_flush_local(counter) : counters_citus_flush(def);
	}
	else
	{
		foreach(lc, counters_flushable())
			total += fold_isolated(lfirst_oid(lc), local);
		if (local)
			total += counters_citus_flush_local(InvalidOid);
	}

	counters_restore_search_path(nestlevel);
	SPI_finish();
	return total;
}

/*
 * counters_flush: SQL function flush(counter DEFAULT NULL).
 */
Datum
counters_flush(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(flush_counters(fcinfo, false));
}

/*
 * counters_flush_local: SQL function flush_local(counter DEFAULT NULL):
 * flush(), but of counters over Citus tables only the deltas on this node.
 * The background worker of every node runs it; flush() runs it on every
 * node.
 */
Datum
counters_flush_local(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(flush_counters(fcinfo, true));
}

/* citus_shard_key()'s shards of one table, kept for the query (fn_extra) */
typedef struct ShardKeyCache
{
	Oid			source;
	struct CitusShardMap *map;
} ShardKeyCache;

/*
 * counters_citus_shard_key_fn: SQL function citus_shard_key(source,
 * value): the _counters_shard of the partial rows that count a row of
 * hash-distributed Citus table source whose distribution column holds
 * value (see counter_citus.c).  The table's shards are read once per
 * query.
 */
Datum
counters_citus_shard_key_fn(PG_FUNCTION_ARGS)
{
	ShardKeyCache *cache = (ShardKeyCache *) fcinfo->flinfo->fn_extra;
	Oid			source = PG_GETARG_OID(0);
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 1);
	int16		typlen;
	bool		typbyval;

	if (cache == NULL || cache->source != source)
	{
		if (cache == NULL)
			cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ShardKeyCache));
		counters_spi_connect();
		if (counters_citus_table(source, NULL) != CITUS_HASH)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a hash-distributed Citus table", get_rel_name(source))));
		cache->map = counters_citus_shard_map(source, type, PG_GET_COLLATION(),
											  fcinfo->flinfo->fn_mcxt);
		SPI_finish();
		cache->source = source;
		fcinfo->flinfo->fn_extra = cache;
	}
	get_typlenbyval(type, &typlen, &typbyval);
	PG_RETURN_DATUM(datumCopy(counters_citus_shard_key(cache->map, PG_GETARG_DATUM(1)),
							  typbyval, typlen));
}

/*
 * counters_set_mode: SQL function set_mode(counter, mode).
 */
Datum
counters_set_mode(PG_FUNCTION_ARGS)
{
	prevent_if_read_only("counters.set_mode()");
	(void) counters_switch_mode(PG_GETARG_OID(0), text_to_cstring(PG_GETARG_TEXT_PP(1)), false);
	PG_RETURN_VOID();
}

/*
 * counters_migrate_1_1: SQL function counters.upgrade_layout(): bring the
 * counters of version 1.0's layout to 1.1's (ALTER EXTENSION counters
 * UPDATE calls it; so may a superuser after restoring a dump of 1.0).
 */
Datum
counters_migrate_1_1(PG_FUNCTION_ARGS)
{
	int			nestlevel;

	counters_spi_connect();
	nestlevel = counters_safe_search_path();
	counters_migrate();
	counters_restore_search_path(nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * counters_read_stats: SQL function counters.read_stats(), behind the
 * view counters.stats.
 */
Datum
counters_read_stats(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, 0);
	counters_stats_fill((ReturnSetInfo *) fcinfo->resultinfo);
	return (Datum) 0;
}

/*
 * counters_reset_stats: SQL function counters.reset_stats().
 */
Datum
counters_reset_stats(PG_FUNCTION_ARGS)
{
	counters_stats_reset();
	PG_RETURN_VOID();
}

/*
 * counters_apply_now: SQL function counters.apply_pending(): apply the
 * transaction's pending deltas now rather than at commit, and return how
 * many counter rows were written or recorded, so that what a statement
 * costs at commit can be seen (EXPLAIN ANALYZE SELECT
 * counters.apply_pending(), or \timing).
 */
Datum
counters_apply_now(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(counters_pending_apply());
}
