/*-------------------------------------------------------------------------
 *
 * lint.c
 *	  Statement analysis of migration scripts with the server's own parser,
 *	  the GUCs of the linter and the SQL functions that expose it.
 *
 * A script is split with raw_parser(), exactly as the server would split a
 * simple-query string.  Each raw statement is described without executing
 * it and without taking any lock: its text and place in the script, its
 * command tag, whether it is DDL, whether it refuses to run inside a
 * transaction block, and the relation locks it would take.  Relations are
 * looked up with RangeVarGetRelid(NoLock, missing_ok), so a relation that
 * does not exist yet (created earlier in the same script) is reported with
 * InvalidOid.  The rules themselves live in lint_rules.c.
 *
 * IDENTIFICATION
 *	  src/lint.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scansup.h"
#include "storage/lock.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "lint.h"
#include "lint_int.h"
#include "migration_tools.h"
#include "spi_util.h"

/* GUC variables */
int			mt_lint_level = MT_LINT_LEVEL_ERROR;
int			mt_lint_large_rows = 10000;

static const struct config_enum_entry lint_level_options[] = {
	{"error", MT_LINT_LEVEL_ERROR, false},
	{"warning", MT_LINT_LEVEL_WARNING, false},
	{"off", MT_LINT_LEVEL_OFF, false},
	{NULL, 0, false}
};

/*
 * Define the GUCs of the linter and install the utility guard.
 */
void
mt_lint_init(void)
{
	DefineCustomEnumVariable(MT_GUC_PREFIX ".lint_level",
							 "Lowest lint severity at which apply() refuses a migration.",
							 "\"error\" refuses migrations with error findings, "
							 "\"warning\" also those with warnings, \"off\" does not lint.",
							 &mt_lint_level,
							 MT_LINT_LEVEL_ERROR,
							 lint_level_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable(MT_GUC_PREFIX ".lint_large_rows",
							"Estimated rows above which the linter calls a table or a DML statement large.",
							NULL,
							&mt_lint_large_rows,
							10000,
							0, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	mt_guard_init();
}

/*
 * Severity name to number: info 1, warning 2, error 3, -1 if unrecognized.
 */
int
mt_lint_severity_level(const char *severity)
{
	if (severity == NULL)
		return -1;
	if (pg_strcasecmp(severity, "info") == 0)
		return MT_SEV_INFO;
	if (pg_strcasecmp(severity, "warning") == 0)
		return MT_SEV_WARNING;
	if (pg_strcasecmp(severity, "error") == 0)
		return MT_SEV_ERROR;
	return -1;
}

/* a long script is shown around a syntax error: lines and bytes each side */
#define MT_ERROR_LINES		3
#define MT_ERROR_WINDOW		1000

/*
 * Does an ALTER TABLE detach a partition CONCURRENTLY (which, like the
 * other CONCURRENTLY commands, cannot run in a transaction block)?
 */
bool
mt_detaches_concurrently(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (IsA(cmd, AlterTableCmd) &&
			cmd->subtype == AT_DetachPartition &&
			cmd->def && IsA(cmd->def, PartitionCmd) &&
			((PartitionCmd *) cmd->def)->concurrent)
			return true;
	}
	return false;
}

/*
 * Error context callback while the script is parsed: move the parser's
 * cursor position, relative to the script, to an internal position with the
 * script as the internal query, so that clients point into the script and
 * not into the statement that called us.  A long script is cut down to a
 * few lines around the error, and the context gives the line in the script.
 */
static void
script_parse_error_callback(void *arg)
{
	const char *script = (const char *) arg;
	int			pos = geterrposition();
	int			len;
	int			off = 0;
	int			line = 1;
	int			starts[MT_ERROR_LINES + 1];
	int			start;
	int			end;
	int			newlines = 0;
	int			i;

	if (pos <= 0)
		return;
	errposition(0);
	len = strlen(script);
	if (len <= 2 * MT_ERROR_WINDOW)
	{
		internalerrposition(pos);
		internalerrquery(script);
		return;
	}

	/* walk to the character at pos (1-based), keeping the last line starts */
	for (i = 0; i <= MT_ERROR_LINES; i++)
		starts[i] = 0;
	for (i = 1; i < pos && off < len; i++)
	{
		if (script[off] == '\n')
		{
			line++;
			memmove(starts, starts + 1, sizeof(int) * MT_ERROR_LINES);
			starts[MT_ERROR_LINES] = off + 1;
		}
		off += pg_mblen(script + off);
	}
	/* the first line shown, no more than MT_ERROR_WINDOW bytes back */
	start = starts[0];
	if (off - start > MT_ERROR_WINDOW)
	{
		start = starts[MT_ERROR_LINES];
		if (off - start > MT_ERROR_WINDOW)
		{
			/* one huge line: from a character boundary inside the window */
			while (off - start > MT_ERROR_WINDOW)
				start += pg_mblen(script + start);
		}
	}
	/* and a few lines after it */
	end = off;
	while (end < len && end - off < MT_ERROR_WINDOW)
	{
		if (script[end] == '\n' && ++newlines > MT_ERROR_LINES)
			break;
		end += pg_mblen(script + end);
	}
	if (end > len)
		end = len;

	internalerrposition(pg_mbstrlen_with_len(script + start, off - start) + 1);
	internalerrquery(pnstrdup(script + start, end - start));
	errcontext("line %d of the script (the query shown is an excerpt)", line);
}

/*
 * Parse a script into raw statements, in the current memory context.
 * Syntax errors come out as ERRORs with the position in the script.
 */
static List *
parse_script(const char *sql)
{
	ErrorContextCallback errcallback;
	List	   *stmts;

	errcallback.callback = script_parse_error_callback;
	errcallback.arg = (void *) sql;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);

	error_context_stack = errcallback.previous;

	return stmts;
}

/*
 * Raise an error found inside the script (a syntax error in the body of a
 * DO block, say) at a character position of the script (from 1; 0 for
 * none), shown as the syntax errors of the script itself are.
 */
void
mt_script_error(const char *script, int position, ErrorData *edata,
				const char *context)
{
	ErrorContextCallback errcallback;

	if (script != NULL)
	{
		errcallback.callback = script_parse_error_callback;
		errcallback.arg = (void *) script;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;
	}
	ereport(ERROR,
			(errcode(edata->sqlerrcode),
			 errmsg_internal("%s", edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 edata->hint ? errhint("%s", edata->hint) : 0,
			 context ? errcontext("%s", context) : 0,
			 position > 0 ? errposition(position) : 0));
	pg_unreachable();
}

/*
 * Skip white space and comments from offset *start of sql, within *len bytes
 * (len 0: to the end), so that a statement's text starts with its first
 * token.  Trailing white space is trimmed as well.
 */
static void
trim_statement(const char *sql, int *start, int *len)
{
	int			s = *start;
	int			e = (*len > 0) ? *start + *len : (int) strlen(sql);

	while (s < e)
	{
		if (scanner_isspace(sql[s]))
			s++;
		else if (sql[s] == '-' && s + 1 < e && sql[s + 1] == '-')
		{
			while (s < e && sql[s] != '\n' && sql[s] != '\r')
				s++;
		}
		else if (sql[s] == '/' && s + 1 < e && sql[s + 1] == '*')
		{
			int			depth = 1;

			s += 2;
			while (s < e && depth > 0)
			{
				if (sql[s] == '/' && s + 1 < e && sql[s + 1] == '*')
				{
					depth++;
					s += 2;
				}
				else if (sql[s] == '*' && s + 1 < e && sql[s + 1] == '/')
				{
					depth--;
					s += 2;
				}
				else
					s++;
			}
		}
		else
			break;
	}
	while (e > s && scanner_isspace(sql[e - 1]))
		e--;
	*start = s;
	*len = e - s;
}

/*
 * Look up a relation without locking it; InvalidOid when it does not exist
 * (or names another database, which the lookup itself would refuse).
 */
Oid
mt_lookup_relation(RangeVar *rv)
{
	if (rv == NULL || rv->relname == NULL)
		return InvalidOid;
	if (rv->catalogname != NULL)
	{
		char	   *dbname = get_database_name(MyDatabaseId);

		if (dbname == NULL || strcmp(rv->catalogname, dbname) != 0)
			return InvalidOid;
	}
	return RangeVarGetRelid(rv, NoLock, true);
}

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

static List *statement_locks(Node *stmt);

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
		List	   *inner = statement_locks(node);
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

/* Is a boolean option (DefElem list) present and true? */
bool
mt_option_is_true(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (!IsA(opt, DefElem) || opt->defname == NULL)
			continue;
		if (strcmp(opt->defname, name) == 0)
		{
			if (opt->arg == NULL)
				return true;
			if (IsA(opt->arg, Boolean))
				return boolVal(opt->arg);
			if (IsA(opt->arg, Integer))
				return intVal(opt->arg) != 0;
			if (IsA(opt->arg, String))
			{
				bool		result;

				if (parse_bool(strVal(opt->arg), &result))
					return result;
				return true;
			}
			return true;
		}
	}
	return false;
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
 * Does this statement refuse to run inside a transaction block?
 */
static bool
statement_needs_top_level(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			return ((IndexStmt *) stmt)->concurrent;
		case T_DropStmt:
			return ((DropStmt *) stmt)->concurrent;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;

				if (r->kind == REINDEX_OBJECT_SCHEMA ||
					r->kind == REINDEX_OBJECT_SYSTEM ||
					r->kind == REINDEX_OBJECT_DATABASE)
					return true;
				return mt_option_is_true(r->params, "concurrently");
			}
		case T_VacuumStmt:
			return ((VacuumStmt *) stmt)->is_vacuumcmd;
		case T_ClusterStmt:
			return ((ClusterStmt *) stmt)->relation == NULL;
		case T_CreatedbStmt:
		case T_DropdbStmt:
		case T_AlterSystemStmt:
		case T_CreateTableSpaceStmt:
		case T_DropTableSpaceStmt:
		case T_DropSubscriptionStmt:
			return true;
		case T_CreateSubscriptionStmt:
			{
				CreateSubscriptionStmt *s = (CreateSubscriptionStmt *) stmt;
				ListCell   *lc;

				/* create_slot defaults to true, and then it is top-level */
				foreach(lc, s->options)
				{
					DefElem    *opt = (DefElem *) lfirst(lc);

					if (strcmp(opt->defname, "create_slot") == 0 ||
						strcmp(opt->defname, "connect") == 0)
						if (!mt_option_is_true(list_make1(opt), opt->defname))
							return false;
				}
				return true;
			}
		case T_AlterSubscriptionStmt:
			{
				AlterSubscriptionStmt *s = (AlterSubscriptionStmt *) stmt;
				ListCell   *lc;

				if (s->kind == ALTER_SUBSCRIPTION_REFRESH)
					return true;
				if (s->kind != ALTER_SUBSCRIPTION_SET_PUBLICATION &&
					s->kind != ALTER_SUBSCRIPTION_ADD_PUBLICATION &&
					s->kind != ALTER_SUBSCRIPTION_DROP_PUBLICATION)
					return false;
				/* publication changes refresh by default */
				foreach(lc, s->options)
				{
					DefElem    *opt = (DefElem *) lfirst(lc);

					if (strcmp(opt->defname, "refresh") == 0)
						return mt_option_is_true(list_make1(opt), "refresh");
				}
				return true;
			}
		case T_AlterDatabaseStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
					if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
						return true;
				return false;
			}
		case T_DiscardStmt:
			return ((DiscardStmt *) stmt)->target == DISCARD_ALL;
		case T_TransactionStmt:
			{
				TransactionStmt *t = (TransactionStmt *) stmt;

				return t->kind == TRANS_STMT_COMMIT_PREPARED ||
					t->kind == TRANS_STMT_ROLLBACK_PREPARED;
			}
		case T_AlterTableStmt:
			return mt_detaches_concurrently((AlterTableStmt *) stmt);
		case T_AlterEnumStmt:
			/* ADD VALUE runs in a transaction block since PostgreSQL 12 */
			return false;
		default:
			return false;
	}
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

					/* a concurrent detach takes less on the partition too */
					locks = add_rv_lock(locks, pc->name,
										pc->concurrent ? ShareUpdateExclusiveLock :
										AccessExclusiveLock);
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
 * The relation locks one raw statement would take.
 */
static List *
statement_locks(Node *stmt)
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
			{
				CreateStmt *s = (CreateStmt *) stmt;

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
				}
				locks = add_fk_locks(locks, s->constraints);
				/* the new relation has no OID yet: keep its entry first */
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *s = (DropStmt *) stmt;
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
				break;
			}
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
			{
				CommentStmt *s = (CommentStmt *) stmt;
				List	   *names;

				if (s->object == NULL || !IsA(s->object, List))
					break;
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
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *s = (RenameStmt *) stmt;

				if (s->relation == NULL)
					break;
				/* ALTER INDEX ... RENAME takes less since PostgreSQL 12 */
				if (s->renameType == OBJECT_INDEX)
					locks = add_rv_lock(locks, s->relation, ShareUpdateExclusiveLock);
				/* a column or constraint is renamed in the children too */
				else if (s->renameType == OBJECT_COLUMN ||
						 s->renameType == OBJECT_TABCONSTRAINT)
					locks = add_rv_lock_recurse(locks, s->relation, AccessExclusiveLock);
				else
					locks = add_rv_lock(locks, s->relation, AccessExclusiveLock);
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *s = (AlterObjectSchemaStmt *) stmt;

				if (s->relation)
					locks = add_rv_lock(locks, s->relation, AccessExclusiveLock);
				break;
			}
		case T_TruncateStmt:
			{
				TruncateStmt *s = (TruncateStmt *) stmt;

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
				break;
			}
		case T_LockStmt:
			{
				LockStmt   *s = (LockStmt *) stmt;
				LOCKMODE	mode = s->mode;

				if (mode < AccessShareLock || mode > AccessExclusiveLock)
					mode = AccessExclusiveLock;
				foreach(lc, s->relations)
					locks = add_rv_lock_recurse(locks, (RangeVar *) lfirst(lc), mode);
				break;
			}
		case T_VacuumStmt:
			{
				VacuumStmt *s = (VacuumStmt *) stmt;
				LOCKMODE	mode = ShareUpdateExclusiveLock;

				if (s->is_vacuumcmd && mt_option_is_true(s->options, "full"))
					mode = AccessExclusiveLock;
				foreach(lc, s->rels)
				{
					VacuumRelation *vr = (VacuumRelation *) lfirst(lc);

					if (IsA(vr, VacuumRelation))
						locks = add_rv_lock(locks, vr->relation, mode);
				}
				break;
			}
		case T_ClusterStmt:
			if (((ClusterStmt *) stmt)->relation)
				locks = add_rv_lock(locks, ((ClusterStmt *) stmt)->relation,
									AccessExclusiveLock);
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *s = (ReindexStmt *) stmt;
				bool		conc = mt_option_is_true(s->params, "concurrently");
				Oid			relid;

				if (s->relation == NULL)
					break;
				relid = mt_lookup_relation(s->relation);
				if (!OidIsValid(relid))
					break;
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
				break;
			}
		case T_RefreshMatViewStmt:
			{
				RefreshMatViewStmt *s = (RefreshMatViewStmt *) stmt;

				locks = add_rv_lock(locks, s->relation,
									s->concurrent ? ExclusiveLock : AccessExclusiveLock);
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
		case T_CopyStmt:
			{
				CopyStmt   *s = (CopyStmt *) stmt;

				if (s->relation)
					locks = add_rv_lock(locks, s->relation,
										s->is_from ? RowExclusiveLock : AccessShareLock);
				else if (s->query && IsA(s->query, SelectStmt))
					locks = add_query_locks(locks, s->query, AccessShareLock);
				else if (s->query)
				{
					check_stack_depth();
					locks = statement_locks(s->query);
				}
				break;
			}
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
					locks = statement_locks(s->query);
				}
				break;
			}
		case T_DoStmt:
			{
				MtDoBlock  *block = mt_do_block_analyze((DoStmt *) stmt, NULL,
														0, false);

				/* a DO block takes what the statements it runs take */
				foreach(lc, block->statements)
				{
					Node	   *inner_stmt = ((MtDoStatement *) lfirst(lc))->raw->stmt;
					ListCell   *lc2;

					if (IsA(inner_stmt, DoStmt))
						continue;
					check_stack_depth();
					foreach(lc2, statement_locks(inner_stmt))
					{
						MtLockTarget *t = (MtLockTarget *) lfirst(lc2);

						locks = add_lock(locks, t->relid, t->mode);
					}
				}
				break;
			}
		default:
			break;
	}
	return locks;
}

/* Is this a transaction control statement (BEGIN, COMMIT, SET ...)? */
static bool
statement_is_transaction_control(Node *stmt)
{
	return IsA(stmt, TransactionStmt) || IsA(stmt, VariableSetStmt);
}

/*
 * Describe one raw statement of a script.  The result and everything it
 * points to are allocated in the current memory context.
 */
MtStatementInfo *
mt_describe_statement(const char *sql, RawStmt *raw, int number)
{
	MtStatementInfo *info = (MtStatementInfo *) palloc0(sizeof(MtStatementInfo));
	Node	   *stmt = raw->stmt;
	int			loc = raw->stmt_location;
	int			len = raw->stmt_len;

	trim_statement(sql, &loc, &len);
	info->statement = number;
	info->location = loc;
	info->length = len;
	info->sql = pnstrdup(sql + loc, len);
	info->command_tag = GetCommandTagName(CreateCommandTag(stmt));
	info->is_ddl = (GetCommandLogLevel(stmt) == LOGSTMT_DDL);
	info->needs_top_level = statement_needs_top_level(stmt);
	info->is_transaction_control = statement_is_transaction_control(stmt);
	info->locks = statement_locks(stmt);
	return info;
}

/*
 * A script that sets search_path resolves its later names in that path:
 * follow SET/RESET search_path (and SET LOCAL) while the script is read.
 * The value is applied at the GUC nest level the caller opened, with
 * GUC_ACTION_SAVE, so that it is undone when that level is closed.
 */
static void
script_follow_search_path(Node *stmt)
{
	VariableSetStmt *s;

	if (stmt == NULL || !IsA(stmt, VariableSetStmt))
		return;
	s = (VariableSetStmt *) stmt;
	if (s->name == NULL || strcmp(s->name, "search_path") != 0)
		return;
	switch (s->kind)
	{
		case VAR_SET_VALUE:
			(void) set_config_option("search_path", ExtractSetVariableArgs(s),
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			break;
		case VAR_SET_DEFAULT:
		case VAR_RESET:
			(void) set_config_option("search_path", NULL,
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			break;
		default:
			break;
	}
}

/*
 * Run fn on each statement of a script, in order, with the statement's
 * number (from 1).  SET search_path in the script is followed after each
 * statement, so that later names resolve as they will when the script runs,
 * and undone at the end.  The parse trees are allocated in the current
 * memory context.
 */
void
mt_script_foreach(const char *sql, MtScriptStatementFn fn, void *arg)
{
	List	   *stmts = parse_script(sql);
	ListCell   *lc;
	int			n = 0;
	int			nestlevel;

	nestlevel = NewGUCNestLevel();
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);

		CHECK_FOR_INTERRUPTS();
		fn(sql, raw, ++n, arg);
		script_follow_search_path(raw->stmt);
	}
	AtEOXact_GUC(true, nestlevel);
}

/* What analyze_statement() adds to, and where the result must live. */
typedef struct AnalyzeState
{
	MemoryContext result_cxt;
	List	   *result;
} AnalyzeState;

/* mt_script_foreach() callback of mt_analyze_script(). */
static void
analyze_statement(const char *sql, RawStmt *raw, int number, void *arg)
{
	AnalyzeState *as = (AnalyzeState *) arg;
	MemoryContext oldcxt = MemoryContextSwitchTo(as->result_cxt);

	as->result = lappend(as->result, mt_describe_statement(sql, raw, number));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Split and analyse a script; see lint.h.  The parse trees live in a
 * private memory context that is gone when we return.
 */
List *
mt_analyze_script(const char *sql)
{
	AnalyzeState as;
	MemoryContext parsecxt;
	MemoryContext oldcxt;

	as.result_cxt = CurrentMemoryContext;
	as.result = NIL;
	parsecxt = AllocSetContextCreate(CurrentMemoryContext,
									 "migration_tools script analysis",
									 ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(parsecxt);
	mt_script_foreach(sql, analyze_statement, &as);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(parsecxt);
	return as.result;
}

/*
 * Name of a lock mode, as pg_locks spells it.
 */
const char *
mt_lint_lock_mode_name(LOCKMODE mode)
{
	if (mode < AccessShareLock || mode > AccessExclusiveLock)
		return NULL;
	return GetLockmodeName(DEFAULT_LOCKMETHOD, mode);
}

/*
 * SQL: script_statements(sql text): the statements of a script as the
 * server's parser splits them, with what apply() needs to know about each.
 */
PG_FUNCTION_INFO_V1(mt_script_statements);

Datum
mt_script_statements(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext workcxt;
	MemoryContext oldcxt;
	List	   *infos;
	ListCell   *lc;

	mt_init_materialized_srf(fcinfo);

	workcxt = AllocSetContextCreate(CurrentMemoryContext,
									"migration_tools script_statements",
									ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(workcxt);
	infos = mt_analyze_script(sql);

	foreach(lc, infos)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
		Datum		values[9];
		bool		nulls[9];
		ListCell   *lc2;
		Datum	   *locks;
		int			nlocks = 0;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(info->statement);
		values[1] = Int32GetDatum(info->location);
		values[2] = Int32GetDatum(info->length);
		values[3] = CStringGetTextDatum(info->command_tag);
		values[4] = BoolGetDatum(info->is_ddl);
		values[5] = BoolGetDatum(info->needs_top_level);
		values[6] = BoolGetDatum(info->is_transaction_control);

		locks = (Datum *) palloc(sizeof(Datum) * (list_length(info->locks) + 1));
		foreach(lc2, info->locks)
		{
			MtLockTarget *t = (MtLockTarget *) lfirst(lc2);
			char	   *relname = OidIsValid(t->relid) ?
			mt_relation_display_name(t->relid) : NULL;

			locks[nlocks++] = CStringGetTextDatum(psprintf("%s:%s",
														   relname ? relname : "(not yet)",
														   mt_lint_lock_mode_name(t->mode)));
		}
		values[7] = PointerGetDatum(construct_array(locks, nlocks, TEXTOID,
													-1, false, TYPALIGN_INT));
		values[8] = CStringGetTextDatum(info->sql);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(workcxt);
	return (Datum) 0;
}

/*
 * Display name of a relation: schema-qualified unless it is visible in the
 * search path.  NULL when it does not exist.
 */
char *
mt_relation_display_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		return NULL;
	if (RelationIsVisible(relid))
		return pstrdup(quote_identifier(relname));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/*
 * The lowest severity at which apply() refuses a migration, from
 * migration_tools.lint_level: 3 (error), 2 (warning), or 0 when off.
 */
int
mt_lint_fail_level(void)
{
	return mt_lint_level;
}
