#!/usr/bin/env bash
# Benchmark of migration_tools.lock_waits with many waiting sessions.
#
# Starts a throwaway cluster of its own (bench/results/lock_waits-cluster,
# max_connections = 300, first free port from 54500, library preloaded),
# builds a waiting shape with LOCK_WAITERS (default 200) background psql
# clients, and times three ways of asking "who blocks whom":
#
#   lock_waits    SELECT * FROM migration_tools.lock_waits
#   wiki          the classic pg_locks self-join of the PostgreSQL wiki's
#                 "Lock Monitoring" page, joined to pg_stat_activity
#   blocking_pids pg_blocking_pids() for every row of pg_stat_activity
#
# Two shapes:
#   hard   one session holds ACCESS EXCLUSIVE on a table, the clients wait
#          to read it (every waiter is blocked by a granted lock)
#   queue  one session holds ACCESS SHARE (a long read), an ALTER TABLE
#          waits for ACCESS EXCLUSIVE, the clients wait behind the ALTER
#          TABLE (soft blocking: the incident a migration causes)
#   pileup one session holds ACCESS SHARE, every client waits for ACCESS
#          EXCLUSIVE: each is blocked by the holder and by every client
#          queued ahead of it, N*(N+1)/2 (waiter, blocker) pairs
#
# Each is timed twice: as SELECT count(*) FROM (query) (the planner leaves
# out what the count does not need: for lock_waits, every blocker column),
# and, as "_rows" figures, with the same six columns from each (pid, role
# and query of waiter and blocker) and every row built (count(s)).
#
# Each contender runs LOCK_QUERIES (default 20) times per round, for
# LOCK_ROUNDS rounds (default 5); the best round's mean time per query is
# kept.  Prints the times, the rows each returned, and the ratios; the
# figures are appended to $BENCH_OUT when bench/run calls this script, and
# to bench/results/lock_waits-DATE.tsv in any case.
#
#   bash bench/lock_waits.sh
#   LOCK_WAITERS=50 LOCK_ROUNDS=2 LOCK_SHAPES=queue bash bench/lock_waits.sh
#
# LOCK_PORT (default 54500) is the first port tried for the cluster.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

waiters=${LOCK_WAITERS:-200}
rounds=${LOCK_ROUNDS:-5}
queries=${LOCK_QUERIES:-20}

export PATH="$PGBIN:$PATH"
mkdir -p "$bench_dir/results"
stamp=$(date -u +%Y%m%d-%H%M%S)
own_out=$bench_dir/results/lock_waits-$stamp.tsv
: >"$own_out"
BENCH_OUT=${BENCH_OUT:-}

# the figure goes to our own file and, under bench/run, to its results
lw_record() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$own_out"
    if [ -n "$BENCH_OUT" ]; then
        record "$@"
    else
        log "result $1 = $2 $3"
    fi
}

# --- the cluster -----------------------------------------------------------
cdir=$bench_dir/results/lock_waits-cluster
data=$cdir/data
mkdir -p "$cdir"
[ "$(id -u)" = 0 ] && chown "$RUN_AS" "$cdir"
if [ -f "$data/postmaster.pid" ]; then
    $BENCH_AS_USER "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$data"
$BENCH_AS_USER "$PGBIN/initdb" -D "$data" -A trust -U postgres >/dev/null
port=${LOCK_PORT:-54500}
while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || [ -e "$cdir/.s.PGSQL.$port" ]; do
    port=$((port + 1))
done
cat >>"$data/postgresql.conf" <<CONF

# bench/lock_waits.sh
port = $port
listen_addresses = ''
unix_socket_directories = '$cdir'
shared_preload_libraries = 'migration_tools'
max_connections = $((waiters + 50))
CONF

client_pids=()
cleanup() {
    local p
    for p in "${client_pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    if [ -f "$data/postmaster.pid" ]; then
        $BENCH_AS_USER "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

$BENCH_AS_USER "$PGBIN/pg_ctl" -D "$data" -l "$cdir/server.log" -w start >/dev/null
export PGHOST=$cdir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
psql -X -q -c "CREATE EXTENSION migration_tools" -c "CREATE TABLE lw_bench (id int)"
log "lock_waits bench: cluster on port $port, $waiters waiting sessions, $rounds rounds of $queries queries"

# --- building the shapes ---------------------------------------------------

# start_client SQL NAME: a background psql session running SQL.
start_client() {
    PGAPPNAME=$2 psql -X -q -c "$1" >/dev/null 2>&1 &
    client_pids+=($!)
}

# wait_for_waiters N: until N sessions wait for a lock (at most 120 s).
wait_for_waiters() {
    local i n
    for i in $(seq 1 1200); do
        n=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        [ "$n" -ge "$1" ] && return 0
        sleep 0.1
    done
    echo "bench/lock_waits.sh: only $n of $1 sessions wait" >&2
    return 1
}

# stop_clients: end every session of the shape.
stop_clients() {
    local p
    q -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE application_name LIKE 'lw\_%'" >/dev/null
    for p in "${client_pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    client_pids=()
}

build_shape() {
    local i
    case $1 in
        hard)
            start_client "BEGIN; LOCK TABLE lw_bench IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600)" lw_holder
            sleep 0.5
            for i in $(seq 1 "$waiters"); do
                start_client "SELECT count(*) FROM lw_bench" "lw_client_$i"
            done
            wait_for_waiters "$waiters" ;;
        queue)
            start_client "BEGIN; SELECT count(*) FROM lw_bench; SELECT pg_sleep(3600)" lw_holder
            sleep 0.5
            start_client "ALTER TABLE lw_bench ADD COLUMN x int" lw_alter
            wait_for_waiters 1
            for i in $(seq 2 "$waiters"); do
                start_client "SELECT count(*) FROM lw_bench" "lw_client_$i"
            done
            wait_for_waiters "$waiters" ;;
        pileup)
            start_client "BEGIN; SELECT count(*) FROM lw_bench; SELECT pg_sleep(3600)" lw_holder
            sleep 0.5
            for i in $(seq 1 "$waiters"); do
                start_client "BEGIN; LOCK TABLE lw_bench IN ACCESS EXCLUSIVE MODE; ROLLBACK" "lw_client_$i"
            done
            wait_for_waiters "$waiters" ;;
    esac
}

# --- the contenders --------------------------------------------------------
read -r -d '' q_lock_waits <<'SQL' || true
SELECT * FROM migration_tools.lock_waits
SQL

read -r -d '' q_wiki <<'SQL' || true
SELECT blocked_locks.pid AS blocked_pid,
       blocked_activity.usename AS blocked_user,
       blocking_locks.pid AS blocking_pid,
       blocking_activity.usename AS blocking_user,
       blocked_activity.query AS blocked_statement,
       blocking_activity.query AS current_statement_in_blocking_process
FROM pg_catalog.pg_locks blocked_locks
JOIN pg_catalog.pg_stat_activity blocked_activity ON blocked_activity.pid = blocked_locks.pid
JOIN pg_catalog.pg_locks blocking_locks
     ON blocking_locks.locktype = blocked_locks.locktype
    AND blocking_locks.database IS NOT DISTINCT FROM blocked_locks.database
    AND blocking_locks.relation IS NOT DISTINCT FROM blocked_locks.relation
    AND blocking_locks.page IS NOT DISTINCT FROM blocked_locks.page
    AND blocking_locks.tuple IS NOT DISTINCT FROM blocked_locks.tuple
    AND blocking_locks.virtualxid IS NOT DISTINCT FROM blocked_locks.virtualxid
    AND blocking_locks.transactionid IS NOT DISTINCT FROM blocked_locks.transactionid
    AND blocking_locks.classid IS NOT DISTINCT FROM blocked_locks.classid
    AND blocking_locks.objid IS NOT DISTINCT FROM blocked_locks.objid
    AND blocking_locks.objsubid IS NOT DISTINCT FROM blocked_locks.objsubid
    AND blocking_locks.pid != blocked_locks.pid
JOIN pg_catalog.pg_stat_activity blocking_activity ON blocking_activity.pid = blocking_locks.pid
WHERE NOT blocked_locks.granted
SQL

read -r -d '' q_blocking_pids <<'SQL' || true
SELECT a.pid AS blocked_pid, a.usename AS blocked_user, a.query AS blocked_statement,
       b.pid AS blocking_pid, b.usename AS blocking_user, b.query AS blocking_statement
FROM pg_catalog.pg_stat_activity a
CROSS JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(a.pid)) AS bp(pid)
LEFT JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
SQL

# The same six columns from each (pid, role, query of both sessions), for
# the "_rows" figures: the planner cannot leave any of them out there.
read -r -d '' q_lock_waits_rows <<'SQL' || true
SELECT waiting_pid, waiting_role, waiting_query, blocking_pid, blocking_role, blocking_query
FROM migration_tools.lock_waits
SQL
q_wiki_rows=$q_wiki
q_blocking_pids_rows=$q_blocking_pids

# time_query SQL [AGG]: "best_ms rows", the best round's mean ms per
# execution of SELECT AGG FROM (SQL) s (AGG: count(*), or count(s) to build
# every row), timed inside the server (no client round trips), and the
# rows returned.
time_query() {
    q -v sql="$1" -v agg="${2:-count(*)}" -v rounds="$rounds" -v queries="$queries" <<'PSQL'
SELECT set_config('lw.sql', :'sql', false), set_config('lw.rounds', :'rounds', false),
       set_config('lw.queries', :'queries', false), set_config('lw.agg', :'agg', false) \g /dev/null
DO $$
DECLARE
    sql text := current_setting('lw.sql');
    best double precision;
    t0 timestamptz;
    ms double precision;
    n bigint;
BEGIN
    FOR r IN 1 .. current_setting('lw.rounds')::int LOOP
        t0 := clock_timestamp();
        FOR i IN 1 .. current_setting('lw.queries')::int LOOP
            EXECUTE 'SELECT ' || current_setting('lw.agg') || ' FROM (' || sql || ') s' INTO n;
        END LOOP;
        ms := extract(epoch FROM clock_timestamp() - t0) * 1000 / current_setting('lw.queries')::int;
        IF best IS NULL OR ms < best THEN best := ms; END IF;
    END LOOP;
    PERFORM set_config('lw.best', round(best::numeric, 3)::text, false);
    PERFORM set_config('lw.rows', n::text, false);
END
$$;
SELECT current_setting('lw.best') || ' ' || current_setting('lw.rows');
PSQL
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }

for shape in ${LOCK_SHAPES:-hard queue pileup}; do
    log "shape $shape: starting $waiters waiting sessions"
    build_shape "$shape"
    declare -A ms rows
    for c in lock_waits wiki blocking_pids; do
        var=q_$c
        read -r ms[$c] rows[$c] < <(time_query "${!var}" | tail -1)
        lw_record "lock_waits.$shape.$c.ms" "${ms[$c]}" ms \
            "$shape shape, $waiters waiting sessions: $c, best of $rounds rounds of $queries queries (${rows[$c]} rows)"
    done
    for c in lock_waits wiki blocking_pids; do
        var=q_${c}_rows
        read -r ms[${c}_rows] rows[${c}_rows] < <(time_query "${!var}" "count(s)" | tail -1)
        lw_record "lock_waits.$shape.$c.rows_ms" "${ms[${c}_rows]}" ms \
            "$shape shape, $waiters waiting sessions: $c, every row built with the same six columns (pid, role, query of waiter and blocker), best of $rounds rounds of $queries queries (${rows[${c}_rows]} rows)"
    done
    lw_record "lock_waits.$shape.wiki_ratio" "$(ratio "${ms[wiki]}" "${ms[lock_waits]}")" x \
        "$shape shape: time of the wiki pg_locks self-join / time of lock_waits"
    lw_record "lock_waits.$shape.blocking_pids_ratio" "$(ratio "${ms[blocking_pids]}" "${ms[lock_waits]}")" x \
        "$shape shape: time of pg_blocking_pids() per session / time of lock_waits"
    printf '%-6s %-14s %10s ms %7s rows\n' "$shape" lock_waits "${ms[lock_waits]}" "${rows[lock_waits]}" \
        "$shape" wiki "${ms[wiki]}" "${rows[wiki]}" \
        "$shape" blocking_pids "${ms[blocking_pids]}" "${rows[blocking_pids]}"
    printf '%-6s %-14s %10s ms %7s rows (six columns, every row built)\n' \
        "$shape" lock_waits "${ms[lock_waits_rows]}" "${rows[lock_waits_rows]}" \
        "$shape" wiki "${ms[wiki_rows]}" "${rows[wiki_rows]}" \
        "$shape" blocking_pids "${ms[blocking_pids_rows]}" "${rows[blocking_pids_rows]}"
    echo "$shape: wiki / lock_waits = $(ratio "${ms[wiki]}" "${ms[lock_waits]}"), blocking_pids / lock_waits = $(ratio "${ms[blocking_pids]}" "${ms[lock_waits]}")"
    echo "$shape, six columns: wiki / lock_waits = $(ratio "${ms[wiki_rows]}" "${ms[lock_waits_rows]}"), blocking_pids / lock_waits = $(ratio "${ms[blocking_pids_rows]}" "${ms[lock_waits_rows]}")"
    stop_clients
    unset ms rows
done
log "lock_waits bench: results in $own_out"
