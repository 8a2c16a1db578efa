/*-------------------------------------------------------------------------
 *
 * drift.h
 *	  Catalog descriptions: the schema fingerprint that apply(), rollback()
 *	  and the worker store per migration, and the object list behind it.
 *
 * IDENTIFICATION
 *	  src/drift.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_DRIFT_H
#define MT_DRIFT_H

#include "nodes/pg_list.h"

/* One object of the user's schema, as mt_catalog_describe() reads it. */
typedef struct MtCatalogObject
{
	char	   *kind;			/* pg_identify_object() type: "table", ... */
	char	   *identity;		/* pg_identify_object() identity */
	char	   *definition;		/* text built from the catalogs */
} MtCatalogObject;

/* The user's schema, sorted by kind then identity (bytewise). */
extern List *mt_catalog_describe(void);

/*
 * A fingerprint of the schema of the current database: a JSON object
 * mapping "object type:identity" of every table, column, constraint,
 * index, view, sequence, function, type, trigger, policy, schema and
 * extension outside the system and extension schemas to the MD5 of its
 * definition.  Reads the catalogs only (no lock on user relations); works
 * with or without an SPI connection; palloc'd in the caller's context.
 * apply() stores it per migration; schema_drift() compares against it.
 */
extern char *mt_catalog_fingerprint(void);

#endif							/* MT_DRIFT_H */
