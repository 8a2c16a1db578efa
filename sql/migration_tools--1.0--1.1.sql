/* migration_tools update script: 1.0 to 1.1 */

\echo Use "ALTER EXTENSION migration_tools UPDATE TO '1.1'" to load this file. \quit

-- Every change to an object of sql/install/*.sql since 1.0 is repeated
-- here, so that t/090_upgrade.pl finds an updated 1.0 install equal to a
-- fresh 1.1 install.

-- Security hardening (issue 13, SPEC section 8).
-- The writers of the history serialize on a lock of the migrations table
-- that no role without a privilege on it can take (it was an advisory
-- lock, which any role could hold); import_history() takes it through
-- _lock_history().
CREATE FUNCTION migration_tools._lock_history()
RETURNS void
AS 'MODULE_PATHNAME', 'mt_lock_history'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools._lock_history() IS
'Take the lock that serializes the writers of the migration history, waiting up to migration_tools.max_deployer_wait (internal)';
REVOKE ALL ON FUNCTION migration_tools._lock_history() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools._lock_history() TO migration_tools_admin;

CREATE OR REPLACE FUNCTION migration_tools.import_history(source text, source_table regclass DEFAULT NULL)
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
    skipped integer;
    newest text;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Known tools are prisma, flyway, drizzle, node-pg-migrate, knex, golang-migrate and rails.';
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
        WHEN 'node-pg-migrate' THEN 'pgmigrations'
        WHEN 'knex' THEN 'knex_migrations'
        WHEN 'golang-migrate' THEN 'schema_migrations'
        WHEN 'rails' THEN 'schema_migrations'
    END;
    IF default_name IS NULL THEN
        RAISE EXCEPTION 'unrecognized migration tool "%"', source
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Known tools are prisma, flyway, drizzle, node-pg-migrate, knex, golang-migrate and rails.';
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
    PERFORM migration_tools._lock_history();

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
        -- folder timestamp (created_at, milliseconds), no name and no apply
        -- time: created_at (when the migration was generated) stands for it
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
    ELSIF tool = 'node-pg-migrate' THEN
        -- one row per applied migration (a down deletes it): its file name
        -- without extension and when it ran
        rows_sql := format($q$
            SELECT name::text AS version, 'imported from node-pg-migrate' AS description,
                   'applied' AS state, current_user AS applied_by,
                   coalesce(run_on, now()) AS started_at, coalesce(run_on, now()) AS finished_at,
                   NULL::interval AS execution_time, NULL AS error,
                   NULL::timestamptz AS rolled_back_at
              FROM %s
             WHERE name IS NOT NULL AND name <> ''
             ORDER BY run_on, id $q$, tbl);
    ELSIF tool = 'knex' THEN
        -- one row per applied migration (a rollback deletes it): its file
        -- name, its batch and when it ran
        rows_sql := format($q$
            SELECT name::text AS version,
                   'imported from knex' || coalesce(' (batch ' || batch || ')', '') AS description,
                   'applied' AS state, current_user AS applied_by,
                   coalesce(migration_time, now()) AS started_at,
                   coalesce(migration_time, now()) AS finished_at,
                   NULL::interval AS execution_time, NULL AS error,
                   NULL::timestamptz AS rolled_back_at
              FROM %s
             WHERE name IS NOT NULL AND name <> ''
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
    -- A version already recorded (by apply(), baseline() or an earlier
    -- import) is left as it is, and counted in a NOTICE.
    -- A table of another shape fails on its columns or their types: say
    -- which table and tool, with the server's message as the detail.
    BEGIN
    EXECUTE format($q$
        SELECT count(*)::integer FROM (%s) i
         WHERE EXISTS (SELECT 1 FROM migration_tools.migrations m
                        WHERE m.version = i.version) $q$, rows_sql)
       INTO skipped;
    EXECUTE format($q$
        WITH ins AS (
            INSERT INTO migration_tools.migrations
                (version, description, checksum, up_sql, state, applied_by, started_at,
                 finished_at, execution_time, attempts, error, rolled_back_at, baseline)
            SELECT i.version, i.description, %L, '', i.state, i.applied_by, i.started_at,
                   i.finished_at, i.execution_time, 1, i.error, i.rolled_back_at, true
              FROM (%s) i
            ON CONFLICT (version) DO NOTHING
            RETURNING version, state, installed_rank,
                      coalesce(rolled_back_at, finished_at, started_at) AS done_at)
        SELECT count(*)::integer,
               (array_agg(version ORDER BY done_at DESC, installed_rank DESC)
                  FILTER (WHERE state IN ('applied', 'rolled_back')))[1]
          FROM ins $q$, empty_checksum, rows_sql)
       INTO n, newest;
    EXCEPTION WHEN undefined_column OR undefined_function OR datatype_mismatch
                   OR invalid_text_representation THEN
        GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
        RAISE EXCEPTION 'table "%" is not a history table of %', tbl, tool
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Reading it failed: %s.', failure),
                  HINT = format('Pass the table that %s itself writes its history to.', tool);
    END;
    IF skipped > 0 THEN
        RAISE NOTICE '% migrations of % were already recorded and were not imported again', skipped, tool;
    END IF;
    -- as baseline(): the schema as it is now is the one after the newest
    -- imported migration, so that schema_drift() has something to compare
    IF newest IS NOT NULL THEN
        UPDATE migration_tools.migrations
           SET catalog_fingerprint = migration_tools.catalog_fingerprint()::text
         WHERE version = newest;
    END IF;
    RETURN n;
END
$$;
-- status: every migration stays visible, its error text and checksum only
-- to the role that applied it (and its members), migration_tools_admin
-- members and superusers; a security barrier.
CREATE OR REPLACE VIEW migration_tools.status WITH (security_barrier) AS
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
-- The backfill views filter rows before any function of the reader's
-- query sees them.
ALTER VIEW migration_tools.backfill_progress SET (security_barrier = true);
ALTER VIEW migration_tools.backfill_batch_history SET (security_barrier = true);

-- Security (worker): stored work of a role that could log in when it
-- recorded it stops once that role can no longer log in.  Rows recorded
-- before the update take the role's state as of now.
ALTER TABLE migration_tools.backfill_jobs
    ADD COLUMN owner_login boolean NOT NULL DEFAULT true;
UPDATE migration_tools.backfill_jobs j
   SET owner_login = coalesce((SELECT r.rolcanlogin
                                  AND (r.rolvaliduntil IS NULL OR r.rolvaliduntil > pg_catalog.now())
                                 FROM pg_catalog.pg_roles r WHERE r.oid = j.owner), false);
ALTER TABLE migration_tools.scheduled_statements
    ADD COLUMN run_as_login boolean NOT NULL DEFAULT true;
UPDATE migration_tools.scheduled_statements s
   SET run_as_login = coalesce((SELECT r.rolcanlogin
                                   AND (r.rolvaliduntil IS NULL OR r.rolvaliduntil > pg_catalog.now())
                                  FROM pg_catalog.pg_roles r WHERE r.rolname = s.run_as), false);

-- Linter (issue 18): lint() takes in_transaction, to lint a script as the
-- migration tools that wrap the whole file in one transaction run it.
DROP FUNCTION migration_tools.lint(text);
CREATE FUNCTION migration_tools.lint(
    sql text, in_transaction boolean DEFAULT false,
    OUT statement integer, OUT rule text, OUT severity text,
    OUT message text, OUT hint text, OUT relation text, OUT lock_mode text,
    OUT rewrites boolean, OUT estimated_rows bigint, OUT location integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lint'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.lint(text, boolean) IS
'Check a migration script for statements that take long locks or rewrite tables, without running it';
GRANT EXECUTE ON FUNCTION migration_tools.lint(text, boolean) TO PUBLIC;

-- Working beside migration tools (issue 18): resolve() marks a failed
-- migration applied or rolled_back by hand.
CREATE FUNCTION migration_tools.resolve(version text, state text)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_resolve'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.resolve(text, text) IS
'Mark a failed migration applied or rolled_back by hand (as prisma migrate resolve does); its scheduled statements not done are cancelled';
REVOKE ALL ON FUNCTION migration_tools.resolve(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migration_tools.resolve(text, text) TO migration_tools_admin;


-- Procedures that wait, committing between looks, and raise when the
-- migration or backfill job failed (issue 18).
CREATE PROCEDURE migration_tools.await_migration(version text, timeout interval DEFAULT NULL)
AS 'MODULE_PATHNAME', 'mt_await_migration'
LANGUAGE C;
COMMENT ON PROCEDURE migration_tools.await_migration(text, interval) IS
'Wait, committing between looks (no snapshot held), until a migration is applied or rolled_back; ERROR if it is failed or after timeout';

CREATE PROCEDURE migration_tools.await_job(job bigint, timeout interval DEFAULT NULL)
AS 'MODULE_PATHNAME', 'mt_backfill_await_job'
LANGUAGE C;
COMMENT ON PROCEDURE migration_tools.await_job(bigint, interval) IS
'Wait, committing between looks (no snapshot held), until a backfill job is completed; ERROR if it ends failed or cancelled, or after timeout';

-- Working beside migration tools (issue 18, SPEC section 7): ddl_log
-- records the statement text and application_name; import_history()
-- (replaced above) knows node-pg-migrate and knex, skips versions already
-- recorded and stores a catalog fingerprint.
ALTER TABLE migration_tools.ddl_log
    ADD COLUMN statement text,
    ADD COLUMN application_name text;
COMMENT ON TABLE migration_tools.ddl_log IS
'Every DDL command run in this database (event triggers): tag, object, roles, time, transaction, the migration version inside apply(), the statement text and application_name';
COMMENT ON FUNCTION migration_tools.import_history(text, regclass) IS
'Import the history table of prisma, flyway, drizzle, node-pg-migrate, knex, golang-migrate or rails as applied (baseline) migrations, skipping versions already recorded; returns the rows imported';
