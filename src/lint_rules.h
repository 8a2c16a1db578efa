/*-------------------------------------------------------------------------
 *
 * lint_rules.h
 *	  The state of the linter's walk through a script, and the functions of
 *	  lint_rules.c that the files of rules (lint_rules_*.c) call to read and
 *	  change it and to report findings.
 *
 * IDENTIFICATION
 *	  src/lint_rules.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_RULES_H
#define MT_LINT_RULES_H

#include "lint_int.h"

/* What the linter remembers while it walks a script. */
typedef struct LintState
{
	List	   *findings;		/* MtLintFinding *, in the caller's context */
	MemoryContext result_cxt;	/* where findings go */
	MemoryContext state_cxt;	/* where the state below lives */
	MtStatementInfo *info;		/* the statement being linted */
	List	   *created;		/* RangeVar * created by the script */
	List	   *gone;			/* OIDs of relations the script dropped or
								 * renamed: their old names are free */
	List	   *emptied_names;	/* RangeVar * truncated by the script */
	List	   *nn_checks;		/* NotNullCheck *, every CHECK added (see
								 * lint_rules_table.c) */
	bool		in_xact;		/* inside an explicit BEGIN */
	bool		whole_xact;		/* the runner wraps the whole script in one
								 * transaction (lint(..., in_transaction)) */
	int			xact_statement; /* ... opened by this statement */
	int			xact_location;
	bool		lock_timeout_set;
	bool		lock_timeout_local; /* ... by SET LOCAL, until the end of
									 * the transaction block */
	bool		lock_timeout_reported;
	bool		in_do_block;	/* linting the statements of a DO block */
	void	   *do_ns;			/* PL/pgSQL names of the current statement of
								 * a DO block */
	char	   *do_where;		/* where in the DO block it is, for messages */
	MtDoStatement *do_stmt;		/* the statement of the DO block being linted */
	const char *script;			/* the whole script (NULL in the guard) */
	List	   *held_locks;		/* HeldLock *, taken by the current
								 * transaction of the script so far */
	List	   *nn_dropped;		/* NotNullDropped *, DROP NOT NULL of existing
								 * columns earlier in the script */
	bool		touches_existing;	/* current statement works on an
									 * existing relation */
} LintState;

/* What the catalogs tell about a relation the script names. */
typedef struct TableFacts
{
	Oid			relid;			/* InvalidOid if not in the catalog */
	bool		is_new;			/* created earlier in the script */
	bool		emptied;		/* truncated earlier in the script */
	char		relkind;		/* 0 if unknown */
	double		rows;			/* estimated rows, -1 if unknown */
	char	   *name;			/* display name */
} TableFacts;

/* Does the relation hold rows other sessions use (not new nor emptied)? */
static inline bool
is_existing(const TableFacts *tf)
{
	return !tf->is_new && !tf->emptied;
}

/*
 * Report a finding of the current statement: rule id and severity (as
 * listed by lint_rules()), the relation (tf, or NULL), the lock it takes
 * (NoLock: none), whether it rewrites the table, the rows it touches (-1
 * unknown), the hint and the message.
 */
extern void mt_add_finding(LintState *st, const char *rule, int sev,
						   const TableFacts *tf, LOCKMODE lockmode,
						   bool rewrites, double rows,
						   const char *hint, const char *fmt,...)
			pg_attribute_printf(9, 10);

/* Facts about a relation named in the script, as of the current statement. */
extern void mt_table_facts(LintState *st, RangeVar *rv, TableFacts *tf);

/* The relation a name resolves to here, not one the script dropped. */
extern Oid	mt_script_lookup_relation(LintState *st, RangeVar *rv);

/* The script drops or renames away an existing relation. */
extern void mt_remember_gone(LintState *st, Oid relid);

/* Add a relation to st->created or st->emptied_names. */
extern void mt_remember_rangevar(LintState *st, List **list, RangeVar *rv);

/* VALIDATE CONSTRAINT under a lock the script's transaction holds. */
extern void mt_lint_validate_constraint(LintState *st, const TableFacts *tf,
										AlterTableStmt *stmt,
										AlterTableCmd *cmd);

#endif							/* MT_LINT_RULES_H */
