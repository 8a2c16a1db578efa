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

-- schema_drift() compares with the fingerprint of the latest migration.
-- (In a transaction, with a migration that is surely the latest.)
BEGIN;
INSERT INTO migration_tools.migrations
    (version, checksum, up_sql, state, started_at, finished_at, catalog_fingerprint)
VALUES ('drift-1', 'x', '', 'applied', '2100-01-01', '2100-01-01',
        migration_tools.catalog_fingerprint()::text);
SELECT * FROM migration_tools.schema_drift();
-- changes made outside any migration
ALTER TABLE drift_test.t ADD COLUMN extra integer;
CREATE INDEX t_m ON drift_test.t (m);
DROP VIEW drift_test.v;
ALTER TABLE drift_test.t ALTER COLUMN p DROP NOT NULL;
SELECT object_type, object, change, definition, since_version
FROM migration_tools.schema_drift();
ROLLBACK;

-- a view changed outside any migration is shown by its SQL, not its tree
-- (a view of two tables: PostgreSQL 16 and later print the columns of a
-- one-table view without the table name)
BEGIN;
CREATE VIEW drift_test.shown AS SELECT p FROM drift_test.t;
INSERT INTO migration_tools.migrations
    (version, checksum, up_sql, state, started_at, finished_at, catalog_fingerprint)
VALUES ('drift-2', 'x', '', 'applied', '2100-01-01', '2100-01-01',
        migration_tools.catalog_fingerprint()::text);
CREATE OR REPLACE VIEW drift_test.shown AS
    SELECT p, 1 AS extra FROM drift_test.t JOIN drift_test.t AS u USING (p);
SELECT object_type, object, change, definition FROM migration_tools.schema_drift();
ROLLBACK;

-- with real migrations: what changed outside apply() since the latest one
-- is drift, and nothing is once the next migration has run
SELECT migration_tools.apply('drift-3', 'ALTER TABLE drift_test.t ADD COLUMN note text DEFAULT ''x''');
CREATE INDEX t_note ON drift_test.t (note);
SELECT object_type, object, change, definition, since_version FROM migration_tools.schema_drift();
SELECT migration_tools.apply('drift-4', 'DROP INDEX drift_test.t_note');
SELECT * FROM migration_tools.schema_drift();
ALTER TABLE drift_test.t DROP COLUMN note;
DELETE FROM migration_tools.migrations WHERE version IN ('drift-3', 'drift-4');

-- verify_reversible(): up then down, always rolled back.
SELECT migration_tools.verify_reversible(
    'CREATE TABLE drift_test.new (id int PRIMARY KEY); CREATE INDEX ON drift_test.new (id)',
    'DROP TABLE drift_test.new');
SELECT to_regclass('drift_test.new') IS NULL AS nothing_left;
-- a down that forgets part of up, and one that does not restore a type
SELECT migration_tools.verify_reversible(
    'ALTER TABLE drift_test.t ADD COLUMN flag boolean NOT NULL DEFAULT false;
     CREATE INDEX t_flag ON drift_test.t (flag)',
    'DROP INDEX drift_test.t_flag');
SELECT migration_tools.verify_reversible(
    'ALTER TABLE drift_test.t DROP CONSTRAINT t_name_key; ALTER TABLE drift_test.t ALTER COLUMN name TYPE varchar(100)',
    'ALTER TABLE drift_test.t ADD CONSTRAINT t_name_key UNIQUE (name)');
-- the table is as it was
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'drift_test.t'::regclass AND attname = 'name';
-- a down that fails: not reversible (NOTICE, false)
SELECT migration_tools.verify_reversible(
    'CREATE TABLE drift_test.new (id int)', 'DROP TABLE drift_test.not_there');
-- an up that fails, or that cannot run in a transaction block: ERROR
SELECT migration_tools.verify_reversible('CREATE TABLE drift_test.new (', 'SELECT 1');
SELECT migration_tools.verify_reversible(
    'CREATE DATABASE drift_test_db', 'DROP DATABASE drift_test_db');
-- concurrent index builds and drops are verified as the plain statements
-- (same catalog effect); VACUUM and REINDEX are left out
SELECT migration_tools.verify_reversible(
    'CREATE INDEX CONCURRENTLY drift_p ON drift_test.t (p)',
    'DROP INDEX CONCURRENTLY drift_test.drift_p');
SELECT migration_tools.verify_reversible(
    'CREATE INDEX CONCURRENTLY ON drift_test.t (p)', 'SELECT 1');
-- the keyword, not a name or a comment that says concurrently
SELECT migration_tools.verify_reversible(
    'CREATE UNIQUE INDEX /* concurrently */ CONCURRENTLY "concurrently" ON drift_test.t (p)',
    'DROP INDEX CONCURRENTLY IF EXISTS drift_test."concurrently"; VACUUM drift_test.t');
SELECT migration_tools.verify_reversible(
    'DROP INDEX CONCURRENTLY drift_test.t_lower; REINDEX (CONCURRENTLY) TABLE drift_test.t',
    'CREATE INDEX CONCURRENTLY t_lower ON drift_test.t (lower(name), id)');
SELECT count(*) AS nothing_stayed FROM pg_class
WHERE relname IN ('drift_p', 'concurrently', 't_p_idx') OR relname LIKE '%ccnew%';
SELECT indexdef FROM pg_indexes WHERE indexname = 't_lower';
SELECT migration_tools.verify_reversible(NULL, 'SELECT 1') IS NULL AS strict;
-- the scripts run for real: a lock another transaction holds is waited
-- for at most migration_tools.max_lock_timeout, and is an ERROR (not a
-- "not reversible")
BEGIN;
LOCK TABLE drift_test.t IN ACCESS SHARE MODE;
PREPARE TRANSACTION 'drift_hold';
SET migration_tools.max_lock_timeout = '100ms';
SELECT migration_tools.verify_reversible(
    'ALTER TABLE drift_test.t ADD COLUMN held int', 'ALTER TABLE drift_test.t DROP COLUMN held');
SELECT migration_tools.verify_reversible(
    'CREATE TABLE drift_test.other (id int)', 'DROP TABLE drift_test.other; ALTER TABLE drift_test.t ADD COLUMN held int');
SHOW lock_timeout;
RESET migration_tools.max_lock_timeout;
ROLLBACK PREPARED 'drift_hold';

DROP SCHEMA drift_test CASCADE;

-- Views are compared by their stored query, with user objects named, not
-- numbered: a view (or its table) created again the same way is the same.
CREATE TABLE drift_v (a int, b text);
CREATE VIEW drift_vv AS SELECT a FROM drift_v WHERE b <> 'x';
SELECT migration_tools.verify_reversible(
    'DROP TABLE drift_v CASCADE',
    'CREATE TABLE drift_v (a int, b text); CREATE VIEW drift_vv AS SELECT a FROM drift_v WHERE b <> ''x''');
SELECT migration_tools.verify_reversible(
    'DROP VIEW drift_vv',
    'CREATE VIEW drift_vv AS SELECT a FROM drift_v WHERE b <> ''y''');
DROP TABLE drift_v CASCADE;

-- schema_drift() is for those who run migrations: migration_tools_admin
CREATE ROLE drift_reader;
SET ROLE drift_reader;
SELECT count(*) >= 0 AS can_read_status FROM migration_tools.status;
SELECT * FROM migration_tools.schema_drift();
RESET ROLE;
GRANT migration_tools_admin TO drift_reader;
SET ROLE drift_reader;
SELECT count(*) >= 0 AS admin_can_call FROM migration_tools.schema_drift();
RESET ROLE;
DROP ROLE drift_reader;
