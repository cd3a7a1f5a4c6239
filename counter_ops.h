/*-------------------------------------------------------------------------
 *
 * counter_ops.h
 *	  Operations on counters as a whole: declaring, dropping and switching
 *	  mode (counter_define.c), comparing with the defining query and
 *	  repairing (counter_check.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTER_OPS_H
#define COUNTER_OPS_H

#include "funcapi.h"

#include "counter_pending.h"
#include "counter_write.h"

/* counter_define.c */
extern Oid	counters_define(const char *name, const char *query,
							const char *mode);
extern void counters_drop(Oid counter);
extern void counters_forget_dropped(List *dropped_oids);
extern bool counters_switch_mode(Oid counter, const char *mode, bool nowait);
extern void counters_follow_subscriptions(void);
extern int	counters_refresh_views(void);
extern void counters_install_partition_triggers(Oid relid);
extern void counters_drop_triggers(Oid relid);
extern void counters_record_dependencies(CounterDef *def, bool rule_only);
extern void counters_follow_rename(Oid counter);
extern void counters_check_owner_change(Oid relid, Oid newowner);
extern void counters_follow_owner(Oid relid);
extern void counters_migrate(void);
extern void counters_restore_trigger_modes(Oid relid);
extern bool counters_replacing_view;

/* counter_distribute.c: counters over Citus tables */
extern CitusKind counters_citus_prepare(CounterDef *def, CitusTable *info);
extern void counters_citus_lock(Oid relid, const char *mode);
extern void counters_citus_distribute(CounterDef *def, CitusTable *info);
extern char *counters_citus_shard_expr(CounterDef *def, CitusTable *info);
extern int	counters_citus_unsafe_triggers(void);
extern void counters_citus_touch(Oid source);
extern void counters_citus_drop_triggers(Oid relid, const char *const *names, int n);
extern bool counters_citus_drop_hidden(List *rels);
extern void counters_citus_check_drop(CounterDef *def, bool missing_ok);
extern bool counters_citus_set_owner(Oid relid, Oid newowner);
extern void counters_citus_check_move(Oid relid);
extern void counters_citus_refill(CounterDef *def);
extern int64 counters_citus_flush(CounterDef *def);
extern int64 counters_citus_flush_local(Oid counter);
extern void counters_citus_check_query(Query *query);

/* counter_check.c */
extern void counters_compare(Oid counter, ReturnSetInfo *rsinfo);
extern int64 counters_recompute(Oid counter);

#endif							/* COUNTER_OPS_H */
