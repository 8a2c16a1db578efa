--
-- Migration history: apply, baseline, rollback, rollback_to, status.
--
-- Timings, pids and checksums vary from run to run: they are shown as
-- predicates that print t.
--

CREATE TABLE hist_accounts (id bigint PRIMARY KEY, email text);

-- The settings apply() uses, with their defaults.
SHOW migration_tools.lock_timeout;
SHOW migration_tools.max_lock_timeout;
SHOW migration_tools.lock_retries;
SHOW migration_tools.max_preflight_wait;
SHOW migration_tools.max_blocker_age;
SHOW migration_tools.lint_level;
SHOW migration_tools.applying_version;

-- baseline: recorded as applied, nothing run.
SELECT migration_tools.baseline('000', 'schema before migration_tools');
SELECT version, description, state, baseline, checksum_ok, reversible
FROM migration_tools.status WHERE version = '000';
SELECT migration_tools.baseline('000');
-- A deployment that replays every migration skips the baselined one,
-- whatever its script: it was never run here.
SELECT migration_tools.apply('000', 'CREATE TABLE hist_accounts (id bigint PRIMARY KEY, email text)');

-- A first migration, with a down script.
SELECT migration_tools.apply('001',
    'ALTER TABLE hist_accounts ADD COLUMN name text; CREATE TABLE hist_plans (id bigint PRIMARY KEY, title text)',
    'DROP TABLE hist_plans; ALTER TABLE hist_accounts DROP COLUMN name',
    'names and plans');
SELECT version, description, state, applied_by = current_user AS by_me,
       attempts, lock_wait_time = '0' AS no_wait, lock_waits_caused,
       checksum = encode(sha256(convert_to('ALTER TABLE hist_accounts ADD COLUMN name text; CREATE TABLE hist_plans (id bigint PRIMARY KEY, title text)', 'UTF8')), 'hex') AS sha256,
       checksum_ok, error, pending_statements, reversible,
       finished_at >= started_at AS timed, execution_time >= '0'::interval AS has_time
FROM migration_tools.status WHERE version = '001';
\d hist_accounts

-- The fingerprint of the schema after the migration is kept for schema_drift().
SELECT catalog_fingerprint IS NOT NULL AS has_fingerprint
FROM migration_tools.migrations WHERE version = '001';

-- The lock_timeout of the session is untouched, and applying_version was
-- set only while the statements ran.
SHOW lock_timeout;
SHOW migration_tools.applying_version;

-- While its statements run, the version is in migration_tools.applying_version
-- (the DDL log and the guard read it).
SELECT migration_tools.apply('001a', $m$DO $x$ BEGIN RAISE NOTICE 'applying %', current_setting('migration_tools.applying_version'); END $x$$m$);
-- only a superuser can set it by hand
SET ROLE migration_tools_admin;
SET migration_tools.applying_version = 'fake';
RESET ROLE;

-- The same migration again: a no-op with a NOTICE, returning its state.
SELECT migration_tools.apply('001',
    'ALTER TABLE hist_accounts ADD COLUMN name text; CREATE TABLE hist_plans (id bigint PRIMARY KEY, title text)');

-- The same version with another script: drift, an error naming both checksums.
\set VERBOSITY terse
SELECT migration_tools.apply('001', 'ALTER TABLE hist_accounts ADD COLUMN other text');
\set VERBOSITY default
DO $$
DECLARE d text;
BEGIN
    PERFORM migration_tools.apply('001', 'ALTER TABLE hist_accounts ADD COLUMN other text');
EXCEPTION WHEN duplicate_object THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'names both checksums: %',
        d LIKE '%' || migration_tools.checksum('ALTER TABLE hist_accounts ADD COLUMN name text; CREATE TABLE hist_plans (id bigint PRIMARY KEY, title text)') || '%'
        AND d LIKE '%' || migration_tools.checksum('ALTER TABLE hist_accounts ADD COLUMN other text') || '%';
END
$$;

-- A wrapping BEGIN ... COMMIT is ignored; the script runs in our transaction.
SELECT migration_tools.apply('002',
    E'BEGIN;\nALTER TABLE hist_accounts ADD COLUMN plan_id bigint;\nCOMMIT;',
    'ALTER TABLE hist_accounts DROP COLUMN plan_id');

-- Other transaction control is refused.
SELECT migration_tools.apply('bad', 'ALTER TABLE hist_accounts ADD COLUMN x int; COMMIT');
SELECT migration_tools.apply('bad', 'SAVEPOINT s; ALTER TABLE hist_accounts ADD COLUMN x int');
-- (a BEGIN without COMMIT is a lint error first)
\set VERBOSITY terse
SELECT migration_tools.apply('bad', 'BEGIN; ALTER TABLE hist_accounts ADD COLUMN x int');
\set VERBOSITY default
SELECT migration_tools.apply('bad', 'ALTER TABLE hist_accounts ADD COLUMN x int; ROLLBACK');

-- apply() runs in the caller's transaction: rolled back with it, nothing
-- is recorded.
BEGIN;
SELECT migration_tools.apply('003', 'ALTER TABLE hist_accounts ADD COLUMN nickname text');
SELECT state FROM migration_tools.status WHERE version = '003';
ROLLBACK;
SELECT count(*) AS recorded FROM migration_tools.status WHERE version = '003';
SELECT count(*) AS has_nickname FROM pg_attribute
WHERE attrelid = 'hist_accounts'::regclass AND attname = 'nickname';

-- A failing up script: the caller's transaction aborts, nothing of the
-- script stays, but the failed attempt is recorded durably (by a
-- background worker, in its own transaction).
SELECT migration_tools.apply('004',
    'ALTER TABLE hist_accounts ADD COLUMN age int; ALTER TABLE hist_accounts ADD COLUMN age int',
    NULL, 'duplicate column');
SELECT count(*) AS has_age FROM pg_attribute
WHERE attrelid = 'hist_accounts'::regclass AND attname = 'age';
SELECT version, description, state, attempts, error, checksum_ok, finished_at IS NOT NULL AS finished
FROM migration_tools.status WHERE version = '004';

-- Inside a transaction block too, even when the caller then rolls back.
BEGIN;
SELECT migration_tools.apply('005', 'SELECT 1/0');
ROLLBACK;
SELECT version, state, error FROM migration_tools.status WHERE version = '005';

-- A failed version may be applied again, fixed; it becomes the newest row.
SELECT migration_tools.apply('004', 'ALTER TABLE hist_accounts ADD COLUMN age int',
                             'ALTER TABLE hist_accounts DROP COLUMN age', 'age');
SELECT version, state, error, attempts FROM migration_tools.status WHERE version = '004';
SELECT version FROM migration_tools.status LIMIT 1;

-- The linter is asked first: findings at migration_tools.lint_level refuse
-- the migration, the detail lists them, the hint names "allow".  (The table
-- gets a row: an index on a table without a single page blocks nobody and
-- is not refused.)
INSERT INTO hist_accounts (id, email) VALUES (1, 'a@example.com');
\set VERBOSITY terse
SELECT migration_tools.apply('006', 'CREATE INDEX hist_email_idx ON hist_accounts (email)');
\set VERBOSITY default
DO $$
DECLARE d text; h text;
BEGIN
    PERFORM migration_tools.apply('006', 'CREATE INDEX hist_email_idx ON hist_accounts (email)');
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RAISE NOTICE 'detail names the rule: %, hint names allow: %',
        d LIKE 'Statement 1: create-index-non-concurrently%', h LIKE '%allow%';
END
$$;
SELECT count(*) AS refused_recorded FROM migration_tools.status WHERE version = '006';
-- allowed by rule id
SELECT migration_tools.apply('006', 'CREATE INDEX hist_email_idx ON hist_accounts (email)',
    'DROP INDEX hist_email_idx', allow => ARRAY['create-index-non-concurrently']);
-- or with the linter off
SET migration_tools.lint_level = off;
SELECT migration_tools.apply('007', 'CREATE INDEX hist_name_idx ON hist_accounts (name)',
                             'DROP INDEX hist_name_idx');
RESET migration_tools.lint_level;

-- Statements that cannot run in a transaction block are scheduled: the
-- others run now, these run in the background after commit.  Shown inside
-- a transaction that is rolled back, so that the worker never sees it.
BEGIN;
SELECT migration_tools.apply('008',
    'ALTER TABLE hist_accounts ADD COLUMN score int; CREATE INDEX CONCURRENTLY hist_score_idx ON hist_accounts (score)',
    'DROP INDEX hist_score_idx; ALTER TABLE hist_accounts DROP COLUMN score');
SELECT version, state, finished_at IS NULL AS unfinished, pending_statements
FROM migration_tools.status WHERE version = '008';
SELECT seq, statement_no, sql, state, run_as = current_user AS run_as_me
FROM migration_tools.scheduled_statements WHERE version = '008';
SELECT count(*) AS score_added FROM pg_attribute
WHERE attrelid = 'hist_accounts'::regclass AND attname = 'score';
ROLLBACK;
-- Also when the script wraps itself in BEGIN ... COMMIT: the wrapper is
-- dropped, so the concurrent build is not "in a transaction".
BEGIN;
SELECT migration_tools.apply('008',
    'BEGIN; CREATE INDEX CONCURRENTLY hist_email_cidx ON hist_accounts (email); COMMIT;');
SELECT seq, statement_no, sql FROM migration_tools.scheduled_statements WHERE version = '008';
ROLLBACK;

-- rollback: runs the down script, marks the row rolled_back.
SELECT migration_tools.rollback('007');
SELECT version, state, rolled_back_at IS NOT NULL AS when_recorded
FROM migration_tools.status WHERE version = '007';
SELECT count(*) AS index_left FROM pg_class WHERE relname = 'hist_name_idx';
-- again: already rolled back, a no-op (NOTICE), as apply() of an applied
-- version; concurrent callers: specs/rollback_concurrent.spec
SELECT migration_tools.rollback('007');
-- errors: unknown, not applied (failed), no down script
SELECT migration_tools.rollback('nope');
SELECT migration_tools.rollback('005');
SELECT migration_tools.rollback('000');
-- a failing down script: the error is wrapped, nothing changes
BEGIN;
SELECT migration_tools.apply('009', 'CREATE TABLE hist_audit (id bigint)', 'DROP TABLE no_such_table');
SAVEPOINT s;
SELECT migration_tools.rollback('009');
ROLLBACK TO SAVEPOINT s;
SELECT state FROM migration_tools.status WHERE version = '009';
ROLLBACK;
-- a rolled back version can be applied again
SELECT migration_tools.apply('007', 'CREATE INDEX hist_name_idx ON hist_accounts (name)',
                             'DROP INDEX hist_name_idx', allow => '{create-index-non-concurrently}');

-- rollback_to: every later applied migration, newest first; the target
-- stays.  Errors: unknown target, target not applied.
SELECT version, state FROM migration_tools.status;
SELECT migration_tools.rollback_to('nope');
SELECT migration_tools.rollback_to('005');
-- Everything is checked before anything runs: 010 has no down script, so
-- nothing is rolled back.
BEGIN;
SELECT migration_tools.apply('010', 'CREATE TABLE hist_audit (id bigint)');
SAVEPOINT s;
SELECT migration_tools.rollback_to('002');
ROLLBACK TO SAVEPOINT s;
SELECT version, state FROM migration_tools.status;
ROLLBACK;
SELECT migration_tools.rollback_to('002');
SELECT version, state FROM migration_tools.status;
\d hist_accounts
-- nothing later: nothing to do
SELECT migration_tools.rollback_to('002');

-- NULL and empty arguments are errors.
SELECT migration_tools.apply(NULL, 'SELECT 1');
SELECT migration_tools.apply('', 'SELECT 1');
SELECT migration_tools.apply('011', NULL);
SELECT migration_tools.apply('011', '');
SELECT migration_tools.apply('011', '  -- nothing but a comment');
SELECT migration_tools.apply('011', 'SELECT 1', '');
SELECT migration_tools.apply('011', 'SELEC 1');
SELECT migration_tools.baseline(NULL);
SELECT migration_tools.baseline('');
SELECT migration_tools.rollback(NULL);
SELECT migration_tools.rollback_to('');
-- Versions that could not be shown or told apart are refused before
-- anything runs: too long, control characters, spaces around.
SELECT migration_tools.apply(repeat('v', 256), 'CREATE TABLE hist_never (id int)');
SELECT migration_tools.apply(E'011\n', 'CREATE TABLE hist_never (id int)');
SELECT migration_tools.baseline(E'01\t1');
SELECT migration_tools.apply(' 011', 'CREATE TABLE hist_never (id int)');
SELECT migration_tools.baseline('011 ');
SELECT count(*) AS never_created FROM pg_class WHERE relname = 'hist_never';
-- Odd but harmless versions work: punctuation, quotes, percent signs,
-- backslashes, non-ASCII, the longest allowed.
BEGIN;
SELECT migration_tools.apply('2024-01-31_add "users" 100%s \ ok', 'SELECT 1', 'SELECT 2');
SELECT migration_tools.rollback('2024-01-31_add "users" 100%s \ ok');
SELECT migration_tools.baseline('versión_ü_版本');
SELECT migration_tools.baseline(repeat('w', 255));
SELECT left(version, 40) AS version, state FROM migration_tools.status
WHERE version IN ('2024-01-31_add "users" 100%s \ ok', 'versión_ü_版本', repeat('w', 255));
ROLLBACK;
-- Unknown versions, however odd, are reported as unknown.
SELECT migration_tools.rollback(repeat('v', 300));
SELECT migration_tools.rollback_to('2024-01-31_add "users" 100%s');
-- Nothing is written in a read-only transaction (on a standby: see
-- t/021_history_standby.pl).
BEGIN READ ONLY;
SELECT migration_tools.apply('011', 'SELECT 1');
ROLLBACK;
BEGIN READ ONLY;
SELECT migration_tools.baseline('011');
ROLLBACK;
BEGIN READ ONLY;
SELECT migration_tools.rollback('002');
ROLLBACK;
BEGIN READ ONLY;
SELECT migration_tools.rollback_to('002');
ROLLBACK;
BEGIN READ ONLY;
SELECT migration_tools.import_history('rails');
ROLLBACK;
-- import_history(): no tool, tables of another shape;
-- nothing is imported.
SELECT migration_tools.import_history(NULL);
CREATE TABLE hist_not_prisma (id int, name text);
INSERT INTO hist_not_prisma VALUES (1, 'x');
SELECT migration_tools.import_history('prisma', 'hist_not_prisma');
CREATE TABLE hist_not_flyway (version int, success text, installed_rank int, type text);
INSERT INTO hist_not_flyway VALUES (1, 'maybe', 1, 'SQL');
SELECT migration_tools.import_history('flyway', 'hist_not_flyway');
DROP TABLE hist_not_prisma, hist_not_flyway;
SELECT count(*) AS imported FROM migration_tools.migrations WHERE description LIKE 'imported%';

-- Privileges: status is readable by everyone, the tables are not; the
-- functions are for migration_tools_admin.  apply() runs the script with
-- the caller's privileges.
CREATE ROLE regress_mt_reader;
CREATE ROLE regress_mt_deployer IN ROLE migration_tools_admin;
GRANT CREATE ON SCHEMA public TO regress_mt_deployer;
SELECT has_table_privilege('public', 'migration_tools.status', 'SELECT') AS status_public,
       has_table_privilege('public', 'migration_tools.migrations', 'SELECT') AS migrations_public,
       has_table_privilege('public', 'migration_tools.scheduled_statements', 'SELECT') AS scheduled_public,
       has_function_privilege('public', 'migration_tools.apply(text,text,text,text,text[])', 'EXECUTE') AS apply_public,
       has_function_privilege('migration_tools_admin', 'migration_tools.apply(text,text,text,text,text[])', 'EXECUTE') AS apply_admin,
       has_function_privilege('migration_tools_admin', 'migration_tools.rollback_to(text)', 'EXECUTE') AS rollback_to_admin;
SET ROLE regress_mt_reader;
SELECT count(*) > 0 AS reads_status FROM migration_tools.status;
SELECT count(*) FROM migration_tools.migrations;
SELECT migration_tools.apply('012', 'CREATE TABLE hist_mine (id bigint)');
RESET ROLE;
SET ROLE regress_mt_deployer;
SELECT migration_tools.apply('012', 'CREATE TABLE hist_mine (id bigint)', 'DROP TABLE hist_mine');
SELECT tableowner FROM pg_tables WHERE tablename = 'hist_mine';
SELECT applied_by FROM migration_tools.status WHERE version = '012';
-- not the owner of hist_accounts: the script fails with the caller's rights,
-- and the failure is recorded
SELECT migration_tools.apply('013', 'ALTER TABLE hist_accounts ADD COLUMN hacked int');
SELECT state, error FROM migration_tools.status WHERE version = '013';
SELECT migration_tools.rollback('012');
RESET ROLE;
DROP ROLE regress_mt_reader;
REVOKE CREATE ON SCHEMA public FROM regress_mt_deployer;
DROP ROLE regress_mt_deployer;

-- The checksum function, and a checksum that no longer matches its script.
SELECT migration_tools.checksum('SELECT 1') = encode(sha256('SELECT 1'), 'hex') AS same;
UPDATE migration_tools.migrations SET up_sql = up_sql || ' ' WHERE version = '001';
SELECT version, checksum_ok FROM migration_tools.status WHERE version = '001';

DROP TABLE hist_accounts, hist_plans;

-- Leave the history empty for the tests that follow.
DELETE FROM migration_tools.migrations;
