/*-------------------------------------------------------------------------
 *
 * schedule.h
 *	  Scheduled migration statements: what the worker, _PG_init and
 *	  schedule_index.c need from schedule.c.
 *
 * IDENTIFICATION
 *	  src/schedule.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_SCHEDULE_H
#define MT_SCHEDULE_H

#include "datatype/timestamp.h"
#include "utils/palloc.h"

/*
 * Run one due scheduled migration statement in the current database (in
 * the worker).  Returns true when it ran something, false when nothing
 * was due; then *next_due is set to when a pending retry becomes due
 * (left alone when none is waiting).
 */
extern bool mt_history_run_scheduled(TimestampTz *next_due);

/*
 * Is a scheduled statement of the current database due and waiting for a
 * worker?  A running backfill gives its slot up then.  In a transaction, as
 * a role that may read the history tables.
 */
extern bool mt_scheduled_work_due(void);

/*
 * Run sql as top-level statements, each in a transaction of its own (all
 * in one with one_transaction), as run_as (NULL: the worker's own role),
 * showing version in migration_tools.applying_version.  Trees live in cxt.
 */
extern void mt_schedule_run_top_level(const char *sql, const char *run_as,
									  const char *version, bool one_transaction,
									  MemoryContext cxt);

/* GUCs of scheduled statements, from _PG_init. */
extern void mt_schedule_init(void);

#endif							/* MT_SCHEDULE_H */
