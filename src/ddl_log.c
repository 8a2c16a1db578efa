/*-------------------------------------------------------------------------
 *
 * ddl_log.c
 *	  The DDL log: an event trigger function that records every DDL
 *	  command run in the database in migration_tools.ddl_log, so that
 *	  migrations run by other tools, or by hand, are visible too.
 *
 * Two event triggers call it: ddl_command_end (one row per object a
 * command created or altered, from pg_event_trigger_ddl_commands()) and
 * sql_drop (one row per object dropped, from
 * pg_event_trigger_dropped_objects(), leaving out the objects dropped only
 * as internal or automatic parts of another, and the rules of views).  Each row has the command
 * tag, the object, the session and current roles, the transaction and the
 * migration version when the command ran inside apply() or the worker
 * (migration_tools.applying_version), the statement text (the query
 * string, cut to migration_tools.ddl_log_max_statement_length) and the
 * session's application_name.
 *
 * The log must never stand in the way of DDL: the insert runs in a
 * subtransaction and any error is turned into a WARNING.  The row is
 * written as the extension's owner, so that roles without access to the
 * log can still run DDL.  Temporary objects, the commands of extension
 * scripts and the extension's own creation and removal are not logged;
 * migration_tools.ddl_log = off (superuser, per session, role or database)
 * turns the log off.
 *
 * IDENTIFICATION
 *	  src/ddl_log.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "ddl_log.h"
#include "migration_tools.h"
#include "security.h"
#include "spi_util.h"

#define MT_VERSION_GUC	"migration_tools.applying_version"

/* GUCs */
bool		mt_ddl_log_enabled = true;
int			mt_ddl_log_retention = 30 * 24 * 60;	/* minutes */
int			mt_ddl_log_max_statement_length = 4096; /* bytes */

/*
 * GRANT and REVOKE come without an object identity (and with the object
 * type in capitals, as the server reports it): the objects named by the
 * statement are passed as $6 (identities) and $7 (schemas), one row each.
 */
static const char *log_commands_sql =
"INSERT INTO migration_tools.ddl_log"
"  (event, command_tag, object_type, object_identity, schema_name,"
"   session_user_name, current_user_name, transaction_id, migration_version,"
"   statement, application_name)"
" SELECT 'ddl_command_end', c.command_tag, c.object_type,"
"        coalesce(c.object_identity, g.identity),"
"        coalesce(c.schema_name, g.schema), $1, $2, pg_catalog.txid_current(), $3,"
"        $8, $9"
"   FROM pg_catalog.pg_event_trigger_ddl_commands() c"
"   LEFT JOIN LATERAL ROWS FROM (pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::text[]))"
"        g(identity, schema)"
"     ON c.object_identity IS NULL AND c.command_tag IN ('GRANT', 'REVOKE')"
"  WHERE NOT c.in_extension"
"    AND c.schema_name IS DISTINCT FROM 'pg_temp'"
"    AND NOT (c.object_type = 'extension' AND c.object_identity = $4)";

static const char *log_drops_sql =
"INSERT INTO migration_tools.ddl_log"
"  (event, command_tag, object_type, object_identity, schema_name,"
"   session_user_name, current_user_name, transaction_id, migration_version,"
"   statement, application_name)"
" SELECT 'sql_drop', $5, d.object_type, d.object_identity,"
"        d.schema_name, $1, $2, pg_catalog.txid_current(), $3, $8, $9"
"   FROM pg_catalog.pg_event_trigger_dropped_objects() d"
"  WHERE (d.original OR d.normal) AND NOT d.is_temporary"
"    AND NOT (d.object_type = 'rule' AND d.object_identity LIKE '\"\\_RETURN\" on %')"
"    AND NOT (d.object_type = 'extension' AND d.object_identity = $4)";

PG_FUNCTION_INFO_V1(mt_ddl_log_trigger);

/*
 * Define the GUCs of the DDL log.  Called from _PG_init.
 */
void
mt_ddl_log_init(void)
{
	DefineCustomBoolVariable("migration_tools.ddl_log",
							 "Record DDL commands in migration_tools.ddl_log.",
							 NULL,
							 &mt_ddl_log_enabled,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("migration_tools.ddl_log_retention",
							"How long rows of migration_tools.ddl_log are kept.",
							"The worker deletes older rows. -1 keeps them forever.",
							&mt_ddl_log_retention,
							30 * 24 * 60, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migration_tools.ddl_log_max_statement_length",
							"Longest statement text recorded in migration_tools.ddl_log.",
							"Longer texts are cut at a character boundary. 0 records no statement text.",
							&mt_ddl_log_max_statement_length,
							4096, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/*
 * The statement text to record: the query string the client sent (or the
 * worker ran), which may hold several statements; the event trigger is not
 * told which part of it the command came from.  Cut to
 * migration_tools.ddl_log_max_statement_length bytes at a character
 * boundary; NULL when there is none or the GUC is 0.
 */
static char *
statement_text(void)
{
	int			len;

	if (debug_query_string == NULL || mt_ddl_log_max_statement_length <= 0)
		return NULL;
	len = strlen(debug_query_string);
	if (len > mt_ddl_log_max_statement_length)
		len = pg_mbcliplen(debug_query_string, len, mt_ddl_log_max_statement_length);
	return pnstrdup(debug_query_string, len);
}

/*
 * The identities and schemas of the tables, views and sequences a GRANT or
 * REVOKE names (ON TABLE/SEQUENCE ...), as text arrays; left NULL for other
 * kinds of objects and for ALL ... IN SCHEMA.
 */
static void
grant_objects(GrantStmt *stmt, Datum *identities, char *inull,
			  Datum *schemas, char *snull)
{
	ArrayBuildState *ids = NULL;
	ArrayBuildState *nsps = NULL;
	ListCell   *lc;

	if (stmt->targtype != ACL_TARGET_OBJECT ||
		(stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_SEQUENCE))
		return;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);
		Oid			relid;
		ObjectAddress addr;
		char	   *identity;
		char	   *nspname;

		if (!IsA(obj, RangeVar))
			continue;
		relid = RangeVarGetRelid((RangeVar *) obj, NoLock, true);
		if (!OidIsValid(relid))
			continue;
		ObjectAddressSet(addr, RelationRelationId, relid);
		identity = getObjectIdentity(&addr, true);
		nspname = get_namespace_name(get_rel_namespace(relid));
		if (identity == NULL || nspname == NULL)
			continue;
		ids = accumArrayResult(ids, CStringGetTextDatum(identity), false,
							   TEXTOID, CurrentMemoryContext);
		nsps = accumArrayResult(nsps, CStringGetTextDatum(nspname), false,
								TEXTOID, CurrentMemoryContext);
	}
	if (ids == NULL)
		return;
	*identities = makeArrayResult(ids, CurrentMemoryContext);
	*inull = ' ';
	*schemas = makeArrayResult(nsps, CurrentMemoryContext);
	*snull = ' ';
}

/*
 * migration_tools._ddl_log(): the event trigger function.
 */
Datum
mt_ddl_log_trigger(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	bool		drops;
	Oid			nspid;
	Oid			extoid;
	const char *version;
	Oid			argtypes[9] = {NAMEOID, NAMEOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', 'n', 'n', 'n', 'n'};
	char	   *statement;
	const char *appname;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			save_userid;
	int			save_sec_context;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by an event trigger",
						"migration_tools._ddl_log")));
	trigdata = (EventTriggerData *) fcinfo->context;
	drops = (strcmp(trigdata->event, "sql_drop") == 0);

	if (!mt_ddl_log_enabled)
		PG_RETURN_NULL();

	/*
	 * Not while this extension is created or updated (its script's
	 * commands are its own), nor once its log is gone (DROP EXTENSION).
	 */
	extoid = get_extension_oid(MT_EXTENSION_NAME, true);
	if (!OidIsValid(extoid) || (creating_extension && CurrentExtensionObject == extoid))
		PG_RETURN_NULL();
	nspid = get_namespace_oid(MT_SCHEMA_NAME, true);
	if (!OidIsValid(nspid) || !OidIsValid(get_relname_relid("ddl_log", nspid)))
		PG_RETURN_NULL();

	version = GetConfigOption(MT_VERSION_GUC, true, false);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	values[0] = CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false));
	values[1] = CStringGetDatum(GetUserNameFromId(save_userid, false));
	values[2] = (version && version[0]) ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[2] = (version && version[0]) ? ' ' : 'n';
	values[3] = CStringGetTextDatum(MT_EXTENSION_NAME);
	values[4] = CStringGetTextDatum(GetCommandTagName(trigdata->tag));
	statement = statement_text();
	if (statement != NULL)
	{
		values[7] = CStringGetTextDatum(statement);
		nulls[7] = ' ';
	}
	appname = GetConfigOption("application_name", true, false);
	if (appname != NULL && appname[0] != '\0')
	{
		values[8] = CStringGetTextDatum(appname);
		nulls[8] = ' ';
	}

	/* the relations a GRANT or REVOKE names, resolved as the command did */
	if (!drops && trigdata->parsetree && IsA(trigdata->parsetree, GrantStmt))
		grant_objects(castNode(GrantStmt, trigdata->parsetree), &values[5],
					  &nulls[5], &values[6], &nulls[6]);

	/* name arguments must be NameData */
	values[0] = NameGetDatum(DatumGetName(DirectFunctionCall1(namein, values[0])));
	values[1] = NameGetDatum(DatumGetName(DirectFunctionCall1(namein, values[1])));

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		MtSavedUser saved;

		/*
		 * The log belongs to the extension's owner: write it as that role,
		 * with nothing of the caller's looked up on the way (operators,
		 * functions).  The subtransaction undoes the switch on error.
		 */
		mt_spi_connect();
		mt_become_owner(&saved);
		mt_spi_execute_checked(drops ? log_drops_sql : log_commands_sql,
							   9, argtypes, values, nulls, false, 0,
							   SPI_OK_INSERT, "insert into ddl_log");

		mt_restore_user(&saved);
		SPI_finish();
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		SetUserIdAndSecContext(save_userid, save_sec_context);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;

		/* a cancel request is for the command, not for us */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);

		ereport(WARNING,
				(errmsg("could not record a DDL command in migration_tools.ddl_log: %s",
						edata->message),
				 errdetail("The command itself was not affected.")));
	}
	PG_END_TRY();

	PG_RETURN_NULL();
}

/* Rows deleted per transaction by mt_ddl_log_prune(). */
#define MT_DDL_LOG_PRUNE_CHUNK	10000

/*
 * Delete the rows of ddl_log older than migration_tools.ddl_log_retention,
 * oldest first, at most MT_DDL_LOG_PRUNE_CHUNK per transaction (the first
 * prune after an upgrade may find a large backlog), as the extension owner.
 * Called by the worker, outside a transaction, when it starts and then at
 * most every hour.  Rows have no unique key (a restore
 * brings ids back), so they are deleted by ctid.
 */
void
mt_ddl_log_prune(void)
{
	uint64		deleted;

	if (mt_ddl_log_retention < 0)
		return;
	do
	{
		MtSavedUser saved;
		Oid			argtype = INT4OID;
		Datum		arg = Int32GetDatum(mt_ddl_log_retention);

		mt_bgw_begin("migration_tools: pruning the DDL log");
		if (!OidIsValid(get_extension_oid(MT_EXTENSION_NAME, true)))
		{
			mt_bgw_commit();
			return;
		}
		mt_become_owner(&saved);
		deleted = mt_spi_execute_checked("DELETE FROM migration_tools.ddl_log"
										 " WHERE ctid = ANY (ARRAY("
										 "   SELECT ctid FROM migration_tools.ddl_log"
										 "    WHERE logged_at < pg_catalog.now()"
										 "          - $1 * pg_catalog.interval '1 minute'"
										 "    ORDER BY logged_at"
										 "    LIMIT " CppAsString2(MT_DDL_LOG_PRUNE_CHUNK) "))",
										 1, &argtype, &arg, NULL, false, 0,
										 SPI_OK_DELETE, "prune ddl_log");
		mt_restore_user(&saved);
		mt_bgw_commit();
		if (deleted > 0)
			elog(DEBUG1, "migration_tools: deleted " UINT64_FORMAT " rows of ddl_log", deleted);
	} while (deleted >= MT_DDL_LOG_PRUNE_CHUNK);
}
