/* migration_tools install script: locks */

CREATE FUNCTION migration_tools.lock_mode(name text)
RETURNS text
AS 'MODULE_PATHNAME', 'mt_lock_mode_name'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION migration_tools.lock_mode(text) IS
'The lock mode name as pg_locks spells it ("AccessExclusiveLock") for a name such as "ACCESS EXCLUSIVE"';

CREATE FUNCTION migration_tools._lock_conflicts(
    relation oid, mode text,
    OUT pid integer, OUT granted boolean, OUT lock_mode text,
    OUT xact_start timestamptz, OUT prepared boolean, OUT prepared_xid xid)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lock_conflicts_srf'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools._lock_conflicts(oid, text) IS
'Sessions holding or awaiting a lock conflicting with mode on the relation, from the lock manager (internal: see lock_conflicts)';

CREATE TYPE migration_tools.lock_conflict AS (
    pid integer,
    state text,
    mode text,
    xact_start timestamptz,
    xact_age interval,
    query text,
    role name,
    application_name text,
    backend_state text,
    wait_event_type text,
    wait_event text,
    prepared_gid text
);
COMMENT ON TYPE migration_tools.lock_conflict IS
'A row of lock_conflicts(): a session a lock request would queue behind';

CREATE FUNCTION migration_tools.lock_conflicts(relation regclass, mode text)
RETURNS SETOF migration_tools.lock_conflict
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.pid,
           CASE WHEN c.granted THEN 'holding' ELSE 'waiting' END,
           c.lock_mode,
           coalesce(c.xact_start, a.xact_start),
           clock_timestamp() - coalesce(c.xact_start, a.xact_start),
           a.query,
           coalesce(a.usename, p.owner),
           a.application_name,
           CASE WHEN c.prepared THEN 'prepared' ELSE a.state END,
           a.wait_event_type,
           a.wait_event,
           p.gid
    FROM migration_tools._lock_conflicts($1::oid, $2) c
    LEFT JOIN pg_stat_activity a ON a.pid = c.pid
    LEFT JOIN pg_prepared_xacts p ON c.prepared AND p.transaction = c.prepared_xid
    ORDER BY c.granted DESC, coalesce(c.xact_start, a.xact_start), c.pid
$$;
COMMENT ON FUNCTION migration_tools.lock_conflicts(regclass, text) IS
'Sessions that hold or wait for a lock on relation conflicting with mode: what a statement taking that lock would queue behind right now';

CREATE FUNCTION migration_tools.lock_waiters_of(
    pid integer, OUT waiters integer, OUT longest_wait interval)
RETURNS record
AS 'MODULE_PATHNAME', 'mt_lock_waiters_of_sql'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.lock_waiters_of(integer) IS
'How many sessions wait right now on locks held by the session pid, and the longest of their waits so far';
