/*-------------------------------------------------------------------------
 *
 * backfill_int.h
 *	  Declarations shared by the files of the backfill subsystem only:
 *	  backfill.c (queueing and control functions), backfill_worker.c (the
 *	  batches the worker runs) and throttle.c (when to slow down).
 *
 * IDENTIFICATION
 *	  src/backfill_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_BACKFILL_INT_H
#define MT_BACKFILL_INT_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

/* mt_extension_owner(), mt_become_owner(), mt_restore_user() */
#include "security.h"

/* GUCs (backfill.c) */
extern int	mt_max_batch_size;
extern int	mt_initial_batch_size;
extern int	mt_batch_lock_timeout;
extern int	mt_batch_timeout_factor;
extern int	mt_max_replication_lag;
extern double mt_max_dead_tuples_ratio;
extern int	mt_min_dead_tuples;
extern bool mt_throttle_on_autovacuum;
extern bool mt_throttle_on_lock_waiters;
extern int	mt_throttle_sleep;
extern int	mt_max_throttle_wait;
extern double mt_busy_duty_cycle;
extern int	mt_batch_history_retention;
extern int	mt_max_sweep_passes;
extern int	mt_max_batch_sleep;

/*
 * What the statement of a job is made of.  The same builders produce the
 * statement parse-analyzed at queue time and the one the worker runs, so
 * that what was validated is what runs.
 */
typedef struct MtJobSql
{
	bool		is_backfill;	/* backfill() (else run_batched()) */
	bool		by_ctid;		/* strategy ctid (else key) */
	char	   *relname;		/* qualified, quoted */
	bool		only;			/* ONLY: a plain table, not a partitioned one */
	char	   *set_clause;
	char	   *where_clause;	/* NULL: none */
	char	   *guard_clause;	/* NULL: none */
	char	   *sql;			/* run_batched() */
	List	   *key_columns;	/* char * (unquoted names) */
	List	   *key_types;		/* char * (qualified type names) */
} MtJobSql;

/*
 * The UPDATE of one batch of a backfill() job.  Key strategy: parameters
 * are text, the lower key values ($1..$n, exclusive; only with has_lower)
 * then the upper ones (inclusive).  ctid strategy: $1 and $2 are tid,
 * lower inclusive, upper exclusive.  Returns the number of parameters in
 * *nparams.
 */
extern char *mt_backfill_update_sql(const MtJobSql *js, bool has_lower, int *nparams);

/* The probes that find the bounds of the next key batch. */
typedef enum MtProbe
{
	MT_PROBE_NTH,
	MT_PROBE_FIRST,
	MT_PROBE_TAIL
} MtProbe;

extern char *mt_backfill_probe_sql(const MtJobSql *js, bool has_lower, MtProbe probe,
								   int64 limit);

/* Milliseconds in an interval (months as 30 days). */
extern double mt_interval_ms(Interval *iv);

/* run_window: parse "HH:MM-HH:MM" into minutes since midnight. */
extern bool mt_parse_run_window(const char *text, int *start_min, int *end_min);

/*
 * Is "now" inside the daily window?  If not, *opens_at is when it next
 * opens.
 */
extern bool mt_in_run_window(const char *window, TimestampTz now, TimestampTz *opens_at);

/*
 * A reason to hold back the next batch of a job on relid, or NULL.  Runs
 * queries through SPI: call inside a transaction with SPI connected.
 */
extern const char *mt_throttle_reason(Oid relid);
extern bool mt_server_busy(void);

/*
 * What the throttles know of the current job's own writes: forget them
 * when a job (re)starts; add a batch's rows before it commits.
 */
extern void mt_throttle_reset(Oid relid);
extern void mt_throttle_note_rows(Oid relid, int64 rows);

#endif							/* MT_BACKFILL_INT_H */
