--
-- The guard of the ctid strategy, and when it is dropped.
--
-- The guard ("the row does not already hold what the set clause gives
-- it") is ANDed into every batch and evaluates the set expressions a
-- second time per row.  It is dropped (backfill_jobs.guard_clause is
-- NULL) when the where_clause already rejects every row the guard would
-- reject: one of its top-level AND operands is "col IS NULL" for an
-- assigned column whose expression can never be NULL, or is the guard
-- itself written by the user.  Otherwise it stays as it was.
--
CREATE TYPE pair AS (a int, b int);
CREATE TABLE gt (id bigint PRIMARY KEY, payload text, name text NOT NULL,
                 slug text, n int, j json, c pair, d numeric, hits int NOT NULL DEFAULT 0)
    WITH (autovacuum_enabled = off);
CREATE FUNCTION gt_hit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.hits := OLD.hits + 1; RETURN NEW; END $$;
CREATE TRIGGER gt_hit BEFORE UPDATE ON gt FOR EACH ROW EXECUTE FUNCTION gt_hit();

-- What the analysis decides, queued and rolled back (no job runs).
CREATE TEMP TABLE cases (no int, set_clause text, where_clause text);
INSERT INTO cases VALUES
    -- dropped: the target is NULL, the expression never is
    (1, 'slug = md5(id::text)', 'slug IS NULL'),              -- id is NOT NULL
    (2, 'slug = md5(name)', 'slug IS NULL'),                  -- name is NOT NULL
    (3, 'slug = md5(id::text)', 'id > 5 AND (slug IS NULL)'), -- one AND operand
    (4, 'slug = lower(name) || ''-'' || id::text', 'slug IS NULL'),
    (5, 'slug = coalesce(payload, ''none'')', 'slug IS NULL'),
    (6, 'slug = upper(name)', 'slug::varchar IS NULL'),
    (7, 'n = id * 2', 'n IS NULL'),
    (8, 'd = id', 'd IS NULL'),
    (9, 'j = ''{}''::json', 'j IS NULL'),                     -- compared as text
    (10, 'n = CASE WHEN id > 5 THEN 1 ELSE 2 END', 'n IS NULL'),
    -- dropped: the user wrote the guard
    (11, 'slug = md5(payload)', 'slug IS DISTINCT FROM md5(payload)'),
    (12, 'slug = md5(payload)', 'md5(payload) IS DISTINCT FROM slug'),
    -- dropped, several columns: the guard holds when one column differs
    (13, 'slug = md5(id::text), n = 1', 'slug IS NULL'),
    (14, 'slug = md5(payload), n = 1', 'n IS NULL'),
    -- kept: the expression may be NULL
    (15, 'slug = md5(payload)', 'slug IS NULL'),              -- payload nullable
    (16, 'slug = substring(name from ''x(.)'')', 'slug IS NULL'), -- strict, yet NULL
    (17, 'slug = NULL', 'slug IS NULL'),
    (18, 'n = CASE WHEN id > 5 THEN 1 END', 'n IS NULL'),
    -- kept: no IS NULL on an assigned column as a top-level AND operand
    (19, 'slug = md5(id::text)', 'id > 5'),
    (20, 'slug = md5(id::text)', 'slug IS NULL OR id > 5'),
    (21, 'slug = md5(id::text)', 'NOT (slug IS NOT NULL)'),
    (22, 'slug = md5(payload), n = 1', 'payload IS NULL'),
    -- kept: IS NULL on a composite is true for a row of NULLs too
    (23, 'c = ROW(1, 2)::pair', 'c IS NULL');
BEGIN;
CREATE TEMP TABLE queued AS
SELECT no, migration_tools.backfill('gt', set_clause, where_clause, strategy => 'ctid') AS job
FROM cases;
SELECT c.no, c.set_clause, c.where_clause, j.guard, j.guard_clause
FROM cases c JOIN queued q USING (no)
JOIN migration_tools.backfill_jobs j ON j.job_id = q.job
ORDER BY c.no;
ROLLBACK;

-- The key strategy never guards when there is a where_clause; without
-- one, it keeps its guard (nothing to prove it redundant).
BEGIN;
SELECT migration_tools.backfill('gt', 'slug = md5(id::text)', 'slug IS NULL') AS job \gset
SELECT guard, guard_clause FROM migration_tools.backfill_jobs WHERE job_id = :job;
SELECT migration_tools.backfill('gt', 'slug = md5(id::text)') AS job \gset
SELECT guard, guard_clause FROM migration_tools.backfill_jobs WHERE job_id = :job;
ROLLBACK;

-- A job without its guard, run: every row gets the set clause once (the
-- trigger counts), the sweep finds nothing to do.
INSERT INTO gt (id, payload, name)
SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'p' || g END, 'n' || g
FROM generate_series(1, 3000) g;
SELECT migration_tools.backfill('gt', 'slug = md5(id::text)', 'slug IS NULL',
                                strategy => 'ctid', batch_size => 400) AS job \gset
SELECT guard_clause FROM migration_tools.backfill_jobs WHERE job_id = :job;
SELECT migration_tools.wait(:job);
SELECT count(*) FILTER (WHERE slug = md5(id::text)) AS done,
       count(*) FILTER (WHERE hits = 1) AS once, count(*)
FROM gt;
SELECT state, rows_done, phase FROM migration_tools.backfill_progress WHERE job_id = :job;

-- Why md5(payload) keeps its guard: for the rows with a NULL payload,
-- the set clause writes NULL, so they still match "slug IS NULL" after
-- their update.  With the guard they are skipped (slug already holds
-- md5(NULL)): not counted, never written...
ALTER TABLE gt DISABLE TRIGGER gt_hit;
UPDATE gt SET slug = NULL, hits = 0;
ALTER TABLE gt ENABLE TRIGGER gt_hit;
SELECT migration_tools.backfill('gt', 'slug = md5(payload)', 'slug IS NULL',
                                strategy => 'ctid', batch_size => 400) AS job \gset
SELECT guard_clause FROM migration_tools.backfill_jobs WHERE job_id = :job;
SELECT migration_tools.wait(:job);
SELECT count(*) FILTER (WHERE slug IS NOT DISTINCT FROM md5(payload)) AS done,
       count(*) FILTER (WHERE hits = 0) AS skipped,
       count(*) FILTER (WHERE hits = 1) AS once,
       count(*) FILTER (WHERE hits > 1) AS more, count(*)
FROM gt;
SELECT state, rows_done FROM migration_tools.backfill_progress WHERE job_id = :job;
-- ... without it, they are written in the main pass and again by every
-- sweep pass, until the job gives up.  (A prepared transaction holds a
-- transaction id meanwhile, so that the job cannot tell that nothing else
-- wrote during its main pass and must sweep.)
ALTER TABLE gt DISABLE TRIGGER gt_hit;
UPDATE gt SET slug = NULL, hits = 0;
ALTER TABLE gt ENABLE TRIGGER gt_hit;
BEGIN;
SELECT pg_current_xact_id() IS NOT NULL AS holds_an_id;
PREPARE TRANSACTION 'backfill_guard_hold';
SELECT migration_tools.backfill('gt', 'slug = md5(payload)', 'slug IS NULL',
                                strategy => 'ctid', batch_size => 400,
                                guard => false) AS job \gset
SELECT migration_tools.wait(:job);
COMMIT PREPARED 'backfill_guard_hold';
SELECT count(*) FILTER (WHERE payload IS NULL AND hits >= 6) AS six_times_or_more,
       count(*) FILTER (WHERE payload IS NOT NULL AND hits = 1) AS once, count(*)
FROM gt;
SELECT state, last_error FROM migration_tools.backfill_progress WHERE job_id = :job;

DROP TABLE gt;
DROP FUNCTION gt_hit();
DROP TYPE pair;
