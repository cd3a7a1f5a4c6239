/*-------------------------------------------------------------------------
 *
 * counter_flush.c
 *	  Buffered mode: folding recorded deltas into counter rows, flush() and
 *	  set_mode().
 *
 * A buffered counter's maintenance only records deltas in its deltas
 * table, in rows of the writing backend's own (counter_direct.c): no
 * unique key, no row lock to queue on, so writers to one hot key never
 * wait on each other.  Reading the counter sums its storage rows and the
 * recorded deltas (see counters_storage_relation_sql), so reads are exact,
 * including a transaction's own uncommitted changes.  Folding moves the
 * committed deltas into the storage rows in one statement that locks the
 * delta rows nobody holds and deletes them with RETURNING, so that
 * concurrent folds, and writers committing meanwhile, can never make a
 * delta count twice or not at all, and a fold never waits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "counters.h"

PG_FUNCTION_INFO_V1(counters_flush);
PG_FUNCTION_INFO_V1(counters_set_mode);

/*
 * ensure_global_row: a counter without keys must have its one storage row
 * before deltas are folded into it (an unlogged storage loses it in a
 * crash).
 */
static void
ensure_global_row(CounterDef *def)
{
	char	   *storage = counters_storage_name(def);
	int			ncols = list_length(counters_layout(def));
	int			i;
	StringInfoData buf;

	counters_spi_exec(psprintf("SELECT FROM %s LIMIT 1", storage), SPI_OK_SELECT);
	if (SPI_processed > 0)
		return;
	counters_spi_exec(psprintf("LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", storage),
					  SPI_OK_UTILITY);
	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s (%s) SELECT ", storage,
					 counters_storage_column_list(def, NULL));
	for (i = 0; i < ncols; i++)
		appendStringInfo(&buf, "%s0", i > 0 ? ", " : "");
	appendStringInfo(&buf, " WHERE NOT EXISTS (SELECT FROM %s)", storage);
	counters_spi_exec(buf.data, SPI_OK_INSERT);
}

/*
 * counters_fold: fold the committed recorded deltas of one counter into
 * its storage, as its owner.  Returns how many delta rows were folded.
 * A fold skips the delta rows that another flush holds at that moment;
 * with all, it waits for such flushes first, so that nothing is left
 * behind (set_mode and rebuild need that; they keep writers out through
 * their lock on the source).  SPI must be connected and a safe search_path
 * set.
 */
int64
counters_fold(CounterDef *def, bool all)
{
	Oid			save_userid;
	int			save_sec;
	volatile int64 folded = 0;

	if (all && OidIsValid(def->deltas))
		LockRelationOid(def->deltas, ExclusiveLock);

	counters_begin_maintenance(counters_relation_owner(def->counter),
							   &save_userid, &save_sec);
	PG_TRY();
	{
		bool		isnull;
		Datum		tids;

		if (def->nkeys == 0)
			ensure_global_row(def);
		counters_spi_exec(counters_fold_sql(def), SPI_OK_SELECT);
		folded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
		tids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		/* groups whose count reached zero disappear */
		if (!isnull && ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(tids)),
									  ARR_DIMS(DatumGetArrayTypeP(tids))) > 0)
		{
			Oid			argtypes[1] = {TIDARRAYOID};
			Datum		values[1] = {tids};

			if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) "
											   "AND " COUNTERS_ROWS_COLUMN " OPERATOR(pg_catalog.=) 0",
											   counters_storage_name(def)),
									  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "counters: could not delete empty groups of %s",
					 counters_storage_name(def));
		}
	}
	PG_FINALLY();
	{
		counters_end_maintenance(save_userid, save_sec);
	}
	PG_END_TRY();
	return folded;
}

/*
 * counters_flush: SQL function flush(counter DEFAULT NULL).  Folds the
 * recorded deltas of one counter, or of every counter the caller owns
 * (every counter, for a superuser), and returns how many it folded.
 */
Datum
counters_flush(PG_FUNCTION_ARGS)
{
	List	   *counters = NIL;
	ListCell   *lc;
	int64		total = 0;
	int			nestlevel;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = counters_set_safe_search_path();

	/* our own pending deltas first, so that they are folded too */
	pending_apply();

	if (!PG_ARGISNULL(0))
		counters = list_make1_oid(PG_GETARG_OID(0));
	else
	{
		uint64		i;

		counters_spi_exec("SELECT counter::pg_catalog.oid, definition::pg_catalog.oid, "
						  "storage::pg_catalog.oid, deltas::pg_catalog.oid FROM counters.counter_def "
						  "ORDER BY source::pg_catalog.oid, counter::pg_catalog.oid",
						  SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			Oid			rels[4];
			int			c;
			bool		free = true;

			for (c = 0; c < 4; c++)
			{
				bool		isnull;

				rels[c] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, c + 1,
														 &isnull));
			}
			if (!pg_class_ownercheck(rels[0], GetUserId()))
				continue;

			/*
			 * Flushing everything (the background worker does) never waits
			 * for a lock: a counter being dropped or altered is skipped this
			 * round, so that flushes can never deadlock with DDL.
			 */
			for (c = 0; c < 4 && free; c++)
				free = ConditionalLockRelationOid(rels[c], c < 2 ? AccessShareLock : RowExclusiveLock) &&
					SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rels[c]));
			if (free)
				counters = lappend_oid(counters, rels[0]);
		}
	}

	foreach(lc, counters)
	{
		Oid			counter = lfirst_oid(lc);
		CounterDef *def = counters_read_def(counter, false);

		if (!pg_class_ownercheck(counter, GetUserId()))
			aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));
		total += counters_fold(def, false);
	}

	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	PG_RETURN_INT64(total);
}

/*
 * counters_set_mode: SQL function set_mode(counter, mode).  Switching
 * waits for the transactions writing the source (a SHARE ROW EXCLUSIVE
 * lock, as create_counter takes), so that no delta recorded under one mode
 * is applied under the other; leaving buffered mode folds every delta.
 */
Datum
counters_set_mode(PG_FUNCTION_ARGS)
{
	Oid			counter = PG_GETARG_OID(0);
	char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CounterDef *def;
	int			nestlevel;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	Oid			save_userid;
	int			save_sec;

	counters_check_mode(mode);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nestlevel = counters_set_safe_search_path();

	def = counters_read_def(counter, false);
	if (!pg_class_ownercheck(counter, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_VIEW, get_rel_name(counter));
	if (strcmp(def->mode, mode) == 0)
	{
		AtEOXact_GUC(true, nestlevel);
		SPI_finish();
		PG_RETURN_VOID();
	}

	LockRelationOid(def->source, ShareRowExclusiveLock);
	pending_apply();
	if (def->buffered)
		counters_fold(def, true);

	values[0] = ObjectIdGetDatum(counter);
	values[1] = CStringGetTextDatum(mode);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_execute_with_args("UPDATE counters.counter_def SET mode = $2 "
							  "WHERE counter::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "counters: could not change the mode of counter %u", counter);
	SetUserIdAndSecContext(save_userid, save_sec);

	def->mode = mode;
	def->buffered = strcmp(mode, "buffered") == 0;
	counters_make_view(def, counters_relation_name(counter), true);
	/* CREATE OR REPLACE VIEW rewrote the rule's dependencies */
	counters_record_dependencies(def, true);

	CacheInvalidateRelcacheByRelid(def->source);
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	PG_RETURN_VOID();
}
