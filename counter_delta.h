/*-------------------------------------------------------------------------
 *
 * counter_delta.h
 *	  Deltas: what one changed row adds to a counter, summed per key
 *	  (counter_delta.c), and the storage layout those sums are written in,
 *	  with the SQL that reads and computes storage rows (counter_layout.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_DELTA_H
#define COUNTER_DELTA_H

#include "executor/tuptable.h"
#include "nodes/execnodes.h"

#include "counter_catalog.h"

/* What one column of a storage table holds (see counter_layout.c) */
typedef enum StorageColumnKind
{
	SC_OUTPUT,					/* the query's column col */
	SC_ROWS,					/* source rows in the group */
	SC_NN,						/* non-null values summed by column col */
	SC_NAN,						/* NaN values seen by numeric sum col */
	SC_PINF,					/* Infinity values */
	SC_NINF,					/* -Infinity values */
	SC_SHARD					/* Citus partial rows: their shard (a key) */
} StorageColumnKind;

typedef struct StorageColumn
{
	StorageColumnKind kind;
	int			col;			/* output column, or -1 */
	char	   *name;			/* quoted */
} StorageColumn;

/*
 * Exact integer sums: 128 bits where the compiler has them, so that no sum
 * of bigints can overflow; otherwise 64 bits that turn into a numeric on
 * overflow (build with -DCOUNTERS_NO_INT128 to test that path).
 */
#if defined(HAVE_INT128) && !defined(COUNTERS_NO_INT128)
#define COUNTERS_HAVE_INT128 1
typedef int128 CounterIntSum;
#else
typedef struct CounterIntSum
{
	int64		low;			/* sum so far, while it fits */
	Datum		big;			/* numeric sum once it did not, or 0 */
} CounterIntSum;
#endif

/*
 * Summed deltas of one key.  For an aggregate column, counts[] holds the
 * delta of count(*)/count(expr) or of the number of non-null values of a
 * sum, and sums[] the delta of the sum (integers exactly, numerics as a
 * Datum).
 */
typedef struct GroupDelta
{
	int64		rows;
	int64	   *counts;			/* per column */
	CounterIntSum *isums;		/* per column, integer sums */
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

/* counter_layout.c: storage columns and values */
extern List *counters_layout(CounterDef *def);
extern Oid	counters_column_type(CounterDef *def, StorageColumn *sc);
extern bool counters_is_key_column(CounterDef *def, StorageColumn *sc);
extern char *counters_storage_column_list(CounterDef *def, const char *prefix);
extern Datum counters_delta_value(CounterDef *def, StorageColumn *sc,
								  GroupDelta *g);
extern void counters_row_values(CounterState *cs, DeltaKeyGroup *row,
								Datum *values, char *nulls);
extern Datum counters_add_delta(CounterDef *def, StorageColumn *sc, Datum old,
								Datum delta);
extern int64 counters_add_row_deltas(CounterDef *def, Datum *vals,
									 Datum *deltas);
extern HeapTuple counters_next_version(CounterDef *def, TupleDesc desc,
									   HeapTuple tup, Datum *vals, bool *nulls);

/* counter_layout.c: SQL over storage rows */
extern char *counters_display_sql(CounterDef *def, int i, const char *alias);
extern char *counters_expected_sql(CounterDef *def);
extern char *counters_fill_sql(CounterDef *def, const char *shard_expr);
extern char *counters_empty_sql(CounterDef *def, const char *alias);
extern char *counters_storage_relation_sql(CounterDef *def);
extern const char *counters_sum_cast(CounterDef *def, StorageColumn *sc);

/* counter_delta.c */
extern DeltaMap *counters_delta_create(CounterState *cs, MemoryContext parent);
extern void counters_delta_add(DeltaMap *dm, ExprContext *econtext,
							   TupleTableSlot *slot, int sign);
extern bool counters_group_is_zero(CounterDef *def, GroupDelta *g);
extern Datum counters_int_sum_datum(CounterIntSum *sum, bool to_numeric);
extern DeltaKeyGroup *counters_delta_groups(DeltaMap *dm, int *ngroups);
extern Size counters_delta_memory(DeltaMap *dm);
extern void counters_delta_spill(DeltaMap *dm);
extern void counters_delta_spill_finish(DeltaMap *dm);
extern void counters_delta_free(DeltaMap *dm);
extern void counters_delta_clear(DeltaMap *dm);

#endif							/* COUNTER_DELTA_H */
