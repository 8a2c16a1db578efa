/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  Scheduled migration statements: the statements of a migration that
 *	  cannot run in a transaction block, run by the background worker after
 *	  apply() commits.
 *
 * apply() queues such statements (CREATE INDEX CONCURRENTLY, VACUUM, ...)
 * in migration_tools.scheduled_statements, one row per statement in script
 * order, marks the migration 'scheduled' and asks for a worker.  The worker
 * calls mt_history_run_scheduled() until it returns false.  Each call:
 *
 *	1. claims, in a transaction of its own, the first statement of a
 *	   scheduled migration whose earlier statements are all done (and
 *	   those of every migration in its run_after): a
 *	   'pending' row that is due (not_before), or a 'running' row whose
 *	   worker died (mt_work_is_active() says nobody runs it); the row
 *	   becomes 'running' and the worker slot shows it before that commits;
 *	2. runs it as a top-level statement, the way the server runs a simple
 *	   query (parse, analyze, plan, run a portal with isTopLevel, commit),
 *	   as the role that recorded it (the role that called apply(), for
 *	   the statements of a down script too), outside the history lock and
 *	   without the short migration lock_timeout: a concurrent index build
 *	   waits for every older snapshot, and a lock timeout would only
 *	   cancel it;
 *	3. records the outcome in a new transaction: done (and the migration
 *	   'applied' once all its statements are done); or, for lock
 *	   timeouts, deadlocks and serialization failures, pending again with
 *	   a back-off, up to migration_tools.scheduled_retries attempts;
 *	   otherwise failed, with the migration.
 *
 * A failed concurrent index build leaves an INVALID index behind, and a
 * retry of the same statement would then fail with "relation already
 * exists".  So after a failure the INVALID indexes that the attempt left
 * on the table are dropped (DROP INDEX CONCURRENTLY, top level), and before
 * a retry or the re-run of an orphaned statement (server crash, worker
 * killed) an INVALID index of the statement's name, or an INVALID
 * "_ccnew"/"_ccold" index left by REINDEX CONCURRENTLY, is dropped first
 * (schedule_index.c).
 *
 * IDENTIFICATION
 *	  src/schedule.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "tcop/dest.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "drift.h"
#include "launcher.h"
#include "locks.h"
#include "migration_state.h"
#include "migration_tools.h"
#include "schedule_index.h"
#include "schedule.h"
#include "security.h"
#include "spi_util.h"

#define MT_SCHEDULED_KIND	"scheduled"

/*
 * A statement whose worker stopped while running it (crash, restart) is run
 * again; after this many attempts more than migration_tools.scheduled_retries
 * it is failed instead.
 */
#define MT_ORPHAN_SLACK		2

/* search_path of the worker's own queries, which run as a superuser */
#define MT_SAFE_SEARCH_PATH	"pg_catalog, pg_temp"

/* GUCs */
static int	mt_scheduled_retries = 3;
static int	mt_scheduled_lock_timeout = 0;
static int	mt_scheduled_retry_delay = 5000;

/* A claimed statement. */
typedef struct ScheduledStatement
{
	char	   *version;
	int			seq;
	int			statement_no;
	char	   *sql;
	char	   *run_as;
	int			attempts;		/* including the one about to run */
	bool		orphan;			/* was 'running' with no live worker */
	int64		work_id;		/* id shown in the worker slot */
	bool		down;			/* of a down script (rollback) */
	bool		top_level;		/* false: could run in a transaction block */
	bool		run_as_login;	/* run_as could log in when it was recorded */
} ScheduledStatement;

static ScheduledStatement *claim_next(MemoryContext cxt, TimestampTz *next_due);
static void give_up(const char *version, int seq, int statement_no, bool down,
					int attempts);
static void record_statement_failed(const char *version, int seq, int statement_no,
									bool down, const char *error);
static void set_applying_version(const char *version);
static void abort_after_error(MemoryContext cxt, Oid userid, int sec_context,
							  const char *lock_timeout);
static void restore_worker_state(Oid userid, int sec_context, const char *lock_timeout);
static bool is_retryable(int sqlerrcode);
static void record_success(ScheduledStatement *st);
static void record_failure(ScheduledStatement *st, ErrorData *edata, bool retry);

/*
 * Define the GUCs of scheduled statements.  Called from _PG_init.
 */
void
mt_schedule_init(void)
{
	DefineCustomIntVariable("migration_tools.scheduled_retries",
							"Attempts of a scheduled statement that fails on a lock timeout, deadlock or serialization failure.",
							"Other errors fail the statement and its migration at once.",
							&mt_scheduled_retries,
							3, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migration_tools.scheduled_lock_timeout",
							"lock_timeout of scheduled statements; 0 waits as long as needed.",
							"A concurrent index build waits for every older transaction; a lock timeout cancels it.",
							&mt_scheduled_lock_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migration_tools.scheduled_retry_delay",
							"Delay before the first retry of a scheduled statement; it doubles at each further attempt.",
							NULL,
							&mt_scheduled_retry_delay,
							5000, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * In a transaction of its own: check that the role that recorded the
 * statement may still run it, and find what the statement may leave
 * behind (its index target), as that role with the database's
 * search_path.
 */
static void
inspect_statement(ScheduledStatement *st, MtIndexTarget *target,
				  Oid worker_userid, int worker_sec_context, MemoryContext cxt)
{
	Oid			run_as_id;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);

	/*
	 * Names in the statement resolve as when it runs: with the database's
	 * search_path, as its role ("$user", and the schemas that role may
	 * use).
	 */
	SetConfigOption("search_path", GetConfigOptionResetString("search_path"),
					PGC_SUSET, PGC_S_SESSION);
	run_as_id = get_role_oid(st->run_as, true);

	/*
	 * A role that could log in when it recorded the statement and no longer
	 * can (disabled: NOLOGIN, VALID UNTIL passed) writes no more.
	 */
	if (OidIsValid(run_as_id) && st->run_as_login)
	{
		const char *why = mt_role_cannot_login(run_as_id);

		if (why != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("role \"%s\" that scheduled this statement can no longer log in (%s)",
							st->run_as, why),
					 errdetail("Scheduled statements run as the role that recorded them, only while it can log in."),
					 errhint("Allow the role to log in again and apply the migration again, or run the statement by hand.")));
	}
	if (OidIsValid(run_as_id))
		SetUserIdAndSecContext(run_as_id,
							   worker_sec_context | MT_SWITCH_SEC_CONTEXT);
	mt_schedule_find_index_target(st->sql, target);
	SetUserIdAndSecContext(worker_userid, worker_sec_context);
	SetConfigOption("search_path", MT_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);
	MemoryContextSwitchTo(cxt);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}

/*
 * Before the statement runs: deal with what an earlier run left, and note
 * the INVALID indexes of its table.  Returns true when the statement is
 * done already (its worker stopped after the build committed).
 */
static bool
prepare_target(ScheduledStatement *st, MtIndexTarget *target, MemoryContext cxt)
{
	/*
	 * A statement whose worker stopped after the build committed but before
	 * the outcome was recorded: the index is there, VALID.
	 */
	if (st->orphan && target->built)
	{
		ereport(LOG,
				(errmsg("migration_tools: index \"%s\" of scheduled statement %d of migration \"%s\" was already built",
						target->idxname, st->statement_no, st->version)));
		return true;
	}

	/*
	 * A retry, or a statement whose worker died: an INVALID index of the
	 * name we are about to create must go first.
	 */
	if (st->orphan || st->attempts > 1)
		mt_schedule_drop_invalid_indexes(target, true, st->version, cxt);

	/*
	 * An INVALID index of that name that nobody is building (a manual
	 * concurrent build that failed or was cancelled): the build would fail
	 * with "already exists", or, with IF NOT EXISTS, skip it and leave the
	 * migration applied without a usable index.  A build in progress holds
	 * SHARE UPDATE EXCLUSIVE on the table for its whole run: while anybody
	 * holds a lock conflicting with that, the index is left alone (and
	 * checked after the statement).
	 */
	else if (target->stale &&
			 !mt_schedule_table_lock_held(target->tableid, cxt))
		mt_schedule_drop_invalid_indexes(target, true, st->version, cxt);

	if (OidIsValid(target->tableid))
	{
		mt_bgw_begin("migration_tools: looking for invalid indexes");
		target->invalid_before = mt_schedule_invalid_indexes(target->tableid, cxt);
		mt_bgw_commit();
		MemoryContextSwitchTo(cxt);
	}
	return false;
}

/*
 * The statement failed: drop the INVALID index a failed concurrent build
 * left (when its target is known), then record the failure, for a retry
 * when the error is worth one.
 */
static void
handle_failure(ScheduledStatement *st, MtIndexTarget *target, bool target_known,
			   ErrorData *edata, Oid worker_userid, int worker_sec_context,
			   const char *save_timeout, MemoryContext cxt)
{
	volatile bool retry = is_retryable(edata->sqlerrcode) &&
		st->attempts < mt_scheduled_retries;

	/* a failed concurrent build leaves an INVALID index: drop it */
	if (target_known)
	{
		PG_TRY();
		{
			mt_schedule_drop_invalid_indexes(target, false, st->version, cxt);
		}
		PG_CATCH();
		{
			/* the next attempt, or a person, has to deal with it */
			abort_after_error(cxt, worker_userid, worker_sec_context,
							  save_timeout);
		}
		PG_END_TRY();
	}
	record_failure(st, edata, retry);
}

/*
 * Run one due scheduled statement of the current database.  Returns true
 * when it ran (or tried to run) one; false when nothing is due, with
 * *next_due set to the earliest time a pending retry becomes due (left
 * alone when there is none).
 */
bool
mt_history_run_scheduled(TimestampTz *next_due)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	ScheduledStatement *st;
	MtIndexTarget *target;
	ErrorData  *volatile edata = NULL;
	volatile bool target_known = false;
	Oid			worker_userid;
	int			worker_sec_context;
	char	   *save_path;
	char	   *save_timeout;

	/*
	 * Aborting a transaction that a statement started as its role
	 * (concurrent builds commit and start transactions internally) gives
	 * back that role: the worker's own is restored after each abort.
	 */
	GetUserIdAndSecContext(&worker_userid, &worker_sec_context);

	/* everything of one statement lives here, across its transactions */
	cxt = AllocSetContextCreate(TopMemoryContext, "migration_tools scheduled statement",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	/*
	 * Our own queries run as a superuser: nothing a database owner can
	 * put in the search_path may be looked up by them.  User statements
	 * get the database's default back (mt_schedule_run_top_level).
	 */
	save_path = pstrdup(GetConfigOption("search_path", false, false));
	save_timeout = pstrdup(GetConfigOption("lock_timeout", false, false));
	SetConfigOption("search_path", MT_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);

	st = claim_next(cxt, next_due);
	if (st == NULL)
	{
		SetConfigOption("search_path", save_path, PGC_SUSET, PGC_S_SESSION);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		return false;
	}

	target = palloc0(sizeof(MtIndexTarget));

	PG_TRY();
	{
		/* what the statement may leave behind, and what is there already */
		inspect_statement(st, target, worker_userid, worker_sec_context, cxt);
		target_known = true;

		mt_worker_set_current(MT_SCHEDULED_KIND, st->work_id, target->tableid);

		if (!prepare_target(st, target, cxt))
		{
			mt_schedule_run_top_level(st->sql, st->run_as, st->version, !st->top_level, cxt);
			mt_schedule_check_index_built(target, cxt);
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		abort_after_error(cxt, worker_userid, worker_sec_context, save_timeout);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();

	if (edata == NULL)
		record_success(st);
	else
		handle_failure(st, target, target_known, edata, worker_userid,
					   worker_sec_context, save_timeout, cxt);

	mt_worker_set_current(NULL, 0, InvalidOid);
	SetConfigOption("search_path", save_path, PGC_SUSET, PGC_S_SESSION);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return true;
}

/*
 * The statements that may run now or later: of a scheduled migration, not
 * done, with every earlier statement of the migration done, and, with
 * run_after (rollback_to(), after the down statements of the newer
 * migration; apply() behind earlier migrations' scheduled statements),
 * every statement of those migrations done.
 */
#define MT_RUNNABLE_STATEMENTS \
	"  FROM migration_tools.scheduled_statements s" \
	"  JOIN migration_tools.migrations m ON m.version = s.version" \
	" WHERE m.state = 'scheduled' AND s.state IN ('pending', 'running')" \
	"   AND NOT EXISTS (SELECT FROM migration_tools.scheduled_statements e" \
	"                    WHERE e.version = s.version AND e.seq < s.seq" \
	"                      AND e.state <> 'done')" \
	"   AND (s.run_after IS NULL OR NOT EXISTS" \
	"        (SELECT FROM migration_tools.scheduled_statements p" \
	"          WHERE p.version = ANY (s.run_after) AND p.state <> 'done'))"

/*
 * Is a statement due that no worker runs: a pending one whose not_before
 * has come, or a running one whose worker died?
 */
bool
mt_scheduled_work_due(void)
{
	uint64		ntuples;
	bool		due = false;

	ntuples = mt_spi_execute_checked("SELECT s.state = 'running', m.installed_rank, s.seq,"
									 "       s.not_before <= pg_catalog.clock_timestamp()"
									 MT_RUNNABLE_STATEMENTS
									 " ORDER BY m.installed_rank, s.seq LIMIT 100",
									 0, NULL, NULL, NULL, true, 0,
									 SPI_OK_SELECT, "read scheduled statements");
	for (uint64 i = 0; i < ntuples && !due; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		running = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
		int64		rank = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		int			seq = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));

		if (running)
			due = !mt_work_is_active(MyDatabaseId, MT_SCHEDULED_KIND, (rank << 20) + seq);
		else
			due = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	}
	return due;
}

/*
 * The statement of a row read by claim_next(), in cxt.  running: it was
 * 'running' with no live worker (an orphan).
 */
static ScheduledStatement *
claimed_statement(HeapTuple tup, TupleDesc desc, bool running, int64 work_id,
				  MemoryContext cxt)
{
	ScheduledStatement *st;
	bool		isnull;

	st = MemoryContextAllocZero(cxt, sizeof(ScheduledStatement));
	st->version = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
	st->seq = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	st->statement_no = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	st->sql = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 4));
	st->run_as = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 5));
	st->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull)) + 1;
	st->orphan = running;
	st->work_id = work_id;
	st->down = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
	st->top_level = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
	st->run_as_login = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
	return st;
}

/*
 * The claimed statement becomes 'running', one more attempt, and the
 * worker slot names it (before the claim commits).
 */
static void
mark_claimed(ScheduledStatement *st)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(st->version);
	values[1] = Int32GetDatum(st->seq);
	mt_spi_execute_checked("UPDATE migration_tools.scheduled_statements"
						   "   SET state = 'running', attempts = attempts + 1,"
						   "       started_at = pg_catalog.clock_timestamp(),"
						   "       finished_at = NULL"
						   " WHERE version = $1 AND seq = $2",
						   2, argtypes, values, NULL, false, 0,
						   SPI_OK_UPDATE, "claim a scheduled statement");
	mt_worker_set_current(MT_SCHEDULED_KIND, st->work_id, InvalidOid);
	if (st->orphan)
		ereport(LOG,
				(errmsg("migration_tools: resuming scheduled statement %d of migration \"%s\" after its worker stopped",
						st->statement_no, st->version)));
}

/*
 * Find and claim the next statement to run, in a transaction of its own.
 * The row becomes 'running' and the worker slot names it before the claim
 * commits, so that nobody takes it for an orphan.
 */
static ScheduledStatement *
claim_next(MemoryContext cxt, TimestampTz *next_due)
{
	ScheduledStatement *st = NULL;
	SPITupleTable *tuptable;
	uint64		ntuples;

	mt_bgw_begin("migration_tools: looking for scheduled statements");

	ntuples = mt_spi_execute_checked("SELECT s.version, s.seq, s.statement_no, s.sql, s.run_as,"
									 "       s.attempts, s.state, m.installed_rank,"
									 "       s.not_before <= pg_catalog.clock_timestamp() AS due,"
									 "       s.not_before, s.direction = 'down', s.top_level,"
									 "       s.run_as_login"
									 MT_RUNNABLE_STATEMENTS
									 " ORDER BY m.installed_rank, s.seq"
									 "   FOR UPDATE OF s SKIP LOCKED",
									 0, NULL, NULL, NULL, false, 0,
									 SPI_OK_SELECT, "read scheduled statements");
	tuptable = SPI_tuptable;
	for (uint64 i = 0; i < ntuples && st == NULL; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		char	   *state = SPI_getvalue(tup, desc, 7);
		int64		rank = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
		int			seq = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		bool		due = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		int64		work_id = (rank << 20) + seq;
		bool		running = (strcmp(state, "running") == 0);

		if (running && mt_work_is_active(MyDatabaseId, MT_SCHEDULED_KIND, work_id))
			continue;			/* another worker runs it */
		if (running &&
			DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull)) >=
			mt_scheduled_retries + MT_ORPHAN_SLACK)
		{
			/*
			 * Its worker died again and again: perhaps the statement
			 * itself takes the server down.  Stop trying.
			 */
			give_up(SPI_getvalue(tup, desc, 1), seq,
					DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull)),
					DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull)),
					DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull)));
			continue;
		}
		if (!running && !due)
		{
			TimestampTz nb = DatumGetTimestampTz(SPI_getbinval(tup, desc, 10, &isnull));

			if (*next_due == 0 || nb < *next_due)
				*next_due = nb;
			continue;
		}

		st = claimed_statement(tup, desc, running, work_id, cxt);
	}

	if (st != NULL)
		mark_claimed(st);

	mt_bgw_commit();
	return st;
}

/*
 * Fail a statement that was interrupted too often, and its migration.
 * Caller is connected to SPI, in the claim transaction.
 */
static void
give_up(const char *version, int seq, int statement_no, bool down, int attempts)
{
	char	   *error;

	error = psprintf("the worker stopped while running this statement in each of its %d attempts",
					 attempts);
	record_statement_failed(version, seq, statement_no, down, error);
	ereport(WARNING,
			(errmsg("migration_tools: scheduled statement %d of migration \"%s\" failed: %s",
					statement_no, version, error)));
}

/*
 * Record that a statement failed with error, and its migration with it.
 * Caller is connected to SPI, in a transaction that it commits.
 */
static void
record_statement_failed(const char *version, int seq, int statement_no,
						bool down, const char *error)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(version);
	values[1] = Int32GetDatum(seq);
	values[2] = CStringGetTextDatum(error);
	mt_spi_execute_checked("UPDATE migration_tools.scheduled_statements"
						   "   SET state = 'failed', error = $3,"
						   "       finished_at = pg_catalog.clock_timestamp()"
						   " WHERE version = $1 AND seq = $2",
						   3, argtypes, values, NULL, false, 0,
						   SPI_OK_UPDATE, "record a scheduled statement");

	mt_migration_fail_scheduled(version, statement_no, down, error);

	/*
	 * The migrations queued after this one (run_after, transitively:
	 * rollback_to()'s older rollbacks, apply()'s migrations behind
	 * scheduled statements) cannot run now: they fail too, without
	 * running anything.  rollback() or rollback_to() schedules a rollback
	 * again; apply() runs a failed migration again.
	 */
	mt_migration_fail_queued_after(version, down);
}

/*
 * The session settings of a run: the worker is a process of its own, and
 * session-level settings stay in it.  No statement_timeout is enforced in
 * background workers; the lock_timeout is ours, not the migration's short
 * one.  Returns the lock_timeout to put back.
 */
static char *
set_run_settings(const char *run_as, const char *version, bool one_transaction)
{
	char		timeout[32];
	char	   *save_timeout;

	save_timeout = pstrdup(GetConfigOption("lock_timeout", false, false));
	snprintf(timeout, sizeof(timeout), "%d", mt_scheduled_lock_timeout);
	if (one_transaction)
	{
		/*
		 * Statements that could have run in a transaction block (queued
		 * behind others) are ordinary DDL: they must not stall the
		 * application behind them in a lock queue for long.
		 */
		const char *max_timeout = GetConfigOption("migration_tools.max_lock_timeout",
												  true, false);

		if (max_timeout != NULL)
			strlcpy(timeout, max_timeout, sizeof(timeout));
	}
	SetConfigOption("lock_timeout", timeout, PGC_SUSET, PGC_S_SESSION);
	set_applying_version(version);
	if (run_as != NULL)
		SetConfigOption("search_path", GetConfigOptionResetString("search_path"),
						PGC_SUSET, PGC_S_SESSION);
	return save_timeout;
}

/*
 * Plan and run one statement of sql in the current transaction, as roleid,
 * through a portal run at top level.  Trees live in cxt.
 */
static void
run_parsetree(RawStmt *parsetree, const char *sql, Oid roleid, int sec_context,
			  MemoryContext cxt)
{
	bool		snapshot_set = false;
	List	   *querytrees;
	List	   *plantrees;
	Portal		portal;
	DestReceiver *receiver;
	QueryCompletion qc;

	/* as mt_become_role(): no SET ROLE back to the worker's superuser */
	SetUserIdAndSecContext(roleid, sec_context | MT_SWITCH_SEC_CONTEXT);

	MemoryContextSwitchTo(cxt);
	if (analyze_requires_snapshot(parsetree))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}
	querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, sql, NULL, 0, NULL);
	plantrees = pg_plan_queries(querytrees, sql, CURSOR_OPT_PARALLEL_OK, NULL);
	if (snapshot_set)
		PopActiveSnapshot();

	CHECK_FOR_INTERRUPTS();

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, sql, CreateCommandTag(parsetree->stmt),
					  plantrees, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	receiver = CreateDestReceiver(DestNone);
	MemoryContextSwitchTo(cxt);
	(void) mt_portal_run(portal, FETCH_ALL, true, receiver, receiver, &qc);
	receiver->rDestroy(receiver);
	PortalDrop(portal, false);
}

/*
 * Run sql as top-level statements, each in a transaction of its own, as
 * the server runs a simple query: parse, analyze and plan, then a portal
 * run with isTopLevel = true, so that statements that refuse to run in a
 * transaction block (and commit internally, like CREATE INDEX
 * CONCURRENTLY) can run.  With run_as, as that role; otherwise as the
 * worker's own (superuser) role.  version is shown in
 * migration_tools.applying_version meanwhile (for the DDL log).  Trees live in cxt, which survives the
 * commits such statements do internally.  Errors propagate, with the
 * current transaction left for the caller to abort and the user id
 * restored.
 */
void
mt_schedule_run_top_level(const char *sql, const char *run_as, const char *version,
						  bool one_transaction, MemoryContext cxt)
{
	List	   *parsetrees;
	ListCell   *lc;
	Oid			save_userid;
	int			save_sec_context;
	char	   *save_timeout;
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_timeout = set_run_settings(run_as, version, one_transaction);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, sql);
	debug_query_string = sql;

	PG_TRY();
	{
		Oid			roleid = save_userid;

		if (run_as != NULL)
		{
			roleid = get_role_oid(run_as, true);
			if (!OidIsValid(roleid))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("role \"%s\" that scheduled this statement does not exist", run_as),
						 errdetail("Scheduled statements run as the role that recorded the migration."),
						 errhint("Create the role again, or run the statement by hand.")));
		}

		MemoryContextSwitchTo(cxt);
		parsetrees = pg_parse_query(sql);

		foreach(lc, parsetrees)
		{
			RawStmt    *parsetree = lfirst_node(RawStmt, lc);

			if (lc != list_head(parsetrees) && !one_transaction)
			{
				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
			}
			run_parsetree(parsetree, sql, roleid, save_sec_context, cxt);

			SetUserIdAndSecContext(save_userid, save_sec_context);
			if (one_transaction && lnext(parsetrees, lc) != NULL)
				CommandCounterIncrement();
			else
				CommitTransactionCommand();
			MemoryContextSwitchTo(cxt);
		}
		if (parsetrees == NIL)
			CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		/* on error too: the caller aborts, as the worker's own role */
		restore_worker_state(save_userid, save_sec_context, save_timeout);
		debug_query_string = NULL;
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * In PG_CATCH: log the error, abort the transaction it left behind and put
 * the worker's own role and settings back, so that the worker can go on in
 * a new transaction.  Leaves cxt current.
 */
static void
abort_after_error(MemoryContext cxt, Oid userid, int sec_context,
				  const char *lock_timeout)
{
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	restore_worker_state(userid, sec_context, lock_timeout);
	MemoryContextSwitchTo(cxt);
}

/*
 * After aborting a statement's transaction: aborting gives back the role
 * and the settings of when that transaction started, which may be the
 * statement's (a concurrent build commits and starts transactions
 * internally).  Put the worker's own back, outside any transaction so that
 * they stay.
 */
static void
restore_worker_state(Oid userid, int sec_context, const char *lock_timeout)
{
	SetUserIdAndSecContext(userid, sec_context);

	/*
	 * Whatever the statement set at session level (SET, set_config) must
	 * not reach the worker's own queries nor the next unit of work: back to
	 * the server's defaults, as RESET ALL does, and without the
	 * session-level advisory locks it took.
	 */
	ResetAllOptions();
	LockReleaseSession(USER_LOCKMETHOD);
	SetConfigOption("search_path", MT_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("lock_timeout", lock_timeout, PGC_SUSET, PGC_S_SESSION);
	set_applying_version(NULL);
}

/*
 * Show the migration being run in migration_tools.applying_version (a GUC
 * of history.c), or clear it with NULL.  Does nothing where the GUC is not
 * defined.
 */
static void
set_applying_version(const char *version)
{
	if (GetConfigOption("migration_tools.applying_version", true, false) == NULL)
		return;
	SetConfigOption("migration_tools.applying_version", version ? version : "",
					PGC_SUSET, PGC_S_SESSION);
}

/*
 * Errors worth another attempt: the statement may succeed once other
 * sessions are out of the way.
 */
static bool
is_retryable(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/*
 * The statement is done; when it was the last of its migration, the
 * migration is applied, with the schema fingerprint of now.
 */
static void
record_success(ScheduledStatement *st)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *fingerprint;

	mt_bgw_begin("migration_tools: recording a scheduled statement");

	values[0] = CStringGetTextDatum(st->version);
	values[1] = Int32GetDatum(st->seq);
	fingerprint = mt_catalog_fingerprint();

	mt_spi_execute_checked("UPDATE migration_tools.scheduled_statements"
						   "   SET state = 'done', error = NULL,"
						   "       finished_at = pg_catalog.clock_timestamp()"
						   " WHERE version = $1 AND seq = $2",
						   2, argtypes, values, nulls, false, 0,
						   SPI_OK_UPDATE, "record a scheduled statement");

	if (st->down)
	{
		if (mt_migration_finish_rollback(st->version, fingerprint))
			ereport(LOG,
					(errmsg("migration_tools: migration \"%s\" rolled back", st->version)));
	}
	else if (mt_migration_finish_apply(st->version, fingerprint))
		ereport(LOG,
				(errmsg("migration_tools: migration \"%s\" applied", st->version)));

	mt_bgw_commit();
}

/*
 * The statement failed: pending again after a back-off, or failed with
 * its migration.
 */
static void
record_failure(ScheduledStatement *st, ErrorData *edata, bool retry)
{
	char	   *error;

	if (edata->detail)
		error = psprintf("%s (%s)", edata->message, edata->detail);
	else
		error = pstrdup(edata->message);

	mt_bgw_begin("migration_tools: recording a scheduled statement");

	/*
	 * An attempt of the up script lost to a lock timeout: its time counts
	 * into the migration's lock_wait_time, as apply()'s lost attempts do.
	 */
	if (!st->down && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		mt_migration_add_lock_wait(st->version, st->seq);

	if (retry)
	{
		Oid			argtypes[4] = {TEXTOID, INT4OID, TEXTOID, INT4OID};
		Datum		values[4];
		int64		delay = mt_scheduled_retry_delay;

		/* doubles at each attempt, up to ten minutes */
		for (int i = 1; i < st->attempts && delay < 600 * 1000; i++)
			delay *= 2;
		delay = Min(delay, 600 * 1000);

		values[0] = CStringGetTextDatum(st->version);
		values[1] = Int32GetDatum(st->seq);
		values[2] = CStringGetTextDatum(error);
		values[3] = Int32GetDatum((int32) delay);
		mt_spi_execute_checked("UPDATE migration_tools.scheduled_statements"
							   "   SET state = 'pending', error = $3,"
							   "       not_before = pg_catalog.clock_timestamp()"
							   "                    + $4 * interval '1 millisecond'"
							   " WHERE version = $1 AND seq = $2",
							   4, argtypes, values, NULL, false, 0,
							   SPI_OK_UPDATE, "record a scheduled statement");
		ereport(LOG,
				(errmsg("migration_tools: scheduled statement %d of migration \"%s\" will be retried in %d ms",
						st->statement_no, st->version, (int) delay)));
	}
	else
	{
		record_statement_failed(st->version, st->seq, st->statement_no, st->down, error);
		ereport(LOG,
				(errmsg("migration_tools: migration \"%s\" failed in scheduled statement %d",
						st->version, st->statement_no)));
	}

	mt_bgw_commit();
}
