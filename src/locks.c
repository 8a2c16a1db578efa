/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  Lock waits read from the lock manager.
 *
 * IDENTIFICATION
 *	  src/locks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "migration_tools.h"

void
mt_locks_init(void)
{
}
