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

#endif							/* MT_HISTORY_H */
