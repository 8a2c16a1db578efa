/*-------------------------------------------------------------------------
 *
 * lint_rules_table.c
 *	  The rules of CREATE TABLE and ALTER TABLE, subcommand by subcommand:
 *	  added columns and constraints, SET NOT NULL, column type changes,
 *	  partitions, table rewrites, and the style rules on column types.
 *
 * The CHECK constraints that the script adds and validates are remembered
 * here (st->nn_checks), since a validated CHECK (col IS NOT NULL) lets SET
 * NOT NULL and ADD PRIMARY KEY USING INDEX skip their scan, and a
 * validated CHECK lets ATTACH PARTITION skip its own.
 *
 * IDENTIFICATION
 *	  src/lint_rules_table.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "commands/tablespace.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "lint_facts.h"
#include "lint_rules_table.h"

/* A CHECK constraint seen in the script. */
typedef struct NotNullCheck
{
	char	   *relname;		/* as written in the script */
	char	   *column;			/* of a CHECK (col IS NOT NULL), else NULL */
	char	   *conname;		/* NULL if unnamed */
	bool		validated;
	Oid			relid;			/* a catalog CHECK the script validated, else
								 * InvalidOid */
} NotNullCheck;

static const char *HINT_EXPAND_CONTRACT =
"Expand and contract: add a new column, backfill it in batches with migration_tools.backfill(), switch the application to it, then drop the old column.";

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
		mt_add_finding(st, "json-column", MT_SEV_INFO, tf, NoLock, false, -1,
					   "Use jsonb: it can be indexed and compared, and it has equality.",
					   "column \"%s\" has type json", colname);
	if (is_serial_type(t))
		mt_add_finding(st, "prefer-identity", MT_SEV_INFO, tf, NoLock, false, -1,
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
			mt_add_finding(st, "prefer-bigint", MT_SEV_INFO, tf, NoLock, false, -1,
						   "Use bigint for keys: changing the type of a full 32-bit key later rewrites the table and every table that references it.",
						   "key column \"%s\" has a 32-bit or 16-bit integer type", colname);
	}
	if ((strcmp(t, "varchar") == 0 && tn->typmods != NIL) ||
		strcmp(t, "bpchar") == 0)
		mt_add_finding(st, "prefer-text", MT_SEV_INFO, tf, NoLock, false, -1,
					   "Use text, with a CHECK (length(col) <= n) constraint if a limit is needed: a CHECK can be changed later with NOT VALID and VALIDATE, a length modifier cannot be lowered without a rewrite.",
					   "column \"%s\" has a length-limited character type", colname);
	if (strcmp(t, "timestamp") == 0)
		mt_add_finding(st, "prefer-timestamptz", MT_SEV_INFO, tf, NoLock, false, -1,
					   "Use timestamptz (timestamp with time zone): it stores an absolute point in time; timestamp without time zone depends on the writer's time zone.",
					   "column \"%s\" has type timestamp without time zone", colname);
}

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
		/* a CHECK of an earlier migration, validated by this script */
		if (c->validated && OidIsValid(c->relid) &&
			strcmp(c->relname, rv->relname) == 0 &&
			mt_catalog_check_constraint(c->relid, c->conname, column))
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
		nc->relid = InvalidOid;
		st->nn_checks = lappend(st->nn_checks, nc);
	}
	MemoryContextSwitchTo(old);
}

/*
 * VALIDATE CONSTRAINT conname: a CHECK added by the script is validated
 * from now on; one added NOT VALID by an earlier migration (in the
 * catalog) is remembered as validated too, so that a later SET NOT NULL
 * or ATTACH PARTITION of the script knows the server skips its scan.
 */
static void
validate_not_null_check(LintState *st, const TableFacts *tf, RangeVar *rv,
						const char *conname)
{
	ListCell   *lc;
	bool		found = false;
	MemoryContext old;
	NotNullCheck *nc;

	if (conname == NULL || rv == NULL || rv->relname == NULL)
		return;
	foreach(lc, st->nn_checks)
	{
		NotNullCheck *c = (NotNullCheck *) lfirst(lc);

		if (c->conname && strcmp(c->conname, conname) == 0 &&
			strcmp(c->relname, rv->relname) == 0)
		{
			c->validated = true;
			found = true;
		}
	}
	if (found || !is_existing(tf) ||
		!mt_catalog_check_constraint(tf->relid, conname, NULL))
		return;
	old = MemoryContextSwitchTo(st->state_cxt);
	nc = (NotNullCheck *) palloc(sizeof(NotNullCheck));
	nc->relname = pstrdup(rv->relname);
	nc->column = NULL;
	nc->conname = pstrdup(conname);
	nc->validated = true;
	nc->relid = tf->relid;
	st->nn_checks = lappend(st->nn_checks, nc);
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
		mt_add_finding(st, "add-serial-column", MT_SEV_ERROR, tf, mode, true, tf->rows,
					   "Add the column without a default, attach a sequence default for new rows (ALTER COLUMN ... SET DEFAULT nextval(...)), backfill old rows in batches with migration_tools.backfill(), then add NOT NULL through a validated CHECK constraint.",
					   "adding %s column \"%s\" to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
					   ident ? "identity" : "serial", col->colname, tf->name);
	if (!is_serial_type(t) && col->typeName && gen == NULL && ident == NULL)
	{
		Oid			typid = LookupTypeNameOid(NULL, col->typeName, true);

		/* the server checks a constrained domain on every row: a rewrite */
		if (OidIsValid(typid) && get_typtype(typid) == TYPTYPE_DOMAIN &&
			DomainHasConstraints(typid))
			mt_add_finding(st, "table-rewrite", MT_SEV_ERROR, tf, mode, true, tf->rows,
						   "Add the column with the domain's base type, backfill it in batches, add the checks as NOT VALID constraints and validate them, then change the type to the domain.",
						   "adding column \"%s\" of a domain type with constraints to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
						   col->colname, tf->name);
	}
	/* a virtual one (18) is computed when read: nothing is written */
	if (gen && mt_generated_is_stored(gen))
		mt_add_finding(st, "add-stored-generated-column", MT_SEV_ERROR, tf, mode, true, tf->rows,
					   "Add a plain column, fill new rows with a trigger, backfill old rows with migration_tools.backfill(), or compute the value in a view or in queries.",
					   "adding stored generated column \"%s\" to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
					   col->colname, tf->name);
	/*
	 * A function that does not exist makes the statement fail, not rewrite:
	 * no finding about a rewrite then.
	 */
	if (def && def->raw_expr &&
		mt_expression_volatility(def->raw_expr) == PROVOLATILE_VOLATILE &&
		!mt_expression_calls_unknown_function(def->raw_expr))
		mt_add_finding(st, "add-column-volatile-default", MT_SEV_ERROR, tf, mode, true, tf->rows,
					   "Add the column without a default (or with a constant one), SET DEFAULT for new rows in a second statement, then backfill existing rows in batches with migration_tools.backfill().",
					   "adding column \"%s\" with a volatile default to existing table %s rewrites the table under an ACCESS EXCLUSIVE lock",
					   col->colname, tf->name);

	/*
	 * A foreign key on a new column is not checked when the column has no
	 * default (every row is NULL); with a non-NULL default the server
	 * validates it by scanning the table under the ACCESS EXCLUSIVE lock.
	 */
	if (find_constraint(col->constraints, CONSTR_FOREIGN) &&
		def && def->raw_expr && !is_null_constant(def->raw_expr))
		mt_add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
					   "Add the column without a default and without the foreign key, SET DEFAULT for new rows, backfill old rows in batches with migration_tools.backfill(), then add the foreign key NOT VALID and VALIDATE CONSTRAINT it in a separate transaction.",
					   "adding column \"%s\" with a default and a foreign key to existing table %s validates the key by scanning the whole table under an ACCESS EXCLUSIVE lock",
					   col->colname, tf->name);
	if ((col->is_not_null || find_constraint(col->constraints, CONSTR_NOTNULL)) &&
		(def == NULL || is_null_constant(def->raw_expr)) &&
		gen == NULL && ident == NULL && !is_serial_type(t))
		mt_add_finding(st, "add-column-not-null-no-default", MT_SEV_ERROR, tf, mode, false, tf->rows,
					   "Add the column with a constant DEFAULT (no rewrite since PostgreSQL 11), or add it nullable, backfill it, add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL.",
					   "adding NOT NULL column \"%s\" without a default to existing table %s fails as soon as the table has rows",
					   col->colname, tf->name);
	if (find_constraint(col->constraints, CONSTR_PRIMARY))
		mt_add_finding(st, "add-primary-key", MT_SEV_ERROR, tf, mode, false, tf->rows,
					   "Add the column first, backfill it, build the index with CREATE UNIQUE INDEX CONCURRENTLY, then ADD PRIMARY KEY USING INDEX.",
					   "adding primary key column \"%s\" to existing table %s builds an index under an ACCESS EXCLUSIVE lock",
					   col->colname, tf->name);
	if (find_constraint(col->constraints, CONSTR_UNIQUE))
		mt_add_finding(st, "add-unique-constraint", MT_SEV_ERROR, tf, mode, false, tf->rows,
					   "Add the column first, then CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... UNIQUE USING INDEX.",
					   "adding unique column \"%s\" to existing table %s builds an index under an ACCESS EXCLUSIVE lock",
					   col->colname, tf->name);

	/*
	 * A column CHECK is validated like ADD CONSTRAINT CHECK: the server scans
	 * every row under the ACCESS EXCLUSIVE lock of ADD COLUMN (a column
	 * constraint cannot be NOT VALID).
	 */
	if (find_constraint(col->constraints, CONSTR_CHECK))
		mt_add_finding(st, "add-check-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
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
		if (!notnull && !mt_catalog_has_not_null_check(tf->relid, colname) &&
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
					mt_add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
								   HINT_PARTITIONED_FK,
								   "adding a NOT VALID foreign key to partitioned table %s fails: PostgreSQL before 18 does not support NOT VALID foreign keys on partitioned tables",
								   tf->name);
				else if (!partitions_have_validated_fk(tf->relid, c))
					mt_add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
								   HINT_PARTITIONED_FK,
								   "adding a validated foreign key on partitioned table %s scans every partition while holding SHARE ROW EXCLUSIVE locks, blocking writes to it and to the referenced table",
								   tf->name);
				break;
#endif
			}
			if (!c->skip_validation)
			{
				TableFacts pk;

				mt_table_facts(st, c->pktable, &pk);
				mt_add_finding(st, "add-foreign-key-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
							   "Add the foreign key with NOT VALID (a short lock, no scan), then run ALTER TABLE ... VALIDATE CONSTRAINT in a separate transaction: it takes only a SHARE UPDATE EXCLUSIVE lock.",
							   "adding a validated foreign key on %s scans the table while holding SHARE ROW EXCLUSIVE locks on %s and %s, blocking writes to both",
							   tf->name, tf->name, pk.name ? pk.name : "the referenced table");
			}
			break;
		case CONSTR_CHECK:
			if (!c->skip_validation)
				mt_add_finding(st, "add-check-validated", MT_SEV_ERROR, tf, mode, false, tf->rows,
							   "Add the constraint with NOT VALID, then run ALTER TABLE ... VALIDATE CONSTRAINT in a separate transaction: it takes only a SHARE UPDATE EXCLUSIVE lock.",
							   "adding a validated CHECK constraint to %s scans the whole table under an ACCESS EXCLUSIVE lock",
							   tf->name);
			break;
		case CONSTR_UNIQUE:
			if (c->indexname == NULL)
				mt_add_finding(st, "add-unique-constraint", MT_SEV_ERROR, tf, mode, false, tf->rows,
							   "Build the index first with CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE ... ADD CONSTRAINT name UNIQUE USING INDEX index_name.",
							   "adding a UNIQUE constraint to %s builds its index while blocking writes",
							   tf->name);
			break;
		case CONSTR_PRIMARY:
			if (c->indexname == NULL)
				mt_add_finding(st, "add-primary-key", MT_SEV_ERROR, tf, mode, false, tf->rows,
							   "Build the index first with CREATE UNIQUE INDEX CONCURRENTLY, make the key columns NOT NULL through validated CHECK (col IS NOT NULL) constraints, then ALTER TABLE ... ADD CONSTRAINT name PRIMARY KEY USING INDEX index_name.",
							   "adding a PRIMARY KEY to %s builds its index under an ACCESS EXCLUSIVE lock",
							   tf->name);
			else
			{
				const char *col = pk_index_nullable_column(st, tf, rv, c->indexname);

				if (col)
					mt_add_finding(st, "add-primary-key", MT_SEV_ERROR, tf, mode, false, tf->rows,
								   "Make the key columns NOT NULL first: CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, SET NOT NULL; then ADD PRIMARY KEY USING INDEX.",
								   "adding a PRIMARY KEY using an index to %s scans the table under an ACCESS EXCLUSIVE lock to make column \"%s\" NOT NULL",
								   tf->name, col);
			}
			break;
		case CONSTR_EXCLUSION:
			mt_add_finding(st, "add-exclusion-constraint", MT_SEV_ERROR, tf, mode, false, tf->rows,
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

/* A DROP NOT NULL of a column of an existing table earlier in the script. */
typedef struct NotNullDropped
{
	Oid			relid;
	char	   *column;
} NotNullDropped;

/* Did the script drop NOT NULL of this column (and not set it again)? */
static bool
not_null_dropped(LintState *st, Oid relid, const char *column, bool forget)
{
	ListCell   *lc;

	foreach(lc, st->nn_dropped)
	{
		NotNullDropped *d = (NotNullDropped *) lfirst(lc);

		if (d->relid == relid && strcmp(d->column, column) == 0)
		{
			if (forget)
				st->nn_dropped = foreach_delete_current(st->nn_dropped, lc);
			return true;
		}
	}
	return false;
}

/* DROP NOT NULL: remember it, so that a SET NOT NULL after it scans. */
static void
note_drop_not_null(LintState *st, const TableFacts *tf, AlterTableCmd *cmd)
{
	MemoryContext oldcxt;
	NotNullDropped *d;

	if (!OidIsValid(tf->relid) || cmd->name == NULL ||
		not_null_dropped(st, tf->relid, cmd->name, false))
		return;
	oldcxt = MemoryContextSwitchTo(st->state_cxt);
	d = (NotNullDropped *) palloc(sizeof(NotNullDropped));
	d->relid = tf->relid;
	d->column = pstrdup(cmd->name);
	st->nn_dropped = lappend(st->nn_dropped, d);
	MemoryContextSwitchTo(oldcxt);
}

/* SET NOT NULL: a full scan unless a validated CHECK proves it. */
static void
lint_set_not_null(LintState *st, const TableFacts *tf, RangeVar *rv,
				  AlterTableCmd *cmd)
{
	if (!is_existing(tf) || cmd->name == NULL)
		return;
	/*
	 * Already NOT NULL: the server does nothing, unless the script dropped
	 * it before (knex's .notNullable().alter() emits DROP NOT NULL, then SET
	 * NOT NULL), which makes the SET scan again.
	 */
	if (column_attnotnull(tf->relid, cmd->name) == 1 &&
		!not_null_dropped(st, tf->relid, cmd->name, true))
		return;
	if (mt_catalog_has_not_null_check(tf->relid, cmd->name) ||
		script_has_not_null_check(st, rv, cmd->name))
		return;
	mt_add_finding(st, "set-not-null", MT_SEV_ERROR, tf,
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
				rewrites = mt_type_change_rewrites(att->atttypid, att->atttypmod,
												   typeTypeId(newtyp), newmod);
				ReleaseSysCache(newtyp);
			}
			ReleaseSysCache(atttup);
		}
	}
	if (!rewrites)
		return;
	mt_add_finding(st, "change-column-type", MT_SEV_ERROR, tf,
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
		mt_created_in_current_transaction(def) ||
		mt_catalog_has_validated_check(def))
		return;
	memset(&dtf, 0, sizeof(dtf));
	dtf.relid = def;
	dtf.name = mt_relation_display_name(def);
	dtf.rows = mt_table_rows(def, &dtf.relkind);
	if (dtf.name == NULL || dtf.rows == 0)
		return;
	mt_add_finding(st, "attach-partition-unvalidated", MT_SEV_ERROR, &dtf,
				   AccessExclusiveLock, false, dtf.rows,
				   "Move the rows of the new partition's range out of the default partition first and give the default partition a CHECK constraint that excludes that range (NOT VALID, then VALIDATE CONSTRAINT); or do without a default partition.",
				   "%s %s scans its default partition %s under an ACCESS EXCLUSIVE lock, to check that none of its rows belong in the new partition",
				   what, parent->name, dtf.name);
}

/* ATTACH PARTITION: the scan of the partition, and of the default one. */
static void
lint_attach_partition(LintState *st, const TableFacts *tf, AlterTableCmd *cmd)
{
	PartitionCmd *pc = (PartitionCmd *) cmd->def;
	TableFacts	part;

	if (pc == NULL || !IsA(pc, PartitionCmd))
		return;
	lint_default_partition_scan(st, tf, pc->bound,
								"attaching a partition to");
	mt_table_facts(st, pc->name, &part);
	if (!is_existing(&part) ||
		mt_catalog_has_validated_check(part.relid) ||
		script_has_validated_check(st, pc->name))
		return;
	mt_add_finding(st, "attach-partition-unvalidated", MT_SEV_ERROR, &part,
				   AccessExclusiveLock, false, part.rows,
				   "Before attaching, add a CHECK constraint matching the partition bound with NOT VALID and VALIDATE CONSTRAINT it; ATTACH PARTITION then skips the scan. Drop the CHECK afterwards.",
				   "attaching %s as a partition of %s scans it under an ACCESS EXCLUSIVE lock to check the partition bound",
				   part.name, tf->name);
}

/* SET LOGGED/UNLOGGED, SET ACCESS METHOD, SET TABLESPACE copy the table. */
static void
lint_table_rewrite(LintState *st, const TableFacts *tf, AlterTableCmd *cmd)
{
	if (is_existing(tf) && !alter_is_no_op(tf, cmd))
		mt_add_finding(st, "table-rewrite", MT_SEV_ERROR, tf,
					   AlterTableGetLockLevel(list_make1(cmd)), true, tf->rows,
					   "Create a new table with the wanted properties, copy the rows in batches (migration_tools.run_batched()) while a trigger keeps it current, then swap the names in one short transaction; or use pg_repack.",
					   "%s copies the whole of %s under an ACCESS EXCLUSIVE lock",
					   cmd->subtype == AT_SetLogged ? "SET LOGGED" :
					   cmd->subtype == AT_SetUnLogged ? "SET UNLOGGED" :
					   cmd->subtype == AT_SetAccessMethod ? "SET ACCESS METHOD" :
					   "SET TABLESPACE",
					   tf->name);
}

/* Rules of ALTER TABLE, subcommand by subcommand. */
void
mt_lint_alter_table(LintState *st, AlterTableStmt *stmt)
{
	TableFacts	tf;
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_MATVIEW)
		return;
	mt_table_facts(st, stmt->relation, &tf);
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
				mt_lint_validate_constraint(st, &tf, stmt, cmd);
				validate_not_null_check(st, &tf, stmt->relation, cmd->name);
				break;
			case AT_SetNotNull:
				lint_set_not_null(st, &tf, stmt->relation, cmd);
				break;
			case AT_DropNotNull:
				note_drop_not_null(st, &tf, cmd);
				if (is_existing(&tf) && cmd->name)
					mt_add_finding(st, "drop-not-null", MT_SEV_INFO, &tf,
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
					mt_add_finding(st, "drop-column", MT_SEV_WARNING, &tf,
								   AlterTableGetLockLevel(list_make1(cmd)), false, -1,
								   "First deploy application code that no longer reads or writes the column (and ignores it in SELECT *), then drop it.",
								   "dropping column \"%s\" of %s breaks running code that still uses it",
								   cmd->name, tf.name);
				break;
			case AT_AttachPartition:
				lint_attach_partition(st, &tf, cmd);
				break;
			case AT_SetLogged:
			case AT_SetUnLogged:
			case AT_SetAccessMethod:
			case AT_SetTableSpace:
				lint_table_rewrite(st, &tf, cmd);
				break;
			case AT_DetachPartition:
				{
					PartitionCmd *pc = (PartitionCmd *) cmd->def;

					if (pc == NULL || !IsA(pc, PartitionCmd) || pc->concurrent ||
						!is_existing(&tf))
						break;
					mt_add_finding(st, "detach-partition-non-concurrently", MT_SEV_WARNING, &tf,
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
void
mt_lint_create_table(LintState *st, CreateStmt *stmt)
{
	TableFacts	tf;
	ListCell   *lc;
	List	   *pk_keys = NIL;
	Oid			relid = mt_script_lookup_relation(st, stmt->relation);

	/* A CREATE TABLE IF NOT EXISTS of an existing table creates nothing. */
	if (!OidIsValid(relid))
		mt_remember_rangevar(st, &st->created, stmt->relation);
	mt_table_facts(st, stmt->relation, &tf);

	if (stmt->partbound && list_length(stmt->inhRelations) == 1 &&
		IsA(linitial(stmt->inhRelations), RangeVar))
	{
		TableFacts	parent;

		mt_table_facts(st, (RangeVar *) linitial(stmt->inhRelations), &parent);
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
