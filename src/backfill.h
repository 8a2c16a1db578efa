/*-------------------------------------------------------------------------
 *
 * backfill.h
 *	  Batched backfills: what the per-database worker (worker.c) needs
 *	  from backfill_worker.c.
 *
 * IDENTIFICATION
 *	  src/backfill.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_BACKFILL_H
#define MT_BACKFILL_H

#include "datatype/timestamp.h"

/*
 * What a worker keeps between the backfill jobs it runs (backfill_worker.c):
 * created once per worker process, passed to the functions below.
 */
typedef struct MtBackfillRunner MtBackfillRunner;

extern MtBackfillRunner *mt_backfill_runner_create(void);

/*
 * Claim one runnable job of the current database and run it until it ends
 * or must stop (paused, cancelled, out of its run window).  Returns true
 * when it ran a job; false when none is runnable, with *next_due set to
 * the earliest time a job becomes runnable (0 if none).
 */
extern bool mt_backfill_run_next(MtBackfillRunner *runner, TimestampTz *next_due);

/*
 * After mt_backfill_run_next() returned true: did its job give the worker
 * slot up for work of another database?  Then the worker should exit, and
 * tell the launcher *next_due (when that job wants to go on).
 */
extern bool mt_backfill_leave_worker(MtBackfillRunner *runner, TimestampTz *next_due);

/* Define the backfill and throttle GUCs (from _PG_init). */
extern void mt_backfill_init(void);

#endif							/* MT_BACKFILL_H */
