-- Catalog descriptions: what the fingerprint stored per migration covers.
-- Everything here lives in schema drift_test so that objects of other
-- tests in the same database do not show.
CREATE SCHEMA drift_test;
CREATE TYPE drift_test.mood AS ENUM ('happy', 'sad');
CREATE DOMAIN drift_test.posint AS integer CHECK (VALUE > 0);
CREATE TABLE drift_test.t (
    id serial PRIMARY KEY,
    m drift_test.mood DEFAULT 'happy',
    p drift_test.posint NOT NULL,
    name text COLLATE "C" UNIQUE
);
CREATE INDEX t_lower ON drift_test.t (lower(name));
CREATE VIEW drift_test.v AS SELECT id, m FROM drift_test.t WHERE p > 1;
CREATE FUNCTION drift_test.f(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 + 1';

-- Names are schema-qualified whatever the search_path.
SET search_path = drift_test, public;
SELECT object_type, object, left(definition, 70) AS definition
FROM migration_tools.catalog_objects()
WHERE object LIKE '%drift_test%'
ORDER BY 1, 2;
RESET search_path;

-- The fingerprint maps "type:identity" to the MD5 of the definition.
SELECT key, value = md5(o.definition) AS md5_matches
FROM jsonb_each_text(migration_tools.catalog_fingerprint()) f
JOIN migration_tools.catalog_objects() o ON f.key = o.object_type || ':' || o.object
WHERE key LIKE '%drift_test.t%'
ORDER BY 1;

-- The extension's own schema is never part of it.
SELECT count(*) AS own_objects
FROM migration_tools.catalog_objects() WHERE object LIKE 'migration_tools.%';

-- Reading the catalogs locks no user relation.
BEGIN;
SELECT migration_tools.catalog_fingerprint() IS NOT NULL AS computed;
SELECT count(*) AS user_relations_locked
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND c.relnamespace <> 'pg_catalog'::regnamespace;
COMMIT;

-- A change shows in the fingerprint, a no-op does not.
CREATE TEMP TABLE fp AS SELECT migration_tools.catalog_fingerprint() AS before;
COMMENT ON TABLE drift_test.t IS 'comments are not schema';
SELECT before = migration_tools.catalog_fingerprint() AS unchanged FROM fp;
ALTER TABLE drift_test.t ALTER COLUMN name SET NOT NULL;
SELECT key FROM fp, jsonb_each_text(before) b
WHERE b.value IS DISTINCT FROM migration_tools.catalog_fingerprint() ->> b.key;
