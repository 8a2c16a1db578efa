/*-------------------------------------------------------------------------
 *
 * history_run.c
 *	  Running a migration script in the caller's transaction: the
 *	  preflight wait for conflicting lock holders, attempts in internal
 *	  subtransactions under a short lock_timeout, and retries with backoff.
 *
 * Used by apply() for the up script and by rollback() and rollback_to()
 * for the statements of a down script that run in the caller's
 * transaction.
 *
 * IDENTIFICATION
 *	  src/history_run.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "history.h"
#include "history_run.h"
#include "lint.h"
#include "locks.h"

/* How often the preflight looks at the lock manager again. */
#define PREFLIGHT_POLL_MS	20

/* the script's own lock_timeout was overridden (NOTICE once per run) */
static bool lock_timeout_override_noticed = false;

/* Sleep on the latch, reacting to interrupts. */
static void
sleep_ms(long ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Before an attempt: wait, without joining any lock queue, while another
 * session holds a lock that conflicts with one the statements take, up to
 * migration_tools.max_preflight_wait.  Refuse when such a holder's
 * transaction is older than migration_tools.max_blocker_age.
 */
static void
preflight(List *statements, double *waited_ms)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		waited = false;
	MemoryContext pollcxt;
	MemoryContext oldcxt;

	/* what one look at the lock manager allocates, reset at each look */
	pollcxt = AllocSetContextCreate(CurrentMemoryContext,
									"migration_tools preflight",
									ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(pollcxt);

	for (;;)
	{
		ListCell   *lc;
		bool		blocked = false;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(pollcxt);
		now = GetCurrentTimestamp();
		foreach(lc, statements)
		{
			MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
			ListCell   *lc2;

			if (info->needs_top_level)
				continue;
			foreach(lc2, info->locks)
			{
				MtLockTarget *target = (MtLockTarget *) lfirst(lc2);
				List	   *conflicts;
				ListCell   *lc3;

				if (!OidIsValid(target->relid))
					continue;
				conflicts = mt_lock_conflicts(MyDatabaseId, target->relid,
											  target->mode);
				foreach(lc3, conflicts)
				{
					MtLockConflict *c = (MtLockConflict *) lfirst(lc3);

					if (!c->granted || c->pid == MyProcPid)
						continue;
					blocked = true;
					if (mt_max_blocker_age_ms > 0 &&
						(c->prepared || c->xact_start == 0 ||
						 TimestampDifferenceExceeds(c->xact_start, now,
													mt_max_blocker_age_ms)))
					{
						char	   *relname = get_rel_name(target->relid);
						Datum		age;

						if (c->prepared || c->xact_start == 0)
							ereport(ERROR,
									(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
									 errmsg("a prepared transaction holds a lock on \"%s\" that statement %d needs",
											relname ? relname : "?", info->statement),
									 errdetail("Its age is unknown, and migration_tools.max_blocker_age is set."),
									 errhint("Commit or roll back the prepared transaction, then apply the migration again.")));
						age = DirectFunctionCall2(timestamp_mi,
												  TimestampTzGetDatum(now),
												  TimestampTzGetDatum(c->xact_start));
						ereport(ERROR,
								(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
								 errmsg("a transaction older than migration_tools.max_blocker_age holds a lock on \"%s\" that statement %d needs",
										relname ? relname : "?", info->statement),
								 errdetail("Process %d holds the lock; its transaction started %s ago.",
										   c->pid,
										   DatumGetCString(DirectFunctionCall1(interval_out, age))),
								 errhint("End that transaction (for example with pg_terminate_backend(%d)) or raise migration_tools.max_blocker_age, then apply the migration again.",
										 c->pid)));
					}
				}
			}
		}
		if (!blocked)
			break;
		if (TimestampDifferenceExceeds(start, now, mt_max_preflight_wait_ms))
			break;
		sleep_ms(PREFLIGHT_POLL_MS);
		waited = true;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(pollcxt);
	/* only a wait counts (not the looks at the lock manager) */
	if (waited)
		*waited_ms += (double) (GetCurrentTimestamp() - start) / 1000.0;
}

/*
 * One attempt: run the statements that can run in a transaction block, in
 * an internal subtransaction, with lock_timeout and applying_version set
 * for the attempt only.  On error, roll the subtransaction back, return
 * false and the error (the caller's transaction stays usable).
 */
static bool
run_attempt(List *statements, const char *version, int timeout_ms,
			ErrorData **error, int *failed_statement)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int current = 0;
	int			nestlevel;
	char		buf[32];

	nestlevel = NewGUCNestLevel();
	snprintf(buf, sizeof(buf), "%dms", timeout_ms);
	(void) set_config_option("lock_timeout", buf,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("migration_tools.applying_version", version,
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		ListCell   *lc;

		foreach(lc, statements)
		{
			MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
			int			rc;

			if (info->needs_top_level)
				continue;
			current = info->statement;
			rc = SPI_execute(info->sql, false, 0);
			if (rc < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not run statement %d: %s",
								info->statement, SPI_result_code_string(rc))));
			SPI_freetuptable(SPI_tuptable);

			/*
			 * The script's own SET lock_timeout (a pg_dump-style header has
			 * "SET lock_timeout = 0") must not let the next statement wait
			 * in a lock queue for longer than this attempt allows: the
			 * attempt's lock_timeout is put back.
			 */
			if (LockTimeout != timeout_ms)
			{
				if (!lock_timeout_override_noticed)
					ereport(NOTICE,
							(errmsg("migration \"%s\": statement %d changed lock_timeout, apply() keeps its own",
									version, info->statement),
							 errdetail("Each attempt runs under lock_timeout = %d ms, from migration_tools.lock_timeout up to migration_tools.max_lock_timeout.",
									   timeout_ms),
							 errhint("Set migration_tools.lock_timeout and migration_tools.max_lock_timeout before apply() to change it.")));
				lock_timeout_override_noticed = true;
				(void) set_config_option("lock_timeout", buf,
										 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET,
										 true, 0, false);
			}
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		AtEOXact_GUC(false, nestlevel);

		*error = edata;
		*failed_statement = current;
		return false;
	}
	PG_END_TRY();

	/*
	 * Settings the script changed (SET search_path, SET ROLE, SET
	 * statement_timeout, ...) last for the script only, as for a function
	 * with SET clauses: neither the caller's session nor the next migration
	 * inherits them.
	 */
	AtEOXact_GUC(false, nestlevel);
	*error = NULL;
	return true;
}

/* Errors worth another attempt: a lock timeout, a deadlock. */
bool
mt_history_is_retryable(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED;
}

/*
 * The lock_timeout of attempt number attempt (from 1), in ms:
 * min(lock_timeout * 2^(attempt-1), max_lock_timeout), in double, clamped
 * before any cast.
 */
double
mt_history_attempt_timeout(int attempt)
{
	double		timeout = (double) mt_lock_timeout_ms * pow(2.0, attempt - 1);

	if (timeout > mt_max_lock_timeout_ms)
		timeout = mt_max_lock_timeout_ms;
	return timeout;
}

/*
 * run_attempt(), with the lock waits it suffers sampled into *suffered_ms
 * (so that a wait that ends before the lock_timeout, for a row lock or a
 * short transaction, counts too).
 */
static bool
run_attempt_sampled(List *statements, const char *version, int timeout,
					ErrorData **error, int *failed_statement, double *suffered_ms)
{
	volatile bool ok = false;

	mt_lock_wait_sampler_start();
	PG_TRY();
	{
		ok = run_attempt(statements, version, timeout, error, failed_statement);
	}
	PG_FINALLY();
	{
		*suffered_ms = mt_lock_wait_sampler_stop();
	}
	PG_END_TRY();
	return ok;
}

/*
 * Run statements with the retry protocol: before each attempt the
 * preflight wait; attempt n runs under lock_timeout
 * min(lock_timeout * 2^(n-1), max_lock_timeout); a lock timeout (or a
 * deadlock) is followed by a sleep of that same timeout times a random
 * factor in [0.5, 1.5), then the next attempt, up to lock_retries attempts.
 * result->error is NULL on success.
 */
void
mt_history_run_with_retries(List *statements, const char *version, MtRunResult *result)
{
	memset(result, 0, sizeof(*result));
	lock_timeout_override_noticed = false;

	for (;;)
	{
		double		timeout;
		TimestampTz start;
		ErrorData  *edata;
		int			failed;
		bool		ok;
		double		suffered_ms;

		result->attempts++;
		timeout = mt_history_attempt_timeout(result->attempts);

		preflight(statements, &result->lock_wait_ms);

		start = GetCurrentTimestamp();
		ok = run_attempt_sampled(statements, version, (int) timeout, &edata,
								 &failed, &suffered_ms);
		/* an attempt that timed out waited at least its lock_timeout */
		if (!ok && mt_history_is_retryable(edata))
			suffered_ms = Max(suffered_ms,
							  Min(timeout, (double) (GetCurrentTimestamp() - start) / 1000.0));
		result->lock_wait_ms += suffered_ms;
		if (ok)
			return;

		if (!mt_history_is_retryable(edata) || result->attempts >= mt_lock_retries)
		{
			result->error = edata;
			result->failed_statement = failed;
			return;
		}
		FreeErrorData(edata);
		sleep_ms((long) (timeout * (0.5 + pg_prng_double(&pg_global_prng_state))));
	}
}
