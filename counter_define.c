/*-------------------------------------------------------------------------
 *
 * counter_define.c
 *	  Declaring and removing counters: create_counter() and drop_counter(),
 *	  and the cleanup when a counter's relation, storage or source is
 *	  dropped by DDL.
 *
 * create_counter parses and analyses the defining query once, refuses
 * anything that could not be maintained exactly from changed rows, and
 * then makes:
 *	  - a storage table counters_data.c<N> with the query's columns plus a
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

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "catalog/pg_extension.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parse_oper.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "counters.h"

PG_FUNCTION_INFO_V1(counters_create_counter);
PG_FUNCTION_INFO_V1(counters_drop_counter);
PG_FUNCTION_INFO_V1(counters_on_def_insert);


#define QUERY_SHAPE_DETAIL \
	"A counter query has the form SELECT <keys>, <count or sum>, ... FROM <table> [WHERE <filter>] [GROUP BY <keys>]."

/*
 * refuse_construct: error for a query construct a counter cannot have.
 */
static void
refuse_construct(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("counter queries cannot use %s", what),
			 errdetail(QUERY_SHAPE_DETAIL),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * check_immutable: refuse volatile and stable functions, which would make
 * a row's key or value change without the row changing.
 */
static void
check_immutable(Node *expr, const char *where)
{
	if (expr != NULL && contain_mutable_functions(expr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("functions in counter %s must be marked IMMUTABLE", where),
				 errdetail("A counter stays exact only if a row's keys, filter and values depend on nothing but the row."),
				 errhint("Use immutable expressions; for example date_trunc() on a timestamp without time zone.")));
}

/*
 * check_columns_only: refuse system columns and whole-row references.
 */
static void
check_columns_only(Node *expr)
{
	Bitmapset  *attrs = NULL;
	int			x = -1;

	pull_varattnos(expr, 1, &attrs);
	while ((x = bms_next_member(attrs, x)) >= 0)
	{
		if (x + FirstLowInvalidHeapAttributeNumber <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("counter queries cannot use system columns or whole-row references"),
					 errdetail(QUERY_SHAPE_DETAIL)));
	}
}

/*
 * check_key_type: a key needs equality, ordering and hashing, as GROUP BY
 * and the storage table's unique index do.
 */
static void
check_key_type(Oid type, const char *colname)
{
	TypeCacheEntry *tce = lookup_type_cache(type, TYPECACHE_EQ_OPR |
											TYPECACHE_LT_OPR);
	Oid			lhash,
				rhash;

	if (!OidIsValid(tce->eq_opr) || !OidIsValid(tce->lt_opr) ||
		!get_op_hash_functions(tce->eq_opr, &lhash, &rhash))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key \"%s\" has type %s, which cannot be a counter key",
						colname, format_type_be(type)),
				 errdetail("Counter keys need a type with btree and hash operator classes.")));
}

/*
 * check_aggregate: the kind of a select-list aggregate, or an error for
 * anything but count(*), count(expr) and sum over integers and numeric.
 */
static CounterColumnKind
check_aggregate(Aggref *agg)
{
	char	   *name = get_func_name(agg->aggfnoid);

	if (agg->aggfilter != NULL)
		refuse_construct("aggregate FILTER clauses",
						 "Put the condition in the WHERE clause, in a counter of its own.");
	if (agg->aggdistinct != NIL)
		refuse_construct("DISTINCT in aggregates",
						 "count(DISTINCT ...) cannot be maintained from changed rows; count per key instead: GROUP BY the expression.");
	if (agg->aggorder != NIL)
		refuse_construct("ORDER BY in aggregates", NULL);
	if (agg->aggkind != AGGKIND_NORMAL || agg->agglevelsup != 0)
		refuse_construct("ordered-set or hypothetical-set aggregates", NULL);

	switch (agg->aggfnoid)
	{
		case F_COUNT_:
			return CCK_COUNT_STAR;
		case F_COUNT_ANY:
			return CCK_COUNT;
		case F_SUM_INT2:
		case F_SUM_INT4:
		case F_SUM_INT8:
		case F_SUM_NUMERIC:
			return CCK_SUM;
		case F_SUM_FLOAT4:
		case F_SUM_FLOAT8:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("counters cannot sum real or double precision values"),
					 errdetail("Floating-point sums depend on the order of additions, so the counter could not stay exact."),
					 errhint("Cast the argument to numeric, for example sum(amount::numeric); counters stay exact.")));
			break;
		default:
			break;
	}
	if (strcmp(name, "sum") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("counters cannot sum values of type %s",
						format_type_be(exprType((Node *) ((TargetEntry *) linitial(agg->args))->expr))),
				 errdetail("Counters sum smallint, integer, bigint and numeric values."),
				 errhint("Cast the argument to numeric if its values are numbers.")));
	if (strcmp(name, "avg") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("aggregate avg is not supported by counters"),
				 errdetail("Counters maintain count(*), count(expr) and sum(expr)."),
				 errhint("avg is sum/count: keep sum(x) and count(x) in the counter and divide when reading.")));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("aggregate %s is not supported by counters", name),
			 errdetail("Counters maintain count(*), count(expr) and sum(expr): only those can be updated exactly from changed rows."),
			 (strcmp(name, "min") == 0 || strcmp(name, "max") == 0) ?
			 errhint("min and max cannot be maintained from deltas: deleting the smallest row would need a rescan.") : 0));
	return CCK_KEY;				/* keep compiler quiet */
}

/*
 * group_clause_for: the GROUP BY entry a target entry is the key of, or
 * NULL.
 */
static SortGroupClause *
group_clause_for(Query *q, TargetEntry *tle)
{
	ListCell   *lc;

	if (tle->ressortgroupref == 0)
		return NULL;
	foreach(lc, q->groupClause)
	{
		SortGroupClause *sgc = (SortGroupClause *) lfirst(lc);

		if (sgc->tleSortGroupRef == tle->ressortgroupref)
			return sgc;
	}
	return NULL;
}

/*
 * check_raw_statement: refuse what is wrong with the statement before
 * analysis, with messages about the statement rather than its effects.
 */
static SelectStmt *
check_raw_statement(List *raw)
{
	RawStmt    *rs;
	SelectStmt *ss;

	if (raw == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("counter query is empty"),
				 errdetail(QUERY_SHAPE_DETAIL)));
	if (list_length(raw) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("counter query must be a single statement"),
				 errdetail("The query holds %d statements.", list_length(raw))));
	rs = linitial_node(RawStmt, raw);
	if (!IsA(rs->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("counter query must be a SELECT statement"),
				 errdetail("The query is %s.", CreateCommandName(rs->stmt))));
	ss = (SelectStmt *) rs->stmt;
	if (ss->op != SETOP_NONE)
		refuse_construct("set operations (UNION, INTERSECT, EXCEPT)",
						 "Declare one counter per table.");
	if (ss->valuesLists != NIL)
		refuse_construct("VALUES", NULL);
	if (ss->withClause != NULL)
		refuse_construct("WITH (common table expressions)", NULL);
	if (ss->intoClause != NULL)
		refuse_construct("SELECT INTO", NULL);
	if (ss->lockingClause != NIL)
		refuse_construct("FOR UPDATE or FOR SHARE", NULL);
	return ss;
}

/*
 * check_query: refuse every analysed query a counter cannot maintain
 * (when validate), and fill in the definition's source, columns,
 * expressions and filter.
 */
static void
check_query(Query *q, CounterDef *def, bool validate)
{
	RangeTblEntry *rte;
	ListCell   *lc;
	int			ncols = 0;

	if (!validate)
		goto extract;
	if (q->commandType != CMD_SELECT || q->utilityStmt != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("counter query must be a SELECT statement")));
	if (q->cteList != NIL)
		refuse_construct("WITH (common table expressions)", NULL);
	if (q->setOperations != NULL)
		refuse_construct("set operations (UNION, INTERSECT, EXCEPT)", NULL);
	if (q->hasSubLinks)
		refuse_construct("subqueries", NULL);
	if (q->hasWindowFuncs)
		refuse_construct("window functions", NULL);
	if (q->hasTargetSRFs)
		refuse_construct("set-returning functions", NULL);
	if (q->distinctClause != NIL)
		refuse_construct("DISTINCT", "GROUP BY the keys instead.");
	if (q->havingQual != NULL)
		refuse_construct("HAVING",
						 "Filter rows with WHERE, or filter the counter's rows when reading it.");
	if (q->sortClause != NIL)
		refuse_construct("ORDER BY", "Order the counter's rows when reading it.");
	if (q->limitCount != NULL || q->limitOffset != NULL)
		refuse_construct("LIMIT or OFFSET", NULL);
	if (q->groupingSets != NIL)
		refuse_construct("GROUPING SETS, ROLLUP or CUBE", "Declare one counter per grouping.");
	if (q->rowMarks != NIL)
		refuse_construct("FOR UPDATE or FOR SHARE", NULL);

	if (list_length(q->rtable) != 1 || list_length(q->jointree->fromlist) != 1 ||
		!IsA(linitial(q->jointree->fromlist), RangeTblRef))
		refuse_construct(q->rtable == NIL ? "a query without FROM" : "joins or several tables",
						 "Declare the counter on the one table whose rows it counts.");
	rte = linitial_node(RangeTblEntry, q->rtable);
	if (rte->rtekind == RTE_SUBQUERY)
		refuse_construct("subqueries", NULL);
	if (rte->rtekind == RTE_FUNCTION || rte->rtekind == RTE_TABLEFUNC)
		refuse_construct("functions in FROM", NULL);
	if (rte->rtekind != RTE_RELATION)
		refuse_construct("anything but a table in FROM", NULL);
	if (rte->tablesample != NULL)
		refuse_construct("TABLESAMPLE", "A sample is not a function of the rows; count all rows, or filter with WHERE.");

extract:
	rte = linitial_node(RangeTblEntry, q->rtable);
	def->source = rte->relid;

	def->ncolumns = list_length(q->targetList);
	def->colnames = palloc0(sizeof(char *) * def->ncolumns);
	def->kinds = palloc0(sizeof(CounterColumnKind) * def->ncolumns);
	def->exprs = NIL;

	foreach(lc, q->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *expr = (Node *) tle->expr;
		CounterColumnKind kind;
		Node	   *stored;
		int			i;

		if (tle->resjunk)
		{
			if (group_clause_for(q, tle) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("every GROUP BY key of a counter must appear in the select list"),
						 errdetail("A counter row is identified by its keys, so each key is a column."),
						 errhint("Add the GROUP BY expression to the select list.")));
			continue;
		}

		if (IsA(expr, Aggref))
		{
			Aggref	   *agg = (Aggref *) expr;

			kind = check_aggregate(agg);
			stored = kind == CCK_COUNT_STAR ? NULL :
				(Node *) linitial_node(TargetEntry, agg->args)->expr;
			if (validate)
				check_immutable(stored, "aggregate arguments");
		}
		else if (group_clause_for(q, tle) != NULL)
		{
			kind = CCK_KEY;
			stored = expr;
			if (validate)
				check_immutable(stored, "keys");
			def->nkeys++;
		}
		else if (contain_agg_clause(expr))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("counter columns cannot compute with aggregate results"),
					 errdetail("Column \"%s\" is an expression over aggregates.", tle->resname),
					 errhint("Make each count(...) or sum(...) a column of its own and compute when reading.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("counter column \"%s\" is neither a GROUP BY key nor an aggregate",
							tle->resname),
					 errdetail(QUERY_SHAPE_DETAIL)));

		if (validate && stored != NULL)
			check_columns_only(stored);
		if (validate && kind == CCK_KEY)
			check_key_type(exprType(stored), tle->resname);

		for (i = 0; i < ncols; i++)
			if (strcmp(def->colnames[i], tle->resname) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("counter column name \"%s\" is used more than once",
								tle->resname),
						 errhint("Give the columns distinct names with AS.")));
		if (strncmp(tle->resname, COUNTERS_RESERVED_PREFIX,
					strlen(COUNTERS_RESERVED_PREFIX)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("counter column name \"%s\" is reserved", tle->resname),
					 errdetail("Names starting with \"%s\" are used by the counters extension.",
							   COUNTERS_RESERVED_PREFIX),
					 errhint("Rename the column with AS.")));

		def->colnames[ncols] = pstrdup(tle->resname);
		def->kinds[ncols] = kind;
		def->exprs = lappend(def->exprs, stored);
		ncols++;
	}
	def->ncolumns = ncols;
	if (ncols == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("counter query has no columns"),
				 errdetail(QUERY_SHAPE_DETAIL)));

	def->filter = (Expr *) q->jointree->quals;
	if (validate && def->filter != NULL)
	{
		check_immutable((Node *) def->filter, "filters (WHERE)");
		check_columns_only((Node *) def->filter);
	}
}

/*
 * counters_def_from_view: fill a definition's source, columns, expressions
 * and filter from its definition view, the defining query as PostgreSQL
 * stores it (renames followed, dependencies recorded, dumped by pg_dump).
 * Expressions come out referencing the source as varno 1.
 */
void
counters_def_from_view(Oid definition, CounterDef *def)
{
	Relation	view = relation_open(definition, AccessShareLock);
	Query	   *q = copyObject(get_view_query(view));
	RangeTblRef *rtr;
	RangeTblEntry *rte;

	relation_close(view, AccessShareLock);
	if (list_length(q->jointree->fromlist) != 1 ||
		!IsA(linitial(q->jointree->fromlist), RangeTblRef))
		elog(ERROR, "counters: definition view %u does not read one table", definition);

	/* keep only the source's range table entry, as number 1 */
	rtr = linitial_node(RangeTblRef, q->jointree->fromlist);
	rte = rt_fetch(rtr->rtindex, q->rtable);
	ChangeVarNodes((Node *) q->targetList, rtr->rtindex, 1, 0);
	ChangeVarNodes(q->jointree->quals, rtr->rtindex, 1, 0);
	q->rtable = list_make1(rte);
	rtr->rtindex = 1;

	check_query(q, def, false);
}

/*
 * check_source: the counted relation must be a permanent, plain table that
 * the caller owns and that is not itself part of a counter.
 */
pg_noinline static void
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
void
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
	Oid			save_userid;
	int			save_sec;

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
		counters_become_superuser(&save_userid, &save_sec);
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
		SetUserIdAndSecContext(save_userid, save_sec);
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
 * counters_on_def_insert: AFTER INSERT trigger on counters.counter_def.
 * Records the dependencies of a counter's relations, for new counters and
 * for counters restored by pg_dump (which does not dump pg_depend) or
 * adopted from a dump of one schema.
 */
Datum
counters_on_def_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	CounterDef	def;
	bool		isnull;
	Oid			rule;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.on_def_insert() must be called as a row trigger")));
	desc = RelationGetDescr(trigdata->tg_relation);
	tup = trigdata->tg_trigtuple;
	memset(&def, 0, sizeof(def));
	def.counter = DatumGetObjectId(heap_getattr(tup, 1, desc, &isnull));
	def.storage = DatumGetObjectId(heap_getattr(tup, 2, desc, &isnull));
	def.definition = DatumGetObjectId(heap_getattr(tup, 4, desc, &isnull));
	def.deltas = DatumGetObjectId(heap_getattr(tup, 5, desc, &isnull));

	rule = get_rewrite_oid(def.counter, ViewSelectRuleName, true);
	if (!OidIsValid(rule) || get_rel_relkind(def.definition) != RELKIND_VIEW)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("counter definition does not name a counter view and a definition view")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = ObjectIdGetDatum(rule);
	values[1] = ObjectIdGetDatum(def.definition);
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_depend WHERE classid OPERATOR(pg_catalog.=) "
							  "'pg_catalog.pg_rewrite'::pg_catalog.regclass AND objid OPERATOR(pg_catalog.=) $1 "
							  "AND refobjid OPERATOR(pg_catalog.=) $2",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading pg_depend failed");
	if (SPI_processed == 0)
		counters_record_dependencies(&def, false);
	SPI_finish();
	return PointerGetDatum(NULL);
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
 * become_superuser: run catalog and storage housekeeping as the bootstrap
 * superuser; the extension's own objects are not writable by users.
 */
void
counters_become_superuser(Oid *save_userid, int *save_sec)
{
	GetUserIdAndSecContext(save_userid, save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * counters_check_mode: refuse an unknown mode.
 */
void
counters_check_mode(const char *mode)
{
	if (strcmp(mode, "immediate") != 0 && strcmp(mode, "buffered") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown counter mode \"%s\"", mode),
				 errhint("The mode is 'immediate' or 'buffered'.")));
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
	List	   *raw;
	SelectStmt *ss;
	Query	   *q;
	int			nestlevel;
	Oid			owner = GetUserId();
	Oid			save_userid;
	int			save_sec;
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

	/* parse; lock the source against writers before analysing */
	raw = pg_parse_query(query);
	ss = check_raw_statement(raw);
	if (list_length(ss->fromClause) == 1 && IsA(linitial(ss->fromClause), RangeVar))
		(void) RangeVarGetRelidExtended((RangeVar *) linitial(ss->fromClause),
										ShareRowExclusiveLock, 0, NULL, NULL);
	q = parse_analyze_fixedparams(linitial_node(RawStmt, raw), query,
								  NULL, 0, NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	check_query(q, def, true);
	check_source(def->source);
	LockRelationOid(def->source, ShareRowExclusiveLock);
	def->query = pstrdup(query);
	def->mode = pstrdup(mode);
	def->buffered = strcmp(mode, "buffered") == 0;
	counters_compute_column_types(def);

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
	nestlevel = counters_set_safe_search_path();

	create_table(def, storage, false);
	def->storage = get_relname_relid(psprintf("%s_data", prefix), nspid);
	create_table(def, quote_qualified_identifier(get_namespace_name(nspid),
												 psprintf("%s_deltas", prefix)), true);
	def->deltas = get_relname_relid(psprintf("%s_deltas", prefix), nspid);
	counters_make_view(def, viewname, false);
	def->counter = get_relname_relid(target->relname, nspid);

	if (!source_has_triggers(def->source))
		create_source_triggers(def->source);

	counters_become_superuser(&save_userid, &save_sec);
	insert_definition(def);
	SetUserIdAndSecContext(save_userid, save_sec);

	/* the first fill, from the rows already there */
	counters_begin_maintenance(owner, &save_userid, &save_sec);
	PG_TRY();
	{
		counters_spi_exec(psprintf("INSERT INTO %s (%s) %s", storage,
								   counters_storage_column_list(def, NULL),
								   counters_expected_sql(def)),
						  SPI_OK_INSERT);
	}
	PG_FINALLY();
	{
		counters_end_maintenance(save_userid, save_sec);
	}
	PG_END_TRY();

	/* every backend reloads the source's counters */
	CacheInvalidateRelcacheByRelid(def->source);

	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	return def->counter;
}

/*
 * counters_create_counter: SQL function create_counter(name, query, mode).
 */
Datum
counters_create_counter(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, query and mode of a counter must not be null")));
	PG_RETURN_OID(counters_define(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								  text_to_cstring(PG_GETARG_TEXT_PP(1)),
								  text_to_cstring(PG_GETARG_TEXT_PP(2))));
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
	Oid			save_userid;
	int			save_sec;
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

	nestlevel = counters_set_safe_search_path();
	counters_become_superuser(&save_userid, &save_sec);

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

	SetUserIdAndSecContext(save_userid, save_sec);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * counters_drop_triggers: remove the maintenance triggers from relid and
 * every partition below it.  SPI must be connected.
 */
void
counters_drop_triggers(Oid relid)
{
	ListCell   *lc;
	Oid			save_userid;
	int			save_sec;
	static const char *const names[] = {COUNTERS_TRIGGER_INSERT, COUNTERS_TRIGGER_UPDATE,
	COUNTERS_TRIGGER_DELETE, COUNTERS_TRIGGER_TRUNCATE};

	counters_become_superuser(&save_userid, &save_sec);
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		char	   *rel = counters_relation_name(lfirst_oid(lc));
		int			i;

		for (i = 0; i < lengthof(names); i++)
			counters_spi_exec(psprintf("DROP TRIGGER IF EXISTS %s ON %s", names[i], rel),
							  SPI_OK_UTILITY);
	}
	SetUserIdAndSecContext(save_userid, save_sec);
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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	(void) counters_read_def(counter, false);
	if (!pg_class_ownercheck(counter, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));

	nestlevel = counters_set_safe_search_path();
	counters_spi_exec(psprintf("DROP VIEW %s", counters_relation_name(counter)),
					  SPI_OK_UTILITY);
	counters_forget_dropped(list_make1_oid(counter));
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
}

/*
 * counters_drop_counter: SQL function drop_counter(counter).
 */
Datum
counters_drop_counter(PG_FUNCTION_ARGS)
{
	counters_drop(PG_GETARG_OID(0));
	PG_RETURN_VOID();
}
