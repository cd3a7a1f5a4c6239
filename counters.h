/*-------------------------------------------------------------------------
 *
 * counters.h
 *	  What the entry points of the counters extension share: the module
 *	  (counters.c) starts the background worker (counter_worker.c).
 *
 * The layers of the extension are described in counter_util.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COUNTERS_H
#define COUNTERS_H

/* counter_worker.c */
extern void counters_worker_init(void);

#endif							/* COUNTERS_H */
