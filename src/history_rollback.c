/*-------------------------------------------------------------------------
 *
 * history_rollback.c
 *	  rollback() and rollback_to(): running the down scripts of applied
 *	  migrations, newest first, and recording them rolled back.
 *
 * A down script runs with the privileges of the role that recorded it.
 * Its statements that cannot run in a transaction block, and the ones
 * after them, are scheduled for the background worker in script order
 * (schedule_queue.c), as are all of them when the rollback has to wait
 * for other migrations' scheduled statements.
 *
 * IDENTIFICATION
 *	  src/history_rollback.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "drift.h"
#include "history.h"
#include "history_run.h"
#include "launcher.h"
#include "lint.h"
#include "migration_state.h"
#include "migration_tools.h"
#include "schedule_queue.h"
#include "security.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(mt_rollback);
PG_FUNCTION_INFO_V1(mt_rollback_to);

/*
 * Check that a migration can be rolled back: known, applied, with a down
 * script.
 */
static void
check_rollback(const char *version, MtMigrationRow *row)
{
	if (!row->found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" does not exist", version),
				 errdetail("No migration with this version is recorded in migration_tools.migrations."),
				 errhint("See migration_tools.status for the recorded migrations.")));
	/* rollback() and rollback_to() skip these before (rollback_done()) */
	Assert(!row->rolling_back && strcmp(row->state, "rolled_back") != 0);
	/* a rollback whose scheduled statements failed may be retried */
	if (strcmp(row->state, "applied") != 0 && !row->rollback_failed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is not applied", version),
				 errdetail("Its state is \"%s\".", row->state),
				 strcmp(row->state, "scheduled") == 0 ?
				 errhint("Wait until its scheduled statements have run.") :
				 errhint("Only an applied migration can be rolled back.")));
	if (row->down_sql == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" has no down script", version),
				 row->baseline ?
				 errdetail("It was recorded by baseline() or import_history(), which record no scripts.") :
				 errdetail("It was applied without down_sql."),
				 errhint("Write a new migration that undoes it instead.")));
	(void) mt_recorded_role(row->applied_by, "the down script", version);
	mt_history_check_row_writable(version, row);
}

/*
 * Is the rollback of a migration already done, or already scheduled for the
 * worker?  Then rollback() and rollback_to() have nothing to do for it: the
 * same rollback requested from many sessions (a deployment tool that runs
 * it from every host) is done once, the others wait for the history lock,
 * find it done and return with a NOTICE, as apply() does for an applied
 * version.  The row was read under the history lock with the latest
 * snapshot (mt_history_read_migration()).
 */
static bool
rollback_done(const char *version, MtMigrationRow *row)
{
	if (!row->found)
		return false;
	if (row->rolling_back)
	{
		ereport(NOTICE,
				(errmsg("rollback of migration \"%s\" is already scheduled, skipping",
						version),
				 errdetail("Statements of its down script are scheduled for the background worker."),
				 errhint("Follow it in migration_tools.status.")));
		return true;
	}
	if (strcmp(row->state, "rolled_back") == 0)
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already rolled back, skipping", version)));
		return true;
	}
	return false;
}

/*
 * The statements of the down script of a migration that are scheduled and
 * not done (a rollback whose scheduled statements failed), analyzed as a
 * script is, in order.  SPI is connected.
 */
static List *
down_statements_not_done(const char *version)
{
	MtSavedUser sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	List	   *sqls = NIL;
	List	   *statements = NIL;
	ListCell   *lc;
	uint64		n;

	mt_become_owner(&sw);
	values[0] = CStringGetTextDatum(version);
	n = mt_history_read_latest("SELECT sql FROM migration_tools.scheduled_statements"
					" WHERE version = $1 AND direction = 'down' AND state <> 'done'"
					" ORDER BY seq",
					1, argtypes, values, 0, "read scheduled statements");
	for (uint64 i = 0; i < n; i++)
		sqls = lappend(sqls, SPI_getvalue(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1));
	mt_restore_user(&sw);

	/* as the caller, with the caller's search_path, as apply() does */
	foreach(lc, sqls)
		statements = list_concat(statements, mt_analyze_script((char *) lfirst(lc)));
	return statements;
}

/*
 * A rollback whose scheduled statements failed: schedule again those that
 * are not done (the statements that ran in the transaction of the first
 * rollback() are not run again).  Runs as the owner.
 */
static int
retry_rollback(const char *version, List *run_after, const char *run_as)
{
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, NAMEOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	uint64		n;

	values[0] = CStringGetTextDatum(version);
	values[1] = run_after != NIL ? mt_text_array_from_list(run_after) : (Datum) 0;
	nulls[1] = run_after != NIL ? ' ' : 'n';
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(run_as));
	n = mt_spi_execute_checked("UPDATE migration_tools.scheduled_statements"
							   "   SET state = 'pending', attempts = 0, error = NULL,"
							   "       not_before = pg_catalog.now(), started_at = NULL,"
							   "       finished_at = NULL, run_after = $2, run_as = $3"
							   " WHERE version = $1 AND direction = 'down' AND state <> 'done'",
							   3, types, values, nulls, false, 0,
							   SPI_OK_UPDATE,
							   psprintf("schedule the rollback of migration \"%s\" again", version));
	if (mt_migration_mark_rollback_rescheduled(version) != 1)
		mt_history_report_concurrent_change(version);
	return (int) n;
}

/*
 * The migrations the down script has to run after: run_after (given by
 * rollback_to()), and the migrations whose scheduled statements, not yet
 * done, lock relations the down script locks (MtRunAfter in *after).
 * Behind those, as for apply(), nothing runs here (it would wait for a
 * concurrent build that waits for this transaction); the whole down
 * script runs in the background after all of them.  Returns the versions
 * waited for.
 */
static List *
down_script_waits(List *statements, const char *version, const char *run_after,
				  List **after)
{
	List	   *waits = NIL;
	ListCell   *lc;

	*after = NIL;
	if (run_after != NULL)
		waits = list_make1((char *) run_after);
	foreach(lc, mt_schedule_pending_before(statements, version))
	{
		MtRunAfter *ra = (MtRunAfter *) lfirst(lc);

		/* (rollback_to(): the newer migration is waited for anyway) */
		if (run_after != NULL && strcmp(ra->version, run_after) == 0)
			continue;
		*after = lappend(*after, ra);
		waits = lappend(waits, ra->version);
	}
	return waits;
}

/*
 * A rollback whose scheduled statements failed: schedule again what did
 * not run, after waits.
 */
static void
reschedule_rollback(const char *version, MtMigrationRow *row, List *waits,
					List *after)
{
	char	   *names = NULL;
	char	   *why = NULL;
	MtSavedUser sw;
	int			nscheduled;

	mt_require_preload("rollback() of a statement that cannot run in a transaction block");
	mt_become_owner(&sw);
	nscheduled = retry_rollback(version, waits, row->applied_by);
	mt_restore_user(&sw);
	mt_request_work_at_commit();
	if (after != NIL)
		mt_describe_run_after(after, &names, &why);
	ereport(NOTICE,
			(errmsg("rollback of migration \"%s\" is scheduled again: %d statement(s) will run in the background after commit",
					version, nscheduled),
			 after == NIL ? 0 :
			 list_length(after) == 1 ?
			 errdetail("%s: they run once migration %s is done.", why, names) :
			 errdetail("%s: they run once migrations %s are all done.", why, names),
			 errhint("Follow it in migration_tools.status.")));
}

/*
 * Run the statements of the down script that run in this transaction,
 * with the retry protocol; an error names the migration and statement.
 */
static void
run_down_now(List *now, const char *version)
{
	MtRunResult run;

	mt_history_run_with_retries(now, version, &run);
	if (run.error != NULL)
	{
		ErrorData  *edata = run.error;

		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("could not roll back migration \"%s\"", version),
				 errdetail("Statement %d of the down script failed after %d attempt(s): %s",
						   run.failed_statement, run.attempts,
						   edata->message ? edata->message : "unknown error"),
				 edata->detail ? errhint("%s", edata->detail) : 0));
	}
}

/*
 * Record the rollback, as the owner: rolled back when nothing is left for
 * the worker, otherwise scheduled with the statements in later queued
 * after the up script's, to run after waits.  Returns how many rows were
 * scheduled.
 */
static int
record_down(const char *version, MtMigrationRow *row, List *later, List *waits)
{
	MtSavedUser sw;
	uint64		changed;
	int			nscheduled = 0;

	mt_become_owner(&sw);
	if (later == NIL)
		changed = mt_migration_mark_rolled_back(version, mt_catalog_fingerprint());
	else
		changed = mt_migration_mark_rollback_scheduled(version);
	if (changed != 1)
		mt_history_report_concurrent_change(version);

	if (later != NIL)
	{
		/* as the role that recorded the down script, as it runs here */
		Datum		run_as = DirectFunctionCall1(namein,
												 CStringGetDatum(row->applied_by));
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];
		int			seq;

		/* after the statements of the up script, if some were scheduled */
		values[0] = CStringGetTextDatum(version);
		(void) mt_spi_execute_checked("SELECT coalesce(pg_catalog.max(seq), 0)"
									  " FROM migration_tools.scheduled_statements"
									  " WHERE version = $1",
									  1, argtypes, values, NULL, false, 0,
									  SPI_OK_SELECT, "read scheduled statements");
		{
			bool		isnull;

			seq = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
		}
		nscheduled = mt_schedule_in_order(version, later, "down", waits, seq, run_as);
	}
	mt_restore_user(&sw);
	return nscheduled;
}

/* Tell what of the down script was scheduled, and ask for a worker. */
static void
notice_down_scheduled(const char *version, const char *run_after, List *after,
					  List *later, int nscheduled)
{
	if (after != NIL)
	{
		char	   *names;
		char	   *why;
		char	   *also = "";

		mt_describe_run_after(after, &names, &why);
		if (run_after != NULL)
			also = psprintf(" and after the scheduled rollback of migration \"%s\"", run_after);
		mt_request_work_at_commit();
		if (list_length(after) == 1)
			ereport(NOTICE,
					(errmsg("rollback of migration \"%s\" is scheduled: %d statement(s) will run in the background after commit",
							version, nscheduled),
					 errdetail("%s; run now, the down script would wait for them while they wait for this transaction. The background worker runs it, in order, once migration %s is done%s; if that one fails, this rollback is not run and fails too.",
							   why, names, also),
					 errhint("Follow it in migration_tools.status.")));
		else
			ereport(NOTICE,
					(errmsg("rollback of migration \"%s\" is scheduled: %d statement(s) will run in the background after commit",
							version, nscheduled),
					 errdetail("%s; run now, the down script would wait for them while they wait for this transaction. The background worker runs it, in order, once migrations %s are all done%s; if one of them fails, this rollback is not run and fails too.",
							   why, names, also),
					 errhint("Follow it in migration_tools.status.")));
	}
	else if (later != NIL)
	{
		mt_request_work_at_commit();
		ereport(NOTICE,
				(errmsg("rollback of migration \"%s\" is scheduled: %d statement(s) will run in the background after commit",
						version, nscheduled),
				 run_after ?
				 errdetail("They run after the scheduled rollback of migration \"%s\".", run_after) :
				 errdetail("Statement %d of the down script cannot run in a transaction block; it and the statements after it run in the background, in order.",
						   ((MtStatementInfo *) linitial(later))->statement),
				 errhint("Follow it in migration_tools.status.")));
	}
}

/*
 * Roll back a migration (checked by check_rollback): run its down script
 * and mark it rolled back.  SPI is connected and the history lock held.
 *
 * Statements that cannot run in a transaction block (DROP INDEX
 * CONCURRENTLY, ...) are scheduled for the background worker, as apply()
 * does, but the script's order is kept: the statements before the first
 * such statement run here; that one and every statement after it are
 * scheduled, in order (those that could run in a transaction block run in
 * one transaction per group, under migration_tools.max_lock_timeout).  The
 * migration is then 'scheduled' until the worker has run them: then
 * 'rolled_back', or 'failed' with the error (rollback() retries what did
 * not run).  With run_after (rollback_to(), after a newer migration whose
 * rollback was scheduled) everything is scheduled, to run after that
 * migration's; so it is, as for apply(), when other migrations still have
 * scheduled statements on the relations the down script locks (it runs
 * after all of them).  Returns whether anything was scheduled.
 */
static bool
run_down_script(const char *version, MtMigrationRow *row, const char *run_after)
{
	List	   *statements;
	List	   *now = NIL;
	List	   *later = NIL;
	ListCell   *lc;
	List	   *after;
	List	   *waits;
	int			nscheduled;

	if (row->rollback_failed)
		statements = down_statements_not_done(version);
	else
		statements = mt_history_runnable_statements(version, "down script", row->down_sql);

	waits = down_script_waits(statements, version, run_after, &after);

	if (row->rollback_failed)
	{
		reschedule_rollback(version, row, waits, after);
		return true;
	}

	foreach(lc, statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

		if (waits == NIL && later == NIL && !info->needs_top_level)
			now = lappend(now, info);
		else
			later = lappend(later, info);
	}
	if (after != NIL)
		mt_require_preload("rollback() of a migration behind scheduled statements");
	else if (later != NIL)
		mt_require_preload("rollback() of a statement that cannot run in a transaction block");

	if (now != NIL)
		run_down_now(now, version);

	nscheduled = record_down(version, row, later, waits);
	notice_down_scheduled(version, run_after, after, later, nscheduled);
	return later != NIL;
}

/*
 * Before a stored script of a migration runs: act as the role that
 * recorded it (checked by mt_recorded_role()), unless the session already
 * is that role, with no SET ROLE to get out of it.  Returns whether the
 * user changed; mt_restore_user() then undoes it.
 */
static bool
become_recorder(const char *version, MtMigrationRow *row, MtSavedUser *saved)
{
	Oid			roleid = mt_recorded_role(row->applied_by, "the down script",
										  version);

	if (roleid == GetUserId() && roleid == GetSessionUserId())
		return false;
	mt_become_role(roleid, saved);
	return true;
}

/*
 * Roll back a migration (checked by check_rollback), with the privileges
 * of the role that recorded its down script (applied_by), whoever calls:
 * run_down_script() as that role.  Returns whether anything was scheduled.
 */
static bool
do_rollback(const char *version, MtMigrationRow *row, const char *run_after)
{
	MtSavedUser saved;
	bool		switched;
	bool		scheduled;

	switched = become_recorder(version, row, &saved);
	scheduled = run_down_script(version, row, run_after);
	if (switched)
		mt_restore_user(&saved);
	return scheduled;
}

/*
 * The common start of rollback() and rollback_to(): check the call and the
 * version argument, connect to SPI and take the history lock.  Returns the
 * version, allocated in the caller's context.
 */
static char *
begin_rollback(FunctionCallInfo fcinfo, const char *funcname)
{
	char	   *version;

	mt_history_check_writable(funcname);
	mt_history_check_text_arg(fcinfo, 0, "version");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));

	mt_spi_connect();
	mt_history_lock();
	return version;
}

/*
 * rollback(version) returns text
 *
 * A version already rolled back, or whose rollback is already scheduled, is
 * a no-op with a NOTICE (returns its state), as apply() of an applied
 * version is.
 */
Datum
mt_rollback(PG_FUNCTION_ARGS)
{
	char	   *version;
	MtMigrationRow row;
	bool		scheduled;

	version = begin_rollback(fcinfo, "rollback()");
	row = mt_history_read_migration(version);
	if (rollback_done(version, &row))
	{
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.rolling_back ? "scheduled" : "rolled_back"));
	}
	check_rollback(version, &row);
	scheduled = do_rollback(version, &row, NULL);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(scheduled ? "scheduled" : "rolled_back"));
}

/*
 * The migrations recorded after the target that are still in effect
 * (applied, scheduled, or with a failed scheduled rollback), newest first,
 * read with the latest snapshot.
 */
static List *
later_in_effect(MtMigrationRow *target)
{
	MtSavedUser sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	List	   *later = NIL;
	uint64		n;

	mt_become_owner(&sw);
	values[0] = Int64GetDatum(target->installed_rank);
	n = mt_history_read_latest("SELECT version FROM migration_tools.migrations m"
							   " WHERE installed_rank > $1 AND (state IN ('applied', 'scheduled', 'running')"
							   "       OR (state = 'failed' AND EXISTS"
							   "           (SELECT FROM migration_tools.scheduled_statements s"
							   "             WHERE s.version = m.version AND s.direction = 'down'"
							   "               AND s.state <> 'done')))"
							   " ORDER BY installed_rank DESC",
							   1, argtypes, values, 0, "read the later migrations");
	for (uint64 i = 0; i < n; i++)
		later = lappend(later, SPI_getvalue(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1));
	mt_restore_user(&sw);
	return later;
}

/*
 * Check them all first.  Those whose rollback is already scheduled (by
 * another rollback_to() of the same target, which held the history lock
 * before us) are left to it; but not behind a newer migration still to
 * roll back here, which would then be undone after it.
 */
static void
check_rollback_all(List *later)
{
	const char *newest = NULL;
	ListCell   *lc;

	foreach(lc, later)
	{
		char	   *v = (char *) lfirst(lc);
		MtMigrationRow row = mt_history_read_migration(v);

		if (!row.rolling_back)
		{
			check_rollback(v, &row);
			if (newest == NULL)
				newest = v;
		}
		else if (newest != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration \"%s\" is already being rolled back, before the newer migration \"%s\"",
							v, newest),
					 errdetail("rollback_to() rolls back newest first, but the rollback of migration \"%s\" was scheduled for the background worker while migration \"%s\" was in effect.",
							   v, newest),
					 errhint("Wait until migration_tools.status shows migration \"%s\" rolled_back, then call rollback_to() again.",
							 v)));
	}
}

/*
 * rollback_to(version) returns integer
 *
 * Roll back every applied migration recorded after the target, newest
 * first; the target stays applied.  Everything is checked before anything
 * runs.  Returns how many migrations were rolled back or scheduled for
 * rollback by this call: a migration whose rollback is already scheduled
 * (the same rollback_to() from another session got the history lock first)
 * is skipped with a NOTICE, and one already rolled back is not in effect.
 */
Datum
mt_rollback_to(PG_FUNCTION_ARGS)
{
	char	   *version;
	MtMigrationRow target;
	List	   *later;
	ListCell   *lc;
	const char *run_after = NULL;
	int			done = 0;

	version = begin_rollback(fcinfo, "rollback_to()");
	target = mt_history_read_migration(version);
	if (!target.found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" does not exist", version),
				 errdetail("No migration with this version is recorded in migration_tools.migrations."),
				 errhint("See migration_tools.status for the recorded migrations.")));
	if (strcmp(target.state, "applied") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is not applied", version),
				 errdetail("Its state is \"%s\".", target.state),
				 errhint("rollback_to() keeps the target applied; choose an applied migration.")));

	later = later_in_effect(&target);
	if (later == NIL)
		ereport(NOTICE,
				(errmsg("no migration after \"%s\" is in effect, nothing to roll back",
						version)));
	check_rollback_all(later);

	/*
	 * Newest first.  Once the rollback of one of them is scheduled (here,
	 * or before), the older ones are scheduled after it, in turn.
	 */
	foreach(lc, later)
	{
		char	   *v = (char *) lfirst(lc);
		MtMigrationRow row = mt_history_read_migration(v);

		if (rollback_done(v, &row))
			run_after = v;
		else
		{
			if (do_rollback(v, &row, run_after))
				run_after = v;
			else
				ereport(NOTICE,
						(errmsg("rolled back migration \"%s\"", v)));
			done++;
		}
	}

	SPI_finish();
	PG_RETURN_INT32(done);
}
