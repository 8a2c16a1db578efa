/*-------------------------------------------------------------------------
 *
 * lint_rules_ddl.c
 *	  The rules of the schema and maintenance statements other than CREATE
 *	  and ALTER TABLE: CREATE INDEX, DROP, RENAME, TRUNCATE, VACUUM FULL,
 *	  CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW, LOCK TABLE, ALTER DOMAIN.
 *
 * Each function reports the findings of one statement on existing
 * relations, and records in the walk's state what the statement changes
 * for the statements after it (a new index, a dropped, renamed or
 * truncated table).
 *
 * IDENTIFICATION
 *	  src/lint_rules_ddl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "nodes/makefuncs.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "lint_facts.h"
#include "lint_rules_ddl.h"

/* CREATE INDEX: remember the index; concurrent builds on existing tables. */
void
mt_lint_index(LintState *st, IndexStmt *stmt)
{
	TableFacts	tf;

	mt_table_facts(st, stmt->relation, &tf);
	/* IF NOT EXISTS of an index that exists builds nothing */
	if (stmt->if_not_exists && stmt->idxname && OidIsValid(tf.relid) &&
		OidIsValid(get_relname_relid(stmt->idxname, get_rel_namespace(tf.relid))))
		return;
	if (stmt->idxname)
	{
		RangeVar   *irv = makeRangeVar(stmt->relation ? stmt->relation->schemaname : NULL,
									   stmt->idxname, -1);

		mt_remember_rangevar(st, &st->created, irv);
	}
	/* the server cannot build an index on a partitioned table concurrently */
	if (stmt->concurrent && tf.relkind == RELKIND_PARTITIONED_TABLE &&
		stmt->relation && stmt->relation->inh)
	{
		mt_add_finding(st, "create-index-non-concurrently", MT_SEV_ERROR, &tf, ShareUpdateExclusiveLock, false, tf.rows,
					   "CREATE INDEX ON ONLY the parent (invalid, instant), CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX parent_index ATTACH PARTITION each one.",
					   "CREATE INDEX CONCURRENTLY fails on partitioned table %s: a partitioned table cannot be indexed concurrently",
					   tf.name);
		return;
	}
	if (stmt->concurrent || !is_existing(&tf))
		return;
	/* ON ONLY a partitioned table: an empty, invalid index, built at once */
	if (tf.relkind == RELKIND_PARTITIONED_TABLE && stmt->relation &&
		!stmt->relation->inh)
		return;
	/*
	 * An empty plain table (no blocks now, measured without waiting for a lock,
	 * analyzed or never: reltuples -1) is indexed at once: nothing to say.
	 */
	if (tf.rows == 0 && tf.relkind == RELKIND_RELATION)
		return;
	if (tf.relkind == RELKIND_PARTITIONED_TABLE)
		mt_add_finding(st, "create-index-non-concurrently", MT_SEV_ERROR, &tf, ShareLock, false, tf.rows,
					   "A partitioned table cannot be indexed concurrently: CREATE INDEX ON ONLY the parent (invalid, instant), CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX parent_index ATTACH PARTITION each one.",
					   "CREATE INDEX on partitioned table %s blocks writes to every partition while the indexes build",
					   tf.name);
	else
		mt_add_finding(st, "create-index-non-concurrently", MT_SEV_ERROR, &tf, ShareLock, false, tf.rows,
					   "Use CREATE INDEX CONCURRENTLY, outside a transaction block (apply() schedules it to run after commit).",
					   "CREATE INDEX on existing table %s blocks writes while the index builds",
					   tf.name);
}

/* DROP TABLE and DROP INDEX of relations the script did not create. */
void
mt_lint_drop(LintState *st, DropStmt *stmt)
{
	ListCell   *lc;

	if (stmt->removeType != OBJECT_TABLE && stmt->removeType != OBJECT_INDEX)
		return;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);
		RangeVar   *rv;
		TableFacts	tf;
		ListCell   *lc2;
		bool		ok = IsA(obj, List) && list_length((List *) obj) <= 3;

		if (ok)
			foreach(lc2, (List *) obj)
				if (!IsA(lfirst(lc2), String))
				ok = false;
		if (!ok)
			continue;
		rv = makeRangeVarFromNameList((List *) obj);
		mt_table_facts(st, rv, &tf);
		/* from here on, the name is free for a new relation */
		mt_remember_gone(st, tf.relid);
		if (tf.is_new)
			continue;
		if (stmt->removeType == OBJECT_TABLE)
			mt_add_finding(st, "drop-table", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, tf.rows,
						   "Deploy application code that no longer uses the table first; consider renaming it away for a release before dropping it.",
						   "dropping table %s loses its data and breaks code that still uses it",
						   tf.name);
		else if (!stmt->concurrent)
			mt_add_finding(st, "drop-index-non-concurrently", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, -1,
						   "Use DROP INDEX CONCURRENTLY, outside a transaction block (apply() schedules it to run after commit).",
						   "DROP INDEX %s takes an ACCESS EXCLUSIVE lock on its table, blocking reads and writes while it waits for running queries",
						   tf.name);
	}
}

/* Renaming a column or a table that running code uses. */
void
mt_lint_rename(LintState *st, RenameStmt *stmt)
{
	TableFacts	tf;

	if (stmt->relation == NULL)
		return;
	if (stmt->renameType == OBJECT_COLUMN && stmt->relationType == OBJECT_TABLE)
	{
		mt_table_facts(st, stmt->relation, &tf);
		if (is_existing(&tf) && stmt->subname)
			mt_add_finding(st, "rename-column", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, -1,
						   "Expand and contract: add the new column, write both, backfill, move readers, then drop the old one; or give old code a view with the old name.",
						   "renaming column \"%s\" of %s breaks running code that uses the old name",
						   stmt->subname, tf.name);
	}
	else if (stmt->renameType == OBJECT_TABLE)
	{
		mt_table_facts(st, stmt->relation, &tf);
		/* the old name is free for a new table from here on */
		mt_remember_gone(st, tf.relid);
		if (is_existing(&tf))
			mt_add_finding(st, "rename-table", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, -1,
						   "Rename in steps: rename the table and create a view with the old name for the code still running, then drop the view once nothing uses it.",
						   "renaming table %s breaks running code that uses the old name",
						   tf.name);
		/* a new or emptied table stays so under its new name */
		if (stmt->newname && (tf.is_new || tf.emptied))
		{
			RangeVar   *nrv = makeRangeVar(stmt->relation->schemaname,
										   stmt->newname, -1);

			mt_remember_rangevar(st, tf.is_new ? &st->created : &st->emptied_names, nrv);
		}
	}
}

/* TRUNCATE: a finding for existing tables; the tables are empty afterwards. */
void
mt_lint_truncate(LintState *st, TruncateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = (RangeVar *) lfirst(lc);
		TableFacts	tf;

		mt_table_facts(st, rv, &tf);
		if (!tf.is_new && !tf.emptied)
			mt_add_finding(st, "truncate", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, tf.rows,
						   "Make sure losing every row is intended; to delete part of the rows use batched deletes (migration_tools.run_batched()).",
						   "TRUNCATE %s removes every row and takes an ACCESS EXCLUSIVE lock",
						   tf.name);
		mt_remember_rangevar(st, &st->emptied_names, rv);
	}
}

/* VACUUM FULL of one table or of the whole database. */
void
mt_lint_vacuum(LintState *st, VacuumStmt *stmt)
{
	ListCell   *lc;

	if (!stmt->is_vacuumcmd || !mt_option_is_true(stmt->options, "full"))
		return;
	if (stmt->rels == NIL)
	{
		mt_add_finding(st, "vacuum-full", MT_SEV_ERROR, NULL, AccessExclusiveLock, true, -1,
					   "Use plain VACUUM, or an online repack tool such as pg_repack or pg_squeeze.",
					   "VACUUM FULL rewrites every table of the database, each under an ACCESS EXCLUSIVE lock");
		return;
	}
	foreach(lc, stmt->rels)
	{
		VacuumRelation *vr = (VacuumRelation *) lfirst(lc);
		TableFacts	tf;

		if (!IsA(vr, VacuumRelation))
			continue;
		mt_table_facts(st, vr->relation, &tf);
		if (is_existing(&tf))
			mt_add_finding(st, "vacuum-full", MT_SEV_ERROR, &tf, AccessExclusiveLock, true, tf.rows,
						   "Use plain VACUUM, or an online repack tool such as pg_repack or pg_squeeze.",
						   "VACUUM FULL rewrites %s under an ACCESS EXCLUSIVE lock",
						   tf.name);
	}
}

/* REINDEX without CONCURRENTLY. */
void
mt_lint_reindex(LintState *st, ReindexStmt *stmt)
{
	TableFacts	tf;

	if (mt_option_is_true(stmt->params, "concurrently"))
		return;
	if (stmt->relation)
	{
		mt_table_facts(st, stmt->relation, &tf);
		if (!is_existing(&tf))
			return;
		mt_add_finding(st, "reindex-non-concurrently", MT_SEV_ERROR, &tf,
					   stmt->kind == REINDEX_OBJECT_INDEX ? AccessExclusiveLock : ShareLock,
					   false, tf.rows,
					   "Use REINDEX ... CONCURRENTLY (PostgreSQL 12+), outside a transaction block.",
					   "REINDEX %s blocks writes to the table, and reads that use the index, while it rebuilds",
					   tf.name);
	}
	else if (stmt->kind == REINDEX_OBJECT_SYSTEM)
		/* the server refuses to reindex system catalogs concurrently */
		mt_add_finding(st, "reindex-non-concurrently", MT_SEV_ERROR, NULL, ShareLock, false, -1,
					   "System catalogs cannot be reindexed concurrently: run REINDEX SYSTEM in a maintenance window, outside migrations.",
					   "REINDEX SYSTEM blocks writes to each system catalog, and so most DDL and many queries, while its indexes rebuild");
	else
		mt_add_finding(st, "reindex-non-concurrently", MT_SEV_ERROR, NULL, ShareLock, false, -1,
					   "Use REINDEX ... CONCURRENTLY (PostgreSQL 12+), outside a transaction block.",
					   "REINDEX %s blocks writes to each table while its indexes rebuild",
					   stmt->kind == REINDEX_OBJECT_SCHEMA ? "SCHEMA" :
					   stmt->kind == REINDEX_OBJECT_SYSTEM ? "SYSTEM" : "DATABASE");
}

/* CLUSTER of one table or of every clustered table of the database. */
void
mt_lint_cluster(LintState *st, ClusterStmt *s)
{
	TableFacts	tf;

	if (s->relation == NULL)
	{
		mt_add_finding(st, "cluster", MT_SEV_ERROR, NULL, AccessExclusiveLock, true, -1,
					   "Use an online repack tool such as pg_repack or pg_squeeze.",
					   "CLUSTER rewrites every previously clustered table of the database, each under an ACCESS EXCLUSIVE lock");
		return;
	}
	mt_table_facts(st, s->relation, &tf);
	if (is_existing(&tf))
		mt_add_finding(st, "cluster", MT_SEV_ERROR, &tf, AccessExclusiveLock, true, tf.rows,
					   "Use an online repack tool such as pg_repack or pg_squeeze.",
					   "CLUSTER rewrites %s under an ACCESS EXCLUSIVE lock, blocking reads and writes",
					   tf.name);
}

/* REFRESH MATERIALIZED VIEW without CONCURRENTLY. */
void
mt_lint_refresh_matview(LintState *st, RefreshMatViewStmt *s)
{
	TableFacts	tf;

	mt_table_facts(st, s->relation, &tf);
	if (!s->concurrent && !s->skipData && is_existing(&tf))
		/* the view's heap is replaced by a new one: a rewrite */
		mt_add_finding(st, "refresh-matview-non-concurrently", MT_SEV_ERROR, &tf, AccessExclusiveLock, true, tf.rows,
					   "Create a unique index on the materialized view and use REFRESH MATERIALIZED VIEW CONCURRENTLY: readers keep the old contents meanwhile.",
					   "REFRESH MATERIALIZED VIEW %s blocks every read of it until the query finishes",
					   tf.name);
}

/* LOCK TABLE of existing tables. */
void
mt_lint_lock_table(LintState *st, LockStmt *s)
{
	ListCell   *lc;

	foreach(lc, s->relations)
	{
		TableFacts	tf;

		mt_table_facts(st, (RangeVar *) lfirst(lc), &tf);
		if (is_existing(&tf))
			mt_add_finding(st, "lock-table", MT_SEV_WARNING, &tf, s->mode, false, -1,
						   "Avoid explicit locks in migrations; if one is needed, SET lock_timeout first so a long wait fails instead of blocking every other session queued behind it.",
						   "LOCK TABLE %s IN %s mode is held until the end of the transaction",
						   tf.name, mt_lint_lock_mode_name(s->mode) ? mt_lint_lock_mode_name(s->mode) : "an unrecognized");
	}
}

/*
 * ALTER DOMAIN ADD CHECK without NOT VALID, SET NOT NULL (or ADD NOT
 * NULL), or VALIDATE CONSTRAINT, of a domain that columns use: the server
 * scans every table with such a column under a SHARE lock (up to
 * PostgreSQL 18, VALIDATE included), blocking writes to it.  One finding
 * per table, so that each names its relation.
 */
void
mt_lint_alter_domain(LintState *st, AlterDomainStmt *s)
{
	Constraint *c = (Constraint *) s->def;
	const char *domain = NameListToString(s->typeName);
	ListCell   *lc;

	if (!mt_alter_domain_scans(s))
		return;
	foreach(lc, mt_domain_relations(s->typeName))
	{
		Oid			relid = lfirst_oid(lc);
		RangeVar   *rv;
		TableFacts	tf;

		rv = makeRangeVar(get_namespace_name(get_rel_namespace(relid)),
						  get_rel_name(relid), -1);
		mt_table_facts(st, rv, &tf);
		if (!is_existing(&tf))
			continue;
		if (s->subtype == 'V')
			mt_add_finding(st, "domain-check-constraint", MT_SEV_WARNING, &tf, ShareLock, false, tf.rows,
						   "Run the VALIDATE in a transaction of its own with a short lock_timeout, at a quiet time: up to PostgreSQL 18 it blocks writes to every table using the domain while it scans them.",
						   "validating constraint %s of domain %s scans %s under a SHARE lock, blocking writes to it",
						   s->name ? quote_identifier(s->name) : "?", domain, tf.name);
		else if (s->subtype == 'C' && c->contype == CONSTR_CHECK)
			mt_add_finding(st, "domain-check-constraint", MT_SEV_WARNING, &tf, ShareLock, false, tf.rows,
						   "Add the domain constraint with NOT VALID (new values are checked from then on), then ALTER DOMAIN ... VALIDATE CONSTRAINT in a transaction of its own with a short lock_timeout: up to PostgreSQL 18 the VALIDATE still blocks writes while it scans.",
						   "adding a validated CHECK constraint to domain %s scans %s under a SHARE lock, blocking writes to it",
						   domain, tf.name);
		else
			mt_add_finding(st, "domain-check-constraint", MT_SEV_WARNING, &tf, ShareLock, false, tf.rows,
						   "Add CHECK (VALUE IS NOT NULL) to the domain with NOT VALID, then ALTER DOMAIN ... VALIDATE CONSTRAINT in a transaction of its own with a short lock_timeout: up to PostgreSQL 18 the VALIDATE still blocks writes while it scans.",
						   "setting NOT NULL on domain %s scans %s under a SHARE lock, blocking writes to it",
						   domain, tf.name);
	}
}
