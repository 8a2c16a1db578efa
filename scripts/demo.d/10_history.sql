-- 1. Apply a migration: run in this transaction, recorded, never run twice.
CREATE TABLE demo_customers (id bigint PRIMARY KEY, email text);

SELECT migration_tools.apply(
    '2026_01_customers_name',
    'ALTER TABLE demo_customers ADD COLUMN name text',
    down_sql    => 'ALTER TABLE demo_customers DROP COLUMN name',
    description => 'customers get a name');

-- Again (another deployer, a retried CI job): a NOTICE, nothing runs.
SELECT migration_tools.apply(
    '2026_01_customers_name',
    'ALTER TABLE demo_customers ADD COLUMN name text');

-- A statement that cannot run in a transaction block is scheduled: the
-- background worker runs it after commit.
SELECT migration_tools.apply(
    '2026_02_customers_email_index',
    'CREATE INDEX CONCURRENTLY demo_customers_email ON demo_customers (email)',
    down_sql => 'DROP INDEX demo_customers_email');

-- A failing migration: the transaction rolls back, the failure is recorded.
DO $$
BEGIN
    PERFORM migration_tools.apply('2026_03_broken',
        'ALTER TABLE demo_customers ADD COLUMN age int; ALTER TABLE demo_customers ADD COLUMN age int');
EXCEPTION WHEN duplicate_column THEN
    RAISE NOTICE 'apply failed: %', SQLERRM;
END
$$;

-- Give the worker a moment to build the index.  A concurrent index build
-- waits for every transaction older than it, so this loop commits each time
-- round: one long transaction here would hold the build back.
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM migration_tools.status WHERE state = 'scheduled');
        COMMIT;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT version, state, attempts, checksum_ok, pending_statements, error
FROM migration_tools.status;

-- Undo the first one (its down script), and look again.
SELECT migration_tools.rollback('2026_01_customers_name');
SELECT version, state, rolled_back_at IS NOT NULL AS rolled_back
FROM migration_tools.status WHERE version = '2026_01_customers_name';
