/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  Small helpers shared by the subsystems: set-returning function
 *	  set-up and the SPI and transaction boilerplate of background workers.
 *
 * IDENTIFICATION
 *	  src/spi_util.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_SPI_UTIL_H
#define MT_SPI_UTIL_H

#include "fmgr.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/* Set up a materialize-mode SRF: rsinfo->setResult and setDesc ready. */
extern void mt_init_materialized_srf(FunctionCallInfo fcinfo);

/*
 * Start and finish one unit of work in a background worker, the way
 * worker_spi does: a transaction, an SPI connection and a snapshot, with
 * the activity shown in pg_stat_activity.
 */
extern void mt_bgw_begin(const char *activity);
extern void mt_bgw_commit(void);

/* SPI_connect(), failing with an internal error if it cannot. */
extern void mt_spi_connect(void);

/*
 * Run sql through SPI_execute_with_args() and fail with "could not <what>"
 * unless the result code is expected; returns SPI_processed.
 */
extern uint64 mt_spi_execute_checked(const char *sql, int nargs, Oid *argtypes,
									 Datum *values, const char *nulls,
									 bool read_only, long count,
									 int expected, const char *what);

/*
 * Set search_path for the current GUC nest level only; the caller undoes it
 * with AtEOXact_GUC(true, level), or an abort of the (sub)transaction does.
 */
extern int	mt_pin_search_path(const char *path);

/* A List of C strings as a text[] datum (an empty list: an empty array). */
extern Datum mt_text_array_from_list(List *strings);

/* How often await_job() and await_migration() look (ms). */
#define MT_AWAIT_POLL_MS	100

/*
 * Procedures that commit between polls: check the call is non-atomic and
 * connect to SPI non-atomically (returns the timeout in ms, -1 for none);
 * commit and wait one poll (returns false once the timeout has passed).
 */
extern double mt_await_begin(FunctionCallInfo fcinfo, const char *funcname,
							 int timeout_argno);
extern bool mt_await_pause(TimestampTz start, double timeout_ms);

#endif							/* MT_SPI_UTIL_H */
