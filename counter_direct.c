/*-------------------------------------------------------------------------
 *
 * counter_direct.c
 *	  Applying one key's deltas to its existing counter row without going
 *	  through SPI and the executor.
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
 * Buffered mode's recording, insert-only, always goes this way.
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
#include "common/int.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "counters.h"

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
			ListCell   *lc;
			int64		rows = 0;

			slot_getallattrs(slot);
			foreach(lc, layout)
			{
				StorageColumn *sc = (StorageColumn *) lfirst(lc);
				int			p = foreach_current_index(lc);

				newnulls[p] = slot->tts_isnull[p];
				if (sc->kind == SC_OUTPUT && def->kinds[sc->col] == CCK_KEY)
					newvals[p] = slot->tts_values[p];
				else
					newvals[p] = counters_add_delta(def, sc, slot->tts_values[p], values[p]);
				if (sc->kind == SC_ROWS)
					rows = DatumGetInt64(newvals[p]);
			}

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
 * counters_record_direct: buffered mode's apply, without SPI and the
 * executor: insert the rows (storage layout values, SPI-style nulls) into
 * the counter's deltas table, with their index entries.  Recording never
 * conflicts with anything (no unique key), so there is nothing to wait for
 * or retry.
 */
void
counters_record_direct(CounterState *cs, Datum **values, char **nulls, int nrows)
{
	Relation	rel = table_open(cs->def->deltas, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes = RelationGetIndexList(rel);
	Relation   *idx = palloc(sizeof(Relation) * Max(list_length(indexes), 1));
	IndexInfo **info = palloc(sizeof(IndexInfo *) * Max(list_length(indexes), 1));
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);
	ListCell   *lc;
	int			nidx = 0;
	int			r;

	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);

		idx[nidx] = index_open(indexoid, RowExclusiveLock);

		/* an index's columns never change: ours (the first) is described once */
		if (nidx == 0 && indexoid != cs->deltas_index)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(cs->cxt);

			cs->deltas_index_info = BuildIndexInfo(idx[nidx]);
			cs->deltas_index = indexoid;
			MemoryContextSwitchTo(oldcxt);
		}
		info[nidx] = indexoid == cs->deltas_index ? cs->deltas_index_info :
			BuildIndexInfo(idx[nidx]);
		nidx++;
	}

	for (r = 0; r < nrows; r++)
	{
		HeapTuple	tup;
		int			p;
		int			i;

		for (p = 0; p < desc->natts; p++)
			isnull[p] = nulls[r][p] == 'n';
		tup = heap_form_tuple(desc, values[r], isnull);
		simple_heap_insert(rel, tup);
		for (i = 0; i < nidx; i++)
		{
			Datum		ivals[INDEX_MAX_KEYS];
			bool		inulls[INDEX_MAX_KEYS];
			int			k;

			/* the index is on the key columns, in order */
			for (k = 0; k < info[i]->ii_NumIndexAttrs; k++)
			{
				AttrNumber	attno = info[i]->ii_IndexAttrNumbers[k];

				ivals[k] = values[r][attno - 1];
				inulls[k] = isnull[attno - 1];
			}
			index_insert(idx[i], ivals, inulls, &tup->t_self, rel,
						 UNIQUE_CHECK_NO, false, info[i]);
		}
		heap_freetuple(tup);
	}

	for (r = 0; r < nidx; r++)
		index_close(idx[r], NoLock);
	table_close(rel, NoLock);
}
