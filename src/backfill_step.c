/*-------------------------------------------------------------------------
 *
 * backfill_step.c
 *	  One step of a backfill job, in one transaction: look at the job, then
 *	  plan it, hold it back (run window, throttles), or run one batch as
 *	  the job's owner and record it with the job's new checkpoint.
 *
 * Exactly once: the batch and the move of its checkpoint (with the
 * counters and the next batch size) commit together or not at all.  A
 * step that fails is rolled back and recorded in a new transaction
 * (backfill_failure.c).  The job's statement runs as the role that queued
 * it, with its search_path, the batch's lock_timeout and statement
 * timeout, no JIT, in a security-restricted operation; the session user
 * is switched too, and everything the statement sets is undone after it.
 *
 * IDENTIFICATION
 *	  src/backfill_step.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "backfill_int.h"
#include "locks.h"
#include "migration_tools.h"
#include "spi_util.h"

/*
 * When a batch made other sessions wait on its locks, for this long after
 * the batch size grows back slowly.
 */
#define MT_CONTENTION_MEMORY_MS	5000

/* What running one batch measured, beside its result. */
typedef struct MtBatchMeasure
{
	int32		size;			/* rows asked for */
	double		ms;				/* how long it took */
	bool		busy;			/* the CPUs were busy with others before it */
	int			waiters;		/* sessions waiting on its locks after it */
	double		wait_ms;		/* how long they waited */
	double		suffered_ms;	/* how long it waited on others' locks */
} MtBatchMeasure;

/*
 * The job row after a batch (write_checkpoint): added to counters, or the
 * new values.
 */
typedef struct MtBatchRow
{
	int64		rows_done;		/* added */
	int64		rows_scanned;	/* added */
	int32		batch_size;		/* of the next batch */
	double		ms_per_row;		/* smoothed; 0: unknown (NULL) */
	double		busy_ms;		/* added */
	List	   *last_key;		/* key checkpoint; NIL: none (NULL) */
	int64		next_block;		/* ctid checkpoint */
	const char *phase;
	int32		sweep_pass;
	int64		sweep_rows;
	int64		end_block;
	int32		lock_waiters;	/* added to lock_waiters_caused */
	bool		ran;			/* counts as a batch */
	bool		busy;			/* throttled_by busy_server */
} MtBatchRow;

/* The parameters of an UPDATE of the job row, after its $1 (the job id). */
typedef struct MtParams
{
	int			n;
	Oid			types[16];
	Datum		values[16];
	char		nulls[16];
} MtParams;

static MtStep run_step_body(MtJobRun *run, long *sleep_ms);

/* ---------------------------------------------------------------------
 * Running as the job's owner
 * ---------------------------------------------------------------------
 */

/*
 * Switch to the job's owner, with its search_path and the batch's
 * lock_timeout, for the job's own statements.  Returns the GUC nest level
 * to pass to leave_job_owner.
 *
 * The statements run without JIT compilation.  Each batch is planned
 * afresh for its bounds, so JIT would compile it again for every batch,
 * and a batch lasts about target_batch_time: the compilation (tens of
 * milliseconds, hundreds once the estimate passes jit_optimize_above_cost)
 * is a large share of the batch and gains nothing back.  It also loads
 * LLVM into the worker: about 50 MB of library pages and 9 MB of private
 * memory kept until the worker exits.  A key-strategy batch crosses
 * jit_above_cost as soon as an ANALYZE during the job sees that the rows
 * already done moved to the end of the table (the key's correlation with
 * the heap order falls, and the planner prices the range's heap pages as
 * random reads), so this happened in the middle of long jobs.
 */
static int
enter_job_owner(MtJobRun *run, MtJob *job, Oid *save_user, int *save_sec)
{
	int			nest;
	char		buf[32];

	GetUserIdAndSecContext(save_user, save_sec);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", job->search_path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	snprintf(buf, sizeof(buf), "%d", mt_batch_lock_timeout);
	(void) set_config_option("lock_timeout", buf,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	/*
	 * The session user too, so that session_user and is_superuser say who
	 * runs the job (a policy or function may read them), not the superuser
	 * the worker connected as.  The session user can only change outside a
	 * security-restricted context; it is set back by leave_job_owner(), or
	 * by restore_session_user() after an error.
	 */
	if (!OidIsValid(run->worker_user))
	{
		run->worker_user = GetAuthenticatedUserId();
		run->worker_user_is_super = superuser_arg(run->worker_user);
	}
	SetUserIdAndSecContext(*save_user, 0);
	SetSessionAuthorization(job->owner, superuser_arg(job->owner));
	run->session_user_switched = true;
	SetUserIdAndSecContext(job->owner,
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	return nest;
}

/* The worker's own session user again (after a job's statement). */
static void
restore_session_user(MtJobRun *run)
{
	if (run->session_user_switched)
	{
		SetSessionAuthorization(run->worker_user, run->worker_user_is_super);
		run->session_user_switched = false;
	}
}

/*
 * Back from enter_job_owner().
 *
 * Every setting changed since enter_job_owner() is rolled back, whatever
 * its kind: SET LOCAL, a plain SET or set_config(..., false) in a function
 * the statement calls (session-level, which a commit would otherwise keep
 * for the rest of the worker's life).  So nothing a job's statement sets
 * (TimeZone, transform_null_equals, default_transaction_read_only,
 * search_path ...) is seen by the worker's own queries, by the next batch
 * or by the next job, of this role or another.  Session-level advisory
 * locks the statement took are released too: they would outlive the job.
 */
static void
leave_job_owner(MtJobRun *run, int nest, Oid save_user, int save_sec)
{
	SetUserIdAndSecContext(save_user, 0);
	restore_session_user(run);
	SetUserIdAndSecContext(save_user, save_sec);
	AtEOXact_GUC(false, nest);
	LockReleaseSession(USER_LOCKMETHOD);
}

/* ---------------------------------------------------------------------
 * A step
 * ---------------------------------------------------------------------
 */

/*
 * The next batch size: toward target_batch_time from the smoothed time per
 * row, at most twice (after the first batch: eight times) and at least
 * half the last size, within 1 and migration_tools.max_batch_size (and
 * the job's fixed batch_size).
 */
static int32
next_batch_size(MtJob *job, int32 n, double ms_per_row, bool first)
{
	double		want;
	int32		cap = job->fixed_batch_size > 0 ? job->fixed_batch_size : mt_max_batch_size;

	if (job->fixed_batch_size > 0)
		want = job->fixed_batch_size;
	else if (ms_per_row > 0)
		want = job->target_ms / ms_per_row;
	else
		want = (double) n * 2;
	want = Max(want, (double) n / 2);
	/* the first batch only measures: the second may be up to 8 times larger */
	want = Min(want, (double) n * (first ? 8 : 2));
	/* and never so large that it is predicted to reach its statement timeout */
	if (ms_per_row > 0 && mt_batch_timeout_factor > 0)
		want = Min(want, Max(job->target_ms * mt_batch_timeout_factor, 1000.0) / 2 / ms_per_row);
	want = Min(want, (double) cap);
	want = Min(want, (double) mt_max_batch_size);
	return (int32) Max(want, 1.0);
}

/*
 * One step of a job, in its own transaction; an error aborts it and is
 * recorded (mt_backfill_record_failure) in a new one.  No return from
 * inside PG_TRY: the body is a function of its own.
 */
MtStep
mt_backfill_step(MtJobRun *run, long *sleep_ms)
{
	volatile MtStep result = STEP_CONTINUE;
	MemoryContext cxt = CurrentMemoryContext;

	memset(&run->attempt, 0, sizeof(run->attempt));
	PG_TRY();
	{
		result = run_step_body(run, sleep_ms);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		double		suffered_ms;
		bool		table_lock;

		MemoryContextSwitchTo(cxt);
		if (run->attempt.timeout_armed)
			disable_timeout(STATEMENT_TIMEOUT, false);
		suffered_ms = mt_lock_wait_sampler_stop();
		edata = CopyErrorData();

		/*
		 * Timed out while waiting for a lock on a table (or one of its
		 * indexes): another session's DDL, LOCK TABLE, VACUUM FULL.
		 */
		table_lock = (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
					  edata->sqlerrcode == ERRCODE_QUERY_CANCELED) &&
			mt_lock_wait_sampler_last_locktype() == LOCKTAG_RELATION;
		FlushErrorState();
		AbortCurrentTransaction();
		/* the abort restored the current user, not the session user */
		restore_session_user(run);
		/* and the settings; session-level advisory locks outlive it */
		LockReleaseSession(USER_LOCKMETHOD);
		MemoryContextSwitchTo(cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		result = mt_backfill_record_failure(run, edata, suffered_ms, table_lock, sleep_ms);
		FreeErrorData(edata);
	}
	PG_END_TRY();

	return result;
}

/* Append one parameter. */
static void
add_param(MtParams *p, Oid type, Datum value, bool isnull)
{
	Assert(p->n < lengthof(p->types));
	p->types[p->n] = type;
	p->values[p->n] = isnull ? (Datum) 0 : value;
	p->nulls[p->n] = isnull ? 'n' : ' ';
	p->n++;
}

/* The end of a step that ran no batch: its transaction commits. */
static MtStep
end_step(MtSavedUser *saved, MtStep result)
{
	mt_restore_user(saved);
	mt_bgw_commit();
	return result;
}

/*
 * Why the job can no longer run: what was there when it was queued may be
 * gone.  NULL if it can.  Also finds the type of the key of a run_batched()
 * job under the key strategy.
 */
static char *
job_cannot_run(MtJob *job)
{
	char	   *name;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(job->relid)))
		return psprintf("relation %s was dropped", job->relation_name);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
		return psprintf("role with OID %u that queued the job was dropped", job->owner);

	/*
	 * Same OID, another name: the role was renamed, or the job came from a
	 * dump of another cluster where the OID meant another role.  Never run a
	 * job as a role that did not queue it.
	 */
	name = GetUserNameFromId(job->owner, true);
	if (name == NULL || strcmp(name, job->owner_name) != 0)
		return psprintf("role \"%s\" that queued the job no longer exists under that name",
						job->owner_name);
	if (job->owner_login)
	{
		/*
		 * A role that could log in when it queued the job and no longer can
		 * (an administrator disabled it) writes no more, even after a
		 * retry().  A NOLOGIN group role the job was queued as (SET ROLE)
		 * is not concerned.
		 */
		const char *why = mt_role_cannot_login(job->owner);

		if (why != NULL)
			return psprintf("role \"%s\" that queued the job can no longer log in (%s)",
							job->owner_name, why);
	}
	if (!job->js.is_backfill && !job->js.by_ctid)
	{
		AttrNumber	att = get_attnum(job->relid, linitial(job->js.key_columns));

		if (att == InvalidAttrNumber)
			return psprintf("primary key column \"%s\" of %s was dropped",
							(char *) linitial(job->js.key_columns),
							job->relation_name);
		job->key_type = get_atttype(job->relid, att);
	}
	return NULL;
}

/*
 * Server signals: the reason to hold the job back, or NULL.  Read at most
 * every 250 ms: short batches need not pay for a look at every one.  The
 * statistics are read as the worker itself, then the step goes on as the
 * extension owner.
 */
static const char *
throttle_reason(MtJobRun *run, MtJob *job, MtSavedUser *saved)
{
	const char *reason = NULL;

	if (TimestampDifferenceExceeds(run->last_throttle_check, GetCurrentTimestamp(), 250))
	{
		mt_restore_user(saved);
		reason = mt_throttle_reason(&run->throttle, job->relid);
		mt_become_owner(saved);
		/* a job held back looks again after its sleep, however short */
		run->last_throttle_check = reason ? 0 : GetCurrentTimestamp();
	}
	return reason;
}

/* The first step of a job: its estimates, read as the job's owner. */
static void
plan_step(MtJobRun *run, MtJob *job)
{
	MtJobPlan	plan;
	MtParams	p;
	Oid			save_user;
	int			save_sec;
	int			nest;

	nest = enter_job_owner(run, job, &save_user, &save_sec);
	run->attempt.relid = job->relid;
	mt_lock_wait_sampler_start();
	mt_batch_plan(job, &plan);
	(void) mt_lock_wait_sampler_stop();
	leave_job_owner(run, nest, save_user, save_sec);

	p.n = 0;
	add_param(&p, INT8OID, Int64GetDatum(plan.rows_total), !plan.rows_known);
	add_param(&p, FLOAT8OID, Float8GetDatum(plan.rows_per_block), false);
	add_param(&p, INT8OID, Int64GetDatum(plan.end_block), false);
	mt_job_set(job->id, "rows_total = $2, rows_per_block = $3, end_block = $4, phase = 'main'",
			   p.n, p.types, p.values, p.nulls);
}

/*
 * Run one batch of the job as its owner, under the batch's statement
 * timeout, measuring its time and the lock waits it suffered and caused.
 */
static void
run_batch(MtJobRun *run, MtJob *job, MtBatchResult *res, MtBatchMeasure *m)
{
	TimestampTz start;
	int32		n;
	Oid			save_user;
	int			save_sec;
	int			nest;

	memset(m, 0, sizeof(*m));
	memset(res, 0, sizeof(*res));

	/* the CPUs busy with others?  Looked at before the batch holds locks */
	m->busy = mt_server_busy();

	n = job->batch_size > 0 ? job->batch_size :
		(job->fixed_batch_size > 0 ? job->fixed_batch_size : mt_initial_batch_size);
	n = Min(n, mt_max_batch_size);
	m->size = n;

	start = GetCurrentTimestamp();
	run->attempt.start = start;
	run->attempt.size = n;
	run->attempt.relid = job->relid;
	if (mt_batch_timeout_factor > 0)
	{
		double		limit = Max(job->target_ms * mt_batch_timeout_factor, 1000.0);

		enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(limit, (double) INT_MAX));
		run->attempt.timeout_armed = true;
	}
	nest = enter_job_owner(run, job, &save_user, &save_sec);
	mt_lock_wait_sampler_start();
	if (job->js.by_ctid)
		mt_batch_run_ctid(run, job, n, res);
	else
		mt_batch_run_key(run, job, n, res);
	m->suffered_ms = mt_lock_wait_sampler_stop();
	leave_job_owner(run, nest, save_user, save_sec);
	if (run->attempt.timeout_armed)
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		run->attempt.timeout_armed = false;
	}
	m->ms = (double) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());

	/* sessions waiting on what this batch holds */
	if (mt_throttle_on_lock_waiters)
		m->waiters = mt_lock_waiters_of(MyProcPid, &m->wait_ms);
}

/*
 * The size of the batch after one of m->size rows that took m->ms, with
 * the smoothed time per row ema.
 *
 * Sessions waited on this batch: halve the next one.  Sessions that meet a
 * batch's row locks grow with its size squared (more rows locked, for
 * longer), so after a batch made them wait the size grows back by a
 * quarter per batch, not double, for MT_CONTENTION_MEMORY_MS: doubling
 * went straight back to a size that made them wait, every other batch.
 */
static int32
adapt_batch_size(MtJobRun *run, MtJob *job, const MtBatchMeasure *m, double ema)
{
	int32		n = m->size;
	int32		next = next_batch_size(job, n, ema, job->batches == 0);

	if (m->waiters > 0)
	{
		next = Max(1, Min(next, n / 2));
		run->contended_at = GetCurrentTimestamp();
	}
	else if (run->contended_at != 0 &&
			 !TimestampDifferenceExceeds(run->contended_at, GetCurrentTimestamp(),
										 MT_CONTENTION_MEMORY_MS))
		next = Min(next, Max(n + 1, (int32) Min((double) n * 1.25, (double) INT32_MAX)));
	return next;
}

/*
 * Move the job's checkpoint and counters past the batch, in the batch's
 * transaction.
 */
static void
write_checkpoint(int64 job_id, const MtBatchRow *row)
{
	MtParams	p;

	p.n = 0;
	add_param(&p, INT8OID, Int64GetDatum(row->rows_done), false);	/* $2 */
	add_param(&p, INT8OID, Int64GetDatum(row->rows_scanned), false);	/* $3 */
	add_param(&p, INT4OID, Int32GetDatum(row->batch_size), false);	/* $4 */
	add_param(&p, FLOAT8OID, Float8GetDatum(row->ms_per_row), !(row->ms_per_row > 0));	/* $5 */
	add_param(&p, FLOAT8OID, Float8GetDatum(row->busy_ms), false);	/* $6 */
	add_param(&p, TEXTARRAYOID,
			  row->last_key ? mt_text_array_from_list(row->last_key) : (Datum) 0,
			  row->last_key == NIL);	/* $7 */
	add_param(&p, INT8OID, Int64GetDatum(row->next_block), false);	/* $8 */
	add_param(&p, TEXTOID, CStringGetTextDatum(row->phase), false);	/* $9 */
	add_param(&p, INT4OID, Int32GetDatum(row->sweep_pass), false);	/* $10 */
	add_param(&p, INT8OID, Int64GetDatum(row->sweep_rows), false);	/* $11 */
	add_param(&p, INT8OID, Int64GetDatum(row->end_block), false);	/* $12 */
	add_param(&p, INT4OID, Int32GetDatum(row->lock_waiters), false);	/* $13 */
	add_param(&p, BOOLOID, BoolGetDatum(row->ran), false);	/* $14 */
	add_param(&p, BOOLOID, BoolGetDatum(row->busy), false); /* $15 */

	mt_job_set(job_id,
			   "rows_done = rows_done + $2, rows_scanned = rows_scanned + $3, "
			   "batches = batches + $14::int, batch_size = $4, ms_per_row = $5, "
			   "busy_ms = busy_ms + $6, last_key = $7, next_block = $8, phase = $9, "
			   "sweep_pass = $10, sweep_rows = $11, end_block = $12, attempts = 0, takeovers = 0, "
			   "lock_waiters_caused = lock_waiters_caused + $13, "
			   "throttled_by = CASE WHEN $13 > 0 THEN 'lock_waiters' "
			   "WHEN $15 THEN 'busy_server' END",
			   p.n, p.types, p.values, p.nulls);
}

/* The lock waits the batch caused and suffered, added to the job's. */
static void
write_lock_waits(int64 job_id, const MtBatchMeasure *m)
{
	if (m->wait_ms > 0)
	{
		Oid			t = FLOAT8OID;
		Datum		v = Float8GetDatum(m->wait_ms);

		mt_job_set(job_id, "lock_wait_ms = lock_wait_ms + $2", 1, &t, &v, NULL);
	}
	if (m->suffered_ms > 0)
	{
		Oid			t = FLOAT8OID;
		Datum		v = Float8GetDatum(m->suffered_ms);

		mt_job_set(job_id, "lock_waits_suffered = lock_waits_suffered + 1, "
				   "lock_wait_suffered_ms = lock_wait_suffered_ms + $2",
				   1, &t, &v, NULL);
	}
}

/*
 * The history row of the batch in backfill_batches, numbered after the
 * job's batches (already counted); every 100 batches, the rows beyond
 * migration_tools.batch_history_retention go.
 */
static void
write_batch_history(MtJob *job, const MtBatchResult *res, const MtBatchMeasure *m)
{
	Oid			ht[7] = {INT8OID, INT8OID, FLOAT8OID, INT4OID, INT4OID, FLOAT8OID, FLOAT8OID};
	Datum		hv[7];

	hv[0] = Int64GetDatum(job->id);
	hv[1] = Int64GetDatum(res->rows);
	hv[2] = Float8GetDatum(m->ms);
	hv[3] = Int32GetDatum(m->size);
	hv[4] = Int32GetDatum(m->waiters);
	hv[5] = Float8GetDatum(m->wait_ms);
	hv[6] = Float8GetDatum(m->suffered_ms);
	(void) mt_spi_execute_checked("INSERT INTO migration_tools.backfill_batches "
								  "(job_id, batch_no, rows, duration_ms, batch_size, "
								  " lock_waiters_caused, lock_wait_caused_ms, lock_wait_ms) "
								  "SELECT $1, batches, $2, $3, $4, $5, $6, $7 "
								  "FROM migration_tools.backfill_jobs WHERE job_id = $1 "
								  "ON CONFLICT DO NOTHING",
								  7, ht, hv, NULL, false, 0,
								  SPI_OK_INSERT, "record batch");
	if ((job->batches + 1) % 100 == 0)
	{
		Oid			pt[2] = {INT8OID, INT8OID};
		Datum		pv[2];

		pv[0] = Int64GetDatum(job->id);
		pv[1] = Int64GetDatum(job->batches + 1 - mt_batch_history_retention);
		(void) mt_spi_execute_checked("DELETE FROM migration_tools.backfill_batches "
									  "WHERE job_id = $1 AND batch_no <= $2",
									  2, pt, pv, NULL, false, 0,
									  SPI_OK_DELETE, "prune batch history");
	}
}

/*
 * How long to sleep before the next batch: the job's batch_sleep, and
 * longer after a batch that made others wait or ran on a busy server.
 */
static long
sleep_after_batch(MtJob *job, const MtBatchMeasure *m)
{
	long		sleep_ms;
	long		extra = 0;

	/* queued before migration_tools.max_batch_sleep was lowered */
	sleep_ms = (long) Min(job->sleep_ms, (double) mt_max_batch_sleep);

	/*
	 * Sessions waited on the batch: leave the table to them for twice as
	 * long as the batch held its locks, or as they waited, within
	 * migration_tools.throttle_sleep.  Under such a load the job then takes
	 * at most a third of the time (and of a CPU): with as long as the batch,
	 * the application, measured with pgbench on 2 cores, kept half its
	 * throughput.
	 */
	if (m->waiters > 0)
		extra = (long) Min((double) mt_throttle_sleep, 2 * Max(m->ms, m->wait_ms));

	/*
	 * The CPUs were busy with other sessions: take only busy_duty_cycle of
	 * the time, as a background job should.  When both hold, the longer
	 * sleep wins.
	 */
	if (m->busy)
		extra = Max(extra,
					(long) Min((double) mt_throttle_sleep,
							   m->ms * (1.0 / mt_busy_duty_cycle - 1.0)));
	return sleep_ms + extra;
}

/*
 * Record a batch that ran in its job row, in the batch's transaction: the
 * checkpoint, counters and next size, the lock waits, the history row, and
 * the job's end.  Returns whether the job goes on; *async_commit: the
 * transaction may commit without waiting for its WAL.
 */
static MtStep
record_batch(MtJobRun *run, MtJob *job, const MtBatchResult *res,
			 const MtBatchMeasure *m, long *sleep_ms, bool *async_commit)
{
	MtBatchRow	row;
	double		ema = job->ms_per_row;

	if (res->fail)
	{
		mt_job_mark_failed(job->id, res->fail);
		return STEP_STOP;
	}

	if (res->timed > 0)
	{
		double		sample = Max(m->ms, 0.01) / res->timed;

		ema = ema > 0 ? 0.5 * ema + 0.5 * sample : sample;
	}

	memset(&row, 0, sizeof(row));
	row.rows_done = res->rows;
	row.rows_scanned = res->covered;
	row.batch_size = adapt_batch_size(run, job, m, ema);
	row.ms_per_row = ema;
	row.busy_ms = m->ms;
	row.last_key = res->last_key;
	row.next_block = res->next_block;
	row.phase = res->done ? "done" : (res->phase ? res->phase : job->phase);
	row.sweep_pass = res->sweep_pass;
	row.sweep_rows = res->sweep_rows;
	row.end_block = job->js.by_ctid ? res->end_block : job->end_block;
	row.lock_waiters = m->waiters;
	row.ran = res->ran;
	row.busy = m->busy;
	write_checkpoint(job->id, &row);
	write_lock_waits(job->id, m);
	if (mt_batch_history_retention > 0 && res->ran)
		write_batch_history(job, res, m);

	if (res->done)
	{
		mt_job_mark_completed(job->id);
		return STEP_STOP;
	}

	/*
	 * After a take-over, the first batch commits synchronously: its reset of
	 * the take-over count must not be lost in a crash.
	 */
	*async_commit = res->ran && job->takeovers == 0;
	*sleep_ms = sleep_after_batch(job, m);
	return STEP_CONTINUE;
}

/*
 * The body of a step: look at the job, then plan it, hold it back, or run
 * one batch and move its checkpoint.
 */
static MtStep
run_step_body(MtJobRun *run, long *sleep_ms)
{
	MtSavedUser saved;
	MtJob	   *job;
	MtBatchResult res;
	MtBatchMeasure m;
	MtStep		result;
	const char *reason;
	char	   *why;
	TimestampTz opens;
	bool		async_commit = false;

	mt_bgw_begin(psprintf("migration_tools: backfill job " INT64_FORMAT, run->job_id));
	mt_become_owner(&saved);

	job = mt_job_load(run->job_id, run->step_cxt);
	if (job == NULL || strcmp(job->state, "running") != 0 ||
		job->worker_pid != MyProcPid)
	{
		/* paused, cancelled, gone, or taken over: let go */
		if (job != NULL && job->worker_pid == MyProcPid)
			mt_job_let_go(run->job_id);
		return end_step(&saved, STEP_STOP);
	}

	why = job_cannot_run(job);
	if (why != NULL)
	{
		mt_job_mark_failed(job->id, why);
		return end_step(&saved, STEP_STOP);
	}

	/* outside its run window, the job waits in the queue */
	if (job->run_window &&
		!mt_in_run_window(job->run_window, GetCurrentTimestamp(), &opens))
	{
		mt_job_wait_for_window(job->id, opens);
		return end_step(&saved, STEP_STOP);
	}

	/* server signals: hold back while they say so */
	reason = throttle_reason(run, job, &saved);
	if (reason != NULL)
	{
		Oid			type = TEXTOID;
		Datum		value = CStringGetTextDatum(reason);

		mt_job_set(job->id, "throttled_by = $2", 1, &type, &value, NULL);
		*sleep_ms = mt_throttle_sleep;
		return end_step(&saved, STEP_CONTINUE);
	}

	if (strcmp(job->phase, "plan") == 0)
	{
		plan_step(run, job);
		return end_step(&saved, STEP_CONTINUE);
	}

	run_batch(run, job, &res, &m);
	result = record_batch(run, job, &res, &m, sleep_ms, &async_commit);
	mt_restore_user(&saved);

	/*
	 * A batch that leaves work to do commits without waiting for its WAL
	 * to reach disk: at 200 ms batches, that wait is most of the time
	 * between two batches.  The checkpoint is in the same transaction as
	 * the rows, so a crash that loses such a commit loses both, and the
	 * batch runs again, once.  The batch that completes the job commits
	 * synchronously, flushing every earlier one with it: once wait() says
	 * completed, all of the job is durable (and on synchronous standbys).
	 */
	if (async_commit)
		(void) set_config_option("synchronous_commit", "off",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, 0, false);
	mt_bgw_commit();

	/*
	 * The throttles tell the job's own dead tuples from those of others:
	 * the rows of the batch count as the job's once the statistics show
	 * them.
	 */
	if (res.rows > 0 && !res.fail)
	{
		pgstat_report_stat(true);
		mt_throttle_note_rows(&run->throttle, job->relid, res.rows);
	}
	return result;
}
