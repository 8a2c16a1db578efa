/*-------------------------------------------------------------------------
 *
 * migration_state.c
 *	  The state transitions of a migration: every statement that writes
 *	  migration_tools.migrations.state, one named function per transition.
 *
 * A migration is 'applied' (apply() ran it, baseline() recorded it, or the
 * worker ran its last scheduled statement), 'scheduled' (statements of its
 * up or down script wait for the worker), 'failed' (apply() failed, a
 * scheduled statement failed, or a migration it was queued after failed)
 * or 'rolled_back'.  apply() and baseline() write a new row, replacing a
 * failed or rolled back one; the failure recorder (autonomous.c) upserts a
 * failed row; rollback() and the worker update the row.  The callers hold
 * the history lock where the history requires it; these functions only
 * write, through SPI, as whatever role the caller runs as.
 *
 * IDENTIFICATION
 *	  src/migration_state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "migration_state.h"
#include "spi_util.h"

/* A C string as a text Datum, or NULL (nulls[i] = 'n'). */
static void
set_text(Datum *values, char *nulls, int i, const char *s)
{
	values[i] = s ? CStringGetTextDatum(s) : (Datum) 0;
	nulls[i] = s ? ' ' : 'n';
}

/*
 * Run sql, whose $1 is the version and $2 (when arg2 is given, NULL allowed)
 * a text; fail with "could not <what>" unless the result is expected.
 * Returns how many rows it touched.
 */
static uint64
by_version(const char *sql, const char *version, bool has_arg2,
		   const char *arg2, int expected, const char *what)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	values[0] = CStringGetTextDatum(version);
	if (has_arg2)
		set_text(values, nulls, 1, arg2);
	return mt_spi_execute_checked(sql, has_arg2 ? 2 : 1, argtypes, values, nulls,
								  false, 0, expected, what);
}

/*
 * Delete the row of a version that is about to be recorded again (a failed
 * or rolled back attempt).  Returns how many rows were deleted.
 */
uint64
mt_migration_delete(const char *version)
{
	return by_version("DELETE FROM migration_tools.migrations WHERE version = $1",
					  version, false, NULL, SPI_OK_DELETE,
					  "replace a migration");
}

/*
 * A new row for a migration apply() ran ('applied', with finished_at) or
 * left to the worker ('scheduled', finished_at NULL).
 */
void
mt_migration_insert_applied(const MtAppliedMigration *m)
{
	Oid			argtypes[15] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, NAMEOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID,
	FLOAT8OID, INT4OID, TEXTOID, BOOLOID, TEXTOID};
	Datum		values[15];
	char		nulls[15];
	int			i;

	for (i = 0; i < 15; i++)
		nulls[i] = ' ';
	values[0] = CStringGetTextDatum(m->version);
	set_text(values, nulls, 1, m->description);
	values[2] = CStringGetTextDatum(m->checksum);
	values[3] = CStringGetTextDatum(m->up_sql);
	set_text(values, nulls, 4, m->down_sql);
	values[5] = CStringGetTextDatum(m->scheduled ? "scheduled" : "applied");
	values[6] = DirectFunctionCall1(namein, CStringGetDatum(m->applied_by));
	values[7] = TimestampTzGetDatum(m->started_at);
	values[8] = TimestampTzGetDatum(m->finished_at);
	nulls[8] = m->scheduled ? 'n' : ' ';
	values[9] = Int32GetDatum(m->attempts);
	values[10] = Float8GetDatum(m->lock_wait_ms);
	values[11] = Int32GetDatum(m->lock_waits_caused);
	set_text(values, nulls, 12, m->fingerprint);
	values[13] = BoolGetDatum(false);
	values[14] = (Datum) 0;
	nulls[14] = 'n';

	(void) mt_spi_execute_checked("INSERT INTO migration_tools.migrations"
								  " (version, description, checksum, up_sql, down_sql, state,"
								  "  applied_by, started_at, finished_at, execution_time,"
								  "  attempts, lock_wait_time, lock_waits_caused,"
								  "  catalog_fingerprint, baseline, error)"
								  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9 - $8,"
								  "  $10, $11 * interval '1 millisecond', $12, $13, $14, $15)",
								  15, argtypes, values, nulls, false, 0,
								  SPI_OK_INSERT,
								  psprintf("record migration \"%s\"", m->version));
}

/*
 * A new 'applied' row for a version recorded by baseline(): nothing ran,
 * the checksum is that of an empty script.
 */
void
mt_migration_insert_baseline(const char *version, const char *description,
							 const char *checksum, const char *applied_by,
							 const char *fingerprint)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, NAMEOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(version);
	set_text(values, nulls, 1, description);
	values[2] = CStringGetTextDatum(checksum);
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(applied_by));
	set_text(values, nulls, 4, fingerprint);
	(void) mt_spi_execute_checked("INSERT INTO migration_tools.migrations"
								  " (version, description, checksum, up_sql, state, applied_by,"
								  "  started_at, finished_at, execution_time, attempts,"
								  "  catalog_fingerprint, baseline)"
								  " VALUES ($1, $2, $3, '', 'applied', $4,"
								  "  now(), now(), '0'::interval, 0, $5, true)",
								  5, argtypes, values, nulls, false, 0,
								  SPI_OK_INSERT,
								  psprintf("record migration \"%s\"", version));
}

/*
 * The row of a failed apply(), written by the failure recorder: inserted,
 * or replacing a failed or rolled back row (and becoming newest); an
 * applied or scheduled row is left alone.
 */
void
mt_migration_upsert_failed(const MtFailedMigration *f)
{
	Oid			argtypes[11] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID, FLOAT8OID};
	Datum		values[11];
	char		nulls[11];
	int			i;

	set_text(values, nulls, 0, f->version);
	set_text(values, nulls, 1, f->description);
	set_text(values, nulls, 2, f->checksum);
	set_text(values, nulls, 3, f->up_sql);
	set_text(values, nulls, 4, f->down_sql);
	set_text(values, nulls, 5, f->applied_by);
	set_text(values, nulls, 6, f->error);
	values[7] = TimestampTzGetDatum(f->started_at);
	values[8] = TimestampTzGetDatum(f->finished_at);
	values[9] = Int32GetDatum(f->attempts);
	values[10] = Float8GetDatum(f->lock_wait_ms);
	for (i = 7; i < 11; i++)
		nulls[i] = ' ';

	(void) mt_spi_execute_checked("INSERT INTO migration_tools.migrations AS m"
								  " (version, description, checksum, up_sql, down_sql, state,"
								  "  applied_by, error, started_at, finished_at, execution_time,"
								  "  attempts, lock_wait_time)"
								  " VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7, $8, $9, $9 - $8,"
								  "  $10, $11 * interval '1 millisecond')"
								  " ON CONFLICT (version) DO UPDATE SET"
								  "  description = excluded.description,"
								  "  checksum = excluded.checksum,"
								  "  up_sql = excluded.up_sql,"
								  "  down_sql = excluded.down_sql,"
								  "  state = 'failed',"
								  "  applied_by = excluded.applied_by,"
								  "  error = excluded.error,"
								  "  started_at = excluded.started_at,"
								  "  finished_at = excluded.finished_at,"
								  "  execution_time = excluded.execution_time,"
								  "  attempts = excluded.attempts,"
								  "  lock_wait_time = excluded.lock_wait_time,"
								  "  lock_waits_caused = 0,"
								  "  catalog_fingerprint = NULL,"
								  "  rolled_back_at = NULL,"
								  "  baseline = false,"
								  "  installed_rank = nextval('migration_tools.migrations_installed_rank_seq')"
								  " WHERE m.state NOT IN ('applied', 'scheduled')",
								  11, argtypes, values, nulls, false, 0,
								  SPI_OK_INSERT, "insert the failed migration row");
}

/*
 * rollback() ran the whole down script: 'rolled_back', with the schema
 * fingerprint of now.  Returns how many rows changed.
 */
uint64
mt_migration_mark_rolled_back(const char *version, const char *fingerprint)
{
	return by_version("UPDATE migration_tools.migrations"
					  " SET state = 'rolled_back', rolled_back_at = clock_timestamp(),"
					  "     catalog_fingerprint = $2"
					  " WHERE version = $1",
					  version, true, fingerprint, SPI_OK_UPDATE,
					  psprintf("mark migration \"%s\" rolled back", version));
}

/*
 * rollback() scheduled statements of the down script: 'scheduled' until
 * the worker has run them.  Returns how many rows changed.
 */
uint64
mt_migration_mark_rollback_scheduled(const char *version)
{
	return by_version("UPDATE migration_tools.migrations"
					  " SET state = 'scheduled', error = NULL"
					  " WHERE version = $1",
					  version, false, NULL, SPI_OK_UPDATE,
					  psprintf("mark migration \"%s\" scheduled", version));
}

/*
 * A rollback whose scheduled statements failed is scheduled again: from
 * 'failed' back to 'scheduled'.  Returns how many rows changed.
 */
uint64
mt_migration_mark_rollback_rescheduled(const char *version)
{
	return by_version("UPDATE migration_tools.migrations"
					  "   SET state = 'scheduled', error = NULL"
					  " WHERE version = $1 AND state = 'failed'",
					  version, false, NULL, SPI_OK_UPDATE,
					  psprintf("mark migration \"%s\" scheduled", version));
}

/*
 * The last scheduled statement of the down script is done: 'rolled_back',
 * with the schema fingerprint of now.  Returns whether it changed.
 */
bool
mt_migration_finish_rollback(const char *version, const char *fingerprint)
{
	return by_version("UPDATE migration_tools.migrations"
					  "   SET state = 'rolled_back', error = NULL,"
					  "       rolled_back_at = pg_catalog.clock_timestamp(),"
					  "       catalog_fingerprint = $2"
					  " WHERE version = $1 AND state = 'scheduled'"
					  "   AND NOT EXISTS (SELECT FROM migration_tools.scheduled_statements s"
					  "                    WHERE s.version = $1 AND s.state <> 'done')",
					  version, true, fingerprint, SPI_OK_UPDATE,
					  "record a migration") > 0;
}

/*
 * The last scheduled statement of the up script is done: 'applied', with
 * the schema fingerprint of now and the timings of the whole run.  Returns
 * whether it changed.
 */
bool
mt_migration_finish_apply(const char *version, const char *fingerprint)
{
	return by_version("UPDATE migration_tools.migrations"
					  "   SET state = 'applied', error = NULL,"
					  "       finished_at = pg_catalog.clock_timestamp(),"
					  "       execution_time = pg_catalog.clock_timestamp() - started_at,"
					  "       catalog_fingerprint = $2,"
					  /* the most attempts any part of the script needed */
					  "       attempts = GREATEST(attempts,"
					  "           (SELECT pg_catalog.max(s.attempts)"
					  "              FROM migration_tools.scheduled_statements s"
					  "             WHERE s.version = $1 AND s.direction = 'up'))"
					  " WHERE version = $1 AND state = 'scheduled'"
					  "   AND NOT EXISTS (SELECT FROM migration_tools.scheduled_statements s"
					  "                    WHERE s.version = $1 AND s.state <> 'done')",
					  version, true, fingerprint, SPI_OK_UPDATE,
					  "record a migration") > 0;
}

/*
 * A scheduled statement failed: the migration fails with it.  A rollback
 * keeps the timings of the apply.
 */
void
mt_migration_fail_scheduled(const char *version, int statement_no, bool down,
							const char *error)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(version);
	/* $2 is the statement's number, as the error message shows it */
	values[1] = Int32GetDatum(statement_no);
	values[2] = CStringGetTextDatum(error);
	if (!down)
		mt_spi_execute_checked("UPDATE migration_tools.migrations"
							   "   SET state = 'failed',"
							   "       error = pg_catalog.format('scheduled statement %s failed: %s', $2, $3),"
							   "       finished_at = pg_catalog.clock_timestamp(),"
							   "       execution_time = pg_catalog.clock_timestamp() - started_at,"
							   "       attempts = GREATEST(attempts,"
							   "           (SELECT pg_catalog.max(s.attempts)"
							   "              FROM migration_tools.scheduled_statements s"
							   "             WHERE s.version = $1 AND s.direction = 'up'))"
							   " WHERE version = $1 AND state = 'scheduled'",
							   3, argtypes, values, NULL, false, 0,
							   SPI_OK_UPDATE, "record a migration");
	else
		mt_spi_execute_checked("UPDATE migration_tools.migrations"
							   "   SET state = 'failed',"
							   "       error = pg_catalog.format('rollback: scheduled statement %s of the down script failed: %s', $2, $3)"
							   " WHERE version = $1 AND state = 'scheduled'",
							   3, argtypes, values, NULL, false, 0,
							   SPI_OK_UPDATE, "record a migration");
}

/*
 * The migrations queued after version (run_after, transitively:
 * rollback_to()'s older rollbacks, apply()'s migrations behind scheduled
 * statements) cannot run now: they fail too, without running anything.
 * rollback() or rollback_to() schedules a rollback again; apply() runs a
 * failed migration again.
 */
void
mt_migration_fail_queued_after(const char *version, bool down)
{
	Oid			argtypes[2] = {TEXTOID, BOOLOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(version);
	values[1] = BoolGetDatum(down);
	mt_spi_execute_checked("WITH RECURSIVE after_it (version) AS ("
						   "   SELECT s.version FROM migration_tools.scheduled_statements s"
						   "    WHERE $1 = ANY (s.run_after) AND s.state <> 'done'"
						   "   UNION"
						   "   SELECT s.version FROM migration_tools.scheduled_statements s"
						   "     JOIN after_it a ON a.version = ANY (s.run_after)"
						   "    WHERE s.state <> 'done')"
						   " UPDATE migration_tools.migrations m"
						   "    SET state = 'failed',"
						   "        error = CASE WHEN EXISTS (SELECT FROM migration_tools.scheduled_statements d"
						   "                                   WHERE d.version = m.version AND d.direction = 'down'"
						   "                                     AND d.state <> 'done')"
						   "                     THEN 'rollback: ' ELSE '' END"
						   "                || CASE WHEN $2"
						   "                     THEN pg_catalog.format('not run, because the rollback of migration \"%s\" failed', $1)"
						   "                     ELSE pg_catalog.format('not run, because migration \"%s\" failed', $1) END,"
	/* a rollback keeps the timings of the apply */
						   "        finished_at = CASE WHEN m.finished_at IS NULL"
						   "                           THEN pg_catalog.clock_timestamp() ELSE m.finished_at END,"
						   "        execution_time = CASE WHEN m.finished_at IS NULL"
						   "                              THEN pg_catalog.clock_timestamp() - m.started_at"
						   "                              ELSE m.execution_time END"
						   "  WHERE m.version IN (SELECT version FROM after_it) AND m.state = 'scheduled'",
						   2, argtypes, values, NULL, false, 0,
						   SPI_OK_UPDATE, "record the migrations queued after it");
}

/*
 * An attempt of scheduled statement seq of the up script lost to a lock
 * timeout: the time since it started counts into the migration's
 * lock_wait_time (the state stays 'scheduled').
 */
void
mt_migration_add_lock_wait(const char *version, int seq)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(version);
	values[1] = Int32GetDatum(seq);
	mt_spi_execute_checked("UPDATE migration_tools.migrations m"
						   "   SET lock_wait_time = m.lock_wait_time"
						   "       + (pg_catalog.clock_timestamp() - s.started_at)"
						   "  FROM migration_tools.scheduled_statements s"
						   " WHERE s.version = $1 AND s.seq = $2 AND m.version = s.version"
						   "   AND m.state = 'scheduled' AND s.started_at IS NOT NULL",
						   2, argtypes, values, NULL, false, 0,
						   SPI_OK_UPDATE, "record the lock wait of a scheduled statement");
}

/*
 * 'failed' -> 'applied' or 'rolled_back' by hand (resolve()), as prisma
 * migrate resolve does: the scheduled statements of the migration that are
 * not done (failed, or never run behind a failed one) are deleted, so the
 * worker never runs them.  The error stays for the record.  Returns rows.
 */
uint64
mt_migration_resolve(const char *version, const char *state)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	Assert(strcmp(state, "applied") == 0 || strcmp(state, "rolled_back") == 0);
	values[0] = CStringGetTextDatum(version);
	values[1] = CStringGetTextDatum(state);
	mt_spi_execute_checked("DELETE FROM migration_tools.scheduled_statements"
						   " WHERE version = $1 AND state IN ('pending', 'failed')",
						   1, argtypes, values, NULL, false, 0,
						   SPI_OK_DELETE,
						   psprintf("cancel the scheduled statements of migration \"%s\"",
									version));
	return mt_spi_execute_checked("UPDATE migration_tools.migrations"
								  " SET state = $2,"
								  "     finished_at = CASE WHEN $2 = 'applied'"
								  "         THEN coalesce(finished_at, clock_timestamp()) ELSE finished_at END,"
								  "     rolled_back_at = CASE WHEN $2 = 'rolled_back'"
								  "         THEN clock_timestamp() ELSE rolled_back_at END"
								  " WHERE version = $1 AND state = 'failed'",
								  2, argtypes, values, NULL, false, 0,
								  SPI_OK_UPDATE,
								  psprintf("resolve migration \"%s\"", version));
}
