/*-------------------------------------------------------------------------
 *
 * history.c
 *	  Migration history: apply, rollback, verification and drift detection.
 *
 * IDENTIFICATION
 *	  src/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "migration_tools.h"

#include "history.h"

bool
mt_history_run_scheduled(void)
{
	return false;
}

void
mt_history_init(void)
{
}
