/*-------------------------------------------------------------------------
 *
 * counter_delta.c
 *	  Turning changed rows into summed per-key deltas.
 *
 * For every row of a statement's transition tables, the old version is
 * added with sign -1 and the new version with sign +1: if the row matches
 * the counter's filter, its key is computed, and its row count, counts and
 * sums are added, times the sign, to that key's entry in a hash table.  A
 * row that moves between keys thus leaves -1 at the old key and +1 at the
 * new; a row that changes nothing counted leaves nothing.
 *
 * The table holds one entry per distinct key.  The pending layer checks
 * the memory of its maps as rows come (counters_delta_memory) and, past
 * work_mem, moves their groups into a sort by key that spills to disk
 * (counters_delta_spill), so memory stays bounded however large a
 * transaction is.
 *
 * Integer sums are kept exactly: in 128 bits where the compiler has them,
 * else in 64 bits that turn into a numeric on overflow.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/numeric.h"
#include "utils/tuplesort.h"
#include "utils/typcache.h"

#include "counter_delta.h"

/*
 * A table for the common case of one key of a by-value type whose
 * equality is bitwise (integers, dates, timestamps...): the key Datum is
 * the hash key itself, without the function calls of a TupleHashTable.
 */
typedef struct FastEntry
{
	Datum		key;
	char		status;
	GroupDelta *g;
} FastEntry;

/* a 64-bit mix (splitmix64's finalizer) */
static inline uint32
fastkey_hash_datum(Datum d)
{
	uint64		x = (uint64) d;

	x ^= x >> 30;
	x *= UINT64CONST(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64CONST(0x94d049bb133111eb);
	x ^= x >> 31;
	return (uint32) x;
}

#define SH_PREFIX fastkey
#define SH_ELEMENT_TYPE FastEntry
#define SH_KEY_TYPE Datum
#define SH_KEY key
#define SH_HASH_KEY(tb, k) fastkey_hash_datum(k)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

static void init_table(DeltaMap *dm);

/*
 * new_group: a zeroed GroupDelta for a counter with ncolumns columns,
 * allocated in cxt as one chunk.
 */
static GroupDelta *
new_group(int ncolumns, MemoryContext cxt)
{
	Size		size;
	char	   *p;
	GroupDelta *g;

	size = MAXALIGN(sizeof(GroupDelta)) +
		MAXALIGN(sizeof(int64) * ncolumns) +
		MAXALIGN(sizeof(CounterIntSum) * ncolumns) +
		MAXALIGN(sizeof(Datum) * ncolumns) +
		MAXALIGN(sizeof(int64) * 3 * ncolumns);
	p = MemoryContextAllocZero(cxt, size);
	g = (GroupDelta *) p;
	p += MAXALIGN(sizeof(GroupDelta));
	g->counts = (int64 *) p;
	p += MAXALIGN(sizeof(int64) * ncolumns);
	g->isums = (CounterIntSum *) p;
	p += MAXALIGN(sizeof(CounterIntSum) * ncolumns);
	g->nsums = (Datum *) p;
	p += MAXALIGN(sizeof(Datum) * ncolumns);
	g->specials = (int64 *) p;
	return g;
}

/*
 * build_table: the memory and the empty hash table of a new DeltaMap.
 */
static void
build_table(DeltaMap *dm)
{
	dm->tablecxt = AllocSetContextCreate(dm->cxt, "counters deltas",
										 ALLOCSET_DEFAULT_SIZES);
	init_table(dm);
}

/*
 * init_table: an empty table in the map's table memory.
 */
static void
init_table(DeltaMap *dm)
{
	CounterState *cs = dm->cs;

	dm->ngroups = 0;
	if (cs->nkeys == 0)
	{
		dm->global = new_group(cs->def->ncolumns, dm->tablecxt);
		dm->table = NULL;
		return;
	}
	dm->global = NULL;
	dm->null_group = NULL;
	dm->table = NULL;
	dm->fast = NULL;
	if (cs->fastkey)
	{
		dm->fast = fastkey_create(dm->tablecxt, 8, NULL);
		return;
	}
	dm->table = BuildTupleHashTableExt(NULL, cs->key_desc, cs->nkeys,
									   cs->key_attnums, cs->key_eqfuncs,
									   cs->key_hashfuncs, cs->key_collations,
									   8, 0,
									   dm->tablecxt, dm->tablecxt,
									   dm->tempcxt, false);
}

/*
 * counters_delta_create: an empty DeltaMap for one counter, under parent.
 */
DeltaMap *
counters_delta_create(CounterState *cs, MemoryContext parent)
{
	DeltaMap   *dm = MemoryContextAllocZero(parent, sizeof(DeltaMap));
	MemoryContext oldcxt;

	dm->cs = cs;
	dm->cxt = parent;
	if (cs->nkeys > 0 && !cs->fastkey)
	{
		/* the general table: key slot and temporary memory of its lookups */
		dm->tempcxt = AllocSetContextCreate(parent, "counters delta temp",
											ALLOCSET_SMALL_SIZES);
		oldcxt = MemoryContextSwitchTo(parent);
		dm->keyslot = MakeSingleTupleTableSlot(cs->key_desc, &TTSOpsVirtual);
		MemoryContextSwitchTo(oldcxt);
	}
	build_table(dm);
	return dm;
}

/*
 * counters_delta_clear: forget the deltas the map holds in memory (those it
 * moved to its sort stay there): after a spill, and for the map to be used
 * again by the next transaction (see counter_pending.c).
 */
void
counters_delta_clear(DeltaMap *dm)
{
	MemoryContextReset(dm->tablecxt);
	if (dm->tempcxt != NULL)
		MemoryContextReset(dm->tempcxt);
	init_table(dm);
}

/*
 * counters_delta_memory: the memory the map's table holds.
 */
Size
counters_delta_memory(DeltaMap *dm)
{
	return MemoryContextMemAllocated(dm->tablecxt, true);
}

/*
 * add_int: add sign * v to an exact integer sum.
 */
static inline void
add_int(CounterIntSum *sum, int64 v, int sign, MemoryContext cxt)
{
#ifdef COUNTERS_HAVE_INT128
	*sum += (int128) sign * v;
#else
	int64		result;

	if (sum->big == (Datum) 0 &&
		!pg_mul_s64_overflow(v, sign, &result) &&
		!pg_add_s64_overflow(sum->low, result, &result))
	{
		sum->low = result;
		return;
	}
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
		Datum		acc = sum->big != (Datum) 0 ? sum->big :
			NumericGetDatum(int64_to_numeric(sum->low));
		Datum		d = NumericGetDatum(int64_to_numeric(v));

		if (sign < 0)
			d = DirectFunctionCall1(numeric_uminus, d);
		sum->big = DirectFunctionCall2(numeric_add, acc, d);
		sum->low = 0;
		MemoryContextSwitchTo(oldcxt);
	}
#endif
}

/*
 * int_sum_is_zero: whether an exact integer sum is 0.
 */
static inline bool
int_sum_is_zero(CounterIntSum *sum)
{
#ifdef COUNTERS_HAVE_INT128
	return *sum == 0;
#else
	if (sum->big != (Datum) 0)
		return DatumGetBool(DirectFunctionCall2(numeric_eq, sum->big,
												NumericGetDatum(int64_to_numeric(0))));
	return sum->low == 0;
#endif
}

/*
 * add_numeric: add sign * value to the numeric sum of column col, keeping
 * it in cxt.  NaN and infinities are counted apart: they cannot be
 * subtracted again.
 */
static void
add_numeric(GroupDelta *g, int col, Datum value, int sign, MemoryContext cxt)
{
	Datum	   *acc = &g->nsums[col];
	Numeric		num = DatumGetNumeric(value);
	Datum		result;
	MemoryContext oldcxt;

	/* the value itself, never a pointer to a source row's TOAST */
	value = NumericGetDatum(num);

	if (numeric_is_nan(num))
	{
		g->specials[3 * col] += sign;
		return;
	}
	if (numeric_is_inf(num))
	{
		bool		negative = DatumGetInt32(DirectFunctionCall2(numeric_cmp, value,
																 NumericGetDatum(int64_to_numeric(0)))) < 0;

		g->specials[3 * col + (negative ? 2 : 1)] += sign;
		return;
	}

	if (sign < 0)
		value = DirectFunctionCall1(numeric_uminus, value);
	if (*acc == (Datum) 0)
		result = value;
	else
		result = DirectFunctionCall2(numeric_add, *acc, value);
	oldcxt = MemoryContextSwitchTo(cxt);
	result = datumCopy(result, false, -1);
	MemoryContextSwitchTo(oldcxt);
	if (*acc != (Datum) 0)
		pfree(DatumGetPointer(*acc));
	*acc = result;
}

/*
 * column_value: the value of counter column i for the row in the
 * expression context's scan slot.  A column that is a plain column of the
 * source is read from the slot, as the expression would read it, at a
 * fraction of the cost of running the expression.
 */
static inline Datum
column_value(CounterState *cs, int i, ExprContext *econtext, bool *isnull)
{
	AttrNumber	attno = cs->col_attnos[i];

	if (attno > 0)
	{
		TupleTableSlot *slot = econtext->ecxt_scantuple;

		slot_getsomeattrs(slot, attno);
		*isnull = slot->tts_isnull[attno - 1];
		return slot->tts_values[attno - 1];
	}
	return ExecEvalExprSwitchContext(cs->col_states[i], econtext, isnull);
}

/*
 * counters_delta_add: add one row version (the slot) with the given sign.
 * Expressions are evaluated in the per-tuple memory of econtext, which the
 * caller resets.
 */
void
counters_delta_add(DeltaMap *dm, ExprContext *econtext, TupleTableSlot *slot,
				int sign)
{
	CounterState *cs = dm->cs;
	CounterDef *def = cs->def;
	GroupDelta *g;
	bool		isnull;
	int			i;

	econtext->ecxt_scantuple = slot;

	if (cs->filter_state != NULL)
	{
		Datum		pass = ExecEvalExprSwitchContext(cs->filter_state,
													 econtext, &isnull);

		if (isnull || !DatumGetBool(pass))
			return;
	}

	if (cs->nkeys == 0)
		g = dm->global;
	else if (dm->fast != NULL)
	{
		bool		isnull;
		Datum		key = column_value(cs, cs->key_columns[0], econtext, &isnull);

		if (isnull)
		{
			if (dm->null_group == NULL)
			{
				dm->null_group = new_group(def->ncolumns, dm->tablecxt);
				dm->ngroups++;
			}
			g = dm->null_group;
		}
		else
		{
			bool		found;
			FastEntry  *entry = fastkey_insert(dm->fast, key, &found);

			if (!found)
			{
				entry->g = new_group(def->ncolumns, dm->tablecxt);
				dm->ngroups++;
			}
			g = entry->g;
		}
	}
	else
	{
		TupleTableSlot *keyslot = dm->keyslot;
		TupleHashEntry entry;
		bool		isnew;
		int			k;

		ExecClearTuple(keyslot);
		for (k = 0; k < cs->nkeys; k++)
		{
			Datum		v = column_value(cs, cs->key_columns[k], econtext,
										 &keyslot->tts_isnull[k]);

			/*
			 * A key stored out of line is fetched now, while the statement's
			 * snapshot can read the source's TOAST: the map keeps the value,
			 * which the apply (at commit, with no snapshot) reads and writes.
			 */
			if (!keyslot->tts_isnull[k] &&
				TupleDescAttr(cs->key_desc, k)->attlen == -1 &&
				VARATT_IS_EXTERNAL(DatumGetPointer(v)))
			{
				MemoryContext oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);

				v = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(v)));
				MemoryContextSwitchTo(oldcxt);
			}
			keyslot->tts_values[k] = v;
		}
		ExecStoreVirtualTuple(keyslot);

		entry = LookupTupleHashEntry(dm->table, keyslot, &isnew, NULL);
		if (isnew)
		{
			entry->additional = new_group(def->ncolumns, dm->tablecxt);
			dm->ngroups++;
		}
		g = (GroupDelta *) entry->additional;
		MemoryContextReset(dm->tempcxt);
	}

	g->rows += sign;
	for (i = 0; i < def->ncolumns; i++)
	{
		Datum		value;

		switch (def->kinds[i])
		{
			case CCK_KEY:
				break;
			case CCK_COUNT_STAR:
				g->counts[i] += sign;
				break;
			case CCK_COUNT:
				(void) column_value(cs, i, econtext, &isnull);
				if (!isnull)
					g->counts[i] += sign;
				break;
			case CCK_SUM:
				value = column_value(cs, i, econtext, &isnull);
				if (isnull)
					break;
				g->counts[i] += sign;
				switch (def->argtypes[i])
				{
					case INT2OID:
						add_int(&g->isums[i], DatumGetInt16(value), sign, dm->tablecxt);
						break;
					case INT4OID:
						add_int(&g->isums[i], DatumGetInt32(value), sign, dm->tablecxt);
						break;
					case INT8OID:
						add_int(&g->isums[i], DatumGetInt64(value), sign, dm->tablecxt);
						break;
					default:
						add_numeric(g, i, value, sign, dm->tablecxt);
						break;
				}
				break;
		}
	}
}

/*
 * counters_group_is_zero: whether a key's deltas all cancelled out.
 */
bool
counters_group_is_zero(CounterDef *def, GroupDelta *g)
{
	int			i;

	if (g->rows != 0)
		return false;
	for (i = 0; i < def->ncolumns; i++)
	{
		if (g->counts[i] != 0 || !int_sum_is_zero(&g->isums[i]) ||
			g->specials[3 * i] != 0 || g->specials[3 * i + 1] != 0 ||
			g->specials[3 * i + 2] != 0)
			return false;
		if (g->nsums[i] != (Datum) 0 &&
			!DatumGetBool(DirectFunctionCall2(numeric_eq, g->nsums[i],
											  NumericGetDatum(int64_to_numeric(0)))))
			return false;
	}
	return true;
}

/*
 * counters_delta_groups: every key of a keyed DeltaMap with its key values, in
 * CurrentMemoryContext (key values may point into the map).
 */
DeltaKeyGroup *
counters_delta_groups(DeltaMap *dm, int *ngroups)
{
	CounterState *cs = dm->cs;
	DeltaKeyGroup *groups = palloc(sizeof(DeltaKeyGroup) * Max(dm->ngroups, 1));
	int			n = 0;

	if (dm->fast != NULL)
	{
		fastkey_iterator it;
		FastEntry  *entry;

		/* one key per group: all the key values and null flags in one chunk */
		char	   *keymem = palloc(Max(dm->ngroups, 1) *
									(sizeof(Datum) + sizeof(bool)));
		Datum	   *keys = (Datum *) keymem;
		bool	   *nulls = (bool *) (keymem + Max(dm->ngroups, 1) * sizeof(Datum));

		fastkey_start_iterate(dm->fast, &it);
		while ((entry = fastkey_iterate(dm->fast, &it)) != NULL)
		{
			keys[n] = entry->key;
			nulls[n] = false;
			groups[n].keys = &keys[n];
			groups[n].nulls = &nulls[n];
			groups[n].g = entry->g;
			n++;
		}
		if (dm->null_group != NULL)
		{
			keys[n] = (Datum) 0;
			nulls[n] = true;
			groups[n].keys = &keys[n];
			groups[n].nulls = &nulls[n];
			groups[n].g = dm->null_group;
			n++;
		}
	}
	else
	{
		TupleHashIterator iter;
		TupleHashEntry entry;
		TupleTableSlot *slot = MakeSingleTupleTableSlot(cs->key_desc,
														&TTSOpsMinimalTuple);

		InitTupleHashIterator(dm->table, &iter);
		while ((entry = ScanTupleHashTable(dm->table, &iter)) != NULL)
		{
			ExecStoreMinimalTuple(entry->firstTuple, slot, false);
			slot_getallattrs(slot);
			groups[n].keys = palloc(sizeof(Datum) * cs->nkeys);
			groups[n].nulls = palloc(sizeof(bool) * cs->nkeys);
			memcpy(groups[n].keys, slot->tts_values, sizeof(Datum) * cs->nkeys);
			memcpy(groups[n].nulls, slot->tts_isnull, sizeof(bool) * cs->nkeys);
			groups[n].g = (GroupDelta *) entry->additional;
			n++;
		}
		TermTupleHashIterator(&iter);
		ExecDropSingleTupleTableSlot(slot);
	}
	*ngroups = n;
	return groups;
}

/*
 * counters_delta_spill: move a keyed DeltaMap's groups out of memory, into a sort
 * by key that lives as long as the map, and empty the table.  Used when
 * the transaction's deltas outgrow work_mem: the sort spills to disk, and
 * the apply reads every key once, in order.
 */
void
counters_delta_spill(DeltaMap *dm)
{
	CounterState *cs = dm->cs;
	MemoryContext oldcxt;
	MemoryContext tmpcxt;
	List	   *layout;
	DeltaKeyGroup *groups;
	TupleTableSlot *slot;
	ResourceOwner saveowner;
	int			ngroups;
	int			n;
	int			i;

	if (cs->nkeys == 0 || dm->ngroups == 0)
		return;
	Assert(!dm->spill_sorted);

	oldcxt = MemoryContextSwitchTo(dm->cxt);
	layout = counters_layout(cs->def);
	n = list_length(layout);
	if (dm->spill == NULL)
	{
		AttrNumber *attnums = palloc(sizeof(AttrNumber) * cs->nkeys);
		Oid		   *ops = palloc(sizeof(Oid) * cs->nkeys);
		bool	   *nullsfirst = palloc0(sizeof(bool) * cs->nkeys);
		ListCell   *lc;
		int			k;

		dm->spill_desc = CreateTemplateTupleDesc(n);
		foreach(lc, layout)
		{
			StorageColumn *sc = (StorageColumn *) lfirst(lc);
			int			p = foreach_current_index(lc);

			TupleDescInitEntry(dm->spill_desc, p + 1, NULL,
							   counters_column_type(cs->def, sc),
							   sc->kind == SC_OUTPUT ? cs->def->coltypmods[sc->col] : -1, 0);
			if (sc->kind == SC_OUTPUT)
				TupleDescInitEntryCollation(dm->spill_desc, p + 1,
											cs->def->colcollations[sc->col]);
		}
		for (k = 0; k < cs->nkeys; k++)
		{
			attnums[k] = cs->key_columns[k] + 1;
			ops[k] = lookup_type_cache(cs->def->coltypes[cs->key_columns[k]],
									   TYPECACHE_LT_OPR)->lt_opr;
		}
		saveowner = CurrentResourceOwner;
		CurrentResourceOwner = TopTransactionResourceOwner;
		dm->spill = tuplesort_begin_heap(dm->spill_desc, cs->nkeys, attnums,
										 ops, cs->key_collations, nullsfirst,
										 work_mem, NULL, TUPLESORT_RANDOMACCESS);
		CurrentResourceOwner = saveowner;
	}

	tmpcxt = AllocSetContextCreate(dm->cxt, "counters spill",
								   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(tmpcxt);
	slot = MakeSingleTupleTableSlot(dm->spill_desc, &TTSOpsVirtual);
	groups = counters_delta_groups(dm, &ngroups);
	for (i = 0; i < ngroups; i++)
	{
		char	   *nulls = palloc(n);
		int			p;

		CHECK_FOR_INTERRUPTS();
		ExecClearTuple(slot);
		counters_row_values(cs, &groups[i], slot->tts_values, nulls);
		for (p = 0; p < n; p++)
			slot->tts_isnull[p] = nulls[p] == 'n';
		ExecStoreVirtualTuple(slot);
		saveowner = CurrentResourceOwner;
		CurrentResourceOwner = TopTransactionResourceOwner;
		tuplesort_puttupleslot(dm->spill, slot);
		CurrentResourceOwner = saveowner;
	}
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(tmpcxt);
	counters_delta_clear(dm);
}

/*
 * counters_delta_spill_finish: get a spilled DeltaMap ready to be read in key
 * order, from the start.
 */
void
counters_delta_spill_finish(DeltaMap *dm)
{
	ResourceOwner saveowner = CurrentResourceOwner;

	if (!dm->spill_sorted)
		counters_delta_spill(dm);
	CurrentResourceOwner = TopTransactionResourceOwner;
	if (dm->spill_sorted)
		tuplesort_rescan(dm->spill);
	else
		tuplesort_performsort(dm->spill);
	CurrentResourceOwner = saveowner;
	dm->spill_sorted = true;
}

/*
 * counters_delta_free: release what a DeltaMap holds outside its memory context
 * (the temporary files of its sort).
 */
void
counters_delta_free(DeltaMap *dm)
{
	if (dm->spill != NULL)
	{
		ResourceOwner saveowner = CurrentResourceOwner;

		CurrentResourceOwner = TopTransactionResourceOwner;
		tuplesort_end(dm->spill);
		CurrentResourceOwner = saveowner;
		dm->spill = NULL;
	}
}
