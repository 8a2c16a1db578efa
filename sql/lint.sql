--
-- Statement analysis: how the server's parser splits a script, and what
-- each statement is and locks (migration_tools.script_statements), then
-- the guard and syntax errors.  The rules themselves: lint_rules.sql.
--
CREATE TABLE lt_parent (id bigint PRIMARY KEY);
CREATE TABLE lt_child (id bigint PRIMARY KEY, parent_id bigint, v text);
CREATE INDEX lt_child_v ON lt_child (v);

SELECT statement, location, length, command_tag, is_ddl, needs_top_level,
       is_transaction_control, locks, statement_sql
FROM migration_tools.script_statements($$
  -- leading comment
  BEGIN;
  CREATE INDEX CONCURRENTLY lt_i1 ON lt_child (parent_id);
  ALTER TABLE lt_child ADD CONSTRAINT lt_fk FOREIGN KEY (parent_id) REFERENCES lt_parent (id) NOT VALID;
  ALTER TABLE lt_child VALIDATE CONSTRAINT lt_fk;
  /* block /* nested */ comment */ VACUUM lt_child; ANALYZE lt_child;
  SET lock_timeout = '1s';
  UPDATE lt_child SET v = 'x' FROM lt_parent WHERE lt_parent.id = lt_child.parent_id;
  DROP INDEX lt_child_v;
  DROP INDEX CONCURRENTLY IF EXISTS lt_nothing;
  REINDEX TABLE CONCURRENTLY lt_child;
  CREATE TABLE lt_new (id int REFERENCES lt_parent);
  LOCK TABLE lt_parent IN SHARE MODE;
  TRUNCATE lt_child;
  COMMIT
$$);

SELECT statement, command_tag, is_ddl, needs_top_level, locks
FROM migration_tools.script_statements($$
  CREATE DATABASE lt_db; DROP DATABASE lt_db; ALTER SYSTEM SET work_mem = '1MB';
  CLUSTER; CLUSTER lt_child USING lt_child_pkey; VACUUM FULL lt_child;
  ALTER TYPE lt_enum ADD VALUE 'x'; REINDEX DATABASE lt; REINDEX INDEX lt_child_v;
  ALTER TABLE lt_child ALTER v SET STATISTICS 100;
  ALTER TABLE lt_child ADD CONSTRAINT c CHECK (id > 0) NOT VALID;
  ALTER INDEX lt_child_v RENAME TO lt_child_v2;
  ALTER TABLE lt_child RENAME v TO w;
  CREATE TRIGGER t BEFORE INSERT ON lt_child FOR EACH ROW EXECUTE FUNCTION f();
  REFRESH MATERIALIZED VIEW CONCURRENTLY lt_mv;
  SELECT * FROM lt_child JOIN lt_parent ON true FOR UPDATE;
  INSERT INTO lt_parent SELECT id FROM lt_child;
  DELETE FROM lt_child USING lt_parent WHERE lt_parent.id = lt_child.parent_id;
  COMMIT PREPARED 'x'; DISCARD ALL; SHOW work_mem;
  ALTER SUBSCRIPTION s REFRESH PUBLICATION; ALTER SUBSCRIPTION s SET PUBLICATION p;
  ALTER SUBSCRIPTION s ADD PUBLICATION p WITH (refresh = false); ALTER SUBSCRIPTION s DISABLE;
  ALTER DATABASE lt SET TABLESPACE pg_default; ALTER TABLE lt_child DETACH PARTITION p CONCURRENTLY
$$);

-- statements inside statements
SELECT statement, command_tag, locks
FROM migration_tools.script_statements($$
  PREPARE lt_p AS UPDATE lt_child SET v = $1;
  CREATE TABLE lt_x AS EXECUTE lt_p('a');
  EXPLAIN (COSTS off) CREATE TABLE lt_y AS SELECT * FROM lt_parent;
  EXPLAIN EXECUTE lt_p('b');
  COPY (SELECT * FROM lt_child) TO STDOUT;
  COPY (DELETE FROM lt_child RETURNING *) TO STDOUT;
  WITH d AS (DELETE FROM lt_parent RETURNING id) INSERT INTO lt_child (id) SELECT id FROM d;
  MERGE INTO lt_child c USING lt_parent p ON c.parent_id = p.id WHEN MATCHED THEN DELETE
$$);

-- views, comments, triggers, policies and rules lock their table
SELECT statement, command_tag, locks
FROM migration_tools.script_statements($$
  CREATE VIEW lt_v AS SELECT c.id FROM lt_child c JOIN lt_parent p ON p.id = c.parent_id;
  CREATE OR REPLACE VIEW lt_v2 AS SELECT 1;
  COMMENT ON TABLE lt_child IS 'x'; COMMENT ON COLUMN lt_child.v IS 'y';
  DROP TRIGGER IF EXISTS t ON lt_child; DROP POLICY p ON public.lt_parent; DROP RULE r ON lt_child
$$);

-- relations that do not exist, in other databases, schemas that do not exist
SELECT statement, locks
FROM migration_tools.script_statements($$
  ALTER TABLE nosuch ADD COLUMN a int; SELECT * FROM nosuchschema.t;
  SELECT * FROM otherdb.public.t; REFRESH MATERIALIZED VIEW lt_nomv;
$$);

-- empty scripts
SELECT count(*) FROM migration_tools.script_statements('');
SELECT count(*) FROM migration_tools.script_statements(' ; ;; -- nothing');
SELECT count(*) FROM migration_tools.lint('');

-- syntax errors: an ERROR that points into the script, never a crash
SELECT * FROM migration_tools.lint('SELECT 1; SELEC 2');
SELECT * FROM migration_tools.lint(E'CREATE TABLE t (a int);\n\nALTER TABLE t ADD COLUMN (');
SELECT * FROM migration_tools.script_statements('SELECT ''unterminated');
SELECT * FROM migration_tools.lint('SELECT * FROM a.b.c.d');
-- a long script: the error shows the lines around it and the script line
SELECT * FROM migration_tools.lint(repeat(E'SELECT 1;\n', 1000) || E'SELECT (\n' || repeat(E'SELECT 2;\n', 1000));
SELECT * FROM migration_tools.lint(repeat('SELECT ''x''; ', 1000) || 'SELEC 1; ' || repeat('SELECT 2; ', 1000));
-- control characters and deep nesting: only the error code is shown
DO $$
DECLARE
    inputs text[] := ARRAY[E'\x01\x7f garbage \x02',
                           repeat('(', 20000) || '1' || repeat(')', 20000),
                           'SELECT ' || repeat('-', 100000) || '1',
                           'ALTER TABLE t ADD CHECK (' || repeat('NOT ', 5000) || 'true)'];
    i int;
    n int;
BEGIN
    FOR i IN 1 .. array_length(inputs, 1) LOOP
        BEGIN
            SELECT count(*) INTO n FROM migration_tools.lint(inputs[i]);
            RAISE NOTICE 'input %: % findings', i, n;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'input %: error %', i, SQLSTATE;
        END;
    END LOOP;
END
$$;
SELECT count(*) FROM migration_tools.lint(NULL);

-- GUCs
SHOW migration_tools.lint_level;
SHOW migration_tools.lint_large_rows;
SET migration_tools.lint_level = 'nonsense';
SET migration_tools.lint_level = 'warning';
RESET migration_tools.lint_level;

DROP TABLE lt_child, lt_parent;

-- Odd input: empty statements between semicolons keep the numbers and
-- positions of the others; quoted identifiers in any script; a COPY FROM
-- stdin; a psql meta-command; two statements without a semicolon; an
-- unterminated dollar quote.
CREATE TABLE lt_odd (id int PRIMARY KEY, n int);
INSERT INTO lt_odd VALUES (1, 1);	-- an empty table is indexed at once
SELECT statement, rule, location FROM migration_tools.lint(
  'SELECT 1;;; CREATE INDEX i ON lt_odd (n);; CREATE INDEX j ON lt_odd (n)')
WHERE rule <> 'require-lock-timeout';
SELECT statement, rule, relation FROM migration_tools.lint(
  'CREATE TABLE "ünï©ødé 😀" (id bigint); CREATE INDEX "😀" ON "ünï©ødé 😀" (id);
   ALTER TABLE lt_odd ADD COLUMN "ÄÖ😀" int NOT NULL')
WHERE rule <> 'require-lock-timeout';
SELECT count(*) FROM migration_tools.lint('DO $$ BEGIN PERFORM 1; END $$; COPY lt_odd FROM stdin');
SELECT * FROM migration_tools.lint('\set x 1');
SELECT * FROM migration_tools.lint('CREATE INDEX i ON lt_odd (n)
CREATE INDEX j ON lt_odd (n)');
SELECT * FROM migration_tools.lint('SELECT $$ unterminated');
DROP TABLE lt_odd;

-- The relation locks apply() waits for before each attempt (from the
-- parser, script_statements()) are the ones the server then takes: the
-- strongest mode per table, compared with pg_locks after running the
-- statement (rolled back).
CREATE TABLE lt_ref (id bigint PRIMARY KEY);
CREATE TABLE lt_fk (id bigint PRIMARY KEY, ref_id bigint);
ALTER TABLE lt_fk ADD CONSTRAINT lt_fk_ref FOREIGN KEY (ref_id) REFERENCES lt_ref (id) NOT VALID;
CREATE FUNCTION locks_of(s text) RETURNS TABLE (predicted text, actual text)
LANGUAGE plpgsql AS $$
DECLARE
  p text;
  a text;
BEGIN
  CREATE TEMP TABLE rels ON COMMIT DROP AS
    SELECT oid, relname FROM pg_class WHERE relname LIKE 'lt\_%' AND relkind IN ('r', 'p');
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
  ('ALTER TABLE lt_fk VALIDATE CONSTRAINT lt_fk_ref'),
  ('ALTER TABLE lt_fk ADD CONSTRAINT lt_fk2 FOREIGN KEY (ref_id) REFERENCES lt_ref (id) NOT VALID'),
  ('ALTER TABLE lt_fk ADD COLUMN r2 bigint REFERENCES lt_ref (id)'),
  ('DROP TABLE lt_fk'),
  ('DROP TABLE lt_ref CASCADE'),
  ('TRUNCATE lt_ref CASCADE'),
  ('CREATE INDEX lt_fk_ref_i ON lt_fk (ref_id)'),
  ('CREATE TRIGGER lt_tr BEFORE UPDATE ON lt_fk FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()'),
  ('COMMENT ON TABLE lt_fk IS ''x'''),
  ('ALTER TABLE lt_fk ALTER COLUMN ref_id SET STATISTICS 100'),
  ('ALTER TABLE lt_fk RENAME COLUMN ref_id TO ref'),
  ('UPDATE lt_fk SET ref_id = NULL WHERE id = 1'),
  ('INSERT INTO lt_ref SELECT id FROM lt_fk'),
  ('LOCK TABLE lt_ref IN SHARE MODE'),
  ('ANALYZE lt_fk'),
  ('DO $$ BEGIN ALTER TABLE lt_fk ADD CONSTRAINT lt_fk3 FOREIGN KEY (ref_id) REFERENCES lt_ref (id) NOT VALID;
    EXCEPTION WHEN duplicate_object THEN NULL; END $$')
) v(s), locks_of(s) l;

DROP FUNCTION locks_of(text);
DROP TABLE lt_fk, lt_ref;
