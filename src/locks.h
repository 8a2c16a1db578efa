/*-------------------------------------------------------------------------
 *
 * locks.h
 *	  Lock waits read from the lock manager: what apply() and the backfill
 *	  worker need from locks.c.
 *
 * IDENTIFICATION
 *	  src/locks.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LOCKS_H
#define MT_LOCKS_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"

/* A session that holds or waits for a lock conflicting with a request. */
typedef struct MtLockConflict
{
	int			pid;			/* leader pid (parallel workers folded in) */
	bool		granted;		/* holds the lock (false: queued for it) */
	LOCKMODE	mode;			/* the conflicting mode it holds or wants */
	TimestampTz xact_start;		/* 0 if unknown (prepared transaction) */
	bool		prepared;		/* a prepared transaction (pid is 0) */
	TransactionId prepared_xid; /* its xid, when prepared */
} MtLockConflict;

/*
 * Sessions other than ours that hold or wait for a lock on relid (in
 * dboid) that conflicts with mode, from one snapshot of the lock manager.
 * Never opens or locks the relation.  Returns a List of MtLockConflict *.
 */
extern List *mt_lock_conflicts(Oid dboid, Oid relid, LOCKMODE mode);

/*
 * Sessions waiting, right now, on locks held by the given pid (directly).
 * Returns their number, and in *longest_wait_ms the longest of their waits
 * so far.  Used to measure the lock waits a migration or a batch causes.
 */
extern int	mt_lock_waiters_of(int pid, double *longest_wait_ms);

/* LOCKMODE from a name such as "ACCESS EXCLUSIVE" or "AccessExclusiveLock";
 * ERROR listing the valid names if unrecognized. */
extern LOCKMODE mt_lock_mode_from_name(const char *name);

/*
 * Count the time this backend waits for heavyweight locks between start
 * and stop (sampled every 10 ms); stop returns it in ms.
 */
extern void mt_lock_wait_sampler_start(void);
extern double mt_lock_wait_sampler_stop(void);

/* The LockTagType waited for at the last sample, or -1 (no lock wait). */
extern int	mt_lock_wait_sampler_last_locktype(void);

#endif							/* MT_LOCKS_H */
