/*-------------------------------------------------------------------------
 *
 * counter_stats.c
 *	  Statistics per counter: how often and how long its deltas were
 *	  applied or recorded, folded, verified and rebuilt, for the view
 *	  counters.stats.
 *
 * The work counters does for a transaction happens at its commit, where no
 * EXPLAIN shows it; these figures show where it goes.  They live in shared
 * memory, one entry per counter (database and counter oid), so they need
 * the library in shared_preload_libraries; without it the view is empty.
 * Writers look an entry up under a shared lock and add to it under its own
 * spinlock, so that counting costs a transaction next to nothing and
 * writers never queue on one another's statistics.  Like PostgreSQL's own
 * cumulative statistics before version 15, they start from zero when the
 * server starts; counters.reset_stats() starts them again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "counter_stats.h"
#include "counter_util.h"

/* counters tracked at most; past that, new counters go uncounted */
#define MAX_TRACKED_COUNTERS 4096

typedef struct StatsKey
{
	Oid			dbid;
	Oid			counter;
} StatsKey;

typedef struct StatsEntry
{
	StatsKey	key;
	slock_t		mutex;
	int64		calls[CE_REBUILD + 1];	/* per event */
	int64		rows[CE_REBUILD + 1];	/* rows written, recorded, folded, ... */
	double		ms[CE_REBUILD + 1];	/* time spent */
	TimestampTz last[CE_REBUILD + 1];	/* when it last happened */
} StatsEntry;

typedef struct StatsShared
{
	LWLock	   *lock;
} StatsShared;

bool		counters_track_stats = true;

static StatsShared *shared = NULL;
static HTAB *stats_hash = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;


/*
 * stats_shmem_request: reserve the statistics' shared memory.
 */
static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(StatsShared)) +
						   hash_estimate_size(MAX_TRACKED_COUNTERS, sizeof(StatsEntry)));
	RequestNamedLWLockTranche("counters stats", 1);
}

/*
 * stats_shmem_startup: attach to (or make) the statistics' shared memory.
 */
static void
stats_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("counters stats", sizeof(StatsShared), &found);
	if (!found)
		shared->lock = &(GetNamedLWLockTranche("counters stats"))->lock;
	info.keysize = sizeof(StatsKey);
	info.entrysize = sizeof(StatsEntry);
	stats_hash = ShmemInitHash("counters stats hash", MAX_TRACKED_COUNTERS,
							   MAX_TRACKED_COUNTERS, &info,
							   HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * counters_stats_init: the GUC, and the shared memory when the library is
 * preloaded (from _PG_init).
 */
void
counters_stats_init(void)
{
	DefineCustomBoolVariable("counters.track_stats",
							 "Collects statistics on the work of each counter (view counters.stats).",
							 "Needs counters in shared_preload_libraries.",
							 &counters_track_stats, true, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/*
 * counters_stats_count: count one event of a counter, which handled rows
 * rows and started at *started (NULL: not timed).
 */
void
counters_stats_count(Oid counter, CounterEvent event, int64 rows,
					 instr_time *started)
{
	StatsKey	key;
	StatsEntry *entry;
	instr_time	elapsed;
	double		ms = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (stats_hash == NULL || !counters_track_stats)
		return;
	if (started != NULL)
	{
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, *started);
		ms = INSTR_TIME_GET_MILLISEC(elapsed);
	}
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.counter = counter;

	LWLockAcquire(shared->lock, LW_SHARED);
	entry = hash_search(stats_hash, &key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		bool		found;

		LWLockRelease(shared->lock);
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		entry = hash_search(stats_hash, &key, HASH_ENTER_NULL, &found);
		if (entry == NULL)
		{
			/* the table is full: this counter goes uncounted */
			LWLockRelease(shared->lock);
			return;
		}
		if (!found)
		{
			memset((char *) entry + sizeof(StatsKey), 0,
				   sizeof(StatsEntry) - sizeof(StatsKey));
			SpinLockInit(&entry->mutex);
		}
	}
	SpinLockAcquire(&entry->mutex);
	entry->calls[event]++;
	entry->rows[event] += rows;
	entry->ms[event] += ms;
	entry->last[event] = now;
	SpinLockRelease(&entry->mutex);
	LWLockRelease(shared->lock);
}

/*
 * counters_stats_forget: a counter was dropped.
 */
void
counters_stats_forget(Oid counter)
{
	StatsKey	key;

	if (stats_hash == NULL)
		return;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.counter = counter;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	(void) hash_search(stats_hash, &key, HASH_REMOVE, NULL);
	LWLockRelease(shared->lock);
}

/*
 * counters_stats_fill: one row per counter of this database that has
 * statistics, into a materialized SRF's tuplestore.
 */
void
counters_stats_fill(ReturnSetInfo *rsinfo)
{
	HASH_SEQ_STATUS status;
	StatsEntry *entry;

	if (stats_hash == NULL)
		return;

	LWLockAcquire(shared->lock, LW_SHARED);
	hash_seq_init(&status, stats_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		StatsEntry	e;
		Datum		values[1 + 4 * (CE_REBUILD + 1)];
		bool		nulls[1 + 4 * (CE_REBUILD + 1)];
		int			i = 0;
		int			ev;

		if (entry->key.dbid != MyDatabaseId)
			continue;
		SpinLockAcquire(&entry->mutex);
		memcpy(&e, entry, sizeof(StatsEntry));
		SpinLockRelease(&entry->mutex);

		memset(nulls, 0, sizeof(nulls));
		values[i++] = ObjectIdGetDatum(e.key.counter);
		for (ev = CE_APPLY; ev <= CE_REBUILD; ev++)
		{
			values[i++] = Int64GetDatum(e.calls[ev]);
			values[i++] = Int64GetDatum(e.rows[ev]);
			values[i++] = Float8GetDatum(e.ms[ev]);
			nulls[i] = e.calls[ev] == 0;
			values[i++] = TimestampTzGetDatum(e.last[ev]);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(shared->lock);
}

/*
 * counters_stats_reset: forget the statistics of this database's counters.
 */
void
counters_stats_reset(void)
{
	HASH_SEQ_STATUS status;
	StatsEntry *entry;

	if (stats_hash == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, stats_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->key.dbid == MyDatabaseId)
			(void) hash_search(stats_hash, &entry->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(shared->lock);
}
