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
    OUT xact_start timestamptz, OUT prepared boolean, OUT prepared_xid xid,
    OUT query text, OUT role name, OUT application_name text,
    OUT backend_state text, OUT wait_event_type text, OUT wait_event text)
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
           -- a prepared transaction: since it was prepared (the start of a
           -- forgotten PREPARE TRANSACTION is gone with its session)
           coalesce(c.xact_start, p.prepared),
           clock_timestamp() - coalesce(c.xact_start, p.prepared),
           c.query,
           coalesce(c.role, pg_get_userbyid(p.ownerid)),
           c.application_name,
           CASE WHEN c.prepared THEN 'prepared' ELSE c.backend_state END,
           c.wait_event_type,
           c.wait_event,
           p.gid
    FROM migration_tools._lock_conflicts($1::oid, $2) c
    LEFT JOIN pg_prepared_xact() p ON c.prepared AND p.transaction = c.prepared_xid
    ORDER BY c.granted DESC, coalesce(c.xact_start, p.prepared), c.pid
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

CREATE FUNCTION migration_tools._lock_waits(
    OUT blocker_key bigint, OUT pid integer, OUT prepared_xid xid,
    OUT query text, OUT role name, OUT application_name text,
    OUT state text, OUT xact_start timestamptz,
    OUT depth integer, OUT root_pid integer, OUT root_prepared_xid xid,
    OUT wait_started timestamptz, OUT wait_duration interval,
    OUT locktype text, OUT mode text,
    OUT database oid, OUT relation_oid oid, OUT relation regclass,
    OUT page integer, OUT tuple smallint, OUT virtualxid text,
    OUT transactionid xid, OUT classid oid, OUT objid oid,
    OUT objsubid smallint, OUT blockers bigint[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lock_waits_srf'
LANGUAGE C VOLATILE STRICT ROWS 50;
COMMENT ON FUNCTION migration_tools._lock_waits() IS
'From one read of the lock manager and of the sessions: a row per waiting lock request (blocker_key NULL) with its blockers encoded in an array, and a row per blocker (internal: see the lock_waits view)';

-- Each element of blockers is blocker_key * 32 + 16 if hard + the mode the
-- blocker holds or awaits (1 AccessShareLock ... 8 AccessExclusiveLock);
-- blocker_key is the pid, or -(xid + 1) for a prepared transaction.  The
-- rows of the blockers have no array (unnest gives the requests' rows
-- only), and the join to them is unique (DISTINCT ON): the planner drops it
-- from queries that use none of their columns.  (They are picked by
-- "blockers IS NULL" rather than by blocker_key: the planner's guess for IS
-- NULL is a few rows, so it hashes the blockers, not the pairs.)  A LATERAL
-- unnest in FROM costs less per pair than one in a subquery's select list,
-- whose every column would be projected again for each pair.
CREATE VIEW migration_tools.lock_waits AS
WITH r AS MATERIALIZED (
    SELECT * FROM migration_tools._lock_waits()
)
SELECT w.pid AS waiting_pid,
       w.query AS waiting_query,
       w.role AS waiting_role,
       w.wait_started,
       w.wait_duration,
       w.locktype,
       w.mode,
       w.relation,
       b.pid AS blocking_pid,
       b.query AS blocking_query,
       b.state AS blocking_state,
       b.xact_start AS blocking_xact_start,
       ('{AccessShareLock,RowShareLock,RowExclusiveLock,ShareUpdateExclusiveLock,ShareLock,ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock}'::text[])
           [(e.blocker & 15)::integer] AS blocking_mode,
       b.depth,
       b.root_pid AS root_blocking_pid,
       CASE WHEN e.blocker & 16 = 0 THEN 'soft' ELSE 'hard' END AS blocking_kind,
       w.application_name AS waiting_application_name,
       b.role AS blocking_role,
       b.application_name AS blocking_application_name,
       b.prepared_xid AS blocking_prepared_xid,
       b.gid AS blocking_gid,
       b.prepared_at AS blocking_prepared_at,
       b.root_prepared_xid,
       b.root_gid AS root_blocking_gid,
       w.database,
       w.relation_oid,
       w.page,
       w.tuple,
       w.virtualxid,
       w.transactionid,
       w.classid,
       w.objid,
       w.objsubid,
       CASE WHEN w.locktype = 'advisory' AND w.objsubid = 1
            THEN (w.classid::bigint << 32) | w.objid::bigint END AS advisory_key
FROM r w
CROSS JOIN LATERAL unnest(w.blockers) AS e(blocker)
LEFT JOIN (
    SELECT DISTINCT ON (n.blocker_key)
           n.blocker_key, n.pid, n.prepared_xid, n.query,
           coalesce(n.role, pg_catalog.pg_get_userbyid(p.ownerid)) AS role,
           n.application_name, n.state, n.xact_start, n.depth, n.root_pid,
           n.root_prepared_xid, p.gid, p.prepared AS prepared_at,
           rp.gid AS root_gid
    FROM r n
    LEFT JOIN pg_catalog.pg_prepared_xact() p ON p.transaction = n.prepared_xid
    LEFT JOIN pg_catalog.pg_prepared_xact() rp ON rp.transaction = n.root_prepared_xid
    WHERE n.blockers IS NULL
    ORDER BY n.blocker_key
) b ON b.blocker_key = e.blocker >> 5;
COMMENT ON VIEW migration_tools.lock_waits IS
'Who waits for whom: one row per (waiting lock request, blocker), hard (holds a conflicting lock) or soft (queued ahead), with the chain depth and root blocker';
GRANT SELECT ON migration_tools.lock_waits TO PUBLIC;

CREATE FUNCTION migration_tools._lock_age(age interval)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN e >= 86400 THEN floor(e / 86400)::bigint || 'd ' ELSE '' END
           || lpad((floor(e / 3600)::bigint % 24)::text, 2, '0') || ':'
           || lpad((floor(e / 60)::bigint % 60)::text, 2, '0') || ':'
           || lpad((floor(e)::bigint % 60)::text, 2, '0')
    FROM (SELECT greatest(extract(epoch FROM age), 0) AS e) s
$$;
COMMENT ON FUNCTION migration_tools._lock_age(interval) IS
'An age as [Nd ]HH:MM:SS whatever IntervalStyle is (internal: used by lock_tree)';

CREATE FUNCTION migration_tools.lock_tree()
RETURNS SETOF text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE w AS MATERIALIZED (
        SELECT l.*,
               coalesce(l.blocking_pid::text, 'xid ' || l.blocking_prepared_xid::text) AS blocker_key,
               coalesce(to_char(l.wait_started AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS'), '99999999999999999999')
                   || lpad(l.waiting_pid::text, 10, '0') AS sort_key,
               -- " [application]" after a pid, when there is one
               CASE WHEN coalesce(l.waiting_application_name, '') <> ''
                    THEN format(' [%s]', l.waiting_application_name) ELSE '' END AS waiting_app,
               CASE WHEN coalesce(l.blocking_application_name, '') <> ''
                    THEN format(' [%s]', l.blocking_application_name) ELSE '' END AS blocking_app,
               CASE l.blocking_kind WHEN 'hard' THEN 'holds' ELSE 'queued ahead for' END AS blocking_verb,
               format('%s in database %s', l.relation_oid,
                      coalesce((SELECT quote_ident(d.datname::text) FROM pg_database d WHERE d.oid = l.database),
                               l.database::text)) AS other_db_relation
        FROM migration_tools.lock_waits l
    ),
    -- each waiter is drawn once, under the blocker on its shortest chain;
    -- its other blockers are listed on its line
    parent AS (
        SELECT DISTINCT ON (waiting_pid) *
        FROM w
        WHERE depth IS NOT NULL
        ORDER BY waiting_pid, depth, blocking_kind, blocker_key
    ),
    -- (the first three, hard ones first, and how many more)
    others AS (
        SELECT waiting_pid,
               array_to_string(a[1:3], ', ')
               || CASE WHEN cardinality(a) > 3
                       THEN format(' and %s more', cardinality(a) - 3) ELSE '' END AS also
        FROM (SELECT w.waiting_pid,
                     array_agg(format('%s (%s: %s %s)',
                                      CASE WHEN w.blocking_pid IS NULL THEN 'prepared ' || w.blocker_key
                                           ELSE 'pid ' || w.blocking_pid END,
                                      w.blocking_kind, w.blocking_verb, w.blocking_mode)
                               ORDER BY w.blocking_kind, w.depth, w.blocker_key) AS a
              FROM w JOIN parent p USING (waiting_pid)
              WHERE w.blocker_key <> p.blocker_key
              GROUP BY w.waiting_pid) o
    ),
    roots AS (
        SELECT DISTINCT ON (blocker_key)
               blocker_key AS node,
               coalesce(to_char(blocking_xact_start AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS'), '99999999999999999999')
                   || lpad(coalesce(blocking_pid, 0)::text, 10, '0') AS sort_key,
               CASE WHEN blocking_pid IS NULL THEN
                   format('prepared transaction %s (%s, %s), prepared %s ago, blocks %s',
                          coalesce(quote_literal(blocking_gid), '?'), blocker_key,
                          coalesce(blocking_role::text, '?'),
                          coalesce(migration_tools._lock_age(clock_timestamp() - blocking_prepared_at), '?'),
                          blocks)
               ELSE
                   format('pid %s%s (%s) %s%s, blocks %s: %s',
                          blocking_pid, blocking_app,
                          coalesce(blocking_role::text, '?'),
                          coalesce(blocking_state, '?'),
                          CASE WHEN blocking_xact_start IS NOT NULL
                               THEN format(', xact %s', migration_tools._lock_age(clock_timestamp() - blocking_xact_start))
                               ELSE '' END,
                          blocks,
                          coalesce(blocking_query, '?'))
               END AS line
        FROM (SELECT w.*,
                     CASE c.n WHEN 1 THEN '1 session' ELSE c.n || ' sessions' END AS blocks
              FROM w
              JOIN (SELECT blocker_key, count(DISTINCT waiting_pid) AS n
                    FROM w GROUP BY blocker_key) c USING (blocker_key)) w
        WHERE depth = 1
        ORDER BY blocker_key
    ),
    tree(node, path, sort_path, level, line) AS (
        SELECT node, ARRAY[node], ARRAY[sort_key], 0, line
        FROM roots
        UNION ALL
        SELECT p.waiting_pid::text, t.path || p.waiting_pid::text,
               t.sort_path || p.sort_key, t.level + 1,
               format('pid %s%s (%s) waits %s for %s on %s (%s: %s %s)%s: %s',
                      p.waiting_pid, p.waiting_app,
                      coalesce(p.waiting_role::text, '?'),
                      coalesce(migration_tools._lock_age(p.wait_duration), '?'),
                      p.mode,
                      CASE p.locktype
                          -- a relation of another database: its OID and the database's name
                          WHEN 'relation' THEN 'relation ' || coalesce(p.relation::text, p.other_db_relation)
                          WHEN 'tuple' THEN format('tuple (%s,%s) of %s', p.page, p.tuple,
                                                   coalesce(p.relation::text, p.other_db_relation))
                          WHEN 'transactionid' THEN 'transaction ' || p.transactionid
                          WHEN 'virtualxid' THEN 'virtual transaction ' || p.virtualxid
                          WHEN 'advisory' THEN 'advisory lock ' ||
                               coalesce(p.advisory_key::text, p.classid || ',' || p.objid)
                          -- "function f(integer)", "schema s", "role r": objects of
                          -- this database and shared ones are named
                          WHEN 'object' THEN
                               coalesce(CASE WHEN p.database = 0
                                              OR p.database = (SELECT d.oid FROM pg_database d
                                                               WHERE d.datname = current_database())
                                         THEN pg_describe_object(p.classid, p.objid, p.objsubid) END,
                                        format('object %s/%s/%s', p.classid, p.objid, p.objsubid))
                          ELSE p.locktype END,
                      p.blocking_kind, p.blocking_verb, p.blocking_mode,
                      coalesce(', also blocked by ' || o.also, ''),
                      coalesce(p.waiting_query, '?'))
        FROM tree t
        JOIN parent p ON p.blocker_key = t.node
        LEFT JOIN others o ON o.waiting_pid = p.waiting_pid
        WHERE NOT p.waiting_pid::text = ANY (t.path)
    )
    SELECT line FROM (
        SELECT 0 AS part, sort_path, repeat('    ', level) || line AS line
        FROM tree
        UNION ALL
        -- waits in a cycle that leads to no root: a deadlock not yet detected
        SELECT 1, ARRAY[sort_key],
               format('pid %s%s waits for %s %s%s on %s (%s: %s %s) in or behind a wait cycle: deadlock pending detection',
                      waiting_pid, waiting_app,
                      CASE WHEN blocking_pid IS NULL THEN 'prepared' ELSE 'pid' END, blocker_key,
                      blocking_app,
                      CASE WHEN relation IS NOT NULL THEN 'relation ' || relation::text ELSE locktype END,
                      blocking_kind, blocking_verb, blocking_mode)
        FROM w
        WHERE depth IS NULL
    ) s
    ORDER BY part, sort_path
$$;
COMMENT ON FUNCTION migration_tools.lock_tree() IS
'The blocking forest as indented text: each root blocker with its state, transaction age and query, and under it what waits for it';
