--
-- The API surface: the SQL surface of SPEC.md, as a DBA meets it from psql.
-- Names, argument names and defaults, view and table columns, GUC
-- defaults, then a short end-to-end pass. Runs in a database of its own
-- so that its migrations and jobs do not show in the other tests.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE api_surface_db;
\c api_surface_db
-- the extension lives in schema migration_tools only: another schema is
-- refused, and nothing is left behind
CREATE SCHEMA api_other;
CREATE EXTENSION migration_tools SCHEMA api_other;
SELECT count(*) FROM pg_proc WHERE pronamespace = 'api_other'::regnamespace;
DROP SCHEMA api_other;
SET client_min_messages = warning;
CREATE EXTENSION migration_tools;
RESET client_min_messages;

-- argument defaults below are shown in the ISO interval style
SET IntervalStyle = postgres;

-- Every SPEC function exists with the SPEC arguments first, in order, with
-- the SPEC defaults (more arguments after them are allowed).
SELECT f.name,
       starts_with(pg_get_function_arguments(p.oid), f.args) AS args_ok,
       pg_get_function_result(p.oid) = f.result AS result_ok
FROM (VALUES
  ('apply', 'version text, up_sql text, down_sql text DEFAULT NULL::text, description text DEFAULT NULL::text', 'text'),
  ('baseline', 'version text, description text DEFAULT NULL::text', 'text'),
  ('rollback', 'version text', 'text'),
  ('rollback_to', 'version text', NULL),
  ('verify_reversible', 'up_sql text, down_sql text', 'boolean'),
  ('schema_drift', '', NULL),
  ('import_history', 'source text', NULL),
  ('backfill', 'relation regclass, set_clause text, where_clause text DEFAULT NULL::text', 'bigint'),
  ('run_batched', 'relation regclass, sql text', 'bigint'),
  ('pause', 'job bigint', NULL),
  ('resume', 'job bigint', NULL),
  ('cancel', 'job bigint', NULL),
  ('retry', 'job bigint', NULL),
  ('wait', 'job bigint, timeout interval DEFAULT NULL::interval', 'text'),
  ('lock_tree', '', NULL),
  ('lock_conflicts', 'relation regclass, mode text', NULL),
  ('lint', 'sql text, in_transaction boolean DEFAULT false', NULL)
) AS f(name, args, result)
LEFT JOIN pg_proc p
  ON p.proname = f.name
 AND p.pronamespace = 'migration_tools'::regnamespace
ORDER BY f.name;

-- apply() takes an allow text[]; backfill() and run_batched() take the
-- further SPEC arguments by name.
SELECT f.name, f.arg,
       strpos(pg_get_function_arguments(p.oid), f.arg) > 0 AS present
FROM (VALUES
  ('apply', 'allow text[]'),
  ('backfill', 'batch_size integer DEFAULT NULL'),
  ('backfill', $$target_batch_time interval DEFAULT '00:00:00.2'::interval$$),
  ('backfill', 'batch_sleep interval'),
  ('backfill', 'start_at timestamp with time zone'),
  ('backfill', 'max_attempts integer'),
  ('backfill', 'strategy text'),
  ('backfill', 'run_window text'),
  ('run_batched', 'batch_size integer DEFAULT NULL'),
  ('run_batched', 'strategy text'),
  ('run_batched', 'run_window text')
) AS f(name, arg)
JOIN pg_proc p
  ON p.proname = f.name
 AND p.pronamespace = 'migration_tools'::regnamespace
ORDER BY 1, 2;

-- lint() returns at least these columns, in this order.
SELECT (proargnames[3:7] = '{statement,rule,severity,message,hint}'
        AND proargmodes[3:7] IN ('{o,o,o,o,o}', '{t,t,t,t,t}')
        AND proretset) AS lint_columns_ok
FROM pg_proc WHERE oid = 'migration_tools.lint(text,boolean)'::regprocedure;

-- Every SPEC column of the SPEC tables and views (a row here is missing).
SELECT c.rel, c.col
FROM (VALUES
  ('migrations', 'version'), ('migrations', 'description'),
  ('migrations', 'checksum'), ('migrations', 'up_sql'),
  ('migrations', 'down_sql'), ('migrations', 'state'),
  ('migrations', 'applied_by'), ('migrations', 'started_at'),
  ('migrations', 'finished_at'), ('migrations', 'execution_time'),
  ('migrations', 'attempts'), ('migrations', 'lock_wait_time'),
  ('migrations', 'error'),
  ('status', 'version'), ('status', 'state'), ('status', 'execution_time'),
  ('status', 'checksum_ok'),
  ('ddl_log', 'command_tag'), ('ddl_log', 'object_identity'),
  ('ddl_log', 'current_user_name'), ('ddl_log', 'logged_at'),
  ('ddl_log', 'migration_version'),
  ('backfill_progress', 'job_id'), ('backfill_progress', 'relation'),
  ('backfill_progress', 'state'), ('backfill_progress', 'rows_done'),
  ('backfill_progress', 'rows_total'), ('backfill_progress', 'percent'),
  ('backfill_progress', 'rows_per_second'), ('backfill_progress', 'eta'),
  ('backfill_progress', 'batch_size'), ('backfill_progress', 'batches'),
  ('backfill_progress', 'last_error'), ('backfill_progress', 'worker_pid'),
  ('backfill_progress', 'started_at'), ('backfill_progress', 'finished_at'),
  ('lock_waits', 'waiting_pid'), ('lock_waits', 'waiting_query'),
  ('lock_waits', 'waiting_role'), ('lock_waits', 'wait_started'),
  ('lock_waits', 'wait_duration'), ('lock_waits', 'locktype'),
  ('lock_waits', 'mode'), ('lock_waits', 'relation'),
  ('lock_waits', 'blocking_pid'), ('lock_waits', 'blocking_query'),
  ('lock_waits', 'blocking_state'), ('lock_waits', 'blocking_xact_start'),
  ('lock_waits', 'blocking_mode'), ('lock_waits', 'depth'),
  ('lock_waits', 'root_blocking_pid')
) AS c(rel, col)
LEFT JOIN information_schema.columns i
  ON i.table_schema = 'migration_tools' AND i.table_name = c.rel
 AND i.column_name = c.col
WHERE i.column_name IS NULL;

-- The SPEC types of the migrations table and its primary key.
SELECT column_name, data_type
FROM information_schema.columns
WHERE table_schema = 'migration_tools' AND table_name = 'migrations'
  AND column_name IN ('version', 'applied_by', 'execution_time', 'attempts',
                      'lock_wait_time', 'error')
ORDER BY column_name;
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'migration_tools.migrations'::regclass AND contype = 'p';
-- migrations is dumped by pg_dump
SELECT 'migration_tools.migrations'::regclass = ANY (extconfig) AS dumped
FROM pg_extension WHERE extname = 'migration_tools';

-- The SPEC states are the allowed ones (a row here is missing).
SELECT c.rel, c.state
FROM (VALUES
  ('migrations', 'running'), ('migrations', 'applied'), ('migrations', 'failed'),
  ('migrations', 'rolled_back'), ('migrations', 'scheduled'),
  ('backfill_jobs', 'queued'), ('backfill_jobs', 'running'),
  ('backfill_jobs', 'paused'), ('backfill_jobs', 'completed'),
  ('backfill_jobs', 'failed'), ('backfill_jobs', 'cancelled')
) AS c(rel, state)
WHERE NOT EXISTS (
    SELECT FROM pg_constraint k
    WHERE k.conrelid = ('migration_tools.' || c.rel)::regclass AND k.contype = 'c'
      AND pg_get_constraintdef(k.oid) LIKE '%(state = ANY%'
      AND strpos(pg_get_constraintdef(k.oid), quote_literal(c.state)) > 0);

-- Every SPEC lint rule id is known to the linter (a row here is missing).
SELECT r AS missing_rule
FROM unnest('{create-index-non-concurrently,drop-index-non-concurrently,
  add-column-not-null-no-default,add-column-volatile-default,
  add-foreign-key-validated,add-check-validated,set-not-null,change-column-type,
  rename-column,rename-table,drop-column,drop-table,add-unique-constraint,
  add-primary-key,vacuum-full,cluster,refresh-matview-non-concurrently,lock-table,
  unbatched-update,unbatched-delete,truncate,concurrently-in-transaction,
  reindex-non-concurrently,attach-partition-unvalidated,add-stored-generated-column,
  detach-partition-non-concurrently,add-exclusion-constraint,add-serial-column,
  domain-check-constraint,uncommitted-transaction,drop-not-null,json-column,
  prefer-bigint,prefer-identity,prefer-text,prefer-timestamptz,
  require-lock-timeout}'::text[]) AS r
WHERE r NOT IN (SELECT rule FROM migration_tools.lint_rules());

-- GUCs and their defaults.
SELECT name, boot_val, unit
FROM pg_settings
WHERE name IN ('migration_tools.lock_timeout', 'migration_tools.max_lock_timeout',
               'migration_tools.lock_retries', 'migration_tools.lint_level',
               'migration_tools.max_workers', 'migration_tools.lint_large_rows',
               'migration_tools.guard')
ORDER BY name;
SELECT current_setting('migration_tools.lock_timeout') AS lock_timeout,
       current_setting('migration_tools.max_lock_timeout') AS max_lock_timeout;
SELECT count(*) AS present FROM pg_settings
WHERE name IN ('migration_tools.max_preflight_wait', 'migration_tools.max_blocker_age');
SELECT enumvals FROM pg_settings WHERE name = 'migration_tools.lint_level';

--
-- End to end.
--
CREATE TABLE acc_t (id int PRIMARY KEY, v int);
INSERT INTO acc_t SELECT g, 0 FROM generate_series(1, 2000) g;
ANALYZE acc_t;

-- apply with its DEFAULT arguments, then by name
SELECT migration_tools.apply('001', 'ALTER TABLE acc_t ADD COLUMN a text');
SELECT migration_tools.apply(version => '002',
                             up_sql => 'ALTER TABLE acc_t ADD COLUMN b text',
                             down_sql => 'ALTER TABLE acc_t DROP COLUMN b',
                             description => 'add b');
SELECT migration_tools.apply('003', 'ALTER TABLE acc_t ADD COLUMN c text',
                             'ALTER TABLE acc_t DROP COLUMN c');
-- re-apply with the same checksum: a NOTICE, nothing runs
SELECT migration_tools.apply('002', 'ALTER TABLE acc_t ADD COLUMN b text');
-- another checksum: an ERROR naming both
SELECT migration_tools.apply('002', 'ALTER TABLE acc_t ADD COLUMN b2 text');
SELECT checksum = encode(sha256(convert_to(up_sql, 'UTF8')), 'hex') AS sha256
FROM migration_tools.migrations WHERE version = '002';
-- a failing script leaves a failed row
SELECT migration_tools.apply('004', 'ALTER TABLE acc_nosuch ADD COLUMN x int');
SELECT version, description, state, attempts, checksum_ok,
       execution_time IS NOT NULL AS timed
FROM migration_tools.status;
SELECT version, state, applied_by = current_user AS by_me, error
FROM migration_tools.migrations ORDER BY version;

-- the linter refuses, allow accepts
SELECT migration_tools.apply('005', 'CREATE INDEX acc_t_v ON acc_t (v)');
SELECT migration_tools.apply('005', 'CREATE INDEX acc_t_v ON acc_t (v)',
                             'DROP INDEX acc_t_v',
                             allow => '{create-index-non-concurrently}');

-- rollback, rollback_to
SELECT migration_tools.rollback('001');
SELECT migration_tools.rollback('005');
SELECT to_regclass('acc_t_v') AS index_after_rollback;
SELECT migration_tools.rollback_to('001');
SELECT version, state FROM migration_tools.status;
SELECT column_name FROM information_schema.columns
WHERE table_name = 'acc_t' ORDER BY ordinal_position;
-- a rolled back version can be applied again
SELECT migration_tools.apply('003', 'ALTER TABLE acc_t ADD COLUMN c text',
                             'ALTER TABLE acc_t DROP COLUMN c');
SELECT version, state FROM migration_tools.status LIMIT 1;

-- baseline
SELECT migration_tools.baseline('000', 'starting point');
SELECT version, state FROM migration_tools.migrations WHERE version = '000';

-- verify_reversible
SELECT migration_tools.verify_reversible(
    up_sql => 'ALTER TABLE acc_t ADD COLUMN n text',
    down_sql => 'ALTER TABLE acc_t DROP COLUMN n');
SELECT migration_tools.verify_reversible(
    'ALTER TABLE acc_t ADD COLUMN n text; CREATE INDEX acc_t_n ON acc_t (n)',
    'DROP INDEX acc_t_n');

-- schema_drift: a table created outside any migration
SELECT count(*) AS drift_before FROM migration_tools.schema_drift();
CREATE TABLE acc_outside (x int);
SELECT object_type, object, change FROM migration_tools.schema_drift()
ORDER BY 1, 2;

-- ddl_log: DDL inside apply carries the version
SELECT command_tag, object_identity, migration_version
FROM migration_tools.ddl_log
WHERE migration_version IS NOT NULL AND object_type = 'table'
ORDER BY id LIMIT 2;

-- import_history('prisma')
CREATE TABLE _prisma_migrations (
    id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
    finished_at timestamptz, migration_name varchar(255) NOT NULL,
    logs text, rolled_back_at timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(),
    applied_steps_count int NOT NULL DEFAULT 0);
INSERT INTO _prisma_migrations VALUES
    ('a', 'abc', now(), '20240101000000_init', NULL, NULL, now(), 1);
SELECT migration_tools.import_history('prisma');
SELECT version, state FROM migration_tools.migrations
WHERE version = '20240101000000_init';

-- lint of a bad script
SELECT statement, rule, severity, hint IS NOT NULL AS has_hint
FROM migration_tools.lint($$
    ALTER TABLE acc_t ADD COLUMN d int NOT NULL;
    CREATE INDEX ON acc_t (v);
    BEGIN;
    CREATE TABLE acc_j (a json);
$$)
ORDER BY statement, rule;
SELECT * FROM migration_tools.lint('ALTER TABLE acc_t ADD COLUMN');

-- a small backfill, waited for
SELECT migration_tools.backfill(relation => 'acc_t', set_clause => 'v = id * 2',
                                strategy => 'ctid') AS job \gset
SELECT migration_tools.wait(job => :job, timeout => '60s');
SELECT count(*) FILTER (WHERE v = id * 2) AS done FROM acc_t;
SELECT relation, state, rows_done, percent, last_error
FROM migration_tools.backfill_progress WHERE job_id = :job;
-- key strategy, non-idempotent set clause, run exactly once
SELECT migration_tools.backfill('acc_t', 'v = v + 1', 'id <= 500',
                                batch_size => 100) AS job \gset
SELECT migration_tools.wait(:job);
SELECT count(*) FILTER (WHERE v = id * 2 + 1) AS once FROM acc_t;
-- run_batched with $1 and $2
CREATE TABLE acc_copy (id int, v int);
SELECT migration_tools.run_batched('acc_t',
    'INSERT INTO acc_copy SELECT id, v FROM acc_t WHERE id BETWEEN $1 AND $2') AS job \gset
SELECT migration_tools.wait(:job);
SELECT count(*), count(DISTINCT id) FROM acc_copy;
-- control: a job due in an hour is paused, resumed, cancelled
SELECT migration_tools.backfill('acc_t', 'v = 0',
                                start_at => now() + interval '1 hour') AS job \gset
SELECT migration_tools.pause(:job);
SELECT migration_tools.resume(:job);
SELECT migration_tools.cancel(:job);
SELECT migration_tools.wait(:job);
SELECT state FROM migration_tools.backfill_progress WHERE job_id = :job;

-- nothing holds a lock on acc_t
SELECT count(*) FROM migration_tools.lock_conflicts('acc_t', 'ACCESS EXCLUSIVE');
SELECT count(*) FROM migration_tools.lock_tree();
SELECT count(*) FROM migration_tools.lock_waits
WHERE relation = 'acc_t'::regclass;

\c :regress_db
DROP DATABASE api_surface_db WITH (FORCE);
