/*-------------------------------------------------------------------------
 *
 * autonomous.h
 *	  Durable record of a failed migration, written in a transaction of its
 *	  own by a short-lived background worker, so that it survives the
 *	  abort of the caller's transaction.
 *
 * IDENTIFICATION
 *	  src/autonomous.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_AUTONOMOUS_H
#define MT_AUTONOMOUS_H

#include "datatype/timestamp.h"
#include "fmgr.h"

#include "migration_state.h"

/*
 * Upsert the migration as 'failed' in migration_tools.migrations, committed
 * by a background worker whatever becomes of the caller's transaction.
 * Waits for the worker to finish.  Returns false (after a WARNING) when no
 * worker could be started or it could not write the row.
 */
extern bool mt_record_failure(const MtFailedMigration *failure);

PGDLLEXPORT void mt_autonomous_main(Datum main_arg);

#endif							/* MT_AUTONOMOUS_H */
