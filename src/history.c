/*-------------------------------------------------------------------------
 *
 * history.c
 *	  Migration history: what apply (history_apply.c) and rollback
 *	  (history_rollback.c) share.
 *
 * The GUCs of the history, the checks of the arguments, the checksum of
 * an up script, the history lock that serializes every writer of the
 * history (apply, baseline, rollback, rollback_to, import_history), the
 * reading of a migration's row with the latest snapshot, and the lint and
 * split of a script into the statements that run.
 *
 * IDENTIFICATION
 *	  src/history.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "catalog/namespace.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "history.h"
#include "lint.h"
#include "locks.h"
#include "migration_state.h"
#include "migration_tools.h"
#include "security.h"
#include "spi_util.h"

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

/* GUCs */
int			mt_lock_timeout_ms = 100;
int			mt_max_lock_timeout_ms = 2000;
int			mt_lock_retries = 10;
int			mt_max_preflight_wait_ms = 10000;
int			mt_max_blocker_age_ms = 0;
static int	mt_max_deployer_wait_ms = 300000;
static char *mt_applying_version = NULL;

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
void
mt_history_check_writable(const char *funcname)
{
	/* on a standby every transaction is read-only: name the real cause */
	PreventCommandDuringRecovery(funcname);
	PreventCommandIfReadOnly(funcname);
}

/*
 * A version that apply() or baseline() records: besides not null and not
 * empty (mt_history_check_text_arg), short enough to be shown and indexed, free of
 * control characters, and without white space around it (which would make
 * "001" and "001 " two different migrations).
 */
void
mt_history_check_version(const char *version)
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
void
mt_history_check_text_arg(FunctionCallInfo fcinfo, int argno, const char *what)
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
char *
mt_sha256_hex(const char *data, size_t len)
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

	PG_RETURN_TEXT_P(cstring_to_text(mt_sha256_hex(VARDATA_ANY(t),
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
void
mt_history_lock(void)
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
	mt_history_lock();
	PG_RETURN_VOID();
}

/*
 * Run a read-only query of the history tables with the latest snapshot,
 * not the transaction's: the functions call it under the history lock, and
 * must see what the previous holder of the lock committed even in
 * REPEATABLE READ.  The rows are in SPI_tuptable; returns SPI_processed.
 * what completes "could not ..." in an error.  SPI must be connected.
 */
uint64
mt_history_read_latest(const char *sql, int nargs, Oid *argtypes, Datum *values,
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
MtMigrationRow
mt_history_read_migration(const char *version)
{
	MtMigrationRow row;
	MtSavedUser sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	memset(&row, 0, sizeof(row));
	mt_become_owner(&sw);
	values[0] = CStringGetTextDatum(version);
	if (mt_history_read_latest("SELECT state, checksum, down_sql, installed_rank, baseline,"
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
void
mt_history_report_concurrent_change(const char *version)
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
void
mt_history_check_row_writable(const char *version, MtMigrationRow *row)
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
void
mt_history_delete_replaced(const char *version, bool seen)
{
	if (mt_migration_delete(version) == 0 && seen)
		mt_history_report_concurrent_change(version);
}

/*
 * apply() and baseline() leave a migration alone while its rollback runs in
 * the background.
 */
void
mt_history_check_not_rolling_back(const char *version, MtMigrationRow *row)
{
	if (row->found && row->rolling_back)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is being rolled back", version),
				 errdetail("Statements of its down script are scheduled for the background worker."),
				 errhint("Wait until migration_tools.status shows it rolled_back, then try again.")));
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
void
mt_history_lint_or_refuse(const char *version, const char *up_sql, ArrayType *allow)
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
List *
mt_history_runnable_statements(const char *version, const char *what, const char *sql)
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
