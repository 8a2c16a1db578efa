--
-- lint() on migrations as node-pg-migrate, knex and drizzle-kit write them
-- (issue 18): in_transaction, knex's .notNullable().alter(), and a
-- non-concurrent index on an empty, never-analyzed table.
--
CREATE TABLE lt_users (id bigint PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO lt_users SELECT g, 'u' || g, 'n' || g FROM generate_series(1, 1000) g;
ANALYZE lt_users;

-- drizzle-kit runs every pending file in one transaction: with
-- in_transaction, CREATE INDEX CONCURRENTLY cannot run there
SELECT statement, rule, severity, message
FROM migration_tools.lint($$CREATE INDEX CONCURRENTLY IF NOT EXISTS "lt_users_name_idx" ON "lt_users" USING btree ("name");$$,
                          in_transaction => true);
-- without it (the default, and lint(sql) as before) it is fine
SELECT statement, rule, severity
FROM migration_tools.lint($$CREATE INDEX CONCURRENTLY IF NOT EXISTS "lt_users_name_idx" ON "lt_users" USING btree ("name");$$);
SELECT count(*)
FROM migration_tools.lint($$CREATE INDEX CONCURRENTLY lt_i ON lt_users (name);$$, false);
-- node-pg-migrate's pgm.sql() file with a DO block that commits
SELECT statement, rule, severity, message
FROM migration_tools.lint($$DO $d$ BEGIN COMMIT; END $d$;$$, true);
-- VACUUM cannot run in the transaction either
SELECT statement, rule, severity
FROM migration_tools.lint($$SET lock_timeout = '2s';
VACUUM lt_users;$$, true);

-- knex: table.string('email').notNullable().alter() (say, to change the
-- type) emits DROP NOT NULL then SET NOT NULL, in one ALTER TABLE: on a
-- column that is NOT NULL, the SET scans again ...
SELECT statement, rule, severity, message
FROM migration_tools.lint($$SET lock_timeout = '2s';
alter table "lt_users" alter column "email" drop not null, alter column "email" set not null$$);
-- ... or in two statements
SELECT statement, rule, severity, message
FROM migration_tools.lint($$SET lock_timeout = '2s';
alter table "lt_users" alter column "email" drop not null;
alter table "lt_users" alter column "email" set not null;$$);
-- SET NOT NULL on a column already NOT NULL, alone: nothing to scan
SELECT statement, rule, severity
FROM migration_tools.lint($$SET lock_timeout = '2s';
alter table "lt_users" alter column "email" set not null;$$);

-- CREATE INDEX on an empty table never analyzed (reltuples -1, relpages 0):
-- instant, no finding; on a table with rows it is an error
CREATE TABLE lt_empty (id bigint PRIMARY KEY, owner_id bigint);
SELECT reltuples < 0 AS never_analyzed, relpages FROM pg_class WHERE oid = 'lt_empty'::regclass;
SELECT statement, rule, severity, message
FROM migration_tools.lint($$SET lock_timeout = '2s';
CREATE INDEX "lt_empty_owner_idx" ON "lt_empty" USING btree ("owner_id");$$);
SELECT statement, rule, severity
FROM migration_tools.lint($$SET lock_timeout = '2s';
CREATE INDEX "lt_users_name_idx" ON "lt_users" USING btree ("name");$$);
-- the guard lets it pass, and still refuses the one on lt_users
SET migration_tools.guard = on;
CREATE INDEX lt_empty_owner_idx ON lt_empty (owner_id);
CREATE INDEX lt_users_name_idx ON lt_users (name);
\set VERBOSITY terse
ALTER TABLE lt_users ALTER COLUMN name DROP NOT NULL, ALTER COLUMN email DROP NOT NULL, ALTER COLUMN email SET NOT NULL;
\set VERBOSITY default
RESET migration_tools.guard;

DROP TABLE lt_users, lt_empty;
