/*-------------------------------------------------------------------------
 *
 * migration_tools.h
 *	  Declarations shared by every subsystem of migration_tools: the
 *	  initialisation entry point of each subsystem, called from _PG_init,
 *	  and the check that the library was loaded through
 *	  shared_preload_libraries.
 *
 * IDENTIFICATION
 *	  src/migration_tools.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATION_TOOLS_H
#define MIGRATION_TOOLS_H

#include "compat.h"

#define MT_EXTENSION_NAME	"migration_tools"
#define MT_SCHEMA_NAME		"migration_tools"
#define MT_GUC_PREFIX		"migration_tools"

/* true when the library was loaded by shared_preload_libraries */
extern bool mt_preloaded;

extern void mt_require_preload(const char *feature);

/*
 * Subsystem initialisation.  Each defines its own reloadable GUCs and may
 * install hooks; they run in every process that loads the library.
 */
extern void mt_history_init(void);
extern void mt_backfill_init(void);
extern void mt_locks_init(void);
extern void mt_lint_init(void);

/* Postmaster-only part: shared memory, postmaster GUCs, the launcher. */
extern void mt_launcher_init(void);

#endif							/* MIGRATION_TOOLS_H */
