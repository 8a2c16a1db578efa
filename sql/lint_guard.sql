--
-- The utility guard (migration_tools.guard): refuses, outside apply(), the
-- DDL that lint() flags at error level, with the same message and hint.
--
CREATE TABLE lg (id bigint PRIMARY KEY, a int);
INSERT INTO lg SELECT g, g FROM generate_series(1, 100) g;

-- off by default: nothing is refused
SHOW migration_tools.guard;
CREATE INDEX lg_a ON lg (a);
DROP INDEX lg_a;

SET migration_tools.guard = on;
CREATE INDEX lg_a ON lg (a);
ALTER TABLE lg ALTER COLUMN a SET NOT NULL;
ALTER TABLE lg ALTER COLUMN a TYPE bigint;
ALTER TABLE lg ADD CONSTRAINT lg_ck CHECK (a > 0);
VACUUM FULL lg;
-- the same statements, done safely, pass
ALTER TABLE lg ADD CONSTRAINT lg_ck CHECK (a > 0) NOT VALID;
ALTER TABLE lg VALIDATE CONSTRAINT lg_ck;
ALTER TABLE lg ADD CONSTRAINT lg_nn CHECK (a IS NOT NULL) NOT VALID;
ALTER TABLE lg VALIDATE CONSTRAINT lg_nn;
ALTER TABLE lg ALTER COLUMN a SET NOT NULL;
ALTER TABLE lg DROP CONSTRAINT lg_nn;
ALTER TABLE lg ALTER COLUMN a DROP NOT NULL;
ALTER TABLE lg ADD COLUMN b int DEFAULT 0;
-- warnings are not refused
ALTER TABLE lg DROP COLUMN b;
-- tables created in the same transaction are new: nothing to protect
BEGIN;
CREATE TABLE lg_new (id bigint PRIMARY KEY, a int);
INSERT INTO lg_new VALUES (1, 1);	-- not empty once committed
CREATE INDEX ON lg_new (a);
ALTER TABLE lg_new ALTER COLUMN a SET NOT NULL;
ALTER TABLE lg_new ALTER COLUMN a TYPE bigint;
COMMIT;
-- temporary tables are this session's own
CREATE TEMP TABLE lg_temp (id bigint, a int);
CREATE INDEX ON lg_temp (a);
ALTER TABLE lg_temp ALTER COLUMN a SET NOT NULL;
-- but not once committed
CREATE INDEX ON lg_new (a);
-- statements whose inner query the server has already analysed
CREATE TABLE lg_copy AS SELECT * FROM lg WHERE a > 50;
-- (the plan is not shown: its numbers print differently from PostgreSQL 18 on)
\o /dev/null
EXPLAIN (ANALYZE, COSTS off, TIMING off, SUMMARY off) CREATE TABLE lg_copy2 AS SELECT * FROM lg;
\o
CREATE INDEX ON lg_copy (a);
DROP TABLE lg_copy, lg_copy2;
-- statements run from functions are guarded too
DO $$ BEGIN EXECUTE 'CREATE INDEX ON lg (a)'; END $$;
-- a DO block is read before it runs: refused as a whole, nothing done
DO $$ BEGIN INSERT INTO lg VALUES (-1); IF true THEN CREATE INDEX ON lg (a); END IF; END $$;
SELECT count(*) FROM lg WHERE a = -1;
-- built at run time: the guard sees the statement when it runs
DO $$ DECLARE t text := 'lg'; BEGIN EXECUTE format('CREATE INDEX ON %I (a)', t); END $$;
-- a body that does not compile fails as the server says, not in the guard
DO $$ BEGIN CREATE INDEX ON lg (a) garbage; END $$;

-- apply() is not guarded: it lints the whole script itself
SELECT migration_tools.apply('lint_guard_1', 'CREATE INDEX lg_by_apply ON lg (a)');
SELECT migration_tools.apply('lint_guard_1', 'CREATE INDEX lg_by_apply ON lg (a)',
                             allow => ARRAY['create-index-non-concurrently']);
SELECT indexrelid::regclass FROM pg_index WHERE indexrelid = 'lg_by_apply'::regclass;
-- nor is anything while migration_tools.applying_version is set
BEGIN;
SET LOCAL migration_tools.applying_version = 'manual';
CREATE INDEX lg_applying ON lg (a);
ROLLBACK;

-- only superusers may turn it off or pose as apply(); for any other role
-- the guard refuses the same statements, on the role's own tables too, and
-- lets the safe recipes through
CREATE ROLE lg_user;
GRANT ALL ON lg TO lg_user;
GRANT CREATE ON SCHEMA public TO lg_user;
SET ROLE lg_user;
SET migration_tools.guard = off;
BEGIN;
SET LOCAL migration_tools.applying_version = 'pretend';
ROLLBACK;
CREATE TABLE lg_own (id bigint PRIMARY KEY, n int);
INSERT INTO lg_own VALUES (1, 1);	-- an empty table is indexed at once
CREATE INDEX lg_own_n ON lg_own (n);
ALTER TABLE lg_own ADD COLUMN c int CHECK (c > 0);
ALTER TABLE lg_own ADD COLUMN c int;
ALTER TABLE lg_own ADD CONSTRAINT lg_own_c CHECK (c > 0) NOT VALID;
ALTER TABLE lg_own VALIDATE CONSTRAINT lg_own_c;
DROP TABLE lg_own;
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM lg_user;
REVOKE ALL ON lg FROM lg_user;
DROP ROLE lg_user;

RESET migration_tools.guard;
CREATE INDEX lg_a ON lg (a);
DROP TABLE lg, lg_new;
DELETE FROM migration_tools.migrations WHERE version = 'lint_guard_1';
