/*-------------------------------------------------------------------------
 *
 * history.h
 *	  Migration history: the parts shared by apply (history_apply.c) and
 *	  rollback (history_rollback.c), defined in history.c.
 *
 * IDENTIFICATION
 *	  src/history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_HISTORY_H
#define MT_HISTORY_H

#endif							/* MT_HISTORY_H */
