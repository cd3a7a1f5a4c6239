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
#include "storage/procarray.h"
#include "storage/smgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
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
 * remembers where it recorded each key last (see "Remembered rows" below)
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

/*
 * Remembered rows.
 *
 * Both modes remember, per counter and key, the TID of the row version this
 * backend wrote last: buffered mode its delta row (above), immediate mode
 * the counter row (counter_apply.c), whose next update then starts from
 * that TID instead of descending the unique index.  A TID is only ever a
 * hint: whoever uses one checks that its line pointer holds a tuple with
 * the same key, and what that tuple's state allows (see record_in_place,
 * and lock_by_tid in counter_apply.c); anything else falls back to the
 * index or to a new row.  So a TID made stale by VACUUM, a rebuild, a
 * fold, another backend's update or an aborted transaction costs a look at
 * one page, never a wrong count.
 *
 * Entries are keyed by the hash of the key (two keys of one hash share an
 * entry; the key check sends the other one to the fallback).  The table
 * grows with the keys a backend writes, up to REMEMBERED_MAX entries per
 * counter (about 200kB); past that it starts again empty, so its memory
 * stays bounded whatever the number of keys.
 */
#define REMEMBERED_MAX 8192

typedef struct RememberedRow
{
	uint32		hash;			/* of the key: the hash table's key */
	ItemPointerData tid;		/* the version we wrote last */
	char		status;			/* simplehash's */
} RememberedRow;

#define SH_PREFIX remembered
#define SH_ELEMENT_TYPE RememberedRow
#define SH_KEY_TYPE uint32
#define SH_KEY hash
#define SH_HASH_KEY(tb, k) (k)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * counters_key_hash: hash of a row's key columns (values in storage
 * column order, as desc describes them), by their binary image.
 */
uint32
counters_key_hash(CounterState *cs, TupleDesc desc, Datum *values, bool *isnull)
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
	/* simplehash takes the low bits as they are: mix them */
	return murmurhash32(h);
}

/*
 * counters_recall_row: the TID of the row version this backend wrote last
 * for the key of this hash, if it remembers one.
 */
bool
counters_recall_row(CounterState *cs, uint32 hash, ItemPointer tid)
{
	RememberedRow *entry;

	if (cs->remembered == NULL)
		return false;
	entry = remembered_lookup(cs->remembered, hash);
	if (entry == NULL)
		return false;
	*tid = entry->tid;
	return true;
}

/*
 * counters_remember_row: remember where this backend wrote the key of this
 * hash last.  The table lives as long as the compiled counter.
 */
void
counters_remember_row(CounterState *cs, uint32 hash, ItemPointer tid)
{
	RememberedRow *entry;
	bool		found;

	if (cs->remembered == NULL)
		cs->remembered = remembered_create(cs->cxt, 64, NULL);
	else if (cs->remembered->members >= REMEMBERED_MAX)
		remembered_reset(cs->remembered);
	entry = remembered_insert(cs->remembered, hash, &found);
	entry->tid = *tid;
}

/*
 * counters_forget_row: forget the row of the key of this hash (it is gone,
 * or cannot be used any more).
 */
void
counters_forget_row(CounterState *cs, uint32 hash)
{
	if (cs->remembered != NULL)
		(void) remembered_delete(cs->remembered, hash);
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
 * Where this backend last found a page of a storage or deltas table in
 * shared buffers, so that the next read of a remembered row can pin that
 * buffer directly (ReadRecentBuffer, which checks that the buffer still
 * holds the page) instead of looking the page up in the buffer mapping
 * table.  A small direct-mapped table: an entry that is wrong, or that
 * another page took over, only costs the usual lookup.
 */
#define RECENT_BUFFERS 256

typedef struct RecentBuffer
{
	RelFileNode node;
	BlockNumber blkno;
	Buffer		buffer;
} RecentBuffer;

static RecentBuffer recent_buffers[RECENT_BUFFERS];

/*
 * read_buffer: pin block blkno of rel (which exists), through the buffer
 * this backend found it in last when that still holds it.
 */
static Buffer
read_buffer(Relation rel, BlockNumber blkno)
{
	RecentBuffer *rb;
	Buffer		buffer;

	if (RelationUsesLocalBuffers(rel))
		return ReadBuffer(rel, blkno);
	rb = &recent_buffers[hash_combine(rel->rd_node.relNode, blkno) % RECENT_BUFFERS];
	if (rb->blkno == blkno && RelFileNodeEquals(rb->node, rel->rd_node) &&
		BufferIsValid(rb->buffer) &&
		ReadRecentBuffer(rel->rd_node, MAIN_FORKNUM, blkno, rb->buffer))
		return rb->buffer;
	buffer = ReadBuffer(rel, blkno);
	rb->node = rel->rd_node;
	rb->blkno = blkno;
	rb->buffer = buffer;
	return buffer;
}

/*
 * counters_read_row: pin and share-lock the page of a remembered TID and
 * point tuple at the tuple its line pointer holds.  Returns InvalidBuffer,
 * holding nothing, when the block is past the end of rel (VACUUM may have
 * cut it short) or the line pointer holds no tuple.  The pin, kept until
 * the caller is done, keeps the line pointer from being pruned and reused
 * meanwhile; the caller releases it.
 *
 * Pruning.  A row updated again and again stays on its page as long as the
 * page has room for the next version (a HOT update, no index entry), which
 * pruning makes by removing the versions no one can see any more; pruning
 * costs in proportion to the tuples on the page, whatever it reclaims.
 * PostgreSQL prunes when an index scan visits a page with less free space
 * than its fill factor leaves (heap_page_prune_opt): a counter's storage
 * (fill factor 50) has that little free space as soon as the dead versions
 * of its rows fill what the fill factor left, so a lookup through the
 * index prunes the page nearly every time, which costs more than the whole
 * update.  Here a page is pruned only when it has no room left for another
 * version of the row: for a storage table (prune_any), once per few dozen
 * updates of its rows, each time reclaiming them all.  A deltas table has
 * the same fill factor, but its rows come and go (each fold deletes them):
 * a full page there whose rows were each written once would give back a
 * version or two, so it is pruned only when the row is itself a version
 * made by a HOT update (a hot key: the page holds its earlier versions);
 * otherwise the update moves the row to another page, as an insert would.
 */
Buffer
counters_read_row(Relation rel, ItemPointer tid, HeapTuple tuple, bool prune_any)
{
	BlockNumber blkno = ItemPointerGetBlockNumber(tid);
	OffsetNumber offnum = ItemPointerGetOffsetNumber(tid);
	Buffer		buffer;
	Page		page;
	ItemId		lp;
	bool		pruned = false;

	if (!block_exists(rel, blkno))
		return InvalidBuffer;
	buffer = read_buffer(rel, blkno);
	page = BufferGetPage(buffer);
	for (;;)
	{
		Size		len;

		LockBuffer(buffer, BUFFER_LOCK_SHARE);
		if (offnum < FirstOffsetNumber || offnum > PageGetMaxOffsetNumber(page))
			break;
		lp = PageGetItemId(page, offnum);
		if (!ItemIdIsNormal(lp))
			break;
		len = ItemIdGetLength(lp);
		tuple->t_data = (HeapTupleHeader) PageGetItem(page, lp);

		/* no room for a new version a little longer than this one? */
		if (!pruned && PageGetHeapFreeSpace(page) < MAXALIGN(len + len / 2) &&
			(prune_any || HeapTupleHeaderIsHeapOnly(tuple->t_data)))
		{
			/* heap_page_prune_opt wants the pin alone, and checks again */
			LockBuffer(buffer, BUFFER_LOCK_UNLOCK);
			heap_page_prune_opt(rel, buffer);
			pruned = true;
			continue;
		}
		tuple->t_len = len;
		tuple->t_tableOid = RelationGetRelid(rel);
		tuple->t_self = *tid;
		return buffer;
	}
	UnlockReleaseBuffer(buffer);
	return InvalidBuffer;
}

/*
 * counters_row_is_latest: whether the row version tup (its page pinned and
 * share-locked by the caller) may be updated as its row's latest version:
 * committed, or (own_ok) written by this transaction; its transaction out
 * of the proc array, as heap_update wants (a version whose transaction is
 * still in it, as one is for a moment after its commit record, it refuses
 * with an error); and not updated or deleted since.  heap_update checks
 * the last point again, waiting or failing as the caller asks.
 */
bool
counters_row_is_latest(HeapTupleHeader tup, bool own_ok)
{
	TransactionId xmin = HeapTupleHeaderGetRawXmin(tup);

	if (!HeapTupleHeaderXminCommitted(tup))
	{
		if (TransactionIdIsCurrentTransactionId(xmin))
		{
			if (!own_ok)
				return false;
		}
		else if (TransactionIdIsInProgress(xmin) || !TransactionIdDidCommit(xmin))
			return false;
	}
	return (tup->t_infomask & HEAP_XMAX_INVALID) ||
		HEAP_XMAX_IS_LOCKED_ONLY(tup->t_infomask);
}

/*
 * counters_same_key: whether a stored row (rowvals, rownulls, deformed
 * with desc) has the key of values/isnull, by binary image: a remembered
 * TID may hold another key's row (two keys of one hash share an entry, and
 * a line pointer may be reused).
 */
bool
counters_same_key(CounterState *cs, TupleDesc desc, Datum *rowvals,
				  bool *rownulls, Datum *values, bool *isnull)
{
	int			k;

	for (k = 0; k < cs->nkeys; k++)
	{
		int			col = cs->key_columns[k];
		Form_pg_attribute att = TupleDescAttr(desc, col);

		if (rownulls[col] != isnull[col] ||
			(!isnull[col] && !datum_image_eq(rowvals[col], values[col],
											 att->attbyval, att->attlen)))
			return false;
	}
	return true;
}

/*
 * counters_toast_snapshot: make sure there is an active snapshot before a
 * stored row version that has values in the table's TOAST (a long key) is
 * compared, updated or deleted: reading or deleting TOAST takes one, and
 * at commit, where deltas are applied, there is none.  Any snapshot will
 * do (TOAST values never change).  Returns whether it pushed one, for the
 * caller to pop.
 */
bool
counters_toast_snapshot(HeapTupleHeader tup)
{
	if (!HeapTupleHeaderHasExternal(tup) || ActiveSnapshotSet())
		return false;
	PushActiveSnapshot(GetLatestSnapshot());
	return true;
}

/*
 * record_in_place: add one key's deltas to the row this backend recorded
 * them in last (at tid).  Returns the new version, or NULL, having changed
 * nothing, when the row cannot be used any more and a new one must be
 * inserted.
 */
static HeapTuple
record_in_place(CounterState *cs, Relation rel, ItemPointer tid,
				Datum *values, bool *isnull)
{
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	newtup = NULL;
	HeapTupleData oldtup;
	Buffer		buffer;
	Datum	   *newvals;
	bool	   *oldnulls;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	bool		pushed = false;

	buffer = counters_read_row(rel, tid, &oldtup, false);
	if (!BufferIsValid(buffer))
		return NULL;

	/* a committed version, not deleted (heap_update checks again) */
	if (!counters_row_is_latest(oldtup.t_data, false))
		goto done;
	pushed = counters_toast_snapshot(oldtup.t_data);

	newvals = palloc(sizeof(Datum) * desc->natts);
	oldnulls = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(&oldtup, desc, newvals, oldnulls);

	/* the same key (an entry may stand for another key of the same hash) */
	if (!counters_same_key(cs, desc, newvals, oldnulls, values, isnull))
		goto done;
	counters_add_row_deltas(cs->def, newvals, values);
	newtup = counters_next_version(cs->def, desc, &oldtup, newvals, isnull);
	LockBuffer(buffer, BUFFER_LOCK_UNLOCK);

	if (heap_update(rel, tid, newtup, GetCurrentCommandId(true),
					InvalidSnapshot, false, &tmfd, &lockmode) != TM_Ok)
	{
		/* being folded, or folded: record in a new row */
		heap_freetuple(newtup);
		newtup = NULL;
	}
	if (pushed)
		PopActiveSnapshot();
	ReleaseBuffer(buffer);
	return newtup;

done:
	if (pushed)
		PopActiveSnapshot();
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

	for (r = 0; r < nrows; r++)
	{
		HeapTuple	tup;
		ItemPointerData tid;
		uint32		hash;
		int			p;

		for (p = 0; p < desc->natts; p++)
			isnull[p] = nulls[r][p] == 'n';
		hash = counters_key_hash(cs, desc, values[r], isnull);

		tup = NULL;
		if (counters_recall_row(cs, hash, &tid))
			tup = record_in_place(cs, rel, &tid, values[r], isnull);
		if (tup == NULL)
		{
			tup = heap_form_tuple(desc, values[r], isnull);
			simple_heap_insert(rel, tup);
		}
		if (!HeapTupleIsHeapOnly(tup))
			insert_index_entries(cs, rel, &di, tup, values[r], isnull);
		counters_remember_row(cs, hash, &tup->t_self);
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
 * or a writer adding to its row, see counters_record_rows), then taken with
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
