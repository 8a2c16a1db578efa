/*-------------------------------------------------------------------------
 *
 * drift.h
 *	  Catalog descriptions shared by drift.c and schedule.c.
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

#endif							/* MT_DRIFT_H */
