/*-------------------------------------------------------------------------
 *
 * locks_int.h
 *	  What locks.c gives the other locks files only (lock_conflicts.c,
 *	  lock_graph.c): one read of the lock manager and its readers, and what
 *	  pg_stat_activity shows of a session.  Nothing outside the locks files
 *	  includes it.
 *
 * IDENTIFICATION
 *	  src/locks_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LOCKS_INT_H
#define MT_LOCKS_INT_H

#include "datatype/timestamp.h"
#include "storage/lock.h"
#include "utils/hsearch.h"

#include "compat.h"

/* The lock modes of the default lock method (AccessShareLock .. 8) */
#define MT_NUM_MODES	8

/* A session (lock group leader pid), or a prepared transaction (by xid). */
typedef struct MtHolder
{
	int			pid;			/* leader pid; 0 for a prepared transaction */
	TransactionId xid;			/* prepared transaction's xid, else 0 */
} MtHolder;

/*
 * A prepared transaction of a snapshot: its dummy PGPROC keeps the virtual
 * transaction id of the session that prepared it, and holds the
 * ExclusiveLock on its xid, which is how SQL finds it in pg_prepared_xacts.
 */
typedef struct MtPrepared
{
	MtProcNumber backend;
	LocalTransactionId lxid;
	TransactionId xid;
} MtPrepared;

/* One read of the lock manager, and the prepared transactions found in it. */
typedef struct MtLockStatus
{
	LockData   *data;			/* GetLockStatusData(), workers folded */
	MtPrepared *prepared;		/* NULL if none */
	int			nprepared;
} MtLockStatus;

/*
 * What pg_stat_activity shows of one session, read from the backend status
 * with the same visibility rules: the query, state and transaction start
 * only to roles with the privileges of the session's role, or of
 * pg_read_all_stats; the role and application name to everyone.
 */
typedef struct MtActivity
{
	int			pid;			/* hash key */
	bool		visible;
	Oid			userid;
	const char *appname;
	const char *query;
	const char *state;
	TimestampTz xact_start;
	/* the same as Datums, made at first use: rows repeat sessions */
	bool		made;
	Datum		query_d;
	Datum		role_d;
	Datum		app_d;
	Datum		state_d;
	bool		has_role;
} MtActivity;

/* One read of the lock manager; mt_free_lock_status() frees it. */
extern MtLockStatus *mt_read_lock_status(void);
extern void mt_free_lock_status(MtLockStatus *status);

/* Who holds a lock instance of the read. */
extern MtHolder mt_instance_holder(const MtLockStatus *status,
								   const LockInstanceData *inst);

/* The modes that conflict with mode, and the strongest mode of a mask. */
extern LOCKMASK mt_conflict_mask(const LOCKTAG *tag, LOCKMODE mode);
extern LOCKMODE mt_strongest_mode(LOCKMASK mask);

/*
 * The instances ordered by lock object (memcmp of the tags), so that each
 * object is one run idx[start .. mt_same_object_end()).
 */
extern int	mt_locktag_cmp(const void *a, const void *b);
extern int *mt_sorted_instances(LockData *data);
extern int	mt_same_object_end(const LockData *data, const int *idx, int start);

/* The sessions of the backend status, and their columns in a result row. */
extern HTAB *mt_read_activity(void);
extern MtActivity *mt_put_activity(HTAB *act, int pid, Datum *values,
								   bool *nulls, int query_col, int role_col,
								   int app_col, int state_col, int xact_col);

#endif							/* MT_LOCKS_INT_H */
