/*-------------------------------------------------------------------------
 *
 * lint_rules_ddl.h
 *	  The rules of the other schema and maintenance statements: indexes,
 *	  DROP, RENAME, TRUNCATE, VACUUM, CLUSTER, REINDEX, REFRESH
 *	  MATERIALIZED VIEW, LOCK, ALTER DOMAIN (lint_rules_ddl.c).
 *
 * IDENTIFICATION
 *	  src/lint_rules_ddl.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_RULES_DDL_H
#define MT_LINT_RULES_DDL_H

#include "lint_rules.h"

extern void mt_lint_index(LintState *st, IndexStmt *stmt);
extern void mt_lint_drop(LintState *st, DropStmt *stmt);
extern void mt_lint_rename(LintState *st, RenameStmt *stmt);
extern void mt_lint_truncate(LintState *st, TruncateStmt *stmt);
extern void mt_lint_vacuum(LintState *st, VacuumStmt *stmt);
extern void mt_lint_reindex(LintState *st, ReindexStmt *stmt);
extern void mt_lint_cluster(LintState *st, ClusterStmt *s);
extern void mt_lint_refresh_matview(LintState *st, RefreshMatViewStmt *s);
extern void mt_lint_lock_table(LintState *st, LockStmt *s);
extern void mt_lint_alter_domain(LintState *st, AlterDomainStmt *s);

#endif							/* MT_LINT_RULES_DDL_H */
