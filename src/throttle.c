/*-------------------------------------------------------------------------
 *
 * throttle.c
 *	  When a backfill should hold back: server signals read before each
 *	  batch (replication lag, autovacuum on the table, dead tuples) and the
 *	  job's daily run window.  Lock waiters caused by a batch are measured
 *	  by the batch itself (backfill_worker.c), since they exist only while
 *	  it holds its locks.
 *
 * Each signal has a setting that turns it off, and a name shown in
 * backfill_progress.throttled_by while it holds a job back.
 *
 * IDENTIFICATION
 *	  src/throttle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgtime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "backfill_int.h"

/*
 * The dead tuple throttle of the current job: on which table it began, the
 * vacuums of that table then, when, and whether it gave up (vacuum cannot
 * remove them).
 */
static Oid	dead_relid = InvalidOid;
static double dead_vacuums = 0;
static TimestampTz dead_since = 0;
static bool dead_gave_up = false;

/* The autovacuum throttle: on which table, which vacuum run, since when. */
static Oid	av_relid = InvalidOid;
static int	av_pid = 0;
static TimestampTz av_since = 0;

/* Run a one-value query as the worker itself; NULL result gives -1. */
static double
query_double(const char *sql, Oid relid)
{
	Oid			argtype = OIDOID;
	Datum		arg = ObjectIdGetDatum(relid);
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read server statistics");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetFloat8(d);
}

/*
 * The first server signal over its limit for a job on relid, as the
 * throttled_by name, or NULL.  The statistics views are read as the worker
 * itself (they hide other roles' rows from unprivileged roles), with
 * search_path pinned.
 */
const char *
mt_throttle_reason(Oid relid)
{
	const char *reason = NULL;
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	/* standbys replaying far behind */
	if (mt_max_replication_lag >= 0)
	{
		double		lag = query_double("SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), "
									   "coalesce(replay_lsn, flush_lsn, write_lsn)))::float8 "
									   "FROM pg_stat_replication WHERE $1 IS NOT NULL",
									   relid);

		if (lag > (double) mt_max_replication_lag * 1024.0)
			reason = "replication_lag";
	}

	/*
	 * Autovacuum working on the table: let it get ahead, for at most
	 * migration_tools.max_throttle_wait per vacuum run (a batch does not
	 * conflict with vacuum, and a vacuum of a big table can take minutes).
	 */
	if (reason == NULL && mt_throttle_on_autovacuum)
	{
		double		pid = query_double("SELECT min(v.pid)::float8 FROM pg_stat_progress_vacuum v "
									   "JOIN pg_stat_activity a ON a.pid = v.pid "
									   "WHERE v.relid = $1 AND a.backend_type = 'autovacuum worker'",
									   relid);

		if (pid > 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (av_relid != relid || av_pid != (int) pid)
			{
				av_relid = relid;
				av_pid = (int) pid;
				av_since = now;
			}
			if (!TimestampDifferenceExceeds(av_since, now, mt_max_throttle_wait))
				reason = "autovacuum";
		}
		else
			av_relid = InvalidOid;
	}

	/*
	 * Too many dead tuples: give vacuum a chance.  But only as long as it
	 * can help: once a vacuum of the table has finished since the throttle
	 * began and the dead tuples are still over the limit, they are not
	 * removable yet (an old snapshot holds them, a wait() among others), and
	 * holding back would only wait for that snapshot, perhaps forever.  The
	 * same after migration_tools.max_throttle_wait without a vacuum.
	 */
	if (reason == NULL && mt_max_dead_tuples_ratio > 0)
	{
		double		dead = query_double("SELECT pg_stat_get_dead_tuples($1)::float8", relid);
		double		live = query_double("SELECT pg_stat_get_live_tuples($1)::float8", relid);

		if (dead > mt_min_dead_tuples && dead > mt_max_dead_tuples_ratio * (dead + live))
		{
			double		vacuums = query_double("SELECT (pg_stat_get_vacuum_count($1) + "
											   "pg_stat_get_autovacuum_count($1))::float8",
											   relid);
			TimestampTz now = GetCurrentTimestamp();

			if (dead_relid != relid)
			{
				/* the throttle begins */
				dead_relid = relid;
				dead_vacuums = vacuums;
				dead_since = now;
				dead_gave_up = false;
			}
			if (!dead_gave_up &&
				(vacuums > dead_vacuums ||
				 TimestampDifferenceExceeds(dead_since, now, mt_max_throttle_wait)))
			{
				dead_gave_up = true;
				ereport(LOG,
						(errmsg("migration_tools: dead tuples of relation %u stay over the limit; the backfill goes on",
								relid),
						 errdetail("A vacuum ran, or %s passed, without removing them; a long-running transaction may hold them.",
								   "migration_tools.max_throttle_wait")));
			}
			if (!dead_gave_up)
				reason = "dead_tuples";
		}
		else
			dead_relid = InvalidOid;	/* under the limit: a later excess starts afresh */
	}

	AtEOXact_GUC(true, nest);
	return reason;
}

/*
 * Is now inside the daily window (server time zone)?  If not, *opens_at
 * is the next time it opens.
 */
bool
mt_in_run_window(const char *window, TimestampTz now, TimestampTz *opens_at)
{
	int			start_min,
				end_min;
	pg_time_t	t = timestamptz_to_time_t(now);
	struct pg_tm *tm = pg_localtime(&t, session_timezone);
	int			m;
	bool		inside;
	int			wait_min;

	*opens_at = 0;
	if (!mt_parse_run_window(window, &start_min, &end_min) || tm == NULL)
		return true;
	m = tm->tm_hour * 60 + tm->tm_min;
	if (start_min < end_min)
		inside = m >= start_min && m < end_min;
	else
		inside = m >= start_min || m < end_min;
	if (inside)
		return true;
	wait_min = (start_min - m + 1440) % 1440;
	*opens_at = now - (int64) tm->tm_sec * USECS_PER_SEC -
		(now % USECS_PER_SEC + USECS_PER_SEC) % USECS_PER_SEC +
		(int64) wait_min * 60 * USECS_PER_SEC;
	return false;
}
