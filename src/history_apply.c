/*-------------------------------------------------------------------------
 *
 * history_apply.c
 *	  apply() and baseline(): running a migration's up script and recording
 *	  it in migration_tools.migrations.
 *
 * apply() runs a migration script in the caller's transaction, with the
 * caller's privileges, and records it in migration_tools.migrations.  The
 * steps, in order:
 *
 *	1. A lock on the migrations table (MT_HISTORY_LOCKMODE) serializes
 *	   every writer of the history: apply, baseline, rollback, rollback_to,
 *	   import_history; the wait is bounded by
 *	   migration_tools.max_deployer_wait.
 *	2. The row of the version is read with a fresh snapshot (so that a
 *	   REPEATABLE READ caller that waited for the lock sees what the
 *	   previous holder committed): applied with the same checksum is a
 *	   no-op, with another checksum an ERROR.
 *	3. The script is linted and split into statements by the server's
 *	   parser (lint.c).
 *	4. Each attempt first waits, without queueing, while a session holds a
 *	   lock that conflicts with one the script needs (lock_conflicts.c), then runs
 *	   the statements in an internal subtransaction under a short
 *	   lock_timeout.  A lock timeout rolls the subtransaction back; the next
 *	   attempt runs after a backoff with jitter, with a longer lock_timeout.
 *	5. Statements that cannot run in a transaction block are not run here:
 *	   they go to scheduled_statements for the background worker, which
 *	   runs them after commit (schedule.c).  When an earlier migration
 *	   still has scheduled statements on a relation the script locks (a
 *	   concurrent build waits for this transaction's snapshot while the
 *	   script would wait for its lock), nothing runs here: the whole
 *	   script is scheduled to run after every such migration (run_after).
 *	6. On success the row is written; on failure the failed row is written
 *	   by a background worker in its own transaction (autonomous.c), and
 *	   the error is re-thrown.
 *
 * The user's statements run as the caller.  Only the reads and writes of
 * the history tables switch to the owner of those tables (the extension
 * owner), with a pinned search_path, the way a SECURITY DEFINER function
 * would, but for those statements only.
 *
 * IDENTIFICATION
 *	  src/history_apply.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "autonomous.h"
#include "drift.h"
#include "history.h"
#include "history_run.h"
#include "launcher.h"
#include "lint.h"
#include "locks.h"
#include "migration_state.h"
#include "migration_tools.h"
#include "schedule_queue.h"
#include "security.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(mt_apply);
PG_FUNCTION_INFO_V1(mt_baseline);

/* The error as recorded in the history: statement, message, SQLSTATE. */
static char *
describe_error(ErrorData *edata, int statement)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (statement > 0)
		appendStringInfo(&buf, "statement %d: ", statement);
	appendStringInfo(&buf, "%s (SQLSTATE %s)",
					 edata->message ? edata->message : "unknown error",
					 unpack_sql_state(edata->sqlerrcode));
	if (edata->detail)
		appendStringInfo(&buf, "\nDETAIL: %s", edata->detail);
	return buf.data;
}

/* One call of apply(): its arguments and what is found out about them. */
typedef struct ApplyCall
{
	char	   *version;
	char	   *up_sql;
	char	   *down_sql;		/* may be NULL */
	char	   *description;	/* may be NULL */
	ArrayType  *allow;			/* may be NULL */
	char	   *checksum;
	char	   *applied_by;
	List	   *statements;		/* MtStatementInfo of the up script */
	List	   *scheduled;		/* those the worker runs after commit */
	List	   *after;			/* MtRunAfter: run after these migrations */
} ApplyCall;

/* Check and read the arguments of apply(). */
static void
read_apply_args(FunctionCallInfo fcinfo, ApplyCall *call)
{
	memset(call, 0, sizeof(*call));
	mt_history_check_writable("apply()");
	mt_history_check_text_arg(fcinfo, 0, "version");
	mt_history_check_text_arg(fcinfo, 1, "up_sql");
	call->version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	mt_history_check_version(call->version);
	call->up_sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	call->down_sql = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	call->description = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	call->allow = PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4);
	if (call->down_sql != NULL && call->down_sql[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("down_sql must not be empty"),
				 errhint("Pass NULL for a migration that cannot be rolled back.")));

	call->checksum = mt_sha256_hex(call->up_sql, strlen(call->up_sql));
	call->applied_by = GetUserNameFromId(GetUserId(), false);
}

/*
 * Is the version already recorded (by baseline(), or applied or scheduled
 * with the same checksum)?  Then there is nothing to do (NOTICE).  Another
 * checksum is an ERROR.
 */
static bool
already_recorded(ApplyCall *call, MtMigrationRow *row)
{
	const char *version = call->version;

	if (row->found && row->baseline && strcmp(row->state, "applied") == 0)
	{
		/* nothing to compare with: the script was never run here */
		ereport(NOTICE,
				(errmsg("migration \"%s\" was recorded by baseline(), skipping", version)));
		return true;
	}
	if (row->found && (strcmp(row->state, "applied") == 0 ||
					   strcmp(row->state, "scheduled") == 0))
	{
		if (strcmp(row->checksum, call->checksum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("migration \"%s\" was already applied with a different checksum",
							version),
					 mt_may_see_role_rows(row->applied_by) ?
					 errdetail("Recorded checksum: %s. Checksum of the given up_sql: %s.",
							   row->checksum, call->checksum) :
					 errdetail("Checksum of the given up_sql: %s. The recorded one is shown to members of role \"%s\" and of migration_tools_admin only.",
							   call->checksum, row->applied_by),
					 errhint("A migration must not change once applied: give the change a new version, or roll this one back first.")));
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already %s, skipping", version, row->state)));
		return true;
	}
	return false;
}

/*
 * Lint and split the scripts, and decide what runs here and what is
 * scheduled: the statements that need the top level, or the whole script
 * when it has to run after earlier migrations' scheduled statements.
 * Refuses before anything runs.
 */
static void
plan_apply(ApplyCall *call)
{
	const char *version = call->version;
	bool		seen_scheduled = false;
	bool		runs_after_scheduled = false;
	ListCell   *lc;

	mt_history_lint_or_refuse(version, call->up_sql, call->allow);
	call->statements = mt_history_runnable_statements(version, "up script", call->up_sql);
	if (call->down_sql != NULL)
		(void) mt_history_runnable_statements(version, "down script", call->down_sql);
	foreach(lc, call->statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

		if (info->needs_top_level)
		{
			call->scheduled = lappend(call->scheduled, info);
			seen_scheduled = true;
		}
		else if (seen_scheduled)
			runs_after_scheduled = true;
	}
	if (call->scheduled != NIL)
		mt_require_preload("apply() of a statement that cannot run in a transaction block");

	/*
	 * Behind scheduled statements of an earlier migration on the same
	 * relations: do not wait for them here, in the caller's statement,
	 * whose snapshot a concurrent build waits for; the whole script runs in
	 * the background after them, in script order.
	 */
	call->after = mt_schedule_pending_before(call->statements, version);
	if (call->after != NIL)
	{
		mt_require_preload("apply() of a migration behind scheduled statements");
		call->scheduled = call->statements;
		runs_after_scheduled = false;
	}
	if (runs_after_scheduled)
		ereport(NOTICE,
				(errmsg("statements of migration \"%s\" that cannot run in a transaction block will run after the others",
						version),
				 errdetail("They run in the background after this transaction commits, in script order.")));
}

/*
 * The up script failed: record the failed row in a transaction of its own
 * (autonomous.c) and re-throw the error, with the migration and statement
 * in its context.
 */
static void
fail_apply(ApplyCall *call, MtRunResult *run, TimestampTz started_at,
		   TimestampTz finished_at)
{
	ErrorData  *edata = run->error;
	MtFailedMigration failure;

	if (mt_history_is_retryable(edata) && edata->detail == NULL)
	{
		double		last_timeout = mt_history_attempt_timeout(run->attempts);

		edata->detail = psprintf("Gave up after %d attempts; the last ran under lock_timeout = %d ms.",
								 run->attempts, (int) last_timeout);
	}
	memset(&failure, 0, sizeof(failure));
	failure.version = call->version;
	failure.description = call->description;
	failure.checksum = call->checksum;
	failure.up_sql = call->up_sql;
	failure.down_sql = call->down_sql;
	failure.applied_by = call->applied_by;
	failure.error = describe_error(edata, run->failed_statement);
	failure.started_at = started_at;
	failure.finished_at = finished_at;
	failure.attempts = run->attempts;
	failure.lock_wait_ms = run->lock_wait_ms;
	(void) mt_record_failure(&failure);

	edata->context = psprintf("%s%smigration \"%s\", statement %d",
							  edata->context ? edata->context : "",
							  edata->context ? "\n" : "",
							  call->version, run->failed_statement);
	ReThrowError(edata);
}

/*
 * Record the migration, applied or scheduled, and queue its scheduled
 * statements, as the owner of the history.  row is the row read before
 * (a failed or rolled back version is replaced, and becomes newest).
 */
static void
record_apply(ApplyCall *call, MtMigrationRow *row, MtRunResult *run,
			 TimestampTz started_at, TimestampTz finished_at, int waiters)
{
	MtAppliedMigration m;
	MtSavedUser sw;
	Datum		run_as;
	ListCell   *lc;

	mt_become_owner(&sw);
	memset(&m, 0, sizeof(m));
	m.version = call->version;
	m.description = call->description;
	m.checksum = call->checksum;
	m.up_sql = call->up_sql;
	m.down_sql = call->down_sql;
	m.applied_by = call->applied_by;
	m.scheduled = call->scheduled != NIL;
	m.started_at = started_at;
	m.finished_at = finished_at;
	m.attempts = run->attempts;
	m.lock_wait_ms = run->lock_wait_ms;
	m.lock_waits_caused = waiters;
	m.fingerprint = call->scheduled == NIL ? mt_catalog_fingerprint() : NULL;

	mt_history_delete_replaced(call->version, row->found);
	mt_migration_insert_applied(&m);

	run_as = DirectFunctionCall1(namein, CStringGetDatum(call->applied_by));
	if (call->after != NIL)
		(void) mt_schedule_in_order(call->version, call->statements, "up",
									mt_run_after_versions(call->after), 0, run_as);
	else
	{
		int			i = 0;

		foreach(lc, call->scheduled)
		{
			MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

			mt_schedule_statement(call->version, ++i, info->statement, info->sql,
								  "up", NIL, true, run_as);
		}
	}
	mt_restore_user(&sw);
}

/* Tell what was scheduled, and ask for a worker at commit. */
static void
notice_scheduled(ApplyCall *call)
{
	const char *version = call->version;

	if (call->after != NIL)
	{
		char	   *names;
		char	   *why;

		mt_describe_run_after(call->after, &names, &why);
		mt_request_work_at_commit();
		if (list_length(call->after) == 1)
			ereport(NOTICE,
					(errmsg("migration \"%s\" is scheduled to run after migration %s",
							version, names),
					 errdetail("%s; run now, this script would wait for them while they wait for this transaction. The background worker runs the whole script, in order, once migration %s is done; if that one fails, this one is not run and fails too.",
							   why, names),
					 errhint("Wait until migration_tools.status shows it no longer scheduled: SELECT state, error FROM migration_tools.status WHERE version = %s;",
							 quote_literal_cstr(version))));
		else
			ereport(NOTICE,
					(errmsg("migration \"%s\" is scheduled to run after migrations %s",
							version, names),
					 errdetail("%s; run now, this script would wait for them while they wait for this transaction. The background worker runs the whole script, in order, once migrations %s are all done; if one of them fails, this one is not run and fails too.",
							   why, names),
					 errhint("Wait until migration_tools.status shows it no longer scheduled: SELECT state, error FROM migration_tools.status WHERE version = %s;",
							 quote_literal_cstr(version))));
	}
	else if (call->scheduled != NIL)
	{
		mt_request_work_at_commit();
		ereport(NOTICE,
				(errmsg("migration \"%s\" is scheduled: %d statement(s) will run in the background after commit",
						version, list_length(call->scheduled)),
				 errhint("Follow it in migration_tools.status.")));
	}
}

/*
 * apply(version, up_sql, down_sql, description, allow) returns text
 */
Datum
mt_apply(PG_FUNCTION_ARGS)
{
	ApplyCall	call;
	MtMigrationRow row;
	MtRunResult run;
	TimestampTz started_at;
	TimestampTz finished_at;
	double		longest_wait_ms = 0;
	int			waiters;

	read_apply_args(fcinfo, &call);

	mt_spi_connect();

	mt_history_lock();

	row = mt_history_read_migration(call.version);
	mt_history_check_not_rolling_back(call.version, &row);
	if (already_recorded(&call, &row))
	{
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.state));
	}

	/* Refuse before running anything. */
	mt_history_check_row_writable(call.version, &row);
	plan_apply(&call);

	started_at = GetCurrentTimestamp();
	if (call.after == NIL && list_length(call.scheduled) < list_length(call.statements))
		mt_history_run_with_retries(call.statements, call.version, &run);
	else
		memset(&run, 0, sizeof(run));
	finished_at = GetCurrentTimestamp();

	if (run.error != NULL)
		fail_apply(&call, &run, started_at, finished_at);

	waiters = call.after != NIL ? 0 : mt_lock_waiters_of(MyProcPid, &longest_wait_ms);

	record_apply(&call, &row, &run, started_at, finished_at, waiters);
	notice_scheduled(&call);

	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(call.scheduled != NIL ? "scheduled" : "applied"));
}

/*
 * baseline(version, description) returns text
 *
 * Record a version as applied without running anything.  An applied (or
 * scheduled) version is left alone with a NOTICE; a failed or rolled back
 * one becomes applied.
 */
Datum
mt_baseline(PG_FUNCTION_ARGS)
{
	char	   *version;
	char	   *description;
	MtMigrationRow row;
	MtSavedUser sw;
	char	   *applied_by;
	char	   *fingerprint;

	mt_history_check_writable("baseline()");
	mt_history_check_text_arg(fcinfo, 0, "version");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	mt_history_check_version(version);
	description = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	mt_spi_connect();
	mt_history_lock();
	row = mt_history_read_migration(version);
	mt_history_check_not_rolling_back(version, &row);
	if (row.found && (strcmp(row.state, "applied") == 0 ||
					  strcmp(row.state, "scheduled") == 0))
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already %s, skipping", version, row.state)));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.state));
	}

	mt_history_check_row_writable(version, &row);
	applied_by = GetUserNameFromId(GetUserId(), false);

	mt_become_owner(&sw);
	fingerprint = mt_catalog_fingerprint();
	mt_history_delete_replaced(version, row.found);
	mt_migration_insert_baseline(version, description, mt_sha256_hex("", 0),
								 applied_by, fingerprint);
	mt_restore_user(&sw);

	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text("applied"));
}
