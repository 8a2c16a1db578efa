/*-------------------------------------------------------------------------
 *
 * schedule_index.c
 *	  INVALID indexes left by scheduled statements: which index a scheduled
 *	  statement builds, the INVALID indexes of its table, dropping the
 *	  leftovers of a failed or interrupted concurrent build, and checking
 *	  that a build that succeeded left a VALID index.
 *
 * A failed concurrent index build leaves an INVALID index behind, and a
 * retry of the same statement would then fail with "relation already
 * exists".  So after a failure the INVALID indexes that the attempt left
 * on the table are dropped (DROP INDEX CONCURRENTLY, top level, through
 * schedule.c), and before a retry or the re-run of an orphaned statement
 * an INVALID index of the statement's name, or an INVALID
 * "_ccnew"/"_ccold" index left by REINDEX CONCURRENTLY, is dropped first.
 *
 * IDENTIFICATION
 *	  src/schedule_index.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "catalog/index.h"
#include "catalog/namespace.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "locks.h"
#include "schedule_index.h"
#include "schedule.h"
#include "spi_util.h"

/*
 * Which table a statement builds an index on, under which name: only
 * concurrent builds leave INVALID indexes behind.  Runs in a transaction;
 * a statement that does not parse has no target (running it reports the
 * syntax error).
 */
void
mt_schedule_find_index_target(const char *sql, MtIndexTarget *target)
{
	List	   *volatile stmts = NIL;
	RawStmt    *raw;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		stmts = NIL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;

	if (list_length(stmts) != 1)
		return;
	raw = linitial_node(RawStmt, stmts);

	if (IsA(raw->stmt, IndexStmt))
	{
		IndexStmt  *stmt = (IndexStmt *) raw->stmt;
		Oid			relid;

		if (!stmt->concurrent)
			return;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid))
			return;
		target->tableid = relid;
		target->nspname = get_namespace_name(get_rel_namespace(relid));
		target->idxname = stmt->idxname ? pstrdup(stmt->idxname) : NULL;
		if (target->idxname)
		{
			Oid			indexid = get_relname_relid(target->idxname,
													get_rel_namespace(relid));
			HeapTuple	tup;

			tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
			if (HeapTupleIsValid(tup))
			{
				Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);

				target->built = index->indisvalid && index->indrelid == relid;
				target->stale = !index->indisvalid && index->indrelid == relid;
				ReleaseSysCache(tup);
			}
		}
	}
	else if (IsA(raw->stmt, ReindexStmt))
	{
		ReindexStmt *stmt = (ReindexStmt *) raw->stmt;
		ListCell   *lc;
		bool		concurrently = false;
		Oid			relid;

		foreach(lc, stmt->params)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "concurrently") == 0)
				concurrently = defGetBoolean(opt);
		}
		if (!concurrently || stmt->relation == NULL)
			return;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid))
			return;
		target->reindex = true;
		if (stmt->kind == REINDEX_OBJECT_INDEX)
		{
			target->reindexed = pstrdup(stmt->relation->relname);
			relid = IndexGetRelation(relid, true);
			if (!OidIsValid(relid))
				return;
		}
		target->tableid = relid;
		target->nspname = get_namespace_name(get_rel_namespace(relid));
	}
}

/*
 * OIDs of the INVALID indexes of a table, as a list in cxt.  Caller is
 * connected to SPI.
 */
List *
mt_schedule_invalid_indexes(Oid tableid, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	List	   *result = NIL;

	values[0] = ObjectIdGetDatum(tableid);
	mt_spi_execute_checked("SELECT indexrelid FROM pg_catalog.pg_index"
						   " WHERE indrelid = $1 AND NOT indisvalid",
						   1, argtypes, values, NULL, true, 0,
						   SPI_OK_SELECT, "read pg_index");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			indexid;
		MemoryContext oldcxt;

		indexid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												 SPI_tuptable->tupdesc, 1, &isnull));
		oldcxt = MemoryContextSwitchTo(cxt);
		result = lappend_oid(result, indexid);
		MemoryContextSwitchTo(oldcxt);
	}
	return result;
}

/*
 * Drop the INVALID indexes a failed run of the statement left on its
 * table, with DROP INDEX CONCURRENTLY at top level (as the worker's role).
 * With only_known_names (before a retry or the re-run of an orphan, when
 * we cannot know what was there before), only an index of the name the
 * statement creates, or REINDEX CONCURRENTLY's "_ccnew"/"_ccold" copies of
 * the reindexed indexes; otherwise those of them that were not there before
 * the run (for an unnamed build, every INVALID index that was not there
 * before: it cannot be told from another worker's build in progress).
 * Never by the diff alone for a named build: two workers may build indexes
 * on the same table at once, and the other's stays INVALID until it is
 * done; a cleanup that dropped it would later drop the finished index.
 * The drops run with migration_tools.applying_version set to version (the
 * statement's migration), so that ddl_log ties them to it.
 */
void
mt_schedule_drop_invalid_indexes(MtIndexTarget *target, bool only_known_names,
								 const char *version, MemoryContext cxt)
{
	List	   *drops = NIL;
	ListCell   *lc;

	if (!OidIsValid(target->tableid))
		return;
	if (only_known_names && target->idxname == NULL && !target->reindex)
	{
		List	   *invalid;

		/*
		 * An unnamed build: its INVALID leftover cannot be told from other
		 * INVALID indexes of the table.  Say which there are.
		 */
		mt_bgw_begin("migration_tools: looking for invalid indexes");
		invalid = mt_schedule_invalid_indexes(target->tableid, CurrentMemoryContext);
		foreach(lc, invalid)
			ereport(WARNING,
					(errmsg("migration_tools: table \"%s\" has an INVALID index \"%s\" that a scheduled statement may have left",
							get_rel_name(target->tableid), get_rel_name(lfirst_oid(lc))),
					 errhint("Drop it with DROP INDEX CONCURRENTLY if nobody else is building it; name the indexes of scheduled statements so that this is done for you.")));
		mt_bgw_commit();
		MemoryContextSwitchTo(cxt);
		return;
	}

	mt_bgw_begin("migration_tools: looking for invalid indexes");
	{
		List	   *invalid = mt_schedule_invalid_indexes(target->tableid, CurrentMemoryContext);

		foreach(lc, invalid)
		{
			Oid			indexid = lfirst_oid(lc);
			char	   *name = get_rel_name(indexid);
			bool		drop;

			if (name == NULL)
				continue;
			if (only_known_names && target->idxname != NULL)
				drop = (strcmp(name, target->idxname) == 0);
			else if (only_known_names)
			{
				/* REINDEX CONCURRENTLY names its copies <index>_ccnew[N] */
				drop = (strstr(name, "_ccnew") != NULL || strstr(name, "_ccold") != NULL) &&
					(target->reindexed == NULL ||
					 strncmp(name, target->reindexed, strlen(target->reindexed)) == 0);
			}
			else if (list_member_oid(target->invalid_before, indexid))
				drop = false;
			else if (target->idxname != NULL)
			{
				/*
				 * Only the index this statement builds: another worker may
				 * be building another index of the table concurrently, and
				 * that one is INVALID until its build is done.
				 */
				drop = (strcmp(name, target->idxname) == 0);
			}
			else if (target->reindex)
				drop = (strstr(name, "_ccnew") != NULL || strstr(name, "_ccold") != NULL) &&
					(target->reindexed == NULL ||
					 strncmp(name, target->reindexed, strlen(target->reindexed)) == 0);
			else
				drop = true;	/* an unnamed build: cannot be told apart */

			if (drop)
			{
				MemoryContext old = MemoryContextSwitchTo(cxt);

				drops = lappend(drops,
								psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s",
										 quote_qualified_identifier(get_namespace_name(get_rel_namespace(indexid)),
																	name)));
				MemoryContextSwitchTo(old);
			}
		}
	}
	mt_bgw_commit();
	MemoryContextSwitchTo(cxt);

	foreach(lc, drops)
	{
		char	   *drop = lfirst(lc);

		ereport(LOG,
				(errmsg("migration_tools: dropping an invalid index left by a failed scheduled statement"),
				 errdetail("Running \"%s\".", drop)));
		mt_schedule_run_top_level(drop, NULL, version, false, cxt);
	}
}

/*
 * Does another session hold a lock on the table that conflicts with SHARE
 * UPDATE EXCLUSIVE (as a concurrent index build does for its whole run)?
 */
bool
mt_schedule_table_lock_held(Oid tableid, MemoryContext cxt)
{
	List	   *conflicts;
	ListCell   *lc;
	bool		held = false;

	mt_bgw_begin("migration_tools: looking for a build in progress");
	conflicts = mt_lock_conflicts(MyDatabaseId, tableid, ShareUpdateExclusiveLock);
	foreach(lc, conflicts)
	{
		MtLockConflict *c = (MtLockConflict *) lfirst(lc);

		if (c->granted && c->pid != MyProcPid)
			held = true;
	}
	mt_bgw_commit();
	MemoryContextSwitchTo(cxt);
	return held;
}

/*
 * After a concurrent build that succeeded: the index of its name must be
 * there and VALID.  CREATE INDEX CONCURRENTLY IF NOT EXISTS succeeds
 * without building anything when an INVALID index of that name is left
 * from an earlier build; the migration must not be applied then.
 */
void
mt_schedule_check_index_built(MtIndexTarget *target, MemoryContext cxt)
{
	bool		invalid = false;
	Oid			indexid;

	if (!OidIsValid(target->tableid) || target->idxname == NULL)
		return;
	mt_bgw_begin("migration_tools: checking the index");
	indexid = get_relname_relid(target->idxname, get_rel_namespace(target->tableid));
	if (OidIsValid(indexid))
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));

		if (HeapTupleIsValid(tup))
		{
			invalid = !((Form_pg_index) GETSTRUCT(tup))->indisvalid;
			ReleaseSysCache(tup);
		}
	}
	mt_bgw_commit();
	MemoryContextSwitchTo(cxt);
	if (invalid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" exists but is INVALID", target->idxname),
				 errdetail("The statement did not build it: an earlier concurrent build of that name failed, or is still running."),
				 errhint("Drop it with DROP INDEX CONCURRENTLY (once no build of it runs), then apply the migration again.")));
}
