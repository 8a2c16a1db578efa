--
-- Batched backfills: queue, run to the end, check the table and the
-- progress view; control functions; the checkpoint; failures.
--
-- Every job here is small and waited for with wait(), so the output does
-- not depend on timing.
--
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0,
                       label text, region int);
INSERT INTO accounts (id, region)
SELECT g * 3, g % 4 FROM generate_series(1, 3000) g;   -- sparse ids

-- A non-idempotent set clause under the key strategy: every row is
-- updated exactly once.
SELECT migration_tools.backfill('accounts', 'balance = balance + 1',
                                batch_size => 500) AS job \gset
SELECT migration_tools.wait(:job);
SELECT count(*), sum(balance), min(balance), max(balance) FROM accounts;
SELECT relation, state, rows_done, rows_total, percent, batch_size, batches,
       last_error, worker_pid, started_at <= finished_at AS timed,
       rows_per_second > 0 AS speed, eta, throttled_by, strategy, phase
FROM migration_tools.backfill_progress WHERE job_id = :job;
-- the batch history has one row per batch
SELECT count(*), sum(rows), min(batch_size), max(batch_size)
FROM migration_tools.backfill_batch_history WHERE job_id = :job;

-- Adaptive batch size (batch_size NULL), with a where_clause.
SELECT migration_tools.backfill('accounts', 'label = ''r'' || region',
                                'region <> 0') AS job \gset
SELECT migration_tools.wait(:job);
SELECT label, count(*) FROM accounts GROUP BY label ORDER BY label;
SELECT state, rows_done, batch_size BETWEEN 1 AND 100000 AS bounded
FROM migration_tools.backfill_progress WHERE job_id = :job;

-- The guard: rows already holding the value are not updated again.
SELECT migration_tools.backfill('accounts', 'label = ''r'' || region') AS job \gset
SELECT migration_tools.wait(:job);
SELECT state, rows_done FROM migration_tools.backfill_progress WHERE job_id = :job;

-- A composite primary key walks as a row comparison.
CREATE TABLE readings (sensor int, at int, value int NOT NULL DEFAULT 0,
                       PRIMARY KEY (sensor, at));
INSERT INTO readings SELECT g % 5, g, 0 FROM generate_series(1, 2000) g;
SELECT migration_tools.backfill('readings', 'value = value + 1',
                                batch_size => 77) AS job \gset
SELECT migration_tools.wait(:job);
SELECT count(*), sum(value), max(value) FROM readings;
SELECT state, rows_done, batches FROM migration_tools.backfill_progress WHERE job_id = :job;

-- The ctid strategy needs no index; a final sweep follows the main pass.
CREATE TABLE events (kind int, tag text);
INSERT INTO events SELECT g % 3, NULL FROM generate_series(1, 5000) g;
SELECT migration_tools.backfill('events', 'tag = ''k'' || kind::text',
                                strategy => 'ctid', batch_size => 700) AS job \gset
SELECT migration_tools.wait(:job);
SELECT count(*) FILTER (WHERE tag = 'k' || kind::text) AS done, count(*) FROM events;
SELECT state, rows_done, phase FROM migration_tools.backfill_progress WHERE job_id = :job;

-- run_batched, key strategy: $1 and $2 are the first and last key of
-- the batch, both included.
CREATE TABLE accounts_copy (id int, balance int);
SELECT migration_tools.run_batched('accounts',
    'INSERT INTO accounts_copy SELECT id, balance FROM accounts WHERE id BETWEEN $1 AND $2',
    batch_size => 1000) AS job \gset
SELECT migration_tools.wait(:job);
SELECT count(*), count(DISTINCT id) FROM accounts_copy;
SELECT state, rows_done, batches FROM migration_tools.backfill_progress WHERE job_id = :job;

-- run_batched, ctid strategy: $1 included, $2 excluded.
SELECT migration_tools.run_batched('events',
    'DELETE FROM events WHERE ctid >= $1 AND ctid < $2 AND kind = 0',
    strategy => 'ctid') AS job \gset
SELECT migration_tools.wait(:job);
SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind;

-- Control.  A job that starts in an hour stays queued meanwhile.
SELECT migration_tools.backfill('accounts', 'balance = 0',
                                start_at => now() + interval '1 hour') AS job \gset
SELECT state, next_due IS NULL AS no_due FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT migration_tools.wait(:job, '50ms');   -- on timeout: the current state
SELECT migration_tools.pause(:job);
SELECT migration_tools.pause(:job);          -- already paused: no change
SELECT migration_tools.resume(:job);
SELECT migration_tools.cancel(:job);
SELECT migration_tools.wait(:job);           -- ended: returns at once
SELECT migration_tools.resume(:job);         -- only a paused job resumes
SELECT migration_tools.retry(:job);
SELECT migration_tools.retry(:job);          -- already queued: nothing to do
SELECT migration_tools.cancel(:job);
SELECT sum(balance) FROM accounts;           -- untouched

-- A job queued in the current transaction cannot be waited for.
BEGIN;
SELECT migration_tools.backfill('accounts', 'balance = 0',
                                start_at => now() + interval '1 hour') AS job \gset
SELECT migration_tools.wait(:job);
ROLLBACK;

-- Unknown jobs.
SELECT migration_tools.pause(0);
SELECT migration_tools.resume(0);
SELECT migration_tools.cancel(0);
SELECT migration_tools.retry(0);
SELECT migration_tools.wait(0);

-- A failing batch is retried up to max_attempts, then the job fails with
-- the error visible; retry() goes on from the checkpoint.
CREATE TABLE ratios (id int PRIMARY KEY, d int, r int);
INSERT INTO ratios SELECT g, CASE WHEN g = 150 THEN 0 ELSE 1 END FROM generate_series(1, 300) g;
SELECT migration_tools.backfill('ratios', 'r = 100 / d', batch_size => 100,
                                max_attempts => 2) AS job \gset
SELECT migration_tools.wait(:job);
SELECT state, rows_done, attempts, last_error, finished_at IS NOT NULL AS finished
FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT count(r) FROM ratios;                 -- the first batch stays done
UPDATE ratios SET d = 2 WHERE id = 150;
SELECT migration_tools.retry(:job);
SELECT migration_tools.wait(:job);
SELECT state, rows_done, attempts, last_error FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT count(r), sum(r) FROM ratios;

-- A job whose table is dropped fails with a clear error.
CREATE TABLE doomed (id int PRIMARY KEY, v int);
INSERT INTO doomed SELECT g, 0 FROM generate_series(1, 10) g;
BEGIN;   -- queued and paused at once: the worker never sees it queued
SELECT migration_tools.backfill('doomed', 'v = 1') AS job \gset
SELECT migration_tools.pause(:job);
COMMIT;
DROP TABLE doomed;
SELECT migration_tools.resume(:job);
SELECT migration_tools.wait(:job);
SELECT state, last_error FROM migration_tools.backfill_progress WHERE job_id = :job;

-- Outside its run window a job waits in the queue, with the reason shown
-- and the time the window opens.
SELECT to_char(now() + interval '2 hours', 'HH24:MI') || '-' ||
       to_char(now() + interval '3 hours', 'HH24:MI') AS closed_window \gset
SELECT migration_tools.backfill('accounts', 'balance = 0',
                                run_window => :'closed_window') AS job \gset
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN EXISTS (SELECT FROM migration_tools.backfill_progress
                          WHERE throttled_by IS NOT NULL AND state = 'queued');
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT state, throttled_by, next_due > now() + interval '1 hour' AS due_later, rows_done
FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT migration_tools.cancel(:job);

-- A partitioned table walks the parent's primary key across partitions.
CREATE TABLE measures (id int PRIMARY KEY, v int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM (0) TO (1000);
CREATE TABLE measures_2 PARTITION OF measures FOR VALUES FROM (1000) TO (3000);
INSERT INTO measures SELECT g FROM generate_series(1, 2999) g;
ANALYZE measures;
SELECT migration_tools.backfill('measures', 'v = v + 1', batch_size => 400) AS job \gset
SELECT migration_tools.wait(:job);
SELECT state, rows_done, rows_total, batches FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT count(*), sum(v), max(v) FROM measures;

-- The settings of the backfill subsystem and their defaults.
SELECT name, setting, unit, context FROM pg_settings
WHERE name IN ('migration_tools.max_batch_size', 'migration_tools.initial_batch_size',
               'migration_tools.batch_lock_timeout', 'migration_tools.batch_timeout_factor',
               'migration_tools.max_replication_lag', 'migration_tools.max_dead_tuples_ratio',
               'migration_tools.min_dead_tuples', 'migration_tools.throttle_on_autovacuum',
               'migration_tools.throttle_on_lock_waiters', 'migration_tools.throttle_sleep',
               'migration_tools.max_throttle_wait',
               'migration_tools.batch_history_retention', 'migration_tools.max_sweep_passes')
ORDER BY name;
