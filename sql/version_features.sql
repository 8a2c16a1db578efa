-- What differs between the PostgreSQL versions migration_tools supports
-- (src/compat.h).  The statements whose output depends on the version come
-- last: version_features.out is PostgreSQL 18's, version_features_1.out
-- that of 15 and 17.
CREATE TABLE vf (id int PRIMARY KEY, a int NOT NULL, b int);
INSERT INTO vf SELECT g, g, g FROM generate_series(1, 1000) g;
ANALYZE vf;

-- NOT NULL belongs to the column in the catalog description on every
-- version (18 also keeps it as a pg_constraint row, which is not listed:
-- a fingerprint taken before an upgrade to 18 still matches)
SELECT object_type, object, definition FROM migration_tools.catalog_objects()
WHERE object LIKE '%vf%' ORDER BY 1, 2;

-- a stored generated column is written into every row
SELECT rule FROM migration_tools.lint(
  'ALTER TABLE vf ADD COLUMN s int GENERATED ALWAYS AS (a * 2) STORED');

-- linting a DO block runs nothing of it, not even its declarations
CREATE SEQUENCE vf_seq;
SELECT statement, rule FROM migration_tools.lint($$
DO $do$
DECLARE n bigint := nextval('vf_seq');
BEGIN
    CREATE INDEX ON vf (b);
END
$do$;
$$);
SELECT last_value, is_called FROM vf_seq;
-- and a DO block still runs afterwards (the PL/pgSQL plugin slot is free)
DO $$ BEGIN PERFORM nextval('vf_seq'); RAISE NOTICE 'the block ran'; END $$;
SELECT last_value, is_called FROM vf_seq;

-- 18: a virtual generated column is computed when read, so adding one
-- writes nothing (before 18, VIRTUAL is a syntax error)
SELECT rule FROM migration_tools.lint(
  'ALTER TABLE vf ADD COLUMN v int GENERATED ALWAYS AS (a * 2) VIRTUAL');
-- 18: a NOT NULL constraint can be NOT VALID, and the column says so
ALTER TABLE vf ADD CONSTRAINT vf_b_not_null NOT NULL b NOT VALID;
SELECT definition FROM migration_tools.catalog_objects() WHERE object = 'public.vf.b';

DROP TABLE vf;
DROP SEQUENCE vf_seq;
