/*-------------------------------------------------------------------------
 *
 * backfill_job.c
 *	  The row of a backfill job in migration_tools.backfill_jobs: reading
 *	  it for a step, changing it, and every change of a job's state.
 *
 * A job is queued (backfill(), run_batched()), running (claimed by a
 * worker, whose pid the row holds), paused, or ended: completed, failed or
 * cancelled.  Each transition is a named function below, the only places
 * that write the state column: the worker's (claim, give the slot back,
 * wait for the run window, complete, fail, count a failed attempt) and the
 * control functions' (pause, resume, cancel, retry, from the table
 * "controls").  Everything here runs as the extension owner, in a
 * transaction, with SPI connected, on a job row the caller has locked or
 * owns as its worker.
 *
 * IDENTIFICATION
 *	  src/backfill_job.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "backfill_int.h"
#include "spi_util.h"

/*
 * The control functions: from which states each may move a job, to which
 * state, what else it resets, and whether the worker is woken.
 */
typedef struct MtJobControl
{
	const char *name;			/* the SQL function, for messages */
	const char *new_state;
	const char *allowed[4];		/* NULL-terminated */
	const char *extra_set;		/* more assignments, or NULL */
	bool		wake;
} MtJobControl;

static const MtJobControl controls[] = {
	[MT_JOB_PAUSE] = {
		"pause", "paused", {"queued", "running", NULL},
		"throttled_by = NULL",
		false
	},
	[MT_JOB_RESUME] = {
		"resume", "queued", {"paused", NULL},
		"next_due = NULL, worker_pid = NULL",
		true
	},
	[MT_JOB_CANCEL] = {
		"cancel", "cancelled", {"queued", "running", "paused", NULL},
		"finished_at = pg_catalog.now(), throttled_by = NULL",
		false
	},
	[MT_JOB_RETRY] = {
		"retry", "queued", {"failed", "cancelled", NULL},
		"attempts = 0, takeovers = 0, last_error = NULL, finished_at = NULL, "
		"next_due = NULL, worker_pid = NULL, sweep_pass = 0, "
		"phase = CASE WHEN phase = 'done' THEN 'main' ELSE phase END",
		true
	},
};

/* ---------------------------------------------------------------------
 * The job row
 * ---------------------------------------------------------------------
 */

/* A text[] as a List of C strings (in the current memory context). */
void
mt_text_array_to_cstrings(Datum arr, List **out)
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
 * holds it) into cxt, the step context.  NULL if the row is gone.
 */
MtJob *
mt_job_load(int64 job_id, MemoryContext cxt)
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

	if (mt_spi_execute_checked("SELECT *, relation::pg_catalog.oid AS relid, "
							   "extract(epoch FROM target_batch_time) * 1000 AS target_ms, "
							   "extract(epoch FROM batch_sleep) * 1000 AS sleep_ms "
							   "FROM migration_tools.backfill_jobs WHERE job_id = $1 FOR UPDATE",
							   1, &argtype, &arg, NULL, false, 1,
							   SPI_OK_SELECT, "read backfill job") == 0)
		return NULL;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	old = MemoryContextSwitchTo(cxt);
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
		mt_text_array_to_cstrings(d, &job->js.key_columns);
	d = COL("key_types");
	if (!isnull)
		mt_text_array_to_cstrings(d, &job->js.key_types);
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
		mt_text_array_to_cstrings(d, &job->last_key);
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
		old = MemoryContextSwitchTo(cxt);
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
void
mt_job_set(int64 job_id, const char *assignments, int nargs, Oid *types,
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
	(void) mt_spi_execute_checked(sql, nargs + 1, t, v, n, false, 0,
								  SPI_OK_UPDATE, "update backfill job");
}

/* ---------------------------------------------------------------------
 * The worker's transitions
 * ---------------------------------------------------------------------
 */

/* Claimed by this worker: running, from now, with its pid. */
void
mt_job_mark_running(int64 job_id)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(MyProcPid);

	mt_job_set(job_id, "state = 'running', worker_pid = $2, "
			   "started_at = coalesce(started_at, clock_timestamp()), "
			   "run_started_at = clock_timestamp(), run_rows_start = rows_scanned, "
			   "throttled_by = NULL, next_due = NULL",
			   1, &type, &value, NULL);
}

/*
 * Back to the queue, due at due, giving the worker slot up, unless the job
 * is no longer run by this worker.  Returns whether it was.
 */
bool
mt_job_requeue(int64 job_id, TimestampTz due)
{
	Datum		args[3];
	Oid			types[3] = {INT8OID, INT4OID, TIMESTAMPTZOID};

	args[0] = Int64GetDatum(job_id);
	args[1] = Int32GetDatum(MyProcPid);
	args[2] = TimestampTzGetDatum(due);
	return mt_spi_execute_checked("UPDATE migration_tools.backfill_jobs SET "
								  "state = 'queued', worker_pid = NULL, next_due = $3 "
								  "WHERE job_id = $1 AND state = 'running' AND worker_pid = $2",
								  3, types, args, NULL, false, 0,
								  SPI_OK_UPDATE, "requeue backfill job") == 1;
}

/*
 * Outside its run window: back to the queue until it opens.  A job that
 * never ran a batch shows no start yet.
 */
void
mt_job_wait_for_window(int64 job_id, TimestampTz opens)
{
	Oid			type = TIMESTAMPTZOID;
	Datum		value = TimestampTzGetDatum(opens);

	mt_job_set(job_id, "state = 'queued', worker_pid = NULL, "
			   "throttled_by = 'run_window', next_due = $2, "
			   "started_at = CASE WHEN phase = 'plan' THEN NULL ELSE started_at END, "
			   "run_started_at = CASE WHEN phase = 'plan' THEN NULL ELSE run_started_at END",
			   1, &type, &value, NULL);
}

/* Nothing left to do. */
void
mt_job_mark_completed(int64 job_id)
{
	mt_job_set(job_id, "state = 'completed', finished_at = clock_timestamp(), worker_pid = NULL, "
			   "throttled_by = NULL", 0, NULL, NULL, NULL);
}

/* Fail the job with a message (logged too). */
void
mt_job_mark_failed(int64 job_id, const char *message)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(message);

	ereport(LOG,
			(errmsg("migration_tools backfill job " INT64_FORMAT " failed: %s",
					job_id, message)));
	mt_job_set(job_id, "state = 'failed', last_error = $2, finished_at = clock_timestamp(), "
			   "worker_pid = NULL, throttled_by = NULL", 1, &type, &value, NULL);
}

/* Paused, cancelled or taken over while this worker had it: let go. */
void
mt_job_let_go(int64 job_id)
{
	mt_job_set(job_id, "worker_pid = NULL", 0, NULL, NULL, NULL);
}

/*
 * A batch of the job failed: count the attempt (unless it waited for a
 * table lock), keep the error, halve the batch after a timeout, and fail
 * the job when its role was dropped or after max_attempts consecutive
 * failures.  Only while this worker runs the job: returns false (nothing
 * recorded) otherwise, else whether the job still runs and its attempts.
 */
bool
mt_job_count_failed_attempt(const MtFailedAttempt *fa, bool *running, int32 *attempts)
{
	Oid			types[7] = {INT8OID, TEXTOID, BOOLOID, INT4OID, INT4OID, BOOLOID, BOOLOID};
	Datum		values[7];
	bool		isnull;

	values[0] = Int64GetDatum(fa->job_id);
	values[1] = CStringGetTextDatum(fa->message);
	values[2] = BoolGetDatum(fa->timeout);
	values[3] = Int32GetDatum(MyProcPid);
	values[4] = Int32GetDatum(fa->batch_size);
	values[5] = BoolGetDatum(fa->role_dropped);
	values[6] = BoolGetDatum(fa->table_lock);
	*running = false;
	*attempts = 0;
	if (mt_spi_execute_checked("UPDATE migration_tools.backfill_jobs SET "
							   "attempts = attempts + CASE WHEN $7 THEN 0 ELSE 1 END, last_error = $2, "
							   "batch_size = CASE WHEN $3 AND $5 > 0 THEN greatest(1, $5 / 2) "
							   "                  ELSE batch_size END, "
							   "throttled_by = CASE WHEN $7 THEN 'table_lock' ELSE throttled_by END, "
							   "state = CASE WHEN $6 OR (NOT $7 AND attempts + 1 >= max_attempts) THEN 'failed' ELSE state END, "
							   "finished_at = CASE WHEN $6 OR (NOT $7 AND attempts + 1 >= max_attempts) THEN clock_timestamp() END, "
							   "worker_pid = CASE WHEN $6 OR (NOT $7 AND attempts + 1 >= max_attempts) THEN NULL ELSE worker_pid END "
							   "WHERE job_id = $1 AND state = 'running' AND worker_pid = $4 "
							   "RETURNING state = 'running', attempts",
							   7, types, values, NULL, false, 0,
							   SPI_OK_UPDATE_RETURNING,
							   "record the failure of backfill job") != 1)
		return false;
	*running = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return true;
}

/* ---------------------------------------------------------------------
 * The control functions' transitions
 * ---------------------------------------------------------------------
 */

/* The name of a control function ("pause" ...), for messages. */
const char *
mt_job_action_name(MtJobAction action)
{
	return controls[action].name;
}

/* Does the worker have work after the action (the job is queued again)? */
bool
mt_job_action_wakes(MtJobAction action)
{
	return controls[action].wake;
}

/* Has a job in this state ended? */
bool
mt_job_state_is_final(const char *state)
{
	return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
		strcmp(state, "cancelled") == 0;
}

/*
 * Move a job now in state (its row locked by the caller) as the action
 * says, or refuse.  Returns the state afterwards.  A job already in the
 * new state is left alone.
 */
const char *
mt_job_control(int64 job_id, MtJobAction action, const char *state)
{
	const MtJobControl *c = &controls[action];
	const char *new_state = c->new_state;
	bool		ok = false;

	/*
	 * resume() or retry() of a running job: it already does what is asked
	 * (a script that resumes every job it knows must not fail on the one
	 * that runs)
	 */
	if (strcmp(new_state, "queued") == 0 && strcmp(state, "running") == 0)
		new_state = state;
	if (strcmp(state, new_state) != 0)
	{
		const char *hint = NULL;
		Datum		args[2];
		Oid			types[2] = {INT8OID, TEXTOID};
		char	   *sql;

		for (int i = 0; c->allowed[i] != NULL; i++)
			if (strcmp(state, c->allowed[i]) == 0)
				ok = true;
		if (strcmp(state, "paused") == 0)
			hint = "A paused job goes on with resume().";
		else if (strcmp(state, "completed") == 0)
			hint = "A completed job is not run again; queue a new job for more work.";
		else if (mt_job_state_is_final(state))
			hint = "The job has ended; retry() queues a failed or cancelled job again from its checkpoint.";
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot %s backfill job " INT64_FORMAT " because it is %s",
							c->name, job_id, state),
					 hint ? errhint("%s", hint) : 0));
		sql = psprintf("UPDATE migration_tools.backfill_jobs SET state = $2%s%s "
					   "WHERE job_id = $1",
					   c->extra_set ? ", " : "", c->extra_set ? c->extra_set : "");
		args[0] = Int64GetDatum(job_id);
		args[1] = CStringGetTextDatum(new_state);
		(void) mt_spi_execute_checked(sql, 2, types, args, NULL, false, 0,
									  SPI_OK_UPDATE, "update backfill job");
	}
	return new_state;
}
