/* migration_tools install script: base objects shared by every subsystem */

\echo Use "CREATE EXTENSION migration_tools" to load this file. \quit

GRANT USAGE ON SCHEMA migration_tools TO PUBLIC;

-- Members of this role see and control every role's jobs and migrations.
-- Roles are cluster-wide: the role outlives DROP EXTENSION on purpose, as
-- other databases of the cluster may use it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'migration_tools_admin') THEN
        CREATE ROLE migration_tools_admin NOLOGIN;
    END IF;
END
$$;

CREATE FUNCTION migration_tools._wakeup()
RETURNS boolean
AS 'MODULE_PATHNAME', 'mt_wakeup'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools._wakeup() IS
'Ask the launcher to start a worker in this database when the transaction commits (internal)';
REVOKE ALL ON FUNCTION migration_tools._wakeup() FROM PUBLIC;

CREATE FUNCTION migration_tools.worker_processes(
    OUT kind text, OUT pid integer, OUT database oid,
    OUT running text, OUT running_id bigint, OUT relation oid)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_worker_processes'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.worker_processes() IS
'The launcher and the per-database workers in use, read from shared memory';

CREATE VIEW migration_tools.workers AS
SELECT w.kind, w.pid, d.datname AS database, w.running, w.running_id,
       w.relation::regclass AS relation
FROM migration_tools.worker_processes() w
LEFT JOIN pg_catalog.pg_database d ON d.oid = w.database;
COMMENT ON VIEW migration_tools.workers IS
'The migration_tools launcher and workers: one row per process, with what each runs';
GRANT SELECT ON migration_tools.workers TO PUBLIC;
