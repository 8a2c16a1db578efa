/*-------------------------------------------------------------------------
 *
 * history_await.c
 *	  await_migration(): a procedure that waits for a migration's scheduled
 *	  statements and fails visibly when they fail, so that a deploy step of
 *	  a migration tool does not report success for a migration that failed
 *	  after its transaction committed.
 *
 * IDENTIFICATION
 *	  src/history_await.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "history.h"
#include "migration_tools.h"
#include "security.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(mt_await_migration);

/* What one look at a migration saw, in the procedure's context. */
typedef struct MtAwaitedMigration
{
	char	   *state;
	char	   *error;			/* NULL if none */
	char	   *applied_by;
} MtAwaitedMigration;

/*
 * Read the state, error and recorder of version (as the extension owner,
 * since the migrations table is not readable by everyone); ERROR if it is
 * not recorded.
 */
static MtAwaitedMigration
look_at_migration(const char *version, MemoryContext cxt)
{
	MtAwaitedMigration m = {0};
	MtSavedUser sw;
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(version);
	bool		found;

	mt_become_owner(&sw);
	mt_spi_connect();
	found = mt_spi_execute_checked("SELECT state, error, applied_by FROM migration_tools.migrations"
								   " WHERE version = $1",
								   1, &argtype, &arg, NULL, true, 1,
								   SPI_OK_SELECT, "read the migration") == 1;
	if (found)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *error = SPI_getvalue(tup, desc, 2);

		m.state = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		m.error = error ? MemoryContextStrdup(cxt, error) : NULL;
		m.applied_by = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 3));
	}
	SPI_finish();
	mt_restore_user(&sw);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" is not recorded", version)));
	return m;
}

/*
 * CALL await_migration(version, timeout): a procedure that returns once the
 * migration is applied or rolled back (its scheduled statements, of the up
 * or the down script, are done), and raises an ERROR when it is failed
 * (with its error, if the caller may see it, as in the status view) or when
 * timeout passes first.  It commits before each wait, so it holds no
 * snapshot while waiting; hence it cannot run in a transaction block.
 */
Datum
mt_await_migration(PG_FUNCTION_ARGS)
{
	char	   *version;
	double		timeout_ms;
	TimestampTz start = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	MtAwaitedMigration m;

	mt_history_check_text_arg(fcinfo, 0, "version");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	timeout_ms = mt_await_begin(fcinfo, "await_migration()", 1);
	for (;;)
	{
		m = look_at_migration(version, cxt);
		if (strcmp(m.state, "scheduled") != 0 && strcmp(m.state, "running") != 0)
			break;
		if (!mt_await_pause(start, timeout_ms))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("timed out waiting for migration \"%s\", which is %s",
							version, m.state),
					 errhint("Watch it in migration_tools.status, or call await_migration() again.")));
	}
	SPI_finish();
	if (strcmp(m.state, "failed") == 0)
	{
		bool		visible = m.error && mt_may_see_role_rows(m.applied_by);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" failed%s%s", version,
						visible ? ": " : "", visible ? m.error : ""),
				 errhint("Fix the cause, then apply() it again, or mark it with resolve().")));
	}
	PG_RETURN_VOID();
}
