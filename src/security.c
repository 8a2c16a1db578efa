/*-------------------------------------------------------------------------
 *
 * security.c
 *	  Who runs what.  The one place where migration_tools changes the
 *	  current user id, and the checks that go with it.
 *
 * Two switches, one policy:
 *
 *	- To the extension owner, to read and write the extension's own tables
 *	  (the history, the jobs, the DDL log) on behalf of a caller who has no
 *	  privilege on them.  Like a SECURITY DEFINER function with
 *	  "SET search_path = pg_catalog, pg_temp", but for our own statements
 *	  only: nothing the caller owns may be looked up on the way.
 *
 *	- To the role that recorded a stored script (a migration's down script
 *	  or its scheduled statements), to run it with that role's privileges
 *	  whoever triggers it later: a superuser who rolls back the migration of
 *	  a less privileged role must not lend it his privileges.  Only members
 *	  of that role and superusers may trigger it (mt_recorded_role()).
 *
 * Both switch with SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION
 * on top of the caller's context: SET ROLE and SET SESSION AUTHORIZATION
 * are refused (the session user may be a superuser whose membership SET
 * ROLE would check), and so are temporary objects and WITH HOLD cursors,
 * which would outlive the switch in the caller's session and could be
 * used to plant something there.  Both are undone by mt_restore_user(), or
 * by the abort of the (sub)transaction when an error comes first.
 *
 * IDENTIFICATION
 *	  src/security.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "migration_tools.h"
#include "security.h"
#include "spi_util.h"

/* The search_path of our own statements, run as the extension owner. */
#define MT_OWNER_SEARCH_PATH	"pg_catalog, pg_temp"

/*
 * The owner of the extension, from pg_extension.
 */
Oid
mt_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(MT_EXTENSION_NAME));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database",
						MT_EXTENSION_NAME)));
	return owner;
}

/*
 * Act as the extension owner for reads and writes of the extension's
 * tables, with search_path pinned.
 */
void
mt_become_owner(MtSavedUser *saved)
{
	Oid			owner = mt_extension_owner();

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->guc_nestlevel = mt_pin_search_path(MT_OWNER_SEARCH_PATH);
	SetUserIdAndSecContext(owner, saved->sec_context | MT_SWITCH_SEC_CONTEXT);
}

/*
 * Act as the role that recorded a stored script, to run it.  The
 * search_path stays the caller's, as when the script was recorded by
 * apply(); settings the script changes end with mt_restore_user().
 */
void
mt_become_role(Oid roleid, MtSavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->guc_nestlevel = NewGUCNestLevel();
	SetUserIdAndSecContext(roleid, saved->sec_context | MT_SWITCH_SEC_CONTEXT);
}

/* Back to the user id, context and settings saved by a switch. */
void
mt_restore_user(MtSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
	AtEOXact_GUC(true, saved->guc_nestlevel);
}

/* Superuser, or member of migration_tools_admin. */
bool
mt_is_admin(Oid roleid)
{
	Oid			admin = get_role_oid("migration_tools_admin", true);

	if (superuser_arg(roleid))
		return true;
	return OidIsValid(admin) && is_member_of_role(roleid, admin);
}

/* As the status view decides who sees a migration's error and checksum. */
bool
mt_may_see_role_rows(const char *rolename)
{
	Oid			roleid;

	if (mt_is_admin(GetUserId()))
		return true;
	roleid = get_role_oid(rolename, true);
	return OidIsValid(roleid) && has_privs_of_role(GetUserId(), roleid);
}

/*
 * May member act as role, as SET ROLE would allow it?  Superusers may act
 * as any role.
 */
static bool
may_act_as(Oid member, Oid role)
{
	return mt_member_can_set_role(member, role);
}

/*
 * The role that recorded a stored script, checked: it exists, and the
 * current user may act as it.  Stored scripts are looked up by the role's
 * name, as the history records it (names survive pg_dump and restore into
 * another cluster, OIDs do not).
 */
Oid
mt_recorded_role(const char *rolename, const char *what, const char *version)
{
	Oid			roleid = get_role_oid(rolename, true);

	if (!OidIsValid(roleid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" that recorded %s of migration \"%s\" does not exist",
						rolename, what, version),
				 errdetail("Stored scripts run as the role that recorded them, whoever runs them later."),
				 errhint("Create the role \"%s\" again, or run the script by hand.",
						 rolename)));
	if (!may_act_as(GetUserId(), roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run %s of migration \"%s\" as role \"%s\"",
						what, version, rolename),
				 errdetail("Stored scripts run as the role that recorded them; only members of that role and superusers may run them."),
				 errhint("Ask a member of role \"%s\" to run it.", rolename)));
	return roleid;
}

/*
 * Why roleid can no longer log in ("NOLOGIN", "its VALID UNTIL ... has
 * passed"), or NULL when it can (or is gone: the callers check that
 * first).  Stored work of a role that could log in when it recorded it
 * stops once it cannot.  In a transaction.
 */
const char *
mt_role_cannot_login(Oid roleid)
{
	HeapTuple	tup;
	const char *reason = NULL;

	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	if (!HeapTupleIsValid(tup))
		return NULL;
	if (!((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin)
		reason = "NOLOGIN";
	else
	{
		bool		isnull;
		Datum		until = SysCacheGetAttr(AUTHOID, tup, Anum_pg_authid_rolvaliduntil,
											&isnull);

		if (!isnull && DatumGetTimestampTz(until) < GetCurrentTimestamp())
			reason = psprintf("its VALID UNTIL %s has passed",
							  timestamptz_to_str(DatumGetTimestampTz(until)));
	}
	ReleaseSysCache(tup);
	return reason;
}
