/*-------------------------------------------------------------------------
 *
 * backfill_int.h
 *	  Declarations shared by the files of the backfill subsystem only, one
 *	  section per file that defines them: backfill.c (queueing, control,
 *	  settings, statement builders), backfill_validate.c (the statement
 *	  checked at queue time), backfill_job.c (the job row and its state
 *	  transitions), backfill_worker.c (claiming and running a job: the
 *	  job's run), backfill_step.c (one step per transaction),
 *	  backfill_batch.c (the batches of each strategy) and
 *	  backfill_failure.c (recording a failed batch).  The throttles have
 *	  their own header, throttle.h.
 *
 * IDENTIFICATION
 *	  src/backfill_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_BACKFILL_INT_H
#define MT_BACKFILL_INT_H

#include "access/transam.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/elog.h"
#include "utils/relcache.h"

/* mt_extension_owner(), mt_become_owner(), mt_restore_user() */
#include "security.h"
#include "throttle.h"

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

/* ---------------------------------------------------------------------
 * backfill_job.c: the job row and the state transitions of a job
 * ---------------------------------------------------------------------
 */

/* A job as one step sees it (allocated in the step context). */
typedef struct MtJob
{
	int64		id;
	Oid			relid;
	char	   *relation_name;
	char	   *state;
	MtJobSql	js;
	Oid			key_type;		/* run_batched, key strategy: $1/$2 type */
	int32		fixed_batch_size;	/* 0: adaptive */
	double		target_ms;
	double		sleep_ms;
	int32		max_attempts;
	int32		takeovers;		/* workers that took it up since its last batch */
	char	   *run_window;
	Oid			owner;
	char	   *owner_name;
	bool		owner_login;	/* the owner could log in when it queued the job */
	char	   *search_path;
	char	   *phase;
	List	   *last_key;		/* char *; NIL before the first batch */
	int64		next_block;
	int64		end_block;
	double		rows_per_block;
	int32		sweep_pass;
	int64		sweep_rows;
	int64		rows_scanned;
	int32		batch_size;		/* 0: not chosen yet */
	double		ms_per_row;		/* 0: unknown */
	int64		batches;
	int32		worker_pid;
} MtJob;

/*
 * The control functions of backfill.c, each a transition from some states
 * to one state (mt_job_control).
 */
typedef enum MtJobAction
{
	MT_JOB_PAUSE,
	MT_JOB_RESUME,
	MT_JOB_CANCEL,
	MT_JOB_RETRY
} MtJobAction;

/*
 * What a failed batch does to its job (mt_job_count_failed_attempt):
 * message is the job's last_error.
 */
typedef struct MtFailedAttempt
{
	int64		job_id;
	const char *message;
	bool		timeout;		/* statement or lock timeout: halve the batch */
	int32		batch_size;		/* the size tried */
	bool		role_dropped;	/* fail at once */
	bool		table_lock;		/* waiting for a table lock: no attempt counted */
} MtFailedAttempt;

/* A text[] as a List of C strings (in the current memory context). */
extern void mt_text_array_to_cstrings(Datum arr, List **out);

/*
 * The job row, locked, read into cxt (NULL if gone); changes to it.  In a
 * transaction, as the extension owner, SPI connected: so are all the
 * functions of this section.
 */
extern MtJob *mt_job_load(int64 job_id, MemoryContext cxt);
extern void mt_job_set(int64 job_id, const char *assignments, int nargs, Oid *types,
					   Datum *values, const char *nulls);

/* The state transitions of the worker. */
extern void mt_job_mark_running(int64 job_id);
extern bool mt_job_requeue(int64 job_id, TimestampTz due);
extern void mt_job_wait_for_window(int64 job_id, TimestampTz opens);
extern void mt_job_mark_completed(int64 job_id);
extern void mt_job_mark_failed(int64 job_id, const char *message);
extern void mt_job_let_go(int64 job_id);
extern bool mt_job_count_failed_attempt(const MtFailedAttempt *fa, bool *running,
										int32 *attempts);

/* The transitions of the control functions, and the final states. */
extern const char *mt_job_control(int64 job_id, MtJobAction action, const char *state);
extern const char *mt_job_action_name(MtJobAction action);
extern bool mt_job_action_wakes(MtJobAction action);
extern bool mt_job_state_is_final(const char *state);

/* ---------------------------------------------------------------------
 * backfill_worker.c: claiming and running a job
 * ---------------------------------------------------------------------
 */

/*
 * The batch being tried in the current step, for the history row of a
 * failed attempt (backfill_failure.c).
 */
typedef struct MtBatchAttempt
{
	TimestampTz start;			/* 0: no batch started */
	int32		size;
	Oid			relid;			/* the table locked by the step */
	bool		timeout_armed;	/* its statement timeout is armed */
} MtBatchAttempt;

/*
 * One run of a job by this worker: from its claim until it stops (ends, is
 * paused, cancelled, taken, or gives its worker slot up).  A job that gave
 * its slot up and comes back to the same worker goes on with the state of
 * its last run.  Created by backfill_worker.c and passed to the functions
 * that need it; lives in TopMemoryContext.
 */
typedef struct MtJobRun
{
	int64		job_id;
	Oid			relid;
	MemoryContext step_cxt;		/* reset before each step */

	/* what the throttles remember of the job, and when they last looked */
	MtThrottleState throttle;
	TimestampTz last_throttle_check;

	/*
	 * When a batch of the job last made other sessions wait on its locks
	 * (0: never): for a while after, the batch size grows back slowly.
	 */
	TimestampTz contended_at;

	/* the quiet main pass of a ctid job (backfill_batch.c) */
	bool		quiet;
	FullTransactionId quiet_next;
	int64		quiet_writes[3];

	/* the session user is the job's owner (backfill_step.c) */
	bool		session_user_switched;
	Oid			worker_user;	/* InvalidOid: not read yet */
	bool		worker_user_is_super;

	MtBatchAttempt attempt;
} MtJobRun;

/* What a step says the job does next. */
typedef enum MtStep
{
	STEP_CONTINUE,
	STEP_STOP
} MtStep;

/* ---------------------------------------------------------------------
 * backfill_step.c: one step of a job, in one transaction
 * ---------------------------------------------------------------------
 */

/*
 * Run one step of the job: plan it, hold it back, or run one batch and
 * move its checkpoint; a failed batch is recorded.  *sleep_ms: how long to
 * wait before the next step.
 */
extern MtStep mt_backfill_step(MtJobRun *run, long *sleep_ms);

/* ---------------------------------------------------------------------
 * backfill_batch.c: the batches of each strategy
 * ---------------------------------------------------------------------
 */

/* What planning a job found, for the job row. */
typedef struct MtJobPlan
{
	bool		rows_known;		/* rows_total is an estimate (else NULL) */
	int64		rows_total;
	double		rows_per_block;
	int64		end_block;
} MtJobPlan;

/* The outcome of one batch. */
typedef struct MtBatchResult
{
	int64		rows;			/* rows the statement processed */
	int64		covered;		/* rows (or estimated rows) of the range, for progress */
	int64		timed;			/* the same, for the time per row (sweeps too) */
	bool		ran;			/* a statement ran (not only a probe or a pass change) */
	bool		done;			/* the job has nothing left */
	List	   *last_key;		/* key: new checkpoint */
	int64		next_block;		/* ctid: new checkpoint */
	char	   *phase;
	int32		sweep_pass;
	int64		sweep_rows;
	int64		end_block;
	char	   *fail;			/* non-NULL: the job must fail with this */
} MtBatchResult;

/* Estimate the table's rows and (ctid) blocks, as the job's owner. */
extern void mt_batch_plan(MtJob *job, MtJobPlan *plan);

/* One batch of n rows of each strategy, as the job's owner. */
extern void mt_batch_run_key(MtJobRun *run, MtJob *job, int32 n, MtBatchResult *res);
extern void mt_batch_run_ctid(MtJobRun *run, MtJob *job, int32 n, MtBatchResult *res);

/* ---------------------------------------------------------------------
 * backfill_failure.c: recording a failed batch
 * ---------------------------------------------------------------------
 */

/*
 * Record a failed batch of the run's job in a new transaction; returns
 * whether the job goes on, after *sleep_ms.
 */
extern MtStep mt_backfill_record_failure(MtJobRun *run, ErrorData *edata,
										 double suffered_ms, bool table_lock,
										 long *sleep_ms);

#endif							/* MT_BACKFILL_INT_H */
