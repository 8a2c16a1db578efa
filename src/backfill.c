/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Batched backfills: the SQL functions that queue jobs (backfill(),
 *	  run_batched()) and control them (pause, resume, cancel, retry, wait),
 *	  the subsystem's settings (the throttles' are in throttle.c), and the
 *	  statement builders that the queue time validation
 *	  (backfill_validate.c) and the worker (backfill_batch.c) share.
 *
 * A job is a row of migration_tools.backfill_jobs.  Queueing validates
 * everything that can be validated without running anything: the
 * relation, the caller's privileges, the options, and the statement the
 * worker will run, which is built here and parse-analyzed as the caller
 * by backfill_validate.c.  The worker later runs exactly that statement, as the role that queued
 * the job.  The job tables are written as the extension owner with a
 * pinned search_path, never as the caller, so that callers need no
 * privileges on them and cannot forge a job of another role.  Which
 * state a control function may move a job to is decided in
 * backfill_job.c, with the worker's transitions.
 *
 * IDENTIFICATION
 *	  src/backfill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "backfill.h"
#include "backfill_int.h"
#include "launcher.h"
#include "migration_tools.h"
#include "spi_util.h"
#include "throttle.h"

/* GUCs */
int			mt_max_batch_size = 100000;
int			mt_initial_batch_size = 1000;
int			mt_batch_lock_timeout = 1000;
int			mt_batch_timeout_factor = 10;
int			mt_batch_history_retention = 1000;
int			mt_max_sweep_passes = 5;
int			mt_max_batch_sleep = 10000;

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
static bool is_blank(const char *str);
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
	mt_throttle_init();
	DefineCustomIntVariable("migration_tools.batch_history_retention",
							"Batches kept per job in migration_tools.backfill_batches.",
							"0 keeps no history.",
							&mt_batch_history_retention,
							1000, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("migration_tools.max_batch_sleep",
							"Longest batch_sleep a job may ask for.",
							"backfill() and run_batched() refuse a longer one; a job queued before the setting was lowered sleeps at most this long.",
							&mt_max_batch_sleep,
							10000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
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
	if (opts->batch_sleep && mt_interval_ms(opts->batch_sleep) > (double) mt_max_batch_sleep)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_sleep is longer than %s (%d ms)",
						"migration_tools.max_batch_sleep", mt_max_batch_sleep),
				 errdetail("A job sleeping between batches would keep a worker from other jobs."),
				 errhint("Use a shorter batch_sleep, a smaller batch_size, or a run_window.")));
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
 * Open the relation of a job, and refuse what no job may run on: what is
 * not a table, system catalogs, the extension's own tables, temporary
 * tables.
 */
static Relation
open_job_relation(Oid relid)
{
	Relation	rel;

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
	return rel;
}

/*
 * Build the statement of a job on rel as the caller (owner) and validate
 * it (backfill_validate.c): backfill() (is_backfill; text1 is the
 * set_clause) or run_batched() (text1 is the statement).
 */
static void
build_job_sql(Relation rel, const char *text1, const char *where_clause,
			  const MtJobOptions *opts, bool is_backfill, Oid owner, MtJobSql *js)
{
	AclResult	aclresult;
	bool		update_ok = true;

	memset(js, 0, sizeof(*js));
	js->is_backfill = is_backfill;
	js->by_ctid = strcmp(opts->strategy, "ctid") == 0;
	js->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											 RelationGetRelationName(rel));
	js->only = rel->rd_rel->relkind == RELKIND_RELATION;

	if (js->by_ctid && rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the ctid strategy cannot be used on partitioned table \"%s\"",
						RelationGetRelationName(rel)),
				 errhint("Use strategy => 'key', or queue one job per partition.")));

	/* privileges: UPDATE for a backfill (maybe column-wise), SELECT to read */
	aclresult = pg_class_aclcheck(RelationGetRelid(rel), owner,
								  is_backfill ? ACL_UPDATE : ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
	{
		if (is_backfill)
			update_ok = false;	/* column privileges are checked below */
		else
			aclcheck_error(aclresult, get_relkind_objtype(rel->rd_rel->relkind),
						   RelationGetRelationName(rel));
	}

	if (!js->by_ctid)
		primary_key_columns(rel, js);

	if (is_backfill)
	{
		js->set_clause = pstrdup(text1);
		js->where_clause = where_clause ? pstrdup(where_clause) : NULL;
		if (js->by_ctid && !opts->guard && where_clause == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the ctid strategy without guard needs a where_clause"),
					 errdetail("Rows that move during the job are visited again by its final sweep; without the guard only the where_clause can tell that a row is already done."),
					 errhint("Keep guard => true, or pass a where_clause that excludes rows already backfilled.")));
		mt_backfill_analyze(rel, js, opts->guard, update_ok);
	}
	else
	{
		if (!js->by_ctid && list_length(js->key_columns) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("run_batched() with the key strategy needs a single-column primary key"),
					 errdetail("Table \"%s\" has a primary key of %d columns.",
							   RelationGetRelationName(rel), list_length(js->key_columns)),
					 errhint("Use strategy => 'ctid'.")));
		js->sql = pstrdup(text1);
		mt_run_batched_analyze(rel, js);
	}
}

/* A list of C strings as a text[] parameter, NULL when empty. */
static void
add_text_array_param(int *n, Oid *types, Datum *values, char *nulls, List *strings)
{
	add_param(n, types, values, nulls, TEXTARRAYOID,
			  strings != NIL ? mt_text_array_from_list(strings) : (Datum) 0,
			  strings == NIL);
}

/*
 * Insert the job's row, queued, as the extension owner; returns its id.
 * owner is the role that queued it, search_path the caller's setting.
 */
static int64
insert_job(Oid relid, const MtJobSql *js, const MtJobOptions *opts, Oid owner,
		   const char *search_path)
{
	MtSavedUser saved;
	int64		job_id;
	Datum		values[24];
	char		nulls[24];
	Oid			types[24];
	int			np = 0;
	bool		isnull;
	const char *insert_sql;

	add_param(&np, types, values, nulls, OIDOID, ObjectIdGetDatum(relid), false);
	add_text_param(&np, types, values, nulls, js->relname);
	add_text_param(&np, types, values, nulls, js->is_backfill ? "backfill" : "run_batched");
	add_text_param(&np, types, values, nulls, js->set_clause);
	add_text_param(&np, types, values, nulls, js->where_clause);
	add_text_param(&np, types, values, nulls, js->sql);
	add_text_param(&np, types, values, nulls, js->guard_clause);
	add_text_param(&np, types, values, nulls, opts->strategy);
	add_param(&np, types, values, nulls, BOOLOID, BoolGetDatum(opts->guard), false);
	add_text_array_param(&np, types, values, nulls, js->key_columns);
	add_text_array_param(&np, types, values, nulls, js->key_types);
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
	/* a role that can log in now must keep that ability for its job to run */
	add_param(&np, types, values, nulls, BOOLOID,
			  BoolGetDatum(mt_role_cannot_login(owner) == NULL), false);

	insert_sql =
		"INSERT INTO migration_tools.backfill_jobs "
		"(relation, relation_name, kind, set_clause, where_clause, sql, guard_clause, "
		" strategy, guard, key_columns, key_types, fixed_batch_size, target_batch_time, "
		" batch_sleep, start_at, max_attempts, run_window, owner, owner_name, search_path, "
		" owner_login) "
		"VALUES ($1::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
		" coalesce($14, '0'::pg_catalog.interval), $15, $16, $17, $18, $19::pg_catalog.name, $20, $21) "
		"RETURNING job_id";
	Assert(np == 21);

	mt_become_owner(&saved);
	SPI_connect();
	if (mt_spi_execute_checked(insert_sql, np, types, values, nulls, false, 1,
							   SPI_OK_INSERT_RETURNING, "record backfill job") != 1)
		elog(ERROR, "could not record backfill job");
	job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										 1, &isnull));
	SPI_finish();
	mt_restore_user(&saved);
	return job_id;
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
	int64		job_id;
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

	rel = open_job_relation(relid);
	build_job_sql(rel, text1, where_clause, opts, is_backfill, owner, &js);

	/* record the job, as the extension owner */
	job_id = insert_job(relid, &js, opts, owner, search_path);

	relation_close(rel, AccessShareLock);

	mt_request_backfill_work_at_commit();
	return job_id;
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

	if (mt_spi_execute_checked(for_update ?
							   "SELECT owner, state, xmin::text FROM migration_tools.backfill_jobs WHERE job_id = $1 FOR UPDATE" :
							   "SELECT owner, state, xmin::text FROM migration_tools.backfill_jobs WHERE job_id = $1",
							   1, &argtype, &arg, NULL, false, 1,
							   SPI_OK_SELECT, "read backfill job") == 0)
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

/*
 * Apply a control action to a job, as the extension owner, after checking
 * that the caller may control it (backfill_job.c decides whether the
 * action applies).  Returns the state afterwards.
 */
static text *
change_state(int64 job, MtJobAction action)
{
	MtSavedUser saved;
	char	   *state;
	char	   *result;
	Oid			caller = GetUserId();
	const char *name = mt_job_action_name(action);
	MemoryContext caller_cxt = CurrentMemoryContext;

	mt_require_preload(name);
	PreventCommandIfReadOnly(name);

	mt_become_owner(&saved);
	SPI_connect();
	state = lookup_job(job, caller, true, NULL);
	/* in the caller's context: SPI_finish() frees SPI's */
	result = MemoryContextStrdup(caller_cxt, mt_job_control(job, action, state));
	SPI_finish();
	mt_restore_user(&saved);
	if (mt_job_action_wakes(action))
		mt_request_backfill_work_at_commit();
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
	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), MT_JOB_PAUSE));
}

PG_FUNCTION_INFO_V1(mt_backfill_resume);

/*
 * resume(job): a paused job is queued again and goes on from its
 * checkpoint.
 */
Datum
mt_backfill_resume(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), MT_JOB_RESUME));
}

PG_FUNCTION_INFO_V1(mt_backfill_cancel);

/*
 * cancel(job): the job stops after its current batch; what it did stays
 * done.  retry() can take it up again.
 */
Datum
mt_backfill_cancel(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), MT_JOB_CANCEL));
}

PG_FUNCTION_INFO_V1(mt_backfill_retry);

/*
 * retry(job): a failed or cancelled job is queued again, from its
 * checkpoint, with its attempts counted from zero.
 */
Datum
mt_backfill_retry(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(change_state(PG_GETARG_INT64(0), MT_JOB_RETRY));
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

		if (mt_job_state_is_final(state))
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
