/*-------------------------------------------------------------------------
 *
 * counter_distribute.c
 *	  Operations on counters over Citus tables: declaring, dropping and
 *	  flushing them across the cluster, and refusing what Citus could do to
 *	  a counted table that would leave its counters wrong.
 *
 * How such a counter is kept is described in counter_citus.c.  Declaring
 * one (counters_define calls these steps) happens on the coordinator, in
 * one distributed transaction, every step as the source's owner (see run):
 *	  - the source is locked with LOCK TABLE, which Citus takes on every
 *		node, so that no writer anywhere runs meanwhile;
 *	  - the definition view, which Citus creates on every node;
 *	  - the storage and deltas tables, still empty and without triggers,
 *		join the source's colocation group: hash-distributed by the key
 *		that is the source's distribution column (or by _counters_shard),
 *		or reference, local or single-shard tables like the source.  Their
 *		shards are made by the owner's connections, and the owner may not
 *		create anything in the schema counters: the hidden relations of a
 *		counter over a Citus table stay next to the counter, in its schema;
 *	  - their guard trigger and the source's maintenance triggers are made
 *		with citus.enable_unsafe_triggers on (for that moment only): Citus
 *		puts them on every shard;
 *	  - the counter view over the storage, which Citus makes on every node;
 *	  - the first fill, a distributed INSERT ... SELECT.
 * Any later change to a source's counters touches its triggers (ALTER
 * TABLE ... ENABLE TRIGGER, which Citus repeats on every shard), so that
 * the backends of every node reload them.  Dropping goes through DROP
 * statements, which Citus runs on every node and whose shards it drops.
 *
 * Flushing: deltas are folded shard by shard on the node that holds them
 * (counters_citus_flush_local; the background worker of each node does
 * that), each fold a local transaction; flush() on the coordinator asks
 * every node to.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"

#include "counter_ops.h"

/*
 * run: run one generated statement as the current role, inside a
 * security-restricted operation as every step of counters' own, failing on
 * anything but the expected result.  Never as another role: Citus runs a
 * role's statements over connections of its own, and the statements of one
 * distributed transaction on the placements of one colocation group must
 * all go over the same connection to each node (a role's connection does
 * not see what another's did in the same transaction).  So every step of
 * an operation on a counter over a Citus table runs as one role: its
 * owner's (or, dropping it, the role that drops it).
 */
static void
run(const char *sql, int expected)
{
	CountersRole saved;

	counters_become(&saved, GetUserId(), 0);
	counters_spi_exec(sql, expected);
	counters_unbecome(&saved);
}

/*
 * loaded_after_citus: whether counters comes after citus in
 * shared_preload_libraries (or is not listed there, and is loaded after
 * it): its planner hook then sees a query before Citus plans it, and its
 * pre-commit callback applies a transaction's deltas before Citus sends
 * PREPARE TRANSACTION to the workers.
 */
static bool
loaded_after_citus(void)
{
	char	   *list = pstrdup(GetConfigOption("shared_preload_libraries", false, false));
	List	   *names;
	ListCell   *lc;
	int			citus = -1;
	int			counters = -1;

	if (!SplitDirectoriesString(list, ',', &names))
		return true;
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);

		if (strcmp(name, "citus") == 0 && citus < 0)
			citus = foreach_current_index(lc);
		if (strcmp(name, "counters") == 0 && counters < 0)
			counters = foreach_current_index(lc);
	}
	return counters < 0 || citus < counters;
}

/*
 * counters_citus_prepare: classify a new counter's source.  A Citus table
 * must be declared on the coordinator and be hash-distributed, a reference
 * table, a Citus local table or a single-shard table; a counter over a
 * hash-distributed table whose keys lack the distribution column keeps
 * partial rows per shard (def->partial).  Returns CITUS_NONE for any other
 * table.  SPI must be connected.
 */
CitusKind
counters_citus_prepare(CounterDef *def, CitusTable *info)
{
	char	   *name = get_rel_name(def->source);
	CitusKind	kind = counters_citus_table(def->source, info);
	int			i;

	info->keycol = -1;
	if (kind == CITUS_NONE)
		return kind;
	if (!loaded_after_citus())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("counters must come after citus in shared_preload_libraries"),
				 errdetail("Counters check a query before Citus plans it, and apply a transaction's deltas before Citus prepares it on the workers."),
				 errhint("Set shared_preload_libraries = 'citus,counters' on every node and restart them.")));
	if (!counters_citus_coordinator())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("counters over Citus table \"%s\" are declared on the coordinator", name),
				 errdetail("A counter is declared once for the whole cluster; Citus creates its relations on every node."),
				 errhint("Connect to the coordinator and call counters.create_counter() there.")));
	if (kind == CITUS_OTHER)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot declare a counter on \"%s\", an append or range distributed table", name),
				 errdetail("Counters are kept next to the shards of hash-distributed tables, reference tables and Citus local tables."),
				 errhint("Distribute the table by hash.")));
	if (get_rel_relkind(def->source) == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot declare a counter on \"%s\", a distributed partitioned table", name),
				 errdetail("Citus puts no statement trigger on the shards of partitions written through their parent's shards."),
				 errhint("Declare the counter on a table that is not partitioned, or on the partitioned table before it is distributed, and keep it local.")));
	if (kind != CITUS_HASH)
		return kind;

	/* a key that is the distribution column itself: rows follow it */
	for (i = 0; i < def->ncolumns; i++)
	{
		Node	   *expr = (Node *) list_nth(def->exprs, i);

		if (def->kinds[i] == CCK_KEY && expr != NULL && IsA(expr, Var) &&
			((Var *) expr)->varattno == info->distcol)
		{
			info->keycol = i;
			return kind;
		}
	}

	/* else partial rows per shard, told apart by a value of the shard */
	def->partial = true;
	get_atttypetypmodcoll(def->source, info->distcol, &def->shard_type,
						  &def->shard_typmod, &def->shard_collation);
	if (!counters_citus_shard_key_supported(def->shard_type))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a counter over \"%s\" must have its distribution column \"%s\" among its keys",
						name, get_attname(def->source, info->distcol, false)),
				 errdetail("Counters whose keys lack the distribution column keep a partial row per shard, which needs a distribution column of an integer, numeric, text or uuid type; \"%s\" is of type %s.",
						   get_attname(def->source, info->distcol, false),
						   format_type_be(def->shard_type)),
				 errhint("Add \"%s\" to the counter's keys and GROUP BY, and sum over it when reading.",
						 get_attname(def->source, info->distcol, false))));
	return kind;
}

/*
 * counters_citus_lock: LOCK TABLE relid, which Citus takes on every node
 * with its metadata: writers starting on any node wait.
 */
void
counters_citus_lock(Oid relid, const char *mode)
{
	counters_spi_exec(psprintf("LOCK TABLE %s IN %s MODE", counters_relation_name(relid), mode),
					  SPI_OK_UTILITY);
}

/*
 * counters_citus_unsafe_triggers: let triggers be created on (and dropped
 * from) Citus tables until counters_restore_search_path(returned level).
 * Citus refuses them unless told otherwise because it cannot check what
 * they do; counters' triggers only ever write the storage shards next to
 * the shard they fire on.
 */
int
counters_citus_unsafe_triggers(void)
{
	return counters_citus_set("citus.enable_unsafe_triggers", "on");
}

/*
 * distribute_like_source: make table (empty, no trigger) a Citus table of
 * the source's kind in its colocation group, and return it.  (A Citus
 * local table's data stays in the relation, which becomes its shard; a
 * new relation of the same name takes its place.)
 */
static Oid
distribute_like_source(CounterDef *def, CitusTable *info, Oid table)
{
	char	   *relname = pstrdup(get_rel_name(table));
	Oid			nsp = get_rel_namespace(table);
	char	   *name = quote_literal_cstr(counters_relation_name(table));
	char	   *source = quote_literal_cstr(counters_relation_name(def->source));
	char	   *sql = NULL;

	switch (info->kind)
	{
		case CITUS_HASH:
			sql = psprintf("SELECT pg_catalog.create_distributed_table(%s, %s, colocate_with => %s)",
						   name, quote_literal_cstr(def->partial ? COUNTERS_SHARD_COLUMN :
													 def->colnames[info->keycol]),
						   source);
			break;
		case CITUS_REFERENCE:
			sql = psprintf("SELECT pg_catalog.create_reference_table(%s)", name);
			break;
		case CITUS_LOCAL:
			sql = psprintf("SELECT pg_catalog.citus_add_local_table_to_metadata(%s)", name);
			break;
		case CITUS_SINGLE:
			sql = psprintf("SELECT pg_catalog.create_distributed_table(%s, NULL, colocate_with => %s)",
						   name, source);
			break;
		default:
			elog(ERROR, "counters: unexpected kind of Citus table");
	}
	run(sql, SPI_OK_SELECT);
	CommandCounterIncrement();
	return get_relname_relid(relname, nsp);
}

/*
 * counters_citus_distribute: a new counter's storage and deltas tables
 * join its source's colocation group, and get their guard (see
 * create_table), which Citus puts on their shards.
 */
void
counters_citus_distribute(CounterDef *def, CitusTable *info)
{
	Oid			tables[2];
	int			i;

	def->storage = distribute_like_source(def, info, def->storage);
	def->deltas = distribute_like_source(def, info, def->deltas);
	tables[0] = def->storage;
	tables[1] = def->deltas;
	for (i = 0; i < 2; i++)
	{
		int			nestlevel = counters_citus_unsafe_triggers();

		run(psprintf("CREATE TRIGGER counters_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
						"ON %s FOR EACH STATEMENT EXECUTE FUNCTION counters.guard_storage()",
						counters_relation_name(tables[i])), SPI_OK_UTILITY);
		counters_restore_search_path(nestlevel);
	}
}

/*
 * counters_citus_shard_expr: in the partial layout, the SQL that computes
 * a source row's _counters_shard (see counter_citus.c).
 */
char *
counters_citus_shard_expr(CounterDef *def, CitusTable *info)
{
	if (!def->partial)
		return NULL;
	return psprintf("counters.citus_shard_key(%s::pg_catalog.regclass, %s)",
					quote_literal_cstr(counters_relation_name(def->source)),
					quote_identifier(get_attname(def->source, info->distcol, false)));
}

/*
 * counters_citus_touch: make the backends of every node reload the
 * counters of Citus table source: ALTER TABLE ... ENABLE TRIGGER of one of
 * its statement triggers (enabled already), which Citus repeats on every
 * shard, changes nothing but sends the invalidations.
 */
void
counters_citus_touch(Oid source)
{
	int			nestlevel = counters_citus_unsafe_triggers();

	if (OidIsValid(get_trigger_oid(source, COUNTERS_TRIGGER_INSERT, true)))
		run(psprintf("ALTER TABLE %s ENABLE TRIGGER " COUNTERS_TRIGGER_INSERT,
						counters_relation_name(source)), SPI_OK_UTILITY);
	counters_restore_search_path(nestlevel);
}

/*
 * counters_citus_drop_triggers: drop the named maintenance triggers from
 * Citus table relid and, through Citus, from its shards.
 */
void
counters_citus_drop_triggers(Oid relid, const char *const *names, int n)
{
	int			nestlevel = counters_citus_unsafe_triggers();
	int			i;

	for (i = 0; i < n; i++)
		if (OidIsValid(get_trigger_oid(relid, names[i], true)))
			run(psprintf("DROP TRIGGER %s ON %s", quote_identifier(names[i]),
							counters_relation_name(relid)), SPI_OK_UTILITY);
	counters_restore_search_path(nestlevel);
}

/*
 * is_citus_relation: whether relid is a Citus table or a view Citus made on
 * every node.  SPI must be connected.
 */
static bool
is_citus_relation(Oid relid)
{
	if (counters_citus_table(relid, NULL) != CITUS_NONE)
		return true;
	if (get_rel_relkind(relid) != RELKIND_VIEW)
		return false;
	counters_spi_exec(psprintf("SELECT FROM pg_catalog.pg_dist_object WHERE classid OPERATOR(pg_catalog.=) "
							   "'pg_catalog.pg_class'::pg_catalog.regclass AND objid OPERATOR(pg_catalog.=) %u",
							   relid), SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * counters_citus_drop_hidden: when the relations left of a dropped counter
 * (its counter view, storage, definition and deltas, in that order, those
 * not dropped yet) include Citus ones, drop them with DROP statements,
 * which Citus runs on every node and whose shards it drops, as the role
 * dropping the counter or its source; returns false, having done nothing,
 * when none is a Citus one.
 * SPI must be connected.
 */
bool
counters_citus_drop_hidden(List *rels)
{
	ListCell   *lc;
	bool		citus = false;

	if (!counters_citus_present())
		return false;
	foreach(lc, rels)
		citus = citus || is_citus_relation(lfirst_oid(lc));
	if (!citus)
		return false;
	foreach(lc, rels)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);

		if (relkind == '\0')
			continue;
		run(psprintf("DROP %s %s", relkind == RELKIND_VIEW ? "VIEW" : "TABLE",
						counters_relation_name(relid)), SPI_OK_UTILITY);
	}
	return true;
}

/*
 * counters_citus_refill: rebuild's repair of a counter over a Citus table:
 * every storage row is computed again, with a distributed DELETE and
 * INSERT ... SELECT (Citus runs no statement that picks rows by a
 * function of their keys, as rebuild's repair of the differing keys
 * does).  The caller holds a SHARE lock on the source on every node, has
 * folded every delta, and runs as the counter's owner, in maintenance.
 */
void
counters_citus_refill(CounterDef *def)
{
	CitusTable	info;
	char	   *storage = counters_relation_name(def->storage);

	(void) counters_citus_table(def->source, &info);
	counters_spi_exec(psprintf("DELETE FROM %s", storage), SPI_OK_DELETE);
	counters_spi_exec(psprintf("INSERT INTO %s (%s) %s", storage,
							   counters_storage_column_list(def, NULL),
							   counters_fill_sql(def, counters_citus_shard_expr(def, &info))),
					  SPI_OK_INSERT);
}

/*
 * counters_citus_set_owner: when relid, one of a counter's relations,
 * belongs to Citus, give it to newowner with ALTER ... OWNER TO, which
 * Citus repeats on every node (the other nodes find a counter only while
 * its relations and its source have one owner); returns false, having
 * done nothing, otherwise.  SPI must be connected.
 */
bool
counters_citus_set_owner(Oid relid, Oid newowner)
{
	if (!counters_citus_present() || !is_citus_relation(relid))
		return false;
	counters_spi_exec(psprintf("ALTER %s %s OWNER TO %s",
							   get_rel_relkind(relid) == RELKIND_VIEW ? "VIEW" : "TABLE",
							   counters_relation_name(relid),
							   quote_identifier(GetUserNameFromId(newowner, false))),
					  SPI_OK_UTILITY);
	return true;
}

/*
 * counters_citus_check_move: before ALTER ... SET SCHEMA of a counter over
 * a Citus table or of one of its hidden relations: refused.  They are
 * Citus tables and views, which counters cannot move on every node
 * together.  SPI must be connected.
 */
void
counters_citus_check_move(Oid relid)
{
	CounterDef *def;
	Oid			counter;

	if (!OidIsValid(relid) || !counters_citus_present() ||
		!OidIsValid(counter = counters_counter_of(relid)) ||
		(def = counters_read_def(counter, true)) == NULL ||
		counters_citus_table(def->storage, NULL) == CITUS_NONE)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot move counter %s over Citus table %s to another schema",
					counters_relation_name(counter), counters_relation_name(def->source)),
			 errdetail("Its hidden relations are Citus tables and views next to it, which would stay behind on the other nodes."),
			 errhint("Drop the counter and declare it again in the other schema.")));
}

/*
 * counters_citus_check_drop: before DROP VIEW of a counter.  Dropping a
 * counter over a Citus table drops its storage with Citus, which drops the
 * counter view on the other nodes with it; Citus then repeats the DROP
 * VIEW itself there, which fails unless it says IF EXISTS.  Refuse a plain
 * DROP VIEW (and its confusing error from another node).
 */
void
counters_citus_check_drop(CounterDef *def, bool missing_ok)
{
	if (missing_ok || counters_citus_table(def->source, NULL) == CITUS_NONE)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("counter %s over Citus table %s is dropped with counters.drop_counter()",
					counters_relation_name(def->counter), counters_relation_name(def->source)),
			 errdetail("Dropping its storage drops the counter view on every node; a DROP VIEW that Citus repeats on them must say IF EXISTS."),
			 errhint("SELECT counters.drop_counter('%s'), or DROP VIEW IF EXISTS.",
					 counters_relation_name(def->counter))));
}

/*
 * counters_citus_flush: fold the recorded deltas of a counter over a Citus
 * table on every node (counters.flush_local there, each in a transaction
 * of its own, as Citus's run_command_on_all_nodes runs it); returns how
 * many were folded.  A node that could not fold is reported in a warning:
 * its deltas stay, and reads stay exact.  SPI must be connected.
 */
int64
counters_citus_flush(CounterDef *def)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	int64		folded = 0;
	Datum		d;

	values[0] = CStringGetTextDatum(psprintf("SELECT counters.flush_local(%s)",
											 quote_literal_cstr(counters_relation_name(def->counter))));
	if (SPI_execute_with_args("SELECT COALESCE(pg_catalog.sum(result::pg_catalog.int8) FILTER (WHERE success), 0)::pg_catalog.int8, "
							  "pg_catalog.string_agg(result, '; ') FILTER (WHERE NOT success) "
							  "FROM pg_catalog.run_command_on_all_nodes($1)",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: run_command_on_all_nodes failed");
	folded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		ereport(WARNING,
				(errmsg("could not flush counter %s on every node: %s",
						counters_relation_name(def->counter), TextDatumGetCString(d)),
				 errhint("The deltas of those nodes stay, and reads stay exact; the next flush folds them.")));
	return folded;
}

/*
 * counters_citus_flush_local: fold the recorded deltas of the counters over
 * Citus tables (of one counter when valid) that are on this node, shard by
 * shard, as flush() folds any counter: never waiting (a shard that DDL
 * holds is left for the next round), each fold next to the deltas it
 * folds.  Only the counters the current user owns (every
 * one, for a superuser).  SPI must be connected and a safe search_path
 * set.
 */
int64
counters_citus_flush_local(Oid counter)
{
	ListCell   *lc;
	int64		folded = 0;

	foreach(lc, counters_citus_node_counters())
	{
		CounterDef *def = (CounterDef *) lfirst(lc);

		if ((OidIsValid(counter) && def->counter != counter) || !def->buffered ||
			!pg_class_ownercheck(def->counter, GetUserId()))
			continue;

		/* shards being dropped or moved are left for the next round */
		if (!ConditionalLockRelationOid(def->deltas, RowExclusiveLock) ||
			!ConditionalLockRelationOid(def->storage, RowExclusiveLock))
			continue;
		folded += counters_fold(def, false);
	}
	return folded;
}

/* The Citus functions that make, unmake or reshape a Citus table */
static const char *const citus_table_functions[] = {
	"create_distributed_table", "create_distributed_table_concurrently",
	"create_reference_table", "citus_add_local_table_to_metadata",
	"undistribute_table", "alter_distributed_table", "alter_table_set_access_method",
	"update_distributed_table_colocation", "alter_old_partitions_set_access_method",
	"citus_remove_node_from_table"
};

/*
 * check_citus_call: refuse a call of one of the functions above on a table
 * that has counters, or on a counter or one of its hidden relations.
 */
static void
check_citus_call(FuncExpr *fexpr)
{
	char	   *fname;
	Oid			relid;
	Oid			counter;
	int			i;
	bool		known = false;

	if (fexpr->args == NIL || !IsA(linitial(fexpr->args), Const) ||
		get_func_namespace(fexpr->funcid) != PG_CATALOG_NAMESPACE)
		return;
	fname = get_func_name(fexpr->funcid);
	for (i = 0; i < lengthof(citus_table_functions) && !known; i++)
		known = strcmp(fname, citus_table_functions[i]) == 0;
	if (!known || ((Const *) linitial(fexpr->args))->constisnull ||
		((Const *) linitial(fexpr->args))->consttype != REGCLASSOID)
		return;
	relid = DatumGetObjectId(((Const *) linitial(fexpr->args))->constvalue);

	if (counters_has_counters(relid))
	{
		StringInfoData names;
		ListCell   *lc;

		counters_spi_connect();
		initStringInfo(&names);
		foreach(lc, counters_defs_for_source(relid))
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "",
							 counters_relation_name(((CounterDef *) lfirst(lc))->counter));
		SPI_finish();
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s() cannot change table \"%s\": counters count its rows: %s",
						fname, get_rel_name(relid), names.data),
				 errdetail("A counter's storage is kept next to its source's shards; changing how the table is stored would leave the counters counting nothing."),
				 errhint("Drop its counters with counters.drop_counter(), call %s(), then declare them again.", fname)));
	}
	counters_spi_connect();
	counter = counters_counter_of(relid);
	if (!OidIsValid(counter) && strcmp(fname, "alter_distributed_table") == 0)
	{
		/* it may cascade to the tables co-located with it: a counted one? */
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(relid)};

		if (SPI_execute_with_args("SELECT d.source::pg_catalog.oid FROM counters.counter_def d "
								  "JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid OPERATOR(pg_catalog.=) d.storage "
								  "JOIN pg_catalog.pg_dist_partition q ON q.colocationid OPERATOR(pg_catalog.=) p.colocationid "
								  "WHERE q.logicalrelid OPERATOR(pg_catalog.=) $1 AND p.colocationid OPERATOR(pg_catalog.<>) 0 "
								  "LIMIT 1", 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "counters: reading counters.counter_def failed");
		if (SPI_processed > 0)
		{
			bool		isnull;
			Oid			source = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															   SPI_tuptable->tupdesc, 1, &isnull));

			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s() cannot change table \"%s\": it is co-located with %s, whose rows counters count",
							fname, get_rel_name(relid), counters_relation_name(source)),
					 errdetail("It could cascade to the tables co-located with it, the counted table and its counters' storage among them."),
					 errhint("Drop the counters of %s first, or move \"%s\" out of its colocation group with update_distributed_table_colocation().",
							 counters_relation_name(source), get_rel_name(relid))));
		}
	}
	SPI_finish();
	if (OidIsValid(counter))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s() cannot change \"%s\": it is part of counter %s",
						fname, get_rel_name(relid), counters_relation_name(counter)),
				 errdetail("A counter and its hidden tables are made Citus tables, or not, with their source.")));
}

/*
 * check_write: refuse a write to the storage or deltas table of a counter
 * over a Citus table other than by counter maintenance: Citus runs it on
 * the shards from its own backends, which the storage guard lets through.
 * Only relations named like a counter's hidden tables are looked up.
 */
static void
check_write(Query *query, int rtindex)
{
	RangeTblEntry *rte;
	char	   *relname;
	size_t		len;
	Oid			counter;

	if (rtindex <= 0)
		return;
	rte = rt_fetch(rtindex, query->rtable);
	if (rte->rtekind != RTE_RELATION || (relname = get_rel_name(rte->relid)) == NULL)
		return;
	len = strlen(relname);
	if (!(len > 5 && strcmp(relname + len - 5, ".data") == 0) &&
		!(len > 7 && strcmp(relname + len - 7, ".deltas") == 0))
		return;
	counters_spi_connect();
	counter = counters_counter_of(rte->relid);
	if (OidIsValid(counter) && counters_citus_table(rte->relid, NULL) == CITUS_NONE)
		counter = InvalidOid;
	SPI_finish();
	if (OidIsValid(counter))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot write to counter storage table \"%s\"", get_rel_name(rte->relid)),
				 errdetail("Counter storage is written only by counter maintenance."),
				 errhint("Change the rows of the source table instead; to repair a counter, use counters.rebuild().")));
}

/*
 * find_citus_calls: expression walker for check_citus_call.
 */
static bool
find_citus_calls(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
		check_citus_call((FuncExpr *) node);
	return expression_tree_walker(node, find_citus_calls, context);
}

/*
 * counters_citus_check_query: before Citus plans a query (counters' planner
 * hook runs first when counters is listed after citus in
 * shared_preload_libraries): refuse writes to the storage of counters over
 * Citus tables, and the Citus functions that would change how a counted
 * table is stored.
 */
void
counters_citus_check_query(Query *query)
{
	ListCell   *lc;

	if (!counters_citus_present() || counters_in_maintenance() ||
		counters_citus_internal_backend())
		return;
	if (query->commandType == CMD_SELECT)
		(void) find_citus_calls((Node *) query->targetList, NULL);
	else
		check_write(query, query->resultRelation);
	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = (CommonTableExpr *) lfirst(lc);

		if (IsA(cte->ctequery, Query) && ((Query *) cte->ctequery)->commandType != CMD_SELECT)
			check_write((Query *) cte->ctequery, ((Query *) cte->ctequery)->resultRelation);
	}
}
