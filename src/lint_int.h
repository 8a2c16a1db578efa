/*-------------------------------------------------------------------------
 *
 * lint_int.h
 *	  Declarations shared by the files of the linter (lint.c, lint_rules.c,
 *	  guard.c) and by nothing else.
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
extern List *mt_do_block_statements(DoStmt *stmt, char **inner);

/* lint_rules.c */
extern List *mt_lint_utility(const char *sql, RawStmt *raw);

/* guard.c */
extern void mt_guard_init(void);

#endif							/* MT_LINT_INT_H */
