/*-------------------------------------------------------------------------
 *
 * lock_sampler.h
 *	  The lock waits this backend suffers while it runs something, sampled
 *	  every 10 ms (lock_sampler.c).
 *
 * IDENTIFICATION
 *	  src/lock_sampler.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LOCK_SAMPLER_H
#define MT_LOCK_SAMPLER_H

/*
 * Count the time this backend waits for heavyweight locks between start
 * and stop (sampled every 10 ms); stop returns it in ms.
 */
extern void mt_lock_wait_sampler_start(void);
extern double mt_lock_wait_sampler_stop(void);

/* The LockTagType waited for at the last sample, or -1 (no lock wait). */
extern int	mt_lock_wait_sampler_last_locktype(void);

#endif							/* MT_LOCK_SAMPLER_H */
