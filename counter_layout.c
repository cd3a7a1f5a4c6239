/*-------------------------------------------------------------------------
 *
 * counter_layout.c
 *	  The columns of a counter's storage table, and the SQL that computes,
 *	  shows and adds them.
 *
 * A storage row holds, in this order:
 *	  - the query's columns: keys, counts, and sums of finite values;
 *	  - _counters_rows: how many source rows the group has (the group row
 *		exists while this is positive);
 *	  - per sum, _counters_nn<i>: how many non-null values it summed (a sum
 *		of no value is NULL);
 *	  - per sum of numeric, _counters_nan<i>, _counters_pinf<i> and
 *		_counters_ninf<i>: how many NaN, Infinity and -Infinity values it
 *		saw.  Special values cannot be subtracted again, so they are
 *		counted apart and the visible sum is NaN, Infinity or -Infinity
 *		while any is there, exactly as PostgreSQL's sum() would say;
 *	  - for a counter over a Citus table kept in per-shard partial rows
 *		(see counter_citus.c), _counters_shard: the shard a row counts, a
 *		key as the query's keys are.  A group is then the sum of its
 *		partial rows, and a partial row goes only when all its values are
 *		0 (after a shard split, one may count -1 row and +5).
 * Every column but the keys is a sum of deltas, so applying a delta is
 * "column + delta" for each of them.
 *
 * The SQL built here reads and computes rows in that layout: the visible
 * value of a column, the query that computes every storage row from the
 * source (create_counter's first fill, verify and rebuild), and what to
 * read a counter's rows from (the storage, plus the recorded deltas in
 * buffered mode).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/ruleutils.h"

#include "counter_delta.h"

static const char *const hidden_prefix[] = {
	[SC_NN] = COUNTERS_NN_PREFIX,
	[SC_NAN] = COUNTERS_RESERVED_PREFIX "nan",
	[SC_PINF] = COUNTERS_RESERVED_PREFIX "pinf",
	[SC_NINF] = COUNTERS_RESERVED_PREFIX "ninf",
};

/*
 * add_column: append one StorageColumn to a layout.
 */
static List *
add_column(List *layout, StorageColumnKind kind, int col, const char *name)
{
	StorageColumn *sc = palloc(sizeof(StorageColumn));

	sc->kind = kind;
	sc->col = col;
	sc->name = pstrdup(name);
	return lappend(layout, sc);
}

/*
 * counters_layout: the storage columns of a counter, in table order.  Made
 * once per definition and kept with it, in the memory that holds the
 * definition (a compiled counter's context, for cached counters).  Callers
 * must not modify it.
 */
List *
counters_layout(CounterDef *def)
{
	List	   *layout = NIL;
	int			i;
	StorageColumnKind k;
	MemoryContext oldcxt;

	if (def->layout != NIL)
		return def->layout;

	oldcxt = MemoryContextSwitchTo(GetMemoryChunkContext(def));

	for (i = 0; i < def->ncolumns; i++)
		layout = add_column(layout, SC_OUTPUT, i,
							quote_identifier(def->colnames[i]));
	layout = add_column(layout, SC_ROWS, -1, COUNTERS_ROWS_COLUMN);
	for (k = SC_NN; k <= SC_NINF; k++)
	{
		for (i = 0; i < def->ncolumns; i++)
		{
			if (def->kinds[i] != CCK_SUM)
				continue;
			if (k != SC_NN && def->argtypes[i] != NUMERICOID)
				continue;
			layout = add_column(layout, k, i,
								psprintf("%s%d", hidden_prefix[k], i + 1));
		}
	}
	if (def->partial)
		layout = add_column(layout, SC_SHARD, -1, COUNTERS_SHARD_COLUMN);
	MemoryContextSwitchTo(oldcxt);
	def->layout = layout;
	return layout;
}

/*
 * counters_is_key_column: whether a storage column is one of the keys.
 */
bool
counters_is_key_column(CounterDef *def, StorageColumn *sc)
{
	return sc->kind == SC_SHARD ||
		(sc->kind == SC_OUTPUT && def->kinds[sc->col] == CCK_KEY);
}

/*
 * counters_column_type: the type of a storage column.
 */
Oid
counters_column_type(CounterDef *def, StorageColumn *sc)
{
	if (sc->kind == SC_SHARD)
		return def->shard_type;
	return sc->kind == SC_OUTPUT ? def->coltypes[sc->col] : INT8OID;
}

/*
 * counters_storage_column_list: the storage columns, comma-separated, each
 * with an optional prefix ("x." for instance).
 */
char *
counters_storage_column_list(CounterDef *def, const char *prefix)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, counters_layout(def))
		appendStringInfo(&buf, "%s%s%s",
						 foreach_current_index(lc) > 0 ? ", " : "",
						 prefix ? prefix : "",
						 ((StorageColumn *) lfirst(lc))->name);
	return buf.data;
}

/*
 * counters_display_sql: the visible value of output column i of a storage
 * row called alias, as the query would show it.
 */
char *
counters_display_sql(CounterDef *def, int i, const char *alias)
{
	const char *col = quote_identifier(def->colnames[i]);
	int			n = i + 1;

	if (def->kinds[i] != CCK_SUM)
		return psprintf("%s.%s", alias, col);
	if (def->argtypes[i] != NUMERICOID)
		return psprintf("CASE WHEN %s." COUNTERS_NN_PREFIX "%d OPERATOR(pg_catalog.>) 0 "
						"THEN %s.%s END", alias, n, alias, col);
	return psprintf("CASE WHEN %1$s." COUNTERS_NN_PREFIX "%2$d OPERATOR(pg_catalog.=) 0 THEN NULL "
					"WHEN %1$s._counters_nan%2$d OPERATOR(pg_catalog.>) 0 "
					"OR (%1$s._counters_pinf%2$d OPERATOR(pg_catalog.>) 0 "
					"AND %1$s._counters_ninf%2$d OPERATOR(pg_catalog.>) 0) "
					"THEN 'NaN'::pg_catalog.numeric "
					"WHEN %1$s._counters_pinf%2$d OPERATOR(pg_catalog.>) 0 "
					"THEN 'Infinity'::pg_catalog.numeric "
					"WHEN %1$s._counters_ninf%2$d OPERATOR(pg_catalog.>) 0 "
					"THEN '-Infinity'::pg_catalog.numeric "
					"ELSE %1$s.%3$s END", alias, n, col);
}

/*
 * expected_column_sql: the aggregate that computes a storage
 * column from source rows; arg is the deparsed argument of the column's
 * aggregate (or key expression).
 */
static char *
expected_column_sql(CounterDef *def, StorageColumn *sc, const char *arg)
{
	bool		numeric = sc->col >= 0 && def->argtypes[sc->col] == NUMERICOID &&
		def->kinds[sc->col] == CCK_SUM;
	const char *finite = "NOT (%s) OPERATOR(pg_catalog.=) ANY "
		"('{NaN,Infinity,-Infinity}'::pg_catalog.numeric[])";

	switch (sc->kind)
	{
		case SC_OUTPUT:
			switch (def->kinds[sc->col])
			{
				case CCK_KEY:
					return psprintf("(%s)", arg);
				case CCK_COUNT_STAR:
					return pstrdup("pg_catalog.count(*)");
				case CCK_COUNT:
					return psprintf("pg_catalog.count(%s)", arg);
				case CCK_SUM:
					if (numeric)
						return psprintf("COALESCE(pg_catalog.sum(%s) FILTER (WHERE %s), 0)",
										arg, psprintf(finite, arg));
					return psprintf("COALESCE(pg_catalog.sum(%s), 0)", arg);
			}
			break;
		case SC_ROWS:
			return pstrdup("pg_catalog.count(*)");
		case SC_NN:
			return psprintf("pg_catalog.count(%s)", arg);
		case SC_NAN:
			return psprintf("pg_catalog.count(*) FILTER (WHERE (%s) OPERATOR(pg_catalog.=) "
							"'NaN'::pg_catalog.numeric)", arg);
		case SC_PINF:
			return psprintf("pg_catalog.count(*) FILTER (WHERE (%s) OPERATOR(pg_catalog.=) "
							"'Infinity'::pg_catalog.numeric)", arg);
		case SC_NINF:
			return psprintf("pg_catalog.count(*) FILTER (WHERE (%s) OPERATOR(pg_catalog.=) "
							"'-Infinity'::pg_catalog.numeric)", arg);
	case SC_SHARD:
			break;				/* computed by the caller */
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * expected_sql: the query that computes a counter's storage rows from its
 * source; in the partial layout, per shard (shard_expr computes a source
 * row's _counters_shard) or, when shard_expr is NULL, per group without
 * the _counters_shard column.  Must be called with a safe search_path in
 * effect.
 */
static char *
expected_sql(CounterDef *def, const char *shard_expr)
{
	StringInfoData buf;
	List	   *dpcontext;
	ListCell   *lc;
	bool		first;
	int			i;

	dpcontext = deparse_context_for(get_rel_name(def->source), def->source);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);
		Node	   *expr = sc->col >= 0 ? (Node *) list_nth(def->exprs, sc->col) : NULL;
		char	   *arg = expr ? deparse_expression(expr, dpcontext, false, false) : NULL;

		if (sc->kind == SC_SHARD)
		{
			if (shard_expr != NULL)
				appendStringInfo(&buf, ", %s AS %s", shard_expr, sc->name);
			continue;
		}
		appendStringInfo(&buf, "%s%s AS %s",
						 foreach_current_index(lc) > 0 ? ", " : "",
						 expected_column_sql(def, sc, arg), sc->name);
	}
	appendStringInfo(&buf, " FROM %s", counters_relation_name(def->source));
	if (def->filter != NULL)
		appendStringInfo(&buf, " WHERE %s",
						 deparse_expression((Node *) def->filter, dpcontext,
											false, false));
	first = true;
	for (i = 0; i < def->ncolumns; i++)
	{
		if (def->kinds[i] != CCK_KEY)
			continue;
		appendStringInfo(&buf, "%s%d", first ? " GROUP BY " : ", ", i + 1);
		first = false;
	}
	if (def->partial && shard_expr != NULL)
		appendStringInfo(&buf, "%s%d", first ? " GROUP BY " : ", ",
						 list_length(counters_layout(def)));
	return buf.data;
}

/*
 * counters_expected_sql: the query that computes a counter's groups from
 * its source, in the storage layout (without _counters_shard: one row per
 * group).  Must be called with a safe search_path in effect.
 */
char *
counters_expected_sql(CounterDef *def)
{
	return expected_sql(def, NULL);
}

/*
 * counters_fill_sql: the query that computes a counter's storage rows, in
 * every column of its storage: counters_expected_sql, and in the partial
 * layout per shard too, shard_expr computing a source row's
 * _counters_shard.
 */
char *
counters_fill_sql(CounterDef *def, const char *shard_expr)
{
	return expected_sql(def, def->partial ? shard_expr : NULL);
}

/*
 * counters_empty_sql: the condition that a storage row (called alias, or
 * unqualified when alias is NULL) holds nothing and can go: no source row
 * in its group; in the partial layout, every value 0.
 */
char *
counters_empty_sql(CounterDef *def, const char *alias)
{
	StringInfoData buf;
	ListCell   *lc;
	const char *prefix = alias ? psprintf("%s.", alias) : "";

	if (!def->partial)
		return psprintf("%s" COUNTERS_ROWS_COLUMN " OPERATOR(pg_catalog.=) 0", prefix);
	initStringInfo(&buf);
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		if (counters_is_key_column(def, sc))
			continue;
		appendStringInfo(&buf, "%s%s%s OPERATOR(pg_catalog.=) 0", buf.len > 0 ? " AND " : "",
						 prefix, sc->name);
	}
	return buf.data;
}

/*
 * counters_add_delta: old + delta for one non-key storage column.
 */
Datum
counters_add_delta(CounterDef *def, StorageColumn *sc, Datum old, Datum delta)
{
	int64		result;

	if (counters_column_type(def, sc) == NUMERICOID)
		return DirectFunctionCall2(numeric_add, old, delta);
	if (pg_add_s64_overflow(DatumGetInt64(old), DatumGetInt64(delta), &result))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return Int64GetDatum(result);
}

/*
 * counters_row_values: one key's deltas as a row of the storage layout, keys
 * included, with SPI-style nulls (' ' or 'n').
 */
void
counters_row_values(CounterState *cs, DeltaKeyGroup *row, Datum *values,
					char *nulls)
{
	CounterDef *def = cs->def;
	ListCell   *lc;
	int			k = 0;

	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);
		int			p = foreach_current_index(lc);

		nulls[p] = ' ';
		if (sc->kind == SC_SHARD)
			values[p] = def->shard_value;
		else if (counters_is_key_column(def, sc))
		{
			values[p] = row->keys[k];
			if (row->nulls[k])
				nulls[p] = 'n';
			k++;
		}
		else
			values[p] = counters_delta_value(def, sc, row->g);
	}
}

/*
 * counters_add_row_deltas: add one key's deltas (storage layout, keys
 * included) to the values of its stored row, in place; keys are left as
 * they are.  Returns the row's new group row count (in the partial layout,
 * 0 only when every value is 0: see counters_empty_sql).
 */
int64
counters_add_row_deltas(CounterDef *def, Datum *vals, Datum *deltas)
{
	ListCell   *lc;
	int64		rows = 0;
	bool		zero = true;

	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);
		int			p = foreach_current_index(lc);

		if (counters_is_key_column(def, sc))
			continue;
		vals[p] = counters_add_delta(def, sc, vals[p], deltas[p]);
		if (sc->kind == SC_ROWS)
			rows = DatumGetInt64(vals[p]);
		else if (def->partial && zero)
			zero = counters_column_type(def, sc) == NUMERICOID ?
				DatumGetBool(DirectFunctionCall2(numeric_eq, vals[p],
												 NumericGetDatum(int64_to_numeric(0)))) :
				DatumGetInt64(vals[p]) == 0;
	}
	if (def->partial && rows == 0 && !zero)
		return 1;
	return rows;
}

/*
 * counters_next_version: the next version of a stored row, whose non-key
 * columns the caller has just summed into vals (deformed from tup, which
 * the caller keeps pinned): a copy of tup with those columns overwritten
 * where they lie, as PostgreSQL's catalog code updates the fixed-width
 * fields of a copied tuple.  Forming the tuple anew from every column
 * costs several times more, and a counter row is written per key and
 * transaction.  Only when every non-key column is a non-null bigint (no
 * numeric sum); otherwise, or when the row does not have the layout's
 * columns, the tuple is formed from vals and nulls.
 */
HeapTuple
counters_next_version(CounterDef *def, TupleDesc desc, HeapTuple tup,
					  Datum *vals, bool *nulls)
{
	List	   *layout = counters_layout(def);
	HeapTupleHeader td = tup->t_data;
	bool		hasnulls = HeapTupleHasNulls(tup);
	char	   *tp = (char *) td + td->t_hoff;
	int			offsets[MaxTupleAttributeNumber];
	uint32		off = 0;
	HeapTuple	copy;
	ListCell   *lc;

	if (HeapTupleHeaderGetNatts(td) != desc->natts ||
		desc->natts != list_length(layout))
		return heap_form_tuple(desc, vals, nulls);

	/* where each non-key column lies (heap_deform_tuple's walk) */
	foreach(lc, layout)
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);
		int			p = foreach_current_index(lc);
		Form_pg_attribute att = TupleDescAttr(desc, p);
		bool		key = counters_is_key_column(def, sc);

		offsets[p] = -1;
		if (hasnulls && att_isnull(p, td->t_bits))
		{
			if (!key)
				return heap_form_tuple(desc, vals, nulls);
			continue;
		}
		if (att->attlen == -1)
			off = att_align_pointer(off, att->attalign, -1, tp + off);
		else
			off = att_align_nominal(off, att->attalign);
		if (!key)
		{
			if (counters_column_type(def, sc) != INT8OID ||
				att->attlen != sizeof(int64) || !att->attbyval || nulls[p])
				return heap_form_tuple(desc, vals, nulls);
			offsets[p] = off;
		}
		off = att_addlength_pointer(off, att->attlen, tp + off);
	}

	copy = heap_copytuple(tup);
	tp = (char *) copy->t_data + copy->t_data->t_hoff;
	foreach(lc, layout)
	{
		int			p = foreach_current_index(lc);

		if (offsets[p] >= 0)
			store_att_byval(tp + offsets[p], vals[p], sizeof(int64));
	}
	return copy;
}

#ifdef COUNTERS_HAVE_INT128
/*
 * int128_to_numeric: exact conversion of a sum of bigints.
 */
static Datum
int128_to_numeric(int128 v)
{
	char		buf[64];
	char	   *p = buf + sizeof(buf) - 1;
	bool		neg = v < 0;
	uint128		u = neg ? -(uint128) v : (uint128) v;

	if (v >= PG_INT64_MIN && v <= PG_INT64_MAX)
		return NumericGetDatum(int64_to_numeric((int64) v));

	*p = '\0';
	do
	{
		*--p = '0' + (int) (u % 10);
		u /= 10;
	} while (u != 0);
	if (neg)
		*--p = '-';
	return DirectFunctionCall3(numeric_in, CStringGetDatum(p),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}
#endif

/*
 * counters_int_sum_datum: an exact integer sum as a numeric, or as a
 * bigint (an error if it does not fit, as sum() would raise).
 */
Datum
counters_int_sum_datum(CounterIntSum *sum, bool to_numeric)
{
#ifdef COUNTERS_HAVE_INT128
	if (to_numeric)
		return int128_to_numeric(*sum);
	if (*sum < PG_INT64_MIN || *sum > PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return Int64GetDatum((int64) *sum);
#else
	if (to_numeric)
		return sum->big != (Datum) 0 ? sum->big :
			NumericGetDatum(int64_to_numeric(sum->low));
	if (sum->big != (Datum) 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return Int64GetDatum(sum->low);
#endif
}

/*
 * counters_delta_value: the delta of one storage column for a key, as a
 * Datum of the column's type.  Keys are not deltas and are not handled
 * here.
 */
Datum
counters_delta_value(CounterDef *def, StorageColumn *sc, GroupDelta *g)
{
	int			i = sc->col;

	switch (sc->kind)
	{
		case SC_OUTPUT:
			if (def->kinds[i] != CCK_SUM)
				return Int64GetDatum(g->counts[i]);
			if (def->coltypes[i] == INT8OID)
				return counters_int_sum_datum(&g->isums[i], false);
			if (def->argtypes[i] == NUMERICOID)
				return g->nsums[i] != (Datum) 0 ? g->nsums[i] :
					NumericGetDatum(int64_to_numeric(0));
			return counters_int_sum_datum(&g->isums[i], true);
		case SC_ROWS:
			return Int64GetDatum(g->rows);
		case SC_NN:
			return Int64GetDatum(g->counts[i]);
		case SC_NAN:
		case SC_PINF:
		case SC_NINF:
			return Int64GetDatum(g->specials[3 * i + (sc->kind - SC_NAN)]);
		case SC_SHARD:
			return def->shard_value;
	}
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * counters_sum_cast: the cast that brings sum() over a storage column back to the
 * column's type (sum of bigint is numeric).
 */
const char *
counters_sum_cast(CounterDef *def, StorageColumn *sc)
{
	return counters_column_type(def, sc) == INT8OID ?
		"::pg_catalog.int8" : "::pg_catalog.numeric";
}

/*
 * summed_relation_sql: the storage rows plus (with deltas) the recorded
 * deltas, summed per key; a group exists while its row count is not zero.
 * Partial rows (Citus, see counter_citus.c) are summed the same way.  An
 * immediate-mode counter's sum has its own alias (COUNTERS_IMMEDIATE_ALIAS).
 */
static char *
summed_relation_sql(CounterDef *def, bool deltas)
{
	StringInfoData buf;
	StringInfoData keys;
	ListCell   *lc;
	char	   *cols = counters_storage_column_list(def, NULL);
	const char *a = def->buffered || !deltas ? "_counters_a" : COUNTERS_IMMEDIATE_ALIAS;

	initStringInfo(&buf);
	initStringInfo(&keys);
	appendStringInfoString(&buf, "(SELECT ");
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		if (sc->kind == SC_SHARD)
			continue;
		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&buf, ", ");
		if (sc->kind == SC_OUTPUT && def->kinds[sc->col] == CCK_KEY)
		{
			appendStringInfo(&buf, "%s.%s", a, sc->name);
			appendStringInfo(&keys, "%s%s.%s", keys.len > 0 ? ", " : "",
							 a, sc->name);
		}
		else
			appendStringInfo(&buf, "COALESCE(pg_catalog.sum(%s.%s), 0)%s AS %s",
							 a, sc->name, counters_sum_cast(def, sc), sc->name);
	}
	if (deltas)
		appendStringInfo(&buf, " FROM (SELECT %s FROM %s UNION ALL SELECT %s FROM %s) %s",
						 cols, counters_relation_name(def->storage),
						 cols, counters_relation_name(def->deltas), a);
	else
		appendStringInfo(&buf, " FROM %s %s", counters_relation_name(def->storage), a);
	if (keys.len > 0)
		appendStringInfo(&buf, " GROUP BY %s HAVING pg_catalog.sum(%s." COUNTERS_ROWS_COLUMN
						 ") OPERATOR(pg_catalog.<>) 0", keys.data, a);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * counters_storage_relation_sql: what to read a counter's rows from, in
 * the storage layout.  For keyed counters in immediate mode, the storage
 * table; a counter without keys always has one row, also when its storage
 * is empty (an unlogged storage after a crash), so it reads its storage
 * through a left join from one row, with zeros for a missing row.  In
 * buffered mode, and in immediate mode where the view reads deltas (a
 * two-phase subscriber, see CounterDef), the storage and the recorded
 * deltas summed per key; in the partial layout, the storage's partial rows
 * summed per key.
 */
char *
counters_storage_relation_sql(CounterDef *def)
{
	StringInfoData buf;
	ListCell   *lc;

	if (def->reads_deltas)
		return summed_relation_sql(def, true);
	if (def->partial)
		return summed_relation_sql(def, false);
	if (def->nkeys > 0)
		return counters_relation_name(def->storage);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "(SELECT ");
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		appendStringInfo(&buf, "%sCOALESCE(_counters_s.%s, 0) AS %s",
						 foreach_current_index(lc) > 0 ? ", " : "",
						 sc->name, sc->name);
	}
	appendStringInfo(&buf, " FROM (SELECT) _counters_one LEFT JOIN %s _counters_s ON true)",
					 counters_relation_name(def->storage));
	return buf.data;
}
