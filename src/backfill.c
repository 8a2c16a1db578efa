/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Batched backfills: the SQL functions that queue jobs (backfill(),
 *	  run_batched()) and control them (pause, resume, cancel, retry, wait),
 *	  the subsystem's settings, and the statement builders that the queue
 *	  time validation and the worker (backfill_worker.c) share.
 *
 * A job is a row of migration_tools.backfill_jobs.  Queueing validates
 * everything that can be validated without running anything: the
 * relation, the caller's privileges, the options, and the statement the
 * worker will run, which is built here and parse-analyzed as the caller.
 * The worker later runs exactly that statement, as the role that queued
 * the job.  The job tables are written as the extension owner with a
 * pinned search_path, never as the caller, so that callers need no
 * privileges on them and cannot forge a job of another role.
 *
 * IDENTIFICATION
 *	  src/backfill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/scansup.h"
#include "pgstat.h"
#include "rewrite/rewriteManip.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "backfill.h"
#include "backfill_int.h"
#include "launcher.h"
#include "migration_tools.h"

/* GUCs */
int			mt_max_batch_size = 100000;
int			mt_initial_batch_size = 1000;
int			mt_batch_lock_timeout = 1000;
int			mt_batch_timeout_factor = 10;
int			mt_max_replication_lag = 64 * 1024;	/* kB */
double		mt_max_dead_tuples_ratio = 0.5;
int			mt_min_dead_tuples = 100000;
bool		mt_throttle_on_autovacuum = true;
bool		mt_throttle_on_lock_waiters = true;
int			mt_throttle_sleep = 1000;
int			mt_max_throttle_wait = 10000;
double		mt_busy_duty_cycle = 0.25;
int			mt_batch_history_retention = 1000;
int			mt_max_sweep_passes = 5;

/* How often wait() looks at the job. */
#define MT_WAIT_POLL_MS		100

/* The options shared by backfill() and run_batched(). */
typedef struct MtJobOptions
{
	bool		has_batch_size;
	int32		batch_size;
	Interval   *target_batch_time;
	Interval   *batch_sleep;
	bool		has_start_at;
	TimestampTz start_at;
	int32		max_attempts;
	char	   *strategy;
	char	   *run_window;
	bool		guard;
} MtJobOptions;

static int64 queue_job(Oid relid, const char *text1, const char *where_clause,
					   const MtJobOptions *opts, bool is_backfill);
static void validate_options(const MtJobOptions *opts);
static void analyze_backfill(Relation rel, MtJobSql *js, bool guard,
							 bool update_ok);
static void analyze_run_batched(Relation rel, MtJobSql *js);
static void refuse_key_assignment(Query *query, const MtJobSql *js);
static bool batch_params_walker(Node *node, int *used);
static bool exclusive_bound_walker(Node *node, void *context);
static bool is_blank(const char *str);
static void check_update_shape(List *raws, const MtJobSql *js, bool has_lower);
static char *build_guard(Relation rel, Query *query, bool by_ctid, bool guard,
						 bool has_where);
static bool guard_is_implied(Relation rel, Query *query, Node *where, Node *guard);
static bool expr_is_nonnull(Node *node, Relation rel, Index rtindex);
static void primary_key_columns(Relation rel, MtJobSql *js);
static void check_job_access(int64 job, Oid owner, Oid caller);

/*
 * Define the settings of the backfill subsystem (reloadable ones only).
 */
void
mt_backfill_init(void)
{
	DefineCustomIntVariable("migration_tools.max_batch_size",
							"Largest batch, in rows, that adaptive sizing may choose.",
							NULL,
							&mt_max_batch_size,
							100000, 1, INT_MAX / 4,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.initial_batch_size",
							"First batch size, in rows, of a job with adaptive batch size.",
							NULL,
							&mt_initial_batch_size,
							1000, 1, INT_MAX / 4,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.batch_lock_timeout",
							"lock_timeout of each backfill batch.",
							"A batch that times out is retried with half the rows. 0 disables the timeout.",
							&mt_batch_lock_timeout,
							1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.batch_timeout_factor",
							"statement_timeout of a batch, as a multiple of the job's target_batch_time (at least 1s).",
							"A batch that times out is retried with half the rows. 0 disables the timeout.",
							&mt_batch_timeout_factor,
							10, 0, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_replication_lag",
							"Replay lag of any standby above which backfills pause.",
							"-1 disables this throttle.",
							&mt_max_replication_lag,
							64 * 1024, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomRealVariable("migration_tools.max_dead_tuples_ratio",
							 "Share of dead tuples in the target table above which a backfill pauses.",
							 "Only once the table has more than migration_tools.min_dead_tuples dead tuples. 0 disables this throttle.",
							 &mt_max_dead_tuples_ratio,
							 0.5, 0.0, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.min_dead_tuples",
							"Dead tuples in the target table below which the dead tuple throttle never acts.",
							NULL,
							&mt_min_dead_tuples,
							100000, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("migration_tools.throttle_on_autovacuum",
							 "Pause a backfill while autovacuum processes its table.",
							 NULL,
							 &mt_throttle_on_autovacuum,
							 true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("migration_tools.throttle_on_lock_waiters",
							 "Shrink batches and sleep when other sessions wait for locks a batch holds.",
							 NULL,
							 &mt_throttle_on_lock_waiters,
							 true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.throttle_sleep",
							"How long a throttled backfill sleeps before it looks again.",
							NULL,
							&mt_throttle_sleep,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_throttle_wait",
							"Longest a backfill is held back at a stretch by autovacuum or by dead tuples.",
							"After that it goes on until the condition clears (a new vacuum run, or dead tuples back under the limit). Replication lag, lock waiters and the run window are not capped.",
							&mt_max_throttle_wait,
							10000, 0, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomRealVariable("migration_tools.busy_duty_cycle",
							 "Share of the time a backfill runs batches while the server's CPUs are busy with other sessions.",
							 "Busy: at least as many other processes run a query, not waiting, as there are CPUs. After each batch the job then sleeps so that its batches take this share of the time (at most migration_tools.throttle_sleep). 1 turns this throttle off.",
							 &mt_busy_duty_cycle,
							 0.25, 0.01, 1.0,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.batch_history_retention",
							"Batches kept per job in migration_tools.backfill_batches.",
							"0 keeps no history.",
							&mt_batch_history_retention,
							1000, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_sweep_passes",
							"Sweep passes a ctid strategy job makes for rows that moved, before it fails.",
							NULL,
							&mt_max_sweep_passes,
							5, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

/*
 * Milliseconds in an interval, months counted as 30 days.
 */
double
mt_interval_ms(Interval *iv)
{
	return (double) iv->time / 1000.0 +
		(double) iv->day * 86400000.0 +
		(double) iv->month * 30.0 * 86400000.0;
}

/*
 * Parse a daily run window "HH:MM-HH:MM" (24-hour clock, server time
 * zone); the end may be before the start (a window across midnight).
 */
bool
mt_parse_run_window(const char *text, int *start_min, int *end_min)
{
	int			h1,
				m1,
				h2,
				m2;
	char		tail;

	if (sscanf(text, " %d:%d - %d:%d %c", &h1, &m1, &h2, &m2, &tail) != 4)
		return false;
	if (h1 < 0 || h1 > 24 || h2 < 0 || h2 > 24 ||
		m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59)
		return false;
	if ((h1 == 24 && m1 != 0) || (h2 == 24 && m2 != 0))
		return false;
	*start_min = (h1 * 60 + m1) % 1440;
	*end_min = (h2 * 60 + m2) % 1440;
	return *start_min != *end_min;
}

/* ---------------------------------------------------------------------
 * Statement builders
 * ---------------------------------------------------------------------
 */

/* "ROW(k1, k2)" or "k1", quoted. */
static void
append_key_row(StringInfo buf, const MtJobSql *js)
{
	ListCell   *lc;
	bool		composite = list_length(js->key_columns) > 1;

	if (composite)
		appendStringInfoString(buf, "ROW(");
	foreach(lc, js->key_columns)
	{
		if (lc != list_head(js->key_columns))
			appendStringInfoString(buf, ", ");
		appendStringInfoString(buf, quote_identifier((char *) lfirst(lc)));
	}
	if (composite)
		appendStringInfoChar(buf, ')');
}

/* "ROW($3::t1, $4::t2)" or "$3::t1", text parameters cast to the key types. */
static void
append_key_params(StringInfo buf, const MtJobSql *js, int first)
{
	ListCell   *lc;
	bool		composite = list_length(js->key_types) > 1;
	int			n = first;

	if (composite)
		appendStringInfoString(buf, "ROW(");
	foreach(lc, js->key_types)
	{
		if (lc != list_head(js->key_types))
			appendStringInfoString(buf, ", ");
		appendStringInfo(buf, "$%d::%s", n++, (char *) lfirst(lc));
	}
	if (composite)
		appendStringInfoChar(buf, ')');
}

/*
 * The UPDATE of one backfill() batch (see backfill_int.h for the
 * parameters).  The user's text is enclosed so that check_update_shape()
 * can tell whether it stayed in its place.
 */
char *
mt_backfill_update_sql(const MtJobSql *js, bool has_lower, int *nparams)
{
	StringInfoData buf;
	int			nkeys = list_length(js->key_columns);

	initStringInfo(&buf);
	/* the user's text is always followed by a newline: "--" ends there */
	appendStringInfo(&buf, "UPDATE %s%s SET %s\nWHERE ",
					 js->only ? "ONLY " : "", js->relname, js->set_clause);
	if (js->by_ctid)
	{
		appendStringInfoString(&buf, "ctid >= $1 AND ctid < $2");
		*nparams = 2;
	}
	else
	{
		int			next = 1;

		if (has_lower)
		{
			append_key_row(&buf, js);
			appendStringInfoString(&buf, " > ");
			append_key_params(&buf, js, next);
			appendStringInfoString(&buf, " AND ");
			next += nkeys;
		}
		append_key_row(&buf, js);
		appendStringInfoString(&buf, " <= ");
		append_key_params(&buf, js, next);
		*nparams = next + nkeys - 1;
	}
	if (js->where_clause)
		appendStringInfo(&buf, " AND (%s\n)", js->where_clause);
	if (js->guard_clause)
		appendStringInfo(&buf, " AND (%s)", js->guard_clause);
	return buf.data;
}

/*
 * The key probes, index-ordered scans of the primary key from the
 * checkpoint (has_lower: the checkpoint values are $1..$n, text):
 *	MT_PROBE_NTH: the limit-th key after it (ORDER BY pk LIMIT 1 OFFSET
 *		limit - 1), so that batches hold the same number of rows however
 *		sparse the keys are;
 *	MT_PROBE_FIRST: the first key after it;
 *	MT_PROBE_TAIL: when fewer than limit keys are left, how many, and the
 *		last.
 * Keys come back as text arrays, one element per key column.
 */
char *
mt_backfill_probe_sql(const MtJobSql *js, bool has_lower, MtProbe probe, int64 limit)
{
	StringInfoData buf;
	StringInfoData cols;
	StringInfoData arr;
	StringInfoData desc;
	StringInfoData from;
	ListCell   *lc;

	initStringInfo(&cols);
	initStringInfo(&arr);
	initStringInfo(&desc);
	foreach(lc, js->key_columns)
	{
		const char *col = quote_identifier((char *) lfirst(lc));
		bool		first = (lc == list_head(js->key_columns));

		appendStringInfo(&cols, "%s%s", first ? "" : ", ", col);
		appendStringInfo(&arr, "%s%s::pg_catalog.text", first ? "" : ", ", col);
		appendStringInfo(&desc, "%s%s DESC", first ? "" : ", ", col);
	}

	initStringInfo(&from);
	appendStringInfo(&from, "FROM %s%s", js->only ? "ONLY " : "", js->relname);
	if (has_lower)
	{
		appendStringInfoString(&from, " WHERE ");
		append_key_row(&from, js);
		appendStringInfoString(&from, " > ");
		append_key_params(&from, js, 1);
	}

	initStringInfo(&buf);
	switch (probe)
	{
		case MT_PROBE_NTH:

			/*
			 * The key of the one row kept is made text in an outer query:
			 * at the level of the scan, it would be made for every row the
			 * OFFSET skips (half of the probe's time).
			 */
			appendStringInfo(&buf, "SELECT ARRAY[%s] FROM (SELECT %s %s ORDER BY %s "
							 "LIMIT 1 OFFSET " INT64_FORMAT ") AS mt_probe",
							 arr.data, cols.data, from.data, cols.data, Max(limit - 1, 0));
			break;
		case MT_PROBE_FIRST:
			appendStringInfo(&buf, "SELECT ARRAY[%s] %s ORDER BY %s LIMIT 1",
							 arr.data, from.data, cols.data);
			break;
		case MT_PROBE_TAIL:
			appendStringInfo(&buf, "SELECT pg_catalog.count(*), "
							 "(SELECT ARRAY[%s] %s ORDER BY %s LIMIT 1) %s",
							 arr.data, from.data, desc.data, from.data);
			break;
	}
	return buf.data;
}

/* ---------------------------------------------------------------------
 * Queueing
 * ---------------------------------------------------------------------
 */

/*
 * Read the options shared by backfill() and run_batched(), from argument
 * number first on; NULL where a value is required is an error.
 */
/* Is str empty or only white space? */
static bool
is_blank(const char *str)
{
	for (; *str; str++)
	{
		if (!scanner_isspace(*str))
			return false;
	}
	return true;
}

static void
read_options(FunctionCallInfo fcinfo, int first, MtJobOptions *opts, bool has_guard)
{
	int			a = first;

	opts->has_batch_size = !PG_ARGISNULL(a);
	opts->batch_size = opts->has_batch_size ? PG_GETARG_INT32(a) : 0;
	a++;
	if (PG_ARGISNULL(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target_batch_time must not be null")));
	opts->target_batch_time = PG_GETARG_INTERVAL_P(a);
	a++;
	opts->batch_sleep = PG_ARGISNULL(a) ? NULL : PG_GETARG_INTERVAL_P(a);
	a++;
	opts->has_start_at = !PG_ARGISNULL(a);
	opts->start_at = opts->has_start_at ? PG_GETARG_TIMESTAMPTZ(a) : 0;
	a++;
	if (PG_ARGISNULL(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_attempts must not be null")));
	opts->max_attempts = PG_GETARG_INT32(a);
	a++;
	if (PG_ARGISNULL(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("strategy must not be null"),
				 errhint("Use \"key\" (primary key order) or \"ctid\" (heap block ranges).")));
	/* 'KEY', ' ctid ': as a DBA may type it; stored as 'key' or 'ctid' */
	{
		char	   *given = text_to_cstring(PG_GETARG_TEXT_PP(a));
		char	   *trimmed = given;
		size_t		len;

		while (scanner_isspace(*trimmed))
			trimmed++;
		len = strlen(trimmed);
		while (len > 0 && scanner_isspace(trimmed[len - 1]))
			len--;
		trimmed = pnstrdup(trimmed, len);
		if (pg_strcasecmp(trimmed, "key") == 0)
			opts->strategy = pstrdup("key");
		else if (pg_strcasecmp(trimmed, "ctid") == 0)
			opts->strategy = pstrdup("ctid");
		else
			opts->strategy = given;
	}
	a++;
	opts->run_window = PG_ARGISNULL(a) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(a));
	a++;
	if (has_guard)
	{
		if (PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("guard must not be null")));
		opts->guard = PG_GETARG_BOOL(a);
	}
	else
		opts->guard = false;
}

PG_FUNCTION_INFO_V1(mt_backfill);

/*
 * backfill(relation, set_clause, where_clause, batch_size,
 * target_batch_time, batch_sleep, start_at, max_attempts, strategy,
 * run_window, guard): queue a batched UPDATE and return the job id.
 */
Datum
mt_backfill(PG_FUNCTION_ARGS)
{
	MtJobOptions opts;
	char	   *where_clause = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("set_clause must not be null")));
	if (is_blank(text_to_cstring(PG_GETARG_TEXT_PP(1))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("set_clause must not be empty"),
				 errhint("Write the assignments as in an UPDATE, for example \"slug = md5(id::text)\".")));
	/* an empty where_clause, as ORMs pass for "no filter", means none */
	if (!PG_ARGISNULL(2) && !is_blank(text_to_cstring(PG_GETARG_TEXT_PP(2))))
		where_clause = text_to_cstring(PG_GETARG_TEXT_PP(2));
	read_options(fcinfo, 3, &opts, true);

	PG_RETURN_INT64(queue_job(PG_GETARG_OID(0),
							  text_to_cstring(PG_GETARG_TEXT_PP(1)),
							  where_clause, &opts, true));
}

PG_FUNCTION_INFO_V1(mt_run_batched);

/*
 * run_batched(relation, sql, batch_size, ...): queue a statement run once
 * per batch with the batch bounds as $1 and $2, and return the job id.
 */
Datum
mt_run_batched(PG_FUNCTION_ARGS)
{
	MtJobOptions opts;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sql must not be null")));
	if (is_blank(text_to_cstring(PG_GETARG_TEXT_PP(1))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sql must not be empty"),
				 errhint("Pass one statement that takes the batch bounds as $1 and $2.")));
	read_options(fcinfo, 2, &opts, false);

	PG_RETURN_INT64(queue_job(PG_GETARG_OID(0),
							  text_to_cstring(PG_GETARG_TEXT_PP(1)),
							  NULL, &opts, false));
}

/* Refuse option values that can never work, before anything else. */
static void
validate_options(const MtJobOptions *opts)
{
	int			s,
				e;

	if (opts->has_batch_size && opts->batch_size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive"),
				 errhint("Pass NULL for a batch size adapted to target_batch_time.")));
	if (opts->has_batch_size && opts->batch_size > mt_max_batch_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size %d is larger than %s (%d)",
						opts->batch_size, "migration_tools.max_batch_size",
						mt_max_batch_size)));
	if (mt_interval_ms(opts->target_batch_time) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_batch_time must be positive")));
	if (mt_interval_ms(opts->target_batch_time) > 3600 * 1000.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_batch_time must be at most one hour")));
	if (opts->batch_sleep && mt_interval_ms(opts->batch_sleep) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_sleep must not be negative")));
	if (opts->max_attempts <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be positive")));
	if (opts->strategy == NULL ||
		(strcmp(opts->strategy, "key") != 0 && strcmp(opts->strategy, "ctid") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized strategy \"%s\"", opts->strategy),
				 errhint("Use \"key\" (primary key order) or \"ctid\" (heap block ranges).")));
	if (opts->run_window && !mt_parse_run_window(opts->run_window, &s, &e))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid run_window \"%s\"", opts->run_window),
				 errdetail("A run window is a daily time range in the server's time zone, such as '01:00-05:00'; its start and end must differ.")));
}

/*
 * The primary key columns of rel and their types, into js.  ERROR if none.
 */
static void
primary_key_columns(Relation rel, MtJobSql *js)
{
	Oid			pkoid = mt_relation_primary_key_index(rel);
	HeapTuple	tup;
	Form_pg_index idx;

	if (!OidIsValid(pkoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errdetail("The key strategy walks the table in primary key order."),
				 errhint("Add a primary key, or use strategy => 'ctid'.")));
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", pkoid);
	idx = (Form_pg_index) GETSTRUCT(tup);
	for (int i = 0; i < idx->indnkeyatts; i++)
	{
		AttrNumber	attno = idx->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);

		js->key_columns = lappend(js->key_columns, pstrdup(NameStr(att->attname)));
		js->key_types = lappend(js->key_types, format_type_be_qualified(att->atttypid));
	}
	ReleaseSysCache(tup);
}

/* Append one SPI parameter. */
static void
add_param(int *n, Oid *types, Datum *values, char *nulls, Oid type, Datum value,
		  bool isnull)
{
	types[*n] = type;
	values[*n] = isnull ? (Datum) 0 : value;
	nulls[*n] = isnull ? 'n' : ' ';
	(*n)++;
}

/* Append one text SPI parameter (NULL for a NULL string). */
static void
add_text_param(int *n, Oid *types, Datum *values, char *nulls, const char *str)
{
	add_param(n, types, values, nulls, TEXTOID,
			  str ? CStringGetTextDatum(str) : (Datum) 0, str == NULL);
}

/*
 * Validate and record a job for backfill() (is_backfill; text1 is the
 * set_clause) or run_batched() (text1 is the statement), as the caller;
 * the worker is woken when the transaction commits.  Returns the job id.
 */
static int64
queue_job(Oid relid, const char *text1, const char *where_clause,
		  const MtJobOptions *opts, bool is_backfill)
{
	Relation	rel;
	MtJobSql	js;
	AclResult	aclresult;
	bool		update_ok = true;
	MtSavedUser saved;
	int64		job_id;
	Datum		values[24];
	char		nulls[24];
	Oid			types[24];
	Datum	   *keyd;
	int			nkeys;
	int			np;
	ListCell   *lc;
	const char *insert_sql;
	Oid			owner = GetUserId();
	const char *search_path = GetConfigOption("search_path", false, false);

	mt_require_preload(is_backfill ? "backfill()" : "run_batched()");

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot queue a backfill job during recovery"),
				 errhint("Queue jobs on the primary.")));
	PreventCommandIfReadOnly(is_backfill ? "backfill()" : "run_batched()");

	validate_options(opts);

	rel = try_relation_open(relid, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("Backfills run on tables and partitioned tables only.")));
	if (IsCatalogRelation(rel) || IsToastRelation(rel))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: \"%s\" is a system catalog",
						RelationGetRelationName(rel)),
				 errdetail("Batched jobs do not run on system catalogs.")));
	if (RelationGetNamespace(rel) == get_namespace_oid("migration_tools", true))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: \"%s\" belongs to migration_tools",
						RelationGetRelationName(rel)),
				 errdetail("Batched jobs do not run on the extension's own tables.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot backfill temporary table \"%s\"", RelationGetRelationName(rel)),
				 errdetail("The background worker cannot see the temporary tables of other sessions.")));

	memset(&js, 0, sizeof(js));
	js.is_backfill = is_backfill;
	js.by_ctid = strcmp(opts->strategy, "ctid") == 0;
	js.relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											RelationGetRelationName(rel));
	js.only = rel->rd_rel->relkind == RELKIND_RELATION;

	if (js.by_ctid && rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the ctid strategy cannot be used on partitioned table \"%s\"",
						RelationGetRelationName(rel)),
				 errhint("Use strategy => 'key', or queue one job per partition.")));

	/* privileges: UPDATE for a backfill (maybe column-wise), SELECT to read */
	aclresult = pg_class_aclcheck(relid, owner, is_backfill ? ACL_UPDATE : ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
	{
		if (is_backfill)
			update_ok = false;	/* column privileges are checked below */
		else
			aclcheck_error(aclresult, get_relkind_objtype(rel->rd_rel->relkind),
						   RelationGetRelationName(rel));
	}

	if (!js.by_ctid)
		primary_key_columns(rel, &js);

	if (is_backfill)
	{
		js.set_clause = pstrdup(text1);
		js.where_clause = where_clause ? pstrdup(where_clause) : NULL;
		if (js.by_ctid && !opts->guard && where_clause == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the ctid strategy without guard needs a where_clause"),
					 errdetail("Rows that move during the job are visited again by its final sweep; without the guard only the where_clause can tell that a row is already done."),
					 errhint("Keep guard => true, or pass a where_clause that excludes rows already backfilled.")));
		analyze_backfill(rel, &js, opts->guard, update_ok);
	}
	else
	{
		if (!js.by_ctid && list_length(js.key_columns) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("run_batched() with the key strategy needs a single-column primary key"),
					 errdetail("Table \"%s\" has a primary key of %d columns.",
							   RelationGetRelationName(rel), list_length(js.key_columns)),
					 errhint("Use strategy => 'ctid'.")));
		js.sql = pstrdup(text1);
		analyze_run_batched(rel, &js);
	}

	/* record the job, as the extension owner */
	nkeys = list_length(js.key_columns);
	keyd = palloc(sizeof(Datum) * Max(nkeys, 1));
	np = 0;
	add_param(&np, types, values, nulls, OIDOID, ObjectIdGetDatum(relid), false);
	add_text_param(&np, types, values, nulls, js.relname);
	add_text_param(&np, types, values, nulls, is_backfill ? "backfill" : "run_batched");
	add_text_param(&np, types, values, nulls, js.set_clause);
	add_text_param(&np, types, values, nulls, js.where_clause);
	add_text_param(&np, types, values, nulls, js.sql);
	add_text_param(&np, types, values, nulls, js.guard_clause);
	add_text_param(&np, types, values, nulls, opts->strategy);
	add_param(&np, types, values, nulls, BOOLOID, BoolGetDatum(opts->guard), false);
	for (int pass = 0; pass < 2; pass++)
	{
		int			k = 0;

		foreach(lc, pass == 0 ? js.key_columns : js.key_types)
			keyd[k++] = CStringGetTextDatum((char *) lfirst(lc));
		add_param(&np, types, values, nulls, TEXTARRAYOID,
				  nkeys > 0 ? PointerGetDatum(construct_array(keyd, nkeys, TEXTOID, -1, false, TYPALIGN_INT)) : (Datum) 0,
				  nkeys == 0);
	}
	add_param(&np, types, values, nulls, INT4OID, Int32GetDatum(opts->batch_size), !opts->has_batch_size);
	add_param(&np, types, values, nulls, INTERVALOID, IntervalPGetDatum(opts->target_batch_time), false);
	add_param(&np, types, values, nulls, INTERVALOID,
			  opts->batch_sleep ? IntervalPGetDatum(opts->batch_sleep) : (Datum) 0,
			  opts->batch_sleep == NULL);
	add_param(&np, types, values, nulls, TIMESTAMPTZOID, TimestampTzGetDatum(opts->start_at), !opts->has_start_at);
	add_param(&np, types, values, nulls, INT4OID, Int32GetDatum(opts->max_attempts), false);
	add_text_param(&np, types, values, nulls, opts->run_window);
	add_param(&np, types, values, nulls, OIDOID, ObjectIdGetDatum(owner), false);
	add_text_param(&np, types, values, nulls, GetUserNameFromId(owner, false));
	add_text_param(&np, types, values, nulls, search_path ? search_path : "");

	insert_sql =
		"INSERT INTO migration_tools.backfill_jobs "
		"(relation, relation_name, kind, set_clause, where_clause, sql, guard_clause, "
		" strategy, guard, key_columns, key_types, fixed_batch_size, target_batch_time, "
		" batch_sleep, start_at, max_attempts, run_window, owner, owner_name, search_path) "
		"VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
		" coalesce($14, '0'::pg_catalog.interval), $15, $16, $17, $18, $19::pg_catalog.name, $20) "
		"RETURNING job_id";
	Assert(np == 20);

	mt_become_owner(&saved);
	SPI_connect();
	if (SPI_execute_with_args(insert_sql, np, types, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not record backfill job");
	{
		bool		isnull;

		job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 1, &isnull));
	}
	SPI_finish();
	mt_restore_user(&saved);

	relation_close(rel, AccessShareLock);

	mt_request_work_at_commit();
	return job_id;
}

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
static void
analyze_backfill(Relation rel, MtJobSql *js, bool guard, bool update_ok)
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
	ListCell   *lc;
	Bitmapset  *targets = NULL;
	Bitmapset  *reads = NULL;
	bool		complex = false;
	bool		volatile_expr = false;
	bool		mutable_expr = false;
	List	   *dpcontext;
	StringInfoData cols;
	StringInfoData exprs;
	int			n = 0;

	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);
		Node	   *expr = (Node *) tle->expr;

		if (tle->resjunk)
		{
			complex = true;		/* multi-assignment from a sub-SELECT */
			continue;
		}
		targets = bms_add_member(targets, tle->resno - FirstLowInvalidHeapAttributeNumber);
		pull_varattnos(expr, query->resultRelation, &reads);
		if (IsA(expr, SubscriptingRef) || IsA(expr, FieldStore) ||
			contain_subplans(expr) || checkExprHasSubLink(expr))
			complex = true;
		if (contain_volatile_functions(expr))
			volatile_expr = true;
		if (contain_mutable_functions(expr))
			mutable_expr = true;
		{
			/* Params of a multi-assignment also mean a sub-SELECT */
			if (IsA(expr, Param))
				complex = true;
		}
	}

	if (by_ctid && guard)
	{
		if (bms_overlap(targets, reads))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the ctid strategy cannot run a set clause that reads the columns it assigns"),
					 errdetail("The ctid strategy may meet a row twice (rows move when they are updated) and relies on the set clause giving the same result when applied again; an expression such as \"n = n + 1\" does not."),
					 errhint("Use strategy => 'key', which applies the set clause exactly once per row, or guard => false with a where_clause that excludes the rows already done.")));
		if (complex)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the ctid strategy cannot guard this set clause"),
					 errdetail("Subqueries, multiple-column assignments from a sub-SELECT and assignments to array elements or fields cannot be compared with the row's current values."),
					 errhint("Use strategy => 'key'.")));
		if (mutable_expr)
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
	if (!guard || complex || volatile_expr || (!by_ctid && has_where))
		return NULL;

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
static void
analyze_run_batched(Relation rel, MtJobSql *js)
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

/* ---------------------------------------------------------------------
 * Control
 * ---------------------------------------------------------------------
 */

/* ERROR unless caller may see and control a job of owner. */
static void
check_job_access(int64 job, Oid owner, Oid caller)
{
	if (has_privs_of_role(caller, owner) || mt_is_admin(caller))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for backfill job " INT64_FORMAT, job),
			 errdetail("Only the role that queued a job, and members of migration_tools_admin, may see and control it.")));
}

/*
 * Look up a job (locking its row when for_update), check that caller (the
 * role calling the SQL function) may control it, and return its state.  *xmin_current: the row version
 * was written by the current transaction.
 */
static char *
lookup_job(int64 job, Oid caller, bool for_update, bool *xmin_current)
{
	Datum		arg = Int64GetDatum(job);
	Oid			argtype = INT8OID;
	bool		isnull;
	Oid			owner;
	char	   *state;
	char	   *xmin;
	int			ret;

	ret = SPI_execute_with_args(for_update ?
								"SELECT owner, state, xmin::text FROM migration_tools.backfill_jobs WHERE job_id = $1 FOR UPDATE" :
								"SELECT owner, state, xmin::text FROM migration_tools.backfill_jobs WHERE job_id = $1",
								1, &argtype, &arg, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read backfill job " INT64_FORMAT, job);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("backfill job " INT64_FORMAT " does not exist", job)));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	xmin = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	if (xmin_current)
		*xmin_current = TransactionIdIsCurrentTransactionId((TransactionId) strtoul(xmin, NULL, 10));
	check_job_access(job, owner, caller);
	return state;
}

/* Has a job in this state ended? */
static bool
state_is_final(const char *state)
{
	return strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
		strcmp(state, "cancelled") == 0;
}

/*
 * Move a job from one of the allowed states to new_state.  Returns the
 * state afterwards.  A job already in new_state is left alone.
 */
static text *
change_state(int64 job, const char *action, const char *new_state,
			 const char *const *allowed, const char *extra_set, bool wake)
{
	MtSavedUser saved;
	char	   *state;
	bool		ok = false;
	char	   *result;
	Oid			caller = GetUserId();

	mt_require_preload(action);
	PreventCommandIfReadOnly(action);

	mt_become_owner(&saved);
	SPI_connect();
	state = lookup_job(job, caller, true, NULL);

	/*
	 * resume() or retry() of a running job: it already does what is asked
	 * (a script that resumes every job it knows must not fail on the one
	 * that runs)
	 */
	if (strcmp(new_state, "queued") == 0 && strcmp(state, "running") == 0)
		new_state = state;
	if (strcmp(state, new_state) != 0)
	{
		const char *hint = NULL;

		for (int i = 0; allowed[i] != NULL; i++)
			if (strcmp(state, allowed[i]) == 0)
				ok = true;
		if (strcmp(state, "paused") == 0)
			hint = "A paused job goes on with resume().";
		else if (strcmp(state, "completed") == 0)
			hint = "A completed job is not run again; queue a new job for more work.";
		else if (state_is_final(state))
			hint = "The job has ended; retry() queues a failed or cancelled job again from its checkpoint.";
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot %s backfill job " INT64_FORMAT " because it is %s",
							action, job, state),
					 hint ? errhint("%s", hint) : 0));
		{
			Datum		args[2];
			Oid			types[2] = {INT8OID, TEXTOID};
			char	   *sql = psprintf("UPDATE migration_tools.backfill_jobs SET state = $2%s%s "
									   "WHERE job_id = $1",
									   extra_set ? ", " : "", extra_set ? extra_set : "");

			args[0] = Int64GetDatum(job);
			args[1] = CStringGetTextDatum(new_state);
			if (SPI_execute_with_args(sql, 2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not update backfill job " INT64_FORMAT, job);
		}
	}
	result = pstrdup(new_state);
	SPI_finish();
	mt_restore_user(&saved);
	if (wake)
		mt_request_work_at_commit();
	return cstring_to_text(result);
}

PG_FUNCTION_INFO_V1(mt_backfill_pause);

/*
 * pause(job): a queued or running job stops after its current batch and
 * stays where it is until resume().
 */
Datum
mt_backfill_pause(PG_FUNCTION_ARGS)
{
	static const char *const allowed[] = {"queued", "running", NULL};

	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), "pause", "paused", allowed,
								  "throttled_by = NULL", false));
}

PG_FUNCTION_INFO_V1(mt_backfill_resume);

/*
 * resume(job): a paused job is queued again and goes on from its
 * checkpoint.
 */
Datum
mt_backfill_resume(PG_FUNCTION_ARGS)
{
	static const char *const allowed[] = {"paused", NULL};

	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), "resume", "queued", allowed,
								  "next_due = NULL, worker_pid = NULL", true));
}

PG_FUNCTION_INFO_V1(mt_backfill_cancel);

/*
 * cancel(job): the job stops after its current batch; what it did stays
 * done.  retry() can take it up again.
 */
Datum
mt_backfill_cancel(PG_FUNCTION_ARGS)
{
	static const char *const allowed[] = {"queued", "running", "paused", NULL};

	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), "cancel", "cancelled", allowed,
								  "finished_at = pg_catalog.now(), throttled_by = NULL", false));
}

PG_FUNCTION_INFO_V1(mt_backfill_retry);

/*
 * retry(job): a failed or cancelled job is queued again, from its
 * checkpoint, with its attempts counted from zero.
 */
Datum
mt_backfill_retry(PG_FUNCTION_ARGS)
{
	static const char *const allowed[] = {"failed", "cancelled", NULL};

	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), "retry", "queued", allowed,
								  "attempts = 0, takeovers = 0, last_error = NULL, finished_at = NULL, "
								  "next_due = NULL, worker_pid = NULL, sweep_pass = 0, "
								  "phase = CASE WHEN phase = 'done' THEN 'main' ELSE phase END",
								  true));
}

PG_FUNCTION_INFO_V1(mt_backfill_wait);

/*
 * wait(job, timeout): block until the job is completed, failed or
 * cancelled and return that state.  When timeout passes first, return the
 * state the job is in then.  Each look at the job takes a new snapshot,
 * so this needs READ COMMITTED unless the job has already ended, and a
 * job queued or changed by the current transaction is invisible to the
 * worker, so waiting for it would never end.
 */
Datum
mt_backfill_wait(PG_FUNCTION_ARGS)
{
	int64		job;
	double		timeout_ms = -1;
	TimestampTz start = GetCurrentTimestamp();
	char	   *state = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;
	Oid			caller = GetUserId();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job must not be null")));
	job = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
	{
		timeout_ms = mt_interval_ms(PG_GETARG_INTERVAL_P(1));
		if (timeout_ms < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout must not be negative")));
	}

	for (;;)
	{
		MtSavedUser saved;
		bool		mine;
		long		elapsed;

		CHECK_FOR_INTERRUPTS();

		mt_become_owner(&saved);
		SPI_connect();
		state = lookup_job(job, caller, false, &mine);
		state = MemoryContextStrdup(caller_cxt, state);
		SPI_finish();
		mt_restore_user(&saved);

		if (state_is_final(state))
			break;
		if (mine)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot wait for backfill job " INT64_FORMAT " queued or changed by the current transaction", job),
					 errhint("Commit the transaction first.")));
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot wait for a backfill job in a REPEATABLE READ or SERIALIZABLE transaction"),
					 errhint("Call wait() in a READ COMMITTED transaction.")));

		elapsed = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
		if (timeout_ms >= 0 && elapsed >= timeout_ms)
			break;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms >= 0 ? Min(MT_WAIT_POLL_MS, (long) (timeout_ms - elapsed) + 1) : MT_WAIT_POLL_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	PG_RETURN_TEXT_P(cstring_to_text(state));
}
