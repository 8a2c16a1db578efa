/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The migration_tools launcher: one background worker per cluster that
 *	  starts per-database workers on demand, and the shared memory they use
 *	  to talk to each other and to ordinary backends.
 *
 * The launcher connects to no database.  It keeps in shared memory a table
 * of the databases that accept connections, each with a "pending" flag
 * meaning "work may be waiting there".  The flag is set by backends when
 * they queue work (mt_request_work), for every database when the launcher
 * starts (after a crash, a restart or a promotion nobody has told it what
 * is pending), and periodically every migration_tools.launcher_naptime as a
 * safety net.  For each pending database, while fewer than
 * migration_tools.max_workers workers run, the launcher starts a worker
 * (worker.c) in that database.  A worker that finds nothing to do exits and
 * reports when it wants to be started again (a job's start_at, a run
 * window), or that the extension is not installed there.
 *
 * The launcher is registered with BgWorkerStart_RecoveryFinished, so nothing
 * runs on a standby; after promotion it starts and finds the jobs that were
 * running on the old primary.  It restarts after a few seconds if it dies or
 * is terminated.
 *
 * Locking protocol: everything in MtSharedState is protected by its LWLock,
 * except launcher_pid which is only written by the launcher and read
 * without the lock to send it SIGUSR1 (a stale value only costs a spurious
 * or lost wake-up, which the periodic sweep repairs).  A worker slot is
 * reserved by the launcher (in_use, a fresh generation), filled in by the
 * worker when it starts (pid), and released by whichever of the two sees
 * the worker gone first; the generation number stops a late worker from
 * claiming a slot that was given to somebody else.
 *
 * IDENTIFICATION
 *	  src/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/partition.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "migration_tools.h"
#include "spi_util.h"

/* Databases the launcher can track; more are served by the periodic sweep. */
#define MT_MAX_DATABASES	512

/* How long to trust "the extension is not installed in that database". */
#define MT_NO_EXTENSION_RECHECK_MS	(10 * 60 * 1000)

#define MT_KIND_LEN			16

typedef struct MtDatabase
{
	Oid			dboid;			/* InvalidOid: entry unused */
	bool		pending;		/* work may be waiting: start a worker */
	TimestampTz next_check;		/* start a worker then even without a nudge */
	int			failures;		/* workers in a row that exited with an error */
} MtDatabase;

typedef struct MtWorkerSlot
{
	bool		in_use;			/* reserved by the launcher */
	uint32		generation;		/* bumped at every reservation */
	pid_t		pid;			/* set by the worker once it runs */
	Oid			dboid;
	char		kind[MT_KIND_LEN];	/* what the worker runs now, "" if idle */
	int64		work_id;
	Oid			relid;
} MtWorkerSlot;

typedef struct MtSharedState
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	int			ndatabases;
	MtDatabase	databases[MT_MAX_DATABASES];
	int			nslots;
	MtWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} MtSharedState;

/* GUCs */
int			mt_max_workers = 2;
static int	mt_launcher_naptime = 60000;

/* longest wait before restarting a database's worker after failures */
#define MT_MAX_FAILURE_BACKOFF_MS (5 * 60 * 1000)

int			mt_worker_slot = -1;

static MtSharedState *MtShared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Launcher-local: the handle of the worker in each slot. */
static BackgroundWorkerHandle **slot_handles = NULL;

/* Backend-local: nudge the launcher when this transaction commits. */
static bool nudge_at_commit = false;
static bool nudge_callback_registered = false;

static Size mt_shmem_size(void);
static void mt_shmem_request(void);
static void mt_shmem_startup(void);
static void launcher_on_exit(int code, Datum arg);
static void launcher_refresh_databases(void);
static void launcher_reap_workers(void);
static long launcher_start_workers(void);
static bool launcher_start_worker(int dbindex);
static MtDatabase *find_database(Oid dboid, bool create);
static void nudge_xact_callback(XactEvent event, void *arg);

/*
 * Define the postmaster-level GUCs, request shared memory and register the
 * launcher.  Called from _PG_init during shared_preload_libraries only.
 */
void
mt_launcher_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("migration_tools.max_workers",
							"Maximum number of migration_tools workers running at once, across all databases.",
							"Work beyond this waits in its queue. Each worker also needs a max_worker_processes slot.",
							&mt_max_workers,
							2, 1, 64,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migration_tools.launcher_naptime",
							"Interval at which the launcher looks for work in every database.",
							"Work queued through migration_tools functions is noticed at once; this sweep is a safety net.",
							&mt_launcher_naptime,
							60000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mt_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mt_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", MT_EXTENSION_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "mt_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migration_tools launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "migration_tools launcher");
	RegisterBackgroundWorker(&worker);
}

static Size
mt_shmem_size(void)
{
	return add_size(offsetof(MtSharedState, slots),
					mul_size(mt_max_workers, sizeof(MtWorkerSlot)));
}

static void
mt_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(mt_shmem_size());
	RequestNamedLWLockTranche(MT_EXTENSION_NAME, 1);
}

static void
mt_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	MtShared = ShmemInitStruct("migration_tools", mt_shmem_size(), &found);
	if (!found)
	{
		memset(MtShared, 0, mt_shmem_size());
		MtShared->lock = &(GetNamedLWLockTranche(MT_EXTENSION_NAME))->lock;
		MtShared->nslots = mt_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Entry point of the launcher.
 */
void
mt_launcher_main(Datum main_arg)
{
	TimestampTz next_sweep = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* Shared catalogs only: the launcher reads pg_database and nothing else. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	slot_handles = MemoryContextAllocZero(TopMemoryContext,
										  sizeof(BackgroundWorkerHandle *) * MtShared->nslots);

	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	MtShared->launcher_pid = MyProcPid;

	/*
	 * Slots reserved by a previous launcher whose worker never started can
	 * never be released by that worker: free them.  Slots with a live pid
	 * belong to workers that outlived the old launcher; they free their slot
	 * themselves when they exit.
	 */
	for (int i = 0; i < MtShared->nslots; i++)
	{
		if (MtShared->slots[i].in_use && MtShared->slots[i].pid == 0)
			MtShared->slots[i].in_use = false;
	}
	LWLockRelease(MtShared->lock);

	before_shmem_exit(launcher_on_exit, (Datum) 0);

	ereport(LOG,
			(errmsg("migration_tools launcher started")));

	for (;;)
	{
		long		timeout;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		launcher_reap_workers();

		now = GetCurrentTimestamp();
		if (now >= next_sweep)
		{
			/*
			 * The first sweep marks every database pending: after a crash or
			 * promotion, work may be waiting that nobody told us about.
			 */
			launcher_refresh_databases();
			next_sweep = TimestampTzPlusMilliseconds(now, mt_launcher_naptime);
		}

		timeout = launcher_start_workers();
		timeout = Min(timeout, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_sweep));
		timeout = Max(timeout, 10);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static void
launcher_on_exit(int code, Datum arg)
{
	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	if (MtShared->launcher_pid == MyProcPid)
		MtShared->launcher_pid = 0;
	LWLockRelease(MtShared->lock);
}

/*
 * Bring the database table in line with pg_database, and mark every
 * database whose next_check time has come as pending.
 */
static void
launcher_refresh_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dboids = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext oldcxt;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	pgstat_report_activity(STATE_RUNNING, "migration_tools: listing databases");

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database pgdb = (Form_pg_database) GETSTRUCT(tup);

		/* skip templates, closed databases and half-dropped ones (-2) */
		if (pgdb->datistemplate || !pgdb->datallowconn || pgdb->datconnlimit == -2)
			continue;
		oldcxt = MemoryContextSwitchTo(cxt);
		dboids = lappend_oid(dboids, pgdb->oid);
		MemoryContextSwitchTo(oldcxt);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);

	/* forget dropped databases */
	for (int i = 0; i < MtShared->ndatabases; i++)
	{
		if (!list_member_oid(dboids, MtShared->databases[i].dboid))
		{
			MtShared->databases[i] = MtShared->databases[MtShared->ndatabases - 1];
			MtShared->ndatabases--;
			i--;
		}
	}

	foreach(lc, dboids)
	{
		MtDatabase *db = find_database(lfirst_oid(lc), true);

		if (db != NULL && db->next_check <= now)
			db->pending = true;
	}
	LWLockRelease(MtShared->lock);

	list_free(dboids);
}

/*
 * Find the entry of a database; with create, add it (pending) if missing.
 * Caller holds the lock exclusively when create is true.  Returns NULL when
 * the table is full; that database is then served by the periodic sweep
 * only... which also needs an entry, so a full table is logged once.
 */
static MtDatabase *
find_database(Oid dboid, bool create)
{
	static bool full_reported = false;
	MtDatabase *db;

	for (int i = 0; i < MtShared->ndatabases; i++)
	{
		if (MtShared->databases[i].dboid == dboid)
			return &MtShared->databases[i];
	}
	if (!create)
		return NULL;
	if (MtShared->ndatabases >= MT_MAX_DATABASES)
	{
		if (!full_reported)
			ereport(WARNING,
					(errmsg("migration_tools serves at most %d databases", MT_MAX_DATABASES),
					 errdetail("Database with OID %u is not served.", dboid)));
		full_reported = true;
		return NULL;
	}
	db = &MtShared->databases[MtShared->ndatabases++];
	db->dboid = dboid;
	db->pending = true;
	db->next_check = 0;
	db->failures = 0;
	return db;
}

/*
 * Free the slots of workers that have exited without doing it themselves
 * (failed to start, or died before attaching).
 */
static void
launcher_reap_workers(void)
{
	for (int i = 0; i < MtShared->nslots; i++)
	{
		pid_t		pid;

		if (slot_handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(slot_handles[i], &pid) != BGWH_STOPPED)
			continue;

		pfree(slot_handles[i]);
		slot_handles[i] = NULL;

		LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
		if (MtShared->slots[i].in_use && MtShared->slots[i].pid == 0)
			MtShared->slots[i].in_use = false;
		LWLockRelease(MtShared->lock);
	}
}

/*
 * Start a worker for each pending database while slots are free.  Returns
 * how long the launcher may sleep before some database becomes due.
 */
static long
launcher_start_workers(void)
{
	static int	next_start = 0;
	TimestampTz now = GetCurrentTimestamp();
	long		timeout = mt_launcher_naptime;
	int			ndb;

	LWLockAcquire(MtShared->lock, LW_SHARED);
	ndb = MtShared->ndatabases;
	LWLockRelease(MtShared->lock);

	/* round robin over databases, so that one busy database cannot starve others */
	for (int n = 0; n < ndb; n++)
	{
		int			i = (next_start + n) % ndb;
		bool		start = false;

		LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
		if (i < MtShared->ndatabases)
		{
			MtDatabase *db = &MtShared->databases[i];

			if (!db->pending && db->next_check != 0 && db->next_check <= now)
				db->pending = true;
			if (db->pending)
				start = true;
			else if (db->next_check > now)
				timeout = Min(timeout, TimestampDifferenceMilliseconds(now, db->next_check));
		}
		LWLockRelease(MtShared->lock);

		if (start && !launcher_start_worker(i))
			break;				/* no free slot: wait for a worker to exit */
		if (start)
			next_start = i + 1;
	}
	return timeout;
}

/*
 * Reserve a slot and start a worker for database number dbindex.  Returns
 * false when no slot (ours or the postmaster's) is free.
 */
static bool
launcher_start_worker(int dbindex)
{
	BackgroundWorker worker;
	MtWorkerArgs args;
	int			slotno = -1;
	MtDatabase *db;

	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < MtShared->nslots; i++)
	{
		if (!MtShared->slots[i].in_use && slot_handles[i] == NULL)
		{
			slotno = i;
			break;
		}
	}
	if (slotno < 0 || dbindex >= MtShared->ndatabases)
	{
		LWLockRelease(MtShared->lock);
		return false;
	}
	db = &MtShared->databases[dbindex];
	db->pending = false;
	db->next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 mt_launcher_naptime);

	MtShared->slots[slotno].in_use = true;
	MtShared->slots[slotno].generation++;
	MtShared->slots[slotno].pid = 0;
	MtShared->slots[slotno].dboid = db->dboid;
	MtShared->slots[slotno].kind[0] = '\0';
	MtShared->slots[slotno].work_id = 0;
	MtShared->slots[slotno].relid = InvalidOid;
	args.dboid = db->dboid;
	args.generation = MtShared->slots[slotno].generation;
	LWLockRelease(MtShared->lock);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", MT_EXTENSION_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "mt_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migration_tools worker %d", slotno);
	snprintf(worker.bgw_type, BGW_MAXLEN, "migration_tools worker");
	worker.bgw_main_arg = Int32GetDatum(slotno);
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	if (!RegisterDynamicBackgroundWorker(&worker, &slot_handles[slotno]))
	{
		/* out of max_worker_processes: give the database back its flag */
		LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
		MtShared->slots[slotno].in_use = false;
		db = find_database(args.dboid, false);
		if (db)
			db->pending = true;
		LWLockRelease(MtShared->lock);
		slot_handles[slotno] = NULL;
		ereport(LOG,
				(errmsg("could not start a migration_tools worker"),
				 errhint("Consider increasing max_worker_processes.")));
		return false;
	}
	return true;
}

/*
 * Called by a worker at start: take the slot the launcher reserved for it.
 * Returns false when the slot was given away meanwhile.
 */
bool
mt_worker_attach_slot(int slotno, Oid dboid, uint32 generation)
{
	MtWorkerSlot *slot;
	bool		ok;

	if (slotno < 0 || slotno >= MtShared->nslots)
		return false;
	slot = &MtShared->slots[slotno];
	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	ok = slot->in_use && slot->generation == generation &&
		slot->dboid == dboid && slot->pid == 0;
	if (ok)
		slot->pid = MyProcPid;
	LWLockRelease(MtShared->lock);
	if (ok)
		mt_worker_slot = slotno;
	return ok;
}

/*
 * Called by a worker when it exits: release its slot and wake the launcher
 * so that it can give the slot to the next database waiting.
 */
void
mt_worker_detach_slot(bool failed)
{
	pid_t		launcher_pid;
	MtDatabase *db;
	int			failures = 0;
	long		delay = 0;

	if (mt_worker_slot < 0)
		return;
	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	if (MtShared->slots[mt_worker_slot].pid == MyProcPid)
	{
		MtShared->slots[mt_worker_slot].pid = 0;
		MtShared->slots[mt_worker_slot].in_use = false;
		MtShared->slots[mt_worker_slot].kind[0] = '\0';
	}

	/*
	 * A worker that fails again and again before it can claim any work (a
	 * damaged extension table, a missing privilege) must not be restarted
	 * in a loop: wait twice as long after each failure in a row, up to
	 * MT_MAX_FAILURE_BACKOFF_MS (or the naptime, if longer).  A worker that
	 * claimed work (mt_worker_set_current) and was then terminated is
	 * restarted as before.  A nudge (new work queued) still starts one.
	 */
	db = find_database(MyDatabaseId, false);
	if (db != NULL && !failed)
		db->failures = 0;
	else if (db != NULL)
	{
		failures = ++db->failures;
		delay = mt_launcher_naptime;
		for (int i = 1; i < failures && delay < MT_MAX_FAILURE_BACKOFF_MS; i++)
			delay *= 2;
		delay = Min(delay, Max(MT_MAX_FAILURE_BACKOFF_MS, mt_launcher_naptime));
		db->next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	}
	launcher_pid = MtShared->launcher_pid;
	LWLockRelease(MtShared->lock);
	if (failures > 1)
		ereport(LOG,
				(errmsg("migration_tools worker for database %u failed %d times in a row",
						MyDatabaseId, failures),
				 errdetail("The next worker starts in %ld ms, or as soon as new work is queued.",
						   delay)));
	mt_worker_slot = -1;
	if (launcher_pid != 0)
		kill(launcher_pid, SIGUSR1);
}

/*
 * Mark that the extension is not installed in this worker's database, so
 * that the launcher stops starting workers there until told otherwise.
 */
void
mt_worker_report_no_extension(void)
{
	mt_worker_report_next_due(TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  MT_NO_EXTENSION_RECHECK_MS));
}

void
mt_worker_report_next_due(TimestampTz when)
{
	MtDatabase *db;

	TimestampTz now = GetCurrentTimestamp();

	/* without anything due, the periodic sweep is the next look */
	if (when == 0)
		when = TimestampTzPlusMilliseconds(now, mt_launcher_naptime);

	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	db = find_database(MyDatabaseId, false);
	if (db != NULL && !db->pending &&
		(db->next_check <= now || when < db->next_check))
		db->next_check = when;
	LWLockRelease(MtShared->lock);
}

void
mt_worker_set_current(const char *kind, int64 id, Oid relid)
{
	MtWorkerSlot *slot;

	if (mt_worker_slot < 0)
		return;
	slot = &MtShared->slots[mt_worker_slot];
	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	if (kind != NULL)
	{
		/* it could claim work: whatever failed before is not failing now */
		MtDatabase *db = find_database(MyDatabaseId, false);

		if (db != NULL)
			db->failures = 0;
	}
	strlcpy(slot->kind, kind ? kind : "", MT_KIND_LEN);
	slot->work_id = id;
	slot->relid = relid;
	LWLockRelease(MtShared->lock);
}

bool
mt_work_is_active(Oid dboid, const char *kind, int64 id)
{
	bool		active = false;

	if (MtShared == NULL)
		return false;
	LWLockAcquire(MtShared->lock, LW_SHARED);
	for (int i = 0; i < MtShared->nslots; i++)
	{
		MtWorkerSlot *slot = &MtShared->slots[i];

		if (slot->in_use && slot->pid != 0 && slot->dboid == dboid &&
			slot->work_id == id && strcmp(slot->kind, kind) == 0)
		{
			active = true;
			break;
		}
	}
	LWLockRelease(MtShared->lock);
	return active;
}

/*
 * Does a job on relation a touch rows of relation b (a != b)?  Only when a
 * is a partitioned table and b one of its partitions, at any depth: a job
 * on a partitioned table updates every partition under it, a job on any
 * other relation runs on that relation only (backfills of plain tables use
 * ONLY, so inheritance children are not theirs).  b_ancestors is
 * get_partition_ancestors(b).
 */
static bool
relation_covers(Oid a, List *b_ancestors)
{
	return list_member_oid(b_ancestors, a) &&
		get_rel_relkind(a) == RELKIND_PARTITIONED_TABLE;
}

/*
 * Is another live worker of database dboid running something on relid, on
 * a partitioned table that relid is a partition of (at any depth), or on a
 * partition of relid (at any depth)?  "One job per table at a time" holds
 * across partition hierarchies: jobs on a partitioned table and on one of
 * its partitions would update the same rows.
 *
 * The caller advertises its own relation first (mt_worker_set_current) and
 * then asks, so that of two workers claiming related relations at the same
 * time at least one sees the other.  Outside a transaction (no catalog
 * access) only the relation itself is compared.
 */
bool
mt_relation_is_busy(Oid dboid, Oid relid)
{
	Oid		   *others;
	int			nothers = 0;
	bool		busy = false;

	if (MtShared == NULL)
		return false;

	/* copy the others' relations out: no catalog access under the LWLock */
	others = palloc(sizeof(Oid) * Max(MtShared->nslots, 1));
	LWLockAcquire(MtShared->lock, LW_SHARED);
	for (int i = 0; i < MtShared->nslots; i++)
	{
		MtWorkerSlot *slot = &MtShared->slots[i];

		if (i == mt_worker_slot || !slot->in_use || slot->pid == 0 ||
			slot->dboid != dboid || !OidIsValid(slot->relid))
			continue;
		if (slot->relid == relid)
		{
			busy = true;
			break;
		}
		others[nothers++] = slot->relid;
	}
	LWLockRelease(MtShared->lock);

	/*
	 * Partition ancestors come from pg_inherits, without locks and without
	 * errors for relations dropped meanwhile; only OIDs are compared, and a
	 * partition attached or detached concurrently is at worst judged by the
	 * tree as it was.
	 */
	if (!busy && nothers > 0 && IsTransactionState())
	{
		List	   *ancestors = get_partition_ancestors(relid);

		for (int i = 0; i < nothers && !busy; i++)
		{
			List	   *other_ancestors = get_partition_ancestors(others[i]);

			busy = relation_covers(others[i], ancestors) ||
				relation_covers(relid, other_ancestors);
			list_free(other_ancestors);
		}
		list_free(ancestors);
	}
	pfree(others);
	return busy;
}

/*
 * Ask the launcher for a worker in database dboid.  Quietly does nothing
 * when the library was not preloaded: callers that need the worker check
 * that first with mt_require_preload().
 */
void
mt_request_work(Oid dboid)
{
	MtDatabase *db;
	pid_t		launcher_pid;

	if (MtShared == NULL)
		return;
	LWLockAcquire(MtShared->lock, LW_EXCLUSIVE);
	db = find_database(dboid, true);
	if (db != NULL)
	{
		db->pending = true;
		db->next_check = 0;
	}
	launcher_pid = MtShared->launcher_pid;
	LWLockRelease(MtShared->lock);
	if (launcher_pid != 0)
		kill(launcher_pid, SIGUSR1);
}

void
mt_request_work_at_commit(void)
{
	if (!nudge_callback_registered)
	{
		RegisterXactCallback(nudge_xact_callback, NULL);
		nudge_callback_registered = true;
	}
	nudge_at_commit = true;
}

static void
nudge_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (nudge_at_commit)
				mt_request_work(MyDatabaseId);
			nudge_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction is found by the periodic sweep */
			nudge_at_commit = false;
			break;
		default:
			break;
	}
}

PG_FUNCTION_INFO_V1(mt_wakeup);

/*
 * migration_tools._wakeup(): ask for a worker in the current database once
 * the transaction commits.  Used by the install script, so that a database
 * that just got the extension is looked at at once.
 */
Datum
mt_wakeup(PG_FUNCTION_ARGS)
{
	mt_request_work_at_commit();
	PG_RETURN_BOOL(MtShared != NULL);
}

PG_FUNCTION_INFO_V1(mt_worker_processes);

/*
 * migration_tools.worker_processes(): the launcher and every worker slot in
 * use, for the "workers" view.
 */
Datum
mt_worker_processes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	mt_require_preload("migration_tools.workers");

	mt_init_materialized_srf(fcinfo);

	LWLockAcquire(MtShared->lock, LW_SHARED);
	if (MtShared->launcher_pid != 0)
	{
		Datum		values[6];
		bool		nulls[6] = {false, true, true, true, true, true};

		values[0] = CStringGetTextDatum("launcher");
		nulls[1] = false;
		values[1] = Int32GetDatum(MtShared->launcher_pid);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < MtShared->nslots; i++)
	{
		MtWorkerSlot *slot = &MtShared->slots[i];
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		if (!slot->in_use)
			continue;
		values[0] = CStringGetTextDatum("worker");
		values[1] = Int32GetDatum(slot->pid);
		nulls[1] = (slot->pid == 0);
		values[2] = ObjectIdGetDatum(slot->dboid);
		values[3] = CStringGetTextDatum(slot->kind);
		nulls[3] = (slot->kind[0] == '\0');
		values[4] = Int64GetDatum(slot->work_id);
		nulls[4] = nulls[3];
		values[5] = ObjectIdGetDatum(slot->relid);
		nulls[5] = !OidIsValid(slot->relid);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(MtShared->lock);

	return (Datum) 0;
}
