/*-------------------------------------------------------------------------
 *
 * counter_catalog.c
 *	  Reading counter definitions and caching them, compiled, per backend.
 *
 * Definitions live in counters.counter_def.  The maintenance trigger needs
 * them on every statement, so each backend keeps, per source table, the
 * list of its counters with their expressions compiled into ExprStates and
 * their key columns' hash, equality and sort support looked up.  The cache
 * is dropped for a source whenever a relcache invalidation arrives for the
 * source, a counter relation or a storage table; create_counter and
 * drop_counter send one for the source, so every backend sees new and
 * removed counters at its next statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_subscription.h"
#include "catalog/partition.h"
#include "commands/extension.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteSupport.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "counter_catalog.h"

/* hash entry: source oid -> its counters */
typedef struct SourceCacheEntry
{
	Oid			source;
	SourceCounters *sc;
} SourceCacheEntry;

static HTAB *source_cache = NULL;

/* the source counters_get_source returned last: looked up again first */
static SourceCounters *last_source = NULL;

static SPIPlanPtr def_by_counter_plan = NULL;
static void run_def_query(SPIPlanPtr *plan, const char *where, Oid arg);
static SPIPlanPtr defs_by_source_plan = NULL;

#define DEF_COLUMNS "counter, storage, source, definition, query, mode, deltas"

/*
 * counters_def_from_tuple: build a CounterDef from one counters.counter_def
 * row returned by SPI (or a row of the same columns), in the current
 * memory context.
 */
CounterDef *
counters_def_from_tuple(HeapTuple tup, TupleDesc desc)
{
	CounterDef *def = palloc0(sizeof(CounterDef));
	bool		isnull;

	def->counter = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	def->storage = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	def->definition = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	def->query = TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull));
	def->mode = TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull));
	def->buffered = strcmp(def->mode, "buffered") == 0;
	def->deltas = DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull));
	def->reads_deltas = def->buffered ||
		counters_view_reads_deltas(def->counter, def->deltas);
	counters_def_from_view(def->definition, def);
	counters_compute_column_types(def);
	counters_citus_describe(def);
	return def;
}

/*
 * counters_view_reads_deltas: whether a counter view reads its deltas
 * table, i.e. whether its rule depends on it.  The view's definition is
 * what makes recorded deltas count, so it is what decides whether an
 * immediate-mode counter may record them (and it survives a dump).
 */
bool
counters_view_reads_deltas(Oid counter, Oid deltas)
{
	Oid			rule;
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(counter) || !OidIsValid(deltas))
		return false;
	rule = get_rewrite_oid(counter, ViewSelectRuleName, true);
	if (!OidIsValid(rule))
		return false;

	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(RewriteRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(rule));
	scan = systable_beginscan(rel, DependDependerIndexId, true, NULL, 2, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		found = dep->refclassid == RelationRelationId && dep->refobjid == deltas;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * counters_two_phase_subscriber: whether this database has a subscription
 * that replicates prepared transactions (two_phase = on).  Its apply
 * worker prepares what the publisher prepared, and applies the
 * transactions committed meanwhile before COMMIT PREPARED arrives: a
 * counter row changed by the prepared one would stay locked against them,
 * and the worker would wait for itself.  Immediate-mode counters here read
 * their deltas too, and the worker records into those (counter_apply.c).
 */
bool
counters_two_phase_subscriber(void)
{
	Relation	rel;
	ScanKeyData key[1];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	rel = table_open(SubscriptionRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_subscription_subdbid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(MyDatabaseId));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
		found = ((Form_pg_subscription) GETSTRUCT(tup))->subtwophasestate !=
			LOGICALREP_TWOPHASE_STATE_DISABLED;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * counters_is_counter_relation: whether a relation is a counter, its
 * storage or its definition view (SPI must be connected).
 */
bool
counters_is_counter_relation(Oid relid)
{
	static SPIPlanPtr plan = NULL;

	run_def_query(&plan,
				  "$1 OPERATOR(pg_catalog.=) ANY (ARRAY[counter::pg_catalog.oid, "
				  "storage::pg_catalog.oid, definition::pg_catalog.oid, "
				  "deltas::pg_catalog.oid])", relid);
	return SPI_processed > 0;
}

/*
 * counters_counter_of: the counter whose relation (the counter itself, or
 * one of its hidden relations) relid is, or InvalidOid (SPI must be
 * connected).
 */
Oid
counters_counter_of(Oid relid)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;

	run_def_query(&plan,
				  "$1 OPERATOR(pg_catalog.=) ANY (ARRAY[counter::pg_catalog.oid, "
				  "storage::pg_catalog.oid, definition::pg_catalog.oid, "
				  "deltas::pg_catalog.oid])", relid);
	if (SPI_processed == 0)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * check_catalog_version: the library reads counters.counter_def as every
 * released version of the extension's SQL has it.  A database whose
 * extension objects are older (a build from before buffered mode, say)
 * gets an error that says what to do, not a missing column from deep
 * inside.
 */
static void
check_catalog_version(void)
{
	static const char *const columns[] = {"counter", "storage", "source", "definition",
	"query", "mode", "deltas"};
	Oid			nsp = get_namespace_oid("counters", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("counter_def", nsp) : InvalidOid;
	int			i;

	for (i = 0; i < lengthof(columns); i++)
	{
		if (OidIsValid(relid) && get_attnum(relid, columns[i]) != InvalidAttrNumber)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the counters extension in this database is older than its library"),
				 OidIsValid(relid) ?
				 errdetail("counters.counter_def has no column \"%s\".", columns[i]) :
				 errdetail("counters.counter_def does not exist."),
				 errhint("Run ALTER EXTENSION counters UPDATE.")));
	}
}

/*
 * run_def_query: execute one of the kept definition queries with one oid
 * argument, preparing it on first use.
 */
static void
run_def_query(SPIPlanPtr *plan, const char *where, Oid arg)
{
	Datum		values[1];

	if (*plan == NULL)
	{
		char	   *sql;
		Oid			argtypes[1] = {OIDOID};
		SPIPlanPtr	p;

		check_catalog_version();
		sql = psprintf("SELECT " DEF_COLUMNS " FROM counters.counter_def WHERE %s",
					   where);
		p = SPI_prepare(sql, 1, argtypes);
		if (p == NULL)
			elog(ERROR, "counters: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	values[0] = ObjectIdGetDatum(arg);

	/*
	 * Definitions are catalog data: read the latest committed state (and
	 * our own), not a REPEATABLE READ transaction's snapshot, which would
	 * miss a counter created after it was taken.
	 */
	CommandCounterIncrement();
	if (SPI_execute_snapshot(*plan, values, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, false, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading counters.counter_def failed");
}

/*
 * counters_extension_owner: the role that owns the extension (a superuser:
 * the extension needs one to be installed).  The extension's own tables
 * are written as that role.
 */
Oid
counters_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("counters"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"counters\" is not installed in this database")));
	return owner;
}

/*
 * counters_in_own_script: true while CREATE EXTENSION or ALTER EXTENSION
 * UPDATE runs one of this extension's scripts.  The event triggers of the
 * version being upgraded from still fire for the script's own DDL, when
 * counters.counter_def may not have the columns the library reads yet:
 * they have nothing to do for it.
 */
bool
counters_in_own_script(void)
{
	return creating_extension &&
		CurrentExtensionObject == get_extension_oid("counters", true);
}

/*
 * counters_become_extension_owner: write counters.counter_def from now on:
 * as the extension's owner (users cannot write that table), marked as
 * counter maintenance (rows that logical replication brings into it are
 * dropped, ours are not), and with the table kept out of logical
 * decoding (see counters_mark_unpublished).
 */
void
counters_become_extension_owner(CountersRole *role)
{
	counters_mark_unpublished(get_relname_relid("counter_def", get_namespace_oid("counters", false)));
	counters_become(role, counters_extension_owner(), COUNTERS_MAINTENANCE);
}

/*
 * counters_mark_unpublished: keep the changes of one of the extension's
 * tables (a counter's storage or deltas table, counters.counter_def) out
 * of logical decoding, so that no publication, FOR ALL TABLES included,
 * sends them: each side of a logical replication keeps its own counters
 * from the source rows it has (a subscriber that lacks the table would
 * stop replicating; one that has it would get rows that are not its own).
 * PostgreSQL's decoding skips the changes of a relation whose
 * pg_class.relrewrite is set (meant for the transient tables of a table
 * rewrite, see ReorderBufferProcessTXN); nothing else reads that field of
 * a table in PostgreSQL 15.  pg_dump, pg_restore and pg_upgrade do not
 * keep it: the extension sets it again when it creates, registers or
 * writes the table.  TRUNCATE is decoded all the same, so the extension
 * never truncates these tables.  Nothing happens during recovery or in a
 * read-only transaction.
 */
void
counters_mark_unpublished(Oid relid)
{
	Relation	pg_class_rel;
	HeapTuple	tup;
	Form_pg_class form;

	if (!OidIsValid(relid) || RecoveryInProgress() || XactReadOnly)
		return;
	tup = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return;
	form = (Form_pg_class) GETSTRUCT(tup);
	if (form->relrewrite == relid || form->relkind != RELKIND_RELATION)
	{
		heap_freetuple(tup);
		return;
	}
	form->relrewrite = relid;
	pg_class_rel = table_open(RelationRelationId, RowExclusiveLock);
	CatalogTupleUpdate(pg_class_rel, &tup->t_self, tup);
	table_close(pg_class_rel, RowExclusiveLock);
	heap_freetuple(tup);
	CommandCounterIncrement();
}

/*
 * counters_register_restored: register the counters that a restore of a dump
 * without the extension's data (pg_dump -s, as for a logical replication
 * subscriber) brought back without their definition row.  Such a counter
 * is recognised by its hidden relations in the schema counters, which no
 * role but a superuser (restoring) or the extension itself can create
 * there: a definition view "<stem>.query", a storage table "<stem>.data"
 * and a deltas table "<stem>.deltas", and a counter view reading the
 * storage; all four, and the source table the definition view reads,
 * must belong to one role, the one that could have declared it.  The row
 * is written as create_counter writes it (its dependencies are recorded by
 * counters.on_def_insert()).  Returns how many counters were registered;
 * nothing happens during recovery or in a read-only transaction.  SPI must
 * be connected.
 */
uint64
counters_register_restored(void)
{
	CountersRole role;
	int			rc;

	if (RecoveryInProgress() || XactReadOnly)
		return 0;
	counters_become_extension_owner(&role);
	/*
	 * Counters over Citus tables are registered only on the node that
	 * declared them; the other nodes of the cluster, which have their
	 * relations too, find them without (see counter_citus.c).
	 */
	rc = SPI_execute(psprintf("%s%s",
							  "INSERT INTO counters.counter_def (counter, storage, source, definition, query, mode, deltas) "
					 "SELECT cv.oid, st.oid, src.oid, dv.oid, pg_catalog.pg_get_viewdef(dv.oid), "
					 " CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_depend d "
					 "  JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid "
					 "  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
					 "  AND r.ev_class OPERATOR(pg_catalog.=) cv.oid "
					 "  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					 "  AND d.refobjid OPERATOR(pg_catalog.=) dl.oid) "
					 "  AND pg_catalog.strpos(pg_catalog.pg_get_viewdef(cv.oid), '" COUNTERS_IMMEDIATE_ALIAS ".') OPERATOR(pg_catalog.=) 0 "
					 " THEN 'buffered' ELSE 'immediate' END, dl.oid "
					 "FROM pg_catalog.pg_class dv "
					 "JOIN pg_catalog.pg_class st ON st.relnamespace OPERATOR(pg_catalog.=) dv.relnamespace "
					 " AND st.relkind OPERATOR(pg_catalog.=) 'r' "
					 " AND st.relname OPERATOR(pg_catalog.=) (pg_catalog.left(dv.relname::pg_catalog.text, -5) OPERATOR(pg_catalog.||) 'data') "
					 "JOIN pg_catalog.pg_class dl ON dl.relnamespace OPERATOR(pg_catalog.=) dv.relnamespace "
					 " AND dl.relkind OPERATOR(pg_catalog.=) 'r' "
					 " AND dl.relname OPERATOR(pg_catalog.=) (pg_catalog.left(dv.relname::pg_catalog.text, -5) OPERATOR(pg_catalog.||) 'deltas') "
					 "CROSS JOIN LATERAL (SELECT c.oid, c.relowner FROM pg_catalog.pg_depend d "
					 " JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid "
					 " JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.ev_class "
					 " WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
					 " AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					 " AND d.refobjid OPERATOR(pg_catalog.=) st.oid AND c.relkind OPERATOR(pg_catalog.=) 'v' "
					 " AND c.relnamespace OPERATOR(pg_catalog.<>) dv.relnamespace ORDER BY 1 LIMIT 1) cv "
					 "CROSS JOIN LATERAL (SELECT c.oid, c.relowner FROM pg_catalog.pg_depend d "
					 " JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid "
					 " JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.refobjid "
					 " WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
					 " AND r.ev_class OPERATOR(pg_catalog.=) dv.oid "
					 " AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					 " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}') "
					 " AND c.relnamespace OPERATOR(pg_catalog.<>) dv.relnamespace LIMIT 1) src "
					 "WHERE dv.relnamespace OPERATOR(pg_catalog.=) 'counters'::pg_catalog.regnamespace "
					 " AND dv.relkind OPERATOR(pg_catalog.=) 'v' "
					 " AND dv.relname OPERATOR(pg_catalog.~~) '%.query' "
					 " AND st.relowner OPERATOR(pg_catalog.=) dv.relowner "
					 " AND dl.relowner OPERATOR(pg_catalog.=) dv.relowner "
					 " AND cv.relowner OPERATOR(pg_catalog.=) dv.relowner "
					 " AND src.relowner OPERATOR(pg_catalog.=) dv.relowner "
					 " AND NOT EXISTS (SELECT FROM counters.counter_def x "
					 "  WHERE x.definition::pg_catalog.oid OPERATOR(pg_catalog.=) dv.oid "
					 "  OR x.storage::pg_catalog.oid OPERATOR(pg_catalog.=) st.oid "
					 "  OR x.deltas::pg_catalog.oid OPERATOR(pg_catalog.=) dl.oid "
					 "  OR x.counter::pg_catalog.oid OPERATOR(pg_catalog.=) cv.oid)",
							  counters_citus_present() ?
							  " AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p "
							  "  WHERE p.logicalrelid OPERATOR(pg_catalog.=) st.oid)" : ""),
					 false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "counters: registering restored counters failed: %s",
			 SPI_result_code_string(rc));
	counters_unbecome(&role);
	return SPI_processed;
}

/*
 * counters_read_def: the definition of one counter (SPI must be connected).
 * Returns NULL for a relation that is not a counter when missing_ok;
 * otherwise (the API functions, which are given a counter) a counter
 * restored without its definition row is registered first.
 */
CounterDef *
counters_read_def(Oid counter, bool missing_ok)
{
	run_def_query(&def_by_counter_plan,
				  "counter::pg_catalog.oid OPERATOR(pg_catalog.=) $1", counter);
	if (SPI_processed == 0 && !missing_ok &&
		get_rel_relkind(counter) == RELKIND_VIEW && counters_register_restored() > 0)
		run_def_query(&def_by_counter_plan,
					  "counter::pg_catalog.oid OPERATOR(pg_catalog.=) $1", counter);
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a counter", get_rel_name(counter)),
				 errhint("The relations counters knows are listed in the view counters.counters.")));
	}
	return counters_def_from_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
}

/*
 * counters_defs_for_source: every counter defined on a source (SPI must be
 * connected), in the order of their relation oids.
 */
List *
counters_defs_for_source(Oid source)
{
	List	   *result = NIL;
	uint64		i;

	run_def_query(&defs_by_source_plan,
				  "source::pg_catalog.oid OPERATOR(pg_catalog.=) $1 "
				  "ORDER BY counter::pg_catalog.oid", source);
	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, counters_def_from_tuple(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc));
	return result;
}

/*
 * compile_counter: build the CounterState of one definition, in a new
 * memory context under parent.
 */
static CounterState *
compile_counter(CounterDef *src, MemoryContext parent)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	CounterState *cs;
	CounterDef *def;
	Oid		   *eqops;
	int			i,
				k;

	cxt = AllocSetContextCreate(parent, "counters counter",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	cs = palloc0(sizeof(CounterState));
	cs->cxt = cxt;

	/* copy the definition into our context */
	def = palloc0(sizeof(CounterDef));
	memcpy(def, src, sizeof(CounterDef));
	def->query = pstrdup(src->query);
	def->mode = pstrdup(src->mode);
	def->colnames = palloc(sizeof(char *) * src->ncolumns);
	for (i = 0; i < src->ncolumns; i++)
		def->colnames[i] = pstrdup(src->colnames[i]);
	def->kinds = palloc(sizeof(CounterColumnKind) * src->ncolumns);
	memcpy(def->kinds, src->kinds, sizeof(CounterColumnKind) * src->ncolumns);
	def->exprs = copyObject(src->exprs);
	def->filter = copyObject(src->filter);
	def->layout = NIL;			/* made on first use, in this context */
	if (def->partial)
	{
		int16		typlen;
		bool		typbyval;

		/* the representative of the shard it is compiled for, if any */
		get_typlenbyval(def->shard_type, &typlen, &typbyval);
		if (typbyval || src->shard_value != (Datum) 0)
			def->shard_value = datumCopy(src->shard_value, typbyval, typlen);
	}
	counters_compute_column_types(def);
	cs->def = def;

	cs->owner = counters_relation_owner(def->counter);
	cs->storage_name = counters_relation_name(def->storage);
	cs->deltas_name = counters_relation_name(def->deltas);

	/* key columns: hashing, equality and sort order */
	cs->nkeys = def->nkeys;
	cs->key_columns = palloc(sizeof(int) * Max(def->nkeys, 1));
	cs->key_attnums = palloc(sizeof(AttrNumber) * Max(def->nkeys, 1));
	cs->key_collations = palloc(sizeof(Oid) * Max(def->nkeys, 1));
	cs->key_sort = palloc0(sizeof(SortSupportData) * Max(def->nkeys, 1));
	eqops = palloc(sizeof(Oid) * Max(def->nkeys, 1));
	cs->key_desc = CreateTemplateTupleDesc(def->nkeys);
	k = 0;
	for (i = 0; i < def->ncolumns; i++)
	{
		TypeCacheEntry *tce;

		if (def->kinds[i] != CCK_KEY)
			continue;
		tce = lookup_type_cache(def->coltypes[i],
								TYPECACHE_EQ_OPR | TYPECACHE_LT_OPR);
		if (!OidIsValid(tce->eq_opr) || !OidIsValid(tce->lt_opr))
			elog(ERROR, "counters: no btree operators for type %s",
				 format_type_be(def->coltypes[i]));
		if (!OidIsValid(get_array_type(def->coltypes[i])))
			cs->rowwise = true;
		cs->key_columns[k] = i;
		cs->key_attnums[k] = k + 1;
		cs->key_collations[k] = def->colcollations[i];
		eqops[k] = tce->eq_opr;
		TupleDescInitEntry(cs->key_desc, k + 1, def->colnames[i],
						   def->coltypes[i], def->coltypmods[i], 0);
		TupleDescInitEntryCollation(cs->key_desc, k + 1, def->colcollations[i]);

		cs->key_sort[k].ssup_cxt = cxt;
		cs->key_sort[k].ssup_collation = def->colcollations[i];
		cs->key_sort[k].ssup_nulls_first = false;
		cs->key_sort[k].ssup_attno = k + 1;
		PrepareSortSupportFromOrderingOp(tce->lt_opr, &cs->key_sort[k]);
		k++;
	}
	if (def->nkeys > 0)
		execTuplesHashPrepare(def->nkeys, eqops, &cs->key_eqfuncs,
							  &cs->key_hashfuncs);

	/* one key of a type whose equality is bitwise: a cheaper delta table */
	if (def->nkeys == 1)
	{
		switch (getBaseType(def->coltypes[cs->key_columns[0]]))
		{
			case INT2OID:
			case INT4OID:
			case INT8OID:
			case OIDOID:
			case DATEOID:
			case BOOLOID:
			case CHAROID:
			case TIMESTAMPOID:
			case TIMESTAMPTZOID:
				cs->fastkey = true;
				break;
			default:
				break;
		}
	}

	/* expressions, planned and compiled once */
	cs->col_states = palloc0(sizeof(ExprState *) * def->ncolumns);
	cs->col_attnos = palloc0(sizeof(AttrNumber) * def->ncolumns);
	for (i = 0; i < def->ncolumns; i++)
	{
		Expr	   *expr = (Expr *) list_nth(def->exprs, i);

		if (expr == NULL)
			continue;
		expr = expression_planner(copyObject(expr));
		cs->col_states[i] = ExecInitExpr(expr, NULL);
		/* a plain column is read from the row without the interpreter */
		if (IsA(expr, Var) && ((Var *) expr)->varattno > 0 &&
			((Var *) expr)->varlevelsup == 0)
			cs->col_attnos[i] = ((Var *) expr)->varattno;
	}
	if (def->filter != NULL)
		cs->filter_state = ExecInitExpr(expression_planner(copyObject(def->filter)),
										NULL);

	MemoryContextSwitchTo(oldcxt);
	return cs;
}

/*
 * free_source: release a SourceCounters and everything it holds.
 */
static void
free_source(SourceCounters *sc)
{
	ListCell   *lc;

	if (last_source == sc)
		last_source = NULL;

	foreach(lc, sc->counters)
	{
		CounterState *cs = (CounterState *) lfirst(lc);

		if (cs->upsert_plan)
			SPI_freeplan(cs->upsert_plan);
		if (cs->upsert1_plan)
			SPI_freeplan(cs->upsert1_plan);
		if (cs->delete_plan)
			SPI_freeplan(cs->delete_plan);
	}
	MemoryContextDelete(sc->cxt);
}

/*
 * load_source: read and compile the counters of one source.
 */
static SourceCounters *
load_source(Oid source)
{
	MemoryContext cxt;
	SourceCounters *sc;
	List	   *defs;
	ListCell   *lc;

	cxt = AllocSetContextCreate(CacheMemoryContext, "counters source",
								ALLOCSET_SMALL_SIZES);
	sc = MemoryContextAllocZero(cxt, sizeof(SourceCounters));
	sc->source = source;
	sc->cxt = cxt;
	sc->valid = true;
	elog(DEBUG1, "counters: loading the counters of relation %u", source);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		defs = counters_defs_for_source(source);
		if (defs == NIL &&
			OidIsValid(get_trigger_oid(source, COUNTERS_TRIGGER_INSERT, true)) &&
			counters_register_restored() > 0)
			defs = counters_defs_for_source(source);
		if (defs == NIL)
			defs = counters_citus_defs(source, sc);
		foreach(lc, defs)
		{
			CounterState *cs = compile_counter((CounterDef *) lfirst(lc), cxt);
			MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

			sc->counters = lappend(sc->counters, cs);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
	return sc;
}

/*
 * counters_get_source: the compiled counters of a source, from the cache
 * or freshly loaded.  The caller must call counters_release_source.
 */
SourceCounters *
counters_get_source(Oid source)
{
	SourceCacheEntry *entry;
	bool		found;

	/* the source of the last call, still valid: no lookup */
	if (last_source != NULL && last_source->source == source &&
		last_source->valid)
	{
		last_source->refcount++;
		return last_source;
	}

	if (source_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(SourceCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		source_cache = hash_create("counters sources", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	entry = hash_search(source_cache, &source, HASH_ENTER, &found);
	if (!found)
		entry->sc = NULL;
	if (entry->sc != NULL && !entry->sc->valid)
	{
		/* an invalidated entry still in use up the stack is freed later */
		if (entry->sc->refcount == 0)
			free_source(entry->sc);
		entry->sc = NULL;
	}
	if (entry->sc == NULL)
	{
		SourceCounters *sc = load_source(source);

		/* the load may have processed invalidations; look up again */
		entry = hash_search(source_cache, &source, HASH_ENTER, &found);
		entry->sc = sc;
	}
	entry->sc->refcount++;
	last_source = entry->sc;
	return entry->sc;
}

/*
 * counters_release_source: done using a SourceCounters.  Frees it if it was
 * invalidated and replaced meanwhile.
 */
void
counters_release_source(SourceCounters *sc)
{
	SourceCacheEntry *entry;

	sc->refcount--;
	if (sc->refcount > 0)
		return;
	entry = hash_search(source_cache, &sc->source, HASH_FIND, NULL);
	if (entry == NULL || entry->sc != sc)
		free_source(sc);
}

/*
 * counters_has_counters: whether counters are defined on a relation.
 */
bool
counters_has_counters(Oid relid)
{
	SourceCounters *sc = counters_get_source(relid);
	bool		result = sc->counters != NIL;

	counters_release_source(sc);
	return result;
}

/*
 * counters_partition_root: the partitioned table whose counters count the
 * rows of partition relid, or InvalidOid when relid is not a partition of
 * a counted table.
 */
Oid
counters_partition_root(Oid relid)
{
	List	   *ancestors;
	Oid			root;

	if (!get_rel_relispartition(relid))
		return InvalidOid;
	ancestors = get_partition_ancestors(relid);
	if (ancestors == NIL)
		return InvalidOid;
	root = llast_oid(ancestors);
	return counters_has_counters(root) ? root : InvalidOid;
}

/*
 * relcache_callback: invalidate the cached counters of a source when the
 * source, one of its counter relations or storage tables changes, or when
 * everything is invalidated (relid is InvalidOid).
 */
static void
relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	SourceCacheEntry *entry;

	if (source_cache == NULL)
		return;

	hash_seq_init(&status, source_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		SourceCounters *sc = entry->sc;
		ListCell   *lc;

		if (sc == NULL || !sc->valid)
			continue;
		if (!OidIsValid(relid) || sc->source == relid)
		{
			sc->valid = false;
			continue;
		}
		foreach(lc, sc->counters)
		{
			CounterState *cs = (CounterState *) lfirst(lc);

			if (cs->def->counter == relid || cs->def->storage == relid)
			{
				sc->valid = false;
				break;
			}
		}
	}
}

/*
 * counters_catalog_init: register the invalidation callback (once per
 * backend, from _PG_init).
 */
void
counters_catalog_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}
