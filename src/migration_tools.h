/*-------------------------------------------------------------------------
 *
 * migration_tools.h
 *	  Declarations shared by every subsystem of migration_tools: its names
 *	  and the check that the library was loaded through
 *	  shared_preload_libraries.  Each subsystem's initialisation (its GUCs)
 *	  is declared in the subsystem's own header and called from _PG_init.
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

#endif							/* MIGRATION_TOOLS_H */
