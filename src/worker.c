/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The per-database worker: started by the launcher in one database, it
 *	  runs the work waiting there, one unit at a time, then exits.
 *
 * Units of work come from the subsystems: scheduled migration statements
 * (schedule.c) first, since a deployment waits for them, then backfill jobs
 * (backfill.c).  Each subsystem claims its unit in its own transaction and
 * records it in the worker slot (mt_worker_set_current), so that a unit
 * whose worker died is known to be orphaned and is taken up again.  The
 * worker connects as the bootstrap superuser only to read and write the
 * extension's own tables; user statements run as the role that queued them.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "backfill.h"
#include "ddl_log.h"
#include "launcher.h"
#include "migration_tools.h"
#include "schedule.h"
#include "worker.h"

/* How often a long-running worker prunes the DDL log. */
#define MT_PRUNE_INTERVAL_MS	(60 * 60 * 1000)

static bool extension_installed(void);
static void reset_session_state(void);
static void worker_on_exit(int code, Datum arg);

/*
 * Entry point of a per-database worker.
 */
void
mt_worker_main(Datum main_arg)
{
	int			slotno = DatumGetInt32(main_arg);
	MtWorkerArgs args;
	TimestampTz next_due = 0;
	TimestampTz last_prune = 0;
	MtBackfillRunner *backfills;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!mt_worker_attach_slot(slotno, args.dboid, args.generation))
		proc_exit(0);
	before_shmem_exit(worker_on_exit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);
	pgstat_report_appname("migration_tools worker");

	if (!extension_installed())
	{
		mt_worker_report_no_extension();
		proc_exit(0);
	}

	backfills = mt_backfill_runner_create();
	for (;;)
	{
		TimestampTz due = 0;
		TimestampTz scheduled_due = 0;
		TimestampTz now = GetCurrentTimestamp();

		/* the DDL log keeps migration_tools.ddl_log_retention */
		if (TimestampDifferenceExceeds(last_prune, now, MT_PRUNE_INTERVAL_MS) ||
			last_prune == 0)
		{
			mt_ddl_log_prune();
			last_prune = now;
		}

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* every unit of work starts from the server's defaults */
		reset_session_state();

		/* DROP EXTENSION while the worker ran: nothing left to do here */
		if (!extension_installed())
		{
			mt_worker_report_no_extension();
			proc_exit(0);
		}
		if (mt_history_run_scheduled(&scheduled_due))
			continue;
		if (mt_backfill_run_next(backfills, &due))
		{
			/* its job gave the slot to another database: go */
			if (mt_backfill_leave_worker(backfills, &next_due))
				break;
			continue;
		}
		/* the earliest of what each subsystem waits for (0: nothing) */
		next_due = due;
		if (scheduled_due != 0 && (next_due == 0 || scheduled_due < next_due))
			next_due = scheduled_due;
		break;
	}

	mt_worker_report_next_due(next_due);
	proc_exit(0);
}

static void
worker_on_exit(int code, Datum arg)
{
	mt_worker_detach_slot(code != 0);
}

/*
 * Is the extension installed in this database?  Checked in a transaction
 * of its own.
 */
static bool
extension_installed(void)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	installed = OidIsValid(get_extension_oid(MT_EXTENSION_NAME, true));
	PopActiveSnapshot();
	CommitTransactionCommand();
	return installed;
}

/*
 * Back to the server's default settings before each unit of work, as RESET
 * ALL does, and without session-level advisory locks.  The backfill worker
 * and the scheduled statements already undo what their user statements set;
 * this is the net under both, so that nothing one job or statement sets
 * (TimeZone, transform_null_equals, default_transaction_read_only ...) is
 * seen by the next, whoever queued it.
 */
static void
reset_session_state(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ResetAllOptions();
	CommitTransactionCommand();
	LockReleaseSession(USER_LOCKMETHOD);
}
