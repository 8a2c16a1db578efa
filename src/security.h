/*-------------------------------------------------------------------------
 *
 * security.h
 *	  Who runs what: the one policy for switching the user id, to the
 *	  extension owner (our own tables) or to the role that recorded a
 *	  stored script (security.c).
 *
 * IDENTIFICATION
 *	  src/security.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_SECURITY_H
#define MT_SECURITY_H

#include "miscadmin.h"

/*
 * The security context of every switch: SET ROLE and SET SESSION
 * AUTHORIZATION are refused (the session user may be a superuser), and so
 * are temporary objects and WITH HOLD cursors, which would outlive the
 * switch in the caller's session.
 */
#define MT_SWITCH_SEC_CONTEXT \
	(SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION)

/* The user id, security context and GUC level before a switch. */
typedef struct MtSavedUser
{
	Oid			userid;
	int			sec_context;
	int			guc_nestlevel;
} MtSavedUser;

/* The owner of the extension: the role that owns and writes its tables. */
extern Oid	mt_extension_owner(void);

/*
 * Act as the extension owner, with search_path pinned to "pg_catalog,
 * pg_temp", until mt_restore_user(); an error in between is undone by the
 * (sub)transaction abort.
 */
extern void mt_become_owner(MtSavedUser *saved);

/*
 * Act as roleid (the role that recorded a stored script), keeping the
 * caller's search_path, until mt_restore_user().
 */
extern void mt_become_role(Oid roleid, MtSavedUser *saved);

/* Back to what mt_become_owner() or mt_become_role() saved. */
extern void mt_restore_user(MtSavedUser *saved);

/* Superuser, or member of migration_tools_admin. */
extern bool mt_is_admin(Oid roleid);

/*
 * May the current user see the error texts and checksums of what rolename
 * recorded?  As the status view decides: an administrator, or a role with
 * the privileges of rolename.
 */
extern bool mt_may_see_role_rows(const char *rolename);

/*
 * The role a stored script of a migration runs as: rolename, the role that
 * recorded it.  ERROR when it no longer exists, or when the current user
 * may not act as it (not a member, not a superuser).  what and version
 * name the script in the messages ("the down script", "100").
 */
extern Oid	mt_recorded_role(const char *rolename, const char *what,
							 const char *version);

/* Why roleid can no longer log in, or NULL when it can. */
extern const char *mt_role_cannot_login(Oid roleid);

#endif							/* MT_SECURITY_H */
