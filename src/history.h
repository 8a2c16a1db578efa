/*-------------------------------------------------------------------------
 *
 * history.h
 *	  Migration history: what the worker needs from history.c.
 *
 * IDENTIFICATION
 *	  src/history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_HISTORY_H
#define MT_HISTORY_H

#include "datatype/timestamp.h"

/*
 * Run one due scheduled migration statement in the current database (in
 * the worker).  Returns true when it ran something, false when nothing
 * was due; then *next_due is set to when a pending retry becomes due
 * (left alone when none is waiting).  (schedule.c)
 */
extern bool mt_history_run_scheduled(TimestampTz *next_due);

/* GUCs of scheduled statements, from _PG_init.  (schedule.c) */
extern void mt_schedule_init(void);

/*
 * A fingerprint (hex digest) of the schema of the current database: the
 * tables, columns, types, defaults, constraints and indexes outside the
 * system and extension schemas.  apply() stores it per migration;
 * schema_drift() compares against it.  (drift.c)
 */
extern char *mt_catalog_fingerprint(void);

#endif							/* MT_HISTORY_H */
