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

/*
 * Run one due scheduled migration statement in the current database (in
 * the worker).  Returns true when it ran something, false when nothing
 * was due.
 */
extern bool mt_history_run_scheduled(void);

/*
 * A fingerprint (hex digest) of the schema of the current database: the
 * tables, columns, types, defaults, constraints and indexes outside the
 * system and extension schemas.  apply() stores it per migration;
 * schema_drift() compares against it.  (drift.c)
 */
extern char *mt_catalog_fingerprint(void);

#endif							/* MT_HISTORY_H */
