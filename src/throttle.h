/*-------------------------------------------------------------------------
 *
 * throttle.h
 *	  When a backfill holds back (throttle.c): the settings of the
 *	  throttles, what they remember of a job, and the run window.
 *
 * IDENTIFICATION
 *	  src/throttle.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_THROTTLE_H
#define MT_THROTTLE_H

#include "datatype/timestamp.h"

/* GUCs */
extern int	mt_max_replication_lag;
extern double mt_max_dead_tuples_ratio;
extern int	mt_min_dead_tuples;
extern bool mt_throttle_on_autovacuum;
extern bool mt_throttle_on_lock_waiters;
extern int	mt_throttle_sleep;
extern int	mt_max_throttle_wait;
extern double mt_busy_duty_cycle;

/*
 * What the throttles remember of one job, kept by the worker with the job's
 * run (MtJobRun) and passed in.
 *
 * The dead tuple throttle: on which table it began (dead_relid), the
 * vacuums of that table then, when, and whether it gave up (vacuum cannot
 * remove them).  The autovacuum throttle: on which table, which vacuum run,
 * since when.
 *
 * The rows the job changed in its table (own_total), and how many of them
 * a finished vacuum could remove (own_vacuumed: changed before it began).
 * A vacuum began after the look before the one that first saw it running:
 * own_at_vacuum_start is own_total at that earlier look (own_at_last_look;
 * -1 if no vacuum seen), and one that came and went between two looks
 * removed what was written up to the first of them.  Taking the later look
 * instead counted a batch or two written after the vacuum began (100,000
 * rows and more) as others' dead tuples, enough to hold a job back for the
 * whole vacuum.  own_vacuums is the table's vacuum count at the last look
 * (-1: not read yet).  Pruning also removes the job's dead tuples, so the
 * difference can undercount the others': the error lets the job run, never
 * holds it back.
 */
typedef struct MtThrottleState
{
	Oid			dead_relid;
	double		dead_vacuums;
	TimestampTz dead_since;
	bool		dead_gave_up;

	Oid			av_relid;
	int			av_pid;
	TimestampTz av_since;

	Oid			own_relid;
	int64		own_total;
	int64		own_vacuumed;
	int64		own_at_vacuum_start;
	int64		own_at_last_look;
	double		own_vacuums;
} MtThrottleState;

/* Define the throttle GUCs (from mt_backfill_init). */
extern void mt_throttle_init(void);

/*
 * A reason to hold back the next batch of a job on relid, or NULL.  Runs
 * queries through SPI: call inside a transaction with SPI connected.
 */
extern const char *mt_throttle_reason(MtThrottleState *ts, Oid relid);
extern bool mt_server_busy(void);

/*
 * What the throttles know of the job's own writes: forget them when a job
 * (re)starts; add a batch's rows once it committed.
 */
extern void mt_throttle_reset(MtThrottleState *ts, Oid relid);
extern void mt_throttle_note_rows(MtThrottleState *ts, Oid relid, int64 rows);

/* run_window: parse "HH:MM-HH:MM" into minutes since midnight. */
extern bool mt_parse_run_window(const char *text, int *start_min, int *end_min);

/*
 * Is "now" inside the daily window?  If not, *opens_at is when it next
 * opens.
 */
extern bool mt_in_run_window(const char *window, TimestampTz now, TimestampTz *opens_at);

#endif							/* MT_THROTTLE_H */
