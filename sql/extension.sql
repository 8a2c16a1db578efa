--
-- The extension itself: install, objects, the launcher, drop and re-create.
--

-- pg_regress created the extension (--load-extension); it is not relocatable
-- and lives in its own schema.
SELECT extname, extversion, extrelocatable, extnamespace::regnamespace
FROM pg_extension WHERE extname = 'migration_tools';

-- The library is preloaded, so the launcher runs: wait for it (it starts
-- once the server accepts connections).
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT FROM migration_tools.workers WHERE kind = 'launcher');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT kind, pid = (SELECT pid FROM pg_stat_activity
                    WHERE backend_type = 'migration_tools launcher') AS pid_matches
FROM migration_tools.workers WHERE kind = 'launcher';

-- Settings, with their defaults from the test configuration.
SHOW migration_tools.max_workers;
SHOW migration_tools.launcher_naptime;

-- The migration_tools prefix is reserved: a misspelt setting is an error.
SET migration_tools.max_wokers = 3;

-- max_workers is fixed at server start.
SET migration_tools.max_workers = 3;

-- The admin role exists and is not a login role.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'migration_tools_admin';

-- Everyone may read the workers view; only the owner may wake the launcher.
SELECT has_table_privilege('public', 'migration_tools.workers', 'SELECT') AS workers_public,
       has_function_privilege('public', 'migration_tools._wakeup()', 'EXECUTE') AS wakeup_public;

-- Drop and create again.  The role stays, and so does the schema: PostgreSQL
-- does not make the schema it creates for the extension a member of it.
-- Everything in it is gone.
DROP EXTENSION migration_tools;
SELECT count(*) AS objects_left FROM pg_class
WHERE relnamespace = 'migration_tools'::regnamespace;
SELECT count(*) AS functions_left FROM pg_proc
WHERE pronamespace = 'migration_tools'::regnamespace;
SELECT count(*) AS roles FROM pg_roles WHERE rolname = 'migration_tools_admin';
CREATE EXTENSION migration_tools;
SELECT count(*) AS launcher FROM migration_tools.workers WHERE kind = 'launcher';

-- The extension cannot be moved to another schema.
CREATE SCHEMA elsewhere;
ALTER EXTENSION migration_tools SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;
