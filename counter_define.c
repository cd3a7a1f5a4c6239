/*-------------------------------------------------------------------------
 *
 * counter_define.c
 *	  Declaring, removing and switching counters: create_counter(),
 *	  drop_counter(), set_mode(), and the cleanup when a counter's
 *	  relation, storage or source is dropped by DDL.
 *
 * create_counter analyses the defining query once (counter_query.c),
 * refusing anything that could not be maintained exactly from changed
 * rows, and then makes:
 *	  - a storage table _counters_c<N>_data with the query's columns plus a
 *		hidden row count and one hidden non-null count per sum, and a
 *		NULLS NOT DISTINCT unique index on the keys;
 *	  - the counter relation itself, a view over the storage table that
 *		shows exactly the query's columns (a sum over no non-null value is
 *		NULL), with a trigger that refuses writes;
 *	  - pg_depend entries from the view's rule on the source's columns and
 *		functions, as PostgreSQL records for index expressions, so renames
 *		are harmless and drops are refused unless CASCADE;
 *	  - the maintenance triggers on the source, shared by its counters;
 *	  - the definition row, with the expressions as node trees;
 * and fills the storage from the rows already in the source, while a
 * SHARE ROW EXCLUSIVE lock keeps writers out until the transaction ends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "counter_ops.h"

/*
 * check_source: the counted relation must be a permanent, plain table that
 * the caller owns and that is not itself part of a counter.
 */
static void
check_source(Oid source)
{
	char		relkind = get_rel_relkind(source);
	char	   *name = get_rel_name(source);
	Oid			nsp = get_rel_namespace(source);
	HeapTuple	tup;
	bool		ispartition;
	char		persistence;

	if (counters_is_counter_relation(source))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a counter", name),
				 errdetail("Counters count rows of tables; a counter of a counter would not be maintained."),
				 errhint("Declare the second counter on the first counter's source table.")));
	if (IsCatalogNamespace(nsp) || IsToastNamespace(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot declare a counter on system catalog \"%s\"", name)));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", name),
				 errdetail("Counters count rows of ordinary tables; %s cannot have the triggers that keep a counter exact.",
						   relkind == RELKIND_VIEW ? "a view" :
						   relkind == RELKIND_MATVIEW ? "a materialized view" :
						   relkind == RELKIND_FOREIGN_TABLE ? "a foreign table" :
						   "this kind of relation"),
				 relkind == RELKIND_VIEW || relkind == RELKIND_MATVIEW ?
				 errhint("Declare the counter on the table the view reads.") : 0));

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", source);
	ispartition = ((Form_pg_class) GETSTRUCT(tup))->relispartition;
	persistence = ((Form_pg_class) GETSTRUCT(tup))->relpersistence;
	ReleaseSysCache(tup);

	if (persistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot declare a counter on temporary table \"%s\"", name),
				 errdetail("A counter is a permanent relation and cannot depend on a table that disappears with the session.")));
	if (ispartition)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot declare a counter on partition \"%s\"", name),
				 errdetail("Rows written through the partitioned table would not reach a partition's counters."),
				 errhint("Declare the counter on the partitioned table, with the partition's bounds in WHERE.")));
	if (relkind == RELKIND_RELATION && (has_superclass(source) || has_subclass(source)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot declare a counter on \"%s\", which takes part in table inheritance", name),
				 errdetail("Rows written through a parent or a child would not all reach the counter's triggers."),
				 errhint("Declarative partitioning is supported.")));
	if (relkind == RELKIND_PARTITIONED_TABLE)
	{
		ListCell   *lc;

		foreach(lc, find_all_inheritors(source, AccessShareLock, NULL))
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot declare a counter on \"%s\": partition \"%s\" is a foreign table",
								name, get_rel_name(lfirst_oid(lc))),
						 errdetail("Foreign tables cannot have the triggers that keep a counter exact.")));
	}

	if (!pg_class_ownercheck(source, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, name);
}

/*
 * column_type_sql: "type [COLLATE x]" of a storage column.
 */
static char *
column_type_sql(CounterDef *def, int i)
{
	char	   *type = format_type_with_typemod(def->coltypes[i], def->coltypmods[i]);
	Oid			coll = def->colcollations[i];

	if (OidIsValid(coll) && coll != get_typcollation(def->coltypes[i]))
	{
		HeapTuple	tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(coll));
		Form_pg_collation cf;
		char	   *result;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for collation %u", coll);
		cf = (Form_pg_collation) GETSTRUCT(tup);
		result = psprintf("%s COLLATE %s", type,
						  quote_qualified_identifier(get_namespace_name(cf->collnamespace),
													 NameStr(cf->collname)));
		ReleaseSysCache(tup);
		return result;
	}
	return type;
}

/*
 * create_table: the storage table (deltas false), with a NULLS NOT
 * DISTINCT unique index on the keys, or the table of recorded deltas, with
 * a plain index on the keys for reads; both with the guard trigger.
 */
static void
create_table(CounterDef *def, const char *storage, bool deltas)
{
	StringInfoData buf;
	ListCell   *lc;
	int			i;
	bool		first;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE %sTABLE %s (",
					 get_rel_persistence(def->source) == RELPERSISTENCE_UNLOGGED ? "UNLOGGED " : "",
					 storage);
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);
		bool		key = sc->kind == SC_OUTPUT && def->kinds[sc->col] == CCK_KEY;

		appendStringInfo(&buf, "%s%s %s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 sc->name,
						 sc->kind == SC_OUTPUT ? column_type_sql(def, sc->col) : "pg_catalog.int8",
						 key ? "" : " NOT NULL");
	}
	/*
	 * Counter rows are updated in place all the time; room on their pages
	 * keeps those updates HOT (no index entry per update).
	 */
	appendStringInfoString(&buf, deltas ? ")" : ") WITH (fillfactor = 50)");
	counters_spi_exec(buf.data, SPI_OK_UTILITY);

	/*
	 * Its rows have no primary key.  Under a publication FOR ALL TABLES,
	 * updates and deletes of a table without a replica identity fail, and
	 * with them every write to the source: identify rows by all columns.
	 */
	counters_spi_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", storage),
					  SPI_OK_UTILITY);

	if (def->nkeys > 0)
	{
		resetStringInfo(&buf);
		appendStringInfo(&buf, "CREATE %sINDEX ON %s (", deltas ? "" : "UNIQUE ", storage);
		first = true;
		for (i = 0; i < def->ncolumns; i++)
		{
			if (def->kinds[i] != CCK_KEY)
				continue;
			appendStringInfo(&buf, "%s%s", first ? "" : ", ",
							 quote_identifier(def->colnames[i]));
			first = false;
		}
		appendStringInfoString(&buf, deltas ? ")" : ") NULLS NOT DISTINCT");
		counters_spi_exec(buf.data, SPI_OK_UTILITY);
	}

	counters_spi_exec(psprintf("CREATE TRIGGER counters_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
							   "ON %s FOR EACH STATEMENT EXECUTE FUNCTION counters.guard_storage()",
							   storage), SPI_OK_UTILITY);
}

/* set while the extension itself replaces a counter's view */
bool		counters_replacing_view = false;

/*
 * counters_make_view: the counter relation, showing exactly the query's
 * columns: the storage rows in immediate mode, storage plus recorded
 * deltas in buffered mode.  With replace, redefines an existing one.
 * viewname is quoted and qualified.
 */
static void
counters_make_view(CounterDef *def, const char *viewname, bool replace)
{
	StringInfoData buf;
	int			i;
	bool		save_replacing = counters_replacing_view;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE %sVIEW %s AS SELECT ", replace ? "OR REPLACE " : "",
					 viewname);
	for (i = 0; i < def->ncolumns; i++)
	{
		const char *col = quote_identifier(def->colnames[i]);

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		if (def->kinds[i] == CCK_SUM)
			appendStringInfo(&buf, "%s AS %s", counters_display_sql(def, i, "s"), col);
		else
			appendStringInfo(&buf, "s.%s", col);
	}
	appendStringInfo(&buf, " FROM %s s", counters_storage_relation_sql(def));

	/* our own replacement gets past the guard of counters_on_ddl_start */
	counters_replacing_view = replace;
	PG_TRY();
	{
		counters_spi_exec(buf.data, SPI_OK_UTILITY);
	}
	PG_FINALLY();
	{
		counters_replacing_view = save_replacing;
	}
	PG_END_TRY();
	if (replace)
		return;

	counters_spi_exec(psprintf("CREATE TRIGGER counters_refuse_write INSTEAD OF INSERT OR UPDATE OR DELETE "
							   "ON %s FOR EACH ROW EXECUTE FUNCTION counters.refuse_write()",
							   viewname), SPI_OK_UTILITY);
}

/*
 * source_has_triggers: whether the maintenance triggers are on the source.
 */
static bool
source_has_triggers(Oid source)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(source)};

	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1 "
							  "AND tgname OPERATOR(pg_catalog.=) '" COUNTERS_TRIGGER_INSERT "'",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading pg_trigger failed");
	return SPI_processed > 0;
}

/*
 * create_source_triggers: the statement triggers that maintain every
 * counter of a source, one per event, with transition tables.
 */
static void
create_source_triggers(Oid source)
{
	char	   *src = counters_relation_name(source);

	counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_INSERT " AFTER INSERT ON %s "
							   "REFERENCING NEW TABLE AS counters_new "
							   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", src),
					  SPI_OK_UTILITY);
	counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_UPDATE " AFTER UPDATE ON %s "
							   "REFERENCING OLD TABLE AS counters_old NEW TABLE AS counters_new "
							   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", src),
					  SPI_OK_UTILITY);
	counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_DELETE " AFTER DELETE ON %s "
							   "REFERENCING OLD TABLE AS counters_old "
							   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", src),
					  SPI_OK_UTILITY);
	counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_TRUNCATE " AFTER TRUNCATE ON %s "
							   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", src),
					  SPI_OK_UTILITY);
	if (get_rel_relkind(source) == RELKIND_PARTITIONED_TABLE)
		counters_install_partition_triggers(source);
}

/*
 * counters_install_partition_triggers: the triggers of every partition at
 * or below relid that lacks them (the partitioned root itself excluded):
 * the DML triggers as on the root, and a BEFORE TRUNCATE trigger that
 * subtracts the partition's rows.  SPI must be connected.
 */
void
counters_install_partition_triggers(Oid relid)
{
	ListCell   *lc;
	CountersRole role;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			part = lfirst_oid(lc);
		char	   *name;

		if (!get_rel_relispartition(part) || source_has_triggers(part))
			continue;
		if (get_rel_relkind(part) == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("foreign table \"%s\" cannot be a partition of a table with counters",
							get_rel_name(part)),
					 errdetail("Foreign tables cannot have the triggers that keep a counter exact.")));
		name = counters_relation_name(part);
		counters_become(&role, BOOTSTRAP_SUPERUSERID, 0);
		counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_INSERT " AFTER INSERT ON %s "
								   "REFERENCING NEW TABLE AS counters_new "
								   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", name),
						  SPI_OK_UTILITY);
		counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_UPDATE " AFTER UPDATE ON %s "
								   "REFERENCING OLD TABLE AS counters_old NEW TABLE AS counters_new "
								   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", name),
						  SPI_OK_UTILITY);
		counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_DELETE " AFTER DELETE ON %s "
								   "REFERENCING OLD TABLE AS counters_old "
								   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", name),
						  SPI_OK_UTILITY);
		counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_TRUNCATE " BEFORE TRUNCATE ON %s "
								   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()", name),
						  SPI_OK_UTILITY);
		counters_unbecome(&role);
	}
}

/*
 * record_dependencies: the counter relation depends on its definition view,
 * so that dropping a counted column, or the source, with CASCADE takes the
 * counter along, and without CASCADE names it; the three relations of the
 * counter depend on the extension.
 */
void
counters_record_dependencies(CounterDef *def, bool rule_only)
{
	ObjectAddress rule;
	ObjectAddress definition;
	ObjectAddress extension;
	Oid			rels[4] = {def->counter, def->storage, def->definition, def->deltas};
	int			i;

	ObjectAddressSet(rule, RewriteRelationId,
					 get_rewrite_oid(def->counter, ViewSelectRuleName, false));
	ObjectAddressSet(definition, RelationRelationId, def->definition);
	recordDependencyOn(&rule, &definition, DEPENDENCY_NORMAL);
	if (rule_only)
		return;

	/* DROP EXTENSION counters CASCADE takes every counter along */
	ObjectAddressSet(extension, ExtensionRelationId,
					 get_extension_oid("counters", false));
	for (i = 0; i < lengthof(rels); i++)
	{
		ObjectAddress rel;

		ObjectAddressSet(rel, RelationRelationId, rels[i]);
		recordDependencyOn(&rel, &extension, DEPENDENCY_NORMAL);
	}
}

/*
 * insert_definition: the counters.counter_def row.
 */
static void
insert_definition(CounterDef *def)
{
	Oid			argtypes[7] = {OIDOID, OIDOID, OIDOID, OIDOID, TEXTOID, TEXTOID, OIDOID};
	Datum		values[7];

	values[0] = ObjectIdGetDatum(def->counter);
	values[1] = ObjectIdGetDatum(def->storage);
	values[2] = ObjectIdGetDatum(def->source);
	values[3] = ObjectIdGetDatum(def->definition);
	values[4] = CStringGetTextDatum(def->query);
	values[5] = CStringGetTextDatum(def->mode);
	values[6] = ObjectIdGetDatum(def->deltas);

	if (SPI_execute_with_args("INSERT INTO counters.counter_def (counter, storage, source, "
							  "definition, query, mode, deltas) VALUES ($1, $2, $3, $4, $5, $6, $7)",
							  7, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "counters: could not record the counter definition");
}

/*
 * counters_define: create_counter's work.  Returns the counter relation.
 */
Oid
counters_define(const char *name, const char *query, const char *mode)
{
	CounterDef *def = palloc0(sizeof(CounterDef));
	RangeVar   *target;
	Oid			nspid;
	char	   *viewname;
	char	   *storage;
	char	   *definition;
	char	   *prefix;
	int			nestlevel;
	Oid			owner = GetUserId();
	CountersRole role;
	int64		seq;
	bool		isnull;

	counters_check_mode(mode);

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("counters.create_counter() cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The first fill must see every row committed before it locked the source."),
				 errhint("Run it in a READ COMMITTED transaction.")));

	/* where the counter goes, as CREATE TABLE would decide */
	target = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	nspid = RangeVarGetAndCheckCreationNamespace(target, NoLock, NULL);
	if (isAnyTempNamespace(nspid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("counters cannot be temporary")));
	if (OidIsValid(get_relname_relid(target->relname, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", target->relname),
				 errhint("Choose another name for the counter, or drop the existing relation.")));
	viewname = quote_qualified_identifier(get_namespace_name(nspid),
										  target->relname);

	/* analyse, with the source locked against writers */
	counters_analyze_query(query, def);
	counters_spi_connect();
	check_source(def->source);
	LockRelationOid(def->source, ShareRowExclusiveLock);
	def->query = pstrdup(query);
	def->mode = pstrdup(mode);
	def->buffered = strcmp(mode, "buffered") == 0;

	/*
	 * The hidden relations live next to the counter, so that a dump of its
	 * schema alone holds all of it.  The definition view is made from the
	 * query as given, in the caller's search_path, as the query was
	 * analysed.
	 */
	do
	{
		counters_spi_exec("SELECT pg_catalog.nextval('counters.storage_seq')", SPI_OK_SELECT);
		seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		prefix = psprintf(COUNTERS_RESERVED_PREFIX "c%lld", (long long) seq);
	} while (OidIsValid(get_relname_relid(psprintf("%s_data", prefix), nspid)) ||
			 OidIsValid(get_relname_relid(psprintf("%s_query", prefix), nspid)) ||
			 OidIsValid(get_relname_relid(psprintf("%s_deltas", prefix), nspid)));
	storage = quote_qualified_identifier(get_namespace_name(nspid),
										 psprintf("%s_data", prefix));
	definition = quote_qualified_identifier(get_namespace_name(nspid),
											psprintf("%s_query", prefix));
	counters_spi_exec(psprintf("CREATE VIEW %s AS %s", definition, query), SPI_OK_UTILITY);
	def->definition = get_relname_relid(psprintf("%s_query", prefix), nspid);

	/* from here on, generated SQL must not depend on the search_path */
	nestlevel = counters_safe_search_path();

	create_table(def, storage, false);
	def->storage = get_relname_relid(psprintf("%s_data", prefix), nspid);
	create_table(def, quote_qualified_identifier(get_namespace_name(nspid),
												 psprintf("%s_deltas", prefix)), true);
	def->deltas = get_relname_relid(psprintf("%s_deltas", prefix), nspid);
	counters_make_view(def, viewname, false);
	def->counter = get_relname_relid(target->relname, nspid);

	if (!source_has_triggers(def->source))
		create_source_triggers(def->source);

	counters_become(&role, BOOTSTRAP_SUPERUSERID, 0);
	insert_definition(def);
	counters_unbecome(&role);

	/* the first fill, from the rows already there */
	counters_become(&role, owner, COUNTERS_MAINTENANCE);
	counters_spi_exec(psprintf("INSERT INTO %s (%s) %s", storage,
							   counters_storage_column_list(def, NULL),
							   counters_expected_sql(def)),
					  SPI_OK_INSERT);
	counters_unbecome(&role);

	/* every backend reloads the source's counters */
	CacheInvalidateRelcacheByRelid(def->source);

	counters_restore_search_path(nestlevel);
	SPI_finish();
	return def->counter;
}

/*
 * counters_forget_dropped: for every counter whose relation, storage or
 * source is among the dropped relations, remove its definition and
 * storage, and drop the maintenance triggers of sources left without
 * counters.  SPI must be connected.
 */
void
counters_forget_dropped(List *dropped_oids)
{
	Datum	   *elems;
	Datum		values[1];
	Oid			argtypes[1] = {OIDARRAYOID};
	List	   *sources = NIL;
	ListCell   *lc;
	CountersRole role;
	int			nestlevel;
	uint64		i,
				n;
	List	   *found = NIL;

	elems = palloc(sizeof(Datum) * list_length(dropped_oids));
	foreach(lc, dropped_oids)
		elems[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = PointerGetDatum(construct_array(elems, list_length(dropped_oids),
												OIDOID, sizeof(Oid), true,
												TYPALIGN_INT));

	nestlevel = counters_safe_search_path();
	counters_become(&role, BOOTSTRAP_SUPERUSERID, 0);

	if (SPI_execute_with_args("DELETE FROM counters.counter_def "
							  "WHERE counter::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "OR storage::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "OR source::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "OR definition::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "OR deltas::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "RETURNING counter::pg_catalog.oid, storage::pg_catalog.oid, "
							  "definition::pg_catalog.oid, deltas::pg_catalog.oid, "
							  "source::pg_catalog.oid",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "counters: could not remove counter definitions");
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		int			c;

		/* counter, storage, definition, deltas: dropped in this order */
		for (c = 1; c <= 4; c++)
			found = lappend_oid(found, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																		SPI_tuptable->tupdesc, c, &isnull)));
		sources = list_append_unique_oid(sources,
										 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																		SPI_tuptable->tupdesc, 5, &isnull)));
	}

	/* the relations of a counter that are left */
	foreach(lc, found)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);

		if (list_member_oid(dropped_oids, relid) || relkind == '\0')
			continue;
		counters_spi_exec(psprintf("DROP %s %s",
								   relkind == RELKIND_VIEW ? "VIEW" : "TABLE",
								   counters_relation_name(relid)),
						  SPI_OK_UTILITY);
	}

	/* triggers of sources that have no counter left */
	foreach(lc, sources)
	{
		Oid			source = lfirst_oid(lc);

		if (list_member_oid(dropped_oids, source) || get_rel_name(source) == NULL)
			continue;
		if (counters_defs_for_source(source) != NIL)
		{
			CacheInvalidateRelcacheByRelid(source);
			continue;
		}
		counters_drop_triggers(source);
	}

	counters_unbecome(&role);
	counters_restore_search_path(nestlevel);
}

/*
 * counters_drop_triggers: remove the maintenance triggers from relid and
 * every partition below it.  SPI must be connected.
 */
void
counters_drop_triggers(Oid relid)
{
	ListCell   *lc;
	CountersRole role;
	static const char *const names[] = {COUNTERS_TRIGGER_INSERT, COUNTERS_TRIGGER_UPDATE,
	COUNTERS_TRIGGER_DELETE, COUNTERS_TRIGGER_TRUNCATE};

	counters_become(&role, BOOTSTRAP_SUPERUSERID, 0);
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		char	   *rel = counters_relation_name(lfirst_oid(lc));
		int			i;

		for (i = 0; i < lengthof(names); i++)
			counters_spi_exec(psprintf("DROP TRIGGER IF EXISTS %s ON %s", names[i], rel),
							  SPI_OK_UTILITY);
	}
	counters_unbecome(&role);
}

/*
 * counters_drop: drop_counter's work: drop the counter relation as its
 * owner, then forget it (the event trigger would too, but drop_counter
 * must not depend on event triggers being enabled).
 */
void
counters_drop(Oid counter)
{
	int			nestlevel;

	counters_spi_connect();
	(void) counters_read_def(counter, false);
	if (!pg_class_ownercheck(counter, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));

	nestlevel = counters_safe_search_path();
	counters_spi_exec(psprintf("DROP VIEW %s", counters_relation_name(counter)),
					  SPI_OK_UTILITY);
	counters_forget_dropped(list_make1_oid(counter));
	counters_restore_search_path(nestlevel);
	SPI_finish();
}

/*
 * counters_switch_mode: set_mode's work.  Switching waits for the
 * transactions writing the source (a SHARE ROW EXCLUSIVE lock, as
 * create_counter takes), so that no delta recorded under one mode is
 * applied under the other; leaving buffered mode folds every delta.
 */
void
counters_switch_mode(Oid counter, const char *mode)
{
	CounterDef *def;
	int			nestlevel;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	CountersRole role;

	counters_check_mode(mode);
	counters_spi_connect();
	nestlevel = counters_safe_search_path();

	def = counters_read_def(counter, false);
	if (!pg_class_ownercheck(counter, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));
	if (strcmp(def->mode, mode) == 0)
	{
		counters_restore_search_path(nestlevel);
		SPI_finish();
		return;
	}

	LockRelationOid(def->source, ShareRowExclusiveLock);
	counters_pending_apply();
	if (def->buffered)
		counters_fold(def, true);

	values[0] = ObjectIdGetDatum(counter);
	values[1] = CStringGetTextDatum(mode);
	counters_become(&role, BOOTSTRAP_SUPERUSERID, 0);
	if (SPI_execute_with_args("UPDATE counters.counter_def SET mode = $2 "
							  "WHERE counter::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "counters: could not change the mode of counter %u", counter);
	counters_unbecome(&role);

	def->mode = pstrdup(mode);
	def->buffered = strcmp(mode, "buffered") == 0;
	counters_make_view(def, counters_relation_name(counter), true);
	/* CREATE OR REPLACE VIEW rewrote the rule's dependencies */
	counters_record_dependencies(def, true);

	CacheInvalidateRelcacheByRelid(def->source);
	counters_restore_search_path(nestlevel);
	SPI_finish();
}
