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
 * Parallel workers are folded into their leader (leaderPid): a session is
 * its lock group.  Prepared transactions hold their locks through a dummy
 * PGPROC with pid 0, which keeps the virtual transaction id of the session
 * that prepared it and holds the lock on the transaction's xid: that is how
 * we tell them apart, and how SQL finds their gid in pg_prepared_xacts.
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
} MtRequest;

/* Node of the waits-for graph, in a hash table keyed by node key. */
typedef struct MtNode
{
	int64		key;			/* pid, or -(xid + 1) for a prepared xact */
	bool		waits;			/* has an outgoing edge */
	int			level;			/* distance to a root blocker, -1 unknown */
	int64		root;			/* key of that root */
} MtNode;

/* One (waiting request, blocker) pair. */
typedef struct MtWaitEdge
{
	int			request;		/* index into the request array */
	MtHolder	blocker;
	bool		hard;			/* holds a conflicting lock (else queued) */
	LOCKMODE	blocker_mode;	/* mode held (hard) or awaited (soft) */
	MtNode	   *waiter_node;	/* graph nodes, set by compute_chains */
	MtNode	   *blocker_node;
} MtWaitEdge;

/* The whole analysis of one lock manager snapshot. */
typedef struct MtLockWaits
{
	LockData   *data;
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
 * Prepared transactions of the last snapshot read: their dummy PGPROC keeps
 * the virtual transaction id of the session that prepared them, and holds
 * the ExclusiveLock on their xid, which is how SQL finds them in
 * pg_prepared_xacts.
 */
typedef struct MtPrepared
{
	BackendId	backend;
	LocalTransactionId lxid;
	TransactionId xid;
} MtPrepared;

static MtPrepared *mt_prepared = NULL;
static int	mt_nprepared = 0;

/*
 * Read the lock manager: GetLockStatusData(), plus the xids of the prepared
 * transactions found in it.
 */
static LockData *
read_lock_status(void)
{
	LockData   *data = GetLockStatusData();
	int			i;
	int			j;

	mt_prepared = NULL;
	mt_nprepared = 0;
	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];
		TransactionId xid;

		if (inst->pid != 0 ||
			inst->locktag.locktag_type != LOCKTAG_TRANSACTION ||
			(inst->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		xid = (TransactionId) inst->locktag.locktag_field1;
		if (mt_prepared == NULL)
			mt_prepared = palloc(sizeof(MtPrepared) * data->nelements);
		for (j = 0; j < mt_nprepared; j++)
		{
			if (mt_prepared[j].backend == inst->backend &&
				mt_prepared[j].lxid == inst->lxid)
				break;
		}
		if (j == mt_nprepared)
		{
			mt_prepared[j].backend = inst->backend;
			mt_prepared[j].lxid = inst->lxid;
			mt_prepared[j].xid = xid;
			mt_nprepared++;
		}
		/* subtransactions' xids follow their top transaction's */
		else if (TransactionIdPrecedes(xid, mt_prepared[j].xid))
			mt_prepared[j].xid = xid;
	}
	return data;
}

/*
 * Free what read_lock_status() allocated: the C entry points are called in
 * loops by the worker and by apply().
 */
static void
free_lock_status(LockData *data)
{
	if (mt_prepared != NULL)
		pfree(mt_prepared);
	mt_prepared = NULL;
	mt_nprepared = 0;
	if (data->locks != NULL)
		pfree(data->locks);
	pfree(data);
}

/* Who holds the lock instance: its session, or its prepared transaction. */
static MtHolder
instance_holder(const LockInstanceData *inst)
{
	MtHolder	h;

	if (inst->pid == 0)
	{
		int			j;

		/* dummy PGPROC of a prepared transaction */
		h.pid = 0;
		h.xid = InvalidTransactionId;
		for (j = 0; j < mt_nprepared; j++)
		{
			if (mt_prepared[j].backend == inst->backend &&
				mt_prepared[j].lxid == inst->lxid)
				h.xid = mt_prepared[j].xid;
		}
	}
	else
	{
		h.pid = inst->leaderPid != 0 ? inst->leaderPid : inst->pid;
		h.xid = InvalidTransactionId;
	}
	return h;
}

static bool
holder_equal(MtHolder a, MtHolder b)
{
	return a.pid == b.pid && a.xid == b.xid;
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

/* Sort instance indexes by lock tag, so that each object is one run. */
static LockData *sort_data;

static int
instance_index_cmp(const void *a, const void *b)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			c;

	c = locktag_cmp(&sort_data->locks[ia].locktag,
					&sort_data->locks[ib].locktag);
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
	sort_data = data;
	qsort(idx, data->nelements, sizeof(int), instance_index_cmp);
	sort_data = NULL;
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

	data = read_lock_status();

	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];
		MtHolder	h;
		int			pass;

		if (locktag_cmp(&inst->locktag, &tag) != 0)
			continue;
		h = instance_holder(inst);
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

	free_lock_status(data);

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
	LockData   *data = read_lock_status();
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

			if (inst->pid != 0 && instance_holder(inst).pid == pid)
				held |= inst->holdMask;
		}

		if (held != 0)
		{
			for (i = start; i < end; i++)
			{
				LockInstanceData *inst = &data->locks[idx[i]];
				MtHolder	w = instance_holder(inst);

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
	free_lock_status(data);
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

/* Add a (request, blocker) pair, or strengthen the one already there. */
static void
add_edge(MtLockWaits *w, int first_edge, int last_edge, int request,
		 MtHolder blocker, bool hard, LOCKMODE mode)
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
		if (e->request == request && holder_equal(e->blocker, blocker))
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
	e->blocker = blocker;
	e->hard = hard;
	e->blocker_mode = mode;
}

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
fetch_queue_order(MtLockWaits *w, int *idx, int start, int end,
				  const int *inst_req, int first, int last,
				  MemoryContext tmpcxt)
{
	const LOCKTAG *tag = &w->data->locks[idx[start]].locktag;
	int		   *queue = NULL;
	int			qlen = 0;
	bool	   *tried = palloc0(sizeof(bool) * (last - first));
	int			r;
	int			k;

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
			bool		known = false;

			if (tried[r - first])
				continue;
			for (k = 0; k < qlen && !known; k++)
				known = (queue[k] == req->rawpid);
			if (known)
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

			if (bp->pid != w->requests[cand].rawpid || bp->num_locks <= 0)
				continue;
			if (locktag_cmp(&bs->locks[bp->first_lock].locktag, tag) != 0)
				continue;		/* it waits for something else by now */
			if (bp->num_waiters + 1 > qlen)
			{
				if (queue)
					pfree(queue);
				qlen = bp->num_waiters + 1;
				queue = palloc(sizeof(int) * qlen);
				memcpy(queue, &bs->waiter_pids[bp->first_waiter],
					   sizeof(int) * bp->num_waiters);
				queue[qlen - 1] = bp->pid;
			}
		}
		MemoryContextReset(tmpcxt);
		CHECK_FOR_INTERRUPTS();
	}

	/* a request's position is that of the first of its processes */
	if (qlen > 0)
	{
		HASHCTL		ctl;
		HTAB	   *pos;
		int			i;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int);
		ctl.entrysize = sizeof(int) * 2;
		ctl.hcxt = tmpcxt;
		pos = hash_create("migration_tools lock queue positions", qlen, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		for (k = 0; k < qlen; k++)
		{
			bool		found;
			int		   *entry = hash_search(pos, &queue[k], HASH_ENTER, &found);

			if (!found)
				entry[1] = k;
		}
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &w->data->locks[idx[i]];
			int		   *entry;

			r = inst_req[i - start];
			if (r < 0)
				continue;
			entry = hash_search(pos, &inst->pid, HASH_FIND, NULL);
			if (entry != NULL && entry[1] < w->requests[r].queue_pos)
				w->requests[r].queue_pos = entry[1];
		}
		MemoryContextReset(tmpcxt);
	}
	if (queue)
		pfree(queue);
	pfree(tried);
}

/* The node of the waits-for graph for key, created if need be. */
static MtNode *
graph_node(HTAB *nodes, int64 key)
{
	bool		found;
	MtNode	   *n = hash_search(nodes, &key, HASH_ENTER, &found);

	if (!found)
	{
		n->waits = false;
		n->level = -1;
		n->root = 0;
	}
	return n;
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
	HASHCTL		ctl;
	HASH_SEQ_STATUS seq;
	MtNode	   *n;
	int			level;
	int			i;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(MtNode);
	ctl.hcxt = CurrentMemoryContext;
	w->nodes = hash_create("migration_tools lock waits graph",
						   Max(w->nedges, 16), &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	for (i = 0; i < w->nedges; i++)
	{
		MtWaitEdge *e = &w->edges[i];

		e->waiter_node = graph_node(w->nodes, w->requests[e->request].pid);
		e->waiter_node->waits = true;
		e->blocker_node = graph_node(w->nodes, holder_key(e->blocker));
	}

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
			MtNode	   *wn = e->waiter_node;

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
	int		   *idx;
	int			start;

	w->data = read_lock_status();
	w->taken_at = GetCurrentTimestamp();
	idx = sorted_instances(w->data);
	w->requests = palloc(sizeof(MtRequest) * Max(w->data->nelements, 1));
	w->maxedges = 64;
	w->edges = palloc(sizeof(MtWaitEdge) * w->maxedges);

	tmpcxt = AllocSetContextCreate(CurrentMemoryContext,
								   "migration_tools lock queue",
								   ALLOCSET_DEFAULT_SIZES);

	start = 0;
	while (start < w->data->nelements)
	{
		LOCKTAG    *tag = &w->data->locks[idx[start]].locktag;
		int			end = same_object_end(w->data, idx, start);
		int			first = w->nrequests;
		int			r;
		int			q;
		int			i;
		bool		need_queue = false;
		bool		repeated_pids;
		int		   *inst_req;

		/* the waiting requests on this object, one per session and mode */
		inst_req = palloc(sizeof(int) * (end - start));
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &w->data->locks[idx[i]];
			MtHolder	h;
			MtRequest  *req = NULL;

			inst_req[i - start] = -1;
			if (inst->waitLockMode == NoLock || inst->pid == 0)
				continue;
			h = instance_holder(inst);
			for (r = first; r < w->nrequests && req == NULL; r++)
				if (w->requests[r].pid == h.pid &&
					w->requests[r].mode == inst->waitLockMode)
				{
					req = &w->requests[r];
					inst_req[i - start] = r;
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
			}
			else if (inst->waitStart != 0 &&
					 (req->wait_start == 0 || inst->waitStart < req->wait_start))
				req->wait_start = inst->waitStart;
		}
		if (w->nrequests == first)
		{
			pfree(inst_req);
			start = end;
			continue;
		}

		/*
		 * Queue order matters only if two sessions' requests conflict.  (And
		 * note whether a session has two requests here.)
		 */
		repeated_pids = false;
		for (r = first; r < w->nrequests && !(need_queue && repeated_pids); r++)
			for (q = r + 1; q < w->nrequests && !(need_queue && repeated_pids); q++)
			{
				if (w->requests[r].pid == w->requests[q].pid)
					repeated_pids = true;
				else if (conflict_mask(tag, w->requests[r].mode) &
						 LOCKBIT_ON(w->requests[q].mode))
					need_queue = true;
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
			for (i = start; i < end; i++)
			{
				LockInstanceData *inst = &w->data->locks[idx[i]];
				MtHolder	h = instance_holder(inst);
				LOCKMODE	m;

				if (h.pid == req->pid)
					continue;
				m = strongest_mode(inst->holdMask & conflicts);
				if (m != NoLock)
					add_edge(w, first_edge, -1, r, h, true, m);
			}

			/* soft: sessions queued ahead for a conflicting mode */
			if (!need_queue)
				continue;
			hard_end = w->nedges;
			for (q = first; q < w->nrequests; q++)
			{
				MtRequest  *ahead = &w->requests[q];
				MtHolder	h;

				if (ahead->pid == req->pid ||
					ahead->queue_pos >= req->queue_pos ||
					(conflicts & LOCKBIT_ON(ahead->mode)) == 0)
					continue;
				h.pid = ahead->pid;
				h.xid = InvalidTransactionId;
				/*
				 * A session has one request per object unless a lock group
				 * waits for two modes: only then can soft edges repeat.
				 */
				add_edge(w, first_edge, repeated_pids ? -1 : hard_end,
						 r, h, false, ahead->mode);
			}
		}
		pfree(inst_req);
		start = end;
		CHECK_FOR_INTERRUPTS();
	}

	MemoryContextDelete(tmpcxt);
	pfree(idx);
	compute_chains(w);
	return w;
}

#define MT_LOCK_WAITS_COLS	22

/* Element type of an array column, with its storage properties. */
typedef struct MtArrayType
{
	Oid			type;
	int16		typlen;
	bool		typbyval;
	char		typalign;
} MtArrayType;

/* An array of n Datums of the given type, with NULLs where nulls[i]. */
static Datum
make_array(Datum *elems, bool *nulls, int n, const MtArrayType *t)
{
	int			dims[1];
	int			lbs[1];

	dims[0] = n;
	lbs[0] = 1;
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  t->type, t->typlen, t->typbyval,
											  t->typalign));
}

/*
 * SQL: migration_tools._lock_waits(): one row per waiting lock request
 * from one read of the lock manager, with its blockers in parallel arrays
 * (pid, prepared xid, kind, mode, depth, root pid, root prepared xid); the
 * lock_waits view unnests them into one row per (request, blocker) and
 * adds what _lock_sessions() shows of both sessions.
 *
 * (Arrays keep this function's result small: a function in FROM fills a
 * tuplestore, which spills to disk beyond work_mem, and N sessions queued
 * for the same exclusive lock make N*(N+1)/2 pairs but only N requests.)
 */
PG_FUNCTION_INFO_V1(mt_lock_waits_srf);

Datum
mt_lock_waits_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MtLockWaits *w;
	int			i;
	int			first;
	Datum		hard_d;
	Datum		soft_d;
	Datum		mode_names[MAX_LOCKMODES];
	Datum	   *arr[7];
	bool	   *arrnull[7];
	static const Oid arrtype[7] = {INT4OID, XIDOID, TEXTOID, TEXTOID,
	INT4OID, INT4OID, XIDOID};
	MtArrayType types[7];
	int			k;

	mt_init_materialized_srf(fcinfo);
	for (k = 0; k < 7; k++)
	{
		types[k].type = arrtype[k];
		get_typlenbyvalalign(arrtype[k], &types[k].typlen,
							 &types[k].typbyval, &types[k].typalign);
	}
	memset(mode_names, 0, sizeof(mode_names));
	hard_d = CStringGetTextDatum("hard");
	soft_d = CStringGetTextDatum("soft");
	w = collect_lock_waits();

	for (k = 0; k < 7; k++)
	{
		arr[k] = palloc(sizeof(Datum) * Max(w->nedges, 1));
		arrnull[k] = palloc(sizeof(bool) * Max(w->nedges, 1));
	}

	/* the edges of one request are consecutive */
	for (first = 0; first < w->nedges; first = i)
	{
		MtRequest  *req = &w->requests[w->edges[first].request];
		LockInstanceData *inst = &w->data->locks[req->inst];
		const LOCKTAG *tag = &inst->locktag;
		Datum		values[MT_LOCK_WAITS_COLS];
		bool		nulls[MT_LOCK_WAITS_COLS];
		bool		has_db = false;
		bool		has_rel = false;
		int			n;

		memset(values, 0, sizeof(values));
		memset(nulls, true, sizeof(nulls));

		values[0] = Int32GetDatum(req->pid);
		nulls[0] = false;
		if (req->wait_start != 0)
		{
			values[1] = TimestampTzGetDatum(req->wait_start);
			nulls[1] = false;
			values[2] = DirectFunctionCall2(timestamp_mi,
											TimestampTzGetDatum(w->taken_at),
											TimestampTzGetDatum(req->wait_start));
			nulls[2] = false;
		}
		if (tag->locktag_type <= LOCKTAG_LAST_TYPE)
			values[3] = CStringGetTextDatum(LockTagTypeNames[tag->locktag_type]);
		else
			values[3] = CStringGetTextDatum(psprintf("unknown %d",
													 (int) tag->locktag_type));
		nulls[3] = false;
		values[4] = CStringGetTextDatum(GetLockmodeName(tag->locktag_lockmethodid,
														req->mode));
		nulls[4] = false;

		/* the object, decoded as pg_locks does */
		switch ((LockTagType) tag->locktag_type)
		{
			case LOCKTAG_TUPLE:
				values[9] = Int16GetDatum(tag->locktag_field4);
				nulls[9] = false;
				/* FALLTHROUGH */
			case LOCKTAG_PAGE:
				values[8] = Int32GetDatum(tag->locktag_field3);
				nulls[8] = false;
				/* FALLTHROUGH */
			case LOCKTAG_RELATION:
			case LOCKTAG_RELATION_EXTEND:
				has_rel = true;
				/* FALLTHROUGH */
			case LOCKTAG_DATABASE_FROZEN_IDS:
				has_db = true;
				break;
			case LOCKTAG_TRANSACTION:
				values[11] = TransactionIdGetDatum(tag->locktag_field1);
				nulls[11] = false;
				break;
			case LOCKTAG_VIRTUALTRANSACTION:
				values[10] = CStringGetTextDatum(psprintf("%d/%u",
														  (int) tag->locktag_field1,
														  tag->locktag_field2));
				nulls[10] = false;
				break;
			case LOCKTAG_SPECULATIVE_TOKEN:
				values[11] = TransactionIdGetDatum(tag->locktag_field1);
				nulls[11] = false;
				values[13] = ObjectIdGetDatum(tag->locktag_field2);
				nulls[13] = false;
				break;
			case LOCKTAG_OBJECT:
			case LOCKTAG_USERLOCK:
			case LOCKTAG_ADVISORY:
			default:
				has_db = true;
				values[12] = ObjectIdGetDatum(tag->locktag_field2);
				values[13] = ObjectIdGetDatum(tag->locktag_field3);
				values[14] = Int16GetDatum(tag->locktag_field4);
				nulls[12] = nulls[13] = nulls[14] = false;
				break;
		}
		if (has_db)
		{
			values[5] = ObjectIdGetDatum(tag->locktag_field1);
			nulls[5] = false;
		}
		if (has_rel)
		{
			values[6] = ObjectIdGetDatum(tag->locktag_field2);
			nulls[6] = false;
			/* regclass only resolves names in this database's catalogs */
			if (tag->locktag_field1 == MyDatabaseId ||
				tag->locktag_field1 == InvalidOid)
			{
				values[7] = ObjectIdGetDatum(tag->locktag_field2);
				nulls[7] = false;
			}
		}

		/* its blockers, and the chain each one leads to */
		for (i = first, n = 0;
			 i < w->nedges && w->edges[i].request == w->edges[first].request;
			 i++, n++)
		{
			MtWaitEdge *e = &w->edges[i];
			MtNode	   *b = e->blocker_node;

			for (k = 0; k < 7; k++)
				arrnull[k][n] = true;
			if (e->blocker.pid != 0)
			{
				arr[0][n] = Int32GetDatum(e->blocker.pid);
				arrnull[0][n] = false;
			}
			else
			{
				arr[1][n] = TransactionIdGetDatum(e->blocker.xid);
				arrnull[1][n] = false;
			}
			arr[2][n] = e->hard ? hard_d : soft_d;
			arrnull[2][n] = false;
			if (mode_names[e->blocker_mode] == (Datum) 0)
				mode_names[e->blocker_mode] =
					CStringGetTextDatum(GetLockmodeName(DEFAULT_LOCKMETHOD,
														e->blocker_mode));
			arr[3][n] = mode_names[e->blocker_mode];
			arrnull[3][n] = false;
			if (b->level >= 0)
			{
				arr[4][n] = Int32GetDatum(b->level + 1);
				arrnull[4][n] = false;
				if (b->root >= 0)
				{
					arr[5][n] = Int32GetDatum((int32) b->root);
					arrnull[5][n] = false;
				}
				else
				{
					arr[6][n] = TransactionIdGetDatum((TransactionId) (-(b->root + 1)));
					arrnull[6][n] = false;
				}
			}
		}
		for (k = 0; k < 7; k++)
		{
			values[15 + k] = make_array(arr[k], arrnull[k], n, &types[k]);
			nulls[15 + k] = false;
		}

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

#define MT_SESSIONS_COLS	6

/*
 * SQL: migration_tools._lock_sessions(): what pg_stat_activity shows of
 * each session (query, role, application name, state, transaction start),
 * under its visibility rules, read fresh from the backend status.
 */
PG_FUNCTION_INFO_V1(mt_lock_sessions_srf);

Datum
mt_lock_sessions_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HTAB	   *act;
	HASH_SEQ_STATUS seq;
	MtActivity *a;

	mt_init_materialized_srf(fcinfo);
	act = read_activity();

	hash_seq_init(&seq, act);
	while ((a = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[MT_SESSIONS_COLS];
		bool		nulls[MT_SESSIONS_COLS];

		memset(values, 0, sizeof(values));
		memset(nulls, true, sizeof(nulls));
		values[0] = Int32GetDatum(a->pid);
		nulls[0] = false;
		put_activity(act, a->pid, values, nulls, 1, 2, 3, 4, 5);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
