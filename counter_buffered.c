/*-------------------------------------------------------------------------
 *
 * counter_buffered.c
 *	  Buffered mode: recording a transaction's deltas in delta rows, and
 *	  folding recorded deltas into counter rows.
 *
 * A buffered counter's maintenance only records deltas in its deltas
 * table, in rows of the writing backend's own: no unique key, no row lock
 * to queue on, so writers to one hot key never wait on each other.
 * Reading the counter sums its storage rows and the recorded deltas (see
 * counters_storage_relation_sql), so reads are exact, including a
 * transaction's own uncommitted changes.  Folding (flush(), the background
 * worker, set_mode, rebuild) moves the committed deltas into the storage
 * rows in one statement that locks the delta rows nobody holds and deletes
 * them with RETURNING, so that concurrent folds, and writers committing
 * meanwhile, can never make a delta count twice or not at all, and a fold
 * never waits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/smgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "counter_write.h"

/*
 * Buffered recording, and why it reuses rows.
 *
 * A writer must never wait for another because of a buffered counter, so
 * recording uses no unique key and never writes a row that another writer
 * may be writing.  A new delta row per transaction does that, but costs an
 * index entry per transaction and makes the deltas table, and every read of
 * a hot key, grow by one row per write until the next fold.  So a backend
 * remembers where it recorded each key last (a small cache by key hash)
 * and, in a later transaction, adds its deltas to that row: a new version
 * of it (heap_update, HOT when the page has room, so no index entry).  It
 * does so only if that version is committed and not deleted, and without
 * waiting: if a fold holds or deleted the row, or anyone else holds it, it
 * inserts a new row instead.  A writer updates only rows it wrote itself
 * (or, rarely, one that took over the place of such a row), never waiting,
 * so writers still never wait on each other; and since a tuple version
 * never changes, adding to the version read is exact whatever happens
 * later.
 */
#define RECORDED_ROWS 64		/* cache slots per counter, a power of 2 */

typedef struct RecordedRow
{
	uint32		hash;			/* of the key */
	ItemPointerData tid;		/* where we recorded it last; invalid: empty */
} RecordedRow;

/*
 * key_hash: hash of a row's key columns, by their binary image.
 */
static uint32
key_hash(CounterState *cs, TupleDesc desc, Datum *values, bool *isnull)
{
	uint32		h = 0;
	int			k;

	for (k = 0; k < cs->nkeys; k++)
	{
		int			col = cs->key_columns[k];
		Form_pg_attribute att = TupleDescAttr(desc, col);

		h = hash_combine(h, isnull[col] ? 0x9e3779b9 :
						 datum_image_hash(values[col], att->attbyval, att->attlen));
	}
	return h;
}

/*
 * block_exists: whether block blkno is before the end of rel, asking the
 * kernel only when the size this backend last saw says otherwise.  That
 * size can only be too small (others extend the table), never too large:
 * cutting a table short takes an ACCESS EXCLUSIVE lock and sends an smgr
 * invalidation, which we processed when we locked rel, and which made us
 * forget the size (see smgrtruncate).
 */
static bool
block_exists(Relation rel, BlockNumber blkno)
{
	SMgrRelation smgr = RelationGetSmgr(rel);
	BlockNumber nblocks = smgr->smgr_cached_nblocks[MAIN_FORKNUM];

	if (nblocks == InvalidBlockNumber || blkno >= nblocks)
		nblocks = smgrnblocks(smgr, MAIN_FORKNUM);
	return blkno < nblocks;
}

/*
 * record_in_place: add one key's deltas to the row this backend recorded
 * them in last (rr).  Returns the new version, or NULL, having changed
 * nothing, when the row cannot be used any more and a new one must be
 * inserted.
 */
static HeapTuple
record_in_place(CounterState *cs, Relation rel, RecordedRow *rr,
				Datum *values, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(rel);
	BlockNumber blkno = ItemPointerGetBlockNumber(&rr->tid);
	OffsetNumber offnum = ItemPointerGetOffsetNumber(&rr->tid);
	HeapTuple	newtup = NULL;
	HeapTupleData oldtup;
	Buffer		buffer;
	Page		page;
	ItemId		lp;
	TransactionId xmin;
	Datum	   *newvals;
	bool	   *oldnulls;
	int			k;
	TM_FailureData tmfd;
	LockTupleMode lockmode;

	/* VACUUM or TRUNCATE may have cut the table short since */
	if (!block_exists(rel, blkno))
		return NULL;

	/*
	 * Our pin, kept until heap_update is done, keeps the tuple's line
	 * pointer from being pruned and reused by another row meanwhile.
	 */
	buffer = ReadBuffer(rel, blkno);
	heap_page_prune_opt(rel, buffer);
	LockBuffer(buffer, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buffer);
	if (offnum < FirstOffsetNumber || offnum > PageGetMaxOffsetNumber(page))
		goto done;
	lp = PageGetItemId(page, offnum);
	if (!ItemIdIsNormal(lp))
		goto done;
	oldtup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
	oldtup.t_len = ItemIdGetLength(lp);
	oldtup.t_tableOid = RelationGetRelid(rel);
	oldtup.t_self = rr->tid;

	/* a committed version, not deleted (heap_update checks again) */
	xmin = HeapTupleHeaderGetRawXmin(oldtup.t_data);
	if (!HeapTupleHeaderXminCommitted(oldtup.t_data) &&
		(TransactionIdIsCurrentTransactionId(xmin) || !TransactionIdDidCommit(xmin)))
		goto done;
	if (!(oldtup.t_data->t_infomask & HEAP_XMAX_INVALID) &&
		!HEAP_XMAX_IS_LOCKED_ONLY(oldtup.t_data->t_infomask))
		goto done;

	newvals = palloc(sizeof(Datum) * desc->natts);
	oldnulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(&oldtup, desc, newvals, oldnulls);

	/* the same key (a slot may hold another key of the same hash) */
	for (k = 0; k < cs->nkeys; k++)
	{
		int			col = cs->key_columns[k];
		Form_pg_attribute att = TupleDescAttr(desc, col);

		if (oldnulls[col] != isnull[col] ||
			(!isnull[col] && !datum_image_eq(newvals[col], values[col],
											 att->attbyval, att->attlen)))
			goto done;
	}
	counters_add_row_deltas(cs->def, newvals, values);
	newtup = heap_form_tuple(desc, newvals, isnull);
	LockBuffer(buffer, BUFFER_LOCK_UNLOCK);

	if (heap_update(rel, &rr->tid, newtup, GetCurrentCommandId(true),
					InvalidSnapshot, false, &tmfd, &lockmode) != TM_Ok)
	{
		/* being folded, or folded: record in a new row */
		heap_freetuple(newtup);
		newtup = NULL;
	}
	ReleaseBuffer(buffer);
	return newtup;

done:
	UnlockReleaseBuffer(buffer);
	return NULL;
}

/* The indexes of a deltas table, opened on first need by one recording */
typedef struct DeltasIndexes
{
	int			n;				/* -1: not opened yet */
	Relation   *rels;
	IndexInfo **infos;
} DeltasIndexes;

/*
 * open_indexes: open the deltas table's indexes for this recording.
 */
static void
open_indexes(CounterState *cs, Relation rel, DeltasIndexes *di)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	di->n = 0;
	di->rels = palloc(sizeof(Relation) * Max(list_length(indexes), 1));
	di->infos = palloc(sizeof(IndexInfo *) * Max(list_length(indexes), 1));
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	idx = index_open(indexoid, RowExclusiveLock);

		/*
		 * An index being built or dropped concurrently (REINDEX
		 * CONCURRENTLY makes one) takes no entries until it is ready for
		 * them, as in ExecOpenIndices.
		 */
		if (!idx->rd_index->indisready)
		{
			index_close(idx, RowExclusiveLock);
			continue;
		}
		if (!heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) ||
			!heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("counters cannot maintain index \"%s\" of the deltas table \"%s\"",
							RelationGetRelationName(idx), RelationGetRelationName(rel)),
					 errdetail("Indexes on a counter's hidden tables must be plain indexes on its key columns."),
					 errhint("Drop the index.")));

		/* an index's columns never change: ours (the first) is described once */
		if (di->n == 0 && indexoid != cs->deltas_index)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(cs->cxt);

			cs->deltas_index_info = BuildIndexInfo(idx);
			cs->deltas_index = indexoid;
			MemoryContextSwitchTo(oldcxt);
		}
		di->infos[di->n] = indexoid == cs->deltas_index ? cs->deltas_index_info :
			BuildIndexInfo(idx);
		di->rels[di->n++] = idx;
	}
}

/*
 * insert_index_entries: the deltas index entries of a new row version.
 */
static void
insert_index_entries(CounterState *cs, Relation rel, DeltasIndexes *di,
					 HeapTuple tup, Datum *values, bool *isnull)
{
	int			i;

	if (di->n < 0)
		open_indexes(cs, rel, di);
	for (i = 0; i < di->n; i++)
	{
		IndexInfo  *info = di->infos[i];
		Datum		ivals[INDEX_MAX_KEYS];
		bool		inulls[INDEX_MAX_KEYS];
		int			k;

		/* the index is on the key columns, in order */
		for (k = 0; k < info->ii_NumIndexAttrs; k++)
		{
			AttrNumber	attno = info->ii_IndexAttrNumbers[k];

			ivals[k] = values[attno - 1];
			inulls[k] = isnull[attno - 1];
		}
		index_insert(di->rels[i], ivals, inulls, &tup->t_self, rel,
					 UNIQUE_CHECK_NO, false, info);
	}
}

/*
 * counters_record_rows: buffered mode's apply, without SPI and the
 * executor: record the rows (storage layout values, SPI-style nulls) in
 * the counter's deltas table, each in the row this backend recorded its
 * key in last if it can (see above), else in a new row.  Recording never
 * waits for anything.
 */
void
counters_record_rows(CounterState *cs, Datum **values, char **nulls, int nrows)
{
	Relation	rel = table_open(cs->def->deltas, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);
	DeltasIndexes di = {-1, NULL, NULL};
	int			r;

	if (cs->recorded == NULL)
		cs->recorded = MemoryContextAllocZero(cs->cxt,
											  sizeof(RecordedRow) * RECORDED_ROWS);

	for (r = 0; r < nrows; r++)
	{
		HeapTuple	tup;
		RecordedRow *rr;
		uint32		hash;
		int			p;

		for (p = 0; p < desc->natts; p++)
			isnull[p] = nulls[r][p] == 'n';
		hash = key_hash(cs, desc, values[r], isnull);
		rr = &cs->recorded[hash & (RECORDED_ROWS - 1)];

		tup = NULL;
		if (rr->hash == hash && ItemPointerIsValid(&rr->tid))
			tup = record_in_place(cs, rel, rr, values[r], isnull);
		if (tup == NULL)
		{
			tup = heap_form_tuple(desc, values[r], isnull);
			simple_heap_insert(rel, tup);
		}
		if (!HeapTupleIsHeapOnly(tup))
			insert_index_entries(cs, rel, &di, tup, values[r], isnull);
		rr->hash = hash;
		rr->tid = tup->t_self;
		heap_freetuple(tup);
	}

	/* like the executor, keep the locks of a written relation until commit */
	for (r = 0; r < di.n; r++)
		index_close(di.rels[r], NoLock);
	table_close(rel, NoLock);
}

/*
 * fold_sql: the statement that folds the committed recorded
 * deltas of a counter into its storage, returning how many delta rows it
 * folded and the ctids of the storage rows whose group count reached zero.
 * Deltas are locked first, skipping the rows someone holds (another fold,
 * or a writer adding to its row, see counter_direct.c), then taken with
 * DELETE ... RETURNING: a fold never waits, never folds a delta twice, and
 * what it skipped is folded by a later one.  The distributed form, for
 * the Citus tables of a counter over a Citus table (see counter_citus.c),
 * takes every delta, waiting for the writers that hold some: Citus locks
 * no rows of several shards at once.  Only set_mode and rebuild use it,
 * with writers kept out.
 */
static char *
fold_sql(CounterDef *def, bool distributed)
{
	StringInfoData buf;
	StringInfoData keys;
	StringInfoData sums;
	StringInfoData sets;
	ListCell   *lc;
	char	   *cols = counters_storage_column_list(def, NULL);

	initStringInfo(&buf);
	initStringInfo(&keys);
	initStringInfo(&sums);
	initStringInfo(&sets);
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&sums, ", ");
		if (counters_is_key_column(def, sc))
		{
			appendStringInfo(&sums, "%s", sc->name);
			appendStringInfo(&keys, "%s%s", keys.len > 0 ? ", " : "", sc->name);
			continue;
		}
		appendStringInfo(&sums, "COALESCE(pg_catalog.sum(%s), 0)%s AS %s",
						 sc->name, counters_sum_cast(def, sc), sc->name);
		appendStringInfo(&sets, "%s%s = _counters_c.%s OPERATOR(pg_catalog.+) %s.%s",
						 sets.len > 0 ? ", " : "", sc->name, sc->name,
						 def->nkeys > 0 || def->partial ? "excluded" : "_counters_g", sc->name);
	}

	if (distributed)
		appendStringInfo(&buf,
						 "WITH _counters_d AS (DELETE FROM %s RETURNING %s), "
						 "_counters_g AS (SELECT %s, pg_catalog.count(*) AS _counters_n FROM _counters_d%s%s) ",
						 counters_relation_name(def->deltas), cols,
						 sums.data, keys.len > 0 ? " GROUP BY " : "", keys.data);
	else
		appendStringInfo(&buf,
						 "WITH _counters_l AS (SELECT ctid FROM %s FOR UPDATE SKIP LOCKED), "
						 "_counters_d AS (DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) "
						 "ANY (ARRAY(SELECT ctid FROM _counters_l)) RETURNING %s), "
						 "_counters_g AS (SELECT %s, pg_catalog.count(*) AS _counters_n FROM _counters_d%s%s), ",
						 counters_relation_name(def->deltas), counters_relation_name(def->deltas),
						 cols, sums.data, keys.len > 0 ? " GROUP BY " : "", keys.data);
	if (distributed)
	{
		/* Citus: the statement is the write itself */
		if (keys.len > 0)
			appendStringInfo(&buf,
							 "INSERT INTO %s AS _counters_c (%s) SELECT %s FROM _counters_g "
							 "ON CONFLICT (%s) DO UPDATE SET %s",
							 counters_relation_name(def->storage), cols, cols, keys.data, sets.data);
		else
			appendStringInfo(&buf,
							 "UPDATE %s _counters_c SET %s FROM _counters_g "
							 "WHERE _counters_g._counters_n OPERATOR(pg_catalog.>) 0",
							 counters_relation_name(def->storage), sets.data);
		return buf.data;
	}
	if (keys.len > 0)
		appendStringInfo(&buf,
						 "_counters_u AS (INSERT INTO %s AS _counters_c (%s) SELECT %s FROM _counters_g "
						 "ORDER BY %s ON CONFLICT (%s) DO UPDATE SET %s "
						 "RETURNING _counters_c.ctid AS t, %s AS r) ",
						 counters_relation_name(def->storage), cols, cols, keys.data, keys.data, sets.data,
						 def->partial ?
						 psprintf("CASE WHEN %s THEN 0 ELSE 1 END::pg_catalog.int8",
								  counters_empty_sql(def, "_counters_c")) :
						 "_counters_c." COUNTERS_ROWS_COLUMN);
	else
		appendStringInfo(&buf,
						 "_counters_u AS (UPDATE %s _counters_c SET %s FROM _counters_g "
						 "WHERE _counters_g._counters_n OPERATOR(pg_catalog.>) 0 "
						 "RETURNING _counters_c.ctid AS t, 1 AS r) ",
						 counters_relation_name(def->storage), sets.data);
	appendStringInfoString(&buf,
						   "SELECT (SELECT COALESCE(pg_catalog.sum(_counters_n), 0) FROM _counters_g)::pg_catalog.int8, "
						   "ARRAY(SELECT t FROM _counters_u WHERE r OPERATOR(pg_catalog.=) 0), "
						   "(SELECT pg_catalog.count(*) FROM _counters_u)::pg_catalog.int8");
	return buf.data;
}

/*
 * ensure_global_row: a counter without keys must have its one storage row
 * before deltas are folded into it (an unlogged storage loses it in a
 * crash).
 */
static void
ensure_global_row(CounterDef *def)
{
	char	   *storage = counters_relation_name(def->storage);
	int			ncols = list_length(counters_layout(def));
	int			i;
	StringInfoData buf;

	counters_spi_exec(psprintf("SELECT FROM %s LIMIT 1", storage), SPI_OK_SELECT);
	if (SPI_processed > 0)
		return;
	LockRelationOid(def->storage, ShareRowExclusiveLock);
	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s (%s) SELECT ", storage,
					 counters_storage_column_list(def, NULL));
	for (i = 0; i < ncols; i++)
		appendStringInfo(&buf, "%s0", i > 0 ? ", " : "");
	appendStringInfo(&buf, " WHERE NOT EXISTS (SELECT FROM %s)", storage);
	counters_spi_exec(buf.data, SPI_OK_INSERT);
}

/*
 * counters_fold: fold the committed recorded deltas of one counter into
 * its storage, as its owner.  Returns how many delta rows were folded.
 * A fold skips the delta rows that another flush holds at that moment;
 * with all, it waits for such flushes first, so that nothing is left
 * behind (set_mode and rebuild need that; they keep writers out through
 * their lock on the source).  SPI must be connected and a safe search_path
 * set.
 */
int64
counters_fold(CounterDef *def, bool all)
{
	CountersRole role;
	int64		folded = 0;
	bool		isnull;
	Datum		tids;
	instr_time	started;

	INSTR_TIME_SET_CURRENT(started);
	if (all && OidIsValid(def->deltas))
		LockRelationOid(def->deltas, ExclusiveLock);

	counters_become(&role, counters_relation_owner(def->counter),
					COUNTERS_MAINTENANCE);
	{
		MemoryContext oldcxt = CurrentMemoryContext;

		if (counters_citus_table(def->storage, NULL) != CITUS_NONE)
		{
			/* a counter over a Citus table, as a whole (see fold_sql) */
			counters_spi_exec(fold_sql(def, true), def->nkeys > 0 || def->partial ?
							  SPI_OK_INSERT : SPI_OK_UPDATE);
			folded = (int64) SPI_processed;
			if (def->nkeys > 0)
				counters_spi_exec(psprintf("DELETE FROM %s WHERE %s",
										   counters_relation_name(def->storage),
										   counters_empty_sql(def, NULL)), SPI_OK_DELETE);
			counters_unbecome(&role);
			if (folded > 0)
				counters_stats_count(def->counter, CE_FOLD, folded, &started);
			return folded;
		}
		if (def->nkeys == 0 && !def->partial)
			ensure_global_row(def);
		PG_TRY();
		{
			counters_spi_exec(fold_sql(def, false), SPI_OK_SELECT);
		}
		PG_CATCH();
		{
			counters_rethrow_key_too_long(def->counter, oldcxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		folded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
		tids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		/* groups whose count reached zero disappear */
		if (!isnull && ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(tids)),
									  ARR_DIMS(DatumGetArrayTypeP(tids))) > 0)
		{
			Oid			argtypes[1] = {TIDARRAYOID};
			Datum		values[1] = {tids};

			if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) AND %s",
											   counters_relation_name(def->storage),
											   counters_empty_sql(def, NULL)),
									  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "counters: could not delete empty groups of %s",
					 counters_relation_name(def->storage));
		}
	}
	counters_unbecome(&role);
	if (folded > 0)
		counters_stats_count(def->counter, CE_FOLD, folded, &started);
	return folded;
}

/*
 * counters_flushable: the buffered counters that flush(NULL) folds: every
 * counter the current user owns (every counter, for a superuser) that no
 * one is dropping or altering right now.  Flushing everything (the
 * background worker does) never waits for a lock: a counter being dropped
 * or altered is skipped this round, so that flushes can never deadlock
 * with DDL.  A counter over a Citus table is listed without a lock: its
 * deltas are folded next to its shards, by other transactions (see
 * counter_distribute.c).  SPI must be connected and a safe search_path set.
 */
List *
counters_flushable(void)
{
	List	   *counters = NIL;
	List	   *rows = NIL;
	ListCell   *lc;
	uint64		i;

	counters_spi_exec("SELECT counter::pg_catalog.oid, definition::pg_catalog.oid, "
					  "storage::pg_catalog.oid, deltas::pg_catalog.oid FROM counters.counter_def "
					  "ORDER BY source::pg_catalog.oid, counter::pg_catalog.oid",
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		Oid		   *rels = palloc(sizeof(Oid) * 4);
		int			c;

		for (c = 0; c < 4; c++)
		{
			bool		isnull;

			rels[c] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, c + 1,
													 &isnull));
		}
		rows = lappend(rows, rels);
	}
	foreach(lc, rows)
	{
		Oid		   *rels = (Oid *) lfirst(lc);
		int			c;
		bool		free = true;

		if (!pg_class_ownercheck(rels[0], GetUserId()))
			continue;
		if (counters_citus_table(rels[2], NULL) != CITUS_NONE)
		{
			counters = lappend_oid(counters, rels[0]);
			continue;
		}

		for (c = 0; c < 4 && free; c++)
			free = ConditionalLockRelationOid(rels[c], c < 2 ? AccessShareLock : RowExclusiveLock) &&
				SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rels[c]));
		if (free)
			counters = lappend_oid(counters, rels[0]);
	}
	return counters;
}
