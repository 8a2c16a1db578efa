/*-------------------------------------------------------------------------
 *
 * lint_rules_table.h
 *	  The rules of CREATE TABLE and ALTER TABLE (lint_rules_table.c).
 *
 * IDENTIFICATION
 *	  src/lint_rules_table.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_RULES_TABLE_H
#define MT_LINT_RULES_TABLE_H

#include "lint_rules.h"

extern void mt_lint_alter_table(LintState *st, AlterTableStmt *stmt);
extern void mt_lint_create_table(LintState *st, CreateStmt *stmt);

#endif							/* MT_LINT_RULES_TABLE_H */
