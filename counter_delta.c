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
 * The table holds one entry per distinct key of the statement.  The caller
 * checks delta_over_limit() as it goes and applies and resets the map when
 * it outgrows work_mem, so memory stays bounded however large a statement
 * is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "counters.h"

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
		MAXALIGN(sizeof(int128) * ncolumns) +
		MAXALIGN(sizeof(Datum) * ncolumns) +
		MAXALIGN(sizeof(int64) * 3 * ncolumns);
	p = MemoryContextAllocZero(cxt, size);
	g = (GroupDelta *) p;
	p += MAXALIGN(sizeof(GroupDelta));
	g->counts = (int64 *) p;
	p += MAXALIGN(sizeof(int64) * ncolumns);
	g->isums = (int128 *) p;
	p += MAXALIGN(sizeof(int128) * ncolumns);
	g->nsums = (Datum *) p;
	p += MAXALIGN(sizeof(Datum) * ncolumns);
	g->specials = (int64 *) p;
	return g;
}

/*
 * build_table: (re)create the hash table of a DeltaMap.
 */
static void
build_table(DeltaMap *dm)
{
	CounterState *cs = dm->cs;

	dm->tablecxt = AllocSetContextCreate(dm->cxt, "counters deltas",
										 ALLOCSET_DEFAULT_SIZES);
	dm->ngroups = 0;
	if (cs->nkeys == 0)
	{
		dm->global = new_group(cs->def->ncolumns, dm->tablecxt);
		dm->table = NULL;
		return;
	}
	dm->global = NULL;
	dm->table = BuildTupleHashTableExt(NULL, cs->key_desc, cs->nkeys,
									   cs->key_attnums, cs->key_eqfuncs,
									   cs->key_hashfuncs, cs->key_collations,
									   8, 0,
									   dm->tablecxt, dm->tablecxt,
									   dm->tempcxt, false);
}

/*
 * delta_create: an empty DeltaMap for one counter, under parent.
 */
DeltaMap *
delta_create(CounterState *cs, MemoryContext parent)
{
	DeltaMap   *dm = MemoryContextAllocZero(parent, sizeof(DeltaMap));

	dm->cs = cs;
	dm->cxt = AllocSetContextCreate(parent, "counters delta map",
									ALLOCSET_DEFAULT_SIZES);
	dm->tempcxt = AllocSetContextCreate(dm->cxt, "counters delta temp",
										ALLOCSET_SMALL_SIZES);
	if (cs->nkeys > 0)
		dm->keyslot = MakeSingleTupleTableSlot(cs->key_desc, &TTSOpsVirtual);
	build_table(dm);
	return dm;
}

/*
 * delta_reset: forget every delta (after they were applied).
 */
void
delta_reset(DeltaMap *dm)
{
	MemoryContextDelete(dm->tablecxt);
	MemoryContextReset(dm->tempcxt);
	build_table(dm);
}

/*
 * delta_over_limit: whether the map holds more than work_mem.
 */
bool
delta_over_limit(DeltaMap *dm)
{
	return MemoryContextMemAllocated(dm->tablecxt, true) >
		(Size) work_mem * 1024;
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
 * delta_add_tuple: add one row version (the slot) with the given sign.
 * Expressions are evaluated in the per-tuple memory of econtext, which the
 * caller resets.
 */
void
delta_add_tuple(DeltaMap *dm, ExprContext *econtext, TupleTableSlot *slot,
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
	else
	{
		TupleTableSlot *keyslot = dm->keyslot;
		TupleHashEntry entry;
		bool		isnew;
		int			k;

		ExecClearTuple(keyslot);
		for (k = 0; k < cs->nkeys; k++)
			keyslot->tts_values[k] =
				ExecEvalExprSwitchContext(cs->col_states[cs->key_columns[k]],
										  econtext,
										  &keyslot->tts_isnull[k]);
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
				(void) ExecEvalExprSwitchContext(cs->col_states[i], econtext,
												 &isnull);
				if (!isnull)
					g->counts[i] += sign;
				break;
			case CCK_SUM:
				value = ExecEvalExprSwitchContext(cs->col_states[i], econtext,
												  &isnull);
				if (isnull)
					break;
				g->counts[i] += sign;
				switch (def->argtypes[i])
				{
					case INT2OID:
						g->isums[i] += (int128) sign * DatumGetInt16(value);
						break;
					case INT4OID:
						g->isums[i] += (int128) sign * DatumGetInt32(value);
						break;
					case INT8OID:
						g->isums[i] += (int128) sign * DatumGetInt64(value);
						break;
					default:
						add_numeric(g, i, value, sign, dm->tablecxt);
						break;
				}
				break;
		}
	}
}
