-- rollback() and rollback_to() of down scripts with statements that cannot
-- run in a transaction block: the statements before the first such
-- statement run in the caller's transaction, that one and all after it
-- are scheduled for the background worker, in script order.  Everything
-- here happens in transactions that are rolled back, so that the worker
-- never runs it (t/013_scheduled_rollback.pl lets it run).
CREATE TABLE sr_items (id int PRIMARY KEY, a int, b int);
SELECT migration_tools.apply('sr1', 'ALTER TABLE sr_items ADD COLUMN c int',
                             'ALTER TABLE sr_items DROP COLUMN c');
SELECT migration_tools.apply('sr2', 'CREATE INDEX sr_items_a ON sr_items (a)',
    'CREATE TABLE sr_scratch (x int); DROP INDEX CONCURRENTLY sr_items_a; DROP TABLE sr_scratch',
    allow => '{create-index-non-concurrently}');
SELECT migration_tools.apply('sr3', 'CREATE INDEX sr_items_b ON sr_items (b)',
    'DROP INDEX CONCURRENTLY sr_items_b', allow => '{create-index-non-concurrently}');

-- One migration: the CREATE TABLE runs now; the DROP INDEX CONCURRENTLY
-- and the DROP TABLE after it are scheduled, in order.
BEGIN;
SELECT migration_tools.rollback('sr2');
SELECT version, state, scheduled_for, pending_statements, rolled_back_at IS NULL AS not_yet
FROM migration_tools.status WHERE version = 'sr2';
SELECT version, seq, statement_no, direction, run_after, top_level, state, sql
FROM migration_tools.scheduled_statements WHERE version LIKE 'sr%' ORDER BY version, seq;
SELECT to_regclass('sr_scratch') IS NOT NULL AS ran_now;
-- while its rollback is scheduled, apply() and baseline() may not touch
-- it; rollback() and rollback_to() leave it to the worker (NOTICE)
SAVEPOINT s;
SELECT migration_tools.apply('sr2', 'CREATE INDEX sr_items_a ON sr_items (a)');
ROLLBACK TO SAVEPOINT s;
SELECT migration_tools.baseline('sr2');
ROLLBACK TO SAVEPOINT s;
SELECT migration_tools.rollback('sr2');
ROLLBACK TO SAVEPOINT s;
-- but rollback_to() does not roll back sr3, newer, after it: an error
SELECT migration_tools.rollback_to('sr1');
ROLLBACK TO SAVEPOINT s;
ROLLBACK;
-- sr3 and sr2 scheduled by one rollback_to(): another one finds both
-- scheduled and skips them
BEGIN;
SELECT migration_tools.rollback_to('sr1');
SELECT migration_tools.rollback_to('sr1');
SELECT migration_tools.rollback('sr3');
SELECT version, seq, direction, run_after, state
FROM migration_tools.scheduled_statements WHERE version LIKE 'sr%' ORDER BY version, seq;
ROLLBACK;

-- rollback_to(): newest first.  sr3's DROP INDEX CONCURRENTLY is
-- scheduled; so everything of sr2 is scheduled after it (run_after), and
-- nothing of sr2 runs now.
BEGIN;
SELECT migration_tools.rollback_to('sr1');
SELECT version, state, scheduled_for, pending_statements FROM migration_tools.status
WHERE version LIKE 'sr%';
SELECT version, seq, statement_no, direction, run_after, top_level, state, sql
FROM migration_tools.scheduled_statements WHERE version LIKE 'sr%' ORDER BY version, seq;
SELECT to_regclass('sr_scratch') IS NULL AS nothing_ran_now;
ROLLBACK;

-- A down script that can run in a transaction block is not scheduled.
BEGIN;
SELECT migration_tools.rollback('sr1');
SELECT count(*) AS scheduled FROM migration_tools.scheduled_statements WHERE version LIKE 'sr%';
ROLLBACK;

-- A failed scheduled rollback (as the worker records it) is retried by
-- rollback(): what is not done is scheduled again; apply() would run the
-- up script again, as for any failed migration.
BEGIN;
SELECT migration_tools.rollback('sr3');
UPDATE migration_tools.scheduled_statements SET state = 'failed', attempts = 1,
       error = 'index "sr_items_b" does not exist'
WHERE version = 'sr3';
UPDATE migration_tools.migrations SET state = 'failed',
       error = 'rollback: scheduled statement 1 of the down script failed: index "sr_items_b" does not exist'
WHERE version = 'sr3';
SELECT version, state, scheduled_for, pending_statements, error
FROM migration_tools.status WHERE version = 'sr3';
SELECT migration_tools.rollback('sr3');
SELECT version, state, scheduled_for, pending_statements, error
FROM migration_tools.status WHERE version = 'sr3';
SELECT seq, state, attempts, error FROM migration_tools.scheduled_statements WHERE version = 'sr3';
ROLLBACK;

-- Behind another migration's scheduled statements on the same table (a
-- concurrent build queued, sr4): a rollback, fresh or retried, does not
-- run in the caller's transaction (it would wait for the build, which
-- waits for this transaction); it is scheduled after sr4 (run_after).
BEGIN;
SELECT migration_tools.apply('sr4', 'CREATE INDEX CONCURRENTLY sr_items_ab ON sr_items (a, b)');
SELECT migration_tools.rollback('sr1');
SELECT migration_tools.rollback('sr3');
UPDATE migration_tools.scheduled_statements SET state = 'failed', attempts = 1, error = 'canceled'
WHERE version = 'sr3';
UPDATE migration_tools.migrations SET state = 'failed',
       error = 'rollback: scheduled statement 1 of the down script failed: canceled'
WHERE version = 'sr3';
SELECT migration_tools.rollback('sr3');
SELECT version, seq, direction, run_after, top_level, state, sql
FROM migration_tools.scheduled_statements WHERE version LIKE 'sr%' ORDER BY version, seq;
SELECT attname FROM pg_attribute WHERE attrelid = 'sr_items'::regclass AND attname = 'c';
ROLLBACK;

DROP TABLE sr_items;
DELETE FROM migration_tools.migrations WHERE version LIKE 'sr%';
