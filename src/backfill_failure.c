/*-------------------------------------------------------------------------
 *
 * backfill_failure.c
 *	  Recording a failed batch of a backfill job, in a transaction of its
 *	  own after the batch's was rolled back.
 *
 * A failed batch counts an attempt; max_attempts consecutive failures fail
 * the job.  A statement or lock timeout halves the next batch.  A batch
 * that waited for a lock on the table itself (another session's DDL)
 * counts no attempt: the job waits for the lock, showing who holds it.  A
 * batch that failed because the job's role was dropped fails the job at
 * once.  The lock wait the batch suffered and a history row of the attempt
 * are recorded too.
 *
 * IDENTIFICATION
 *	  src/backfill_failure.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "backfill_int.h"
#include "locks.h"
#include "migration_tools.h"
#include "spi_util.h"

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

	if (mt_spi_execute_checked("SELECT owner FROM migration_tools.backfill_jobs WHERE job_id = $1",
							   1, types, values, NULL, true, 1,
							   SPI_OK_SELECT, "read backfill job") != 1)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
}


/*
 * Did the batch that failed with a lock timeout wait for a lock on the
 * table itself?  The last sample may have missed the wait (a tick between
 * the timeout and here): a session still holding a lock on the table that
 * blocks any UPDATE says the same.
 */
static bool
held_by_table_lock(Oid relid)
{
	List	   *holders = mt_lock_conflicts(MyDatabaseId, relid, RowExclusiveLock);
	ListCell   *lc;

	if (mt_lock_wait_sampler_last_locktype() >= 0)
		return false;
	foreach(lc, holders)
	{
		if (((MtLockConflict *) lfirst(lc))->granted)
			return true;
	}
	return false;
}

/*
 * The job's last_error while it waits for a table lock: the error, and
 * the first session holding a lock on the table that blocks an UPDATE.
 */
static char *
table_lock_message(const char *error, Oid relid)
{
	List	   *holders = OidIsValid(relid) ?
		mt_lock_conflicts(MyDatabaseId, relid, RowExclusiveLock) : NIL;
	ListCell   *lc;
	StringInfoData msg;

	initStringInfo(&msg);
	appendStringInfo(&msg, "%s: waiting for a lock on the table", error);
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
	return msg.data;
}

/* Add the lock wait a failed batch suffered to the job's counters. */
static void
record_lock_wait(int64 job_id, double suffered_ms)
{
	Oid			st[2] = {INT8OID, FLOAT8OID};
	Datum		sv[2];

	sv[0] = Int64GetDatum(job_id);
	sv[1] = Float8GetDatum(suffered_ms);
	(void) mt_spi_execute_checked("UPDATE migration_tools.backfill_jobs SET "
								  "lock_waits_suffered = lock_waits_suffered + 1, "
								  "lock_wait_suffered_ms = lock_wait_suffered_ms + $2 "
								  "WHERE job_id = $1",
								  2, st, sv, NULL, false, 0,
								  SPI_OK_UPDATE, "record the lock wait of backfill job");
}

/* The history row of a failed attempt, in backfill_batches. */
static void
record_failed_batch(MtJobRun *run, const char *error, double suffered_ms)
{
	Oid			ht[5] = {INT8OID, TEXTOID, FLOAT8OID, FLOAT8OID, INT4OID};
	Datum		hv[5];
	TimestampTz start = run->attempt.start;

	hv[0] = Int64GetDatum(run->job_id);
	hv[1] = CStringGetTextDatum(error);
	hv[2] = Float8GetDatum(start > 0 ?
						   (double) TimestampDifferenceMilliseconds(start, GetCurrentTimestamp()) : 0);
	hv[3] = Float8GetDatum(suffered_ms);
	hv[4] = Int32GetDatum(run->attempt.size);
	(void) mt_spi_execute_checked("INSERT INTO migration_tools.backfill_batches "
								  "(job_id, batch_no, attempt, rows, duration_ms, batch_size, "
								  " lock_wait_ms, error) "
								  "SELECT $1, batches + 1, attempts, 0, $3, $5, $4, $2 "
								  "FROM migration_tools.backfill_jobs WHERE job_id = $1 "
								  "ON CONFLICT DO NOTHING",
								  5, ht, hv, NULL, false, 0,
								  SPI_OK_INSERT, "record batch");
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
MtStep
mt_backfill_record_failure(MtJobRun *run, ErrorData *edata, double suffered_ms,
						   bool table_lock, long *sleep_ms)
{
	MtSavedUser saved;
	MtFailedAttempt fa;
	int64		job_id = run->job_id;
	Oid			batch_relid = run->attempt.relid;
	bool		running = false;
	int32		attempts = 0;
	Oid			owner;
	bool		recorded;

	/* a lock timeout waited that long, whatever the samples saw */
	if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		suffered_ms = Max(suffered_ms, (double) mt_batch_lock_timeout);

	ereport(LOG,
			(errmsg("migration_tools backfill job " INT64_FORMAT ": batch failed: %s",
					job_id, edata->message)));

	memset(&fa, 0, sizeof(fa));
	fa.job_id = job_id;
	fa.message = edata->message;
	fa.timeout = edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
	fa.batch_size = run->attempt.size;
	fa.table_lock = table_lock;

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
	fa.role_dropped = OidIsValid(owner) &&
		!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner));
	if (fa.role_dropped)
		fa.message = psprintf("role with OID %u that queued the job was dropped", owner);
	else if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE && OidIsValid(batch_relid))
	{
		if (!table_lock && held_by_table_lock(batch_relid))
			table_lock = true;
		fa.table_lock = table_lock;
	}
	if (table_lock && !fa.role_dropped)
		fa.message = table_lock_message(edata->message, batch_relid);

	recorded = mt_job_count_failed_attempt(&fa, &running, &attempts);
	if (recorded && suffered_ms > 0)
		record_lock_wait(job_id, suffered_ms);
	/* a wait for a table lock is no failed attempt: no history row */
	if (recorded && mt_batch_history_retention > 0 && !table_lock)
		record_failed_batch(run, edata->message, suffered_ms);
	mt_restore_user(&saved);
	mt_bgw_commit();

	/* back off: 100 ms, 200 ms, 400 ms ... at most 10 s */
	*sleep_ms = (long) Min(100.0 * pow(2.0, Max(attempts - 1, 0)), 10000.0);
	if (table_lock)
		*sleep_ms = mt_throttle_sleep;
	return running ? STEP_CONTINUE : STEP_STOP;
}
