/*-------------------------------------------------------------------------
 *
 * lock_conflicts.h
 *	  Which sessions conflict with one lock request, or with the locks one
 *	  session holds (lock_conflicts.c).
 *
 * IDENTIFICATION
 *	  src/lock_conflicts.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LOCK_CONFLICTS_H
#define MT_LOCK_CONFLICTS_H

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

#endif							/* MT_LOCK_CONFLICTS_H */
