/*-------------------------------------------------------------------------
 *
 * autonomous.c
 *	  The durable record of a failed migration.
 *
 * When the up script of apply() fails, the caller's transaction is going
 * to abort, and with it anything it wrote.  Yet the failure must be
 * visible in migration_tools.status afterwards.  So before re-throwing the
 * error, apply() hands the facts to a dynamic background worker that
 * connects to the same database, upserts the 'failed' row in a transaction
 * of its own, commits and exits; the caller waits for it to finish.
 *
 * The payload travels in a dynamic shared memory segment whose handle is
 * the worker's bgw_main_arg: a fixed header followed by the strings, each
 * NUL-terminated, located by offset (or absent).  The worker writes back
 * in the header whether it recorded the row, and the reason when not.
 *
 * The worker connects as the bootstrap superuser, the same way the
 * per-database worker does, only to write the extension's own table, with
 * a pinned search_path.  It gives up after a short lock_timeout rather than
 * wait forever for a row the caller's own transaction keeps locked (the
 * caller waits for the worker, so that would never end).
 *
 * IDENTIFICATION
 *	  src/autonomous.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autonomous.h"
#include "migration_tools.h"
#include "spi_util.h"

/* The strings of the payload, in this order. */
enum
{
	FF_VERSION,
	FF_DESCRIPTION,
	FF_CHECKSUM,
	FF_UP_SQL,
	FF_DOWN_SQL,
	FF_APPLIED_BY,
	FF_ERROR,
	FF_NFIELDS
};

/* How long the worker waits for a lock on the history table. */
#define MT_RECORDER_LOCK_TIMEOUT "2s"

typedef struct MtFailureShared
{
	Oid			dboid;
	int			attempts;
	double		lock_wait_ms;
	TimestampTz started_at;
	TimestampTz finished_at;
	/* written by the worker */
	bool		recorded;
	char		worker_error[256];
	/* the strings */
	int64		offsets[FF_NFIELDS];	/* -1: NULL */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} MtFailureShared;

static const char *shared_field(MtFailureShared *shared, int field);

/*
 * Record a failed migration durably, in a transaction of a background
 * worker.  Called by apply() after its attempt was rolled back, before it
 * re-throws the error.
 */
bool
mt_record_failure(const MtFailedMigration *failure)
{
	const char *fields[FF_NFIELDS];
	Size		size;
	Size		pos;
	dsm_segment *seg;
	MtFailureShared *shared;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	bool		recorded;
	int			i;

	fields[FF_VERSION] = failure->version;
	fields[FF_DESCRIPTION] = failure->description;
	fields[FF_CHECKSUM] = failure->checksum;
	fields[FF_UP_SQL] = failure->up_sql;
	fields[FF_DOWN_SQL] = failure->down_sql;
	fields[FF_APPLIED_BY] = failure->applied_by;
	fields[FF_ERROR] = failure->error;

	size = offsetof(MtFailureShared, data);
	for (i = 0; i < FF_NFIELDS; i++)
		if (fields[i] != NULL)
			size = add_size(size, strlen(fields[i]) + 1);

	seg = dsm_create(size, 0);
	shared = (MtFailureShared *) dsm_segment_address(seg);
	memset(shared, 0, offsetof(MtFailureShared, data));
	shared->dboid = MyDatabaseId;
	shared->attempts = failure->attempts;
	shared->lock_wait_ms = failure->lock_wait_ms;
	shared->started_at = failure->started_at;
	shared->finished_at = failure->finished_at;
	shared->recorded = false;
	pos = 0;
	for (i = 0; i < FF_NFIELDS; i++)
	{
		if (fields[i] == NULL)
		{
			shared->offsets[i] = -1;
			continue;
		}
		shared->offsets[i] = pos;
		memcpy(shared->data + pos, fields[i], strlen(fields[i]) + 1);
		pos += strlen(fields[i]) + 1;
	}
	pg_write_barrier();

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "%s", MT_EXTENSION_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "mt_autonomous_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "migration_tools failure recorder");
	snprintf(worker.bgw_type, BGW_MAXLEN, "migration_tools failure recorder");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not record the failure of migration \"%s\"",
						failure->version),
				 errdetail("No background worker slot is free."),
				 errhint("Consider increasing the configuration parameter \"%s\".",
						 "max_worker_processes")));
		return false;
	}

	status = WaitForBackgroundWorkerShutdown(handle);
	pg_read_barrier();
	recorded = shared->recorded;
	if (status == BGWH_POSTMASTER_DIED)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("postmaster exited while recording the failure of migration \"%s\"",
						failure->version)));
	if (!recorded)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not record the failure of migration \"%s\"",
						failure->version),
				 shared->worker_error[0] != '\0' ?
				 errdetail("The recording worker failed: %s", shared->worker_error) :
				 errdetail("The recording worker exited without recording it.")));
	dsm_detach(seg);
	return recorded;
}

static const char *
shared_field(MtFailureShared *shared, int field)
{
	if (shared->offsets[field] < 0)
		return NULL;
	return shared->data + shared->offsets[field];
}

/*
 * Entry point of the failure recorder: upsert the 'failed' row described
 * by the segment, commit, exit.
 */
void
mt_autonomous_main(Datum main_arg)
{
	dsm_handle	handle = DatumGetUInt32(main_arg);
	dsm_segment *seg;
	MtFailureShared *shared;
	MtFailedMigration failure;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(handle);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the dynamic shared memory segment of a failed migration")));
	shared = (MtFailureShared *) dsm_segment_address(seg);
	pg_read_barrier();

	BackgroundWorkerInitializeConnectionByOid(shared->dboid, BOOTSTRAP_SUPERUSERID,
											  BGWORKER_BYPASS_ALLOWCONN);
	pgstat_report_appname("migration_tools failure recorder");

	PG_TRY();
	{
		mt_bgw_begin("recording a failed migration");

		set_config_option("search_path", "pg_catalog, pg_temp",
						  PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
						  true, 0, false);
		set_config_option("lock_timeout", MT_RECORDER_LOCK_TIMEOUT,
						  PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
						  true, 0, false);

		memset(&failure, 0, sizeof(failure));
		failure.version = shared_field(shared, FF_VERSION);
		failure.description = shared_field(shared, FF_DESCRIPTION);
		failure.checksum = shared_field(shared, FF_CHECKSUM);
		failure.up_sql = shared_field(shared, FF_UP_SQL);
		failure.down_sql = shared_field(shared, FF_DOWN_SQL);
		failure.applied_by = shared_field(shared, FF_APPLIED_BY);
		failure.error = shared_field(shared, FF_ERROR);
		failure.started_at = shared->started_at;
		failure.finished_at = shared->finished_at;
		failure.attempts = shared->attempts;
		failure.lock_wait_ms = shared->lock_wait_ms;
		mt_migration_upsert_failed(&failure);

		mt_bgw_commit();
		shared->recorded = true;
		pg_write_barrier();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		strlcpy(shared->worker_error, edata->message ? edata->message : "unknown error",
				sizeof(shared->worker_error));
		pg_write_barrier();
		PG_RE_THROW();
	}
	PG_END_TRY();

	dsm_detach(seg);
	proc_exit(0);
}
