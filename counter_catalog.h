/*-------------------------------------------------------------------------
 *
 * counter_catalog.h
 *	  What a counter is: its definition (counter_query.c analyses the
 *	  defining query), how definitions are read from counters.counter_def,
 *	  and the per-backend cache of compiled counters (counter_catalog.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_CATALOG_H
#define COUNTER_CATALOG_H

#include "executor/execdesc.h"
#include "nodes/execnodes.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/sortsupport.h"

#include "counter_util.h"

/* Names of the hidden storage columns */
#define COUNTERS_ROWS_COLUMN	"_counters_rows"
#define COUNTERS_NN_PREFIX		"_counters_nn"
#define COUNTERS_SHARD_COLUMN	"_counters_shard"
#define COUNTERS_RESERVED_PREFIX "_counters_"

/* Names of the triggers installed on a source table */
#define COUNTERS_TRIGGER_INSERT		"counters_insert"
#define COUNTERS_TRIGGER_UPDATE		"counters_update"
#define COUNTERS_TRIGGER_DELETE		"counters_delete"
#define COUNTERS_TRIGGER_TRUNCATE	"counters_truncate"
#define COUNTERS_TRIGGER_REPLICA	"counters_replica"

/*
 * The alias under which an immediate-mode counter view that reads its
 * deltas (see reads_deltas) sums storage and deltas; buffered views use
 * another, so that registering a restored counter tells the modes apart.
 */
#define COUNTERS_IMMEDIATE_ALIAS	"_counters_i"

/* What one output column of a counter is */
typedef enum CounterColumnKind
{
	CCK_KEY,					/* a GROUP BY key expression */
	CCK_COUNT_STAR,				/* count(*) */
	CCK_COUNT,					/* count(expr): non-null values */
	CCK_SUM						/* sum(expr) over an integer or numeric type */
} CounterColumnKind;

/*
 * A counter's definition, as stored in counters.counter_def.
 *
 * Columns are the query's output columns in order.  exprs has one entry per
 * column: the key expression, the aggregate's argument, or NULL for
 * count(*).  Expressions reference the source with varno 1.
 */
typedef struct CounterDef
{
	Oid			counter;		/* the counter relation (a view) */
	Oid			storage;		/* its storage table */
	Oid			source;			/* the counted table */
	Oid			definition;		/* view holding the defining query */
	Oid			deltas;			/* recorded deltas (buffered mode) */
	char	   *query;			/* the defining query, as given */
	char	   *mode;			/* 'immediate' or 'buffered' */
	bool		buffered;

	/*
	 * The counter view adds the deltas table to the storage: always in
	 * buffered mode; in immediate mode on a subscriber of a two-phase
	 * subscription, whose apply worker records deltas instead of changing
	 * counter rows (see counters_two_phase_subscriber).
	 */
	bool		reads_deltas;
	int			ncolumns;
	char	  **colnames;
	CounterColumnKind *kinds;
	List	   *exprs;			/* one Expr (or NULL) per column */
	Expr	   *filter;			/* WHERE clause, or NULL */
	/* derived */
	int			nkeys;
	Oid		   *coltypes;		/* storage type of each column */
	int32	   *coltypmods;
	Oid		   *colcollations;
	Oid		   *argtypes;		/* input type of each aggregate's argument */
	List	   *layout;			/* storage columns, kept by cached counters */

	/*
	 * Citus (counter_citus.c).  A counter over a hash-distributed table
	 * whose keys do not include the distribution column keeps per-shard
	 * partial rows: its storage has one more column, _counters_shard, of
	 * the distribution column's type, holding a value that hashes into
	 * the shard whose rows the partial row counts (partial).  shard_value
	 * is that value in counters compiled for one shard.
	 */
	bool		partial;
	Oid			shard_type;
	int32		shard_typmod;
	Oid			shard_collation;
	Datum		shard_value;
} CounterDef;

/*
 * A counter compiled for use by the trigger in this backend.  Lives in its
 * own memory context under the cache's context.  The writing layer keeps
 * its per-counter state here too (prepared plans, the rows it wrote last),
 * so that it goes with the counter when the cache entry is invalidated.
 */
typedef struct CounterState
{
	CounterDef *def;
	Oid			owner;			/* owner of the counter relation */
	char	   *storage_name;	/* quoted, schema-qualified */
	char	   *deltas_name;	/* likewise */
	MemoryContext cxt;

	/* key columns */
	int			nkeys;
	int		   *key_columns;	/* column index of each key */
	TupleDesc	key_desc;		/* one attribute per key */
	Oid		   *key_eqfuncs;
	FmgrInfo   *key_hashfuncs;
	Oid		   *key_collations;
	SortSupportData *key_sort;
	AttrNumber *key_attnums;	/* 1..nkeys, for the hash table */
	bool		rowwise;		/* apply key by key (no array type, or composite) */
	bool		fastkey;		/* one key whose equality is bitwise */

	/* compiled expressions */
	ExprState **col_states;		/* per column; NULL for count(*) */
	AttrNumber *col_attnos;		/* per column: the source column it reads
								 * as it is, or 0 */
	ExprState  *filter_state;	/* NULL when there is no WHERE */

	/* writing layer: warned that a two-phase apply changes counter rows */
	bool		two_phase_warned;

	/* writing layer: the deltas table's index, described once */
	Oid			deltas_index;
	struct IndexInfo *deltas_index_info;

	/* writing layer: the row versions this backend wrote last, by key hash */
	struct remembered_hash *remembered;

	/* writing layer: immediate mode's unique index, described once */
	Oid			storage_index;
	struct IndexInfo *storage_index_info;

	/* writing layer: prepared statements, made on first use */
	SPIPlanPtr	upsert_plan;	/* arrays of keys */
	SPIPlanPtr	upsert1_plan;	/* one key */
	SPIPlanPtr	delete_plan;
} CounterState;

/* The counters on one source table */
typedef struct SourceCounters
{
	Oid			source;			/* hash key */
	bool		valid;
	int			refcount;		/* users up the stack; don't free while > 0 */
	bool		marks_checked;	/* hidden tables kept out of decoding */
	List	   *counters;		/* CounterState pointers */
	MemoryContext cxt;

	/*
	 * The maintenance trigger's slot for the source's transition tables,
	 * made on first use (over a copy of the source's descriptor, which
	 * cannot change while the entry is valid).
	 */
	struct TupleTableSlot *feed_slot;

	/*
	 * Citus: source is a shard (or, on a node other than the one that
	 * declared them, the shell) of a Citus table whose counters were found
	 * by counters_citus_defs.  shell is the Citus table; its shard's rows
	 * are converted to the shell's layout when root is valid.
	 */
	bool		citus_shard;
	Oid			shell;
	Oid			root;
} SourceCounters;

/* counter_query.c: the defining query */
extern void counters_check_mode(const char *mode);
extern void counters_analyze_query(const char *query, CounterDef *def);
extern void counters_def_from_view(Oid definition, CounterDef *def);
extern void counters_compute_column_types(CounterDef *def);

/* counter_catalog.c: definitions */
extern CounterDef *counters_def_from_tuple(HeapTuple tup, TupleDesc desc);
extern CounterDef *counters_read_def(Oid counter, bool missing_ok);
extern uint64 counters_register_restored(void);
extern bool counters_view_reads_deltas(Oid counter, Oid deltas);
extern bool counters_two_phase_subscriber(void);
extern List *counters_defs_for_source(Oid source);
extern bool counters_is_counter_relation(Oid relid);
extern Oid	counters_counter_of(Oid relid);
extern Oid	counters_extension_owner(void);
extern bool counters_in_own_script(void);
extern void counters_become_extension_owner(CountersRole *role);
extern void counters_mark_unpublished(Oid relid);

/* counter_catalog.c: compiled counters, cached per backend */
extern SourceCounters *counters_get_source(Oid source);
extern void counters_release_source(SourceCounters *sc);
extern bool counters_has_counters(Oid relid);
extern Oid	counters_partition_root(Oid relid);
extern void counters_catalog_init(void);

/* counter_citus.c: Citus tables, shards and the counters kept on them */
typedef enum CitusKind
{
	CITUS_NONE,					/* not a Citus table */
	CITUS_HASH,					/* hash-distributed */
	CITUS_REFERENCE,			/* a reference table: a copy on every node */
	CITUS_LOCAL,				/* a Citus local table: one shard, on the coordinator */
	CITUS_SINGLE,				/* a single-shard distributed table */
	CITUS_OTHER					/* append or range distributed */
} CitusKind;

typedef struct CitusTable
{
	CitusKind	kind;
	AttrNumber	distcol;		/* the distribution column (hash), or 0 */
	int			colocation;
	int			keycol;			/* counters_citus_prepare: the counter's key
								 * that is distcol, or -1 */
} CitusTable;

extern bool counters_citus_present(void);
extern bool counters_citus_coordinator(void);
extern CitusKind counters_citus_table(Oid relid, CitusTable *info);
extern bool counters_citus_internal_backend(void);
extern bool counters_citus_shard_key_supported(Oid type);
extern struct CitusShardMap *counters_citus_shard_map(Oid source, Oid type,
													   Oid collation,
													   MemoryContext cxt);
extern Datum counters_citus_shard_key(struct CitusShardMap *map, Datum value);
extern void counters_citus_describe(CounterDef *def);
extern List *counters_citus_defs(Oid relid, SourceCounters *sc);
extern List *counters_citus_node_counters(void);
extern int	counters_citus_set(const char *name, const char *value);

#endif							/* COUNTER_CATALOG_H */
