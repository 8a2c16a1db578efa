--
-- Jobs that backfill() and run_batched() refuse because they could never
-- do what they promise: a key walk that moves its own keys, a statement
-- not confined to its batch, catalogs, empty clauses.
--
\set VERBOSITY default
CREATE TABLE moving (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE moving2 (a int, b int, n int, PRIMARY KEY (a, b));
INSERT INTO moving (id) SELECT g FROM generate_series(1, 10) g;

-- the key strategy cannot assign a primary key column (any of them)
SELECT migration_tools.backfill('moving', 'id = id + 1000, n = n + 1');
SELECT migration_tools.backfill('moving2', 'b = b + 1');
-- the ctid strategy does not walk the key: only its own rules apply
SELECT migration_tools.backfill('moving', 'id = n + 1000', 'n = 0', strategy => 'ctid',
    start_at => now() + interval '1 hour') > 0 AS queued;
SELECT migration_tools.cancel(max(job_id)) FROM migration_tools.backfill_jobs;

-- empty clauses: set_clause and sql are refused, an empty where_clause is none
SELECT migration_tools.backfill('moving', '');
SELECT migration_tools.backfill('moving', E' \n\t');
SELECT migration_tools.run_batched('moving', '   ');
SELECT migration_tools.backfill('moving', 'n = 1', where_clause => ' ',
    start_at => now() + interval '1 hour') AS job \gset
SELECT where_clause IS NULL AS no_where FROM migration_tools.backfill_jobs WHERE job_id = :job;
SELECT migration_tools.cancel(:job);

-- a run_batched() statement must use both batch bounds
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE id >= $1');
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE id <= $2');
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE ctid >= $1', strategy => 'ctid');
SELECT migration_tools.run_batched('moving', 'SELECT 1');
-- under the key strategy both bounds are inclusive: a half-open range
-- would skip a row per batch
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE id >= $1 AND id < $2');
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE id > $1 AND id <= $2');
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE $2 > id AND $1 <= id');
SELECT migration_tools.run_batched('moving',
    'DELETE FROM moving WHERE id IN (SELECT id FROM moving WHERE $1 < id AND id <= $2)');
-- (the ctid strategy's range is half-open: "< $2" is what it wants)
SELECT migration_tools.run_batched('moving', 'DELETE FROM moving WHERE ctid >= $1 AND ctid < $2',
    strategy => 'ctid', start_at => now() + interval '1 hour') AS job \gset
SELECT migration_tools.cancel(:job);
-- in a subquery or a CTE they count
SELECT migration_tools.run_batched('moving',
    'DELETE FROM moving WHERE id IN (SELECT id FROM moving WHERE id BETWEEN $1 AND $2)',
    start_at => now() + interval '1 hour') AS job \gset
SELECT migration_tools.cancel(:job);
SELECT migration_tools.run_batched('moving',
    'WITH r AS (SELECT $1::bigint AS lo, $2::bigint AS hi) DELETE FROM moving USING r WHERE id BETWEEN lo AND hi',
    start_at => now() + interval '1 hour') AS job \gset
SELECT migration_tools.cancel(:job);

-- system catalogs and the extension's own tables are never written
SELECT migration_tools.backfill('pg_class', 'relname = relname');
SELECT migration_tools.backfill('pg_catalog.pg_attribute', 'attname = attname', strategy => 'ctid');
SELECT migration_tools.backfill('migration_tools.backfill_jobs', 'state = state');
SELECT migration_tools.run_batched('migration_tools.migrations',
    'DELETE FROM migration_tools.migrations WHERE ctid >= $1 AND ctid < $2', strategy => 'ctid');

-- nothing was left queued by any of this
SELECT count(*) FROM migration_tools.backfill_jobs WHERE state IN ('queued', 'running');
DROP TABLE moving, moving2;
