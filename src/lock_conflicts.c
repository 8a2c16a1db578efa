/*-------------------------------------------------------------------------
 *
 * lock_conflicts.c
 *	  Which sessions conflict with one lock request, or with the locks one
 *	  session holds.
 *
 * mt_lock_conflicts() answers what a DDL on a relation would queue behind:
 * the sessions (and prepared transactions) that hold, or already wait for,
 * a mode on the relation that conflicts with the DDL's.  apply() waits
 * while it finds any before each attempt, and names the holder of the
 * history lock when that wait times out; the worker uses it to see a
 * concurrent index build and to name what a timed-out batch waited for;
 * _lock_conflicts() shows it to SQL (lock_conflicts()).
 * mt_lock_waiters_of() answers the other way round:
 * the sessions waiting right now on the locks one session holds, which is
 * how apply() and the worker measure the waits they cause
 * (lock_waiters_of() in SQL).  Both read one snapshot of the lock manager
 * (locks.c).
 *
 * IDENTIFICATION
 *	  src/lock_conflicts.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "lock_conflicts.h"
#include "locks.h"
#include "locks_int.h"
#include "spi_util.h"

/* The lock group leader's pid of our own session. */
static int
my_leader_pid(void)
{
	if (MyProc != NULL && MyProc->lockGroupLeader != NULL)
		return MyProc->lockGroupLeader->pid;
	return MyProcPid;
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
	conflicts = mt_conflict_mask(&tag, mode);

	status = mt_read_lock_status();
	data = status->data;

	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];
		MtHolder	h;
		int			pass;

		if (mt_locktag_cmp(&inst->locktag, &tag) != 0)
			continue;
		h = mt_instance_holder(status, inst);
		if (h.pid == me)
			continue;

		/* pass 0: what it holds; pass 1: what it waits for */
		for (pass = 0; pass < 2; pass++)
		{
			LOCKMODE	m;
			MtLockConflict *found = NULL;

			if (pass == 0)
				m = mt_strongest_mode(inst->holdMask & conflicts);
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

	mt_free_lock_status(status);

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
	act = mt_read_activity();
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
			MtActivity *a = mt_put_activity(act, c->pid, values, nulls,
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
	MtLockStatus *status = mt_read_lock_status();
	LockData   *data = status->data;
	TimestampTz now = GetCurrentTimestamp();
	int		   *idx = mt_sorted_instances(data);
	TimestampTz oldest = 0;
	List	   *waiters = NIL;
	int			start;
	int			count;

	if (longest_wait_ms)
		*longest_wait_ms = 0;

	start = 0;
	while (start < data->nelements)
	{
		int			end = mt_same_object_end(data, idx, start);
		LOCKMASK	held = 0;
		int			i;

		/* what the session (all its processes) holds on this object */
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &data->locks[idx[i]];

			if (inst->pid != 0 && mt_instance_holder(status, inst).pid == pid)
				held |= inst->holdMask;
		}

		if (held != 0)
		{
			for (i = start; i < end; i++)
			{
				LockInstanceData *inst = &data->locks[idx[i]];
				MtHolder	w = mt_instance_holder(status, inst);

				if (inst->waitLockMode == NoLock || w.pid == pid)
					continue;
				if ((mt_conflict_mask(&inst->locktag, inst->waitLockMode) & held) == 0)
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
	mt_free_lock_status(status);
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
