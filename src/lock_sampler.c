/*-------------------------------------------------------------------------
 *
 * lock_sampler.c
 *	  The lock waits this backend suffers while it runs something, sampled
 *	  every 10 ms.
 *
 * apply() runs each attempt of a migration, and the backfill worker each
 * batch, between mt_lock_wait_sampler_start() and _stop(): the time spent
 * waiting for heavyweight locks meanwhile is what the history and the job
 * record as the lock waits suffered, and the lock type waited for at the
 * last sample tells a table lock timeout from a row lock timeout.  The state
 * is the backend's own, in statics: a timeout handler takes no argument.
 *
 * IDENTIFICATION
 *	  src/lock_sampler.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "storage/proc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "lock_sampler.h"

/*
 * Lock waits a backend suffers while it runs something.  The lock manager
 * keeps no running total of a backend's waits, so while the sampler is
 * armed a periodic timeout looks every MT_LOCK_SAMPLE_MS whether this
 * backend waits for a heavyweight lock (its wait event class is Lock) and
 * counts the ticks: the wait time, to within a tick per wait.
 */
#define MT_LOCK_SAMPLE_MS	10
static TimeoutId lock_sample_timeout;
static bool lock_sample_registered = false;
static bool lock_sample_armed = false;
static volatile sig_atomic_t lock_wait_ticks = 0;
static volatile uint32 lock_wait_last_tick = 0;

static void
lock_sample_handler(void)
{
	uint32		event = 0;

	if (MyProc != NULL)
		event = ((volatile PGPROC *) MyProc)->wait_event_info;
	if ((event & 0xFF000000) == PG_WAIT_LOCK)
		lock_wait_ticks++;
	else
		event = 0;
	lock_wait_last_tick = event;
}

/* Start counting this backend's lock waits (from zero). */
void
mt_lock_wait_sampler_start(void)
{
	if (!lock_sample_registered)
	{
		lock_sample_timeout = RegisterTimeout(USER_TIMEOUT, lock_sample_handler);
		lock_sample_registered = true;
	}
	lock_wait_ticks = 0;
	lock_wait_last_tick = 0;
	enable_timeout_every(lock_sample_timeout,
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MT_LOCK_SAMPLE_MS),
						 MT_LOCK_SAMPLE_MS);
	lock_sample_armed = true;
}

/*
 * Stop counting; the lock wait since mt_lock_wait_sampler_start(), in ms
 * (0 when not started).  Safe to call after an error, which may already
 * have disabled every timeout.
 */
double
mt_lock_wait_sampler_stop(void)
{
	if (!lock_sample_armed)
		return 0.0;
	disable_timeout(lock_sample_timeout, false);
	lock_sample_armed = false;
	return (double) lock_wait_ticks * MT_LOCK_SAMPLE_MS;
}

/*
 * The type of the heavyweight lock (a LockTagType) this backend was
 * waiting for at the last sample before mt_lock_wait_sampler_stop(), or
 * -1 if it was not waiting for one then.  After a lock or statement
 * timeout it tells what the statement was stuck on: a table lock
 * (LOCKTAG_RELATION: DDL, LOCK TABLE) or a row (LOCKTAG_TRANSACTION,
 * LOCKTAG_TUPLE).
 */
int
mt_lock_wait_sampler_last_locktype(void)
{
	uint32		event = lock_wait_last_tick;

	if ((event & 0xFF000000) != PG_WAIT_LOCK)
		return -1;
	return (int) (event & 0x0000FFFF);
}
