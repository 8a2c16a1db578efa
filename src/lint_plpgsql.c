/*-------------------------------------------------------------------------
 *
 * lint_plpgsql.c
 *	  The SQL statements of a DO block, found with the server's own PL/pgSQL
 *	  compiler.
 *
 * A DO block of PL/pgSQL is compiled (never executed) by the language's
 * own inline handler, as DO does, with this module as the PL/pgSQL
 * instrumentation plugin for that call: the plugin's setup callback gets
 * the compiled function before the first statement runs, walks it, and
 * stops the call with an error.  (The compile function itself is not
 * exported by the plpgsql library since PostgreSQL 16.)  The statement
 * tree is walked: each static
 * SQL statement (and the query of a FOR loop, a cursor, RETURN QUERY or
 * PERFORM) is parsed with the server's parser for the linter, as is the
 * text of an EXECUTE when it is a constant string; an EXECUTE of text
 * built at run time is reported as something that cannot be checked.
 * The compile runs in a subtransaction, so that a body the compiler
 * refuses leaves nothing behind: a syntax error becomes an ERROR that
 * points into the script (or nothing, for the statement analysis), any
 * other compile error (a type the script creates earlier, say) a reason
 * why the block was not checked.
 *
 * Without plpgsql in the database, a block of plain SQL between BEGIN
 * and END is still read with the SQL parser alone; anything else is not
 * checked.
 *
 * IDENTIFICATION
 *	  src/lint_plpgsql.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_language.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "plpgsql.h"
#define MT_HAVE_PLPGSQL 1

#include "lint_int.h"

/* a body with more statements than this is cut short */
#define MT_DO_MAX_STATEMENTS	10000

/* ----------------------------------------------------------------
 * Blocks of plain SQL (the fallback)
 * ----------------------------------------------------------------
 */

static List *parse_expr_text(const char *text, RawParseMode mode);

/*
 * Does the word w (letters only) start at p of body, standing alone?
 */
static bool
word_at(const char *body, const char *p, const char *w)
{
	size_t		n = strlen(w);

	if (pg_strncasecmp(p, w, n) != 0)
		return false;
	if (p > body && (isalnum((unsigned char) p[-1]) || p[-1] == '_'))
		return false;
	return !(isalnum((unsigned char) p[n]) || p[n] == '_');
}

/*
 * The statements of a body that is nothing but plain SQL between BEGIN and
 * END (optionally followed by an EXCEPTION part), as migration tools write
 * them: a list of RawStmt of the text returned in *inner.  NIL for any
 * other body.
 */
static List *
plain_sql_statements(const char *body, char **inner)
{
	const char *p;
	const char *end;
	const char *cut;

	*inner = NULL;
	/* BEGIN <statements> [EXCEPTION ...] END [;] */
	p = body;
	while (*p && isspace((unsigned char) *p))
		p++;
	if (!word_at(body, p, "begin"))
		return NIL;
	p += 5;
	end = body + strlen(body);
	while (end > p && (isspace((unsigned char) end[-1]) || end[-1] == ';'))
		end--;
	if (end - p < 3 || !word_at(body, end - 3, "end"))
		return NIL;
	end -= 3;
	/* the last EXCEPTION ends the statements */
	for (cut = end - 1; cut >= p; cut--)
		if (word_at(body, cut, "exception"))
		{
			end = cut;
			break;
		}
	*inner = pnstrdup(p, end - p);

	/* a syntax error (the body is PL/pgSQL, not SQL) is forgotten */
	return parse_expr_text(*inner, RAW_PARSE_DEFAULT);
}

/*
 * The body and language of a DO statement; false if it has no body.
 * *body_location is the byte offset of the body's string literal in the
 * text the statement was parsed from, or -1.
 */
static bool
do_statement_body(DoStmt *stmt, const char **body, const char **language,
				  int *body_location)
{
	ListCell   *lc;

	*body = NULL;
	*language = NULL;
	*body_location = -1;
	foreach(lc, stmt->args)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (!IsA(d, DefElem) || d->defname == NULL)
			continue;
		if (strcmp(d->defname, "as") == 0 && d->arg && IsA(d->arg, String))
		{
			*body = strVal(d->arg);
			*body_location = d->location;
		}
		else if (strcmp(d->defname, "language") == 0 && d->arg &&
				 IsA(d->arg, String))
			*language = strVal(d->arg);
	}
	return *body != NULL;
}

/* A statement of the block, as the linter sees it. */
static MtDoStatement *
make_do_statement(RawStmt *raw, const char *sql, int lineno, bool from_execute,
				  bool in_loop, void *ns)
{
	MtDoStatement *ds = (MtDoStatement *) palloc0(sizeof(MtDoStatement));

	ds->raw = raw;
	ds->sql = sql;
	ds->lineno = lineno;
	ds->from_execute = from_execute;
	ds->in_loop = in_loop;
	ds->ns = ns;
	return ds;
}

/* The block read as plain SQL between BEGIN and END. */
static void
read_plain_sql(MtDoBlock *block, const char *body)
{
	char	   *inner;
	List	   *stmts = plain_sql_statements(body, &inner);
	ListCell   *lc;

	foreach(lc, stmts)
		block->statements = lappend(block->statements,
									make_do_statement(lfirst_node(RawStmt, lc),
													  inner, 0, false, false,
													  NULL));
}

#ifdef MT_HAVE_PLPGSQL

/* ----------------------------------------------------------------
 * PL/pgSQL
 * ----------------------------------------------------------------
 */

/*
 * The inline handler of plpgsql (what runs a DO block), InvalidOid when
 * the language is not installed in this database (or no subtransaction can
 * be started here, which the compile needs).  *langoid is the language.
 */
static Oid
find_plpgsql_inline_handler(Oid *langoid)
{
	HeapTuple	tup;
	Oid			handler;

	if (!IsTransactionState() || IsInParallelMode())
		return InvalidOid;
	tup = SearchSysCache1(LANGNAME, CStringGetDatum("plpgsql"));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	*langoid = ((Form_pg_language) GETSTRUCT(tup))->oid;
	handler = ((Form_pg_language) GETSTRUCT(tup))->laninline;
	ReleaseSysCache(tup);
	return handler;
}

/* What the walk of the statement tree collects into. */
typedef struct WalkState
{
	MtDoBlock  *block;
	PLpgSQL_function *func;
	int			loops;			/* loops around the current statement */
	int			count;
	List	   *loop_list;		/* MtDoLoop *, outermost first */
} WalkState;

/* Fill in the loops around a statement about to be added. */
static MtDoStatement *
with_loop(WalkState *ws, MtDoStatement *ds)
{
	ds->loops = list_copy(ws->loop_list);
	return ds;
}

static void walk_statements(WalkState *ws, List *stmts);

/*
 * Parse the text of a PL/pgSQL expression or statement as the function
 * would at run time; NIL if it does not parse (the raw parser only
 * allocates memory, so its error is caught and forgotten).  For compiled
 * PL/pgSQL that is not expected: the compiler has checked the syntax.
 */
static List *
parse_expr_text(const char *text, RawParseMode mode)
{
	List	   *volatile stmts = NIL;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		stmts = raw_parser(text, mode);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		stmts = NIL;
	}
	PG_END_TRY();
	return stmts;
}

/* A static SQL statement (or query) of the block. */
static void
add_sql(WalkState *ws, PLpgSQL_expr *expr, int lineno)
{
	ListCell   *lc;

	if (expr == NULL || expr->query == NULL ||
		ws->count >= MT_DO_MAX_STATEMENTS)
		return;
	if (expr->parseMode != RAW_PARSE_DEFAULT)
		return;
	foreach(lc, parse_expr_text(expr->query, RAW_PARSE_DEFAULT))
	{
		ws->count++;
		ws->block->statements =
			lappend(ws->block->statements,
					with_loop(ws, make_do_statement(lfirst_node(RawStmt, lc),
													expr->query, lineno, false,
													ws->loops > 0,
													(void *) expr->ns)));
	}
}

/*
 * The value of a raw expression made of string constants only (a literal,
 * casts of one, || of such), or NULL.
 */
static char *
constant_string(Node *node, int depth)
{
	if (node == NULL || depth > 100)
		return NULL;
	check_stack_depth();
	if (IsA(node, TypeCast))
		return constant_string(((TypeCast *) node)->arg, depth + 1);
	if (IsA(node, A_Const))
	{
		A_Const    *c = (A_Const *) node;

		if (!c->isnull && IsA(&c->val, String))
			return pstrdup(strVal(&c->val));
		return NULL;
	}
	if (IsA(node, A_Expr))
	{
		A_Expr	   *a = (A_Expr *) node;
		char	   *l;
		char	   *r;

		if (a->kind != AEXPR_OP || list_length(a->name) != 1 ||
			!IsA(linitial(a->name), String) ||
			strcmp(strVal(linitial(a->name)), "||") != 0)
			return NULL;
		l = constant_string(a->lexpr, depth + 1);
		r = l ? constant_string(a->rexpr, depth + 1) : NULL;
		return r ? psprintf("%s%s", l, r) : NULL;
	}
	return NULL;
}

/* An unchecked EXECUTE: where it is and why. */
static void
add_unchecked(WalkState *ws, int lineno, const char *reason)
{
	MtDoUnchecked *u = (MtDoUnchecked *) palloc0(sizeof(MtDoUnchecked));

	u->lineno = lineno;
	u->reason = reason;
	u->in_loop = ws->loops > 0;
	ws->block->unchecked = lappend(ws->block->unchecked, u);
}

/*
 * EXECUTE (or FOR ... IN EXECUTE, OPEN ... FOR EXECUTE, RETURN QUERY
 * EXECUTE): a constant string is parsed and linted like the rest; text
 * built at run time cannot be.
 */
static void
add_dynamic(WalkState *ws, PLpgSQL_expr *expr, int lineno)
{
	List	   *parsed;
	Node	   *value = NULL;
	char	   *text;
	List	   *volatile stmts = NIL;
	char	   *volatile message = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	ListCell   *lc;

	if (expr == NULL || expr->query == NULL ||
		ws->count >= MT_DO_MAX_STATEMENTS)
		return;
	parsed = parse_expr_text(expr->query, RAW_PARSE_PLPGSQL_EXPR);
	if (list_length(parsed) == 1)
	{
		Node	   *s = linitial_node(RawStmt, parsed)->stmt;

		if (IsA(s, SelectStmt) &&
			list_length(((SelectStmt *) s)->targetList) == 1 &&
			((SelectStmt *) s)->fromClause == NIL)
		{
			ResTarget  *rt = linitial_node(ResTarget, ((SelectStmt *) s)->targetList);

			value = rt->val;
		}
	}
	text = constant_string(value, 0);
	if (text == NULL)
	{
		add_unchecked(ws, lineno, NULL);
		return;
	}

	PG_TRY();
	{
		stmts = raw_parser(text, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		message = edata->message;
		stmts = NIL;
	}
	PG_END_TRY();
	if (message != NULL)
	{
		add_unchecked(ws, lineno, message);
		return;
	}
	foreach(lc, stmts)
	{
		ws->count++;
		ws->block->statements =
			lappend(ws->block->statements,
					with_loop(ws, make_do_statement(lfirst_node(RawStmt, lc),
													text, lineno, true,
													ws->loops > 0, NULL)));
	}
}


/*
 * A loop body: its statements run once per iteration.  query is the raw
 * SELECT a FOR loop runs over (with the names it sees), count the
 * iterations of an integer FOR loop with constant bounds (-1 unknown).
 */
static void
walk_loop(WalkState *ws, List *body, Node *query, void *ns, double count)
{
	MtDoLoop   *loop = (MtDoLoop *) palloc0(sizeof(MtDoLoop));

	loop->query = query;
	loop->ns = ns;
	loop->count = count;
	ws->loops++;
	ws->loop_list = lappend(ws->loop_list, loop);
	walk_statements(ws, body);
	ws->loop_list = list_delete_last(ws->loop_list);
	ws->loops--;
}

/* The raw SELECT of a static query expression, or NULL. */
static Node *
loop_select(PLpgSQL_expr *expr)
{
	List	   *stmts;
	Node	   *s;

	if (expr == NULL || expr->query == NULL ||
		expr->parseMode != RAW_PARSE_DEFAULT)
		return NULL;
	stmts = parse_expr_text(expr->query, RAW_PARSE_DEFAULT);
	if (list_length(stmts) != 1)
		return NULL;
	s = linitial_node(RawStmt, stmts)->stmt;
	return IsA(s, SelectStmt) ? s : NULL;
}

/* The query of an explicitly declared cursor, or NULL. */
static PLpgSQL_expr *
cursor_expr(WalkState *ws, int curvar)
{
	PLpgSQL_var *var;

	if (curvar < 0 || curvar >= ws->func->ndatums)
		return NULL;
	var = (PLpgSQL_var *) ws->func->datums[curvar];
	if (var == NULL || var->dtype != PLPGSQL_DTYPE_VAR)
		return NULL;
	return var->cursor_explicit_expr;
}

/* The value of a PL/pgSQL expression that is an integer constant. */
static bool
integer_expr(PLpgSQL_expr *expr, double *value)
{
	List	   *stmts;
	Node	   *s;
	Node	   *v;
	bool		negative = false;

	if (expr == NULL || expr->query == NULL)
		return false;
	stmts = parse_expr_text(expr->query, RAW_PARSE_PLPGSQL_EXPR);
	if (list_length(stmts) != 1)
		return false;
	s = linitial_node(RawStmt, stmts)->stmt;
	if (!IsA(s, SelectStmt) || list_length(((SelectStmt *) s)->targetList) != 1 ||
		((SelectStmt *) s)->fromClause != NIL)
		return false;
	v = linitial_node(ResTarget, ((SelectStmt *) s)->targetList)->val;
	if (v && IsA(v, A_Expr) && ((A_Expr *) v)->kind == AEXPR_OP &&
		((A_Expr *) v)->lexpr == NULL && list_length(((A_Expr *) v)->name) == 1 &&
		strcmp(strVal(linitial(((A_Expr *) v)->name)), "-") == 0)
	{
		negative = true;
		v = ((A_Expr *) v)->rexpr;
	}
	if (v == NULL || !IsA(v, A_Const) || ((A_Const *) v)->isnull ||
		!IsA(&((A_Const *) v)->val, Integer))
		return false;
	*value = intVal(&((A_Const *) v)->val);
	if (negative)
		*value = -*value;
	return true;
}

/* Iterations of FOR i IN [REVERSE] a .. b [BY s] with constants; -1 unknown. */
static double
fori_count(PLpgSQL_stmt_fori *s)
{
	double		lower,
				upper,
				step = 1;
	double		span;

	if (!integer_expr(s->lower, &lower) || !integer_expr(s->upper, &upper) ||
		(s->step && !integer_expr(s->step, &step)) || step <= 0)
		return -1;
	span = s->reverse ? lower - upper : upper - lower;
	return span < 0 ? 0 : floor(span / step) + 1;
}

/*
 * BEGIN ... END (with its EXCEPTION handlers), IF, CASE: every branch.
 */
static void
walk_branches(WalkState *ws, PLpgSQL_stmt *stmt)
{
	ListCell   *lc;

	switch (stmt->cmd_type)
	{
		case PLPGSQL_STMT_BLOCK:
			{
				PLpgSQL_stmt_block *s = (PLpgSQL_stmt_block *) stmt;

				walk_statements(ws, s->body);
				if (s->exceptions)
					foreach(lc, s->exceptions->exc_list)
						walk_statements(ws, ((PLpgSQL_exception *) lfirst(lc))->action);
				break;
			}
		case PLPGSQL_STMT_IF:
			{
				PLpgSQL_stmt_if *s = (PLpgSQL_stmt_if *) stmt;

				walk_statements(ws, s->then_body);
				foreach(lc, s->elsif_list)
					walk_statements(ws, ((PLpgSQL_if_elsif *) lfirst(lc))->stmts);
				walk_statements(ws, s->else_body);
				break;
			}
		case PLPGSQL_STMT_CASE:
			{
				PLpgSQL_stmt_case *s = (PLpgSQL_stmt_case *) stmt;

				foreach(lc, s->case_when_list)
					walk_statements(ws, ((PLpgSQL_case_when *) lfirst(lc))->stmts);
				walk_statements(ws, s->else_stmts);
				break;
			}
		default:
			break;
	}
}

/*
 * A loop statement: the statements of its body (and the query a FOR loop
 * runs over), noting how often they run when that can be told.
 */
static void
walk_loop_statement(WalkState *ws, PLpgSQL_stmt *stmt)
{
	switch (stmt->cmd_type)
	{
		case PLPGSQL_STMT_LOOP:
			walk_loop(ws, ((PLpgSQL_stmt_loop *) stmt)->body, NULL, NULL, -1);
			break;
		case PLPGSQL_STMT_WHILE:
			walk_loop(ws, ((PLpgSQL_stmt_while *) stmt)->body, NULL, NULL, -1);
			break;
		case PLPGSQL_STMT_FORI:
			walk_loop(ws, ((PLpgSQL_stmt_fori *) stmt)->body, NULL, NULL,
					  fori_count((PLpgSQL_stmt_fori *) stmt));
			break;
		case PLPGSQL_STMT_FOREACH_A:
			walk_loop(ws, ((PLpgSQL_stmt_foreach_a *) stmt)->body, NULL, NULL, -1);
			break;
		case PLPGSQL_STMT_FORS:
			{
				PLpgSQL_stmt_fors *s = (PLpgSQL_stmt_fors *) stmt;

				add_sql(ws, s->query, stmt->lineno);
				walk_loop(ws, s->body, loop_select(s->query),
						  s->query ? (void *) s->query->ns : NULL, -1);
				break;
			}
		case PLPGSQL_STMT_FORC:
			{
				PLpgSQL_stmt_forc *s = (PLpgSQL_stmt_forc *) stmt;
				PLpgSQL_expr *q = cursor_expr(ws, s->curvar);

				add_sql(ws, cursor_expr(ws, s->curvar), stmt->lineno);
				walk_loop(ws, s->body, loop_select(q),
						  q ? (void *) q->ns : NULL, -1);
				break;
			}
		case PLPGSQL_STMT_DYNFORS:
			{
				PLpgSQL_stmt_dynfors *s = (PLpgSQL_stmt_dynfors *) stmt;

				add_dynamic(ws, s->query, stmt->lineno);
				walk_loop(ws, s->body, NULL, NULL, -1);
				break;
			}
		default:
			break;
	}
}

/*
 * One statement of the body: the SQL it runs (static statements, PERFORM,
 * CALL, RETURN QUERY, OPEN, EXECUTE) and the statements it contains.
 */
static void
walk_statement(WalkState *ws, PLpgSQL_stmt *stmt)
{
	if (stmt == NULL)
		return;
	check_stack_depth();
	CHECK_FOR_INTERRUPTS();

	switch (stmt->cmd_type)
	{
		case PLPGSQL_STMT_BLOCK:
		case PLPGSQL_STMT_IF:
		case PLPGSQL_STMT_CASE:
			walk_branches(ws, stmt);
			break;
		case PLPGSQL_STMT_LOOP:
		case PLPGSQL_STMT_WHILE:
		case PLPGSQL_STMT_FORI:
		case PLPGSQL_STMT_FOREACH_A:
		case PLPGSQL_STMT_FORS:
		case PLPGSQL_STMT_FORC:
		case PLPGSQL_STMT_DYNFORS:
			walk_loop_statement(ws, stmt);
			break;
		case PLPGSQL_STMT_EXECSQL:
			add_sql(ws, ((PLpgSQL_stmt_execsql *) stmt)->sqlstmt, stmt->lineno);
			break;
		case PLPGSQL_STMT_DYNEXECUTE:
			add_dynamic(ws, ((PLpgSQL_stmt_dynexecute *) stmt)->query,
						stmt->lineno);
			break;
		case PLPGSQL_STMT_PERFORM:
			add_sql(ws, ((PLpgSQL_stmt_perform *) stmt)->expr, stmt->lineno);
			break;
		case PLPGSQL_STMT_CALL:
			add_sql(ws, ((PLpgSQL_stmt_call *) stmt)->expr, stmt->lineno);
			break;
		case PLPGSQL_STMT_RETURN_QUERY:
			{
				PLpgSQL_stmt_return_query *s = (PLpgSQL_stmt_return_query *) stmt;

				if (s->query)
					add_sql(ws, s->query, stmt->lineno);
				else
					add_dynamic(ws, s->dynquery, stmt->lineno);
				break;
			}
		case PLPGSQL_STMT_OPEN:
			{
				PLpgSQL_stmt_open *s = (PLpgSQL_stmt_open *) stmt;

				if (s->query)
					add_sql(ws, s->query, stmt->lineno);
				else if (s->dynquery)
					add_dynamic(ws, s->dynquery, stmt->lineno);
				else
					add_sql(ws, cursor_expr(ws, s->curvar), stmt->lineno);
				break;
			}
		case PLPGSQL_STMT_COMMIT:
		case PLPGSQL_STMT_ROLLBACK:
			ws->block->has_commit = true;
			break;
		default:
			/* assignments, RAISE, RETURN, EXIT ...: expressions only */
			break;
	}
}

static void
walk_statements(WalkState *ws, List *stmts)
{
	ListCell   *lc;

	foreach(lc, stmts)
		walk_statement(ws, (PLpgSQL_stmt *) lfirst(lc));
}

/*
 * Is the error one that the compiler raises for a body it refuses (syntax,
 * unknown names and types, unsupported features), rather than a
 * cancellation or a shortage of resources that must go on?
 */
static bool
is_compile_error(ErrorData *edata)
{
	int			category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	return edata->elevel == ERROR &&
		(category == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION ||
		 category == ERRCODE_FEATURE_NOT_SUPPORTED ||
		 category == ERRCODE_DATA_EXCEPTION ||
		 category == ERRCODE_PLPGSQL_ERROR ||
		 category == ERRCODE_INVALID_PARAMETER_VALUE ||
		 category == ERRCODE_DATATYPE_MISMATCH ||
		 category == ERRCODE_INTERNAL_ERROR);
}

/*
 * What the walk of a DO block keeps points into the compiled function (the
 * text of its statements, the names each sees), which the inline handler
 * frees when the call stops: copies of those, made once each, through a
 * table from original to copy (and from each copy to itself, for the loops
 * that several statements share).
 */
typedef struct KeptEntry
{
	const void *orig;
	void	   *copy;
} KeptEntry;

static void *
kept_copy(HTAB *kept, const void *orig, Size size)
{
	KeptEntry  *e;
	bool		found;
	void	   *copy;

	e = hash_search(kept, &orig, HASH_ENTER, &found);
	if (found)
		return e->copy;
	copy = palloc(size);
	memcpy(copy, orig, size);
	e->copy = copy;
	e = hash_search(kept, &copy, HASH_ENTER, &found);
	e->copy = copy;
	return copy;
}

static const char *
keep_string(HTAB *kept, const char *str)
{
	return str ? kept_copy(kept, str, strlen(str) + 1) : NULL;
}

static void *
keep_names(HTAB *kept, void *ns)
{
	PLpgSQL_nsitem *first = NULL;
	PLpgSQL_nsitem **link = &first;
	PLpgSQL_nsitem *item;

	for (item = (PLpgSQL_nsitem *) ns; item != NULL; item = item->prev)
	{
		KeptEntry  *e = hash_search(kept, &item, HASH_FIND, NULL);
		PLpgSQL_nsitem *copy;

		if (e != NULL)
		{
			*link = e->copy;
			break;
		}
		copy = kept_copy(kept, item,
						 offsetof(PLpgSQL_nsitem, name) + strlen(item->name) + 1);
		copy->prev = NULL;
		*link = copy;
		link = &copy->prev;
	}
	return first;
}

static void
keep_block(MtDoBlock *block)
{
	HASHCTL		ctl;
	HTAB	   *kept;
	ListCell   *lc;
	ListCell   *lc2;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(void *);
	ctl.entrysize = sizeof(KeptEntry);
	ctl.hcxt = CurrentMemoryContext;
	kept = hash_create("migration_tools DO block copy", 256, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	foreach(lc, block->statements)
	{
		MtDoStatement *ds = (MtDoStatement *) lfirst(lc);

		ds->sql = keep_string(kept, ds->sql);
		ds->ns = keep_names(kept, ds->ns);
		foreach(lc2, ds->loops)
		{
			MtDoLoop   *loop = (MtDoLoop *) lfirst(lc2);

			loop->ns = keep_names(kept, loop->ns);
		}
	}
	hash_destroy(kept);
}

/*
 * The DO block being read: where read_block_setup() puts its statements,
 * and whether it did.
 */
static MtDoBlock *reading_block = NULL;
static MemoryContext reading_cxt = NULL;
static bool reading_done = false;

/*
 * The PL/pgSQL plugin's setup callback, called by the inline handler with
 * the compiled block before anything of it runs: walk it, keep what the
 * walk found, and stop the call.
 */
static void
read_block_setup(PLpgSQL_execstate *estate, PLpgSQL_function *func)
{
	MemoryContext old;
	WalkState	ws;

	if (reading_block == NULL)
		elog(ERROR, "migration_tools: PL/pgSQL block set up outside the linter");
	old = MemoryContextSwitchTo(reading_cxt);
	memset(&ws, 0, sizeof(ws));
	ws.block = reading_block;
	ws.func = func;
	walk_statement(&ws, (PLpgSQL_stmt *) func->action);
	keep_block(reading_block);
	MemoryContextSwitchTo(old);
	reading_block = NULL;
	reading_done = true;
	/* caught by compile_body(): the block must not run */
	elog(ERROR, "migration_tools: DO block read, not run");
}

static PLpgSQL_plugin read_block_plugin = {
	.func_setup = read_block_setup,
};

/*
 * Compile the body with plpgsql's inline handler in a subtransaction and
 * walk it into block; false, with the error in *error, when the compiler
 * refuses it.  The handler is stopped by read_block_setup() before the
 * first statement: nothing of the block runs, and the subtransaction is
 * rolled back in every case.  Syntax is checked as with
 * check_function_bodies on, without the extra checks a session may have
 * turned on.  The portal is hidden meanwhile, so that a syntax error
 * keeps its position in the body rather than being moved into the calling
 * query.  Another PL/pgSQL plugin (a debugger, say) is set aside for the
 * call.
 */
static bool
compile_body(Oid handler, Oid langoid, const char *body, MtDoBlock *block,
			 ErrorData **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Portal		portal = ActivePortal;
	PLpgSQL_plugin **plugin =
		(PLpgSQL_plugin **) find_rendezvous_variable("PLpgSQL_plugin");
	PLpgSQL_plugin *saved_plugin = *plugin;
	InlineCodeBlock *codeblock = makeNode(InlineCodeBlock);
	ErrorData  *edata;

	codeblock->source_text = pstrdup(body);
	codeblock->langOid = langoid;
	codeblock->langIsTrusted = true;
	codeblock->atomic = true;

	*error = NULL;
	reading_block = block;
	reading_cxt = cxt;
	reading_done = false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		(void) NewGUCNestLevel();
		(void) set_config_option("check_function_bodies", "on",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("plpgsql.extra_warnings", "none",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("plpgsql.extra_errors", "none",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		ActivePortal = NULL;
		*plugin = &read_block_plugin;
		(void) OidFunctionCall1(handler, PointerGetDatum(codeblock));
		/* not reached: read_block_setup() stops the call */
		elog(ERROR, "migration_tools: the DO block was not read");
	}
	PG_CATCH();
	{
		*plugin = saved_plugin;
		ActivePortal = portal;
		reading_block = NULL;
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();

		/* also undoes the GUC settings */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();

	if (reading_done)
		return true;
	if (!is_compile_error(edata))
		ReThrowError(edata);
	*error = edata;
	return false;
}

/*
 * The byte offset in text of the first character of the body of the
 * string literal at literal (a dollar-quoted string, or a plain one without
 * escapes), or -1 when the literal's text is not the body itself.
 */
static int
body_start_in_text(const char *text, int literal, const char *body)
{
	int			len;
	int			start;

	if (text == NULL || literal < 0)
		return -1;
	len = strlen(text);
	if (literal >= len)
		return -1;
	if (text[literal] == '$')
	{
		const char *close = strchr(text + literal + 1, '$');

		if (close == NULL)
			return -1;
		start = close - text + 1;
	}
	else if (text[literal] == '\'')
		start = literal + 1;
	else
		return -1;
	if (strncmp(text + start, body, strlen(body)) != 0)
		return -1;
	return start;
}

/*
 * Raise a syntax error of the body as an ERROR at its place in the script
 * (or, when the literal holds escapes, at the DO statement).
 */
static void
raise_body_syntax_error(ErrorData *edata, const char *body, const char *script,
						int literal, int statement)
{
	int			start = body_start_in_text(script, literal, body);
	int			pos = 0;

	if (script != NULL && edata->internalpos > 0 && start >= 0)
	{
		/* internalpos counts characters of the body, from 1 */
		int			off = 0;
		int			blen = strlen(body);
		int			i;

		for (i = 1; i < edata->internalpos && off < blen; i++)
			off += pg_mblen(body + off);
		pos = pg_mbstrlen_with_len(script, start + off) + 1;
	}
	else if (script != NULL && literal >= 0 && literal < (int) strlen(script))
		pos = pg_mbstrlen_with_len(script, literal) + 1;

	mt_script_error(script, pos, edata,
					psprintf("PL/pgSQL DO block of statement %d", statement));
}

#endif							/* MT_HAVE_PLPGSQL */

/*
 * The SQL of a DO block; see lint_int.h.
 */
MtDoBlock *
mt_do_block_analyze(DoStmt *stmt, const char *script, int statement,
					bool raise_syntax_errors)
{
	MtDoBlock  *block = (MtDoBlock *) palloc0(sizeof(MtDoBlock));
	const char *body;
	const char *language;
	int			literal;

	if (!do_statement_body(stmt, &body, &language, &literal))
		return block;
	if (language != NULL && strcmp(language, "plpgsql") != 0)
	{
		block->not_checked = psprintf("it is written in %s, not PL/pgSQL",
									  language);
		return block;
	}

#ifdef MT_HAVE_PLPGSQL
	{
		Oid			langoid = InvalidOid;
		Oid			handler = find_plpgsql_inline_handler(&langoid);
		ErrorData  *error = NULL;

		if (OidIsValid(handler))
		{
			if (compile_body(handler, langoid, body, block, &error))
			{
				block->compiled = true;
				return block;
			}
			if (error->sqlerrcode == ERRCODE_SYNTAX_ERROR && raise_syntax_errors)
				raise_body_syntax_error(error, body, script, literal, statement);
			block->not_checked = psprintf("PL/pgSQL cannot compile it here: %s",
										  error->message);
		}
	}
#endif

	/* without the compiler: a body of plain SQL is read all the same */
	read_plain_sql(block, body);
	if (block->statements != NIL)
		block->not_checked = NULL;
	return block;
}

/*
 * Does a ColumnRef of a statement of a DO block name a PL/pgSQL variable
 * (or a field of a record variable) visible to that statement?  Then it is
 * a value at run time, not a column.
 */
bool
mt_do_is_variable(void *ns, ColumnRef *cref)
{
#ifdef MT_HAVE_PLPGSQL
	PLpgSQL_nsitem *item;
	const char *first;
	int			nfields;

	if (ns == NULL || cref == NULL || cref->fields == NIL ||
		!IsA(linitial(cref->fields), String))
		return false;
	first = strVal(linitial(cref->fields));
	nfields = list_length(cref->fields);
	for (item = (PLpgSQL_nsitem *) ns; item != NULL; item = item->prev)
	{
		if (strcmp(item->name, first) != 0)
			continue;
		switch (item->itemtype)
		{
			case PLPGSQL_NSTYPE_VAR:
				return nfields == 1;
			case PLPGSQL_NSTYPE_REC:
				return nfields <= 2;
			case PLPGSQL_NSTYPE_LABEL:
				/* block.variable or block.record.field */
				return nfields >= 2;
		}
	}
#endif
	return false;
}
