--
-- Linter accuracy against what the server really does (issue 19): one
-- section per defect, each with the statement the server runs and the
-- locks, rewrites and findings lint() and script_statements() predict.
--
SET migration_tools.lint_large_rows = 100;

CREATE TABLE la_users (id bigint PRIMARY KEY);
INSERT INTO la_users SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE la_big (id bigint PRIMARY KEY, user_id bigint, flag int);
INSERT INTO la_big SELECT g, g, g % 2 FROM generate_series(1, 1000) g;
-- added NOT VALID by an earlier migration
ALTER TABLE la_big ADD CONSTRAINT la_big_flag_not_null CHECK (flag IS NOT NULL) NOT VALID;
ALTER TABLE la_big ADD CONSTRAINT la_big_id_positive CHECK (id > 0) NOT VALID;
CREATE TABLE la_part (id bigint, at date) PARTITION BY RANGE (at);
CREATE TABLE la_part_2020 PARTITION OF la_part FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE DOMAIN la_code AS int;
CREATE DOMAIN la_small_code AS la_code;
CREATE DOMAIN la_unused AS int;
CREATE TABLE la_coded (id bigint, code la_code);
CREATE TABLE la_small (id bigint, code la_small_code);
CREATE VIEW la_coded_v AS SELECT code FROM la_coded;
ALTER DOMAIN la_code ADD CONSTRAINT la_code_positive CHECK (VALUE > 0) NOT VALID;
CREATE MATERIALIZED VIEW la_mv AS
    SELECT b.flag, count(*) FROM la_big b JOIN la_users u ON u.id = b.user_id GROUP BY b.flag;
ANALYZE la_users, la_big, la_part_2020;

CREATE FUNCTION la(script text)
RETURNS TABLE(statement int, rule text, severity text, relation text,
              lock_mode text, rewrites boolean)
LANGUAGE sql AS $$
    SELECT statement, rule, severity, relation, lock_mode, rewrites
    FROM migration_tools.lint(script)
$$;

-- 1. SET NOT NULL after the script validates a NOT VALID
-- CHECK (col IS NOT NULL) of an earlier migration: the server proves NOT
-- NULL from the validated check and does not scan.  Right after the
-- VALIDATE (which takes only SHARE UPDATE EXCLUSIVE) or in a transaction of
-- its own, no finding; a CHECK that proves nothing about the column still
-- leaves SET NOT NULL scanning.
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big VALIDATE CONSTRAINT la_big_flag_not_null;
                  ALTER TABLE la_big ALTER COLUMN flag SET NOT NULL');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big VALIDATE CONSTRAINT la_big_flag_not_null;
                  COMMIT;
                  SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ALTER COLUMN flag SET NOT NULL');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big VALIDATE CONSTRAINT la_big_id_positive;
                  COMMIT;
                  SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ALTER COLUMN flag SET NOT NULL');
-- without the VALIDATE the check is not valid: SET NOT NULL scans
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ALTER COLUMN flag SET NOT NULL');

-- 10. VALIDATE in the transaction of the ADD CONSTRAINT ... NOT VALID: the
-- validating scan runs under the ADD's ACCESS EXCLUSIVE (CHECK) or SHARE
-- ROW EXCLUSIVE (foreign key) lock, so it is an error, and apply() at the
-- default lint_level refuses it.
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD CONSTRAINT la_c CHECK (flag >= 0) NOT VALID;
                  ALTER TABLE la_big VALIDATE CONSTRAINT la_c');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD CONSTRAINT la_fk FOREIGN KEY (user_id) REFERENCES la_users NOT VALID;
                  ALTER TABLE la_big VALIDATE CONSTRAINT la_fk');
SELECT rule, severity FROM migration_tools.lint_rules()
WHERE rule = 'validate-in-same-transaction';

-- 2. ADD COLUMN ... DEFAULT <non-null> REFERENCES: the server validates the
-- new foreign key by scanning the table under ACCESS EXCLUSIVE.  Without a
-- default (or DEFAULT NULL) every row is NULL and nothing is scanned.
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD COLUMN owner_id bigint DEFAULT 1 REFERENCES la_users (id)');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD COLUMN owner_id bigint REFERENCES la_users (id)');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD COLUMN owner_id bigint DEFAULT NULL REFERENCES la_users (id)');

-- 4. CREATE TABLE with a table-level FOREIGN KEY: SHARE ROW EXCLUSIVE on
-- the referenced table (for its RI triggers), as with a column REFERENCES,
-- and so a lock_timeout is wanted.
SELECT statement, locks FROM migration_tools.script_statements(
    'CREATE TABLE la_child (id bigint, user_id bigint, FOREIGN KEY (user_id) REFERENCES la_users)');
SELECT statement, locks FROM migration_tools.script_statements(
    'CREATE TABLE la_child (id bigint, user_id bigint REFERENCES la_users)');
SELECT * FROM la('CREATE TABLE la_child (id bigint, user_id bigint, CONSTRAINT la_child_fk FOREIGN KEY (user_id) REFERENCES la_users)');
SELECT * FROM la('CREATE TABLE la_child (id bigint, user_id bigint REFERENCES la_users)');

-- 6. DETACH PARTITION ... CONCURRENTLY: the first transaction takes SHARE
-- UPDATE EXCLUSIVE, the second one ACCESS EXCLUSIVE on the partition.
SELECT statement, locks FROM migration_tools.script_statements(
    'ALTER TABLE la_part DETACH PARTITION la_part_2020 CONCURRENTLY');

-- 7. REINDEX SYSTEM: the server refuses CONCURRENTLY for system catalogs,
-- so the hint must not recommend it.
SELECT rule, severity, hint FROM migration_tools.lint('REINDEX SYSTEM la_db');
SELECT rule, severity, hint FROM migration_tools.lint('REINDEX DATABASE la_db');

-- 8. REFRESH MATERIALIZED VIEW: a new heap replaces the old one (a
-- rewrite), and the view's query reads its source tables (ACCESS SHARE).
SELECT statement, locks FROM migration_tools.script_statements(
    'REFRESH MATERIALIZED VIEW la_mv');
SELECT * FROM la('SET lock_timeout = ''1s''; REFRESH MATERIALIZED VIEW la_mv');

-- 9. A default calling a function that does not exist: the statement
-- fails, it does not rewrite the table.  A volatile one still rewrites.
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD COLUMN c1 text DEFAULT la_no_such_function()');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER TABLE la_big ADD COLUMN c1 float8 DEFAULT random()');

-- 3. ALTER DOMAIN that checks values (VALIDATE CONSTRAINT, ADD CHECK
-- without NOT VALID, SET NOT NULL): the server scans every table with a
-- column of the domain, or of a domain over it, under SHARE (PostgreSQL 15
-- to 18, VALIDATE too); views are not scanned.  ADD ... NOT VALID scans
-- nothing, nor does a domain no table uses.
SELECT statement, locks FROM migration_tools.script_statements(
    'ALTER DOMAIN la_code VALIDATE CONSTRAINT la_code_positive;
     ALTER DOMAIN la_code ADD CONSTRAINT la_code_small CHECK (VALUE < 1000);
     ALTER DOMAIN la_code SET NOT NULL;
     ALTER DOMAIN la_code ADD CONSTRAINT la_code_small CHECK (VALUE < 1000) NOT VALID;
     ALTER DOMAIN la_unused SET NOT NULL');
SELECT * FROM la('ALTER DOMAIN la_code VALIDATE CONSTRAINT la_code_positive');
SELECT * FROM la('SET lock_timeout = ''1s'';
                  ALTER DOMAIN la_code ADD CONSTRAINT la_code_small CHECK (VALUE < 1000);
                  ALTER DOMAIN la_code SET NOT NULL;
                  ALTER DOMAIN la_code ADD CONSTRAINT la_code_big CHECK (VALUE > 1000) NOT VALID;
                  ALTER DOMAIN la_unused SET NOT NULL');

DROP FUNCTION la(text);
DROP MATERIALIZED VIEW la_mv;
DROP VIEW la_coded_v;
DROP TABLE la_part, la_big, la_users, la_coded, la_small;
DROP DOMAIN la_small_code, la_code, la_unused;
