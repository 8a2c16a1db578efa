/*-------------------------------------------------------------------------
 *
 * locks.h
 *	  Lock waits read from the lock manager: what apply(), the backfill
 *	  worker and the scheduled statements need from the locks files.
 *
 * The interface of the locks subsystem to the rest of the module: it
 * includes the headers of lock_conflicts.c (who conflicts with a lock
 * request or with a session's locks) and lock_sampler.c (the lock waits
 * this backend suffers), and declares what locks.c itself exports to them.
 * What only the locks files share is in locks_int.h.
 *
 * IDENTIFICATION
 *	  src/locks.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LOCKS_H
#define MT_LOCKS_H

#include "storage/lockdefs.h"

#include "lock_conflicts.h"
#include "lock_sampler.h"

/* LOCKMODE from a name such as "ACCESS EXCLUSIVE" or "AccessExclusiveLock";
 * ERROR listing the valid names if unrecognized. */
extern LOCKMODE mt_lock_mode_from_name(const char *name);

#endif							/* MT_LOCKS_H */
