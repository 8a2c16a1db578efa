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
    migration_version text,                    -- set inside apply() and the worker
    statement         text,                    -- query string, cut to ddl_log_max_statement_length
    application_name  text                     -- of the session that ran the command
);
CREATE INDEX ddl_log_logged_at ON migration_tools.ddl_log (logged_at);
CREATE INDEX ddl_log_migration_version ON migration_tools.ddl_log (migration_version)
    WHERE migration_version IS NOT NULL;
COMMENT ON TABLE migration_tools.ddl_log IS
'Every DDL command run in this database (event triggers): tag, object, roles, time, transaction, the migration version inside apply(), the statement text and application_name';
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
COMMENT ON FUNCTION migration_tools.import_history(text, regclass) IS
'Import the history table of prisma, flyway, drizzle, node-pg-migrate, knex, golang-migrate or rails as applied (baseline) migrations, skipping versions already recorded; returns the rows imported';
REVOKE ALL ON FUNCTION migration_tools.import_history(text, regclass) FROM PUBLIC;
