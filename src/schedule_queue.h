/*-------------------------------------------------------------------------
 *
 * schedule_queue.h
 *	  The queue of scheduled statements: queueing by apply() and
 *	  rollback() (schedule_queue.c).
 *
 * IDENTIFICATION
 *	  src/schedule_queue.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_SCHEDULE_QUEUE_H
#define MT_SCHEDULE_QUEUE_H

#include "nodes/pg_list.h"

/* A migration that a script has to run after, found by pending_before(). */
typedef struct MtRunAfter
{
	char	   *version;
	char	   *relname;		/* a relation both lock */
	bool		running;		/* one of its statements runs now */
} MtRunAfter;

/*
 * The earlier migrations (MtRunAfter, newest first) whose scheduled
 * statements, not yet done, lock relations these statements lock.  SPI is
 * connected; the caller holds the history lock.
 */
extern List *mt_schedule_pending_before(List *statements, const char *version);

/* The versions of a list of MtRunAfter. */
extern List *mt_run_after_versions(List *after);

/* For a NOTICE: the versions of a list of MtRunAfter, and why each one. */
extern void mt_describe_run_after(List *after, char **names, char **why);

/* Insert one scheduled statement.  Runs as the owner. */
extern void mt_schedule_statement(const char *version, int seq, int statement_no,
								  const char *sql, const char *direction,
								  List *run_after, bool top_level, Datum run_as);

/*
 * Schedule statements in script order, numbered from seq + 1; consecutive
 * ones that can run in a transaction block form one row.  Runs as the
 * owner.  Returns how many rows were inserted.
 */
extern int	mt_schedule_in_order(const char *version, List *statements,
								 const char *direction, List *run_after,
								 int seq, Datum run_as);

#endif							/* MT_SCHEDULE_QUEUE_H */
