/* migration_tools install script: migration history */

-- One row per migration version.  Written only by the functions of this
-- extension (apply, baseline, rollback, the worker); read through the
-- status view.
CREATE TABLE migration_tools.migrations (
    version         text PRIMARY KEY CHECK (version <> ''),
    description     text,
    checksum        text NOT NULL,           -- hex SHA-256 of up_sql
    up_sql          text NOT NULL,
    down_sql        text,
    state           text NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'applied', 'failed', 'rolled_back', 'scheduled')),
    applied_by      name NOT NULL DEFAULT current_user,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    execution_time  interval,
    attempts        integer NOT NULL DEFAULT 0,
    lock_wait_time  interval NOT NULL DEFAULT '0'::interval,
    error           text,
    -- beyond the contract
    installed_rank  bigserial,               -- order of recording, for "newest first"
    lock_waits_caused integer NOT NULL DEFAULT 0,  -- sessions that waited on this migration
    catalog_fingerprint text,                -- schema fingerprint after the migration (schema_drift)
    rolled_back_at  timestamptz,
    baseline        boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE migration_tools.migrations IS
'History of every migration: script, checksum, state, timings, attempts and lock waits';
REVOKE ALL ON migration_tools.migrations FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migration_tools.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('migration_tools.migrations_installed_rank_seq', '');

-- Statements of a migration that cannot run in a transaction block
-- (CREATE INDEX CONCURRENTLY, VACUUM, ...).  apply() queues them here, and
-- rollback() those of down scripts (direction 'down'); the background
-- worker runs them, in order, after the caller commits.
CREATE TABLE migration_tools.scheduled_statements (
    version         text NOT NULL REFERENCES migration_tools.migrations (version)
                    ON UPDATE CASCADE ON DELETE CASCADE,
    seq             integer NOT NULL,        -- statement order within the migration
    statement_no    integer NOT NULL,        -- its number in up_sql or down_sql (1-based)
    sql             text NOT NULL,
    direction       text NOT NULL DEFAULT 'up' CHECK (direction IN ('up', 'down')),
    -- the migrations whose scheduled statements must all be done before
    -- this one runs: rollback_to(), the newer one (newest first); apply()
    -- behind scheduled statements on the same relations, every earlier
    -- one with such statements (newest first)
    run_after       text[],
    -- false: a statement that could run in a transaction block, queued
    -- behind the scheduled down statements of a newer migration; it runs
    -- under migration_tools.max_lock_timeout
    top_level       boolean NOT NULL DEFAULT true,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    run_as          name NOT NULL,           -- role that called apply()
    not_before      timestamptz NOT NULL DEFAULT now(),  -- retry backoff
    started_at      timestamptz,
    finished_at     timestamptz,
    error           text,
    -- run_as could log in when the statement was recorded: if it no
    -- longer can (NOLOGIN, VALID UNTIL passed), the statement fails
    run_as_login    boolean NOT NULL DEFAULT true,
    PRIMARY KEY (version, seq)
);
COMMENT ON TABLE migration_tools.scheduled_statements IS
'Statements of scheduled migrations that the background worker runs outside a transaction block';
REVOKE ALL ON migration_tools.scheduled_statements FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migration_tools.scheduled_statements', '');

-- The checksum apply() records: hex SHA-256 of the script.
CREATE FUNCTION migration_tools.checksum(sql text)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_checksum'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION migration_tools.checksum(text) IS
'Hex SHA-256 of a migration script, as apply() records it in migrations.checksum';

-- apply() runs user SQL with the caller's privileges and search_path
-- (SECURITY INVOKER, no SET clause); it switches to the owner of the
-- history tables, with a pinned search_path, only to read and write them.
CREATE FUNCTION migration_tools.apply(
    version text, up_sql text, down_sql text DEFAULT NULL,
    description text DEFAULT NULL, allow text[] DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_apply'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.apply(text, text, text, text, text[]) IS
'Run a migration script in the current transaction (linted, lock-aware, retried on lock timeouts) and record it; returns its state';

CREATE FUNCTION migration_tools.baseline(version text, description text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_baseline'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.baseline(text, text) IS
'Record a version as applied without running anything';

CREATE FUNCTION migration_tools.rollback(version text)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_rollback'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.rollback(text) IS
'Run the down script of an applied migration and mark it rolled_back';

CREATE FUNCTION migration_tools.rollback_to(version text)
RETURNS integer
AS 'MODULE_PATHNAME', 'mt_rollback_to'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.rollback_to(text) IS
'Roll back every applied migration recorded after the given one, newest first; returns how many';

CREATE FUNCTION migration_tools.resolve(version text, state text)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_resolve'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.resolve(text, text) IS
'Mark a failed migration applied or rolled_back by hand (as prisma migrate resolve does); its scheduled statements not done are cancelled';
REVOKE ALL ON FUNCTION migration_tools.resolve(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools.resolve(text, text) TO migration_tools_admin;

CREATE PROCEDURE migration_tools.await_migration(version text, timeout interval DEFAULT NULL)
AS 'MODULE_PATHNAME', 'mt_await_migration'
LANGUAGE C;
COMMENT ON PROCEDURE migration_tools.await_migration(text, interval) IS
'Wait, committing between looks (no snapshot held), until a migration is applied or rolled_back; ERROR if it is failed or after timeout';

-- The lock that serializes the writers of the history (apply() and the
-- others take it in C), for import_history(): SHARE UPDATE EXCLUSIVE on
-- the migrations table, which no role without a privilege on it can take.
CREATE FUNCTION migration_tools._lock_history()
RETURNS void
AS 'MODULE_PATHNAME', 'mt_lock_history'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools._lock_history() IS
'Take the lock that serializes the writers of the migration history, waiting up to migration_tools.max_deployer_wait (internal)';
REVOKE ALL ON FUNCTION migration_tools._lock_history() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools._lock_history() TO migration_tools_admin;

REVOKE ALL ON FUNCTION migration_tools.apply(text, text, text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION migration_tools.baseline(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION migration_tools.rollback(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION migration_tools.rollback_to(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools.apply(text, text, text, text, text[]) TO migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.baseline(text, text) TO migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.rollback(text) TO migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.rollback_to(text) TO migration_tools_admin;

-- One row per migration, newest first.  Readable by everyone; the tables
-- behind it are not.  Every role sees every migration's version, state
-- and timings (a deployer must see the history of the others), but the
-- error text and the checksum of a migration only when it may act as the
-- role that applied it, or is a member of migration_tools_admin (or a
-- superuser); others read '<insufficient privilege>'.  The view is a
-- security barrier: no function of the reader's query sees a column
-- before the view has masked it.
CREATE VIEW migration_tools.status WITH (security_barrier) AS
SELECT m.version,
       m.description,
       m.state,
       m.applied_by,
       m.started_at,
       m.finished_at,
       m.execution_time,
       m.attempts,
       m.lock_wait_time,
       m.lock_waits_caused,
       CASE WHEN v.visible THEN m.checksum ELSE '<insufficient privilege>' END AS checksum,
       m.checksum = migration_tools.checksum(m.up_sql) AS checksum_ok,
       CASE WHEN m.error IS NULL OR v.visible THEN m.error
            ELSE '<insufficient privilege>' END AS error,
       (SELECT count(*) FROM migration_tools.scheduled_statements s
        WHERE s.version = m.version
          AND s.state IN ('pending', 'running'))::integer AS pending_statements,
       m.down_sql IS NOT NULL AS reversible,
       m.baseline,
       m.rolled_back_at,
       m.installed_rank,
       -- what the statements of a scheduled migration (or of one whose
       -- scheduled statements failed) are for: 'apply' or 'rollback'
       CASE WHEN m.state NOT IN ('scheduled', 'failed') THEN NULL
            WHEN EXISTS (SELECT FROM migration_tools.scheduled_statements s
                         WHERE s.version = m.version AND s.direction = 'down'
                           AND s.state <> 'done') THEN 'rollback'
            WHEN EXISTS (SELECT FROM migration_tools.scheduled_statements s
                         WHERE s.version = m.version AND s.direction = 'up'
                           AND s.state <> 'done') THEN 'apply'
       END AS scheduled_for
FROM migration_tools.migrations m
CROSS JOIN LATERAL (
    SELECT pg_catalog.pg_has_role('migration_tools_admin', 'MEMBER')
           OR EXISTS (SELECT FROM pg_catalog.pg_roles r
                      WHERE r.rolname = m.applied_by
                        AND pg_catalog.pg_has_role(r.oid, 'USAGE')) AS visible
) v
ORDER BY m.installed_rank DESC;
COMMENT ON VIEW migration_tools.status IS
'Every migration, newest first: state, timings, attempts, lock waits, and whether its checksum still matches its script';
GRANT SELECT ON migration_tools.status TO PUBLIC;

COMMENT ON COLUMN migration_tools.migrations.checksum IS 'hex SHA-256 of up_sql (migration_tools.checksum())';
COMMENT ON COLUMN migration_tools.migrations.state IS 'applied, failed, rolled_back, scheduled (statements pending for the worker, of the up or of the down script: see status.scheduled_for), running';
COMMENT ON COLUMN migration_tools.migrations.attempts IS 'attempts of the up script; more than one after lock timeouts; with scheduled statements, the most attempts any part needed';
COMMENT ON COLUMN migration_tools.migrations.lock_wait_time IS 'time spent waiting for locks: preflight waits plus attempts lost to lock timeouts';
COMMENT ON COLUMN migration_tools.migrations.error IS 'for a failed migration: statement number, message, SQLSTATE, detail';
COMMENT ON COLUMN migration_tools.migrations.installed_rank IS 'order of recording; status lists the highest first';
COMMENT ON COLUMN migration_tools.migrations.lock_waits_caused IS 'sessions waiting on the migration''s locks right after its statements ran';
COMMENT ON COLUMN migration_tools.migrations.catalog_fingerprint IS 'schema fingerprint after the migration or its rollback, for schema_drift()';
COMMENT ON COLUMN migration_tools.migrations.baseline IS 'recorded by baseline(), nothing was run';
