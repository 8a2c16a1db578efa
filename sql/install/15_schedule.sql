/* migration_tools install script: scheduled statements, drift, DDL log, import */

-- The schema description behind catalog fingerprints, schema_drift() and
-- verify_reversible().
CREATE FUNCTION migration_tools.catalog_objects(
    OUT object_type text, OUT object text, OUT definition text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_catalog_objects'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION migration_tools.catalog_objects() IS
'Objects of the user''s schema (outside system and extension schemas) with the definitions compared by schema_drift() and verify_reversible()';

CREATE FUNCTION migration_tools.catalog_fingerprint()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'mt_catalog_fingerprint_sql'
LANGUAGE C STABLE STRICT;
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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last record;
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
           n.definition,
           last.version
      FROM old o FULL JOIN now n ON n.key = o.key
     WHERE o.value IS DISTINCT FROM n.value
     ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION migration_tools.schema_drift() IS
'Objects added, removed or changed since the latest migration, compared with the catalog fingerprint stored with it';

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
