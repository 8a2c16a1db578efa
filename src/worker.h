/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The per-database worker (worker.c): its entry point, named in the
 *	  bgw_function_name the launcher registers.
 *
 * IDENTIFICATION
 *	  src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_WORKER_H
#define MT_WORKER_H

#include "fmgr.h"

PGDLLEXPORT void mt_worker_main(Datum main_arg);

#endif							/* MT_WORKER_H */
