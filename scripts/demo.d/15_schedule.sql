-- 1b. Scheduled statements, drift, reversibility, the DDL log, imports.

-- What the worker ran for the scheduled migration above.
SELECT version, seq, sql, state, attempts, error
FROM migration_tools.scheduled_statements ORDER BY version, seq;

-- A change made by hand, outside any migration, shows as drift.
CREATE INDEX demo_customers_name_by_hand ON demo_customers (id, email);
SELECT object_type, object, change, since_version FROM migration_tools.schema_drift();
DROP INDEX demo_customers_name_by_hand;

-- Does the down script undo the up script?  (Both run and are rolled back.)
SELECT migration_tools.verify_reversible(
    'ALTER TABLE demo_customers ADD COLUMN vip boolean NOT NULL DEFAULT false',
    'ALTER TABLE demo_customers DROP COLUMN vip');
SELECT migration_tools.verify_reversible(
    'ALTER TABLE demo_customers ADD COLUMN vip boolean NOT NULL DEFAULT false;
     CREATE INDEX demo_customers_vip ON demo_customers (vip)',
    'DROP INDEX demo_customers_vip');

-- Every DDL command, by whom, and in which migration.
SELECT event, command_tag, object_identity, current_user_name, migration_version
FROM migration_tools.ddl_log ORDER BY id DESC LIMIT 8;

-- Coming from Rails (or prisma, flyway, drizzle, golang-migrate)?
CREATE TABLE demo_schema_migrations (version varchar PRIMARY KEY);
INSERT INTO demo_schema_migrations VALUES ('20250101000000'), ('20250102000000');
SELECT migration_tools.import_history('rails', 'demo_schema_migrations');
SELECT version, state, description FROM migration_tools.migrations
WHERE baseline AND version LIKE '2025%' ORDER BY version;
DROP TABLE demo_schema_migrations;
