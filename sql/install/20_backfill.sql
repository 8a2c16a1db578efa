/* migration_tools install script: backfill */

-- One row per batched job (backfill() or run_batched()).  Written only by
-- the functions of this extension and the background worker, each write
-- done as the extension owner; read through the backfill_progress view.
-- The checkpoint columns (last_key, next_block, phase, sweep_*) and the
-- counters are updated in the same transaction as the batch they describe.
CREATE TABLE migration_tools.backfill_jobs (
    job_id          bigserial PRIMARY KEY,
    relation        regclass NOT NULL,
    relation_name   text NOT NULL,           -- qualified name when queued, for messages
    kind            text NOT NULL CHECK (kind IN ('backfill', 'run_batched')),
    set_clause      text,                    -- backfill(): the SET list
    where_clause    text,                    -- backfill(): extra row filter
    sql             text,                    -- run_batched(): statement taking $1, $2
    guard_clause    text,                    -- IS DISTINCT FROM filter built from set_clause
    strategy        text NOT NULL CHECK (strategy IN ('key', 'ctid')),
    guard           boolean NOT NULL,
    key_columns     text[],                  -- primary key columns (key strategy)
    key_types       text[],                  -- their types, qualified
    fixed_batch_size integer CHECK (fixed_batch_size > 0),  -- NULL: adaptive
    target_batch_time interval NOT NULL,
    batch_sleep     interval NOT NULL,
    start_at        timestamptz,
    max_attempts    integer NOT NULL CHECK (max_attempts > 0),
    run_window      text,
    owner           oid NOT NULL,            -- the role that queued the job
    owner_name      name NOT NULL,
    search_path     text NOT NULL,           -- the queueing session's search_path
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    queued_at       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    -- checkpoint
    phase           text NOT NULL DEFAULT 'plan' CHECK (phase IN ('plan', 'main', 'sweep', 'done')),
    last_key        text[],                  -- key: last key processed
    next_block      bigint NOT NULL DEFAULT 0,   -- ctid: first block not processed
    end_block       bigint,                  -- ctid: end of the current pass
    rows_per_block  double precision,        -- ctid: estimate
    sweep_pass      integer NOT NULL DEFAULT 0,
    sweep_rows      bigint NOT NULL DEFAULT 0,   -- rows changed by the current sweep pass
    -- progress
    rows_done       bigint NOT NULL DEFAULT 0,   -- rows the batches changed
    rows_scanned    bigint NOT NULL DEFAULT 0,   -- rows (key) or estimated rows (ctid) covered
    rows_total      bigint,                  -- estimate, at planning
    batches         bigint NOT NULL DEFAULT 0,
    batch_size      integer,                 -- current batch size (rows)
    ms_per_row      double precision,        -- smoothed time per row (adaptive sizing)
    busy_ms         double precision NOT NULL DEFAULT 0, -- time spent in batches
    run_started_at  timestamptz,             -- the current run, for rows_per_second
    run_rows_start  bigint NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,  -- consecutive failed attempts
    takeovers       integer NOT NULL DEFAULT 0,  -- workers that took the job up since its last committed batch
    last_error      text,
    throttled_by    text,
    next_due        timestamptz,             -- not before (throttling, run window, retry)
    worker_pid      integer,
    lock_waiters_caused bigint NOT NULL DEFAULT 0,
    lock_wait_ms    double precision NOT NULL DEFAULT 0, -- longest waits others suffered, summed per batch
    lock_waits_suffered bigint NOT NULL DEFAULT 0,  -- batch attempts that waited for a lock
    lock_wait_suffered_ms double precision NOT NULL DEFAULT 0,  -- how long, in all
    -- the owner could log in when it queued the job: if it no longer can
    -- (NOLOGIN, VALID UNTIL passed), the job fails before its next batch
    owner_login     boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE migration_tools.backfill_jobs IS
'Batched jobs queued by backfill() and run_batched(): definition, state, checkpoint and counters';
REVOKE ALL ON migration_tools.backfill_jobs FROM PUBLIC;
CREATE INDEX ON migration_tools.backfill_jobs (state) WHERE state IN ('queued', 'running');
SELECT pg_catalog.pg_extension_config_dump('migration_tools.backfill_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('migration_tools.backfill_jobs_job_id_seq', '');

-- Recent batches of each job, kept up to migration_tools.batch_history_retention
-- per job: one row per committed batch (attempt 0) and one per failed
-- attempt (attempt 1, 2, ... with the error).
CREATE TABLE migration_tools.backfill_batches (
    job_id          bigint NOT NULL REFERENCES migration_tools.backfill_jobs ON DELETE CASCADE,
    batch_no        bigint NOT NULL,         -- 1 for the first batch of the job
    attempt         integer NOT NULL DEFAULT 0,  -- 0: committed; n: n-th failed attempt
    rows            bigint NOT NULL,         -- rows the statement processed
    duration_ms     double precision NOT NULL,
    batch_size      integer NOT NULL,
    lock_wait_ms    double precision NOT NULL DEFAULT 0,   -- lock waits the batch suffered (sampled every 10 ms; a lock timeout counts in full)
    lock_waiters_caused integer NOT NULL DEFAULT 0,        -- sessions waiting on the batch at its end
    lock_wait_caused_ms double precision NOT NULL DEFAULT 0, -- the longest of their waits
    error           text,                    -- failed attempt: the error
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),  -- when the batch ended
    PRIMARY KEY (job_id, batch_no, attempt)
);
COMMENT ON TABLE migration_tools.backfill_batches IS
'Per-batch history of backfill jobs (rows, duration, size, lock waits), pruned to migration_tools.batch_history_retention per job';
REVOKE ALL ON migration_tools.backfill_batches FROM PUBLIC;

CREATE FUNCTION migration_tools.backfill(
    relation regclass,
    set_clause text,
    where_clause text DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    target_batch_time interval DEFAULT '200ms',
    batch_sleep interval DEFAULT '0',
    start_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT 5,
    strategy text DEFAULT 'key',
    run_window text DEFAULT NULL,
    guard boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mt_backfill'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.backfill(regclass, text, text, integer, interval, interval, timestamptz, integer, text, text, boolean) IS
'Queue a job that runs UPDATE relation SET set_clause WHERE where_clause in committed batches; returns the job id';

CREATE FUNCTION migration_tools.run_batched(
    relation regclass,
    sql text,
    batch_size integer DEFAULT NULL,
    target_batch_time interval DEFAULT '200ms',
    batch_sleep interval DEFAULT '0',
    start_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT 5,
    strategy text DEFAULT 'key',
    run_window text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mt_run_batched'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.run_batched(regclass, text, integer, interval, interval, timestamptz, integer, text, text) IS
'Queue a job that runs a statement once per batch of relation, with the batch bounds as $1 and $2; returns the job id';

CREATE FUNCTION migration_tools.pause(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_pause'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.pause(bigint) IS
'Pause a queued or running backfill job after its current batch; returns the new state';

CREATE FUNCTION migration_tools.resume(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_resume'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.resume(bigint) IS
'Resume a paused backfill job from its checkpoint; returns the new state';

CREATE FUNCTION migration_tools.cancel(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_cancel'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.cancel(bigint) IS
'Cancel a backfill job after its current batch (work done stays done); returns the new state';

CREATE FUNCTION migration_tools.retry(job bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_retry'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.retry(bigint) IS
'Queue a failed or cancelled backfill job again; it goes on from its checkpoint';

CREATE FUNCTION migration_tools.wait(job bigint, timeout interval DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_backfill_wait'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION migration_tools.wait(bigint, interval) IS
'Block until a backfill job is completed, failed or cancelled and return that state; after timeout, return the current state';

CREATE PROCEDURE migration_tools.await_job(job bigint, timeout interval DEFAULT NULL)
AS 'MODULE_PATHNAME', 'mt_backfill_await_job'
LANGUAGE C;
COMMENT ON PROCEDURE migration_tools.await_job(bigint, interval) IS
'Wait, committing between looks (no snapshot held), until a backfill job is completed; ERROR if it ends failed or cancelled, or after timeout';

-- A role sees its own jobs (and those of the roles whose privileges it
-- has); migration_tools_admin members and superusers see all.  A security
-- barrier: the filter runs before any function of the reader's query, so
-- that none sees another role's definitions or errors.
CREATE VIEW migration_tools.backfill_progress WITH (security_barrier) AS
SELECT j.job_id,
       j.relation,
       j.state,
       j.rows_done,
       j.rows_total,
       CASE WHEN j.state = 'completed' THEN 100::numeric
            WHEN coalesce(j.rows_total, 0) <= 0 THEN NULL
            ELSE round(least(99.9, 100.0 * j.rows_scanned / j.rows_total)::numeric, 1)
       END AS percent,
       CASE WHEN j.run_started_at IS NULL THEN NULL
            WHEN coalesce(j.finished_at, now()) <= j.run_started_at THEN NULL
            ELSE round((j.rows_scanned - j.run_rows_start)
                       / extract(epoch FROM coalesce(j.finished_at, now()) - j.run_started_at), 1)
       END AS rows_per_second,
       CASE WHEN j.state <> 'running' OR j.run_started_at IS NULL
                 OR j.rows_scanned <= j.run_rows_start OR j.rows_total IS NULL THEN NULL
            ELSE (greatest(j.rows_total - j.rows_scanned, 0)
                  * extract(epoch FROM now() - j.run_started_at)
                  / (j.rows_scanned - j.run_rows_start)) * interval '1 second'
       END AS eta,
       j.batch_size,
       j.batches,
       j.last_error,
       CASE WHEN j.state = 'running' THEN j.worker_pid END AS worker_pid,
       j.started_at,
       j.finished_at,
       -- beyond the contract
       j.throttled_by,
       j.strategy,
       pg_catalog.pg_get_userbyid(j.owner) AS owner,
       j.kind,
       j.set_clause,
       j.where_clause,
       j.sql,
       j.attempts,
       j.max_attempts,
       j.rows_scanned,
       j.phase,
       j.next_due,
       j.start_at,
       j.run_window,
       j.queued_at,
       j.lock_waiters_caused,
       j.lock_wait_ms,
       j.lock_waits_suffered,
       j.lock_wait_suffered_ms
FROM migration_tools.backfill_jobs j
WHERE pg_catalog.pg_has_role(j.owner, 'USAGE')
   OR pg_catalog.pg_has_role('migration_tools_admin', 'MEMBER');
COMMENT ON VIEW migration_tools.backfill_progress IS
'Backfill jobs with progress, speed and estimated time left; a role sees its own jobs, migration_tools_admin members see all';
GRANT SELECT ON migration_tools.backfill_progress TO PUBLIC;

CREATE VIEW migration_tools.backfill_batch_history WITH (security_barrier) AS
SELECT b.*
FROM migration_tools.backfill_batches b
JOIN migration_tools.backfill_jobs j USING (job_id)
WHERE pg_catalog.pg_has_role(j.owner, 'USAGE')
   OR pg_catalog.pg_has_role('migration_tools_admin', 'MEMBER');
COMMENT ON VIEW migration_tools.backfill_batch_history IS
'Recent batches of the backfill jobs the current role can see';
GRANT SELECT ON migration_tools.backfill_batch_history TO PUBLIC;
