/*-------------------------------------------------------------------------
 *
 * lint_locks.c
 *	  Which relation locks a statement of a script takes, found from its
 *	  raw parse tree without running it and without locking anything.
 *
 * For each kind of statement the modes are the ones the server takes when
 * it runs it: the level ALTER TABLE computes for its subcommands, the
 * partitions and inheritance children a statement recurses to, the tables
 * at the other end of foreign keys, the default partition a new partition
 * is checked against, the tables the queries of DML and views read, and
 * what the statements of a DO block take.  Relations are looked up with
 * mt_lookup_relation() (no lock, missing_ok), so a relation the script
 * creates is listed with InvalidOid.  apply() waits for these locks and the
 * rules report them; the statement analysis in lint.c calls
 * mt_statement_locks().
 *
 * IDENTIFICATION
 *	  src/lint_locks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_rewrite.h"
#include "commands/tablecmds.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "rewrite/rewriteSupport.h"
#include "storage/lock.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "lint_facts.h"
#include "lint_int.h"

/*
 * Look up a relation given as a qualified name list (DROP, COMMENT ...).
 */
static Oid
lookup_relation_names(List *names)
{
	RangeVar   *rv;
	ListCell   *lc;

	if (names == NIL || list_length(names) > 3)
		return InvalidOid;
	foreach(lc, names)
		if (!IsA(lfirst(lc), String))
			return InvalidOid;
	rv = makeRangeVarFromNameList(names);
	return mt_lookup_relation(rv);
}

/*
 * Add a lock to the list, keeping the strongest mode per relation.  New
 * relations (InvalidOid) are kept as they come.
 */
static List *
add_lock(List *locks, Oid relid, LOCKMODE mode)
{
	ListCell   *lc;
	MtLockTarget *t;

	if (OidIsValid(relid))
	{
		foreach(lc, locks)
		{
			t = (MtLockTarget *) lfirst(lc);
			if (t->relid == relid)
			{
				if (mode > t->mode)
					t->mode = mode;
				return locks;
			}
		}
	}
	t = (MtLockTarget *) palloc(sizeof(MtLockTarget));
	t->relid = relid;
	t->mode = mode;
	return lappend(locks, t);
}

/* add_lock() for a relation named in the script. */
static List *
add_rv_lock(List *locks, RangeVar *rv, LOCKMODE mode)
{
	return add_lock(locks, mt_lookup_relation(rv), mode);
}

/*
 * The partitions of a partitioned table and the children of an inheritance
 * parent, every level down, at mode: a statement that recurses (the table
 * named without ONLY) takes its lock on each of them too, and an
 * application query on one partition conflicts with it although the
 * script never names that partition.
 */
static List *
add_inheritor_locks(List *locks, Oid relid, LOCKMODE mode)
{
	List	   *children;
	ListCell   *lc;

	if (!OidIsValid(relid) || !has_subclass(relid))
		return locks;
	children = find_all_inheritors(relid, NoLock, NULL);
	foreach(lc, children)
	{
		if (lfirst_oid(lc) != relid)
			locks = add_lock(locks, lfirst_oid(lc), mode);
	}
	list_free(children);
	return locks;
}

/* add_rv_lock(), and the same lock on the inheritors unless ONLY. */
static List *
add_rv_lock_recurse(List *locks, RangeVar *rv, LOCKMODE mode)
{
	Oid			relid = mt_lookup_relation(rv);

	locks = add_lock(locks, relid, mode);
	if (rv->inh)
		locks = add_inheritor_locks(locks, relid, mode);
	return locks;
}

/* add_rv_lock(), and the same lock on the partitions of a partitioned table. */
static List *
add_rv_lock_partitions(List *locks, RangeVar *rv, LOCKMODE mode)
{
	Oid			relid = mt_lookup_relation(rv);

	locks = add_lock(locks, relid, mode);
	if (rv->inh && OidIsValid(relid) &&
		get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		locks = add_inheritor_locks(locks, relid, mode);
	return locks;
}

/*
 * The locks of an already analysed query (the guard sees those inside
 * CREATE TABLE AS and EXPLAIN): each relation at the mode the analyser
 * recorded, subqueries and WITH queries included.
 */
static List *
add_analysed_query_locks(List *locks, Query *query)
{
	ListCell   *lc;

	check_stack_depth();
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);

		if (rte->rtekind == RTE_RELATION && OidIsValid(rte->relid))
			locks = add_lock(locks, rte->relid, rte->rellockmode);
		else if (rte->rtekind == RTE_SUBQUERY && rte->subquery)
			locks = add_analysed_query_locks(locks, rte->subquery);
	}
	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = (CommonTableExpr *) lfirst(lc);

		if (cte->ctequery && IsA(cte->ctequery, Query))
			locks = add_analysed_query_locks(locks, (Query *) cte->ctequery);
	}
	return locks;
}

/* Context of the walk that collects the tables a query reads or writes. */
typedef struct RelWalkContext
{
	List	   *locks;
	LOCKMODE	mode;
	int			count;
} RelWalkContext;

/*
 * Collect the relations a raw query names, at the given mode.  Names that
 * do not resolve (CTE names, missing tables) are skipped.  The walk is
 * bounded by the stack depth check and by a cap on relations.
 */
static bool
collect_relations_walker(Node *node, RelWalkContext *ctx)
{
	if (node == NULL)
		return false;
	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (IsA(node, Query))
	{
		ctx->locks = add_analysed_query_locks(ctx->locks, (Query *) node);
		return false;
	}
	if (IsA(node, InsertStmt) || IsA(node, UpdateStmt) ||
		IsA(node, DeleteStmt) || IsA(node, MergeStmt))
	{
		/* a data-modifying WITH query or COPY (DML): its own modes */
		List	   *inner = mt_statement_locks(node);
		ListCell   *lc;

		foreach(lc, inner)
		{
			MtLockTarget *t = (MtLockTarget *) lfirst(lc);

			if (OidIsValid(t->relid))
				ctx->locks = add_lock(ctx->locks, t->relid, t->mode);
		}
		return false;
	}
	if (IsA(node, RangeVar))
	{
		Oid			relid;

		if (ctx->count++ < 1000)
		{
			relid = mt_lookup_relation((RangeVar *) node);
			if (OidIsValid(relid))
				ctx->locks = add_lock(ctx->locks, relid, ctx->mode);
		}
		return false;
	}
	return raw_expression_tree_walker(node, collect_relations_walker,
									  (void *) ctx);
}

/* Add the locks a query (or an expression of a DML statement) takes. */
static List *
add_query_locks(List *locks, Node *query, LOCKMODE mode)
{
	RelWalkContext ctx;

	/*
	 * raw_expression_tree_walker knows the DML statements and expressions
	 * only: not, say, the EXECUTE of CREATE TABLE AS EXECUTE.
	 */
	if (query == NULL || IsA(query, ExecuteStmt))
		return locks;
	ctx.locks = locks;
	ctx.mode = mode;
	ctx.count = 0;
	(void) collect_relations_walker(query, &ctx);
	return ctx.locks;
}

/* SHARE ROW EXCLUSIVE on the tables that foreign keys in a constraint list reference. */
static List *
add_fk_locks(List *locks, List *constraints)
{
	ListCell   *lc;

	foreach(lc, constraints)
	{
		Node	   *n = lfirst(lc);

		if (IsA(n, Constraint) && ((Constraint *) n)->contype == CONSTR_FOREIGN)
			locks = add_rv_lock(locks, ((Constraint *) n)->pktable,
								ShareRowExclusiveLock);
	}
	return locks;
}

/*
 * The tables at the other end of the foreign keys of relid: those it
 * references (referenced = true), or those that reference it.  Dropping a
 * foreign key takes ACCESS EXCLUSIVE on both ends (their RI triggers go),
 * so DROP TABLE locks the tables its keys reference, and DROP ... CASCADE
 * or TRUNCATE ... CASCADE the tables that reference it.
 */
static List *
add_fk_partner_locks(List *locks, Oid relid, bool referenced, LOCKMODE mode)
{
	Relation	conrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;

	if (!OidIsValid(relid))
		return locks;
	conrel = table_open(ConstraintRelationId, AccessShareLock);
	if (referenced)
	{
		ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(relid));
		scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId,
								  true, NULL, 1, &key);
	}
	else
	{
		/* no index on confrelid: a scan of pg_constraint */
		ScanKeyInit(&key, Anum_pg_constraint_confrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(relid));
		scan = systable_beginscan(conrel, InvalidOid, false, NULL, 1, &key);
	}
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		Oid			other = referenced ? con->confrelid : con->conrelid;

		if (con->contype == CONSTRAINT_FOREIGN && other != relid &&
			OidIsValid(other))
			locks = add_lock(locks, other, mode);
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return locks;
}

/*
 * The table a foreign key constraint of rv named conname references, locked
 * in mode: VALIDATE CONSTRAINT reads it with SELECT ... FOR KEY SHARE (ROW
 * SHARE); DROP CONSTRAINT drops the key's triggers on it (ACCESS
 * EXCLUSIVE).  With other_table_only, a self-referencing key adds nothing
 * (rv itself is locked by the statement anyway).
 */
static List *
add_fk_referenced_lock(List *locks, RangeVar *rv, const char *conname,
					   LOCKMODE mode, bool other_table_only)
{
	Oid			relid = mt_lookup_relation(rv);
	Relation	conrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;

	if (!OidIsValid(relid) || conname == NULL)
		return locks;
	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId,
							  true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

		if (con->contype == CONSTRAINT_FOREIGN &&
			strcmp(NameStr(con->conname), conname) == 0 &&
			!(other_table_only && con->confrelid == relid))
			locks = add_lock(locks, con->confrelid, mode);
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return locks;
}

/*
 * A new partition of a table with a DEFAULT partition: the default one is
 * locked ACCESS EXCLUSIVE while it is checked for rows of the new one.
 */
static List *
add_default_partition_lock(List *locks, Oid parent, PartitionBoundSpec *bound)
{
	Oid			def;

	if (!OidIsValid(parent) || get_rel_relkind(parent) != RELKIND_PARTITIONED_TABLE ||
		(bound && IsA(bound, PartitionBoundSpec) && bound->is_default))
		return locks;
	def = get_default_partition_oid(parent);
	if (OidIsValid(def))
		locks = add_lock(locks, def, AccessExclusiveLock);
	return locks;
}

/*
 * The relation locks of an ALTER TABLE: the table at the level the server
 * computes for the subcommands, plus what some subcommands take elsewhere
 * (the referenced table of a foreign key, the partition of ATTACH/DETACH).
 */
static List *
alter_table_locks(List *locks, AlterTableStmt *stmt)
{
	LOCKMODE	mode;
	ListCell   *lc;

	mode = AlterTableGetLockLevel(stmt->cmds);
	locks = add_rv_lock(locks, stmt->relation, mode);

	/*
	 * Without ONLY, the subcommands recurse to the partitions and
	 * inheritance children at the same level; ATTACH and DETACH PARTITION
	 * lock only the partition they name.
	 */
	if (stmt->relation->inh)
	{
		bool		recurses = true;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

			if (IsA(cmd, AlterTableCmd) &&
				(cmd->subtype == AT_AttachPartition ||
				 cmd->subtype == AT_DetachPartition ||
				 cmd->subtype == AT_DetachPartitionFinalize))
				recurses = false;
		}
		if (recurses)
			locks = add_inheritor_locks(locks, mt_lookup_relation(stmt->relation),
										mode);
	}

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (!IsA(cmd, AlterTableCmd))
			continue;
		switch (cmd->subtype)
		{
			case AT_DropConstraint:
				/* a foreign key's triggers go from the referenced table too */
				locks = add_fk_referenced_lock(locks, stmt->relation, cmd->name,
											   AccessExclusiveLock, true);
				break;
			case AT_AddConstraint:
				if (cmd->def && IsA(cmd->def, Constraint))
					locks = add_fk_locks(locks, list_make1(cmd->def));
				break;
			case AT_AddColumn:
				if (cmd->def && IsA(cmd->def, ColumnDef))
					locks = add_fk_locks(locks,
										 ((ColumnDef *) cmd->def)->constraints);
				break;
			case AT_ValidateConstraint:
				locks = add_fk_referenced_lock(locks, stmt->relation, cmd->name,
											   RowShareLock, false);
				break;
			case AT_AttachPartition:
			case AT_DetachPartition:
				if (cmd->def && IsA(cmd->def, PartitionCmd))
				{
					PartitionCmd *pc = (PartitionCmd *) cmd->def;

					/*
					 * The partition is locked ACCESS EXCLUSIVE, by a
					 * concurrent detach too: its first transaction takes
					 * SHARE UPDATE EXCLUSIVE, its second one (after waiting
					 * for older snapshots) ACCESS EXCLUSIVE on the partition
					 * to finish the detach.
					 */
					locks = add_rv_lock(locks, pc->name, AccessExclusiveLock);
					if (cmd->subtype == AT_AttachPartition)
						locks = add_default_partition_lock(locks,
														   mt_lookup_relation(stmt->relation),
														   pc->bound);
				}
				break;
			default:
				break;
		}
	}
	return locks;
}

/*
 * CREATE TABLE: the new table (no OID yet), its parents, the default
 * partition a new partition is checked against, the tables its foreign
 * keys reference.
 */
static List *
create_table_locks(List *locks, CreateStmt *s)
{
	ListCell   *lc;

	locks = add_lock(locks, InvalidOid, AccessExclusiveLock);
	foreach(lc, s->inhRelations)
		locks = add_rv_lock(locks, (RangeVar *) lfirst(lc),
							s->partbound ? AccessExclusiveLock :
							ShareUpdateExclusiveLock);
	/* a new partition: the default one is checked for its rows */
	if (s->partbound && list_length(s->inhRelations) == 1)
		locks = add_default_partition_lock(locks,
										   mt_lookup_relation((RangeVar *) linitial(s->inhRelations)),
										   s->partbound);
	foreach(lc, s->tableElts)
	{
		Node	   *e = lfirst(lc);

		if (IsA(e, ColumnDef))
			locks = add_fk_locks(locks, ((ColumnDef *) e)->constraints);
		/* a table constraint: in the raw statement, among the elements */
		else if (IsA(e, Constraint))
			locks = add_fk_locks(locks, list_make1(e));
	}
	locks = add_fk_locks(locks, s->constraints);
	/* the new relation has no OID yet: keep its entry first */
	return locks;
}

/*
 * DROP of relations (with what goes with them: an index's table, the
 * partitions, the other ends of foreign keys) or of objects that belong to
 * a table (triggers, policies, rules: the table is locked).
 */
static List *
drop_locks(List *locks, DropStmt *s)
{
	ListCell   *lc;
	LOCKMODE	mode = s->concurrent ? ShareUpdateExclusiveLock :
	AccessExclusiveLock;

	switch (s->removeType)
	{
		case OBJECT_TABLE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_SEQUENCE:
		case OBJECT_FOREIGN_TABLE:
		case OBJECT_INDEX:
			foreach(lc, s->objects)
			{
				Node	   *obj = lfirst(lc);
				Oid			relid;

				if (!IsA(obj, List))
					continue;
				relid = lookup_relation_names((List *) obj);
				if (!OidIsValid(relid))
					continue;
				if (s->removeType == OBJECT_INDEX)
				{
					Oid			heap = IndexGetRelation(relid, true);

					if (OidIsValid(heap))
						locks = add_lock(locks, heap, mode);
				}
				locks = add_lock(locks, relid, mode);
				/* partitions go with their table, children with CASCADE */
				if (s->removeType == OBJECT_TABLE &&
					(get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ||
					 s->behavior == DROP_CASCADE))
					locks = add_inheritor_locks(locks, relid, mode);
				if (s->removeType == OBJECT_TABLE)
				{
					/* its foreign keys go, and with CASCADE those to it */
					locks = add_fk_partner_locks(locks, relid, true,
												 AccessExclusiveLock);
					if (s->behavior == DROP_CASCADE)
						locks = add_fk_partner_locks(locks, relid, false,
													 AccessExclusiveLock);
				}
			}
			break;
		case OBJECT_TRIGGER:
		case OBJECT_POLICY:
		case OBJECT_RULE:
			/* table name then object name: the table is locked */
			foreach(lc, s->objects)
			{
				Node	   *obj = lfirst(lc);
				List	   *names;

				if (!IsA(obj, List) || list_length((List *) obj) < 2)
					continue;
				names = list_copy((List *) obj);
				names = list_truncate(names, list_length(names) - 1);
				locks = add_lock(locks, lookup_relation_names(names),
								 AccessExclusiveLock);
			}
			break;
		default:
			break;
	}
	return locks;
}

/* COMMENT ON a relation or one of its columns. */
static List *
comment_locks(List *locks, CommentStmt *s)
{
	List	   *names;

	if (s->object == NULL || !IsA(s->object, List))
		return locks;
	names = (List *) s->object;
	if (s->objtype == OBJECT_TABLE || s->objtype == OBJECT_VIEW ||
		s->objtype == OBJECT_MATVIEW || s->objtype == OBJECT_INDEX)
		locks = add_lock(locks, lookup_relation_names(names),
						 ShareUpdateExclusiveLock);
	else if (s->objtype == OBJECT_COLUMN && list_length(names) >= 2)
	{
		names = list_truncate(list_copy(names), list_length(names) - 1);
		locks = add_lock(locks, lookup_relation_names(names),
						 ShareUpdateExclusiveLock);
	}
	return locks;
}

/* ALTER ... RENAME of a relation, or of a column or constraint of one. */
static List *
rename_locks(List *locks, RenameStmt *s)
{
	if (s->relation == NULL)
		return locks;
	/* ALTER INDEX ... RENAME takes less since PostgreSQL 12 */
	if (s->renameType == OBJECT_INDEX)
		locks = add_rv_lock(locks, s->relation, ShareUpdateExclusiveLock);
	/* a column or constraint is renamed in the children too */
	else if (s->renameType == OBJECT_COLUMN ||
			 s->renameType == OBJECT_TABCONSTRAINT)
		locks = add_rv_lock_recurse(locks, s->relation, AccessExclusiveLock);
	else
		locks = add_rv_lock(locks, s->relation, AccessExclusiveLock);
	return locks;
}

/* TRUNCATE: the tables, their inheritors, with CASCADE those referencing them. */
static List *
truncate_locks(List *locks, TruncateStmt *s)
{
	ListCell   *lc;

	foreach(lc, s->relations)
	{
		RangeVar   *rv = (RangeVar *) lfirst(lc);
		Oid			relid = mt_lookup_relation(rv);

		locks = add_lock(locks, relid, AccessExclusiveLock);
		if (rv->inh)
			locks = add_inheritor_locks(locks, relid, AccessExclusiveLock);
		/* CASCADE empties the tables that reference it too */
		if (s->behavior == DROP_CASCADE)
			locks = add_fk_partner_locks(locks, relid, false,
										 AccessExclusiveLock);
	}
	return locks;
}

/* LOCK TABLE, at the mode it names, on the tables and their inheritors. */
static List *
lock_table_locks(List *locks, LockStmt *s)
{
	ListCell   *lc;
	LOCKMODE	mode = s->mode;

	if (mode < AccessShareLock || mode > AccessExclusiveLock)
		mode = AccessExclusiveLock;
	foreach(lc, s->relations)
		locks = add_rv_lock_recurse(locks, (RangeVar *) lfirst(lc), mode);
	return locks;
}

/* VACUUM and ANALYZE (VACUUM FULL locks out everything). */
static List *
vacuum_locks(List *locks, VacuumStmt *s)
{
	ListCell   *lc;
	LOCKMODE	mode = ShareUpdateExclusiveLock;

	if (s->is_vacuumcmd && mt_option_is_true(s->options, "full"))
		mode = AccessExclusiveLock;
	foreach(lc, s->rels)
	{
		VacuumRelation *vr = (VacuumRelation *) lfirst(lc);

		if (IsA(vr, VacuumRelation))
			locks = add_rv_lock(locks, vr->relation, mode);
	}
	return locks;
}

/* REINDEX of one index or one table, concurrently or not. */
static List *
reindex_locks(List *locks, ReindexStmt *s)
{
	bool		conc = mt_option_is_true(s->params, "concurrently");
	Oid			relid;

	if (s->relation == NULL)
		return locks;
	relid = mt_lookup_relation(s->relation);
	if (!OidIsValid(relid))
		return locks;
	if (s->kind == REINDEX_OBJECT_INDEX)
	{
		Oid			heap = IndexGetRelation(relid, true);

		if (OidIsValid(heap))
			locks = add_lock(locks, heap,
							 conc ? ShareUpdateExclusiveLock : ShareLock);
		locks = add_lock(locks, relid,
						 conc ? ShareUpdateExclusiveLock : AccessExclusiveLock);
	}
	else
		locks = add_lock(locks, relid,
						 conc ? ShareUpdateExclusiveLock : ShareLock);
	return locks;
}

/* COPY to or from a table, or of a query. */
static List *
copy_locks(List *locks, CopyStmt *s)
{
	if (s->relation)
		locks = add_rv_lock(locks, s->relation,
							s->is_from ? RowExclusiveLock : AccessShareLock);
	else if (s->query && IsA(s->query, SelectStmt))
		locks = add_query_locks(locks, s->query, AccessShareLock);
	else if (s->query)
	{
		check_stack_depth();
		locks = mt_statement_locks(s->query);
	}
	return locks;
}

/*
 * INSERT, UPDATE, DELETE and MERGE: the target table, and the tables their
 * WITH queries, sources and conditions read.
 */
static List *
modify_table_locks(List *locks, Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_InsertStmt:
			{
				InsertStmt *s = (InsertStmt *) stmt;

				locks = add_rv_lock(locks, s->relation, RowExclusiveLock);
				locks = add_query_locks(locks, (Node *) s->withClause, AccessShareLock);
				locks = add_query_locks(locks, s->selectStmt, AccessShareLock);
				break;
			}
		case T_UpdateStmt:
			{
				UpdateStmt *s = (UpdateStmt *) stmt;

				locks = add_rv_lock_recurse(locks, s->relation, RowExclusiveLock);
				locks = add_query_locks(locks, (Node *) s->withClause, AccessShareLock);
				locks = add_query_locks(locks, (Node *) s->fromClause, AccessShareLock);
				locks = add_query_locks(locks, s->whereClause, AccessShareLock);
				break;
			}
		case T_DeleteStmt:
			{
				DeleteStmt *s = (DeleteStmt *) stmt;

				locks = add_rv_lock_recurse(locks, s->relation, RowExclusiveLock);
				locks = add_query_locks(locks, (Node *) s->withClause, AccessShareLock);
				locks = add_query_locks(locks, (Node *) s->usingClause, AccessShareLock);
				locks = add_query_locks(locks, s->whereClause, AccessShareLock);
				break;
			}
		case T_MergeStmt:
			{
				MergeStmt  *s = (MergeStmt *) stmt;

				locks = add_rv_lock(locks, s->relation, RowExclusiveLock);
				locks = add_query_locks(locks, (Node *) s->withClause, AccessShareLock);
				locks = add_query_locks(locks, s->sourceRelation, AccessShareLock);
				break;
			}
		default:
			break;
	}
	return locks;
}

/* A DO block takes what the statements it runs take. */
static List *
do_block_locks(List *locks, DoStmt *stmt)
{
	MtDoBlock  *block = mt_do_block_analyze(stmt, NULL, 0, false);
	ListCell   *lc;

	foreach(lc, block->statements)
	{
		Node	   *inner_stmt = ((MtDoStatement *) lfirst(lc))->raw->stmt;
		ListCell   *lc2;

		if (IsA(inner_stmt, DoStmt))
			continue;
		check_stack_depth();
		foreach(lc2, mt_statement_locks(inner_stmt))
		{
			MtLockTarget *t = (MtLockTarget *) lfirst(lc2);

			locks = add_lock(locks, t->relid, t->mode);
		}
	}
	return locks;
}

/*
 * The locks of the statements that change the schema: DDL on tables,
 * indexes, views and what belongs to a table.
 */
static List *
schema_change_locks(Node *stmt)
{
	List	   *locks = NIL;
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			locks = alter_table_locks(locks, (AlterTableStmt *) stmt);
			break;
		case T_IndexStmt:
			{
				IndexStmt  *s = (IndexStmt *) stmt;

				/* an index of a partitioned table is built on each partition */
				locks = add_rv_lock_partitions(locks, s->relation,
											   s->concurrent ? ShareUpdateExclusiveLock : ShareLock);
				break;
			}
		case T_CreateStmt:
			locks = create_table_locks(locks, (CreateStmt *) stmt);
			break;
		case T_AlterDomainStmt:
			{
				AlterDomainStmt *s = (AlterDomainStmt *) stmt;

				/* a checking ALTER DOMAIN scans every table using it */
				if (mt_alter_domain_scans(s))
					foreach(lc, mt_domain_relations(s->typeName))
						locks = add_lock(locks, lfirst_oid(lc), ShareLock);
				break;
			}
		case T_DropStmt:
			locks = drop_locks(locks, (DropStmt *) stmt);
			break;
		case T_ViewStmt:
			{
				ViewStmt   *s = (ViewStmt *) stmt;
				Oid			relid = mt_lookup_relation(s->view);

				/* CREATE OR REPLACE of an existing view locks it */
				locks = add_lock(locks, relid, AccessExclusiveLock);
				locks = add_query_locks(locks, s->query, AccessShareLock);
				break;
			}
		case T_CommentStmt:
			locks = comment_locks(locks, (CommentStmt *) stmt);
			break;
		case T_RenameStmt:
			locks = rename_locks(locks, (RenameStmt *) stmt);
			break;
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *s = (AlterObjectSchemaStmt *) stmt;

				if (s->relation)
					locks = add_rv_lock(locks, s->relation, AccessExclusiveLock);
				break;
			}
		case T_CreateTrigStmt:
			/* a row trigger of a partitioned table is cloned to each partition */
			locks = add_rv_lock_partitions(locks, ((CreateTrigStmt *) stmt)->relation,
										   ShareRowExclusiveLock);
			break;
		case T_RuleStmt:
			locks = add_rv_lock(locks, ((RuleStmt *) stmt)->relation,
								AccessExclusiveLock);
			break;
		case T_CreatePolicyStmt:
			locks = add_rv_lock(locks, ((CreatePolicyStmt *) stmt)->table,
								AccessExclusiveLock);
			break;
		case T_AlterPolicyStmt:
			locks = add_rv_lock(locks, ((AlterPolicyStmt *) stmt)->table,
								AccessExclusiveLock);
			break;
		case T_CreateStatsStmt:
			foreach(lc, ((CreateStatsStmt *) stmt)->relations)
				if (IsA(lfirst(lc), RangeVar))
					locks = add_rv_lock(locks, (RangeVar *) lfirst(lc),
										ShareUpdateExclusiveLock);
			break;
		default:
			break;
	}
	return locks;
}

/*
 * The relations the query of a materialized view reads, from the
 * dependencies of its _RETURN rule: REFRESH runs that query, which takes
 * ACCESS SHARE on each of them.
 */
static List *
add_matview_source_locks(List *locks, Oid relid)
{
	Oid			ruleoid;
	Relation	deprel;
	SysScanDesc scan;
	ScanKeyData key[2];
	HeapTuple	tup;

	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_MATVIEW)
		return locks;
	ruleoid = get_rewrite_oid(relid, ViewSelectRuleName, true);
	if (!OidIsValid(ruleoid))
		return locks;
	deprel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(RewriteRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(ruleoid));
	scan = systable_beginscan(deprel, DependDependerIndexId, true,
							  NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
		char		relkind;

		if (dep->refclassid != RelationRelationId || dep->refobjid == relid)
			continue;
		relkind = get_rel_relkind(dep->refobjid);
		if (relkind == RELKIND_RELATION || relkind == RELKIND_PARTITIONED_TABLE ||
			relkind == RELKIND_MATVIEW || relkind == RELKIND_VIEW ||
			relkind == RELKIND_FOREIGN_TABLE)
			locks = add_lock(locks, dep->refobjid, AccessShareLock);
	}
	systable_endscan(scan);
	table_close(deprel, AccessShareLock);
	return locks;
}

/*
 * The locks of maintenance statements: TRUNCATE, LOCK, VACUUM, CLUSTER,
 * REINDEX, REFRESH MATERIALIZED VIEW.
 */
static List *
maintenance_locks(Node *stmt)
{
	List	   *locks = NIL;

	switch (nodeTag(stmt))
	{
		case T_TruncateStmt:
			locks = truncate_locks(locks, (TruncateStmt *) stmt);
			break;
		case T_LockStmt:
			locks = lock_table_locks(locks, (LockStmt *) stmt);
			break;
		case T_VacuumStmt:
			locks = vacuum_locks(locks, (VacuumStmt *) stmt);
			break;
		case T_ClusterStmt:
			if (((ClusterStmt *) stmt)->relation)
				locks = add_rv_lock(locks, ((ClusterStmt *) stmt)->relation,
									AccessExclusiveLock);
			break;
		case T_ReindexStmt:
			locks = reindex_locks(locks, (ReindexStmt *) stmt);
			break;
		case T_RefreshMatViewStmt:
			{
				RefreshMatViewStmt *s = (RefreshMatViewStmt *) stmt;

				locks = add_rv_lock(locks, s->relation,
									s->concurrent ? ExclusiveLock : AccessExclusiveLock);
				/* the query of the view reads its source relations */
				if (!s->skipData)
					locks = add_matview_source_locks(locks,
													 mt_lookup_relation(s->relation));
				break;
			}
		default:
			break;
	}
	return locks;
}

/*
 * The locks of the statements that read or write rows (COPY, DML,
 * queries, CREATE TABLE AS, EXPLAIN) and of DO blocks.
 */
static List *
data_statement_locks(Node *stmt)
{
	List	   *locks = NIL;

	switch (nodeTag(stmt))
	{
		case T_CopyStmt:
			locks = copy_locks(locks, (CopyStmt *) stmt);
			break;
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
			locks = modify_table_locks(locks, stmt);
			break;
		case T_SelectStmt:
			{
				SelectStmt *s = (SelectStmt *) stmt;

				locks = add_query_locks(locks, stmt,
										s->lockingClause ? RowShareLock : AccessShareLock);
				break;
			}
		case T_CreateTableAsStmt:
			locks = add_lock(locks, InvalidOid, AccessExclusiveLock);
			locks = add_query_locks(locks, ((CreateTableAsStmt *) stmt)->query,
									AccessShareLock);
			break;
		case T_Query:
			locks = add_analysed_query_locks(locks, (Query *) stmt);
			break;
		case T_ExplainStmt:
			{
				ExplainStmt *s = (ExplainStmt *) stmt;

				if (s->query)
				{
					check_stack_depth();
					locks = mt_statement_locks(s->query);
				}
				break;
			}
		case T_DoStmt:
			locks = do_block_locks(locks, (DoStmt *) stmt);
			break;
		default:
			break;
	}
	return locks;
}

/*
 * The relation locks one raw statement would take (see lint_int.h), by
 * family of statement.
 */
List *
mt_statement_locks(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_TruncateStmt:
		case T_LockStmt:
		case T_VacuumStmt:
		case T_ClusterStmt:
		case T_ReindexStmt:
		case T_RefreshMatViewStmt:
			return maintenance_locks(stmt);
		case T_CopyStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
		case T_SelectStmt:
		case T_CreateTableAsStmt:
		case T_Query:
		case T_ExplainStmt:
		case T_DoStmt:
			return data_statement_locks(stmt);
		default:
			return schema_change_locks(stmt);
	}
}
