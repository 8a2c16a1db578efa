/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  Shared memory, the launcher and the per-database worker slots.
 *
 * Backends never start workers themselves: they ask the launcher for one
 * with mt_request_work() (or, for work queued by the current transaction,
 * mt_request_work_at_commit()), and the launcher starts a per-database
 * worker when a slot is free.  A worker runs one unit of work at a time and
 * records in its slot what it is running, so that anyone can tell a job
 * that is really running from one whose worker died.
 *
 * IDENTIFICATION
 *	  src/launcher.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LAUNCHER_H
#define MT_LAUNCHER_H

#include "datatype/timestamp.h"
#include "fmgr.h"

/* migration_tools.max_workers: per-database workers running at once */
extern int	mt_max_workers;

/* Ask the launcher to start a worker in a database (now). */
extern void mt_request_work(Oid dboid);

/*
 * Same, for MyDatabaseId, once the current transaction commits: for
 * scheduled migration statements, whose database gets the next free slot
 * before databases with backfills only.
 */
extern void mt_request_work_at_commit(void);

/* Same, for backfill jobs (no priority). */
extern void mt_request_backfill_work_at_commit(void);

/*
 * Called by a worker: the unit of work it runs now (kind is a short
 * label such as "backfill" or "scheduled"; 0 / InvalidOid when idle).
 */
extern void mt_worker_set_current(const char *kind, int64 id, Oid relid);

/*
 * Is unit "id" of the given kind in database dboid being run by a live
 * worker right now?  Used to tell orphaned "running" rows (worker killed,
 * server crashed) from live ones.
 */
extern bool mt_work_is_active(Oid dboid, const char *kind, int64 id);

/*
 * Is another live worker of this database running something on relid, or on
 * a partitioned table above it or a partition below it (any depth)?  Call it
 * in a transaction, after advertising relid with mt_worker_set_current().
 */
extern bool mt_relation_is_busy(Oid dboid, Oid relid);

/*
 * migration_tools.max_workers_per_role: backfill jobs of one role running at
 * once (0: no limit).
 */
extern int	mt_max_workers_per_role;

/*
 * Count the current worker's job as a job of roleid, unless that role
 * already runs limit jobs in other workers (false then).  The count is
 * given back by mt_worker_set_current(NULL, ...).
 */
extern bool mt_worker_claim_role(Oid roleid, int limit);

/* Jobs of roleid run by other live workers, in all databases. */
extern int	mt_role_running_elsewhere(Oid roleid);

/* A job here waits for its role: look again when one of its jobs ends. */
extern void mt_worker_note_role_waiting(void);

/*
 * Work known to be due in another database waits for a worker slot (with
 * urgent_only: scheduled migration statements).
 */
extern bool mt_slot_wanted_elsewhere(bool urgent_only);

/* Called by a worker before it exits: earliest time work becomes due. */
extern void mt_worker_report_next_due(TimestampTz when);

/* The slot number of the current worker process, -1 elsewhere. */
extern int	mt_worker_slot;

/* Worker side of the slot protocol, called by worker.c. */
extern bool mt_worker_attach_slot(int slotno, Oid dboid, uint32 generation);
extern void mt_worker_detach_slot(bool failed);
extern void mt_worker_report_no_extension(void);

/* What the launcher passes to a worker in bgw_extra. */
typedef struct MtWorkerArgs
{
	Oid			dboid;
	uint32		generation;
} MtWorkerArgs;

PGDLLEXPORT void mt_launcher_main(Datum main_arg);

/* Postmaster-only set-up from _PG_init: shared memory, postmaster GUCs, the launcher. */
extern void mt_launcher_init(void);

#endif							/* MT_LAUNCHER_H */
