--
-- Backfill control: SPEC section 2 (batched backfills) as a skeptical DBA
-- drives it from psql: every control function on every state, the
-- progress columns at each state, a failing set clause with max_attempts
-- and retry, argument spellings, clauses that try to escape their batch,
-- run_window, key types, run_batched for its three uses, quoted names,
-- and the lock mode spellings of SPEC section 3.  Runs in a database of
-- its own.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE backfill_control_db;
\c backfill_control_db
SET client_min_messages = warning;
CREATE EXTENSION migration_tools;
RESET client_min_messages;
\set VERBOSITY default

-- wait for a job, at most 60 s, and fail loudly otherwise
CREATE FUNCTION wait_job(j bigint) RETURNS text LANGUAGE sql
AS $$ SELECT migration_tools.wait(j, '60 seconds') $$;

CREATE TABLE acc (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, d int NOT NULL DEFAULT 1);
INSERT INTO acc (id) SELECT generate_series(1, 5000);
ANALYZE acc;

--
-- A job due in an hour: every control, and what the view says meanwhile.
--
SELECT migration_tools.backfill('acc', 'n = n + 1', start_at => now() + interval '1 hour') AS j \gset
SELECT state, rows_done, percent, eta, worker_pid, started_at, finished_at, batches
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT migration_tools.wait(:j, '100ms') AS wait_times_out_with_the_state;
SELECT migration_tools.pause(:j);
SELECT migration_tools.pause(:j) AS pause_again;
SELECT migration_tools.resume(:j);
SELECT migration_tools.resume(:j) AS resume_again;
SELECT start_at > now() + interval '50 minutes' AS still_due_later
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT migration_tools.cancel(:j);
SELECT state, started_at, finished_at IS NOT NULL AS finished, worker_pid, eta
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT migration_tools.wait(:j) AS wait_on_cancelled;
SELECT migration_tools.pause(:j) AS pause_cancelled;
SELECT migration_tools.resume(:j) AS resume_cancelled;
SELECT migration_tools.retry(:j) AS retry_cancelled;
SELECT state, finished_at FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT migration_tools.cancel(:j);
SELECT count(*) FILTER (WHERE n <> 0) AS rows_touched FROM acc;

--
-- A job that runs: every progress column once it is completed, and the
-- controls on a completed job.
--
SELECT migration_tools.backfill('acc', 'n = n + 1', batch_size => 700) AS j \gset
SELECT wait_job(:j);
SELECT state, rows_done, rows_total, percent, eta, batch_size, batches, last_error,
       worker_pid, started_at <= finished_at AS ordered, rows_per_second > 0 AS speed,
       throttled_by, phase, attempts
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT count(*), min(n), max(n) FROM acc;
SELECT migration_tools.retry(:j);
SELECT migration_tools.cancel(:j);
SELECT migration_tools.pause(:j);
SELECT migration_tools.resume(:j);
SELECT migration_tools.wait(:j) AS wait_on_completed;
SELECT migration_tools.wait(987654321);
SELECT migration_tools.wait(NULL);

--
-- A set clause that fails on one row: max_attempts consecutive failures
-- fail the job, what was done stays done, retry after a fix finishes it,
-- every row changed exactly once.
--
UPDATE acc SET d = 0 WHERE id = 3500;
SELECT migration_tools.backfill('acc', 'n = n + 10 / d', batch_size => 1000, max_attempts => 2) AS j \gset
SELECT wait_job(:j);
SELECT state, rows_done, last_error, attempts, max_attempts, worker_pid, eta,
       finished_at IS NOT NULL AS finished, percent < 100 AS partial
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT batch_no, attempt, rows, error FROM migration_tools.backfill_batch_history
WHERE job_id = :j ORDER BY batch_no, attempt;
SELECT n, count(*) FROM acc GROUP BY n ORDER BY n;
UPDATE acc SET d = 1 WHERE id = 3500;
SELECT migration_tools.retry(:j);
SELECT wait_job(:j);
SELECT state, rows_done, last_error, attempts, percent, finished_at IS NOT NULL AS finished
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT n, count(*) FROM acc GROUP BY n ORDER BY n;

--
-- Argument spellings and values.
--
SELECT migration_tools.backfill('acc', 'n = 11', strategy => 'KEY') AS j \gset
SELECT wait_job(:j), (SELECT strategy FROM migration_tools.backfill_progress WHERE job_id = :j);
SELECT migration_tools.backfill('acc', 'n = 12', strategy => ' Ctid ') AS j \gset
SELECT wait_job(:j), (SELECT strategy FROM migration_tools.backfill_progress WHERE job_id = :j);
SELECT min(n), max(n) FROM acc;
SELECT migration_tools.backfill('acc', 'n = 1', strategy => NULL);
SELECT migration_tools.backfill('acc', 'n = 1', strategy => 'keyset');
SELECT migration_tools.backfill('acc', 'n = 1', batch_size => 0);
SELECT migration_tools.backfill('acc', 'n = 1', target_batch_time => '0');
SELECT migration_tools.backfill('acc', 'n = 1', batch_sleep => '-1s');
SELECT migration_tools.backfill('acc', 'n = 1', max_attempts => 0);
SELECT migration_tools.backfill('acc', 'n = 1', max_attempts => NULL);
SELECT migration_tools.backfill('acc', 'n = 1', run_window => '25:00-26:00');
SELECT migration_tools.backfill('acc', 'n = 1', run_window => '01:00-01:00');
SELECT migration_tools.backfill('acc', NULL);
SELECT migration_tools.backfill(NULL, 'n = 1');
SELECT migration_tools.backfill('acc', 'nope = 1');
SELECT migration_tools.backfill('acc', 'n = 1', 'nope > 0');
-- start_at in the past: runs now
SELECT migration_tools.backfill('acc', 'n = 13', start_at => now() - interval '1 day') AS j \gset
SELECT wait_job(:j), (SELECT min(n) || '-' || max(n) FROM acc) AS n;

--
-- Clauses that try to leave their batch: refused, or confined to it.
-- (A non-idempotent set clause shows it: each row must change once.)
--
UPDATE acc SET n = 0;
SELECT migration_tools.backfill('acc', 'n = n + 1 --', batch_size => 500) AS j \gset
SELECT wait_job(:j);
SELECT min(n), max(n) FROM acc;
SELECT migration_tools.backfill('acc', 'n = n + 1', where_clause => 'true --', batch_size => 500) AS j \gset
SELECT wait_job(:j);
SELECT min(n), max(n) FROM acc;
\set VERBOSITY terse
SELECT migration_tools.backfill('acc', 'n = n + 1', where_clause => 'true) OR (true');
SELECT migration_tools.backfill('acc', 'n = n + 1', where_clause => 'true; DELETE FROM acc');
SELECT migration_tools.backfill('acc', 'n = n + 1 FROM acc a2');
SELECT migration_tools.backfill('acc', 'n = n + 1', where_clause => 'true RETURNING *');
SELECT migration_tools.run_batched('acc', 'DELETE FROM acc WHERE id BETWEEN $1 AND $2; DROP TABLE acc');
SELECT migration_tools.run_batched('acc', 'DELETE FROM acc WHERE id >= $1');
-- a quote opened in one clause and closed in the other would swallow the
-- batch range between them: each clause must parse on its own
SELECT migration_tools.backfill('acc', $q$n = n + 1, d = length($$$q$,
    where_clause => $q$$$) WHERE true AND true AND (true$q$);
SELECT migration_tools.backfill('acc', $q$n = n + 1 + length('$q$,
    where_clause => $q$') WHERE true AND true AND (true$q$);
SELECT migration_tools.backfill('acc', $q$n = n + 1 + "$q$, where_clause => $q$"$q$);
SELECT migration_tools.backfill('acc', 'n = n + 1 /*', where_clause => '*/ true');
SELECT migration_tools.backfill('acc', 'n = n + 1', where_clause => 'true LIMIT 1');
\set VERBOSITY default
SELECT count(*), min(n), max(n) FROM acc;

--
-- A run window that excludes now: the job waits in the queue and says
-- why; it has not started.
--
SELECT to_char(now() + interval '2 hours', 'HH24:MI') || '-' ||
       to_char(now() + interval '3 hours', 'HH24:MI') AS win \gset
SELECT migration_tools.backfill('acc', 'n = n + 1', run_window => :'win') AS j \gset
DO $$
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    WHILE (SELECT throttled_by IS NULL FROM migration_tools.backfill_progress
           WHERE job_id = (SELECT max(job_id) FROM migration_tools.backfill_jobs))
          AND clock_timestamp() < t + interval '60 seconds' LOOP
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT state, throttled_by, next_due > now() + interval '1 hour' AS due_later,
       worker_pid, started_at, rows_done, eta
FROM migration_tools.backfill_progress WHERE job_id = :j;
SELECT migration_tools.wait(:j, '200ms') AS still;
SELECT migration_tools.cancel(:j);
SELECT max(n) FROM acc;

--
-- Key types: uuid, timestamptz, text with collation-sensitive values,
-- a composite key; a table without a primary key.
--
CREATE TABLE ku (id uuid PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO ku (id) SELECT md5(g::text)::uuid FROM generate_series(1, 3000) g;
CREATE TABLE kt (at timestamptz PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO kt (at) SELECT timestamptz '2020-01-01 00:00+00' + g * interval '1 minute'
FROM generate_series(1, 3000) g;
INSERT INTO kt (at) VALUES ('-infinity'), ('infinity');
CREATE TABLE kx (name text COLLATE "C" PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO kx (name) SELECT chr(65 + g % 58) || g FROM generate_series(1, 3000) g;
CREATE TABLE kc (a int, b text, c date, n int NOT NULL DEFAULT 0, PRIMARY KEY (a, b, c));
INSERT INTO kc (a, b, c) SELECT g % 7, 'b' || g % 11, date '2024-01-01' + g % 13
FROM generate_series(1, 3000) g ON CONFLICT DO NOTHING;
CREATE TABLE nopk (v int, n int NOT NULL DEFAULT 0);
INSERT INTO nopk (v) SELECT generate_series(1, 3000);

SELECT migration_tools.backfill('ku', 'n = n + 1', batch_size => 128) AS j1,
       migration_tools.backfill('kt', 'n = n + 1', batch_size => 128) AS j2,
       migration_tools.backfill('kx', 'n = n + 1', batch_size => 128) AS j3,
       migration_tools.backfill('kc', 'n = n + 1', batch_size => 128) AS j4,
       migration_tools.backfill('nopk', 'n = n + 1', strategy => 'ctid', guard => false,
                                where_clause => 'n = 0', batch_size => 128) AS j5 \gset
SELECT wait_job(:j1) AS ku, wait_job(:j2) AS kt, wait_job(:j3) AS kx, wait_job(:j4) AS kc,
       wait_job(:j5) AS nopk;
SELECT 'ku' AS t, count(*), min(n), max(n) FROM ku
UNION ALL SELECT 'kt', count(*), min(n), max(n) FROM kt
UNION ALL SELECT 'kx', count(*), min(n), max(n) FROM kx
UNION ALL SELECT 'kc', count(*), min(n), max(n) FROM kc
UNION ALL SELECT 'nopk', count(*), min(n), max(n) FROM nopk;
SELECT job_id = :j1 AS ku, rows_done, percent FROM migration_tools.backfill_progress
WHERE job_id IN (:j1, :j2, :j3, :j4, :j5) ORDER BY job_id;
SELECT migration_tools.backfill('nopk', 'n = n + 1');
SELECT migration_tools.run_batched('nopk', 'DELETE FROM nopk WHERE v BETWEEN $1 AND $2');
SELECT migration_tools.run_batched('kc', 'DELETE FROM kc WHERE a BETWEEN $1 AND $2');

--
-- run_batched for its three uses: copy into a new table, transform into
-- another schema (quoted names everywhere), delete in batches.
--
CREATE SCHEMA "New ""Shop""";
CREATE TABLE "Orders" ("Order Id" bigint PRIMARY KEY, "Total" numeric NOT NULL, kind int NOT NULL);
INSERT INTO "Orders" SELECT g, g * 1.5, g % 4 FROM generate_series(1, 6000) g;
CREATE TABLE "New ""Shop"""."Orders v2" ("Order Id" bigint PRIMARY KEY, cents bigint NOT NULL);
CREATE TABLE orders_copy (LIKE "Orders" INCLUDING INDEXES);
SELECT migration_tools.run_batched('"Orders"',
    'INSERT INTO orders_copy SELECT * FROM "Orders" WHERE "Order Id" BETWEEN $1 AND $2',
    batch_size => 500) AS j1,
       migration_tools.run_batched('"Orders"',
    'INSERT INTO "New ""Shop"""."Orders v2" SELECT "Order Id", round("Total" * 100) FROM "Orders" WHERE "Order Id" BETWEEN $1 AND $2',
    batch_size => 700) AS j2 \gset
SELECT wait_job(:j1) AS copy, wait_job(:j2) AS transform;
SELECT count(*), count(DISTINCT "Order Id"), sum("Total") FROM orders_copy;
SELECT count(*), sum(cents) FROM "New ""Shop"""."Orders v2";
-- one job per table: one ran after the other
SELECT a.finished_at <= b.started_at OR b.finished_at <= a.started_at AS one_at_a_time
FROM migration_tools.backfill_progress a, migration_tools.backfill_progress b
WHERE a.job_id = :j1 AND b.job_id = :j2;
SELECT relation, kind, rows_done FROM migration_tools.backfill_progress
WHERE job_id IN (:j1, :j2) ORDER BY job_id;
-- delete in batches, logging what was deleted: nothing skipped, nothing twice
CREATE TABLE deleted (id bigint, kind int);
SELECT migration_tools.run_batched('"Orders"',
    'WITH d AS (DELETE FROM "Orders" WHERE "Order Id" >= $1 AND "Order Id" <= $2 AND kind = 0 RETURNING "Order Id", kind)
     INSERT INTO deleted SELECT * FROM d',
    batch_size => 300) AS j \gset
SELECT wait_job(:j);
SELECT count(*), count(DISTINCT id), min(kind), max(kind) FROM deleted;
SELECT count(*) AS left_kind0 FROM "Orders" WHERE kind = 0;
SELECT rows_done, percent FROM migration_tools.backfill_progress WHERE job_id = :j;
-- a delete of every row: the table shrinks under the walk
SELECT migration_tools.run_batched('orders_copy',
    'DELETE FROM orders_copy WHERE "Order Id" BETWEEN $1 AND $2', batch_size => 450) AS j \gset
SELECT wait_job(:j);
SELECT count(*) AS left_rows FROM orders_copy;
SELECT rows_done, percent FROM migration_tools.backfill_progress WHERE job_id = :j;
-- by ctid, on the table without a key
CREATE TABLE nopk_copy (v int, n int);
SELECT migration_tools.run_batched('nopk',
    'INSERT INTO nopk_copy SELECT * FROM nopk WHERE ctid >= $1 AND ctid < $2',
    strategy => 'ctid', batch_size => 200) AS j \gset
SELECT wait_job(:j);
SELECT count(*), count(DISTINCT v) FROM nopk_copy;

--
-- Security: a job runs as the role that queued it, never as the superuser
-- the worker connects as: current_user, session_user and is_superuser
-- inside the set clause say so; privileges are checked at queue time;
-- another role can neither see nor control the job (nor wait for it)
-- unless it is in migration_tools_admin.
--
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_acc4_app;
DROP ROLE IF EXISTS regress_acc4_other;
DROP ROLE IF EXISTS regress_acc4_admin;
RESET client_min_messages;
CREATE ROLE regress_acc4_app;
CREATE ROLE regress_acc4_other;
CREATE ROLE regress_acc4_admin IN ROLE migration_tools_admin;
CREATE TABLE who (id int PRIMARY KEY, cur name, sess name, su text, secret text);
INSERT INTO who (id) SELECT generate_series(1, 300);
GRANT SELECT, UPDATE (cur, sess, su) ON who TO regress_acc4_app;
GRANT SELECT ON who TO regress_acc4_other;
SET ROLE regress_acc4_app;
SELECT migration_tools.backfill('who',
    $$cur = current_user, sess = session_user, su = current_setting('is_superuser')$$,
    batch_size => 100) AS j \gset
SELECT wait_job(:j);
SELECT cur, sess, su, count(*) FROM who GROUP BY 1, 2, 3;
SELECT owner, rows_done FROM migration_tools.backfill_progress WHERE job_id = :j;
-- a column it may not update, a table it may not update: refused at once
SELECT migration_tools.backfill('who', 'secret = cur');
SELECT migration_tools.backfill('nopk', 'n = 1', strategy => 'ctid');
-- the session user cannot be changed from inside a job
SELECT migration_tools.backfill('who',
    $$cur = set_config('session_authorization', 'postgres', true)$$, max_attempts => 1) AS j2 \gset
SELECT wait_job(:j2);
SELECT state, last_error FROM migration_tools.backfill_progress WHERE job_id = :j2;
SELECT count(*) FILTER (WHERE cur <> 'regress_acc4_app') AS changed FROM who;
-- another role: sees nothing, controls nothing
SET ROLE regress_acc4_other;
SELECT count(*) FROM migration_tools.backfill_progress WHERE job_id IN (:j, :j2);
SELECT count(*) FROM migration_tools.backfill_batch_history WHERE job_id IN (:j, :j2);
\set VERBOSITY terse
SELECT migration_tools.retry(:j2);
SELECT migration_tools.cancel(:j2);
SELECT migration_tools.wait(:j2);
SELECT migration_tools.wait(987654321);
\set VERBOSITY default
SELECT migration_tools.backfill('who', 'cur = current_user');
-- an admin sees and controls every job
SET ROLE regress_acc4_admin;
SELECT owner, state FROM migration_tools.backfill_progress WHERE job_id IN (:j, :j2) ORDER BY job_id;
SELECT migration_tools.wait(:j2) AS admin_wait;
RESET ROLE;

--
-- SPEC section 3: lock mode names as a DBA writes them.
--
SELECT m, migration_tools.lock_mode(m)
FROM unnest(ARRAY['ACCESS SHARE', 'AccessShareLock', 'access_share', 'RowShareLock',
                  'row share', 'ROW EXCLUSIVE', 'rowexclusivelock', 'Share Update Exclusive',
                  'SHARE', 'ShareLock', 'share row exclusive', 'EXCLUSIVE', 'ExclusiveLock',
                  'ACCESS EXCLUSIVE', '  access   exclusive  ', 'AccessExclusive',
                  'IN ACCESS EXCLUSIVE MODE', 'share update exclusive mode',
                  'in share mode']) AS m;
SELECT migration_tools.lock_mode('FOR UPDATE');
SELECT migration_tools.lock_mode('');
SELECT migration_tools.lock_mode('SHARE LOCK MODE TABLE');
SELECT * FROM migration_tools.lock_conflicts('acc', 'exclusive locks');
SELECT count(*) FROM migration_tools.lock_conflicts('acc', 'in access exclusive mode');
SELECT count(*) FROM migration_tools.lock_conflicts('acc', NULL);
SELECT count(*) FROM migration_tools.lock_conflicts(NULL, 'share');
-- a relation dropped since its OID was read: a clear error (42P01)
SELECT set_config('acc.oid', 'acc'::regclass::oid::text, false) IS NOT NULL AS oid_kept;
DROP TABLE acc;
DO $$
BEGIN
    PERFORM count(*) FROM migration_tools.lock_conflicts(current_setting('acc.oid')::oid, 'share');
EXCEPTION WHEN undefined_table THEN
    RAISE NOTICE 'dropped relation: % (%)', regexp_replace(SQLERRM, '\d+', 'N'), SQLSTATE;
END $$;
SELECT count(*) FROM migration_tools.lock_conflicts('pg_class', 'access exclusive');

\c :regress_db
DROP DATABASE backfill_control_db WITH (FORCE);
DROP ROLE regress_acc4_app;
DROP ROLE regress_acc4_other;
DROP ROLE regress_acc4_admin;
