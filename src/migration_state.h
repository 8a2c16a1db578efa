/*-------------------------------------------------------------------------
 *
 * migration_state.h
 *	  The state transitions of a migration (migration_tools.migrations.state),
 *	  one named function each, and the other writes of its row
 *	  (migration_state.c).
 *
 * IDENTIFICATION
 *	  src/migration_state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_MIGRATION_STATE_H
#define MT_MIGRATION_STATE_H

#include "datatype/timestamp.h"

/* What apply() records for a migration it ran or scheduled. */
typedef struct MtAppliedMigration
{
	const char *version;
	const char *description;	/* may be NULL */
	const char *checksum;
	const char *up_sql;
	const char *down_sql;		/* may be NULL */
	const char *applied_by;
	bool		scheduled;		/* 'scheduled' (no finished_at), else 'applied' */
	TimestampTz started_at;
	TimestampTz finished_at;
	int			attempts;
	double		lock_wait_ms;
	int			lock_waits_caused;
	const char *fingerprint;	/* may be NULL */
} MtAppliedMigration;

/* What is known about a failed apply() when it is recorded. */
typedef struct MtFailedMigration
{
	const char *version;
	const char *description;	/* may be NULL */
	const char *checksum;
	const char *up_sql;
	const char *down_sql;		/* may be NULL */
	const char *applied_by;
	const char *error;			/* message with SQLSTATE and statement */
	TimestampTz started_at;
	TimestampTz finished_at;
	int			attempts;
	double		lock_wait_ms;
} MtFailedMigration;

/*
 * Every function runs its statement through SPI (connected), as a role that
 * may write the history tables (the owner, or the worker's superuser).
 */

/* Delete the row of a version; returns how many rows were deleted. */
extern uint64 mt_migration_delete(const char *version);

/* New row: 'applied', or 'scheduled' for the worker (apply()). */
extern void mt_migration_insert_applied(const MtAppliedMigration *m);

/* New row: 'applied' without running anything (baseline()). */
extern void mt_migration_insert_baseline(const char *version, const char *description,
										 const char *checksum, const char *applied_by,
										 const char *fingerprint);

/* Upsert 'failed' unless applied or scheduled (the failure recorder). */
extern void mt_migration_upsert_failed(const MtFailedMigration *f);

/* -> 'rolled_back', with the fingerprint of now (rollback()).  Returns rows. */
extern uint64 mt_migration_mark_rolled_back(const char *version,
											const char *fingerprint);

/* -> 'scheduled': its down statements run in the worker.  Returns rows. */
extern uint64 mt_migration_mark_rollback_scheduled(const char *version);

/* 'failed' rollback -> 'scheduled' again.  Returns rows. */
extern uint64 mt_migration_mark_rollback_rescheduled(const char *version);

/*
 * 'scheduled' -> 'applied' ('rolled_back' for a down script) once every
 * scheduled statement of the migration is done (the worker).  Returns
 * whether the migration changed state.
 */
extern bool mt_migration_finish_apply(const char *version, const char *fingerprint);
extern bool mt_migration_finish_rollback(const char *version, const char *fingerprint);

/*
 * 'scheduled' -> 'failed': a scheduled statement (statement_no) of the up
 * or down script failed with error (the worker).
 */
extern void mt_migration_fail_scheduled(const char *version, int statement_no,
										bool down, const char *error);

/*
 * 'scheduled' -> 'failed' for every migration queued after version
 * (run_after, transitively), which failed (its rollback, with down).
 */
extern void mt_migration_fail_queued_after(const char *version, bool down);

/*
 * Add the time scheduled statement seq has run so far to the lock_wait_time
 * of its migration, while scheduled (an attempt lost to a lock timeout).
 */
extern void mt_migration_add_lock_wait(const char *version, int seq);

/*
 * 'failed' -> state ('applied' or 'rolled_back') by hand (resolve()); its
 * scheduled statements not done are deleted.  Returns rows.
 */
extern uint64 mt_migration_resolve(const char *version, const char *state);

#endif							/* MT_MIGRATION_STATE_H */
