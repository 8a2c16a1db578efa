--
-- DO blocks: the linter reads PL/pgSQL with the server's PL/pgSQL compiler
-- (never running the block) and lints the SQL each statement runs.
--
SET migration_tools.lint_large_rows = 100;

CREATE TABLE ld_parent (id bigint PRIMARY KEY);
INSERT INTO ld_parent SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE ld_big (id bigint PRIMARY KEY, parent_id bigint, flag int, note text);
INSERT INTO ld_big SELECT g, g, g % 2, NULL FROM generate_series(1, 1000) g;
ANALYZE ld_parent, ld_big;

CREATE FUNCTION ld(script text)
RETURNS TABLE(statement int, rule text, severity text, message text)
LANGUAGE sql AS $$
    SELECT statement, rule, severity, message
    FROM migration_tools.lint(script)
    WHERE rule <> 'require-lock-timeout'
$$;

-- DDL, DML and EXECUTE of a constant string: each linted, with its line
SELECT * FROM ld($$
SET lock_timeout = '2s';
DO $do$
BEGIN
    ALTER TABLE ld_big ADD COLUMN c1 int NOT NULL;
    UPDATE ld_big SET note = 'x';
    EXECUTE 'CREATE INDEX ld_big_note ON ld_big (note)';
END
$do$;
$$);

-- declarations, IF, loops and variables: a variable compared to a column
-- is a value (id = v is one row by the primary key), not a join
SELECT * FROM ld($$
DO $do$
DECLARE
    v bigint := 5;
    r record;
    n int;
BEGIN
    SELECT count(*) INTO n FROM ld_big;
    IF n > 0 THEN
        UPDATE ld_big SET flag = 1 WHERE id = v;
        DELETE FROM ld_big WHERE flag = 7;
    ELSIF n < 0 THEN
        ALTER TABLE ld_big DROP COLUMN note;
    ELSE
        CREATE INDEX CONCURRENTLY ld_big_flag ON ld_big (flag);
    END IF;
    FOR r IN SELECT id FROM ld_parent LOOP
        UPDATE ld_big SET note = 'y' WHERE id = r.id;
    END LOOP;
    WHILE n > 0 LOOP
        n := n - 1;
        EXECUTE 'ALTER TABLE ld_big ' || 'ALTER COLUMN flag SET NOT NULL';
    END LOOP;
EXCEPTION WHEN others THEN
    TRUNCATE ld_big;
END
$do$;
$$);

-- a statement in a loop runs once per iteration, all in one transaction:
-- a loop over a query or an integer range multiplies the rows it touches
SELECT * FROM ld($$
DO $do$
DECLARE r record; i int; c CURSOR FOR SELECT id FROM ld_parent WHERE id <= 300;
BEGIN
    FOR r IN c LOOP
        UPDATE ld_big SET flag = 4 WHERE id = r.id;
    END LOOP;
    FOR r IN SELECT id FROM ld_parent LOOP
        UPDATE ld_big SET note = 'y' WHERE id = r.id;
    END LOOP;
    FOR r IN SELECT id FROM ld_parent WHERE id < 50 LOOP
        UPDATE ld_big SET note = 'y' WHERE id = r.id;
    END LOOP;
    FOR r IN SELECT id FROM ld_parent LIMIT 10 LOOP
        DELETE FROM ld_big WHERE id = r.id;
    END LOOP;
    FOR i IN 1 .. 50 LOOP
        DELETE FROM ld_big WHERE id = i;
    END LOOP;
    FOR i IN REVERSE 100000 .. 1 BY 10 LOOP
        DELETE FROM ld_big WHERE id = i;
    END LOOP;
    LOOP
        UPDATE ld_big SET flag = 3 WHERE id = 1;
        EXIT;
    END LOOP;
    FOR i IN 1 .. 20 LOOP
        FOR r IN SELECT id FROM ld_parent WHERE id <= 10 LOOP
            DELETE FROM ld_big WHERE id = r.id + i;
        END LOOP;
    END LOOP;
END
$do$;
$$);

-- EXECUTE of text built at run time cannot be checked
SELECT * FROM ld($$
DO $do$
DECLARE t text;
BEGIN
    FOR t IN SELECT relname FROM pg_class WHERE relname LIKE 'ld_%' LOOP
        EXECUTE format('CREATE INDEX ON %I (id)', t);
    END LOOP;
    EXECUTE 'CREATE INDEX ON ld_big (' || t || ')';
    EXECUTE 'CREAT INDEX ON ld_big (flag)';
END
$do$;
$$);

-- the lock_timeout set inside the block counts; a COMMIT ends its block's
-- transaction only; a DO in another language is not read
SELECT statement, rule, severity FROM migration_tools.lint($$
DO $do$ BEGIN PERFORM set_config('lock_timeout', '2s', false); ALTER TABLE ld_big ADD COLUMN c2 int; END $do$;
DO $do$ BEGIN ALTER TABLE ld_parent ADD COLUMN c2 int; END $do$;
$$);
SELECT statement, rule, severity FROM migration_tools.lint($$
DO LANGUAGE plperl $do$ my $x = 1; $do$;
$$);
SELECT statement, rule, severity, message FROM migration_tools.lint($$
DO $do$ BEGIN PERFORM 1; COMMIT; END $do$;
BEGIN;
DO $do$ BEGIN PERFORM 1; COMMIT; END $do$;
COMMIT;
$$);

-- a table the block creates is new for the statements after it, and
-- a VALIDATE in the same block holds the ADD's lock
SELECT * FROM ld($$
DO $do$
BEGIN
    CREATE TABLE ld_new (a int);
    CREATE INDEX ON ld_new (a);
    ALTER TABLE ld_big ADD CONSTRAINT ld_fk FOREIGN KEY (parent_id) REFERENCES ld_parent (id) NOT VALID;
    ALTER TABLE ld_big VALIDATE CONSTRAINT ld_fk;
END
$do$;
$$);

-- a body that cannot be compiled before the script runs (it uses a type
-- the script creates) is read as plain SQL if it is that, and said so
SELECT * FROM ld($$
CREATE TYPE ld_mood AS ENUM ('ok');
DO $do$
DECLARE m ld_mood;
BEGIN
    CREATE INDEX ON ld_big (flag);
END
$do$;
$$);

-- a syntax error in the body is an ERROR that points into the script
SELECT * FROM ld($$
SELECT 1;
DO $do$
BEGIN
    UPDATE ld_big SET flag = 1 WHER id = 1;
END
$do$;
$$);
SELECT * FROM ld($s$DO $do$ BEGIN IF true THEN NULL; END $do$$s$);
SELECT * FROM ld($$DO 'BEGIN PERFORM 1 +; END'$$);

-- the locks apply() waits for include those of the block's statements
SELECT statement, command_tag, locks FROM migration_tools.script_statements($$
DO $do$
DECLARE r record;
BEGIN
    FOR r IN SELECT id FROM ld_parent LOOP
        UPDATE ld_big SET flag = 2 WHERE id = r.id;
    END LOOP;
    EXECUTE 'LOCK TABLE ld_parent IN SHARE MODE';
END
$do$
$$);

-- foreign keys as Drizzle writes them: each wrapped in a DO block that
-- ignores duplicate_object, between statement-breakpoint comments; on an
-- existing table it is still a validated foreign key, on a table created
-- earlier in the script it is not
SELECT * FROM ld($x$
CREATE TABLE ld_c (id bigint PRIMARY KEY, parent_id bigint);
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "ld_big" ADD CONSTRAINT "ld_big_parent_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."ld_parent"("id") ON DELETE no action ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "ld_c" ADD CONSTRAINT "ld_c_parent_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."ld_parent"("id");
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
$x$);

-- an explicit LANGUAGE plpgsql in lower case with an exception handler,
-- a block with nothing to lint, an empty block
SELECT * FROM ld($$DO LANGUAGE plpgsql $do$ begin update ld_big set flag = 1; exception when others then null; end; $do$ $$);
SELECT * FROM ld($$DO $do$ BEGIN PERFORM 1; END $do$ $$);
SELECT * FROM ld($$DO $do$ BEGIN END $do$ $$);

-- without plpgsql in the database: plain SQL blocks only, as before
BEGIN;
UPDATE pg_language SET lanname = 'plpgsql_hidden' WHERE lanname = 'plpgsql';
SELECT * FROM ld($$
DO $do$ BEGIN CREATE INDEX ON ld_big (flag); END $do$;
DO $do$ DECLARE v int; BEGIN CREATE INDEX ON ld_big (flag); END $do$;
$$);
ROLLBACK;

-- apply() refuses a migration that hides an unsafe statement in a DO block
SELECT migration_tools.apply('ld_1', $$
DO $do$ BEGIN IF true THEN CREATE INDEX ld_big_flag ON ld_big (flag); END IF; END $do$
$$);
SELECT count(*) FROM pg_indexes WHERE indexname = 'ld_big_flag';

DROP FUNCTION ld(text);
DROP TABLE ld_big, ld_parent;
RESET migration_tools.lint_large_rows;
