/*-------------------------------------------------------------------------
 *
 * counter_direct.c
 *	  Writing deltas without SPI and the executor: one key's deltas into
 *	  its existing counter row, and buffered mode's delta rows.
 *
 * Most transactions touch a few keys whose counter rows already exist.
 * For them, planning-free as the prepared upsert is, executor start-up
 * and the ON CONFLICT machinery cost more than the change itself.  This
 * path finds the row through the storage's unique index, locks its latest
 * version (waiting for a concurrent writer as UPDATE would, and following
 * the update chain as READ COMMITTED does), and updates or deletes it with
 * heap_update / heap_delete, adding an index entry only when the update is
 * not HOT.
 *
 * It is used only for immediate-mode counters in READ COMMITTED.  Whenever
 * anything is not as expected (no row yet, row deleted concurrently), it
 * returns false and the caller applies the deltas with the prepared
 * upsert, which knows every case.
 *
 * Buffered mode's recording always goes this way too, in any isolation
 * level: into the delta row this backend wrote last for the key, or a new
 * one (see "Buffered recording" below).
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
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/smgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "counters.h"

/*
 * add_row_deltas: add one key's deltas (storage layout, keys included) to
 * the values of its stored row, in place; keys are left as they are.
 * Returns the row's new group row count.
 */
static int64
add_row_deltas(CounterDef *def, List *layout, Datum *vals, Datum *deltas)
{
	ListCell   *lc;
	int64		rows = 0;

	foreach(lc, layout)
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);
		int			p = foreach_current_index(lc);

		if (sc->kind == SC_OUTPUT && def->kinds[sc->col] == CCK_KEY)
			continue;
		vals[p] = counters_add_delta(def, sc, vals[p], deltas[p]);
		if (sc->kind == SC_ROWS)
			rows = DatumGetInt64(vals[p]);
	}
	return rows;
}

/*
 * counters_apply_direct: apply one key's deltas (values in storage column
 * order, keys included, as row_values makes them) to its counter row.
 * Returns false, having changed nothing, when the caller must use the
 * upsert instead.
 */
bool
counters_apply_direct(CounterState *cs, List *layout, Datum *values,
					  char *nulls)
{
	CounterDef *def = cs->def;
	Relation	rel;
	Relation	idx;
	List	   *indexes;
	ScanKeyData *skeys;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	bool		done = false;
	int			k;

	if (def->buffered || cs->nkeys == 0 || IsolationUsesXactSnapshot())
		return false;

	rel = table_open(def->storage, RowExclusiveLock);
	indexes = RelationGetIndexList(rel);
	if (list_length(indexes) != 1)
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	idx = index_open(linitial_oid(indexes), RowExclusiveLock);

	/* the latest committed state, and our own earlier writes */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());

	skeys = palloc(sizeof(ScanKeyData) * cs->nkeys);
	for (k = 0; k < cs->nkeys; k++)
	{
		int			col = cs->key_columns[k];

		if (nulls[col] == 'n')
			ScanKeyEntryInitialize(&skeys[k], SK_ISNULL | SK_SEARCHNULL, k + 1,
								   InvalidStrategy, InvalidOid, InvalidOid,
								   InvalidOid, (Datum) 0);
		else
			ScanKeyEntryInitialize(&skeys[k], 0, k + 1, BTEqualStrategyNumber,
								   InvalidOid, cs->key_collations[k],
								   cs->key_eqfuncs[k], values[col]);
	}

	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, snapshot, cs->nkeys, 0);
	index_rescan(scan, skeys, cs->nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);

	if (found)
	{
		ItemPointerData tid = slot->tts_tid;

		res = table_tuple_lock(rel, &tid, snapshot, slot,
							   GetCurrentCommandId(false),
							   LockTupleNoKeyExclusive, LockWaitBlock,
							   TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		if (res == TM_Ok)
		{
			TupleDesc	desc = RelationGetDescr(rel);
			Datum	   *newvals = palloc(sizeof(Datum) * desc->natts);
			bool	   *newnulls = palloc(sizeof(bool) * desc->natts);
			int64		rows;

			slot_getallattrs(slot);
			memcpy(newvals, slot->tts_values, sizeof(Datum) * desc->natts);
			memcpy(newnulls, slot->tts_isnull, sizeof(bool) * desc->natts);
			rows = add_row_deltas(def, layout, newvals, values);

			if (rows == 0)
				simple_heap_delete(rel, &slot->tts_tid);
			else
			{
				HeapTuple	newtup = heap_form_tuple(desc, newvals, newnulls);

				simple_heap_update(rel, &slot->tts_tid, newtup);
				if (!HeapTupleIsHeapOnly(newtup))
				{
					Datum		ivals[INDEX_MAX_KEYS];
					bool		inulls[INDEX_MAX_KEYS];

					for (k = 0; k < cs->nkeys; k++)
					{
						ivals[k] = newvals[cs->key_columns[k]];
						inulls[k] = newnulls[cs->key_columns[k]];
					}
					index_insert(idx, ivals, inulls, &newtup->t_self, rel,
								 UNIQUE_CHECK_YES, true, BuildIndexInfo(idx));
				}
			}
			done = true;
		}
	}

	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	/* like the executor, keep the locks of a written relation until commit */
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return done;
}

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
record_in_place(CounterState *cs, Relation rel, List *layout, RecordedRow *rr,
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
	add_row_deltas(cs->def, layout, newvals, values);
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
 * counters_record_direct: buffered mode's apply, without SPI and the
 * executor: record the rows (storage layout values, SPI-style nulls) in
 * the counter's deltas table, each in the row this backend recorded its
 * key in last if it can (see above), else in a new row.  Recording never
 * waits for anything.
 */
void
counters_record_direct(CounterState *cs, Datum **values, char **nulls, int nrows)
{
	Relation	rel = table_open(cs->def->deltas, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *layout = counters_layout(cs->def);
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
			tup = record_in_place(cs, rel, layout, rr, values[r], isnull);
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
