/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  Lock waits read from the lock manager.
 *
 * Everything here starts from one call of GetLockStatusData(), which copies
 * every PROCLOCK of the lock manager (and the fast-path locks) while holding
 * all the lock partition locks: one consistent picture, the same one pg_locks
 * shows.  From that copy we work out who waits for whom:
 *
 * - a "hard" blocker holds a lock mode on the awaited object that conflicts
 *   with the awaited mode;
 * - a "soft" blocker is queued ahead of the waiter on the same object and
 *   asks for a conflicting mode: the lock manager grants in queue order, so
 *   the waiter will not get the lock before it.
 *
 * GetLockStatusData() does not tell the queue order, so for each awaited
 * object where soft blocking is possible (two waiters from different
 * sessions wanting conflicting modes) we call GetBlockerStatusData() once,
 * for the waiter that most likely is last in the queue: it returns the pids
 * queued ahead of it, in order.  Only when that snapshot misses some waiters
 * (the queue changed meanwhile) do we ask again for one of them.
 *
 * Parallel workers are folded into their leader (leaderPid, and for their
 * fast-path locks the process's lockGroupLeader): a session is its lock
 * group.  Prepared transactions hold their locks through a dummy
 * PGPROC with pid 0, which keeps the virtual transaction id of the session
 * that prepared it and holds the lock on the transaction's xid: that is how
 * we tell them apart, and how SQL finds their gid in pg_prepared_xacts.
 *
 * The SQL side (the lock_waits view) gets one row per waiting request, with
 * its blockers as one array of bigint codes, and one row per blocker: it
 * unnests the codes and joins them to the blockers (see mt_lock_waits_srf).
 *
 * The chains (depth, root blocker) are computed over the waits-for graph
 * by a breadth-first walk from the root blockers, so cycles (a deadlock not
 * yet detected) cannot loop: their members simply get no depth.
 *
 * Relations are never opened nor locked: we report OIDs, typed regclass,
 * whose output is a syscache lookup.
 *
 * What pg_stat_activity shows of the sessions (query, role, state, ...) is
 * read here too, from the backend status, under pg_stat_activity's
 * visibility rules, fresh at each call.
 *
 * IDENTIFICATION
 *	  src/locks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "locks.h"
#include "migration_tools.h"
#include "spi_util.h"

/* A session (lock group leader pid), or a prepared transaction (by xid). */
typedef struct MtHolder
{
	int			pid;			/* leader pid; 0 for a prepared transaction */
	TransactionId xid;			/* prepared transaction's xid, else 0 */
} MtHolder;

/* Node of the waits-for graph, in a hash table keyed by node key. */
typedef struct MtNode
{
	int64		key;			/* pid, or -(xid + 1) for a prepared xact */
	MtHolder	holder;			/* the session or prepared transaction */
	bool		waits;			/* has an outgoing edge */
	bool		blocks;			/* has an incoming edge */
	int			level;			/* distance to a root blocker, -1 unknown */
	int64		root;			/* key of that root */
} MtNode;

/* A waiting lock request: a session waiting for one mode on one object. */
typedef struct MtRequest
{
	int			inst;			/* index of one of its LockInstanceData */
	int			pid;			/* leader pid */
	int			rawpid;			/* pid of the process actually waiting */
	LOCKMODE	mode;
	TimestampTz wait_start;		/* 0 if not known yet */
	int			queue_pos;		/* position in the wait queue, PG_INT32_MAX if
								 * unknown */
	MtNode	   *node;			/* its session's node in the graph */
} MtRequest;

/* One (waiting request, blocker) pair. */
typedef struct MtWaitEdge
{
	int			request;		/* index into the request array */
	MtHolder	blocker;
	bool		hard;			/* holds a conflicting lock (else queued) */
	LOCKMODE	blocker_mode;	/* mode held (hard) or awaited (soft) */
	MtNode	   *blocker_node;
} MtWaitEdge;

/* The whole analysis of one lock manager snapshot. */
typedef struct MtLockWaits
{
	struct MtLockStatus *status;
	LockData   *data;			/* status->data */
	TimestampTz taken_at;
	MtRequest  *requests;
	int			nrequests;
	MtWaitEdge *edges;
	int			nedges;
	int			maxedges;
	HTAB	   *nodes;
} MtLockWaits;

/* Lock mode names, in LOCKMODE order, as SQL's LOCK TABLE spells them. */
static const char *const mt_mode_sql_names[] = {
	NULL,
	"ACCESS SHARE",
	"ROW SHARE",
	"ROW EXCLUSIVE",
	"SHARE UPDATE EXCLUSIVE",
	"SHARE",
	"SHARE ROW EXCLUSIVE",
	"EXCLUSIVE",
	"ACCESS EXCLUSIVE"
};

#define MT_NUM_MODES	8


void
mt_locks_init(void)
{
}

/* ----------------------------------------------------------------
 * Small helpers
 * ----------------------------------------------------------------
 */

/* The lock group leader's pid of our own session. */
static int
my_leader_pid(void)
{
	if (MyProc != NULL && MyProc->lockGroupLeader != NULL)
		return MyProc->lockGroupLeader->pid;
	return MyProcPid;
}

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
 * GetLockStatusData() gives the lock group leader of the locks in the shared
 * lock table, but names each process its own leader for its fast-path
 * locks: a parallel worker's ACCESS SHARE on the tables it scans would show
 * as a session of its own.  Set leaderPid of those from the processes'
 * lockGroupLeader.  (Read without the leader's partition lock, the way
 * pg_stat_activity reads leader_pid: a worker starting or ending meanwhile
 * may be seen either way.)
 */
static void
fold_fastpath_workers(LockData *data)
{
	int		   *worker = NULL;
	int		   *leader = NULL;
	int			nworkers = 0;
	int			i;
	int			j;

	LWLockAcquire(ProcArrayLock, LW_SHARED);
	for (i = 0; i < (int) ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		PGPROC	   *group = proc->lockGroupLeader;
		int			pid = proc->pid;

		if (pid == 0 || group == NULL || group == proc || group->pid == 0)
			continue;
		if (worker == NULL)
		{
			worker = palloc(sizeof(int) * ProcGlobal->allProcCount);
			leader = palloc(sizeof(int) * ProcGlobal->allProcCount);
		}
		worker[nworkers] = pid;
		leader[nworkers] = group->pid;
		nworkers++;
	}
	LWLockRelease(ProcArrayLock);

	if (nworkers == 0)
		return;
	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];

		if (!inst->fastpath || inst->leaderPid != inst->pid)
			continue;
		for (j = 0; j < nworkers; j++)
		{
			if (worker[j] == inst->pid)
			{
				inst->leaderPid = leader[j];
				break;
			}
		}
	}
	pfree(worker);
	pfree(leader);
}

/*
 * Read the lock manager: GetLockStatusData(), with parallel workers' fast-
 * path locks given their leader, plus the xids of the prepared transactions
 * found in it.
 */
static MtLockStatus *
read_lock_status(void)
{
	MtLockStatus *status = palloc0(sizeof(MtLockStatus));
	LockData   *data = GetLockStatusData();
	int			i;
	int			j;

	fold_fastpath_workers(data);
	status->data = data;
	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];
		TransactionId xid;

		if (inst->pid != 0 ||
			inst->locktag.locktag_type != LOCKTAG_TRANSACTION ||
			(inst->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		xid = (TransactionId) inst->locktag.locktag_field1;
		if (status->prepared == NULL)
			status->prepared = palloc(sizeof(MtPrepared) * data->nelements);
		for (j = 0; j < status->nprepared; j++)
		{
			if (status->prepared[j].backend == MT_LOCK_INSTANCE_PROC(inst) &&
				status->prepared[j].lxid == MT_LOCK_INSTANCE_LXID(inst))
				break;
		}
		if (j == status->nprepared)
		{
			status->prepared[j].backend = MT_LOCK_INSTANCE_PROC(inst);
			status->prepared[j].lxid = MT_LOCK_INSTANCE_LXID(inst);
			status->prepared[j].xid = xid;
			status->nprepared++;
		}
		/* subtransactions' xids follow their top transaction's */
		else if (TransactionIdPrecedes(xid, status->prepared[j].xid))
			status->prepared[j].xid = xid;
	}
	return status;
}

/*
 * Free what read_lock_status() allocated: the C entry points are called in
 * loops by the worker and by apply().
 */
static void
free_lock_status(MtLockStatus *status)
{
	if (status->prepared != NULL)
		pfree(status->prepared);
	if (status->data->locks != NULL)
		pfree(status->data->locks);
	pfree(status->data);
	pfree(status);
}

/* Who holds the lock instance: its session, or its prepared transaction. */
static MtHolder
instance_holder(const MtLockStatus *status, const LockInstanceData *inst)
{
	MtHolder	h;

	if (inst->pid == 0)
	{
		int			j;

		/* dummy PGPROC of a prepared transaction */
		h.pid = 0;
		h.xid = InvalidTransactionId;
		for (j = 0; j < status->nprepared; j++)
		{
			if (status->prepared[j].backend == MT_LOCK_INSTANCE_PROC(inst) &&
				status->prepared[j].lxid == MT_LOCK_INSTANCE_LXID(inst))
				h.xid = status->prepared[j].xid;
		}
	}
	else
	{
		h.pid = inst->leaderPid != 0 ? inst->leaderPid : inst->pid;
		h.xid = InvalidTransactionId;
	}
	return h;
}

static int64
holder_key(MtHolder h)
{
	if (h.pid == 0)
		return -((int64) h.xid) - 1;
	return h.pid;
}

/* The conflict mask of mode in the lock method of the given tag. */
static LOCKMASK
conflict_mask(const LOCKTAG *tag, LOCKMODE mode)
{
	LockMethod	method = GetLockTagsMethodTable(tag);

	if (mode <= NoLock || mode > method->numLockModes)
		return 0;
	return method->conflictTab[mode];
}

/* The strongest mode set in mask, NoLock if none. */
static LOCKMODE
strongest_mode(LOCKMASK mask)
{
	LOCKMODE	m;

	for (m = MAX_LOCKMODES - 1; m > NoLock; m--)
		if (mask & LOCKBIT_ON(m))
			return m;
	return NoLock;
}

static int
locktag_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(LOCKTAG));
}

/*
 * Order of instance indexes by lock tag, so that each object is one run
 * (qsort_arg comparator, arg is the LockData).
 */
static int
instance_index_cmp(const void *a, const void *b, void *arg)
{
	const LockData *data = (const LockData *) arg;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			c;

	c = locktag_cmp(&data->locks[ia].locktag,
					&data->locks[ib].locktag);
	if (c != 0)
		return c;
	return (ia > ib) - (ia < ib);
}

static int *
sorted_instances(LockData *data)
{
	int		   *idx = palloc(sizeof(int) * Max(data->nelements, 1));
	int			i;

	for (i = 0; i < data->nelements; i++)
		idx[i] = i;
	qsort_arg(idx, data->nelements, sizeof(int), instance_index_cmp, data);
	return idx;
}

/*
 * The end of the run of instances idx[start..] on the same lock object as
 * idx[start], in the order sorted_instances() gives.
 */
static int
same_object_end(const LockData *data, const int *idx, int start)
{
	int			end = start + 1;

	while (end < data->nelements &&
		   locktag_cmp(&data->locks[idx[end]].locktag,
					   &data->locks[idx[start]].locktag) == 0)
		end++;
	return end;
}

/*
 * xact_start of the session with the given pid, from the transaction's
 * copy of the backend status (callers refresh it first); 0 if unknown.
 */
static TimestampTz
backend_xact_start(int pid)
{
	int			n = pgstat_fetch_stat_numbackends();
	int			i;

	for (i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);

		if (local != NULL && local->backendStatus.st_procpid == pid)
			return local->backendStatus.st_xact_start_timestamp;
	}
	return 0;
}

/* ----------------------------------------------------------------
 * Lock mode names
 * ----------------------------------------------------------------
 */

/* Lower-case letters only: "Access_Exclusive Lock" -> "accessexclusivelock" */
static void
squeeze_name(const char *in, char *out, size_t outlen)
{
	size_t		n = 0;

	for (; *in && n + 1 < outlen; in++)
	{
		unsigned char c = (unsigned char) *in;

		if (isalpha(c))
			out[n++] = (char) tolower(c);
		else if (c == ' ' || c == '_' || c == '-' || c == '\t')
			continue;
		else
		{
			/* anything else makes the name unrecognizable */
			out[0] = '\0';
			return;
		}
	}
	out[n] = '\0';
}

LOCKMODE
mt_lock_mode_from_name(const char *name)
{
	char		given[64];
	int			m;
	StringInfoData valid;

	squeeze_name(name, given, sizeof(given));
	/*
	 * "IN ACCESS EXCLUSIVE MODE", copied from a LOCK TABLE statement: the
	 * words around the mode are optional (no mode name starts with "in"
	 * nor ends with "mode")
	 */
	if (strncmp(given, "in", 2) == 0)
		memmove(given, given + 2, strlen(given + 2) + 1);
	if (strlen(given) > 4 && strcmp(given + strlen(given) - 4, "mode") == 0)
		given[strlen(given) - 4] = '\0';
	/* "ShareLock", "SHARE LOCK": the suffix is optional */
	if (strlen(given) > 4 && strcmp(given + strlen(given) - 4, "lock") == 0)
		given[strlen(given) - 4] = '\0';

	for (m = 1; m <= MT_NUM_MODES; m++)
	{
		char		candidate[64];

		squeeze_name(mt_mode_sql_names[m], candidate, sizeof(candidate));
		if (given[0] != '\0' && strcmp(given, candidate) == 0)
			return (LOCKMODE) m;
	}

	initStringInfo(&valid);
	for (m = 1; m <= MT_NUM_MODES; m++)
		appendStringInfo(&valid, "%s%s", m > 1 ? ", " : "",
						 mt_mode_sql_names[m]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unrecognized lock mode \"%s\"", name),
			 errdetail("Valid lock modes are %s.", valid.data),
			 errhint("Names such as \"AccessExclusiveLock\" or \"access exclusive\" are accepted too.")));
	return NoLock;				/* keep compiler quiet */
}

/*
 * SQL: migration_tools.lock_mode(text): the canonical name of a lock mode,
 * as pg_locks spells it.
 */
PG_FUNCTION_INFO_V1(mt_lock_mode_name);

Datum
mt_lock_mode_name(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LOCKMODE	mode = mt_lock_mode_from_name(name);

	PG_RETURN_TEXT_P(cstring_to_text(GetLockmodeName(DEFAULT_LOCKMETHOD, mode)));
}

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

static const char *
backend_state_name(BackendState state)
{
	switch (state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_DISABLED:
			return "disabled";
#ifdef MT_HAVE_STATE_STARTING
		case STATE_STARTING:
			return "starting";
#endif
		case STATE_UNDEFINED:
			break;
	}
	return NULL;
}

/*
 * Every session of the backend status, by pid.  The transaction's copy of
 * the backend status is dropped first (as pg_stat_clear_snapshot() does),
 * so that the text matches the lock manager read just made, even when the
 * view is read repeatedly in one transaction.
 */
static HTAB *
read_activity(void)
{
	HASHCTL		ctl;
	HTAB	   *act;
	int			n;
	int			i;
	bool		all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int);
	ctl.entrysize = sizeof(MtActivity);
	ctl.hcxt = CurrentMemoryContext;
	act = hash_create("migration_tools backend activity", Max(n, 16), &ctl,
					  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	for (i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;
		MtActivity *a;
		bool		found;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid == 0)
			continue;
		a = hash_search(act, &be->st_procpid, HASH_ENTER, &found);
		a->made = false;
		a->userid = be->st_userid;
		a->appname = be->st_appname ? pstrdup(be->st_appname) : NULL;
		a->visible = all_stats || has_privs_of_role(GetUserId(), be->st_userid);
		if (a->visible)
		{
			a->query = be->st_activity_raw ?
				pgstat_clip_activity(be->st_activity_raw) : NULL;
			a->state = backend_state_name(be->st_state);
			a->xact_start = be->st_xact_start_timestamp;
		}
		else
		{
			a->query = "<insufficient privilege>";
			a->state = NULL;
			a->xact_start = 0;
		}
	}
	return act;
}

/*
 * Fill the columns query, role, application name, state, xact_start
 * (whichever have an index >= 0) for the session pid; returns its entry,
 * NULL if the session is gone.
 */
static MtActivity *
put_activity(HTAB *act, int pid, Datum *values, bool *nulls,
			 int query_col, int role_col, int app_col, int state_col,
			 int xact_col)
{
	MtActivity *a = hash_search(act, &pid, HASH_FIND, NULL);

	if (a == NULL)
		return NULL;			/* gone since the lock snapshot */
	if (!a->made)
	{
		char	   *role = NULL;

		if (a->query != NULL)
			a->query_d = CStringGetTextDatum(a->query);
		if (OidIsValid(a->userid))
			role = GetUserNameFromId(a->userid, true);
		a->has_role = (role != NULL);
		if (role != NULL)
			a->role_d = DirectFunctionCall1(namein, CStringGetDatum(role));
		if (a->appname != NULL)
			a->app_d = CStringGetTextDatum(a->appname);
		if (a->state != NULL)
			a->state_d = CStringGetTextDatum(a->state);
		a->made = true;
	}
	if (query_col >= 0 && a->query != NULL)
	{
		values[query_col] = a->query_d;
		nulls[query_col] = false;
	}
	if (role_col >= 0 && a->has_role)
	{
		values[role_col] = a->role_d;
		nulls[role_col] = false;
	}
	if (app_col >= 0 && a->appname != NULL)
	{
		values[app_col] = a->app_d;
		nulls[app_col] = false;
	}
	if (state_col >= 0 && a->state != NULL)
	{
		values[state_col] = a->state_d;
		nulls[state_col] = false;
	}
	if (xact_col >= 0 && a->xact_start != 0)
	{
		values[xact_col] = TimestampTzGetDatum(a->xact_start);
		nulls[xact_col] = false;
	}
	return a;
}

/* ----------------------------------------------------------------
 * Conflicts with a relation lock request
 * ----------------------------------------------------------------
 */

List *
mt_lock_conflicts(Oid dboid, Oid relid, LOCKMODE mode)
{
	MtLockStatus *status;
	LockData   *data;
	LOCKTAG		tag;
	LOCKMASK	conflicts;
	int			me = my_leader_pid();
	List	   *result = NIL;
	int			i;
	ListCell   *lc;

	if (mode <= NoLock || mode > MT_NUM_MODES)
		elog(ERROR, "invalid lock mode %d", mode);

	SET_LOCKTAG_RELATION(tag, dboid, relid);
	conflicts = conflict_mask(&tag, mode);

	status = read_lock_status();
	data = status->data;

	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];
		MtHolder	h;
		int			pass;

		if (locktag_cmp(&inst->locktag, &tag) != 0)
			continue;
		h = instance_holder(status, inst);
		if (h.pid == me)
			continue;

		/* pass 0: what it holds; pass 1: what it waits for */
		for (pass = 0; pass < 2; pass++)
		{
			LOCKMODE	m;
			MtLockConflict *found = NULL;

			if (pass == 0)
				m = strongest_mode(inst->holdMask & conflicts);
			else
				m = (inst->waitLockMode != NoLock &&
					 (conflicts & LOCKBIT_ON(inst->waitLockMode))) ?
					inst->waitLockMode : NoLock;
			if (m == NoLock)
				continue;

			/* fold the processes of one lock group into one entry */
			foreach(lc, result)
			{
				MtLockConflict *c = (MtLockConflict *) lfirst(lc);

				if (c->granted == (pass == 0) && c->pid == h.pid &&
					c->prepared_xid == h.xid)
				{
					found = c;
					break;
				}
			}
			if (found == NULL)
			{
				found = palloc0(sizeof(MtLockConflict));
				found->pid = h.pid;
				found->granted = (pass == 0);
				found->mode = m;
				found->prepared = (h.pid == 0);
				found->prepared_xid = h.xid;
				result = lappend(result, found);
			}
			else if (m > found->mode)
				found->mode = m;
		}
	}

	free_lock_status(status);

	/*
	 * The backend status is copied once per transaction; callers poll this
	 * function within one transaction, and need the sessions of now.
	 */
	if (result != NIL)
		pgstat_clear_backend_activity_snapshot();
	foreach(lc, result)
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);

		c->xact_start = c->prepared ? 0 : backend_xact_start(c->pid);
	}
	return result;
}

#define MT_CONFLICT_COLS	12

/*
 * SQL: migration_tools._lock_conflicts(relation oid, mode text): the C part
 * of lock_conflicts(), with what pg_stat_activity shows of each session;
 * the SQL function adds the gids of prepared transactions.
 */
PG_FUNCTION_INFO_V1(mt_lock_conflicts_srf);

Datum
mt_lock_conflicts_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	char	   *modename = text_to_cstring(PG_GETARG_TEXT_PP(1));
	LOCKMODE	mode;
	HeapTuple	tuple;
	bool		shared;
	List	   *conflicts;
	ListCell   *lc;
	HTAB	   *act;

	mode = mt_lock_mode_from_name(modename);

	/* a syscache lookup: takes no lock on the relation */
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	shared = ((Form_pg_class) GETSTRUCT(tuple))->relisshared;
	ReleaseSysCache(tuple);

	mt_init_materialized_srf(fcinfo);

	conflicts = mt_lock_conflicts(shared ? InvalidOid : MyDatabaseId,
								  relid, mode);
	act = read_activity();
	foreach(lc, conflicts)
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);
		Datum		values[MT_CONFLICT_COLS];
		bool		nulls[MT_CONFLICT_COLS];

		memset(values, 0, sizeof(values));
		memset(nulls, true, sizeof(nulls));
		if (!c->prepared)
		{
			values[0] = Int32GetDatum(c->pid);
			nulls[0] = false;
		}
		values[1] = BoolGetDatum(c->granted);
		values[2] = CStringGetTextDatum(GetLockmodeName(DEFAULT_LOCKMETHOD,
														c->mode));
		nulls[1] = nulls[2] = false;
		if (c->xact_start != 0)
		{
			values[3] = TimestampTzGetDatum(c->xact_start);
			nulls[3] = false;
		}
		values[4] = BoolGetDatum(c->prepared);
		nulls[4] = false;
		if (c->prepared)
		{
			values[5] = TransactionIdGetDatum(c->prepared_xid);
			nulls[5] = false;
		}
		else
		{
			MtActivity *a = put_activity(act, c->pid, values, nulls,
										 6, 7, 8, 9, -1);

			/* the wait event, to the same roles as the query */
			if (a != NULL && a->visible)
			{
				PGPROC	   *proc = BackendPidGetProc(c->pid);

				if (proc != NULL)
				{
					uint32		info = *((volatile uint32 *) &proc->wait_event_info);
					const char *type = pgstat_get_wait_event_type(info);
					const char *event = pgstat_get_wait_event(info);

					if (type != NULL)
					{
						values[10] = CStringGetTextDatum(type);
						nulls[10] = false;
					}
					if (event != NULL)
					{
						values[11] = CStringGetTextDatum(event);
						nulls[11] = false;
					}
				}
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
	}
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * Waiters of one session
 * ----------------------------------------------------------------
 */

int
mt_lock_waiters_of(int pid, double *longest_wait_ms)
{
	MtLockStatus *status = read_lock_status();
	LockData   *data = status->data;
	TimestampTz now = GetCurrentTimestamp();
	int		   *idx = sorted_instances(data);
	TimestampTz oldest = 0;
	List	   *waiters = NIL;
	int			start;
	int			count;

	if (longest_wait_ms)
		*longest_wait_ms = 0;

	start = 0;
	while (start < data->nelements)
	{
		int			end = same_object_end(data, idx, start);
		LOCKMASK	held = 0;
		int			i;

		/* what the session (all its processes) holds on this object */
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &data->locks[idx[i]];

			if (inst->pid != 0 && instance_holder(status, inst).pid == pid)
				held |= inst->holdMask;
		}

		if (held != 0)
		{
			for (i = start; i < end; i++)
			{
				LockInstanceData *inst = &data->locks[idx[i]];
				MtHolder	w = instance_holder(status, inst);

				if (inst->waitLockMode == NoLock || w.pid == pid)
					continue;
				if ((conflict_mask(&inst->locktag, inst->waitLockMode) & held) == 0)
					continue;
				waiters = list_append_unique_int(waiters, w.pid);
				if (inst->waitStart != 0 &&
					(oldest == 0 || inst->waitStart < oldest))
					oldest = inst->waitStart;
			}
		}
		start = end;
		CHECK_FOR_INTERRUPTS();
	}

	count = list_length(waiters);
	if (longest_wait_ms && oldest != 0 && now > oldest)
		*longest_wait_ms = (double) (now - oldest) / 1000.0;

	list_free(waiters);
	pfree(idx);
	free_lock_status(status);
	return count;
}

/*
 * SQL: migration_tools.lock_waiters_of(pid): how many sessions wait right
 * now on locks the session holds, and the longest of their waits so far.
 */
PG_FUNCTION_INFO_V1(mt_lock_waiters_of_sql);

Datum
mt_lock_waiters_of_sql(PG_FUNCTION_ARGS)
{
	int			pid = PG_GETARG_INT32(0);
	double		longest_ms;
	int			n;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	n = mt_lock_waiters_of(pid, &longest_ms);
	values[0] = Int32GetDatum(n);
	if (n == 0)
		nulls[1] = true;
	else
		values[1] = DirectFunctionCall7(make_interval,
										Int32GetDatum(0), Int32GetDatum(0),
										Int32GetDatum(0), Int32GetDatum(0),
										Int32GetDatum(0), Int32GetDatum(0),
										Float8GetDatum(longest_ms / 1000.0));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ----------------------------------------------------------------
 * Who waits for whom
 * ----------------------------------------------------------------
 */

/* The node of the waits-for graph for a holder, created if need be. */
static MtNode *
graph_node(HTAB *nodes, MtHolder h)
{
	int64		key = holder_key(h);
	bool		found;
	MtNode	   *n = hash_search(nodes, &key, HASH_ENTER, &found);

	if (!found)
	{
		n->holder = h;
		n->waits = false;
		n->blocks = false;
		n->level = -1;
		n->root = 0;
	}
	return n;
}

/* Add a (request, blocker) pair, or strengthen the one already there. */
static void
add_edge(MtLockWaits *w, int first_edge, int last_edge, int request,
		 MtNode *blocker, bool hard, LOCKMODE mode)
{
	int			i;
	MtWaitEdge *e;

	/*
	 * The edges of one request are contiguous, from first_edge on; only
	 * those before last_edge (-1: all) can have this blocker already.
	 */
	if (last_edge < 0)
		last_edge = w->nedges;
	for (i = first_edge; i < last_edge; i++)
	{
		e = &w->edges[i];
		if (e->blocker_node == blocker)
		{
			/* holding a conflicting lock wins over being queued ahead */
			if (hard && !e->hard)
			{
				e->hard = true;
				e->blocker_mode = mode;
			}
			else if (hard == e->hard && mode > e->blocker_mode)
				e->blocker_mode = mode;
			return;
		}
	}

	if (w->nedges >= w->maxedges)
	{
		w->maxedges *= 2;
		w->edges = repalloc_huge(w->edges, sizeof(MtWaitEdge) * w->maxedges);
	}
	e = &w->edges[w->nedges++];
	e->request = request;
	e->blocker = blocker->holder;
	e->hard = hard;
	e->blocker_mode = mode;
	e->blocker_node = blocker;
	blocker->blocks = true;
}

/* Position in a lock's wait queue of a process, by pid. */
typedef struct MtQueuePos
{
	int			pid;			/* hash key */
	int			pos;			/* its first position in the queue */
} MtQueuePos;

/*
 * Set queue_pos of the requests [first, last) awaiting one lock object,
 * whose instances are idx[start..end); inst_req[i - start] is the request
 * of instance idx[i], or -1 if it waits for nothing.
 *
 * GetBlockerStatusData(pid) lists, in order, the processes queued ahead of
 * pid on the lock it awaits.  Asked for the last process of the queue, it
 * gives the whole queue: we ask for the request that started waiting last,
 * and only ask again if some waiters of our snapshot are missing from the
 * answer (the queue changed in between, or was rearranged to avoid a
 * deadlock).  Each call reads its own consistent snapshot of that lock.
 */
static void
fetch_queue_order(MtLockWaits *w, const int *idx, int start, int end,
				  const int *inst_req, int first, int last,
				  MemoryContext tmpcxt)
{
	const LOCKTAG *tag = &w->data->locks[idx[start]].locktag;
	HTAB	   *pos = NULL;		/* the longest queue seen, by pid */
	int			qlen = 0;
	bool	   *tried = palloc0(sizeof(bool) * (last - first));
	int			r;
	int			i;

	for (;;)
	{
		int			cand = -1;
		MemoryContext old;
		BlockedProcsData *bs;
		int			p;

		/* the untried request missing from the queue that waited least */
		for (r = first; r < last; r++)
		{
			MtRequest  *req = &w->requests[r];

			if (tried[r - first])
				continue;
			if (pos != NULL &&
				hash_search(pos, &req->rawpid, HASH_FIND, NULL) != NULL)
				continue;
			if (cand < 0 ||
				req->wait_start == 0 ||
				(w->requests[cand].wait_start != 0 &&
				 req->wait_start > w->requests[cand].wait_start))
				cand = r;
		}
		if (cand < 0)
			break;
		tried[cand - first] = true;

		old = MemoryContextSwitchTo(tmpcxt);
		bs = GetBlockerStatusData(w->requests[cand].rawpid);
		MemoryContextSwitchTo(old);

		for (p = 0; p < bs->nprocs; p++)
		{
			BlockedProcData *bp = &bs->procs[p];
			HASHCTL		ctl;
			int			k;

			if (bp->pid != w->requests[cand].rawpid || bp->num_locks <= 0)
				continue;
			if (locktag_cmp(&bs->locks[bp->first_lock].locktag, tag) != 0)
				continue;		/* it waits for something else by now */
			if (bp->num_waiters + 1 <= qlen)
				continue;

			/* a longer queue than any seen: it replaces the positions */
			if (pos != NULL)
				hash_destroy(pos);
			qlen = bp->num_waiters + 1;
			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = sizeof(int);
			ctl.entrysize = sizeof(MtQueuePos);
			ctl.hcxt = CurrentMemoryContext;
			pos = hash_create("migration_tools lock queue positions", qlen,
							  &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			for (k = 0; k < qlen; k++)
			{
				int			qpid = (k < bp->num_waiters) ?
					bs->waiter_pids[bp->first_waiter + k] : bp->pid;
				bool		found;
				MtQueuePos *entry = hash_search(pos, &qpid, HASH_ENTER, &found);

				if (!found)
					entry->pos = k;
			}
		}
		MemoryContextReset(tmpcxt);
		CHECK_FOR_INTERRUPTS();
	}

	/* a request's position is that of the first of its processes */
	if (pos != NULL)
	{
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &w->data->locks[idx[i]];
			MtQueuePos *entry;

			r = inst_req[i - start];
			if (r < 0)
				continue;
			entry = hash_search(pos, &inst->pid, HASH_FIND, NULL);
			if (entry != NULL && entry->pos < w->requests[r].queue_pos)
				w->requests[r].queue_pos = entry->pos;
		}
		hash_destroy(pos);
	}
	pfree(tried);
}

/*
 * Depth of every node: the length of the shortest chain of waits from it
 * to a root blocker (a session that blocks others and waits for nothing),
 * and which root that is (the smallest key on ties).  A breadth-first walk
 * from the roots, one level per pass over the edges: nodes in a cycle that
 * leads to no root keep level -1.
 */
static void
compute_chains(MtLockWaits *w)
{
	HASH_SEQ_STATUS seq;
	MtNode	   *n;
	int			level;
	int			i;

	hash_seq_init(&seq, w->nodes);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		if (!n->waits)
		{
			n->level = 0;
			n->root = n->key;
		}
	}

	for (level = 0;; level++)
	{
		bool		assigned = false;

		for (i = 0; i < w->nedges; i++)
		{
			MtWaitEdge *e = &w->edges[i];
			MtNode	   *b = e->blocker_node;
			MtNode	   *wn = w->requests[e->request].node;

			if (b->level != level)
				continue;
			if (wn->level == -1)
			{
				wn->level = level + 1;
				wn->root = b->root;
				assigned = true;
			}
			else if (wn->level == level + 1 && b->root < wn->root)
				wn->root = b->root;
		}
		if (!assigned)
			break;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Read the lock manager once and work out every (waiting request, blocker)
 * pair, with the chains they form.
 */
static MtLockWaits *
collect_lock_waits(void)
{
	MtLockWaits *w = palloc0(sizeof(MtLockWaits));
	MemoryContext tmpcxt;
	HASHCTL		ctl;
	int		   *idx;
	int		   *inst_req;
	int		   *holders;
	MtNode	  **holder_nodes;
	int			start;

	w->status = read_lock_status();
	w->data = w->status->data;
	w->taken_at = GetCurrentTimestamp();
	idx = sorted_instances(w->data);
	w->requests = palloc(sizeof(MtRequest) * Max(w->data->nelements, 1));
	w->maxedges = 64;
	w->edges = palloc(sizeof(MtWaitEdge) * w->maxedges);
	inst_req = palloc(sizeof(int) * Max(w->data->nelements, 1));
	holders = palloc(sizeof(int) * Max(w->data->nelements, 1));
	holder_nodes = palloc(sizeof(MtNode *) * Max(w->data->nelements, 1));

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(MtNode);
	ctl.hcxt = CurrentMemoryContext;
	w->nodes = hash_create("migration_tools lock waits graph", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	tmpcxt = AllocSetContextCreate(CurrentMemoryContext,
								   "migration_tools lock queue",
								   ALLOCSET_DEFAULT_SIZES);

	start = 0;
	while (start < w->data->nelements)
	{
		LOCKTAG    *tag = &w->data->locks[idx[start]].locktag;
		LockMethod	method = GetLockTagsMethodTable(tag);
		int			end = same_object_end(w->data, idx, start);
		int			first = w->nrequests;
		int			nholders = 0;
		int			nwanted[MAX_LOCKMODES];
		int			r;
		int			q;
		int			i;
		LOCKMODE	m1;
		LOCKMODE	m2;
		bool		need_queue = false;
		bool		repeated_pids = false;

		/*
		 * The waiting requests on this object, one per session and mode, how
		 * many want each mode, and the instances that hold something.
		 */
		memset(nwanted, 0, sizeof(nwanted));
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &w->data->locks[idx[i]];
			MtHolder	h;
			MtRequest  *req = NULL;

			inst_req[i - start] = -1;
			if (inst->holdMask != 0)
				holders[nholders++] = idx[i];
			if (inst->waitLockMode == NoLock || inst->pid == 0)
				continue;
			h = instance_holder(w->status, inst);
			for (r = first; r < w->nrequests; r++)
			{
				if (w->requests[r].pid != h.pid)
					continue;
				if (w->requests[r].mode == inst->waitLockMode)
				{
					req = &w->requests[r];
					inst_req[i - start] = r;
					break;
				}
				/* a lock group waiting for two modes */
				repeated_pids = true;
			}
			if (req == NULL)
			{
				inst_req[i - start] = w->nrequests;
				req = &w->requests[w->nrequests++];
				req->inst = idx[i];
				req->pid = h.pid;
				req->rawpid = inst->pid;
				req->mode = inst->waitLockMode;
				req->wait_start = inst->waitStart;
				req->queue_pos = PG_INT32_MAX;
				req->node = graph_node(w->nodes, h);
				req->node->waits = true;
				if (req->mode > NoLock && req->mode <= method->numLockModes)
					nwanted[req->mode]++;
			}
			else if (inst->waitStart != 0 &&
					 (req->wait_start == 0 || inst->waitStart < req->wait_start))
				req->wait_start = inst->waitStart;
		}
		if (w->nrequests == first)
		{
			start = end;
			continue;
		}

		/* the sessions holding something here, as graph nodes */
		for (i = 0; i < nholders; i++)
			holder_nodes[i] = graph_node(w->nodes,
										 instance_holder(w->status,
														 &w->data->locks[holders[i]]));

		/*
		 * Queue order matters only if two requests conflict: two for the same
		 * self-conflicting mode (necessarily of two sessions), or for two
		 * conflicting modes (of one lock group, rarely: asking costs a call,
		 * the edges below still skip the session itself).
		 */
		for (m1 = 1; m1 <= method->numLockModes && !need_queue; m1++)
		{
			if (nwanted[m1] == 0)
				continue;
			for (m2 = m1; m2 <= method->numLockModes && !need_queue; m2++)
			{
				if (nwanted[m2] == 0 || (m1 == m2 && nwanted[m1] < 2))
					continue;
				if (method->conflictTab[m1] & LOCKBIT_ON(m2))
					need_queue = true;
			}
		}
		if (need_queue)
			fetch_queue_order(w, idx, start, end, inst_req, first,
							  w->nrequests, tmpcxt);

		for (r = first; r < w->nrequests; r++)
		{
			MtRequest  *req = &w->requests[r];
			LOCKMASK	conflicts = conflict_mask(tag, req->mode);
			int			first_edge = w->nedges;
			int			hard_end;

			/* hard: sessions holding a conflicting mode */
			for (i = 0; i < nholders; i++)
			{
				LockInstanceData *inst = &w->data->locks[holders[i]];
				LOCKMODE	m;

				if (holder_nodes[i] == req->node)
					continue;
				m = strongest_mode(inst->holdMask & conflicts);
				if (m != NoLock)
					add_edge(w, first_edge, -1, r, holder_nodes[i], true, m);
			}

			/* soft: sessions queued ahead for a conflicting mode */
			if (!need_queue)
				continue;
			hard_end = w->nedges;
			for (q = first; q < w->nrequests; q++)
			{
				MtRequest  *ahead = &w->requests[q];

				if (ahead->node == req->node ||
					ahead->queue_pos >= req->queue_pos ||
					(conflicts & LOCKBIT_ON(ahead->mode)) == 0)
					continue;

				/*
				 * A session has one request per object unless a lock group
				 * waits for two modes: only then can soft edges repeat.
				 */
				add_edge(w, first_edge, repeated_pids ? -1 : hard_end,
						 r, ahead->node, false, ahead->mode);
			}
		}
		start = end;
		CHECK_FOR_INTERRUPTS();
	}

	MemoryContextDelete(tmpcxt);
	pfree(holder_nodes);
	pfree(holders);
	pfree(inst_req);
	pfree(idx);
	compute_chains(w);
	return w;
}

/*
 * An edge as one bigint: its blocker's node key (pid, or -(xid + 1) for a
 * prepared transaction) times 32, plus 16 when hard, plus the blocker's
 * mode (1 to 8).  The lock_waits view decodes it: key = code >> 5, kind
 * from bit 16, mode = code & 15.  One array of these per request is all
 * the view has to unnest, which keeps the cost of each (waiter, blocker)
 * row low when there are tens of thousands.
 */
static int64
edge_code(const MtWaitEdge *e)
{
	return holder_key(e->blocker) * 32 + (e->hard ? 16 : 0) +
		(int64) e->blocker_mode;
}

/* The columns of _lock_waits() */
enum
{
	LW_BLOCKER_KEY,
	LW_PID,
	LW_PREPARED_XID,
	LW_QUERY,
	LW_ROLE,
	LW_APPNAME,
	LW_STATE,
	LW_XACT_START,
	LW_DEPTH,
	LW_ROOT_PID,
	LW_ROOT_PREPARED_XID,
	LW_WAIT_STARTED,
	LW_WAIT_DURATION,
	LW_LOCKTYPE,
	LW_MODE,
	LW_DATABASE,
	LW_RELATION_OID,
	LW_RELATION,
	LW_PAGE,
	LW_TUPLE,
	LW_VIRTUALXID,
	LW_TRANSACTIONID,
	LW_CLASSID,
	LW_OBJID,
	LW_OBJSUBID,
	LW_BLOCKERS,
	LW_NUM_COLS
};

/* The lock object's columns of a request row, decoded as pg_locks does. */
static void
put_locktag(const LOCKTAG *tag, Datum *values, bool *nulls)
{
	bool		has_db = false;
	bool		has_rel = false;

	if (tag->locktag_type <= LOCKTAG_LAST_TYPE)
		values[LW_LOCKTYPE] = CStringGetTextDatum(LockTagTypeNames[tag->locktag_type]);
	else
		values[LW_LOCKTYPE] = CStringGetTextDatum(psprintf("unknown %d",
														   (int) tag->locktag_type));
	nulls[LW_LOCKTYPE] = false;

	switch ((LockTagType) tag->locktag_type)
	{
		case LOCKTAG_TUPLE:
			values[LW_TUPLE] = Int16GetDatum(tag->locktag_field4);
			nulls[LW_TUPLE] = false;
			/* FALLTHROUGH */
		case LOCKTAG_PAGE:
			values[LW_PAGE] = Int32GetDatum(tag->locktag_field3);
			nulls[LW_PAGE] = false;
			/* FALLTHROUGH */
		case LOCKTAG_RELATION:
		case LOCKTAG_RELATION_EXTEND:
			has_rel = true;
			/* FALLTHROUGH */
		case LOCKTAG_DATABASE_FROZEN_IDS:
			has_db = true;
			break;
		case LOCKTAG_TRANSACTION:
			values[LW_TRANSACTIONID] = TransactionIdGetDatum(tag->locktag_field1);
			nulls[LW_TRANSACTIONID] = false;
			break;
		case LOCKTAG_VIRTUALTRANSACTION:
			values[LW_VIRTUALXID] = CStringGetTextDatum(psprintf("%d/%u",
																 (int) tag->locktag_field1,
																 tag->locktag_field2));
			nulls[LW_VIRTUALXID] = false;
			break;
		case LOCKTAG_SPECULATIVE_TOKEN:
			values[LW_TRANSACTIONID] = TransactionIdGetDatum(tag->locktag_field1);
			nulls[LW_TRANSACTIONID] = false;
			values[LW_OBJID] = ObjectIdGetDatum(tag->locktag_field2);
			nulls[LW_OBJID] = false;
			break;
		case LOCKTAG_OBJECT:
		case LOCKTAG_USERLOCK:
		case LOCKTAG_ADVISORY:
		default:
			has_db = true;
			values[LW_CLASSID] = ObjectIdGetDatum(tag->locktag_field2);
			values[LW_OBJID] = ObjectIdGetDatum(tag->locktag_field3);
			values[LW_OBJSUBID] = Int16GetDatum(tag->locktag_field4);
			nulls[LW_CLASSID] = nulls[LW_OBJID] = nulls[LW_OBJSUBID] = false;
			break;
	}
	if (has_db)
	{
		values[LW_DATABASE] = ObjectIdGetDatum(tag->locktag_field1);
		nulls[LW_DATABASE] = false;
	}
	if (has_rel)
	{
		values[LW_RELATION_OID] = ObjectIdGetDatum(tag->locktag_field2);
		nulls[LW_RELATION_OID] = false;
		/* regclass only resolves names in this database's catalogs */
		if (tag->locktag_field1 == MyDatabaseId ||
			tag->locktag_field1 == InvalidOid)
		{
			values[LW_RELATION] = ObjectIdGetDatum(tag->locktag_field2);
			nulls[LW_RELATION] = false;
		}
	}
}

/*
 * SQL: migration_tools._lock_waits(): from one read of the lock manager and
 * of the backend status, two kinds of rows:
 *
 * - one per waiting lock request (blocker_key NULL): the waiting session
 *   (pid, query, role, application name), the wait and the lock object,
 *   and its blockers as an array of edge codes (see edge_code());
 * - one per blocker (blocker_key set, as in the edge codes): its pid or
 *   prepared xid, what pg_stat_activity shows of it, and the chain it
 *   leads to (depth of a wait on it, root blocker).
 *
 * The lock_waits view unnests the codes into one row per (request,
 * blocker) and joins them to the blockers.  A function in FROM fills a
 * tuplestore, and N sessions queued for the same exclusive lock make
 * N*(N+1)/2 pairs but only N requests and N + 1 blockers: this keeps what
 * is stored and what is looked up per pair small.
 */
PG_FUNCTION_INFO_V1(mt_lock_waits_srf);

Datum
mt_lock_waits_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MtLockWaits *w;
	HTAB	   *act;
	Datum	   *codes;
	Datum		prepared_d;
	HASH_SEQ_STATUS seq;
	MtNode	   *n;
	int			i;
	int			first;

	mt_init_materialized_srf(fcinfo);
	w = collect_lock_waits();
	if (w->nedges == 0)
		return (Datum) 0;
	act = read_activity();
	codes = palloc(sizeof(Datum) * w->nedges);

	/* the requests; the edges of one request are consecutive */
	for (first = 0; first < w->nedges; first = i)
	{
		MtRequest  *req = &w->requests[w->edges[first].request];
		LockInstanceData *inst = &w->data->locks[req->inst];
		Datum		values[LW_NUM_COLS];
		bool		nulls[LW_NUM_COLS];
		int			nc;

		memset(values, 0, sizeof(values));
		memset(nulls, true, sizeof(nulls));

		values[LW_PID] = Int32GetDatum(req->pid);
		nulls[LW_PID] = false;
		put_activity(act, req->pid, values, nulls,
					 LW_QUERY, LW_ROLE, LW_APPNAME, -1, -1);
		if (req->wait_start != 0)
		{
			values[LW_WAIT_STARTED] = TimestampTzGetDatum(req->wait_start);
			nulls[LW_WAIT_STARTED] = false;
			values[LW_WAIT_DURATION] =
				DirectFunctionCall2(timestamp_mi,
									TimestampTzGetDatum(w->taken_at),
									TimestampTzGetDatum(req->wait_start));
			nulls[LW_WAIT_DURATION] = false;
		}
		values[LW_MODE] = CStringGetTextDatum(GetLockmodeName(inst->locktag.locktag_lockmethodid,
															  req->mode));
		nulls[LW_MODE] = false;
		put_locktag(&inst->locktag, values, nulls);

		for (i = first, nc = 0;
			 i < w->nedges && w->edges[i].request == w->edges[first].request;
			 i++, nc++)
			codes[nc] = Int64GetDatum(edge_code(&w->edges[i]));
		values[LW_BLOCKERS] = PointerGetDatum(construct_array(codes, nc, INT8OID,
															  sizeof(int64),
															  FLOAT8PASSBYVAL,
															  TYPALIGN_DOUBLE));
		nulls[LW_BLOCKERS] = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	/* the blockers */
	prepared_d = CStringGetTextDatum("prepared");
	hash_seq_init(&seq, w->nodes);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[LW_NUM_COLS];
		bool		nulls[LW_NUM_COLS];

		if (!n->blocks)
			continue;
		memset(values, 0, sizeof(values));
		memset(nulls, true, sizeof(nulls));

		values[LW_BLOCKER_KEY] = Int64GetDatum(n->key);
		nulls[LW_BLOCKER_KEY] = false;
		if (n->holder.pid != 0)
		{
			values[LW_PID] = Int32GetDatum(n->holder.pid);
			nulls[LW_PID] = false;
			put_activity(act, n->holder.pid, values, nulls,
						 LW_QUERY, LW_ROLE, LW_APPNAME, LW_STATE,
						 LW_XACT_START);
		}
		else
		{
			values[LW_PREPARED_XID] = TransactionIdGetDatum(n->holder.xid);
			nulls[LW_PREPARED_XID] = false;
			values[LW_STATE] = prepared_d;
			nulls[LW_STATE] = false;
		}
		if (n->level >= 0)
		{
			values[LW_DEPTH] = Int32GetDatum(n->level + 1);
			nulls[LW_DEPTH] = false;
			if (n->root >= 0)
			{
				values[LW_ROOT_PID] = Int32GetDatum((int32) n->root);
				nulls[LW_ROOT_PID] = false;
			}
			else
			{
				values[LW_ROOT_PREPARED_XID] =
					TransactionIdGetDatum((TransactionId) (-(n->root + 1)));
				nulls[LW_ROOT_PREPARED_XID] = false;
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

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
