/*-------------------------------------------------------------------------
 *
 * counter_check.c
 *	  Comparing a counter with its defining query: verify() and rebuild().
 *
 * The expected rows come from counters_expected_sql (counter_layout.c),
 * generated from the stored node trees and deparsed under a search_path of
 * pg_catalog only, so it always names the source's columns by their
 * current names and every function schema-qualified: a renamed column or a
 * caller's search_path cannot change it.  It returns rows in the storage
 * table's layout (visible columns, raw sums, row count, non-null counts),
 * so comparing and repairing need no conversion.
 *
 * Both sides are keyed by a jsonb array of the key values, which is
 * hashable and treats NULL keys as equal, so the comparison is one hash
 * full join however large the counter is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"

#include "counter_ops.h"

/*
 * key_array_sql: jsonb_build_array(alias.key1, ...), the join key of a row.
 */
static char *
key_array_sql(CounterDef *def, const char *alias)
{
	StringInfoData buf;
	bool		first = true;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.jsonb_build_array(");
	for (i = 0; i < def->ncolumns; i++)
	{
		if (def->kinds[i] != CCK_KEY)
			continue;
		appendStringInfo(&buf, "%s%s.%s", first ? "" : ", ", alias,
						 quote_identifier(def->colnames[i]));
		first = false;
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * object_sql: jsonb_build_object of the key columns (keys true) or of the
 * visible aggregate columns (keys false) of a storage-layout row.
 */
static char *
object_sql(CounterDef *def, const char *alias, bool keys)
{
	StringInfoData buf;
	bool		first = true;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.jsonb_build_object(");
	for (i = 0; i < def->ncolumns; i++)
	{
		if ((def->kinds[i] == CCK_KEY) != keys)
			continue;
		appendStringInfo(&buf, "%s%s, ", first ? "" : ", ",
						 quote_literal_cstr(def->colnames[i]));
		appendStringInfoString(&buf, counters_display_sql(def, i, alias));
		first = false;
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * full_sql: jsonb_build_object of every non-key storage column of a row:
 * what must be equal for a counter row to be right.  jsonb compares
 * numerics by value, so 1.50 and 1.5 are equal, as they are in SQL.
 */
static char *
full_sql(CounterDef *def, const char *alias)
{
	StringInfoData buf;
	ListCell   *lc;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.jsonb_build_object(");
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		if (counters_is_key_column(def, sc))
			continue;
		appendStringInfo(&buf, "%s%s, %s.%s", first ? "" : ", ",
						 quote_literal_cstr(sc->name), alias, sc->name);
		first = false;
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * side_sql: one side of the comparison: a flag (true for stored rows),
 * the key columns, the visible values, the full values and the join key
 * of every row of "from", a storage-layout relation called _counters_x.
 * Every alias of our own starts with _counters_, which no counter column
 * name may, so that no column name can clash with them.
 */
static char *
side_sql(CounterDef *def, bool stored, const char *from)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT %s AS _counters_src", stored ? "true" : "false");
	for (i = 0; i < def->ncolumns; i++)
		if (def->kinds[i] == CCK_KEY)
			appendStringInfo(&buf, ", _counters_x.%s", quote_identifier(def->colnames[i]));
	appendStringInfo(&buf, ", %s AS _counters_v, %s AS _counters_f, %s AS _counters_kk FROM %s",
					 object_sql(def, "_counters_x", false), full_sql(def, "_counters_x"),
					 key_array_sql(def, "_counters_x"), from);
	return buf.data;
}

/*
 * diff_sql: the keys where storage and the expected query differ.
 * Columns: key, stored, expected (jsonb), and the stored and expected
 * rows' join keys.  Both sides are grouped by their key columns, with the
 * keys' own equality and collation, so a key matches itself however its
 * type and collation compare.
 */
static char *
diff_sql(CounterDef *def)
{
	StringInfoData keys;
	int			i;

	initStringInfo(&keys);
	for (i = 0; i < def->ncolumns; i++)
		if (def->kinds[i] == CCK_KEY)
			appendStringInfo(&keys, "%s_counters_u.%s", keys.len > 0 ? ", " : "",
							 quote_identifier(def->colnames[i]));

#define PICK(col, side) "(pg_catalog.array_agg(_counters_u._counters_" col ") " \
	"FILTER (WHERE " side "_counters_u._counters_src))[1]"
	return psprintf("SELECT %s AS key, "
					PICK("v", "") ", " PICK("v", "NOT ") ", "
					PICK("kk", "") ", " PICK("kk", "NOT ")
					" FROM (%s UNION ALL %s) _counters_u %s%s"
					" HAVING " PICK("f", "") " IS DISTINCT FROM " PICK("f", "NOT ")
					" ORDER BY 1",
					object_sql(def, "_counters_u", true),
					side_sql(def, true, psprintf("%s _counters_x", counters_storage_relation_sql(def))),
					side_sql(def, false, psprintf("(%s) _counters_x", counters_expected_sql(def))),
					keys.len > 0 ? "GROUP BY " : "", keys.data);
#undef PICK
}

/*
 * counters_compare: verify's work: put into rsinfo's tuplestore one row per
 * key where the counter differs from its defining query right now.
 */
void
counters_compare(Oid counter, ReturnSetInfo *rsinfo)
{
	CounterDef *def;
	int			nestlevel;
	uint64		i;
	CountersRole role;
	instr_time	started;

	INSTR_TIME_SET_CURRENT(started);
	counters_spi_connect();
	nestlevel = counters_safe_search_path();

	def = counters_read_def(counter, false);

	/*
	 * Whoever may read the counter may check it; the hidden storage and the
	 * source are read as the counter's owner, as the counter view does.
	 */
	if (pg_class_aclcheck(counter, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, get_rel_name(counter));
	counters_become(&role, counters_relation_owner(counter), COUNTERS_NO_FORCE_RLS);
	counters_spi_exec(diff_sql(def), SPI_OK_SELECT);
	counters_unbecome(&role);

	for (i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3];
		int			c;

		for (c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	counters_stats_count(counter, CE_VERIFY, (int64) SPI_processed, &started);

	counters_restore_search_path(nestlevel);
	SPI_finish();
}

/*
 * jsonb_column_array: the non-null values of one jsonb column of the
 * current SPI result, as a jsonb[] (palloc'd in the caller's context).
 */
static Datum
jsonb_column_array(int column, int *count)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	int			n = 0;
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, column, &isnull);

		if (!isnull)
			elems[n++] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
	}
	*count = n;
	return PointerGetDatum(construct_array(elems, n, JSONBOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * counters_recompute: rebuild's work: recompute the counter from its source
 * while holding a SHARE lock on the source, which lets readers in and
 * keeps writers out, and rewrite only the rows that differ.  Returns how
 * many counter rows it changed.
 */
int64
counters_recompute(Oid counter)
{
	CounterDef *def;
	int			nestlevel;
	int64		changed;
	Datum		stored_keys;
	Datum		expected_keys;
	int			nstored;
	int			nexpected;
	char	   *storage;
	CountersRole role;
	instr_time	started;
	bool		citus;
	CountersRole citus_role;

	INSTR_TIME_SET_CURRENT(started);
	counters_spi_connect();
	nestlevel = counters_safe_search_path();

	def = counters_read_def(counter, false);
	if (!pg_class_ownercheck(counter, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("counters.rebuild() cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The recomputation must see every row committed before it locked the source."),
				 errhint("Run it in a READ COMMITTED transaction.")));

	/* keep writers out; the statements below take fresh snapshots */
	citus = counters_citus_table(def->source, NULL) != CITUS_NONE;
	if (citus)
	{
		/* every step as the owner (see counter_distribute.c) */
		counters_become(&citus_role, counters_relation_owner(counter), 0);
		counters_citus_lock(def->source, "SHARE");
	}
	LockRelationOid(def->source, ShareLock);
	counters_pending_apply();
	counters_fold(def, true);

	/*
	 * As the counter's owner, whoever calls it: a superuser's rebuild must
	 * not run the owner's functions with the superuser's rights.
	 */
	counters_become(&role, counters_relation_owner(counter),
					COUNTERS_MAINTENANCE | COUNTERS_NO_FORCE_RLS);
	counters_spi_exec(diff_sql(def), SPI_OK_SELECT);
	changed = (int64) SPI_processed;
	stored_keys = jsonb_column_array(4, &nstored);
	expected_keys = jsonb_column_array(5, &nexpected);

	storage = counters_relation_name(def->storage);
	if (citus && changed > 0)
		counters_citus_refill(def);
	else if (!citus)
	{
		Oid			argtypes[1] = {JSONBARRAYOID};
		Datum		values[1];

		if (nstored > 0)
		{
			values[0] = stored_keys;
			if (SPI_execute_with_args(psprintf("DELETE FROM %s _counters_x WHERE %s IN "
											   "(SELECT pg_catalog.unnest($1))",
											   storage, key_array_sql(def, "_counters_x")),
									  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "counters: rebuild could not delete from %s", storage);
		}
		if (nexpected > 0)
		{
			values[0] = expected_keys;
			if (SPI_execute_with_args(psprintf("INSERT INTO %s (%s) SELECT %s FROM (%s) _counters_x "
											   "WHERE %s IN (SELECT pg_catalog.unnest($1))",
											   storage,
											   counters_storage_column_list(def, NULL),
											   counters_storage_column_list(def, "_counters_x."),
											   counters_expected_sql(def),
											   key_array_sql(def, "_counters_x")),
									  1, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "counters: rebuild could not insert into %s", storage);
		}
	}
	counters_unbecome(&role);
	if (citus)
		counters_unbecome(&citus_role);
	counters_stats_count(counter, CE_REBUILD, changed, &started);

	counters_restore_search_path(nestlevel);
	SPI_finish();
	return changed;
}
