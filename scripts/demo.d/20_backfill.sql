-- 2. Batched backfills: a background worker fills a new column of a
-- 200k-row table in short committed batches, while we watch.
\set ECHO queries
\pset footer off

DROP TABLE IF EXISTS demo_invoices;
CREATE TABLE demo_invoices (id bigint PRIMARY KEY, total numeric(12, 2) NOT NULL,
                          total_cents bigint);
INSERT INTO demo_invoices (id, total)
SELECT g, round((random() * 1000)::numeric, 2) FROM generate_series(1, 200000) g;
ANALYZE demo_invoices;

-- Queue the job: batches of 2000 rows with a pause between them, so that
-- the application keeps the upper hand (and we have time to watch).  Leave
-- batch_size out to let it adapt to target_batch_time instead.
SELECT migration_tools.backfill('demo_invoices', 'total_cents = (total * 100)::bigint',
                                where_clause => 'total_cents IS NULL',
                                batch_size => 2000,
                                batch_sleep => '80ms') AS job \gset

-- Progress, a few times (what \watch would show).
SELECT pg_sleep(1);
SELECT job_id, relation, state, rows_done, rows_total, percent, rows_per_second,
       eta, batch_size, batches FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT pg_sleep(2);
SELECT job_id, state, rows_done, percent, batch_size, batches, throttled_by
FROM migration_tools.backfill_progress WHERE job_id = :job;
-- The last few batches.
SELECT batch_no, rows, round(duration_ms::numeric, 1) AS ms, batch_size
FROM migration_tools.backfill_batch_history WHERE job_id = :job
ORDER BY batch_no DESC LIMIT 5;

-- Block until it ends.
SELECT migration_tools.wait(:job);
SELECT state, rows_done, percent, batches, finished_at - started_at AS took
FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT count(*) FILTER (WHERE total_cents = total * 100) AS filled, count(*) FROM demo_invoices;
