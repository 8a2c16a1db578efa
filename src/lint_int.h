/*-------------------------------------------------------------------------
 *
 * lint_int.h
 *	  The linter's internal interface: what its files (lint*.c, guard.c)
 *	  call in one another, and nothing else includes.  One section per
 *	  file that defines the symbols.
 *
 * IDENTIFICATION
 *	  src/lint_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_INT_H
#define MT_LINT_INT_H

#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"

#include "lint.h"
#include "compat.h"

/* severities as numbers, as mt_lint_severity_level() returns them */
#define MT_SEV_INFO		1
#define MT_SEV_WARNING	2
#define MT_SEV_ERROR	3

/* GUC migration_tools.lint_large_rows */
extern int	mt_lint_large_rows;

/* lint.c */
typedef void (*MtScriptStatementFn) (const char *sql, RawStmt *raw,
									 int number, void *arg);
extern void mt_script_foreach(const char *sql, MtScriptStatementFn fn,
							  void *arg);
extern MtStatementInfo *mt_describe_statement(const char *sql, RawStmt *raw,
											  int number);
extern Oid	mt_lookup_relation(RangeVar *rv);
extern bool mt_option_is_true(List *options, const char *name);
extern bool mt_detaches_concurrently(AlterTableStmt *stmt);
extern const char *mt_lint_lock_mode_name(LOCKMODE mode);
extern char *mt_relation_display_name(Oid relid);
mt_noreturn extern void mt_script_error(const char *script, int position,
										ErrorData *edata, const char *context);

/* lint_locks.c */
extern List *mt_statement_locks(Node *stmt);

/* lint_plpgsql.c */

/* One SQL statement of a DO block. */
typedef struct MtDoStatement
{
	RawStmt    *raw;			/* the parsed statement */
	const char *sql;			/* the text raw's locations point into */
	int			lineno;			/* its line in the DO body (0: unknown) */
	bool		from_execute;	/* the constant string of an EXECUTE */
	bool		in_loop;		/* inside a loop of the block */
	void	   *ns;				/* the PL/pgSQL names it sees, or NULL */
	List	   *loops;			/* MtDoLoop *, the loops around it, outermost
								 * first */
} MtDoStatement;

/* A loop of a DO block, as far as its iterations can be told. */
typedef struct MtDoLoop
{
	Node	   *query;			/* FOR ... IN <query>: the raw SELECT, or NULL */
	void	   *ns;				/* the names that query sees */
	double		count;			/* FOR i IN a..b of constants: iterations;
								 * -1 unknown */
} MtDoLoop;

/* An EXECUTE whose statement the linter cannot read. */
typedef struct MtDoUnchecked
{
	int			lineno;
	const char *reason;			/* NULL: the text is built at run time */
	bool		in_loop;
} MtDoUnchecked;

/* What a DO block runs, as far as it can be known without running it. */
typedef struct MtDoBlock
{
	bool		compiled;		/* read by the PL/pgSQL compiler */
	List	   *statements;		/* MtDoStatement *, in the order written */
	List	   *unchecked;		/* MtDoUnchecked * */
	char	   *not_checked;	/* why the block could not be read, or NULL */
	bool		has_commit;		/* it has COMMIT or ROLLBACK statements */
} MtDoBlock;

/*
 * The SQL statements of a DO block.  With raise_syntax_errors, a syntax
 * error in the body is an ERROR placed in script (the text the DO was
 * parsed from, whose statement number it was); otherwise a body that does
 * not compile is read as plain SQL if it can be.
 */
extern MtDoBlock *mt_do_block_analyze(DoStmt *stmt, const char *script,
									  int statement, bool raise_syntax_errors);
extern bool mt_do_is_variable(void *ns, ColumnRef *cref);

/* lint_rules.c */
extern List *mt_lint_utility(const char *sql, RawStmt *raw);

#endif							/* MT_LINT_INT_H */
