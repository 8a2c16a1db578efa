/*-------------------------------------------------------------------------
 *
 * lint_facts.c
 *	  What the catalogs tell the linter: the rows of a table, whether it is
 *	  new in this transaction, its validated CHECK constraints, the columns
 *	  of a domain, the volatility of the functions an expression calls, and
 *	  whether a column type change rewrites the table.
 *
 * Everything is read from the catalogs (pg_class, pg_constraint,
 * pg_depend, pg_proc, pg_type) through the syscache or index scans, without
 * taking any relation lock except, to measure a table's current size, an
 * ACCESS SHARE lock when it is free at once (never queued, let go at once).
 * Nothing here knows about the script: lint_rules.c adds what the script
 * did before the current statement.
 *
 * IDENTIFICATION
 *	  src/lint_facts.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/plancat.h"
#include "parser/parse_coerce.h"
#include "parser/parse_type.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "lint_facts.h"

/*
 * Rows of a table or materialized view by its current size, as the planner
 * estimates them: the tuple density of the last ANALYZE or VACUUM times the
 * blocks the table has now, or, never analyzed, a density from the width
 * of its columns.  Measuring the size needs the relation open: only when an
 * ACCESS SHARE lock is free right now (never queued, released at once).
 * -1 when the lock is not free or the relation is gone.
 */
static double
current_relation_rows(Oid relid)
{
	Relation	rel;
	BlockNumber blocks;
	double		density;
	double		rows = -1;

	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return -1;
	rel = try_relation_open(relid, NoLock);
	if (rel != NULL)
	{
		if ((rel->rd_rel->relkind == RELKIND_RELATION ||
			 rel->rd_rel->relkind == RELKIND_MATVIEW) &&
			!RELATION_IS_OTHER_TEMP(rel))
		{
			blocks = RelationGetNumberOfBlocks(rel);
			if (blocks == 0)
				rows = 0;
			else if (rel->rd_rel->reltuples >= 0 && rel->rd_rel->relpages > 0)
				rows = rint(rel->rd_rel->reltuples / rel->rd_rel->relpages * blocks);
			else
			{
				int32		width = get_rel_data_width(rel, NULL);

				width += MAXALIGN(SizeofHeapTupleHeader) + sizeof(ItemIdData);
				density = (BLCKSZ - SizeOfPageHeaderData) / (double) width;
				rows = rint(density * blocks);
			}
		}
		relation_close(rel, NoLock);
	}
	UnlockRelationOid(relid, AccessShareLock);
	return rows;
}

/*
 * Rows of one relation: by its current size (see above), else by pg_class
 * alone: reltuples, or relpages when never analyzed.
 */
static double
relation_rows(Oid relid, char *relkind)
{
	HeapTuple	tup;
	Form_pg_class cls;
	double		rows;
	char		kind;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return -1;
	cls = (Form_pg_class) GETSTRUCT(tup);
	kind = cls->relkind;
	if (relkind)
		*relkind = kind;
	if (cls->reltuples >= 0)
		rows = cls->reltuples;
	else if (cls->relpages > 0)
	{
		/* never analyzed: assume narrow rows, about 100 bytes each */
		rows = (double) cls->relpages * (BLCKSZ / 100);
	}
	else
		rows = -1;
	ReleaseSysCache(tup);
	if (kind == RELKIND_RELATION || kind == RELKIND_MATVIEW)
	{
		double		now = current_relation_rows(relid);

		if (now >= 0)
			rows = now;
	}
	return rows;
}

/*
 * Estimated rows of a table; a partitioned table sums its partitions
 * (found through pg_inherits without locking them).
 */
double
mt_table_rows(Oid relid, char *relkind)
{
	double		rows = relation_rows(relid, relkind);

	if (relkind && *relkind == RELKIND_PARTITIONED_TABLE)
	{
		List	   *parts = find_all_inheritors(relid, NoLock, NULL);
		ListCell   *lc;
		bool		known = false;
		double		sum = 0;

		foreach(lc, parts)
		{
			Oid			part = lfirst_oid(lc);
			char		k = 0;
			double		r;

			if (part == relid)
				continue;
			r = relation_rows(part, &k);
			if (r >= 0 && k != RELKIND_PARTITIONED_TABLE)
			{
				sum += r;
				known = true;
			}
		}
		rows = known ? sum : -1;
	}
	return rows;
}

/*
 * Was the relation created by the current transaction (so that no other
 * session can see it yet), or is it temporary?  Judged by the xmin of the table's row type,
 * which is written with the table and only rewritten by a rename, or of
 * the pg_class row for relations without a row type (indexes).
 */
bool
mt_created_in_current_transaction(Oid relid)
{
	HeapTuple	tup;
	Oid			reltype;
	TransactionId xmin;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return false;
	/* a temporary relation is this session's alone, like a new one */
	if (((Form_pg_class) GETSTRUCT(tup))->relpersistence == RELPERSISTENCE_TEMP)
	{
		ReleaseSysCache(tup);
		return true;
	}
	reltype = ((Form_pg_class) GETSTRUCT(tup))->reltype;
	xmin = HeapTupleHeaderGetXmin(tup->t_data);
	ReleaseSysCache(tup);
	if (OidIsValid(reltype))
	{
		tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(reltype));
		if (!HeapTupleIsValid(tup))
			return false;
		xmin = HeapTupleHeaderGetXmin(tup->t_data);
		ReleaseSysCache(tup);
	}
	return TransactionIdIsCurrentTransactionId(xmin);
}

/* Is expr a NullTest "col IS NOT NULL" (or an AND of them) on attnum? */
static bool
cooked_implies_not_null(Node *expr, AttrNumber attnum)
{
	if (expr == NULL)
		return false;
	check_stack_depth();
	if (IsA(expr, NullTest))
	{
		NullTest   *nt = (NullTest *) expr;

		return nt->nulltesttype == IS_NOT_NULL && !nt->argisrow &&
			nt->arg && IsA(nt->arg, Var) &&
			((Var *) nt->arg)->varattno == attnum;
	}
	if (IsA(expr, BoolExpr) && ((BoolExpr *) expr)->boolop == AND_EXPR)
	{
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) expr)->args)
			if (cooked_implies_not_null(lfirst(lc), attnum))
				return true;
	}
	if (IsA(expr, List))
	{
		ListCell   *lc;

		foreach(lc, (List *) expr)
			if (cooked_implies_not_null(lfirst(lc), attnum))
				return true;
	}
	return false;
}

/*
 * Scan the CHECK constraints of relid: with conname NULL, the validated
 * ones; else the one of that name (validated or not).  True when one is
 * found that, if attnum is valid, proves that column is not null.
 */
static bool
scan_checks(Oid relid, const char *conname, AttrNumber attnum)
{
	Relation	conrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		Datum		bin;
		bool		isnull;

		if (con->contype != CONSTRAINT_CHECK)
			continue;
		if (conname == NULL ? !con->convalidated
			: strcmp(NameStr(con->conname), conname) != 0)
			continue;
		if (attnum == InvalidAttrNumber)
		{
			found = true;
			continue;
		}
		bin = heap_getattr(tup, Anum_pg_constraint_conbin,
						   RelationGetDescr(conrel), &isnull);
		if (isnull)
			continue;
		found = cooked_implies_not_null(stringToNode(TextDatumGetCString(bin)),
										attnum);
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return found;
}

/*
 * Has the table a validated CHECK constraint that proves the column is not
 * null?  Then SET NOT NULL skips its scan (PostgreSQL 12 and later).
 */
bool
mt_catalog_has_not_null_check(Oid relid, const char *column)
{
	AttrNumber	attnum;

	if (!OidIsValid(relid))
		return false;
	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber)
		return false;
	return scan_checks(relid, NULL, attnum);
}

/*
 * Is there a CHECK constraint named conname on the relation (validated or
 * not), and, when column is not NULL, does it prove that column is not
 * null?  For a VALIDATE CONSTRAINT of a check that an earlier migration
 * added NOT VALID: after it the check proves NOT NULL like any validated
 * one.
 */
bool
mt_catalog_check_constraint(Oid relid, const char *conname, const char *column)
{
	AttrNumber	attnum = InvalidAttrNumber;

	if (!OidIsValid(relid) || conname == NULL)
		return false;
	if (column != NULL)
	{
		attnum = get_attnum(relid, column);
		if (attnum == InvalidAttrNumber)
			return false;
	}
	return scan_checks(relid, conname, attnum);
}

/* Has the relation any validated CHECK constraint? */
bool
mt_catalog_has_validated_check(Oid relid)
{
	Relation	conrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(relid))
		return false;
	conrel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

		if (con->contype == CONSTRAINT_CHECK && con->convalidated)
			found = true;
	}
	systable_endscan(scan);
	table_close(conrel, AccessShareLock);
	return found;
}

/*
 * How many table columns have the domain as their type (from pg_depend,
 * where each such column depends on its type)?  -1 if the domain is not
 * known.
 */
int
mt_domain_column_count(List *names)
{
	TypeName   *tn = makeTypeNameFromNameList(names);
	Oid			typid = LookupTypeNameOid(NULL, tn, true);
	Relation	deprel;
	SysScanDesc scan;
	ScanKeyData key[2];
	HeapTuple	tup;
	int			count = 0;

	if (!OidIsValid(typid))
		return -1;
	deprel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(TypeRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(typid));
	scan = systable_beginscan(deprel, DependReferenceIndexId, true,
							  NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		if (dep->classid == RelationRelationId && dep->objsubid > 0)
			count++;
	}
	systable_endscan(scan);
	table_close(deprel, AccessShareLock);
	return count;
}

/*
 * Does an ALTER DOMAIN check the values of every column of the domain?
 * ADD CONSTRAINT ... CHECK without NOT VALID, ADD ... NOT NULL, SET NOT
 * NULL and VALIDATE CONSTRAINT do.  (Up to PostgreSQL 18 each of them
 * takes SHARE on the tables it scans.)
 */
bool
mt_alter_domain_scans(AlterDomainStmt *s)
{
	Constraint *c = (Constraint *) s->def;

	switch (s->subtype)
	{
		case 'O':				/* SET NOT NULL */
		case 'V':				/* VALIDATE CONSTRAINT */
			return true;
		case 'C':				/* ADD CONSTRAINT */
			return c != NULL && IsA(c, Constraint) &&
				((c->contype == CONSTR_CHECK && !c->skip_validation) ||
				 c->contype == CONSTR_NOTNULL);
		default:
			return false;
	}
}

/* Add the relations with a column of typid, or of a domain over it. */
static List *
domain_relations(List *rels, Oid typid, int depth)
{
	Relation	deprel;
	SysScanDesc scan;
	ScanKeyData key[2];
	HeapTuple	tup;
	List	   *domains = NIL;
	ListCell   *lc;

	check_stack_depth();
	deprel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(TypeRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(typid));
	scan = systable_beginscan(deprel, DependReferenceIndexId, true,
							  NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		if (dep->classid == RelationRelationId && dep->objsubid > 0)
		{
			char		relkind = get_rel_relkind(dep->objid);

			/* the server scans (and keeps locked) tables and matviews */
			if (relkind == RELKIND_RELATION || relkind == RELKIND_MATVIEW)
				rels = list_append_unique_oid(rels, dep->objid);
		}
		else if (dep->classid == TypeRelationId &&
				 get_typtype(dep->objid) == TYPTYPE_DOMAIN)
			domains = lappend_oid(domains, dep->objid);
	}
	systable_endscan(scan);
	table_close(deprel, AccessShareLock);
	if (depth < 10)
		foreach(lc, domains)
			rels = domain_relations(rels, lfirst_oid(lc), depth + 1);
	return rels;
}

/*
 * The tables and materialized views with a column of the domain (or of a
 * domain over it): those an ALTER DOMAIN that checks values scans.
 */
List *
mt_domain_relations(List *names)
{
	TypeName   *tn = makeTypeNameFromNameList(names);
	Oid			typid = LookupTypeNameOid(NULL, tn, true);

	if (!OidIsValid(typid))
		return NIL;
	return domain_relations(NIL, typid, 0);
}

/* ----------------------------------------------------------------
 * Expressions and types
 * ----------------------------------------------------------------
 */

/* Walker state: the highest volatility seen ('i' < 's' < 'v'). */
typedef struct VolatilityContext
{
	char		volatility;
	int			nodes;
	bool		unknown;		/* a function name that matches nothing */
} VolatilityContext;

static void
note_volatility(VolatilityContext *ctx, char v)
{
	if (v == PROVOLATILE_VOLATILE ||
		(v == PROVOLATILE_STABLE && ctx->volatility == PROVOLATILE_IMMUTABLE))
		ctx->volatility = v;
}

/*
 * The volatility of the functions a raw expression calls, looked up by
 * name in pg_proc (never executed).  A function name that matches nothing
 * counts as volatile: we cannot prove otherwise.
 */
static bool
volatility_walker(Node *node, VolatilityContext *ctx)
{
	if (node == NULL)
		return false;
	check_stack_depth();
	if (++ctx->nodes > 100000)
	{
		note_volatility(ctx, PROVOLATILE_VOLATILE);
		return true;
	}
	if (IsA(node, FuncCall))
	{
		FuncCall   *fc = (FuncCall *) node;
		FuncCandidateList cands;
		bool		any = false;

		cands = FuncnameGetCandidates(fc->funcname, list_length(fc->args),
									  NIL, true, true, false, true);
		for (; cands; cands = cands->next)
		{
			any = true;
			note_volatility(ctx, func_volatile(cands->oid));
		}
		if (!any)
		{
			note_volatility(ctx, PROVOLATILE_VOLATILE);
			ctx->unknown = true;
		}
	}
	else if (IsA(node, SQLValueFunction))
		note_volatility(ctx, PROVOLATILE_STABLE);
	else if (IsA(node, SubLink))
		note_volatility(ctx, PROVOLATILE_VOLATILE);
	return raw_expression_tree_walker(node, volatility_walker, (void *) ctx);
}

char
mt_expression_volatility(Node *expr)
{
	VolatilityContext ctx;

	ctx.volatility = PROVOLATILE_IMMUTABLE;
	ctx.nodes = 0;
	ctx.unknown = false;
	(void) volatility_walker(expr, &ctx);
	return ctx.volatility;
}

/*
 * Does a raw expression call a function that is not in the catalog (by
 * name and number of arguments)?  Then the statement fails, unless an
 * earlier statement of the script creates the function.
 */
bool
mt_expression_calls_unknown_function(Node *expr)
{
	VolatilityContext ctx;

	ctx.volatility = PROVOLATILE_IMMUTABLE;
	ctx.nodes = 0;
	ctx.unknown = false;
	(void) volatility_walker(expr, &ctx);
	return ctx.unknown;
}

/*
 * Would changing a column from (oldtype, oldmod) to (newtype, newmod)
 * rewrite the table?  Mirrors what the server knows is binary-compatible:
 * same type with a wider or removed length/precision modifier, or a
 * binary-coercible type with no new modifier.
 */
bool
mt_type_change_rewrites(Oid oldtype, int32 oldmod, Oid newtype, int32 newmod)
{
	if (oldtype == newtype)
	{
		if (newmod == oldmod || newmod < 0)
			return false;
		if (oldmod < 0)
			return true;		/* adding a limit checks and rewrites */
		switch (oldtype)
		{
			case VARCHAROID:
			case VARBITOID:
			case TIMESTAMPOID:
			case TIMESTAMPTZOID:
			case TIMEOID:
			case TIMETZOID:
				return newmod < oldmod;
			case NUMERICOID:
				{
					int32		op = ((oldmod - VARHDRSZ) >> 16) & 0xffff;
					int32		os = (oldmod - VARHDRSZ) & 0xffff;
					int32		np = ((newmod - VARHDRSZ) >> 16) & 0xffff;
					int32		ns = (newmod - VARHDRSZ) & 0xffff;

					return !(np >= op && ns == os);
				}
			default:
				return true;
		}
	}
	/*
	 * timestamp <-> timestamptz: no rewrite (12+) when the session's time
	 * zone is UTC (offset 0), as the server decides when it runs the
	 * statement; then only a smaller precision rewrites.
	 */
	if ((oldtype == TIMESTAMPOID && newtype == TIMESTAMPTZOID) ||
		(oldtype == TIMESTAMPTZOID && newtype == TIMESTAMPOID))
	{
		if (TimestampTimestampTzRequiresRewrite())
			return true;
		return mt_type_change_rewrites(oldtype, oldmod, oldtype, newmod);
	}
	if (newmod < 0 && IsBinaryCoercible(oldtype, newtype))
		return false;
	return true;
}
