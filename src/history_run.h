/*-------------------------------------------------------------------------
 *
 * history_run.h
 *	  Running a migration script in the caller's transaction, with the
 *	  preflight and the retry protocol (history_run.c).
 *
 * IDENTIFICATION
 *	  src/history_run.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_HISTORY_RUN_H
#define MT_HISTORY_RUN_H

#include "nodes/pg_list.h"

/* What running a script took. */
typedef struct MtRunResult
{
	int			attempts;
	double		lock_wait_ms;
	ErrorData  *error;			/* NULL on success */
	int			failed_statement;	/* statement number of the error */
} MtRunResult;

/*
 * Run statements (MtStatementInfo; those that need the top level are
 * skipped) with the preflight wait and the retry protocol.  result->error
 * is NULL on success.
 */
extern void mt_history_run_with_retries(List *statements, const char *version,
										MtRunResult *result);

/* Errors worth another attempt: a lock timeout, a deadlock. */
extern bool mt_history_is_retryable(ErrorData *edata);

/* The lock_timeout of attempt number attempt (from 1), in ms. */
extern double mt_history_attempt_timeout(int attempt);

#endif							/* MT_HISTORY_RUN_H */
