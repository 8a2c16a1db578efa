/* migration_tools install script: locks */
