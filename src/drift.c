/*-------------------------------------------------------------------------
 *
 * drift.c
 *	  Catalog descriptions: the catalog fingerprint stored with every
 *	  migration, schema_drift() that compares the database against it, and
 *	  verify_reversible() that compares the catalog before and after an
 *	  up/down script pair.
 *
 * The schema of a database is described as a set of objects, each with a
 * kind and a stable identity (as pg_identify_object() gives them: always
 * schema-qualified, independent of search_path) and a definition text
 * built from the catalogs: tables, columns (type, default, NOT NULL,
 * identity, generation, collation), constraints, indexes, views,
 * materialized views, sequences, functions, types, triggers, policies,
 * rules, schemas and extensions.  System schemas, the extension's own
 * schema and the members of extensions are left out: they are not the
 * user's schema.
 *
 * The description is read from the catalogs only: no user relation is
 * opened or locked (view bodies are taken from their stored rule trees,
 * not deparsed), so it can run inside apply() while other sessions queue
 * for locks.  It runs with search_path set to pg_catalog so that every
 * deparsed name is qualified and the text does not depend on the caller.
 *
 * The fingerprint is a JSON object mapping "kind:identity" to the MD5 of
 * the definition: small enough to store per migration, detailed enough for
 * schema_drift() to name what changed.  The stored query trees of views and
 * rules name objects by OID; user objects' OIDs are replaced by their names
 * so that a view created again the same way compares equal.
 *
 * IDENTIFICATION
 *	  src/drift.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "access/transam.h"
#include "common/keywords.h"
#include "common/md5.h"
#include "parser/scanner.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/guc.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "drift.h"
#include "lint.h"
#include "migration_tools.h"
#include "spi_util.h"

/*
 * One row per object: kind, identity and definition.  The extension's own
 * schema is $1.  Objects that belong to an extension (pg_depend 'e') are
 * skipped, with their sub-objects.
 */
static const char *describe_query =
"WITH nsp AS ("
"  SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n"
"  WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"
"    AND n.nspname <> $1"
"    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                    WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
"                      AND d.objid = n.oid AND d.deptype = 'e')"
"), rel AS ("
"  SELECT c.* FROM pg_catalog.pg_class c JOIN nsp ON nsp.oid = c.relnamespace"
"  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S', 'c', 'i', 'I')"
"    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
"                      AND d.objid = c.oid AND d.deptype = 'e')"
"), typ AS ("
"  SELECT t.* FROM pg_catalog.pg_type t JOIN nsp ON nsp.oid = t.typnamespace"
"  WHERE t.typtype IN ('b', 'd', 'e', 'r')"
"    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type a WHERE a.typarray = t.oid)"
"    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                    WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass"
"                      AND d.objid = t.oid AND d.deptype = 'e')"
"), obj (classid, objid, objsubid, def) AS ("
/* schemas */
"  SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, oid, 0, ''::text FROM nsp"
/* extensions but this one */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, e.oid, 0,"
"         'version ' || e.extversion"
"  FROM pg_catalog.pg_extension e WHERE e.extname <> $2"
/* tables, foreign tables, views, materialized views, composite types */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0,"
"         pg_catalog.concat_ws(' ', 'kind ' || c.relkind::text,"
"            'persistence ' || c.relpersistence::text,"
"            'partition by ' || pg_catalog.pg_get_partkeydef(c.oid),"
"            'partition of ' || (SELECT pg_catalog.string_agg(i.inhparent::pg_catalog.regclass::text, ', ' ORDER BY i.inhseqno)"
"                                FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid),"
"            pg_catalog.pg_get_expr(c.relpartbound, c.oid),"
"            'with ' || c.reloptions::text,"
"            CASE WHEN c.relrowsecurity THEN 'row security' END,"
"            CASE WHEN c.relforcerowsecurity THEN 'force row security' END,"
"            (SELECT 'rule ' || pg_catalog.regexp_replace(r.ev_action::text,"
"                        ':(location|stmt_location|stmt_len) -?[0-9]+', '', 'g')"
"             FROM pg_catalog.pg_rewrite r"
"             WHERE r.ev_class = c.oid AND r.rulename = '_RETURN'))"
"  FROM rel c WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c')"
/* sequences */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0,"
"         pg_catalog.concat_ws(' ', 'as ' || pg_catalog.format_type(s.seqtypid, NULL),"
"            'start ' || s.seqstart, 'increment ' || s.seqincrement,"
"            'min ' || s.seqmin, 'max ' || s.seqmax, 'cache ' || s.seqcache,"
"            CASE WHEN s.seqcycle THEN 'cycle' END,"
"            'persistence ' || c.relpersistence::text)"
"  FROM rel c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid"
/* indexes */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0,"
"         pg_catalog.pg_get_indexdef(c.oid)"
"         || CASE WHEN x.indisvalid THEN '' ELSE ' (invalid)' END"
"  FROM rel c JOIN pg_catalog.pg_index x ON x.indexrelid = c.oid"
/* columns (a NOT NULL constraint's state, on 18, with the column) */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid, a.attnum,"
"         pg_catalog.concat_ws(' ', pg_catalog.format_type(a.atttypid, a.atttypmod),"
"            CASE WHEN a.attcollation <> t.typcollation"
"                 THEN 'collate ' || a.attcollation::pg_catalog.regcollation::text END,"
"            CASE WHEN a.attnotnull THEN 'not null' END,"
"            (SELECT NULLIF(pg_catalog.concat_ws(' ',"
"                        CASE WHEN NOT k.convalidated THEN 'not valid' END,"
"                        CASE WHEN k.connoinherit THEN 'no inherit' END), '')"
"             FROM pg_catalog.pg_constraint k"
"             WHERE k.conrelid = c.oid AND k.contype = 'n'"
"               AND k.conkey[1] = a.attnum),"
"            CASE a.attidentity WHEN 'a' THEN 'generated always as identity'"
"                               WHEN 'd' THEN 'generated by default as identity' END,"
"            CASE a.attgenerated WHEN 's' THEN 'generated always as'"
"                                WHEN 'v' THEN 'generated always as (virtual)' END,"
"            'default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid))"
"  FROM rel c"
"  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
"  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
"  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum"
"  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c')"
"    AND a.attnum > 0 AND NOT a.attisdropped"
/*
 * constraints of tables and domains; NOT NULL ones (catalog rows for domains
 * since PostgreSQL 17, for columns since 18) are part of the column's or the
 * domain's definition, as on every version, so that a fingerprint taken
 * before an upgrade still matches
 */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, 0,"
"         pg_catalog.pg_get_constraintdef(k.oid)"
"  FROM pg_catalog.pg_constraint k"
"  WHERE (k.conrelid IN (SELECT oid FROM rel) OR k.contypid IN (SELECT oid FROM typ))"
"    AND k.contype <> 'n'"
/* triggers */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid, 0,"
"         pg_catalog.pg_get_triggerdef(g.oid)"
"         || CASE g.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (replica)'"
"                             WHEN 'A' THEN ' (always)' ELSE '' END"
"  FROM pg_catalog.pg_trigger g WHERE NOT g.tgisinternal AND g.tgrelid IN (SELECT oid FROM rel)"
/* policies */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, p.oid, 0,"
"         pg_catalog.concat_ws(' ', 'for ' || p.polcmd::text,"
"            CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,"
"            'to ' || p.polroles::text,"
"            'using ' || pg_catalog.pg_get_expr(p.polqual, p.polrelid),"
"            'with check ' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))"
"  FROM pg_catalog.pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel)"
/* rules other than the view rules */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid, 0,"
"         pg_catalog.concat_ws(' ', r.ev_type, r.is_instead, r.ev_enabled,"
"            pg_catalog.regexp_replace(r.ev_qual::text || r.ev_action::text,"
"                ':(location|stmt_location|stmt_len) -?[0-9]+', '', 'g'))"
"  FROM pg_catalog.pg_rewrite r"
"  WHERE r.rulename <> '_RETURN' AND r.ev_class IN (SELECT oid FROM rel)"
/* functions, procedures, aggregates */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, f.oid, 0,"
"         pg_catalog.concat_ws(' ', 'kind ' || f.prokind::text,"
"            'returns ' || pg_catalog.pg_get_function_result(f.oid),"
"            'language ' || l.lanname, 'volatility ' || f.provolatile::text,"
"            CASE WHEN f.proisstrict THEN 'strict' END,"
"            CASE WHEN f.prosecdef THEN 'security definer' END,"
"            CASE WHEN f.proleakproof THEN 'leakproof' END,"
"            'parallel ' || f.proparallel::text,"
"            'set ' || f.proconfig::text,"
"            'args ' || pg_catalog.pg_get_function_arguments(f.oid),"
"            'as ' || f.probin, 'as ' || f.prosrc)"
"  FROM pg_catalog.pg_proc f JOIN nsp ON nsp.oid = f.pronamespace"
"  JOIN pg_catalog.pg_language l ON l.oid = f.prolang"
"  WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                    WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass"
"                      AND d.objid = f.oid AND d.deptype = 'e')"
/* enums, domains, ranges, base types */
"  UNION ALL"
"  SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid, 0,"
"         pg_catalog.concat_ws(' ', 'kind ' || t.typtype::text,"
"            'labels ' || (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)"
"                          FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),"
"            CASE WHEN t.typtype = 'd' THEN 'over ' || pg_catalog.format_type(t.typbasetype, t.typtypmod) END,"
"            CASE WHEN t.typnotnull THEN 'not null' END,"
"            'default ' || t.typdefault,"
"            'subtype ' || (SELECT pg_catalog.format_type(r.rngsubtype, NULL)"
"                           FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),"
"            CASE WHEN t.typtype = 'b' THEN 'input ' || t.typinput::text END)"
"  FROM typ t"
") "
"SELECT o.type, o.identity, obj.def"
"  FROM obj, LATERAL pg_catalog.pg_identify_object(obj.classid, obj.objid, obj.objsubid) o"
" WHERE o.identity IS NOT NULL";

/*
 * Run "query" (which takes the extension schema name and the extension
 * name as $1 and $2) under search_path = pg_catalog, inside an SPI
 * connection of its own.  Callers read SPI_tuptable before calling
 * describe_finish().
 */
static int
describe_start(const char *query)
{
	int			save_nestlevel;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(MT_SCHEMA_NAME);
	values[1] = CStringGetTextDatum(MT_EXTENSION_NAME);

	/*
	 * Every name is deparsed schema-qualified with this search_path, so the
	 * description does not depend on the caller's.  The nest level undoes
	 * the setting whether we return or fail.
	 */
	save_nestlevel = mt_pin_search_path("pg_catalog");

	/*
	 * Not read-only: a read-only execution would use the caller's snapshot
	 * and miss the DDL the caller's transaction has just run.
	 */
	mt_spi_connect();
	mt_spi_execute_checked(query, 2, argtypes, values, NULL, false, 0,
						   SPI_OK_SELECT, "read the catalogs");

	return save_nestlevel;
}

/* End what describe_start() began: SPI connection and search_path. */
static void
describe_finish(int save_nestlevel)
{
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
}

/*
 * mt_catalog_fingerprint: see drift.h.  Returns a palloc'd JSON text in
 * the caller's memory context; "{}" for a database without user objects.
 * Works whether or not the caller is connected to SPI.
 */
char *
mt_catalog_fingerprint(void)
{
	List	   *objects = mt_catalog_describe();
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	foreach(lc, objects)
	{
		MtCatalogObject *obj = lfirst(lc);
		char		md5[33];
		const char *errstr = NULL;
		char	   *key;

		if (!pg_md5_hash(obj->definition, strlen(obj->definition), md5, &errstr))
			elog(ERROR, "could not compute an MD5 hash: %s", errstr);
		key = psprintf("%s:%s", obj->kind, obj->identity);
		if (lc != list_head(objects))
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, key);
		appendStringInfoString(&buf, ": ");
		escape_json(&buf, md5);
		pfree(key);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Fields of a stored query tree (pg_node_tree) that hold the OID of a
 * relation (r), function (f), operator (o) or type (t).
 */
static const struct
{
	const char *field;
	char		kind;
}			oid_fields[] =
{
	{":relid ", 'r'}, {":resorigtbl ", 'r'},
	{":funcid ", 'f'}, {":opfuncid ", 'f'}, {":aggfnoid ", 'f'}, {":winfnoid ", 'f'},
	{":opno ", 'o'}, {":sortop ", 'o'}, {":eqop ", 'o'},
	{":vartype ", 't'}, {":consttype ", 't'}, {":funcresulttype ", 't'},
	{":opresulttype ", 't'}, {":resulttype ", 't'}, {":aggtype ", 't'},
	{":wintype ", 't'}, {":typeid ", 't'}, {":minmaxtype ", 't'},
	{":coalescetype ", 't'}, {":casetype ", 't'}, {":row_typeid ", 't'},
	{":array_typeid ", 't'}, {":element_typeid ", 't'}, {":paramtype ", 't'},
};

/*
 * A stored query tree names relations, functions, operators and types by
 * OID: a view dropped and created again (or over a table created again)
 * would look changed.  Replace the OIDs of user objects by their
 * qualified names, looked up in the syscaches (no lock taken).  Built-in
 * OIDs are stable and kept.
 */
static char *
normalize_node_tree(const char *def)
{
	StringInfoData buf;
	const char *p = def;

	if (strchr(def, '{') == NULL)
		return pstrdup(def);

	initStringInfo(&buf);
	while (*p)
	{
		bool		replaced = false;

		if (*p == ':')
		{
			for (int i = 0; i < lengthof(oid_fields); i++)
			{
				size_t		len = strlen(oid_fields[i].field);
				const char *digits = p + len;
				char	   *end;
				unsigned long oid;
				char	   *name = NULL;

				if (strncmp(p, oid_fields[i].field, len) != 0 || !isdigit((unsigned char) *digits))
					continue;
				oid = strtoul(digits, &end, 10);
				if (oid < FirstNormalObjectId || oid > PG_UINT32_MAX)
					break;
				switch (oid_fields[i].kind)
				{
					case 'r':
						{
							char	   *relname = get_rel_name((Oid) oid);

							if (relname)
								name = quote_qualified_identifier(get_namespace_name(get_rel_namespace((Oid) oid)),
																  relname);
							break;
						}
					case 'f':
						name = format_procedure_extended((Oid) oid,
														 FORMAT_PROC_INVALID_AS_NULL | FORMAT_PROC_FORCE_QUALIFY);
						break;
					case 'o':
						name = format_operator_extended((Oid) oid,
														FORMAT_OPERATOR_INVALID_AS_NULL | FORMAT_OPERATOR_FORCE_QUALIFY);
						break;
					default:
						name = format_type_extended((Oid) oid, -1,
													FORMAT_TYPE_INVALID_AS_NULL | FORMAT_TYPE_FORCE_QUALIFY);
						break;
				}
				if (name == NULL)
					break;
				appendBinaryStringInfo(&buf, p, len);
				appendStringInfoString(&buf, name);
				p = end;
				replaced = true;
				break;
			}
		}
		if (!replaced)
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/*
 * Read the full description of the current schema: a list of
 * MtCatalogObject sorted by kind and identity, allocated in the caller's
 * memory context.
 */
List *
mt_catalog_describe(void)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext oldcxt;
	List	   *result = NIL;
	char	   *query;
	int			nestlevel;

	query = psprintf("SELECT * FROM (%s) d ORDER BY d.type COLLATE \"C\", d.identity COLLATE \"C\"",
					 describe_query);
	nestlevel = describe_start(query);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MtCatalogObject *obj;
		char	   *def;

		oldcxt = MemoryContextSwitchTo(callercxt);
		obj = palloc(sizeof(MtCatalogObject));
		obj->kind = pstrdup(SPI_getvalue(tup, desc, 1));
		obj->identity = pstrdup(SPI_getvalue(tup, desc, 2));
		def = SPI_getvalue(tup, desc, 3);
		obj->definition = normalize_node_tree(def ? def : "");
		result = lappend(result, obj);
		MemoryContextSwitchTo(oldcxt);
	}
	describe_finish(nestlevel);
	pfree(query);
	return result;
}

PG_FUNCTION_INFO_V1(mt_catalog_fingerprint_sql);

/*
 * migration_tools.catalog_fingerprint(): the fingerprint apply() stores,
 * for the current schema.
 */
Datum
mt_catalog_fingerprint_sql(PG_FUNCTION_ARGS)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(mt_catalog_fingerprint()));
}

PG_FUNCTION_INFO_V1(mt_catalog_objects);

/*
 * migration_tools.catalog_objects(): the objects of the user's schema with
 * the definitions that the fingerprint and verify_reversible() compare.
 */
Datum
mt_catalog_objects(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *objects;
	ListCell   *lc;

	mt_init_materialized_srf(fcinfo);
	objects = mt_catalog_describe();
	foreach(lc, objects)
	{
		MtCatalogObject *obj = lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(obj->kind);
		values[1] = CStringGetTextDatum(obj->identity);
		values[2] = CStringGetTextDatum(obj->definition);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/* Longest definition quoted in a verify_reversible() NOTICE. */
#define MT_MAX_DEFINITION_SHOWN 300

static char *
shorten(const char *def)
{
	const char *tree = strstr(def, "({QUERY");

	/* a stored query tree says nothing to a reader: name it only */
	if (tree != NULL)
		return psprintf("%.*s(stored query)", (int) (tree - def), def);
	if (strlen(def) <= MT_MAX_DEFINITION_SHOWN)
		return pstrdup(def);
	return psprintf("%.*s...", MT_MAX_DEFINITION_SHOWN, def);
}

/*
 * Report each difference between two sorted descriptions as a NOTICE;
 * returns the number of differences.
 */
static int
report_differences(List *before, List *after)
{
	ListCell   *b = list_head(before);
	ListCell   *a = list_head(after);
	int			ndiff = 0;

	while (b != NULL || a != NULL)
	{
		MtCatalogObject *ob = b ? lfirst(b) : NULL;
		MtCatalogObject *oa = a ? lfirst(a) : NULL;
		int			cmp;

		if (ob == NULL)
			cmp = 1;
		else if (oa == NULL)
			cmp = -1;
		else
		{
			cmp = strcmp(ob->kind, oa->kind);
			if (cmp == 0)
				cmp = strcmp(ob->identity, oa->identity);
		}

		if (cmp < 0)
		{
			ereport(NOTICE,
					(errmsg("%s %s is missing after up and down", ob->kind, ob->identity),
					 errdetail("It was: %s", shorten(ob->definition))));
			ndiff++;
			b = lnext(before, b);
		}
		else if (cmp > 0)
		{
			ereport(NOTICE,
					(errmsg("%s %s is left over after up and down", oa->kind, oa->identity),
					 errdetail("It is: %s", shorten(oa->definition))));
			ndiff++;
			a = lnext(after, a);
		}
		else
		{
			if (strcmp(ob->definition, oa->definition) != 0 &&
				strstr(ob->definition, "({QUERY") != NULL &&
				strstr(oa->definition, "({QUERY") != NULL)
			{
				ereport(NOTICE,
						(errmsg("%s %s differs after up and down", ob->kind, ob->identity),
						 errdetail("Its query is not the same.")));
				ndiff++;
			}
			else if (strcmp(ob->definition, oa->definition) != 0)
			{
				ereport(NOTICE,
						(errmsg("%s %s differs after up and down", ob->kind, ob->identity),
						 errdetail("Before: %s\nAfter: %s",
								   shorten(ob->definition), shorten(oa->definition))));
				ndiff++;
			}
			b = lnext(before, b);
			a = lnext(after, a);
		}
	}
	return ndiff;
}

static bool
is_tag(MtStatementInfo *info, const char *tag)
{
	return info->command_tag != NULL && strcmp(info->command_tag, tag) == 0;
}

/* Blank len bytes of script at offset, and the semicolon right after. */
static void
blank_statement(char *script, int offset, int len)
{
	memset(script + offset, ' ', len);
	if (script[offset + len] == ';')
		script[offset + len] = ' ';
}

/*
 * Byte offset, within the statement text stmt, of its first CONCURRENTLY
 * keyword, or -1.  Read with the server's own lexer, so that a quoted
 * identifier, a string or a comment that says "concurrently" is not taken
 * for it.  In CREATE INDEX, DROP INDEX and ALTER TABLE ... DETACH
 * PARTITION the unquoted keyword can only be the option (it is not a valid
 * name there).
 */
static int
concurrently_offset(const char *stmt)
{
	core_yy_extra_type yyextra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			kwnum = ScanKeywordLookup("concurrently", &ScanKeywords);
	int			result = -1;

	Assert(kwnum >= 0);
	scanner = scanner_init(stmt, &yyextra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			token = core_yylex(&yylval, &yylloc, scanner);

		if (token == 0)
			break;
		if (token == ScanKeywordTokens[kwnum])
		{
			result = yylloc;
			break;
		}
	}
	scanner_finish(scanner);
	return result;
}

/*
 * A statement that cannot run in a transaction block, made verifiable in
 * the subtransaction: the concurrent forms of CREATE INDEX, DROP INDEX and
 * DETACH PARTITION have the same catalog effect as the plain ones, which
 * run instead (CONCURRENTLY is blanked out); VACUUM and REINDEX change
 * nothing that is compared, and are left out.  Anything else stays as it
 * is (and fails, with the hint that it cannot be verified).
 */
static void
make_verifiable(char *script, MtStatementInfo *info, int len,
				const char *what)
{
	if (is_tag(info, "VACUUM") || is_tag(info, "REINDEX"))
	{
		ereport(NOTICE,
				(errmsg("statement %d of the %s (%s) is left out: it changes nothing that verify_reversible() compares",
						info->statement, what, info->command_tag)));
		blank_statement(script, info->location, len);
		return;
	}
	if (is_tag(info, "CREATE INDEX") || is_tag(info, "DROP INDEX") ||
		is_tag(info, "ALTER TABLE"))
	{
		char	   *stmt = pnstrdup(script + info->location, len);
		int			offset = concurrently_offset(stmt);

		if (offset >= 0)
			memset(script + info->location + offset, ' ', strlen("concurrently"));
		pfree(stmt);
	}
}

/*
 * The script as verify_reversible() runs it: like apply(), a BEGIN (or
 * START TRANSACTION) that opens the script with a COMMIT (or END) that
 * closes it is left out (blanked, so that error positions stay right); any
 * other transaction control is refused, since both scripts run in one
 * subtransaction that is rolled back.  Statements that cannot run in a
 * transaction block are made verifiable where that keeps their catalog
 * effect (make_verifiable()).
 */
static void
script_context_callback(void *arg)
{
	errcontext("%s of verify_reversible()", (const char *) arg);
}

static char *
runnable_script(const char *sql, const char *what)
{
	ErrorContextCallback callback;
	List	   *all;
	char	   *result = pstrdup(sql);
	int			n;
	bool		wrapped = false;
	ListCell   *lc;

	callback.callback = script_context_callback;
	callback.arg = (void *) what;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	all = mt_analyze_script(sql);
	error_context_stack = callback.previous;
	n = list_length(all);

	if (n >= 2 &&
		(is_tag(linitial(all), "BEGIN") || is_tag(linitial(all), "START TRANSACTION")) &&
		is_tag(llast(all), "COMMIT"))
		wrapped = true;

	foreach(lc, all)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
		static const char *const tags[] = {
			"BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT",
			"RELEASE", "PREPARE TRANSACTION", "COMMIT PREPARED",
			"ROLLBACK PREPARED", NULL
		};
		int			i;

		if (wrapped && (lc == list_head(all) || foreach_current_index(lc) == n - 1))
		{
			int			len = info->length > 0 ? info->length :
				(int) strlen(sql) - info->location;

			blank_statement(result, info->location, len);
			continue;
		}
		if (info->needs_top_level)
		{
			int			len = info->length > 0 ? info->length :
				(int) strlen(sql) - info->location;

			make_verifiable(result, info, len, what);
			continue;
		}
		for (i = 0; tags[i] != NULL; i++)
			if (is_tag(info, tags[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
						 errmsg("%s contains transaction control statement %s",
								what, info->command_tag),
						 errdetail("Statement %d is \"%s\".", info->statement, info->sql),
						 errhint("verify_reversible() runs both scripts in one subtransaction that it rolls back: remove transaction control from them (a BEGIN ... COMMIT around a whole script is allowed and ignored).")));
	}
	return result;
}

/* Run a script of any number of statements through SPI. */
static void
run_script(const char *sql)
{
	int			ret;

	mt_spi_connect();
	ret = SPI_execute(sql, false, 0);
	if (ret < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not run the script: %s", SPI_result_code_string(ret))));
	SPI_finish();
}

/*
 * The scripts run for real, so they queue for the locks they take: bound
 * that wait as apply() bounds an attempt, by migration_tools.max_lock_timeout
 * (unless the caller's own lock_timeout is shorter).  Returns the GUC nest
 * level to undo it with.
 */
static int
bound_lock_timeout(void)
{
	int			level = NewGUCNestLevel();
	const char *max_timeout = GetConfigOption("migration_tools.max_lock_timeout",
											  true, false);
	int			max_ms;

	if (max_timeout != NULL &&
		parse_int(max_timeout, &max_ms, GUC_UNIT_MS, NULL) && max_ms > 0 &&
		(LockTimeout == 0 || LockTimeout > max_ms))
		(void) set_config_option("lock_timeout", max_timeout,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

PG_FUNCTION_INFO_V1(mt_verify_reversible);

/*
 * migration_tools.verify_reversible(up_sql, down_sql): run up, then down,
 * in a subtransaction that is always rolled back, and compare the schema
 * description before and after.  Each difference is a NOTICE; the result
 * tells whether there was none.  An error in up_sql is an ERROR (the
 * migration itself is broken: nothing to verify); an error in down_sql is
 * a NOTICE and the result false (down does not undo up).
 */
Datum
mt_verify_reversible(PG_FUNCTION_ARGS)
{
	char	   *up_sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *down_sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	List	   *before;
	List	   *volatile after = NIL;
	volatile bool in_down = false;
	ErrorData  *volatile edata = NULL;
	int			nestlevel;

	/* a syntax error or a COMMIT in up_sql is an error of the call */
	up_sql = runnable_script(up_sql, "up script");

	before = mt_catalog_describe();

	nestlevel = bound_lock_timeout();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		run_script(up_sql);
		CommandCounterIncrement();
		in_down = true;
		run_script(runnable_script(down_sql, "down script"));
		CommandCounterIncrement();
		MemoryContextSwitchTo(cxt);
		after = mt_catalog_describe();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();

	/* whatever happened, nothing of up and down survives */
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	AtEOXact_GUC(true, nestlevel);

	/* waiting for another session's lock says nothing about the scripts */
	if (edata != NULL && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("%s script of verify_reversible() could not get a lock: %s",
						in_down ? "down" : "up", edata->message),
				 errdetail("verify_reversible() runs both scripts for real, in a subtransaction it rolls back, and waits for a lock at most migration_tools.max_lock_timeout."),
				 errhint("Run it when no other session holds locks on the tables the scripts change, or in a copy of the schema.")));

	if (edata != NULL && !in_down)
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("up script failed: %s", edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->sqlerrcode == ERRCODE_ACTIVE_SQL_TRANSACTION ?
				 errhint("verify_reversible() runs both scripts in a subtransaction: statements that cannot run in a transaction block cannot be verified.") :
				 (edata->hint ? errhint("%s", edata->hint) : 0)));
	if (edata != NULL)
	{
		ereport(NOTICE,
				(errmsg("down script failed: %s", edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
		PG_RETURN_BOOL(false);
	}

	PG_RETURN_BOOL(report_differences(before, after) == 0);
}
