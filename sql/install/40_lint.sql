/* migration_tools install script: lint */
