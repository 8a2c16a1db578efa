/*-------------------------------------------------------------------------
 *
 * lint.c
 *	  The migration linter, built on the parser of the server.
 *
 * IDENTIFICATION
 *	  src/lint.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "migration_tools.h"

void
mt_lint_init(void)
{
}
