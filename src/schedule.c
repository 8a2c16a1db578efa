/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  Scheduled migration statements: the statements of a migration that
 *	  cannot run in a transaction block, run by the background worker after
 *	  apply() commits.
 *
 * IDENTIFICATION
 *	  src/schedule.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "history.h"
#include "migration_tools.h"

bool
mt_history_run_scheduled(void)
{
	return false;
}
