/*-------------------------------------------------------------------------
 *
 * history.h
 *	  Migration history: what the worker and apply() need from the files
 *	  of the history subsystem (schedule.c, drift.c).
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

/*
 * Is a scheduled statement of the current database due and waiting for a
 * worker?  A running backfill gives its slot up then.  In a transaction, as
 * a role that may read the history tables.  (schedule.c)
 */
extern bool mt_scheduled_work_due(void);

/* GUCs of scheduled statements and the DDL log, from _PG_init.  (schedule.c) */
extern void mt_schedule_init(void);

/* migration_tools.ddl_log: record DDL in migration_tools.ddl_log */
extern bool mt_ddl_log_enabled;

/* migration_tools.ddl_log_retention: minutes rows are kept (-1: forever) */
extern int	mt_ddl_log_retention;

/*
 * Delete the rows of migration_tools.ddl_log older than the retention, in
 * transactions of their own (in the worker).  (ddl_log.c)
 */
extern void mt_ddl_log_prune(void);

/*
 * A fingerprint of the schema of the current database: a JSON object
 * mapping "object type:identity" of every table, column, constraint,
 * index, view, sequence, function, type, trigger, policy, schema and
 * extension outside the system and extension schemas to the MD5 of its
 * definition.  Reads the catalogs only (no lock on user relations); works
 * with or without an SPI connection; palloc'd in the caller's context.
 * apply() stores it per migration; schema_drift() compares against it.
 * (drift.c)
 */
extern char *mt_catalog_fingerprint(void);

#endif							/* MT_HISTORY_H */
