/*-------------------------------------------------------------------------
 *
 * backfill_worker.c
 *	  The worker side of batched backfills: claim a job, then run it one
 *	  step per transaction (backfill_step.c) until it ends or must stop,
 *	  looking between steps whether it should give its worker slot up.
 *
 * Exactly once: each batch transaction runs the job's statement on one
 * range of the table (keys after the checkpoint up to the batch's last
 * key, or a range of heap blocks) and, in the same transaction, moves the
 * checkpoint past that range and adds the rows to the counters.  Either
 * both commit or neither does, so a worker killed at any point (SIGKILL,
 * pg_terminate_backend, crash, immediate shutdown) leaves the job at a
 * checkpoint that matches the table.  The job row still says "running";
 * the next worker sees that no live worker runs it (mt_work_is_active)
 * and takes it up from the checkpoint.
 *
 * Who runs what: the worker connects as the bootstrap superuser, reads and
 * writes the job tables as the extension owner (search_path pinned), runs
 * the job's statement as the role that queued it (its search_path, in a
 * security-restricted operation), and reads server statistics for
 * throttling as itself.
 *
 * Errors: a batch runs inside PG_TRY.  On error the transaction is
 * aborted, the error is recorded in a new transaction (attempts,
 * last_error; a statement or lock timeout halves the batch), and the loop
 * goes on, until max_attempts consecutive failures fail the job.  SIGTERM
 * is FATAL and never caught here: the worker exits between or during
 * batches and the job is taken up again later.
 *
 * Memory: everything a step needs lives in a context reset before each
 * step, so a worker running a job for hours does not grow.
 *
 * State: what the worker keeps between jobs is an MtBackfillRunner, which
 * worker.c creates and passes in; what it keeps of a job while running it
 * is an MtJobRun (backfill_int.h), created when the job is claimed and
 * passed to the step, batch and failure functions.  A job that gave its
 * slot up and comes back to the same worker goes on with its last run,
 * so that the throttles still know its own dead tuples.
 *
 * IDENTIFICATION
 *	  src/backfill_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "backfill.h"
#include "backfill_int.h"
#include "launcher.h"
#include "migration_tools.h"
#include "schedule.h"
#include "spi_util.h"

/*
 * What a worker keeps between the jobs it runs: the context its steps
 * allocate in (reset before each step), the run of the last job it
 * claimed, and whether that job gave the worker slot up for another
 * database.
 */
struct MtBackfillRunner
{
	MemoryContext step_cxt;
	MtJobRun   *run;			/* NULL before the first job */
	bool		leave;
	TimestampTz leave_next_due;
};

/* A job that may be claimed, as read at the start of a claim. */
typedef struct MtCandidate
{
	int64		id;
	Oid			relid;
	bool		running;		/* running: an orphan unless its worker lives */
	TimestampTz due;			/* start_at or next_due; 0: none */
	Oid			owner;
} MtCandidate;

/*
 * Workers that may take a job up after its previous worker died before
 * committing a batch, in a row, before the job fails.
 */
#define MT_MAX_TAKEOVERS	5

/*
 * A sleep of at least this long (batch_sleep, a throttle, a backoff) gives
 * the worker slot up when other work waits for one.
 */
#define MT_YIELD_SLEEP_MS	1000

/* What a look at the running job decided (look_at_job). */
typedef enum MtLook
{
	LOOK_KEEP,					/* go on */
	LOOK_GONE,					/* paused, cancelled, taken: stop */
	LOOK_YIELD,					/* given back to the queue: run other work */
	LOOK_YIELD_LEAVE			/* the same, for another database: exit */
} MtLook;

static void run_job(MtBackfillRunner *runner, MtJobRun *run);
static MtLook look_at_job(MtJobRun *run, bool sleeping, TimestampTz wake);
static bool other_job_waits(int64 job_id);
static int	role_limit(Oid roleid);

/* ---------------------------------------------------------------------
 * Claiming a job
 * ---------------------------------------------------------------------
 */

/*
 * The state a worker keeps between jobs, in TopMemoryContext: created once
 * by the worker process (worker.c) and passed to mt_backfill_run_next().
 */
MtBackfillRunner *
mt_backfill_runner_create(void)
{
	MtBackfillRunner *runner = MemoryContextAllocZero(TopMemoryContext,
													  sizeof(MtBackfillRunner));

	runner->step_cxt = AllocSetContextCreate(TopMemoryContext,
											 "migration_tools backfill step",
											 ALLOCSET_DEFAULT_SIZES);
	return runner;
}

/*
 * The jobs of this database that are queued or running, oldest first, as
 * the extension owner.  Returns how many, in *cands.
 */
static int
read_candidates(MtCandidate **cands)
{
	int			ncand;
	MtCandidate *c;

	(void) mt_spi_execute_checked("SELECT job_id, relation::pg_catalog.oid, state = 'running', "
								  "       greatest(start_at, next_due), owner "
								  "FROM migration_tools.backfill_jobs "
								  "WHERE state IN ('queued', 'running') ORDER BY job_id",
								  0, NULL, NULL, NULL, true, 0,
								  SPI_OK_SELECT, "read backfill jobs");
	ncand = (int) SPI_processed;
	c = palloc(sizeof(MtCandidate) * (ncand + 1));
	for (int i = 0; i < ncand; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		c[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		c[i].relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		c[i].running = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		c[i].due = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		if (isnull)
			c[i].due = 0;
		c[i].owner = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
	}
	*cands = c;
	return ncand;
}

/*
 * Lock the row of a job that is still queued or running, unless another
 * transaction holds it.  Returns whether it is ours.
 */
static bool
lock_candidate(int64 job_id)
{
	Datum		arg = Int64GetDatum(job_id);
	Oid			argtype = INT8OID;

	return mt_spi_execute_checked("SELECT state FROM migration_tools.backfill_jobs "
								  "WHERE job_id = $1 AND state IN ('queued', 'running') "
								  "FOR UPDATE SKIP LOCKED",
								  1, &argtype, &arg, NULL, false, 1,
								  SPI_OK_SELECT, "lock backfill job") > 0;
}

/*
 * An orphan: its worker died (crash, kill, shutdown) with the job running.
 * Count the take-over; a job whose workers keep dying before they commit a
 * batch (a batch that crashes the server, or gets its worker killed by the
 * OOM killer) would otherwise restart the server forever: it fails
 * instead, with a clear error.  Returns false when it failed.
 */
static bool
take_over(int64 job_id)
{
	Datum		arg = Int64GetDatum(job_id);
	Oid			argtype = INT8OID;
	int32		takeovers;
	bool		isnull;

	if (mt_spi_execute_checked("UPDATE migration_tools.backfill_jobs "
							   "SET takeovers = takeovers + 1 WHERE job_id = $1 "
							   "RETURNING takeovers",
							   1, &argtype, &arg, NULL, false, 1,
							   SPI_OK_UPDATE_RETURNING, "take up backfill job") != 1)
		elog(ERROR, "could not take up backfill job");
	takeovers = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	if (takeovers <= MT_MAX_TAKEOVERS)
		return true;
	mt_job_mark_failed(job_id,
					   psprintf("the workers running this job stopped %d times in a row before committing a batch "
								"(a crash, a kill or a shutdown each time): the batch may be what crashes them; "
								"retry() takes it up from its checkpoint",
								takeovers - 1));
	return false;
}

/*
 * Try to claim one due candidate, as the extension owner: its row free, no
 * live worker on it, no other worker on its table, its role under
 * max_workers_per_role.  Returns whether it is now this worker's
 * (advertised in the worker slot); *role_waits when its role was at the
 * limit.
 */
static bool
try_claim(const MtCandidate *c, bool *role_waits)
{
	/* a running job with a live worker is that worker's */
	if (c->running && mt_work_is_active(MyDatabaseId, "backfill", c->id))
		return false;
	if (!lock_candidate(c->id))
		return false;
	if (mt_work_is_active(MyDatabaseId, "backfill", c->id))
		return false;

	/* one job per table: advertise ours first, then look for others */
	mt_worker_set_current("backfill", c->id, c->relid);
	if (mt_relation_is_busy(MyDatabaseId, c->relid))
	{
		mt_worker_set_current(NULL, 0, InvalidOid);
		return false;
	}

	/* at most max_workers_per_role jobs of one role run at once */
	if (!mt_worker_claim_role(c->owner, role_limit(c->owner)))
	{
		mt_worker_set_current(NULL, 0, InvalidOid);
		*role_waits = true;
		return false;
	}

	if (c->running && !take_over(c->id))
	{
		mt_worker_set_current(NULL, 0, InvalidOid);
		return false;
	}

	mt_job_mark_running(c->id);
	return true;
}

/*
 * The run of a claimed job: the last one, when the same job comes back to
 * this worker after giving its slot up (what the throttles know of the
 * job's own dead tuples stays), else a new one.
 */
static MtJobRun *
start_run(MtBackfillRunner *runner, int64 job_id, Oid relid)
{
	MtJobRun   *run = runner->run;

	if (run != NULL && run->job_id == job_id)
		return run;
	if (run != NULL)
		pfree(run);
	run = MemoryContextAllocZero(TopMemoryContext, sizeof(MtJobRun));
	run->job_id = job_id;
	run->relid = relid;
	run->step_cxt = runner->step_cxt;
	mt_throttle_reset(&run->throttle, relid);
	runner->run = run;
	return run;
}

/*
 * Claim the oldest runnable job of this database (queued, or running with
 * no live worker: orphaned), never one whose table another worker is on,
 * and run it.  Returns false when none is runnable, with *next_due the
 * earliest start_at / next_due of the jobs waiting (0 if none).
 */
bool
mt_backfill_run_next(MtBackfillRunner *runner, TimestampTz *next_due)
{
	MtSavedUser saved;
	MtCandidate *cands;
	int			ncand;
	const MtCandidate *claimed = NULL;
	TimestampTz due_min = 0;
	TimestampTz now = GetCurrentTimestamp();
	bool		role_waits = false;
	int64		job_id;
	Oid			relid;

	*next_due = 0;
	runner->leave = false;

	mt_bgw_begin("migration_tools: looking for backfill jobs");
	if (!OidIsValid(get_extension_oid(MT_EXTENSION_NAME, true)))
	{
		/* dropped since the worker started: nothing to do here */
		mt_bgw_commit();
		return false;
	}
	mt_become_owner(&saved);

	ncand = read_candidates(&cands);
	for (int i = 0; i < ncand && claimed == NULL; i++)
	{
		if (cands[i].due > now)
		{
			if (due_min == 0 || cands[i].due < due_min)
				due_min = cands[i].due;
			continue;
		}
		if (try_claim(&cands[i], &role_waits))
			claimed = &cands[i];
	}
	/* read before the commit frees the candidates */
	job_id = claimed ? claimed->id : 0;
	relid = claimed ? claimed->relid : InvalidOid;

	mt_restore_user(&saved);
	mt_bgw_commit();

	/* look here again when a job of that role ends */
	if (role_waits)
		mt_worker_note_role_waiting();

	if (job_id == 0)
	{
		*next_due = due_min;
		return false;
	}

	elog(DEBUG1, "migration_tools: running backfill job " INT64_FORMAT " on relation %u",
		 job_id, relid);

	run_job(runner, start_run(runner, job_id, relid));
	mt_worker_set_current(NULL, 0, InvalidOid);
	return true;
}

/*
 * The per-role limit for jobs of roleid: none for superusers (who could
 * change the setting anyway).  In a transaction.
 */
static int
role_limit(Oid roleid)
{
	if (mt_max_workers_per_role <= 0 || superuser_arg(roleid))
		return 0;
	return mt_max_workers_per_role;
}

/*
 * Is another job of this database due and waiting for a worker, one that
 * this worker could run if the current job left (not on a table another
 * worker is on, its role under max_workers_per_role)?  As the extension
 * owner, in a transaction.
 */
static bool
other_job_waits(int64 job_id)
{
	Datum		arg = Int64GetDatum(job_id);
	Oid			argtype = INT8OID;
	bool		waits = false;

	(void) mt_spi_execute_checked("SELECT job_id, relation::pg_catalog.oid, state = 'running', owner "
								  "FROM migration_tools.backfill_jobs "
								  "WHERE state IN ('queued', 'running') AND job_id <> $1 "
								  "  AND coalesce(greatest(start_at, next_due) <= pg_catalog.clock_timestamp(), true) "
								  "ORDER BY job_id LIMIT 100",
								  1, &argtype, &arg, NULL, true, 0,
								  SPI_OK_SELECT, "read backfill jobs");
	for (uint64 i = 0; i < SPI_processed && !waits; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Oid			rel = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		bool		running = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		Oid			owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
		int			limit = role_limit(owner);

		if (running && mt_work_is_active(MyDatabaseId, "backfill", id))
			continue;
		if (mt_relation_is_busy(MyDatabaseId, rel))
			continue;
		if (limit > 0 && mt_role_running_elsewhere(owner) >= limit)
			continue;
		waits = true;
	}
	return waits;
}

/*
 * Look at the running job between its steps, in a short transaction of its
 * own: is it still ours (not paused, cancelled or taken over)?  And should
 * it give its worker slot back?  It does when a scheduled migration
 * statement is due here, or was queued in another database that waits for
 * a slot (they go before backfills), and, when
 * it is about to sleep (sleeping: batch_sleep, a throttle, a backoff, of at
 * least MT_YIELD_SLEEP_MS), when another job of this database or work of
 * another database waits for a slot.  The job then goes back to the queue,
 * due at wake, and is taken up again (by this worker or another) then.
 */
static MtLook
look_at_job(MtJobRun *run, bool sleeping, TimestampTz wake)
{
	MtSavedUser saved;
	int64		job_id = run->job_id;
	Datum		args[2];
	Oid			types[2] = {INT8OID, INT4OID};
	MtLook		look = LOOK_KEEP;

	args[0] = Int64GetDatum(job_id);
	args[1] = Int32GetDatum(MyProcPid);
	mt_bgw_begin("migration_tools: backfill job sleeping");
	mt_become_owner(&saved);
	if (mt_spi_execute_checked("SELECT FROM migration_tools.backfill_jobs "
							   "WHERE job_id = $1 AND state = 'running' AND worker_pid = $2",
							   2, types, args, NULL, true, 1,
							   SPI_OK_SELECT, "read backfill job") != 1)
		look = LOOK_GONE;
	else if (mt_scheduled_work_due())
		look = LOOK_YIELD;
	else if (mt_slot_wanted_elsewhere(!sleeping))
		look = LOOK_YIELD_LEAVE;
	else if (sleeping && other_job_waits(job_id))
		look = LOOK_YIELD;

	if (look == LOOK_YIELD || look == LOOK_YIELD_LEAVE)
	{
		if (!mt_job_requeue(job_id, wake))
			look = LOOK_GONE;
		else
			elog(DEBUG1, "migration_tools: backfill job " INT64_FORMAT " gives its worker slot back",
				 job_id);
	}
	mt_restore_user(&saved);
	mt_bgw_commit();
	MemoryContextSwitchTo(run->step_cxt);
	return look;
}

/*
 * After mt_backfill_run_next() returned true: did its job give the worker
 * slot to another database?  Then the worker exits, and *next_due says
 * when its job wants to go on.
 */
bool
mt_backfill_leave_worker(MtBackfillRunner *runner, TimestampTz *next_due)
{
	*next_due = runner->leave_next_due;
	return runner->leave;
}

/* ---------------------------------------------------------------------
 * Running a job
 * ---------------------------------------------------------------------
 */

/*
 * Run a claimed job step by step, sleeping on the latch between steps.
 */
static void
run_job(MtBackfillRunner *runner, MtJobRun *run)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	MemoryContext step_cxt = run->step_cxt;
	TimestampTz last_look = GetCurrentTimestamp();

	for (;;)
	{
		long		sleep_ms = 0;
		MtStep		step;
		MtLook		look;
		TimestampTz now;
		TimestampTz wake;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * Whatever a step allocates outside its transactions (error data,
		 * statement text) goes to the step context, reset here.
		 */
		MemoryContextSwitchTo(step_cxt);
		MemoryContextReset(step_cxt);
		step = mt_backfill_step(run, &sleep_ms);
		MemoryContextSwitchTo(step_cxt);
		if (step == STEP_STOP)
			break;

		/*
		 * Between steps, at most every second (and before every sleep long
		 * enough to give the slot up): is the job still ours, and should it
		 * give its slot to other work?  Then sleep (batch_sleep, a
		 * throttle, a backoff) in slices of at most a second, looking
		 * between slices, so that a long sleep neither holds a worker for a
		 * job that no longer runs nor keeps a slot that due work could use.
		 */
		now = GetCurrentTimestamp();
		wake = TimestampTzPlusMilliseconds(now, Max(sleep_ms, 0));
		look = LOOK_KEEP;
		if (sleep_ms >= MT_YIELD_SLEEP_MS ||
			TimestampDifferenceExceeds(last_look, now, 1000))
		{
			look = look_at_job(run, sleep_ms >= MT_YIELD_SLEEP_MS, wake);
			last_look = GetCurrentTimestamp();
		}
		while (look == LOOK_KEEP && sleep_ms > 0)
		{
			long		left;

			now = GetCurrentTimestamp();
			left = TimestampDifferenceMilliseconds(now, wake);
			if (left <= 0)
				break;
			if (TimestampDifferenceExceeds(last_look, now, 1000))
			{
				look = look_at_job(run, left >= MT_YIELD_SLEEP_MS, wake);
				last_look = GetCurrentTimestamp();
				continue;
			}
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(left, 1000), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
		}
		if (look == LOOK_YIELD_LEAVE)
		{
			runner->leave = true;
			runner->leave_next_due = wake;
		}
		if (look != LOOK_KEEP)
			break;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(step_cxt);
}
