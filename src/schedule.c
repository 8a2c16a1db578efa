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
 * "_ccnew"/"_ccold" index left by REINDEX CONCURRENTLY, is dropped first.
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

/* What a failed statement may have left behind: INVALID indexes. */
typedef struct IndexTarget
{
	Oid			tableid;		/* table of the index, InvalidOid if none */
	char	   *nspname;		/* schema of the index */
	char	   *idxname;		/* CREATE INDEX name, or NULL */
	char	   *reindexed;		/* REINDEX INDEX CONCURRENTLY: its name */
	bool		reindex;		/* REINDEX ... CONCURRENTLY */
	bool		built;			/* a VALID index idxname is on the table */
	bool		stale;			/* an INVALID index idxname is on the table */
	List	   *invalid_before; /* OIDs of INVALID indexes before the run */
} IndexTarget;

static ScheduledStatement *claim_next(MemoryContext cxt, TimestampTz *next_due);
static void give_up(const char *version, int seq, int statement_no, bool down,
					int attempts);
static void record_statement_failed(const char *version, int seq, int statement_no,
									bool down, const char *error);
static void run_top_level(const char *sql, const char *run_as, const char *version,
						  bool one_transaction, MemoryContext cxt);
static void set_applying_version(const char *version);
static void abort_after_error(MemoryContext cxt, Oid userid, int sec_context,
							  const char *lock_timeout);
static void restore_worker_state(Oid userid, int sec_context, const char *lock_timeout);
static void find_index_target(const char *sql, IndexTarget *target);
static List *invalid_indexes(Oid tableid, MemoryContext cxt);
static void drop_invalid_indexes(IndexTarget *target, bool only_known_names,
								 MemoryContext cxt);
static bool is_retryable(int sqlerrcode);
static bool table_lock_held_by_others(Oid tableid, MemoryContext cxt);
static void check_index_built(IndexTarget *target, MemoryContext cxt);
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
	IndexTarget *target;
	ErrorData  *volatile edata = NULL;
	volatile bool target_known = false;
	volatile bool already_done = false;
	Oid			worker_userid;
	int			worker_sec_context;
	Oid			run_as_id;
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
	 * get the database's default back (run_top_level).
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

	target = palloc0(sizeof(IndexTarget));

	PG_TRY();
	{
		/* what the statement may leave behind, and what is there already */
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		MemoryContextSwitchTo(cxt);

		/*
		 * Names in the statement resolve as when it runs: with the
		 * database's search_path, as its role ("$user", and the schemas
		 * that role may use).
		 */
		SetConfigOption("search_path", GetConfigOptionResetString("search_path"),
						PGC_SUSET, PGC_S_SESSION);
		run_as_id = get_role_oid(st->run_as, true);

		/*
		 * A role that could log in when it recorded the statement and no
		 * longer can (disabled: NOLOGIN, VALID UNTIL passed) writes no more.
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
		find_index_target(st->sql, target);
		SetUserIdAndSecContext(worker_userid, worker_sec_context);
		SetConfigOption("search_path", MT_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_SESSION);
		MemoryContextSwitchTo(cxt);
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		target_known = true;

		mt_worker_set_current(MT_SCHEDULED_KIND, st->work_id, target->tableid);

		/*
		 * A statement whose worker stopped after the build committed but
		 * before the outcome was recorded: the index is there, VALID.
		 */
		if (st->orphan && target->built)
		{
			ereport(LOG,
					(errmsg("migration_tools: index \"%s\" of scheduled statement %d of migration \"%s\" was already built",
							target->idxname, st->statement_no, st->version)));
			already_done = true;
		}

		/*
		 * A retry, or a statement whose worker died: an INVALID index of
		 * the name we are about to create must go first.
		 */
		if (!already_done && (st->orphan || st->attempts > 1))
			drop_invalid_indexes(target, true, cxt);

		/*
		 * An INVALID index of that name that nobody is building (a manual
		 * concurrent build that failed or was cancelled): the build would
		 * fail with "already exists", or, with IF NOT EXISTS, skip it and
		 * leave the migration applied without a usable index.  A build in
		 * progress holds SHARE UPDATE EXCLUSIVE on the table for its whole
		 * run: while anybody holds a lock conflicting with that, the index
		 * is left alone (and checked after the statement).
		 */
		else if (!already_done && target->stale &&
				 !table_lock_held_by_others(target->tableid, cxt))
			drop_invalid_indexes(target, true, cxt);

		if (!already_done && OidIsValid(target->tableid))
		{
			mt_bgw_begin("migration_tools: looking for invalid indexes");
			target->invalid_before = invalid_indexes(target->tableid, cxt);
			mt_bgw_commit();
			MemoryContextSwitchTo(cxt);
		}

		if (!already_done)
		{
			run_top_level(st->sql, st->run_as, st->version, !st->top_level, cxt);
			check_index_built(target, cxt);
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
	{
		volatile bool retry = is_retryable(edata->sqlerrcode) &&
			st->attempts < mt_scheduled_retries;

		/* a failed concurrent build leaves an INVALID index: drop it */
		if (target_known)
		{
			PG_TRY();
			{
				drop_invalid_indexes(target, false, cxt);
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

		st = MemoryContextAllocZero(cxt, sizeof(ScheduledStatement));
		st->version = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		st->seq = seq;
		st->statement_no = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		st->sql = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 4));
		st->run_as = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 5));
		st->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull)) + 1;
		st->orphan = running;
		st->work_id = work_id;
		st->down = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
		st->top_level = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
		st->run_as_login = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
	}

	if (st != NULL)
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
static void
run_top_level(const char *sql, const char *run_as, const char *version,
			  bool one_transaction, MemoryContext cxt)
{
	List	   *parsetrees;
	ListCell   *lc;
	Oid			save_userid;
	int			save_sec_context;
	char		timeout[32];
	char	   *save_timeout;
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/*
	 * The worker is a process of its own: session-level settings stay in
	 * it.  No statement_timeout is enforced in background workers; the
	 * lock_timeout is ours, not the migration's short one.
	 */
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
			bool		snapshot_set = false;
			List	   *querytrees;
			List	   *plantrees;
			Portal		portal;
			DestReceiver *receiver;
			QueryCompletion qc;

			if (lc != list_head(parsetrees) && !one_transaction)
			{
				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
			}
			/* as mt_become_role(): no SET ROLE back to the worker's superuser */
			SetUserIdAndSecContext(roleid, save_sec_context | MT_SWITCH_SEC_CONTEXT);

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
 * Which table a statement builds an index on, under which name: only
 * concurrent builds leave INVALID indexes behind.  Runs in a transaction;
 * a statement that does not parse has no target (running it reports the
 * syntax error).
 */
static void
find_index_target(const char *sql, IndexTarget *target)
{
	List	   *volatile stmts = NIL;
	RawStmt    *raw;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		stmts = NIL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	if (list_length(stmts) != 1)
		return;
	raw = linitial_node(RawStmt, stmts);

	if (IsA(raw->stmt, IndexStmt))
	{
		IndexStmt  *stmt = (IndexStmt *) raw->stmt;
		Oid			relid;

		if (!stmt->concurrent)
			return;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid))
			return;
		target->tableid = relid;
		target->nspname = get_namespace_name(get_rel_namespace(relid));
		target->idxname = stmt->idxname ? pstrdup(stmt->idxname) : NULL;
		if (target->idxname)
		{
			Oid			indexid = get_relname_relid(target->idxname,
													get_rel_namespace(relid));
			HeapTuple	tup;

			tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
			if (HeapTupleIsValid(tup))
			{
				Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);

				target->built = index->indisvalid && index->indrelid == relid;
				target->stale = !index->indisvalid && index->indrelid == relid;
				ReleaseSysCache(tup);
			}
		}
	}
	else if (IsA(raw->stmt, ReindexStmt))
	{
		ReindexStmt *stmt = (ReindexStmt *) raw->stmt;
		ListCell   *lc;
		bool		concurrently = false;
		Oid			relid;

		foreach(lc, stmt->params)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "concurrently") == 0)
				concurrently = defGetBoolean(opt);
		}
		if (!concurrently || stmt->relation == NULL)
			return;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid))
			return;
		target->reindex = true;
		if (stmt->kind == REINDEX_OBJECT_INDEX)
		{
			target->reindexed = pstrdup(stmt->relation->relname);
			relid = IndexGetRelation(relid, true);
			if (!OidIsValid(relid))
				return;
		}
		target->tableid = relid;
		target->nspname = get_namespace_name(get_rel_namespace(relid));
	}
}

/*
 * OIDs of the INVALID indexes of a table, as a list in cxt.  Caller is
 * connected to SPI.
 */
static List *
invalid_indexes(Oid tableid, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	List	   *result = NIL;

	values[0] = ObjectIdGetDatum(tableid);
	mt_spi_execute_checked("SELECT indexrelid FROM pg_catalog.pg_index"
						   " WHERE indrelid = $1 AND NOT indisvalid",
						   1, argtypes, values, NULL, true, 0,
						   SPI_OK_SELECT, "read pg_index");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			indexid;
		MemoryContext oldcxt;

		indexid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												 SPI_tuptable->tupdesc, 1, &isnull));
		oldcxt = MemoryContextSwitchTo(cxt);
		result = lappend_oid(result, indexid);
		MemoryContextSwitchTo(oldcxt);
	}
	return result;
}

/*
 * Drop the INVALID indexes a failed run of the statement left on its
 * table, with DROP INDEX CONCURRENTLY at top level (as the worker's role).
 * With only_known_names (before a retry or the re-run of an orphan, when
 * we cannot know what was there before), only an index of the name the
 * statement creates, or REINDEX CONCURRENTLY's "_ccnew"/"_ccold" copies of
 * the reindexed indexes; otherwise those of them that were not there before
 * the run (for an unnamed build, every INVALID index that was not there
 * before: it cannot be told from another worker's build in progress).
 * Never by the diff alone for a named build: two workers may build indexes
 * on the same table at once, and the other's stays INVALID until it is
 * done; a cleanup that dropped it would later drop the finished index.
 */
static void
drop_invalid_indexes(IndexTarget *target, bool only_known_names, MemoryContext cxt)
{
	List	   *drops = NIL;
	ListCell   *lc;

	if (!OidIsValid(target->tableid))
		return;
	if (only_known_names && target->idxname == NULL && !target->reindex)
	{
		List	   *invalid;

		/*
		 * An unnamed build: its INVALID leftover cannot be told from other
		 * INVALID indexes of the table.  Say which there are.
		 */
		mt_bgw_begin("migration_tools: looking for invalid indexes");
		invalid = invalid_indexes(target->tableid, CurrentMemoryContext);
		foreach(lc, invalid)
			ereport(WARNING,
					(errmsg("migration_tools: table \"%s\" has an INVALID index \"%s\" that a scheduled statement may have left",
							get_rel_name(target->tableid), get_rel_name(lfirst_oid(lc))),
					 errhint("Drop it with DROP INDEX CONCURRENTLY if nobody else is building it; name the indexes of scheduled statements so that this is done for you.")));
		mt_bgw_commit();
		MemoryContextSwitchTo(cxt);
		return;
	}

	mt_bgw_begin("migration_tools: looking for invalid indexes");
	{
		List	   *invalid = invalid_indexes(target->tableid, CurrentMemoryContext);

		foreach(lc, invalid)
		{
			Oid			indexid = lfirst_oid(lc);
			char	   *name = get_rel_name(indexid);
			bool		drop;

			if (name == NULL)
				continue;
			if (only_known_names && target->idxname != NULL)
				drop = (strcmp(name, target->idxname) == 0);
			else if (only_known_names)
			{
				/* REINDEX CONCURRENTLY names its copies <index>_ccnew[N] */
				drop = (strstr(name, "_ccnew") != NULL || strstr(name, "_ccold") != NULL) &&
					(target->reindexed == NULL ||
					 strncmp(name, target->reindexed, strlen(target->reindexed)) == 0);
			}
			else if (list_member_oid(target->invalid_before, indexid))
				drop = false;
			else if (target->idxname != NULL)
			{
				/*
				 * Only the index this statement builds: another worker may
				 * be building another index of the table concurrently, and
				 * that one is INVALID until its build is done.
				 */
				drop = (strcmp(name, target->idxname) == 0);
			}
			else if (target->reindex)
				drop = (strstr(name, "_ccnew") != NULL || strstr(name, "_ccold") != NULL) &&
					(target->reindexed == NULL ||
					 strncmp(name, target->reindexed, strlen(target->reindexed)) == 0);
			else
				drop = true;	/* an unnamed build: cannot be told apart */

			if (drop)
			{
				MemoryContext old = MemoryContextSwitchTo(cxt);

				drops = lappend(drops,
								psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s",
										 quote_qualified_identifier(get_namespace_name(get_rel_namespace(indexid)),
																	name)));
				MemoryContextSwitchTo(old);
			}
		}
	}
	mt_bgw_commit();
	MemoryContextSwitchTo(cxt);

	foreach(lc, drops)
	{
		char	   *drop = lfirst(lc);

		ereport(LOG,
				(errmsg("migration_tools: dropping an invalid index left by a failed scheduled statement"),
				 errdetail("Running \"%s\".", drop)));
		run_top_level(drop, NULL, NULL, false, cxt);
	}
}

/*
 * Does another session hold a lock on the table that conflicts with SHARE
 * UPDATE EXCLUSIVE (as a concurrent index build does for its whole run)?
 */
static bool
table_lock_held_by_others(Oid tableid, MemoryContext cxt)
{
	List	   *conflicts;
	ListCell   *lc;
	bool		held = false;

	mt_bgw_begin("migration_tools: looking for a build in progress");
	conflicts = mt_lock_conflicts(MyDatabaseId, tableid, ShareUpdateExclusiveLock);
	foreach(lc, conflicts)
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);

		if (c->granted && c->pid != MyProcPid)
			held = true;
	}
	mt_bgw_commit();
	MemoryContextSwitchTo(cxt);
	return held;
}

/*
 * After a concurrent build that succeeded: the index of its name must be
 * there and VALID.  CREATE INDEX CONCURRENTLY IF NOT EXISTS succeeds
 * without building anything when an INVALID index of that name is left
 * from an earlier build; the migration must not be applied then.
 */
static void
check_index_built(IndexTarget *target, MemoryContext cxt)
{
	bool		invalid = false;
	Oid			indexid;

	if (!OidIsValid(target->tableid) || target->idxname == NULL)
		return;
	mt_bgw_begin("migration_tools: checking the index");
	indexid = get_relname_relid(target->idxname, get_rel_namespace(target->tableid));
	if (OidIsValid(indexid))
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));

		if (HeapTupleIsValid(tup))
		{
			invalid = !((Form_pg_index) GETSTRUCT(tup))->indisvalid;
			ReleaseSysCache(tup);
		}
	}
	mt_bgw_commit();
	MemoryContextSwitchTo(cxt);
	if (invalid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" exists but is INVALID", target->idxname),
				 errdetail("The statement did not build it: an earlier concurrent build of that name failed, or is still running."),
				 errhint("Drop it with DROP INDEX CONCURRENTLY (once no build of it runs), then apply the migration again.")));
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
