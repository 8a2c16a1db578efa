/*-------------------------------------------------------------------------
 *
 * locks.c
 *	  One read of the lock manager, shared by the other locks files, and
 *	  the small readers around it.
 *
 * Every lock wait and conflict migration_tools reports starts from one call
 * of GetLockStatusData(), which copies every PROCLOCK of the lock manager
 * (and the fast-path locks) while holding all the lock partition locks: one
 * consistent picture, the same one pg_locks shows.  This file owns that
 * read (mt_read_lock_status()) and what the other files ask of it: who
 * holds a lock instance, the instances ordered by lock object, the modes
 * that conflict with a mode.  It also owns the lock mode names
 * (lock_mode()) and what pg_stat_activity shows of the sessions it names.
 * The users: lock_conflicts.c (who conflicts with one request or one
 * session) and lock_graph.c (who waits for whom, the lock_waits view).
 *
 * Parallel workers are folded into their leader (leaderPid, and for their
 * fast-path locks the process's lockGroupLeader): a session is its lock
 * group.  Prepared transactions hold their locks through a dummy
 * PGPROC with pid 0, which keeps the virtual transaction id of the session
 * that prepared it and holds the lock on the transaction's xid: that is how
 * we tell them apart, and how SQL finds their gid in pg_prepared_xacts.
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

#include "access/transam.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "locks.h"
#include "locks_int.h"
#include "migration_tools.h"

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


/* ----------------------------------------------------------------
 * One read of the lock manager
 * ----------------------------------------------------------------
 */

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
MtLockStatus *
mt_read_lock_status(void)
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
 * Free what mt_read_lock_status() allocated: the C entry points are called
 * in loops by the worker and by apply().
 */
void
mt_free_lock_status(MtLockStatus *status)
{
	if (status->prepared != NULL)
		pfree(status->prepared);
	if (status->data->locks != NULL)
		pfree(status->data->locks);
	pfree(status->data);
	pfree(status);
}

/* Who holds the lock instance: its session, or its prepared transaction. */
MtHolder
mt_instance_holder(const MtLockStatus *status, const LockInstanceData *inst)
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

/* The conflict mask of mode in the lock method of the given tag. */
LOCKMASK
mt_conflict_mask(const LOCKTAG *tag, LOCKMODE mode)
{
	LockMethod	method = GetLockTagsMethodTable(tag);

	if (mode <= NoLock || mode > method->numLockModes)
		return 0;
	return method->conflictTab[mode];
}

/* The strongest mode set in mask, NoLock if none. */
LOCKMODE
mt_strongest_mode(LOCKMASK mask)
{
	LOCKMODE	m;

	for (m = MAX_LOCKMODES - 1; m > NoLock; m--)
		if (mask & LOCKBIT_ON(m))
			return m;
	return NoLock;
}

/* The order of lock objects: memcmp of their tags. */
int
mt_locktag_cmp(const void *a, const void *b)
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

	c = mt_locktag_cmp(&data->locks[ia].locktag,
					   &data->locks[ib].locktag);
	if (c != 0)
		return c;
	return (ia > ib) - (ia < ib);
}

/*
 * The indexes of the lock instances, sorted by lock object (each object one
 * run, see mt_same_object_end()) and, within an object, in snapshot order.
 */
int *
mt_sorted_instances(LockData *data)
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
 * idx[start], in the order mt_sorted_instances() gives.
 */
int
mt_same_object_end(const LockData *data, const int *idx, int start)
{
	int			end = start + 1;

	while (end < data->nelements &&
		   mt_locktag_cmp(&data->locks[idx[end]].locktag,
						  &data->locks[idx[start]].locktag) == 0)
		end++;
	return end;
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

/* ----------------------------------------------------------------
 * What pg_stat_activity shows of the sessions
 * ----------------------------------------------------------------
 */

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
HTAB *
mt_read_activity(void)
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
MtActivity *
mt_put_activity(HTAB *act, int pid, Datum *values, bool *nulls,
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
