/*-------------------------------------------------------------------------
 *
 * counter_apply.c
 *	  Writing a transaction's summed deltas of one counter: into its counter
 *	  rows in immediate mode (handing them to counter_buffered.c to record
 *	  in buffered mode).
 *
 * A transaction's deltas of one counter are applied sorted by key, so that
 * concurrent transactions lock counter rows in the same order and cannot
 * deadlock on them.  Deltas that outgrew work_mem come out of their sort
 * in key order and are applied in batches (apply_spilled).
 *
 * Most transactions touch a few keys whose counter rows already exist.
 * For them, planning-free as a prepared upsert is, executor start-up and
 * the ON CONFLICT machinery cost more than the change itself, so such a
 * row is updated or deleted with heap_update / heap_delete (apply_in_place).
 * The backend remembers where it wrote each key's row last
 * (counter_buffered.c's remembered rows): when that version is still the
 * latest, it is updated directly, heap_update waiting for a concurrent
 * writer as UPDATE would and failing if that one changed the row
 * (update_by_tid).  Otherwise the row is found through the storage's unique
 * index, its latest version locked (waiting for a concurrent writer,
 * following the update chain as READ COMMITTED does), and updated
 * (update_by_index).  Whenever anything is not as expected (no row yet,
 * row deleted concurrently, a transaction snapshot), the prepared upsert
 * takes over, which knows every case: the keys and deltas as
 * arrays, unnested into INSERT ... ON CONFLICT DO UPDATE, which adds each
 * delta to the stored row.  Rows whose group count reaches zero are
 * returned by the upsert and deleted by ctid, so a group row exists
 * exactly while some source row matches.  Counters without keys have one
 * row that always exists and is updated in place.
 *
 * Every statement names its objects and operators schema-qualified and is
 * prepared once per backend, then kept.  Maintenance runs as the counter's
 * owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/tuplesort.h"

#include "counter_write.h"

/* counter rows written (or delta rows recorded) by the current apply */
static int64 rows_written = 0;

/* whether the current apply records deltas (records_deltas), decided once */
static bool recording = false;

/* one key's deltas, with its key values, ready to sort */
typedef DeltaKeyGroup ApplyRow;

/*
 * records_deltas: whether this apply records the counter's deltas in its
 * deltas table instead of changing counter rows.  Always in buffered mode;
 * in immediate mode, in the apply worker of a two-phase subscription
 * where the counter view reads its deltas: a counter row changed by a
 * transaction the worker prepares would stay locked until COMMIT PREPARED
 * arrives, after the transactions the publisher committed meanwhile, which
 * the worker applies first and which would wait for it.  A view that does
 * not read its deltas (made before the subscription, by a version that
 * did not know) keeps the counter rows changed in place; the worker says
 * so once, with the fix.
 */
static bool
records_deltas(CounterState *cs)
{
	CounterDef *def = cs->def;

	if (def->buffered)
		return true;
	if (!counters_in_two_phase_apply())
		return false;
	if (def->reads_deltas)
		return true;
	if (!cs->two_phase_warned)
	{
		cs->two_phase_warned = true;
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("counter %s changes its rows in a two-phase subscription's transactions",
						counters_relation_name(def->counter)),
				 errdetail("A prepared transaction keeps the counter rows it changed locked until COMMIT PREPARED, and a transaction replicated before that which changes the same rows makes this worker wait for itself."),
				 errhint("Run SELECT counters.set_mode('%s', 'immediate') on this server: the counter then takes replicated changes as recorded deltas.",
						 counters_relation_name(def->counter))));
	}
	return false;
}

/*
 * prepare_kept: prepare a statement of the apply and keep it for the
 * backend's life.  It is prepared as the counter's owner, who runs it: the
 * writer whose transaction applies needs no right on the counter's schema.
 */
static SPIPlanPtr
prepare_kept(CounterState *cs, const char *sql, int nargs, Oid *argtypes)
{
	CountersRole role;
	SPIPlanPtr	plan;

	counters_writes_need_spi();
	counters_become(&role, cs->owner, COUNTERS_MAINTENANCE);
	plan = counters_spi_prepare_kept(sql, nargs, argtypes);
	counters_unbecome(&role);
	return plan;
}

/*
 * param_types: the type of every storage column, which is also the type of
 * the delta passed for it; *n receives their number.
 */
static Oid *
param_types(CounterDef *def, int *n)
{
	List	   *layout = counters_layout(def);
	Oid		   *types = palloc(sizeof(Oid) * list_length(layout));
	ListCell   *lc;

	foreach(lc, layout)
		types[foreach_current_index(lc)] =
			counters_column_type(def, (StorageColumn *) lfirst(lc));
	*n = list_length(layout);
	return types;
}

/*
 * append_additions: "col = c.col + excluded.col, ..." (keyed) or
 * "col = col + $n, ..." (no keys) for every non-key storage column.
 */
static void
append_additions(StringInfo buf, CounterDef *def, bool keyed)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		if (counters_is_key_column(def, sc))
			continue;
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		if (keyed)
			appendStringInfo(buf, "%s = c.%s OPERATOR(pg_catalog.+) excluded.%s",
							 sc->name, sc->name, sc->name);
		else
			appendStringInfo(buf, "%s = %s OPERATOR(pg_catalog.+) $%d",
							 sc->name, sc->name, foreach_current_index(lc) + 1);
	}
}

/*
 * make_upsert_plan: the statement that applies sorted arrays of deltas,
 * or, when single, the deltas of one key passed as scalars (a cheaper
 * plan for the many transactions that touch one key).  For a counter
 * "SELECT blog_id, count(*) AS posts, sum(rating) AS rating ... GROUP BY
 * blog_id" over an integer rating, with arrays:
 *
 *	WITH u AS (INSERT INTO s.storage AS c (blog_id, posts, rating,
 *				   _counters_rows, _counters_nn3)
 *			   SELECT pg_catalog.unnest($1), pg_catalog.unnest($2), ...,
 *				   pg_catalog.unnest($5)
 *			   ON CONFLICT (blog_id) DO UPDATE
 *			   SET posts = c.posts OPERATOR(pg_catalog.+) excluded.posts, ...
 *			   RETURNING c.ctid AS t, c._counters_rows AS r)
 *	SELECT t, r FROM u WHERE r OPERATOR(pg_catalog.=) 0
 *
 * The arrays are unnested in the select list, in step: in FROM, unnest()
 * of an array of a composite type would return the type's fields as
 * columns.  Without keys: UPDATE s.storage SET posts = posts
 * OPERATOR(pg_catalog.+) $2, ...
 */
static SPIPlanPtr
make_upsert_plan(CounterState *cs, bool single)
{
	CounterDef *def = cs->def;
	StringInfoData buf;
	int			n;
	Oid		   *types = param_types(def, &n);
	int			i;
	bool		first = true;

	initStringInfo(&buf);
	if (cs->nkeys == 0)
	{
		appendStringInfo(&buf, "UPDATE %s SET ", cs->storage_name);
		append_additions(&buf, def, false);
		return prepare_kept(cs, buf.data, n, types);
	}

	appendStringInfo(&buf, "%sINSERT INTO %s AS c (",
					 single ? "" : "WITH u AS (", cs->storage_name);
	appendStringInfoString(&buf, counters_storage_column_list(def, NULL));
	appendStringInfoString(&buf, single ? ") VALUES (" : ") SELECT ");
	for (i = 0; i < n; i++)
	{
		if (single)
		{
			appendStringInfo(&buf, "%s$%d", i > 0 ? ", " : "", i + 1);
			continue;
		}
		appendStringInfo(&buf, "%spg_catalog.unnest($%d)", i > 0 ? ", " : "", i + 1);
		types[i] = get_array_type(types[i]);
		if (!OidIsValid(types[i]))
			elog(ERROR, "counters: no array type for a counter column");
	}
	appendStringInfoString(&buf, single ? ") ON CONFLICT (" : " ON CONFLICT (");
	for (i = 0; i < def->ncolumns; i++)
	{
		if (def->kinds[i] != CCK_KEY)
			continue;
		appendStringInfo(&buf, "%s%s", first ? "" : ", ",
						 quote_identifier(def->colnames[i]));
		first = false;
	}
	if (def->partial)
		appendStringInfoString(&buf, ", " COUNTERS_SHARD_COLUMN);
	appendStringInfoString(&buf, ") DO UPDATE SET ");
	append_additions(&buf, def, true);
	if (def->partial)
		appendStringInfo(&buf, " RETURNING c.ctid AS t, CASE WHEN %s THEN 0 ELSE 1 END::pg_catalog.int8 AS r",
						 counters_empty_sql(def, "c"));
	else
		appendStringInfoString(&buf, " RETURNING c.ctid AS t, c." COUNTERS_ROWS_COLUMN " AS r");
	if (!single)
		appendStringInfoString(&buf, ") SELECT t, r FROM u WHERE r OPERATOR(pg_catalog.=) 0");
	return prepare_kept(cs, buf.data, n, types);
}

/*
 * run_as_owner: execute a kept plan as the counter's owner, marked as
 * maintenance for the storage guard.
 */
static void
run_as_owner(CounterState *cs, SPIPlanPtr plan, Datum *values,
			 const char *nulls, int expected)
{
	CountersRole role;
	int			rc;

	counters_writes_need_spi();
	counters_become(&role, cs->owner, COUNTERS_MAINTENANCE);
	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "counters: maintenance of %s failed: %s",
			 cs->storage_name, SPI_result_code_string(rc));
	counters_unbecome(&role);
}

/*
 * apply_global: apply the single delta of a counter without keys.
 */
static void
apply_global(DeltaMap *dm)
{
	CounterState *cs = dm->cs;
	CounterDef *def = cs->def;
	List	   *layout = counters_layout(def);
	Datum	   *values = palloc(sizeof(Datum) * list_length(layout));
	ListCell   *lc;

	if (counters_group_is_zero(def, dm->global))
		return;
	rows_written++;
	foreach(lc, layout)
		values[foreach_current_index(lc)] =
			counters_delta_value(def, (StorageColumn *) lfirst(lc), dm->global);
	if (recording)
	{
		char	   *nulls = palloc0(list_length(layout) + 1);

		memset(nulls, ' ', list_length(layout));
		counters_record_rows(cs, &values, &nulls, 1);
		return;
	}

	if (cs->upsert_plan == NULL)
		cs->upsert_plan = make_upsert_plan(cs, false);
	run_as_owner(cs, cs->upsert_plan, values, NULL, SPI_OK_UPDATE);
	if (SPI_processed > 0)
		return;

	/*
	 * The row is missing: an unlogged storage was reset by crash recovery
	 * with its source.  Make it again, once, under a lock that keeps other
	 * writers of this counter out meanwhile.
	 */
	{
		Oid		   *types = palloc(sizeof(Oid) * list_length(layout));
		StringInfoData buf;

		foreach(lc, layout)
			types[foreach_current_index(lc)] =
				counters_column_type(def, (StorageColumn *) lfirst(lc));
		initStringInfo(&buf);
		appendStringInfo(&buf, "INSERT INTO %s (%s) SELECT ", cs->storage_name,
						 counters_storage_column_list(def, NULL));
		foreach(lc, layout)
			appendStringInfo(&buf, "%s$%d", foreach_current_index(lc) > 0 ? ", " : "",
							 foreach_current_index(lc) + 1);
		appendStringInfo(&buf, " WHERE NOT EXISTS (SELECT FROM %s)", cs->storage_name);

		LockRelationOid(def->storage, ShareRowExclusiveLock);
		run_as_owner(cs, cs->upsert_plan, values, NULL, SPI_OK_UPDATE);
		if (SPI_processed == 0)
		{
			CountersRole role;

			counters_become(&role, cs->owner, COUNTERS_MAINTENANCE);
			if (SPI_execute_with_args(buf.data, list_length(layout), types, values,
									  NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "counters: could not recreate the row of %s", cs->storage_name);
			counters_unbecome(&role);
		}
	}
}

/*
 * compare_rows: qsort comparator, by key in the keys' btree order, nulls
 * last.
 */
static int
compare_rows(const void *a, const void *b, void *arg)
{
	const ApplyRow *ra = (const ApplyRow *) a;
	const ApplyRow *rb = (const ApplyRow *) b;
	CounterState *cs = (CounterState *) arg;
	int			k;

	for (k = 0; k < cs->nkeys; k++)
	{
		int			c = ApplySortComparator(ra->keys[k], ra->nulls[k],
											rb->keys[k], rb->nulls[k],
											&cs->key_sort[k]);

		if (c != 0)
			return c;
	}
	return 0;
}

/*
 * make_array: a one-dimensional array of n values of type elemtype.
 */
static Datum
make_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval,
											  typalign));
}

/*
 * delete_empty_groups: delete the rows the upsert left with no source row.
 */
static void
delete_empty_groups(CounterState *cs)
{
	SPITupleTable *upserted = SPI_tuptable;
	Datum	   *tids;
	Datum		values[1];
	uint64		i;
	int			n = 0;

	if (SPI_processed == 0)
	{
		SPI_freetuptable(upserted);
		return;
	}
	tids = palloc(sizeof(Datum) * SPI_processed);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];

		if (DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull)) == 0)
			tids[n++] = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
	}
	if (n == 0)
	{
		SPI_freetuptable(upserted);
		return;
	}
	values[0] = make_array(tids, NULL, n, TIDOID);
	SPI_freetuptable(upserted);

	if (cs->delete_plan == NULL)
	{
		Oid			argtypes[1] = {TIDARRAYOID};
		char	   *sql;

		sql = psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) AND %s",
					   cs->storage_name, counters_empty_sql(cs->def, NULL));
		cs->delete_plan = prepare_kept(cs, sql, 1, argtypes);
	}
	run_as_owner(cs, cs->delete_plan, values, NULL, SPI_OK_DELETE);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * What the in-place updates of one apply open once: the storage table,
 * its unique index and a snapshot, the last two on first need.
 */
typedef struct InPlace
{
	CounterState *cs;
	Relation	rel;			/* NULL: in-place updates are not possible */
	Relation	idx;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	Datum	   *newvals;		/* scratch, one per storage column */
	bool	   *newnulls;
	bool	   *isnull;
} InPlace;

/*
 * in_place_begin: get ready to update existing counter rows in place (the
 * caller records deltas instead where it should).  Not for a counter
 * without keys, or with a transaction snapshot (the upsert reports the
 * serialization failures then), or when the storage has other indexes
 * than its own.
 */
static void
in_place_begin(CounterState *cs, InPlace *ip)
{
	List	   *indexes;
	int			natts;

	memset(ip, 0, sizeof(InPlace));
	ip->cs = cs;
	if (cs->nkeys == 0 || IsolationUsesXactSnapshot())
		return;
	ip->rel = table_open(cs->def->storage, RowExclusiveLock);
	indexes = RelationGetIndexList(ip->rel);
	if (list_length(indexes) != 1)
	{
		table_close(ip->rel, RowExclusiveLock);
		ip->rel = NULL;
		return;
	}
	if (linitial_oid(indexes) != cs->storage_index)
	{
		/* an index's columns never change: ours is described once */
		Relation	idx = index_open(linitial_oid(indexes), RowExclusiveLock);
		MemoryContext oldcxt = MemoryContextSwitchTo(cs->cxt);

		cs->storage_index_info = BuildIndexInfo(idx);
		cs->storage_index = linitial_oid(indexes);
		MemoryContextSwitchTo(oldcxt);
		ip->idx = idx;
	}
	natts = RelationGetDescr(ip->rel)->natts;
	ip->newvals = palloc(sizeof(Datum) * natts);
	ip->newnulls = palloc(sizeof(bool) * natts);
	ip->isnull = palloc(sizeof(bool) * natts);
}

/*
 * in_place_end: close what in_place_begin and the updates opened.
 */
static void
in_place_end(InPlace *ip)
{
	if (ip->slot != NULL)
		ExecDropSingleTupleTableSlot(ip->slot);
	if (ip->snapshot != NULL)
		UnregisterSnapshot(ip->snapshot);
	/* like the executor, keep the locks of a written relation until commit */
	if (ip->idx != NULL)
		index_close(ip->idx, NoLock);
	if (ip->rel != NULL)
		table_close(ip->rel, NoLock);
}

/*
 * read_version: deform counter row version tup (pinned by the caller) into
 * ip's scratch arrays.  With isnull, returns whether its key is binary
 * equal to the one of values (a remembered TID may hold another row); the
 * caller that found the row through the index passes NULL, since the index
 * matches keys by their type's equality, as 0 and -0 of a float, which a
 * binary check would not.  Versions never change: a pin is enough to read
 * one.
 */
static bool
read_version(InPlace *ip, HeapTuple tup, Datum *values, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(ip->rel);

	heap_deform_tuple(tup, desc, ip->newvals, ip->newnulls);
	return isnull == NULL ||
		counters_same_key(ip->cs, desc, ip->newvals, ip->newnulls, values, isnull);
}

/*
 * write_version: add the deltas (values) to the counter row version that
 * read_version read (oldtup, at otid, still pinned), and write the result
 * as its new version, or
 * delete the row when its group count reaches zero.  heap_update and
 * heap_delete wait for a transaction that holds the row, as UPDATE would,
 * and tell whether otid is still the latest version: when the result is
 * not TM_Ok, nothing was changed.  Remembers where the new version is.
 */
static TM_Result
write_version(InPlace *ip, ItemPointer otid, HeapTuple oldtup, Datum *values,
			  uint32 hash)
{
	CounterState *cs = ip->cs;
	Relation	rel = ip->rel;
	HeapTuple	newtup;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TM_Result	res;
	int			k;

	if (counters_add_row_deltas(cs->def, ip->newvals, values) == 0)
	{
		res = heap_delete(rel, otid, GetCurrentCommandId(true), InvalidSnapshot,
						  true, &tmfd, false);
		if (res == TM_Ok)
			counters_forget_row(cs, hash);
		return res;
	}

	newtup = counters_next_version(cs->def, RelationGetDescr(rel), oldtup,
								   ip->newvals, ip->newnulls);
	res = heap_update(rel, otid, newtup, GetCurrentCommandId(true),
					  InvalidSnapshot, true, &tmfd, &lockmode);
	if (res != TM_Ok)
	{
		heap_freetuple(newtup);
		return res;
	}
	if (!HeapTupleIsHeapOnly(newtup))
	{
		IndexInfo  *info = cs->storage_index_info;
		Datum		ivals[INDEX_MAX_KEYS];
		bool		inulls[INDEX_MAX_KEYS];

		if (ip->idx == NULL)
			ip->idx = index_open(cs->storage_index, RowExclusiveLock);
		/* the index is on plain columns (the keys) */
		for (k = 0; k < info->ii_NumIndexAttrs; k++)
		{
			AttrNumber	attno = info->ii_IndexAttrNumbers[k];

			ivals[k] = ip->newvals[attno - 1];
			inulls[k] = ip->newnulls[attno - 1];
		}
		index_insert(ip->idx, ivals, inulls, &newtup->t_self, rel,
					 UNIQUE_CHECK_YES, true, info);
	}
	counters_remember_row(cs, hash, &newtup->t_self);
	heap_freetuple(newtup);
	return TM_Ok;
}

/*
 * update_by_tid: apply one key's deltas to the counter row version this
 * backend wrote last (tid), without looking the key up.  That version must
 * still be there with the same key, committed (or ours), and not updated
 * or deleted since; heap_update then waits for a transaction that holds
 * the row, as UPDATE would, and fails if that one changed it.  Returns
 * false, having changed nothing, in every other case.
 */
static bool
update_by_tid(InPlace *ip, ItemPointer tid, Datum *values, bool *isnull,
			  uint32 hash)
{
	HeapTupleData tup;
	Buffer		buffer;
	bool		ok;
	bool		pushed;

	buffer = counters_read_row(ip->rel, tid, &tup, true);
	if (!BufferIsValid(buffer))
		return false;
	ok = counters_row_is_latest(tup.t_data, true);
	LockBuffer(buffer, BUFFER_LOCK_UNLOCK);
	pushed = ok && counters_toast_snapshot(tup.t_data);
	ok = ok && read_version(ip, &tup, values, isnull) &&
		write_version(ip, tid, &tup, values, hash) == TM_Ok;
	if (pushed)
		PopActiveSnapshot();
	ReleaseBuffer(buffer);
	return ok;
}

/*
 * update_by_index: apply one key's deltas to its counter row found through
 * the unique index: its latest committed version, locked as UPDATE would
 * (waiting for a concurrent writer, following the update chain as READ
 * COMMITTED does).  Returns false, having changed nothing, when there is
 * no such row.
 */
static bool
update_by_index(InPlace *ip, Datum *values, bool *isnull, uint32 hash)
{
	CounterState *cs = ip->cs;
	ScanKeyData skeys[INDEX_MAX_KEYS];
	IndexScanDesc scan;
	TM_FailureData tmfd;
	ItemPointerData tid;
	bool		shouldfree;
	HeapTuple	tup;
	bool		pushed;
	int			k;

	if (ip->idx == NULL)
		ip->idx = index_open(cs->storage_index, RowExclusiveLock);
	if (ip->slot == NULL)
		ip->slot = table_slot_create(ip->rel, NULL);
	/* the latest committed state, and our own earlier writes */
	if (ip->snapshot != NULL)
		UnregisterSnapshot(ip->snapshot);
	ip->snapshot = RegisterSnapshot(GetLatestSnapshot());

	for (k = 0; k < cs->nkeys; k++)
	{
		int			col = cs->key_columns[k];

		if (isnull[col])
			ScanKeyEntryInitialize(&skeys[k], SK_ISNULL | SK_SEARCHNULL, k + 1,
								   InvalidStrategy, InvalidOid, InvalidOid,
								   InvalidOid, (Datum) 0);
		else
			ScanKeyEntryInitialize(&skeys[k], 0, k + 1, BTEqualStrategyNumber,
								   InvalidOid, cs->key_collations[k],
								   cs->key_eqfuncs[k], values[col]);
	}
	scan = index_beginscan(ip->rel, ip->idx, ip->snapshot, cs->nkeys, 0);
	index_rescan(scan, skeys, cs->nkeys, NULL, 0);
	if (!index_getnext_slot(scan, ForwardScanDirection, ip->slot))
	{
		index_endscan(scan);
		return false;
	}
	index_endscan(scan);

	tid = ip->slot->tts_tid;
	if (table_tuple_lock(ip->rel, &tid, ip->snapshot, ip->slot,
						 GetCurrentCommandId(false), LockTupleNoKeyExclusive,
						 LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
						 &tmfd) != TM_Ok)
		return false;

	/* locked: nobody else can change it now */
	tup = ExecFetchSlotHeapTuple(ip->slot, false, &shouldfree);
	pushed = counters_toast_snapshot(tup->t_data);
	(void) read_version(ip, tup, values, NULL);
	tid = ip->slot->tts_tid;
	if (write_version(ip, &tid, tup, values, hash) != TM_Ok)
		elog(ERROR, "counters: could not update a locked row of %s",
			 cs->storage_name);
	if (pushed)
		PopActiveSnapshot();
	ExecClearTuple(ip->slot);
	return true;
}

/*
 * apply_in_place: apply one key's deltas (values in storage column order,
 * keys included, as counters_row_values makes them) to its existing
 * counter row, without the executor (see the header comment): starting
 * from the version this backend wrote last when it remembers one, else
 * through the unique index.  Returns false, having changed nothing, when
 * the caller must use the upsert instead; *hash receives the key's hash.
 */
static bool
apply_in_place(InPlace *ip, Datum *values, char *nulls, uint32 *hash)
{
	CounterState *cs = ip->cs;
	TupleDesc	desc = RelationGetDescr(ip->rel);
	ItemPointerData tid;
	int			p;

	for (p = 0; p < desc->natts; p++)
		ip->isnull[p] = nulls[p] == 'n';
	*hash = counters_key_hash(cs, desc, values, ip->isnull);

	/* our own earlier writes are seen, and can be updated */
	CommandCounterIncrement();

	if (counters_recall_row(cs, *hash, &tid) &&
		update_by_tid(ip, &tid, values, ip->isnull, *hash))
		return true;
	return update_by_index(ip, values, ip->isnull, *hash);
}

/*
 * upsert_arrays: write key rows (as apply_sorted_rows takes them) with one
 * upsert over arrays, in the given order.
 */
static void
upsert_arrays(CounterState *cs, int n, Datum **values, char **nulls, int nrows)
{
	Datum	   *vals = palloc(sizeof(Datum) * nrows);
	bool	   *isnull = palloc(sizeof(bool) * nrows);
	Datum	   *params = palloc(sizeof(Datum) * n);
	Oid		   *types;
	int			p;
	int			r;

	/* one array per storage column */
	types = param_types(cs->def, &p);
	for (p = 0; p < n; p++)
	{
		for (r = 0; r < nrows; r++)
		{
			vals[r] = values[r][p];
			isnull[r] = nulls[r][p] == 'n';
		}
		params[p] = make_array(vals, isnull, nrows, types[p]);
	}

	if (cs->upsert_plan == NULL)
		cs->upsert_plan = make_upsert_plan(cs, false);
	run_as_owner(cs, cs->upsert_plan, params, NULL, SPI_OK_SELECT);
	delete_empty_groups(cs);
}

/*
 * apply_sorted_rows: write key rows (storage layout values with SPI-style
 * nulls, sorted by key, keys distinct) into a keyed counter's storage, in
 * the given order.  Existing rows are updated in place, the others
 * upserted key by key; past IN_PLACE_MISSES keys without a row (a
 * statement that makes many new groups), the rest of the keys go through
 * one upsert over arrays, which costs less per key than the upsert of one
 * key, and more than an update in place.  Keys are thus locked in key
 * order whatever path each takes.
 */
#define IN_PLACE_MISSES 8

static void
apply_sorted_rows(CounterState *cs, List *layout, Datum **values,
				  char **nulls, int nrows)
{
	int			n = list_length(layout);
	int			misses = 0;
	InPlace		ip;
	int			r;

	if (nrows == 0)
		return;
	rows_written += nrows;
	if (recording)
	{
		/* buffered: record the deltas, without waiting for anyone */
		counters_record_rows(cs, values, nulls, nrows);
		return;
	}

	in_place_begin(cs, &ip);
	for (r = 0; r < nrows; r++)
	{
		uint32		hash = 0;
		bool		isnull;

		CHECK_FOR_INTERRUPTS();

		/* an existing row: update it in place, without the executor */
		if (ip.rel != NULL && apply_in_place(&ip, values[r], nulls[r], &hash))
			continue;

		/*
		 * Many keys without a row: the rest in one statement.  Keys of a type
		 * without an array type (arrays themselves) go one by one.
		 */
		if (++misses > IN_PLACE_MISSES && nrows - r > 1 && !cs->rowwise)
		{
			upsert_arrays(cs, n, values + r, nulls + r, nrows - r);
			break;
		}

		if (cs->upsert1_plan == NULL)
			cs->upsert1_plan = make_upsert_plan(cs, true);
		run_as_owner(cs, cs->upsert1_plan, values[r], nulls[r],
					 SPI_OK_INSERT_RETURNING);

		/* where the row is now, for the next transaction */
		if (ip.rel != NULL && SPI_processed == 1 &&
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 2, &isnull)) != 0)
			counters_remember_row(cs, hash,
								  (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
																			  SPI_tuptable->tupdesc,
																			  1, &isnull)));
		else if (ip.rel != NULL)
			counters_forget_row(cs, hash);
		delete_empty_groups(cs);
	}
	in_place_end(&ip);
}

/*
 * apply_spilled: apply a DeltaMap whose deltas were (also) spilled into its
 * sort: the whole transaction's deltas of this counter come out in key
 * order, the several rows of one key are summed, and they are applied in
 * batches, so that memory stays bounded and locks are still taken in key
 * order from the first key to the last.
 */
static void
apply_spilled(DeltaMap *dm, List *layout)
{
	CounterState *cs = dm->cs;
	int			n = list_length(layout);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(dm->spill_desc,
													&TTSOpsMinimalTuple);
	MemoryContext batchcxt = AllocSetContextCreate(CurrentMemoryContext,
												   "counters apply batch",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext scratch = AllocSetContextCreate(CurrentMemoryContext,
												  "counters apply scratch",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt_outer = CurrentMemoryContext;
	int			maxrows = 10000;
	Datum	  **values = palloc(sizeof(Datum *) * maxrows);
	char	  **nulls = palloc(sizeof(char *) * maxrows);
	int			nrows = 0;

	counters_delta_spill_finish(dm);
	for (;;)
	{
		ResourceOwner saveowner = CurrentResourceOwner;
		bool		got;

		CurrentResourceOwner = TopTransactionResourceOwner;
		got = tuplesort_gettupleslot(dm->spill, true, true, slot, NULL);
		CurrentResourceOwner = saveowner;
		if (!got)
			break;
		CHECK_FOR_INTERRUPTS();
		{
		MemoryContext oldcxt = MemoryContextSwitchTo(batchcxt);
		bool		same = false;
		int			p;

		slot_getallattrs(slot);
		if (nrows > 0)
		{
			int			k;

			same = true;
			for (k = 0; k < cs->nkeys && same; k++)
			{
				int			col = cs->key_columns[k];

				same = ApplySortComparator(values[nrows - 1][col],
										   nulls[nrows - 1][col] == 'n',
										   slot->tts_values[col],
										   slot->tts_isnull[col],
										   &cs->key_sort[k]) == 0;
			}
		}
		if (same)
		{
			ListCell   *lc;

			/* another part of the same key's deltas: add it up */
			foreach(lc, layout)
			{
				StorageColumn *sc = (StorageColumn *) lfirst(lc);

				p = foreach_current_index(lc);
				if (counters_is_key_column(cs->def, sc))
					continue;
				values[nrows - 1][p] = counters_add_delta(cs->def, sc,
														  values[nrows - 1][p],
														  slot->tts_values[p]);
			}
		}
		else
		{
			if (nrows == maxrows)
			{
				MemoryContextSwitchTo(scratch);
				apply_sorted_rows(cs, layout, values, nulls, nrows);
				MemoryContextReset(scratch);
				MemoryContextReset(batchcxt);
				MemoryContextSwitchTo(batchcxt);
				nrows = 0;
			}
			values[nrows] = palloc(sizeof(Datum) * n);
			nulls[nrows] = palloc(sizeof(char) * n);
			for (p = 0; p < n; p++)
			{
				nulls[nrows][p] = slot->tts_isnull[p] ? 'n' : ' ';
				values[nrows][p] = slot->tts_isnull[p] ? (Datum) 0 :
					datumCopy(slot->tts_values[p],
							  TupleDescAttr(dm->spill_desc, p)->attbyval,
							  TupleDescAttr(dm->spill_desc, p)->attlen);
			}
			nrows++;
		}
		MemoryContextSwitchTo(oldcxt);
		}
	}
	MemoryContextSwitchTo(scratch);
	apply_sorted_rows(cs, layout, values, nulls, nrows);
	MemoryContextSwitchTo(oldcxt_outer);
	MemoryContextDelete(scratch);
	MemoryContextDelete(batchcxt);
	ExecDropSingleTupleTableSlot(slot);
}

static void apply_deltas(DeltaMap *dm);

/*
 * counters_apply_deltas: write a DeltaMap into the counter's storage (or
 * record it, for a buffered counter); returns how many rows it wrote.  A
 * key too long for the storage's btree index gets an error that says so.
 */
int64
counters_apply_deltas(DeltaMap *dm)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	instr_time	started;

	INSTR_TIME_SET_CURRENT(started);
	rows_written = 0;
	recording = records_deltas(dm->cs);
	PG_TRY();
	{
		apply_deltas(dm);
	}
	PG_CATCH();
	{
		counters_rethrow_key_too_long(dm->cs->def->counter, oldcxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (rows_written > 0)
		counters_stats_count(dm->cs->def->counter,
							 recording ? CE_RECORD : CE_APPLY,
							 rows_written, &started);
	return rows_written;
}

/*
 * apply_deltas: counters_apply_deltas's work.
 */
static void
apply_deltas(DeltaMap *dm)
{
	CounterState *cs = dm->cs;
	CounterDef *def = cs->def;
	MemoryContext cxt;
	MemoryContext oldcxt;
	ApplyRow   *rows;
	int			nrows = 0;
	List	   *layout;
	int			n;
	int			all;
	int			r;
	Datum	  **values;
	char	  **nulls;

	if (cs->nkeys == 0)
	{
		apply_global(dm);
		return;
	}
	if (dm->ngroups == 0 && dm->spill == NULL)
		return;

	layout = counters_layout(def);
	n = list_length(layout);

	/*
	 * The common case of a transaction that moved one key: a few small
	 * allocations, left to the caller's memory.
	 */
	if (dm->ngroups == 1 && dm->spill == NULL)
	{
		Datum	   *vals = palloc(sizeof(Datum) * n);
		char	   *nuls = palloc(sizeof(char) * n);

		rows = counters_delta_groups(dm, &all);
		if (all == 1 && !counters_group_is_zero(def, rows[0].g))
		{
			counters_row_values(cs, &rows[0], vals, nuls);
			apply_sorted_rows(cs, layout, &vals, &nuls, 1);
		}
		return;
	}

	cxt = AllocSetContextCreate(CurrentMemoryContext, "counters apply",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	if (dm->spill != NULL)
	{
		apply_spilled(dm, layout);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		return;
	}

	/* the keys that changed, sorted, so that transactions lock in one order */
	rows = counters_delta_groups(dm, &all);
	for (r = 0; r < all; r++)
		if (!counters_group_is_zero(def, rows[r].g))
			rows[nrows++] = rows[r];
	if (nrows > 1)
		qsort_arg(rows, nrows, sizeof(ApplyRow), compare_rows, cs);

	values = palloc(sizeof(Datum *) * Max(nrows, 1));
	nulls = palloc(sizeof(char *) * Max(nrows, 1));
	for (r = 0; r < nrows; r++)
	{
		values[r] = palloc(sizeof(Datum) * n);
		nulls[r] = palloc(sizeof(char) * n);
		counters_row_values(cs, &rows[r], values[r], nulls[r]);
	}
	apply_sorted_rows(cs, layout, values, nulls, nrows);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}

/*
 * delete_all_now: delete every row of a counter's hidden table as of now,
 * whatever this transaction's snapshot sees (its caller holds a lock that
 * keeps everyone else out).
 */
static void
delete_all_now(Oid relid)
{
	SPIPlanPtr	plan;

	plan = SPI_prepare(psprintf("DELETE FROM %s", counters_relation_name(relid)), 0, NULL);
	if (plan == NULL)
		elog(ERROR, "counters: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	CommandCounterIncrement();
	if (SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 false, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "counters: could not empty %s", counters_relation_name(relid));
	SPI_freeplan(plan);
}

/*
 * counters_apply_truncate: the source was truncated; empty the counter.
 * Keyed counters lose all rows; a counter without keys goes back to count
 * 0 and sum NULL.  SPI must be connected.
 *
 * Its storage and deltas tables are locked first (EXCLUSIVE: readers go
 * on), which waits for a flush that is folding deltas into new counter
 * rows, and then emptied with a DELETE that sees every committed row,
 * whatever this transaction's snapshot is: a DELETE under a REPEATABLE
 * READ snapshot would leave the rows such a flush committed after it was
 * taken.  Not a TRUNCATE, which logical decoding would send to
 * subscribers (see counters_mark_unpublished).
 */
void
counters_apply_truncate(CounterState *cs)
{
	CountersRole role;

	LockRelationOid(cs->def->storage, ExclusiveLock);
	LockRelationOid(cs->def->deltas, ExclusiveLock);
	counters_become(&role, cs->owner, COUNTERS_MAINTENANCE);
	delete_all_now(cs->def->storage);
	delete_all_now(cs->def->deltas);
	if (cs->nkeys == 0 && !cs->def->partial)	/* partial rows come back with deltas */
	{
		StringInfoData buf;
		int			i;

		initStringInfo(&buf);
		appendStringInfo(&buf, "INSERT INTO %s (%s) VALUES (", cs->storage_name,
						 counters_storage_column_list(cs->def, NULL));
		for (i = 0; i < list_length(counters_layout(cs->def)); i++)
			appendStringInfo(&buf, "%s0", i > 0 ? ", " : "");
		appendStringInfoChar(&buf, ')');
		counters_spi_exec(buf.data, SPI_OK_INSERT);
	}
	counters_unbecome(&role);
}
