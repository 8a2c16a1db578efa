/*-------------------------------------------------------------------------
 *
 * lint_estimate.c
 *	  Row estimates of the linter: how many rows of a table the raw WHERE
 *	  clause of an UPDATE or DELETE (or of the query of a FOR loop in a DO
 *	  block) selects.
 *
 * A rough selectivity is computed from the raw parse tree, as the planner
 * would from pg_statistic and the unique indexes, without planning: see
 * clause_selectivity().  The statistics of a column are used only when the
 * user may read them (as in pg_stats); the walk is bounded in depth and in
 * catalog lookups, so that a huge WHERE clause falls back to the defaults.
 *
 * IDENTIFICATION
 *	  src/lint_estimate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "lint_estimate.h"
#include "lint_int.h"

#define DEFAULT_EQ_SEL		0.005
#define DEFAULT_INEQ_SEL	0.3333333333333333
#define DEFAULT_RANGE_SEL	0.005
#define DEFAULT_MATCH_SEL	0.005
#define DEFAULT_BOOL_SEL	0.5
#define MAX_SEL_DEPTH		64
#define MAX_SEL_LOOKUPS		200

/*
 * Catalog lookups left for the current row estimate: a WHERE clause with
 * thousands of comparisons falls back to the default selectivity instead
 * of searching pg_index and pg_statistic thousands of times.
 */
static int	sel_lookups_left;

/*
 * The PL/pgSQL names the statement being estimated sees (in a DO block):
 * a ColumnRef that names a variable is a value, not a column.
 */
static void *sel_do_ns = NULL;

static bool
is_do_variable(Node *node)
{
	return sel_do_ns != NULL && node != NULL && IsA(node, ColumnRef) &&
		mt_do_is_variable(sel_do_ns, (ColumnRef *) node);
}

/* A raw node that names a table column (not a PL/pgSQL variable). */
static bool
is_column_ref(Node *node)
{
	return node != NULL && IsA(node, ColumnRef) && !is_do_variable(node);
}

/* Is there a unique, non-partial, single-column index on relid.attnum? */
static bool
column_is_unique(Oid relid, AttrNumber attnum)
{
	Relation	indrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	indrel = table_open(IndexRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_index_indrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(indrel, IndexIndrelidIndexId, true,
							  NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_index ind = (Form_pg_index) GETSTRUCT(tup);

		if (ind->indisunique && ind->indisvalid && ind->indnkeyatts == 1 &&
			ind->indkey.values[0] == attnum &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL))
			found = true;
	}
	systable_endscan(scan);
	table_close(indrel, AccessShareLock);
	return found;
}

/* ----------------------------------------------------------------
 * Row estimates for UPDATE and DELETE
 * ----------------------------------------------------------------
 */

/* The column a raw ColumnRef names on relid, or InvalidAttrNumber. */
static AttrNumber
columnref_attnum(Node *node, Oid relid)
{
	ColumnRef  *cr;
	Node	   *last;

	if (node == NULL || !OidIsValid(relid))
		return InvalidAttrNumber;
	if (IsA(node, TypeCast))
		node = ((TypeCast *) node)->arg;
	if (!is_column_ref(node))
		return InvalidAttrNumber;
	cr = (ColumnRef *) node;
	last = llast(cr->fields);
	if (!IsA(last, String))
		return InvalidAttrNumber;
	return get_attnum(relid, strVal(last));
}

/* Does a raw expression read a table column (or run a subquery)? */
static bool
reads_column_walker(Node *node, int *budget)
{
	if (node == NULL)
		return false;
	check_stack_depth();
	if (--(*budget) < 0)
		return true;
	if (IsA(node, ColumnRef))
		return !is_do_variable(node);
	if (IsA(node, SubLink))
		return true;
	return raw_expression_tree_walker(node, reads_column_walker, (void *) budget);
}

/*
 * Is a raw expression one value for the whole statement: constants,
 * parameters and PL/pgSQL variables, and operators and functions of them
 * (no column, no subquery)?
 */
static bool
is_constant_like(Node *node)
{
	int			budget = 1000;

	if (node == NULL)
		return false;
	if (IsA(node, TypeCast))
		node = ((TypeCast *) node)->arg;
	if (node == NULL)
		return false;
	if (IsA(node, A_Const) || IsA(node, ParamRef) || is_do_variable(node))
		return true;
	if (!IsA(node, A_Expr) && !IsA(node, FuncCall))
		return false;
	return !reads_column_walker(node, &budget);
}

/*
 * May the user see the statistics of this column?  As in the pg_stats view:
 * only with SELECT on the table or the column.  Otherwise the estimates use
 * the defaults, so that lint() tells nothing about data one cannot read.
 */
static bool
stats_readable(Oid relid, AttrNumber attnum)
{
	Oid			userid = GetUserId();

	return pg_class_aclcheck(relid, userid, ACL_SELECT) == ACLCHECK_OK ||
		pg_attribute_aclcheck(relid, attnum, userid, ACL_SELECT) == ACLCHECK_OK;
}

/* Selectivity of "col = constant": unique index, then pg_statistic. */
static double
eq_selectivity(Node *l, Node *r, Oid relid, double rows)
{
	AttrNumber	attnum;
	HeapTuple	tup;
	double		sel = DEFAULT_EQ_SEL;

	if (is_column_ref(l) && is_column_ref(r))
		return 1.0;				/* a join or self-comparison: any row */
	if (is_constant_like(l))
	{
		Node	   *t = l;

		l = r;
		r = t;
	}
	if (!is_constant_like(r) || sel_lookups_left <= 0)
		return DEFAULT_EQ_SEL;
	sel_lookups_left--;
	attnum = columnref_attnum(l, relid);
	if (attnum == InvalidAttrNumber)
		return DEFAULT_EQ_SEL;

	if (column_is_unique(relid, attnum))
		return rows > 1 ? 1.0 / rows : 1.0;
	if (!stats_readable(relid, attnum))
		return DEFAULT_EQ_SEL;

	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
						  Int16GetDatum(attnum), BoolGetDatum(false));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_statistic s = (Form_pg_statistic) GETSTRUCT(tup);
		double		nd = s->stadistinct;

		if (nd < 0 && rows > 0)
			nd = -nd * rows;
		if (nd >= 1)
			sel = (1.0 - s->stanullfrac) / nd;
		ReleaseSysCache(tup);
	}
	return sel;
}

/* Fraction of nulls of a column from pg_statistic, or a default. */
static double
null_fraction(Node *arg, Oid relid)
{
	AttrNumber	attnum;
	HeapTuple	tup;
	double		frac = DEFAULT_EQ_SEL;

	if (sel_lookups_left <= 0)
		return frac;
	sel_lookups_left--;
	attnum = columnref_attnum(arg, relid);
	if (attnum == InvalidAttrNumber || !stats_readable(relid, attnum))
		return frac;
	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
						  Int16GetDatum(attnum), BoolGetDatum(false));
	if (HeapTupleIsValid(tup))
	{
		frac = ((Form_pg_statistic) GETSTRUCT(tup))->stanullfrac;
		ReleaseSysCache(tup);
	}
	return frac;
}

/*
 * A numeric constant of a raw expression (an integer or decimal literal,
 * possibly negated or cast), as a double.
 */
static bool
numeric_constant(Node *node, double *value)
{
	A_Const    *c;

	if (node && IsA(node, TypeCast))
		node = ((TypeCast *) node)->arg;
	if (node == NULL)
		return false;
	if (IsA(node, A_Expr) && ((A_Expr *) node)->kind == AEXPR_OP &&
		((A_Expr *) node)->lexpr == NULL &&
		list_length(((A_Expr *) node)->name) == 1 &&
		strcmp(strVal(linitial(((A_Expr *) node)->name)), "-") == 0)
	{
		if (!numeric_constant(((A_Expr *) node)->rexpr, value))
			return false;
		*value = -*value;
		return true;
	}
	if (!IsA(node, A_Const) || ((A_Const *) node)->isnull)
		return false;
	c = (A_Const *) node;
	if (IsA(&c->val, Integer))
		*value = (double) intVal(&c->val);
	else if (IsA(&c->val, Float))
		*value = strtod(castNode(Float, &c->val)->fval, NULL);
	else
		return false;
	return true;
}

/* A statistics value of a number column as a double. */
static bool
datum_as_double(Datum d, Oid typid, double *value)
{
	switch (typid)
	{
		case INT2OID:
			*value = DatumGetInt16(d);
			return true;
		case INT4OID:
			*value = DatumGetInt32(d);
			return true;
		case INT8OID:
			*value = (double) DatumGetInt64(d);
			return true;
		case FLOAT4OID:
			*value = DatumGetFloat4(d);
			return true;
		case FLOAT8OID:
			*value = DatumGetFloat8(d);
			return true;
		case NUMERICOID:
			*value = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
			return true;
		default:
			return false;
	}
}

/*
 * The fraction of a number column's rows below v (or at or below it), from
 * pg_statistic: the most common values, then the histogram between its
 * bounds, as the planner reads them.  -1 if there is nothing to go by.
 */
static double
fraction_below(Oid relid, AttrNumber attnum, double v, bool inclusive)
{
	HeapTuple	tup;
	Oid			typid = get_atttype(relid, attnum);
	AttStatsSlot mcv;
	AttStatsSlot hist;
	double		nullfrac;
	double		mcv_total = 0;
	double		mcv_below = 0;
	double		result = -1;
	bool		have_mcv;
	bool		have_hist;
	int			i;

	if (typid != INT2OID && typid != INT4OID && typid != INT8OID &&
		typid != FLOAT4OID && typid != FLOAT8OID && typid != NUMERICOID)
		return -1;
	tup = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
						  Int16GetDatum(attnum), BoolGetDatum(false));
	if (!HeapTupleIsValid(tup))
		return -1;
	nullfrac = ((Form_pg_statistic) GETSTRUCT(tup))->stanullfrac;

	have_mcv = get_attstatsslot(&mcv, tup, STATISTIC_KIND_MCV, InvalidOid,
								ATTSTATSSLOT_VALUES | ATTSTATSSLOT_NUMBERS);
	if (have_mcv)
	{
		for (i = 0; i < mcv.nvalues && i < mcv.nnumbers; i++)
		{
			double		x;

			if (!datum_as_double(mcv.values[i], typid, &x))
				continue;
			mcv_total += mcv.numbers[i];
			if (x < v || (inclusive && x == v))
				mcv_below += mcv.numbers[i];
		}
		free_attstatsslot(&mcv);
	}
	have_hist = get_attstatsslot(&hist, tup, STATISTIC_KIND_HISTOGRAM,
								 InvalidOid, ATTSTATSSLOT_VALUES);
	if (have_hist && hist.nvalues >= 2)
	{
		double		lo,
					hi;
		double		frac = -1;
		int			n = hist.nvalues;

		if (datum_as_double(hist.values[0], typid, &lo) &&
			datum_as_double(hist.values[n - 1], typid, &hi))
		{
			if (v < lo)
				frac = 0;
			else if (v >= hi)
				frac = 1;
			else
			{
				for (i = 0; i < n - 1; i++)
				{
					double		b0,
								b1;

					if (!datum_as_double(hist.values[i], typid, &b0) ||
						!datum_as_double(hist.values[i + 1], typid, &b1))
						break;
					if (v >= b0 && v < b1)
					{
						frac = (i + (b1 > b0 ? (v - b0) / (b1 - b0) : 0)) /
							(double) (n - 1);
						break;
					}
				}
			}
		}
		if (frac >= 0)
			result = mcv_below + frac * Max(0.0, 1.0 - nullfrac - mcv_total);
	}
	else if (have_mcv && mcv_total > 0)
	{
		/* every non-null value is a common one */
		result = mcv_below;
	}
	if (have_hist)
		free_attstatsslot(&hist);
	ReleaseSysCache(tup);
	return result;
}

/*
 * Selectivity of "col < constant" (or >, <=, >=; either side may be the
 * column) on a number column with statistics; the planner's default of a
 * third otherwise.
 */
static double
ineq_selectivity(Node *l, const char *op, Node *r, Oid relid)
{
	AttrNumber	attnum;
	double		v;
	double		below;
	bool		less;
	bool		inclusive = op[1] == '=';
	double		nullfrac;

	less = op[0] == '<';
	if (!numeric_constant(r, &v))
	{
		Node	   *t = l;

		/* constant < col is col > constant */
		l = r;
		r = t;
		less = !less;
		if (!numeric_constant(r, &v))
			return DEFAULT_INEQ_SEL;
	}
	if (sel_lookups_left <= 0)
		return DEFAULT_INEQ_SEL;
	sel_lookups_left--;
	attnum = columnref_attnum(l, relid);
	if (attnum == InvalidAttrNumber || attnum < 0 || !stats_readable(relid, attnum))
		return DEFAULT_INEQ_SEL;
	below = fraction_below(relid, attnum, v, inclusive);
	if (below < 0)
		return DEFAULT_INEQ_SEL;
	if (less)
		return below;
	/* col > v: the non-null rows not at or below v */
	nullfrac = null_fraction(l, relid);
	below = fraction_below(relid, attnum, v, !inclusive);
	if (below < 0)
		return DEFAULT_INEQ_SEL;
	return Max(0.0, 1.0 - nullfrac - below);
}

/* Selectivity of "col BETWEEN a AND b" with number constants. */
static double
between_selectivity(A_Expr *a, Oid relid)
{
	List	   *bounds = (List *) a->rexpr;
	AttrNumber	attnum;
	double		lo,
				hi;
	double		below_hi,
				below_lo;

	if (bounds == NIL || !IsA(bounds, List) || list_length(bounds) != 2 ||
		!numeric_constant(linitial(bounds), &lo) ||
		!numeric_constant(lsecond(bounds), &hi) || sel_lookups_left <= 0)
		return DEFAULT_RANGE_SEL;
	sel_lookups_left--;
	if ((a->kind == AEXPR_BETWEEN_SYM || a->kind == AEXPR_NOT_BETWEEN_SYM) &&
		lo > hi)
	{
		double		t = lo;

		lo = hi;
		hi = t;
	}
	attnum = columnref_attnum(a->lexpr, relid);
	if (attnum == InvalidAttrNumber || attnum < 0 || !stats_readable(relid, attnum))
		return DEFAULT_RANGE_SEL;
	below_hi = fraction_below(relid, attnum, hi, true);
	below_lo = fraction_below(relid, attnum, lo, false);
	if (below_hi < 0 || below_lo < 0)
		return DEFAULT_RANGE_SEL;
	return Max(0.0, below_hi - below_lo);
}

static const char *
aexpr_opname(A_Expr *a)
{
	Node	   *n;

	if (a->name == NIL)
		return "";
	n = llast(a->name);
	return IsA(n, String) ? strVal(n) : "";
}

/* Selectivity of an operator, IN, LIKE, BETWEEN or DISTINCT clause. */
static double
aexpr_selectivity(A_Expr *a, Oid relid, double rows)
{
	const char *op = aexpr_opname(a);
	double		s;

	switch (a->kind)
	{
		case AEXPR_OP:
			if (strcmp(op, "=") == 0)
				return eq_selectivity(a->lexpr, a->rexpr, relid, rows);
			if (strcmp(op, "<>") == 0 || strcmp(op, "!=") == 0)
				return 1.0 - eq_selectivity(a->lexpr, a->rexpr, relid, rows);
			if (strcmp(op, "<") == 0 || strcmp(op, ">") == 0 ||
				strcmp(op, "<=") == 0 || strcmp(op, ">=") == 0)
				return ineq_selectivity(a->lexpr, op, a->rexpr,
										relid);
			return DEFAULT_BOOL_SEL;
		case AEXPR_IN:
			s = DEFAULT_EQ_SEL;
			if (a->rexpr && IsA(a->rexpr, List))
			{
				/* every element as selective as the first */
				s = eq_selectivity(a->lexpr, linitial((List *) a->rexpr),
								   relid, rows) *
					list_length((List *) a->rexpr);
			}
			if (strcmp(op, "<>") == 0)
				s = 1.0 - s;
			return Min(Max(s, 0.0), 1.0);
		case AEXPR_LIKE:
		case AEXPR_ILIKE:
		case AEXPR_SIMILAR:
			return strcmp(op, "!~~") == 0 || strcmp(op, "!~~*") == 0 ?
				1.0 - DEFAULT_MATCH_SEL : DEFAULT_MATCH_SEL;
		case AEXPR_BETWEEN:
		case AEXPR_BETWEEN_SYM:
			return between_selectivity(a, relid);
		case AEXPR_NOT_BETWEEN:
		case AEXPR_NOT_BETWEEN_SYM:
			return 1.0 - between_selectivity(a, relid);
		case AEXPR_DISTINCT:
			return 1.0 - eq_selectivity(a->lexpr, a->rexpr, relid, rows);
		case AEXPR_NOT_DISTINCT:
			return eq_selectivity(a->lexpr, a->rexpr, relid, rows);
		default:
			return DEFAULT_BOOL_SEL;
	}
}

/*
 * A rough selectivity of a raw WHERE clause (see the README): equality
 * against a constant uses a unique index or the column's n_distinct,
 * inequalities a third, LIKE/BETWEEN/IS NULL the planner's defaults, AND
 * multiplies, OR adds, NOT complements, and what we cannot read half.
 */
static double
clause_selectivity(Node *node, Oid relid, double rows, int depth)
{
	double		s;

	if (node == NULL)
		return 1.0;
	if (depth > MAX_SEL_DEPTH)
		return DEFAULT_BOOL_SEL;
	check_stack_depth();

	switch (nodeTag(node))
	{
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) node;
				ListCell   *lc;

				if (b->boolop == NOT_EXPR)
					return 1.0 - clause_selectivity(linitial(b->args), relid,
													rows, depth + 1);
				if (b->boolop == AND_EXPR)
				{
					s = 1.0;
					foreach(lc, b->args)
						s *= clause_selectivity(lfirst(lc), relid, rows, depth + 1);
					return s;
				}
				s = 0.0;
				foreach(lc, b->args)
				{
					double		s2 = clause_selectivity(lfirst(lc), relid,
														rows, depth + 1);

					s = s + s2 - s * s2;
				}
				return s;
			}
		case T_A_Expr:
			return aexpr_selectivity((A_Expr *) node, relid, rows);
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) node;

				s = null_fraction((Node *) nt->arg, relid);
				return nt->nulltesttype == IS_NULL ? s : 1.0 - s;
			}
		case T_CurrentOfExpr:
			return rows > 1 ? 1.0 / rows : 1.0;
		case T_A_Const:
			{
				A_Const    *c = (A_Const *) node;

				if (!c->isnull && IsA(&c->val, Boolean))
					return c->val.boolval.boolval ? 1.0 : 0.0;
				return DEFAULT_BOOL_SEL;
			}
		default:
			return DEFAULT_BOOL_SEL;
	}
}

/*
 * Estimated rows that a WHERE clause (raw, NULL for none) selects from a
 * relation of the given rows, -1 if rows is unknown.  do_ns: the PL/pgSQL
 * names the statement sees in a DO block, or NULL.
 */
double
mt_estimate_rows(Oid relid, double rows, Node *where, void *do_ns)
{
	double		sel;

	if (rows < 0)
		return -1;
	sel_lookups_left = MAX_SEL_LOOKUPS;
	sel_do_ns = do_ns;
	sel = clause_selectivity(where, relid, rows, 0);
	sel_do_ns = NULL;
	return rint(rows * Min(Max(sel, 0.0), 1.0));
}
