/*-------------------------------------------------------------------------
 *
 * lint_rules.c
 *	  The rules of the migration linter.
 *
 * mt_lint_script() walks the raw statements of a script in order and keeps
 * what earlier statements did (tables created or truncated, NOT NULL checks
 * added and validated, an open BEGIN, a SET lock_timeout) so that the rules
 * judge each statement as it would run at its place in the script.  Facts
 * about existing tables come from the catalogs (pg_class, pg_attribute,
 * pg_constraint, pg_index, pg_statistic, pg_proc) read without taking any
 * relation lock and without planning or executing anything.
 *
 * A relation that the script did not create and that is not in the catalog
 * is assumed to exist (the script may run after migrations not applied in
 * this database): the structural rules fire for it; only the row estimates
 * need the table to be here.
 *
 * The per-script state and the parse trees live in a memory context of
 * their own, and the work done for one statement in a second context reset
 * after each statement, so a large script does not accumulate garbage.
 *
 * IDENTIFICATION
 *	  src/lint_rules.c
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
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "catalog/pg_type_d.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "commands/tablespace.h"
#include "funcapi.h"
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
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "lint_int.h"
#include "spi_util.h"

/* A CHECK constraint seen in the script. */
typedef struct NotNullCheck
{
	char	   *relname;		/* as written in the script */
	char	   *column;			/* of a CHECK (col IS NOT NULL), else NULL */
	char	   *conname;		/* NULL if unnamed */
	bool		validated;
} NotNullCheck;

/* What the linter remembers while it walks a script. */
typedef struct LintState
{
	List	   *findings;		/* MtLintFinding *, in the caller's context */
	MemoryContext result_cxt;	/* where findings go */
	MemoryContext state_cxt;	/* where the state below lives */
	MtStatementInfo *info;		/* the statement being linted */
	List	   *created;		/* RangeVar * created by the script */
	List	   *gone;			/* OIDs of relations the script dropped or
								 * renamed: their old names are free */
	List	   *emptied_names;	/* RangeVar * truncated by the script */
	List	   *nn_checks;		/* NotNullCheck *, every CHECK added */
	bool		in_xact;		/* inside an explicit BEGIN */
	int			xact_statement; /* ... opened by this statement */
	int			xact_location;
	bool		lock_timeout_set;
	bool		lock_timeout_local; /* ... by SET LOCAL, until the end of
									 * the transaction block */
	bool		lock_timeout_reported;
	bool		in_do_block;	/* linting the statements of a DO block */
	void	   *do_ns;			/* PL/pgSQL names of the current statement of
								 * a DO block */
	char	   *do_where;		/* where in the DO block it is, for messages */
	MtDoStatement *do_stmt;		/* the statement of the DO block being linted */
	const char *script;			/* the whole script (NULL in the guard) */
	List	   *held_locks;		/* HeldLock *, taken by the current
								 * transaction of the script so far */
	bool		touches_existing;	/* current statement works on an
									 * existing relation */
} LintState;

/*
 * A relation lock that an earlier statement of the script took and that the
 * script's transaction still holds (a script runs in one transaction under
 * apply() and under most migration tools, until a COMMIT of its own).
 * Existing relations are known by OID; a relation that is not in the
 * catalog (but not created by the script either) by the name ALTER TABLE
 * gave it.
 */
typedef struct HeldLock
{
	Oid			relid;
	char	   *schemaname;
	char	   *relname;
	LOCKMODE	mode;
	int			statement;		/* the first statement that took it so strong */
	bool		not_valid_add;	/* ... was an ADD CONSTRAINT ... NOT VALID */
} HeldLock;

/* What the catalogs tell about a relation the script names. */
typedef struct TableFacts
{
	Oid			relid;			/* InvalidOid if not in the catalog */
	bool		is_new;			/* created earlier in the script */
	bool		emptied;		/* truncated earlier in the script */
	char		relkind;		/* 0 if unknown */
	double		rows;			/* estimated rows, -1 if unknown */
	char	   *name;			/* display name */
} TableFacts;

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

/* ----------------------------------------------------------------
 * The rules, as lint_rules() lists them
 * ----------------------------------------------------------------
 */
typedef struct MtLintRule
{
	const char *rule;
	const char *severity;
	const char *summary;
} MtLintRule;

static const MtLintRule lint_rule_list[] = {
	{"create-index-non-concurrently", "error",
	"CREATE INDEX without CONCURRENTLY on an existing table blocks writes while it builds"},
	{"drop-index-non-concurrently", "warning",
	"DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table"},
	{"add-column-not-null-no-default", "error",
	"ADD COLUMN NOT NULL without a default fails on a table with rows"},
	{"add-column-volatile-default", "error",
	"ADD COLUMN with a volatile default rewrites the table"},
	{"add-foreign-key-validated", "error",
	"a foreign key added without NOT VALID scans the table while blocking writes to both tables"},
	{"add-check-validated", "error",
	"a CHECK constraint added without NOT VALID scans the table under ACCESS EXCLUSIVE"},
	{"set-not-null", "error",
	"SET NOT NULL scans the table unless a validated CHECK (col IS NOT NULL) proves it"},
	{"change-column-type", "error",
	"a column type change that is not binary compatible rewrites the table"},
	{"rename-column", "warning",
	"renaming a column breaks running code"},
	{"rename-table", "warning",
	"renaming a table breaks running code"},
	{"drop-column", "warning",
	"dropping a column breaks running code that uses it"},
	{"drop-table", "warning",
	"dropping a table loses data and breaks running code"},
	{"add-unique-constraint", "error",
	"a UNIQUE constraint without USING INDEX builds its index while blocking writes"},
	{"add-primary-key", "error",
	"a PRIMARY KEY without USING INDEX (or on nullable columns) builds or scans under ACCESS EXCLUSIVE"},
	{"vacuum-full", "error",
	"VACUUM FULL rewrites tables under ACCESS EXCLUSIVE"},
	{"cluster", "error",
	"CLUSTER rewrites tables under ACCESS EXCLUSIVE"},
	{"refresh-matview-non-concurrently", "error",
	"REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks its readers"},
	{"lock-table", "warning",
	"an explicit LOCK TABLE is held to the end of the transaction"},
	{"unbatched-update", "warning",
	"an UPDATE of more than lint_large_rows rows in one transaction"},
	{"unbatched-delete", "warning",
	"a DELETE of more than lint_large_rows rows in one transaction"},
	{"truncate", "warning",
	"TRUNCATE removes every row under ACCESS EXCLUSIVE"},
	{"concurrently-in-transaction", "error",
	"a statement that cannot run in a transaction block after BEGIN"},
	{"reindex-non-concurrently", "error",
	"REINDEX without CONCURRENTLY blocks writes"},
	{"attach-partition-unvalidated", "error",
	"ATTACH PARTITION without a validated CHECK scans the partition under ACCESS EXCLUSIVE"},
	{"add-stored-generated-column", "error",
	"adding a stored generated column rewrites the table"},
	{"detach-partition-non-concurrently", "warning",
	"DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent"},
	{"add-exclusion-constraint", "error",
	"an EXCLUDE constraint is built and checked under ACCESS EXCLUSIVE"},
	{"add-serial-column", "error",
	"adding a serial or identity column rewrites the table"},
	{"domain-check-constraint", "warning",
	"a domain CHECK without NOT VALID scans every column of the domain"},
	{"uncommitted-transaction", "error",
	"a BEGIN that the script never commits"},
	{"drop-not-null", "info",
	"dropping NOT NULL lets in NULLs that older code may not expect"},
	{"json-column", "info",
	"a json column: prefer jsonb"},
	{"prefer-bigint", "info",
	"a 16 or 32-bit integer key column: prefer bigint"},
	{"prefer-identity", "info",
	"a serial column: prefer an identity column"},
	{"prefer-text", "info",
	"a varchar(n) or char(n) column: prefer text with a CHECK"},
	{"prefer-timestamptz", "info",
	"a timestamp without time zone column: prefer timestamptz"},
	{"require-lock-timeout", "warning",
	"DDL on existing tables with no SET lock_timeout before it"},
	{"dynamic-sql", "warning",
	"an EXECUTE in a DO block runs SQL built at run time, which the linter cannot check"},
	{"do-block-not-checked", "info",
	"a DO block that the linter could not read (another language, or PL/pgSQL that does not compile yet)"},
	{"validate-in-same-transaction", "warning",
	"VALIDATE CONSTRAINT in the transaction that added the constraint (or otherwise locked the table) scans under that stronger lock"},
	{"table-rewrite", "error",
	"SET LOGGED/UNLOGGED, SET TABLESPACE, SET ACCESS METHOD, or a column of a constrained domain, copies the table under ACCESS EXCLUSIVE"},
};

/* ----------------------------------------------------------------
 * Findings
 * ----------------------------------------------------------------
 */

static void
add_finding(LintState *st, const char *rule, int sev, const TableFacts *tf,
			LOCKMODE lockmode, bool rewrites, double rows,
			const char *hint, const char *fmt,...)
	pg_attribute_printf(9, 10);

static void
add_finding(LintState *st, const char *rule, int sev, const TableFacts *tf,
			LOCKMODE lockmode, bool rewrites, double rows,
			const char *hint, const char *fmt,...)
{
	MemoryContext old;
	MtLintFinding *f;
	StringInfoData buf;
	const char *severity = (sev == MT_SEV_ERROR) ? "error" :
		(sev == MT_SEV_WARNING) ? "warning" : "info";
	int			i;

	/* every finding is a listed rule with its listed severity */
	for (i = 0; i < lengthof(lint_rule_list); i++)
		if (strcmp(lint_rule_list[i].rule, rule) == 0)
			break;
	if (i == lengthof(lint_rule_list) ||
		strcmp(lint_rule_list[i].severity, severity) != 0)
		elog(ERROR, "lint rule \"%s\" with severity %s is not in the rule list",
			 rule, severity);

	old = MemoryContextSwitchTo(st->result_cxt);
	f = (MtLintFinding *) palloc0(sizeof(MtLintFinding));

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	/* which statement of a DO block */
	if (st->do_where)
		appendStringInfo(&buf, " (%s)", st->do_where);

	f->statement = st->info->statement;
	f->rule = rule;
	f->severity = lint_rule_list[i].severity;
	f->message = buf.data;
	f->hint = hint ? pstrdup(hint) : NULL;
	f->relation = (tf && tf->name) ? pstrdup(tf->name) : NULL;
	f->lock_mode = lockmode != NoLock ? mt_lint_lock_mode_name(lockmode) : NULL;
	f->rewrites = rewrites;
	f->estimated_rows = rows;
	f->location = st->info->location;
	st->findings = lappend(st->findings, f);
	MemoryContextSwitchTo(old);
}

/* ----------------------------------------------------------------
 * Catalog facts
 * ----------------------------------------------------------------
 */

/* Do two RangeVars name the same relation, as far as the text tells? */
static bool
same_rangevar(const RangeVar *a, const RangeVar *b)
{
	if (a->relname == NULL || b->relname == NULL)
		return false;
	if (strcmp(a->relname, b->relname) != 0)
		return false;
	if (a->schemaname && b->schemaname &&
		strcmp(a->schemaname, b->schemaname) != 0)
		return false;
	return true;
}

static bool
rangevar_in_list(List *list, const RangeVar *rv)
{
	ListCell   *lc;

	foreach(lc, list)
		if (same_rangevar((RangeVar *) lfirst(lc), rv))
			return true;
	return false;
}

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
static double
table_rows(Oid relid, char *relkind)
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
static bool
created_in_current_transaction(Oid relid)
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

/*
 * The relation a name resolves to at this point of the script: not one the
 * script dropped or renamed away earlier (the catalog still shows it, since
 * nothing has run).
 */
static Oid
script_lookup_relation(LintState *st, RangeVar *rv)
{
	Oid			relid = mt_lookup_relation(rv);

	if (OidIsValid(relid) && list_member_oid(st->gone, relid))
		return InvalidOid;
	return relid;
}

/* Remember that the script drops or renames away an existing relation. */
static void
remember_gone(LintState *st, Oid relid)
{
	MemoryContext old;

	if (!OidIsValid(relid))
		return;
	old = MemoryContextSwitchTo(st->state_cxt);
	st->gone = lappend_oid(st->gone, relid);
	MemoryContextSwitchTo(old);
}

/*
 * Facts about a relation named in the script, as of the current statement.
 * Marks the statement as working on an existing relation when it does.
 */
static void
table_facts(LintState *st, RangeVar *rv, TableFacts *tf)
{
	memset(tf, 0, sizeof(TableFacts));
	tf->rows = -1;
	if (rv == NULL || rv->relname == NULL)
	{
		tf->is_new = true;
		return;
	}
	tf->relid = script_lookup_relation(st, rv);
	if (OidIsValid(tf->relid))
		tf->is_new = created_in_current_transaction(tf->relid);
	else
		tf->is_new = rangevar_in_list(st->created, rv);
	tf->emptied = rangevar_in_list(st->emptied_names, rv);
	if (OidIsValid(tf->relid))
	{
		tf->name = mt_relation_display_name(tf->relid);
		tf->rows = table_rows(tf->relid, &tf->relkind);
	}
	if (tf->name == NULL)
	{
		tf->name = rv->schemaname ?
			quote_qualified_identifier(rv->schemaname, rv->relname) :
			pstrdup(quote_identifier(rv->relname));
	}
	if (tf->is_new || tf->emptied)
		tf->rows = 0;
	else
		st->touches_existing = true;
}

/* Does the relation hold rows other sessions use (not new nor emptied)? */
static inline bool
is_existing(const TableFacts *tf)
{
	return !tf->is_new && !tf->emptied;
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
 * Has the table a validated CHECK constraint that proves the column is not
 * null?  Then SET NOT NULL skips its scan (PostgreSQL 12 and later).
 */
static bool
catalog_has_not_null_check(Oid relid, const char *column)
{
	AttrNumber	attnum;
	Relation	conrel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(relid))
		return false;
	attnum = get_attnum(relid, column);
	if (attnum == InvalidAttrNumber)
		return false;

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

		if (con->contype != CONSTRAINT_CHECK || !con->convalidated)
			continue;
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

/* Has the relation any validated CHECK constraint? */
static bool
catalog_has_validated_check(Oid relid)
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
static int
domain_column_count(List *names)
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
			{
				A_Expr	   *a = (A_Expr *) node;
				const char *op = aexpr_opname(a);

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

/* Estimated rows an UPDATE or DELETE touches, -1 if unknown. */
static double
estimate_dml_rows(const TableFacts *tf, Node *where, void *do_ns)
{
	double		sel;

	if (tf->rows < 0)
		return -1;
	sel_lookups_left = MAX_SEL_LOOKUPS;
	sel_do_ns = do_ns;
	sel = clause_selectivity(where, tf->relid, tf->rows, 0);
	sel_do_ns = NULL;
	return rint(tf->rows * Min(Max(sel, 0.0), 1.0));
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
			note_volatility(ctx, PROVOLATILE_VOLATILE);
	}
	else if (IsA(node, SQLValueFunction))
		note_volatility(ctx, PROVOLATILE_STABLE);
	else if (IsA(node, SubLink))
		note_volatility(ctx, PROVOLATILE_VOLATILE);
	return raw_expression_tree_walker(node, volatility_walker, (void *) ctx);
}

static char
expression_volatility(Node *expr)
{
	VolatilityContext ctx;

	ctx.volatility = PROVOLATILE_IMMUTABLE;
	ctx.nodes = 0;
	(void) volatility_walker(expr, &ctx);
	return ctx.volatility;
}

/* The unqualified type name of a TypeName when it is a builtin one. */
static const char *
builtin_type_name(TypeName *tn)
{
	Node	   *last;

	if (tn == NULL || tn->names == NIL || tn->setof)
		return "";
	if (list_length(tn->names) == 2)
	{
		Node	   *first = linitial(tn->names);

		if (!IsA(first, String) || strcmp(strVal(first), "pg_catalog") != 0)
			return "";
	}
	else if (list_length(tn->names) != 1)
		return "";
	last = llast(tn->names);
	return IsA(last, String) ? strVal(last) : "";
}

static bool
is_serial_type(const char *t)
{
	return strcmp(t, "serial") == 0 || strcmp(t, "serial4") == 0 ||
		strcmp(t, "bigserial") == 0 || strcmp(t, "serial8") == 0 ||
		strcmp(t, "smallserial") == 0 || strcmp(t, "serial2") == 0;
}

static Constraint *
find_constraint(List *constraints, ConstrType type)
{
	ListCell   *lc;

	foreach(lc, constraints)
	{
		Node	   *n = lfirst(lc);

		if (IsA(n, Constraint) && ((Constraint *) n)->contype == type)
			return (Constraint *) n;
	}
	return NULL;
}

/* Is a column named in a list of String (constraint keys)? */
static bool
name_in_list(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (IsA(lfirst(lc), String) && strcmp(strVal(lfirst(lc)), name) == 0)
			return true;
	return false;
}

/*
 * Style rules on a column definition (CREATE TABLE, ADD COLUMN, ALTER
 * COLUMN TYPE): json-column, prefer-bigint, prefer-identity, prefer-text,
 * prefer-timestamptz.  pk_keys: the columns of a table PRIMARY KEY.
 */
static void
lint_column_type(LintState *st, const TableFacts *tf, const char *colname,
				 TypeName *tn, List *constraints, List *pk_keys)
{
	const char *t = builtin_type_name(tn);
	bool		is_array = tn && tn->arrayBounds != NIL;

	if (*t == '\0')
		return;
	if (strcmp(t, "json") == 0)
		add_finding(st, "json-column", MT_SEV_INFO, tf, NoLock, false, -1,
					"Use jsonb: it can be indexed and compared, and it has equality.",
					"column \"%s\" has type json", colname);
	if (is_serial_type(t))
		add_finding(st, "prefer-identity", MT_SEV_INFO, tf, NoLock, false, -1,
					"Use \"bigint GENERATED ALWAYS AS IDENTITY\": it is standard SQL and its sequence belongs to the column.",
					"column \"%s\" uses the %s pseudo-type", colname, t);
	if (!is_array &&
		(strcmp(t, "int4") == 0 || strcmp(t, "int2") == 0 ||
		 strcmp(t, "serial") == 0 || strcmp(t, "serial4") == 0 ||
		 strcmp(t, "smallserial") == 0 || strcmp(t, "serial2") == 0))
	{
		bool		keylike;
		size_t		len = strlen(colname);

		keylike = is_serial_type(t) ||
			find_constraint(constraints, CONSTR_IDENTITY) != NULL ||
			find_constraint(constraints, CONSTR_PRIMARY) != NULL ||
			find_constraint(constraints, CONSTR_FOREIGN) != NULL ||
			name_in_list(pk_keys, colname) ||
			strcmp(colname, "id") == 0 ||
			(len > 3 && strcmp(colname + len - 3, "_id") == 0);
		if (keylike)
			add_finding(st, "prefer-bigint", MT_SEV_INFO, tf, NoLock, false, -1,
						"Use bigint for keys: changing the type of a full 32-bit key later rewrites the table and every table that references it.",
						"key column \"%s\" has a 32-bit or 16-bit integer type", colname);
	}
	if ((strcmp(t, "varchar") == 0 && tn->typmods != NIL) ||
		strcmp(t, "bpchar") == 0)
		add_finding(st, "prefer-text", MT_SEV_INFO, tf, NoLock, false, -1,
					"Use text, with a CHECK (length(col) <= n) constraint if a limit is needed: a CHECK can be changed later with NOT VALID and VALIDATE, a length modifier cannot be lowered without a rewrite.",
					"column \"%s\" has a length-limited character type", colname);
	if (strcmp(t, "timestamp") == 0)
		add_finding(st, "prefer-timestamptz", MT_SEV_INFO, tf, NoLock, false, -1,
					"Use timestamptz (timestamp with time zone): it stores an absolute point in time; timestamp without time zone depends on the writer's time zone.",
					"column \"%s\" has type timestamp without time zone", colname);
}

/*
 * Would changing a column from (oldtype, oldmod) to (newtype, newmod)
 * rewrite the table?  Mirrors what the server knows is binary-compatible:
 * same type with a wider or removed length/precision modifier, or a
 * binary-coercible type with no new modifier.
 */
static bool
type_change_rewrites(Oid oldtype, int32 oldmod, Oid newtype, int32 newmod)
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
		return type_change_rewrites(oldtype, oldmod, oldtype, newmod);
	}
	if (newmod < 0 && IsBinaryCoercible(oldtype, newtype))
		return false;
	return true;
}


/* ----------------------------------------------------------------
 * Locks the script's transaction holds
 * ----------------------------------------------------------------
 */

/* A lock mode as the documentation writes it ("ACCESS EXCLUSIVE"). */
static const char *
lock_mode_words(LOCKMODE mode)
{
	switch (mode)
	{
		case AccessShareLock:
			return "ACCESS SHARE";
		case RowShareLock:
			return "ROW SHARE";
		case RowExclusiveLock:
			return "ROW EXCLUSIVE";
		case ShareUpdateExclusiveLock:
			return "SHARE UPDATE EXCLUSIVE";
		case ShareLock:
			return "SHARE";
		case ShareRowExclusiveLock:
			return "SHARE ROW EXCLUSIVE";
		case ExclusiveLock:
			return "EXCLUSIVE";
		case AccessExclusiveLock:
			return "ACCESS EXCLUSIVE";
		default:
			return "unknown";
	}
}

/* The held lock on a relation (by OID, else by name), or NULL. */
static HeldLock *
find_held_lock(LintState *st, Oid relid, const char *schemaname,
			   const char *relname)
{
	ListCell   *lc;

	foreach(lc, st->held_locks)
	{
		HeldLock   *h = (HeldLock *) lfirst(lc);

		if (OidIsValid(relid))
		{
			if (h->relid == relid)
				return h;
		}
		else if (!OidIsValid(h->relid) && relname && h->relname &&
				 strcmp(h->relname, relname) == 0 &&
				 (schemaname == NULL || h->schemaname == NULL ||
				  strcmp(h->schemaname, schemaname) == 0))
			return h;
	}
	return NULL;
}

/* Note a lock the current statement takes; the strongest one counts. */
static void
hold_lock(LintState *st, Oid relid, const char *schemaname,
		  const char *relname, LOCKMODE mode, bool not_valid_add)
{
	HeldLock   *h = find_held_lock(st, relid, schemaname, relname);
	MemoryContext old;

	if (h != NULL)
	{
		if (mode > h->mode)
		{
			h->mode = mode;
			h->statement = st->info->statement;
			h->not_valid_add = not_valid_add;
		}
		return;
	}
	old = MemoryContextSwitchTo(st->state_cxt);
	h = (HeldLock *) palloc0(sizeof(HeldLock));
	h->relid = relid;
	h->schemaname = schemaname ? pstrdup(schemaname) : NULL;
	h->relname = relname ? pstrdup(relname) : NULL;
	h->mode = mode;
	h->statement = st->info->statement;
	h->not_valid_add = not_valid_add;
	st->held_locks = lappend(st->held_locks, h);
	MemoryContextSwitchTo(old);
}

/* Does an ALTER TABLE add a CHECK or FOREIGN KEY constraint NOT VALID? */
static bool
adds_not_valid_constraint(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
		Constraint *c;

		if (!IsA(cmd, AlterTableCmd) || cmd->subtype != AT_AddConstraint ||
			cmd->def == NULL || !IsA(cmd->def, Constraint))
			continue;
		c = (Constraint *) cmd->def;
		if ((c->contype == CONSTR_CHECK || c->contype == CONSTR_FOREIGN) &&
			c->skip_validation)
			return true;
	}
	return false;
}

/*
 * After a statement: the relation locks it took stay held until the
 * script's transaction ends.
 */
static void
remember_held_locks(LintState *st, Node *stmt)
{
	ListCell   *lc;
	bool		not_valid = false;
	Oid			target = InvalidOid;

	if (IsA(stmt, AlterTableStmt))
	{
		AlterTableStmt *a = (AlterTableStmt *) stmt;

		not_valid = adds_not_valid_constraint(a);
		if (a->relation && a->relation->relname)
		{
			target = script_lookup_relation(st, a->relation);
			/* not in the catalog, not created here: known by its name */
			if (!OidIsValid(target) && !rangevar_in_list(st->created, a->relation))
				hold_lock(st, InvalidOid, a->relation->schemaname,
						  a->relation->relname,
						  AlterTableGetLockLevel(a->cmds), not_valid);
		}
	}
	foreach(lc, st->info->locks)
	{
		MtLockTarget *t = (MtLockTarget *) lfirst(lc);

		if (OidIsValid(t->relid))
			hold_lock(st, t->relid, NULL, NULL, t->mode,
					  not_valid && t->relid == target);
	}
}

/* The script's transaction ends (or a new one begins): its locks go. */
static void
release_held_locks(LintState *st)
{
	st->held_locks = NIL;
}

/*
 * VALIDATE CONSTRAINT takes only SHARE UPDATE EXCLUSIVE, which is the point
 * of NOT VALID.  But when the same transaction already holds a lock on the
 * table that blocks writes (the ADD CONSTRAINT ... NOT VALID itself, or
 * any other DDL), the validating scan runs under that lock.
 */
static void
lint_validate_constraint(LintState *st, const TableFacts *tf,
						 AlterTableStmt *stmt, AlterTableCmd *cmd)
{
	HeldLock   *h;
	LOCKMODE	own = AlterTableGetLockLevel(stmt->cmds);
	const char *hint = "Validate in a migration (transaction) of its own: add the constraint NOT VALID and commit, then run ALTER TABLE ... VALIDATE CONSTRAINT in a later transaction, where it takes only a SHARE UPDATE EXCLUSIVE lock.";

	if (!is_existing(tf) || cmd->name == NULL)
		return;
	h = find_held_lock(st, tf->relid,
					   OidIsValid(tf->relid) ? NULL : stmt->relation->schemaname,
					   OidIsValid(tf->relid) ? NULL : stmt->relation->relname);
	if (h != NULL && h->mode >= ShareLock && h->mode >= own)
	{
		if (h->not_valid_add && h->statement == st->info->statement)
			add_finding(st, "validate-in-same-transaction", MT_SEV_WARNING, tf, h->mode, false, tf->rows,
						hint,
						"VALIDATE CONSTRAINT %s scans %s while the %s lock taken by the NOT VALID ADD CONSTRAINT earlier in the same DO block is still held: NOT VALID buys nothing",
						quote_identifier(cmd->name), tf->name,
						lock_mode_words(h->mode));
		else if (h->not_valid_add)
			add_finding(st, "validate-in-same-transaction", MT_SEV_WARNING, tf, h->mode, false, tf->rows,
						hint,
						"VALIDATE CONSTRAINT %s scans %s while the %s lock taken by the NOT VALID ADD CONSTRAINT of statement %d is still held: when the script runs as one transaction (as under apply()), NOT VALID buys nothing",
						quote_identifier(cmd->name), tf->name,
						lock_mode_words(h->mode), h->statement);
		else
			add_finding(st, "validate-in-same-transaction", MT_SEV_WARNING, tf, h->mode, false, tf->rows,
						hint,
						"VALIDATE CONSTRAINT %s scans %s while the %s lock taken by statement %d in the same transaction is still held, blocking writes for the whole scan",
						quote_identifier(cmd->name), tf->name,
						lock_mode_words(h->mode), h->statement);
	}
	else if (own >= ShareLock)
		add_finding(st, "validate-in-same-transaction", MT_SEV_WARNING, tf, own, false, tf->rows,
					hint,
					"VALIDATE CONSTRAINT %s scans %s under the %s lock that the other subcommands of this ALTER TABLE take",
					quote_identifier(cmd->name), tf->name, lock_mode_words(own));
}

/* ----------------------------------------------------------------
 * Rules per statement
 * ----------------------------------------------------------------
 */

static const char *HINT_EXPAND_CONTRACT =
"Expand and contract: add a new column, backfill it in batches with migration_tools.backfill(), switch the application to it, then drop the old column.";

/*
 * The columns a raw CHECK expression proves NOT NULL: "col IS NOT NULL",
 * or an AND with such terms (the server proves SET NOT NULL from either).
 */
static const char *raw_not_null_check_column(Node *expr);

static List *
raw_not_null_check_columns(Node *expr)
{
	List	   *cols = NIL;
	const char *col;

	if (expr && IsA(expr, BoolExpr) && ((BoolExpr *) expr)->boolop == AND_EXPR)
	{
		ListCell   *lc;

		check_stack_depth();
		foreach(lc, ((BoolExpr *) expr)->args)
			cols = list_concat(cols, raw_not_null_check_columns(lfirst(lc)));
		return cols;
	}
	col = raw_not_null_check_column(expr);
	return col ? list_make1((char *) col) : NIL;
}

/* Is a raw CHECK expression "col IS NOT NULL"?  Returns the column. */
static const char *
raw_not_null_check_column(Node *expr)
{
	NullTest   *nt;
	ColumnRef  *cr;
	Node	   *last;

	if (expr == NULL || !IsA(expr, NullTest))
		return NULL;
	nt = (NullTest *) expr;
	if (nt->nulltesttype != IS_NOT_NULL || nt->arg == NULL ||
		!IsA(nt->arg, ColumnRef))
		return NULL;
	cr = (ColumnRef *) nt->arg;
	if (list_length(cr->fields) != 1)
		return NULL;
	last = linitial(cr->fields);
	return IsA(last, String) ? strVal(last) : NULL;
}

static bool
script_has_not_null_check(LintState *st, RangeVar *rv, const char *column)
{
	ListCell   *lc;

	foreach(lc, st->nn_checks)
	{
		NotNullCheck *c = (NotNullCheck *) lfirst(lc);

		if (c->validated && c->column && strcmp(c->relname, rv->relname) == 0 &&
			strcmp(c->column, column) == 0)
			return true;
	}
	return false;
}

/* Has the script added (and validated) a CHECK constraint on rv? */
static bool
script_has_validated_check(LintState *st, RangeVar *rv)
{
	ListCell   *lc;

	if (rv == NULL || rv->relname == NULL)
		return false;
	foreach(lc, st->nn_checks)
	{
		NotNullCheck *c = (NotNullCheck *) lfirst(lc);

		if (c->validated && strcmp(c->relname, rv->relname) == 0)
			return true;
	}
	return false;
}

/*
 * Remember a CHECK added by the script, with its column when it is
 * CHECK (col IS NOT NULL).
 */
static void
remember_not_null_check(LintState *st, RangeVar *rv, Constraint *c)
{
	List	   *cols = raw_not_null_check_columns(c->raw_expr);
	MemoryContext old;
	ListCell   *lc;
	const char *conname = c->conname;

	if (rv == NULL || rv->relname == NULL)
		return;
	/* an unnamed CHECK is named <table>_<first column>_check */
	if (conname == NULL && cols != NIL)
	{
		char	   *name = psprintf("%s_%s_check", rv->relname,
									(char *) linitial(cols));

		if (strlen(name) >= NAMEDATALEN)
			name[NAMEDATALEN - 1] = '\0';
		conname = name;
	}
	old = MemoryContextSwitchTo(st->state_cxt);
	/* one entry per column it proves (none: any other CHECK) */
	if (cols == NIL)
		cols = list_make1(NULL);
	foreach(lc, cols)
	{
		NotNullCheck *nc = (NotNullCheck *) palloc(sizeof(NotNullCheck));
		const char *col = (const char *) lfirst(lc);

		nc->relname = pstrdup(rv->relname);
		nc->column = col ? pstrdup(col) : NULL;
		nc->conname = conname ? pstrdup(conname) : NULL;
		nc->validated = !c->skip_validation;
		st->nn_checks = lappend(st->nn_checks, nc);
	}
	MemoryContextSwitchTo(old);
}

static void
validate_not_null_check(LintState *st, RangeVar *rv, const char *conname)
{
	ListCell   *lc;

	if (conname == NULL || rv == NULL || rv->relname == NULL)
		return;
	foreach(lc, st->nn_checks)
	{
		NotNullCheck *c = (NotNullCheck *) lfirst(lc);

		if (c->conname && strcmp(c->conname, conname) == 0 &&
			strcmp(c->relname, rv->relname) == 0)
			c->validated = true;
	}
}

/* Remember a relation created by the script (in the script's context). */
static void
remember_rangevar(LintState *st, List **list, RangeVar *rv)
{
	MemoryContext old;

	if (rv == NULL || rv->relname == NULL)
		return;
	old = MemoryContextSwitchTo(st->state_cxt);
	*list = lappend(*list, makeRangeVar(rv->schemaname ? pstrdup(rv->schemaname) : NULL,
										pstrdup(rv->relname), -1));
	MemoryContextSwitchTo(old);
}

/* Is a raw expression the NULL constant (possibly cast)? */
static bool
is_null_constant(Node *expr)
{
	while (expr && IsA(expr, TypeCast))
		expr = ((TypeCast *) expr)->arg;
	return expr != NULL && IsA(expr, A_Const) && ((A_Const *) expr)->isnull;
}

/* Rules of one ADD COLUMN. */
static void
lint_add_column(LintState *st, const TableFacts *tf, AlterTableCmd *cmd)
{
	ColumnDef  *col = (ColumnDef *) cmd->def;
	const char *t;
	Constraint *def;
	Constraint *gen;
	Constraint *ident;
	LOCKMODE	mode = AlterTableGetLockLevel(list_make1(cmd));

	if (col == NULL || !IsA(col, ColumnDef) || col->colname == NULL)
		return;
	/* ADD COLUMN IF NOT EXISTS of a column that exists adds nothing */
	if (cmd->missing_ok && OidIsValid(tf->relid) &&
		get_attnum(tf->relid, col->colname) != InvalidAttrNumber)
		return;
	lint_column_type(st, tf, col->colname, col->typeName, col->constraints, NIL);
	if (!is_existing(tf))
		return;

	t = builtin_type_name(col->typeName);
	def = find_constraint(col->constraints, CONSTR_DEFAULT);
	gen = find_constraint(col->constraints, CONSTR_GENERATED);
	ident = find_constraint(col->constraints, CONSTR_IDENTITY);

	if (is_serial_type(t) || ident)
		add_finding(st, "add-serial-column", MT_SEV_ERROR, tf, mode, true, tf->rows,
					"Add the column without a default, attach a sequence default for new rows (ALTER COLUMN ... SET DEFAULT nextval(...)), backfill old rows in batches with migration_tools.backfill(), then add NOT NULL through a validated CHECK constraint.",
					"adding %s column \"%s\" to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
					ident ? "identity" : "serial", col->colname, tf->name);
	if (!is_serial_type(t) && col->typeName && gen == NULL && ident == NULL)
	{
		Oid			typid = LookupTypeNameOid(NULL, col->typeName, true);

		/* the server checks a constrained domain on every row: a rewrite */
		if (OidIsValid(typid) && get_typtype(typid) == TYPTYPE_DOMAIN &&
			DomainHasConstraints(typid))
			add_finding(st, "table-rewrite", MT_SEV_ERROR, tf, mode, true, tf->rows,
						"Add the column with the domain's base type, backfill it in batches, add the checks as NOT VALID constraints and validate them, then change the type to the domain.",
						"adding column \"%s\" of a domain type with constraints to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
						col->colname, tf->name);
	}
	/* a virtual one (18) is computed when read: nothing is written */
	if (gen && mt_generated_is_stored(gen))
		add_finding(st, "add-stored-generated-column", MT_SEV_ERROR, tf, mode, true, tf->rows,
					"Add a plain column, fill new rows with a trigger, backfill old rows with migration_tools.backfill(), or compute the value in a view or in queries.",
					"adding stored generated column \"%s\" to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
					col->colname, tf->name);
	if (def && def->raw_expr &&
		expression_volatility(def->raw_expr) == PROVOLATILE_VOLATILE)
		add_finding(st, "add-column-volatile-default", MT_SEV_ERROR, tf, mode, true, tf->rows,
					"Add the column without a default (or with a constant one), SET DEFAULT for new rows in a second statement, then backfill existing rows in batches with migration_tools.backfill().",
					"adding column \"%s\" with a volatile default to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
					col->colname, tf->name);
	if ((col->is_not_null || find_constraint(col->constraints, CONSTR_NOTNULL)) &&
		(def == NULL || is_null_constant(def->raw_expr)) &&
		gen == NULL && ident == NULL && !is_serial_type(t))
		add_finding(st, "add-column-not-null-no-default", MT_SEV_ERROR, tf, mode, false, tf->rows,
					"Add the column with a constant DEFAULT (no rewrite since PostgreSQL 11), or add it nullable, backfill it, add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL.",
					"adding NOT NULL column \"%s\" without a default to existing table %s fails as soon as the table has rows",
					col->colname, tf->name);
	if (find_constraint(col->constraints, CONSTR_PRIMARY))
		add_finding(st, "add-primary-key", MT_SEV_ERROR, tf, mode, false, tf->rows,
					"Add the column first, backfill it, build the index with CREATE UNIQUE INDEX CONCURRENTLY, then ADD PRIMARY KEY USING INDEX.",
					"adding primary key column \"%s\" to existing table %s builds an index under an ACCESS EXCLUSIVE lock",
					col->colname, tf->name);
	if (find_constraint(col->constraints, CONSTR_UNIQUE))
		add_finding(st, "add-unique-constraint", MT_SEV_ERROR, tf, mode, false, tf->rows,
					"Add the column first, then CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... UNIQUE USING INDEX.",
					"adding unique column \"%s\" to existing table %s builds an index under an ACCESS EXCLUSIVE lock",
					col->colname, tf->name);

	/*
	 * A column CHECK is validated like ADD CONSTRAINT CHECK: the server scans
	 * every row under the ACCESS EXCLUSIVE lock of ADD COLUMN (a column
	 * constraint cannot be NOT VALID).
	 */
	if (find_constraint(col->constraints, CONSTR_CHECK))
		add_finding(st, "add-check-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
					"Add the column without the CHECK, then ALTER TABLE ... ADD CONSTRAINT name CHECK (...) NOT VALID, and VALIDATE CONSTRAINT it in a separate transaction: it takes only a SHARE UPDATE EXCLUSIVE lock.",
					"adding column \"%s\" with a CHECK constraint to existing table %s scans the whole table under an ACCESS EXCLUSIVE lock",
					col->colname, tf->name);
}

/*
 * For ADD PRIMARY KEY USING INDEX: the first key column of the (existing)
 * index that is nullable and not proven NOT NULL by a validated CHECK;
 * the server must scan the table to set it NOT NULL.  NULL when there is
 * none or the index is not in the catalog.
 */
static const char *
pk_index_nullable_column(LintState *st, const TableFacts *tf, RangeVar *rv,
						 const char *indexname)
{
	RangeVar   *irv;
	Oid			indexoid;
	HeapTuple	tup;
	Form_pg_index ind;
	const char *result = NULL;
	int			i;

	if (!OidIsValid(tf->relid) || indexname == NULL)
		return NULL;
	irv = makeRangeVar(get_namespace_name(get_rel_namespace(tf->relid)),
					   pstrdup(indexname), -1);
	indexoid = mt_lookup_relation(irv);
	if (!OidIsValid(indexoid))
		return NULL;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tup))
		return NULL;
	ind = (Form_pg_index) GETSTRUCT(tup);
	for (i = 0; i < ind->indnkeyatts && result == NULL; i++)
	{
		AttrNumber	attnum = ind->indkey.values[i];
		HeapTuple	atttup;
		char	   *colname;
		bool		notnull;

		if (attnum <= 0)
			continue;
		atttup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(tf->relid),
								 Int16GetDatum(attnum));
		if (!HeapTupleIsValid(atttup))
			continue;
		notnull = ((Form_pg_attribute) GETSTRUCT(atttup))->attnotnull;
		colname = pstrdup(NameStr(((Form_pg_attribute) GETSTRUCT(atttup))->attname));
		ReleaseSysCache(atttup);
		if (!notnull && !catalog_has_not_null_check(tf->relid, colname) &&
			!script_has_not_null_check(st, rv, colname))
			result = colname;
	}
	ReleaseSysCache(tup);
	return result;
}

#ifndef MT_HAVE_PARTITIONED_FK_NOT_VALID
static const char *HINT_PARTITIONED_FK =
"Partitioned tables take no NOT VALID foreign key before PostgreSQL 18: add the foreign key to each partition with NOT VALID and VALIDATE CONSTRAINT it in a separate transaction, then add it to the partitioned table, which adopts the validated keys of the partitions without scanning them.";
#endif

/*
 * Has every leaf partition of a partitioned table a validated foreign key
 * to the same table on the same columns?  Then ADD FOREIGN KEY on the
 * partitioned table adopts them and scans nothing.
 */
static bool
partitions_have_validated_fk(Oid relid, Constraint *c)
{
	Oid			pkrel;
	List	   *parts;
	ListCell   *lc;
	int			leaves = 0;

	if (!OidIsValid(relid) || c->pktable == NULL || c->fk_attrs == NIL)
		return false;
	pkrel = mt_lookup_relation(c->pktable);
	if (!OidIsValid(pkrel))
		return false;
	parts = find_all_inheritors(relid, NoLock, NULL);
	foreach(lc, parts)
	{
		Oid			part = lfirst_oid(lc);
		Relation	conrel;
		SysScanDesc scan;
		ScanKeyData key;
		HeapTuple	tup;
		bool		found = false;

		if (get_rel_relkind(part) != RELKIND_RELATION)
			continue;
		leaves++;
		conrel = table_open(ConstraintRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(part));
		scan = systable_beginscan(conrel, ConstraintRelidTypidNameIndexId, true,
								  NULL, 1, &key);
		while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
			Datum		d;
			bool		isnull;
			ArrayType  *arr;
			int16	   *keys;
			int			n;
			int			i;
			ListCell   *lc2;

			if (con->contype != CONSTRAINT_FOREIGN || !con->convalidated ||
				con->confrelid != pkrel)
				continue;
			d = heap_getattr(tup, Anum_pg_constraint_conkey,
							 RelationGetDescr(conrel), &isnull);
			if (isnull)
				continue;
			arr = DatumGetArrayTypeP(d);
			n = ARR_DIMS(arr)[0];
			keys = (int16 *) ARR_DATA_PTR(arr);
			if (n != list_length(c->fk_attrs))
				continue;
			found = true;
			i = 0;
			foreach(lc2, c->fk_attrs)
			{
				char	   *att = get_attname(part, keys[i++], true);

				if (att == NULL || !IsA(lfirst(lc2), String) ||
					strcmp(att, strVal(lfirst(lc2))) != 0)
					found = false;
			}
		}
		systable_endscan(scan);
		table_close(conrel, AccessShareLock);
		if (!found)
			return false;
	}
	return leaves > 0;
}

/* Rules of one ADD CONSTRAINT. */
static void
lint_add_constraint(LintState *st, const TableFacts *tf, RangeVar *rv,
					AlterTableCmd *cmd)
{
	Constraint *c = (Constraint *) cmd->def;
	LOCKMODE	mode = AlterTableGetLockLevel(list_make1(cmd));

	if (c == NULL || !IsA(c, Constraint))
		return;
	if (c->contype == CONSTR_CHECK)
		remember_not_null_check(st, rv, c);
	if (!is_existing(tf))
		return;

	switch (c->contype)
	{
		case CONSTR_FOREIGN:
			if (tf->relkind == RELKIND_PARTITIONED_TABLE)
			{
#ifdef MT_HAVE_PARTITIONED_FK_NOT_VALID
				/* the validated keys of every partition are adopted: no scan */
				if (!c->skip_validation && partitions_have_validated_fk(tf->relid, c))
					break;
#else
				/* NOT VALID is refused there; the partitions' keys are adopted */
				if (c->skip_validation)
					add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
								HINT_PARTITIONED_FK,
								"adding a NOT VALID foreign key to partitioned table %s fails: PostgreSQL before 18 does not support NOT VALID foreign keys on partitioned tables",
								tf->name);
				else if (!partitions_have_validated_fk(tf->relid, c))
					add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
								HINT_PARTITIONED_FK,
								"adding a validated foreign key on partitioned table %s scans every partition while holding SHARE ROW EXCLUSIVE locks, blocking writes to it and to the referenced table",
								tf->name);
				break;
#endif
			}
			if (!c->skip_validation)
			{
				TableFacts pk;

				table_facts(st, c->pktable, &pk);
				add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
							"Add the foreign key with NOT VALID (a short lock, no scan), then run ALTER TABLE ... VALIDATE CONSTRAINT in a separate transaction: it takes only a SHARE UPDATE EXCLUSIVE lock.",
							"adding a validated foreign key on %s scans the table while holding SHARE ROW EXCLUSIVE locks on %s and %s, blocking writes to both",
							tf->name, tf->name, pk.name ? pk.name : "the referenced table");
			}
			break;
		case CONSTR_CHECK:
			if (!c->skip_validation)
				add_finding(st, "add-check-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
							"Add the constraint with NOT VALID, then run ALTER TABLE ... VALIDATE CONSTRAINT in a separate transaction: it takes only a SHARE UPDATE EXCLUSIVE lock.",
							"adding a validated CHECK constraint to %s scans the whole table under an ACCESS EXCLUSIVE lock",
							tf->name);
			break;
		case CONSTR_UNIQUE:
			if (c->indexname == NULL)
				add_finding(st, "add-unique-constraint", MT_SEV_ERROR, tf, mode, false, tf->rows,
							"Build the index first with CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE ... ADD CONSTRAINT name UNIQUE USING INDEX index_name.",
							"adding a UNIQUE constraint to %s builds its index while blocking writes",
							tf->name);
			break;
		case CONSTR_PRIMARY:
			if (c->indexname == NULL)
				add_finding(st, "add-primary-key", MT_SEV_ERROR, tf, mode, false, tf->rows,
							"Build the index first with CREATE UNIQUE INDEX CONCURRENTLY, make the key columns NOT NULL through validated CHECK (col IS NOT NULL) constraints, then ALTER TABLE ... ADD CONSTRAINT name PRIMARY KEY USING INDEX index_name.",
							"adding a PRIMARY KEY to %s builds its index under an ACCESS EXCLUSIVE lock",
							tf->name);
			else
			{
				const char *col = pk_index_nullable_column(st, tf, rv, c->indexname);

				if (col)
					add_finding(st, "add-primary-key", MT_SEV_ERROR, tf, mode, false, tf->rows,
								"Make the key columns NOT NULL first: CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, SET NOT NULL; then ADD PRIMARY KEY USING INDEX.",
								"adding a PRIMARY KEY using an index to %s scans the table under an ACCESS EXCLUSIVE lock to make column \"%s\" NOT NULL",
								tf->name, col);
			}
			break;
		case CONSTR_EXCLUSION:
			add_finding(st, "add-exclusion-constraint", MT_SEV_ERROR, tf, mode, false, tf->rows,
						"An exclusion constraint cannot be added NOT VALID nor built concurrently: add it while the table is new or small, or enforce the rule otherwise (for example with a trigger) on a large table.",
						"adding an EXCLUDE constraint to %s builds its index and checks every row under an ACCESS EXCLUSIVE lock",
						tf->name);
			break;
		default:
			break;
	}
}

/*
 * Is a column of an existing table NOT NULL in the catalog: 1 yes, 0 no,
 * -1 unknown (no such table or column).
 */
static int
column_attnotnull(Oid relid, const char *column)
{
	HeapTuple	tup;
	int			result;

	if (!OidIsValid(relid) || column == NULL)
		return -1;
	tup = SearchSysCacheAttName(relid, column);
	if (!HeapTupleIsValid(tup))
		return -1;
	result = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull ? 1 : 0;
	ReleaseSysCache(tup);
	return result;
}

/* SET NOT NULL: a full scan unless a validated CHECK proves it. */
static void
lint_set_not_null(LintState *st, const TableFacts *tf, RangeVar *rv,
				  AlterTableCmd *cmd)
{
	if (!is_existing(tf) || cmd->name == NULL)
		return;
	/* already NOT NULL: the server does nothing */
	if (column_attnotnull(tf->relid, cmd->name) == 1)
		return;
	if (catalog_has_not_null_check(tf->relid, cmd->name) ||
		script_has_not_null_check(st, rv, cmd->name))
		return;
	add_finding(st, "set-not-null", MT_SEV_ERROR, tf,
				AlterTableGetLockLevel(list_make1(cmd)), false, tf->rows,
				"Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a separate transaction, then SET NOT NULL (PostgreSQL 12+ uses the validated constraint and skips the scan) and drop the CHECK.",
				"SET NOT NULL on column \"%s\" of %s scans the whole table under an ACCESS EXCLUSIVE lock",
				cmd->name, tf->name);
}

/*
 * Is a USING expression just the column itself, possibly cast to the new
 * type ("USING col" or "USING col::newtype")?  Then the server treats the
 * change as if there were no USING: a widening stays without a rewrite.
 */
static bool
using_is_plain_cast(Node *expr, const char *column, TypeName *newtype)
{
	ColumnRef  *cr;

	if (expr && IsA(expr, TypeCast))
	{
		TypeCast   *tc = (TypeCast *) expr;
		int32		mod1 = -1,
					mod2 = -1;
		Type		t1 = LookupTypeName(NULL, tc->typeName, &mod1, true);
		Type		t2 = LookupTypeName(NULL, newtype, &mod2, true);
		bool		same = t1 && t2 && typeTypeId(t1) == typeTypeId(t2) &&
			mod1 == mod2;

		if (t1)
			ReleaseSysCache(t1);
		if (t2)
			ReleaseSysCache(t2);
		if (!same)
			return false;
		expr = tc->arg;
	}
	if (expr == NULL || !IsA(expr, ColumnRef))
		return false;
	cr = (ColumnRef *) expr;
	return list_length(cr->fields) == 1 && IsA(linitial(cr->fields), String) &&
		strcmp(strVal(linitial(cr->fields)), column) == 0;
}

/* ALTER COLUMN TYPE: a rewrite unless the change is binary compatible. */
static void
lint_alter_column_type(LintState *st, const TableFacts *tf, AlterTableCmd *cmd)
{
	ColumnDef  *def = (ColumnDef *) cmd->def;
	bool		rewrites = true;
	bool		known = false;

	if (def == NULL || !IsA(def, ColumnDef) || cmd->name == NULL)
		return;
	lint_column_type(st, tf, cmd->name, def->typeName, NIL, NIL);
	if (!is_existing(tf))
		return;

	if (OidIsValid(tf->relid) &&
		(def->raw_default == NULL ||
		 using_is_plain_cast(def->raw_default, cmd->name, def->typeName)))
	{
		HeapTuple	atttup = SearchSysCacheAttName(tf->relid, cmd->name);

		if (HeapTupleIsValid(atttup))
		{
			Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(atttup);
			int32		newmod;
			Type		newtyp = LookupTypeName(NULL, def->typeName, &newmod, true);

			if (newtyp)
			{
				known = true;
				rewrites = type_change_rewrites(att->atttypid, att->atttypmod,
												typeTypeId(newtyp), newmod);
				ReleaseSysCache(newtyp);
			}
			ReleaseSysCache(atttup);
		}
	}
	if (!rewrites)
		return;
	add_finding(st, "change-column-type", MT_SEV_ERROR, tf,
				AlterTableGetLockLevel(list_make1(cmd)), true, tf->rows,
				HINT_EXPAND_CONTRACT,
				known ? "changing the type of column \"%s\" of %s rewrites the table and its indexes under an ACCESS EXCLUSIVE lock"
				: "changing the type of column \"%s\" of %s may rewrite the table and its indexes under an ACCESS EXCLUSIVE lock",
				cmd->name, tf->name);
}

/*
 * SET LOGGED of a logged table, SET UNLOGGED of an unlogged one, SET
 * TABLESPACE or SET ACCESS METHOD to the table's own: the server does
 * nothing.
 */
static bool
alter_is_no_op(const TableFacts *tf, AlterTableCmd *cmd)
{
	HeapTuple	tup;
	Form_pg_class cls;
	bool		no_op = false;

	if (!OidIsValid(tf->relid))
		return false;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(tf->relid));
	if (!HeapTupleIsValid(tup))
		return false;
	cls = (Form_pg_class) GETSTRUCT(tup);
	switch (cmd->subtype)
	{
		case AT_SetLogged:
			no_op = cls->relpersistence == RELPERSISTENCE_PERMANENT;
			break;
		case AT_SetUnLogged:
			no_op = cls->relpersistence == RELPERSISTENCE_UNLOGGED;
			break;
		case AT_SetAccessMethod:
			no_op = cmd->name &&
				get_table_am_oid(cmd->name, true) == cls->relam;
			break;
		case AT_SetTableSpace:
			if (cmd->name)
			{
				Oid			spc = get_tablespace_oid(cmd->name, true);
				Oid			cur = cls->reltablespace;

				/* reltablespace 0 is the database's default tablespace */
				if (!OidIsValid(cur))
					cur = MyDatabaseTableSpace;
				no_op = OidIsValid(spc) && spc == cur;
			}
			break;
		default:
			break;
	}
	ReleaseSysCache(tup);
	return no_op;
}

/*
 * A new partition (CREATE TABLE ... PARTITION OF, ATTACH PARTITION) of a
 * table with a DEFAULT partition: the server scans the default partition,
 * under an ACCESS EXCLUSIVE lock, for rows that belong in the new one,
 * unless a CHECK constraint of the default partition proves there are none
 * (judged, as for ATTACH, by the presence of a validated CHECK).
 */
static void
lint_default_partition_scan(LintState *st, const TableFacts *parent,
							PartitionBoundSpec *bound, const char *what)
{
	Oid			def;
	TableFacts	dtf;

	if (!OidIsValid(parent->relid) ||
		parent->relkind != RELKIND_PARTITIONED_TABLE ||
		(bound && IsA(bound, PartitionBoundSpec) && bound->is_default))
		return;
	def = get_default_partition_oid(parent->relid);
	if (!OidIsValid(def) || list_member_oid(st->gone, def) ||
		created_in_current_transaction(def) ||
		catalog_has_validated_check(def))
		return;
	memset(&dtf, 0, sizeof(dtf));
	dtf.relid = def;
	dtf.name = mt_relation_display_name(def);
	dtf.rows = table_rows(def, &dtf.relkind);
	if (dtf.name == NULL || dtf.rows == 0)
		return;
	add_finding(st, "attach-partition-unvalidated", MT_SEV_ERROR, &dtf,
				AccessExclusiveLock, false, dtf.rows,
				"Move the rows of the new partition's range out of the default partition first and give the default partition a CHECK constraint that excludes that range (NOT VALID, then VALIDATE CONSTRAINT); or do without a default partition.",
				"%s %s scans its default partition %s under an ACCESS EXCLUSIVE lock, to check that none of its rows belong in the new partition",
				what, parent->name, dtf.name);
}

/* Rules of ALTER TABLE, subcommand by subcommand. */
static void
lint_alter_table(LintState *st, AlterTableStmt *stmt)
{
	TableFacts	tf;
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_MATVIEW)
		return;
	table_facts(st, stmt->relation, &tf);
	/* views and foreign tables have no rows here to scan or rewrite */
	if (tf.relkind != 0 && tf.relkind != RELKIND_RELATION &&
		tf.relkind != RELKIND_PARTITIONED_TABLE && tf.relkind != RELKIND_MATVIEW)
		return;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (!IsA(cmd, AlterTableCmd))
			continue;
		switch (cmd->subtype)
		{
			case AT_AddColumn:
				lint_add_column(st, &tf, cmd);
				break;
			case AT_AddConstraint:
				lint_add_constraint(st, &tf, stmt->relation, cmd);
				break;
			case AT_ValidateConstraint:
				lint_validate_constraint(st, &tf, stmt, cmd);
				validate_not_null_check(st, stmt->relation, cmd->name);
				break;
			case AT_SetNotNull:
				lint_set_not_null(st, &tf, stmt->relation, cmd);
				break;
			case AT_DropNotNull:
				if (is_existing(&tf) && cmd->name)
					add_finding(st, "drop-not-null", MT_SEV_INFO, &tf,
								AlterTableGetLockLevel(list_make1(cmd)), false, -1,
								"Make sure every version of the application still running handles NULL in this column before the migration runs.",
								"dropping NOT NULL on column \"%s\" of %s lets NULLs in that older code may not expect",
								cmd->name, tf.name);
				break;
			case AT_AlterColumnType:
				lint_alter_column_type(st, &tf, cmd);
				break;
			case AT_DropColumn:
				if (is_existing(&tf) && cmd->name)
					add_finding(st, "drop-column", MT_SEV_WARNING, &tf,
								AlterTableGetLockLevel(list_make1(cmd)), false, -1,
								"First deploy application code that no longer reads or writes the column (and ignores it in SELECT *), then drop it.",
								"dropping column \"%s\" of %s breaks running code that still uses it",
								cmd->name, tf.name);
				break;
			case AT_AttachPartition:
				{
					PartitionCmd *pc = (PartitionCmd *) cmd->def;
					TableFacts	part;

					if (pc == NULL || !IsA(pc, PartitionCmd))
						break;
					lint_default_partition_scan(st, &tf, pc->bound,
												"attaching a partition to");
					table_facts(st, pc->name, &part);
					if (!is_existing(&part) ||
						catalog_has_validated_check(part.relid) ||
						script_has_validated_check(st, pc->name))
						break;
					add_finding(st, "attach-partition-unvalidated", MT_SEV_ERROR, &part,
								AccessExclusiveLock, false, part.rows,
								"Before attaching, add a CHECK constraint matching the partition bound with NOT VALID and VALIDATE CONSTRAINT it; ATTACH PARTITION then skips the scan. Drop the CHECK afterwards.",
								"attaching %s as a partition of %s scans it under an ACCESS EXCLUSIVE lock to check the partition bound",
								part.name, tf.name);
					break;
				}
			case AT_SetLogged:
			case AT_SetUnLogged:
			case AT_SetAccessMethod:
			case AT_SetTableSpace:
				if (is_existing(&tf) && !alter_is_no_op(&tf, cmd))
					add_finding(st, "table-rewrite", MT_SEV_ERROR, &tf,
								AlterTableGetLockLevel(list_make1(cmd)), true, tf.rows,
								"Create a new table with the wanted properties, copy the rows in batches (migration_tools.run_batched()) while a trigger keeps it current, then swap the names in one short transaction; or use pg_repack.",
								"%s copies the whole of %s under an ACCESS EXCLUSIVE lock",
								cmd->subtype == AT_SetLogged ? "SET LOGGED" :
								cmd->subtype == AT_SetUnLogged ? "SET UNLOGGED" :
								cmd->subtype == AT_SetAccessMethod ? "SET ACCESS METHOD" :
								"SET TABLESPACE",
								tf.name);
				break;
			case AT_DetachPartition:
				{
					PartitionCmd *pc = (PartitionCmd *) cmd->def;

					if (pc == NULL || !IsA(pc, PartitionCmd) || pc->concurrent ||
						!is_existing(&tf))
						break;
					add_finding(st, "detach-partition-non-concurrently", MT_SEV_WARNING, &tf,
								AccessExclusiveLock, false, -1,
								"Use ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+, outside a transaction block): it takes only SHARE UPDATE EXCLUSIVE on the parent.",
								"detaching a partition from %s takes an ACCESS EXCLUSIVE lock on the partitioned table",
								tf.name);
					break;
				}
			default:
				break;
		}
	}
}

/*
 * CREATE TABLE: remember the new table; style rules on its columns.
 */
static void
lint_create_table(LintState *st, CreateStmt *stmt)
{
	TableFacts	tf;
	ListCell   *lc;
	List	   *pk_keys = NIL;
	Oid			relid = script_lookup_relation(st, stmt->relation);

	/* A CREATE TABLE IF NOT EXISTS of an existing table creates nothing. */
	if (!OidIsValid(relid))
		remember_rangevar(st, &st->created, stmt->relation);
	table_facts(st, stmt->relation, &tf);

	if (stmt->partbound && list_length(stmt->inhRelations) == 1 &&
		IsA(linitial(stmt->inhRelations), RangeVar))
	{
		TableFacts	parent;

		table_facts(st, (RangeVar *) linitial(stmt->inhRelations), &parent);
		lint_default_partition_scan(st, &parent, stmt->partbound,
									"creating a partition of");
	}

	foreach(lc, stmt->constraints)
	{
		Constraint *c = (Constraint *) lfirst(lc);

		if (IsA(c, Constraint) && c->contype == CONSTR_PRIMARY)
			pk_keys = list_concat(pk_keys, c->keys);
	}
	foreach(lc, stmt->tableElts)
	{
		ColumnDef  *col = (ColumnDef *) lfirst(lc);

		if (IsA(col, ColumnDef) && col->colname)
			lint_column_type(st, &tf, col->colname, col->typeName,
							 col->constraints, pk_keys);
	}
}

/* CREATE INDEX: remember the index; concurrent builds on existing tables. */
static void
lint_index(LintState *st, IndexStmt *stmt)
{
	TableFacts	tf;

	table_facts(st, stmt->relation, &tf);
	/* IF NOT EXISTS of an index that exists builds nothing */
	if (stmt->if_not_exists && stmt->idxname && OidIsValid(tf.relid) &&
		OidIsValid(get_relname_relid(stmt->idxname, get_rel_namespace(tf.relid))))
		return;
	if (stmt->idxname)
	{
		RangeVar   *irv = makeRangeVar(stmt->relation ? stmt->relation->schemaname : NULL,
									   stmt->idxname, -1);

		remember_rangevar(st, &st->created, irv);
	}
	/* the server cannot build an index on a partitioned table concurrently */
	if (stmt->concurrent && tf.relkind == RELKIND_PARTITIONED_TABLE &&
		stmt->relation && stmt->relation->inh)
	{
		add_finding(st, "create-index-non-concurrently", MT_SEV_ERROR, &tf, ShareUpdateExclusiveLock, false, tf.rows,
					"CREATE INDEX ON ONLY the parent (invalid, instant), CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX parent_index ATTACH PARTITION each one.",
					"CREATE INDEX CONCURRENTLY fails on partitioned table %s: a partitioned table cannot be indexed concurrently",
					tf.name);
		return;
	}
	if (stmt->concurrent || !is_existing(&tf))
		return;
	/* ON ONLY a partitioned table: an empty, invalid index, built at once */
	if (tf.relkind == RELKIND_PARTITIONED_TABLE && stmt->relation &&
		!stmt->relation->inh)
		return;
	if (tf.relkind == RELKIND_PARTITIONED_TABLE)
		add_finding(st, "create-index-non-concurrently", MT_SEV_ERROR, &tf, ShareLock, false, tf.rows,
					"A partitioned table cannot be indexed concurrently: CREATE INDEX ON ONLY the parent (invalid, instant), CREATE INDEX CONCURRENTLY on each partition, then ALTER INDEX parent_index ATTACH PARTITION each one.",
					"CREATE INDEX on partitioned table %s blocks writes to every partition while the indexes build",
					tf.name);
	else
		add_finding(st, "create-index-non-concurrently", MT_SEV_ERROR, &tf, ShareLock, false, tf.rows,
					"Use CREATE INDEX CONCURRENTLY, outside a transaction block (apply() schedules it to run after commit).",
					"CREATE INDEX on existing table %s blocks writes while the index builds",
					tf.name);
}

/* DROP TABLE and DROP INDEX of relations the script did not create. */
static void
lint_drop(LintState *st, DropStmt *stmt)
{
	ListCell   *lc;

	if (stmt->removeType != OBJECT_TABLE && stmt->removeType != OBJECT_INDEX)
		return;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);
		RangeVar   *rv;
		TableFacts	tf;
		ListCell   *lc2;
		bool		ok = IsA(obj, List) && list_length((List *) obj) <= 3;

		if (ok)
			foreach(lc2, (List *) obj)
				if (!IsA(lfirst(lc2), String))
				ok = false;
		if (!ok)
			continue;
		rv = makeRangeVarFromNameList((List *) obj);
		table_facts(st, rv, &tf);
		/* from here on, the name is free for a new relation */
		remember_gone(st, tf.relid);
		if (tf.is_new)
			continue;
		if (stmt->removeType == OBJECT_TABLE)
			add_finding(st, "drop-table", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, tf.rows,
						"Deploy application code that no longer uses the table first; consider renaming it away for a release before dropping it.",
						"dropping table %s loses its data and breaks code that still uses it",
						tf.name);
		else if (!stmt->concurrent)
			add_finding(st, "drop-index-non-concurrently", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, -1,
						"Use DROP INDEX CONCURRENTLY, outside a transaction block (apply() schedules it to run after commit).",
						"DROP INDEX %s takes an ACCESS EXCLUSIVE lock on its table, blocking reads and writes while it waits for running queries",
						tf.name);
	}
}

/* Renaming a column or a table that running code uses. */
static void
lint_rename(LintState *st, RenameStmt *stmt)
{
	TableFacts	tf;

	if (stmt->relation == NULL)
		return;
	if (stmt->renameType == OBJECT_COLUMN && stmt->relationType == OBJECT_TABLE)
	{
		table_facts(st, stmt->relation, &tf);
		if (is_existing(&tf) && stmt->subname)
			add_finding(st, "rename-column", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, -1,
						"Expand and contract: add the new column, write both, backfill, move readers, then drop the old one; or give old code a view with the old name.",
						"renaming column \"%s\" of %s breaks running code that uses the old name",
						stmt->subname, tf.name);
	}
	else if (stmt->renameType == OBJECT_TABLE)
	{
		table_facts(st, stmt->relation, &tf);
		/* the old name is free for a new table from here on */
		remember_gone(st, tf.relid);
		if (is_existing(&tf))
			add_finding(st, "rename-table", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, -1,
						"Rename in steps: rename the table and create a view with the old name for the code still running, then drop the view once nothing uses it.",
						"renaming table %s breaks running code that uses the old name",
						tf.name);
		/* a new or emptied table stays so under its new name */
		if (stmt->newname && (tf.is_new || tf.emptied))
		{
			RangeVar   *nrv = makeRangeVar(stmt->relation->schemaname,
										   stmt->newname, -1);

			remember_rangevar(st, tf.is_new ? &st->created : &st->emptied_names, nrv);
		}
	}
}

/* TRUNCATE: a finding for existing tables; the tables are empty afterwards. */
static void
lint_truncate(LintState *st, TruncateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = (RangeVar *) lfirst(lc);
		TableFacts	tf;

		table_facts(st, rv, &tf);
		if (!tf.is_new && !tf.emptied)
			add_finding(st, "truncate", MT_SEV_WARNING, &tf, AccessExclusiveLock, false, tf.rows,
						"Make sure losing every row is intended; to delete part of the rows use batched deletes (migration_tools.run_batched()).",
						"TRUNCATE %s removes every row and takes an ACCESS EXCLUSIVE lock",
						tf.name);
		remember_rangevar(st, &st->emptied_names, rv);
	}
}

/* VACUUM FULL of one table or of the whole database. */
static void
lint_vacuum(LintState *st, VacuumStmt *stmt)
{
	ListCell   *lc;

	if (!stmt->is_vacuumcmd || !mt_option_is_true(stmt->options, "full"))
		return;
	if (stmt->rels == NIL)
	{
		add_finding(st, "vacuum-full", MT_SEV_ERROR, NULL, AccessExclusiveLock, true, -1,
					"Use plain VACUUM, or an online repack tool such as pg_repack or pg_squeeze.",
					"VACUUM FULL rewrites every table of the database, each under an ACCESS EXCLUSIVE lock");
		return;
	}
	foreach(lc, stmt->rels)
	{
		VacuumRelation *vr = (VacuumRelation *) lfirst(lc);
		TableFacts	tf;

		if (!IsA(vr, VacuumRelation))
			continue;
		table_facts(st, vr->relation, &tf);
		if (is_existing(&tf))
			add_finding(st, "vacuum-full", MT_SEV_ERROR, &tf, AccessExclusiveLock, true, tf.rows,
						"Use plain VACUUM, or an online repack tool such as pg_repack or pg_squeeze.",
						"VACUUM FULL rewrites %s under an ACCESS EXCLUSIVE lock",
						tf.name);
	}
}

/* REINDEX without CONCURRENTLY. */
static void
lint_reindex(LintState *st, ReindexStmt *stmt)
{
	TableFacts	tf;

	if (mt_option_is_true(stmt->params, "concurrently"))
		return;
	if (stmt->relation)
	{
		table_facts(st, stmt->relation, &tf);
		if (!is_existing(&tf))
			return;
		add_finding(st, "reindex-non-concurrently", MT_SEV_ERROR, &tf,
					stmt->kind == REINDEX_OBJECT_INDEX ? AccessExclusiveLock : ShareLock,
					false, tf.rows,
					"Use REINDEX ... CONCURRENTLY (PostgreSQL 12+), outside a transaction block.",
					"REINDEX %s blocks writes to the table, and reads that use the index, while it rebuilds",
					tf.name);
	}
	else
		add_finding(st, "reindex-non-concurrently", MT_SEV_ERROR, NULL, ShareLock, false, -1,
					"Use REINDEX ... CONCURRENTLY (PostgreSQL 12+), outside a transaction block.",
					"REINDEX %s blocks writes to each table while its indexes rebuild",
					stmt->kind == REINDEX_OBJECT_SCHEMA ? "SCHEMA" :
					stmt->kind == REINDEX_OBJECT_SYSTEM ? "SYSTEM" : "DATABASE");
}

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
	table_facts(st, rv, &tf);
	st->touches_existing = touched;
	if (!OidIsValid(tf.relid) && !tf.is_new)
		return -1;
	rows = estimate_dml_rows(&tf, q->whereClause, loop->ns);
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
static void
lint_dml(LintState *st, RangeVar *relation, Node *where, bool is_update)
{
	TableFacts	tf;
	double		rows;
	double		iterations = -1;
	double		per_iteration = -1;
	const char *loop_note = "";

	table_facts(st, relation, &tf);
	if (!is_existing(&tf))
		return;
	rows = estimate_dml_rows(&tf, where, st->do_ns);
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

		add_finding(st, "unbatched-update", MT_SEV_WARNING, &tf, RowExclusiveLock, false, rows,
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

		add_finding(st, "unbatched-delete", MT_SEV_WARNING, &tf, RowExclusiveLock, false, rows,
					hint,
					"DELETE of about %.0f rows of %s%s in one transaction holds their row locks until commit and bloats the table",
					rows, tf.name, loop_note);
	}
}

/*
 * UPDATE and DELETE in the WITH clause of a statement run like top-level
 * ones: the same unbatched-update and unbatched-delete rules.
 */
static void
lint_cte_dml(LintState *st, WithClause *with)
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
			lint_cte_dml(st, ((UpdateStmt *) q)->withClause);
			lint_dml(st, ((UpdateStmt *) q)->relation,
					 ((UpdateStmt *) q)->whereClause, true);
		}
		else if (IsA(q, DeleteStmt))
		{
			lint_cte_dml(st, ((DeleteStmt *) q)->withClause);
			lint_dml(st, ((DeleteStmt *) q)->relation,
					 ((DeleteStmt *) q)->whereClause, false);
		}
		else if (IsA(q, SelectStmt))
			lint_cte_dml(st, ((SelectStmt *) q)->withClause);
		else if (IsA(q, InsertStmt))
			lint_cte_dml(st, ((InsertStmt *) q)->withClause);
	}
}

/*
 * Does the statement wait for the snapshots of older transactions (a
 * concurrent index build, drop or reindex, DETACH PARTITION CONCURRENTLY)?
 * Those waits are lock waits too: under a short lock_timeout they fail as
 * soon as any transaction older than the timeout is open, so
 * require-lock-timeout must not ask for one.
 */
static bool
waits_for_old_snapshots(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			return ((IndexStmt *) stmt)->concurrent;
		case T_DropStmt:
			return ((DropStmt *) stmt)->concurrent;
		case T_ReindexStmt:
			return mt_option_is_true(((ReindexStmt *) stmt)->params,
									 "concurrently");
		case T_AlterTableStmt:
			return mt_detaches_concurrently((AlterTableStmt *) stmt);
		default:
			return false;
	}
}

/*
 * Is a lock_timeout value zero (which turns the timeout off)?  The value
 * is an A_Const integer or string such as 0, '0', '0s' or '0ms'.
 */
static bool
is_zero_setting(Node *arg)
{
	A_Const    *c;

	if (arg && IsA(arg, TypeCast))
		arg = ((TypeCast *) arg)->arg;
	if (arg == NULL || !IsA(arg, A_Const))
		return false;
	c = (A_Const *) arg;
	if (c->isnull)
		return true;
	if (IsA(&c->val, Integer))
		return intVal(&c->val) == 0;
	if (IsA(&c->val, Float))
		return strtod(castNode(Float, &c->val)->fval, NULL) == 0;
	if (IsA(&c->val, String))
	{
		const char *v = strVal(&c->val);
		char	   *end;
		double		d = strtod(v, &end);

		return end != v && d == 0;
	}
	return false;
}

/*
 * SELECT set_config('lock_timeout', '2s', ...) sets the timeout as well
 * as SET does (some migration tools write it that way).
 */
static void
note_set_config_lock_timeout(LintState *st, SelectStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->targetList)
	{
		ResTarget  *rt = (ResTarget *) lfirst(lc);
		FuncCall   *fc;
		Node	   *name;

		if (!IsA(rt, ResTarget) || rt->val == NULL || !IsA(rt->val, FuncCall))
			continue;
		fc = (FuncCall *) rt->val;
		if (list_length(fc->args) != 3 ||
			strcmp(strVal(llast(fc->funcname)), "set_config") != 0)
			continue;
		name = linitial(fc->args);
		if (IsA(name, A_Const) && !((A_Const *) name)->isnull &&
			IsA(&((A_Const *) name)->val, String) &&
			strcmp(strVal(&((A_Const *) name)->val), "lock_timeout") == 0)
			st->lock_timeout_set = !is_zero_setting(lsecond(fc->args));
	}
}

static void lint_statement(LintState *st, Node *stmt);

/*
 * A DO block: lint the statements it runs (see mt_do_block_analyze()) as if
 * they stood in the script, under the DO's statement number, each finding
 * saying where in the block it is; report an EXECUTE of text built at run
 * time, and a block that could not be read.
 */
static void
lint_do_block(LintState *st, DoStmt *stmt)
{
	MtDoBlock  *block;
	ListCell   *lc;
	MtStatementInfo *outer = st->info;

	if (st->in_do_block)
		return;
	block = mt_do_block_analyze(stmt, st->script, outer->statement,
								st->script != NULL);
	/* a COMMIT in the block needs the DO to run outside a transaction block */
	if (block->has_commit && st->in_xact)
		add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, NULL, NoLock, false, -1,
					"Run the DO block outside BEGIN ... COMMIT, on its own, or leave the COMMIT out of it.",
					"the COMMIT or ROLLBACK in the DO block fails inside the transaction block opened by statement %d",
					st->xact_statement);
	if (block->not_checked)
		add_finding(st, "do-block-not-checked", MT_SEV_INFO, NULL, NoLock, false, -1,
					"Review the block by hand, or write its statements out in the script.",
					"the statements of the DO block were not checked: %s",
					block->not_checked);

	st->in_do_block = true;
	foreach(lc, block->statements)
	{
		MtDoStatement *ds = (MtDoStatement *) lfirst(lc);
		MtStatementInfo *info;

		/* COMMIT in a DO block ends the block's own transaction only */
		if (IsA(ds->raw->stmt, TransactionStmt))
			continue;
		info = mt_describe_statement(ds->sql, ds->raw, outer->statement);
		/* findings point at the DO statement of the script */
		info->statement = outer->statement;
		info->location = outer->location;
		st->info = info;
		st->do_stmt = ds;
		st->do_ns = ds->ns;
		if (ds->lineno <= 0)
			st->do_where = pstrdup("in the DO block");
		else
			st->do_where = psprintf("%s line %d of the DO block%s",
									ds->from_execute ? "EXECUTE at" : "at",
									ds->lineno,
									ds->in_loop ? ", in a loop" : "");
		lint_statement(st, ds->raw->stmt);
	}
	st->info = outer;
	st->do_stmt = NULL;
	st->do_ns = NULL;
	st->do_where = NULL;

	foreach(lc, block->unchecked)
	{
		MtDoUnchecked *u = (MtDoUnchecked *) lfirst(lc);

		if (u->reason)
			add_finding(st, "dynamic-sql", MT_SEV_WARNING, NULL, NoLock, false, -1,
						"Fix the statement text.",
						"the EXECUTE at line %d of the DO block runs a string that is not valid SQL (%s): it fails when it runs",
						u->lineno, u->reason);
		else
			add_finding(st, "dynamic-sql", MT_SEV_WARNING, NULL, NoLock, false, -1,
						"Write the statements out, in the script or as constant strings, so that they are linted and apply() knows the locks they take; otherwise review the generated SQL by hand.",
						"the EXECUTE at line %d of the DO block%s runs SQL built at run time: the linter cannot check it, and apply() cannot know the locks it takes",
						u->lineno, u->in_loop ? " (in a loop)" : "");
	}
	st->in_do_block = false;
}

/*
 * Rules of one statement; the statement's info is in st->info.
 */
static void
lint_statement(LintState *st, Node *stmt)
{
	MtStatementInfo *info = st->info;

	check_stack_depth();
	st->touches_existing = false;

	if (info->needs_top_level && (st->in_xact || st->in_do_block))
	{
		TableFacts	tf;
		ListCell   *lc;

		/* name the first existing relation it works on, if any */
		memset(&tf, 0, sizeof(tf));
		foreach(lc, info->locks)
		{
			MtLockTarget *t = (MtLockTarget *) lfirst(lc);

			if (OidIsValid(t->relid))
			{
				tf.name = mt_relation_display_name(t->relid);
				break;
			}
		}
		if (st->in_do_block)
			add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, &tf, NoLock, false, -1,
						"Run this statement on its own, outside the DO block (apply() schedules such statements to run after commit).",
						"%s cannot run inside a DO block",
						info->command_tag);
		else
			add_finding(st, "concurrently-in-transaction", MT_SEV_ERROR, &tf, NoLock, false, -1,
						"Run this statement outside BEGIN ... COMMIT, on its own (apply() schedules such statements to run after commit).",
						"%s cannot run inside the transaction block opened by statement %d",
						info->command_tag, st->xact_statement);
	}

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			lint_alter_table(st, (AlterTableStmt *) stmt);
			break;
		case T_CreateStmt:
			lint_create_table(st, (CreateStmt *) stmt);
			break;
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *s = (CreateTableAsStmt *) stmt;

				if (s->into && s->into->rel &&
					!OidIsValid(script_lookup_relation(st, s->into->rel)))
					remember_rangevar(st, &st->created, s->into->rel);
				break;
			}
		case T_ExplainStmt:
			{
				ExplainStmt *s = (ExplainStmt *) stmt;

				/* EXPLAIN ANALYZE runs the statement */
				if (s->query && mt_option_is_true(s->options, "analyze"))
					lint_statement(st, s->query);
				break;
			}
		case T_DoStmt:
			lint_do_block(st, (DoStmt *) stmt);
			break;
		case T_IndexStmt:
			lint_index(st, (IndexStmt *) stmt);
			break;
		case T_DropStmt:
			lint_drop(st, (DropStmt *) stmt);
			break;
		case T_RenameStmt:
			lint_rename(st, (RenameStmt *) stmt);
			break;
		case T_TruncateStmt:
			lint_truncate(st, (TruncateStmt *) stmt);
			break;
		case T_VacuumStmt:
			lint_vacuum(st, (VacuumStmt *) stmt);
			break;
		case T_ClusterStmt:
			{
				ClusterStmt *s = (ClusterStmt *) stmt;
				TableFacts	tf;

				if (s->relation == NULL)
				{
					add_finding(st, "cluster", MT_SEV_ERROR, NULL, AccessExclusiveLock, true, -1,
								"Use an online repack tool such as pg_repack or pg_squeeze.",
								"CLUSTER rewrites every previously clustered table of the database, each under an ACCESS EXCLUSIVE lock");
					break;
				}
				table_facts(st, s->relation, &tf);
				if (is_existing(&tf))
					add_finding(st, "cluster", MT_SEV_ERROR, &tf, AccessExclusiveLock, true, tf.rows,
								"Use an online repack tool such as pg_repack or pg_squeeze.",
								"CLUSTER rewrites %s under an ACCESS EXCLUSIVE lock, blocking reads and writes",
								tf.name);
				break;
			}
		case T_RefreshMatViewStmt:
			{
				RefreshMatViewStmt *s = (RefreshMatViewStmt *) stmt;
				TableFacts	tf;

				table_facts(st, s->relation, &tf);
				if (!s->concurrent && !s->skipData && is_existing(&tf))
					add_finding(st, "refresh-matview-non-concurrently", MT_SEV_ERROR, &tf, AccessExclusiveLock, false, tf.rows,
								"Create a unique index on the materialized view and use REFRESH MATERIALIZED VIEW CONCURRENTLY: readers keep the old contents meanwhile.",
								"REFRESH MATERIALIZED VIEW %s blocks every read of it until the query finishes",
								tf.name);
				break;
			}
		case T_LockStmt:
			{
				LockStmt   *s = (LockStmt *) stmt;
				ListCell   *lc;

				foreach(lc, s->relations)
				{
					TableFacts	tf;

					table_facts(st, (RangeVar *) lfirst(lc), &tf);
					if (is_existing(&tf))
						add_finding(st, "lock-table", MT_SEV_WARNING, &tf, s->mode, false, -1,
									"Avoid explicit locks in migrations; if one is needed, SET lock_timeout first so a long wait fails instead of blocking every other session queued behind it.",
									"LOCK TABLE %s IN %s mode is held until the end of the transaction",
									tf.name, mt_lint_lock_mode_name(s->mode) ? mt_lint_lock_mode_name(s->mode) : "an unrecognized");
				}
				break;
			}
		case T_UpdateStmt:
			{
				UpdateStmt *s = (UpdateStmt *) stmt;

				lint_cte_dml(st, s->withClause);
				lint_dml(st, s->relation, s->whereClause, true);
				break;
			}
		case T_DeleteStmt:
			{
				DeleteStmt *s = (DeleteStmt *) stmt;

				lint_cte_dml(st, s->withClause);
				lint_dml(st, s->relation, s->whereClause, false);
				break;
			}
		case T_ReindexStmt:
			lint_reindex(st, (ReindexStmt *) stmt);
			break;
		case T_AlterDomainStmt:
			{
				AlterDomainStmt *s = (AlterDomainStmt *) stmt;
				Constraint *c = (Constraint *) s->def;

				if (s->subtype == 'C' && c && IsA(c, Constraint) &&
					c->contype == CONSTR_CHECK && !c->skip_validation &&
					domain_column_count(s->typeName) != 0)
					add_finding(st, "domain-check-constraint", MT_SEV_WARNING, NULL, ShareLock, false, -1,
								"Add the domain constraint with NOT VALID, then ALTER DOMAIN ... VALIDATE CONSTRAINT separately.",
								"adding a validated CHECK constraint to domain %s scans every column of that domain while blocking writes to their tables",
								NameListToString(s->typeName));
				/* SET NOT NULL (or ADD ... NOT NULL) checks every column too */
				else if ((s->subtype == 'O' ||
						  (s->subtype == 'C' && c && IsA(c, Constraint) &&
						   c->contype == CONSTR_NOTNULL)) &&
						 domain_column_count(s->typeName) != 0)
					add_finding(st, "domain-check-constraint", MT_SEV_WARNING, NULL, ShareLock, false, -1,
								"Add CHECK (VALUE IS NOT NULL) to the domain with NOT VALID, then ALTER DOMAIN ... VALIDATE CONSTRAINT separately.",
								"setting NOT NULL on domain %s scans every column of that domain while blocking writes to their tables",
								NameListToString(s->typeName));
				break;
			}
		case T_TransactionStmt:
			{
				TransactionStmt *s = (TransactionStmt *) stmt;

				switch (s->kind)
				{
					case TRANS_STMT_BEGIN:
					case TRANS_STMT_START:
						if (!st->in_xact)
						{
							release_held_locks(st);
							st->in_xact = true;
							st->xact_statement = info->statement;
							st->xact_location = info->location;
						}
						break;
					case TRANS_STMT_COMMIT:
					case TRANS_STMT_ROLLBACK:
					case TRANS_STMT_PREPARE:
						if (s->kind == TRANS_STMT_PREPARE || !s->chain)
							st->in_xact = false;
						release_held_locks(st);
						/* a SET LOCAL ends with the transaction block */
						if (st->lock_timeout_local)
						{
							st->lock_timeout_set = false;
							st->lock_timeout_local = false;
						}
						break;
					default:
						break;
				}
				break;
			}
		case T_SelectStmt:
			{
				SelectStmt *s = (SelectStmt *) stmt;

				note_set_config_lock_timeout(st, s);
				/* SELECT ... INTO creates a table, like CREATE TABLE AS */
				if (s->intoClause && s->intoClause->rel &&
					!OidIsValid(script_lookup_relation(st, s->intoClause->rel)))
					remember_rangevar(st, &st->created, s->intoClause->rel);
				lint_cte_dml(st, s->withClause);
				break;
			}
		case T_InsertStmt:
			lint_cte_dml(st, ((InsertStmt *) stmt)->withClause);
			break;
		case T_VariableSetStmt:
			{
				VariableSetStmt *s = (VariableSetStmt *) stmt;

				if (s->kind == VAR_RESET_ALL)
				{
					st->lock_timeout_set = false;
					st->lock_timeout_local = false;
				}
				if (s->name == NULL || strcmp(s->name, "lock_timeout") != 0)
					break;
				if (s->kind == VAR_SET_VALUE && s->args != NIL)
				{
					/*
					 * SET LOCAL outside BEGIN counts: migration tools run
					 * each file in a transaction of their own.  Inside BEGIN
					 * it ends with the block.
					 */
					st->lock_timeout_set = !is_zero_setting(linitial(s->args));
					st->lock_timeout_local = s->is_local && st->in_xact;
				}
				else if (s->kind == VAR_SET_DEFAULT || s->kind == VAR_RESET)
				{
					st->lock_timeout_set = false;
					st->lock_timeout_local = false;
				}
				break;
			}
		default:
			break;
	}

	/*
	 * After the statement's own rules: the first DDL on an existing relation,
	 * or the first statement that queues for a lock blocking writes on one
	 * (TRUNCATE, LOCK, REINDEX, VACUUM FULL, CLUSTER ...).
	 */
	if (!st->lock_timeout_set && !st->lock_timeout_reported &&
		!waits_for_old_snapshots(stmt))
	{
		ListCell   *lc;
		bool		strong = false;
		bool		locks_existing = info->is_ddl && st->touches_existing;

		foreach(lc, info->locks)
		{
			MtLockTarget *t = (MtLockTarget *) lfirst(lc);

			if (t->mode >= ShareLock)
				strong = true;
			if (OidIsValid(t->relid) && (info->is_ddl || t->mode >= ShareLock))
				locks_existing = true;
		}
		if (strong && st->touches_existing)
			locks_existing = true;
		if (locks_existing)
		{
			st->lock_timeout_reported = true;
			add_finding(st, "require-lock-timeout", MT_SEV_WARNING, NULL, NoLock, false, -1,
						"Start the script with SET lock_timeout = '2s' (or run it through migration_tools.apply(), which sets a short lock_timeout and retries).",
						"%s takes locks on existing tables but no lock_timeout was set before it: while it waits for a lock, every session queues behind it",
						info->command_tag);
		}
	}

	/* what it locked stays locked until the transaction ends */
	if (!IsA(stmt, TransactionStmt))
		remember_held_locks(st, stmt);
}

/* What lint_script_statement() works with. */
typedef struct LintScriptState
{
	LintState  *st;
	MemoryContext stmtcxt;		/* reset after each statement */
} LintScriptState;

/* mt_script_foreach() callback of mt_lint_script(). */
static void
lint_script_statement(const char *sql, RawStmt *raw, int number, void *arg)
{
	LintScriptState *ls = (LintScriptState *) arg;
	LintState  *st = ls->st;
	MemoryContext oldcxt = MemoryContextSwitchTo(ls->stmtcxt);

	st->info = mt_describe_statement(sql, raw, number);
	st->script = sql;
	lint_statement(st, raw->stmt);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(ls->stmtcxt);
	st->info = NULL;
}

/*
 * Lint a script; see lint.h.
 */
List *
mt_lint_script(const char *sql)
{
	MemoryContext scriptcxt;
	MemoryContext oldcxt;
	LintScriptState ls;
	LintState  *st;
	List	   *findings;

	scriptcxt = AllocSetContextCreate(CurrentMemoryContext,
									  "migration_tools lint",
									  ALLOCSET_DEFAULT_SIZES);
	ls.stmtcxt = AllocSetContextCreate(scriptcxt,
									   "migration_tools lint statement",
									   ALLOCSET_DEFAULT_SIZES);

	st = (LintState *) MemoryContextAllocZero(scriptcxt, sizeof(LintState));
	st->result_cxt = CurrentMemoryContext;
	st->state_cxt = scriptcxt;
	ls.st = st;

	oldcxt = MemoryContextSwitchTo(scriptcxt);
	mt_script_foreach(sql, lint_script_statement, &ls);

	if (st->in_xact)
	{
		MtStatementInfo fake;

		memset(&fake, 0, sizeof(fake));
		fake.statement = st->xact_statement;
		fake.location = st->xact_location;
		st->info = &fake;
		add_finding(st, "uncommitted-transaction", MT_SEV_ERROR, NULL, NoLock, false, -1,
					"End the script with COMMIT, or leave out BEGIN: apply() already runs the script in one transaction.",
					"the transaction opened by statement %d is never committed: its locks are held until the session ends",
					st->xact_statement);
	}

	findings = st->findings;
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(scriptcxt);
	return findings;
}

/*
 * Lint one utility statement on its own, as the guard sees it; findings
 * are allocated in the current memory context.
 */
List *
mt_lint_utility(const char *sql, RawStmt *raw)
{
	LintState	st;

	memset(&st, 0, sizeof(st));
	st.result_cxt = CurrentMemoryContext;
	st.state_cxt = CurrentMemoryContext;
	st.info = mt_describe_statement(sql, raw, 1);
	lint_statement(&st, raw->stmt);
	return st.findings;
}

/*
 * SQL: lint(sql text): one row per finding.
 */
PG_FUNCTION_INFO_V1(mt_lint);

Datum
mt_lint(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext workcxt;
	MemoryContext oldcxt;
	List	   *findings;
	ListCell   *lc;

	mt_init_materialized_srf(fcinfo);

	workcxt = AllocSetContextCreate(CurrentMemoryContext,
									"migration_tools lint results",
									ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(workcxt);
	findings = mt_lint_script(sql);

	foreach(lc, findings)
	{
		MtLintFinding *f = (MtLintFinding *) lfirst(lc);
		Datum		values[10];
		bool		nulls[10];

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(f->statement);
		values[1] = CStringGetTextDatum(f->rule);
		values[2] = CStringGetTextDatum(f->severity);
		values[3] = CStringGetTextDatum(f->message);
		if (f->hint)
			values[4] = CStringGetTextDatum(f->hint);
		else
			nulls[4] = true;
		if (f->relation)
			values[5] = CStringGetTextDatum(f->relation);
		else
			nulls[5] = true;
		if (f->lock_mode)
			values[6] = CStringGetTextDatum(f->lock_mode);
		else
			nulls[6] = true;
		values[7] = BoolGetDatum(f->rewrites);
		if (f->estimated_rows >= 0)
			values[8] = Int64GetDatum((int64) Min(f->estimated_rows, (double) PG_INT64_MAX));
		else
			nulls[8] = true;
		values[9] = Int32GetDatum(f->location);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(workcxt);
	return (Datum) 0;
}

/*
 * SQL: lint_rules(): every rule id with its severity and what it catches.
 */
PG_FUNCTION_INFO_V1(mt_lint_rules);

Datum
mt_lint_rules(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	mt_init_materialized_srf(fcinfo);
	for (i = 0; i < lengthof(lint_rule_list); i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(lint_rule_list[i].rule);
		values[1] = CStringGetTextDatum(lint_rule_list[i].severity);
		values[2] = CStringGetTextDatum(lint_rule_list[i].summary);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
