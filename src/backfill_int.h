/*-------------------------------------------------------------------------
 *
 * backfill_int.h
 *	  Declarations shared by the files of the backfill subsystem only:
 *	  backfill.c (queueing and control functions), backfill_worker.c (the
 *	  batches the worker runs) and throttle.c (when to slow down).
 *
 * IDENTIFICATION
 *	  src/backfill_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_BACKFILL_INT_H
#define MT_BACKFILL_INT_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

/* mt_extension_owner(), mt_become_owner(), mt_restore_user() */
#include "security.h"

/* ---------------------------------------------------------------------
 * backfill.c: queueing, control, settings, statement builders
 * ---------------------------------------------------------------------
 */

/* GUCs */
extern int	mt_max_batch_size;
extern int	mt_initial_batch_size;
extern int	mt_batch_lock_timeout;
extern int	mt_batch_timeout_factor;
extern int	mt_batch_history_retention;
extern int	mt_max_sweep_passes;
extern int	mt_max_batch_sleep;

/*
 * What the statement of a job is made of.  The same builders produce the
 * statement parse-analyzed at queue time and the one the worker runs, so
 * that what was validated is what runs.
 */
typedef struct MtJobSql
{
	bool		is_backfill;	/* backfill() (else run_batched()) */
	bool		by_ctid;		/* strategy ctid (else key) */
	char	   *relname;		/* qualified, quoted */
	bool		only;			/* ONLY: a plain table, not a partitioned one */
	char	   *set_clause;
	char	   *where_clause;	/* NULL: none */
	char	   *guard_clause;	/* NULL: none */
	char	   *sql;			/* run_batched() */
	List	   *key_columns;	/* char * (unquoted names) */
	List	   *key_types;		/* char * (qualified type names) */
} MtJobSql;

/*
 * The UPDATE of one batch of a backfill() job.  Key strategy: parameters
 * are text, the lower key values ($1..$n, exclusive; only with has_lower)
 * then the upper ones (inclusive).  ctid strategy: $1 and $2 are tid,
 * lower inclusive, upper exclusive.  Returns the number of parameters in
 * *nparams.
 */
extern char *mt_backfill_update_sql(const MtJobSql *js, bool has_lower, int *nparams);

/* The probes that find the bounds of the next key batch. */
typedef enum MtProbe
{
	MT_PROBE_NTH,
	MT_PROBE_FIRST,
	MT_PROBE_TAIL
} MtProbe;

extern char *mt_backfill_probe_sql(const MtJobSql *js, bool has_lower, MtProbe probe,
								   int64 limit);

/* Milliseconds in an interval (months as 30 days). */
extern double mt_interval_ms(Interval *iv);

/* ---------------------------------------------------------------------
 * backfill_validate.c: the job's statement, checked at queue time
 * ---------------------------------------------------------------------
 */

/*
 * Parse-analyze the UPDATE of a backfill() job as the caller, check column
 * privileges (unless update_ok: UPDATE on the table), refuse what its
 * strategy cannot run exactly once, and set js->guard_clause.
 */
extern void mt_backfill_analyze(Relation rel, MtJobSql *js, bool guard, bool update_ok);

/* Parse-analyze a run_batched() statement as the caller. */
extern void mt_run_batched_analyze(Relation rel, MtJobSql *js);

#endif							/* MT_BACKFILL_INT_H */
