/*-------------------------------------------------------------------------
 *
 * lint_rules_dml.c
 *	  The rules of UPDATE and DELETE: unbatched-update and unbatched-delete
 *	  for statements estimated to touch more than
 *	  migration_tools.lint_large_rows rows of an existing table in one
 *	  transaction, also in WITH queries and in the loops of DO blocks.
 *
 * The rows come from lint_estimate.c; in a loop of a DO block they are
 * multiplied by the iterations of the loops around the statement when
 * those can be told (constant bounds, or the rows of a FOR loop's query).
 *
 * IDENTIFICATION
 *	  src/lint_rules_dml.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"

#include "lint_estimate.h"
#include "lint_rules_dml.h"

/*
 * How many times one loop of a DO block runs: the constant bounds of an
 * integer FOR loop, or the rows of the query of a FOR loop over one table
 * (its WHERE estimated as for DML, a constant LIMIT respected); -1 when
 * unknown.
 */
static double
one_loop_iterations(LintState *st, MtDoLoop *loop)
{
	SelectStmt *q;
	RangeVar   *rv;
	TableFacts	tf;
	double		rows;
	bool		touched = st->touches_existing;

	if (loop->count >= 0)
		return loop->count;
	if (loop->query == NULL || !IsA(loop->query, SelectStmt))
		return -1;
	q = (SelectStmt *) loop->query;
	if (q->op != SETOP_NONE || list_length(q->fromClause) != 1 ||
		!IsA(linitial(q->fromClause), RangeVar) || q->groupClause != NIL ||
		q->distinctClause != NIL)
		return -1;
	rv = (RangeVar *) linitial(q->fromClause);
	mt_table_facts(st, rv, &tf);
	st->touches_existing = touched;
	if (!OidIsValid(tf.relid) && !tf.is_new)
		return -1;
	rows = mt_estimate_rows(tf.relid, tf.rows, q->whereClause, loop->ns);
	if (rows >= 0 && q->limitCount && IsA(q->limitCount, A_Const) &&
		!((A_Const *) q->limitCount)->isnull &&
		IsA(&((A_Const *) q->limitCount)->val, Integer))
		rows = Min(rows, (double) intVal(&((A_Const *) q->limitCount)->val));
	return rows;
}

/*
 * How many times a statement of a DO block runs: the product of the
 * iterations of the loops around it whose iterations can be told (the
 * others count once); -1 when none can.
 */
static double
loop_iterations(LintState *st, MtDoStatement *ds)
{
	ListCell   *lc;
	double		product = 1;
	bool		known = false;

	foreach(lc, ds->loops)
	{
		double		n = one_loop_iterations(st, (MtDoLoop *) lfirst(lc));

		if (n >= 0)
		{
			product *= n;
			known = true;
		}
	}
	return known ? product : -1;
}

/*
 * UPDATE or DELETE estimated to touch more than lint_large_rows rows of an
 * existing table; in a loop of a DO block, over all its iterations (the
 * block runs in one transaction).
 */
void
mt_lint_dml(LintState *st, RangeVar *relation, Node *where, bool is_update)
{
	TableFacts	tf;
	double		rows;
	double		iterations = -1;
	double		per_iteration = -1;
	const char *loop_note = "";

	mt_table_facts(st, relation, &tf);
	if (!is_existing(&tf))
		return;
	rows = mt_estimate_rows(tf.relid, tf.rows, where, st->do_ns);
	if (rows >= 0 && st->do_stmt && st->do_stmt->in_loop)
	{
		iterations = loop_iterations(st, st->do_stmt);
		if (iterations > 1)
		{
			per_iteration = rows;
			rows = Min(rows * iterations, tf.rows);
		}
	}
	if (rows < 0 || rows <= mt_lint_large_rows)
		return;
	if (per_iteration >= 0)
		loop_note = psprintf(" (about %.0f per iteration, run about %.0f times by its loops)",
							 per_iteration, iterations);
	if (is_update)
	{
		char	   *hint = psprintf("Update in small committed batches in the background: SELECT migration_tools.backfill(%s, '<set clause>', '<where clause>').",
									quote_literal_cstr(tf.name));

		mt_add_finding(st, "unbatched-update", MT_SEV_WARNING, &tf, RowExclusiveLock, false, rows,
					   hint,
					   "UPDATE of about %.0f rows of %s%s in one transaction holds their row locks until commit and bloats the table",
					   rows, tf.name, loop_note);
	}
	else
	{
		char	   *delete_sql = psprintf("DELETE FROM %s WHERE <key> >= $1 AND <key> < $2 AND (<condition>)",
										  tf.name);
		char	   *hint = psprintf("Delete in small committed batches: SELECT migration_tools.run_batched(%s, %s), or TRUNCATE if every row goes.",
									quote_literal_cstr(tf.name),
									quote_literal_cstr(delete_sql));

		mt_add_finding(st, "unbatched-delete", MT_SEV_WARNING, &tf, RowExclusiveLock, false, rows,
					   hint,
					   "DELETE of about %.0f rows of %s%s in one transaction holds their row locks until commit and bloats the table",
					   rows, tf.name, loop_note);
	}
}

/*
 * UPDATE and DELETE in the WITH clause of a statement run like top-level
 * ones: the same unbatched-update and unbatched-delete rules.
 */
void
mt_lint_cte_dml(LintState *st, WithClause *with)
{
	ListCell   *lc;

	if (with == NULL)
		return;
	check_stack_depth();
	foreach(lc, with->ctes)
	{
		CommonTableExpr *cte = (CommonTableExpr *) lfirst(lc);
		Node	   *q;

		if (!IsA(cte, CommonTableExpr) || cte->ctequery == NULL)
			continue;
		q = cte->ctequery;
		if (IsA(q, UpdateStmt))
		{
			mt_lint_cte_dml(st, ((UpdateStmt *) q)->withClause);
			mt_lint_dml(st, ((UpdateStmt *) q)->relation,
						((UpdateStmt *) q)->whereClause, true);
		}
		else if (IsA(q, DeleteStmt))
		{
			mt_lint_cte_dml(st, ((DeleteStmt *) q)->withClause);
			mt_lint_dml(st, ((DeleteStmt *) q)->relation,
						((DeleteStmt *) q)->whereClause, false);
		}
		else if (IsA(q, SelectStmt))
			mt_lint_cte_dml(st, ((SelectStmt *) q)->withClause);
		else if (IsA(q, InsertStmt))
			mt_lint_cte_dml(st, ((InsertStmt *) q)->withClause);
	}
}
