/*-------------------------------------------------------------------------
 *
 * counter_worker.c
 *	  The background worker that flushes recorded deltas.
 *
 * With counters in shared_preload_libraries, a launcher process wakes up
 * every counters.flush_interval and, for each database that accepts
 * connections, starts a short-lived worker that connects to it and, if the
 * extension is there, runs counters.flush_local(), then vacuums the deltas
 * tables that folding left with many dead rows, and on a subscriber of a
 * two-phase subscription gives immediate counters whose views predate it
 * views that read their deltas (counters_refresh_views).  One database at
 * a time; the worker exits after each round and is marked like an
 * autovacuum worker, so that DROP DATABASE terminates it instead of waiting
 * for it, and DDL waiting for its locks cancels it.
 *
 * Without the worker, buffered counters stay exact (reads add the recorded
 * deltas); flush() can then be run from cron or pg_cron.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "commands/vacuum.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "counter_ops.h"
#include "counters.h"

PGDLLEXPORT void counters_launcher_main(Datum arg);
PGDLLEXPORT void counters_flush_main(Datum arg);

/* counters.flush_interval: milliseconds between rounds; 0 turns them off */
static int	flush_interval = 1000;

/* dead rows in a deltas table that make the worker vacuum it */
#define VACUUM_DEAD_ROWS 10000

/*
 * counters_worker_init: define the GUC, and register the launcher when
 * loaded through shared_preload_libraries.
 */
void
counters_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("counters.flush_interval",
							"Time between two flushes of buffered counters by the background worker.",
							"0 stops the worker's flushes; counters stay exact, flush() can be run by hand.",
							&flush_interval,
							1000, 0, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("counters");

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "counters");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "counters_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "counters flush launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "counters flush launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * database_list: the databases that accept connections, read from the
 * shared catalog pg_database, in memory that outlives the transaction.
 */
static List *
database_list(MemoryContext cxt)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext oldcxt;

		if (!db->datallowconn || db->datistemplate)
			continue;
		oldcxt = MemoryContextSwitchTo(cxt);
		result = lappend_oid(result, db->oid);
		MemoryContextSwitchTo(oldcxt);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return result;
}

/*
 * database_exists: whether a database is still there (it may have been
 * dropped since the round began; its worker would only fail to connect).
 */
static bool
database_exists(Oid dboid)
{
	bool		exists;

	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid));
	CommitTransactionCommand();
	return exists;
}

/*
 * flush_database: run one worker for one database and wait for it.
 */
static void
flush_database(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "counters");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "counters_flush_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "counters flush worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "counters flush worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("counters: could not start a flush worker"),
				 errhint("Raise max_worker_processes.")));
		return;
	}
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		return;
	(void) WaitForBackgroundWorkerShutdown(handle);
}

/*
 * counters_launcher_main: the launcher's loop.
 */
void
counters_launcher_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("counters flush launcher");

	cxt = AllocSetContextCreate(TopMemoryContext, "counters launcher",
								ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ListCell   *lc;
		List	   *dbs;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 flush_interval > 0 ? flush_interval : 1000L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (flush_interval <= 0)
			continue;

		MemoryContextReset(cxt);
		dbs = database_list(cxt);
		foreach(lc, dbs)
		{
			CHECK_FOR_INTERRUPTS();
			if (database_exists(lfirst_oid(lc)))
				flush_database(lfirst_oid(lc));
		}
	}
}

/*
 * deltas_to_vacuum: the deltas tables of the database's counters (buffered
 * ones, and immediate ones of a two-phase subscriber) that hold at least
 * VACUUM_DEAD_ROWS dead rows (SPI connected), as a list of VacuumRelation
 * in cxt.  Every folded delta leaves a dead row and a
 * dead index entry behind; autovacuum would get to them, but only after
 * they have piled up for a while and made recording slower.
 */
static List *
deltas_to_vacuum(MemoryContext cxt)
{
	List	   *rels = NIL;
	uint64		i;

	counters_spi_exec("SELECT deltas::pg_catalog.oid FROM counters.counter_def",
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc,
														   1, &isnull));
		PgStat_StatTabEntry *stats = pgstat_fetch_stat_tabentry(relid);

		if (stats != NULL && stats->n_dead_tuples >= VACUUM_DEAD_ROWS)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

			rels = lappend(rels, makeVacuumRelation(NULL, relid, NIL));
			MemoryContextSwitchTo(oldcxt);
		}
	}
	return rels;
}

/*
 * vacuum_deltas: VACUUM the given deltas tables, as the VACUUM command
 * would (one transaction per table), skipping a table it cannot lock at
 * once and never truncating it: truncation needs a lock that writers,
 * always there on a hot counter, would hold off.
 */
static void
vacuum_deltas(List *rels)
{
	VacuumParams params;

	memset(&params, 0, sizeof(params));
	params.options = VACOPT_VACUUM | VACOPT_PROCESS_TOAST | VACOPT_SKIP_LOCKED;
	params.freeze_min_age = -1;
	params.freeze_table_age = -1;
	params.multixact_freeze_min_age = -1;
	params.multixact_freeze_table_age = -1;
	params.is_wraparound = false;
	params.log_min_duration = -1;
	params.index_cleanup = VACOPTVALUE_UNSPECIFIED;
	params.truncate = VACOPTVALUE_DISABLED;
	params.nworkers = -1;

	pgstat_report_activity(STATE_RUNNING, "VACUUM of counters deltas tables");

	/* vacuum() makes its working memory under the portal's */
	PortalContext = AllocSetContextCreate(TopMemoryContext, "counters vacuum",
										  ALLOCSET_DEFAULT_SIZES);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	vacuum(rels, &params, NULL, true);
	CommitTransactionCommand();
}

/*
 * counters_flush_main: one round in one database: counters.flush() if the
 * extension is installed there, then a VACUUM of the deltas tables that
 * folding filled with dead rows, then counters_refresh_views().
 */
void
counters_flush_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	List	   *vacrels = NIL;
	bool		installed = false;	/* a version of the extension with flush() */

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("counters flush worker");

	/*
	 * Be treated like an autovacuum worker: DROP DATABASE terminates us
	 * instead of failing because we are connected, and a session waiting
	 * for a lock we hold cancels us after deadlock_timeout.  A fold is one
	 * transaction, so being cancelled loses nothing; the next round folds.
	 */
	LWLockAcquire(ProcArrayLock, LW_EXCLUSIVE);
	MyProc->statusFlags |= PROC_IS_AUTOVACUUM;
	ProcGlobal->statusFlags[MyProc->pgxactoff] = MyProc->statusFlags;
	LWLockRelease(ProcArrayLock);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();

	/*
	 * Fold in READ COMMITTED whatever default_transaction_isolation says:
	 * a delta row that a writer added to, or that a flush() run by hand
	 * folded, after the fold's snapshot is then skipped or folded, instead
	 * of failing with a serialization error.
	 */
	XactIsoLevel = XACT_READ_COMMITTED;
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(get_extension_oid("counters", true)))
	{
		pgstat_report_activity(STATE_RUNNING, "SELECT counters.flush_local()");
		counters_spi_connect();
		/*
		 * flush_local() folds what this node holds (of counters over Citus
		 * tables, the deltas next to the shards here: every node's worker
		 * folds its own); an older version of the extension may lack it, or
		 * flush() too.
		 */
		counters_spi_exec("SELECT pg_catalog.to_regprocedure('counters.flush_local(pg_catalog.regclass)') IS NOT NULL, "
						  "pg_catalog.to_regprocedure('counters.flush(pg_catalog.regclass)') IS NOT NULL",
						  SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			bool		isnull;
			bool		local = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			bool		flush = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

			installed = local || flush;
			if (installed)
			{
				counters_spi_exec(local ? "SELECT counters.flush_local()" : "SELECT counters.flush()",
								  SPI_OK_SELECT);
				vacrels = deltas_to_vacuum(TopMemoryContext);
			}
		}
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (vacrels != NIL)
		vacuum_deltas(vacrels);

	/*
	 * On a two-phase subscriber, immediate counters whose views predate
	 * the subscription get views that read their deltas (see
	 * counters_refresh_views), when their tables are free.
	 */
	if (installed)
	{
		pgstat_report_activity(STATE_RUNNING, "counters: following two-phase subscriptions");
		(void) counters_refresh_views();
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
