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
