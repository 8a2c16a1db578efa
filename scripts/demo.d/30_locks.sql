-- 3. See who blocks whom.  Background sessions (started with \!, named by
-- application_name, ended at the end of this part) build the classic
-- incident: a long report holds ACCESS SHARE, a migration queues for ACCESS
-- EXCLUSIVE behind it, and the application's reads queue behind the
-- migration.
CREATE TABLE demo_ledger (id bigint PRIMARY KEY, total numeric);
INSERT INTO demo_ledger SELECT g, g * 1.5 FROM generate_series(1, 1000) g;

\setenv PGHOST :HOST
\setenv PGPORT :PORT
\setenv PGUSER :USER
\setenv PGDATABASE :DBNAME

-- Before the migration: what would ALTER TABLE demo_ledger queue behind?
\! PGAPPNAME=demo_lock_report psql -X -q -c "BEGIN; SELECT count(*) FROM demo_ledger; SELECT pg_sleep(60)" >/dev/null 2>&1 &
SELECT pg_sleep(0.5);
SELECT application_name, state, mode, backend_state, xact_age > '0'::interval AS long_running, query
FROM migration_tools.lock_conflicts('demo_ledger', 'ACCESS EXCLUSIVE');

-- The migration runs anyway (lock_timeout 30s), and the application's reads
-- pile up behind its queued ACCESS EXCLUSIVE request.
\! PGAPPNAME=demo_lock_migration PGOPTIONS='-c lock_timeout=30s' psql -X -q -c "ALTER TABLE demo_ledger ADD COLUMN note text" >/dev/null 2>&1 &
SELECT pg_sleep(0.3);
\! for i in 1 2 3; do PGAPPNAME=demo_lock_app_$i psql -X -q -c "SELECT sum(total) FROM demo_ledger" >/dev/null 2>&1 & done
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN (SELECT count(*) FROM pg_stat_activity
                   WHERE application_name LIKE 'demo\_lock\_%' AND wait_event_type = 'Lock') >= 4;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;

-- One row per (waiter, blocker): hard = holds a conflicting lock, soft =
-- queued ahead with a conflicting request.  The reads are blocked by the
-- migration, which is blocked by the report: depth 2, root the report.
SELECT waiting_application_name AS waiter, mode, relation,
       blocking_application_name AS blocker, blocking_kind, blocking_mode,
       blocking_state, depth,
       (SELECT application_name FROM pg_stat_activity WHERE pid = root_blocking_pid) AS root
FROM migration_tools.lock_waits
WHERE waiting_application_name LIKE 'demo\_lock\_%'
ORDER BY depth, waiter;

-- The same as a tree, for psql.
SELECT * FROM migration_tools.lock_tree();

-- Who a new statement on demo_ledger would queue behind now, even a plain read.
SELECT application_name, state, mode, backend_state
FROM migration_tools.lock_conflicts('demo_ledger', 'ACCESS SHARE');

-- End the background sessions.
SELECT count(pg_terminate_backend(pid)) AS ended
FROM pg_stat_activity
WHERE application_name LIKE 'demo\_lock\_%' AND pid <> pg_backend_pid();
SELECT pg_sleep(0.5);
