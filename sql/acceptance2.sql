--
-- Acceptance 2: what a demanding DBA checks beyond the SQL surface that
-- acceptance.sql pins.  Every SPEC lint rule on its canonical bad statement
-- and NOT on the safe alternative; the traps SPEC names (checked against
-- what the server really does: relfilenode changes and sequential scans);
-- scripts that drop and re-create tables; weird input; bad arguments to
-- backfill() and run_batched() with their error codes.  Runs in a database
-- of its own.
--
SELECT current_database() AS regress_db \gset
CREATE DATABASE acceptance2_db;
\c acceptance2_db

-- the extension lives in schema migration_tools only: another schema is
-- refused, and nothing is left behind
CREATE SCHEMA acc2_other;
CREATE EXTENSION migration_tools SCHEMA acc2_other;
SELECT count(*) FROM pg_proc WHERE pronamespace = 'acc2_other'::regnamespace;
SET client_min_messages = warning;
CREATE EXTENSION migration_tools;
RESET client_min_messages;
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'migration_tools';

-- tables with rows and statistics (lint_large_rows is 10000)
CREATE TABLE acc2_big (id int PRIMARY KEY, v varchar(10), n int, t text,
                       j json, ts timestamp);
INSERT INTO acc2_big SELECT g, 'x', g, 'y', '{}', now() FROM generate_series(1, 20000) g;
CREATE TABLE acc2_small (id int PRIMARY KEY, big_id int);
CREATE TABLE acc2_parent (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE acc2_p1 (id int, k int);
INSERT INTO acc2_p1 SELECT g, 5 FROM generate_series(1, 20000) g;
CREATE TABLE acc2_p2 PARTITION OF acc2_parent FOR VALUES FROM (100) TO (200);
CREATE MATERIALIZED VIEW acc2_mv AS SELECT 1 AS x;
ANALYZE acc2_big, acc2_small, acc2_p1;
-- never analyzed (pg_class knows nothing of its rows yet), and analyzed
-- while empty then filled: the linter goes by their size now
CREATE TABLE acc2_fresh (id bigint PRIMARY KEY, n int);
INSERT INTO acc2_fresh SELECT g, g FROM generate_series(1, 50000) g;
CREATE TABLE acc2_grown (id bigint PRIMARY KEY, n int);
ANALYZE acc2_grown;
INSERT INTO acc2_grown SELECT g, g FROM generate_series(1, 50000) g;

-- the rule ids of a script, one string: "statement:rule/severity ..."
CREATE FUNCTION rules(s text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(statement || ':' || rule || '/' || severity, ' '
                             ORDER BY statement, rule COLLATE "C"), '-')
  FROM migration_tools.lint(s)
  WHERE rule <> 'require-lock-timeout'
$$;

-- What the server really does with a statement: REWRITE (new relfilenode),
-- SCAN (a sequential scan of the table), or none.  Run and rolled back.
CREATE FUNCTION effect(s text, rel regclass DEFAULT 'acc2_big') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  fn0 oid; fn1 oid; sc0 bigint; sc1 bigint; res text;
BEGIN
  SELECT relfilenode INTO fn0 FROM pg_class WHERE oid = rel;
  SELECT coalesce(seq_scan, 0) INTO sc0 FROM pg_stat_xact_user_tables WHERE relid = rel;
  BEGIN
    EXECUTE s;
    SELECT relfilenode INTO fn1 FROM pg_class WHERE oid = rel;
    SELECT coalesce(seq_scan, 0) INTO sc1 FROM pg_stat_xact_user_tables WHERE relid = rel;
    res := CASE WHEN fn0 <> fn1 THEN 'REWRITE'
                WHEN sc1 > coalesce(sc0, 0) THEN 'SCAN' ELSE 'none' END;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
  RETURN res;
END $$;

-- 1. Every SPEC rule id fires on its canonical bad statement ...
SELECT s AS bad, rules(s) FROM (VALUES
  ('CREATE INDEX acc2_i ON acc2_big (n)'),
  ('DROP INDEX acc2_big_pkey'),
  ('ALTER TABLE acc2_big ADD COLUMN x int NOT NULL'),
  ('ALTER TABLE acc2_big ADD COLUMN x float8 DEFAULT random()'),
  ('ALTER TABLE acc2_small ADD CONSTRAINT f FOREIGN KEY (big_id) REFERENCES acc2_big (id)'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT c CHECK (n > 0)'),
  ('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT nn CHECK (n IS NOT NULL) NOT VALID;
    ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT nn CHECK (n > 0) NOT VALID;
    ALTER TABLE acc2_big VALIDATE CONSTRAINT nn; ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ALTER COLUMN n TYPE bigint'),
  ('ALTER TABLE acc2_big RENAME COLUMN n TO m'),
  ('ALTER TABLE acc2_big RENAME TO acc2_bigger'),
  ('ALTER TABLE acc2_big DROP COLUMN n'),
  ('DROP TABLE acc2_big'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT u UNIQUE (n)'),
  ('ALTER TABLE acc2_small ADD PRIMARY KEY (big_id)'),
  ('VACUUM FULL acc2_big'),
  ('CLUSTER acc2_big USING acc2_big_pkey'),
  ('REFRESH MATERIALIZED VIEW acc2_mv'),
  ('LOCK TABLE acc2_big'),
  ('UPDATE acc2_big SET n = n + 1'),
  ('UPDATE acc2_big SET n = n + 1 WHERE id > 0'),
  ('UPDATE acc2_fresh SET n = n + 1'),
  ('DELETE FROM acc2_grown'),
  ('UPDATE acc2_big SET n = n + 1 WHERE id BETWEEN -10 AND 15000'),
  ('DELETE FROM acc2_big'),
  ('TRUNCATE acc2_big'),
  ('BEGIN; CREATE INDEX CONCURRENTLY acc2_i ON acc2_big (n); COMMIT;'),
  ('REINDEX TABLE acc2_big'),
  ('CREATE INDEX CONCURRENTLY ON acc2_parent (k)'),
  ('ALTER TABLE acc2_parent ATTACH PARTITION acc2_p1 FOR VALUES FROM (0) TO (100)'),
  ('ALTER TABLE acc2_big ADD COLUMN x int GENERATED ALWAYS AS (n * 2) STORED'),
  ('ALTER TABLE acc2_parent DETACH PARTITION acc2_p2'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT ex EXCLUDE USING btree (n WITH =)'),
  ('ALTER TABLE acc2_big ADD COLUMN x bigint GENERATED ALWAYS AS IDENTITY'),
  ('BEGIN; ALTER TABLE acc2_big ADD COLUMN z int;'),
  ('ALTER TABLE acc2_big ALTER COLUMN n DROP NOT NULL'),
  ('CREATE TABLE acc2_n (id bigint PRIMARY KEY, j json)'),
  ('CREATE TABLE acc2_n (id int PRIMARY KEY)'),
  ('CREATE TABLE acc2_n (id bigserial PRIMARY KEY)'),
  ('CREATE TABLE acc2_n (id bigint PRIMARY KEY, v varchar(20))'),
  ('CREATE TABLE acc2_n (id bigint PRIMARY KEY, ts timestamp)')
) v(s);

-- ... and not on the safe alternative
SELECT s AS safe, rules(s) FROM (VALUES
  ('CREATE INDEX CONCURRENTLY acc2_i ON acc2_big (n)'),
  ('DROP INDEX CONCURRENTLY acc2_big_pkey'),
  ('ALTER TABLE acc2_big ADD COLUMN x int NOT NULL DEFAULT 0'),
  ('ALTER TABLE acc2_big ADD COLUMN x int DEFAULT 0'),
  ('ALTER TABLE acc2_big ADD COLUMN x timestamptz DEFAULT now()'),
  ('ALTER TABLE acc2_big ADD COLUMN x text DEFAULT ''a'' || ''b'''),
  ('ALTER TABLE acc2_small ADD CONSTRAINT f FOREIGN KEY (big_id) REFERENCES acc2_big (id) NOT VALID'),
  ('ALTER TABLE acc2_small VALIDATE CONSTRAINT f'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT c CHECK (n > 0) NOT VALID'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT nn CHECK (n IS NOT NULL) NOT VALID;
    ALTER TABLE acc2_big VALIDATE CONSTRAINT nn;
    ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT nn CHECK (n IS NOT NULL AND n > 0) NOT VALID;
    ALTER TABLE acc2_big VALIDATE CONSTRAINT nn; ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ADD CHECK (n IS NOT NULL) NOT VALID;
    ALTER TABLE acc2_big VALIDATE CONSTRAINT acc2_big_n_check; ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE varchar(20)'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE text'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE varchar'),
  ('ALTER TABLE acc2_big ALTER COLUMN t TYPE varchar'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE varchar(20) USING v::varchar(20)'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT u UNIQUE USING INDEX acc2_i'),
  ('VACUUM acc2_big'),
  ('REFRESH MATERIALIZED VIEW CONCURRENTLY acc2_mv'),
  ('UPDATE acc2_big SET n = n + 1 WHERE id = 5'),
  ('DELETE FROM acc2_big WHERE id < 100'),
  ('DELETE FROM acc2_big WHERE id BETWEEN 1 AND 500'),
  ('UPDATE acc2_fresh SET n = n + 1 WHERE id = 7'),
  ('UPDATE acc2_big SET n = n + 1 WHERE 100 >= id'),
  ('CREATE INDEX CONCURRENTLY acc2_i ON acc2_big (n)'),
  ('REINDEX TABLE CONCURRENTLY acc2_big'),
  ('ALTER TABLE acc2_p1 ADD CONSTRAINT kc CHECK (k >= 0 AND k < 100) NOT VALID;
    ALTER TABLE acc2_p1 VALIDATE CONSTRAINT kc;
    ALTER TABLE acc2_parent ATTACH PARTITION acc2_p1 FOR VALUES FROM (0) TO (100)'),
  ('ALTER TABLE acc2_parent DETACH PARTITION acc2_p2 CONCURRENTLY'),
  ('BEGIN; ALTER TABLE acc2_big ADD COLUMN z int; COMMIT;'),
  ('START TRANSACTION; SELECT 1; END;'),
  ('CREATE TABLE acc2_n (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                         j jsonb, ts timestamptz, v text)'),
  ('ALTER TABLE acc2_big SET LOGGED'),
  ('ALTER TABLE acc2_big SET TABLESPACE pg_default')
) v(s);

-- 2. The rules agree with the server: what lint() calls a rewrite or a scan
-- is one, and what it lets through is not.
SELECT s, effect(s), rules(s),
       (SELECT bool_or(rewrites) FROM migration_tools.lint(s)) AS lint_rewrites
FROM (VALUES
  ('ALTER TABLE acc2_big ALTER COLUMN n TYPE bigint'),
  ('ALTER TABLE acc2_big ALTER COLUMN n TYPE int'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE varchar(20)'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE varchar(5)'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE text'),
  ('ALTER TABLE acc2_big ALTER COLUMN t TYPE varchar(20)'),
  ('ALTER TABLE acc2_big ALTER COLUMN v TYPE varchar(20) USING v::varchar(20)'),
  ('ALTER TABLE acc2_big ALTER COLUMN j TYPE jsonb USING j::jsonb'),
  ('ALTER TABLE acc2_big ADD COLUMN x int DEFAULT 0'),
  ('ALTER TABLE acc2_big ADD COLUMN x int NOT NULL DEFAULT 0'),
  ('ALTER TABLE acc2_big ADD COLUMN x timestamptz DEFAULT clock_timestamp()'),
  ('ALTER TABLE acc2_big ADD COLUMN x int CHECK (x > 0)'),
  ('ALTER TABLE acc2_big ADD COLUMN x int GENERATED ALWAYS AS (n * 2) STORED'),
  ('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT c CHECK (n > 0)'),
  ('ALTER TABLE acc2_big ADD CONSTRAINT c CHECK (n > 0) NOT VALID'),
  ('ALTER TABLE acc2_big SET UNLOGGED'),
  ('ALTER TABLE acc2_big SET LOGGED'),
  ('ALTER TABLE acc2_big SET ACCESS METHOD heap')
) v(s);

-- SET NOT NULL after a validated CHECK (col IS NOT NULL) really skips the scan
-- (also when the IS NOT NULL is one term of an AND; not for CHECK (n > 0))
ALTER TABLE acc2_big ADD CONSTRAINT acc2_pos CHECK (n > 0);
SELECT effect('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL') AS effect,
       rules('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL');
ALTER TABLE acc2_big DROP CONSTRAINT acc2_pos;
ALTER TABLE acc2_big ADD CONSTRAINT acc2_nn CHECK (n > 0 AND n IS NOT NULL);
SELECT effect('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL') AS effect,
       rules('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL');
ALTER TABLE acc2_big DROP CONSTRAINT acc2_nn;
ALTER TABLE acc2_big ADD CONSTRAINT acc2_nn CHECK (n IS NOT NULL);
SELECT effect('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL') AS effect,
       rules('ALTER TABLE acc2_big ALTER COLUMN n SET NOT NULL');
ALTER TABLE acc2_big DROP CONSTRAINT acc2_nn;

-- 3. Scripts: a table created, or dropped and re-created, or renamed away
-- earlier in the same script gets no "existing table" findings; the old
-- table under its new name still does.
SELECT s AS script, rules(s) FROM (VALUES
  ('CREATE TABLE acc2_n (id bigint, n bigint); CREATE INDEX ON acc2_n (n);
    ALTER TABLE acc2_n ADD COLUMN x int NOT NULL; ALTER TABLE acc2_n ALTER n TYPE int;
    UPDATE acc2_n SET n = 1; DROP TABLE acc2_n'),
  ('DROP TABLE IF EXISTS acc2_big; CREATE TABLE acc2_big (id bigint, n bigint);
    CREATE INDEX ON acc2_big (n); ALTER TABLE acc2_big ADD COLUMN q int NOT NULL'),
  ('ALTER TABLE acc2_big RENAME TO acc2_old; CREATE TABLE acc2_big (id bigint, n bigint);
    CREATE INDEX ON acc2_big (n); CREATE INDEX ON acc2_old (n)'),
  ('CREATE TABLE acc2_n AS SELECT * FROM acc2_big; CREATE INDEX ON acc2_n (n)'),
  ('SELECT * INTO acc2_n FROM acc2_big; CREATE INDEX ON acc2_n (n)'),
  ('CREATE TABLE acc2_n (LIKE acc2_big); CREATE INDEX ON acc2_n (n)'),
  ('TRUNCATE acc2_big; CREATE INDEX ON acc2_big (n)'),
  ('CREATE SCHEMA acc2_s; CREATE TABLE acc2_s.acc2_big (id bigint, n bigint);
    CREATE INDEX ON acc2_s.acc2_big (n)'),
  ('SET search_path = acc2_s2; CREATE TABLE acc2_big (id bigint, n bigint);
    CREATE INDEX ON public.acc2_big (n)'),
  ('WITH d AS (DELETE FROM acc2_big RETURNING *) SELECT count(*) FROM d'),
  ('WITH d AS (UPDATE acc2_big SET n = 1 RETURNING *) INSERT INTO acc2_small SELECT id, id FROM d')
) v(s);

-- 4. require-lock-timeout: a raw script with DDL on an existing table and no
-- SET lock_timeout before it; not for a concurrent build, which waits for
-- older snapshots and must not run under a short lock_timeout.
SELECT s AS script,
       (SELECT string_agg(statement || ':' || rule, ' ') FROM migration_tools.lint(s)
        WHERE rule = 'require-lock-timeout') AS finding
FROM (VALUES
  ('ALTER TABLE acc2_big ADD COLUMN z int'),
  ('SET lock_timeout = ''2s''; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('SET LOCAL lock_timeout = ''2s''; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('SELECT set_config(''lock_timeout'', ''2s'', false); ALTER TABLE acc2_big ADD COLUMN z int'),
  ('ALTER TABLE acc2_big ADD COLUMN z int; SET lock_timeout = ''2s'''),
  ('SET lock_timeout = 0; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('SET statement_timeout = ''2s''; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('SET lock_timeout = ''2s''; RESET lock_timeout; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('SET lock_timeout = ''2s''; RESET ALL; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('BEGIN; SET LOCAL lock_timeout = ''2s''; ALTER TABLE acc2_big ADD COLUMN z int; COMMIT;'),
  ('BEGIN; SET LOCAL lock_timeout = ''2s''; COMMIT; ALTER TABLE acc2_big ADD COLUMN z int'),
  ('CREATE INDEX CONCURRENTLY acc2_i ON acc2_big (n)'),
  ('DROP INDEX CONCURRENTLY acc2_big_pkey'),
  ('ALTER TABLE acc2_parent DETACH PARTITION acc2_p2 CONCURRENTLY'),
  ('CREATE TABLE acc2_n (id bigint); ALTER TABLE acc2_n ADD COLUMN z int')
) v(s);

-- 5. Messages and hints name the problem and the safe alternative.
SELECT rule, severity, message, hint, relation, lock_mode, rewrites
FROM migration_tools.lint(
  'SET lock_timeout = ''1s'';
   CREATE INDEX acc2_i ON acc2_big (n);
   ALTER TABLE acc2_big ALTER n TYPE bigint;
   ALTER TABLE acc2_big ALTER n SET NOT NULL;
   ALTER TABLE acc2_small ADD CONSTRAINT f FOREIGN KEY (big_id) REFERENCES acc2_big (id);
   ALTER TABLE acc2_big ADD COLUMN x int NOT NULL;
   ALTER TABLE acc2_big ADD COLUMN y float8 DEFAULT random();
   ALTER TABLE acc2_big ADD COLUMN w int CHECK (w > 0);
   UPDATE acc2_big SET n = 1')
ORDER BY statement, rule COLLATE "C";

-- every finding has a message and a hint; severities are the three levels
SELECT count(*) FILTER (WHERE message IS NULL OR message = '') AS no_message,
       count(*) FILTER (WHERE hint IS NULL OR hint = '') AS no_hint,
       count(*) FILTER (WHERE severity NOT IN ('error', 'warning', 'info')) AS bad_severity
FROM migration_tools.lint(
  'CREATE INDEX acc2_i ON acc2_big (n); DROP INDEX acc2_big_pkey; VACUUM FULL acc2_big;
   CLUSTER acc2_big USING acc2_big_pkey; LOCK TABLE acc2_big; TRUNCATE acc2_big;
   REINDEX TABLE acc2_big; CREATE TABLE acc2_n (id serial PRIMARY KEY, j json, ts timestamp);
   ALTER TABLE acc2_big RENAME n TO m; BEGIN;');

-- 6. Odd input: nothing to lint, comments, many statements, unicode; and
-- garbage: a syntax error with its position, never a crash.
SELECT count(*) FROM migration_tools.lint('');
SELECT count(*) FROM migration_tools.lint('   -- a comment only
/* and a block comment */  ');
SELECT count(*) FROM migration_tools.lint(';;;');
SELECT count(*) FROM migration_tools.lint(NULL);
SELECT statement, rule, location FROM migration_tools.lint(
  'SELECT 1;;; CREATE INDEX i ON acc2_big (n);; CREATE INDEX j ON acc2_big (n)')
WHERE rule <> 'require-lock-timeout';
SELECT statement, rule, relation FROM migration_tools.lint(
  'CREATE TABLE "ünï©ødé 😀" (id bigint); CREATE INDEX "😀" ON "ünï©ødé 😀" (id);
   ALTER TABLE acc2_big ADD COLUMN "ÄÖ😀" int NOT NULL')
WHERE rule <> 'require-lock-timeout';
-- a long script: 2000 statements
SELECT count(*), min(statement), max(statement)
FROM migration_tools.lint((SELECT string_agg(format('ALTER TABLE acc2_big ADD COLUMN c%s int NOT NULL', g), '; ')
                           FROM generate_series(1, 2000) g));
SELECT count(*) FROM migration_tools.lint('DO $$ BEGIN PERFORM 1; END $$; COPY acc2_small FROM stdin');
SELECT * FROM migration_tools.lint('SELEC 1');
SELECT * FROM migration_tools.lint('CREATE INDEX i ON acc2_big (n); ALTER TABLE acc2_big ADD COLUM x int');
SELECT * FROM migration_tools.lint('\set x 1');
-- two statements without a semicolon between them
SELECT * FROM migration_tools.lint('CREATE INDEX i ON acc2_big (n)
CREATE INDEX j ON acc2_big (n)');
SELECT * FROM migration_tools.lint('CREATE TABLE x (a int');
SELECT * FROM migration_tools.lint('SELECT ''unterminated');
SELECT * FROM migration_tools.lint('SELECT $$ unterminated');

-- 6b. DO blocks that are plain SQL between BEGIN and END, as migration tools
-- write them (Drizzle wraps foreign keys so), are linted like the script;
-- so is any PL/pgSQL (declarations, IF, EXECUTE of a constant string), read
-- with the server's PL/pgSQL compiler.
SELECT statement, rule FROM migration_tools.lint($x$
CREATE TABLE acc2_c (id bigint PRIMARY KEY, big_id bigint);
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "acc2_small" ADD CONSTRAINT "acc2_small_big_fk" FOREIGN KEY ("big_id") REFERENCES "public"."acc2_big"("id") ON DELETE no action ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "acc2_c" ADD CONSTRAINT "acc2_c_big_fk" FOREIGN KEY ("big_id") REFERENCES "public"."acc2_big"("id");
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
$x$) WHERE rule <> 'require-lock-timeout';
SELECT s AS do_block, rules(s) FROM (VALUES
  ('DO $$ BEGIN CREATE INDEX ON acc2_big (n); END $$'),
  ('DO LANGUAGE plpgsql $$ begin update acc2_big set n = 1; exception when others then null; end; $$'),
  ('DO $$ DECLARE x int; BEGIN CREATE INDEX ON acc2_big (n); END $$'),
  ('DO $$ BEGIN IF true THEN CREATE INDEX ON acc2_big (n); END IF; END $$'),
  ('DO $$ BEGIN EXECUTE ''CREATE INDEX ON acc2_big (n)''; END $$'),
  ('DO $$ BEGIN PERFORM 1; END $$'),
  ('DO $$ BEGIN END $$')
) v(s);

-- 7. backfill() and run_batched(): bad input is a clear ERROR with an
-- error code, before anything is queued.
CREATE TABLE acc2_bk (id bigint PRIMARY KEY, a int);
INSERT INTO acc2_bk SELECT g, 0 FROM generate_series(1, 10) g;
CREATE VIEW acc2_bkv AS SELECT * FROM acc2_bk;
CREATE TABLE acc2_nopk (a int);
INSERT INTO acc2_nopk VALUES (1);
CREATE TEMP TABLE acc2_tmp (id bigint PRIMARY KEY, a int);
-- the error of a call: SQLSTATE, message, hint
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
  ($q$migration_tools.backfill('acc2_bkv', 'a = 1')$q$),
  ($q$migration_tools.backfill('acc2_nopk', 'a = 1', strategy => 'key')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'nosuch = 1')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1; DROP TABLE acc2_nopk')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', where_clause => '1=1; DROP TABLE acc2_nopk')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', where_clause => 'true) OR (true')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', where_clause => 'true /*')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', batch_size => -5)$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', batch_size => 0)$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', strategy => 'bogus')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', target_batch_time => '-1s')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', batch_sleep => '-1s')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', max_attempts => 0)$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', run_window => '25:00-01:00')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', run_window => 'nonsense')$q$),
  ($q$migration_tools.backfill('acc2_bk', 'a = 1', run_window => '01:00-01:00')$q$),
  ($q$migration_tools.backfill('acc2_bk', NULL)$q$),
  ($q$migration_tools.backfill(NULL, 'a = 1')$q$),
  ($q$migration_tools.backfill('acc2_nosuch', 'a = 1')$q$),
  ($q$migration_tools.backfill('acc2_tmp', 'a = 1')$q$),
  ($q$migration_tools.backfill('acc2_tmp', 'a = 1', strategy => 'ctid')$q$),
  ($q$migration_tools.run_batched('acc2_bk', 'DELETE FROM acc2_bk WHERE id >= $1 AND id < $2; DROP TABLE acc2_nopk')$q$),
  ($q$migration_tools.run_batched('acc2_bk', 'DELETE FROM acc2_bk WHERE id >= $1 AND id < $2 AND id < $3')$q$),
  ($q$migration_tools.run_batched('acc2_bk', 'SELEC 1')$q$)
) v(c);
-- nothing was queued, nothing was dropped
SELECT count(*) AS jobs FROM migration_tools.backfill_progress;
SELECT count(*) AS nopk_still_there FROM acc2_nopk;

-- a comment in where_clause cannot close the batch range: the job only
-- updates the rows of the where clause, within the range
SELECT migration_tools.backfill('acc2_bk', 'a = 1', where_clause => 'id <= 3 --') AS job \gset
SELECT migration_tools.wait(:job, '60s');
SELECT count(*) FILTER (WHERE a = 1) AS updated, count(*) AS total FROM acc2_bk;

-- progress numbers are sane
SELECT state, rows_done, percent BETWEEN 0 AND 100 AS percent_ok,
       eta IS NULL OR eta >= '0'::interval AS eta_ok, last_error
FROM migration_tools.backfill_progress WHERE job_id = :job;

-- 8. verify_reversible() takes the scripts apply() takes: a BEGIN ...
-- COMMIT around a script is ignored; a COMMIT inside is refused clearly;
-- a syntax error in up is an error with its position.
CREATE TABLE acc2_vr (id bigint PRIMARY KEY, v text);
SELECT migration_tools.verify_reversible('ALTER TABLE acc2_vr ADD COLUMN q int',
                                         'ALTER TABLE acc2_vr DROP COLUMN q');
SELECT migration_tools.verify_reversible('BEGIN; CREATE INDEX acc2_vr_v ON acc2_vr (v); COMMIT;',
                                         'START TRANSACTION; DROP INDEX acc2_vr_v; END');
SELECT migration_tools.verify_reversible('ALTER TABLE acc2_vr RENAME v TO w',
                                         'ALTER TABLE acc2_vr RENAME w TO v');
SELECT migration_tools.verify_reversible('ALTER TABLE acc2_vr ADD COLUMN q int DEFAULT 1',
                                         'SELECT 1');
SELECT migration_tools.verify_reversible('CREATE TABLE acc2_vr2 (id int); COMMIT', 'DROP TABLE acc2_vr2');
SELECT migration_tools.verify_reversible('CREATE TABLE acc2_vr2 (id int)', 'DROP TABLE acc2_vr2; COMMIT');
SELECT migration_tools.verify_reversible('CREATE TABLE acc2_vr2 (id int', 'DROP TABLE acc2_vr2');
SELECT migration_tools.verify_reversible('CREATE INDEX CONCURRENTLY ON acc2_vr (v)', 'SELECT 1');
-- nothing of it stayed
SELECT count(*) FROM pg_class WHERE relname IN ('acc2_vr2', 'acc2_vr_v', 'acc2_vr_v_idx', 'acc2_vr_v_idx1');

-- 9. The DDL log records DDL of every role, inside and outside apply(); a
-- role without any right on the extension's schema can still run DDL.
CREATE ROLE regress_acc2_app;
GRANT CREATE ON SCHEMA public TO regress_acc2_app;
SET ROLE regress_acc2_app;
CREATE TABLE acc2_app_t (id bigint);
ALTER TABLE acc2_app_t ADD COLUMN x int;
DROP TABLE acc2_app_t;
RESET ROLE;
SELECT migration_tools.apply('acc2_001', 'CREATE TABLE acc2_m (id bigint PRIMARY KEY)');
SELECT command_tag, object_type, object_identity,
       CASE WHEN current_user_name = current_user THEN 'me' ELSE current_user_name END AS by_role,
       migration_version
FROM migration_tools.ddl_log
WHERE object_identity IN ('public.acc2_app_t', 'public.acc2_m', 'public.acc2_m_pkey')
ORDER BY id;

-- 10. schema_drift() names what changed outside apply(), and nothing after
-- the next migration.
SELECT * FROM migration_tools.schema_drift();
ALTER TABLE acc2_m ADD COLUMN note text DEFAULT 'x';
CREATE INDEX acc2_m_note ON acc2_m (note);
SELECT object_type, object, change, definition, since_version FROM migration_tools.schema_drift();
SELECT migration_tools.apply('acc2_002', 'ALTER TABLE acc2_m DROP COLUMN note');
SELECT * FROM migration_tools.schema_drift();
REVOKE CREATE ON SCHEMA public FROM regress_acc2_app;
DROP ROLE regress_acc2_app;

-- 11. The relation locks apply() waits for before each attempt (from the
-- parser, script_statements()) are the ones the server then takes: the
-- strongest mode per table, compared with pg_locks after running the
-- statement (rolled back).
CREATE TABLE acc2_ref (id bigint PRIMARY KEY);
CREATE TABLE acc2_fk (id bigint PRIMARY KEY, ref_id bigint);
ALTER TABLE acc2_fk ADD CONSTRAINT acc2_fk_ref FOREIGN KEY (ref_id) REFERENCES acc2_ref (id) NOT VALID;
CREATE FUNCTION locks_of(s text) RETURNS TABLE (predicted text, actual text)
LANGUAGE plpgsql AS $$
DECLARE
  p text;
  a text;
BEGIN
  CREATE TEMP TABLE rels ON COMMIT DROP AS
    SELECT oid, relname FROM pg_class WHERE relname LIKE 'acc2%' AND relkind IN ('r', 'p');
  CREATE TEMP TABLE modes (mode text, rank int) ON COMMIT DROP;
  INSERT INTO modes VALUES ('AccessShareLock', 1), ('RowShareLock', 2),
    ('RowExclusiveLock', 3), ('ShareUpdateExclusiveLock', 4), ('ShareLock', 5),
    ('ShareRowExclusiveLock', 6), ('ExclusiveLock', 7), ('AccessExclusiveLock', 8);
  SELECT string_agg(r.relname || ':' || m.mode, ' ' ORDER BY r.relname) INTO p
  FROM (SELECT split_part(l, ':', 1) AS rel, max(mo.rank) AS rank
        FROM migration_tools.script_statements(s), unnest(locks) l
        JOIN modes mo ON mo.mode = split_part(l, ':', 2)
        GROUP BY 1) x
  JOIN rels r ON r.relname = x.rel JOIN modes m ON m.rank = x.rank;
  BEGIN
    EXECUTE s;
    SELECT string_agg(r.relname || ':' || m.mode, ' ' ORDER BY r.relname) INTO a
    FROM (SELECT l.relation, max(mo.rank) AS rank FROM pg_locks l JOIN modes mo USING (mode)
          WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
          GROUP BY 1) x
    JOIN rels r ON r.oid = x.relation JOIN modes m ON m.rank = x.rank;
    RAISE EXCEPTION 'undo';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
  DROP TABLE rels, modes;
  RETURN QUERY SELECT p, a;
END $$;
SELECT s AS statement, l.predicted = l.actual AS same, l.predicted, l.actual
FROM (VALUES
  ('ALTER TABLE acc2_fk VALIDATE CONSTRAINT acc2_fk_ref'),
  ('ALTER TABLE acc2_fk ADD CONSTRAINT acc2_fk2 FOREIGN KEY (ref_id) REFERENCES acc2_ref (id) NOT VALID'),
  ('ALTER TABLE acc2_fk ADD COLUMN r2 bigint REFERENCES acc2_ref (id)'),
  ('DROP TABLE acc2_fk'),
  ('DROP TABLE acc2_ref CASCADE'),
  ('TRUNCATE acc2_ref CASCADE'),
  ('CREATE INDEX acc2_fk_ref_i ON acc2_fk (ref_id)'),
  ('CREATE TRIGGER acc2_tr BEFORE UPDATE ON acc2_fk FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()'),
  ('COMMENT ON TABLE acc2_fk IS ''x'''),
  ('ALTER TABLE acc2_fk ALTER COLUMN ref_id SET STATISTICS 100'),
  ('ALTER TABLE acc2_fk RENAME COLUMN ref_id TO ref'),
  ('UPDATE acc2_fk SET ref_id = NULL WHERE id = 1'),
  ('INSERT INTO acc2_ref SELECT id FROM acc2_fk'),
  ('LOCK TABLE acc2_ref IN SHARE MODE'),
  ('ANALYZE acc2_fk'),
  ('DO $$ BEGIN ALTER TABLE acc2_fk ADD CONSTRAINT acc2_fk3 FOREIGN KEY (ref_id) REFERENCES acc2_ref (id) NOT VALID;
    EXCEPTION WHEN duplicate_object THEN NULL; END $$')
) v(s), locks_of(s) l;

-- 12. The guard (migration_tools.guard, set by a superuser) cannot be
-- dodged by an ordinary role: not by turning it off, not by posing as
-- apply(), not through dynamic SQL; safe statements pass.
CREATE ROLE regress_acc2_dev;
GRANT CREATE ON SCHEMA public TO regress_acc2_dev;
SET ROLE regress_acc2_dev;
CREATE TABLE acc2_dev_t (id bigint PRIMARY KEY, n int);
INSERT INTO acc2_dev_t SELECT g, g FROM generate_series(1, 20000) g;
ANALYZE acc2_dev_t;
RESET ROLE;
SET migration_tools.guard = on;
SET ROLE regress_acc2_dev;
SET migration_tools.guard = off;
BEGIN;
SET LOCAL migration_tools.applying_version = 'pretend';
ROLLBACK;
CREATE INDEX acc2_dev_i ON acc2_dev_t (n);
DO $$ BEGIN EXECUTE 'CREATE INDEX acc2_dev_i ON acc2_dev_t (n)'; END $$;
ALTER TABLE acc2_dev_t ADD COLUMN c int CHECK (c > 0);
ALTER TABLE acc2_dev_t ADD COLUMN c int;
ALTER TABLE acc2_dev_t ADD CONSTRAINT acc2_dev_c CHECK (c > 0) NOT VALID;
ALTER TABLE acc2_dev_t VALIDATE CONSTRAINT acc2_dev_c;
-- a table created in the same transaction is new: anything goes
BEGIN;
CREATE TABLE acc2_dev_new (id bigint);
CREATE INDEX ON acc2_dev_new (id);
ALTER TABLE acc2_dev_new ALTER id TYPE int;
COMMIT;
DROP TABLE acc2_dev_new;
RESET ROLE;
RESET migration_tools.guard;
DROP TABLE acc2_dev_t;
REVOKE CREATE ON SCHEMA public FROM regress_acc2_dev;
DROP ROLE regress_acc2_dev;

-- 13. apply() and migration_tools.lint_level: a script with DDL but no SET
-- lock_timeout is never refused for it (apply() sets its own), even at
-- lint_level warning; warnings refuse at that level; off lets all through.
CREATE TABLE acc2_lv (id bigint PRIMARY KEY, a int, b int);
SET migration_tools.lint_level = warning;
SELECT migration_tools.apply('acc2_lv1', 'ALTER TABLE acc2_lv ADD COLUMN c int');
SELECT migration_tools.apply('acc2_lv2', 'ALTER TABLE acc2_lv DROP COLUMN a');
SELECT migration_tools.apply('acc2_lv2', 'ALTER TABLE acc2_lv DROP COLUMN a', allow => '{drop-column}');
SET migration_tools.lint_level = error;
SELECT migration_tools.apply('acc2_lv3', 'ALTER TABLE acc2_lv DROP COLUMN b');
SELECT migration_tools.apply('acc2_lv4', 'CREATE INDEX acc2_lv_c ON acc2_lv (c)');
SET migration_tools.lint_level = off;
SELECT migration_tools.apply('acc2_lv4', 'CREATE INDEX acc2_lv_c ON acc2_lv (c)');
RESET migration_tools.lint_level;
SELECT version, state FROM migration_tools.migrations WHERE version LIKE 'acc2_lv%' ORDER BY version;

\c :regress_db
DROP DATABASE acceptance2_db WITH (FORCE);
