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

/* Set up a materialize-mode SRF: rsinfo->setResult and setDesc ready. */
extern void mt_init_materialized_srf(FunctionCallInfo fcinfo);

/*
 * Start and finish one unit of work in a background worker, the way
 * worker_spi does: a transaction, an SPI connection and a snapshot, with
 * the activity shown in pg_stat_activity.
 */
extern void mt_bgw_begin(const char *activity);
extern void mt_bgw_commit(void);

#endif							/* MT_SPI_UTIL_H */
