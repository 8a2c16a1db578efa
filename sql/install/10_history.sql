/* migration_tools install script: history */
