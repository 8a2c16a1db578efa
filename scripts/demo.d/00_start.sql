-- The migration_tools tour, run by scripts/demo against a fresh database.
\set ECHO queries
\pset footer off

CREATE EXTENSION migration_tools;

-- The launcher runs in the background; it starts workers on demand.
SELECT pg_sleep(0.5);
SELECT kind, database, running FROM migration_tools.workers;
