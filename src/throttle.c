/*-------------------------------------------------------------------------
 *
 * throttle.c
 *	  When a backfill should hold back: server signals read before each
 *	  batch (replication lag, autovacuum on the table, dead tuples) and the
 *	  job's daily run window.  Lock waiters caused by a batch are measured
 *	  by the batch itself (backfill_step.c), since they exist only while
 *	  it holds its locks.
 *
 * Each signal has a setting that turns it off, and a name shown in
 * backfill_progress.throttled_by while it holds a job back.  The settings
 * of the throttles are defined here (mt_throttle_init, called by
 * mt_backfill_init).  What a throttle remembers of a job lives in the
 * job's MtThrottleState, which the worker keeps with the job's run and
 * passes in; nothing of a job is kept in this file.
 *
 * Dead tuples are counted without the job's own: a backfill of a whole
 * table leaves as many dead tuples as it changes rows, crosses any ratio
 * by itself, and wakes autovacuum; holding it back for its own dead
 * tuples (or for the vacuum they start) makes it wait on an idle server
 * for nothing, while vacuum cleans them just as well with the job
 * running.  What the throttles protect is vacuum's progress on the dead
 * tuples of other sessions.
 *
 * IDENTIFICATION
 *	  src/throttle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "pgtime.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "backfill_int.h"
#include "migration_tools.h"
#include "spi_util.h"
#include "throttle.h"

/* GUCs */
int			mt_max_replication_lag = 64 * 1024;	/* kB */
double		mt_max_dead_tuples_ratio = 0.5;
int			mt_min_dead_tuples = 100000;
bool		mt_throttle_on_autovacuum = true;
bool		mt_throttle_on_lock_waiters = true;
int			mt_throttle_sleep = 1000;
int			mt_max_throttle_wait = 10000;
double		mt_busy_duty_cycle = 0.25;

/*
 * Define the settings of the throttles (reloadable ones only).
 */
void
mt_throttle_init(void)
{
	DefineCustomIntVariable("migration_tools.max_replication_lag",
							"Replay lag of any standby above which backfills pause.",
							"-1 disables this throttle.",
							&mt_max_replication_lag,
							64 * 1024, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomRealVariable("migration_tools.max_dead_tuples_ratio",
							 "Share of dead tuples in the target table above which a backfill pauses.",
							 "Only once the table has more than migration_tools.min_dead_tuples dead tuples. 0 disables this throttle.",
							 &mt_max_dead_tuples_ratio,
							 0.5, 0.0, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.min_dead_tuples",
							"Dead tuples in the target table below which the dead tuple throttle never acts.",
							NULL,
							&mt_min_dead_tuples,
							100000, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("migration_tools.throttle_on_autovacuum",
							 "Pause a backfill while autovacuum processes its table.",
							 NULL,
							 &mt_throttle_on_autovacuum,
							 true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("migration_tools.throttle_on_lock_waiters",
							 "Shrink batches and sleep when other sessions wait for locks a batch holds.",
							 NULL,
							 &mt_throttle_on_lock_waiters,
							 true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.throttle_sleep",
							"How long a throttled backfill sleeps before it looks again.",
							NULL,
							&mt_throttle_sleep,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_throttle_wait",
							"Longest a backfill is held back at a stretch by autovacuum or by dead tuples.",
							"After that it goes on until the condition clears (a new vacuum run, or dead tuples back under the limit). Replication lag, lock waiters and the run window are not capped.",
							&mt_max_throttle_wait,
							10000, 0, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomRealVariable("migration_tools.busy_duty_cycle",
							 "Share of the time a backfill runs batches while the server's CPUs are busy with other sessions.",
							 "Busy: at least as many other processes run a query, not waiting, as there are CPUs. After each batch the job then sleeps so that its batches take this share of the time (at most migration_tools.throttle_sleep). 1 turns this throttle off.",
							 &mt_busy_duty_cycle,
							 0.25, 0.01, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/* Run a one-value query as the worker itself; NULL result gives -1. */
static double
query_double(const char *sql, Oid relid)
{
	Oid			argtype = OIDOID;
	Datum		arg = ObjectIdGetDatum(relid);
	bool		isnull;
	Datum		d;

	if (mt_spi_execute_checked(sql, 1, &argtype, &arg, NULL, true, 1,
							   SPI_OK_SELECT, "read server statistics") != 1)
		elog(ERROR, "could not read server statistics");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetFloat8(d);
}

/*
 * A new job begins (or goes on after a restart of the worker): forget
 * what the last one wrote.
 */
void
mt_throttle_reset(MtThrottleState *ts, Oid relid)
{
	ts->own_relid = relid;
	ts->own_total = 0;
	ts->own_vacuumed = 0;
	ts->own_at_vacuum_start = -1;
	ts->own_at_last_look = 0;
	ts->own_vacuums = -1;
	ts->dead_relid = InvalidOid;
	ts->av_relid = InvalidOid;
}

/*
 * The current job changed rows rows of relid, in a batch that committed
 * and whose statistics were flushed (the counts must not run ahead of
 * the dead tuples the statistics show; on releases where statistics go
 * through the collector they may still, which only lets the job run).
 */
void
mt_throttle_note_rows(MtThrottleState *ts, Oid relid, int64 rows)
{
	if (relid != ts->own_relid)
		mt_throttle_reset(ts, relid);
	ts->own_total += rows;
}

/*
 * How many of the dead tuples of relid the current job left and no vacuum
 * has removed yet.  Reads the vacuum count and whether a vacuum runs now.
 */
static double
own_dead_tuples(MtThrottleState *ts, Oid relid)
{
	double		vacuums;
	bool		running;

	if (relid != ts->own_relid)
		mt_throttle_reset(ts, relid);
	vacuums = query_double("SELECT (pg_stat_get_vacuum_count($1) + "
						   "pg_stat_get_autovacuum_count($1))::float8", relid);
	running = query_double("SELECT count(*)::float8 FROM pg_stat_progress_vacuum "
						   "WHERE relid = $1", relid) > 0;
	if (ts->own_vacuums < 0)
		ts->own_vacuums = vacuums;
	else if (vacuums > ts->own_vacuums)
	{
		/* a vacuum finished: what the job wrote before it began is gone */
		ts->own_vacuumed = ts->own_at_vacuum_start >= 0 ? ts->own_at_vacuum_start : ts->own_at_last_look;
		ts->own_at_vacuum_start = -1;
		ts->own_vacuums = vacuums;
	}
	if (running && ts->own_at_vacuum_start < 0)
		ts->own_at_vacuum_start = ts->own_at_last_look;
	ts->own_at_last_look = ts->own_total;
	return (double) (ts->own_total - ts->own_vacuumed);
}

/*
 * Autovacuum working on the table: let it get ahead, for at most
 * migration_tools.max_throttle_wait per vacuum run (a batch does not
 * conflict with vacuum, and a vacuum of a big table can take minutes).
 * Only when it has more to do than clean up after the job: other
 * sessions' dead tuples (over migration_tools.min_dead_tuples), or an
 * anti-wraparound vacuum.
 */
static bool
autovacuum_holds(MtThrottleState *ts, Oid relid, double others)
{
	double		pid = query_double("SELECT min(v.pid)::float8 FROM pg_stat_progress_vacuum v "
								   "JOIN pg_stat_activity a ON a.pid = v.pid "
								   "WHERE v.relid = $1 AND a.backend_type = 'autovacuum worker'",
								   relid);

	if (pid > 0 && others <= mt_min_dead_tuples &&
		query_double("SELECT count(*)::float8 FROM pg_stat_progress_vacuum v "
					 "JOIN pg_stat_activity a ON a.pid = v.pid "
					 "WHERE v.relid = $1 AND a.backend_type = 'autovacuum worker' "
					 "AND a.query LIKE '%(to prevent wraparound)%'",
					 relid) <= 0)
		pid = -1;			/* only the job's own dead tuples to clean */
	if (pid > 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (ts->av_relid != relid || ts->av_pid != (int) pid)
		{
			ts->av_relid = relid;
			ts->av_pid = (int) pid;
			ts->av_since = now;
		}
		return !TimestampDifferenceExceeds(ts->av_since, now, mt_max_throttle_wait);
	}
	ts->av_relid = InvalidOid;
	return false;
}

/*
 * Too many dead tuples of other sessions: give vacuum a chance.  But
 * only as long as it can help: once a vacuum of the table has finished
 * since the throttle began and the dead tuples are still over the
 * limit, they are not removable yet (an old snapshot holds them, a
 * wait() among others), and holding back would only wait for that
 * snapshot, perhaps forever.  The same after
 * migration_tools.max_throttle_wait without a vacuum.
 */
static bool
dead_tuples_hold(MtThrottleState *ts, Oid relid, double dead, double live,
				 double others)
{
	if (others > mt_min_dead_tuples && others > mt_max_dead_tuples_ratio * (dead + live))
	{
		double		vacuums = query_double("SELECT (pg_stat_get_vacuum_count($1) + "
										   "pg_stat_get_autovacuum_count($1))::float8",
										   relid);
		TimestampTz now = GetCurrentTimestamp();

		if (ts->dead_relid != relid)
		{
			/* the throttle begins */
			ts->dead_relid = relid;
			ts->dead_vacuums = vacuums;
			ts->dead_since = now;
			ts->dead_gave_up = false;
		}
		if (!ts->dead_gave_up &&
			(vacuums > ts->dead_vacuums ||
			 TimestampDifferenceExceeds(ts->dead_since, now, mt_max_throttle_wait)))
		{
			ts->dead_gave_up = true;
			ereport(LOG,
					(errmsg("migration_tools: dead tuples of relation %u stay over the limit; the backfill goes on",
							relid),
					 errdetail("A vacuum ran, or %s passed, without removing them; a long-running transaction may hold them.",
							   "migration_tools.max_throttle_wait")));
		}
		return !ts->dead_gave_up;
	}
	ts->dead_relid = InvalidOid;	/* under the limit: a later excess starts afresh */
	return false;
}

/*
 * The first server signal over its limit for a job on relid, as the
 * throttled_by name, or NULL.  The statistics views are read as the worker
 * itself (they hide other roles' rows from unprivileged roles), with
 * search_path pinned.
 */
const char *
mt_throttle_reason(MtThrottleState *ts, Oid relid)
{
	const char *reason = NULL;
	int			nest = NewGUCNestLevel();
	double		dead = 0;
	double		live = 0;
	double		others = 0;

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

	/* the table's dead tuples, and those of them the job did not leave */
	if (reason == NULL && (mt_throttle_on_autovacuum || mt_max_dead_tuples_ratio > 0))
	{
		dead = Max(query_double("SELECT pg_stat_get_dead_tuples($1)::float8", relid), 0);
		live = Max(query_double("SELECT pg_stat_get_live_tuples($1)::float8", relid), 0);
		others = Max(dead - own_dead_tuples(ts, relid), 0);
	}

	if (reason == NULL && mt_throttle_on_autovacuum &&
		autovacuum_holds(ts, relid, others))
		reason = "autovacuum";
	if (reason == NULL && mt_max_dead_tuples_ratio > 0 &&
		dead_tuples_hold(ts, relid, dead, live, others))
		reason = "dead_tuples";

	AtEOXact_GUC(true, nest);
	return reason;
}

/*
 * Parse a daily run window "HH:MM-HH:MM" (24-hour clock, server time
 * zone); the end may be before the start (a window across midnight).
 */
bool
mt_parse_run_window(const char *text, int *start_min, int *end_min)
{
	int			h1,
				m1,
				h2,
				m2;
	char		tail;

	if (sscanf(text, " %d:%d - %d:%d %c", &h1, &m1, &h2, &m2, &tail) != 4)
		return false;
	if (h1 < 0 || h1 > 24 || h2 < 0 || h2 > 24 ||
		m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59)
		return false;
	if ((h1 == 24 && m1 != 0) || (h2 == 24 && m2 != 0))
		return false;
	*start_min = (h1 * 60 + m1) % 1440;
	*end_min = (h2 * 60 + m2) % 1440;
	return *start_min != *end_min;
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

/* The number of CPUs the server can run on (1 when unknown). */
static int
cpu_count(void)
{
#ifdef _SC_NPROCESSORS_ONLN
	long		n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int) n : 1;
#else
	return 1;
#endif
}

/*
 * Is the server busy with other work right now: are at least as many
 * other processes executing a query as there are CPUs?  Executing: on a
 * CPU, or waiting for what a busy server makes queries wait for (I/O, a
 * buffer or WAL lightweight lock); not waiting for a heavyweight lock (the
 * lock-waiter throttle is for that), the client, a latch or a sleep.  Then
 * every moment a batch runs is taken from them, and the job should only
 * take its share (migration_tools.busy_duty_cycle).  Looked at before
 * every batch, so over a job the share of batches that see the server
 * busy follows the share of the time it is.  Read from the backend status
 * table and the wait events, without locks beyond the process array's.
 */
bool
mt_server_busy(void)
{
	int			ncpu;
	int			running = 0;
	int			n;

	if (mt_busy_duty_cycle >= 1.0)
		return false;
	ncpu = cpu_count();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n && running < ncpu; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;
		PGPROC	   *proc;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid == MyProcPid || be->st_procpid <= 0 ||
			(be->st_state != STATE_RUNNING && be->st_state != STATE_FASTPATH))
			continue;
		proc = BackendPidGetProc(be->st_procpid);
		if (proc != NULL)
		{
			uint32		wait = *((volatile uint32 *) &proc->wait_event_info);
			uint32		class = wait & 0xFF000000;

			if (wait == 0 || class == PG_WAIT_IO || class == PG_WAIT_LWLOCK ||
				class == MT_WAIT_BUFFERPIN)
				running++;
		}
	}
	/* the status table is read again at the next look */
	pgstat_clear_backend_activity_snapshot();
	return running >= ncpu;
}
