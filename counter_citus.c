/*-------------------------------------------------------------------------
 *
 * counter_citus.c
 *	  Counters over Citus tables: finding, on any node of a Citus cluster,
 *	  the counters a shard's changes go to, and where they are stored.
 *
 * Citus is found at run time (its catalog pg_dist_partition exists): the
 * extension has no link-time dependency on it, and everything here is a
 * no-op without it.  Citus's C functions are no stable API, so its
 * catalogs are read through SPI.
 *
 * Maintenance runs per placement.  A counter over a Citus table has its
 * storage and deltas tables in the source's colocation group, as Citus
 * tables of the same kind (hash-distributed, reference, local, single
 * shard): every shard of the source has a storage shard and a deltas
 * shard with the same hash range, on the same node.  Citus puts the
 * source's triggers on every shard; a shard's trigger fires in the backend
 * that writes the shard (a worker's backend serving the coordinator, or a
 * client's own for local shards), and its counters are compiled with the
 * co-located storage and deltas shards in place of the Citus tables
 * (counters_citus_defs), so that the existing apply and record code write
 * them, in the writer's local transaction, which Citus commits with the
 * rest of the distributed transaction.  No write of a writer's transaction
 * leaves its node.
 *
 * When the keys include the distribution column, storage rows are
 * distributed by that key: a group's row is in the shard of its source
 * rows.  Otherwise (a site-wide total, per category over a table
 * distributed by tenant) each shard keeps partial rows: the storage has
 * one more key column, _counters_shard, of the distribution column's type,
 * by which it is distributed, holding the shard's representative: the
 * smallest of 0, 1, 2... (as the distribution column's type) that hashes
 * into the shard.  Reads sum the partial rows of a group.
 *
 * Definitions: only the node that declared a counter (the coordinator) has
 * it in counters.counter_def.  Citus creates the counter's relations on
 * every node (the counter view and the definition view as distributed
 * views, the storage and deltas tables as Citus tables, all four next to
 * each other, see counter_distribute.c).  Another node finds a source's
 * counters from them: the views named "<stem>.query" that read the source,
 * with the Citus tables "<stem>.data" and "<stem>.deltas" next to them, and
 * the view that reads "<stem>.data" (and "<stem>.deltas" in buffered
 * mode), all owned by the source's owner.  Whoever could make such
 * relations owns the source: maintenance runs as that role, which could
 * run anything on its table's writes with a trigger of its own anyway.
 * Backends cache what they found like any counter (counter_catalog.c);
 * every change to a source's counters touches its triggers, which Citus
 * propagates, so the cache of every node is invalidated.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupconvert.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "counter_catalog.h"

/* The shards of a hash-distributed table, with their representatives */
typedef struct CitusShardRange
{
	int64		shardid;
	int32		min;
	int32		max;
	bool		found;			/* rep is set */
	Datum		rep;
} CitusShardRange;

typedef struct CitusShardMap
{
	Oid			type;
	Oid			collation;
	int16		typlen;
	bool		typbyval;
	FmgrInfo	hash;
	int			n;
	CitusShardRange *ranges;	/* by min */
} CitusShardMap;

/* the most candidates tried for the representatives of a table's shards */
#define MAX_CANDIDATES (1 << 24)

/*
 * counters_citus_present: whether Citus is installed in this database.
 * Called for every query planned: without the Citus library in this
 * backend (it can only be loaded through shared_preload_libraries, before
 * the first query, and defines the GUC citus.version), answered from a
 * flag set once; with it, a syscache lookup.
 */
bool
counters_citus_present(void)
{
	static int	citus_loaded = -1;

	if (citus_loaded < 0)
		citus_loaded = GetConfigOption("citus.version", true, false) != NULL;
	return citus_loaded &&
		OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

/*
 * run_kept: execute a statement prepared once per backend, with the given
 * arguments (SPI must be connected); fails on anything but a SELECT.
 */
static void
run_kept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
		 Datum *values)
{
	if (*plan == NULL)
		*plan = counters_spi_prepare_kept(sql, nargs, argtypes);
	if (SPI_execute_plan(*plan, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading the Citus catalogs failed");
}

/*
 * counters_citus_coordinator: whether this node is the coordinator (its
 * group is 0), where counters are declared.  SPI must be connected.
 */
bool
counters_citus_coordinator(void)
{
	bool		isnull;

	counters_spi_exec("SELECT groupid FROM pg_catalog.pg_dist_local_group", SPI_OK_SELECT);
	return SPI_processed == 0 ||
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									1, &isnull)) == 0;
}

/*
 * counters_citus_table: what kind of Citus table relid is, with its
 * distribution column and colocation group when info is not NULL.  SPI
 * must be connected.
 */
CitusKind
counters_citus_table(Oid relid, CitusTable *info)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	CitusTable	local;
	char		method;
	char		repmodel;
	bool		isnull;
	Datum		d;

	if (info == NULL)
		info = &local;
	memset(info, 0, sizeof(CitusTable));
	if (!counters_citus_present())
		return CITUS_NONE;
	run_kept(&plan,
			 "SELECT partmethod, repmodel, colocationid, CASE WHEN partmethod OPERATOR(pg_catalog.=) 'h' "
			 "THEN pg_catalog.column_to_column_name(logicalrelid, partkey) END "
			 "FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1",
			 1, argtypes, values);
	if (SPI_processed == 0)
		return CITUS_NONE;
	method = DatumGetChar(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	repmodel = DatumGetChar(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	info->colocation = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (!isnull)
		info->distcol = get_attnum(relid, TextDatumGetCString(d));
	if (method == 'h')
		info->kind = CITUS_HASH;
	else if (method != 'n')
		info->kind = CITUS_OTHER;
	else if (repmodel == 't')
		info->kind = CITUS_REFERENCE;
	else if (info->colocation == 0)
		info->kind = CITUS_LOCAL;
	else
		info->kind = CITUS_SINGLE;
	return info->kind;
}

/*
 * counters_citus_internal_backend: whether this backend serves Citus
 * itself: a connection Citus made to run part of a distributed
 * transaction, a rebalance, or a shard move (these are how Citus
 * identifies its own connections).  Statements on the storage of a Citus
 * counter arriving there were planned, and checked, on the node where
 * they were issued.
 */
bool
counters_citus_internal_backend(void)
{
	return application_name != NULL &&
		(strncmp(application_name, "citus_internal gpid=", 20) == 0 ||
		 strncmp(application_name, "citus_rebalancer gpid=", 22) == 0 ||
		 strncmp(application_name, "citus_shard_", 12) == 0);
}

/*
 * counters_citus_set: set a configuration parameter (one of Citus's) for
 * the caller's next steps; returns the nest level that
 * counters_restore_search_path undoes it with.
 */
int
counters_citus_set(const char *name, const char *value)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option(name, value, superuser() ? PGC_SUSET : PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/*
 * candidate: the i-th candidate representative, as a value of type, or
 * false when representatives of that type are not supported: integers,
 * numeric and strings are i itself; a uuid is i in its last digits.
 */
static bool
candidate(Oid type, int i, Datum *value)
{
	char		buf[64];
	Oid			typinput;
	Oid			typioparam;

	switch (getBaseType(type))
	{
		case INT2OID:
			if (i > PG_INT16_MAX)
				return false;
			/* FALLTHROUGH */
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			snprintf(buf, sizeof(buf), "%d", i);
			break;
		case UUIDOID:
			snprintf(buf, sizeof(buf), "00000000-0000-0000-0000-%012x", i);
			break;
		default:
			return false;
	}
	if (value != NULL)
	{
		getTypeInputInfo(type, &typinput, &typioparam);
		*value = OidInputFunctionCall(typinput, buf, typioparam, -1);
	}
	return true;
}

/*
 * counters_citus_shard_key_supported: whether partial rows can be kept
 * for a table distributed by a column of this type.
 */
bool
counters_citus_shard_key_supported(Oid type)
{
	return candidate(type, 0, NULL);
}

/*
 * hash_value: the hash Citus places a distribution value by: the type's
 * hash function under the column's collation.
 */
static int32
hash_value(CitusShardMap *map, Datum value)
{
	return DatumGetInt32(FunctionCall1Coll(&map->hash, map->collation, value));
}

/*
 * find_range: the shard whose hash range holds h, or NULL.
 */
static CitusShardRange *
find_range(CitusShardMap *map, int32 h)
{
	int			lo = 0;
	int			hi = map->n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		CitusShardRange *r = &map->ranges[mid];

		if (h < r->min)
			hi = mid - 1;
		else if (h > r->max)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/*
 * counters_citus_shard_map: the shards of hash-distributed table source
 * with their representatives, for values of the distribution column's
 * type and collation, in cxt.  SPI must be connected.
 */
CitusShardMap *
counters_citus_shard_map(Oid source, Oid type, Oid collation, MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(source)};
	MemoryContext oldcxt;
	CitusShardMap *map;
	TypeCacheEntry *tce;
	int			missing;
	int			i;
	uint64		r;

	run_kept(&plan,
			 "SELECT shardid, shardminvalue::pg_catalog.int4, shardmaxvalue::pg_catalog.int4 "
			 "FROM pg_catalog.pg_dist_shard WHERE logicalrelid OPERATOR(pg_catalog.=) $1 "
			 "ORDER BY 2", 1, argtypes, values);

	oldcxt = MemoryContextSwitchTo(cxt);
	map = palloc0(sizeof(CitusShardMap));
	map->type = type;
	map->collation = collation;
	get_typlenbyval(type, &map->typlen, &map->typbyval);
	tce = lookup_type_cache(type, TYPECACHE_HASH_PROC_FINFO);
	if (!OidIsValid(tce->hash_proc_finfo.fn_oid))
		elog(ERROR, "counters: no hash function for type %s", format_type_be(type));
	fmgr_info_copy(&map->hash, &tce->hash_proc_finfo, cxt);
	map->n = (int) SPI_processed;
	map->ranges = palloc0(sizeof(CitusShardRange) * Max(map->n, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		map->ranges[r].shardid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		map->ranges[r].min = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
		map->ranges[r].max = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull));
		map->ranges[r].found = false;
	}

	/* each shard's smallest candidate */
	missing = map->n;
	for (i = 0; missing > 0 && i < MAX_CANDIDATES; i++)
	{
		Datum		value;
		CitusShardRange *range;

		if (!candidate(type, i, &value))
			break;
		range = find_range(map, hash_value(map, value));
		if (range != NULL && !range->found)
		{
			range->rep = datumCopy(value, map->typbyval, map->typlen);
			range->found = true;
			missing--;
		}
	}
	MemoryContextSwitchTo(oldcxt);
	if (missing > 0)
		elog(ERROR, "counters: found no representative value for %d shards of %s",
			 missing, get_rel_name(source));
	return map;
}

/*
 * counters_citus_shard_key: the representative of the shard that a
 * distribution column value belongs to: the _counters_shard of the
 * partial rows that count its row.
 */
Datum
counters_citus_shard_key(CitusShardMap *map, Datum value)
{
	CitusShardRange *range = find_range(map, hash_value(map, value));

	if (range == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no shard holds hash value %d", hash_value(map, value))));
	return range->rep;
}

/*
 * shard_representative: the representative of one shard of a map.
 */
static Datum
shard_representative(CitusShardMap *map, int64 shardid)
{
	int			i;

	for (i = 0; i < map->n; i++)
		if (map->ranges[i].shardid == shardid)
			return map->ranges[i].rep;
	elog(ERROR, "counters: shard " INT64_FORMAT " is unknown", shardid);
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * counters_citus_describe: the Citus part of a definition read from the
 * catalogs: whether its storage keeps partial rows, and their type.
 */
void
counters_citus_describe(CounterDef *def)
{
	HeapTuple	tup;

	def->partial = false;
	if (!OidIsValid(def->storage))
		return;
	tup = SearchSysCacheAttName(def->storage, COUNTERS_SHARD_COLUMN);
	if (!HeapTupleIsValid(tup))
		return;
	def->partial = true;
	def->shard_type = ((Form_pg_attribute) GETSTRUCT(tup))->atttypid;
	def->shard_typmod = ((Form_pg_attribute) GETSTRUCT(tup))->atttypmod;
	def->shard_collation = ((Form_pg_attribute) GETSTRUCT(tup))->attcollation;
	ReleaseSysCache(tup);
}

/*
 * shard_of: whether relid is a shard of a Citus table: the table and the
 * shard's id.  Shards are named after their table with "_<shardid>"
 * appended, in the table's schema.  SPI must be connected.
 */
static bool
shard_of(Oid relid, Oid *shell, int64 *shardid)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char	   *relname = get_rel_name(relid);
	char	   *nspname;
	char	   *end;
	char	   *digits;
	bool		isnull;

	if (relname == NULL || (digits = strrchr(relname, '_')) == NULL || digits[1] == '\0')
		return false;
	errno = 0;
	*shardid = strtoi64(digits + 1, &end, 10);
	if (*end != '\0' || errno != 0 || *shardid <= 0)
		return false;
	nspname = get_namespace_name(get_rel_namespace(relid));
	values[0] = Int64GetDatum(*shardid);
	values[1] = CStringGetTextDatum(quote_identifier(relname));
	values[2] = CStringGetTextDatum(quote_qualified_identifier(nspname, relname));
	run_kept(&plan,
			 "SELECT logicalrelid::pg_catalog.oid FROM pg_catalog.pg_dist_shard "
			 "WHERE shardid OPERATOR(pg_catalog.=) $1 AND pg_catalog.shard_name(logicalrelid, shardid) "
			 "OPERATOR(pg_catalog.=) ANY (ARRAY[$2, $3])", 3, argtypes, values);
	if (SPI_processed == 0)
		return false;
	*shell = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return get_rel_namespace(*shell) == get_rel_namespace(relid);
}

/*
 * colocated_shard: the shard of Citus table target that is co-located
 * with shard shardid (the same hash range, or the only shard), as a
 * relation on this node.  SPI must be connected.
 */
static Oid
colocated_shard(int64 shardid, Oid target)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		values[2] = {Int64GetDatum(shardid), ObjectIdGetDatum(target)};
	bool		isnull;
	Datum		name;
	List	   *names;
	Oid			relid;

	run_kept(&plan,
			 "SELECT pg_catalog.shard_name($2, s2.shardid) FROM pg_catalog.pg_dist_shard s1 "
			 "JOIN pg_catalog.pg_dist_shard s2 ON s2.logicalrelid OPERATOR(pg_catalog.=) $2 "
			 "AND s2.shardminvalue IS NOT DISTINCT FROM s1.shardminvalue "
			 "WHERE s1.shardid OPERATOR(pg_catalog.=) $1", 2, argtypes, values);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("counter table %s has no shard co-located with shard " INT64_FORMAT,
						counters_relation_name(target), shardid),
				 errhint("A counter's hidden tables must stay in the colocation group of its source; drop the counter and declare it again.")));
	name = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	names = stringToQualifiedNameList(TextDatumGetCString(name));
	if (list_length(names) == 1)	/* shard_name() leaves out "public." */
		relid = get_relname_relid(strVal(linitial(names)), get_rel_namespace(target));
	else
		relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("shard %s of counter table %s is not on this node, next to shard " INT64_FORMAT " of its source",
						TextDatumGetCString(name), counters_relation_name(target), shardid),
				 errhint("A counter's hidden tables must stay in the colocation group of its source; drop the counter and declare it again.")));
	return relid;
}

/*
 * The counters this node can find for a source (see the header comment),
 * in the columns of counters.counter_def (counter, storage, source,
 * definition, query, mode, deltas); every source's when $1 is 0.  The
 * query as given is known to the coordinator only; this node has its
 * definition view's name instead (pg_get_viewdef would lock the source).
 */
#define DERIVE_SQL \
	"SELECT v.counter, st.oid, src.oid, q.oid, q.relname::pg_catalog.text, " \
	"CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r " \
	"ON r.oid OPERATOR(pg_catalog.=) d.objid WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass " \
	"AND r.ev_class OPERATOR(pg_catalog.=) v.counter AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass " \
	"AND d.refobjid OPERATOR(pg_catalog.=) dl.oid) THEN 'buffered' ELSE 'immediate' END, dl.oid " \
	"FROM pg_catalog.pg_class q " \
	"JOIN pg_catalog.pg_class st ON st.relnamespace OPERATOR(pg_catalog.=) q.relnamespace " \
	"AND st.relname OPERATOR(pg_catalog.=) (pg_catalog.left(q.relname, -6) OPERATOR(pg_catalog.||) '.data') " \
	"JOIN pg_catalog.pg_class dl ON dl.relnamespace OPERATOR(pg_catalog.=) q.relnamespace " \
	"AND dl.relname OPERATOR(pg_catalog.=) (pg_catalog.left(q.relname, -6) OPERATOR(pg_catalog.||) '.deltas') " \
	"CROSS JOIN LATERAL (SELECT DISTINCT c.oid, c.relowner FROM pg_catalog.pg_depend d " \
	"JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid " \
	"JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.refobjid " \
	"WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass " \
	"AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass " \
	"AND r.ev_class OPERATOR(pg_catalog.=) q.oid AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')) src " \
	"CROSS JOIN LATERAL (SELECT r.ev_class AS counter FROM pg_catalog.pg_depend d " \
	"JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid " \
	"JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.ev_class " \
	"WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass " \
	"AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass " \
	"AND d.refobjid OPERATOR(pg_catalog.=) st.oid AND c.relkind OPERATOR(pg_catalog.=) 'v' " \
	"AND c.oid OPERATOR(pg_catalog.<>) q.oid AND c.relowner OPERATOR(pg_catalog.=) src.relowner " \
	"ORDER BY r.ev_class LIMIT 1) v " \
	"WHERE q.relkind OPERATOR(pg_catalog.=) 'v' AND q.relname OPERATOR(pg_catalog.~~) '%.query' " \
	"AND st.relkind OPERATOR(pg_catalog.=) 'r' AND dl.relkind OPERATOR(pg_catalog.=) 'r' " \
	"AND q.relowner OPERATOR(pg_catalog.=) src.relowner AND st.relowner OPERATOR(pg_catalog.=) src.relowner " \
	"AND dl.relowner OPERATOR(pg_catalog.=) src.relowner " \
	"AND EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) st.oid) " \
	"AND ($1 OPERATOR(pg_catalog.=) 0 OR src.oid OPERATOR(pg_catalog.=) $1) " \
	"ORDER BY v.counter"

/*
 * derive_defs: the counters of source (of every source when InvalidOid)
 * that this node finds from their relations.  Each definition view is
 * locked before it is read (a counter dropped meanwhile is left out), or,
 * with nowait, left out when it cannot be locked at once.  SPI must be
 * connected.
 */
static List *
derive_defs(Oid source, bool nowait)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(source)};
	SPITupleTable *tuptable;
	uint64		n;
	List	   *defs = NIL;
	uint64		i;

	run_kept(&plan, DERIVE_SQL, 1, argtypes, values);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			definition = DatumGetObjectId(SPI_getbinval(tuptable->vals[i],
																tuptable->tupdesc, 4, &isnull));

		if (nowait ? !ConditionalLockRelationOid(definition, AccessShareLock) :
			(LockRelationOid(definition, AccessShareLock), false))
			continue;
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(definition)))
			continue;
		defs = lappend(defs, counters_def_from_tuple(tuptable->vals[i], tuptable->tupdesc));
	}
	return defs;
}

/*
 * shell_defs: the counters of Citus table shell: from counters.counter_def
 * on the node that declared them, else found from their relations.
 */
static List *
shell_defs(Oid shell)
{
	List	   *defs = counters_defs_for_source(shell);

	return defs != NIL ? defs : derive_defs(shell, false);
}

/*
 * for_shard: a counter's definition turned into the one a shard of its
 * source maintains: its co-located storage and deltas shards, and the
 * shard's representative for partial rows.  shardid is a shard of table
 * (the source or the deltas table), whose map is made on first need.
 */
static void
for_shard(CounterDef *def, int64 shardid, Oid table, CitusShardMap **map)
{
	Oid			shell_storage = def->storage;

	def->storage = colocated_shard(shardid, shell_storage);
	def->deltas = colocated_shard(shardid, def->deltas);
	if (!def->partial)
		return;
	if (*map == NULL)
		*map = counters_citus_shard_map(table, def->shard_type,
										def->shard_collation, CurrentMemoryContext);
	def->shard_value = shard_representative(*map, shardid);
}

/*
 * counters_citus_defs: the counters whose maintenance a trigger firing on
 * relid must do, when relid is a shard of a Citus table (or a Citus table
 * whose counters were declared on another node), and what sc needs to
 * know about it; NIL otherwise.  SPI must be connected.
 */
List *
counters_citus_defs(Oid relid, SourceCounters *sc)
{
	Oid			shell;
	int64		shardid;
	List	   *defs;
	ListCell   *lc;
	CitusShardMap *map = NULL;

	if (!counters_citus_present())
		return NIL;
	if (!shard_of(relid, &shell, &shardid))
	{
		if (counters_citus_table(relid, NULL) == CITUS_NONE)
			return NIL;
		sc->shell = relid;
		return derive_defs(relid, false);
	}

	defs = shell_defs(shell);
	foreach(lc, defs)
		for_shard((CounterDef *) lfirst(lc), shardid, shell, &map);
	sc->citus_shard = true;
	sc->shell = shell;
	if (defs != NIL)
	{
		/* a shard made after a DROP COLUMN has no dropped column: convert */
		Relation	shard = table_open(relid, AccessShareLock);
		Relation	table = table_open(shell, AccessShareLock);

		if (convert_tuples_by_name(RelationGetDescr(shard), RelationGetDescr(table)) != NULL)
			sc->root = shell;
		table_close(table, AccessShareLock);
		table_close(shard, AccessShareLock);
	}
	return defs;
}

/*
 * counters_citus_node_counters: every counter over a Citus table that this
 * node can fold, as one definition per local placement: its storage and
 * deltas shards on this node (see for_shard).  SPI must be connected.
 */
List *
counters_citus_node_counters(void)
{
	static SPIPlanPtr plan = NULL;
	List	   *result = NIL;
	List	   *defs;
	ListCell   *lc;

	if (!counters_citus_present())
		return NIL;
	defs = derive_defs(InvalidOid, true);
	foreach(lc, defs)
	{
		CounterDef *def = (CounterDef *) lfirst(lc);
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(def->deltas)};
		List	   *shards = NIL;
		ListCell   *sl;
		CitusShardMap *map = NULL;
		uint64		i;

		/* the deltas shards placed on this node */
		run_kept(&plan,
				 "SELECT s.shardid FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_placement p "
				 "ON p.shardid OPERATOR(pg_catalog.=) s.shardid "
				 "WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.groupid OPERATOR(pg_catalog.=) "
				 "(SELECT groupid FROM pg_catalog.pg_dist_local_group) ORDER BY 1",
				 1, argtypes, values);
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int64	   *id = palloc(sizeof(int64));

			*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			shards = lappend(shards, id);
		}
		foreach(sl, shards)
		{
			CounterDef *copy = palloc(sizeof(CounterDef));

			memcpy(copy, def, sizeof(CounterDef));
			copy->layout = NIL;
			for_shard(copy, *(int64 *) lfirst(sl), def->deltas, &map);
			result = lappend(result, copy);
		}
	}
	return result;
}
