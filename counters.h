/*-------------------------------------------------------------------------
 *
 * counters.h
 *	  Shared declarations of the counters extension.
 *
 * A counter is declared by a GROUP BY query over one table.  Its definition
 * (counter_define.c) is stored in counters.counter_def as node trees; the
 * backend-local cache (counter_catalog.c) compiles those trees once per
 * backend; the statement trigger turns transition tables into per-key
 * deltas (counter_delta.c) and applies them with prepared statements
 * (counter_apply.c); verify and rebuild compare a counter with its query
 * (counter_check.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTERS_H
#define COUNTERS_H

#include "access/attnum.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "nodes/pg_list.h"
#include "utils/sortsupport.h"

/* Names of the hidden storage columns */
#define COUNTERS_ROWS_COLUMN	"_counters_rows"
#define COUNTERS_NN_PREFIX		"_counters_nn"
#define COUNTERS_RESERVED_PREFIX "_counters_"

/* Names of the triggers installed on a source table */
#define COUNTERS_TRIGGER_INSERT		"counters_insert"
#define COUNTERS_TRIGGER_UPDATE		"counters_update"
#define COUNTERS_TRIGGER_DELETE		"counters_delete"
#define COUNTERS_TRIGGER_TRUNCATE	"counters_truncate"

/* What one output column of a counter is */
typedef enum CounterColumnKind
{
	CCK_KEY,					/* a GROUP BY key expression */
	CCK_COUNT_STAR,				/* count(*) */
	CCK_COUNT,					/* count(expr): non-null values */
	CCK_SUM						/* sum(expr) over an integer or numeric type */
} CounterColumnKind;

/* What one column of a storage table holds (see counter_layout.c) */
typedef enum StorageColumnKind
{
	SC_OUTPUT,					/* the query's column col */
	SC_ROWS,					/* source rows in the group */
	SC_NN,						/* non-null values summed by column col */
	SC_NAN,						/* NaN values seen by numeric sum col */
	SC_PINF,					/* Infinity values */
	SC_NINF						/* -Infinity values */
} StorageColumnKind;

typedef struct StorageColumn
{
	StorageColumnKind kind;
	int			col;			/* output column, or -1 */
	char	   *name;			/* quoted */
} StorageColumn;

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
	Oid			storage;		/* its storage table in counters_data */
	Oid			source;			/* the counted table */
	Oid			definition;		/* view holding the defining query */
	Oid			deltas;			/* recorded deltas (buffered mode) */
	char	   *query;			/* the defining query, as given */
	char	   *mode;			/* 'immediate' or 'buffered' */
	bool		buffered;
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
} CounterDef;

/*
 * A counter compiled for use by the trigger in this backend.  Lives in its
 * own memory context under the cache's context.
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
	bool		rowwise;		/* some key type has no array type */
	bool		fastkey;		/* one key whose equality is bitwise */

	/* compiled expressions */
	ExprState **col_states;		/* per column; NULL for count(*) */
	ExprState  *filter_state;	/* NULL when there is no WHERE */

	/* the index of the deltas table (buffered mode), described once */
	Oid			deltas_index;
	struct IndexInfo *deltas_index_info;

	/*
	 * Buffered mode: where this backend last recorded deltas, by key hash
	 * (see counter_direct.c); allocated on first use.
	 */
	struct RecordedRow *recorded;

	/* prepared statements, made on first use */
	SPIPlanPtr	upsert_plan;	/* arrays of keys */
	SPIPlanPtr	upsert1_plan;	/* one key */
	SPIPlanPtr	delete_plan;
	SPIPlanPtr	truncate_plan;
} CounterState;

/* The counters on one source table */
typedef struct SourceCounters
{
	Oid			source;			/* hash key */
	bool		valid;
	int			refcount;		/* users up the stack; don't free while > 0 */
	List	   *counters;		/* CounterState pointers */
	MemoryContext cxt;
} SourceCounters;

/*
 * Summed deltas of one key.  For an aggregate column, counts[] holds the
 * delta of count(*)/count(expr) or of the number of non-null values of a
 * sum, and sums[] the delta of the sum (integers as int128, numerics as a
 * Datum).
 */
typedef struct GroupDelta
{
	int64		rows;
	int64	   *counts;			/* per column */
	int128	   *isums;			/* per column, integer sums */
	Datum	   *nsums;			/* per column, numeric sums (NULL Datum = 0) */
	int64	   *specials;		/* per column: NaN, +Inf, -Inf counts */
} GroupDelta;

/* Deltas of one counter for (a part of) one transaction */
typedef struct DeltaMap
{
	CounterState *cs;
	MemoryContext cxt;			/* where it lives (its pending set's memory) */
	MemoryContext tablecxt;		/* the hash table and its groups */
	MemoryContext tempcxt;		/* lookups in the general table, or NULL */
	TupleHashTable table;		/* keyed counters */
	struct fastkey_hash *fast;	/* one plain by-value key: a cheaper table */
	struct Tuplesortstate *spill;	/* deltas moved out of memory, by key */
	TupleDesc	spill_desc;		/* their layout: the storage's */
	bool		spill_sorted;	/* performsort done (later applies rescan) */
	GroupDelta *null_group;		/* with fast: the NULL key's deltas */
	TupleTableSlot *keyslot;
	GroupDelta *global;			/* counters without keys */
	int64		ngroups;
} DeltaMap;

/* One key of a DeltaMap, with its key values, as the apply sorts them */
typedef struct DeltaKeyGroup
{
	Datum	   *keys;
	bool	   *nulls;
	GroupDelta *g;
} DeltaKeyGroup;

/* counters.c */
extern int	counters_maintenance_depth;
extern void counters_begin_maintenance(Oid owner, Oid *save_userid,
									   int *save_sec_context);
extern void counters_end_maintenance(Oid save_userid, int save_sec_context);
extern int	counters_set_safe_search_path(void);
extern void counters_spi_exec(const char *sql, int expected);

/* counter_catalog.c */
extern CounterDef *counters_read_def(Oid counter, bool missing_ok);
extern List *counters_defs_for_source(Oid source);
extern SourceCounters *counters_get_source(Oid source, bool from_trigger);
extern uint64 counters_adopt(void);
extern void counters_release_source(SourceCounters *sc);
extern void counters_init_cache(void);
extern void counters_compute_column_types(CounterDef *def);
extern char *counters_storage_name(CounterDef *def);
extern char *counters_relation_name(Oid relid);
extern Oid	counters_relation_owner(Oid relid);

/* counter_partition.c */
extern Oid	counters_partition_root(Oid relid);
extern bool counters_has_counters(Oid relid);
extern void counters_feed_rows(Oid relid, Oid root, int sign, bool recurse);

/* counter_define.c */
extern void counters_install_partition_triggers(Oid relid);
extern void counters_drop_triggers(Oid relid);
extern Oid	counters_define(const char *name, const char *query, const char *mode);
extern void counters_drop(Oid counter);
extern void counters_forget_dropped(List *dropped_oids);
extern void counters_def_from_view(Oid definition, CounterDef *def);
extern void counters_make_view(CounterDef *def, const char *viewname,
							   bool replace);
extern void counters_record_dependencies(CounterDef *def, bool rule_only);
extern void counters_check_mode(const char *mode);
extern void counters_become_superuser(Oid *save_userid, int *save_sec);
extern bool counters_is_counter_relation(Oid relid);
extern Oid	counters_counter_of_view(Oid relid);
extern bool counters_replacing_view;

/* counter_delta.c */
extern DeltaMap *delta_create(CounterState *cs, MemoryContext parent);
extern void delta_add_tuple(DeltaMap *dm, ExprContext *econtext,
							TupleTableSlot *slot, int sign);
extern bool delta_over_limit(DeltaMap *dm);
extern void delta_reset(DeltaMap *dm);
extern DeltaKeyGroup *delta_groups(DeltaMap *dm, int *ngroups);
extern void delta_spill(DeltaMap *dm);
extern void delta_spill_finish(DeltaMap *dm);
extern void delta_free(DeltaMap *dm);

/* counter_apply.c */
extern void apply_deltas(DeltaMap *dm);
extern void apply_truncate(CounterState *cs);
extern void counters_row_values(CounterState *cs, List *layout,
								DeltaKeyGroup *row, Datum *values, char *nulls);

/* counter_direct.c */
extern bool counters_apply_direct(CounterState *cs, List *layout,
								  Datum *values, char *nulls);
extern void counters_record_direct(CounterState *cs, Datum **values,
								   char **nulls, int nrows);

/* counter_pending.c */
extern List *pending_maps_for(SourceCounters *sc);
extern bool pending_over_limit(void);
extern void pending_apply(void);
extern void pending_prepare_writes(void);
extern void pending_spill(void);
extern void pending_init(void);

/* counter_layout.c */
extern List *counters_layout(CounterDef *def);
extern Oid	counters_column_type(CounterDef *def, StorageColumn *sc);
extern List *counters_storage_columns(CounterDef *def);
extern char *counters_storage_column_list(CounterDef *def, const char *prefix);
extern char *counters_display_sql(CounterDef *def, int i, const char *alias);
extern char *counters_expected_column_sql(CounterDef *def, StorageColumn *sc,
										  const char *arg);
extern Datum counters_delta_value(CounterDef *def, StorageColumn *sc,
								  GroupDelta *g);
extern char *counters_storage_relation_sql(CounterDef *def);
extern Datum counters_add_delta(CounterDef *def, StorageColumn *sc, Datum old,
								Datum delta);
extern char *counters_fold_sql(CounterDef *def);

/* counter_flush.c */
extern int64 counters_fold(CounterDef *def, bool all);

/* counter_worker.c */
extern void counters_worker_init(void);

/* counter_check.c */
extern char *counters_expected_sql(CounterDef *def);

#endif							/* COUNTERS_H */
