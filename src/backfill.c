/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Batched backfills: job planning and the batches the worker runs.
 *
 * IDENTIFICATION
 *	  src/backfill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "migration_tools.h"

#include "backfill.h"

bool
mt_backfill_run_next(TimestampTz *next_due)
{
	*next_due = 0;
	return false;
}

void
mt_backfill_init(void)
{
}
