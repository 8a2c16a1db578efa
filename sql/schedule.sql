-- The DDL log, import_history() and the settings of scheduled statements.

-- Settings of the worker's scheduled statements.
SELECT name, setting, unit, context FROM pg_settings
WHERE name LIKE 'migration_tools.scheduled%' ORDER BY name;

-- Every DDL command is logged: one row per object created or altered
-- (ddl_command_end), one per object dropped (sql_drop).
CREATE TEMP TABLE mark AS SELECT coalesce(max(id), 0) AS last FROM migration_tools.ddl_log;
CREATE SCHEMA ddl_test;
CREATE TABLE ddl_test.a (id int);
ALTER TABLE ddl_test.a ADD COLUMN b text;
CREATE INDEX a_b ON ddl_test.a (b);
CREATE VIEW ddl_test.v AS SELECT id FROM ddl_test.a;
DROP TABLE ddl_test.a CASCADE;
-- temporary objects are not logged
CREATE TEMP TABLE scratch (x int);
-- a role without any right on the log still runs DDL, and is logged
CREATE ROLE ddl_user;
GRANT CREATE, USAGE ON SCHEMA ddl_test TO ddl_user;
SET ROLE ddl_user;
CREATE TABLE ddl_test.mine (x int);
SELECT count(*) FROM migration_tools.ddl_log;
RESET ROLE;
-- inside apply() the version is recorded (apply sets this setting)
BEGIN;
SET LOCAL migration_tools.applying_version = '20240101_add_c';
ALTER TABLE ddl_test.mine ADD COLUMN c int;
COMMIT;
SELECT event, command_tag, object_type, object_identity, schema_name,
       session_user_name = session_user AS by_session_user, current_user_name,
       migration_version, transaction_id IS NOT NULL AS has_txid
FROM migration_tools.ddl_log, mark
WHERE id > mark.last
ORDER BY id;

-- An error in the log never blocks DDL: here the log is read-only for a
-- moment, the DDL goes through with a WARNING.
CREATE FUNCTION pg_temp.no_writes() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'log is read-only'; END$$;
CREATE TRIGGER no_writes BEFORE INSERT ON migration_tools.ddl_log
    FOR EACH ROW EXECUTE FUNCTION pg_temp.no_writes();
CREATE TABLE ddl_test.despite (x int);
DROP TRIGGER no_writes ON migration_tools.ddl_log;
SELECT to_regclass('ddl_test.despite') IS NOT NULL AS created;
-- a superuser can turn the log off
SET migration_tools.ddl_log = off;
CREATE TABLE ddl_test.unlogged_ddl (x int);
RESET migration_tools.ddl_log;
SELECT count(*) AS logged FROM migration_tools.ddl_log WHERE object_identity = 'ddl_test.unlogged_ddl';
SET ROLE ddl_user;
SET migration_tools.ddl_log = off;
RESET ROLE;

-- import_history(): fake tables of each tool.
CREATE SCHEMA import_test;
CREATE TABLE import_test._prisma_migrations (
    id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, finished_at timestamptz,
    migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0);
INSERT INTO import_test._prisma_migrations VALUES
 ('a', repeat('ab', 32), '2024-01-01 10:00:01+00', 'p20240101_init', NULL, NULL, '2024-01-01 10:00:00+00', 1),
 ('b', repeat('cd', 32), NULL, 'p20240102_users', 'ERROR: boom', NULL, '2024-01-02 10:00:00+00', 0),
 ('c', repeat('ef', 32), '2024-01-03 10:00:02+00', 'p20240103_posts', NULL, NULL, '2024-01-03 10:00:00+00', 1);
SELECT migration_tools.import_history('prisma');
SELECT version, description, state, checksum = encode(sha256(''), 'hex') AS empty_script_checksum,
       execution_time, error, baseline
FROM migration_tools.migrations WHERE version LIKE 'p2024%' ORDER BY version;
-- versions already present are skipped
SELECT migration_tools.import_history('prisma');
-- the status view agrees; apply() of an imported version is a no-op
SELECT version, state, checksum_ok FROM migration_tools.status WHERE version LIKE 'p2024%' ORDER BY version;
SELECT migration_tools.apply('p20240101_init', 'CREATE TABLE import_test.never_created (x int)');
SELECT to_regclass('import_test.never_created') IS NULL AS not_run;

CREATE TABLE import_test.flyway_schema_history (
    installed_rank integer PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL,
    type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum integer,
    installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
    execution_time integer NOT NULL, success boolean NOT NULL);
INSERT INTO import_test.flyway_schema_history VALUES
 (0, NULL, '<< Flyway Schema Creation >>', 'SCHEMA', '"public"', NULL, 'postgres', '2024-02-01', 0, true),
 (1, 'f1', 'create users', 'SQL', 'Vf1__create_users.sql', 12345, 'postgres', '2024-02-01 10:00', 250, true),
 (2, 'f2', 'add email', 'SQL', 'Vf2__add_email.sql', -42, 'postgres', '2024-02-02 10:00', 10, false),
 (3, NULL, 'views', 'SQL', 'R__views.sql', 7, 'postgres', '2024-02-03 10:00', 5, true);
SELECT migration_tools.import_history('flyway', 'import_test.flyway_schema_history');
SELECT version, description, state, applied_by, execution_time,
       checksum = encode(sha256(''), 'hex') AS empty_script_checksum
FROM migration_tools.migrations WHERE version IN ('f1', 'f2') ORDER BY version;

CREATE SCHEMA drizzle;
CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES
 (repeat('01', 32), 1700000000000), (repeat('02', 32), 1700000100000);
SELECT migration_tools.import_history('drizzle');
SELECT version, description, state, finished_at AT TIME ZONE 'UTC' AS finished_utc
FROM migration_tools.migrations WHERE version LIKE '17000%' ORDER BY version;

CREATE TABLE import_test.schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO import_test.schema_migrations VALUES (20240301, false);
SELECT migration_tools.import_history('golang-migrate');
SELECT version, description, state, baseline FROM migration_tools.migrations WHERE version = '20240301';

CREATE SCHEMA rails_app;
CREATE TABLE rails_app.schema_migrations (version varchar PRIMARY KEY);
INSERT INTO rails_app.schema_migrations VALUES ('20240401000000'), ('20240402000000');
-- two schema_migrations tables now: which one is ambiguous
SELECT migration_tools.import_history('rails');
-- the table argument resolves with the caller's search_path
SET search_path = rails_app, public;
SELECT migration_tools.import_history('rails', 'schema_migrations');
RESET search_path;
SELECT version, description, state FROM migration_tools.migrations
WHERE version LIKE '2024040%' ORDER BY version;

-- errors
SELECT migration_tools.import_history('liquibase');
SELECT migration_tools.import_history('rails', 'no_such_table');
DROP TABLE import_test._prisma_migrations;
SELECT migration_tools.import_history('prisma');
-- not for everybody
SET ROLE ddl_user;
SELECT migration_tools.import_history('prisma');
RESET ROLE;

DROP SCHEMA import_test, rails_app, drizzle, ddl_test CASCADE;
DROP ROLE ddl_user;
