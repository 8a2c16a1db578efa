--
-- Working beside migration tools (SPEC section 7): import_history() of
-- node-pg-migrate and knex, no duplicates, a fingerprint on import; the
-- statement text and application_name in ddl_log.
--
-- Apply times vary from run to run: they are shown as predicates.
--
SET client_min_messages = notice;

-- node-pg-migrate's table, as it creates it (public schema).
CREATE TABLE pgmigrations (
    id serial PRIMARY KEY,
    name varchar(255) NOT NULL,
    run_on timestamp NOT NULL
);
CREATE TABLE hit_users (id bigint PRIMARY KEY);
INSERT INTO pgmigrations (name, run_on) VALUES
    ('1690000000000_create-users', '2024-01-02 03:04:05'),
    ('1690000000001_add-email', '2024-01-03 03:04:05');

SELECT migration_tools.import_history('node-pg-migrate');
-- started and finished at run_on, the time node-pg-migrate ran it
SELECT m.version, m.description, m.state, m.baseline,
       m.started_at = p.run_on AND m.finished_at = p.run_on AS run_on_kept
  FROM migration_tools.migrations m JOIN pgmigrations p ON p.name = m.version
 ORDER BY m.installed_rank;
-- the newest imported migration carries the fingerprint of the schema now
SELECT version, catalog_fingerprint IS NOT NULL AS has_fingerprint
  FROM migration_tools.migrations
 WHERE version LIKE '16900000000%' ORDER BY installed_rank;
-- so schema_drift() has something to compare with, and finds nothing
SELECT * FROM migration_tools.schema_drift();

-- Importing again imports nothing and says why.
SELECT migration_tools.import_history('node-pg-migrate');
SELECT count(*) FROM migration_tools.migrations WHERE version LIKE '16900000000%';

-- A migration that apply() recorded (node-pg-migrate then records it too)
-- is not imported a second time.
SELECT migration_tools.apply('1690000000002_add-name',
    'ALTER TABLE hit_users ADD COLUMN name text');
INSERT INTO pgmigrations (name, run_on) VALUES ('1690000000002_add-name', '2024-01-04 03:04:05');
SELECT migration_tools.import_history('node-pg-migrate');
SELECT version, description, baseline FROM migration_tools.migrations
 WHERE version = '1690000000002_add-name';

-- knex's table, as it creates it.
CREATE TABLE knex_migrations (
    id serial PRIMARY KEY,
    name varchar(255),
    batch integer,
    migration_time timestamptz
);
-- knex ran these after the migration apply() recorded above
INSERT INTO knex_migrations (name, batch, migration_time) VALUES
    ('20240105000000_create_orders.js', 1, now()),
    ('20240106000000_add_total.js', 2, now() + interval '1 second');
SELECT migration_tools.import_history('knex');
-- started and finished at migration_time, the time knex ran it
SELECT m.version, m.description, m.state, m.baseline,
       m.started_at = k.migration_time AND m.finished_at = k.migration_time AS time_kept,
       m.catalog_fingerprint IS NOT NULL AS has_fingerprint
  FROM migration_tools.migrations m JOIN knex_migrations k ON k.name = m.version
 ORDER BY m.installed_rank;
SELECT migration_tools.import_history('knex');
-- knex_migrations itself, created after the last fingerprint, is no drift
SELECT * FROM migration_tools.schema_drift();

-- A table of another shape is refused with the tool's name.
CREATE TABLE hit_not_knex (id int);
SELECT migration_tools.import_history('knex', 'hit_not_knex');
SELECT migration_tools.import_history('sequelize');

-- ddl_log: the statement text and the session's application_name.
SHOW migration_tools.ddl_log_max_statement_length;
SET application_name = 'hit_tool';
ALTER TABLE hit_users ADD COLUMN note text;
ALTER TABLE hit_users ADD COLUMN score int;
SELECT command_tag, object_identity, statement, application_name
  FROM migration_tools.ddl_log
 WHERE object_identity = 'public.hit_users' AND command_tag = 'ALTER TABLE'
   AND application_name = 'hit_tool'
 ORDER BY id;
-- cut at a character boundary: 'é' is two bytes, 10 bytes end inside it
SET migration_tools.ddl_log_max_statement_length = 10;
CREATE TABLE hit_é (id int);
SELECT statement, octet_length(statement) FROM migration_tools.ddl_log
 WHERE command_tag = 'CREATE TABLE' AND object_identity = 'public."hit_é"';
-- 0: no statement text
SET migration_tools.ddl_log_max_statement_length = 0;
DROP TABLE hit_é;
SELECT command_tag, statement IS NULL AS no_statement, application_name
  FROM migration_tools.ddl_log
 WHERE command_tag = 'DROP TABLE' AND object_identity = 'public."hit_é"';
RESET migration_tools.ddl_log_max_statement_length;
-- no application_name: NULL
RESET application_name;
SET application_name = '';
ALTER TABLE hit_users DROP COLUMN score;
SELECT statement, application_name IS NULL AS no_application_name
  FROM migration_tools.ddl_log
 WHERE object_identity = 'public.hit_users' AND command_tag = 'ALTER TABLE'
 ORDER BY id DESC LIMIT 1;
-- a role without access to the setting cannot change it
CREATE ROLE hit_plain;
SET ROLE hit_plain;
SET migration_tools.ddl_log_max_statement_length = 0;
RESET ROLE;
DROP ROLE hit_plain;

DROP TABLE pgmigrations, knex_migrations, hit_not_knex, hit_users;
