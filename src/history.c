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

void
mt_history_init(void)
{
}
