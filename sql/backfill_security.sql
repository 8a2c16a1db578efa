--
-- Jobs run as, and belong to, the role that queued them.
--
CREATE ROLE regress_bf_owner;
CREATE ROLE regress_bf_other;
CREATE ROLE regress_bf_admin IN ROLE migration_tools_admin;
CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL DEFAULT 0, memo text);
INSERT INTO ledger SELECT g, 0 FROM generate_series(1, 100) g;
GRANT SELECT ON ledger TO regress_bf_owner, regress_bf_other;
GRANT UPDATE (memo) ON ledger TO regress_bf_owner;

SET ROLE regress_bf_other;
-- no UPDATE privilege: refused at queue time
SELECT migration_tools.backfill('ledger', 'memo = ''x''');
-- the job table itself is not readable
SELECT count(*) FROM migration_tools.backfill_jobs;

SET ROLE regress_bf_owner;
-- column privileges are enough for the columns assigned
SELECT migration_tools.backfill('ledger', 'amount = 1');
SELECT migration_tools.backfill('ledger', 'memo = ''owner''',
                                start_at => now() + interval '1 hour') AS job \gset
SELECT state, owner FROM migration_tools.backfill_progress WHERE job_id = :job;

-- another role neither sees nor controls the job
SET ROLE regress_bf_other;
SELECT count(*) FROM migration_tools.backfill_progress WHERE job_id = :job;
\set VERBOSITY sqlstate
SELECT migration_tools.pause(:job);
SELECT migration_tools.cancel(:job);
SELECT migration_tools.wait(:job);
\set VERBOSITY default

-- an administrator does
SET ROLE regress_bf_admin;
SELECT state FROM migration_tools.backfill_progress WHERE job_id = :job;
SELECT migration_tools.pause(:job);
SELECT migration_tools.resume(:job);
RESET ROLE;

-- The worker runs the job as its owner: once the privilege is revoked,
-- the batches fail with the owner's permission error.
SET ROLE regress_bf_owner;
BEGIN;
SELECT migration_tools.backfill('ledger', 'memo = ''run''', max_attempts => 1) AS job2 \gset
SELECT migration_tools.pause(:job2);
COMMIT;
RESET ROLE;
REVOKE UPDATE (memo) ON ledger FROM regress_bf_owner;
SELECT migration_tools.resume(:job2);
SELECT migration_tools.wait(:job2);
SELECT state, last_error FROM migration_tools.backfill_progress WHERE job_id = :job2;
SELECT count(memo) FROM ledger;

-- With the privilege, it runs, as the owner (current_user in the SET list).
GRANT UPDATE (memo) ON ledger TO regress_bf_owner;
SELECT migration_tools.retry(:job2);
SELECT migration_tools.wait(:job2);
SET ROLE regress_bf_owner;
SELECT migration_tools.backfill('ledger', 'memo = current_user', max_attempts => 1) AS job3 \gset
RESET ROLE;
SELECT migration_tools.wait(:job3);
SELECT memo, count(*) FROM ledger GROUP BY memo;

-- A dropped owner: the job fails with a clear error.
CREATE ROLE regress_bf_gone;
GRANT SELECT, UPDATE ON ledger TO regress_bf_gone;
SET ROLE regress_bf_gone;
BEGIN;
SELECT migration_tools.backfill('ledger', 'memo = ''gone''') AS job4 \gset
SELECT migration_tools.pause(:job4);
COMMIT;
RESET ROLE;
REVOKE ALL ON ledger FROM regress_bf_gone;
DROP ROLE regress_bf_gone;
SELECT migration_tools.resume(:job4);
SELECT migration_tools.wait(:job4);
SELECT state, last_error LIKE 'role with OID % that queued the job was dropped' AS clear_error
FROM migration_tools.backfill_progress WHERE job_id = :job4;

SELECT migration_tools.cancel(:job);
DROP TABLE ledger;
DROP ROLE regress_bf_owner, regress_bf_other, regress_bf_admin;
