/*-------------------------------------------------------------------------
 *
 * lint.h
 *	  The linter and the statement analysis built on the server's parser,
 *	  as used by apply() (history_apply.c) and the optional utility guard.
 *
 * IDENTIFICATION
 *	  src/lint.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_H
#define MT_LINT_H

#include "nodes/pg_list.h"
#include "storage/lockdefs.h"

/* One lock a statement takes on a relation. */
typedef struct MtLockTarget
{
	Oid			relid;			/* InvalidOid if the relation does not exist yet */
	LOCKMODE	mode;
} MtLockTarget;

/* What the parser tells about one statement of a script. */
typedef struct MtStatementInfo
{
	int			statement;		/* 1-based number in the script */
	int			location;		/* byte offset of the statement in the script */
	int			length;			/* its length in bytes (0: to the end) */
	char	   *sql;			/* the statement's own text */
	const char *command_tag;	/* e.g. "CREATE INDEX" */
	bool		is_ddl;			/* a utility statement that changes the schema */
	bool		needs_top_level;	/* cannot run inside a transaction block
									 * (CREATE INDEX CONCURRENTLY, VACUUM, ...) */
	bool		is_transaction_control; /* BEGIN, COMMIT, SET ... */
	List	   *locks;			/* MtLockTarget *, the relation locks it takes */
} MtStatementInfo;

/* One finding of the linter. */
typedef struct MtLintFinding
{
	int			statement;		/* 1-based statement number */
	const char *rule;			/* stable kebab-case rule id */
	const char *severity;		/* "error", "warning" or "info" */
	char	   *message;
	char	   *hint;
	char	   *relation;		/* qualified name, or NULL */
	const char *lock_mode;		/* e.g. "AccessExclusiveLock", or NULL */
	bool		rewrites;		/* the statement rewrites the table */
	double		estimated_rows; /* rows affected or scanned, -1 unknown */
	int			location;		/* byte offset of the statement */
} MtLintFinding;

/*
 * Split and analyse a script with the server's parser.  Never executes
 * anything and takes no relation lock; names resolve in the caller's
 * search_path, as changed by SET search_path statements earlier in the
 * script (undone on return).  A syntax error is raised as an ERROR with its
 * position.  Returns a List of MtStatementInfo *, allocated in the current
 * memory context.
 */
extern List *mt_analyze_script(const char *sql);

/*
 * Lint a script; returns a List of MtLintFinding *, in statement order.
 * Syntax errors are raised as an ERROR with the position.
 */
extern List *mt_lint_script(const char *sql);

/*
 * The same, with in_transaction: as if the runner wraps the whole script in
 * one transaction block (drizzle-kit, node-pg-migrate, knex do).
 */
extern List *mt_lint_script_ext(const char *sql, bool in_transaction);

/* Severity as a number: info 1, warning 2, error 3; -1 if unrecognized. */
extern int	mt_lint_severity_level(const char *severity);

/*
 * GUC migration_tools.lint_level (error, warning, off): the lowest severity
 * at which apply() refuses a migration.  mt_lint_fail_level() gives it as a
 * severity number (3 for error, 2 for warning), or 0 when linting is off.
 */
#define MT_LINT_LEVEL_OFF		0
#define MT_LINT_LEVEL_WARNING	2
#define MT_LINT_LEVEL_ERROR		3
extern PGDLLIMPORT int mt_lint_level;
extern int	mt_lint_fail_level(void);

/* Define the linter GUCs (from _PG_init). */
extern void mt_lint_init(void);

#endif							/* MT_LINT_H */
