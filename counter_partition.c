/*-------------------------------------------------------------------------
 *
 * counter_partition.c
 *	  Counters over partitioned tables: every row counts once, however it
 *	  is written and however the partitions change.
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

#include "access/table.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/event_trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "counters.h"

PG_FUNCTION_INFO_V1(counters_on_ddl_start);
PG_FUNCTION_INFO_V1(counters_on_ddl_end);

/*
 * counters_has_counters: whether counters are defined on a relation.
 */
bool
counters_has_counters(Oid relid)
{
	SourceCounters *sc = counters_get_source(relid, false);
	bool		result = sc->counters != NIL;

	counters_release_source(sc);
	return result;
}

/*
 * counters_partition_root: the partitioned table whose counters count the
 * rows of partition relid, or InvalidOid when relid is not a partition of
 * a counted table.
 */
Oid
counters_partition_root(Oid relid)
{
	List	   *ancestors;
	Oid			root;

	if (!get_rel_relispartition(relid))
		return InvalidOid;
	ancestors = get_partition_ancestors(relid);
	if (ancestors == NIL)
		return InvalidOid;
	root = llast_oid(ancestors);
	return counters_has_counters(root) ? root : InvalidOid;
}

/*
 * counters_feed_rows: add every row stored in relid (and, when recurse, in
 * the partitions below it) to the pending deltas of root's counters, with
 * the given sign.  The caller holds a lock that keeps writers out.
 */
void
counters_feed_rows(Oid relid, Oid root, int sign, bool recurse)
{
	SourceCounters *sc = counters_get_source(root, false);
	Relation	rootrel = table_open(root, AccessShareLock);
	MemoryContext cxt;
	MemoryContext oldcxt;
	ExprContext *econtext;
	TupleTableSlot *rootslot;
	Snapshot	snapshot;
	ListCell   *lc;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "counters feed",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	econtext = CreateStandaloneExprContext();
	rootslot = MakeSingleTupleTableSlot(RelationGetDescr(rootrel), &TTSOpsVirtual);
	snapshot = RegisterSnapshot(GetLatestSnapshot());

	foreach(lc, recurse ? find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid))
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		TupleConversionMap *map;
		TupleTableSlot *slot;
		TableScanDesc scan;
		int64		n = 0;

		if (rel->rd_rel->relkind != RELKIND_RELATION)
		{
			table_close(rel, AccessShareLock);
			continue;
		}
		map = convert_tuples_by_name(RelationGetDescr(rel),
									 RelationGetDescr(rootrel));
		slot = table_slot_create(rel, NULL);
		scan = table_beginscan(rel, snapshot, 0, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			TupleTableSlot *in = slot;
			ListCell   *mc;

			if (map != NULL)
				in = execute_attr_map_slot(map->attrMap, slot, rootslot);
			foreach(mc, pending_maps_for(sc))
				delta_add_tuple((DeltaMap *) lfirst(mc), econtext, in, sign);
			ResetExprContext(econtext);
			if ((++n & 1023) == 0 && pending_over_limit())
				pending_spill();
		}
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, AccessShareLock);
	}

	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(rootslot);
	FreeExprContext(econtext, true);
	table_close(rootrel, AccessShareLock);
	counters_release_source(sc);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
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
 * for, with SPI connected for the caller.
 */
static Node *
event_parsetree(FunctionCallInfo fcinfo, const char *name)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be called as an event trigger", name)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
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
	Oid			save_userid;
	int			save_sec;

	if (!OidIsValid(relid) || !counters_has_counters(relid))
		return;
	counters_become_superuser(&save_userid, &save_sec);
	foreach(lc, counters_defs_for_source(relid))
	{
		CounterDef *def = (CounterDef *) lfirst(lc);
		const char *how = logged ? "LOGGED" : "UNLOGGED";

		counters_spi_exec(psprintf("ALTER TABLE %s SET %s",
								   counters_relation_name(def->storage), how),
						  SPI_OK_UTILITY);
		counters_spi_exec(psprintf("ALTER TABLE %s SET %s",
								   counters_relation_name(def->deltas), how),
						  SPI_OK_UTILITY);
	}
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * follow_schema: a counter moved to another schema takes its hidden
 * relations along, so that its four relations stay in one schema.
 */
static void
follow_schema(AlterObjectSchemaStmt *stmt)
{
	Oid			nspid;
	Oid			relid;
	CounterDef *def;
	Oid			rels[3];
	int			i;
	Oid			save_userid;
	int			save_sec;

	if (stmt->relation == NULL)
		return;
	nspid = get_namespace_oid(stmt->newschema, true);
	if (!OidIsValid(nspid))
		return;
	relid = get_relname_relid(stmt->relation->relname, nspid);
	if (!OidIsValid(relid) || (def = counters_read_def(relid, true)) == NULL)
		return;
	rels[0] = def->storage;
	rels[1] = def->definition;
	rels[2] = def->deltas;
	counters_become_superuser(&save_userid, &save_sec);
	for (i = 0; i < lengthof(rels); i++)
		if (get_rel_namespace(rels[i]) != nspid)
			counters_spi_exec(psprintf("ALTER %s %s SET SCHEMA %s",
									   get_rel_relkind(rels[i]) == RELKIND_VIEW ? "VIEW" : "TABLE",
									   counters_relation_name(rels[i]),
									   quote_identifier(stmt->newschema)),
							  SPI_OK_UTILITY);
	SetUserIdAndSecContext(save_userid, save_sec);
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
	if (!OidIsValid(relid) || !OidIsValid(counter = counters_counter_of_view(relid)))
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

	if (IsA(parsetree, ViewStmt))
		refuse_replace_view((ViewStmt *) parsetree);
	else if (IsA(parsetree, DropStmt) &&
		((DropStmt *) parsetree)->removeType == OBJECT_VIEW)
	{
		/*
		 * Dropping a counter: take the source's lock first, as a writer
		 * does, so that a writer whose deltas are pending finishes first
		 * instead of deadlocking with us at its commit.
		 */
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
			Oid			relid = RangeVarGetRelid(rv, NoLock, true);
			CounterDef *def = OidIsValid(relid) ? counters_read_def(relid, true) : NULL;

			if (def != NULL)
				LockRelationOid(def->source, ShareRowExclusiveLock);
		}
	}
	else if (IsA(parsetree, DropStmt) &&
			 ((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
			Oid			relid = RangeVarGetRelid(rv, NoLock, true);
			Oid			root;

			if (!OidIsValid(relid) || !OidIsValid(root = counters_partition_root(relid)))
				continue;
			LockRelationOid(relid, AccessExclusiveLock);
			counters_feed_rows(relid, root, -1, true);
		}
	}
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
		Oid			parent = RangeVarGetRelid(stmt->relation, NoLock, true);

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
					counters_feed_rows(child, root, -1, true);
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
 * children of counted tables.
 */
Datum
counters_on_ddl_end(PG_FUNCTION_ARGS)
{
	Node	   *parsetree = event_parsetree(fcinfo, "counters.on_ddl_end()");
	ListCell   *lc;

	if (IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt))
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
	else if (IsA(parsetree, AlterObjectSchemaStmt))
		follow_schema((AlterObjectSchemaStmt *) parsetree);
	else if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
			Oid			child;
			Oid			root;

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
			counters_feed_rows(child, root, +1, true);
		}
	}
	SPI_finish();
	PG_RETURN_VOID();
}
