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
-- (CREATE INDEX CONCURRENTLY, VACUUM, ...).  apply() queues them here; the
-- background worker runs them, in order, after the caller commits.
CREATE TABLE migration_tools.scheduled_statements (
    version         text NOT NULL REFERENCES migration_tools.migrations (version)
                    ON UPDATE CASCADE ON DELETE CASCADE,
    seq             integer NOT NULL,        -- statement order within the migration
    statement_no    integer NOT NULL,        -- its number in up_sql (1-based)
    sql             text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    run_as          name NOT NULL,           -- role that called apply()
    not_before      timestamptz NOT NULL DEFAULT now(),  -- retry backoff
    started_at      timestamptz,
    finished_at     timestamptz,
    error           text,
    PRIMARY KEY (version, seq)
);
COMMENT ON TABLE migration_tools.scheduled_statements IS
'Statements of scheduled migrations that the background worker runs outside a transaction block';
REVOKE ALL ON migration_tools.scheduled_statements FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migration_tools.scheduled_statements', '');
