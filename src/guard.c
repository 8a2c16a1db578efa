/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The optional utility guard: with migration_tools.guard on, DDL that
 *	  the linter flags at error level is refused in any session, so that
 *	  unsafe schema changes cannot bypass apply().
 *
 * The guard is a ProcessUtility_hook, installed by _PG_init (see there for
 * when).  It lints the one utility statement
 * it is given, from the tree the server passes (no parsing), with the same
 * rules and messages as lint().  It stays out of the way of apply() (which
 * sets migration_tools.applying_version locally and has linted the script
 * already), of extension scripts, of the extension's own background
 * workers and of the subcommands the server generates itself.
 *
 * IDENTIFICATION
 *	  src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/extension.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "guard.h"
#include "lint_int.h"
#include "migration_tools.h"

static bool mt_guard_enabled = false;

/* set by _PG_init when it installs mt_guard_ProcessUtility */
ProcessUtility_hook_type mt_guard_prev_ProcessUtility = NULL;

/*
 * Define migration_tools.guard.  The hook is installed by _PG_init.
 */
void
mt_guard_init(void)
{
	DefineCustomBoolVariable(MT_GUC_PREFIX ".guard",
							 "Refuses DDL that the linter flags at error level outside apply().",
							 NULL,
							 &mt_guard_enabled,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
}

/*
 * Should this statement be checked at all?
 */
static bool
guard_applies(ProcessUtilityContext context)
{
	const char *applying;

	if (!mt_guard_enabled)
		return false;
	/* statements the server generates while running another one */
	if (context == PROCESS_UTILITY_SUBCOMMAND)
		return false;
	if (creating_extension)
		return false;
	/* our own workers run what apply() scheduled, already linted */
	if (MyBgworkerEntry != NULL &&
		strcmp(MyBgworkerEntry->bgw_library_name, MT_EXTENSION_NAME) == 0)
		return false;
	applying = GetConfigOption(MT_GUC_PREFIX ".applying_version", true, false);
	if (applying != NULL && applying[0] != '\0')
		return false;
	return true;
}

/*
 * Lint the statement; raise the first error-level finding as an ERROR.
 */
static void
guard_check(PlannedStmt *pstmt, const char *queryString)
{
	MemoryContext cxt;
	MemoryContext old;
	RawStmt		raw;
	List	   *findings;
	ListCell   *lc;

	if (pstmt->utilityStmt == NULL)
		return;

	cxt = AllocSetContextCreate(CurrentMemoryContext,
								"migration_tools guard",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

	memset(&raw, 0, sizeof(raw));
	raw.type = T_RawStmt;
	raw.stmt = pstmt->utilityStmt;
	raw.stmt_location = pstmt->stmt_location;
	raw.stmt_len = pstmt->stmt_len;
	if (queryString == NULL || raw.stmt_location < 0 ||
		raw.stmt_location > (int) strlen(queryString))
	{
		queryString = "";
		raw.stmt_location = 0;
		raw.stmt_len = 0;
	}
	findings = mt_lint_utility(queryString, &raw);

	foreach(lc, findings)
	{
		MtLintFinding *f = (MtLintFinding *) lfirst(lc);

		if (mt_lint_severity_level(f->severity) < MT_SEV_ERROR)
			continue;
		MemoryContextSwitchTo(old);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s", f->message),
				 errdetail("%s refuses statements the linter flags at error level (rule \"%s\").",
						   MT_GUC_PREFIX ".guard", f->rule),
				 f->hint ? errhint("%s", f->hint) : 0));
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * The hook: check, then hand the statement on to the previous hook or to
 * the standard processing.
 */
void
mt_guard_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	if (guard_applies(context))
		guard_check(pstmt, queryString);

	if (mt_guard_prev_ProcessUtility)
		mt_guard_prev_ProcessUtility(pstmt, queryString, readOnlyTree,
									 context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}
