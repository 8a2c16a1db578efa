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
 * PGPROC with pid 0; its lxid is the prepared transaction's xid, which is
 * how we tell them apart and how SQL finds their gid in pg_prepared_xacts.
 *
 * The chains (depth, root blocker) are computed over the waits-for graph
 * by a breadth-first walk from the root blockers, so cycles (a deadlock not
 * yet detected) cannot loop: their members simply get no depth.
 *
 * Relations are never opened nor locked: we report OIDs, and the SQL layer
 * casts them to regclass, whose output is a syscache lookup.
 *
 * IDENTIFICATION
 *	  src/locks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "locks.h"
#include "migration_tools.h"

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
	int			queue_pos;		/* position in the wait queue, INT_MAX if
								 * unknown */
} MtRequest;

/* One (waiting request, blocker) pair. */
typedef struct MtWaitEdge
{
	int			request;		/* index into the request array */
	MtHolder	blocker;
	bool		hard;			/* holds a conflicting lock (else queued) */
	LOCKMODE	blocker_mode;	/* mode held (hard) or awaited (soft) */
} MtWaitEdge;

/* Node of the waits-for graph, in a hash table keyed by node key. */
typedef struct MtNode
{
	int64		key;			/* pid, or -(xid + 1) for a prepared xact */
	bool		waits;			/* has an outgoing edge */
	int			level;			/* distance to a root blocker, -1 unknown */
	int64		root;			/* key of that root */
} MtNode;

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

PG_FUNCTION_INFO_V1(mt_lock_conflicts_srf);
PG_FUNCTION_INFO_V1(mt_lock_mode_name);

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

/* Who holds the lock instance: its session, or its prepared transaction. */
static MtHolder
instance_holder(const LockInstanceData *inst)
{
	MtHolder	h;

	if (inst->pid == 0)
	{
		/* dummy PGPROC of a prepared transaction: lxid is its xid */
		h.pid = 0;
		h.xid = (TransactionId) inst->lxid;
	}
	else
	{
		h.pid = inst->leaderPid != 0 ? inst->leaderPid : inst->pid;
		h.xid = InvalidTransactionId;
	}
	return h;
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
 * xact_start of the session with the given pid, from the backend status
 * (the same snapshot pg_stat_activity reads in this transaction); 0 if
 * unknown.
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
Datum
mt_lock_mode_name(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LOCKMODE	mode = mt_lock_mode_from_name(name);

	PG_RETURN_TEXT_P(cstring_to_text(GetLockmodeName(DEFAULT_LOCKMETHOD, mode)));
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

	data = GetLockStatusData();

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

	foreach(lc, result)
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);

		c->xact_start = c->prepared ? 0 : backend_xact_start(c->pid);
	}
	return result;
}

/*
 * SQL: migration_tools._lock_conflicts(relation oid, mode text): the C part
 * of lock_conflicts(); the SQL function adds what pg_stat_activity shows.
 */
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

	mode = mt_lock_mode_from_name(modename);

	/* a syscache lookup: takes no lock on the relation */
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	shared = ((Form_pg_class) GETSTRUCT(tuple))->relisshared;
	ReleaseSysCache(tuple);

	InitMaterializedSRF(fcinfo, 0);

	conflicts = mt_lock_conflicts(shared ? InvalidOid : MyDatabaseId,
								  relid, mode);
	foreach(lc, conflicts)
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);
		Datum		values[6];
		bool		nulls[6];

		memset(nulls, 0, sizeof(nulls));
		if (c->prepared)
			nulls[0] = true;
		else
			values[0] = Int32GetDatum(c->pid);
		values[1] = BoolGetDatum(c->granted);
		values[2] = CStringGetTextDatum(GetLockmodeName(DEFAULT_LOCKMETHOD,
														c->mode));
		if (c->xact_start == 0)
			nulls[3] = true;
		else
			values[3] = TimestampTzGetDatum(c->xact_start);
		values[4] = BoolGetDatum(c->prepared);
		if (c->prepared)
			values[5] = TransactionIdGetDatum(c->prepared_xid);
		else
			nulls[5] = true;
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
	LockData   *data = GetLockStatusData();
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
		int			end = start + 1;
		LOCKMASK	held = 0;
		int			i;

		while (end < data->nelements &&
			   locktag_cmp(&data->locks[idx[end]].locktag,
						   &data->locks[idx[start]].locktag) == 0)
			end++;

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
	}

	count = list_length(waiters);
	if (longest_wait_ms && oldest != 0 && now > oldest)
		*longest_wait_ms = (double) (now - oldest) / 1000.0;

	list_free(waiters);
	pfree(idx);
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
		values[1] = IntervalPGetDatum(DatumGetIntervalP(
			DirectFunctionCall7(make_interval, Int32GetDatum(0), Int32GetDatum(0),
								Int32GetDatum(0), Int32GetDatum(0),
								Int32GetDatum(0), Int32GetDatum(0),
								Float8GetDatum(longest_ms / 1000.0))));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
