/*-------------------------------------------------------------------------
 *
 * lint.c
 *	  Statement analysis of migration scripts with the server's own parser,
 *	  the GUCs of the linter and the SQL functions that expose it.
 *
 * A script is split with raw_parser(), exactly as the server would split a
 * simple-query string.  Each raw statement is described without executing
 * it and without taking any lock: its text and place in the script, its
 * command tag, whether it is DDL, whether it refuses to run inside a
 * transaction block, and the relation locks it would take (found in
 * lint_locks.c).  Relations are looked up with RangeVarGetRelid(NoLock,
 * missing_ok), so a relation that does not exist yet (created earlier in
 * the same script) is reported with InvalidOid.  The rules themselves live
 * in lint_rules.c.
 *
 * IDENTIFICATION
 *	  src/lint.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scansup.h"
#include "storage/lock.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "lint.h"
#include "lint_int.h"
#include "migration_tools.h"
#include "spi_util.h"

/* GUC variables */
int			mt_lint_level = MT_LINT_LEVEL_ERROR;
int			mt_lint_large_rows = 10000;

static const struct config_enum_entry lint_level_options[] = {
	{"error", MT_LINT_LEVEL_ERROR, false},
	{"warning", MT_LINT_LEVEL_WARNING, false},
	{"off", MT_LINT_LEVEL_OFF, false},
	{NULL, 0, false}
};

/*
 * Define the GUCs of the linter (the guard's own is defined in guard.c).
 */
void
mt_lint_init(void)
{
	DefineCustomEnumVariable(MT_GUC_PREFIX ".lint_level",
							 "Lowest lint severity at which apply() refuses a migration.",
							 "\"error\" refuses migrations with error findings, "
							 "\"warning\" also those with warnings, \"off\" does not lint.",
							 &mt_lint_level,
							 MT_LINT_LEVEL_ERROR,
							 lint_level_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable(MT_GUC_PREFIX ".lint_large_rows",
							"Estimated rows above which the linter calls a table or a DML statement large.",
							NULL,
							&mt_lint_large_rows,
							10000,
							0, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}

/*
 * Severity name to number: info 1, warning 2, error 3, -1 if unrecognized.
 */
int
mt_lint_severity_level(const char *severity)
{
	if (severity == NULL)
		return -1;
	if (pg_strcasecmp(severity, "info") == 0)
		return MT_SEV_INFO;
	if (pg_strcasecmp(severity, "warning") == 0)
		return MT_SEV_WARNING;
	if (pg_strcasecmp(severity, "error") == 0)
		return MT_SEV_ERROR;
	return -1;
}

/* a long script is shown around a syntax error: lines and bytes each side */
#define MT_ERROR_LINES		3
#define MT_ERROR_WINDOW		1000

/*
 * Does an ALTER TABLE detach a partition CONCURRENTLY (which, like the
 * other CONCURRENTLY commands, cannot run in a transaction block)?
 */
bool
mt_detaches_concurrently(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (IsA(cmd, AlterTableCmd) &&
			cmd->subtype == AT_DetachPartition &&
			cmd->def && IsA(cmd->def, PartitionCmd) &&
			((PartitionCmd *) cmd->def)->concurrent)
			return true;
	}
	return false;
}

/*
 * Error context callback while the script is parsed: move the parser's
 * cursor position, relative to the script, to an internal position with the
 * script as the internal query, so that clients point into the script and
 * not into the statement that called us.  A long script is cut down to a
 * few lines around the error, and the context gives the line in the script.
 */
static void
script_parse_error_callback(void *arg)
{
	const char *script = (const char *) arg;
	int			pos = geterrposition();
	int			len;
	int			off = 0;
	int			line = 1;
	int			starts[MT_ERROR_LINES + 1];
	int			start;
	int			end;
	int			newlines = 0;
	int			i;

	if (pos <= 0)
		return;
	errposition(0);
	len = strlen(script);
	if (len <= 2 * MT_ERROR_WINDOW)
	{
		internalerrposition(pos);
		internalerrquery(script);
		return;
	}

	/* walk to the character at pos (1-based), keeping the last line starts */
	for (i = 0; i <= MT_ERROR_LINES; i++)
		starts[i] = 0;
	for (i = 1; i < pos && off < len; i++)
	{
		if (script[off] == '\n')
		{
			line++;
			memmove(starts, starts + 1, sizeof(int) * MT_ERROR_LINES);
			starts[MT_ERROR_LINES] = off + 1;
		}
		off += pg_mblen(script + off);
	}
	/* the first line shown, no more than MT_ERROR_WINDOW bytes back */
	start = starts[0];
	if (off - start > MT_ERROR_WINDOW)
	{
		start = starts[MT_ERROR_LINES];
		if (off - start > MT_ERROR_WINDOW)
		{
			/* one huge line: from a character boundary inside the window */
			while (off - start > MT_ERROR_WINDOW)
				start += pg_mblen(script + start);
		}
	}
	/* and a few lines after it */
	end = off;
	while (end < len && end - off < MT_ERROR_WINDOW)
	{
		if (script[end] == '\n' && ++newlines > MT_ERROR_LINES)
			break;
		end += pg_mblen(script + end);
	}
	if (end > len)
		end = len;

	internalerrposition(pg_mbstrlen_with_len(script + start, off - start) + 1);
	internalerrquery(pnstrdup(script + start, end - start));
	errcontext("line %d of the script (the query shown is an excerpt)", line);
}

/*
 * Parse a script into raw statements, in the current memory context.
 * Syntax errors come out as ERRORs with the position in the script.
 */
static List *
parse_script(const char *sql)
{
	ErrorContextCallback errcallback;
	List	   *stmts;

	errcallback.callback = script_parse_error_callback;
	errcallback.arg = (void *) sql;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);

	error_context_stack = errcallback.previous;

	return stmts;
}

/*
 * Raise an error found inside the script (a syntax error in the body of a
 * DO block, say) at a character position of the script (from 1; 0 for
 * none), shown as the syntax errors of the script itself are.
 */
void
mt_script_error(const char *script, int position, ErrorData *edata,
				const char *context)
{
	ErrorContextCallback errcallback;

	if (script != NULL)
	{
		errcallback.callback = script_parse_error_callback;
		errcallback.arg = (void *) script;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;
	}
	ereport(ERROR,
			(errcode(edata->sqlerrcode),
			 errmsg_internal("%s", edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
			 edata->hint ? errhint("%s", edata->hint) : 0,
			 context ? errcontext("%s", context) : 0,
			 position > 0 ? errposition(position) : 0));
	pg_unreachable();
}

/*
 * Skip white space and comments from offset *start of sql, within *len bytes
 * (len 0: to the end), so that a statement's text starts with its first
 * token.  Trailing white space is trimmed as well.
 */
static void
trim_statement(const char *sql, int *start, int *len)
{
	int			s = *start;
	int			e = (*len > 0) ? *start + *len : (int) strlen(sql);

	while (s < e)
	{
		if (scanner_isspace(sql[s]))
			s++;
		else if (sql[s] == '-' && s + 1 < e && sql[s + 1] == '-')
		{
			while (s < e && sql[s] != '\n' && sql[s] != '\r')
				s++;
		}
		else if (sql[s] == '/' && s + 1 < e && sql[s + 1] == '*')
		{
			int			depth = 1;

			s += 2;
			while (s < e && depth > 0)
			{
				if (sql[s] == '/' && s + 1 < e && sql[s + 1] == '*')
				{
					depth++;
					s += 2;
				}
				else if (sql[s] == '*' && s + 1 < e && sql[s + 1] == '/')
				{
					depth--;
					s += 2;
				}
				else
					s++;
			}
		}
		else
			break;
	}
	while (e > s && scanner_isspace(sql[e - 1]))
		e--;
	*start = s;
	*len = e - s;
}

/*
 * Look up a relation without locking it; InvalidOid when it does not exist
 * (or names another database, which the lookup itself would refuse).
 */
Oid
mt_lookup_relation(RangeVar *rv)
{
	if (rv == NULL || rv->relname == NULL)
		return InvalidOid;
	if (rv->catalogname != NULL)
	{
		char	   *dbname = get_database_name(MyDatabaseId);

		if (dbname == NULL || strcmp(rv->catalogname, dbname) != 0)
			return InvalidOid;
	}
	return RangeVarGetRelid(rv, NoLock, true);
}

/* Is a boolean option (DefElem list) present and true? */
bool
mt_option_is_true(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (!IsA(opt, DefElem) || opt->defname == NULL)
			continue;
		if (strcmp(opt->defname, name) == 0)
		{
			if (opt->arg == NULL)
				return true;
			if (IsA(opt->arg, Boolean))
				return boolVal(opt->arg);
			if (IsA(opt->arg, Integer))
				return intVal(opt->arg) != 0;
			if (IsA(opt->arg, String))
			{
				bool		result;

				if (parse_bool(strVal(opt->arg), &result))
					return result;
				return true;
			}
			return true;
		}
	}
	return false;
}

/*
 * Does this statement refuse to run inside a transaction block?
 */
static bool
statement_needs_top_level(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			return ((IndexStmt *) stmt)->concurrent;
		case T_DropStmt:
			return ((DropStmt *) stmt)->concurrent;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;

				if (r->kind == REINDEX_OBJECT_SCHEMA ||
					r->kind == REINDEX_OBJECT_SYSTEM ||
					r->kind == REINDEX_OBJECT_DATABASE)
					return true;
				return mt_option_is_true(r->params, "concurrently");
			}
		case T_VacuumStmt:
			return ((VacuumStmt *) stmt)->is_vacuumcmd;
		case T_ClusterStmt:
			return ((ClusterStmt *) stmt)->relation == NULL;
		case T_CreatedbStmt:
		case T_DropdbStmt:
		case T_AlterSystemStmt:
		case T_CreateTableSpaceStmt:
		case T_DropTableSpaceStmt:
		case T_DropSubscriptionStmt:
			return true;
		case T_CreateSubscriptionStmt:
			{
				CreateSubscriptionStmt *s = (CreateSubscriptionStmt *) stmt;
				ListCell   *lc;

				/* create_slot defaults to true, and then it is top-level */
				foreach(lc, s->options)
				{
					DefElem    *opt = (DefElem *) lfirst(lc);

					if (strcmp(opt->defname, "create_slot") == 0 ||
						strcmp(opt->defname, "connect") == 0)
						if (!mt_option_is_true(list_make1(opt), opt->defname))
							return false;
				}
				return true;
			}
		case T_AlterSubscriptionStmt:
			{
				AlterSubscriptionStmt *s = (AlterSubscriptionStmt *) stmt;
				ListCell   *lc;

				if (s->kind == ALTER_SUBSCRIPTION_REFRESH)
					return true;
				if (s->kind != ALTER_SUBSCRIPTION_SET_PUBLICATION &&
					s->kind != ALTER_SUBSCRIPTION_ADD_PUBLICATION &&
					s->kind != ALTER_SUBSCRIPTION_DROP_PUBLICATION)
					return false;
				/* publication changes refresh by default */
				foreach(lc, s->options)
				{
					DefElem    *opt = (DefElem *) lfirst(lc);

					if (strcmp(opt->defname, "refresh") == 0)
						return mt_option_is_true(list_make1(opt), "refresh");
				}
				return true;
			}
		case T_AlterDatabaseStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
					if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
						return true;
				return false;
			}
		case T_DiscardStmt:
			return ((DiscardStmt *) stmt)->target == DISCARD_ALL;
		case T_TransactionStmt:
			{
				TransactionStmt *t = (TransactionStmt *) stmt;

				return t->kind == TRANS_STMT_COMMIT_PREPARED ||
					t->kind == TRANS_STMT_ROLLBACK_PREPARED;
			}
		case T_AlterTableStmt:
			return mt_detaches_concurrently((AlterTableStmt *) stmt);
		case T_AlterEnumStmt:
			/* ADD VALUE runs in a transaction block since PostgreSQL 12 */
			return false;
		default:
			return false;
	}
}

/* Is this a transaction control statement (BEGIN, COMMIT, SET ...)? */
static bool
statement_is_transaction_control(Node *stmt)
{
	return IsA(stmt, TransactionStmt) || IsA(stmt, VariableSetStmt);
}

/*
 * Describe one raw statement of a script.  The result and everything it
 * points to are allocated in the current memory context.
 */
MtStatementInfo *
mt_describe_statement(const char *sql, RawStmt *raw, int number)
{
	MtStatementInfo *info = (MtStatementInfo *) palloc0(sizeof(MtStatementInfo));
	Node	   *stmt = raw->stmt;
	int			loc = raw->stmt_location;
	int			len = raw->stmt_len;

	trim_statement(sql, &loc, &len);
	info->statement = number;
	info->location = loc;
	info->length = len;
	info->sql = pnstrdup(sql + loc, len);
	info->command_tag = GetCommandTagName(CreateCommandTag(stmt));
	info->is_ddl = (GetCommandLogLevel(stmt) == LOGSTMT_DDL);
	info->needs_top_level = statement_needs_top_level(stmt);
	info->is_transaction_control = statement_is_transaction_control(stmt);
	info->locks = mt_statement_locks(stmt);
	return info;
}

/*
 * A script that sets search_path resolves its later names in that path:
 * follow SET/RESET search_path (and SET LOCAL) while the script is read.
 * The value is applied at the GUC nest level the caller opened, with
 * GUC_ACTION_SAVE, so that it is undone when that level is closed.
 */
static void
script_follow_search_path(Node *stmt)
{
	VariableSetStmt *s;

	if (stmt == NULL || !IsA(stmt, VariableSetStmt))
		return;
	s = (VariableSetStmt *) stmt;
	if (s->name == NULL || strcmp(s->name, "search_path") != 0)
		return;
	switch (s->kind)
	{
		case VAR_SET_VALUE:
			(void) set_config_option("search_path", ExtractSetVariableArgs(s),
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			break;
		case VAR_SET_DEFAULT:
		case VAR_RESET:
			(void) set_config_option("search_path", NULL,
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			break;
		default:
			break;
	}
}

/*
 * Run fn on each statement of a script, in order, with the statement's
 * number (from 1).  SET search_path in the script is followed after each
 * statement, so that later names resolve as they will when the script runs,
 * and undone at the end.  The parse trees are allocated in the current
 * memory context.
 */
void
mt_script_foreach(const char *sql, MtScriptStatementFn fn, void *arg)
{
	List	   *stmts = parse_script(sql);
	ListCell   *lc;
	int			n = 0;
	int			nestlevel;

	nestlevel = NewGUCNestLevel();
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);

		CHECK_FOR_INTERRUPTS();
		fn(sql, raw, ++n, arg);
		script_follow_search_path(raw->stmt);
	}
	AtEOXact_GUC(true, nestlevel);
}

/* What analyze_statement() adds to, and where the result must live. */
typedef struct AnalyzeState
{
	MemoryContext result_cxt;
	List	   *result;
} AnalyzeState;

/* mt_script_foreach() callback of mt_analyze_script(). */
static void
analyze_statement(const char *sql, RawStmt *raw, int number, void *arg)
{
	AnalyzeState *as = (AnalyzeState *) arg;
	MemoryContext oldcxt = MemoryContextSwitchTo(as->result_cxt);

	as->result = lappend(as->result, mt_describe_statement(sql, raw, number));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Split and analyse a script; see lint.h.  The parse trees live in a
 * private memory context that is gone when we return.
 */
List *
mt_analyze_script(const char *sql)
{
	AnalyzeState as;
	MemoryContext parsecxt;
	MemoryContext oldcxt;

	as.result_cxt = CurrentMemoryContext;
	as.result = NIL;
	parsecxt = AllocSetContextCreate(CurrentMemoryContext,
									 "migration_tools script analysis",
									 ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(parsecxt);
	mt_script_foreach(sql, analyze_statement, &as);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(parsecxt);
	return as.result;
}

/*
 * Name of a lock mode, as pg_locks spells it.
 */
const char *
mt_lint_lock_mode_name(LOCKMODE mode)
{
	if (mode < AccessShareLock || mode > AccessExclusiveLock)
		return NULL;
	return GetLockmodeName(DEFAULT_LOCKMETHOD, mode);
}

/*
 * SQL: script_statements(sql text): the statements of a script as the
 * server's parser splits them, with what apply() needs to know about each.
 */
PG_FUNCTION_INFO_V1(mt_script_statements);

Datum
mt_script_statements(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext workcxt;
	MemoryContext oldcxt;
	List	   *infos;
	ListCell   *lc;

	mt_init_materialized_srf(fcinfo);

	workcxt = AllocSetContextCreate(CurrentMemoryContext,
									"migration_tools script_statements",
									ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(workcxt);
	infos = mt_analyze_script(sql);

	foreach(lc, infos)
	{
		MtStatementInfo *info = (MtStatementInfo *) lfirst(lc);
		Datum		values[9];
		bool		nulls[9];
		ListCell   *lc2;
		Datum	   *locks;
		int			nlocks = 0;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(info->statement);
		values[1] = Int32GetDatum(info->location);
		values[2] = Int32GetDatum(info->length);
		values[3] = CStringGetTextDatum(info->command_tag);
		values[4] = BoolGetDatum(info->is_ddl);
		values[5] = BoolGetDatum(info->needs_top_level);
		values[6] = BoolGetDatum(info->is_transaction_control);

		locks = (Datum *) palloc(sizeof(Datum) * (list_length(info->locks) + 1));
		foreach(lc2, info->locks)
		{
			MtLockTarget *t = (MtLockTarget *) lfirst(lc2);
			char	   *relname = OidIsValid(t->relid) ?
			mt_relation_display_name(t->relid) : NULL;

			locks[nlocks++] = CStringGetTextDatum(psprintf("%s:%s",
														   relname ? relname : "(not yet)",
														   mt_lint_lock_mode_name(t->mode)));
		}
		values[7] = PointerGetDatum(construct_array(locks, nlocks, TEXTOID,
													-1, false, TYPALIGN_INT));
		values[8] = CStringGetTextDatum(info->sql);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(workcxt);
	return (Datum) 0;
}

/*
 * Display name of a relation: schema-qualified unless it is visible in the
 * search path.  NULL when it does not exist.
 */
char *
mt_relation_display_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		return NULL;
	if (RelationIsVisible(relid))
		return pstrdup(quote_identifier(relname));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/*
 * The lowest severity at which apply() refuses a migration, from
 * migration_tools.lint_level: 3 (error), 2 (warning), or 0 when off.
 */
int
mt_lint_fail_level(void)
{
	return mt_lint_level;
}
