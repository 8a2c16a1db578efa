/*-------------------------------------------------------------------------
 *
 * schedule_index.h
 *	  INVALID indexes left by scheduled statements (schedule_index.c).
 *
 * IDENTIFICATION
 *	  src/schedule_index.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_SCHEDULE_INDEX_H
#define MT_SCHEDULE_INDEX_H

#include "nodes/pg_list.h"
#include "utils/palloc.h"

/* What a failed statement may have left behind: INVALID indexes. */
typedef struct MtIndexTarget
{
	Oid			tableid;		/* table of the index, InvalidOid if none */
	char	   *nspname;		/* schema of the index */
	char	   *idxname;		/* CREATE INDEX name, or NULL */
	char	   *reindexed;		/* REINDEX INDEX CONCURRENTLY: its name */
	bool		reindex;		/* REINDEX ... CONCURRENTLY */
	bool		built;			/* a VALID index idxname is on the table */
	bool		stale;			/* an INVALID index idxname is on the table */
	List	   *invalid_before; /* OIDs of INVALID indexes before the run */
} MtIndexTarget;

/*
 * Which table a statement builds an index on concurrently, under which
 * name.  In a transaction.
 */
extern void mt_schedule_find_index_target(const char *sql, MtIndexTarget *target);

/* OIDs of the INVALID indexes of a table, as a list in cxt.  SPI connected. */
extern List *mt_schedule_invalid_indexes(Oid tableid, MemoryContext cxt);

/*
 * Drop the INVALID indexes a failed run of the statement left on its table
 * (only_known_names: only those named as the statement's), at top level,
 * logged in ddl_log with the statement's migration version.
 */
extern void mt_schedule_drop_invalid_indexes(MtIndexTarget *target,
											 bool only_known_names,
											 const char *version,
											 MemoryContext cxt);

/* Does another session hold a lock on the table conflicting with SHARE UPDATE EXCLUSIVE? */
extern bool mt_schedule_table_lock_held(Oid tableid, MemoryContext cxt);

/* ERROR when the index the statement named exists but is INVALID. */
extern void mt_schedule_check_index_built(MtIndexTarget *target, MemoryContext cxt);

#endif							/* MT_SCHEDULE_INDEX_H */
