/*-------------------------------------------------------------------------
 *
 * schedule_queue.c
 *	  The queue of scheduled statements (migration_tools.scheduled_statements):
 *	  how apply() and rollback() queue the statements of a script for the
 *	  background worker, and find the earlier migrations a script has to
 *	  run after (run_after).
 *
 * IDENTIFICATION
 *	  src/schedule_queue.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "history.h"
#include "lint.h"
#include "schedule_queue.h"
#include "security.h"
#include "spi_util.h"

/* A scheduled statement not yet done, as mt_schedule_pending_before() reads it. */
typedef struct PendingStatement
{
	char	   *version;
	char	   *sql;
	bool		running;
} PendingStatement;

/* The relations that the statements lock (an OID list). */
static List *
locked_relids(List *statements)
{
	List	   *relids = NIL;
	ListCell   *lc;

	foreach(lc, statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, info->locks)
		{
			MtLockTarget *target = (MtLockTarget *) lfirst(lc2);

			if (OidIsValid(target->relid))
				relids = list_append_unique_oid(relids, target->relid);
		}
	}
	return relids;
}

/*
 * The scheduled statements of other migrations than version that are not
 * done (PendingStatement), newest migration first, read as the owner with
 * the latest snapshot.  SPI is connected.
 */
static List *
read_pending(const char *version)
{
	List	   *pending = NIL;
	MtSavedUser sw;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	MemoryContext cxt = CurrentMemoryContext;
	uint64		n;
	uint64		i;

	mt_become_owner(&sw);
	values[0] = CStringGetTextDatum(version);
	n = mt_history_read_latest("SELECT s.version, s.sql, s.state = 'running'"
							   "  FROM migration_tools.scheduled_statements s"
							   "  JOIN migration_tools.migrations m ON m.version = s.version"
							   " WHERE m.state = 'scheduled' AND s.state IN ('pending', 'running')"
							   "   AND s.version <> $1"
							   " ORDER BY m.installed_rank DESC, s.seq",
							   1, argtypes, values, 0, "read scheduled statements");
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		PendingStatement *ps = palloc(sizeof(PendingStatement));
		bool		isnull;

		ps->version = SPI_getvalue(tup, desc, 1);
		ps->sql = SPI_getvalue(tup, desc, 2);
		ps->running = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		pending = lappend(pending, ps);
		MemoryContextSwitchTo(old);
	}
	mt_restore_user(&sw);
	return pending;
}

/*
 * The first relation of relids that a pending statement locks, as an
 * MtRunAfter for its migration; NULL if none.
 */
static MtRunAfter *
pending_conflict(PendingStatement *ps, List *relids)
{
	MtRunAfter *found = NULL;
	ListCell   *lc2;

	foreach(lc2, mt_analyze_script(ps->sql))
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc2);
		ListCell   *lc3;

		foreach(lc3, info->locks)
		{
			MtLockTarget *target = (MtLockTarget *) lfirst(lc3);

			if (found != NULL || !list_member_oid(relids, target->relid))
				continue;
			found = palloc(sizeof(MtRunAfter));
			found->version = ps->version;
			found->relname = get_rel_name(target->relid);
			found->running = ps->running;
		}
	}
	return found;
}

/*
 * Do earlier migrations still have scheduled statements, not yet run or
 * running, on relations that these statements lock?  A script run now
 * would wait for them (a concurrent build holds SHARE UPDATE EXCLUSIVE for
 * its whole run) while they wait for this transaction (a concurrent build
 * waits for every older snapshot), and it would reorder the migrations.
 * Returns every such migration (a MtRunAfter each), newest first: the script
 * has to run after all of them, not only the newest, since two of them may
 * be independent (builds on two of the script's tables).  The pending
 * statements are analyzed as the script is, by the parser; they are read
 * with the latest snapshot (the caller holds the history lock).  SPI is
 * connected.
 */
List *
mt_schedule_pending_before(List *statements, const char *version)
{
	List	   *relids;
	List	   *pending;
	List	   *result = NIL;
	ListCell   *lc;

	relids = locked_relids(statements);
	if (relids == NIL)
		return NIL;
	pending = read_pending(version);

	/* newest migration first */
	foreach(lc, pending)
	{
		PendingStatement *ps = (PendingStatement *) lfirst(lc);
		MtRunAfter *found = NULL;
		ListCell   *lc2;

		foreach(lc2, result)
		{
			MtRunAfter *ra = (MtRunAfter *) lfirst(lc2);

			if (strcmp(ra->version, ps->version) == 0)
				found = ra;
		}
		if (found != NULL)
			continue;			/* already known */
		found = pending_conflict(ps, relids);
		if (found != NULL)
			result = lappend(result, found);
	}

	/* running or not: is any statement of it running? */
	foreach(lc, pending)
	{
		PendingStatement *ps = (PendingStatement *) lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, result)
		{
			MtRunAfter *ra = (MtRunAfter *) lfirst(lc2);

			if (ps->running && strcmp(ra->version, ps->version) == 0)
				ra->running = true;
		}
	}
	return result;
}

/* The versions of a list of MtRunAfter. */
List *
mt_run_after_versions(List *after)
{
	List	   *versions = NIL;
	ListCell   *lc;

	foreach(lc, after)
		versions = lappend(versions, ((MtRunAfter *) lfirst(lc))->version);
	return versions;
}

/*
 * For a NOTICE: the versions of a list of MtRunAfter ("5" and "6"), and why
 * each one is waited for (Scheduled statements of migration "5" on
 * relation "a" are running and of migration "6" ...).
 */
void
mt_describe_run_after(List *after, char **names, char **why)
{
	StringInfoData n;
	StringInfoData w;
	ListCell   *lc;

	initStringInfo(&n);
	initStringInfo(&w);
	foreach(lc, after)
	{
		MtRunAfter   *ra = (MtRunAfter *) lfirst(lc);
		bool		first = foreach_current_index(lc) == 0;
		bool		last = lnext(after, lc) == NULL;

		appendStringInfo(&n, "%s\"%s\"",
						 first ? "" : last ? " and " : ", ", ra->version);
		appendStringInfo(&w, "%s of migration \"%s\" on relation \"%s\" %s",
						 first ? "Scheduled statements" : last ? " and" : ",",
						 ra->version, ra->relname ? ra->relname : "?",
						 ra->running ? "are running" : "have not run yet");
	}
	*names = n.data;
	*why = w.data;
}

/* Insert one scheduled statement.  Runs as the owner. */
void
mt_schedule_statement(const char *version, int seq, int statement_no,
				   const char *sql, const char *direction, List *run_after,
				   bool top_level, Datum run_as)
{
	Oid			types[8] = {TEXTOID, INT4OID, INT4OID, TEXTOID, NAMEOID, TEXTARRAYOID,
		BOOLOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(version);
	values[1] = Int32GetDatum(seq);
	values[2] = Int32GetDatum(statement_no);
	values[3] = CStringGetTextDatum(sql);
	values[4] = run_as;
	values[5] = run_after != NIL ? mt_text_array_from_list(run_after) : (Datum) 0;
	nulls[5] = run_after != NIL ? ' ' : 'n';
	values[6] = BoolGetDatum(top_level);
	values[7] = CStringGetTextDatum(direction);
	(void) mt_spi_execute_checked("INSERT INTO migration_tools.scheduled_statements"
								  " (version, seq, statement_no, sql, run_as, direction,"
								  "  run_after, top_level, run_as_login)"
								  " VALUES ($1, $2, $3, $4, $5, $8, $6, $7,"
								  "  coalesce((SELECT r.rolcanlogin AND (r.rolvaliduntil IS NULL"
								  "                OR r.rolvaliduntil > pg_catalog.now())"
								  "              FROM pg_catalog.pg_roles r WHERE r.rolname = $5), false))",
								  8, types, values, nulls, false, 0,
								  SPI_OK_INSERT,
								  strcmp(direction, "down") == 0 ?
								  psprintf("schedule statement %d of the down script of migration \"%s\"",
										   statement_no, version) :
								  psprintf("schedule statement %d of migration \"%s\"",
										   statement_no, version));
}

/*
 * Schedule statements in script order, numbered from seq + 1: each one
 * that needs the top level is a row of its own; consecutive ones that can
 * run in a transaction block form one row (top_level = false), which the
 * worker runs in one transaction under migration_tools.max_lock_timeout.
 * Runs as the owner.  Returns how many rows were inserted.
 */
int
mt_schedule_in_order(const char *version, List *statements, const char *direction,
				  List *run_after, int seq, Datum run_as)
{
	ListCell   *lc;
	StringInfoData group;
	int			group_first = 0;
	int			n = 0;

	initStringInfo(&group);
	foreach(lc, statements)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);

		if (!info->needs_top_level)
		{
			if (group_first == 0)
				group_first = info->statement;
			else
				appendStringInfoString(&group, ";\n");
			appendStringInfoString(&group, info->sql);
			continue;
		}
		if (group_first != 0)
		{
			mt_schedule_statement(version, ++seq, group_first, group.data,
							   direction, run_after, false, run_as);
			n++;
			resetStringInfo(&group);
			group_first = 0;
		}
		mt_schedule_statement(version, ++seq, info->statement, info->sql,
						   direction, run_after, true, run_as);
		n++;
	}
	if (group_first != 0)
	{
		mt_schedule_statement(version, ++seq, group_first, group.data,
						   direction, run_after, false, run_as);
		n++;
	}
	pfree(group.data);
	return n;
}
