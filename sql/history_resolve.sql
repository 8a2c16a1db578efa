--
-- resolve(): marking a failed migration applied or rolled_back by hand;
-- the procedures await_migration() and await_job(), which wait committing
-- between looks and raise when what they wait for failed.
--
CREATE TABLE res_items (id int, code int);
INSERT INTO res_items SELECT g, g % 3 FROM generate_series(1, 30) g;

-- A failed migration (its up script fails; the attempt is recorded).
SELECT migration_tools.apply('r01', 'SELECT 1/0', NULL, 'fails');
SELECT version, state FROM migration_tools.status WHERE version = 'r01';

-- Only 'applied' and 'rolled_back' are targets; only a failed migration
-- can be resolved; unknown versions and NULLs are refused.
SELECT migration_tools.resolve('r01', 'scheduled');
SELECT migration_tools.resolve('r01', NULL);
SELECT migration_tools.resolve('nope', 'applied');
SELECT migration_tools.apply('r02', 'ALTER TABLE res_items ADD COLUMN note text');
SELECT migration_tools.resolve('r02', 'rolled_back');
\echo :LAST_ERROR_SQLSTATE

-- failed -> applied; a second resolve is refused (it is applied now).
SELECT migration_tools.resolve('r01', 'applied');
SELECT version, state, error IS NOT NULL AS error_kept, finished_at IS NOT NULL AS finished
FROM migration_tools.status WHERE version = 'r01';
SELECT migration_tools.resolve('r01', 'applied');

-- Only superusers and migration_tools_admin may resolve.
CREATE ROLE res_user;
SET ROLE res_user;
SELECT migration_tools.resolve('r01', 'applied');
RESET ROLE;

-- await_migration() on a migration that is done returns at once.
CALL migration_tools.await_migration('r02');
CALL migration_tools.await_migration('r01', '1 second');
-- unknown, NULL, negative timeout
CALL migration_tools.await_migration('nope');
CALL migration_tools.await_migration(NULL);
CALL migration_tools.await_migration('r02', '-1 second');
-- in a transaction block it cannot commit between looks
BEGIN;
CALL migration_tools.await_migration('r02');
ROLLBACK;

-- A scheduled statement that fails in the worker (duplicates in a unique
-- index built concurrently): await_migration() raises with its error.
SELECT migration_tools.apply('r03',
    'CREATE UNIQUE INDEX CONCURRENTLY res_items_code ON res_items (code)');
CALL migration_tools.await_migration('r03', '60 seconds');
SELECT version, state FROM migration_tools.status WHERE version = 'r03';
-- resolved as rolled back: its failed statement is cancelled (deleted)
SELECT count(*) AS scheduled_rows FROM migration_tools.scheduled_statements WHERE version = 'r03';
SELECT migration_tools.resolve('r03', 'rolled_back');
SELECT count(*) AS scheduled_rows FROM migration_tools.scheduled_statements WHERE version = 'r03';
SELECT version, state, rolled_back_at IS NOT NULL AS rolled_back_at
FROM migration_tools.status WHERE version = 'r03';
CALL migration_tools.await_migration('r03');

-- await_job(): completed returns; failed and cancelled raise with the
-- last error; unknown jobs, another role's jobs and a transaction block
-- are refused.
CREATE TABLE res_jobs (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO res_jobs SELECT g, 1 FROM generate_series(1, 100) g;
-- job ids in the messages do not depend on the tests run before; the
-- sequence is set back at the end, for the tests run after
SELECT pg_get_serial_sequence('migration_tools.backfill_jobs', 'job_id') AS seq \gset
SELECT last_value AS seq_last, is_called AS seq_called FROM :seq \gset
SELECT setval(:'seq', 1000) > 0 AS ids_set;
SELECT migration_tools.backfill('res_jobs', 'v = v + 1') AS job \gset
CALL migration_tools.await_job(:job, '60 seconds');
SELECT sum(v) FROM res_jobs;
SELECT migration_tools.backfill('res_jobs', 'v = v / 0') AS failjob \gset
CALL migration_tools.await_job(:failjob, '60 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT state FROM migration_tools.backfill_progress WHERE job_id = :failjob;
-- paused before the worker may see it
BEGIN;
SELECT migration_tools.backfill('res_jobs', 'v = v + 1') AS canceljob \gset
SELECT migration_tools.pause(:canceljob);
COMMIT;
-- a paused job does not end: the timeout passes
CALL migration_tools.await_job(:canceljob, '200 ms');
\echo :LAST_ERROR_SQLSTATE
SELECT migration_tools.cancel(:canceljob);
CALL migration_tools.await_job(:canceljob);
CALL migration_tools.await_job(999999);
CALL migration_tools.await_job(NULL);
BEGIN;
CALL migration_tools.await_job(:job);
ROLLBACK;
SET ROLE res_user;
CALL migration_tools.await_job(:job);
RESET ROLE;
DROP ROLE res_user;
DELETE FROM migration_tools.backfill_jobs WHERE job_id > 1000;
SELECT setval(:'seq', :seq_last, :'seq_called'::boolean) > 0 AS ids_restored;
