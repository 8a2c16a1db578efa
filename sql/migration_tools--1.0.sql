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

REVOKE ALL ON FUNCTION migration_tools.apply(text, text, text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION migration_tools.baseline(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION migration_tools.rollback(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION migration_tools.rollback_to(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools.apply(text, text, text, text, text[]) TO migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.baseline(text, text) TO migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.rollback(text) TO migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.rollback_to(text) TO migration_tools_admin;

-- One row per migration, newest first.  Readable by everyone; the tables
-- behind it are not.
CREATE VIEW migration_tools.status AS
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
       m.checksum,
       m.checksum = migration_tools.checksum(m.up_sql) AS checksum_ok,
       m.error,
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
/* migration_tools install script: scheduled statements, drift, DDL log, import */

-- The schema description behind catalog fingerprints, schema_drift() and
-- verify_reversible().
CREATE FUNCTION migration_tools.catalog_objects(
    OUT object_type text, OUT object text, OUT definition text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_catalog_objects'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.catalog_objects() IS
'Objects of the user''s schema (outside system and extension schemas) with the definitions compared by schema_drift() and verify_reversible()';

CREATE FUNCTION migration_tools.catalog_fingerprint()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'mt_catalog_fingerprint_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.catalog_fingerprint() IS
'Fingerprint of the user''s schema as stored in migrations.catalog_fingerprint: object -> md5 of its definition';

-- verify_reversible(): up then down in a subtransaction that is always
-- rolled back; the catalog before and after must be equal.
CREATE FUNCTION migration_tools.verify_reversible(up_sql text, down_sql text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'mt_verify_reversible'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.verify_reversible(text, text) IS
'Run up_sql then down_sql in a subtransaction that is always rolled back; true when the schema afterwards equals the schema before (each difference is a NOTICE)';

-- schema_drift(): objects changed outside any tracked migration since the
-- last one, from the fingerprint stored with it.
CREATE FUNCTION migration_tools.schema_drift(
    OUT object_type text, OUT object text, OUT change text,
    OUT definition text, OUT since_version text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
-- reads the history (not readable by PUBLIC) for those allowed to call it
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last record;
    pending record;
BEGIN
    -- the newest fingerprint: apply and the worker store one when a
    -- migration is applied, rollback() one of the schema after it
    SELECT m.version, m.catalog_fingerprint::jsonb AS fingerprint INTO last
      FROM migration_tools.migrations m
     WHERE m.state IN ('applied', 'rolled_back') AND m.catalog_fingerprint IS NOT NULL
     ORDER BY coalesce(m.rolled_back_at, m.finished_at, m.started_at) DESC, m.installed_rank DESC
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE NOTICE 'no migration with a catalog fingerprint was found: nothing to compare with'
            USING HINT = 'schema_drift() compares with the schema as it was after the latest migration recorded by apply() or rollback().';
        RETURN;
    END IF;
    -- what the worker builds for a migration not done yet (a concurrent
    -- index build in progress) is not drift, but shows as such until then
    FOR pending IN
        SELECT m.version FROM migration_tools.migrations m
         WHERE m.state = 'scheduled' ORDER BY m.installed_rank
    LOOP
        RAISE NOTICE 'migration "%" is scheduled: what its statements change shows as drift until it is done', pending.version
            USING HINT = 'Follow it in migration_tools.status, then call schema_drift() again.';
    END LOOP;

    RETURN QUERY
    WITH old AS (SELECT key, value FROM jsonb_each_text(last.fingerprint)),
         now AS (SELECT o.object_type || ':' || o.object AS key,
                        md5(o.definition) AS value, o.definition
                   FROM migration_tools.catalog_objects() o)
    SELECT split_part(coalesce(n.key, o.key), ':', 1),
           substr(coalesce(n.key, o.key), strpos(coalesce(n.key, o.key), ':') + 1),
           CASE WHEN o.key IS NULL THEN 'added'
                WHEN n.key IS NULL THEN 'removed'
                ELSE 'changed' END,
           -- a view's stored query tree says nothing to a reader: show its SQL
           CASE WHEN strpos(n.definition, 'rule ({QUERY') > 0
                THEN regexp_replace(n.definition, 'rule \(\{QUERY.*$', 'as ')
                     || coalesce(ltrim(pg_get_viewdef(to_regclass(substr(n.key, strpos(n.key, ':') + 1)))),
                                 '(stored query)')
                ELSE n.definition END,
           last.version
      FROM old o FULL JOIN now n ON n.key = o.key
     WHERE o.value IS DISTINCT FROM n.value
     ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION migration_tools.schema_drift() IS
'Objects added, removed or changed since the latest migration, compared with the catalog fingerprint stored with it';
REVOKE ALL ON FUNCTION migration_tools.schema_drift() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools.schema_drift() TO migration_tools_admin;

-- The DDL log: every DDL command of the database, whoever ran it.
-- No primary key on purpose: a restore of a dump logs its own DDL before
-- the dumped rows come back, so ids may repeat after a restore.
CREATE TABLE migration_tools.ddl_log (
    id                bigserial NOT NULL,
    logged_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    event             text NOT NULL CHECK (event IN ('ddl_command_end', 'sql_drop')),
    command_tag       text NOT NULL,
    object_type       text,
    object_identity   text,
    schema_name       text,
    session_user_name name NOT NULL,
    current_user_name name NOT NULL,
    transaction_id    bigint,
    migration_version text                     -- set inside apply() and the worker
);
CREATE INDEX ddl_log_logged_at ON migration_tools.ddl_log (logged_at);
CREATE INDEX ddl_log_migration_version ON migration_tools.ddl_log (migration_version)
    WHERE migration_version IS NOT NULL;
COMMENT ON TABLE migration_tools.ddl_log IS
'Every DDL command run in this database (event triggers): tag, object, roles, time, transaction and the migration version inside apply()';
REVOKE ALL ON migration_tools.ddl_log FROM PUBLIC;
GRANT SELECT ON migration_tools.ddl_log TO migration_tools_admin;
SELECT pg_catalog.pg_extension_config_dump('migration_tools.ddl_log', '');
SELECT pg_catalog.pg_extension_config_dump('migration_tools.ddl_log_id_seq', '');

CREATE FUNCTION migration_tools._ddl_log()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'mt_ddl_log_trigger'
LANGUAGE C;
COMMENT ON FUNCTION migration_tools._ddl_log() IS
'Event trigger function that fills migration_tools.ddl_log (internal)';
REVOKE ALL ON FUNCTION migration_tools._ddl_log() FROM PUBLIC;

CREATE EVENT TRIGGER migration_tools_ddl_log ON ddl_command_end
    EXECUTE FUNCTION migration_tools._ddl_log();
CREATE EVENT TRIGGER migration_tools_ddl_log_drops ON sql_drop
    EXECUTE FUNCTION migration_tools._ddl_log();
COMMENT ON EVENT TRIGGER migration_tools_ddl_log IS
'Records created and altered objects in migration_tools.ddl_log';
COMMENT ON EVENT TRIGGER migration_tools_ddl_log_drops IS
'Records dropped objects in migration_tools.ddl_log';

-- import_history(): the history tables of other migration tools become
-- rows of migrations (state applied, baseline = true).
-- source_table is a regclass so that it is resolved with the caller's
-- search_path, before the function's own applies.
CREATE FUNCTION migration_tools.import_history(source text, source_table regclass DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tool text := lower(btrim(source));
    tbl regclass;
    default_name text;
    candidates regclass[];
    n integer;
    rows_sql text;
    -- The script of an imported migration is not known: up_sql is '' and
    -- checksum its SHA-256, as for every row (the tool's own checksum goes
    -- to the description).  apply() of an imported version is a no-op, as
    -- for baseline().
    empty_checksum text := encode(sha256(''::bytea), 'hex');
    failure text;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Known tools are prisma, flyway, drizzle, golang-migrate and rails.';
    END IF;
    -- as apply() and baseline(): say why nothing can be written
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot execute import_history() during recovery'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    IF current_setting('transaction_read_only')::boolean THEN
        RAISE EXCEPTION 'cannot execute import_history() in a read-only transaction'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    default_name := CASE tool
        WHEN 'prisma' THEN '_prisma_migrations'
        WHEN 'flyway' THEN 'flyway_schema_history'
        WHEN 'drizzle' THEN '__drizzle_migrations'
        WHEN 'golang-migrate' THEN 'schema_migrations'
        WHEN 'rails' THEN 'schema_migrations'
    END;
    IF default_name IS NULL THEN
        RAISE EXCEPTION 'unrecognized migration tool "%"', source
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Known tools are prisma, flyway, drizzle, golang-migrate and rails.';
    END IF;

    IF source_table IS NOT NULL THEN
        tbl := source_table;
    ELSE
        -- the tool's table in any user schema; drizzle keeps it in schema drizzle
        SELECT array_agg(c.oid::regclass ORDER BY (n.nspname = 'drizzle') DESC, n.nspname)
          INTO candidates
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = default_name AND c.relkind IN ('r', 'p', 'v', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'migration_tools')
           AND n.nspname !~ '^pg_temp_' AND n.nspname !~ '^pg_toast';
        IF candidates IS NULL THEN
            RAISE EXCEPTION 'table "%" of % was not found', default_name, tool
                USING ERRCODE = 'undefined_table',
                      HINT = 'Pass the table as the second argument if it has another name.';
        ELSIF cardinality(candidates) > 1 AND tool <> 'drizzle' THEN
            RAISE EXCEPTION 'more than one table "%" exists', default_name
                USING ERRCODE = 'ambiguous_alias',
                      DETAIL = format('Candidates: %s.', array_to_string(candidates, ', ')),
                      HINT = 'Pass the table to import as the second argument.';
        END IF;
        tbl := candidates[1];
    END IF;

    -- serialized with apply() and every other writer of the history
    PERFORM pg_advisory_xact_lock(7887033719535463545);

    -- Each tool's rows, as the columns of migrations they fill, in the
    -- order they were applied (installed_rank follows it); one INSERT below.
    IF tool = 'prisma' THEN
        -- one row per attempt: the latest attempt of each migration counts
        rows_sql := format($q$
            SELECT migration_name::text AS version,
                   'imported from prisma' || coalesce(' (checksum ' || checksum || ')', '') AS description,
                   CASE WHEN rolled_back_at IS NOT NULL THEN 'rolled_back'
                        WHEN finished_at IS NULL THEN 'failed'
                        ELSE 'applied' END AS state,
                   current_user AS applied_by,
                   coalesce(started_at, now()) AS started_at, finished_at,
                   finished_at - started_at AS execution_time,
                   CASE WHEN finished_at IS NULL AND rolled_back_at IS NULL THEN logs END AS error,
                   rolled_back_at
              FROM (SELECT DISTINCT ON (migration_name) *
                      FROM %s
                     WHERE migration_name IS NOT NULL AND migration_name <> ''
                     ORDER BY migration_name, started_at DESC) p
             ORDER BY p.started_at, p.migration_name $q$, tbl);
    ELSIF tool = 'flyway' THEN
        -- versioned ones only (repeatable: no version); latest row counts, a successful undo rolls back
        rows_sql := format($q$
            SELECT version::text,
                   concat_ws(' ', description, '(imported from flyway: ' || type ||
                             coalesce(' ' || script, '') ||
                             coalesce(', checksum ' || checksum, '') || ')') AS description,
                   CASE WHEN type LIKE 'UNDO%%' THEN 'rolled_back' WHEN success THEN 'applied' ELSE 'failed' END AS state,
                   CASE WHEN installed_by IS NOT NULL AND length(installed_by) < 64
                        THEN installed_by::name ELSE current_user END AS applied_by,
                   installed_on AS started_at,
                   installed_on + execution_time * interval '1 millisecond' AS finished_at,
                   execution_time * interval '1 millisecond' AS execution_time,
                   CASE WHEN NOT success THEN 'failed in flyway' END AS error,
                   CASE WHEN type LIKE 'UNDO%%' THEN installed_on END::timestamptz AS rolled_back_at
              FROM (SELECT DISTINCT ON (version) *
                      FROM %s
                     WHERE version IS NOT NULL AND version <> ''
                       AND type NOT IN ('SCHEMA', 'DELETE') AND NOT (type LIKE 'UNDO%%' AND NOT success)
                     ORDER BY version, installed_rank DESC) f
             ORDER BY installed_rank $q$, tbl);
    ELSIF tool = 'drizzle' THEN
        -- drizzle records the hash of the SQL file and the migration's
        -- folder timestamp (created_at, milliseconds), no name
        rows_sql := format($q$
            SELECT created_at::text AS version,
                   'imported from drizzle' || coalesce(' (hash ' || hash || ')', '') AS description,
                   'applied' AS state, current_user AS applied_by,
                   coalesce(to_timestamp(created_at / 1000.0), now()) AS started_at,
                   coalesce(to_timestamp(created_at / 1000.0), now()) AS finished_at,
                   NULL::interval AS execution_time, NULL AS error,
                   NULL::timestamptz AS rolled_back_at
              FROM %s
             WHERE created_at IS NOT NULL
             ORDER BY id $q$, tbl);
    ELSIF tool = 'golang-migrate' THEN
        -- golang-migrate keeps only the current version; dirty = failed half-way
        rows_sql := format($q$
            SELECT version::text,
                   'imported from golang-migrate (current version)' AS description,
                   CASE WHEN dirty THEN 'failed' ELSE 'applied' END AS state,
                   current_user AS applied_by, now() AS started_at, now() AS finished_at,
                   NULL::interval AS execution_time,
                   CASE WHEN dirty THEN 'dirty in golang-migrate' END AS error,
                   NULL::timestamptz AS rolled_back_at
              FROM %s $q$, tbl);
    ELSE
        -- rails: one row per applied version
        rows_sql := format($q$
            SELECT version::text, 'imported from rails' AS description, 'applied' AS state,
                   current_user AS applied_by, now() AS started_at, now() AS finished_at,
                   NULL::interval AS execution_time, NULL AS error,
                   NULL::timestamptz AS rolled_back_at
              FROM %s
             WHERE version IS NOT NULL AND version::text <> ''
             ORDER BY version::text $q$, tbl);
    END IF;

    -- (a subquery with ORDER BY is not flattened: its order is kept)
    -- A table of another shape fails on its columns or their types: say
    -- which table and tool, with the server's message as the detail.
    BEGIN
    EXECUTE format($q$
        INSERT INTO migration_tools.migrations
            (version, description, checksum, up_sql, state, applied_by, started_at,
             finished_at, execution_time, attempts, error, rolled_back_at, baseline)
        SELECT i.version, i.description, %L, '', i.state, i.applied_by, i.started_at,
               i.finished_at, i.execution_time, 1, i.error, i.rolled_back_at, true
          FROM (%s) i
        ON CONFLICT (version) DO NOTHING $q$, empty_checksum, rows_sql);
    GET DIAGNOSTICS n = ROW_COUNT;
    EXCEPTION WHEN undefined_column OR undefined_function OR datatype_mismatch
                   OR invalid_text_representation THEN
        GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
        RAISE EXCEPTION 'table "%" is not a history table of %', tbl, tool
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Reading it failed: %s.', failure),
                  HINT = format('Pass the table that %s itself writes its history to.', tool);
    END;
    RETURN n;
END
$$;
COMMENT ON FUNCTION migration_tools.import_history(text, regclass) IS
'Import the history table of prisma, flyway, drizzle, golang-migrate or rails as applied (baseline) migrations; returns the rows imported';
REVOKE ALL ON FUNCTION migration_tools.import_history(text, regclass) FROM PUBLIC;
/* migration_tools install script: backfill */

-- One row per batched job (backfill() or run_batched()).  Written only by
-- the functions of this extension and the background worker, each write
-- done as the extension owner; read through the backfill_progress view.
-- The checkpoint columns (last_key, next_block, phase, sweep_*) and the
-- counters are updated in the same transaction as the batch they describe.
CREATE TABLE migration_tools.backfill_jobs (
    job_id          bigserial PRIMARY KEY,
    relation        regclass NOT NULL,
    relation_name   text NOT NULL,           -- qualified name when queued, for messages
    kind            text NOT NULL CHECK (kind IN ('backfill', 'run_batched')),
    set_clause      text,                    -- backfill(): the SET list
    where_clause    text,                    -- backfill(): extra row filter
    sql             text,                    -- run_batched(): statement taking $1, $2
    guard_clause    text,                    -- IS DISTINCT FROM filter built from set_clause
    strategy        text NOT NULL CHECK (strategy IN ('key', 'ctid')),
    guard           boolean NOT NULL,
    key_columns     text[],                  -- primary key columns (key strategy)
    key_types       text[],                  -- their types, qualified
    fixed_batch_size integer CHECK (fixed_batch_size > 0),  -- NULL: adaptive
    target_batch_time interval NOT NULL,
    batch_sleep     interval NOT NULL,
    start_at        timestamptz,
    max_attempts    integer NOT NULL CHECK (max_attempts > 0),
    run_window      text,
    owner           oid NOT NULL,            -- the role that queued the job
    owner_name      name NOT NULL,
    search_path     text NOT NULL,           -- the queueing session's search_path
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    queued_at       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    -- checkpoint
    phase           text NOT NULL DEFAULT 'plan' CHECK (phase IN ('plan', 'main', 'sweep', 'done')),
    last_key        text[],                  -- key: last key processed
    next_block      bigint NOT NULL DEFAULT 0,   -- ctid: first block not processed
    end_block       bigint,                  -- ctid: end of the current pass
    rows_per_block  double precision,        -- ctid: estimate
    sweep_pass      integer NOT NULL DEFAULT 0,
    sweep_rows      bigint NOT NULL DEFAULT 0,   -- rows changed by the current sweep pass
    -- progress
    rows_done       bigint NOT NULL DEFAULT 0,   -- rows the batches changed
    rows_scanned    bigint NOT NULL DEFAULT 0,   -- rows (key) or estimated rows (ctid) covered
    rows_total      bigint,                  -- estimate, at planning
    batches         bigint NOT NULL DEFAULT 0,
    batch_size      integer,                 -- current batch size (rows)
    ms_per_row      double precision,        -- smoothed time per row (adaptive sizing)
    busy_ms         double precision NOT NULL DEFAULT 0, -- time spent in batches
    run_started_at  timestamptz,             -- the current run, for rows_per_second
    run_rows_start  bigint NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,  -- consecutive failed attempts
    takeovers       integer NOT NULL DEFAULT 0,  -- workers that took the job up since its last committed batch
    last_error      text,
    throttled_by    text,
    next_due        timestamptz,             -- not before (throttling, run window, retry)
    worker_pid      integer,
    lock_waiters_caused bigint NOT NULL DEFAULT 0,
    lock_wait_ms    double precision NOT NULL DEFAULT 0, -- longest waits others suffered, summed per batch
    lock_waits_suffered bigint NOT NULL DEFAULT 0,  -- batch attempts that waited for a lock
    lock_wait_suffered_ms double precision NOT NULL DEFAULT 0  -- how long, in all
);
COMMENT ON TABLE migration_tools.backfill_jobs IS
'Batched jobs queued by backfill() and run_batched(): definition, state, checkpoint and counters';
REVOKE ALL ON migration_tools.backfill_jobs FROM PUBLIC;
CREATE INDEX ON migration_tools.backfill_jobs (state) WHERE state IN ('queued', 'running');
SELECT pg_catalog.pg_extension_config_dump('migration_tools.backfill_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('migration_tools.backfill_jobs_job_id_seq', '');

-- Recent batches of each job, kept up to migration_tools.batch_history_retention
-- per job: one row per committed batch (attempt 0) and one per failed
-- attempt (attempt 1, 2, ... with the error).
CREATE TABLE migration_tools.backfill_batches (
    job_id          bigint NOT NULL REFERENCES migration_tools.backfill_jobs ON DELETE CASCADE,
    batch_no        bigint NOT NULL,         -- 1 for the first batch of the job
    attempt         integer NOT NULL DEFAULT 0,  -- 0: committed; n: n-th failed attempt
    rows            bigint NOT NULL,         -- rows the statement processed
    duration_ms     double precision NOT NULL,
    batch_size      integer NOT NULL,
    lock_wait_ms    double precision NOT NULL DEFAULT 0,   -- lock waits the batch suffered (sampled every 10 ms; a lock timeout counts in full)
    lock_waiters_caused integer NOT NULL DEFAULT 0,        -- sessions waiting on the batch at its end
    lock_wait_caused_ms double precision NOT NULL DEFAULT 0, -- the longest of their waits
    error           text,                    -- failed attempt: the error
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),  -- when the batch ended
    PRIMARY KEY (job_id, batch_no, attempt)
);
COMMENT ON TABLE migration_tools.backfill_batches IS
'Per-batch history of backfill jobs (rows, duration, size, lock waits), pruned to migration_tools.batch_history_retention per job';
REVOKE ALL ON migration_tools.backfill_batches FROM PUBLIC;

CREATE FUNCTION migration_tools.backfill(
    relation regclass,
    set_clause text,
    where_clause text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    target_batch_time interval DEFAULT '200ms',
    batch_sleep interval DEFAULT '0',
    start_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT 5,
    strategy text DEFAULT 'key',
    run_window text DEFAULT NULL,
    guard boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mt_backfill'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.backfill(regclass, text, text, integer, interval, interval, timestamptz, integer, text, text, boolean) IS
'Queue a job that runs UPDATE relation SET set_clause WHERE where_clause in committed batches; returns the job id';

CREATE FUNCTION migration_tools.run_batched(
    relation regclass,
    sql text,
    batch_size integer DEFAULT NULL,
    target_batch_time interval DEFAULT '200ms',
    batch_sleep interval DEFAULT '0',
    start_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT 5,
    strategy text DEFAULT 'key',
    run_window text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mt_run_batched'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.run_batched(regclass, text, integer, interval, interval, timestamptz, integer, text, text) IS
'Queue a job that runs a statement once per batch of relation, with the batch bounds as $1 and $2; returns the job id';

CREATE FUNCTION migration_tools.pause(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_pause'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.pause(bigint) IS
'Pause a queued or running backfill job after its current batch; returns the new state';

CREATE FUNCTION migration_tools.resume(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_resume'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.resume(bigint) IS
'Resume a paused backfill job from its checkpoint; returns the new state';

CREATE FUNCTION migration_tools.cancel(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_cancel'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.cancel(bigint) IS
'Cancel a backfill job after its current batch (work done stays done); returns the new state';

CREATE FUNCTION migration_tools.retry(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_retry'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.retry(bigint) IS
'Queue a failed or cancelled backfill job again; it goes on from its checkpoint';

CREATE FUNCTION migration_tools.wait(job bigint, timeout interval DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_wait'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.wait(bigint, interval) IS
'Block until a backfill job is completed, failed or cancelled and return that state; after timeout, return the current state';

CREATE VIEW migration_tools.backfill_progress AS
SELECT j.job_id,
       j.relation,
       j.state,
       j.rows_done,
       j.rows_total,
       CASE WHEN j.state = 'completed' THEN 100::numeric
            WHEN coalesce(j.rows_total, 0) <= 0 THEN NULL
            ELSE round(least(99.9, 100.0 * j.rows_scanned / j.rows_total)::numeric, 1)
       END AS percent,
       CASE WHEN j.run_started_at IS NULL THEN NULL
            WHEN coalesce(j.finished_at, now()) <= j.run_started_at THEN NULL
            ELSE round((j.rows_scanned - j.run_rows_start)
                       / extract(epoch FROM coalesce(j.finished_at, now()) - j.run_started_at), 1)
       END AS rows_per_second,
       CASE WHEN j.state <> 'running' OR j.run_started_at IS NULL
                 OR j.rows_scanned <= j.run_rows_start OR j.rows_total IS NULL THEN NULL
            ELSE (greatest(j.rows_total - j.rows_scanned, 0)
                  * extract(epoch FROM now() - j.run_started_at)
                  / (j.rows_scanned - j.run_rows_start)) * interval '1 second'
       END AS eta,
       j.batch_size,
       j.batches,
       j.last_error,
       CASE WHEN j.state = 'running' THEN j.worker_pid END AS worker_pid,
       j.started_at,
       j.finished_at,
       -- beyond the contract
       j.throttled_by,
       j.strategy,
       pg_catalog.pg_get_userbyid(j.owner) AS owner,
       j.kind,
       j.set_clause,
       j.where_clause,
       j.sql,
       j.attempts,
       j.max_attempts,
       j.rows_scanned,
       j.phase,
       j.next_due,
       j.start_at,
       j.run_window,
       j.queued_at,
       j.lock_waiters_caused,
       j.lock_wait_ms,
       j.lock_waits_suffered,
       j.lock_wait_suffered_ms
FROM migration_tools.backfill_jobs j
WHERE pg_catalog.pg_has_role(j.owner, 'USAGE')
   OR pg_catalog.pg_has_role('migration_tools_admin', 'MEMBER');
COMMENT ON VIEW migration_tools.backfill_progress IS
'Backfill jobs with progress, speed and estimated time left; a role sees its own jobs, migration_tools_admin members see all';
GRANT SELECT ON migration_tools.backfill_progress TO PUBLIC;

CREATE VIEW migration_tools.backfill_batch_history AS
SELECT b.*
FROM migration_tools.backfill_batches b
JOIN migration_tools.backfill_jobs j USING (job_id)
WHERE pg_catalog.pg_has_role(j.owner, 'USAGE')
   OR pg_catalog.pg_has_role('migration_tools_admin', 'MEMBER');
COMMENT ON VIEW migration_tools.backfill_batch_history IS
'Recent batches of the backfill jobs the current role can see';
GRANT SELECT ON migration_tools.backfill_batch_history TO PUBLIC;
/* migration_tools install script: locks */

CREATE FUNCTION migration_tools.lock_mode(name text)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_lock_mode_name'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION migration_tools.lock_mode(text) IS
'The lock mode name as pg_locks spells it ("AccessExclusiveLock") for a name such as "ACCESS EXCLUSIVE"';

CREATE FUNCTION migration_tools._lock_conflicts(
    relation oid, mode text,
    OUT pid integer, OUT granted boolean, OUT lock_mode text,
    OUT xact_start timestamptz, OUT prepared boolean, OUT prepared_xid xid,
    OUT query text, OUT role name, OUT application_name text,
    OUT backend_state text, OUT wait_event_type text, OUT wait_event text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lock_conflicts_srf'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools._lock_conflicts(oid, text) IS
'Sessions holding or awaiting a lock conflicting with mode on the relation, from the lock manager (internal: see lock_conflicts)';

CREATE TYPE migration_tools.lock_conflict AS (
    pid integer,
    state text,
    mode text,
    xact_start timestamptz,
    xact_age interval,
    query text,
    role name,
    application_name text,
    backend_state text,
    wait_event_type text,
    wait_event text,
    prepared_gid text
);
COMMENT ON TYPE migration_tools.lock_conflict IS
'A row of lock_conflicts(): a session a lock request would queue behind';

CREATE FUNCTION migration_tools.lock_conflicts(relation regclass, mode text)
RETURNS SETOF migration_tools.lock_conflict
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.pid,
           CASE WHEN c.granted THEN 'holding' ELSE 'waiting' END,
           c.lock_mode,
           -- a prepared transaction: since it was prepared (the start of a
           -- forgotten PREPARE TRANSACTION is gone with its session)
           coalesce(c.xact_start, p.prepared),
           clock_timestamp() - coalesce(c.xact_start, p.prepared),
           c.query,
           coalesce(c.role, pg_get_userbyid(p.ownerid)),
           c.application_name,
           CASE WHEN c.prepared THEN 'prepared' ELSE c.backend_state END,
           c.wait_event_type,
           c.wait_event,
           p.gid
    FROM migration_tools._lock_conflicts($1::oid, $2) c
    LEFT JOIN pg_prepared_xact() p ON c.prepared AND p.transaction = c.prepared_xid
    ORDER BY c.granted DESC, coalesce(c.xact_start, p.prepared), c.pid
$$;
COMMENT ON FUNCTION migration_tools.lock_conflicts(regclass, text) IS
'Sessions that hold or wait for a lock on relation conflicting with mode: what a statement taking that lock would queue behind right now';

CREATE FUNCTION migration_tools.lock_waiters_of(
    pid integer, OUT waiters integer, OUT longest_wait interval)
RETURNS record
AS 'MODULE_PATHNAME', 'mt_lock_waiters_of_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.lock_waiters_of(integer) IS
'How many sessions wait right now on locks held by the session pid, and the longest of their waits so far';

CREATE FUNCTION migration_tools._lock_waits(
    OUT blocker_key bigint, OUT pid integer, OUT prepared_xid xid,
    OUT query text, OUT role name, OUT application_name text,
    OUT state text, OUT xact_start timestamptz,
    OUT depth integer, OUT root_pid integer, OUT root_prepared_xid xid,
    OUT wait_started timestamptz, OUT wait_duration interval,
    OUT locktype text, OUT mode text,
    OUT database oid, OUT relation_oid oid, OUT relation regclass,
    OUT page integer, OUT tuple smallint, OUT virtualxid text,
    OUT transactionid xid, OUT classid oid, OUT objid oid,
    OUT objsubid smallint, OUT blockers bigint[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lock_waits_srf'
LANGUAGE C VOLATILE STRICT ROWS 50;
COMMENT ON FUNCTION migration_tools._lock_waits() IS
'From one read of the lock manager and of the sessions: a row per waiting lock request (blocker_key NULL) with its blockers encoded in an array, and a row per blocker (internal: see the lock_waits view)';

-- Each element of blockers is blocker_key * 32 + 16 if hard + the mode the
-- blocker holds or awaits (1 AccessShareLock ... 8 AccessExclusiveLock);
-- blocker_key is the pid, or -(xid + 1) for a prepared transaction.  The
-- rows of the blockers have no array (unnest gives the requests' rows
-- only), and the join to them is unique (DISTINCT ON): the planner drops it
-- from queries that use none of their columns.  (They are picked by
-- "blockers IS NULL" rather than by blocker_key: the planner's guess for IS
-- NULL is a few rows, so it hashes the blockers, not the pairs.)  A LATERAL
-- unnest in FROM costs less per pair than one in a subquery's select list,
-- whose every column would be projected again for each pair.
CREATE VIEW migration_tools.lock_waits AS
WITH r AS MATERIALIZED (
    SELECT * FROM migration_tools._lock_waits()
)
SELECT w.pid AS waiting_pid,
       w.query AS waiting_query,
       w.role AS waiting_role,
       w.wait_started,
       w.wait_duration,
       w.locktype,
       w.mode,
       w.relation,
       b.pid AS blocking_pid,
       b.query AS blocking_query,
       b.state AS blocking_state,
       b.xact_start AS blocking_xact_start,
       ('{AccessShareLock,RowShareLock,RowExclusiveLock,ShareUpdateExclusiveLock,ShareLock,ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock}'::text[])
           [(e.blocker & 15)::integer] AS blocking_mode,
       b.depth,
       b.root_pid AS root_blocking_pid,
       CASE WHEN e.blocker & 16 = 0 THEN 'soft' ELSE 'hard' END AS blocking_kind,
       w.application_name AS waiting_application_name,
       b.role AS blocking_role,
       b.application_name AS blocking_application_name,
       b.prepared_xid AS blocking_prepared_xid,
       b.gid AS blocking_gid,
       b.prepared_at AS blocking_prepared_at,
       b.root_prepared_xid,
       b.root_gid AS root_blocking_gid,
       w.database,
       w.relation_oid,
       w.page,
       w.tuple,
       w.virtualxid,
       w.transactionid,
       w.classid,
       w.objid,
       w.objsubid,
       CASE WHEN w.locktype = 'advisory' AND w.objsubid = 1
            THEN (w.classid::bigint << 32) | w.objid::bigint END AS advisory_key
FROM r w
CROSS JOIN LATERAL unnest(w.blockers) AS e(blocker)
LEFT JOIN (
    SELECT DISTINCT ON (n.blocker_key)
           n.blocker_key, n.pid, n.prepared_xid, n.query,
           coalesce(n.role, pg_catalog.pg_get_userbyid(p.ownerid)) AS role,
           n.application_name, n.state, n.xact_start, n.depth, n.root_pid,
           n.root_prepared_xid, p.gid, p.prepared AS prepared_at,
           rp.gid AS root_gid
    FROM r n
    LEFT JOIN pg_catalog.pg_prepared_xact() p ON p.transaction = n.prepared_xid
    LEFT JOIN pg_catalog.pg_prepared_xact() rp ON rp.transaction = n.root_prepared_xid
    WHERE n.blockers IS NULL
    ORDER BY n.blocker_key
) b ON b.blocker_key = e.blocker >> 5;
COMMENT ON VIEW migration_tools.lock_waits IS
'Who waits for whom: one row per (waiting lock request, blocker), hard (holds a conflicting lock) or soft (queued ahead), with the chain depth and root blocker';
GRANT SELECT ON migration_tools.lock_waits TO PUBLIC;

CREATE FUNCTION migration_tools._lock_age(age interval)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN e >= 86400 THEN floor(e / 86400)::bigint || 'd ' ELSE '' END
           || lpad((floor(e / 3600)::bigint % 24)::text, 2, '0') || ':'
           || lpad((floor(e / 60)::bigint % 60)::text, 2, '0') || ':'
           || lpad((floor(e)::bigint % 60)::text, 2, '0')
    FROM (SELECT greatest(extract(epoch FROM age), 0) AS e) s
$$;
COMMENT ON FUNCTION migration_tools._lock_age(interval) IS
'An age as [Nd ]HH:MM:SS whatever IntervalStyle is (internal: used by lock_tree)';

CREATE FUNCTION migration_tools.lock_tree()
RETURNS SETOF text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE w AS MATERIALIZED (
        SELECT l.*,
               coalesce(l.blocking_pid::text, 'xid ' || l.blocking_prepared_xid::text) AS blocker_key,
               coalesce(to_char(l.wait_started AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS'), '99999999999999999999')
                   || lpad(l.waiting_pid::text, 10, '0') AS sort_key,
               -- " [application]" after a pid, when there is one
               CASE WHEN coalesce(l.waiting_application_name, '') <> ''
                    THEN format(' [%s]', l.waiting_application_name) ELSE '' END AS waiting_app,
               CASE WHEN coalesce(l.blocking_application_name, '') <> ''
                    THEN format(' [%s]', l.blocking_application_name) ELSE '' END AS blocking_app,
               CASE l.blocking_kind WHEN 'hard' THEN 'holds' ELSE 'queued ahead for' END AS blocking_verb,
               format('%s in database %s', l.relation_oid,
                      coalesce((SELECT quote_ident(d.datname::text) FROM pg_database d WHERE d.oid = l.database),
                               l.database::text)) AS other_db_relation
        FROM migration_tools.lock_waits l
    ),
    -- each waiter is drawn once, under the blocker on its shortest chain;
    -- its other blockers are listed on its line
    parent AS (
        SELECT DISTINCT ON (waiting_pid) *
        FROM w
        WHERE depth IS NOT NULL
        ORDER BY waiting_pid, depth, blocking_kind, blocker_key
    ),
    -- (the first three, hard ones first, and how many more)
    others AS (
        SELECT waiting_pid,
               array_to_string(a[1:3], ', ')
               || CASE WHEN cardinality(a) > 3
                       THEN format(' and %s more', cardinality(a) - 3) ELSE '' END AS also
        FROM (SELECT w.waiting_pid,
                     array_agg(format('%s (%s: %s %s)',
                                      CASE WHEN w.blocking_pid IS NULL THEN 'prepared ' || w.blocker_key
                                           ELSE 'pid ' || w.blocking_pid END,
                                      w.blocking_kind, w.blocking_verb, w.blocking_mode)
                               ORDER BY w.blocking_kind, w.depth, w.blocker_key) AS a
              FROM w JOIN parent p USING (waiting_pid)
              WHERE w.blocker_key <> p.blocker_key
              GROUP BY w.waiting_pid) o
    ),
    roots AS (
        SELECT DISTINCT ON (blocker_key)
               blocker_key AS node,
               coalesce(to_char(blocking_xact_start AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS'), '99999999999999999999')
                   || lpad(coalesce(blocking_pid, 0)::text, 10, '0') AS sort_key,
               CASE WHEN blocking_pid IS NULL THEN
                   format('prepared transaction %s (%s, %s), prepared %s ago, blocks %s',
                          coalesce(quote_literal(blocking_gid), '?'), blocker_key,
                          coalesce(blocking_role::text, '?'),
                          coalesce(migration_tools._lock_age(clock_timestamp() - blocking_prepared_at), '?'),
                          blocks)
               ELSE
                   format('pid %s%s (%s) %s%s, blocks %s: %s',
                          blocking_pid, blocking_app,
                          coalesce(blocking_role::text, '?'),
                          coalesce(blocking_state, '?'),
                          CASE WHEN blocking_xact_start IS NOT NULL
                               THEN format(', xact %s', migration_tools._lock_age(clock_timestamp() - blocking_xact_start))
                               ELSE '' END,
                          blocks,
                          coalesce(blocking_query, '?'))
               END AS line
        FROM (SELECT w.*,
                     CASE c.n WHEN 1 THEN '1 session' ELSE c.n || ' sessions' END AS blocks
              FROM w
              JOIN (SELECT blocker_key, count(DISTINCT waiting_pid) AS n
                    FROM w GROUP BY blocker_key) c USING (blocker_key)) w
        WHERE depth = 1
        ORDER BY blocker_key
    ),
    tree(node, path, sort_path, level, line) AS (
        SELECT node, ARRAY[node], ARRAY[sort_key], 0, line
        FROM roots
        UNION ALL
        SELECT p.waiting_pid::text, t.path || p.waiting_pid::text,
               t.sort_path || p.sort_key, t.level + 1,
               format('pid %s%s (%s) waits %s for %s on %s (%s: %s %s)%s: %s',
                      p.waiting_pid, p.waiting_app,
                      coalesce(p.waiting_role::text, '?'),
                      coalesce(migration_tools._lock_age(p.wait_duration), '?'),
                      p.mode,
                      CASE p.locktype
                          -- a relation of another database: its OID and the database's name
                          WHEN 'relation' THEN 'relation ' || coalesce(p.relation::text, p.other_db_relation)
                          WHEN 'tuple' THEN format('tuple (%s,%s) of %s', p.page, p.tuple,
                                                   coalesce(p.relation::text, p.other_db_relation))
                          WHEN 'transactionid' THEN 'transaction ' || p.transactionid
                          WHEN 'virtualxid' THEN 'virtual transaction ' || p.virtualxid
                          WHEN 'advisory' THEN 'advisory lock ' ||
                               coalesce(p.advisory_key::text, p.classid || ',' || p.objid)
                          -- "function f(integer)", "schema s", "role r": objects of
                          -- this database and shared ones are named
                          WHEN 'object' THEN
                               coalesce(CASE WHEN p.database = 0
                                              OR p.database = (SELECT d.oid FROM pg_database d
                                                               WHERE d.datname = current_database())
                                         THEN pg_describe_object(p.classid, p.objid, p.objsubid) END,
                                        format('object %s/%s/%s', p.classid, p.objid, p.objsubid))
                          ELSE p.locktype END,
                      p.blocking_kind, p.blocking_verb, p.blocking_mode,
                      coalesce(', also blocked by ' || o.also, ''),
                      coalesce(p.waiting_query, '?'))
        FROM tree t
        JOIN parent p ON p.blocker_key = t.node
        LEFT JOIN others o ON o.waiting_pid = p.waiting_pid
        WHERE NOT p.waiting_pid::text = ANY (t.path)
    )
    SELECT line FROM (
        SELECT 0 AS part, sort_path, repeat('    ', level) || line AS line
        FROM tree
        UNION ALL
        -- waits in a cycle that leads to no root: a deadlock not yet detected
        SELECT 1, ARRAY[sort_key],
               format('pid %s%s waits for %s %s%s on %s (%s: %s %s) in or behind a wait cycle: deadlock pending detection',
                      waiting_pid, waiting_app,
                      CASE WHEN blocking_pid IS NULL THEN 'prepared' ELSE 'pid' END, blocker_key,
                      blocking_app,
                      CASE WHEN relation IS NOT NULL THEN 'relation ' || relation::text ELSE locktype END,
                      blocking_kind, blocking_verb, blocking_mode)
        FROM w
        WHERE depth IS NULL
    ) s
    ORDER BY part, sort_path
$$;
COMMENT ON FUNCTION migration_tools.lock_tree() IS
'The blocking forest as indented text: each root blocker with its state, transaction age and query, and under it what waits for it';
/* migration_tools install script: lint */

-- lint() and script_statements() deliberately run with the caller's
-- search_path: they resolve the script's table and function names as the
-- script itself would.  They only read the catalogs and never run the script.

CREATE FUNCTION migration_tools.lint(
    sql text,
    OUT statement integer, OUT rule text, OUT severity text,
    OUT message text, OUT hint text, OUT relation text, OUT lock_mode text,
    OUT rewrites boolean, OUT estimated_rows bigint, OUT location integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lint'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.lint(text) IS
'Check a migration script for statements that take long locks or rewrite tables, without running it';
GRANT EXECUTE ON FUNCTION migration_tools.lint(text) TO PUBLIC;

CREATE FUNCTION migration_tools.script_statements(
    sql text,
    OUT statement integer, OUT location integer, OUT length integer,
    OUT command_tag text, OUT is_ddl boolean, OUT needs_top_level boolean,
    OUT is_transaction_control boolean, OUT locks text[], OUT statement_sql text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_script_statements'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.script_statements(text) IS
'Split a script into statements with the server''s parser and tell the locks each would take, without running it';
GRANT EXECUTE ON FUNCTION migration_tools.script_statements(text) TO PUBLIC;

CREATE FUNCTION migration_tools.lint_rules(
    OUT rule text, OUT severity text, OUT summary text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lint_rules'
LANGUAGE C IMMUTABLE;
COMMENT ON FUNCTION migration_tools.lint_rules() IS
'The rules of lint(): id, severity and what each catches (the README has the safe recipes)';
GRANT EXECUTE ON FUNCTION migration_tools.lint_rules() TO PUBLIC;
/* migration_tools install script: last steps */

-- Have the launcher look at this database now: it may hold work already
-- (a database restored from a dump), and it now has the extension.
SELECT migration_tools._wakeup();
