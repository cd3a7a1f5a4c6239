/*-------------------------------------------------------------------------
 *
 * counter_define.c
 *	  Declaring, removing and switching counters: create_counter(),
 *	  drop_counter(), set_mode(), the cleanup when a counter's relation,
 *	  storage or source is dropped by DDL, and the hidden relations
 *	  following renames and owner changes.
 *
 * create_counter analyses the defining query once (counter_query.c),
 * refusing anything that could not be maintained exactly from changed
 * rows, and then makes:
 *	  - the definition view, which holds the defining query as PostgreSQL
 *		holds any view (node trees, pg_depend entries on the source's
 *		columns and functions, followed through renames, written out by
 *		pg_dump);
 *	  - a storage table with the query's columns plus a hidden row count
 *		and hidden counts per sum (see counter_layout.c), and a NULLS NOT
 *		DISTINCT unique index on the keys;
 *	  - a deltas table in the same layout, with a plain index on the keys,
 *		where buffered mode records deltas;
 *	  - the counter relation itself, a view over the storage table that
 *		shows exactly the query's columns, with a trigger that refuses
 *		writes;
 *	  - the maintenance triggers on the source, shared by its counters;
 *	  - the definition row in counters.counter_def;
 * and fills the storage from the rows already in the source, while a
 * SHARE ROW EXCLUSIVE lock keeps writers out until the transaction ends.
 *
 * The three hidden relations live in the schema counters, out of the
 * user's way, named after the counter: "<schema>.<counter>.data",
 * ".deltas" and ".query" (see hidden_stem).  They are made by the caller in
 * the counter's own schema, with the caller's rights, and then moved into
 * the schema counters by the extension itself; they belong to the
 * counter's owner.  Renaming the counter renames them; they follow its
 * owner, which is always the owner of the source.
 *
 * The extension's own work on these relations (moving, renaming, changing
 * owners, dropping) uses PostgreSQL's internal routines, which run no
 * user code; counters.counter_def is written as the extension's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/comment.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "counter_ops.h"

/* the name of the trigger that ignores replicated rows of hidden tables */
#define COUNTERS_TRIGGER_REPLICATED "counters_replicated"

/* suffixes of the hidden relations */
#define HIDDEN_DATA		".data"
#define HIDDEN_DELTAS	".deltas"
#define HIDDEN_QUERY	".query"

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
 * type_sql: "type [COLLATE x]" of a storage column.
 */
static char *
type_sql(Oid typid, int32 typmod, Oid coll)
{
	char	   *type = format_type_with_typemod(typid, typmod);

	if (OidIsValid(coll) && coll != get_typcollation(typid))
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
 * column_type_sql: "type [COLLATE x]" of storage column sc.
 */
static char *
column_type_sql(CounterDef *def, StorageColumn *sc)
{
	if (sc->kind == SC_SHARD)
		return type_sql(def->shard_type, def->shard_typmod, def->shard_collation);
	if (sc->kind != SC_OUTPUT)
		return "pg_catalog.int8";
	return type_sql(def->coltypes[sc->col], def->coltypmods[sc->col],
					def->colcollations[sc->col]);
}

/*
 * hidden_stem: the common part of the names of a counter's hidden
 * relations: "<schema>.<counter>", or "<schema>.<counter>~<n>" for n > 1.
 * When the longest name would not fit in NAMEDATALEN, what fits is kept
 * and followed by "~" and a hash of the whole.
 */
static char *
hidden_stem(const char *nspname, const char *relname, int n)
{
	char	   *full = n > 1 ? psprintf("%s.%s~%d", nspname, relname, n) :
		psprintf("%s.%s", nspname, relname);
	int			room = NAMEDATALEN - 1 - (int) strlen(HIDDEN_DELTAS);
	int			len = strlen(full);
	int			keep;

	if (len <= room)
		return full;
	keep = pg_mbcliplen(full, len, room - 9);
	return psprintf("%.*s~%08x", keep, full,
					hash_bytes((const unsigned char *) full, len));
}

/*
 * stem_is_free: whether no relation in nsp1 or nsp2 has one of the names
 * a stem makes.
 */
static bool
stem_is_free(const char *stem, Oid nsp1, Oid nsp2)
{
	static const char *const suffixes[] = {HIDDEN_DATA, HIDDEN_DELTAS, HIDDEN_QUERY};
	int			i;

	for (i = 0; i < lengthof(suffixes); i++)
	{
		char	   *name = psprintf("%s%s", stem, suffixes[i]);

		if (OidIsValid(get_relname_relid(name, nsp1)) ||
			(OidIsValid(nsp2) && OidIsValid(get_relname_relid(name, nsp2))))
			return false;
	}
	return true;
}

/*
 * choose_stem: the first stem for a counter nspname.relname whose names
 * are free in nsp1 and nsp2.
 */
static char *
choose_stem(const char *nspname, const char *relname, Oid nsp1, Oid nsp2)
{
	int			n;

	for (n = 1;; n++)
	{
		char	   *stem = hidden_stem(nspname, relname, n);

		if (stem_is_free(stem, nsp1, nsp2))
			return stem;
	}
}

/*
 * counters_namespace: the schema counters.
 */
static Oid
counters_namespace(void)
{
	return get_namespace_oid("counters", false);
}

/*
 * create_table: the storage table (deltas false), with a NULLS NOT
 * DISTINCT unique index on the keys, or the table of recorded deltas, with
 * a plain index on the keys for reads; both with fill factor 50.  For a
 * counter "SELECT blog_id, count(*) AS posts ... GROUP BY blog_id":
 *
 *	CREATE TABLE s."s.c.data" (blog_id integer, posts pg_catalog.int8 NOT NULL,
 *		_counters_rows pg_catalog.int8 NOT NULL) WITH (fillfactor = 50);
 *	ALTER TABLE s."s.c.data" REPLICA IDENTITY FULL;
 *	CREATE UNIQUE INDEX ON s."s.c.data" (blog_id) NULLS NOT DISTINCT;
 *	CREATE TRIGGER counters_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
 *		ON s."s.c.data" FOR EACH STATEMENT EXECUTE FUNCTION counters.guard_storage();
 *	CREATE TRIGGER counters_replicated BEFORE INSERT OR UPDATE OR DELETE
 *		ON s."s.c.data" FOR EACH ROW EXECUTE FUNCTION counters.guard_storage();
 *	ALTER TABLE s."s.c.data" ENABLE REPLICA TRIGGER counters_replicated;
 *
 * The guard refuses writes other than counter maintenance; the second
 * trigger, which fires only where session_replication_role is replica,
 * drops rows that logical replication brings (see counters_guard_storage).
 * The tables of a counter over a Citus table (citus) get their guard
 * after Citus has distributed them (counters_citus_distribute); a partial
 * rows layout adds _counters_shard to the storage's unique index.
 */
static void
create_table(CounterDef *def, const char *table, bool deltas, bool citus)
{
	StringInfoData buf;
	ListCell   *lc;
	int			i;
	bool		first;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE %sTABLE %s (",
					 get_rel_persistence(def->source) == RELPERSISTENCE_UNLOGGED ? "UNLOGGED " : "",
					 table);
	foreach(lc, counters_layout(def))
	{
		StorageColumn *sc = (StorageColumn *) lfirst(lc);

		appendStringInfo(&buf, "%s%s %s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 sc->name, column_type_sql(def, sc),
						 counters_is_key_column(def, sc) ? "" : " NOT NULL");
	}

	/*
	 * Counter rows are updated in place all the time, and so are delta rows
	 * (a backend adds to the row it recorded a key in last): room on their
	 * pages keeps those updates HOT (no index entry per update).
	 */
	appendStringInfoString(&buf, ") WITH (fillfactor = 50)");
	counters_spi_exec(buf.data, SPI_OK_UTILITY);

	/*
	 * Its rows have no primary key.  Under a publication FOR ALL TABLES,
	 * updates and deletes of a table without a replica identity fail, and
	 * with them every write to the source: identify rows by all columns.
	 */
	counters_spi_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", table),
					  SPI_OK_UTILITY);

	if (def->nkeys > 0 || (def->partial && !deltas))
	{
		resetStringInfo(&buf);
		appendStringInfo(&buf, "CREATE %sINDEX ON %s (", deltas ? "" : "UNIQUE ", table);
		first = true;
		for (i = 0; i < def->ncolumns; i++)
		{
			if (def->kinds[i] != CCK_KEY)
				continue;
			appendStringInfo(&buf, "%s%s", first ? "" : ", ",
							 quote_identifier(def->colnames[i]));
			first = false;
		}
		if (def->partial && !deltas)
			appendStringInfo(&buf, "%s" COUNTERS_SHARD_COLUMN, first ? "" : ", ");
		appendStringInfoString(&buf, deltas ? ")" : ") NULLS NOT DISTINCT");
		counters_spi_exec(buf.data, SPI_OK_UTILITY);
	}
	if (citus)
		return;

	counters_spi_exec(psprintf("CREATE TRIGGER counters_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
							   "ON %s FOR EACH STATEMENT EXECUTE FUNCTION counters.guard_storage()",
							   table), SPI_OK_UTILITY);
	counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_REPLICATED
							   " BEFORE INSERT OR UPDATE OR DELETE ON %s "
							   "FOR EACH ROW EXECUTE FUNCTION counters.guard_storage()",
							   table), SPI_OK_UTILITY);
	counters_spi_exec(psprintf("ALTER TABLE %s ENABLE REPLICA TRIGGER " COUNTERS_TRIGGER_REPLICATED,
							   table), SPI_OK_UTILITY);
}

/* set while the extension itself replaces a counter's view */
bool		counters_replacing_view = false;

/*
 * view_should_read_deltas: whether a counter's view is to read its deltas
 * table: in buffered mode; in immediate mode where the database has a
 * two-phase subscription (see records_deltas in counter_apply.c), except
 * over Citus tables.
 */
static bool
view_should_read_deltas(bool buffered, bool citus)
{
	return buffered || (!citus && counters_two_phase_subscriber());
}

/*
 * make_view: the counter relation, showing exactly the query's columns:
 * the storage rows in immediate mode, storage plus recorded deltas in
 * buffered mode.  With replace, redefines an existing one.  viewname is
 * quoted and qualified.  In immediate mode, for the counter above:
 *
 *	CREATE VIEW s.c AS SELECT s.blog_id, s.posts FROM counters."s.c.data" s
 *
 * (a sum shows NULL while it summed no value, see counters_display_sql).
 */
static void
make_view(CounterDef *def, const char *viewname, bool replace)
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
	counters_spi_exec(psprintf("COMMENT ON VIEW %s IS %s", viewname,
							   quote_literal_cstr(psprintf("counter, kept equal to: %s",
														   def->query))),
					  SPI_OK_UTILITY);
}

/*
 * has_maintenance_triggers: whether the maintenance triggers are on a
 * source table or partition.
 */
static bool
has_maintenance_triggers(Oid relid)
{
	return OidIsValid(get_trigger_oid(relid, COUNTERS_TRIGGER_INSERT, true));
}

/*
 * create_replica_triggers: the parts of a source's (or partition's)
 * maintenance triggers that keep counters exact where
 * session_replication_role is replica (see create_maintenance_triggers),
 * those it lacks, as its owner.
 */
static void
create_replica_triggers(Oid relid, bool row)
{
	char	   *name = counters_relation_name(relid);
	CountersRole role;

	counters_become(&role, counters_relation_owner(relid), 0);
	counters_spi_exec(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER " COUNTERS_TRIGGER_TRUNCATE,
							   name), SPI_OK_UTILITY);
	if (row && get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE &&
		!OidIsValid(get_trigger_oid(relid, COUNTERS_TRIGGER_REPLICA, true)))
	{
		counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_REPLICA
								   " AFTER INSERT OR UPDATE OR DELETE ON %s "
								   "FOR EACH ROW EXECUTE FUNCTION counters.maintain()", name),
						  SPI_OK_UTILITY);
		counters_spi_exec(psprintf("ALTER TABLE %s ENABLE REPLICA TRIGGER " COUNTERS_TRIGGER_REPLICA,
								   name), SPI_OK_UTILITY);
	}
	counters_unbecome(&role);
}

/*
 * counters_restore_trigger_modes: after ALTER TABLE ... ENABLE TRIGGER
 * (ALL, USER, or one of ours) of a counted table or partition, which makes
 * every trigger it names fire in origin mode only: the truncate trigger
 * fires always again, the row trigger in replica mode again, so that
 * subscribers keep counting (pg_restore --disable-triggers does exactly
 * that to every table).  SPI must be connected.
 */
void
counters_restore_trigger_modes(Oid relid)
{
	ListCell   *lc;

	if (!OidIsValid(relid) || !pg_class_ownercheck(relid, GetUserId()))
		return;
	foreach(lc, find_all_inheritors(relid, ShareRowExclusiveLock, NULL))
	{
		Oid			part = lfirst_oid(lc);
		Relation	rel;

		if (!OidIsValid(get_trigger_oid(part, COUNTERS_TRIGGER_TRUNCATE, true)))
			continue;
		rel = table_open(part, ShareRowExclusiveLock);
		EnableDisableTrigger(rel, COUNTERS_TRIGGER_TRUNCATE, TRIGGER_FIRES_ALWAYS,
							 false, ShareRowExclusiveLock);
		if (OidIsValid(get_trigger_oid(part, COUNTERS_TRIGGER_REPLICA, true)))
			EnableDisableTrigger(rel, COUNTERS_TRIGGER_REPLICA, TRIGGER_FIRES_ON_REPLICA,
								 false, ShareRowExclusiveLock);
		table_close(rel, NoLock);
		CommandCounterIncrement();
	}
}

/*
 * create_maintenance_triggers: the triggers that maintain every counter
 * of a source, on the source or on one of its partitions, as its owner:
 *
 *	CREATE TRIGGER counters_insert AFTER INSERT ON t
 *		REFERENCING NEW TABLE AS counters_new
 *		FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain();
 *	(counters_update with OLD and NEW TABLE, counters_delete with OLD TABLE)
 *	CREATE TRIGGER counters_truncate AFTER TRUNCATE ON t
 *		FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain();
 *	ALTER TABLE t ENABLE ALWAYS TRIGGER counters_truncate;
 *	CREATE TRIGGER counters_replica AFTER INSERT OR UPDATE OR DELETE ON t
 *		FOR EACH ROW EXECUTE FUNCTION counters.maintain();
 *	ALTER TABLE t ENABLE REPLICA TRIGGER counters_replica;
 *
 * The statement triggers see every statement's changed rows; where
 * session_replication_role is replica (a logical replication subscriber's
 * apply and table sync), PostgreSQL fires neither them nor statement
 * triggers at all, and the row trigger takes over (see counter_trigger.c).
 * A partition's truncate trigger fires BEFORE TRUNCATE, to subtract the
 * rows about to go.  A partitioned table has no row trigger of its own:
 * its leaves' fire.  A Citus table (citus) has no row trigger either: Citus
 * puts the triggers on its shards, and logical replication there only
 * moves shards, their counters' storage with them (see counter_citus.c).
 */
static void
create_maintenance_triggers(Oid relid, bool partition, bool citus)
{
	char	   *name = counters_relation_name(relid);
	CountersRole role;
	int			nestlevel = citus ? counters_citus_unsafe_triggers() : 0;

	counters_become(&role, citus ? GetUserId() : counters_relation_owner(relid), 0);
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
	counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_TRUNCATE " %s TRUNCATE ON %s "
							   "FOR EACH STATEMENT EXECUTE FUNCTION counters.maintain()",
							   partition ? "BEFORE" : "AFTER", name),
					  SPI_OK_UTILITY);
	counters_unbecome(&role);
	create_replica_triggers(relid, !citus);
	if (citus)
		counters_restore_search_path(nestlevel);
}

/*
 * counters_install_partition_triggers: the triggers of every partition at
 * or below relid that lacks them (the partitioned root itself excluded).
 * SPI must be connected.
 */
void
counters_install_partition_triggers(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			part = lfirst_oid(lc);

		if (!get_rel_relispartition(part) || has_maintenance_triggers(part))
			continue;
		if (get_rel_relkind(part) == RELKIND_FOREIGN_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("foreign table \"%s\" cannot be a partition of a table with counters",
							get_rel_name(part)),
					 errdetail("Foreign tables cannot have the triggers that keep a counter exact.")));
		create_maintenance_triggers(part, true, false);
	}
}

/*
 * counters_drop_triggers: remove the maintenance triggers from relid and
 * every partition below it.
 */
void
counters_drop_triggers(Oid relid)
{
	static const char *const names[] = {COUNTERS_TRIGGER_INSERT, COUNTERS_TRIGGER_UPDATE,
		COUNTERS_TRIGGER_DELETE, COUNTERS_TRIGGER_TRUNCATE, COUNTERS_TRIGGER_REPLICA};
	ObjectAddresses *triggers = new_object_addresses();
	ListCell   *lc;

	/* Citus drops a Citus table's triggers on its shards too */
	if (counters_citus_table(relid, NULL) != CITUS_NONE)
	{
		counters_citus_drop_triggers(relid, names, lengthof(names));
		return;
	}
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		int			i;

		for (i = 0; i < lengthof(names); i++)
		{
			Oid			tgoid = get_trigger_oid(lfirst_oid(lc), names[i], true);
			ObjectAddress trigger;

			if (!OidIsValid(tgoid))
				continue;
			ObjectAddressSet(trigger, TriggerRelationId, tgoid);
			add_exact_object_address(&trigger, triggers);
		}
	}
	performMultipleDeletions(triggers, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
	free_object_addresses(triggers);
}

/*
 * counters_record_dependencies: the counter relation depends on its
 * definition view, so that dropping a counted column, or the source, with
 * CASCADE takes the counter along, and without CASCADE names it; the
 * relations of the counter depend on the extension.
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
 * insert_definition: the counters.counter_def row, written as the
 * extension's owner (users cannot write that table).
 */
static void
insert_definition(CounterDef *def)
{
	Oid			argtypes[7] = {OIDOID, OIDOID, OIDOID, OIDOID, TEXTOID, TEXTOID, OIDOID};
	Datum		values[7];
	CountersRole role;

	values[0] = ObjectIdGetDatum(def->counter);
	values[1] = ObjectIdGetDatum(def->storage);
	values[2] = ObjectIdGetDatum(def->source);
	values[3] = ObjectIdGetDatum(def->definition);
	values[4] = CStringGetTextDatum(def->query);
	values[5] = CStringGetTextDatum(def->mode);
	values[6] = ObjectIdGetDatum(def->deltas);

	counters_become_extension_owner(&role);
	if (SPI_execute_with_args("INSERT INTO counters.counter_def (counter, storage, source, "
							  "definition, query, mode, deltas) VALUES ($1, $2, $3, $4, $5, $6, $7)",
							  7, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "counters: could not record the counter definition");
	counters_unbecome(&role);
}

/*
 * rename_hidden: give one of a counter's hidden relations a new name in
 * the schema counters, and its indexes names that go with it.
 */
static void
rename_hidden(Oid relid, const char *name, Oid nsp)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;

	RenameRelationInternal(relid, name, true, false);
	CommandCounterIncrement();
	rel = relation_open(relid, AccessExclusiveLock);
	indexes = RelationGetIndexList(rel);
	relation_close(rel, NoLock);
	foreach(lc, indexes)
	{
		RenameRelationInternal(lfirst_oid(lc),
							   ChooseRelationName(name, NULL, "idx", nsp, false),
							   true, true);
		CommandCounterIncrement();
	}
}

/*
 * move_relation: move a relation into namespace nsp, with what belongs to
 * it (indexes, row type), as ALTER TABLE ... SET SCHEMA does, but without
 * its permission checks: the extension moves its hidden relations.
 */
static void
move_relation(Oid relid, Oid nsp)
{
	Relation	rel = relation_open(relid, AccessExclusiveLock);
	ObjectAddresses *moved;

	if (RelationGetNamespace(rel) != nsp)
	{
		moved = new_object_addresses();
		AlterTableNamespaceInternal(rel, RelationGetNamespace(rel), nsp, moved);
		free_object_addresses(moved);
	}
	relation_close(rel, NoLock);
	CommandCounterIncrement();
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
	Oid			cnsp = counters_namespace();
	char	   *nspname;
	char	   *viewname;
	char	   *stem;
	int			nestlevel;
	Oid			owner = GetUserId();
	CountersRole role;
	CitusTable	cinfo;
	bool		citus;
	CountersRole citus_role;

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
	if (nspid == cnsp)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_SCHEMA_NAME),
				 errmsg("counters cannot be created in schema \"counters\""),
				 errdetail("The schema counters belongs to the extension.")));
	if (OidIsValid(get_relname_relid(target->relname, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", target->relname),
				 errhint("Choose another name for the counter, or drop the existing relation.")));
	nspname = get_namespace_name(nspid);
	viewname = quote_qualified_identifier(nspname, target->relname);

	/* analyse, with the source locked against writers */
	counters_analyze_query(query, def);
	counters_spi_connect();
	check_source(def->source);
	citus = counters_citus_prepare(def, &cinfo) != CITUS_NONE;
	if (citus)
	{
		/* one role for every step (see counter_distribute.c) */
		owner = counters_relation_owner(def->source);
		counters_become(&citus_role, owner, 0);
		counters_citus_lock(def->source, "SHARE ROW EXCLUSIVE");
	}
	LockRelationOid(def->source, ShareRowExclusiveLock);
	def->query = pstrdup(query);
	def->mode = pstrdup(mode);
	def->buffered = strcmp(mode, "buffered") == 0;
	def->reads_deltas = view_should_read_deltas(def->buffered, citus);

	/*
	 * The hidden relations are made next to the counter, with the caller's
	 * rights, then moved into the schema counters.  The definition view is
	 * made from the query as given, in the caller's search_path, as the
	 * query was analysed.
	 */
	stem = choose_stem(nspname, target->relname, nspid, cnsp);
	if (citus)
		cnsp = nspid;			/* Citus counters' hidden relations stay next to them */
	counters_spi_exec(psprintf("CREATE VIEW %s AS %s",
							   quote_qualified_identifier(nspname, psprintf("%s" HIDDEN_QUERY, stem)),
							   query), SPI_OK_UTILITY);
	def->definition = get_relname_relid(psprintf("%s" HIDDEN_QUERY, stem), nspid);

	/* from here on, generated SQL must not depend on the search_path */
	nestlevel = counters_safe_search_path();

	create_table(def, quote_qualified_identifier(nspname, psprintf("%s" HIDDEN_DATA, stem)), false, citus);
	def->storage = get_relname_relid(psprintf("%s" HIDDEN_DATA, stem), nspid);
	create_table(def, quote_qualified_identifier(nspname, psprintf("%s" HIDDEN_DELTAS, stem)), true, citus);
	def->deltas = get_relname_relid(psprintf("%s" HIDDEN_DELTAS, stem), nspid);
	if (!citus)
		make_view(def, viewname, false);

	move_relation(def->definition, cnsp);
	move_relation(def->storage, cnsp);
	move_relation(def->deltas, cnsp);
	if (!citus)					/* Citus moves shards by logical replication */
	{
		counters_mark_unpublished(def->storage);
		counters_mark_unpublished(def->deltas);
	}

	/*
	 * Citus: the storage and deltas tables join the source's colocation
	 * group, and then the counter view over them, which Citus creates on
	 * every node.
	 */
	if (citus)
	{
		counters_citus_distribute(def, &cinfo);
		make_view(def, viewname, false);
	}
	def->counter = get_relname_relid(target->relname, nspid);

	if (!has_maintenance_triggers(def->source))
	{
		create_maintenance_triggers(def->source, false, citus);
		if (get_rel_relkind(def->source) == RELKIND_PARTITIONED_TABLE)
			counters_install_partition_triggers(def->source);
	}

	insert_definition(def);

	/* the first fill, from the rows already there */
	counters_become(&role, owner, COUNTERS_MAINTENANCE | COUNTERS_NO_FORCE_RLS);
	{
		MemoryContext oldcxt = CurrentMemoryContext;

		PG_TRY();
		{
			counters_spi_exec(psprintf("INSERT INTO %s (%s) %s", counters_relation_name(def->storage),
									   counters_storage_column_list(def, NULL),
									   counters_fill_sql(def, citus ? counters_citus_shard_expr(def, &cinfo) : NULL)),
							  SPI_OK_INSERT);
		}
		PG_CATCH();
		{
			counters_rethrow_key_too_long(def->counter, oldcxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	counters_unbecome(&role);

	/* every backend reloads the source's counters (on every node, for Citus) */
	CacheInvalidateRelcacheByRelid(def->source);
	if (citus)
	{
		counters_citus_touch(def->source);
		counters_unbecome(&citus_role);
	}

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
	List	   *counters_left = NIL;
	ListCell   *lc;
	CountersRole role;
	ObjectAddresses *left = new_object_addresses();
	uint64		i;

	elems = palloc(sizeof(Datum) * list_length(dropped_oids));
	foreach(lc, dropped_oids)
		elems[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = PointerGetDatum(construct_array(elems, list_length(dropped_oids),
												OIDOID, sizeof(Oid), true,
												TYPALIGN_INT));

	counters_become_extension_owner(&role);
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
	counters_unbecome(&role);

	/* the relations of each counter that are left: counter, storage, definition, deltas */
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			c;
		List	   *rels = NIL;

		for (c = 1; c <= 4; c++)
		{
			Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc, c, &isnull));

			if (c == 1)
				counters_stats_forget(relid);
			if (list_member_oid(dropped_oids, relid) || get_rel_relkind(relid) == '\0')
				continue;
			rels = lappend_oid(rels, relid);
		}
		counters_left = lappend(counters_left, rels);
		sources = list_append_unique_oid(sources,
										 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																		SPI_tuptable->tupdesc, 5, &isnull)));
	}
	foreach(lc, counters_left)
	{
		ListCell   *rc;

		/* Citus drops the Citus tables and views it made on every node */
		if (counters_citus_drop_hidden((List *) lfirst(lc)))
			continue;
		foreach(rc, (List *) lfirst(lc))
		{
			ObjectAddress rel;

			ObjectAddressSet(rel, RelationRelationId, lfirst_oid(rc));
			add_exact_object_address(&rel, left);
		}
	}
	performMultipleDeletions(left, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
	free_object_addresses(left);

	/* triggers of sources that have no counter left */
	foreach(lc, sources)
	{
		Oid			source = lfirst_oid(lc);

		if (list_member_oid(dropped_oids, source) || get_rel_name(source) == NULL)
			continue;
		if (counters_defs_for_source(source) != NIL)
		{
			CacheInvalidateRelcacheByRelid(source);
			if (counters_citus_table(source, NULL) != CITUS_NONE)
				counters_citus_touch(source);
			continue;
		}
		counters_drop_triggers(source);
	}
}

/*
 * counters_drop: drop_counter's work: drop the counter relation as the
 * caller, then forget it (the event trigger would too, but drop_counter
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
	/* IF EXISTS: see counters_citus_check_drop */
	counters_spi_exec(psprintf("DROP VIEW IF EXISTS %s", counters_relation_name(counter)),
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
 *
 * In immediate mode the counter view reads the deltas table too where
 * this database has a two-phase subscription (see records_deltas in
 * counter_apply.c).  Setting the mode a counter already has makes its
 * view agree with that again: CREATE SUBSCRIPTION does it for every
 * counter (counters_follow_subscriptions), and the flush worker for those
 * whose view does not agree (counters_refresh_views: a view older than
 * the subscription, or one left by a dropped subscription).
 *
 * With nowait, nothing is waited for: when the source or the counter view
 * is locked by someone else, or the counter is gone, nothing changes and
 * false is returned.
 */
bool
counters_switch_mode(Oid counter, const char *mode, bool nowait)
{
	CounterDef *def;
	int			nestlevel;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	CountersRole role;
	bool		citus;
	CountersRole citus_role;
	bool		reads_deltas;

	counters_check_mode(mode);
	counters_spi_connect();
	nestlevel = counters_safe_search_path();

	/* without waiting, a counter dropped meanwhile is no error */
	def = counters_read_def(counter, nowait);
	if (def == NULL)
	{
		counters_restore_search_path(nestlevel);
		SPI_finish();
		return false;
	}
	if (!pg_class_ownercheck(counter, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));
	citus = counters_citus_table(def->source, NULL) != CITUS_NONE;
	reads_deltas = view_should_read_deltas(strcmp(mode, "buffered") == 0, citus);
	if (strcmp(def->mode, mode) == 0 && def->reads_deltas == reads_deltas)
	{
		counters_restore_search_path(nestlevel);
		SPI_finish();
		return true;
	}
	if (nowait && (citus ||
				   !ConditionalLockRelationOid(def->source, ShareRowExclusiveLock) ||
				   !ConditionalLockRelationOid(counter, AccessExclusiveLock)))
	{
		counters_restore_search_path(nestlevel);
		SPI_finish();
		return false;
	}

	if (citus)
	{
		counters_become(&citus_role, counters_relation_owner(counter), 0);
		counters_citus_lock(def->source, "SHARE ROW EXCLUSIVE");
	}
	LockRelationOid(def->source, ShareRowExclusiveLock);
	counters_pending_apply();
	if (def->reads_deltas)
		counters_fold(def, true);

	values[0] = ObjectIdGetDatum(counter);
	values[1] = CStringGetTextDatum(mode);
	counters_become_extension_owner(&role);
	if (SPI_execute_with_args("UPDATE counters.counter_def SET mode = $2 "
							  "WHERE counter::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "counters: could not change the mode of counter %u", counter);
	counters_unbecome(&role);

	def->mode = pstrdup(mode);
	def->buffered = strcmp(mode, "buffered") == 0;
	def->reads_deltas = reads_deltas;
	make_view(def, counters_relation_name(counter), true);
	/* CREATE OR REPLACE VIEW rewrote the rule's dependencies */
	counters_record_dependencies(def, true);

	CacheInvalidateRelcacheByRelid(def->source);
	if (citus)
	{
		counters_citus_touch(def->source);
		counters_unbecome(&citus_role);
	}
	counters_restore_search_path(nestlevel);
	SPI_finish();
	return true;
}

/*
 * counters_follow_subscriptions: after CREATE SUBSCRIPTION, where the
 * database now has a two-phase subscription, the views of its
 * immediate-mode counters read their deltas too, so that the apply worker
 * can record into those (see counters_switch_mode).  SPI must be
 * connected.
 */
void
counters_follow_subscriptions(void)
{
	List	   *counters = NIL;
	ListCell   *lc;

	if (!counters_two_phase_subscriber())
		return;
	/* counters restored by pg_dump -s are otherwise registered on first use */
	(void) counters_register_restored();
	counters_spi_exec("SELECT counter::pg_catalog.oid FROM counters.counter_def "
					  "WHERE mode OPERATOR(pg_catalog.=) 'immediate' ORDER BY 1",
					  SPI_OK_SELECT);
	counters = counters_spi_oids();
	foreach(lc, counters)
		(void) counters_switch_mode(lfirst_oid(lc), "immediate", false);
}

/*
 * counters_refresh_views: the flush worker's part in following two-phase
 * subscriptions.  Immediate-mode counters whose views do not agree with
 * the database's subscriptions get the view set_mode(c, 'immediate') would
 * give them: on a two-phase subscriber, one that reads their deltas (a
 * view made before the subscription by a version that did not follow
 * CREATE SUBSCRIPTION, or with the event triggers off); elsewhere the
 * plain one again (after DROP SUBSCRIPTION).  One transaction per counter,
 * without waiting for anyone: a counter whose source or view is busy (a
 * prepared transaction the subscription left behind holds its source) is
 * left for the next round.  Returns how many views were changed.  Run
 * outside a transaction.
 */
int
counters_refresh_views(void)
{
	List	   *counters = NIL;
	ListCell   *lc;
	int			changed = 0;
	MemoryContext cxt = CurrentMemoryContext;
	bool		want;
	uint64		i;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	counters_spi_connect();
	want = counters_two_phase_subscriber();
	counters_spi_exec("SELECT counter::pg_catalog.oid, deltas::pg_catalog.oid "
					  "FROM counters.counter_def "
					  "WHERE mode OPERATOR(pg_catalog.=) 'immediate' ORDER BY 1",
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			counter = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1, &isnull));
		Oid			deltas = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 2, &isnull));

		if (counters_view_reads_deltas(counter, deltas) != want)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

			counters = lappend_oid(counters, counter);
			MemoryContextSwitchTo(oldcxt);
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	foreach(lc, counters)
	{
		bool		done;

		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		done = counters_switch_mode(lfirst_oid(lc), "immediate", true);
		PopActiveSnapshot();
		CommitTransactionCommand();
		if (done)
			changed++;
	}
	return changed;
}

/*
 * counters_follow_rename: a counter was renamed, moved to another schema,
 * or its schema renamed: its hidden relations take the names that go with
 * its new name (when they are free; they keep theirs otherwise).  Hidden
 * relations of the layout of version 1.0, which live next to the counter,
 * move to its new schema.  SPI must be connected.
 */
void
counters_follow_rename(Oid counter)
{
	CounterDef *def = counters_read_def(counter, true);
	Oid			cnsp = counters_namespace();
	Oid			nsp = get_rel_namespace(counter);
	Oid			hidden[3];
	const char *suffixes[3] = {HIDDEN_DATA, HIDDEN_DELTAS, HIDDEN_QUERY};
	char	   *stem;
	int			i;

	if (def == NULL)
		return;
	hidden[0] = def->storage;
	hidden[1] = def->deltas;
	hidden[2] = def->definition;

	if (get_rel_namespace(def->storage) != cnsp)
	{
		for (i = 0; i < lengthof(hidden); i++)
			move_relation(hidden[i], nsp);
		return;
	}

	stem = hidden_stem(get_namespace_name(nsp), get_rel_name(counter), 1);
	if (strcmp(get_rel_name(def->storage), psprintf("%s" HIDDEN_DATA, stem)) == 0)
		return;
	stem = choose_stem(get_namespace_name(nsp), get_rel_name(counter), cnsp, InvalidOid);
	for (i = 0; i < lengthof(hidden); i++)
		rename_hidden(hidden[i], psprintf("%s%s", stem, suffixes[i]), cnsp);
}

/*
 * counters_check_owner_change: before ALTER ... OWNER TO of relid.  A
 * counter and its hidden relations belong to the owner of its source: its
 * maintenance, verify and rebuild run as that role, and must see every row
 * of the source as the source's owner does.  Giving them to anyone else is
 * refused; ALTER TABLE on the source changes the owner of both.
 */
void
counters_check_owner_change(Oid relid, Oid newowner)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;
	Oid			counter;
	Oid			source;

	if (SPI_execute_with_args("SELECT counter::pg_catalog.oid, source::pg_catalog.oid "
							  "FROM counters.counter_def WHERE $1 OPERATOR(pg_catalog.=) "
							  "ANY (ARRAY[counter::pg_catalog.oid, storage::pg_catalog.oid, "
							  "definition::pg_catalog.oid, deltas::pg_catalog.oid])",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading counters.counter_def failed");
	if (SPI_processed == 0)
		return;
	counter = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	source = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (newowner != counters_relation_owner(source))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change the owner of counter %s", counters_relation_name(counter)),
				 errdetail("A counter belongs to the owner of its source table %s.",
						   counters_relation_name(source)),
				 errhint("ALTER TABLE %s OWNER TO ... changes the owner of the table and of its counters.",
						 counters_relation_name(source))));
}

/*
 * set_owner: give a relation to newowner, with what belongs to it, as
 * ALTER TABLE ... OWNER TO does, without its permission checks.
 */
static void
set_owner(Oid relid, Oid newowner)
{
	if (OidIsValid(relid) && get_rel_relkind(relid) != '\0' &&
		counters_relation_owner(relid) != newowner)
	{
		if (counters_citus_set_owner(relid, newowner))
			return;
		ATExecChangeOwner(relid, newowner, true, AccessExclusiveLock);
		CommandCounterIncrement();
	}
}

/*
 * counters_follow_owner: after ALTER ... OWNER TO of relid: the counters
 * of a source, and the hidden relations of a counter, follow the new
 * owner.  SPI must be connected.
 */
void
counters_follow_owner(Oid relid)
{
	List	   *defs = counters_defs_for_source(relid);
	CounterDef *def;
	ListCell   *lc;

	if (defs == NIL && (def = counters_read_def(relid, true)) != NULL)
		defs = list_make1(def);
	foreach(lc, defs)
	{
		Oid			owner;

		def = (CounterDef *) lfirst(lc);
		owner = counters_relation_owner(def->source);
		set_owner(def->counter, owner);
		set_owner(def->storage, owner);
		set_owner(def->deltas, owner);
		set_owner(def->definition, owner);
		CacheInvalidateRelcacheByRelid(def->source);
	}
}

/*
 * counters_migrate: bring every counter to the layout of this version
 * (ALTER EXTENSION counters UPDATE calls it once): hidden relations named
 * after their counter in the schema counters, the triggers that keep
 * counters exact on logical replication subscribers and drop replicated
 * hidden rows, and the counter's comment.  Counters that have all of it
 * already are left as they are.
 */
void
counters_migrate(void)
{
	Oid			cnsp = counters_namespace();
	List	   *counters = NIL;
	ListCell   *lc;

	counters_spi_exec("SELECT counter::pg_catalog.oid FROM counters.counter_def "
					  "ORDER BY source::pg_catalog.oid, counter::pg_catalog.oid",
					  SPI_OK_SELECT);
	counters = counters_spi_oids();

	foreach(lc, counters)
	{
		CounterDef *def = counters_read_def(lfirst_oid(lc), false);
		Oid			nsp = get_rel_namespace(def->counter);
		Oid			hidden[3];
		const char *suffixes[3] = {HIDDEN_DATA, HIDDEN_DELTAS, HIDDEN_QUERY};
		ListCell   *pc;
		int			h;
		CountersRole role;

		/* counters over Citus tables have their layout (counter_distribute.c) */
		if (counters_citus_table(def->storage, NULL) != CITUS_NONE)
			continue;

		/*
		 * A database made by a build from before buffered mode (which
		 * called itself 1.0 too) has no deltas tables: make them.
		 */
		if (!OidIsValid(def->deltas))
		{
			Oid			snsp = get_rel_namespace(def->storage);
			char	   *name = psprintf("%s%s", get_rel_name(def->storage), HIDDEN_DELTAS);
			Datum		values[2];
			Oid			argtypes[2] = {OIDOID, OIDOID};

			counters_become(&role, counters_relation_owner(def->storage), 0);
			create_table(def, quote_qualified_identifier(get_namespace_name(snsp), name), true, false);
			counters_unbecome(&role);
			def->deltas = get_relname_relid(name, snsp);
			values[0] = ObjectIdGetDatum(def->counter);
			values[1] = ObjectIdGetDatum(def->deltas);
			counters_become_extension_owner(&role);
			if (SPI_execute_with_args("UPDATE counters.counter_def SET deltas = $2 "
									  "WHERE counter::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
									  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "counters: could not record the deltas table of %s",
					 counters_relation_name(def->counter));
			counters_unbecome(&role);
		}

		hidden[0] = def->storage;
		hidden[1] = def->deltas;
		hidden[2] = def->definition;

		/* hidden relations: named after the counter, in the schema counters */
		if (get_rel_namespace(def->storage) != cnsp)
		{
			char	   *stem = choose_stem(get_namespace_name(nsp), get_rel_name(def->counter),
										   get_rel_namespace(def->storage), cnsp);

			for (h = 0; h < lengthof(hidden); h++)
			{
				rename_hidden(hidden[h], psprintf("%s%s", stem, suffixes[h]),
							  get_rel_namespace(hidden[h]));
				move_relation(hidden[h], cnsp);
			}
		}

		/* hidden tables: kept out of logical decoding, drop replicated rows */
		counters_mark_unpublished(def->storage);
		counters_mark_unpublished(def->deltas);
		counters_become(&role, counters_relation_owner(def->storage), 0);
		for (h = 0; h < 2; h++)
		{
			char	   *table = counters_relation_name(hidden[h]);

			if (OidIsValid(get_trigger_oid(hidden[h], COUNTERS_TRIGGER_REPLICATED, true)))
				continue;
			counters_spi_exec(psprintf("CREATE TRIGGER " COUNTERS_TRIGGER_REPLICATED
									   " BEFORE INSERT OR UPDATE OR DELETE ON %s "
									   "FOR EACH ROW EXECUTE FUNCTION counters.guard_storage()",
									   table), SPI_OK_UTILITY);
			counters_spi_exec(psprintf("ALTER TABLE %s ENABLE REPLICA TRIGGER " COUNTERS_TRIGGER_REPLICATED,
									   table), SPI_OK_UTILITY);
		}

		/* the counter says what it is */
		if (GetComment(def->counter, RelationRelationId, 0) == NULL)
			counters_spi_exec(psprintf("COMMENT ON VIEW %s IS %s", counters_relation_name(def->counter),
									   quote_literal_cstr(psprintf("counter, kept equal to: %s",
																   def->query))),
							  SPI_OK_UTILITY);
		counters_unbecome(&role);

		/* the source and its partitions count on subscribers too */
		foreach(pc, find_all_inheritors(def->source, AccessExclusiveLock, NULL))
		{
			Oid			rel = lfirst_oid(pc);

			if (has_maintenance_triggers(rel))
				create_replica_triggers(rel, true);
		}
		CacheInvalidateRelcacheByRelid(def->source);
	}
}
