--
-- Everything backfill() and run_batched() refuse at queue time, before
-- any job exists: the statement is parse-analyzed as the caller, never run.
--
\set VERBOSITY default
CREATE TABLE items (id int PRIMARY KEY, qty int, note text, doc json, tags int[]);
CREATE TABLE heap_only (v int);
CREATE VIEW items_view AS SELECT * FROM items;
CREATE TABLE pairs (a int, b int, PRIMARY KEY (a, b));

-- the relation
SELECT migration_tools.backfill(NULL, 'qty = 1');
SELECT migration_tools.backfill(4242::regclass, 'qty = 1');
SELECT migration_tools.backfill('items_view', 'qty = 1');
SELECT migration_tools.backfill('heap_only', 'v = 1');
CREATE TEMP TABLE scratch (id int PRIMARY KEY, v int);
SELECT migration_tools.backfill('scratch', 'v = 1');

-- the set clause and the where clause
SELECT migration_tools.backfill('items', NULL);
SELECT migration_tools.backfill('items', 'nosuch = 1');
SELECT migration_tools.backfill('items', 'qty = nosuch');
SELECT migration_tools.backfill('items', 'qty = ');
SELECT migration_tools.backfill('items', 'qty = ''many''');
SELECT migration_tools.backfill('items', 'qty = 1', 'nosuch > 0');
SELECT migration_tools.backfill('items', 'qty = 1', 'qty');
-- text that would widen or escape the batch range is refused
SELECT migration_tools.backfill('items', 'qty = 1', 'true) OR (true');
SELECT migration_tools.backfill('items', 'qty = 1 WHERE true --');
SELECT migration_tools.backfill('items', 'qty = 1 FROM heap_only');
SELECT migration_tools.backfill('items', 'qty = 1; DELETE FROM items');
SELECT migration_tools.backfill('items', 'qty = 1 RETURNING id');

-- the options
SELECT migration_tools.backfill('items', 'qty = 1', batch_size => 0);
SELECT migration_tools.backfill('items', 'qty = 1', batch_size => -5);
SELECT migration_tools.backfill('items', 'qty = 1', batch_size => 100000000);
SELECT migration_tools.backfill('items', 'qty = 1', target_batch_time => '0');
SELECT migration_tools.backfill('items', 'qty = 1', target_batch_time => NULL);
SELECT migration_tools.backfill('items', 'qty = 1', batch_sleep => '-1s');
SELECT migration_tools.backfill('items', 'qty = 1', max_attempts => 0);
SELECT migration_tools.backfill('items', 'qty = 1', strategy => 'random');
SELECT migration_tools.backfill('items', 'qty = 1', run_window => '25:00-01:00');
SELECT migration_tools.backfill('items', 'qty = 1', run_window => 'nights');
SELECT migration_tools.backfill('items', 'qty = 1', run_window => '02:00-02:00');

-- what the ctid strategy cannot apply exactly once
SELECT migration_tools.backfill('items', 'qty = qty + 1', strategy => 'ctid');
SELECT migration_tools.backfill('items', 'qty = random() * 10', strategy => 'ctid');
SELECT migration_tools.backfill('items', 'note = now()::text', strategy => 'ctid');
SELECT migration_tools.backfill('items', 'note = (SELECT max(v)::text FROM heap_only)', strategy => 'ctid');
SELECT migration_tools.backfill('items', 'qty = 2', strategy => 'ctid', guard => false);
CREATE TABLE parted (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
SELECT migration_tools.backfill('parted', 'v = 1', strategy => 'ctid');

-- run_batched
SELECT migration_tools.run_batched('items', NULL);
SELECT migration_tools.run_batched('pairs', 'SELECT $1, $2');
SELECT migration_tools.run_batched('items', 'VACUUM items');
SELECT migration_tools.run_batched('items', 'SELECT 1; SELECT 2');
SELECT migration_tools.run_batched('items', 'SELECT $1 + $3');
SELECT migration_tools.run_batched('items', 'DELETE FROM items WHERE id = $1 AND note = $2');
SELECT migration_tools.run_batched('heap_only', 'SELECT 1');

-- none of these queued anything
SELECT count(*) FROM migration_tools.backfill_progress
WHERE relation::text IN ('items', 'heap_only', 'pairs', 'parted');
-- the SQLSTATE of each refusal, with the message and hint (more cases:
-- a second statement or an open comment in the where clause, an unknown
-- relation, a statement that does not parse)
CREATE FUNCTION err(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE 'SELECT ' || call;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END $$;
SELECT c AS call, err(c) FROM (VALUES
  ($q$migration_tools.backfill('items_view', 'qty = 1')$q$),
  ($q$migration_tools.backfill('heap_only', 'v = 1', strategy => 'key')$q$),
  ($q$migration_tools.backfill('items', 'nosuch = 1')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1; DROP TABLE heap_only')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', where_clause => '1=1; DROP TABLE heap_only')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', where_clause => 'true) OR (true')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', where_clause => 'true /*')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', batch_size => -5)$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', batch_size => 0)$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', strategy => 'bogus')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', target_batch_time => '-1s')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', batch_sleep => '-1s')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', max_attempts => 0)$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', run_window => '25:00-01:00')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', run_window => 'nonsense')$q$),
  ($q$migration_tools.backfill('items', 'qty = 1', run_window => '01:00-01:00')$q$),
  ($q$migration_tools.backfill('items', NULL)$q$),
  ($q$migration_tools.backfill(NULL, 'qty = 1')$q$),
  ($q$migration_tools.backfill('nosuch', 'qty = 1')$q$),
  ($q$migration_tools.backfill('scratch', 'v = 1')$q$),
  ($q$migration_tools.backfill('scratch', 'v = 1', strategy => 'ctid')$q$),
  ($q$migration_tools.run_batched('items', 'DELETE FROM items WHERE id >= $1 AND id < $2; DROP TABLE heap_only')$q$),
  ($q$migration_tools.run_batched('items', 'DELETE FROM items WHERE id >= $1 AND id < $2 AND id < $3')$q$),
  ($q$migration_tools.run_batched('items', 'SELEC 1')$q$)
) v(c);
DROP FUNCTION err(text);
-- and nothing was queued or ran: the table a refused clause would have
-- dropped is there
SELECT count(*) FROM migration_tools.backfill_progress
WHERE relation::text IN ('items', 'heap_only');
SELECT 'heap_only'::regclass;

-- a comment at the end of where_clause cannot comment out the batch range:
-- the job updates the rows of the where clause only, and its progress
-- numbers are sane
CREATE TABLE commented (id bigint PRIMARY KEY, a int);
INSERT INTO commented SELECT g, 0 FROM generate_series(1, 10) g;
SELECT migration_tools.backfill('commented', 'a = 1', where_clause => 'id <= 3 --') AS job \gset
SELECT migration_tools.wait(:job, '60s');
SELECT count(*) FILTER (WHERE a = 1) AS updated, count(*) AS total FROM commented;
SELECT state, rows_done, percent BETWEEN 0 AND 100 AS percent_ok,
       eta IS NULL OR eta >= '0'::interval AS eta_ok, last_error
FROM migration_tools.backfill_progress WHERE job_id = :job;
DROP TABLE commented;
