/*-------------------------------------------------------------------------
 *
 * backfill_validate.c
 *	  Validation of a job's statement at queue time, and the guard proof.
 *
 * backfill() and run_batched() (backfill.c) build the statement a job will
 * run and hand it here before the job is recorded.  This file parses it,
 * checks that the user's clauses stand on their own and stayed in their
 * place (check_clauses_alone, check_update_shape), parse-analyzes it as the
 * caller (unknown columns, types, privileges on columns), refuses what a
 * strategy cannot run exactly once, builds the guard of a backfill()
 * ("the row does not already hold the values the SET list would give it",
 * build_guard) and drops the guard when the where_clause provably implies
 * it (guard_is_implied, expr_is_nonnull).  For run_batched(), it checks
 * that the statement is one plannable statement that uses both batch
 * bounds, inclusively under the key strategy.  Nothing here runs the
 * statement or writes anything.
 *
 * IDENTIFICATION
 *	  src/backfill_validate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "rewrite/rewriteManip.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/typcache.h"

#include "backfill_int.h"
#include "compat.h"

static void refuse_key_assignment(Query *query, const MtJobSql *js);
static bool batch_params_walker(Node *node, int *used);
static bool exclusive_bound_walker(Node *node, void *context);
static void check_update_shape(List *raws, const MtJobSql *js, bool has_lower);
static char *build_guard(Relation rel, Query *query, bool by_ctid, bool guard,
						 bool has_where);
static bool guard_is_implied(Relation rel, Query *query, Node *where, Node *guard);
static bool expr_is_nonnull(Node *node, Relation rel, Index rtindex);

/*
 * Errors while parsing a job's statement point into that statement, not
 * into the caller's query: report the position as an internal one, with
 * the statement shown.
 */
static void
job_sql_error_callback(void *arg)
{
	const char *sql = (const char *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(sql);
	}
}

/* parse_analyze_fixedparams with positions reported in sql */
static Query *
analyze_job_sql(RawStmt *raw, const char *sql, Oid *ptypes, int nparams)
{
	ErrorContextCallback cb;
	Query	   *query;

	cb.callback = job_sql_error_callback;
	cb.arg = (void *) sql;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	query = parse_analyze_fixedparams(raw, sql, ptypes, nparams, NULL);
	error_context_stack = cb.previous;
	return query;
}

/* raw_parser with positions reported in sql */
static List *
parse_job_sql(const char *sql)
{
	ErrorContextCallback cb;
	List	   *raws;

	cb.callback = job_sql_error_callback;
	cb.arg = (void *) sql;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	raws = raw_parser(sql, RAW_PARSE_DEFAULT);
	error_context_stack = cb.previous;
	return raws;
}

/*
 * The key strategy walks the primary key in order and checkpoints the last
 * key done; a set clause that assigns a key column moves rows along that
 * walk, so they would be met again (or collide) in later batches.
 */
static void
refuse_key_assignment(Query *query, const MtJobSql *js)
{
	ListCell   *lc;

	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		ListCell   *lc2;

		if (tle->resjunk)
			continue;
		foreach(lc2, js->key_columns)
		{
			if (strcmp(tle->resname, (char *) lfirst(lc2)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("the key strategy cannot assign primary key column \"%s\"",
								tle->resname),
						 errdetail("The job walks the table in primary key order; rows whose key it changes would be met again by later batches."),
						 errhint("Copy into a new table with run_batched(), or use strategy => 'ctid' with a set clause that does not read the columns it assigns.")));
		}
	}
}

/*
 * Each clause must stand on its own.  The batch range goes between the
 * set_clause and the where_clause, so a set_clause that opens a string, a
 * dollar quote, a quoted identifier or a comment that the where_clause
 * closes would swallow the range (set_clause "s = $$", where_clause "$$
 * WHERE true AND true AND (true": the UPDATE as a whole parses, with the
 * same shape, and every batch updates the whole table).  So the SET list
 * is parsed alone, as the complete SET list of an UPDATE, and the
 * where_clause alone, as one parenthesized condition.
 */
static void
check_clauses_alone(const MtJobSql *js)
{
	List	   *raws;
	bool		ok;

	raws = parse_job_sql(psprintf("UPDATE %s%s SET %s\n", js->only ? "ONLY " : "",
								  js->relname, js->set_clause));
	ok = list_length(raws) == 1 && IsA(linitial_node(RawStmt, raws)->stmt, UpdateStmt);
	if (ok)
	{
		UpdateStmt *upd = (UpdateStmt *) linitial_node(RawStmt, raws)->stmt;

		ok = upd->whereClause == NULL && upd->fromClause == NIL &&
			!mt_stmt_has_returning(upd) && upd->withClause == NULL;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid set_clause"),
				 errdetail("The set_clause must be a list of assignments only (no WHERE, FROM or RETURNING)."),
				 errhint("Write the set clause as in \"col = expr, col2 = expr2\".")));
	if (js->where_clause == NULL)
		return;
	raws = parse_job_sql(psprintf("SELECT WHERE (%s\n)", js->where_clause));
	ok = list_length(raws) == 1 && IsA(linitial_node(RawStmt, raws)->stmt, SelectStmt);
	if (ok)
	{
		SelectStmt *sel = (SelectStmt *) linitial_node(RawStmt, raws)->stmt;

		ok = sel->op == SETOP_NONE && sel->targetList == NIL && sel->fromClause == NIL &&
			sel->groupClause == NIL && sel->havingClause == NULL &&
			sel->sortClause == NIL && sel->limitCount == NULL &&
			sel->limitOffset == NULL && sel->lockingClause == NIL &&
			sel->windowClause == NIL && sel->withClause == NULL;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid where_clause"),
				 errdetail("The where_clause must be one condition."),
				 errhint("Write the where clause as a boolean expression, as after WHERE.")));
}

/*
 * Parse the UPDATE a backfill() job will run and parse-analyze it as the
 * caller, without running it: unknown columns, type errors and syntax
 * errors in set_clause or where_clause are reported now.  Also decides the
 * guard, checks column privileges, and refuses what the ctid strategy
 * cannot do exactly once.
 */
void
mt_backfill_analyze(Relation rel, MtJobSql *js, bool guard, bool update_ok)
{
	char	   *sql;
	List	   *raws;
	Query	   *query;
	int			nparams;
	Oid		   *ptypes;
	ListCell   *lc;

	/* first without guard: the guard is built from the analyzed SET list */
	sql = mt_backfill_update_sql(js, true, &nparams);
	raws = parse_job_sql(sql);
	check_update_shape(raws, js, true);
	check_clauses_alone(js);

	ptypes = palloc(sizeof(Oid) * nparams);
	for (int i = 0; i < nparams; i++)
		ptypes[i] = js->by_ctid ? TIDOID : TEXTOID;
	query = analyze_job_sql(linitial_node(RawStmt, raws), sql, ptypes, nparams);

	if (!update_ok)
	{
		/* column privileges: every column the SET list assigns */
		foreach(lc, query->targetList)
		{
			TargetEntry *tle = lfirst_node(TargetEntry, lc);

			if (tle->resjunk)
				continue;
			if (pg_attribute_aclcheck(RelationGetRelid(rel), tle->resno, GetUserId(),
									  ACL_UPDATE) != ACLCHECK_OK)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to update column \"%s\" of table \"%s\"",
								tle->resname, RelationGetRelationName(rel))));
		}
	}

	if (!js->by_ctid)
		refuse_key_assignment(query, js);

	js->guard_clause = build_guard(rel, query, js->by_ctid, guard, js->where_clause != NULL);

	if (js->guard_clause)
	{
		Query	   *full;
		List	   *conds;

		/* the full statement, as the worker will run it, must analyze too */
		sql = mt_backfill_update_sql(js, true, &nparams);
		raws = parse_job_sql(sql);
		check_update_shape(raws, js, true);
		full = analyze_job_sql(linitial_node(RawStmt, raws), sql, ptypes, nparams);

		/*
		 * The WHERE is the AND that check_update_shape() checked: two range
		 * conditions, then the where_clause, then the guard.  When the
		 * where_clause alone already rejects every row the guard would
		 * reject, the guard only costs a second evaluation of the set
		 * expressions per row: drop it.
		 */
		conds = ((BoolExpr *) full->jointree->quals)->args;
		if (js->where_clause != NULL && list_length(conds) == 4 &&
			guard_is_implied(rel, full, (Node *) lthird(conds), (Node *) lfourth(conds)))
			js->guard_clause = NULL;
	}
}

/* Append the operands of a tree of ANDs (or ORs) to *out. */
static void
flatten_bool(Node *node, BoolExprType op, List **out)
{
	if (node && IsA(node, BoolExpr) && ((BoolExpr *) node)->boolop == op)
	{
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) node)->args)
			flatten_bool((Node *) lfirst(lc), op, out);
	}
	else
		*out = lappend(*out, node);
}

/*
 * Does the where_clause (analyzed) imply the guard (analyzed), so that
 * "where AND guard" accepts exactly the rows "where" accepts?  The guard
 * is an OR of one "col IS DISTINCT FROM (expr)" per assigned column; it
 * holds as soon as one of them does.  So it is implied when one top-level
 * AND operand of the where_clause is
 *	- "col IS NULL" for an assigned column col (not of a composite type,
 *	  where IS NULL also holds for a row of NULLs) whose expression is
 *	  provably never NULL: the row then differs from what the set clause
 *	  writes, and once written, it can never match the where_clause again;
 *	- the same "col IS DISTINCT FROM expr" as the guard's (or the whole
 *	  guard): the user already wrote the guard.
 * Anything else keeps the guard.
 */
static bool
guard_is_implied(Relation rel, Query *query, Node *where, Node *guard)
{
	List	   *conjuncts = NIL;
	List	   *disjuncts = NIL;
	ListCell   *lc;

	flatten_bool(where, AND_EXPR, &conjuncts);
	flatten_bool(guard, OR_EXPR, &disjuncts);

	foreach(lc, conjuncts)
	{
		Node	   *c = (Node *) lfirst(lc);
		ListCell   *lc2;

		if (equal(c, guard))
			return true;
		foreach(lc2, disjuncts)
		{
			if (equal(c, lfirst(lc2)))
				return true;
		}
		if (IsA(c, DistinctExpr) && list_length(((DistinctExpr *) c)->args) == 2)
		{
			/* "expr IS DISTINCT FROM col", with a commutative "=" */
			DistinctExpr *swapped = copyObject((DistinctExpr *) c);

			swapped->opno = get_commutator(swapped->opno);
			swapped->opfuncid = InvalidOid;
			swapped->args = list_make2(lsecond(swapped->args), linitial(swapped->args));
			if (swapped->opno == ((DistinctExpr *) c)->opno)
			{
				set_opfuncid((OpExpr *) swapped);
				foreach(lc2, disjuncts)
				{
					if (equal(swapped, lfirst(lc2)))
						return true;
				}
			}
		}

		if (IsA(c, NullTest) && ((NullTest *) c)->nulltesttype == IS_NULL &&
			!((NullTest *) c)->argisrow)
		{
			Node	   *arg = (Node *) ((NullTest *) c)->arg;
			Var		   *var;

			while (IsA(arg, RelabelType))
				arg = (Node *) ((RelabelType *) arg)->arg;
			if (!IsA(arg, Var))
				continue;
			var = (Var *) arg;
			if (var->varno != query->resultRelation || var->varlevelsup != 0 ||
				var->varattno <= 0)
				continue;
			foreach(lc2, query->targetList)
			{
				TargetEntry *tle = lfirst_node(TargetEntry, lc2);

				if (!tle->resjunk && tle->resno == var->varattno &&
					!type_is_rowtype(exprType((Node *) tle->expr)) &&
					expr_is_nonnull((Node *) tle->expr, rel, query->resultRelation))
					return true;
			}
		}
	}
	return false;
}

/*
 * Built-in functions (and the functions of built-in operators and casts)
 * that never return NULL when no argument is NULL.  Being strict is not
 * enough: substring(text from pattern), regexp_match(), jsonb ->> key or
 * to_char(x, '') return NULL for some non-null arguments, and a row whose
 * target is written NULL would match "col IS NULL" again.
 */
static const Oid nonnull_functions[] = {
	/* text */
	F_MD5_TEXT, F_MD5_BYTEA, F_SHA224, F_SHA256, F_SHA384, F_SHA512,
	F_TEXTCAT, F_LOWER_TEXT, F_UPPER_TEXT, F_INITCAP,
	F_BTRIM_TEXT, F_BTRIM_TEXT_TEXT, F_LTRIM_TEXT, F_LTRIM_TEXT_TEXT,
	F_RTRIM_TEXT, F_RTRIM_TEXT_TEXT, F_REPLACE, F_REPEAT, MT_F_REVERSE_TEXT,
	F_LPAD_TEXT_INT4, F_LPAD_TEXT_INT4_TEXT, F_RPAD_TEXT_INT4, F_RPAD_TEXT_INT4_TEXT,
	F_LEFT, F_RIGHT, F_SUBSTR_TEXT_INT4, F_SUBSTR_TEXT_INT4_INT4,
	F_SUBSTRING_TEXT_INT4, F_SUBSTRING_TEXT_INT4_INT4,
	F_LENGTH_TEXT, F_OCTET_LENGTH_TEXT, F_CHAR_LENGTH_TEXT,
	F_ENCODE, F_TO_HEX_INT4, F_TO_HEX_INT8,
	/* arithmetic (errors, never NULL, on overflow or division by zero) */
	F_INT2PL, F_INT2MI, F_INT2MUL, F_INT4PL, F_INT4MI, F_INT4MUL,
	F_INT8PL, F_INT8MI, F_INT8MUL, F_INT48PL, F_INT48MI, F_INT48MUL,
	F_INT84PL, F_INT84MI, F_INT84MUL,
	F_NUMERIC_ADD, F_NUMERIC_SUB, F_NUMERIC_MUL,
	F_FLOAT8PL, F_FLOAT8MI, F_FLOAT8MUL,
	/* casts */
	F_INT8_INT4, F_INT4_INT8, F_INT4_INT2, F_INT8_INT2, F_INT2_INT4,
	F_NUMERIC_INT4, F_NUMERIC_INT8, F_INT4_NUMERIC, F_INT8_NUMERIC,
	F_FLOAT8_INT4, F_FLOAT8_INT8, F_NUMERIC_NUMERIC_INT4,
	F_VARCHAR_VARCHAR_INT4_BOOL, F_BPCHAR_BPCHAR_INT4_BOOL, F_TEXT_BPCHAR, F_TEXT_BOOL
};

static bool
function_is_nonnull(Oid funcid)
{
	for (int i = 0; i < lengthof(nonnull_functions); i++)
		if (nonnull_functions[i] == funcid)
			return true;
	return false;
}

/* Are all expressions of the list provably non-null? */
static bool
all_nonnull(List *args, Relation rel, Index rtindex)
{
	ListCell   *lc;

	foreach(lc, args)
	{
		if (!expr_is_nonnull((Node *) lfirst(lc), rel, rtindex))
			return false;
	}
	return true;
}

/*
 * Is an (analyzed) expression of the set clause provably never NULL for
 * any row of rel?  Non-null constants, NOT NULL columns and system
 * columns of the row, the functions and operators listed above with
 * non-null arguments, conversions of a non-null value (I/O conversions,
 * binary-compatible and array casts, domains), COALESCE, GREATEST and
 * LEAST with a non-null argument, CASE whose results all are non-null,
 * AND, OR, NOT of non-null operands, IS [NOT] NULL and IS [NOT]
 * TRUE/FALSE/UNKNOWN.  Anything else may be NULL.
 */
static bool
expr_is_nonnull(Node *node, Relation rel, Index rtindex)
{
	if (node == NULL)
		return false;
	check_stack_depth();

	switch (nodeTag(node))
	{
		case T_Const:
			return !((Const *) node)->constisnull;
		case T_Var:
			{
				Var		   *var = (Var *) node;

				if (var->varno != rtindex || var->varlevelsup != 0)
					return false;
				if (var->varattno < 0)
					return true;	/* ctid, tableoid, xmin ... */
				if (var->varattno == 0 || var->varattno > RelationGetDescr(rel)->natts)
					return false;
				return TupleDescAttr(RelationGetDescr(rel), var->varattno - 1)->attnotnull;
			}
		case T_FuncExpr:
			{
				FuncExpr   *f = (FuncExpr *) node;

				return !f->funcretset && function_is_nonnull(f->funcid) &&
					all_nonnull(f->args, rel, rtindex);
			}
		case T_OpExpr:
			{
				OpExpr	   *op = (OpExpr *) node;

				return !op->opretset && function_is_nonnull(get_opcode(op->opno)) &&
					all_nonnull(op->args, rel, rtindex);
			}
		case T_RelabelType:
			return expr_is_nonnull((Node *) ((RelabelType *) node)->arg, rel, rtindex);
		case T_CoerceViaIO:
			/* an input function never returns NULL for a non-null string */
			return expr_is_nonnull((Node *) ((CoerceViaIO *) node)->arg, rel, rtindex);
		case T_ArrayCoerceExpr:
			return expr_is_nonnull((Node *) ((ArrayCoerceExpr *) node)->arg, rel, rtindex);
		case T_CoerceToDomain:
			return expr_is_nonnull((Node *) ((CoerceToDomain *) node)->arg, rel, rtindex);
		case T_CollateExpr:
			return expr_is_nonnull((Node *) ((CollateExpr *) node)->arg, rel, rtindex);
		case T_CoalesceExpr:
		case T_MinMaxExpr:
			{
				List	   *args = IsA(node, CoalesceExpr) ?
					((CoalesceExpr *) node)->args : ((MinMaxExpr *) node)->args;
				ListCell   *lc;

				foreach(lc, args)
				{
					if (expr_is_nonnull((Node *) lfirst(lc), rel, rtindex))
						return true;
				}
				return false;
			}
		case T_CaseExpr:
			{
				CaseExpr   *c = (CaseExpr *) node;
				ListCell   *lc;

				foreach(lc, c->args)
				{
					if (!expr_is_nonnull((Node *) lfirst_node(CaseWhen, lc)->result, rel, rtindex))
						return false;
				}
				return expr_is_nonnull((Node *) c->defresult, rel, rtindex);
			}
		case T_BoolExpr:
			return all_nonnull(((BoolExpr *) node)->args, rel, rtindex);
		case T_NullTest:
		case T_BooleanTest:
			return true;
		default:
			return false;
	}
}

/*
 * The parsed statement must be the one UPDATE we built, with the user's
 * text confined to the SET list and one parenthesized condition: a
 * set_clause or where_clause that closes our parentheses, adds a FROM or
 * RETURNING, or a second statement, would change what each batch touches.
 */
static void
check_update_shape(List *raws, const MtJobSql *js, bool has_lower)
{
	UpdateStmt *upd;
	int			nconds;
	bool		ok = true;

	if (list_length(raws) != 1 ||
		!IsA(linitial_node(RawStmt, raws)->stmt, UpdateStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("set_clause and where_clause must not contain more than one statement")));
	upd = (UpdateStmt *) linitial_node(RawStmt, raws)->stmt;
	if (upd->fromClause != NIL || mt_stmt_has_returning(upd) || upd->withClause != NULL)
		ok = false;

	/* the range conditions, the where_clause, the guard: ANDed */
	if (js->by_ctid)
		nconds = 2;
	else
		nconds = has_lower ? 2 : 1;
	if (js->where_clause)
		nconds++;
	if (js->guard_clause)
		nconds++;
	if (nconds == 1)
		ok = ok && upd->whereClause != NULL && !IsA(upd->whereClause, BoolExpr);
	else
		ok = ok && upd->whereClause != NULL && IsA(upd->whereClause, BoolExpr) &&
			((BoolExpr *) upd->whereClause)->boolop == AND_EXPR &&
			list_length(((BoolExpr *) upd->whereClause)->args) == nconds;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid set_clause or where_clause"),
				 errdetail("The set_clause must be a list of assignments only (no WHERE, FROM or RETURNING), and the where_clause one condition."),
				 errhint("Write the set clause as in \"col = expr, col2 = expr2\" and the where clause as a boolean expression.")));
}

/* What the analyzed SET list of a backfill() is made of (set_list_shape). */
typedef struct MtSetListShape
{
	bool		reads_targets;	/* an expression reads a column the list assigns */
	bool		complex;		/* sub-SELECTs, subqueries, parts of columns */
	bool		volatile_expr;
	bool		mutable_expr;
} MtSetListShape;

/* Look at what each expression of the analyzed SET list reads and calls. */
static void
set_list_shape(Query *query, MtSetListShape *shape)
{
	ListCell   *lc;
	Bitmapset  *targets = NULL;
	Bitmapset  *reads = NULL;

	memset(shape, 0, sizeof(*shape));
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *expr = (Node *) tle->expr;

		if (tle->resjunk)
		{
			shape->complex = true;	/* multi-assignment from a sub-SELECT */
			continue;
		}
		targets = bms_add_member(targets, tle->resno - FirstLowInvalidHeapAttributeNumber);
		pull_varattnos(expr, query->resultRelation, &reads);
		if (IsA(expr, SubscriptingRef) || IsA(expr, FieldStore) ||
			contain_subplans(expr) || checkExprHasSubLink(expr))
			shape->complex = true;
		if (contain_volatile_functions(expr))
			shape->volatile_expr = true;
		if (contain_mutable_functions(expr))
			shape->mutable_expr = true;
		/* Params of a multi-assignment also mean a sub-SELECT */
		if (IsA(expr, Param))
			shape->complex = true;
	}
	shape->reads_targets = bms_overlap(targets, reads);
}

/*
 * The guard's text: "col IS DISTINCT FROM (expr)", or the same for the
 * ROW() of all the assigned columns; NULL when nothing is assigned.
 */
static char *
guard_text(Relation rel, Query *query)
{
	ListCell   *lc;
	List	   *dpcontext;
	StringInfoData cols;
	StringInfoData exprs;
	int			n = 0;

	dpcontext = deparse_context_for(RelationGetRelationName(rel), RelationGetRelid(rel));
	initStringInfo(&cols);
	initStringInfo(&exprs);
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Oid			atttype = exprType((Node *) tle->expr);
		TypeCacheEntry *tc = lookup_type_cache(atttype, TYPECACHE_EQ_OPR);
		const char *col = quote_identifier(tle->resname);
		char	   *expr = deparse_expression((Node *) tle->expr, dpcontext, false, false);

		if (n > 0)
		{
			appendStringInfoString(&cols, ", ");
			appendStringInfoString(&exprs, ", ");
		}
		/* types without equality (json, point) compare as text */
		if (OidIsValid(tc->eq_opr))
		{
			appendStringInfoString(&cols, col);
			appendStringInfo(&exprs, "(%s)", expr);
		}
		else
		{
			appendStringInfo(&cols, "%s::pg_catalog.text", col);
			appendStringInfo(&exprs, "(%s)::pg_catalog.text", expr);
		}
		n++;
	}
	if (n == 0)
		return NULL;
	if (n == 1)
		return psprintf("%s IS DISTINCT FROM %s", cols.data, exprs.data);
	return psprintf("ROW(%s) IS DISTINCT FROM ROW(%s)", cols.data, exprs.data);
}

/*
 * Build the guard "the row does not already hold the values the SET list
 * would give it", from the analyzed SET list, or return NULL when no
 * guard applies.  For the ctid strategy, which may see a row twice, refuse
 * what the guard cannot make exactly-once: a SET list reading the columns
 * it assigns (not idempotent), volatile or mutable expressions, subqueries
 * and assignments to parts of columns.
 */
static char *
build_guard(Relation rel, Query *query, bool by_ctid, bool guard, bool has_where)
{
	MtSetListShape shape;

	set_list_shape(query, &shape);
	if (by_ctid && guard)
	{
		if (shape.reads_targets)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the ctid strategy cannot run a set clause that reads the columns it assigns"),
					 errdetail("The ctid strategy may meet a row twice (rows move when they are updated) and relies on the set clause giving the same result when applied again; an expression such as \"n = n + 1\" does not."),
					 errhint("Use strategy => 'key', which applies the set clause exactly once per row, or guard => false with a where_clause that excludes the rows already done.")));
		if (shape.complex)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the ctid strategy cannot guard this set clause"),
					 errdetail("Subqueries, multiple-column assignments from a sub-SELECT and assignments to array elements or fields cannot be compared with the row's current values."),
					 errhint("Use strategy => 'key'.")));
		if (shape.mutable_expr)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the ctid strategy cannot run a set clause with volatile or stable functions"),
					 errdetail("A row met twice would get a different value the second time."),
					 errhint("Use strategy => 'key'.")));
	}

	/*
	 * Under the key strategy the guard only saves writes; skip it where it
	 * would change results (a volatile expression evaluated twice) or cannot
	 * be written, and where a where_clause already says which rows need the
	 * change (the guard would evaluate the set expressions twice per row
	 * for nothing).
	 */
	if (!guard || shape.complex || shape.volatile_expr || (!by_ctid && has_where))
		return NULL;
	return guard_text(rel, query);
}

/*
 * Is node (under any binary-compatible relabeling) the batch bound $paramid?
 */
static bool
is_batch_param(Node *node, int paramid)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node && IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN &&
		((Param *) node)->paramid == paramid;
}

/*
 * Under the key strategy both batch bounds are inclusive: a comparison that
 * excludes one ("x < $2", "x > $1", or the same written the other way
 * round) silently skips the last or first key of every batch.
 */
static bool
exclusive_bound_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, OpExpr) && list_length(((OpExpr *) node)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) node;
		char	   *name = get_opname(op->opno);
		Node	   *l = linitial(op->args);
		Node	   *r = lsecond(op->args);

		if (name != NULL &&
			((strcmp(name, "<") == 0 && (is_batch_param(r, 2) || is_batch_param(l, 1))) ||
			 (strcmp(name, ">") == 0 && (is_batch_param(l, 2) || is_batch_param(r, 1)))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("with strategy 'key' both batch bounds are inclusive"),
					 errdetail("$1 is the first key of each batch and $2 its last; a statement comparing with \"< $2\" or \"> $1\" skips a row in every batch."),
					 errhint("Write \"WHERE id BETWEEN $1 AND $2\" (or \">= $1 AND <= $2\").")));
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, exclusive_bound_walker, context, 0);
	return expression_tree_walker(node, exclusive_bound_walker, context);
}

/* Note in *used (bit 1: $1, bit 2: $2) which batch bounds an analyzed tree uses. */
static bool
batch_params_walker(Node *node, int *used)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN &&
		(((Param *) node)->paramid == 1 || ((Param *) node)->paramid == 2))
	{
		*used |= ((Param *) node)->paramid;
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, batch_params_walker, used, 0);
	return expression_tree_walker(node, batch_params_walker, used);
}

/*
 * Parse-analyze a run_batched() statement as the caller, with $1 and $2
 * typed as the batch bounds will be: one statement, not a utility command.
 */
void
mt_run_batched_analyze(Relation rel, MtJobSql *js)
{
	List	   *raws;
	Query	   *query;
	Oid			ptypes[2];

	raws = parse_job_sql(js->sql);
	if (list_length(raws) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("run_batched() needs exactly one statement")));
	if (js->by_ctid)
		ptypes[0] = ptypes[1] = TIDOID;
	else
	{
		Form_pg_attribute att = NULL;
		const char *col = linitial(js->key_columns);

		for (int i = 0; i < RelationGetDescr(rel)->natts; i++)
		{
			if (strcmp(NameStr(TupleDescAttr(RelationGetDescr(rel), i)->attname), col) == 0)
				att = TupleDescAttr(RelationGetDescr(rel), i);
		}
		Assert(att != NULL);
		ptypes[0] = ptypes[1] = att->atttypid;
	}
	query = analyze_job_sql(linitial_node(RawStmt, raws), js->sql, ptypes, 2);
	if (query->commandType == CMD_UTILITY)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("run_batched() runs only SELECT, INSERT, UPDATE, DELETE or MERGE statements")));
	{
		int			used = 0;

		(void) query_tree_walker(query, batch_params_walker, &used, 0);
		if (!js->by_ctid)
			(void) query_tree_walker(query, exclusive_bound_walker, NULL, 0);
		if (used != 3)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("run_batched() statement must use both $1 and $2"),
					 errdetail("$1 and $2 are the bounds of each batch; a statement that ignores one of them is not confined to its batch."),
					 errhint(js->by_ctid ?
							 "Restrict it to the batch, as in \"WHERE ctid >= $1 AND ctid < $2\"." :
							 "Restrict it to the batch, as in \"WHERE id BETWEEN $1 AND $2\".")));
	}
}

