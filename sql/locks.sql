-- Lock waits: argument checking and the answers when nothing waits.
-- (The waiting shapes are built by the isolation specs specs/locks_*.spec.)

-- lock mode names: SQL spelling, pg_locks spelling, any case and spacing
SELECT n, migration_tools.lock_mode(n)
FROM unnest(ARRAY['ACCESS SHARE', 'AccessShareLock', 'access share',
                  'row share', 'ROW_EXCLUSIVE', 'Share Update Exclusive',
                  'share', 'SHARE LOCK', 'ShareRowExclusiveLock',
                  'exclusive', 'ACCESS EXCLUSIVE', 'accessexclusivelock',
                  ' access  exclusive ']) AS n;

-- unrecognized names list the valid ones
SELECT migration_tools.lock_mode('ACCESS');
SELECT migration_tools.lock_mode('');
SELECT migration_tools.lock_mode('lock');
SELECT migration_tools.lock_mode('access exclusive; drop table x');
SELECT migration_tools.lock_mode(NULL) IS NULL AS null_mode;

-- every mode in every spelling: SQL's, pg_locks', lower case, with
-- underscores, hyphens, no spaces, a " lock" suffix, odd spacing
WITH m(n, canonical) AS (
    VALUES ('ACCESS SHARE', 'AccessShareLock'), ('ROW SHARE', 'RowShareLock'),
           ('ROW EXCLUSIVE', 'RowExclusiveLock'),
           ('SHARE UPDATE EXCLUSIVE', 'ShareUpdateExclusiveLock'),
           ('SHARE', 'ShareLock'), ('SHARE ROW EXCLUSIVE', 'ShareRowExclusiveLock'),
           ('EXCLUSIVE', 'ExclusiveLock'), ('ACCESS EXCLUSIVE', 'AccessExclusiveLock')
), s(n, canonical, spelling) AS (
    SELECT n, canonical, v
    FROM m, unnest(ARRAY[n, canonical, lower(n), lower(canonical),
                         upper(canonical), replace(n, ' ', '_'),
                         replace(lower(n), ' ', '-'), replace(n, ' ', ''),
                         n || ' LOCK', lower(n) || '_lock', '  ' || replace(n, ' ', '   ') || E'\t',
                         initcap(n)]) AS v
)
SELECT n, count(*) AS spellings,
       count(*) FILTER (WHERE migration_tools.lock_mode(spelling) = canonical) AS recognized
FROM s GROUP BY n ORDER BY min(canonical);

-- unrecognized: close but wrong, or with something more
SELECT migration_tools.lock_mode('ACCESS EXCLUSIVE MODE LOCK');
SELECT migration_tools.lock_mode('AccessExclusiveLockLock');
SELECT migration_tools.lock_mode('NoLock');
SELECT migration_tools.lock_mode('share, exclusive');
SELECT migration_tools.lock_mode('access.exclusive');
SELECT migration_tools.lock_mode(repeat('share', 20));

CREATE TABLE locks_t (id int);

-- nothing conflicts: our own locks never count
BEGIN;
LOCK TABLE locks_t IN ACCESS EXCLUSIVE MODE;
SELECT count(*) FROM migration_tools.lock_conflicts('locks_t', 'ACCESS EXCLUSIVE');
COMMIT;
SELECT count(*) FROM migration_tools.lock_conflicts('locks_t', 'AccessShareLock');
-- shared catalogs are looked up in the shared lock space
SELECT count(*) FROM migration_tools.lock_conflicts('pg_database', 'ACCESS SHARE');
SELECT migration_tools.lock_conflicts('locks_t', 'SHARED');
SELECT count(*) FROM migration_tools.lock_conflicts(NULL, 'ACCESS SHARE');
SELECT count(*) FROM migration_tools.lock_conflicts('locks_t', NULL);
SELECT migration_tools.lock_conflicts('no_such_table', 'ACCESS SHARE');
SELECT migration_tools.lock_conflicts(0, 'ACCESS SHARE');
-- a relation dropped since its OID was taken (the OID is masked)
CREATE TABLE locks_gone (id int);
SELECT 'locks_gone'::regclass::oid AS gone_oid \gset
DROP TABLE locks_gone;
SET locks.gone = :'gone_oid';
DO $$
BEGIN
    PERFORM migration_tools.lock_conflicts(current_setting('locks.gone')::oid, 'SHARE');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '% %', SQLSTATE, regexp_replace(SQLERRM, '[0-9]+', 'N');
END
$$;
RESET locks.gone;
-- a bad mode is reported before the relation is looked up
SELECT migration_tools.lock_conflicts(0, 'bogus');
-- relations that are not tables have locks too
CREATE VIEW locks_v AS SELECT 1 AS one;
CREATE SEQUENCE locks_s;
CREATE INDEX locks_i ON locks_t (id);
SELECT count(*) FROM migration_tools.lock_conflicts('locks_v', 'ACCESS EXCLUSIVE');
SELECT count(*) FROM migration_tools.lock_conflicts('locks_s', 'ACCESS EXCLUSIVE');
SELECT count(*) FROM migration_tools.lock_conflicts('locks_i', 'ACCESS EXCLUSIVE');
DROP VIEW locks_v;
DROP SEQUENCE locks_s;
-- the internal function, called directly, checks the same way
SELECT migration_tools._lock_conflicts(NULL, 'SHARE');
SELECT migration_tools._lock_conflicts('pg_class'::regclass, 'no such mode');
SELECT migration_tools._lock_conflicts(4294967295, 'SHARE');

-- our own session waits for nothing and blocks nobody
SELECT * FROM migration_tools.lock_waiters_of(pg_backend_pid());
SELECT * FROM migration_tools.lock_waiters_of(NULL);
SELECT * FROM migration_tools.lock_waiters_of(0);

-- lock_waits and lock_tree with nothing waiting on or behind us
SELECT count(*) FROM migration_tools.lock_waits
WHERE waiting_pid = pg_backend_pid() OR blocking_pid = pg_backend_pid();
SELECT count(*) FROM migration_tools.lock_tree() t
WHERE t LIKE '%pid ' || pg_backend_pid() || ' %';

-- the columns of lock_waits, in order
SELECT attnum, attname, atttypid::regtype
FROM pg_attribute
WHERE attrelid = 'migration_tools.lock_waits'::regclass AND attnum > 0
ORDER BY attnum;

-- the plans: a count (or any query using no blocker column) does not join
-- the blockers; a full read hashes the blockers, never the pairs
EXPLAIN (COSTS OFF) SELECT count(*) FROM migration_tools.lock_waits;
EXPLAIN (COSTS OFF) SELECT waiting_pid, waiting_query, mode, relation
FROM migration_tools.lock_waits;
EXPLAIN (COSTS OFF) SELECT * FROM migration_tools.lock_waits;

-- ages in lock_tree do not depend on IntervalStyle
SET IntervalStyle = postgres_verbose;
SELECT migration_tools._lock_age(i)
FROM unnest(ARRAY['0'::interval, '-5 s', '59.9 s', '1 h 2 min 3 s',
                  '1 day 25:00:01', '400 days']) AS i;
RESET IntervalStyle;

DROP TABLE locks_t;
