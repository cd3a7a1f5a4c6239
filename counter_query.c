/*-------------------------------------------------------------------------
 *
 * counter_query.c
 *	  The defining query of a counter: refusing what cannot be maintained
 *	  exactly, and turning the query into a definition (source, columns,
 *	  expressions, filter, storage types).
 *
 * create_counter analyses the query once with every check; afterwards the
 * query lives as a view (the definition view), and the definition is read
 * back from that view's stored query, without the checks, whenever a
 * backend compiles the counter.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/sysattr.h"
#include "catalog/heap.h"
#include "catalog/pg_class.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "counter_catalog.h"

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

	if (type == RECORDOID || get_typtype(type) == TYPTYPE_PSEUDO)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key \"%s\" has type %s, which cannot be a counter key",
						colname, format_type_be(type)),
				 errdetail("A counter stores its keys in table columns, which need a named type."),
				 errhint("Group by the fields of the row as separate keys, or cast the row to a composite type made with CREATE TYPE ... AS (...).")));
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
	if (!rte->inh && rte->relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("counter queries cannot read ONLY a partitioned table"),
				 errdetail("ONLY a partitioned table has no rows, while its counter would count the rows of its partitions."),
				 errhint("Remove ONLY: the counter counts the rows of every partition.")));

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
		if (SystemAttributeByName(tle->resname) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("counter column name \"%s\" is reserved", tle->resname),
					 errdetail("It is the name of a system column of the table that stores the counter."),
					 errhint("Rename the column with AS.")));
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
 * counters_compute_column_types: the storage type of every column, as
 * PostgreSQL types the query's result: keys keep their expression's type
 * and collation, counts are bigint, sum(smallint|integer) is bigint and
 * sum(bigint|numeric) is numeric.
 */
void
counters_compute_column_types(CounterDef *def)
{
	ListCell   *lc;
	int			i = 0;

	def->coltypes = palloc0(sizeof(Oid) * def->ncolumns);
	def->coltypmods = palloc0(sizeof(int32) * def->ncolumns);
	def->colcollations = palloc0(sizeof(Oid) * def->ncolumns);
	def->argtypes = palloc0(sizeof(Oid) * def->ncolumns);

	foreach(lc, def->exprs)
	{
		Node	   *expr = (Node *) lfirst(lc);

		def->coltypmods[i] = -1;
		if (expr != NULL)
			def->argtypes[i] = exprType(expr);
		switch (def->kinds[i])
		{
			case CCK_KEY:
				def->coltypes[i] = exprType(expr);
				def->coltypmods[i] = exprTypmod(expr);
				def->colcollations[i] = exprCollation(expr);
				break;
			case CCK_COUNT_STAR:
			case CCK_COUNT:
				def->coltypes[i] = INT8OID;
				break;
			case CCK_SUM:
				switch (def->argtypes[i])
				{
					case INT2OID:
					case INT4OID:
						def->coltypes[i] = INT8OID;
						break;
					case INT8OID:
					case NUMERICOID:
						def->coltypes[i] = NUMERICOID;
						break;
					default:
						elog(ERROR, "counters: unsupported sum argument type %u",
							 def->argtypes[i]);
				}
				break;
		}
		i++;
	}
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
 * counters_analyze_query: parse and analyse a defining query, refusing
 * everything a counter cannot maintain, and fill in the definition's
 * source, columns, expressions, filter and storage types.  The source is
 * locked against writers (SHARE ROW EXCLUSIVE) before the query is
 * analysed, so that nothing changes it between the checks and the first
 * fill.
 */
void
counters_analyze_query(const char *query, CounterDef *def)
{
	List	   *raw;
	SelectStmt *ss;
	Query	   *q;

	raw = pg_parse_query(query);
	ss = check_raw_statement(raw);
	if (list_length(ss->fromClause) == 1 && IsA(linitial(ss->fromClause), RangeVar))
		(void) RangeVarGetRelidExtended((RangeVar *) linitial(ss->fromClause),
										ShareRowExclusiveLock, 0, NULL, NULL);
	q = parse_analyze_fixedparams(linitial_node(RawStmt, raw), query,
								  NULL, 0, NULL);
	check_query(q, def, true);
	counters_compute_column_types(def);
}
