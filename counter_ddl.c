/*-------------------------------------------------------------------------
 *
 * counter_ddl.c
 *	  The event triggers of the counters extension: following DDL that
 *	  concerns counters, and refusing what they could not follow.
 *
 * Dropping a counter's relation, storage or source (directly or by
 * CASCADE) removes the definition, the storage and, with the last counter
 * of a source, the source's triggers (counters_on_sql_drop).  Moving a
 * counter to another schema moves its hidden relations; SET (UN)LOGGED of
 * a source applies to its counters' storage; CREATE OR REPLACE VIEW of a
 * counter, and changing the type of a counted column, are refused with a
 * message naming the counter.
 *
 * Partitioned sources: every row counts once, however it is written and
 * however the partitions change.
 *
 * Statement triggers fire only on the table a statement names, so a
 * counter on a partitioned table has its triggers on the root and on every
 * partition: a statement through the root fires the root's triggers (its
 * transition tables hold all routed rows, and rows moved between
 * partitions as updates); a statement on a partition fires that
 * partition's, whose rows are converted to the root's layout before the
 * counter's expressions see them.  Partitions get a BEFORE TRUNCATE
 * trigger that subtracts their rows, since after the truncate they are
 * gone; the root's AFTER TRUNCATE empties the counter.
 *
 * Partition DDL is followed by event triggers: a partition created or
 * attached later gets the triggers, and an attached one's rows are added;
 * a partition detached or dropped has its rows subtracted first.  Each of
 * these holds an ACCESS EXCLUSIVE lock on the partition, so no write can
 * slip between the count and the change.  Tables with counters cannot
 * become partitions or inheritance children, and a counted table cannot
 * get inheritance children, since rows written through one would not
 * reach the other's triggers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "counter_ops.h"
#include "counters.h"

COUNTERS_FUNCTION(counters_on_sql_drop);
COUNTERS_FUNCTION(counters_on_ddl_start);
COUNTERS_FUNCTION(counters_on_ddl_end);

/*
 * counters_on_sql_drop: when a counter relation, its storage or its source
 * is dropped (directly or by CASCADE), remove the definition, the storage
 * and, with the last counter of a source, the source's triggers.
 */
Datum
counters_on_sql_drop(PG_FUNCTION_ARGS)
{
	List	   *dropped = NIL;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("counters.on_sql_drop() must be called as an event trigger")));
	if (counters_in_own_script())
		PG_RETURN_VOID();

	counters_spi_connect();

	counters_spi_exec("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
					  "WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					  "AND objsubid OPERATOR(pg_catalog.=) 0",
					  SPI_OK_SELECT);
	dropped = counters_spi_oids();

	if (dropped != NIL)
		counters_forget_dropped(dropped);

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * refuse_counted_child: a table with counters cannot become a partition or
 * an inheritance child, and a counted table cannot get inheritance
 * children.
 */
static void
refuse_counted_child(Oid child)
{
	if (OidIsValid(child) && counters_has_counters(child))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot make table \"%s\" a partition or child: it has counters",
						get_rel_name(child)),
				 errdetail("Rows written through the parent would not reach its counters."),
				 errhint("Drop its counters first, or declare them on the parent.")));
}

/*
 * refuse_inheritance_parent: see refuse_counted_child.
 */
static void
refuse_inheritance_parent(Oid parent)
{
	if (OidIsValid(parent) && counters_has_counters(parent))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot inherit from table \"%s\": it has counters",
						get_rel_name(parent)),
				 errdetail("Rows written to a child would not reach the counters' triggers."),
				 errhint("Use declarative partitioning, which counters support.")));
}

/*
 * event_parsetree: the parse tree of the command an event trigger fires
 * for, with SPI connected for the caller; NULL, without SPI, for the DDL of
 * the extension's own scripts.
 */
static Node *
event_parsetree(FunctionCallInfo fcinfo, const char *name)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be called as an event trigger", name)));
	if (counters_in_own_script())
		return NULL;
	counters_spi_connect();
	return ((EventTriggerData *) fcinfo->context)->parsetree;
}

/*
 * refuse_retype: changing the type of a column a counter uses is refused by
 * PostgreSQL (the definition view depends on it); refuse it first, with a
 * message that names the counter.
 */
static void
refuse_retype(Oid relid, const char *column)
{
	AttrNumber	attnum;
	ListCell   *lc;

	if (!OidIsValid(relid) || !counters_has_counters(relid))
		return;
	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber)
		return;
	foreach(lc, counters_defs_for_source(relid))
	{
		CounterDef *def = (CounterDef *) lfirst(lc);
		Bitmapset  *attrs = NULL;

		pull_varattnos((Node *) def->exprs, 1, &attrs);
		pull_varattnos((Node *) def->filter, 1, &attrs);
		if (bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, attrs))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot alter type of column \"%s\" of table \"%s\": counter %s uses it",
							column, get_rel_name(relid), counters_relation_name(def->counter)),
					 errhint("Drop the counter (counters.drop_counter), change the column, and create the counter again.")));
	}
}

/*
 * follow_persistence: SET LOGGED / SET UNLOGGED of a counted table applies
 * to its counters' storage and deltas too, so that crash recovery resets
 * both or neither.
 */
static void
follow_persistence(Oid relid, bool logged)
{
	ListCell   *lc;

	if (!OidIsValid(relid) || !counters_has_counters(relid))
		return;
	foreach(lc, counters_defs_for_source(relid))
	{
		CounterDef *def = (CounterDef *) lfirst(lc);
		const char *how = logged ? "LOGGED" : "UNLOGGED";
		CountersRole role;

		/* as their owner, who may */
		counters_become(&role, counters_relation_owner(def->storage), 0);
		counters_spi_exec(psprintf("ALTER TABLE %s SET %s",
								   counters_relation_name(def->storage), how),
						  SPI_OK_UTILITY);
		counters_spi_exec(psprintf("ALTER TABLE %s SET %s",
								   counters_relation_name(def->deltas), how),
						  SPI_OK_UTILITY);
		counters_unbecome(&role);
	}
}

/*
 * may_drop: whether the current user may drop (or alter) a relation: its
 * owner, or the owner of its schema, as DROP checks.  Counters' own steps
 * before a DDL command (locks, counting rows) happen only when PostgreSQL
 * is going to let the command run: a role without the right gets
 * PostgreSQL's "must be owner" at once, and holds no lock meanwhile.
 */
static bool
may_drop(Oid relid)
{
	return pg_class_ownercheck(relid, GetUserId()) ||
		pg_namespace_ownercheck(get_rel_namespace(relid), GetUserId());
}

/*
 * lock_sources_of: lock the sources of the counters that a DROP of an
 * extension or schemas takes along (SHARE ROW EXCLUSIVE, in source order,
 * as dropping one counter does), so that writers whose deltas are pending
 * finish first instead of deadlocking with the DROP at their commit.
 * nsps: the schemas dropped, or NIL for every counter.
 */
static void
lock_sources_of(List *nsps)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(nsps), 1));
	Datum		values[1];
	Oid			argtypes[1] = {OIDARRAYOID};
	List	   *sources = NIL;
	ListCell   *lc;

	foreach(lc, nsps)
		elems[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = PointerGetDatum(construct_array(elems, list_length(nsps), OIDOID,
												sizeof(Oid), true, TYPALIGN_INT));
	if (SPI_execute_with_args("SELECT DISTINCT d.source::pg_catalog.oid FROM counters.counter_def d "
							  "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.counter::pg_catalog.oid "
							  "JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.source::pg_catalog.oid "
							  "WHERE $1 OPERATOR(pg_catalog.=) '{}' "
							  "OR c.relnamespace OPERATOR(pg_catalog.=) ANY ($1) "
							  "OR s.relnamespace OPERATOR(pg_catalog.=) ANY ($1) ORDER BY 1",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "counters: reading counters.counter_def failed");
	sources = counters_spi_oids();
	foreach(lc, sources)
		LockRelationOid(lfirst_oid(lc), ShareRowExclusiveLock);
}

/*
 * before_drop: what a DROP command that takes counters along needs first.
 */
static void
before_drop(DropStmt *stmt)
{
	ListCell   *lc;

	switch (stmt->removeType)
	{
		case OBJECT_VIEW:

			/*
			 * Dropping a counter: take the source's lock first, as a writer
			 * does, so that a writer whose deltas are pending finishes
			 * first instead of deadlocking with us at its commit.
			 */
			foreach(lc, stmt->objects)
			{
				RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
				Oid			relid = RangeVarGetRelid(rv, NoLock, true);
				CounterDef *def;

				if (!OidIsValid(relid) || !may_drop(relid) ||
					(def = counters_read_def(relid, true)) == NULL)
					continue;
				counters_citus_check_drop(def, stmt->missing_ok);
				LockRelationOid(def->source, ShareRowExclusiveLock);
			}
			break;
		case OBJECT_TABLE:

			/* a partition dropped: its rows go first */
			foreach(lc, stmt->objects)
			{
				RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
				Oid			relid = RangeVarGetRelid(rv, NoLock, true);
				Oid			root;

				if (!OidIsValid(relid) || !may_drop(relid) ||
					!OidIsValid(root = counters_partition_root(relid)))
					continue;
				LockRelationOid(relid, AccessExclusiveLock);
				counters_feed_relation(relid, root, -1, true);
			}
			break;
		case OBJECT_EXTENSION:
			foreach(lc, stmt->objects)
			{
				Oid			ext = get_extension_oid(strVal(lfirst(lc)), true);

				if (OidIsValid(ext) && strcmp(strVal(lfirst(lc)), "counters") == 0 &&
					pg_extension_ownercheck(ext, GetUserId()))
					lock_sources_of(NIL);
			}
			break;
		case OBJECT_SCHEMA:
			{
				List	   *nsps = NIL;

				foreach(lc, stmt->objects)
				{
					Oid			nsp = get_namespace_oid(strVal(lfirst(lc)), true);

					if (OidIsValid(nsp) && pg_namespace_ownercheck(nsp, GetUserId()))
						nsps = lappend_oid(nsps, nsp);
				}
				if (nsps != NIL)
					lock_sources_of(nsps);
			}
			break;
		default:
			break;
	}
}

/*
 * after_alter: after ALTER TABLE / VIEW / SCHEMA, hidden relations follow
 * the counter's new name or schema, and counters their source's new owner
 * (see pg_event_trigger_ddl_commands).
 */
static void
after_alter(void)
{
	List	   *rels = NIL;
	List	   *nsps = NIL;
	ListCell   *lc;
	uint64		i;

	counters_spi_exec("SELECT classid::pg_catalog.regclass::pg_catalog.text, objid "
					  "FROM pg_catalog.pg_event_trigger_ddl_commands() "
					  "WHERE classid OPERATOR(pg_catalog.=) ANY "
					  "('{pg_catalog.pg_class,pg_catalog.pg_namespace}'::pg_catalog.regclass[])",
					  SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *classid = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc, 1, &isnull));
		Oid			objid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));

		if (strcmp(classid, "pg_class") == 0)
			rels = list_append_unique_oid(rels, objid);
		else
			nsps = list_append_unique_oid(nsps, objid);
	}

	/* a renamed schema: its counters' hidden relations are renamed */
	foreach(lc, nsps)
	{
		Datum		values[1] = {ObjectIdGetDatum(lfirst_oid(lc))};
		Oid			argtypes[1] = {OIDOID};

		if (SPI_execute_with_args("SELECT d.counter::pg_catalog.oid FROM counters.counter_def d "
								  "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.counter::pg_catalog.oid "
								  "WHERE c.relnamespace OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "counters: reading counters.counter_def failed");
		rels = list_concat_unique_oid(rels, counters_spi_oids());
	}

	foreach(lc, rels)
	{
		Oid			relid = lfirst_oid(lc);

		if (get_rel_relkind(relid) == '\0')
			continue;
		counters_follow_owner(relid);
		if (counters_read_def(relid, true) != NULL)
			counters_follow_rename(relid);
	}
}

/*
 * refuse_replace_view: CREATE OR REPLACE VIEW of a counter, or of the
 * view holding its defining query, would silently change what the counter
 * shows or what its storage is said to count; refuse it.
 */
static void
refuse_replace_view(ViewStmt *stmt)
{
	Oid			relid;
	Oid			counter;

	if (!stmt->replace || counters_replacing_view)
		return;
	relid = RangeVarGetRelid(stmt->view, NoLock, true);
	if (!OidIsValid(relid) || !OidIsValid(counter = counters_counter_of(relid)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 relid == counter ?
			 errmsg("cannot replace counter \"%s\"", get_rel_name(relid)) :
			 errmsg("cannot replace view \"%s\", the definition of counter \"%s\"",
					get_rel_name(relid), get_rel_name(counter)),
			 errdetail("A counter's query is fixed when the counter is declared; its storage counts exactly that query."),
			 errhint("To change a counter, drop it with counters.drop_counter() and declare it again with counters.create_counter().")));
}

/*
 * counters_on_ddl_start: before DROP TABLE of a partition or DETACH
 * PARTITION, subtract the partition's rows from its root's counters;
 * refuse ATTACH and INHERIT that counters could not follow, and the
 * replacement of a counter's views.
 */
Datum
counters_on_ddl_start(PG_FUNCTION_ARGS)
{
	Node	   *parsetree = event_parsetree(fcinfo, "counters.on_ddl_start()");
	ListCell   *lc;

	if (parsetree == NULL)
		PG_RETURN_VOID();
	if (IsA(parsetree, ViewStmt))
		refuse_replace_view((ViewStmt *) parsetree);
	else if (IsA(parsetree, AlterObjectSchemaStmt) &&
			 ((AlterObjectSchemaStmt *) parsetree)->relation != NULL)
		counters_citus_check_move(RangeVarGetRelid(((AlterObjectSchemaStmt *) parsetree)->relation,
												   NoLock, true));
	else if (IsA(parsetree, DropStmt))
		before_drop((DropStmt *) parsetree);
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		Oid			parent = RangeVarGetRelid(stmt->relation, NoLock, true);

		/* nothing to do for a command PostgreSQL is going to refuse */
		if (!OidIsValid(parent) || !pg_class_ownercheck(parent, GetUserId()))
		{
			SPI_finish();
			PG_RETURN_VOID();
		}
		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
			Oid			child;
			Oid			root;

			switch (cmd->subtype)
			{
				case AT_AlterColumnType:
					refuse_retype(parent, cmd->name);
					break;
				case AT_ChangeOwner:
					counters_check_owner_change(parent,
												get_rolespec_oid(cmd->newowner, false));
					break;
				case AT_AttachPartition:
					refuse_counted_child(RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
														  NoLock, true));
					break;
				case AT_AddInherit:
					refuse_counted_child(parent);
					refuse_inheritance_parent(RangeVarGetRelid((RangeVar *) cmd->def,
															   NoLock, true));
					break;
				case AT_DetachPartition:
					child = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
											 NoLock, true);
					if (!OidIsValid(child) ||
						!OidIsValid(root = counters_partition_root(child)))
						break;
					LockRelationOid(child, AccessExclusiveLock);
					counters_feed_relation(child, root, -1, true);
					break;
				default:
					break;
			}
		}
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * counters_on_ddl_end: after CREATE TABLE ... PARTITION OF or ATTACH
 * PARTITION under a counted table, install the triggers on the new
 * partitions and count an attached partition's rows; refuse inheritance
 * children of counted tables.  After CREATE SUBSCRIPTION, immediate-mode
 * counters of a two-phase subscriber read their deltas too.
 */
Datum
counters_on_ddl_end(PG_FUNCTION_ARGS)
{
	Node	   *parsetree = event_parsetree(fcinfo, "counters.on_ddl_end()");
	ListCell   *lc;

	if (parsetree == NULL)
		PG_RETURN_VOID();
	if (IsA(parsetree, CreateSubscriptionStmt))
		counters_follow_subscriptions();
	else if (IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt))
	{
		CreateStmt *stmt = (CreateStmt *) parsetree;
		Oid			relid;
		Oid			root;

		if (stmt->partbound == NULL)
		{
			foreach(lc, stmt->inhRelations)
				refuse_inheritance_parent(RangeVarGetRelid((RangeVar *) lfirst(lc),
														   NoLock, true));
		}
		else
		{
			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
			if (OidIsValid(relid) && OidIsValid(root = counters_partition_root(relid)))
				counters_install_partition_triggers(relid);
		}
	}
	else if (IsA(parsetree, AlterObjectSchemaStmt) || IsA(parsetree, RenameStmt))
		after_alter();
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

		after_alter();
		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
			Oid			child;
			Oid			root;

			if (cmd->subtype == AT_EnableTrig || cmd->subtype == AT_EnableTrigAll ||
				cmd->subtype == AT_EnableTrigUser)
			{
				counters_restore_trigger_modes(RangeVarGetRelid(stmt->relation, NoLock, true));
				continue;
			}
			if (cmd->subtype == AT_SetLogged || cmd->subtype == AT_SetUnLogged)
			{
				follow_persistence(RangeVarGetRelid(stmt->relation, NoLock, true),
								   cmd->subtype == AT_SetLogged);
				continue;
			}
			if (cmd->subtype == AT_DetachPartition ||
				cmd->subtype == AT_DetachPartitionFinalize)
			{
				/* a detached partition is a table of its own again */
				child = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);
				if (OidIsValid(child) && !get_rel_relispartition(child) &&
					!counters_has_counters(child))
					counters_drop_triggers(child);
				continue;
			}
			if (cmd->subtype != AT_AttachPartition)
				continue;
			child = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);
			if (!OidIsValid(child) || !OidIsValid(root = counters_partition_root(child)))
				continue;
			counters_install_partition_triggers(child);
			LockRelationOid(child, AccessExclusiveLock);
			counters_feed_relation(child, root, +1, true);
		}
	}
	SPI_finish();
	PG_RETURN_VOID();
}
