/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  The utility guard (guard.c): its GUC migration_tools.guard and its
 *	  ProcessUtility_hook, which _PG_init installs.
 *
 * IDENTIFICATION
 *	  src/guard.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_GUARD_H
#define MT_GUARD_H

#include "tcop/utility.h"

/* Define migration_tools.guard. */
extern void mt_guard_init(void);

/* The hook that was installed before ours, called after the check. */
extern ProcessUtility_hook_type mt_guard_prev_ProcessUtility;

/* The ProcessUtility_hook: lint the utility statement, then run it. */
extern void mt_guard_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
									bool readOnlyTree,
									ProcessUtilityContext context,
									ParamListInfo params,
									QueryEnvironment *queryEnv,
									DestReceiver *dest, QueryCompletion *qc);

#endif							/* MT_GUARD_H */
