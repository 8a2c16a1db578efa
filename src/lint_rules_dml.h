/*-------------------------------------------------------------------------
 *
 * lint_rules_dml.h
 *	  The rules of UPDATE and DELETE: statements that touch more rows than
 *	  migration_tools.lint_large_rows in one transaction (lint_rules_dml.c).
 *
 * IDENTIFICATION
 *	  src/lint_rules_dml.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_RULES_DML_H
#define MT_LINT_RULES_DML_H

#include "lint_rules.h"

/* An UPDATE (is_update) or DELETE of relation with a raw WHERE clause. */
extern void mt_lint_dml(LintState *st, RangeVar *relation, Node *where,
						bool is_update);

/* The UPDATE and DELETE statements of a WITH clause. */
extern void mt_lint_cte_dml(LintState *st, WithClause *with);

#endif							/* MT_LINT_RULES_DML_H */
