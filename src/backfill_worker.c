/*-------------------------------------------------------------------------
 *
 * backfill_worker.c
 *	  The worker side of batched backfills: claim a job, then run it one
 *	  batch per transaction until it ends or must stop.
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
 * IDENTIFICATION
 *	  src/backfill_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "storage/lmgr.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "backfill.h"
#include "backfill_int.h"
#include "history.h"
#include "launcher.h"
#include "locks.h"
#include "migration_tools.h"
#include "spi_util.h"
#include "throttle.h"

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

/*
 * Workers that may take a job up after its previous worker died before
 * committing a batch, in a row, before the job fails.
 */
#define MT_MAX_TAKEOVERS	5

typedef enum MtStep
{
	STEP_CONTINUE,
	STEP_STOP
} MtStep;

static MemoryContext step_cxt = NULL;

/* The statement timeout of the current batch is armed. */
static bool timeout_armed = false;

/* When the server signals were last read (throttle.c). */
static TimestampTz last_throttle_check = 0;

/*
 * When a batch of the current job last made other sessions wait on its
 * locks: for a while after, the batch size grows back slowly.
 */
#define MT_CONTENTION_MEMORY_MS	5000
static int64 contended_job = 0;
static TimestampTz contended_at = 0;

/* The session user is the job's owner (enter_job_owner) */
static bool session_user_switched = false;
static bool session_user_saved = false;
static Oid	worker_user = InvalidOid;
static bool worker_user_is_super = true;

/* The batch being tried, for the history row of a failed attempt. */
static TimestampTz batch_start = 0;
static int32 batch_size_tried = 0;
static Oid	batch_relid = InvalidOid;

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

/* The job whose server-signal memory throttle.c holds. */
static int64 throttle_job = 0;
static MtThrottleState throttle_state;

/* A job gave its slot to another database: the worker should exit. */
static bool leave_worker = false;
static TimestampTz leave_next_due = 0;

static void run_job(int64 job_id);
static MtLook look_at_job(int64 job_id, bool sleeping, TimestampTz wake);
static bool other_job_waits(int64 job_id);
static int	role_limit(Oid roleid);
static MtStep run_step(int64 job_id, long *sleep_ms);
static MtStep run_step_body(int64 job_id, long *sleep_ms);
static MtJob *load_job(int64 job_id);
static void plan_job(MtJob *job);
static void run_key_batch(MtJob *job, int32 n, MtBatchResult *res);
static void run_ctid_batch(MtJob *job, int32 n, MtBatchResult *res);
static void set_job(int64 job_id, const char *assignments, int nargs, Oid *types,
					Datum *values, const char *nulls);
static void fail_job(int64 job_id, const char *message);
static MtStep record_failure(int64 job_id, ErrorData *edata, double suffered_ms,
							 bool table_lock, long *sleep_ms);

/* ---------------------------------------------------------------------
 * Claiming a job
 * ---------------------------------------------------------------------
 */

/*
 * Claim the oldest runnable job of this database (queued, or running with
 * no live worker: orphaned), never one whose table another worker is on,
 * and run it.  Returns false when none is runnable, with *next_due the
 * earliest start_at / next_due of the jobs waiting (0 if none).
 */
bool
mt_backfill_run_next(TimestampTz *next_due)
{
	MtSavedUser saved;
	int64		claimed = 0;
	Oid			claimed_rel = InvalidOid;
	TimestampTz due_min = 0;
	TimestampTz now = GetCurrentTimestamp();
	int			ncand;
	int64	   *ids;
	Oid		   *rels;
	bool	   *running;
	TimestampTz *dues;
	Oid		   *owners;
	bool		role_waits = false;

	*next_due = 0;
	leave_worker = false;

	mt_bgw_begin("migration_tools: looking for backfill jobs");
	if (!OidIsValid(get_extension_oid(MT_EXTENSION_NAME, true)))
	{
		/* dropped since the worker started: nothing to do here */
		mt_bgw_commit();
		return false;
	}
	mt_become_owner(&saved);

	if (SPI_execute("SELECT job_id, relation::pg_catalog.oid, state = 'running', "
					"       greatest(start_at, next_due), owner "
					"FROM migration_tools.backfill_jobs "
					"WHERE state IN ('queued', 'running') ORDER BY job_id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read backfill jobs");

	ncand = (int) SPI_processed;
	ids = palloc(sizeof(int64) * (ncand + 1));
	rels = palloc(sizeof(Oid) * (ncand + 1));
	running = palloc(sizeof(bool) * (ncand + 1));
	dues = palloc(sizeof(TimestampTz) * (ncand + 1));
	owners = palloc(sizeof(Oid) * (ncand + 1));
	for (int i = 0; i < ncand; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		ids[i] = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		rels[i] = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		running[i] = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		dues[i] = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		if (isnull)
			dues[i] = 0;
		owners[i] = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
	}

	for (int i = 0; i < ncand && claimed == 0; i++)
	{
		Datum		arg = Int64GetDatum(ids[i]);
		Oid			argtype = INT8OID;
		Datum		args[2];
		Oid			types[2] = {INT8OID, INT4OID};

		if (dues[i] > now)
		{
			if (due_min == 0 || dues[i] < due_min)
				due_min = dues[i];
			continue;
		}
		/* a running job with a live worker is that worker's */
		if (running[i] && mt_work_is_active(MyDatabaseId, "backfill", ids[i]))
			continue;

		if (SPI_execute_with_args("SELECT state FROM migration_tools.backfill_jobs "
								  "WHERE job_id = $1 AND state IN ('queued', 'running') "
								  "FOR UPDATE SKIP LOCKED",
								  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not lock backfill job");
		if (SPI_processed == 0)
			continue;
		if (mt_work_is_active(MyDatabaseId, "backfill", ids[i]))
			continue;

		/* one job per table: advertise ours first, then look for others */
		mt_worker_set_current("backfill", ids[i], rels[i]);
		if (mt_relation_is_busy(MyDatabaseId, rels[i]))
		{
			mt_worker_set_current(NULL, 0, InvalidOid);
			continue;
		}

		/* at most max_workers_per_role jobs of one role run at once */
		if (!mt_worker_claim_role(owners[i], role_limit(owners[i])))
		{
			mt_worker_set_current(NULL, 0, InvalidOid);
			role_waits = true;
			continue;
		}

		/*
		 * An orphan: its worker died (crash, kill, shutdown) with the job
		 * running.  Count the take-over; a job whose workers keep dying
		 * before they commit a batch (a batch that crashes the server, or
		 * gets its worker killed by the OOM killer) would otherwise restart
		 * the server forever: it fails instead, with a clear error.
		 */
		if (running[i])
		{
			int32		takeovers;
			bool		isnull;

			if (SPI_execute_with_args("UPDATE migration_tools.backfill_jobs "
									  "SET takeovers = takeovers + 1 WHERE job_id = $1 "
									  "RETURNING takeovers",
									  1, &argtype, &arg, NULL, false, 1) != SPI_OK_UPDATE_RETURNING ||
				SPI_processed != 1)
				elog(ERROR, "could not take up backfill job");
			takeovers = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
			if (takeovers > MT_MAX_TAKEOVERS)
			{
				fail_job(ids[i],
						 psprintf("the workers running this job stopped %d times in a row before committing a batch "
								  "(a crash, a kill or a shutdown each time): the batch may be what crashes them; "
								  "retry() takes it up from its checkpoint",
								  takeovers - 1));
				mt_worker_set_current(NULL, 0, InvalidOid);
				continue;
			}
		}

		args[0] = Int64GetDatum(ids[i]);
		args[1] = Int32GetDatum(MyProcPid);
		if (SPI_execute_with_args("UPDATE migration_tools.backfill_jobs SET "
								  "state = 'running', worker_pid = $2, "
								  "started_at = coalesce(started_at, clock_timestamp()), "
								  "run_started_at = clock_timestamp(), run_rows_start = rows_scanned, "
								  "throttled_by = NULL, next_due = NULL "
								  "WHERE job_id = $1",
								  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not claim backfill job");
		claimed = ids[i];
		claimed_rel = rels[i];
	}

	mt_restore_user(&saved);
	mt_bgw_commit();

	/* look here again when a job of that role ends */
	if (role_waits)
		mt_worker_note_role_waiting();

	if (claimed == 0)
	{
		*next_due = due_min;
		return false;
	}

	elog(DEBUG1, "migration_tools: running backfill job " INT64_FORMAT " on relation %u",
		 claimed, claimed_rel);

	/*
	 * What the throttles know of the job's own dead tuples stays when the
	 * job comes back to this worker after giving its slot up.
	 */
	if (claimed != throttle_job)
		mt_throttle_reset(&throttle_state, claimed_rel);
	throttle_job = claimed;
	run_job(claimed);
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

	if (SPI_execute_with_args("SELECT job_id, relation::pg_catalog.oid, state = 'running', owner "
							  "FROM migration_tools.backfill_jobs "
							  "WHERE state IN ('queued', 'running') AND job_id <> $1 "
							  "  AND coalesce(greatest(start_at, next_due) <= pg_catalog.clock_timestamp(), true) "
							  "ORDER BY job_id LIMIT 100",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read backfill jobs");
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
look_at_job(int64 job_id, bool sleeping, TimestampTz wake)
{
	MtSavedUser saved;
	Datum		args[3];
	Oid			types[3] = {INT8OID, INT4OID, TIMESTAMPTZOID};
	MtLook		look = LOOK_KEEP;

	args[0] = Int64GetDatum(job_id);
	args[1] = Int32GetDatum(MyProcPid);
	args[2] = TimestampTzGetDatum(wake);
	mt_bgw_begin("migration_tools: backfill job sleeping");
	mt_become_owner(&saved);
	if (SPI_execute_with_args("SELECT FROM migration_tools.backfill_jobs "
							  "WHERE job_id = $1 AND state = 'running' AND worker_pid = $2",
							  2, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read backfill job " INT64_FORMAT, job_id);
	if (SPI_processed != 1)
		look = LOOK_GONE;
	else if (mt_scheduled_work_due())
		look = LOOK_YIELD;
	else if (mt_slot_wanted_elsewhere(!sleeping))
		look = LOOK_YIELD_LEAVE;
	else if (sleeping && other_job_waits(job_id))
		look = LOOK_YIELD;

	if (look == LOOK_YIELD || look == LOOK_YIELD_LEAVE)
	{
		if (SPI_execute_with_args("UPDATE migration_tools.backfill_jobs SET "
								  "state = 'queued', worker_pid = NULL, next_due = $3 "
								  "WHERE job_id = $1 AND state = 'running' AND worker_pid = $2",
								  3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not requeue backfill job " INT64_FORMAT, job_id);
		if (SPI_processed != 1)
			look = LOOK_GONE;
		else
			elog(DEBUG1, "migration_tools: backfill job " INT64_FORMAT " gives its worker slot back",
				 job_id);
	}
	mt_restore_user(&saved);
	mt_bgw_commit();
	MemoryContextSwitchTo(step_cxt);
	return look;
}

/*
 * After mt_backfill_run_next() returned true: did its job give the worker
 * slot to another database?  Then the worker exits, and *next_due says
 * when its job wants to go on.
 */
bool
mt_backfill_leave_worker(TimestampTz *next_due)
{
	*next_due = leave_next_due;
	return leave_worker;
}

/*
 * Run a claimed job step by step, sleeping on the latch between steps.
 */
static void
run_job(int64 job_id)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	TimestampTz last_look = GetCurrentTimestamp();

	if (step_cxt == NULL)
		step_cxt = AllocSetContextCreate(TopMemoryContext,
										 "migration_tools backfill step",
										 ALLOCSET_DEFAULT_SIZES);
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
		step = run_step(job_id, &sleep_ms);
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
			look = look_at_job(job_id, sleep_ms >= MT_YIELD_SLEEP_MS, wake);
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
				look = look_at_job(job_id, left >= MT_YIELD_SLEEP_MS, wake);
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
			leave_worker = true;
			leave_next_due = wake;
		}
		if (look != LOOK_KEEP)
			break;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(step_cxt);
}

/* ---------------------------------------------------------------------
 * One step: a planning step, a throttled pause, or a batch
 * ---------------------------------------------------------------------
 */

/* A text[] as a List of C strings (in the current memory context). */
static void
text_array_to_cstrings(Datum arr, List **out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	*out = NIL;
	for (int i = 0; i < n; i++)
		*out = lappend(*out, nulls[i] ? NULL : TextDatumGetCString(elems[i]));
}

/*
 * Read the job row (locked: a pause or cancel waits for the batch that
 * holds it) into the step context.  NULL if the row is gone.
 */
static MtJob *
load_job(int64 job_id)
{
	Datum		arg = Int64GetDatum(job_id);
	Oid			argtype = INT8OID;
	HeapTuple	tup;
	TupleDesc	desc;
	MtJob	   *job;
	MemoryContext old;
	bool		isnull;
	Datum		d;

#define COL(name) SPI_getbinval(tup, desc, SPI_fnumber(desc, name), &isnull)
#define STR(name) SPI_getvalue(tup, desc, SPI_fnumber(desc, name))

	if (SPI_execute_with_args("SELECT *, relation::pg_catalog.oid AS relid, "
							  "extract(epoch FROM target_batch_time) * 1000 AS target_ms, "
							  "extract(epoch FROM batch_sleep) * 1000 AS sleep_ms "
							  "FROM migration_tools.backfill_jobs WHERE job_id = $1 FOR UPDATE",
							  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read backfill job " INT64_FORMAT, job_id);
	if (SPI_processed == 0)
		return NULL;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	old = MemoryContextSwitchTo(step_cxt);
	job = palloc0(sizeof(MtJob));
	job->id = job_id;
	job->relid = DatumGetObjectId(COL("relid"));
	job->relation_name = STR("relation_name");
	job->state = STR("state");
	job->js.is_backfill = strcmp(STR("kind"), "backfill") == 0;
	job->js.by_ctid = strcmp(STR("strategy"), "ctid") == 0;
	job->js.relname = job->relation_name;
	job->js.set_clause = STR("set_clause");
	job->js.where_clause = STR("where_clause");
	job->js.guard_clause = STR("guard_clause");
	job->js.sql = STR("sql");
	d = COL("key_columns");
	if (!isnull)
		text_array_to_cstrings(d, &job->js.key_columns);
	d = COL("key_types");
	if (!isnull)
		text_array_to_cstrings(d, &job->js.key_types);
	d = COL("fixed_batch_size");
	job->fixed_batch_size = isnull ? 0 : DatumGetInt32(d);
	job->target_ms = atof(STR("target_ms"));
	job->sleep_ms = atof(STR("sleep_ms"));
	job->max_attempts = DatumGetInt32(COL("max_attempts"));
	job->takeovers = DatumGetInt32(COL("takeovers"));
	job->run_window = STR("run_window");
	job->owner = DatumGetObjectId(COL("owner"));
	job->owner_name = STR("owner_name");
	job->owner_login = DatumGetBool(COL("owner_login"));
	job->search_path = STR("search_path");
	job->phase = STR("phase");
	d = COL("last_key");
	if (!isnull)
		text_array_to_cstrings(d, &job->last_key);
	job->next_block = DatumGetInt64(COL("next_block"));
	d = COL("end_block");
	job->end_block = isnull ? 0 : DatumGetInt64(d);
	d = COL("rows_per_block");
	job->rows_per_block = isnull ? 0 : DatumGetFloat8(d);
	job->sweep_pass = DatumGetInt32(COL("sweep_pass"));
	job->sweep_rows = DatumGetInt64(COL("sweep_rows"));
	job->rows_scanned = DatumGetInt64(COL("rows_scanned"));
	d = COL("batch_size");
	job->batch_size = isnull ? 0 : DatumGetInt32(d);
	d = COL("ms_per_row");
	job->ms_per_row = isnull ? 0 : DatumGetFloat8(d);
	job->batches = DatumGetInt64(COL("batches"));
	d = COL("worker_pid");
	job->worker_pid = isnull ? 0 : DatumGetInt32(d);
	MemoryContextSwitchTo(old);

#undef COL
#undef STR

	/* the table may have been renamed or moved since the job was queued */
	if (get_rel_name(job->relid) != NULL)
	{
		old = MemoryContextSwitchTo(step_cxt);
		job->js.relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(job->relid)),
													 get_rel_name(job->relid));
		MemoryContextSwitchTo(old);
	}
	job->js.only = get_rel_relkind(job->relid) == RELKIND_RELATION;
	return job;
}

/*
 * UPDATE the job row (as the extension owner, who the caller already is).
 * assignments uses $1 for the job id and $2... for values.
 */
static void
set_job(int64 job_id, const char *assignments, int nargs, Oid *types,
		Datum *values, const char *nulls)
{
	Oid			t[16];
	Datum		v[16];
	char		n[16];
	char	   *sql;

	Assert(nargs < 16);
	t[0] = INT8OID;
	v[0] = Int64GetDatum(job_id);
	n[0] = ' ';
	for (int i = 0; i < nargs; i++)
	{
		t[i + 1] = types[i];
		v[i + 1] = values[i];
		n[i + 1] = nulls ? nulls[i] : ' ';
	}
	sql = psprintf("UPDATE migration_tools.backfill_jobs SET %s WHERE job_id = $1",
				   assignments);
	if (SPI_execute_with_args(sql, nargs + 1, t, v, n, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update backfill job " INT64_FORMAT, job_id);
}

/* Fail the job with a message (inside a step transaction, as owner). */
static void
fail_job(int64 job_id, const char *message)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(message);

	ereport(LOG,
			(errmsg("migration_tools backfill job " INT64_FORMAT " failed: %s",
					job_id, message)));
	set_job(job_id, "state = 'failed', last_error = $2, finished_at = clock_timestamp(), "
			"worker_pid = NULL, throttled_by = NULL", 1, &type, &value, NULL);
}

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
enter_job_owner(MtJob *job, Oid *save_user, int *save_sec)
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
	if (!session_user_saved)
	{
		worker_user = GetAuthenticatedUserId();
		worker_user_is_super = superuser_arg(worker_user);
		session_user_saved = true;
	}
	SetUserIdAndSecContext(*save_user, 0);
	SetSessionAuthorization(job->owner, superuser_arg(job->owner));
	session_user_switched = true;
	SetUserIdAndSecContext(job->owner,
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	return nest;
}

/* The worker's own session user again (after a job's statement). */
static void
restore_session_user(void)
{
	if (session_user_switched)
	{
		SetSessionAuthorization(worker_user, worker_user_is_super);
		session_user_switched = false;
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
leave_job_owner(int nest, Oid save_user, int save_sec)
{
	SetUserIdAndSecContext(save_user, 0);
	restore_session_user();
	SetUserIdAndSecContext(save_user, save_sec);
	AtEOXact_GUC(false, nest);
	LockReleaseSession(USER_LOCKMETHOD);
}

/* What plan_job found, for the job row: rows_total, rows_per_block, end_block. */
static Oid	plan_types[3] = {INT8OID, FLOAT8OID, INT8OID};
static Datum plan_values[3];
static char plan_nulls[3];

/*
 * Estimate the table's rows and (ctid) its blocks, once per job.
 */
static void
plan_job(MtJob *job)
{
	Relation	rel = relation_open(job->relid, AccessShareLock);
	BlockNumber nblocks = 0;
	double		density = -1;
	double		total = -1;

	/* a snapshot taken with the lock held: see run_key_batch() */
	PushActiveSnapshot(GetTransactionSnapshot());
	if (rel->rd_rel->relkind == RELKIND_RELATION)
	{
		nblocks = RelationGetNumberOfBlocks(rel);
		if (rel->rd_rel->reltuples > 0 && rel->rd_rel->relpages > 0)
			density = rel->rd_rel->reltuples / rel->rd_rel->relpages;
		else if (nblocks > 0)
		{
			/* never analyzed: count the rows of the first blocks */
			BlockNumber sample = Min(nblocks, 10);
			Oid			ttypes[2] = {TIDOID, TIDOID};
			Datum		tvalues[2];
			ItemPointerData lo,
						hi;
			bool		isnull;

			ItemPointerSet(&lo, 0, 0);
			ItemPointerSet(&hi, sample, 0);
			tvalues[0] = PointerGetDatum(&lo);
			tvalues[1] = PointerGetDatum(&hi);
			if (SPI_execute_with_args(psprintf("SELECT pg_catalog.count(*) FROM ONLY %s "
											   "WHERE ctid >= $1 AND ctid < $2",
											   job->js.relname),
									  2, ttypes, tvalues, NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not sample relation");
			density = (double) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1,
														   &isnull)) / sample;
		}
		else
			density = 0;
		total = density * nblocks;
	}
	else
	{
		/* partitioned: the statistics of the leaf partitions */
		Oid			argtype = OIDOID;
		Datum		arg = ObjectIdGetDatum(job->relid);
		bool		isnull;
		Datum		d;

		if (SPI_execute_with_args("SELECT pg_catalog.sum(c.reltuples)::pg_catalog.float8 FROM pg_catalog.pg_partition_tree($1) t "
								  "JOIN pg_catalog.pg_class c ON c.oid = t.relid "
								  "WHERE t.isleaf AND c.reltuples > 0",
								  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read partition statistics");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			total = DatumGetFloat8(d);
	}
	PopActiveSnapshot();
	relation_close(rel, AccessShareLock);

	plan_values[0] = Int64GetDatum(total < 0 ? 0 : (int64) rint(total));
	plan_nulls[0] = total < 0 ? 'n' : ' ';
	plan_values[1] = Float8GetDatum(density > 0 ? density : 1.0);
	plan_nulls[1] = ' ';
	plan_values[2] = Int64GetDatum((int64) nblocks);
	plan_nulls[2] = ' ';
}

/*
 * Convert the text form of a key value to a Datum of type typid.
 */
static Datum
key_datum(const char *str, Oid typid)
{
	Oid			infunc;
	Oid			ioparam;

	getTypeInputInfo(typid, &infunc, &ioparam);
	return OidInputFunctionCall(infunc, (char *) str, ioparam, -1);
}

/*
 * One batch of the key strategy: find the last key of the next n keys
 * after the checkpoint, run the statement on (checkpoint, last key].
 * Runs as the job's owner.
 */
static void
run_key_batch(MtJob *job, int32 n, MtBatchResult *res)
{
	bool		has_lower = job->last_key != NIL;
	int			nkeys = list_length(job->js.key_columns);
	Oid		   *types = palloc(sizeof(Oid) * (2 * nkeys + 2));
	Datum	   *values = palloc(sizeof(Datum) * (2 * nkeys + 2));
	int			np = 0;
	int64		count;
	List	   *first = NIL;
	List	   *last = NIL;
	bool		isnull;
	ListCell   *lc;
	char	   *sql;
	int			ret;

	/*
	 * The probes read the table with a snapshot taken once the table lock
	 * is ours.  The step transaction's snapshot was taken before: if an
	 * ALTER TABLE that rewrites the table (or a TRUNCATE) committed while
	 * we waited for the lock, that snapshot sees the rewritten table as
	 * empty (such rewrites are not MVCC-safe), the probe finds no key after
	 * the checkpoint, and the job would end as completed with most rows
	 * never visited.
	 */
	LockRelationOid(job->relid, AccessShareLock);
	PushActiveSnapshot(GetTransactionSnapshot());

	if (has_lower)
	{
		foreach(lc, job->last_key)
		{
			types[np] = TEXTOID;
			values[np++] = CStringGetTextDatum((char *) lfirst(lc));
		}
	}
	/* the n-th key after the checkpoint ends the batch */
	sql = mt_backfill_probe_sql(&job->js, has_lower, MT_PROBE_NTH, n);
	if (SPI_execute_with_args(sql, np, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not probe the next batch");
	if (SPI_processed == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(step_cxt);

		text_array_to_cstrings(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), &last);
		MemoryContextSwitchTo(old);
		count = n;
	}
	else
	{
		/* fewer than n keys left: the last batch, up to the last key */
		sql = mt_backfill_probe_sql(&job->js, has_lower, MT_PROBE_TAIL, n);
		if (SPI_execute_with_args(sql, np, types, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not probe the last batch");
		count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (count > 0)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			MemoryContext old = MemoryContextSwitchTo(step_cxt);

			if (isnull)
				count = 0;		/* rows deleted between the two looks */
			else
				text_array_to_cstrings(d, &last);
			MemoryContextSwitchTo(old);
		}
	}
	if (count > 0 && !job->js.is_backfill)
	{
		/* run_batched gets the first key too */
		sql = mt_backfill_probe_sql(&job->js, has_lower, MT_PROBE_FIRST, n);
		if (SPI_execute_with_args(sql, np, types, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not probe the next batch");
		if (SPI_processed == 1)
		{
			MemoryContext old = MemoryContextSwitchTo(step_cxt);

			text_array_to_cstrings(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), &first);
			MemoryContextSwitchTo(old);
		}
		else
			count = 0;
	}

	PopActiveSnapshot();

	res->covered = count;
	res->timed = count;
	res->done = count < n;
	res->last_key = count > 0 ? last : job->last_key;
	if (count == 0)
		return;

	if (job->js.is_backfill)
	{
		int			nparams;

		sql = mt_backfill_update_sql(&job->js, has_lower, &nparams);
		foreach(lc, last)
		{
			types[np] = TEXTOID;
			values[np++] = CStringGetTextDatum((char *) lfirst(lc));
		}
		Assert(np == nparams);
	}
	else
	{
		/* run_batched: $1 first key, $2 last key, both inclusive */
		sql = job->js.sql;
		np = 2;
		types[0] = types[1] = job->key_type;
		values[0] = key_datum(linitial(first), job->key_type);
		values[1] = key_datum(linitial(last), job->key_type);
	}
	pgstat_report_activity(STATE_RUNNING, sql);
	ret = SPI_execute_with_args(sql, np, types, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "batch statement failed: %s", SPI_result_code_string(ret));
	res->rows = SPI_processed;
	res->ran = true;
}

/*
 * A quiet main pass: while a ctid job's main pass runs, no transaction
 * but the worker's own batches holds or gets a transaction id anywhere in
 * the cluster.  Every write to a table needs one, so then no other session
 * can have inserted or moved a row: every row that needs the change was
 * visible to the batch of its block, and the rows the job moved itself are
 * done.  The sweep passes would read the whole table again to find
 * nothing, and are skipped.
 *
 * Followed in this process's memory only (a new worker, after a crash or a
 * kill, sweeps): quiet_job is the job whose main pass is quiet so far
 * (0: none), quiet_next the next transaction id after the last batch
 * checked.  Each step's transaction gets its id first (load_job() locks
 * the job row), so a step continues the quiet run only if its id is
 * quiet_next and, after the batch's statement, the next id is right after
 * its own ids (its top-level id and its subtransactions' ids: triggers
 * with exception blocks).  Anything else (another transaction, a throttled
 * step, a failed batch, an aborted or overflowed subtransaction, pause and
 * resume) ends the quiet run, and the job sweeps as usual.
 */
static int64 quiet_job = 0;
static FullTransactionId quiet_next;

/* The batch's own writes to the table so far in its transaction. */
static int64 quiet_writes[3];

static void
own_writes(Oid relid, int64 *counts)
{
	counts[0] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_inserted,
												  ObjectIdGetDatum(relid)));
	counts[1] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_updated,
												  ObjectIdGetDatum(relid)));
	counts[2] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_deleted,
												  ObjectIdGetDatum(relid)));
}

/* Before a main pass batch's statement: start or continue the quiet run. */
static void
quiet_before_batch(MtJob *job)
{
	FullTransactionId own = GetTopFullTransactionId();

	own_writes(job->relid, quiet_writes);

	if (job->next_block == 0)
	{
		Relation	rel = relation_open(job->relid, AccessShareLock);
		BlockNumber nblocks = RelationGetNumberOfBlocks(rel);

		relation_close(rel, AccessShareLock);

		/*
		 * The first batch: quiet if no other transaction id is in progress
		 * (prepared transactions included) and no block was added since
		 * the plan (rows there would be beyond the main pass).
		 */
		quiet_job = 0;
		if (nblocks <= job->end_block &&
			TransactionIdEquals(GetOldestActiveTransactionId(),
								XidFromFullTransactionId(own)) &&
			U64FromFullTransactionId(ReadNextFullTransactionId()) ==
			U64FromFullTransactionId(own) + 1)
			quiet_job = job->id;
		return;
	}
	if (quiet_job != job->id || !FullTransactionIdEquals(own, quiet_next))
		quiet_job = 0;
}

/*
 * After a main pass batch's statement, which updated "updated" rows: were
 * all new ids its own?  And did it write nothing else to the table (a
 * trigger, a rule or a function that inserts, deletes or updates other
 * rows would move rows the main pass may not meet)?
 */
static void
quiet_after_batch(MtJob *job, uint64 updated)
{
	FullTransactionId own = GetTopFullTransactionId();
	FullTransactionId next = ReadNextFullTransactionId();
	int64		writes[3];

	if (quiet_job != job->id)
		return;
	own_writes(job->relid, writes);
	if (MyProc->subxidStatus.overflowed ||
		U64FromFullTransactionId(next) !=
		U64FromFullTransactionId(own) + 1 + MyProc->subxidStatus.count ||
		writes[0] != quiet_writes[0] || writes[2] != quiet_writes[2] ||
		writes[1] - quiet_writes[1] != (int64) updated)
	{
		quiet_job = 0;
		return;
	}
	quiet_next = next;
}

/* At the end of the main pass: was all of it quiet, up to now? */
static bool
quiet_main_pass(MtJob *job)
{
	FullTransactionId own = GetTopFullTransactionId();

	return quiet_job == job->id && FullTransactionIdEquals(own, quiet_next) &&
		U64FromFullTransactionId(ReadNextFullTransactionId()) ==
		U64FromFullTransactionId(own) + 1;
}

/*
 * One batch of the ctid strategy: blocks [next_block, next_block + k) of
 * the current pass.  The main pass covers the blocks the table had when
 * the job started; then sweep passes cover the whole table again until
 * one changes nothing, catching rows that moved into ranges already done
 * (the guard skips rows that are done, so only moved rows change).  A
 * quiet main pass (see above) needs no sweep.
 */
static void
run_ctid_batch(MtJob *job, int32 n, MtBatchResult *res)
{
	int64		nb;
	int64		hi;
	ItemPointerData lo_tid,
				hi_tid;
	Oid			types[2] = {TIDOID, TIDOID};
	Datum		values[2];
	char	   *sql;
	int			ret;

	res->phase = job->phase;
	res->sweep_pass = job->sweep_pass;
	res->sweep_rows = job->sweep_rows;
	res->end_block = job->end_block;
	res->next_block = job->next_block;

	if (job->next_block >= job->end_block)
	{
		/* end of a pass */
		Relation	rel = relation_open(job->relid, AccessShareLock);
		BlockNumber nblocks = RelationGetNumberOfBlocks(rel);

		relation_close(rel, AccessShareLock);

		/*
		 * A run_batched() statement has no guard: a sweep would run it again
		 * on every row.  Its job ends with the main pass.
		 */
		if (!job->js.is_backfill)
		{
			res->done = true;
			return;
		}
		if (strcmp(job->phase, "sweep") == 0 && job->sweep_rows == 0)
		{
			res->done = true;
			return;
		}
		if (strcmp(job->phase, "main") == 0 && quiet_main_pass(job))
		{
			quiet_job = 0;
			res->done = true;
			return;
		}
		quiet_job = 0;
		if (strcmp(job->phase, "sweep") == 0 && job->sweep_pass >= mt_max_sweep_passes)
		{
			res->fail = psprintf("rows kept moving during %d sweep passes", job->sweep_pass);
			return;
		}
		res->phase = "sweep";
		res->sweep_pass = job->sweep_pass + 1;
		res->sweep_rows = 0;
		res->next_block = 0;
		res->end_block = nblocks;
		return;
	}

	nb = (int64) ceil((double) n / Max(job->rows_per_block, 1.0));
	nb = Max(nb, 1);
	hi = Min(job->next_block + nb, job->end_block);
	ItemPointerSet(&lo_tid, (BlockNumber) job->next_block, 0);
	ItemPointerSet(&hi_tid, (BlockNumber) hi, 0);
	values[0] = PointerGetDatum(&lo_tid);
	values[1] = PointerGetDatum(&hi_tid);

	if (job->js.is_backfill)
	{
		int			nparams;

		sql = mt_backfill_update_sql(&job->js, false, &nparams);
		if (strcmp(job->phase, "main") == 0)
			quiet_before_batch(job);
	}
	else
		sql = job->js.sql;
	pgstat_report_activity(STATE_RUNNING, sql);
	ret = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "batch statement failed: %s", SPI_result_code_string(ret));
	if (job->js.is_backfill && strcmp(job->phase, "main") == 0)
		quiet_after_batch(job, SPI_processed);
	res->rows = SPI_processed;
	res->ran = true;
	res->next_block = hi;
	res->timed = (int64) rint((hi - job->next_block) * job->rows_per_block);
	if (strcmp(job->phase, "main") == 0)
		res->covered = res->timed;
	else
		res->sweep_rows += res->rows;
}

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
 * recorded (record_failure) in a new one.  No return from inside PG_TRY:
 * the body is a function of its own.
 */
static MtStep
run_step(int64 job_id, long *sleep_ms)
{
	volatile MtStep result = STEP_CONTINUE;
	MemoryContext cxt = CurrentMemoryContext;

	batch_start = 0;
	batch_size_tried = 0;
	batch_relid = InvalidOid;
	timeout_armed = false;
	PG_TRY();
	{
		result = run_step_body(job_id, sleep_ms);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		double		suffered_ms;
		bool		table_lock;

		MemoryContextSwitchTo(cxt);
		if (timeout_armed)
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
		restore_session_user();
		/* and the settings; session-level advisory locks outlive it */
		LockReleaseSession(USER_LOCKMETHOD);
		MemoryContextSwitchTo(cxt);
		pgstat_report_activity(STATE_IDLE, NULL);
		result = record_failure(job_id, edata, suffered_ms, table_lock, sleep_ms);
		FreeErrorData(edata);
	}
	PG_END_TRY();

	return result;
}

/*
 * The body of a step: look at the job, then plan it, hold it back, or run
 * one batch and move its checkpoint.
 */
static MtStep
run_step_body(int64 job_id, long *sleep_ms)
{
	MtStep		result = STEP_CONTINUE;
	MtSavedUser saved;
	MtJob	   *job;
	MtBatchResult res;
	const char *reason;
	TimestampTz opens;
	TimestampTz start;
	double		ms;
	int32		n;
	Oid			save_user;
	int			save_sec;
	int			nest;
	int			waiters = 0;
	double		wait_ms = 0;
	double		suffered_ms = 0;
	bool		async_commit = false;
	bool		busy = false;

	mt_bgw_begin(psprintf("migration_tools: backfill job " INT64_FORMAT, job_id));
	mt_become_owner(&saved);

	job = load_job(job_id);
	if (job == NULL || strcmp(job->state, "running") != 0 ||
		job->worker_pid != MyProcPid)
	{
		/* paused, cancelled, gone, or taken over: let go */
		if (job != NULL && job->worker_pid == MyProcPid)
			set_job(job_id, "worker_pid = NULL", 0, NULL, NULL, NULL);
		mt_restore_user(&saved);
		mt_bgw_commit();
		return STEP_STOP;
	}

	/* what was there when the job was queued may be gone */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(job->relid)))
	{
		fail_job(job_id, psprintf("relation %s was dropped", job->relation_name));
		mt_restore_user(&saved);
		mt_bgw_commit();
		return STEP_STOP;
	}
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
	{
		fail_job(job_id, psprintf("role with OID %u that queued the job was dropped",
								  job->owner));
		mt_restore_user(&saved);
		mt_bgw_commit();
		return STEP_STOP;
	}
	{
		/*
		 * Same OID, another name: the role was renamed, or the job came from
		 * a dump of another cluster where the OID meant another role.  Never
		 * run a job as a role that did not queue it.
		 */
		char	   *name = GetUserNameFromId(job->owner, true);

		if (name == NULL || strcmp(name, job->owner_name) != 0)
		{
			fail_job(job_id, psprintf("role \"%s\" that queued the job no longer exists under that name",
									  job->owner_name));
			mt_restore_user(&saved);
			mt_bgw_commit();
			return STEP_STOP;
		}
	}
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
		{
			fail_job(job_id, psprintf("role \"%s\" that queued the job can no longer log in (%s)",
									  job->owner_name, why));
			mt_restore_user(&saved);
			mt_bgw_commit();
			return STEP_STOP;
		}
	}
	if (!job->js.is_backfill && !job->js.by_ctid)
	{
		AttrNumber	att = get_attnum(job->relid, linitial(job->js.key_columns));

		if (att == InvalidAttrNumber)
		{
			fail_job(job_id, psprintf("primary key column \"%s\" of %s was dropped",
									  (char *) linitial(job->js.key_columns),
									  job->relation_name));
			mt_restore_user(&saved);
			mt_bgw_commit();
			return STEP_STOP;
		}
		job->key_type = get_atttype(job->relid, att);
	}

	/* outside its run window, the job waits in the queue */
	if (job->run_window &&
		!mt_in_run_window(job->run_window, GetCurrentTimestamp(), &opens))
	{
		Oid			type = TIMESTAMPTZOID;
		Datum		value = TimestampTzGetDatum(opens);

		/* a job that never ran a batch shows no start yet */
		set_job(job_id, "state = 'queued', worker_pid = NULL, "
				"throttled_by = 'run_window', next_due = $2, "
				"started_at = CASE WHEN phase = 'plan' THEN NULL ELSE started_at END, "
				"run_started_at = CASE WHEN phase = 'plan' THEN NULL ELSE run_started_at END",
				1, &type, &value, NULL);
		mt_restore_user(&saved);
		mt_bgw_commit();
		return STEP_STOP;
	}

	/*
	 * Server signals: hold back while they say so.  Read at most every
	 * 250 ms: short batches need not pay for a look at every one.
	 */
	reason = NULL;
	if (TimestampDifferenceExceeds(last_throttle_check, GetCurrentTimestamp(), 250))
	{
		mt_restore_user(&saved);
		reason = mt_throttle_reason(&throttle_state, job->relid);
		mt_become_owner(&saved);
		/* a job held back looks again after its sleep, however short */
		last_throttle_check = reason ? 0 : GetCurrentTimestamp();
	}
	if (reason != NULL)
	{
		Oid			type = TEXTOID;
		Datum		value = CStringGetTextDatum(reason);

		set_job(job_id, "throttled_by = $2", 1, &type, &value, NULL);
		mt_restore_user(&saved);
		mt_bgw_commit();
		*sleep_ms = mt_throttle_sleep;
		return STEP_CONTINUE;
	}

	if (strcmp(job->phase, "plan") == 0)
	{
		/* the estimates read the table: as the job's owner */
		nest = enter_job_owner(job, &save_user, &save_sec);
		batch_relid = job->relid;
		mt_lock_wait_sampler_start();
		plan_job(job);
		(void) mt_lock_wait_sampler_stop();
		leave_job_owner(nest, save_user, save_sec);
		set_job(job_id, "rows_total = $2, rows_per_block = $3, end_block = $4, phase = 'main'",
				3, plan_types, plan_values, plan_nulls);
		mt_restore_user(&saved);
		mt_bgw_commit();
		return STEP_CONTINUE;
	}

	/* the CPUs busy with others?  Looked at before the batch holds locks */
	busy = mt_server_busy();

	/* the batch */
	n = job->batch_size > 0 ? job->batch_size :
		(job->fixed_batch_size > 0 ? job->fixed_batch_size : mt_initial_batch_size);
	n = Min(n, mt_max_batch_size);
	memset(&res, 0, sizeof(res));

	start = GetCurrentTimestamp();
	batch_start = start;
	batch_size_tried = n;
	batch_relid = job->relid;
	if (mt_batch_timeout_factor > 0)
	{
		double		limit = Max(job->target_ms * mt_batch_timeout_factor, 1000.0);

		enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(limit, (double) INT_MAX));
		timeout_armed = true;
	}
	nest = enter_job_owner(job, &save_user, &save_sec);
	mt_lock_wait_sampler_start();
	if (job->js.by_ctid)
		run_ctid_batch(job, n, &res);
	else
		run_key_batch(job, n, &res);
	suffered_ms = mt_lock_wait_sampler_stop();
	leave_job_owner(nest, save_user, save_sec);
	if (timeout_armed)
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		timeout_armed = false;
	}
	ms = (double) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());

	/* sessions waiting on what this batch holds */
	if (mt_throttle_on_lock_waiters)
		waiters = mt_lock_waiters_of(MyProcPid, &wait_ms);

	if (res.fail)
		fail_job(job_id, res.fail);
	else
	{
		double		ema = job->ms_per_row;
		int32		next;
		Oid			types[14];
		Datum		values[14];
		char		nulls[14];
		int			k = 0;

		if (res.timed > 0)
		{
			double		sample = Max(ms, 0.01) / res.timed;

			ema = ema > 0 ? 0.5 * ema + 0.5 * sample : sample;
		}
		next = next_batch_size(job, n, ema, job->batches == 0);

		/*
		 * Sessions waited on this batch: halve the next one.  Sessions that
		 * meet a batch's row locks grow with its size squared (more rows
		 * locked, for longer), so after a batch made them wait the size
		 * grows back by a quarter per batch, not double, for
		 * MT_CONTENTION_MEMORY_MS: doubling went straight back to a size
		 * that made them wait, every other batch.
		 */
		if (waiters > 0)
		{
			next = Max(1, Min(next, n / 2));
			contended_job = job_id;
			contended_at = GetCurrentTimestamp();
		}
		else if (contended_job == job_id &&
				 !TimestampDifferenceExceeds(contended_at, GetCurrentTimestamp(),
											 MT_CONTENTION_MEMORY_MS))
			next = Min(next, Max(n + 1, (int32) Min((double) n * 1.25, (double) INT32_MAX)));

		memset(nulls, ' ', sizeof(nulls));
		types[k] = INT8OID;
		values[k++] = Int64GetDatum(res.rows);	/* $2 */
		types[k] = INT8OID;
		values[k++] = Int64GetDatum(res.covered);	/* $3 */
		types[k] = INT4OID;
		values[k++] = Int32GetDatum(next);	/* $4 */
		types[k] = FLOAT8OID;
		values[k] = Float8GetDatum(ema);	/* $5 */
		nulls[k++] = ema > 0 ? ' ' : 'n';
		types[k] = FLOAT8OID;
		values[k++] = Float8GetDatum(ms);	/* $6 */
		types[k] = TEXTARRAYOID;	/* $7 */
		values[k] = res.last_key ? mt_text_array_from_list(res.last_key) : (Datum) 0;
		nulls[k++] = res.last_key ? ' ' : 'n';
		types[k] = INT8OID;
		values[k++] = Int64GetDatum(res.next_block);	/* $8 */
		types[k] = TEXTOID;
		values[k++] = CStringGetTextDatum(res.done ? "done" :
										  (res.phase ? res.phase : job->phase));	/* $9 */
		types[k] = INT4OID;
		values[k++] = Int32GetDatum(res.sweep_pass);	/* $10 */
		types[k] = INT8OID;
		values[k++] = Int64GetDatum(res.sweep_rows);	/* $11 */
		types[k] = INT8OID;
		values[k++] = Int64GetDatum(job->js.by_ctid ? res.end_block : job->end_block);	/* $12 */
		types[k] = INT4OID;
		values[k++] = Int32GetDatum(waiters);	/* $13 */

		types[k] = BOOLOID;
		values[k++] = BoolGetDatum(res.ran);	/* $14 */
		types[k] = BOOLOID;
		values[k++] = BoolGetDatum(busy);	/* $15 */

		set_job(job_id,
				"rows_done = rows_done + $2, rows_scanned = rows_scanned + $3, "
				"batches = batches + $14::int, batch_size = $4, ms_per_row = $5, "
				"busy_ms = busy_ms + $6, last_key = $7, next_block = $8, phase = $9, "
				"sweep_pass = $10, sweep_rows = $11, end_block = $12, attempts = 0, takeovers = 0, "
				"lock_waiters_caused = lock_waiters_caused + $13, "
				"throttled_by = CASE WHEN $13 > 0 THEN 'lock_waiters' "
				"WHEN $15 THEN 'busy_server' END",
				k, types, values, nulls);
		if (wait_ms > 0)
		{
			Oid			t = FLOAT8OID;
			Datum		v = Float8GetDatum(wait_ms);

			set_job(job_id, "lock_wait_ms = lock_wait_ms + $2", 1, &t, &v, NULL);
		}
		if (suffered_ms > 0)
		{
			Oid			t = FLOAT8OID;
			Datum		v = Float8GetDatum(suffered_ms);

			set_job(job_id, "lock_waits_suffered = lock_waits_suffered + 1, "
					"lock_wait_suffered_ms = lock_wait_suffered_ms + $2",
					1, &t, &v, NULL);
		}

		if (mt_batch_history_retention > 0 && res.ran)
		{
			Oid			ht[7] = {INT8OID, INT8OID, FLOAT8OID, INT4OID, INT4OID, FLOAT8OID, FLOAT8OID};
			Datum		hv[7];

			hv[0] = Int64GetDatum(job_id);
			hv[1] = Int64GetDatum(res.rows);
			hv[2] = Float8GetDatum(ms);
			hv[3] = Int32GetDatum(n);
			hv[4] = Int32GetDatum(waiters);
			hv[5] = Float8GetDatum(wait_ms);
			hv[6] = Float8GetDatum(suffered_ms);
			if (SPI_execute_with_args("INSERT INTO migration_tools.backfill_batches "
									  "(job_id, batch_no, rows, duration_ms, batch_size, "
									  " lock_waiters_caused, lock_wait_caused_ms, lock_wait_ms) "
									  "SELECT $1, batches, $2, $3, $4, $5, $6, $7 "
									  "FROM migration_tools.backfill_jobs WHERE job_id = $1 "
									  "ON CONFLICT DO NOTHING",
									  7, ht, hv, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not record batch");
			if ((job->batches + 1) % 100 == 0)
			{
				Oid			pt[2] = {INT8OID, INT8OID};
				Datum		pv[2];

				pv[0] = Int64GetDatum(job_id);
				pv[1] = Int64GetDatum(job->batches + 1 - mt_batch_history_retention);
				if (SPI_execute_with_args("DELETE FROM migration_tools.backfill_batches "
										  "WHERE job_id = $1 AND batch_no <= $2",
										  2, pt, pv, NULL, false, 0) != SPI_OK_DELETE)
					elog(ERROR, "could not prune batch history");
			}
		}

		if (res.done)
		{
			set_job(job_id, "state = 'completed', finished_at = clock_timestamp(), worker_pid = NULL, "
					"throttled_by = NULL", 0, NULL, NULL, NULL);
			result = STEP_STOP;
		}
		else
		{
			long		extra = 0;

			/*
			 * After a take-over, the first batch commits synchronously: its
			 * reset of the take-over count must not be lost in a crash.
			 */
			async_commit = res.ran && job->takeovers == 0;
			/* queued before migration_tools.max_batch_sleep was lowered */
			*sleep_ms = (long) Min(job->sleep_ms, (double) mt_max_batch_sleep);

			/*
			 * Sessions waited on the batch: leave the table to them for
			 * twice as long as the batch held its locks, or as they waited,
			 * within migration_tools.throttle_sleep.  Under such a load the
			 * job then takes at most a third of the time (and of a CPU):
			 * with as long as the batch, the application, measured with
			 * pgbench on 2 cores, kept half its throughput.
			 */
			if (waiters > 0)
				extra = (long) Min((double) mt_throttle_sleep, 2 * Max(ms, wait_ms));

			/*
			 * The CPUs were busy with other sessions: take only
			 * busy_duty_cycle of the time, as a background job should.
			 * When both hold, the longer sleep wins.
			 */
			if (busy)
				extra = Max(extra,
							(long) Min((double) mt_throttle_sleep,
									   ms * (1.0 / mt_busy_duty_cycle - 1.0)));
			*sleep_ms += extra;
		}
	}
	if (res.fail)
		result = STEP_STOP;

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
		mt_throttle_note_rows(&throttle_state, job->relid, res.rows);
	}
	return result;
}

/*
 * The role that queued a job (InvalidOid if the job is gone).  Called as
 * the extension owner, inside a transaction.
 */
static Oid
job_owner(int64 job_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};
	bool		isnull;

	if (SPI_execute_with_args("SELECT owner FROM migration_tools.backfill_jobs WHERE job_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read backfill job " INT64_FORMAT, job_id);
	if (SPI_processed != 1)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Record a failed batch in a new transaction: count the attempt, keep the
 * error, halve the batch after a timeout, fail the job after max_attempts
 * consecutive failures.  suffered_ms is the lock wait the batch sampled.
 * Returns whether to go on, with a backoff sleep.
 *
 * table_lock: the batch timed out waiting for a lock on the table (another
 * session's ALTER TABLE, LOCK TABLE, VACUUM FULL, CREATE INDEX ...).  That
 * is not an error of the job and no smaller batch gets past it: like an
 * UPDATE, the job waits for the lock as long as it is held, however long
 * that is.  The attempt does not count toward max_attempts; the job shows
 * throttled_by = 'table_lock' and a last_error naming the holder, and
 * tries again every throttle_sleep.  (A row lock still counts: a smaller
 * batch gets past it, and one row held for good must end the job.)
 */
static MtStep
record_failure(int64 job_id, ErrorData *edata, double suffered_ms,
			   bool table_lock, long *sleep_ms)
{
	MtSavedUser saved;
	bool		timeout = edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
	Oid			types[7] = {INT8OID, TEXTOID, BOOLOID, INT4OID, INT4OID, BOOLOID, BOOLOID};
	Datum		values[7];
	MtStep		step = STEP_STOP;
	int			attempts = 0;
	Oid			owner;
	bool		recorded;

	/* a lock timeout waited that long, whatever the samples saw */
	if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		suffered_ms = Max(suffered_ms, (double) mt_batch_lock_timeout);

	ereport(LOG,
			(errmsg("migration_tools backfill job " INT64_FORMAT ": batch failed: %s",
					job_id, edata->message)));

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(edata->message);
	values[2] = BoolGetDatum(timeout);
	values[3] = Int32GetDatum(MyProcPid);
	values[4] = Int32GetDatum(batch_size_tried);
	values[6] = BoolGetDatum(table_lock);

	mt_bgw_begin("migration_tools: recording a failed batch");
	if (!OidIsValid(get_extension_oid(MT_EXTENSION_NAME, true)))
	{
		/* DROP EXTENSION: the job is gone with it; stop */
		mt_bgw_commit();
		return STEP_STOP;
	}
	mt_become_owner(&saved);

	/*
	 * A role dropped while its batch ran makes the batch fail with whatever
	 * its statement met first (often "permission denied"); say what really
	 * happened, and give up at once: no retry can succeed.
	 */
	owner = job_owner(job_id);
	values[5] = BoolGetDatum(OidIsValid(owner) &&
							 !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)));
	if (DatumGetBool(values[5]))
		values[1] = CStringGetTextDatum(psprintf("role with OID %u that queued the job was dropped",
												 owner));
	else if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE && OidIsValid(batch_relid))
	{
		List	   *holders = mt_lock_conflicts(MyDatabaseId, batch_relid, RowExclusiveLock);
		ListCell   *lc;

		/*
		 * The last sample may have missed the wait (a tick between the
		 * timeout and here): a session still holding a lock on the table
		 * that blocks any UPDATE says the same.
		 */
		if (!table_lock && mt_lock_wait_sampler_last_locktype() < 0)
		{
			foreach(lc, holders)
			{
				if (((MtLockConflict *) lfirst(lc))->granted)
					table_lock = true;
			}
		}
		values[6] = BoolGetDatum(table_lock);
	}
	if (table_lock && !DatumGetBool(values[5]))
	{
		List	   *holders = OidIsValid(batch_relid) ?
			mt_lock_conflicts(MyDatabaseId, batch_relid, RowExclusiveLock) : NIL;
		ListCell   *lc;
		StringInfoData msg;

		initStringInfo(&msg);
		appendStringInfo(&msg, "%s: waiting for a lock on the table", edata->message);
		foreach(lc, holders)
		{
			MtLockConflict *c = lfirst(lc);

			if (!c->granted)
				continue;
			if (c->prepared)
				appendStringInfo(&msg, " held by prepared transaction %u", c->prepared_xid);
			else
				appendStringInfo(&msg, " held by process %d", c->pid);
			appendStringInfo(&msg, " (%s)", GetLockmodeName(DEFAULT_LOCKMETHOD, c->mode));
			break;
		}
		appendStringInfoString(&msg, "; the job goes on once it is released");
		values[1] = CStringGetTextDatum(msg.data);
	}
	if (SPI_execute_with_args("UPDATE migration_tools.backfill_jobs SET "
							  "attempts = attempts + CASE WHEN $7 THEN 0 ELSE 1 END, last_error = $2, "
							  "batch_size = CASE WHEN $3 AND $5 > 0 THEN greatest(1, $5 / 2) "
							  "                  ELSE batch_size END, "
							  "throttled_by = CASE WHEN $7 THEN 'table_lock' ELSE throttled_by END, "
							  "state = CASE WHEN $6 OR (NOT $7 AND attempts + 1 >= max_attempts) THEN 'failed' ELSE state END, "
							  "finished_at = CASE WHEN $6 OR (NOT $7 AND attempts + 1 >= max_attempts) THEN clock_timestamp() END, "
							  "worker_pid = CASE WHEN $6 OR (NOT $7 AND attempts + 1 >= max_attempts) THEN NULL ELSE worker_pid END "
							  "WHERE job_id = $1 AND state = 'running' AND worker_pid = $4 "
							  "RETURNING state = 'running', attempts",
							  7, types, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not record the failure of backfill job " INT64_FORMAT, job_id);
	if (SPI_processed == 1)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			step = STEP_CONTINUE;
		attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	recorded = SPI_processed == 1;
	if (recorded && suffered_ms > 0)
	{
		Oid			st[2] = {INT8OID, FLOAT8OID};
		Datum		sv[2];

		sv[0] = Int64GetDatum(job_id);
		sv[1] = Float8GetDatum(suffered_ms);
		if (SPI_execute_with_args("UPDATE migration_tools.backfill_jobs SET "
								  "lock_waits_suffered = lock_waits_suffered + 1, "
								  "lock_wait_suffered_ms = lock_wait_suffered_ms + $2 "
								  "WHERE job_id = $1",
								  2, st, sv, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the lock wait of backfill job " INT64_FORMAT, job_id);
	}
	/* a wait for a table lock is no failed attempt: no history row */
	if (recorded && mt_batch_history_retention > 0 && !table_lock)
	{
		Oid			ht[5] = {INT8OID, TEXTOID, FLOAT8OID, FLOAT8OID, INT4OID};
		Datum		hv[5];

		hv[0] = Int64GetDatum(job_id);
		hv[1] = CStringGetTextDatum(edata->message);
		hv[2] = Float8GetDatum(batch_start > 0 ?
							   (double) TimestampDifferenceMilliseconds(batch_start, GetCurrentTimestamp()) : 0);
		hv[3] = Float8GetDatum(suffered_ms);
		hv[4] = Int32GetDatum(batch_size_tried);
		if (SPI_execute_with_args("INSERT INTO migration_tools.backfill_batches "
								  "(job_id, batch_no, attempt, rows, duration_ms, batch_size, "
								  " lock_wait_ms, error) "
								  "SELECT $1, batches + 1, attempts, 0, $3, $5, $4, $2 "
								  "FROM migration_tools.backfill_jobs WHERE job_id = $1 "
								  "ON CONFLICT DO NOTHING",
								  5, ht, hv, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record batch");
	}
	mt_restore_user(&saved);
	mt_bgw_commit();

	/* back off: 100 ms, 200 ms, 400 ms ... at most 10 s */
	*sleep_ms = (long) Min(100.0 * pow(2.0, Max(attempts - 1, 0)), 10000.0);
	if (table_lock)
		*sleep_ms = mt_throttle_sleep;
	return step;
}
