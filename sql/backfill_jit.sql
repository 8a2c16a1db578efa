--
-- The worker runs a job's statements without JIT compilation: a batch is
-- planned afresh for its bounds and lasts about target_batch_time, so JIT
-- would compile it again for every batch, and loading LLVM costs the
-- worker tens of megabytes.  The set clause records the setting in force
-- while the batch runs.
--
-- JIT is on (its default) in the database, and any plan would be
-- compiled: only the worker's own setting keeps it off.
--
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET jit = on;
ALTER DATABASE :"db" SET jit_above_cost = 0;

CREATE TABLE jit_rows (id int PRIMARY KEY, by_key text, by_ctid text,
                       by_sql text);
INSERT INTO jit_rows (id) SELECT g FROM generate_series(1, 300) g;

-- backfill, key strategy
SELECT migration_tools.backfill('jit_rows', 'by_key = current_setting(''jit'')',
                                batch_size => 100) AS job \gset
SELECT migration_tools.wait(:job);
-- run_batched, key strategy
SELECT migration_tools.run_batched('jit_rows',
    'UPDATE jit_rows SET by_sql = current_setting(''jit'') WHERE id BETWEEN $1 AND $2',
    batch_size => 100) AS job \gset
SELECT migration_tools.wait(:job);
-- run_batched, ctid strategy (backfill() refuses a stable set clause there)
SELECT migration_tools.run_batched('jit_rows',
    'UPDATE jit_rows SET by_ctid = current_setting(''jit'') WHERE ctid >= $1 AND ctid < $2',
    batch_size => 100, strategy => 'ctid') AS job \gset
SELECT migration_tools.wait(:job);

SELECT by_key, by_ctid, by_sql, count(*) FROM jit_rows
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- the session that queued the jobs keeps its own setting
SELECT current_setting('jit') AS session_jit;

ALTER DATABASE :"db" RESET jit;
ALTER DATABASE :"db" RESET jit_above_cost;
DROP TABLE jit_rows;
