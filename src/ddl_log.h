/*-------------------------------------------------------------------------
 *
 * ddl_log.h
 *	  The DDL log: its GUCs and the worker's pruning of old rows.
 *
 * IDENTIFICATION
 *	  src/ddl_log.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MT_DDL_LOG_H
#define MT_DDL_LOG_H

/* migration_tools.ddl_log: record DDL in migration_tools.ddl_log */
extern bool mt_ddl_log_enabled;

/* migration_tools.ddl_log_retention: minutes rows are kept (-1: forever) */
extern int	mt_ddl_log_retention;
extern int	mt_ddl_log_max_statement_length;

/* Define the GUCs of the DDL log, from _PG_init. */
extern void mt_ddl_log_init(void);

/*
 * Delete the rows of migration_tools.ddl_log older than the retention, in
 * transactions of their own (in the worker).
 */
extern void mt_ddl_log_prune(void);

#endif							/* MT_DDL_LOG_H */
