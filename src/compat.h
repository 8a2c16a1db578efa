/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The differences between the PostgreSQL major versions migration_tools
 *	  builds against: 15, 16, 17 and 18.
 *
 * Every test of PG_VERSION_NUM in the module is here.  The code uses the
 * names defined below: a server API whose name or arguments changed gets
 * one name here, and a server feature that only some versions have gets an
 * MT_HAVE_* macro that the code tests with #ifdef where the behaviour
 * differs.  Macros only: each caller includes the server headers that
 * declare what the macro expands to.
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATION_TOOLS_COMPAT_H
#define MIGRATION_TOOLS_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "migration_tools requires PostgreSQL 15 or later"
#endif

/*
 * The backend status table by position (1..pgstat_fetch_stat_numbackends()):
 * renamed in 16.
 */
#if PG_VERSION_NUM >= 160000
#define pgstat_fetch_stat_local_beentry(i) pgstat_get_local_beentry_by_index(i)
#endif

/*
 * The virtual transaction id in a lock manager snapshot (LockInstanceData):
 * 17 replaced the backend id and the local xid by a VirtualTransactionId
 * whose first field is a proc number.  MtProcNumber is the type of the
 * first part.
 */
#if PG_VERSION_NUM >= 170000
#define MtProcNumber ProcNumber
#define MT_LOCK_INSTANCE_PROC(inst) ((inst)->vxid.procNumber)
#define MT_LOCK_INSTANCE_LXID(inst) ((inst)->vxid.localTransactionId)
#else
#define MtProcNumber BackendId
#define MT_LOCK_INSTANCE_PROC(inst) ((inst)->backend)
#define MT_LOCK_INSTANCE_LXID(inst) ((inst)->lxid)
#endif

/*
 * The wait event class of a buffer pin wait: spelled without the
 * underscore since 17, when the wait events became generated.
 */
#if PG_VERSION_NUM >= 170000
#define MT_WAIT_BUFFERPIN PG_WAIT_BUFFERPIN
#else
#define MT_WAIT_BUFFERPIN PG_WAIT_BUFFER_PIN
#endif

/*
 * 18: a backend still authenticating has its own state in the backend
 * status table (pg_stat_activity shows "starting").
 */
#if PG_VERSION_NUM >= 180000
#define MT_HAVE_STATE_STARTING 1
#endif

/*
 * The OID of a relation's primary key index, InvalidOid if none (or if it
 * is deferrable, which no version returns by default): 18 added the choice
 * to get a deferrable one.
 */
#if PG_VERSION_NUM >= 180000
#define mt_relation_primary_key_index(rel) RelationGetPrimaryKeyIndex((rel), false)
#else
#define mt_relation_primary_key_index(rel) RelationGetPrimaryKeyIndex(rel)
#endif

/*
 * Has a raw INSERT, UPDATE, DELETE or MERGE a RETURNING clause?  18 made
 * it a ReturningClause node (which also names OLD and NEW).
 */
#if PG_VERSION_NUM >= 180000
#define mt_stmt_has_returning(stmt) ((stmt)->returningClause != NULL)
#else
#define mt_stmt_has_returning(stmt) ((stmt)->returningList != NIL)
#endif

/*
 * reverse(text): 18 added reverse(bytea), so the text one got a suffix in
 * the generated function OID names.
 */
#if PG_VERSION_NUM >= 180000
#define MT_F_REVERSE_TEXT F_REVERSE_TEXT
#else
#define MT_F_REVERSE_TEXT F_REVERSE
#endif

/*
 * A function that does not return: 18 dropped pg_attribute_noreturn() (an
 * attribute after the declarator) for pg_noreturn (a specifier before it).
 * GCC-compatible compilers accept the attribute in front as well, so
 * mt_noreturn goes first in the declaration for every version.
 */
#if PG_VERSION_NUM >= 180000
#define mt_noreturn pg_noreturn
#else
#define mt_noreturn pg_attribute_noreturn()
#endif

/*
 * Run a portal to completion: 18 dropped PortalRun's run_once argument
 * (it was always true for us).
 */
#if PG_VERSION_NUM >= 180000
#define mt_portal_run(portal, count, top_level, dest, altdest, qc) \
	PortalRun((portal), (count), (top_level), (dest), (altdest), (qc))
#else
#define mt_portal_run(portal, count, top_level, dest, altdest, qc) \
	PortalRun((portal), (count), (top_level), true, (dest), (altdest), (qc))
#endif

/*
 * 18: partitioned tables accept NOT VALID foreign keys (before, ADD FOREIGN
 * KEY ... NOT VALID on one fails, and a valid one scans every partition
 * unless the partitions already have it).
 */
#if PG_VERSION_NUM >= 180000
#define MT_HAVE_PARTITIONED_FK_NOT_VALID 1
#endif

/*
 * 18: generated columns are virtual unless STORED (computed when read:
 * adding one rewrites nothing).  Is the raw GENERATED constraint c of a
 * stored column?
 */
#if PG_VERSION_NUM >= 180000
#define mt_generated_is_stored(c) ((c)->generated_kind == ATTRIBUTE_GENERATED_STORED)
#else
#define mt_generated_is_stored(c) true
#endif

#endif							/* MIGRATION_TOOLS_COMPAT_H */
