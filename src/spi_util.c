/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  The one place for SPI, transaction and SRF boilerplate, so that the
 *	  subsystems read as what they do.
 *
 * IDENTIFICATION
 *	  src/spi_util.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"

#include "compat.h"
#include "spi_util.h"

/*
 * Prepare fcinfo's ReturnSetInfo for materialize mode with a tuplestore
 * in the per-query context and the declared result descriptor.
 */
void
mt_init_materialized_srf(FunctionCallInfo fcinfo)
{
	InitMaterializedSRF(fcinfo, 0);
}

/*
 * Begin a unit of work of a background worker: statement timestamp,
 * transaction, SPI connection, snapshot, and the activity shown.
 */
void
mt_bgw_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Finish what mt_bgw_begin() started, committing the transaction. */
void
mt_bgw_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Connect to SPI.  SPI_connect() reports its own errors in current
 * releases; the check is for the result code it is documented to return.
 */
void
mt_spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * Run one statement with its arguments, and check the result code: our own
 * queries on our own tables and the catalogs, where any other outcome is a
 * bug, hence elog.  "what" completes "could not ..." in the message.
 */
uint64
mt_spi_execute_checked(const char *sql, int nargs, Oid *argtypes,
					   Datum *values, const char *nulls, bool read_only,
					   long count, int expected, const char *what)
{
	int			ret;

	ret = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
								read_only, count);
	if (ret != expected)
		elog(ERROR, "could not %s: %s", what, SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * Pin search_path in a new GUC nest level, so that our queries and the
 * names they deparse do not depend on the caller's setting.  Returns the
 * level to pass to AtEOXact_GUC(true, level); an error that aborts the
 * (sub)transaction undoes the setting too.
 */
int
mt_pin_search_path(const char *path)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", path,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* A List of C strings as a text[] (run_after versions, checkpoint keys). */
Datum
mt_text_array_from_list(List *strings)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(strings), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, strings)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * The start of a procedure that commits between polls (await_job(),
 * await_migration()): ERROR unless CALL runs it outside a transaction
 * block, since only then may it commit; then connect to SPI in non-atomic
 * mode.  Returns the timeout of the interval argument timeout_argno in
 * milliseconds, -1 for none (NULL).
 */
double
mt_await_begin(FunctionCallInfo fcinfo, const char *funcname, int timeout_argno)
{
	double		timeout_ms = -1;

	if (fcinfo->context == NULL || !IsA(fcinfo->context, CallContext) ||
		castNode(CallContext, fcinfo->context)->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("%s cannot run inside a transaction block", funcname),
				 errdetail("It commits between its looks, so that it holds no snapshot while it waits."),
				 errhint("Run it with CALL outside BEGIN ... COMMIT, and not from a function.")));
	if (!PG_ARGISNULL(timeout_argno))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(timeout_argno);

		timeout_ms = iv->time / 1000.0 +
			(iv->day + (double) iv->month * DAYS_PER_MONTH) * (USECS_PER_DAY / 1000.0);
		if (timeout_ms < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must not be negative")));
	}
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	return timeout_ms;
}

/*
 * Between two looks of an await procedure: commit, so that no snapshot
 * (no xmin) is held while waiting, then wait on the latch for one poll
 * interval, never past the timeout.  Returns false, without waiting, once
 * timeout_ms (unless -1) has passed since start.
 */
bool
mt_await_pause(TimestampTz start, double timeout_ms)
{
	long		elapsed;
	long		wait_ms = MT_AWAIT_POLL_MS;

	SPI_commit();
	elapsed = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
	if (timeout_ms >= 0)
	{
		if (elapsed >= timeout_ms)
			return false;
		wait_ms = Min(wait_ms, (long) (timeout_ms - elapsed) + 1);
	}
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 wait_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return true;
}
