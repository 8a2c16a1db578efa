# Shared by the benchmark scripts (sourced): where things are, the
# throwaway cluster, psql helpers, timing and result recording.
#
# bench/run sources this file, starts the cluster with bench_start and
# exports the connection settings; the section scripts (bench/*.sh) source
# it again for the helpers only.

shopt -s inherit_errexit

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$bench_dir/../scripts/common.sh"

BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
export BENCH_SCALE BENCH_ROUNDS

# Prefix that runs a command as the cluster owner (empty when not root).
if [ "$(id -u)" = 0 ]; then
    BENCH_AS_USER="runuser -u $RUN_AS --"
else
    BENCH_AS_USER=""
fi
export BENCH_AS_USER

# scaled N: N times BENCH_SCALE, rounded, at least the second argument
# (default 1000).
scaled() {
    awk -v n="$1" -v s="$BENCH_SCALE" -v m="${2:-1000}" \
        'BEGIN { v = int(n * s + 0.5); if (v < m) v = m; print v }'
}

# now: seconds since the epoch with microseconds.
now() { echo "$EPOCHREALTIME"; }

# elapsed T0 [T1]: seconds between two now() readings (T1 defaults to now).
elapsed() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.3f", b - a }'; }

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# q ARGS...: psql against the bench database, unaligned, tuples only,
# stopping at the first error.
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# record NAME VALUE UNIT DESCRIPTION: one result line for the report.
record() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$BENCH_OUT"
    log "result $1 = $2 $3"
}

# bench_start: initdb a fresh cluster under bench/results/cluster with
# default settings except the port and the preloaded library, start it,
# create database "bench" with the extension, export the connection.
bench_start() {
    local cdir=$bench_dir/results/cluster
    local data=$cdir/data
    mkdir -p "$cdir"
    if [ -f "$data/postmaster.pid" ]; then
        $BENCH_AS_USER "$PGBIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$data"
    [ "$(id -u)" = 0 ] && chown "$RUN_AS" "$cdir"
    $BENCH_AS_USER "$PGBIN/initdb" -D "$data" -A trust -U postgres >/dev/null
    local port=54400
    while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
          [ -e "$cdir/.s.PGSQL.$port" ]; do
        port=$((port + 1))
    done
    cat >>"$data/postgresql.conf" <<CONF

# bench/run: everything else stays at its default
port = $port
listen_addresses = 'localhost'
unix_socket_directories = '$cdir'
shared_preload_libraries = 'migration_tools'
max_worker_processes = 16
migration_tools.launcher_naptime = '1s'
log_line_prefix = '%m [%p] '
CONF
    $BENCH_AS_USER "$PGBIN/pg_ctl" -D "$data" -l "$cdir/server.log" -w start >/dev/null
    export PGHOST=$cdir PGPORT=$port PGUSER=postgres PGDATABASE=bench
    export BENCH_DATA=$data BENCH_SERVER_LOG=$cdir/server.log
    psql -X -q -d postgres -c "CREATE DATABASE bench" >/dev/null
    q -c "CREATE EXTENSION migration_tools"
    q -f "$bench_dir/sql/setup.sql"
    # keep the whole per-batch history of every job, not just its last 1000
    q -c "ALTER SYSTEM SET migration_tools.batch_history_retention = 1000000" \
      -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    log "cluster running: port $port, data $data"
}

bench_stop() {
    [ -n "${BENCH_DATA:-}" ] && [ -f "$BENCH_DATA/postmaster.pid" ] &&
        $BENCH_AS_USER "$PGBIN/pg_ctl" -D "$BENCH_DATA" -m fast -w stop >/dev/null
    return 0
}

# fresh_copy TEMPLATE TABLE: TABLE becomes an identical copy of TEMPLATE
# (same physical order), with the primary key, vacuumed and analyzed, and
# a checkpoint so that every contender starts from the same state.
fresh_copy() {
    q <<SQL
DROP TABLE IF EXISTS $2;
CREATE TABLE $2 AS SELECT * FROM $1;
ALTER TABLE $2 ADD PRIMARY KEY (id);
ALTER TABLE $2 ALTER COLUMN hits SET DEFAULT 0;
VACUUM ANALYZE $2;
CHECKPOINT;
SQL
}

# check_done TABLE: prints the number of rows the backfill got wrong
# (still NULL or not the expected value); 0 is correct.
check_done() {
    q -c "SELECT count(*) FROM $1 WHERE slug IS DISTINCT FROM md5(id::text)"
}

# worker_pid: pid of the migration_tools worker serving this database, if any.
worker_pid() {
    q -c "SELECT pid FROM pg_stat_activity
           WHERE backend_type = 'migration_tools worker'
             AND datname = current_database() LIMIT 1" 2>/dev/null || true
}
# sample_memory OUTFILE: until OUTFILE.stop exists, read the worker's
# /proc/PID/status every 20 ms (without starting a process per reading)
# and keep in OUTFILE the peaks of VmHWM, RssAnon and RssFile, then
# RssAnon and RssFile at the last reading: a peak that is still there at
# the end was kept, not transient.  RssFile shows libraries loaded on the
# way (LLVM, when a statement is JIT-compiled, maps about 50 MB).  Each
# reading also goes to trace_BASENAME beside OUTFILE (time, VmHWM,
# RssAnon, RssFile, RssShmem in kB), to line a peak up with the job's
# batches (backfill_batches.finished_at).
sample_memory() {
    local out=$1 pid="" hwm=0 anon=0 file=0 k v rest h a f sh
    local trace=${out%/*}/trace_${out##*/}
    : >"$trace"
    while [ ! -e "$out.stop" ]; do
        if [ -z "$pid" ] || [ ! -r "/proc/$pid/status" ]; then
            pid=$(worker_pid)
            if [ -z "$pid" ]; then
                sleep 0.1
                continue
            fi
        fi
        h="" a=0 f=0 sh=0
        while read -r k v rest; do
            case $k in
                VmHWM:) h=$v ;;
                RssAnon:) a=$v ;;
                RssFile:) f=$v ;;
                RssShmem:) sh=$v ;;
            esac
        done 2>/dev/null <"/proc/$pid/status" || true
        if [ -n "$h" ]; then
            [ "$h" -gt "$hwm" ] && hwm=$h
            [ "$a" -gt "$anon" ] && anon=$a
            [ "$f" -gt "$file" ] && file=$f
            echo "$hwm $anon $file $a $f" >"$out"
            echo "$EPOCHREALTIME $h $a $f $sh" >>"$trace"
        fi
        sleep 0.02
    done
}

# mt_wait JOB: wait for the job to end and print its final state.  Calls
# wait(job, '1 second') in a loop rather than one wait(job): a statement
# that runs for the whole job keeps a snapshot that stops vacuum from
# removing the job's dead tuples, and the job's dead-tuples throttle then
# waits for a vacuum that cannot happen (see bench/README.md).  Gives up
# and cancels the job after BENCH_JOB_TIMEOUT seconds (default 1800).
mt_wait() {
    local job=$1 state t0=$EPOCHREALTIME
    while :; do
        state=$(q -c "SELECT migration_tools.wait($1, '1 second')")
        case $state in
            completed|failed|cancelled) echo "$state"; return 0 ;;
        esac
        if awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="${BENCH_JOB_TIMEOUT:-1800}" 'BEGIN { exit !(b - a > l) }'; then
            q -c "SELECT migration_tools.cancel($job)" >/dev/null
            echo "timed out ($state, throttled by $(q -c "SELECT coalesce(throttled_by, '-') FROM migration_tools.backfill_progress WHERE job_id = $job"))"
            return 0
        fi
    done
}

# run_mt TABLE STRATEGY TAG: queue the backfill, wait for it, save its
# per-batch history; prints the job id.
run_mt() {
    local tab=$1 strategy=$2 tag=$3 job state
    job=$(q -c "SELECT migration_tools.backfill('$tab', 'slug = md5(id::text)',
                  'slug IS NULL', strategy => '$strategy')")
    state=$(mt_wait "$job")
    if [ "$state" != completed ]; then
        log "job $job ended $state: $(q -c "SELECT last_error FROM migration_tools.backfill_progress WHERE job_id = $job")"
        return 1
    fi
    q -F $'\t' -c "SELECT batch_no, rows, duration_ms, batch_size,
                          extract(epoch FROM finished_at)
                     FROM migration_tools.backfill_batches
                    WHERE job_id = $job AND attempt = 0 ORDER BY batch_no" >"$BENCH_RUN_DIR/batches_$tag.tsv"
    q -F $'\t' -c "SELECT extract(epoch FROM started_at - queued_at) * 1000,
                          extract(epoch FROM finished_at - started_at)
                     FROM migration_tools.backfill_progress
                    WHERE job_id = $job" >"$BENCH_RUN_DIR/job_$tag.tsv"
    echo "$job"
}

# growth_stats N JOBNAME BATCHFILE: result lines for the mean batch
# duration and time per row over the first, middle and last tenth of the
# batches that updated rows (a ctid job's final sweep batches, which find
# nothing left, are counted apart).
growth_stats() {
    awk -F'\t' -v n="$1" -v m="$2" '
        $2 == 0 { empty++; next }
        { c++; rows[c] = $2; ms[c] = $3 }
        END {
            if (c == 0) exit
            k = int(c / 10); if (k < 1) k = 1
            split("start middle end", part, " ")
            from[1] = 1; from[2] = int(c / 2 - k / 2) + 1; from[3] = c - k + 1
            for (p = 1; p <= 3; p++) {
                r = 0; t = 0
                for (i = from[p]; i < from[p] + k && i <= c; i++) { r += rows[i]; t += ms[i] }
                printf "growth.%s.%s.%s.ms_per_batch\t%.1f\tms\tmean over batches %d..%d\n", n, m, part[p], t / k, from[p], from[p] + k - 1
                printf "growth.%s.%s.%s.us_per_row\t%.2f\tus\tsame batches: duration / rows\n", n, m, part[p], 1000 * t / r
                printf "growth.%s.%s.%s.rows_per_batch\t%.0f\trows\tsame batches\n", n, m, part[p], r / k
            }
            printf "growth.%s.%s.batches\t%d\tbatches\tthat updated rows\n", n, m, c
            printf "growth.%s.%s.empty_batches\t%d\tbatches\tthat found no row (the ctid final sweep)\n", n, m, empty + 0
        }' "$3" >>"$BENCH_OUT"
}

# memory_stats N JOBNAME FILES...: the peak VmHWM, RssAnon and RssFile
# over the sampler files of a job's rounds, and the largest RssAnon at the
# end of a round.
memory_stats() {
    local n=$1 m=$2 hwm anon file end
    shift 2
    read -r hwm anon file end < <(cat "$@" 2>/dev/null |
        awk '{ if ($1 > h) h = $1; if ($2 > a) a = $2; if ($3 > f) f = $3; if ($4 > e) e = $4 }
             END { print h + 0, a + 0, f + 0, e + 0 }')
    if [ "$hwm" = 0 ]; then
        record "memory.$n.$m.vmhwm_kb" - kB "the job ended before the sampler found the worker"
        return 0
    fi
    record "memory.$n.$m.vmhwm_kb" "$hwm" kB "worker peak resident set (VmHWM); includes the shared buffers it touched"
    record "memory.$n.$m.rssanon_kb" "$anon" kB "worker peak private memory (RssAnon), sampled every 20 ms"
    record "memory.$n.$m.rssanon_end_kb" "$end" kB "worker private memory (RssAnon) at the end of the job (the largest of the rounds)"
    record "memory.$n.$m.rssfile_kb" "$file" kB "worker peak file-backed resident memory (RssFile): the binary and the libraries it loaded"
}
