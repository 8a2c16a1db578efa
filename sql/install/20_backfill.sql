/* migration_tools install script: backfill */
