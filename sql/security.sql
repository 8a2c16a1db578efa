--
-- Security model (SPEC section 8): the attacks of a hostile role without
-- privileges, replayed.  regress_mt_alice is the victim, regress_mt_mallory
-- the attacker, regress_mt_ops a member of migration_tools_admin that is
-- not a superuser.  t/022_history_security.pl replays the rollback
-- through the worker and the blocking of apply() with several sessions.
--
CREATE ROLE regress_mt_alice;
CREATE ROLE regress_mt_mallory;
CREATE ROLE regress_mt_ops IN ROLE migration_tools_admin;
GRANT EXECUTE ON FUNCTION migration_tools.apply(text, text, text, text, text[])
    TO regress_mt_alice, regress_mt_mallory;
GRANT EXECUTE ON FUNCTION migration_tools.rollback(text) TO regress_mt_mallory;
GRANT EXECUTE ON FUNCTION migration_tools.rollback_to(text) TO regress_mt_mallory;
CREATE SCHEMA sec_alice AUTHORIZATION regress_mt_alice;
CREATE SCHEMA sec_ops AUTHORIZATION regress_mt_ops;
CREATE SCHEMA sec_m AUTHORIZATION regress_mt_mallory;

-- alice's table, two jobs that hold her secrets in their definitions, one
-- of which fails on her data
SET ROLE regress_mt_alice;
CREATE TABLE sec_alice.t (id int PRIMARY KEY, v text, n int);
INSERT INTO sec_alice.t SELECT g, 'sekrit' || g FROM generate_series(1, 100) g;
SELECT migration_tools.backfill('sec_alice.t', 'n = v::int', 'v <> ''password=swordfish''',
                                max_attempts => 1) AS fail_job \gset
SELECT migration_tools.run_batched('sec_alice.t',
    'UPDATE sec_alice.t SET v = ''token=abc123'' WHERE id BETWEEN $1 AND $2',
    start_at => now() + interval '1 hour') AS later_job \gset
RESET ROLE;
SELECT migration_tools.wait(:fail_job);
SET ROLE regress_mt_alice;
-- alice sees her jobs and the error, which holds her data
SELECT state, set_clause, where_clause, last_error FROM migration_tools.backfill_progress
WHERE job_id = :fail_job;
SELECT attempt, error FROM migration_tools.backfill_batch_history WHERE job_id = :fail_job;

-- 1. Leaky views.  mallory's cheap function in the WHERE clause would run
-- before the view's own filter, on every row, and print what it sees.
SET ROLE regress_mt_mallory;
CREATE FUNCTION sec_m.leak(text, text, text, name) RETURNS bool LANGUAGE plpgsql COST 0.0000001
AS $$BEGIN RAISE NOTICE 'LEAK % % % %', $4, $1, $2, $3; RETURN false; END$$;
CREATE FUNCTION sec_m.leak1(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001
AS $$BEGIN RAISE NOTICE 'LEAK %', $1; RETURN false; END$$;
-- no NOTICE: the function sees none of alice's rows
SELECT job_id FROM migration_tools.backfill_progress WHERE sec_m.leak(set_clause, where_clause, sql, owner);
SELECT job_id FROM migration_tools.backfill_progress WHERE sec_m.leak1(last_error);
SELECT job_id FROM migration_tools.backfill_batch_history WHERE sec_m.leak1(error);
SELECT count(*) FROM migration_tools.backfill_progress;
SELECT count(*) FROM migration_tools.backfill_batch_history;
-- nor through a join, a subquery or a CTE
SELECT p.job_id FROM migration_tools.backfill_progress p
JOIN migration_tools.backfill_batch_history b USING (job_id)
WHERE sec_m.leak(p.sql, b.error, p.set_clause, p.owner);
WITH j AS (SELECT * FROM migration_tools.backfill_progress)
SELECT job_id FROM j WHERE sec_m.leak(set_clause, where_clause, sql, owner);
-- the tables behind the views are closed
SELECT count(*) FROM migration_tools.backfill_jobs;
SELECT count(*) FROM migration_tools.backfill_batches;
SELECT count(*) FROM migration_tools.migrations;
SELECT count(*) FROM migration_tools.scheduled_statements;
SELECT count(*) FROM migration_tools.ddl_log;
RESET ROLE;

-- A failed migration of alice: the error holds the value of her script.
SET ROLE regress_mt_alice;
SELECT migration_tools.apply('sec_fail', 'SELECT ''pw=hunter2''::int');
SELECT migration_tools.apply('sec_ok', 'CREATE TABLE sec_alice.ok (id int)');
SELECT version, state, error, checksum IS NOT NULL AS has_checksum, checksum_ok
FROM migration_tools.status WHERE version IN ('sec_fail', 'sec_ok') ORDER BY version;

-- mallory sees the history, not alice's error text or checksums
SET ROLE regress_mt_mallory;
SELECT version, state, applied_by, error, checksum, checksum_ok, reversible
FROM migration_tools.status WHERE version IN ('sec_fail', 'sec_ok') ORDER BY version;
CREATE FUNCTION sec_m.leak_secret(text) RETURNS bool LANGUAGE plpgsql COST 0.0000001
AS $$BEGIN IF $1 LIKE '%hunter2%' THEN RAISE NOTICE 'LEAK %', $1; END IF; RETURN false; END$$;
SELECT version FROM migration_tools.status WHERE sec_m.leak_secret(error);
SELECT version FROM migration_tools.status WHERE sec_m.leak_secret(checksum);
-- nor does apply() of the same version tell mallory the recorded checksum
SELECT migration_tools.apply('sec_ok', 'CREATE TABLE sec_m.ok (id int)');
-- an administrator and the row's role see it
SET ROLE regress_mt_ops;
SELECT version, error FROM migration_tools.status WHERE version = 'sec_fail';
RESET ROLE;
SELECT version, error FROM migration_tools.status WHERE version = 'sec_fail';

-- 2. Admin to superuser through rollback.  ops records a down script that
-- makes ops a superuser, and waits for a superuser to roll it back.
SET ROLE regress_mt_ops;
SELECT migration_tools.apply('sec100', 'CREATE TABLE sec_ops.t (id int)',
                             'DROP TABLE sec_ops.t; ALTER ROLE regress_mt_ops SUPERUSER');
RESET ROLE;
-- The down script runs as ops: the ALTER ROLE fails, and so does the
-- rollback, as a whole (the table is still there).  (terse: the server's
-- own message for the refused ALTER ROLE differs between versions)
\set VERBOSITY terse
SELECT migration_tools.rollback('sec100');
\set VERBOSITY default
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mt_ops';
SELECT to_regclass('sec_ops.t') IS NOT NULL AS table_kept;
SELECT version, state FROM migration_tools.status WHERE version = 'sec100';
-- rollback_to() too
\set VERBOSITY terse
SELECT migration_tools.rollback_to('sec_ok');
\set VERBOSITY default
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mt_ops';
-- Out of the role it runs as, no way back to the caller's: SET ROLE and
-- RESET ROLE are refused in the down script, also when the caller did
-- SET ROLE to ops first (the session user is a superuser).
SET ROLE regress_mt_ops;
SELECT migration_tools.apply('sec101', 'CREATE TABLE sec_ops.t1 (id int)',
                             'RESET ROLE; ALTER ROLE regress_mt_ops SUPERUSER');
SELECT migration_tools.rollback('sec101');
RESET ROLE;
SELECT migration_tools.rollback('sec101');
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mt_ops';
-- A role that is not a member of ops may not run ops's scripts at all,
-- even with EXECUTE on rollback().
SET ROLE regress_mt_mallory;
SELECT migration_tools.rollback('sec100');
SELECT migration_tools.rollback_to('sec_ok');
RESET ROLE;
-- A down script that does what ops may: run as ops when a superuser rolls
-- it back (current_user and the owner of what it creates say so).
SET ROLE regress_mt_ops;
SELECT migration_tools.apply('sec102', 'CREATE TABLE sec_ops.t2 (id int)',
    'DROP TABLE sec_ops.t2; CREATE TABLE sec_ops.who AS SELECT current_user AS who');
RESET ROLE;
SELECT migration_tools.rollback('sec102');
SELECT who, (SELECT tableowner FROM pg_tables WHERE schemaname = 'sec_ops' AND tablename = 'who')
FROM sec_ops.who;
-- Statements of a down script scheduled for the worker run as ops too.
SET ROLE regress_mt_ops;
CREATE TABLE sec_ops.t3 (id int);
SELECT migration_tools.apply('sec103', 'CREATE INDEX t3_id ON sec_ops.t3 (id)',
                             'DROP INDEX CONCURRENTLY sec_ops.t3_id',
                             allow => '{create-index-non-concurrently}');
RESET ROLE;
BEGIN;
SELECT migration_tools.rollback('sec103');
SELECT direction, run_as, sql FROM migration_tools.scheduled_statements
WHERE version = 'sec103' ORDER BY seq;
ROLLBACK;
-- A down script whose role was dropped does not run as anybody else.
CREATE ROLE regress_mt_gone;
GRANT EXECUTE ON FUNCTION migration_tools.apply(text, text, text, text, text[]) TO regress_mt_gone;
SET ROLE regress_mt_gone;
SELECT migration_tools.apply('sec104', 'SELECT 1', 'SELECT 2');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION migration_tools.apply(text, text, text, text, text[]) FROM regress_mt_gone;
DROP ROLE regress_mt_gone;
SELECT migration_tools.rollback('sec104');

-- 3. Nobody without a privilege on the history can take its lock, or one
-- that conflicts with it (t/022_history_security.pl: the advisory lock
-- of the past blocks nothing, a deployer's wait is bounded).
SET ROLE regress_mt_mallory;
BEGIN;
LOCK TABLE migration_tools.migrations IN SHARE UPDATE EXCLUSIVE MODE;
ROLLBACK;
BEGIN;
LOCK TABLE migration_tools.migrations IN ACCESS SHARE MODE;
ROLLBACK;
SELECT version FROM migration_tools.status WHERE version = 'sec_ok' FOR UPDATE;
SELECT version FROM migration_tools.status WHERE version = 'sec_ok' FOR KEY SHARE;
SELECT migration_tools._lock_history();
RESET ROLE;
SHOW migration_tools.max_deployer_wait;

-- Clean up.
SET client_min_messages = warning;
SELECT migration_tools.cancel(:later_job);
DROP SCHEMA sec_alice, sec_ops, sec_m CASCADE;
DELETE FROM migration_tools.migrations WHERE version LIKE 'sec%';
REVOKE EXECUTE ON FUNCTION migration_tools.apply(text, text, text, text, text[])
    FROM regress_mt_alice, regress_mt_mallory;
REVOKE EXECUTE ON FUNCTION migration_tools.rollback(text) FROM regress_mt_mallory;
REVOKE EXECUTE ON FUNCTION migration_tools.rollback_to(text) FROM regress_mt_mallory;
DELETE FROM migration_tools.backfill_jobs WHERE owner_name LIKE 'regress_mt_%';
DROP ROLE regress_mt_alice, regress_mt_mallory, regress_mt_ops;
