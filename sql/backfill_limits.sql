--
-- Limits that keep one role from holding the workers (SPEC section 8):
-- batch_sleep is bounded by migration_tools.max_batch_sleep, for backfill()
-- and run_batched() alike, and refused at queue time with a clear error.
--
\set VERBOSITY default
CREATE ROLE regress_limits_user;
CREATE TABLE limits_t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
GRANT SELECT, UPDATE, DELETE ON limits_t TO regress_limits_user;
SET ROLE regress_limits_user;

-- the settings and their defaults
SHOW migration_tools.max_batch_sleep;
SHOW migration_tools.max_workers_per_role;
SHOW migration_tools.ddl_log_retention;

-- longer than the limit: refused, whatever the unit
SELECT migration_tools.backfill('limits_t', 'n = n + 1', batch_size => 1,
    batch_sleep => '100 years');
SELECT migration_tools.backfill('limits_t', 'n = n + 1', batch_sleep => '10.001 s');
SELECT migration_tools.backfill('limits_t', 'n = n + 1', batch_sleep => '1 month');
SELECT migration_tools.run_batched('limits_t',
    'DELETE FROM limits_t WHERE id BETWEEN $1 AND $2', batch_sleep => '1 hour');
-- nothing was queued
SELECT count(*) FROM migration_tools.backfill_progress WHERE relation = 'limits_t'::regclass;

-- (a batch_sleep up to the limit is accepted: t/043_backfill_security_worker.pl queues
-- jobs with the longest; none is queued here, later tests count job ids)

-- these settings are the server's: a role cannot raise them for itself
SET migration_tools.max_batch_sleep = '100 years';
SET migration_tools.max_workers_per_role = 64;
SET migration_tools.ddl_log_retention = -1;

RESET ROLE;
DROP TABLE limits_t;
DROP ROLE regress_limits_user;
