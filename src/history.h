/*-------------------------------------------------------------------------
 *
 * history.h
 *	  Migration history: the parts shared by apply (history_apply.c),
 *	  rollback (history_rollback.c), running a script (history_run.c) and
 *	  the queue of scheduled statements (schedule_queue.c), defined in
 *	  history.c.
 *
 * IDENTIFICATION
 *	  src/history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_HISTORY_H
#define MT_HISTORY_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/array.h"

/* GUCs of apply() and rollback() (the retry protocol, the preflight) */
extern int	mt_lock_timeout_ms;
extern int	mt_max_lock_timeout_ms;
extern int	mt_lock_retries;
extern int	mt_max_preflight_wait_ms;
extern int	mt_max_blocker_age_ms;

/* A row of migration_tools.migrations, as far as the functions need it. */
typedef struct MtMigrationRow
{
	bool		found;
	bool		visible;		/* also visible to the transaction snapshot */
	bool		baseline;		/* recorded by baseline() */
	char	   *state;
	char	   *checksum;
	char	   *down_sql;
	char	   *applied_by;		/* the role that recorded the scripts */
	int64		installed_rank;
	bool		rolling_back;	/* scheduled: statements of the down script */
	bool		rollback_failed;	/* failed in a scheduled down statement */
} MtMigrationRow;

/*
 * The argument checks of the SQL-callable functions: the history is
 * writable, an argument is neither NULL nor empty, a version is one that
 * apply() and baseline() record.
 */
extern void mt_history_check_writable(const char *funcname);
extern void mt_history_check_text_arg(FunctionCallInfo fcinfo, int argno,
									  const char *what);
extern void mt_history_check_version(const char *version);

/* Hex SHA-256, as sha256() and encode(..., 'hex') give it in SQL. */
extern char *mt_sha256_hex(const char *data, size_t len);

/* Take the history lock for the rest of the transaction. */
extern void mt_history_lock(void);

/*
 * A read-only query of the history tables with the latest snapshot, not
 * the transaction's; rows in SPI_tuptable, returns SPI_processed.
 */
extern uint64 mt_history_read_latest(const char *sql, int nargs, Oid *argtypes,
									 Datum *values, long count, const char *what);

/* The row of a version, with the latest snapshot.  SPI is connected. */
extern MtMigrationRow mt_history_read_migration(const char *version);

/* ERROR: the row of version changed under us (serialization failure). */
extern void mt_history_report_concurrent_change(const char *version);

/* ERROR unless this transaction may replace the row it read. */
extern void mt_history_check_row_writable(const char *version, MtMigrationRow *row);

/* Delete the row of a version about to be recorded again.  As the owner. */
extern void mt_history_delete_replaced(const char *version, bool seen);

/* ERROR while the rollback of the migration runs in the background. */
extern void mt_history_check_not_rolling_back(const char *version,
											  MtMigrationRow *row);

/* Lint the up script; ERROR when a finding is not allowed. */
extern void mt_history_lint_or_refuse(const char *version, const char *up_sql,
									  ArrayType *allow);

/*
 * The statements of a script that run (MtStatementInfo), without a BEGIN
 * ... COMMIT around it; what names the script in errors.
 */
extern List *mt_history_runnable_statements(const char *version, const char *what,
											const char *sql);

/* Define the history GUCs (from _PG_init). */
extern void mt_history_init(void);

#endif							/* MT_HISTORY_H */
