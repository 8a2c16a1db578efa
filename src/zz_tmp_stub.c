/* TEMPORARY local stub until lint lands; never committed */
#include "postgres.h"
#include "catalog/namespace.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/utility.h"
#include "lint.h"

List *
mt_analyze_script(const char *sql)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	List	   *res = NIL;
	ListCell   *lc;
	int			n = 0;

	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		MtStatementInfo *info = palloc0(sizeof(MtStatementInfo));
		Node	   *s = rs->stmt;
		int			len = rs->stmt_len ? rs->stmt_len : strlen(sql) - rs->stmt_location;

		info->statement = ++n;
		info->location = rs->stmt_location;
		info->sql = pnstrdup(sql + rs->stmt_location, len);
		info->command_tag = GetCommandTagName(CreateCommandTag(s));
		if (IsA(s, IndexStmt) && ((IndexStmt *) s)->concurrent)
			info->needs_top_level = true;
		if (IsA(s, VacuumStmt))
			info->needs_top_level = true;
		if (IsA(s, DropStmt) && ((DropStmt *) s)->concurrent)
			info->needs_top_level = true;
		if (IsA(s, AlterTableStmt))
		{
			MtLockTarget *t = palloc0(sizeof(MtLockTarget));
			t->relid = RangeVarGetRelid(((AlterTableStmt *) s)->relation, NoLock, true);
			t->mode = AccessExclusiveLock;
			info->locks = lappend(info->locks, t);
		}
		res = lappend(res, info);
	}
	return res;
}

List *
mt_lint_script(const char *sql)
{
	List	   *res = NIL;
	ListCell   *lc;

	foreach(lc, mt_analyze_script(sql))
	{
		MtStatementInfo *info = lfirst(lc);
		if (strcmp(info->command_tag, "CREATE INDEX") == 0 && !info->needs_top_level)
		{
			MtLintFinding *f = palloc0(sizeof(MtLintFinding));
			f->statement = info->statement;
			f->rule = "create-index-non-concurrently";
			f->severity = "error";
			f->message = "stub message";
			res = lappend(res, f);
		}
	}
	return res;
}

int
mt_lint_severity_level(const char *severity)
{
	if (strcmp(severity, "error") == 0) return 3;
	if (strcmp(severity, "warning") == 0) return 2;
	if (strcmp(severity, "info") == 0) return 1;
	return -1;
}
