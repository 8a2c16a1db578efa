--
-- The lint rules: for each rule a script where it fires and one where it
-- does not, with the catalog facts it depends on.
--
SET migration_tools.lint_large_rows = 100;

CREATE TABLE lr_parent (id bigint PRIMARY KEY);
INSERT INTO lr_parent SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE lr_big (
    id bigint PRIMARY KEY,
    parent_id bigint,
    flag int,
    name varchar(10),
    amount numeric(10,2),
    ts timestamp,
    note text,
    code int
);
INSERT INTO lr_big SELECT g, g % 1000 + 1, g % 2, 'n' || g % 10, g, '2020-01-01', NULL, g % 3
FROM generate_series(1, 1000) g;
CREATE INDEX lr_big_flag ON lr_big (flag);
CREATE MATERIALIZED VIEW lr_mv AS SELECT flag, count(*) FROM lr_big GROUP BY flag;
CREATE TABLE lr_part (id bigint, at date) PARTITION BY RANGE (at);
CREATE TABLE lr_part_2020 PARTITION OF lr_part FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE lr_part_2021 (id bigint, at date);
CREATE TABLE lr_part_2022 (id bigint, at date,
    CONSTRAINT lr_bound CHECK (at >= '2022-01-01' AND at < '2023-01-01'));
CREATE DOMAIN lr_positive AS int;
CREATE DOMAIN lr_unused AS int;
CREATE DOMAIN lr_checked AS int CHECK (VALUE > 0);
CREATE TABLE lr_dom (v lr_positive);
ANALYZE lr_parent, lr_big, lr_part_2020, lr_part_2021, lr_part_2022;

-- every rule, and every SPEC rule id is one of them
SELECT rule, severity FROM migration_tools.lint_rules() ORDER BY rule COLLATE "C";
SELECT r AS missing FROM unnest(ARRAY[
    'create-index-non-concurrently', 'drop-index-non-concurrently',
    'add-column-not-null-no-default', 'add-column-volatile-default',
    'add-foreign-key-validated', 'add-check-validated', 'set-not-null',
    'change-column-type', 'rename-column', 'rename-table', 'drop-column', 'drop-table',
    'add-unique-constraint', 'add-primary-key', 'vacuum-full', 'cluster',
    'refresh-matview-non-concurrently', 'lock-table', 'unbatched-update',
    'unbatched-delete', 'truncate', 'concurrently-in-transaction',
    'reindex-non-concurrently', 'attach-partition-unvalidated', 'add-stored-generated-column',
    'detach-partition-non-concurrently', 'add-exclusion-constraint', 'add-serial-column',
    'domain-check-constraint', 'uncommitted-transaction', 'drop-not-null', 'json-column',
    'prefer-bigint', 'prefer-identity', 'prefer-text', 'prefer-timestamptz',
    'require-lock-timeout']) r
WHERE r NOT IN (SELECT rule FROM migration_tools.lint_rules());

-- findings without the message, hint and lock_timeout advice
CREATE FUNCTION lr(script text)
RETURNS TABLE(statement int, rule text, severity text, relation text,
              lock_mode text, rewrites boolean, estimated_rows bigint)
LANGUAGE sql AS $$
    SELECT statement, rule, severity, relation, lock_mode, rewrites, estimated_rows
    FROM migration_tools.lint(script)
    WHERE rule <> 'require-lock-timeout'
$$;

-- create-index-non-concurrently
SELECT * FROM lr('CREATE INDEX ON lr_big (note)');
SELECT * FROM lr('CREATE INDEX CONCURRENTLY ON lr_big (note)');
-- IF NOT EXISTS of an index or column that exists does nothing
SELECT * FROM lr('CREATE INDEX IF NOT EXISTS lr_big_flag ON lr_big (note)');
SELECT * FROM lr('CREATE INDEX IF NOT EXISTS lr_big_other ON lr_big (note)');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN IF NOT EXISTS flag int NOT NULL');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN IF NOT EXISTS c1 int NOT NULL');
SELECT * FROM lr('CREATE TABLE lr_new (a int); CREATE INDEX ON lr_new (a)');
SELECT * FROM lr('CREATE INDEX ON lr_part (id)');
SELECT * FROM lr('CREATE INDEX lr_part_id ON ONLY lr_part (id);
                  CREATE INDEX CONCURRENTLY lr_part_2020_id ON lr_part_2020 (id);
                  ALTER INDEX lr_part_id ATTACH PARTITION lr_part_2020_id');

-- drop-index-non-concurrently
SELECT * FROM lr('DROP INDEX lr_big_flag');
SELECT * FROM lr('DROP INDEX CONCURRENTLY lr_big_flag');
SELECT * FROM lr('CREATE TABLE lr_new (a int); CREATE INDEX lr_tmp ON lr_new (a); DROP INDEX lr_tmp');

-- add-column-not-null-no-default
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int NOT NULL');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int NOT NULL DEFAULT 0');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int NOT NULL DEFAULT NULL');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int DEFAULT NULL::int NOT NULL');
SELECT * FROM lr('CREATE TABLE lr_new (a int); ALTER TABLE lr_new ADD COLUMN c1 int NOT NULL');

-- add-column-volatile-default: provolatile of the function, by name
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 float8 DEFAULT random()');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 uuid DEFAULT gen_random_uuid()');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 timestamptz DEFAULT clock_timestamp()');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 timestamptz DEFAULT now()');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 timestamptz DEFAULT CURRENT_TIMESTAMP');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 text DEFAULT lower(''X'')');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int DEFAULT 42');

-- add-foreign-key-validated
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id)');
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id) NOT VALID;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_fk');
SELECT * FROM lr('CREATE TABLE lr_new (a bigint REFERENCES lr_parent)');
-- a partitioned table takes no NOT VALID foreign key before PostgreSQL 18;
-- validated keys on every partition are adopted without a scan
CREATE TABLE lr_pfk (id bigint, parent_id bigint) PARTITION BY RANGE (id);
CREATE TABLE lr_pfk_1 PARTITION OF lr_pfk FOR VALUES FROM (0) TO (100);
CREATE TABLE lr_pfk_2 PARTITION OF lr_pfk FOR VALUES FROM (100) TO (200);
SELECT * FROM lr('ALTER TABLE lr_pfk ADD CONSTRAINT lr_pfk_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id) NOT VALID');
SELECT * FROM lr('ALTER TABLE lr_pfk ADD CONSTRAINT lr_pfk_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id)');
ALTER TABLE lr_pfk_1 ADD FOREIGN KEY (parent_id) REFERENCES lr_parent (id);
SELECT * FROM lr('ALTER TABLE lr_pfk ADD CONSTRAINT lr_pfk_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id)');
ALTER TABLE lr_pfk_2 ADD FOREIGN KEY (parent_id) REFERENCES lr_parent (id) NOT VALID;
SELECT * FROM lr('ALTER TABLE lr_pfk ADD CONSTRAINT lr_pfk_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id)');
ALTER TABLE lr_pfk_2 VALIDATE CONSTRAINT lr_pfk_2_parent_id_fkey;
SELECT * FROM lr('ALTER TABLE lr_pfk ADD CONSTRAINT lr_pfk_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id)');
SELECT hint FROM migration_tools.lint('ALTER TABLE lr_pfk ADD FOREIGN KEY (parent_id) REFERENCES lr_parent (id) NOT VALID');
DROP TABLE lr_pfk;

-- add-check-validated
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_ck CHECK (flag >= 0)');
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_ck CHECK (flag >= 0) NOT VALID');

-- set-not-null: fine when a validated CHECK (col IS NOT NULL) proves it
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN flag SET NOT NULL');
-- a column that already is NOT NULL: nothing happens
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN id SET NOT NULL');
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_nn CHECK (flag IS NOT NULL) NOT VALID;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_nn;
                  ALTER TABLE lr_big ALTER COLUMN flag SET NOT NULL;
                  ALTER TABLE lr_big DROP CONSTRAINT lr_nn');
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_nn CHECK (flag IS NOT NULL) NOT VALID;
                  ALTER TABLE lr_big ALTER COLUMN flag SET NOT NULL');
ALTER TABLE lr_big ADD CONSTRAINT lr_code_nn CHECK (code IS NOT NULL AND code >= 0);
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN code SET NOT NULL');
ALTER TABLE lr_big ADD CONSTRAINT lr_flag_nn CHECK (flag IS NOT NULL) NOT VALID;
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN flag SET NOT NULL');
ALTER TABLE lr_big DROP CONSTRAINT lr_flag_nn;

-- change-column-type: binary-compatible changes do not rewrite
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN flag TYPE bigint');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN name TYPE varchar(5)');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN amount TYPE numeric(10,3)');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN note TYPE varchar(20)');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN name TYPE int USING name::int');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN name TYPE varchar(20)');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN name TYPE text');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN name TYPE varchar');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN amount TYPE numeric(12,2)');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN amount TYPE numeric');
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN note TYPE varchar');

-- ALTER TABLE on a view: nothing to scan or rewrite
CREATE VIEW lr_view AS SELECT id, note FROM lr_big;
SELECT * FROM lr('ALTER TABLE lr_view ADD COLUMN c1 int NOT NULL, ALTER COLUMN note SET NOT NULL');
DROP VIEW lr_view;

-- rename-column, rename-table
SELECT * FROM lr('ALTER TABLE lr_big RENAME COLUMN note TO remark');
SELECT * FROM lr('ALTER TABLE lr_big RENAME TO lr_large');
SELECT * FROM lr('CREATE TABLE lr_new (a int); ALTER TABLE lr_new RENAME a TO b; ALTER TABLE lr_new RENAME TO lr_new2');
SELECT * FROM lr('CREATE TABLE lr_new (a int); ALTER TABLE lr_new RENAME TO lr_new2; CREATE INDEX ON lr_new2 (a)');

-- drop-column, drop-table
SELECT * FROM lr('ALTER TABLE lr_big DROP COLUMN note');
SELECT * FROM lr('DROP TABLE lr_big');
SELECT * FROM lr('CREATE TABLE lr_new (a int, b int); ALTER TABLE lr_new DROP COLUMN b; DROP TABLE lr_new');

-- add-unique-constraint, add-primary-key
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_uq UNIQUE (note)');
SELECT * FROM lr('CREATE UNIQUE INDEX CONCURRENTLY lr_uq_idx ON lr_big (note);
                  ALTER TABLE lr_big ADD CONSTRAINT lr_uq UNIQUE USING INDEX lr_uq_idx');
SELECT * FROM lr('ALTER TABLE lr_part_2021 ADD PRIMARY KEY (id)');
SELECT * FROM lr('ALTER TABLE lr_part_2021 ADD CONSTRAINT lr_pk PRIMARY KEY USING INDEX lr_pk_idx');
-- USING INDEX on nullable columns: the server scans to set NOT NULL
CREATE UNIQUE INDEX lr_big_id_flag ON lr_big (id, flag);
SELECT * FROM lr('ALTER TABLE lr_big DROP CONSTRAINT lr_big_pkey, ADD CONSTRAINT lr_pk PRIMARY KEY USING INDEX lr_big_id_flag');
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_flag_nn CHECK (flag IS NOT NULL) NOT VALID;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_flag_nn;
                  ALTER TABLE lr_big DROP CONSTRAINT lr_big_pkey, ADD CONSTRAINT lr_pk PRIMARY KEY USING INDEX lr_big_id_flag');
DROP INDEX lr_big_id_flag;
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 bigint UNIQUE');

-- vacuum-full, cluster
SELECT * FROM lr('VACUUM FULL lr_big');
SELECT * FROM lr('VACUUM (FULL) lr_big');
SELECT * FROM lr('VACUUM (FULL false, ANALYZE) lr_big');
SELECT * FROM lr('CLUSTER lr_big USING lr_big_pkey');
SELECT * FROM lr('CREATE TABLE lr_new (a int PRIMARY KEY); CLUSTER lr_new USING lr_new_pkey');

-- refresh-matview-non-concurrently
SELECT * FROM lr('REFRESH MATERIALIZED VIEW lr_mv');
SELECT * FROM lr('REFRESH MATERIALIZED VIEW CONCURRENTLY lr_mv');
SELECT * FROM lr('REFRESH MATERIALIZED VIEW lr_mv WITH NO DATA');

-- lock-table
SELECT * FROM lr('LOCK TABLE lr_big IN ACCESS EXCLUSIVE MODE');
SELECT * FROM lr('CREATE TABLE lr_new (a int); LOCK TABLE lr_new');

-- unbatched-update, unbatched-delete: estimated rows over lint_large_rows
SELECT * FROM lr('UPDATE lr_big SET note = ''x''');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE flag = 1');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE id = 5');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE id BETWEEN 1 AND 50');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE name = ''n1'' AND flag = 1');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE note IS NULL');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE note IS NOT NULL');
SELECT * FROM lr('DELETE FROM lr_big');
SELECT * FROM lr('DELETE FROM lr_big WHERE id > 800');
SELECT * FROM lr('DELETE FROM lr_big WHERE id IN (1, 2, 3)');
SELECT * FROM lr('TRUNCATE lr_big; UPDATE lr_big SET note = ''x''');
SELECT * FROM lr('UPDATE lr_big b SET note = p.id::text FROM lr_parent p WHERE p.id = b.parent_id');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE flag IN (0, 1)');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE id = 1 OR id = 2 OR NOT (flag = 1)');
SELECT * FROM lr('EXPLAIN (ANALYZE) UPDATE lr_big SET note = ''x''');
SELECT * FROM lr('EXPLAIN UPDATE lr_big SET note = ''x''');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE CURRENT OF c');
-- statistics only for those who may read the table (as pg_stats)
CREATE ROLE lr_nobody;
SET ROLE lr_nobody;
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE flag = 1');
SELECT * FROM lr('UPDATE lr_big SET note = ''x'' WHERE note IS NULL');
RESET ROLE;
DROP ROLE lr_nobody;
SET migration_tools.lint_large_rows = 10000;
SELECT * FROM lr('UPDATE lr_big SET note = ''x''');
SET migration_tools.lint_large_rows = 100;

-- truncate
SELECT * FROM lr('TRUNCATE lr_big, lr_parent');
SELECT * FROM lr('CREATE TABLE lr_new (a int); TRUNCATE lr_new');

-- concurrently-in-transaction, uncommitted-transaction
SELECT * FROM lr('BEGIN; CREATE INDEX CONCURRENTLY ON lr_big (note); COMMIT');
SELECT * FROM lr('BEGIN; SELECT 1; COMMIT; CREATE INDEX CONCURRENTLY ON lr_big (note)');
SELECT * FROM lr('BEGIN; VACUUM lr_big; ROLLBACK');
SELECT * FROM lr('BEGIN; ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT * FROM lr('START TRANSACTION; ALTER TABLE lr_big ADD COLUMN c1 int; END');
SELECT * FROM lr('BEGIN; SELECT 1; COMMIT AND CHAIN');

-- reindex-non-concurrently
SELECT * FROM lr('REINDEX TABLE lr_big');
SELECT * FROM lr('REINDEX INDEX lr_big_flag');
SELECT * FROM lr('REINDEX (VERBOSE) SCHEMA public');
SELECT * FROM lr('REINDEX TABLE CONCURRENTLY lr_big');
SELECT * FROM lr('REINDEX (CONCURRENTLY) INDEX lr_big_flag');

-- attach-partition-unvalidated, detach-partition-non-concurrently
SELECT * FROM lr('ALTER TABLE lr_part ATTACH PARTITION lr_part_2021 FOR VALUES FROM (''2021-01-01'') TO (''2022-01-01'')');
SELECT * FROM lr('ALTER TABLE lr_part ATTACH PARTITION lr_part_2022 FOR VALUES FROM (''2022-01-01'') TO (''2023-01-01'')');
SELECT * FROM lr('CREATE TABLE lr_part_2023 (id bigint, at date);
                  ALTER TABLE lr_part ATTACH PARTITION lr_part_2023 FOR VALUES FROM (''2023-01-01'') TO (''2024-01-01'')');
SELECT * FROM lr('ALTER TABLE lr_part DETACH PARTITION lr_part_2020');
SELECT * FROM lr('ALTER TABLE lr_part DETACH PARTITION lr_part_2020 CONCURRENTLY');

-- add-stored-generated-column, add-serial-column
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 bigint GENERATED ALWAYS AS (id * 2) STORED');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 bigserial');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 bigint GENERATED BY DEFAULT AS IDENTITY');
SELECT * FROM lr('CREATE TABLE lr_new (a int);
                  ALTER TABLE lr_new ADD COLUMN c1 bigint GENERATED ALWAYS AS (a * 2) STORED,
                                     ADD COLUMN c2 bigint GENERATED ALWAYS AS IDENTITY');

-- table-rewrite: SET LOGGED/UNLOGGED, SET TABLESPACE, SET ACCESS METHOD
SELECT * FROM lr('ALTER TABLE lr_big SET UNLOGGED');
-- ... but not when the table already has that tablespace and access method
SELECT * FROM lr('ALTER TABLE lr_big SET TABLESPACE pg_default, SET ACCESS METHOD heap');
SELECT * FROM lr('CREATE UNLOGGED TABLE lr_new (a int); ALTER TABLE lr_new SET LOGGED');

SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 lr_checked');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 lr_unused');

-- add-exclusion-constraint
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_ex EXCLUDE USING btree (id WITH =)');
SELECT * FROM lr('CREATE TABLE lr_new (a int, EXCLUDE USING btree (a WITH =))');

-- domain-check-constraint
SELECT * FROM lr('ALTER DOMAIN lr_positive ADD CONSTRAINT lr_pos CHECK (VALUE > 0)');
SELECT * FROM lr('ALTER DOMAIN lr_positive ADD CONSTRAINT lr_pos CHECK (VALUE > 0) NOT VALID');
SELECT * FROM lr('ALTER DOMAIN lr_unused ADD CONSTRAINT lr_pos CHECK (VALUE > 0)');
SELECT * FROM lr('ALTER DOMAIN lr_positive SET NOT NULL');
SELECT * FROM lr('ALTER DOMAIN lr_unused SET NOT NULL');
SELECT * FROM lr('ALTER DOMAIN lr_positive DROP NOT NULL');
SELECT * FROM lr('ALTER DOMAIN lr_nosuch ADD CONSTRAINT lr_pos CHECK (VALUE > 0)');

-- drop-not-null (info)
SELECT * FROM lr('ALTER TABLE lr_big ALTER COLUMN id DROP NOT NULL');
SELECT * FROM lr('CREATE TABLE lr_new (a int NOT NULL); ALTER TABLE lr_new ALTER a DROP NOT NULL');

-- style: json-column, prefer-bigint, prefer-identity, prefer-text, prefer-timestamptz
SELECT * FROM lr('CREATE TABLE lr_new (id serial PRIMARY KEY, other_id int, n int,
                  doc json, label varchar(40), c char(2), at timestamp, v varchar)');
SELECT * FROM lr('CREATE TABLE lr_new (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                  other_id bigint, doc jsonb, label text, at timestamptz, tags int[])');
SELECT * FROM lr('CREATE TABLE lr_new (k int, PRIMARY KEY (k))');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN doc json, ALTER COLUMN ts TYPE timestamp(3)');

-- require-lock-timeout: DDL on an existing table without SET lock_timeout
SELECT statement, rule, severity FROM migration_tools.lint('ALTER TABLE lr_big ADD COLUMN c1 int; ALTER TABLE lr_big ADD COLUMN c2 int');
SELECT statement, rule, severity FROM migration_tools.lint('SET lock_timeout = ''1s''; ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT statement, rule, severity FROM migration_tools.lint('SET LOCAL lock_timeout TO 500; ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT statement, rule, severity FROM migration_tools.lint('SELECT set_config(''lock_timeout'', ''2s'', true); ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT statement, rule, severity FROM migration_tools.lint('SET lock_timeout = 0; ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT statement, rule, severity FROM migration_tools.lint('SET lock_timeout = ''0s''; ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT statement, rule, severity FROM migration_tools.lint('SET lock_timeout TO DEFAULT; ALTER TABLE lr_big ADD COLUMN c1 int');
SELECT statement, rule, severity FROM migration_tools.lint('ALTER TABLE lr_big ADD COLUMN c1 int; SET lock_timeout = ''1s''');
SELECT statement, rule, severity FROM migration_tools.lint('CREATE TABLE lr_new (a int); CREATE INDEX ON lr_new (a)');
SELECT statement, rule, severity FROM migration_tools.lint('UPDATE lr_parent SET id = id WHERE id = 1');
SELECT statement, rule, severity FROM migration_tools.lint('SELECT 1; TRUNCATE lr_unknown');
SELECT statement, rule, severity FROM migration_tools.lint('LOCK lr_parent IN ACCESS SHARE MODE; LOCK lr_parent IN SHARE MODE');
SELECT statement, rule, severity FROM migration_tools.lint('VACUUM lr_parent; CLUSTER lr_parent USING lr_parent_pkey');

-- a new partition of a table with a non-empty DEFAULT partition: the
-- default partition is scanned under ACCESS EXCLUSIVE (not when it is
-- empty, nor when it has a validated CHECK)
CREATE TABLE lr_dp (id bigint, at date) PARTITION BY RANGE (at);
CREATE TABLE lr_dp_default PARTITION OF lr_dp DEFAULT;
SELECT * FROM lr('CREATE TABLE lr_dp_2020 PARTITION OF lr_dp FOR VALUES FROM (''2020-01-01'') TO (''2021-01-01'')');
INSERT INTO lr_dp SELECT g, '2030-01-01' FROM generate_series(1, 500) g;
ANALYZE lr_dp_default;
SELECT * FROM lr('CREATE TABLE lr_dp_2020 PARTITION OF lr_dp FOR VALUES FROM (''2020-01-01'') TO (''2021-01-01'')');
SELECT * FROM lr('CREATE TABLE lr_dp_new (id bigint, at date);
                  ALTER TABLE lr_dp ATTACH PARTITION lr_dp_new FOR VALUES FROM (''2020-01-01'') TO (''2021-01-01'')');
SELECT statement, locks FROM migration_tools.script_statements(
    'CREATE TABLE lr_dp_2020 PARTITION OF lr_dp FOR VALUES FROM (''2020-01-01'') TO (''2021-01-01'')');
ALTER TABLE lr_dp_default ADD CONSTRAINT lr_dp_not_2020 CHECK (at >= '2021-01-01');
SELECT * FROM lr('CREATE TABLE lr_dp_2020 PARTITION OF lr_dp FOR VALUES FROM (''2020-01-01'') TO (''2021-01-01'')');
DROP TABLE lr_dp;

-- validate-in-same-transaction: the VALIDATE scans under the lock of the
-- NOT VALID ADD (or of any earlier statement blocking writes) while the
-- script's transaction holds it; not after a COMMIT of the script's own,
-- not for a new or emptied table, not when nothing else locked the table
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id) NOT VALID;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_fk');
SELECT * FROM lr('BEGIN;
                  ALTER TABLE lr_big ADD CONSTRAINT lr_fk FOREIGN KEY (parent_id) REFERENCES lr_parent (id) NOT VALID;
                  COMMIT;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_fk');
SELECT * FROM lr('ALTER TABLE lr_big ADD CONSTRAINT lr_nn CHECK (flag IS NOT NULL) NOT VALID;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_nn;
                  ALTER TABLE lr_big ALTER COLUMN flag SET NOT NULL');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_code_nn');
SELECT * FROM lr('ALTER TABLE lr_big ADD COLUMN c1 int, VALIDATE CONSTRAINT lr_code_nn');
SELECT * FROM lr('ALTER TABLE lr_parent ADD COLUMN c1 int;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_code_nn');
SELECT * FROM lr('ALTER TABLE lr_big VALIDATE CONSTRAINT lr_code_nn');
SELECT * FROM lr('CREATE TABLE lr_new (a int);
                  ALTER TABLE lr_new ADD CONSTRAINT lr_new_ck CHECK (a > 0) NOT VALID;
                  ALTER TABLE lr_new VALIDATE CONSTRAINT lr_new_ck');
SELECT * FROM lr('TRUNCATE lr_big;
                  ALTER TABLE lr_big ADD CONSTRAINT lr_ck CHECK (flag >= 0) NOT VALID;
                  ALTER TABLE lr_big VALIDATE CONSTRAINT lr_ck');
SELECT * FROM lr('ALTER TABLE lr_elsewhere ADD CONSTRAINT lr_ck CHECK (a > 0) NOT VALID;
                  ALTER TABLE lr_elsewhere VALIDATE CONSTRAINT lr_ck');
SELECT statement, message, hint FROM migration_tools.lint(
    'ALTER TABLE lr_big ADD CONSTRAINT lr_ck CHECK (flag >= 0) NOT VALID;
     ALTER TABLE lr_big VALIDATE CONSTRAINT lr_ck')
WHERE rule = 'validate-in-same-transaction';

-- the whole finding, with message, hint and location
SELECT * FROM migration_tools.lint($$
SET lock_timeout = '1s';
-- add a flag
ALTER TABLE lr_big ADD COLUMN c1 int NOT NULL;
UPDATE lr_big SET note = 'x';
$$);

-- schema-qualified and unknown relations: unknown ones are assumed to exist
CREATE SCHEMA lr_s;
CREATE TABLE lr_s.t (a int);
INSERT INTO lr_s.t VALUES (1);	-- an empty table is indexed at once
SELECT * FROM lr('CREATE INDEX ON lr_s.t (a); CREATE INDEX ON lr_unknown (a)');

-- SET search_path in the script moves the names that follow, and is undone
SELECT * FROM lr('SET search_path = lr_s; CREATE INDEX ON t (a); RESET search_path; CREATE INDEX ON t (a)');
SELECT statement, locks FROM migration_tools.script_statements(
    'SET LOCAL search_path TO lr_s, public; LOCK t, lr_big; SET search_path = DEFAULT; LOCK t');
SHOW search_path;

-- the script is never run
SELECT count(*) FROM migration_tools.lint('DROP TABLE lr_big; DROP TABLE lr_parent CASCADE');
SELECT count(*) FROM lr_big;

DROP FUNCTION lr(text);
DROP SCHEMA lr_s CASCADE;
DROP MATERIALIZED VIEW lr_mv;
DROP TABLE lr_big, lr_parent, lr_part, lr_part_2021, lr_part_2022;
DROP TABLE lr_dom;
DROP DOMAIN lr_positive, lr_unused, lr_checked;
RESET migration_tools.lint_large_rows;

--
-- The rules against live tables and what the server really does with the
-- statements: every rule id on its canonical bad statement and not on the
-- safe alternative (the cases not covered above), rewrites and scans
-- checked against relfilenode changes and sequential scans, scripts that
-- drop, re-create or rename tables, require-lock-timeout and the SETs that
-- undo it, and the messages and hints.  lint_large_rows is back at its
-- default (10000) here.
--
-- tables with rows and statistics
CREATE TABLE live_big (id int PRIMARY KEY, v varchar(10), n int, t text,
                       j json, ts timestamp);
INSERT INTO live_big SELECT g, 'x', g, 'y', '{}', now() FROM generate_series(1, 20000) g;
CREATE TABLE live_small (id int PRIMARY KEY, big_id int);
CREATE TABLE live_parent (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE live_p1 (id int, k int);
INSERT INTO live_p1 SELECT g, 5 FROM generate_series(1, 20000) g;
CREATE TABLE live_p2 PARTITION OF live_parent FOR VALUES FROM (100) TO (200);
CREATE MATERIALIZED VIEW live_mv AS SELECT 1 AS x;
ANALYZE live_big, live_small, live_p1;
-- never analyzed (pg_class knows nothing of its rows yet), and analyzed
-- while empty then filled: the linter goes by their size now
CREATE TABLE live_fresh (id bigint PRIMARY KEY, n int);
INSERT INTO live_fresh SELECT g, g FROM generate_series(1, 50000) g;
CREATE TABLE live_grown (id bigint PRIMARY KEY, n int);
ANALYZE live_grown;
INSERT INTO live_grown SELECT g, g FROM generate_series(1, 50000) g;

-- the rule ids of a script, one string: "statement:rule/severity ..."
CREATE FUNCTION rules(s text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(statement || ':' || rule || '/' || severity, ' '
                             ORDER BY statement, rule COLLATE "C"), '-')
  FROM migration_tools.lint(s)
  WHERE rule <> 'require-lock-timeout'
$$;

-- What the server really does with a statement: REWRITE (new relfilenode),
-- SCAN (a sequential scan of the table), or none.  Run and rolled back.
CREATE FUNCTION effect(s text, rel regclass DEFAULT 'live_big') RETURNS text
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

-- Rules fire on bad statements (the cases not covered above) ...
SELECT s AS bad, rules(s) FROM (VALUES
  ('ALTER TABLE live_big ADD CONSTRAINT nn CHECK (n > 0) NOT VALID;
    ALTER TABLE live_big VALIDATE CONSTRAINT nn; ALTER TABLE live_big ALTER COLUMN n SET NOT NULL'),
  ('UPDATE live_big SET n = n + 1 WHERE id > 0'),
  ('UPDATE live_fresh SET n = n + 1'),
  ('DELETE FROM live_grown'),
  ('UPDATE live_big SET n = n + 1 WHERE id BETWEEN -10 AND 15000'),
  ('CREATE INDEX CONCURRENTLY ON live_parent (k)'),
  ('CREATE TABLE live_n (id bigint PRIMARY KEY, ts timestamp)')
) v(s);

-- ... and not on the safe alternative
SELECT s AS safe, rules(s) FROM (VALUES
  ('ALTER TABLE live_big ADD COLUMN x text DEFAULT ''a'' || ''b'''),
  ('ALTER TABLE live_big ADD CONSTRAINT nn CHECK (n IS NOT NULL AND n > 0) NOT VALID;
    ALTER TABLE live_big VALIDATE CONSTRAINT nn; ALTER TABLE live_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE live_big ADD CHECK (n IS NOT NULL) NOT VALID;
    ALTER TABLE live_big VALIDATE CONSTRAINT live_big_n_check; ALTER TABLE live_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE live_big ALTER COLUMN v TYPE varchar(20) USING v::varchar(20)'),
  ('DELETE FROM live_big WHERE id < 100'),
  ('UPDATE live_fresh SET n = n + 1 WHERE id = 7'),
  ('UPDATE live_big SET n = n + 1 WHERE 100 >= id'),
  ('ALTER TABLE live_p1 ADD CONSTRAINT kc CHECK (k >= 0 AND k < 100) NOT VALID;
    ALTER TABLE live_p1 VALIDATE CONSTRAINT kc;
    ALTER TABLE live_parent ATTACH PARTITION live_p1 FOR VALUES FROM (0) TO (100)'),
  ('ALTER TABLE live_big SET LOGGED')
) v(s);

-- The rules agree with the server: what lint() calls a rewrite or a scan
-- is one, and what it lets through is not.
SELECT s, effect(s), rules(s),
       (SELECT bool_or(rewrites) FROM migration_tools.lint(s)) AS lint_rewrites
FROM (VALUES
  ('ALTER TABLE live_big ALTER COLUMN n TYPE bigint'),
  ('ALTER TABLE live_big ALTER COLUMN n TYPE int'),
  ('ALTER TABLE live_big ALTER COLUMN v TYPE varchar(20)'),
  ('ALTER TABLE live_big ALTER COLUMN v TYPE varchar(5)'),
  ('ALTER TABLE live_big ALTER COLUMN v TYPE text'),
  ('ALTER TABLE live_big ALTER COLUMN t TYPE varchar(20)'),
  ('ALTER TABLE live_big ALTER COLUMN v TYPE varchar(20) USING v::varchar(20)'),
  ('ALTER TABLE live_big ALTER COLUMN j TYPE jsonb USING j::jsonb'),
  ('ALTER TABLE live_big ADD COLUMN x int DEFAULT 0'),
  ('ALTER TABLE live_big ADD COLUMN x int NOT NULL DEFAULT 0'),
  ('ALTER TABLE live_big ADD COLUMN x timestamptz DEFAULT clock_timestamp()'),
  ('ALTER TABLE live_big ADD COLUMN x int CHECK (x > 0)'),
  ('ALTER TABLE live_big ADD COLUMN x int GENERATED ALWAYS AS (n * 2) STORED'),
  ('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL'),
  ('ALTER TABLE live_big ADD CONSTRAINT c CHECK (n > 0)'),
  ('ALTER TABLE live_big ADD CONSTRAINT c CHECK (n > 0) NOT VALID'),
  ('ALTER TABLE live_big SET UNLOGGED'),
  ('ALTER TABLE live_big SET LOGGED'),
  ('ALTER TABLE live_big SET ACCESS METHOD heap')
) v(s);

-- SET NOT NULL after a validated CHECK (col IS NOT NULL) really skips the scan
-- (also when the IS NOT NULL is one term of an AND; not for CHECK (n > 0))
ALTER TABLE live_big ADD CONSTRAINT live_pos CHECK (n > 0);
SELECT effect('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL') AS effect,
       rules('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL');
ALTER TABLE live_big DROP CONSTRAINT live_pos;
ALTER TABLE live_big ADD CONSTRAINT live_nn CHECK (n > 0 AND n IS NOT NULL);
SELECT effect('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL') AS effect,
       rules('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL');
ALTER TABLE live_big DROP CONSTRAINT live_nn;
ALTER TABLE live_big ADD CONSTRAINT live_nn CHECK (n IS NOT NULL);
SELECT effect('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL') AS effect,
       rules('ALTER TABLE live_big ALTER COLUMN n SET NOT NULL');
ALTER TABLE live_big DROP CONSTRAINT live_nn;

-- Scripts: a table created, or dropped and re-created, or renamed away
-- earlier in the same script gets no "existing table" findings; the old
-- table under its new name still does.
SELECT s AS script, rules(s) FROM (VALUES
  ('CREATE TABLE live_n (id bigint, n bigint); CREATE INDEX ON live_n (n);
    ALTER TABLE live_n ADD COLUMN x int NOT NULL; ALTER TABLE live_n ALTER n TYPE int;
    UPDATE live_n SET n = 1; DROP TABLE live_n'),
  ('DROP TABLE IF EXISTS live_big; CREATE TABLE live_big (id bigint, n bigint);
    CREATE INDEX ON live_big (n); ALTER TABLE live_big ADD COLUMN q int NOT NULL'),
  ('ALTER TABLE live_big RENAME TO live_old; CREATE TABLE live_big (id bigint, n bigint);
    CREATE INDEX ON live_big (n); CREATE INDEX ON live_old (n)'),
  ('CREATE TABLE live_n AS SELECT * FROM live_big; CREATE INDEX ON live_n (n)'),
  ('SELECT * INTO live_n FROM live_big; CREATE INDEX ON live_n (n)'),
  ('CREATE TABLE live_n (LIKE live_big); CREATE INDEX ON live_n (n)'),
  ('TRUNCATE live_big; CREATE INDEX ON live_big (n)'),
  ('CREATE SCHEMA live_s; CREATE TABLE live_s.live_big (id bigint, n bigint);
    CREATE INDEX ON live_s.live_big (n)'),
  ('SET search_path = live_s2; CREATE TABLE live_big (id bigint, n bigint);
    CREATE INDEX ON public.live_big (n)'),
  ('WITH d AS (DELETE FROM live_big RETURNING *) SELECT count(*) FROM d'),
  ('WITH d AS (UPDATE live_big SET n = 1 RETURNING *) INSERT INTO live_small SELECT id, id FROM d')
) v(s);

-- require-lock-timeout: a raw script with DDL on an existing table and no
-- SET lock_timeout before it; not for a concurrent build, which waits for
-- older snapshots and must not run under a short lock_timeout.
SELECT s AS script,
       (SELECT string_agg(statement || ':' || rule, ' ') FROM migration_tools.lint(s)
        WHERE rule = 'require-lock-timeout') AS finding
FROM (VALUES
  ('SET statement_timeout = ''2s''; ALTER TABLE live_big ADD COLUMN z int'),
  ('SET lock_timeout = ''2s''; RESET lock_timeout; ALTER TABLE live_big ADD COLUMN z int'),
  ('SET lock_timeout = ''2s''; RESET ALL; ALTER TABLE live_big ADD COLUMN z int'),
  ('BEGIN; SET LOCAL lock_timeout = ''2s''; ALTER TABLE live_big ADD COLUMN z int; COMMIT;'),
  ('BEGIN; SET LOCAL lock_timeout = ''2s''; COMMIT; ALTER TABLE live_big ADD COLUMN z int'),
  ('CREATE INDEX CONCURRENTLY live_i ON live_big (n)'),
  ('DROP INDEX CONCURRENTLY live_big_pkey'),
  ('ALTER TABLE live_parent DETACH PARTITION live_p2 CONCURRENTLY'),
  ('CREATE TABLE live_n (id bigint); ALTER TABLE live_n ADD COLUMN z int')
) v(s);

-- Messages and hints name the problem and the safe alternative.
SELECT rule, severity, message, hint, relation, lock_mode, rewrites
FROM migration_tools.lint(
  'SET lock_timeout = ''1s'';
   CREATE INDEX live_i ON live_big (n);
   ALTER TABLE live_big ALTER n TYPE bigint;
   ALTER TABLE live_big ALTER n SET NOT NULL;
   ALTER TABLE live_small ADD CONSTRAINT f FOREIGN KEY (big_id) REFERENCES live_big (id);
   ALTER TABLE live_big ADD COLUMN x int NOT NULL;
   ALTER TABLE live_big ADD COLUMN y float8 DEFAULT random();
   ALTER TABLE live_big ADD COLUMN w int CHECK (w > 0);
   UPDATE live_big SET n = 1')
ORDER BY statement, rule COLLATE "C";

-- every finding has a message and a hint; severities are the three levels
SELECT count(*) FILTER (WHERE message IS NULL OR message = '') AS no_message,
       count(*) FILTER (WHERE hint IS NULL OR hint = '') AS no_hint,
       count(*) FILTER (WHERE severity NOT IN ('error', 'warning', 'info')) AS bad_severity
FROM migration_tools.lint(
  'CREATE INDEX live_i ON live_big (n); DROP INDEX live_big_pkey; VACUUM FULL live_big;
   CLUSTER live_big USING live_big_pkey; LOCK TABLE live_big; TRUNCATE live_big;
   REINDEX TABLE live_big; CREATE TABLE live_n (id serial PRIMARY KEY, j json, ts timestamp);
   ALTER TABLE live_big RENAME n TO m; BEGIN;');

DROP FUNCTION rules(text), effect(text, regclass);
DROP MATERIALIZED VIEW live_mv;
DROP TABLE live_big, live_small, live_parent, live_p1, live_fresh, live_grown;
