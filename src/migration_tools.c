/*-------------------------------------------------------------------------
 *
 * migration_tools.c
 *	  Entry point of the migration_tools library.
 *
 * _PG_init lets every subsystem define its reloadable GUCs and installs the
 * utility guard's ProcessUtility_hook, then, only when the library is
 * loaded through shared_preload_libraries, sets up what must
 * exist from postmaster start: shared memory, the postmaster-level GUCs and
 * the launcher background worker.  SQL functions that depend on the launcher
 * call mt_require_preload() so that a library loaded on demand fails with a
 * clear error rather than queueing work nobody will ever run.
 *
 * IDENTIFICATION
 *	  src/migration_tools.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "backfill.h"
#include "ddl_log.h"
#include "guard.h"
#include "history.h"
#include "launcher.h"
#include "lint.h"
#include "migration_tools.h"
#include "schedule.h"

PG_MODULE_MAGIC;

bool		mt_preloaded = false;

void		_PG_init(void);

/*
 * Module load callback.
 */
void
_PG_init(void)
{
	mt_history_init();
	mt_schedule_init();
	mt_ddl_log_init();
	mt_backfill_init();
	mt_lint_init();
	mt_guard_init();

	/*
	 * The utility guard (guard.c) is installed in every process that loads
	 * the library, not only with shared_preload_libraries: it needs no
	 * shared memory, and migration_tools.guard (a superuser setting, often
	 * set per database) must be obeyed whichever way the library was
	 * loaded, as with auto_explain: shared_preload_libraries or
	 * session_preload_libraries guard every session from its first
	 * statement; LOAD, or the first call of one of the extension's
	 * functions, from then on in that session only.  Preloading the library
	 * is what makes the guard cover every session.
	 */
	mt_guard_prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = mt_guard_ProcessUtility;

	if (!process_shared_preload_libraries_in_progress)
		return;

	mt_preloaded = true;
	mt_launcher_init();

	MarkGUCPrefixReserved(MT_GUC_PREFIX);
}

/*
 * Refuse to go on when the library was not preloaded: the named feature
 * needs the launcher and its shared memory.
 */
void
mt_require_preload(const char *feature)
{
	if (!mt_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires migration_tools to be loaded via shared_preload_libraries",
						feature),
				 errdetail("The background worker that runs this work is started by the postmaster."),
				 errhint("Add \"%s\" to shared_preload_libraries in postgresql.conf and restart the server.",
						 MT_EXTENSION_NAME)));
}
