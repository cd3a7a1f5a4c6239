/*-------------------------------------------------------------------------
 *
 * counter_util.c
 *	  Utilities every layer of the counters extension uses: running as
 *	  another role, a safe search_path for generated SQL, SPI helpers, the
 *	  SPI session an apply opens only when it needs one, and relation names.
 *
 * Running as another role.  Everything counters does on behalf of a
 * counter (maintenance writes, evaluating its expressions, verify, rebuild,
 * folds) runs as the counter's owner inside a security-restricted
 * operation, the way PostgreSQL runs index expressions and REFRESH
 * MATERIALIZED VIEW as the owner: a user's code never runs with more
 * rights than its owner has.  counters_become() is the one way to switch;
 * with COUNTERS_MAINTENANCE it also tells the storage guard trigger that
 * the writes that follow are counter maintenance.  The depth of nested
 * maintenance is reset when a (sub)transaction aborts, so an error can
 * never leave the guard open.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "replication/logicalworker.h"
#include "replication/worker_internal.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "counter_util.h"

/*
 * Depth of maintenance in progress in this backend; the storage guard lets
 * writes through only while it is positive.
 */
static int	maintenance_depth = 0;

/* the depth when a subtransaction started, for the ones started inside maintenance */
typedef struct SavedDepth
{
	SubTransactionId subid;
	int			depth;
} SavedDepth;

static List *saved_depths = NIL;	/* in TopTransactionContext */

/* the SPI session and snapshot of the current apply, made on first need */
static bool writes_active = false;
static bool writes_spi = false;
static bool writes_snapshot = false;

/*
 * counters_become: run as role from now on, inside a security-restricted
 * operation, until counters_unbecome(saved).  A (sub)transaction abort
 * undoes it too.
 */
void
counters_become(CountersRole *saved, Oid role, int flags)
{
	int			sec;

	GetUserIdAndSecContext(&saved->save_userid, &saved->save_sec_context);
	sec = saved->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
		SECURITY_RESTRICTED_OPERATION;
	if (flags & COUNTERS_NO_FORCE_RLS)
		sec |= SECURITY_NOFORCE_RLS;
	SetUserIdAndSecContext(role, sec);
	saved->maintenance = (flags & COUNTERS_MAINTENANCE) != 0;
	if (saved->maintenance)
		maintenance_depth++;
}

/*
 * counters_unbecome: undo counters_become.
 */
void
counters_unbecome(CountersRole *saved)
{
	if (saved->maintenance && maintenance_depth > 0)
		maintenance_depth--;
	SetUserIdAndSecContext(saved->save_userid, saved->save_sec_context);
}

/*
 * counters_in_maintenance: whether the writes being made now are counter
 * maintenance.
 */
bool
counters_in_maintenance(void)
{
	return maintenance_depth > 0;
}

/*
 * xact_callback: a transaction's end leaves no maintenance in progress.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
	{
		maintenance_depth = 0;
		saved_depths = NIL;
		writes_active = writes_spi = writes_snapshot = false;
	}
}

/*
 * subxact_callback: remember the depth at the start of a subtransaction
 * begun inside maintenance (a user's function called by a counter's
 * expression may open one), and go back to it when the subtransaction
 * aborts; a subtransaction begun outside maintenance aborts to depth 0.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (maintenance_depth > 0)
			{
				MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);
				SavedDepth *sd = palloc(sizeof(SavedDepth));

				sd->subid = mySubid;
				sd->depth = maintenance_depth;
				saved_depths = lappend(saved_depths, sd);
				MemoryContextSwitchTo(oldcxt);
			}
			break;
		case SUBXACT_EVENT_ABORT_SUB:
		case SUBXACT_EVENT_COMMIT_SUB:
			{
				int			depth = 0;
				bool		found = false;

				foreach(lc, saved_depths)
				{
					SavedDepth *sd = (SavedDepth *) lfirst(lc);

					if (sd->subid == mySubid)
					{
						depth = sd->depth;
						found = true;
						saved_depths = foreach_delete_current(saved_depths, lc);
						pfree(sd);
						break;
					}
				}
				if (event == SUBXACT_EVENT_ABORT_SUB)
				{
					maintenance_depth = found ? depth : 0;
					writes_active = false;
				}
			}
			break;
		default:
			break;
	}
}

/*
 * counters_in_two_phase_apply: whether this backend is a logical
 * replication worker of a subscription that replicates prepared
 * transactions (two_phase = on), whose apply worker may prepare a
 * transaction and then apply others before its COMMIT PREPARED.
 */
bool
counters_in_two_phase_apply(void)
{
	return IsLogicalWorker() && MySubscription != NULL &&
		MySubscription->twophasestate != LOGICALREP_TWOPHASE_STATE_DISABLED;
}

/*
 * counters_util_init: register the callbacks that reset the maintenance
 * depth (once per backend, from _PG_init).
 */
void
counters_util_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}

/*
 * counters_safe_search_path: make generated SQL independent of the
 * caller's search_path until counters_restore_search_path(nestlevel) (or
 * the end of the transaction).
 */
int
counters_safe_search_path(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * counters_restore_search_path: undo counters_safe_search_path.
 */
void
counters_restore_search_path(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/*
 * counters_spi_connect: connect to SPI or fail.
 */
void
counters_spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "counters: SPI_connect failed");
}

/*
 * counters_spi_exec: run one generated statement through SPI and fail on
 * anything but the expected result code.  Used for DDL, administration
 * and repairs, never on the maintenance path.
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
 * counters_spi_oids: the first column of the last SPI result, an oid, as a
 * list in the current memory context (nulls left out), so that the caller
 * may run other queries while it walks the list.
 */
List *
counters_spi_oids(void)
{
	List	   *oids = NIL;
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
									  &isnull);

		if (!isnull)
			oids = lappend_oid(oids, DatumGetObjectId(d));
	}
	return oids;
}

/*
 * counters_spi_prepare_kept: prepare a statement and keep its plan for the
 * backend's life.
 */
SPIPlanPtr
counters_spi_prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "counters: SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * counters_writes_begin: an apply starts.  Buffered recording and in-place
 * updates of existing counter rows need neither SPI nor a snapshot, so
 * most transactions never pay for them: counters_writes_need_spi() sets
 * them up before the first statement that needs them.
 */
void
counters_writes_begin(void)
{
	writes_active = true;
	writes_spi = false;
	writes_snapshot = false;
}

/*
 * counters_writes_need_spi: during an apply, connect to SPI and make sure a
 * snapshot is active (at commit there is no statement, hence no snapshot).
 * Outside an apply the caller has connected already.
 */
void
counters_writes_need_spi(void)
{
	if (!writes_active)
		return;
	if (!writes_snapshot && !ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		writes_snapshot = true;
	}
	if (!writes_spi)
	{
		counters_spi_connect();
		writes_spi = true;
	}
}

/*
 * counters_writes_end: the apply is done; close what it opened.
 */
void
counters_writes_end(void)
{
	if (writes_spi)
		SPI_finish();
	if (writes_snapshot)
		PopActiveSnapshot();
	writes_active = writes_spi = writes_snapshot = false;
}

/*
 * counters_writes_reset: the apply failed; the (sub)transaction abort
 * cleans up SPI and snapshots, we only forget about them.
 */
void
counters_writes_reset(void)
{
	writes_active = writes_spi = writes_snapshot = false;
}

/*
 * counters_relation_name: the schema-qualified, quoted name of a relation,
 * for messages and generated SQL.
 */
char *
counters_relation_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		return psprintf("%u", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/*
 * counters_relation_owner: the owner of a relation.
 */
Oid
counters_relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * counters_rethrow_key_too_long: in a PG_CATCH block around writes to a
 * counter's storage: when the error is btree's "index row size exceeds
 * maximum", raise instead one that names the counter and says what to do.
 * Keys are stored in a btree index, which takes entries of up to about
 * 2700 bytes (a third of a page); a key value longer than that (after
 * compression) cannot be counted.  Returns (for the caller to rethrow)
 * for any other error.
 */
void
counters_rethrow_key_too_long(Oid counter, MemoryContext cxt)
{
	MemoryContext ecxt = MemoryContextSwitchTo(cxt);
	ErrorData  *edata = CopyErrorData();

	MemoryContextSwitchTo(ecxt);
	if (edata->sqlerrcode != ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		edata->funcname == NULL || strcmp(edata->funcname, "_bt_check_third_page") != 0)
		return;
	FlushErrorState();
	MemoryContextSwitchTo(cxt);
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("a key of counter %s is too long to be stored",
					counters_relation_name(counter)),
			 errdetail("Counter keys are kept in a btree index, whose entries are limited to about 2700 bytes: %s.",
					   edata->message),
			 errhint("Count a bounded expression of the key instead, such as left(k, 1000) or md5(k).")));
}
