/*-------------------------------------------------------------------------
 *
 * lint_estimate.h
 *	  Row estimates of the linter: how many rows a WHERE clause selects
 *	  (lint_estimate.c).
 *
 * IDENTIFICATION
 *	  src/lint_estimate.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_LINT_ESTIMATE_H
#define MT_LINT_ESTIMATE_H

#include "nodes/nodes.h"

/*
 * Estimated rows that a raw WHERE clause (NULL: none) selects from relid,
 * a relation of the given rows; -1 if rows is -1 (unknown).  do_ns: the
 * PL/pgSQL names the statement sees in a DO block, or NULL.
 */
extern double mt_estimate_rows(Oid relid, double rows, Node *where,
							   void *do_ns);

#endif							/* MT_LINT_ESTIMATE_H */
