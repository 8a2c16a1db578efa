/*-------------------------------------------------------------------------
 *
 * lint_rules.c
 *	  The rules of the migration linter: the rule list, the findings, and the
 *	  walk through a script that keeps what earlier statements did.
 *
 * mt_lint_script() walks the raw statements of a script in order and keeps
 * what earlier statements did (tables created or truncated, NOT NULL checks
 * added and validated, an open BEGIN, a SET lock_timeout, the locks the
 * script's transaction holds) so that the rules judge each statement as it
 * would run at its place in the script.  lint_statement() hands each
 * statement to the rules of its family: lint_rules_table.c (CREATE and
 * ALTER TABLE), lint_rules_ddl.c (the other DDL and maintenance),
 * lint_rules_dml.c (UPDATE and DELETE); the statements of a DO block are
 * linted here as if they stood in the script.  The rules read the catalogs
 * through lint_facts.c and lint_estimate.c, without taking any relation
 * lock and without planning or executing anything.
 *
 * A relation that the script did not create and that is not in the catalog
 * is assumed to exist (the script may run after migrations not applied in
 * this database): the structural rules fire for it; only the row estimates
 * need the table to be here.
 *
 * The per-script state and the parse trees live in a memory context of
 * their own, and the work done for one statement in a second context reset
 * after each statement, so a large script does not accumulate garbage.
 * The guard lints one statement at a time through mt_lint_utility().
 *
 * IDENTIFICATION
 *	  src/lint_rules.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/tablecmds.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "lint_facts.h"
#include "lint_rules.h"
#include "lint_rules_ddl.h"
#include "lint_rules_dml.h"
#include "lint_rules_table.h"
#include "spi_util.h"

/*
 * A relation lock that an earlier statement of the script took and that the
 * script's transaction still holds (a script runs in one transaction under
 * apply() and under most migration tools, until a COMMIT of its own).
 * Existing relations are known by OID; a relation that is not in the
 * catalog (but not created by the script either) by the name ALTER TABLE
 * gave it.
 */
typedef struct HeldLock
{
	Oid			relid;
	char	   *schemaname;
	char	   *relname;
	LOCKMODE	mode;
	int			statement;		/* the first statement that took it so strong */
	bool		not_valid_add;	/* ... was an ADD CONSTRAINT ... NOT VALID */
} HeldLock;

/* ----------------------------------------------------------------
 * The rules, as lint_rules() lists them
 * ----------------------------------------------------------------
 */
typedef struct MtLintRule
{
	const char *rule;
	const char *severity;
	const char *summary;
} MtLintRule;

static const MtLintRule lint_rule_list[] = {
	{"create-index-non-concurrently", "error",
	"CREATE INDEX without CONCURRENTLY on an existing table blocks writes while it builds"},
	{"drop-index-non-concurrently", "warning",
	"DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table"},
	{"add-column-not-null-no-default", "error",
	"ADD COLUMN NOT NULL without a default fails on a table with rows"},
	{"add-column-volatile-default", "error",
	"ADD COLUMN with a volatile default rewrites the table"},
	{"add-foreign-key-validated", "error",
	"a foreign key added without NOT VALID scans the table while blocking writes to both tables"},
	{"add-check-validated", "error",
	"a CHECK constraint added without NOT VALID scans the table under ACCESS EXCLUSIVE"},
	{"set-not-null", "error",
	"SET NOT NULL scans the table unless a validated CHECK (col IS NOT NULL) proves it"},
	{"change-column-type", "error",
	"a column type change that is not binary compatible rewrites the table"},
	{"rename-column", "warning",
	"renaming a column breaks running code"},
	{"rename-table", "warning",
	"renaming a table breaks running code"},
	{"drop-column", "warning",
	"dropping a column breaks running code that uses it"},
	{"drop-table", "warning",
	"dropping a table loses data and breaks running code"},
	{"add-unique-constraint", "error",
	"a UNIQUE constraint without USING INDEX builds its index while blocking writes"},
	{"add-primary-key", "error",
	"a PRIMARY KEY without USING INDEX (or on nullable columns) builds or scans under ACCESS EXCLUSIVE"},
	{"vacuum-full", "error",
	"VACUUM FULL rewrites tables under ACCESS EXCLUSIVE"},
	{"cluster", "error",
	"CLUSTER rewrites tables under ACCESS EXCLUSIVE"},
	{"refresh-matview-non-concurrently", "error",
	"REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks its readers"},
	{"lock-table", "warning",
	"an explicit LOCK TABLE is held to the end of the transaction"},
	{"unbatched-update", "warning",
	"an UPDATE of more than lint_large_rows rows in one transaction"},
	{"unbatched-delete", "warning",
	"a DELETE of more than lint_large_rows rows in one transaction"},
	{"truncate", "warning",
	"TRUNCATE removes every row under ACCESS EXCLUSIVE"},
	{"concurrently-in-transaction", "error",
	"a statement that cannot run in a transaction block after BEGIN"},
	{"reindex-non-concurrently", "error",
	"REINDEX without CONCURRENTLY blocks writes"},
	{"attach-partition-unvalidated", "error",
	"ATTACH PARTITION without a validated CHECK scans the partition under ACCESS EXCLUSIVE"},
	{"add-stored-generated-column", "error",
	"adding a stored generated column rewrites the table"},
	{"detach-partition-non-concurrently", "warning",
	"DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent"},
	{"add-exclusion-constraint", "error",
	"an EXCLUDE constraint is built and checked under ACCESS EXCLUSIVE"},
	{"add-serial-column", "error",
	"adding a serial or identity column rewrites the table"},
	{"domain-check-constraint", "warning",
	"a domain CHECK without NOT VALID scans every column of the domain"},
	{"uncommitted-transaction", "error",
	"a BEGIN that the script never commits"},
	{"drop-not-null", "info",
	"dropping NOT NULL lets in NULLs that older code may not expect"},
	{"json-column", "info",
	"a json column: prefer jsonb"},
	{"prefer-bigint", "info",
	"a 16 or 32-bit integer key column: prefer bigint"},
	{"prefer-identity", "info",
	"a serial column: prefer an identity column"},
	{"prefer-text", "info",
	"a varchar(n) or char(n) column: prefer text with a CHECK"},
	{"prefer-timestamptz", "info",
	"a timestamp without time zone column: prefer timestamptz"},
	{"require-lock-timeout", "warning",
	"DDL on existing tables with no SET lock_timeout before it"},
	{"dynamic-sql", "warning",
	"an EXECUTE in a DO block runs SQL built at run time, which the linter cannot check"},
	{"do-block-not-checked", "info",
	"a DO block that the linter could not read (another language, or PL/pgSQL that does not compile yet)"},
	{"validate-in-same-transaction", "error",
	"VALIDATE CONSTRAINT in the transaction that added the constraint (or otherwise locked the table) scans under that stronger lock"},
	{"table-rewrite", "error",
	"SET LOGGED/UNLOGGED, SET TABLESPACE, SET ACCESS METHOD, or a column of a constrained domain, copies the table under ACCESS EXCLUSIVE"},
};

/* ----------------------------------------------------------------
 * Findings
 * ----------------------------------------------------------------
 */

/*
 * Add a finding of the current statement; see lint_rules.h.  The rule must
 * be in lint_rule_list with that severity.
 */
void
mt_add_finding(LintState *st, const char *rule, int sev, const TableFacts *tf,
			   LOCKMODE lockmode, bool rewrites, double rows,
			   const char *hint, const char *fmt,...)
{
	MemoryContext old;
	MtLintFinding *f;
	StringInfoData buf;
	const char *severity = (sev == MT_SEV_ERROR) ? "error" :
		(sev == MT_SEV_WARNING) ? "warning" : "info";
	int			i;

	/* every finding is a listed rule with its listed severity */
	for (i = 0; i < lengthof(lint_rule_list); i++)
		if (strcmp(lint_rule_list[i].rule, rule) == 0)
			break;
	if (i == lengthof(lint_rule_list) ||
		strcmp(lint_rule_list[i].severity, severity) != 0)
		elog(ERROR, "lint rule \"%s\" with severity %s is not in the rule list",
			 rule, severity);

	old = MemoryContextSwitchTo(st->result_cxt);
	f = (MtLintFinding *) palloc0(sizeof(MtLintFinding));

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	/* which statement of a DO block */
	if (st->do_where)
		appendStringInfo(&buf, " (%s)", st->do_where);

	f->statement = st->info->statement;
	f->rule = rule;
	f->severity = lint_rule_list[i].severity;
	f->message = buf.data;
	f->hint = hint ? pstrdup(hint) : NULL;
	f->relation = (tf && tf->name) ? pstrdup(tf->name) : NULL;
	f->lock_mode = lockmode != NoLock ? mt_lint_lock_mode_name(lockmode) : NULL;
	f->rewrites = rewrites;
	f->estimated_rows = rows;
	f->location = st->info->location;
	st->findings = lappend(st->findings, f);
	MemoryContextSwitchTo(old);
}

/* ----------------------------------------------------------------
 * The state of the walk: relations as of the current statement
 * ----------------------------------------------------------------
 */

/* Do two RangeVars name the same relation, as far as the text tells? */
static bool
same_rangevar(const RangeVar *a, const RangeVar *b)
{
	if (a->relname == NULL || b->relname == NULL)
		return false;
	if (strcmp(a->relname, b->relname) != 0)
		return false;
	if (a->schemaname && b->schemaname &&
		strcmp(a->schemaname, b->schemaname) != 0)
		return false;
	return true;
}

static bool
rangevar_in_list(List *list, const RangeVar *rv)
{
	ListCell   *lc;

	foreach(lc, list)
		if (same_rangevar((RangeVar *) lfirst(lc), rv))
			return true;
	return false;
}

/*
 * The relation a name resolves to at this point of the script: not one the
 * script dropped or renamed away earlier (the catalog still shows it, since
 * nothing has run).
 */
Oid
mt_script_lookup_relation(LintState *st, RangeVar *rv)
{
	Oid			relid = mt_lookup_relation(rv);

	if (OidIsValid(relid) && list_member_oid(st->gone, relid))
		return InvalidOid;
	return relid;
}

/* Remember that the script drops or renames away an existing relation. */
void
mt_remember_gone(LintState *st, Oid relid)
{
	MemoryContext old;

	if (!OidIsValid(relid))
		return;
	old = MemoryContextSwitchTo(st->state_cxt);
	st->gone = lappend_oid(st->gone, relid);
	MemoryContextSwitchTo(old);
}

/*
 * Facts about a relation named in the script, as of the current statement.
 * Marks the statement as working on an existing relation when it does.
 */
void
mt_table_facts(LintState *st, RangeVar *rv, TableFacts *tf)
{
	memset(tf, 0, sizeof(TableFacts));
	tf->rows = -1;
	if (rv == NULL || rv->relname == NULL)
	{
		tf->is_new = true;
		return;
	}
	tf->relid = mt_script_lookup_relation(st, rv);
	if (OidIsValid(tf->relid))
		tf->is_new = mt_created_in_current_transaction(tf->relid);
	else
		tf->is_new = rangevar_in_list(st->created, rv);
	tf->emptied = rangevar_in_list(st->emptied_names, rv);
	if (OidIsValid(tf->relid))
	{
		tf->name = mt_relation_display_name(tf->relid);
		tf->rows = mt_table_rows(tf->relid, &tf->relkind);
	}
	if (tf->name == NULL)
	{
		tf->name = rv->schemaname ?
			quote_qualified_identifier(rv->schemaname, rv->relname) :
			pstrdup(quote_identifier(rv->relname));
	}
	if (tf->is_new || tf->emptied)
		tf->rows = 0;
	else
		st->touches_existing = true;
}

/* Remember a relation created by the script (in the script's context). */
void
mt_remember_rangevar(LintState *st, List **list, RangeVar *rv)
{
	MemoryContext old;

	if (rv == NULL || rv->relname == NULL)
		return;
	old = MemoryContextSwitchTo(st->state_cxt);
	*list = lappend(*list, makeRangeVar(rv->schemaname ? pstrdup(rv->schemaname) : NULL,
										pstrdup(rv->relname), -1));
	MemoryContextSwitchTo(old);
}



/* ----------------------------------------------------------------
 * Locks the script's transaction holds
 * ----------------------------------------------------------------
 */

/* A lock mode as the documentation writes it ("ACCESS EXCLUSIVE"). */
static const char *
lock_mode_words(LOCKMODE mode)
{
	switch (mode)
	{
		case AccessShareLock:
			return "ACCESS SHARE";
		case RowShareLock:
			return "ROW SHARE";
		case RowExclusiveLock:
			return "ROW EXCLUSIVE";
		case ShareUpdateExclusiveLock:
			return "SHARE UPDATE EXCLUSIVE";
		case ShareLock:
			return "SHARE";
		case ShareRowExclusiveLock:
			return "SHARE ROW EXCLUSIVE";
		case ExclusiveLock:
			return "EXCLUSIVE";
		case AccessExclusiveLock:
			return "ACCESS EXCLUSIVE";
		default:
			return "unknown";
	}
}

/* The held lock on a relation (by OID, else by name), or NULL. */
static HeldLock *
find_held_lock(LintState *st, Oid relid, const char *schemaname,
			   const char *relname)
{
	ListCell   *lc;

	foreach(lc, st->held_locks)
	{
		HeldLock   *h = (HeldLock *) lfirst(lc);

		if (OidIsValid(relid))
		{
			if (h->relid == relid)
				return h;
		}
		else if (!OidIsValid(h->relid) && relname && h->relname &&
				 strcmp(h->relname, relname) == 0 &&
				 (schemaname == NULL || h->schemaname == NULL ||
				  strcmp(h->schemaname, schemaname) == 0))
			return h;
	}
	return NULL;
}

/* Note a lock the current statement takes; the strongest one counts. */
static void
hold_lock(LintState *st, Oid relid, const char *schemaname,
		  const char *relname, LOCKMODE mode, bool not_valid_add)
{
	HeldLock   *h = find_held_lock(st, relid, schemaname, relname);
	MemoryContext old;

	if (h != NULL)
	{
		if (mode > h->mode)
		{
			h->mode = mode;
			h->statement = st->info->statement;
			h->not_valid_add = not_valid_add;
		}
		return;
	}
	old = MemoryContextSwitchTo(st->state_cxt);
	h = (HeldLock *) palloc0(sizeof(HeldLock));
	h->relid = relid;
	h->schemaname = schemaname ? pstrdup(schemaname) : NULL;
	h->relname = relname ? pstrdup(relname) : NULL;
	h->mode = mode;
	h->statement = st->info->statement;
	h->not_valid_add = not_valid_add;
	st->held_locks = lappend(st->held_locks, h);
	MemoryContextSwitchTo(old);
}

/* Does an ALTER TABLE add a CHECK or FOREIGN KEY constraint NOT VALID? */
static bool
adds_not_valid_constraint(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
		Constraint *c;

		if (!IsA(cmd, AlterTableCmd) || cmd->subtype != AT_AddConstraint ||
			cmd->def == NULL || !IsA(cmd->def, Constraint))
			continue;
		c = (Constraint *) cmd->def;
		if ((c->contype == CONSTR_CHECK || c->contype == CONSTR_FOREIGN) &&
			c->skip_validation)
			return true;
	}
	return false;
}

/*
 * After a statement: the relation locks it took stay held until the
 * script's transaction ends.
 */
static void
remember_held_locks(LintState *st, Node *stmt)
{
	ListCell   *lc;
	bool		not_valid = false;
	Oid			target = InvalidOid;

	if (IsA(stmt, AlterTableStmt))
	{
		AlterTableStmt *a = (AlterTableStmt *) stmt;

		not_valid = adds_not_valid_constraint(a);
		if (a->relation && a->relation->relname)
		{
			target = mt_script_lookup_relation(st, a->relation);
			/* not in the catalog, not created here: known by its name */
			if (!OidIsValid(target) && !rangevar_in_list(st->created, a->relation))
				hold_lock(st, InvalidOid, a->relation->schemaname,
						  a->relation->relname,
						  AlterTableGetLockLevel(a->cmds), not_valid);
		}
	}
	foreach(lc, st->info->locks)
	{
		MtLockTarget *t = (MtLockTarget *) lfirst(lc);

		if (OidIsValid(t->relid))
			hold_lock(st, t->relid, NULL, NULL, t->mode,
					  not_valid && t->relid == target);
	}
}

/* The script's transaction ends (or a new one begins): its locks go. */
static void
release_held_locks(LintState *st)
{
	st->held_locks = NIL;
}

/*
 * VALIDATE CONSTRAINT takes only SHARE UPDATE EXCLUSIVE, which is the point
 * of NOT VALID.  But when the same transaction already holds a lock on the
 * table that blocks writes (the ADD CONSTRAINT ... NOT VALID itself, or
 * any other DDL), the validating scan runs under that lock.
 */
void
mt_lint_validate_constraint(LintState *st, const TableFacts *tf,
							AlterTableStmt *stmt, AlterTableCmd *cmd)
{
	HeldLock   *h;
	LOCKMODE	own = AlterTableGetLockLevel(stmt->cmds);
	const char *hint = "Validate in a migration (transaction) of its own: add the constraint NOT VALID and commit, then run ALTER TABLE ... VALIDATE CONSTRAINT in a later transaction, where it takes only a SHARE UPDATE EXCLUSIVE lock.";

	if (!is_existing(tf) || cmd->name == NULL)
		return;
	h = find_held_lock(st, tf->relid,
					   OidIsValid(tf->relid) ? NULL : stmt->relation->schemaname,
					   OidIsValid(tf->relid) ? NULL : stmt->relation->relname);
	if (h != NULL && h->mode >= ShareLock && h->mode >= own)
	{
		if (h->not_valid_add && h->statement == st->info->statement)
			mt_add_finding(st, "validate-in-same-transaction", MT_SEV_ERROR, tf, h->mode, false, tf->rows,
						   hint,
						   "VALIDATE CONSTRAINT %s scans %s while the %s lock taken by the NOT VALID ADD CONSTRAINT earlier in the same DO block is still held: NOT VALID buys nothing",
						   quote_identifier(cmd->name), tf->name,
						   lock_mode_words(h->mode));
		else if (h->not_valid_add)
			mt_add_finding(st, "validate-in-same-transaction", MT_SEV_ERROR, tf, h->mode, false, tf->rows,
						   hint,
						   "VALIDATE CONSTRAINT %s scans %s while the %s lock taken by the NOT VALID ADD CONSTRAINT of statement %d is still held: when the script runs as one transaction (as under apply()), NOT VALID buys nothing",
						   quote_identifier(cmd->name), tf->name,
						   lock_mode_words(h->mode), h->statement);
		else
			mt_add_finding(st, "validate-in-same-transaction", MT_SEV_ERROR, tf, h->mode, false, tf->rows,
						   hint,
						   "VALIDATE CONSTRAINT %s scans %s while the %s lock taken by statement %d in the same transaction is still held, blocking writes for the whole scan",
						   quote_identifier(cmd->name), tf->name,
						   lock_mode_words(h->mode), h->statement);
	}
	else if (own >= ShareLock)
		mt_add_finding(st, "validate-in-same-transaction", MT_SEV_ERROR, tf, own, false, tf->rows,
					   hint,
					   "VALIDATE CONSTRAINT %s scans %s under the %s lock that the other subcommands of this ALTER TABLE take",
					   quote_identifier(cmd->name), tf->name, lock_mode_words(own));
}

/* ----------------------------------------------------------------
 * Transactions, lock_timeout, DO blocks: the walk itself
 * ----------------------------------------------------------------
 */

/*
 * Does the statement wait for the snapshots of older transactions (a
 * concurrent index build, drop or reindex, DETACH PARTITION CONCURRENTLY)?
 * Those waits are lock waits too: under a short lock_timeout they fail as
 * soon as any transaction older than the timeout is open, so
 * require-lock-timeout must not ask for one.
 */
static bool
waits_for_old_snapshots(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			return ((IndexStmt *) stmt)->concurrent;
		case T_DropStmt:
			return ((DropStmt *) stmt)->concurrent;
		case T_ReindexStmt:
			return mt_option_is_true(((ReindexStmt *) stmt)->params,
									 "concurrently");
		case T_AlterTableStmt:
			return mt_detaches_concurrently((AlterTableStmt *) stmt);
		default:
			return false;
	}
}

/*
 * Is a lock_timeout value zero (which turns the timeout off)?  The value
 * is an A_Const integer or string such as 0, '0', '0s' or '0ms'.
 */
static bool
is_zero_setting(Node *arg)
{
	A_Const    *c;

	if (arg && IsA(arg, TypeCast))
		arg = ((TypeCast *) arg)->arg;
	if (arg == NULL || !IsA(arg, A_Const))
		return false;
	c = (A_Const *) arg;
	if (c->isnull)
		return true;
	if (IsA(&c->val, Integer))
		return intVal(&c->val) == 0;
	if (IsA(&c->val, Float))
		return strtod(castNode(Float, &c->val)->fval, NULL) == 0;
	if (IsA(&c->val, String))
	{
		const char *v = strVal(&c->val);
		char	   *end;
		double		d = strtod(v, &end);

		return end != v && d == 0;
	}
	return false;
}

/*
 * SELECT set_config('lock_timeout', '2s', ...) sets the timeout as well
 * as SET does (some migration tools write it that way).
 */
static void
note_set_config_lock_timeout(LintState *st, SelectStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->targetList)
	{
		ResTarget  *rt = (ResTarget *) lfirst(lc);
		FuncCall   *fc;
		Node	   *name;

		if (!IsA(rt, ResTarget) || rt->val == NULL || !IsA(rt->val, FuncCall))
			continue;
		fc = (FuncCall *) rt->val;
		if (list_length(fc->args) != 3 ||
			strcmp(strVal(llast(fc->funcname)), "set_config") != 0)
			continue;
		name = linitial(fc->args);
		if (IsA(name, A_Const) && !((A_Const *) name)->isnull &&
			IsA(&((A_Const *) name)->val, String) &&
			strcmp(strVal(&((A_Const *) name)->val), "lock_timeout") == 0)
			st->lock_timeout_set = !is_zero_setting(lsecond(fc->args));
	}
}

static void lint_statement(LintState *st, Node *stmt);

/*
 * A DO block: lint the statements it runs (see mt_do_block_analyze()) as if
 * they stood in the script, under the DO's statement number, each finding
 * saying where in the block it is; report an EXECUTE of text built at run
 * time, and a block that could not be read.
 */
static void
lint_do_block(LintState *st, DoStmt *stmt)
{
	MtDoBlock  *block;
	ListCell   *lc;
	MtStatementInfo *outer = st->info;

	if (st->in_do_block)
		return;
	block = mt_do_block_analyze(stmt, st->script, outer->statement,
								st->script != NULL);
	/* a COMMIT in the block needs the DO to run outside a transaction block */
	if (block->has_commit && st->in_xact)
		mt_add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, NULL, NoLock, false, -1,
					   "Run the DO block outside BEGIN ... COMMIT, on its own, or leave the COMMIT out of it.",
					   "the COMMIT or ROLLBACK in the DO block fails inside the transaction block opened by statement %d",
					   st->xact_statement);
	else if (block->has_commit && st->whole_xact)
		mt_add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, NULL, NoLock, false, -1,
					   "Put the DO block in a migration of its own that the tool runs without a transaction, or leave the COMMIT out of it.",
					   "the COMMIT or ROLLBACK in the DO block fails inside the transaction block the migration tool runs the whole script in");
	if (block->not_checked)
		mt_add_finding(st, "do-block-not-checked", MT_SEV_INFO, NULL, NoLock, false, -1,
					   "Review the block by hand, or write its statements out in the script.",
					   "the statements of the DO block were not checked: %s",
					   block->not_checked);

	st->in_do_block = true;
	foreach(lc, block->statements)
	{
		MtDoStatement *ds = (MtDoStatement *) lfirst(lc);
		MtStatementInfo *info;

		/* COMMIT in a DO block ends the block's own transaction only */
		if (IsA(ds->raw->stmt, TransactionStmt))
			continue;
		info = mt_describe_statement(ds->sql, ds->raw, outer->statement);
		/* findings point at the DO statement of the script */
		info->statement = outer->statement;
		info->location = outer->location;
		st->info = info;
		st->do_stmt = ds;
		st->do_ns = ds->ns;
		if (ds->lineno <= 0)
			st->do_where = pstrdup("in the DO block");
		else
			st->do_where = psprintf("%s line %d of the DO block%s",
									ds->from_execute ? "EXECUTE at" : "at",
									ds->lineno,
									ds->in_loop ? ", in a loop" : "");
		lint_statement(st, ds->raw->stmt);
	}
	st->info = outer;
	st->do_stmt = NULL;
	st->do_ns = NULL;
	st->do_where = NULL;

	foreach(lc, block->unchecked)
	{
		MtDoUnchecked *u = (MtDoUnchecked *) lfirst(lc);

		if (u->reason)
			mt_add_finding(st, "dynamic-sql", MT_SEV_WARNING, NULL, NoLock, false, -1,
						   "Fix the statement text.",
						   "the EXECUTE at line %d of the DO block runs a string that is not valid SQL (%s): it fails when it runs",
						   u->lineno, u->reason);
		else
			mt_add_finding(st, "dynamic-sql", MT_SEV_WARNING, NULL, NoLock, false, -1,
						   "Write the statements out, in the script or as constant strings, so that they are linted and apply() knows the locks they take; otherwise review the generated SQL by hand.",
						   "the EXECUTE at line %d of the DO block%s runs SQL built at run time: the linter cannot check it, and apply() cannot know the locks it takes",
						   u->lineno, u->in_loop ? " (in a loop)" : "");
	}
	st->in_do_block = false;
}

/*
 * A statement that cannot run in a transaction block, after BEGIN or in a
 * DO block.
 */
static void
lint_needs_top_level(LintState *st)
{
	MtStatementInfo *info = st->info;
	TableFacts	tf;
	ListCell   *lc;

	/* name the first existing relation it works on, if any */
	memset(&tf, 0, sizeof(tf));
	foreach(lc, info->locks)
	{
		MtLockTarget *t = (MtLockTarget *) lfirst(lc);

		if (OidIsValid(t->relid))
		{
			tf.name = mt_relation_display_name(t->relid);
			break;
		}
	}
	if (st->in_do_block)
		mt_add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, &tf, NoLock, false, -1,
					   "Run this statement on its own, outside the DO block (apply() schedules such statements to run after commit).",
					   "%s cannot run inside a DO block",
					   info->command_tag);
	else if (!st->in_xact)
		mt_add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, &tf, NoLock, false, -1,
					   "Put this statement in a migration of its own that the tool runs without a transaction (or call migration_tools.apply(), which schedules it to run after commit).",
					   "%s cannot run inside a transaction block, and the migration tool runs the whole script in one",
					   info->command_tag);
	else
		mt_add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, &tf, NoLock, false, -1,
					   "Run this statement outside BEGIN ... COMMIT, on its own (apply() schedules such statements to run after commit).",
					   "%s cannot run inside the transaction block opened by statement %d",
					   info->command_tag, st->xact_statement);
}

/*
 * BEGIN, COMMIT, ROLLBACK, PREPARE TRANSACTION: the script's transaction
 * block, and the locks and SET LOCAL lock_timeout that end with it.
 */
static void
note_transaction(LintState *st, TransactionStmt *s)
{
	switch (s->kind)
	{
		case TRANS_STMT_BEGIN:
		case TRANS_STMT_START:
			if (!st->in_xact)
			{
				release_held_locks(st);
				st->in_xact = true;
				st->xact_statement = st->info->statement;
				st->xact_location = st->info->location;
			}
			break;
		case TRANS_STMT_COMMIT:
		case TRANS_STMT_ROLLBACK:
		case TRANS_STMT_PREPARE:
			if (s->kind == TRANS_STMT_PREPARE || !s->chain)
				st->in_xact = false;
			release_held_locks(st);
			/* a SET LOCAL ends with the transaction block */
			if (st->lock_timeout_local)
			{
				st->lock_timeout_set = false;
				st->lock_timeout_local = false;
			}
			break;
		default:
			break;
	}
}

/* SET, RESET lock_timeout (and RESET ALL). */
static void
note_set_lock_timeout(LintState *st, VariableSetStmt *s)
{
	if (s->kind == VAR_RESET_ALL)
	{
		st->lock_timeout_set = false;
		st->lock_timeout_local = false;
	}
	if (s->name == NULL || strcmp(s->name, "lock_timeout") != 0)
		return;
	if (s->kind == VAR_SET_VALUE && s->args != NIL)
	{
		/*
		 * SET LOCAL outside BEGIN counts: migration tools run each file in a
		 * transaction of their own.  Inside BEGIN it ends with the block.
		 */
		st->lock_timeout_set = !is_zero_setting(linitial(s->args));
		st->lock_timeout_local = s->is_local && st->in_xact;
	}
	else if (s->kind == VAR_SET_DEFAULT || s->kind == VAR_RESET)
	{
		st->lock_timeout_set = false;
		st->lock_timeout_local = false;
	}
}

/*
 * After the statement's own rules: the first DDL on an existing relation,
 * or the first statement that queues for a lock blocking writes on one
 * (TRUNCATE, LOCK, REINDEX, VACUUM FULL, CLUSTER ...), with no lock_timeout
 * set before it.
 */
static void
lint_lock_timeout(LintState *st, Node *stmt)
{
	MtStatementInfo *info = st->info;
	ListCell   *lc;
	bool		strong = false;
	bool		locks_existing = info->is_ddl && st->touches_existing;

	if (st->lock_timeout_set || st->lock_timeout_reported ||
		waits_for_old_snapshots(stmt))
		return;
	foreach(lc, info->locks)
	{
		MtLockTarget *t = (MtLockTarget *) lfirst(lc);

		if (t->mode >= ShareLock)
			strong = true;
		if (OidIsValid(t->relid) && (info->is_ddl || t->mode >= ShareLock))
			locks_existing = true;
	}
	if (strong && st->touches_existing)
		locks_existing = true;
	if (locks_existing)
	{
		st->lock_timeout_reported = true;
		mt_add_finding(st, "require-lock-timeout", MT_SEV_WARNING, NULL, NoLock, false, -1,
					   "Start the script with SET lock_timeout = '2s' (or run it through migration_tools.apply(), which sets a short lock_timeout and retries).",
					   "%s takes locks on existing tables but no lock_timeout was set before it: while it waits for a lock, every session queues behind it",
					   info->command_tag);
	}
}

/*
 * Rules of one statement; the statement's info is in st->info.  Each kind
 * of statement has its rules in the file of its family: lint_rules_table.c
 * (CREATE and ALTER TABLE), lint_rules_ddl.c (the other DDL and
 * maintenance), lint_rules_dml.c (UPDATE and DELETE); what changes the
 * state of the walk (transactions, lock_timeout, new tables) is here.
 */
static void
lint_statement(LintState *st, Node *stmt)
{
	check_stack_depth();
	st->touches_existing = false;

	if (st->info->needs_top_level &&
		(st->in_xact || st->whole_xact || st->in_do_block))
		lint_needs_top_level(st);

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			mt_lint_alter_table(st, (AlterTableStmt *) stmt);
			break;
		case T_CreateStmt:
			mt_lint_create_table(st, (CreateStmt *) stmt);
			break;
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *s = (CreateTableAsStmt *) stmt;

				if (s->into && s->into->rel &&
					!OidIsValid(mt_script_lookup_relation(st, s->into->rel)))
					mt_remember_rangevar(st, &st->created, s->into->rel);
				break;
			}
		case T_ExplainStmt:
			{
				ExplainStmt *s = (ExplainStmt *) stmt;

				/* EXPLAIN ANALYZE runs the statement */
				if (s->query && mt_option_is_true(s->options, "analyze"))
					lint_statement(st, s->query);
				break;
			}
		case T_DoStmt:
			lint_do_block(st, (DoStmt *) stmt);
			break;
		case T_IndexStmt:
			mt_lint_index(st, (IndexStmt *) stmt);
			break;
		case T_DropStmt:
			mt_lint_drop(st, (DropStmt *) stmt);
			break;
		case T_RenameStmt:
			mt_lint_rename(st, (RenameStmt *) stmt);
			break;
		case T_TruncateStmt:
			mt_lint_truncate(st, (TruncateStmt *) stmt);
			break;
		case T_VacuumStmt:
			mt_lint_vacuum(st, (VacuumStmt *) stmt);
			break;
		case T_ClusterStmt:
			mt_lint_cluster(st, (ClusterStmt *) stmt);
			break;
		case T_RefreshMatViewStmt:
			mt_lint_refresh_matview(st, (RefreshMatViewStmt *) stmt);
			break;
		case T_LockStmt:
			mt_lint_lock_table(st, (LockStmt *) stmt);
			break;
		case T_UpdateStmt:
			{
				UpdateStmt *s = (UpdateStmt *) stmt;

				mt_lint_cte_dml(st, s->withClause);
				mt_lint_dml(st, s->relation, s->whereClause, true);
				break;
			}
		case T_DeleteStmt:
			{
				DeleteStmt *s = (DeleteStmt *) stmt;

				mt_lint_cte_dml(st, s->withClause);
				mt_lint_dml(st, s->relation, s->whereClause, false);
				break;
			}
		case T_ReindexStmt:
			mt_lint_reindex(st, (ReindexStmt *) stmt);
			break;
		case T_AlterDomainStmt:
			mt_lint_alter_domain(st, (AlterDomainStmt *) stmt);
			break;
		case T_TransactionStmt:
			note_transaction(st, (TransactionStmt *) stmt);
			break;
		case T_SelectStmt:
			{
				SelectStmt *s = (SelectStmt *) stmt;

				note_set_config_lock_timeout(st, s);
				/* SELECT ... INTO creates a table, like CREATE TABLE AS */
				if (s->intoClause && s->intoClause->rel &&
					!OidIsValid(mt_script_lookup_relation(st, s->intoClause->rel)))
					mt_remember_rangevar(st, &st->created, s->intoClause->rel);
				mt_lint_cte_dml(st, s->withClause);
				break;
			}
		case T_InsertStmt:
			mt_lint_cte_dml(st, ((InsertStmt *) stmt)->withClause);
			break;
		case T_VariableSetStmt:
			note_set_lock_timeout(st, (VariableSetStmt *) stmt);
			break;
		default:
			break;
	}

	lint_lock_timeout(st, stmt);

	/* what it locked stays locked until the transaction ends */
	if (!IsA(stmt, TransactionStmt))
		remember_held_locks(st, stmt);
}

/* What lint_script_statement() works with. */
typedef struct LintScriptState
{
	LintState  *st;
	MemoryContext stmtcxt;		/* reset after each statement */
} LintScriptState;

/* mt_script_foreach() callback of mt_lint_script(). */
static void
lint_script_statement(const char *sql, RawStmt *raw, int number, void *arg)
{
	LintScriptState *ls = (LintScriptState *) arg;
	LintState  *st = ls->st;
	MemoryContext oldcxt = MemoryContextSwitchTo(ls->stmtcxt);

	st->info = mt_describe_statement(sql, raw, number);
	st->script = sql;
	lint_statement(st, raw->stmt);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(ls->stmtcxt);
	st->info = NULL;
}

/*
 * Lint a script; see lint.h.
 */
List *
mt_lint_script(const char *sql)
{
	return mt_lint_script_ext(sql, false);
}

/*
 * Lint a script, in_transaction: as if it ran in one transaction block;
 * see lint.h.
 */
List *
mt_lint_script_ext(const char *sql, bool in_transaction)
{
	MemoryContext scriptcxt;
	MemoryContext oldcxt;
	LintScriptState ls;
	LintState  *st;
	List	   *findings;

	scriptcxt = AllocSetContextCreate(CurrentMemoryContext,
									  "migration_tools lint",
									  ALLOCSET_DEFAULT_SIZES);
	ls.stmtcxt = AllocSetContextCreate(scriptcxt,
									   "migration_tools lint statement",
									   ALLOCSET_DEFAULT_SIZES);

	st = (LintState *) MemoryContextAllocZero(scriptcxt, sizeof(LintState));
	st->result_cxt = CurrentMemoryContext;
	st->state_cxt = scriptcxt;
	st->whole_xact = in_transaction;
	ls.st = st;

	oldcxt = MemoryContextSwitchTo(scriptcxt);
	mt_script_foreach(sql, lint_script_statement, &ls);

	if (st->in_xact)
	{
		MtStatementInfo fake;

		memset(&fake, 0, sizeof(fake));
		fake.statement = st->xact_statement;
		fake.location = st->xact_location;
		st->info = &fake;
		mt_add_finding(st, "uncommitted-transaction", MT_SEV_ERROR, NULL, NoLock, false, -1,
					   "End the script with COMMIT, or leave out BEGIN: apply() already runs the script in one transaction.",
					   "the transaction opened by statement %d is never committed: its locks are held until the session ends",
					   st->xact_statement);
	}

	findings = st->findings;
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(scriptcxt);
	return findings;
}

/*
 * Lint one utility statement on its own, as the guard sees it; findings
 * are allocated in the current memory context.
 */
List *
mt_lint_utility(const char *sql, RawStmt *raw)
{
	LintState	st;

	memset(&st, 0, sizeof(st));
	st.result_cxt = CurrentMemoryContext;
	st.state_cxt = CurrentMemoryContext;
	st.info = mt_describe_statement(sql, raw, 1);
	lint_statement(&st, raw->stmt);
	return st.findings;
}

/*
 * SQL: lint(sql text, in_transaction boolean DEFAULT false): one row per
 * finding.  The 1.0 lint(text) calls it with one argument.
 */
PG_FUNCTION_INFO_V1(mt_lint);

Datum
mt_lint(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		in_transaction = PG_NARGS() > 1 && !PG_ARGISNULL(1) &&
		PG_GETARG_BOOL(1);
	MemoryContext workcxt;
	MemoryContext oldcxt;
	List	   *findings;
	ListCell   *lc;

	mt_init_materialized_srf(fcinfo);

	workcxt = AllocSetContextCreate(CurrentMemoryContext,
									"migration_tools lint results",
									ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(workcxt);
	findings = mt_lint_script_ext(sql, in_transaction);

	foreach(lc, findings)
	{
		MtLintFinding *f = (MtLintFinding *) lfirst(lc);
		Datum		values[10];
		bool		nulls[10];

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(f->statement);
		values[1] = CStringGetTextDatum(f->rule);
		values[2] = CStringGetTextDatum(f->severity);
		values[3] = CStringGetTextDatum(f->message);
		if (f->hint)
			values[4] = CStringGetTextDatum(f->hint);
		else
			nulls[4] = true;
		if (f->relation)
			values[5] = CStringGetTextDatum(f->relation);
		else
			nulls[5] = true;
		if (f->lock_mode)
			values[6] = CStringGetTextDatum(f->lock_mode);
		else
			nulls[6] = true;
		values[7] = BoolGetDatum(f->rewrites);
		if (f->estimated_rows >= 0)
			values[8] = Int64GetDatum((int64) Min(f->estimated_rows, (double) PG_INT64_MAX));
		else
			nulls[8] = true;
		values[9] = Int32GetDatum(f->location);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(workcxt);
	return (Datum) 0;
}

/*
 * SQL: lint_rules(): every rule id with its severity and what it catches.
 */
PG_FUNCTION_INFO_V1(mt_lint_rules);

Datum
mt_lint_rules(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	mt_init_materialized_srf(fcinfo);
	for (i = 0; i < lengthof(lint_rule_list); i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(lint_rule_list[i].rule);
		values[1] = CStringGetTextDatum(lint_rule_list[i].severity);
		values[2] = CStringGetTextDatum(lint_rule_list[i].summary);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
