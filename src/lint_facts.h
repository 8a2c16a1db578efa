/*-------------------------------------------------------------------------
 *
 * lint_facts.h
 *	  What the catalogs tell the linter about relations, constraints,
 *	  domains, functions and types (lint_facts.c).
 *
 * IDENTIFICATION
 *	  src/lint_facts.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_FACTS_H
#define MT_LINT_FACTS_H

#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"

/*
 * Estimated rows of a table (a partitioned table: the sum of its
 * partitions), -1 if unknown; *relkind (if not NULL) gets its relkind.
 */
extern double mt_table_rows(Oid relid, char *relkind);

/* Created by the current transaction (or temporary): no one else sees it. */
extern bool mt_created_in_current_transaction(Oid relid);

/* A validated CHECK of the table proves the column is not null. */
extern bool mt_catalog_has_not_null_check(Oid relid, const char *column);

/*
 * The relation has a CHECK named conname (validated or not) that, when
 * column is not NULL, proves that column is not null.
 */
extern bool mt_catalog_check_constraint(Oid relid, const char *conname,
										const char *column);

/* The relation has a validated CHECK constraint. */
extern bool mt_catalog_has_validated_check(Oid relid);

/* How many table columns have the domain as their type; -1 unknown domain. */
extern int	mt_domain_column_count(List *names);

/* An ALTER DOMAIN that checks the values of every column of the domain. */
extern bool mt_alter_domain_scans(AlterDomainStmt *s);

/* The tables and matviews with a column of the domain (or one over it). */
extern List *mt_domain_relations(List *names);

/* The highest volatility of the functions a raw expression calls. */
extern char mt_expression_volatility(Node *expr);

/* A raw expression calls a function the catalog does not have. */
extern bool mt_expression_calls_unknown_function(Node *expr);

/* Would changing a column's type and typmod rewrite the table? */
extern bool mt_type_change_rewrites(Oid oldtype, int32 oldmod,
									Oid newtype, int32 newmod);

#endif							/* MT_LINT_FACTS_H */
