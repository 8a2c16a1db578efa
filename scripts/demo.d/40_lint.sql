-- 4. Lint a migration: the server's parser and the live catalog, nothing is run.
CREATE TABLE demo_accounts (id bigint PRIMARY KEY, email text, status int);
INSERT INTO demo_accounts SELECT g, 'user' || g || '@example.com', g % 3
FROM generate_series(1, 50000) g;
ANALYZE demo_accounts;

-- An unsafe migration: every finding says why and what to do instead.
SELECT statement, rule, severity, relation, lock_mode, rewrites, estimated_rows
FROM migration_tools.lint($$
    ALTER TABLE demo_accounts ADD COLUMN verified boolean NOT NULL;
    ALTER TABLE demo_accounts ADD COLUMN token uuid DEFAULT gen_random_uuid();
    ALTER TABLE demo_accounts ALTER COLUMN status TYPE bigint;
    CREATE INDEX demo_accounts_email ON demo_accounts (email);
    UPDATE demo_accounts SET status = 0;
$$);

SELECT rule, hint FROM migration_tools.lint(
    'CREATE INDEX demo_accounts_email ON demo_accounts (email)');

-- The safe version of the same migration: nothing at error level.
SELECT statement, rule, severity FROM migration_tools.lint($$
    SET lock_timeout = '2s';
    ALTER TABLE demo_accounts ADD COLUMN verified boolean NOT NULL DEFAULT false;
    ALTER TABLE demo_accounts ADD COLUMN token uuid;
    ALTER TABLE demo_accounts ALTER COLUMN token SET DEFAULT gen_random_uuid();
    ALTER TABLE demo_accounts ADD CONSTRAINT status_nn CHECK (status IS NOT NULL) NOT VALID;
    ALTER TABLE demo_accounts VALIDATE CONSTRAINT status_nn;
    ALTER TABLE demo_accounts ALTER COLUMN status SET NOT NULL;
    CREATE INDEX CONCURRENTLY demo_accounts_email ON demo_accounts (email);
$$);

-- A new table needs none of that care.
SELECT count(*) AS findings FROM migration_tools.lint($$
    CREATE TABLE demo_new (id bigint PRIMARY KEY, email text);
    CREATE INDEX ON demo_new (email);
    ALTER TABLE demo_new ALTER COLUMN email SET NOT NULL;
$$);

-- How the parser splits a script, and the locks each statement would take.
SELECT statement, command_tag, needs_top_level, locks
FROM migration_tools.script_statements($$
    BEGIN;
    ALTER TABLE demo_accounts ADD COLUMN note text;
    CREATE INDEX CONCURRENTLY ON demo_accounts (note);
    COMMIT;
$$);

-- Garbage gets a syntax error with its position, never a crash.
\set ON_ERROR_STOP off
SELECT * FROM migration_tools.lint('ALTER TABLE demo_accounts ADD COLUMN (');
\set ON_ERROR_STOP on

-- The guard (superuser setting) refuses the same DDL outside apply().
SET migration_tools.guard = on;
\set ON_ERROR_STOP off
CREATE INDEX demo_accounts_status ON demo_accounts (status);
\set ON_ERROR_STOP on
RESET migration_tools.guard;
DROP TABLE demo_accounts;
