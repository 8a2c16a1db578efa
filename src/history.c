/*-------------------------------------------------------------------------
 *
 * history.c
 *	  Migration history: apply(), baseline(), rollback(), rollback_to() and
 *	  the checksum behind the status view.
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
 *	   lock that conflicts with one the script needs (locks.c), then runs
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
 *	  src/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/pg_prng.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "autonomous.h"
#include "drift.h"
#include "history.h"
#include "launcher.h"
#include "lint.h"
#include "locks.h"
#include "migration_tools.h"
#include "security.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(mt_apply);
PG_FUNCTION_INFO_V1(mt_baseline);
PG_FUNCTION_INFO_V1(mt_rollback);
PG_FUNCTION_INFO_V1(mt_rollback_to);
PG_FUNCTION_INFO_V1(mt_checksum);
PG_FUNCTION_INFO_V1(mt_lock_history);

/*
 * The lock that serializes the writers of the history: SHARE UPDATE
 * EXCLUSIVE on the migrations table, until the end of the transaction.  It
 * conflicts with itself, not with readers (ACCESS SHARE, the status view)
 * nor with row writes (the worker's); and no role without a privilege on
 * the table can take it or a conflicting one: LOCK TABLE needs UPDATE,
 * DELETE or TRUNCATE on it, SELECT ... FOR UPDATE needs UPDATE, and PUBLIC
 * has none.  (The user advisory lock space is open to every role.)
 */
#define MT_HISTORY_LOCKMODE	ShareUpdateExclusiveLock

/* Longest version apply() and baseline() accept, in characters. */
#define MT_MAX_VERSION_LENGTH	255

/* How often the preflight looks at the lock manager again. */
#define PREFLIGHT_POLL_MS	20

/* GUCs */
static int	mt_lock_timeout_ms = 100;
static int	mt_max_lock_timeout_ms = 2000;
static int	mt_lock_retries = 10;
static int	mt_max_preflight_wait_ms = 10000;
static int	mt_max_blocker_age_ms = 0;
static int	mt_max_deployer_wait_ms = 300000;
static char *mt_applying_version = NULL;

/* A row of migration_tools.migrations, as far as the functions need it. */
typedef struct MigrationRow
{
	bool		found;
	bool		visible;		/* also visible to the transaction snapshot */
	bool		baseline;		/* recorded by baseline() */
	char	   *state;
	char	   *checksum;
	char	   *down_sql;
	char	   *applied_by;		/* the role that recorded the scripts */
	int64		installed_rank;
	bool		rolling_back;	/* scheduled: statements of the down script */
	bool		rollback_failed;	/* failed in a scheduled down statement */
} MigrationRow;

/* What running a script took. */
typedef struct RunResult
{
	int			attempts;
	double		lock_wait_ms;
	ErrorData  *error;			/* NULL on success */
	int			failed_statement;	/* statement number of the error */
} RunResult;

static void check_text_arg(FunctionCallInfo fcinfo, int argno, const char *what);
static void check_version(const char *version);
static char *sha256_hex(const char *data, size_t len);
static void lock_history(void);
static MigrationRow read_migration(const char *version);
static void lint_or_refuse(const char *version, const char *up_sql, ArrayType *allow);
static List *runnable_statements(const char *version, const char *what,
								 const char *sql);
static bool is_transaction_control(MtStatementInfo *info);
static void preflight(List *statements, double *waited_ms);
/* the script's own lock_timeout was overridden (NOTICE once per run) */
static bool lock_timeout_override_noticed = false;

static bool run_attempt(List *statements, const char *version, int timeout_ms,
						ErrorData **error, int *failed_statement);
static void run_with_retries(List *statements, const char *version,
							 RunResult *result);
static bool is_retryable(ErrorData *edata);
static void sleep_ms(long ms);
static char *describe_error(ErrorData *edata, int statement);
static bool do_rollback(const char *version, MigrationRow *row,
						const char *run_after);
static void check_not_rolling_back(const char *version, MigrationRow *row);
static List *pending_before(List *statements, const char *version);
static void schedule_statement(const char *version, int seq, int statement_no,
							   const char *sql, const char *direction,
							   List *run_after, bool top_level, Datum run_as);
static int	schedule_in_order(const char *version, List *statements,
							  const char *direction, List *run_after,
							  int seq, Datum run_as);

void
mt_history_init(void)
{
	DefineCustomIntVariable("migration_tools.lock_timeout",
							"lock_timeout of the first attempt of a migration statement.",
							"Each further attempt doubles it, up to migration_tools.max_lock_timeout.",
							&mt_lock_timeout_ms,
							100, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_lock_timeout",
							"Largest lock_timeout of an attempt of a migration.",
							NULL,
							&mt_max_lock_timeout_ms,
							2000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.lock_retries",
							"Attempts of a migration script that end in a lock timeout before apply() gives up.",
							NULL,
							&mt_lock_retries,
							10, 1, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_preflight_wait",
							"How long apply() waits, without queueing, for conflicting lock holders before each attempt.",
							"After this, the attempt runs and lock_timeout decides.",
							&mt_max_preflight_wait_ms,
							10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_blocker_age",
							"apply() refuses to run when a conflicting lock holder's transaction is older than this.",
							"0 turns the check off.",
							&mt_max_blocker_age_ms,
							0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_deployer_wait",
							"How long apply(), baseline(), rollback(), rollback_to() and import_history() wait for another deployer's transaction.",
							"After this, they fail with an error naming the session that holds the migration history.",
							&mt_max_deployer_wait_ms,
							300000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("migration_tools.applying_version",
							   "The migration version apply() or rollback() is running now (set by them).",
							   NULL,
							   &mt_applying_version,
							   "",
							   PGC_SUSET,
							   GUC_NO_RESET_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
}

/*
 * The history is written, and apply() may need a background worker to
 * record a failure: nothing of this works on a standby or in a read-only
 * transaction, so say so first.
 */
static void
check_writable(const char *funcname)
{
	/* on a standby every transaction is read-only: name the real cause */
	PreventCommandDuringRecovery(funcname);
	PreventCommandIfReadOnly(funcname);
}

/*
 * A version that apply() or baseline() records: besides not null and not
 * empty (check_text_arg), short enough to be shown and indexed, free of
 * control characters, and without white space around it (which would make
 * "001" and "001 " two different migrations).
 */
static void
check_version(const char *version)
{
	int			len = pg_mbstrlen(version);
	const unsigned char *c;

	if (len > MT_MAX_VERSION_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("version must be at most %d characters long",
						MT_MAX_VERSION_LENGTH),
				 errdetail("The version given has %d characters.", len)));
	for (c = (const unsigned char *) version; *c; c++)
	{
		if (*c < 0x20 || *c == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("version must not contain control characters"),
					 errdetail("Byte %d of the version is the control character 0x%02x.",
							   (int) (c - (const unsigned char *) version) + 1, *c),
					 errhint("Use letters, digits and punctuation, for example \"20240131_add_users\".")));
	}
	if (version[0] == ' ' || version[strlen(version) - 1] == ' ')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("version must not begin or end with a space"),
				 errdetail("Versions are compared exactly: \"%s\" would not match the same version without the spaces.",
						   version),
				 errhint("Remove the spaces around the version.")));
}

/*
 * NULL and empty arguments are errors, not silent NULL results.
 */
static void
check_text_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	text	   *t;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	t = PG_GETARG_TEXT_PP(argno);
	if (VARSIZE_ANY_EXHDR(t) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
}

/* Hex SHA-256, as sha256() and encode(..., 'hex') give it in SQL. */
static char *
sha256_hex(const char *data, size_t len)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256 checksum: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return hex;
}

/*
 * checksum(sql text): the checksum apply() records for an up script.
 */
Datum
mt_checksum(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(sha256_hex(VARDATA_ANY(t),
												VARSIZE_ANY_EXHDR(t))));
}

/* The application_name of a backend, or NULL when it is gone. */
static char *
backend_application_name(int pid)
{
	int			n = pgstat_fetch_stat_numbackends();

	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);

		if (local != NULL && local->backendStatus.st_procpid == pid)
			return pstrdup(local->backendStatus.st_appname);
	}
	return NULL;
}

/*
 * The wait for the history lock timed out: fail naming the session that
 * holds it, in the primary message (deployment tools print only that).
 */
static void
report_history_holder(Oid relid)
{
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, mt_lock_conflicts(MyDatabaseId, relid, MT_HISTORY_LOCKMODE))
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);
		char	   *appname;
		char	   *age;

		if (!c->granted)
			continue;
		if (c->prepared)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not lock the migration history: prepared transaction %u holds it",
							c->prepared_xid),
					 errdetail("Writers of the migration history wait for each other, up to migration_tools.max_deployer_wait (or lock_timeout, if shorter)."),
					 errhint("Commit or roll back the prepared transaction (see pg_prepared_xacts).")));
		appname = backend_application_name(c->pid);
		age = c->xact_start == 0 ? "unknown" :
			DatumGetCString(DirectFunctionCall1(interval_out,
												DirectFunctionCall2(timestamp_mi,
																	TimestampTzGetDatum(now),
																	TimestampTzGetDatum(c->xact_start))));
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not lock the migration history: process %d (application_name \"%s\", transaction age %s) holds it",
						c->pid, appname ? appname : "", age),
				 errdetail("Writers of the migration history (apply, baseline, rollback, rollback_to, import_history) wait for each other, up to migration_tools.max_deployer_wait (or lock_timeout, if shorter)."),
				 errhint("Wait until that transaction ends and try again, or end it with pg_terminate_backend(%d).",
						 c->pid)));
	}
	/* gone meanwhile */
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("could not lock the migration history within migration_tools.max_deployer_wait or lock_timeout"),
			 errdetail("Another writer of the migration history held it; it has ended since."),
			 errhint("Try again.")));
}

/*
 * Take the history lock for the rest of the transaction.  A holder is
 * waited for in the lock queue (first come, first served; an autovacuum of
 * the table is cancelled), under lock_timeout =
 * migration_tools.max_deployer_wait (or the session's lock_timeout, if
 * shorter), in an internal subtransaction so that the timeout can be told
 * apart and reported with the holder's name.
 */
static void
lock_history(void)
{
	Oid			nsp = get_namespace_oid(MT_SCHEMA_NAME, false);
	Oid			relid = get_relname_relid("migrations", nsp);
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *edata = NULL;
	int			nestlevel;
	char		buf[32];

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.migrations\" does not exist", MT_SCHEMA_NAME)));
	if (ConditionalLockRelationOid(relid, MT_HISTORY_LOCKMODE))
		return;

	/* the session's own lock_timeout still counts when it is shorter */
	nestlevel = NewGUCNestLevel();
	snprintf(buf, sizeof(buf), "%d",
			 LockTimeout > 0 && LockTimeout < mt_max_deployer_wait_ms ?
			 LockTimeout : mt_max_deployer_wait_ms);
	(void) set_config_option("lock_timeout", buf,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		LockRelationOid(relid, MT_HISTORY_LOCKMODE);
		/* the lock goes to the parent transaction */
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	AtEOXact_GUC(false, nestlevel);

	if (edata == NULL)
		return;
	if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		ReThrowError(edata);
	report_history_holder(relid);
}

/*
 * _lock_history(): the history lock, for the writers written in SQL
 * (import_history()).
 */
Datum
mt_lock_history(PG_FUNCTION_ARGS)
{
	lock_history();
	PG_RETURN_VOID();
}

/*
 * Run a read-only query of the history tables with the latest snapshot,
 * not the transaction's: the functions call it under the history lock, and
 * must see what the previous holder of the lock committed even in
 * REPEATABLE READ.  The rows are in SPI_tuptable; returns SPI_processed.
 * what completes "could not ..." in an error.  SPI must be connected.
 */
static uint64
read_latest(const char *sql, int nargs, Oid *argtypes, Datum *values,
			long count, const char *what)
{
	SPIPlanPtr	plan;

	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	/* our own earlier writes count too */
	CommandCounterIncrement();
	if (SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, count) != SPI_OK_SELECT)
		elog(ERROR, "could not %s", what);
	SPI_freeplan(plan);
	return SPI_processed;
}

/*
 * Read the row of a version with the latest snapshot, not the
 * transaction's: called under the history lock, it must see what the
 * previous holder of the lock committed even in REPEATABLE READ.
 * Runs as the owner; SPI must be connected.
 */
static MigrationRow
read_migration(const char *version)
{
	MigrationRow row;
	MtSavedUser sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	memset(&row, 0, sizeof(row));
	mt_become_owner(&sw);
	values[0] = CStringGetTextDatum(version);
	if (read_latest("SELECT state, checksum, down_sql, installed_rank, baseline,"
					"       EXISTS (SELECT FROM migration_tools.scheduled_statements s"
					"                WHERE s.version = m.version AND s.direction = 'down'"
					"                  AND s.state <> 'done'),"
					"       applied_by"
					" FROM migration_tools.migrations m WHERE version = $1",
					1, argtypes, values, 1, "read a migration") > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		row.found = true;
		row.state = SPI_getvalue(tup, desc, 1);
		row.checksum = SPI_getvalue(tup, desc, 2);
		row.down_sql = SPI_getvalue(tup, desc, 3);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		row.installed_rank = isnull ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		row.baseline = isnull ? false : DatumGetBool(d);
		row.applied_by = SPI_getvalue(tup, desc, 7);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		if (!isnull && DatumGetBool(d))
		{
			row.rolling_back = strcmp(row.state, "scheduled") == 0;
			row.rollback_failed = strcmp(row.state, "failed") == 0;
		}

		/*
		 * Can this transaction change the row?  Under REPEATABLE READ not
		 * if it was committed after the transaction's snapshot was taken.
		 */
		row.visible = true;
		if (IsolationUsesXactSnapshot())
			row.visible = mt_spi_execute_checked("SELECT FROM migration_tools.migrations"
												 " WHERE version = $1",
												 1, argtypes, values, NULL, false, 1,
												 SPI_OK_SELECT, "read a migration") > 0;
	}
	mt_restore_user(&sw);
	return row;
}

/*
 * The row of version changed under us: another transaction that committed
 * after our snapshot wrote it.
 */
static void
report_concurrent_change(const char *version)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not serialize access due to a concurrent change of migration \"%s\"",
					version),
			 errdetail("The row was written by a transaction that committed after this transaction's snapshot was taken."),
			 errhint("Retry the transaction.")));
}

/*
 * A REPEATABLE READ (or SERIALIZABLE) transaction cannot replace a row that
 * another transaction committed after its snapshot: say so before anything
 * runs.
 */
static void
check_row_writable(const char *version, MigrationRow *row)
{
	if (row->found && !row->visible)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent change of migration \"%s\"",
						version),
				 errdetail("The migration's row was written by a transaction that committed after this transaction's snapshot was taken."),
				 errhint("Retry the transaction.")));
}

/*
 * Delete the row of a version that is about to be recorded again (a failed
 * or rolled back attempt).  When our snapshot saw the row but it is gone, a
 * concurrent transaction replaced it first: fail as a serialization error
 * rather than record over its work.
 */
static void
delete_replaced_migration(const char *version, bool seen)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	uint64		deleted;

	values[0] = CStringGetTextDatum(version);
	deleted = mt_spi_execute_checked("DELETE FROM migration_tools.migrations WHERE version = $1",
									 1, argtypes, values, NULL, false, 0,
									 SPI_OK_DELETE, "replace a migration");
	if (seen && deleted == 0)
		report_concurrent_change(version);
}

/* errcontext of the parse of a script: which script of which migration */
typedef struct ScriptContext
{
	const char *version;
	const char *what;
} ScriptContext;

static void
script_error_callback(void *arg)
{
	ScriptContext *sc = (ScriptContext *) arg;

	errcontext("%s of migration \"%s\"", sc->what, sc->version);
}

/* Is rule listed in the allow array? */
static bool
rule_allowed(ArrayType *allow, const char *rule)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	if (allow == NULL)
		return false;
	deconstruct_array(allow, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		if (strcmp(TextDatumGetCString(elems[i]), rule) == 0)
			return true;
	}
	return false;
}

/*
 * Lint the up script; refuse the migration when a finding at
 * migration_tools.lint_level (defined by lint.c) or worse is not allowed.
 * require-lock-timeout and concurrently-in-transaction never count.
 */
static void
lint_or_refuse(const char *version, const char *up_sql, ArrayType *allow)
{
	List	   *findings;
	ListCell   *lc;
	StringInfoData detail;
	int			threshold = mt_lint_fail_level();
	int			refused = 0;
	const char *first_rule = NULL;

	ScriptContext sc;
	ErrorContextCallback callback;

	if (threshold <= 0)
		return;
	sc.version = version;
	sc.what = "up script";
	callback.callback = script_error_callback;
	callback.arg = &sc;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	findings = mt_lint_script(up_sql);
	error_context_stack = callback.previous;
	initStringInfo(&detail);
	foreach(lc, findings)
	{
		MtLintFinding *f = (MtLintFinding *) lfirst(lc);

		/*
		 * Not apply()'s concerns: it sets its own lock_timeout, and it never
		 * runs a statement that needs the top level inside the transaction
		 * (a BEGIN ... COMMIT around the script is dropped, and such
		 * statements are scheduled).
		 */
		if (strcmp(f->rule, "require-lock-timeout") == 0 ||
			strcmp(f->rule, "concurrently-in-transaction") == 0)
			continue;
		if (mt_lint_severity_level(f->severity) < threshold)
			continue;
		if (rule_allowed(allow, f->rule))
			continue;
		if (refused > 0)
			appendStringInfoChar(&detail, '\n');
		appendStringInfo(&detail, "Statement %d: %s (%s): %s",
						 f->statement, f->rule, f->severity, f->message);
		if (first_rule == NULL)
			first_rule = f->rule;
		refused++;
	}
	if (refused > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" was refused by the linter", version),
				 errdetail_internal("%s", detail.data),
				 errhint("Make the statements safe, or pass the rule ids to apply() in \"allow\", for example allow => ARRAY['%s'].",
						 first_rule)));
}

/* BEGIN, COMMIT, SAVEPOINT, PREPARE TRANSACTION and their kin. */
static bool
is_transaction_control(MtStatementInfo *info)
{
	static const char *const tags[] = {
		"BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT",
		"RELEASE", "PREPARE TRANSACTION", "COMMIT PREPARED",
		"ROLLBACK PREPARED", NULL
	};
	int			i;

	if (info->command_tag == NULL)
		return false;
	for (i = 0; tags[i] != NULL; i++)
		if (strcmp(info->command_tag, tags[i]) == 0)
			return true;
	return false;
}

static bool
tag_is(MtStatementInfo *info, const char *tag)
{
	return info->command_tag != NULL && strcmp(info->command_tag, tag) == 0;
}

/*
 * Split a script into its statements.  A BEGIN (or START TRANSACTION) that
 * opens the script together with a COMMIT (or END) that closes it are
 * dropped with a NOTICE: the script runs in the caller's transaction
 * anyway.  Any other transaction control statement is an error, and so is
 * a script without statements.
 */
static List *
runnable_statements(const char *version, const char *what, const char *sql)
{
	List	   *all;
	List	   *result = NIL;
	ListCell   *lc;
	int			n;
	bool		wrapped = false;
	ScriptContext sc;
	ErrorContextCallback callback;

	sc.version = version;
	sc.what = what;
	callback.callback = script_error_callback;
	callback.arg = &sc;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	all = mt_analyze_script(sql);
	error_context_stack = callback.previous;
	n = list_length(all);

	if (n >= 2)
	{
		MtStatementInfo *first = (MtStatementInfo *) linitial(all);
		MtStatementInfo *last = (MtStatementInfo *) llast(all);

		if ((tag_is(first, "BEGIN") || tag_is(first, "START TRANSACTION")) &&
			tag_is(last, "COMMIT"))
			wrapped = true;
	}

	foreach(lc, all)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

		if (wrapped && (lc == list_head(all) || foreach_current_index(lc) == n - 1))
			continue;
		if (is_transaction_control(info))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
					 errmsg("%s of migration \"%s\" contains transaction control statement %s",
							what, version, info->command_tag),
					 errdetail("Statement %d is \"%s\".", info->statement, info->sql),
					 errhint("The script runs in the caller's transaction; remove transaction control from it (a BEGIN ... COMMIT around the whole script is allowed and ignored).")));
		result = lappend(result, info);
	}
	if (wrapped)
		ereport(NOTICE,
				(errmsg("ignoring the BEGIN and COMMIT around the %s of migration \"%s\"",
						what, version),
				 errdetail("The script runs in the caller's transaction.")));
	if (result == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of migration \"%s\" contains no statements", what, version)));
	return result;
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
static bool
is_retryable(ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED;
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
static void
run_with_retries(List *statements, const char *version, RunResult *result)
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
		timeout = (double) mt_lock_timeout_ms * pow(2.0, result->attempts - 1);
		if (timeout > mt_max_lock_timeout_ms)
			timeout = mt_max_lock_timeout_ms;

		preflight(statements, &result->lock_wait_ms);

		start = GetCurrentTimestamp();
		ok = run_attempt_sampled(statements, version, (int) timeout, &edata,
								 &failed, &suffered_ms);
		/* an attempt that timed out waited at least its lock_timeout */
		if (!ok && is_retryable(edata))
			suffered_ms = Max(suffered_ms,
							  Min(timeout, (double) (GetCurrentTimestamp() - start) / 1000.0));
		result->lock_wait_ms += suffered_ms;
		if (ok)
			return;

		if (!is_retryable(edata) || result->attempts >= mt_lock_retries)
		{
			result->error = edata;
			result->failed_statement = failed;
			return;
		}
		FreeErrorData(edata);
		sleep_ms((long) (timeout * (0.5 + pg_prng_double(&pg_global_prng_state))));
	}
}

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

/* A scheduled statement not yet done, as pending_before() reads it. */
typedef struct PendingStatement
{
	char	   *version;
	char	   *sql;
	bool		running;
} PendingStatement;

/* A migration that a script has to run after, found by pending_before(). */
typedef struct RunAfter
{
	char	   *version;
	char	   *relname;		/* a relation both lock */
	bool		running;		/* one of its statements runs now */
} RunAfter;

/*
 * Do earlier migrations still have scheduled statements, not yet run or
 * running, on relations that these statements lock?  A script run now
 * would wait for them (a concurrent build holds SHARE UPDATE EXCLUSIVE for
 * its whole run) while they wait for this transaction (a concurrent build
 * waits for every older snapshot), and it would reorder the migrations.
 * Returns every such migration (a RunAfter each), newest first: the script
 * has to run after all of them, not only the newest, since two of them may
 * be independent (builds on two of the script's tables).  The pending
 * statements are analyzed as the script is, by the parser; they are read
 * with the latest snapshot (the caller holds the history lock).  SPI is
 * connected.
 */
static List *
pending_before(List *statements, const char *version)
{
	List	   *relids = NIL;
	List	   *pending = NIL;
	List	   *result = NIL;
	ListCell   *lc;
	MtSavedUser sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext cxt = CurrentMemoryContext;
	uint64		n;
	uint64		i;

	foreach(lc, statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, info->locks)
		{
			MtLockTarget *target = (MtLockTarget *) lfirst(lc2);

			if (OidIsValid(target->relid))
				relids = list_append_unique_oid(relids, target->relid);
		}
	}
	if (relids == NIL)
		return NIL;

	mt_become_owner(&sw);
	values[0] = CStringGetTextDatum(version);
	n = read_latest("SELECT s.version, s.sql, s.state = 'running'"
					"  FROM migration_tools.scheduled_statements s"
					"  JOIN migration_tools.migrations m ON m.version = s.version"
					" WHERE m.state = 'scheduled' AND s.state IN ('pending', 'running')"
					"   AND s.version <> $1"
					" ORDER BY m.installed_rank DESC, s.seq",
					1, argtypes, values, 0, "read scheduled statements");
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		PendingStatement *ps = palloc(sizeof(PendingStatement));
		bool		isnull;

		ps->version = SPI_getvalue(tup, desc, 1);
		ps->sql = SPI_getvalue(tup, desc, 2);
		ps->running = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		pending = lappend(pending, ps);
		MemoryContextSwitchTo(old);
	}
	mt_restore_user(&sw);

	/* newest migration first */
	foreach(lc, pending)
	{
		PendingStatement *ps = (PendingStatement *) lfirst(lc);
		RunAfter   *found = NULL;
		ListCell   *lc2;

		foreach(lc2, result)
		{
			RunAfter   *ra = (RunAfter *) lfirst(lc2);

			if (strcmp(ra->version, ps->version) == 0)
				found = ra;
		}
		if (found != NULL)
			continue;			/* already known */

		foreach(lc2, mt_analyze_script(ps->sql))
		{
			MtStatementInfo *info = (MtStatementInfo *) lfirst(lc2);
			ListCell   *lc3;

			foreach(lc3, info->locks)
			{
				MtLockTarget *target = (MtLockTarget *) lfirst(lc3);

				if (found != NULL || !list_member_oid(relids, target->relid))
					continue;
				found = palloc(sizeof(RunAfter));
				found->version = ps->version;
				found->relname = get_rel_name(target->relid);
				found->running = ps->running;
				result = lappend(result, found);
			}
		}
	}

	/* running or not: is any statement of it running? */
	foreach(lc, pending)
	{
		PendingStatement *ps = (PendingStatement *) lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, result)
		{
			RunAfter   *ra = (RunAfter *) lfirst(lc2);

			if (ps->running && strcmp(ra->version, ps->version) == 0)
				ra->running = true;
		}
	}
	return result;
}

/* The versions of a list of RunAfter. */
static List *
run_after_versions(List *after)
{
	List	   *versions = NIL;
	ListCell   *lc;

	foreach(lc, after)
		versions = lappend(versions, ((RunAfter *) lfirst(lc))->version);
	return versions;
}

/*
 * For a NOTICE: the versions of a list of RunAfter ("5" and "6"), and why
 * each one is waited for (Scheduled statements of migration "5" on
 * relation "a" are running and of migration "6" ...).
 */
static void
describe_run_after(List *after, char **names, char **why)
{
	StringInfoData n;
	StringInfoData w;
	ListCell   *lc;

	initStringInfo(&n);
	initStringInfo(&w);
	foreach(lc, after)
	{
		RunAfter   *ra = (RunAfter *) lfirst(lc);
		bool		first = foreach_current_index(lc) == 0;
		bool		last = lnext(after, lc) == NULL;

		appendStringInfo(&n, "%s\"%s\"",
						 first ? "" : last ? " and " : ", ", ra->version);
		appendStringInfo(&w, "%s of migration \"%s\" on relation \"%s\" %s",
						 first ? "Scheduled statements" : last ? " and" : ",",
						 ra->version, ra->relname ? ra->relname : "?",
						 ra->running ? "are running" : "have not run yet");
	}
	*names = n.data;
	*why = w.data;
}

/*
 * apply(version, up_sql, down_sql, description, allow) returns text
 */
Datum
mt_apply(PG_FUNCTION_ARGS)
{
	char	   *version;
	char	   *up_sql;
	char	   *down_sql;
	char	   *description;
	ArrayType  *allow;
	char	   *checksum;
	char	   *applied_by;
	MigrationRow row;
	List	   *statements;
	List	   *scheduled = NIL;
	ListCell   *lc;
	RunResult	run;
	TimestampTz started_at;
	TimestampTz finished_at;
	double		longest_wait_ms = 0;
	int			waiters;
	char	   *fingerprint = NULL;
	const char *state;
	bool		seen_scheduled = false;
	bool		runs_after_scheduled = false;
	List	   *after = NIL;
	MtSavedUser sw;

	check_writable("apply()");
	check_text_arg(fcinfo, 0, "version");
	check_text_arg(fcinfo, 1, "up_sql");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_version(version);
	up_sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	down_sql = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	description = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	allow = PG_ARGISNULL(4) ? NULL : PG_GETARG_ARRAYTYPE_P(4);
	if (down_sql != NULL && down_sql[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("down_sql must not be empty"),
				 errhint("Pass NULL for a migration that cannot be rolled back.")));

	checksum = sha256_hex(up_sql, strlen(up_sql));
	applied_by = GetUserNameFromId(GetUserId(), false);

	mt_spi_connect();

	lock_history();

	row = read_migration(version);
	check_not_rolling_back(version, &row);
	if (row.found && row.baseline && strcmp(row.state, "applied") == 0)
	{
		/* nothing to compare with: the script was never run here */
		ereport(NOTICE,
				(errmsg("migration \"%s\" was recorded by baseline(), skipping", version)));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.state));
	}
	if (row.found && (strcmp(row.state, "applied") == 0 ||
					  strcmp(row.state, "scheduled") == 0))
	{
		if (strcmp(row.checksum, checksum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("migration \"%s\" was already applied with a different checksum",
							version),
					 mt_may_see_role_rows(row.applied_by) ?
					 errdetail("Recorded checksum: %s. Checksum of the given up_sql: %s.",
							   row.checksum, checksum) :
					 errdetail("Checksum of the given up_sql: %s. The recorded one is shown to members of role \"%s\" and of migration_tools_admin only.",
							   checksum, row.applied_by),
					 errhint("A migration must not change once applied: give the change a new version, or roll this one back first.")));
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already %s, skipping", version, row.state)));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.state));
	}

	/* Refuse before running anything. */
	check_row_writable(version, &row);
	lint_or_refuse(version, up_sql, allow);
	statements = runnable_statements(version, "up script", up_sql);
	if (down_sql != NULL)
		(void) runnable_statements(version, "down script", down_sql);
	foreach(lc, statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

		if (info->needs_top_level)
		{
			scheduled = lappend(scheduled, info);
			seen_scheduled = true;
		}
		else if (seen_scheduled)
			runs_after_scheduled = true;
	}
	if (scheduled != NIL)
		mt_require_preload("apply() of a statement that cannot run in a transaction block");

	/*
	 * Behind scheduled statements of an earlier migration on the same
	 * relations: do not wait for them here, in the caller's statement,
	 * whose snapshot a concurrent build waits for; the whole script runs in
	 * the background after them, in script order.
	 */
	after = pending_before(statements, version);
	if (after != NIL)
	{
		mt_require_preload("apply() of a migration behind scheduled statements");
		scheduled = statements;
		runs_after_scheduled = false;
	}
	if (runs_after_scheduled)
		ereport(NOTICE,
				(errmsg("statements of migration \"%s\" that cannot run in a transaction block will run after the others",
						version),
				 errdetail("They run in the background after this transaction commits, in script order.")));

	started_at = GetCurrentTimestamp();
	if (after == NIL && list_length(scheduled) < list_length(statements))
		run_with_retries(statements, version, &run);
	else
		memset(&run, 0, sizeof(run));
	finished_at = GetCurrentTimestamp();

	if (run.error != NULL)
	{
		ErrorData  *edata = run.error;
		MtFailedMigration failure;

		if (is_retryable(edata) && edata->detail == NULL)
		{
			/* as run_with_retries: in double, clamped before the cast */
			double		last_timeout = (double) mt_lock_timeout_ms *
				pow(2.0, run.attempts - 1);

			if (last_timeout > mt_max_lock_timeout_ms)
				last_timeout = mt_max_lock_timeout_ms;
			edata->detail = psprintf("Gave up after %d attempts; the last ran under lock_timeout = %d ms.",
									 run.attempts, (int) last_timeout);
		}
		memset(&failure, 0, sizeof(failure));
		failure.version = version;
		failure.description = description;
		failure.checksum = checksum;
		failure.up_sql = up_sql;
		failure.down_sql = down_sql;
		failure.applied_by = applied_by;
		failure.error = describe_error(edata, run.failed_statement);
		failure.started_at = started_at;
		failure.finished_at = finished_at;
		failure.attempts = run.attempts;
		failure.lock_wait_ms = run.lock_wait_ms;
		(void) mt_record_failure(&failure);

		edata->context = psprintf("%s%smigration \"%s\", statement %d",
								  edata->context ? edata->context : "",
								  edata->context ? "\n" : "",
								  version, run.failed_statement);
		ReThrowError(edata);
	}

	waiters = after != NIL ? 0 : mt_lock_waiters_of(MyProcPid, &longest_wait_ms);
	state = scheduled != NIL ? "scheduled" : "applied";

	/* Record it, as the owner of the history. */
	mt_become_owner(&sw);
	if (scheduled == NIL)
		fingerprint = mt_catalog_fingerprint();
	{
		Oid			argtypes[15] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
			TEXTOID, NAMEOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID,
			FLOAT8OID, INT4OID, TEXTOID, BOOLOID, TEXTOID};
		Datum		values[15];
		char		nulls[15];
		int			i;

		for (i = 0; i < 15; i++)
			nulls[i] = ' ';
		values[0] = CStringGetTextDatum(version);
		values[1] = description ? CStringGetTextDatum(description) : (Datum) 0;
		nulls[1] = description ? ' ' : 'n';
		values[2] = CStringGetTextDatum(checksum);
		values[3] = CStringGetTextDatum(up_sql);
		values[4] = down_sql ? CStringGetTextDatum(down_sql) : (Datum) 0;
		nulls[4] = down_sql ? ' ' : 'n';
		values[5] = CStringGetTextDatum(state);
		values[6] = DirectFunctionCall1(namein, CStringGetDatum(applied_by));
		values[7] = TimestampTzGetDatum(started_at);
		values[8] = TimestampTzGetDatum(finished_at);
		nulls[8] = scheduled != NIL ? 'n' : ' ';
		values[9] = Int32GetDatum(run.attempts);
		values[10] = Float8GetDatum(run.lock_wait_ms);
		values[11] = Int32GetDatum(waiters);
		values[12] = fingerprint ? CStringGetTextDatum(fingerprint) : (Datum) 0;
		nulls[12] = fingerprint ? ' ' : 'n';
		values[13] = BoolGetDatum(false);
		values[14] = (Datum) 0;
		nulls[14] = 'n';

		/* A failed or rolled back version is replaced, and becomes newest. */
		delete_replaced_migration(version, row.found);
		(void) mt_spi_execute_checked("INSERT INTO migration_tools.migrations"
									  " (version, description, checksum, up_sql, down_sql, state,"
									  "  applied_by, started_at, finished_at, execution_time,"
									  "  attempts, lock_wait_time, lock_waits_caused,"
									  "  catalog_fingerprint, baseline, error)"
									  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9 - $8,"
									  "  $10, $11 * interval '1 millisecond', $12, $13, $14, $15)",
									  15, argtypes, values, nulls, false, 0,
									  SPI_OK_INSERT,
									  psprintf("record migration \"%s\"", version));

		if (after != NIL)
			(void) schedule_in_order(version, statements, "up",
									 run_after_versions(after), 0, values[6]);
		else
		{
			i = 0;
			foreach(lc, scheduled)
			{
				MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

				schedule_statement(version, ++i, info->statement, info->sql,
								   "up", NIL, true, values[6]);
			}
		}
	}
	mt_restore_user(&sw);

	if (after != NIL)
	{
		char	   *names;
		char	   *why;

		describe_run_after(after, &names, &why);
		mt_request_work_at_commit();
		if (list_length(after) == 1)
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
	else if (scheduled != NIL)
	{
		mt_request_work_at_commit();
		ereport(NOTICE,
				(errmsg("migration \"%s\" is scheduled: %d statement(s) will run in the background after commit",
						version, list_length(scheduled)),
				 errhint("Follow it in migration_tools.status.")));
	}

	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(state));
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
	MigrationRow row;
	MtSavedUser sw;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, NAMEOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *fingerprint;

	check_writable("baseline()");
	check_text_arg(fcinfo, 0, "version");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_version(version);
	description = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	mt_spi_connect();
	lock_history();
	row = read_migration(version);
	check_not_rolling_back(version, &row);
	if (row.found && (strcmp(row.state, "applied") == 0 ||
					  strcmp(row.state, "scheduled") == 0))
	{
		ereport(NOTICE,
				(errmsg("migration \"%s\" is already %s, skipping", version, row.state)));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.state));
	}

	check_row_writable(version, &row);
	values[0] = CStringGetTextDatum(version);
	values[1] = description ? CStringGetTextDatum(description) : (Datum) 0;
	nulls[1] = description ? ' ' : 'n';
	values[2] = CStringGetTextDatum(sha256_hex("", 0));
	values[3] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(GetUserId(), false)));

	mt_become_owner(&sw);
	fingerprint = mt_catalog_fingerprint();
	values[4] = fingerprint ? CStringGetTextDatum(fingerprint) : (Datum) 0;
	nulls[4] = fingerprint ? ' ' : 'n';
	delete_replaced_migration(version, row.found);
	(void) mt_spi_execute_checked("INSERT INTO migration_tools.migrations"
								  " (version, description, checksum, up_sql, state, applied_by,"
								  "  started_at, finished_at, execution_time, attempts,"
								  "  catalog_fingerprint, baseline)"
								  " VALUES ($1, $2, $3, '', 'applied', $4,"
								  "  now(), now(), '0'::interval, 0, $5, true)",
								  5, argtypes, values, nulls, false, 0,
								  SPI_OK_INSERT,
								  psprintf("record migration \"%s\"", version));
	mt_restore_user(&sw);

	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text("applied"));
}

/*
 * Check that a migration can be rolled back: known, applied, with a down
 * script.
 */
static void
check_rollback(const char *version, MigrationRow *row)
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
	check_row_writable(version, row);
}

/*
 * Is the rollback of a migration already done, or already scheduled for the
 * worker?  Then rollback() and rollback_to() have nothing to do for it: the
 * same rollback requested from many sessions (a deployment tool that runs
 * it from every host) is done once, the others wait for the history lock,
 * find it done and return with a NOTICE, as apply() does for an applied
 * version.  The row was read under the history lock with the latest
 * snapshot (read_migration()).
 */
static bool
rollback_done(const char *version, MigrationRow *row)
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
 * apply() and baseline() leave a migration alone while its rollback runs in
 * the background.
 */
static void
check_not_rolling_back(const char *version, MigrationRow *row)
{
	if (row->found && row->rolling_back)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is being rolled back", version),
				 errdetail("Statements of its down script are scheduled for the background worker."),
				 errhint("Wait until migration_tools.status shows it rolled_back, then try again.")));
}

/* Insert one scheduled statement.  Runs as the owner. */
static void
schedule_statement(const char *version, int seq, int statement_no,
				   const char *sql, const char *direction, List *run_after,
				   bool top_level, Datum run_as)
{
	Oid			types[8] = {TEXTOID, INT4OID, INT4OID, TEXTOID, NAMEOID, TEXTARRAYOID,
		BOOLOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(version);
	values[1] = Int32GetDatum(seq);
	values[2] = Int32GetDatum(statement_no);
	values[3] = CStringGetTextDatum(sql);
	values[4] = run_as;
	values[5] = run_after != NIL ? mt_text_array_from_list(run_after) : (Datum) 0;
	nulls[5] = run_after != NIL ? ' ' : 'n';
	values[6] = BoolGetDatum(top_level);
	values[7] = CStringGetTextDatum(direction);
	(void) mt_spi_execute_checked("INSERT INTO migration_tools.scheduled_statements"
								  " (version, seq, statement_no, sql, run_as, direction,"
								  "  run_after, top_level, run_as_login)"
								  " VALUES ($1, $2, $3, $4, $5, $8, $6, $7,"
								  "  coalesce((SELECT r.rolcanlogin AND (r.rolvaliduntil IS NULL"
								  "                OR r.rolvaliduntil > pg_catalog.now())"
								  "              FROM pg_catalog.pg_roles r WHERE r.rolname = $5), false))",
								  8, types, values, nulls, false, 0,
								  SPI_OK_INSERT,
								  strcmp(direction, "down") == 0 ?
								  psprintf("schedule statement %d of the down script of migration \"%s\"",
										   statement_no, version) :
								  psprintf("schedule statement %d of migration \"%s\"",
										   statement_no, version));
}

/*
 * Schedule statements in script order, numbered from seq + 1: each one
 * that needs the top level is a row of its own; consecutive ones that can
 * run in a transaction block form one row (top_level = false), which the
 * worker runs in one transaction under migration_tools.max_lock_timeout.
 * Runs as the owner.  Returns how many rows were inserted.
 */
static int
schedule_in_order(const char *version, List *statements, const char *direction,
				  List *run_after, int seq, Datum run_as)
{
	ListCell   *lc;
	StringInfoData group;
	int			group_first = 0;
	int			n = 0;

	initStringInfo(&group);
	foreach(lc, statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

		if (!info->needs_top_level)
		{
			if (group_first == 0)
				group_first = info->statement;
			else
				appendStringInfoString(&group, ";\n");
			appendStringInfoString(&group, info->sql);
			continue;
		}
		if (group_first != 0)
		{
			schedule_statement(version, ++seq, group_first, group.data,
							   direction, run_after, false, run_as);
			n++;
			resetStringInfo(&group);
			group_first = 0;
		}
		schedule_statement(version, ++seq, info->statement, info->sql,
						   direction, run_after, true, run_as);
		n++;
	}
	if (group_first != 0)
	{
		schedule_statement(version, ++seq, group_first, group.data,
						   direction, run_after, false, run_as);
		n++;
	}
	pfree(group.data);
	return n;
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
	n = read_latest("SELECT sql FROM migration_tools.scheduled_statements"
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
	(void) mt_spi_execute_checked("UPDATE migration_tools.migrations"
								  "   SET state = 'scheduled', error = NULL"
								  " WHERE version = $1 AND state = 'failed'",
								  1, types, values, NULL, false, 0,
								  SPI_OK_UPDATE,
								  psprintf("mark migration \"%s\" scheduled", version));
	if (SPI_processed != 1)
		report_concurrent_change(version);
	return (int) n;
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
run_down_script(const char *version, MigrationRow *row, const char *run_after)
{
	List	   *statements;
	List	   *now = NIL;
	List	   *later = NIL;
	ListCell   *lc;
	RunResult	run;
	MtSavedUser sw;
	char	   *fingerprint;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int			nscheduled = 0;
	List	   *after = NIL;
	List	   *waits = NIL;

	if (row->rollback_failed)
		statements = down_statements_not_done(version);
	else
		statements = runnable_statements(version, "down script", row->down_sql);

	/*
	 * Behind scheduled statements of other migrations on the relations the
	 * down script locks: as for apply(), nothing runs here (it would wait
	 * for a concurrent build that waits for this transaction); the whole
	 * down script runs in the background after all of them.
	 */
	if (run_after != NULL)
		waits = list_make1((char *) run_after);
	foreach(lc, pending_before(statements, version))
	{
		RunAfter   *ra = (RunAfter *) lfirst(lc);

		/* (rollback_to(): the newer migration is waited for anyway) */
		if (run_after != NULL && strcmp(ra->version, run_after) == 0)
			continue;
		after = lappend(after, ra);
		waits = lappend(waits, ra->version);
	}

	if (row->rollback_failed)
	{
		char	   *names = NULL;
		char	   *why = NULL;

		mt_require_preload("rollback() of a statement that cannot run in a transaction block");
		mt_become_owner(&sw);
		nscheduled = retry_rollback(version, waits, row->applied_by);
		mt_restore_user(&sw);
		mt_request_work_at_commit();
		if (after != NIL)
			describe_run_after(after, &names, &why);
		ereport(NOTICE,
				(errmsg("rollback of migration \"%s\" is scheduled again: %d statement(s) will run in the background after commit",
						version, nscheduled),
				 after == NIL ? 0 :
				 list_length(after) == 1 ?
				 errdetail("%s: they run once migration %s is done.", why, names) :
				 errdetail("%s: they run once migrations %s are all done.", why, names),
				 errhint("Follow it in migration_tools.status.")));
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
	{
		run_with_retries(now, version, &run);
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

	mt_become_owner(&sw);
	values[0] = CStringGetTextDatum(version);
	if (later == NIL)
	{
		fingerprint = mt_catalog_fingerprint();
		values[1] = fingerprint ? CStringGetTextDatum(fingerprint) : (Datum) 0;
		nulls[1] = fingerprint ? ' ' : 'n';
		(void) mt_spi_execute_checked("UPDATE migration_tools.migrations"
									  " SET state = 'rolled_back', rolled_back_at = clock_timestamp(),"
									  "     catalog_fingerprint = $2"
									  " WHERE version = $1",
									  2, argtypes, values, nulls, false, 0,
									  SPI_OK_UPDATE,
									  psprintf("mark migration \"%s\" rolled back", version));
	}
	else
		(void) mt_spi_execute_checked("UPDATE migration_tools.migrations"
									  " SET state = 'scheduled', error = NULL"
									  " WHERE version = $1",
									  1, argtypes, values, NULL, false, 0,
									  SPI_OK_UPDATE,
									  psprintf("mark migration \"%s\" scheduled", version));
	if (SPI_processed != 1)
		report_concurrent_change(version);

	if (later != NIL)
	{
		/* as the role that recorded the down script, as it runs here */
		Datum		run_as = DirectFunctionCall1(namein,
												 CStringGetDatum(row->applied_by));
		int			seq;

		/* after the statements of the up script, if some were scheduled */
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
		nscheduled = schedule_in_order(version, later, "down", waits, seq, run_as);
	}
	mt_restore_user(&sw);

	if (after != NIL)
	{
		char	   *names;
		char	   *why;
		char	   *also = "";

		describe_run_after(after, &names, &why);
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
	return later != NIL;
}

/*
 * Before a stored script of a migration runs: act as the role that
 * recorded it (checked by mt_recorded_role()), unless the session already
 * is that role, with no SET ROLE to get out of it.  Returns whether the
 * user changed; mt_restore_user() then undoes it.
 */
static bool
become_recorder(const char *version, MigrationRow *row, MtSavedUser *saved)
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
do_rollback(const char *version, MigrationRow *row, const char *run_after)
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

	check_writable(funcname);
	check_text_arg(fcinfo, 0, "version");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));

	mt_spi_connect();
	lock_history();
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
	MigrationRow row;
	bool		scheduled;

	version = begin_rollback(fcinfo, "rollback()");
	row = read_migration(version);
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
	MigrationRow target;
	MtSavedUser sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	List	   *later = NIL;
	ListCell   *lc;
	uint64		i;
	uint64		n;
	const char *run_after = NULL;
	const char *newest = NULL;
	int			done = 0;

	version = begin_rollback(fcinfo, "rollback_to()");
	target = read_migration(version);
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

	/* The later migrations still in effect, newest first. */
	mt_become_owner(&sw);
	values[0] = Int64GetDatum(target.installed_rank);
	n = read_latest("SELECT version FROM migration_tools.migrations m"
					" WHERE installed_rank > $1 AND (state IN ('applied', 'scheduled', 'running')"
					"       OR (state = 'failed' AND EXISTS"
					"           (SELECT FROM migration_tools.scheduled_statements s"
					"             WHERE s.version = m.version AND s.direction = 'down'"
					"               AND s.state <> 'done')))"
					" ORDER BY installed_rank DESC",
					1, argtypes, values, 0, "read the later migrations");
	for (i = 0; i < n; i++)
		later = lappend(later, SPI_getvalue(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1));
	mt_restore_user(&sw);

	if (later == NIL)
		ereport(NOTICE,
				(errmsg("no migration after \"%s\" is in effect, nothing to roll back",
						version)));

	/*
	 * Check them all first.  Those whose rollback is already scheduled (by
	 * another rollback_to() of the same target, which held the history
	 * lock before us) are left to it; but not behind a newer migration
	 * still to roll back here, which would then be undone after it.
	 */
	foreach(lc, later)
	{
		char	   *v = (char *) lfirst(lc);
		MigrationRow row = read_migration(v);

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

	/*
	 * Newest first.  Once the rollback of one of them is scheduled (here,
	 * or before), the older ones are scheduled after it, in turn.
	 */
	foreach(lc, later)
	{
		char	   *v = (char *) lfirst(lc);
		MigrationRow row = read_migration(v);

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
