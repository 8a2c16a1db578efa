/* migration_tools install script: last steps */

-- Have the launcher look at this database now: it may hold work already
-- (a database restored from a dump), and it now has the extension.
SELECT migration_tools._wakeup();
