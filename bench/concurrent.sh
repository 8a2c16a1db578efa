#!/usr/bin/env bash
# Section 2 of the benchmarks: the same backfill while an application
# writes to the same table.  pgbench runs bench/app.pgbench (update one
# random row per transaction) for BENCH_LOAD_SECONDS; BENCH_LOAD_WARMUP
# seconds in (default 10), the backfill starts (none, the
# commit-every-10000 procedure, or migration_tools).  Application TPS and
# p99 latency are computed from pgbench's per-transaction log over the
# window in which the backfill ran (for "none": from the same start to the
# end of the run).  The TPS kept is also computed against the same pgbench
# run's TPS outside that window (from 1 s after pgbench started to the
# start of the backfill, and from 1 s after its end to the end of the run):
# the baseline is then measured a few seconds from the contender, under the
# same load from whatever else runs on the machine, which the separate
# no-backfill run is not.  For "none" that ratio shows how much the
# measurement itself varies.  Lock waits come
# from the server log (log_lock_waits, deadlock_timeout = 10ms): every wait
# of an application session whose lock was held by a session that is not
# pgbench's, i.e. by the backfill.  Run through bench/run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

n=${BENCH_LOAD_ROWS:-$(scaled 1000000)}
secs=${BENCH_LOAD_SECONDS:-$(scaled 60 20)}
clients=${BENCH_CLIENTS:-4}
warm=${BENCH_LOAD_WARMUP:-$(scaled 10 2)}
scenarios=${BENCH_SCENARIOS:-"none procedure mt_key mt_ctid"}
run_dir=$BENCH_RUN_DIR

q -c "ALTER SYSTEM SET log_lock_waits = on" \
  -c "ALTER SYSTEM SET deadlock_timeout = '10ms'" \
  -c "SELECT pg_reload_conf()" >/dev/null
trap 'q -c "ALTER SYSTEM RESET log_lock_waits" -c "ALTER SYSTEM RESET deadlock_timeout" -c "SELECT pg_reload_conf()" >/dev/null || true' EXIT

if [ "$(q -c "SELECT count(*) FROM pg_class WHERE relname = 'tpl_int_$n'")" = 0 ]; then
    log "building the $n-row template"
    q -c "SELECT bench_build_template('tpl_int_$n', $n, 'int')" >/dev/null
fi

# lock_waits LOGFILE OFFSET PIDS: from byte OFFSET of the server log, the
# waits of sessions in PIDS (space separated) on a lock held by a session
# not in PIDS.  Prints "COUNT MAX_MS TOTAL_MS".
lock_waits() {
    tail -c +"$(($2 + 1))" "$1" | perl -e '
        my %app = map { $_ => 1 } split " ", $ARGV[0];
        my (%holders, %pending, $n, $max, $sum);
        $n = $max = $sum = 0;
        while (<STDIN>) {
            if (/\[(\d+)\] LOG:  process \d+ still waiting for /) {
                $pending{$1} = 1;
            } elsif (/\[(\d+)\] DETAIL:  Process(?:es)? holding the lock: ([\d, ]+)\./
                     && delete $pending{$1}) {
                $holders{$1} = [ split /, /, $2 ];
            } elsif (/\[(\d+)\] LOG:  process \d+ acquired .* after ([\d.]+) ms/) {
                my ($w, $ms) = ($1, $2);
                my $h = delete $holders{$w};
                next unless $app{$w} && $h;
                if (grep { !$app{$_} } @$h) {
                    $n++; $sum += $ms; $max = $ms if $ms > $max;
                }
            }
        }
        printf "%d %.1f %.1f\n", $n, $max, $sum;
    ' "$3"
}

# app_stats PREFIX FROM TO: transactions of the pgbench logs PREFIX.*
# that finished between the epochs FROM and TO.  Prints "TPS P99_MS COUNT".
app_stats() {
    cat "$1".* | awk -v a="$2" -v b="$3" '
        { t = $5 + $6 / 1e6; if (t >= a && t <= b) print $3 / 1000 }' |
        sort -n | awk -v a="$2" -v b="$3" '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print 0, 0, 0; exit }
            i = int(NR * 0.99 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
            printf "%.1f %.2f %d\n", NR / (b - a), v[i], NR
        }'
}

# base_tps PREFIX START T0 T1 END: TPS of the pgbench logs PREFIX.* outside
# the backfill window [T0, T1]: over [START + 1, T0] and [T1 + 1, END - 0.5]
# (the second part only when at least 2 s long).  Prints "TPS".
base_tps() {
    cat "$1".* | awk -v s="$2" -v a="$3" -v b="$4" -v e="$5" '
        BEGIN { s += 1; b += 1; e -= 0.5; if (e - b < 2) e = b; span = (a - s) + (e - b) }
        { t = $5 + $6 / 1e6; if ((t >= s && t <= a) || (t >= b && t <= e)) c++ }
        END { if (span <= 0) print 0; else printf "%.1f\n", c / span }'
}

# scenario NAME ROUND: prints "TPS P99 WAITS MAXWAIT BACKFILL_SECONDS BASE_TPS"
scenario() {
    local name=$1 r=$2 tag="load_${1}_r$2" off pgb pids ts t0 t1 tend bf=0 job="" stats waits base
    fresh_copy "tpl_int_$n" bench_t
    off=$(stat -c %s "$BENCH_SERVER_LOG")
    rm -f "$run_dir/pgb_$tag".*
    ts=$(now)
    pgbench -n -c "$clients" -j 2 -T "$secs" -M prepared -D nrows="$n" \
        -f "$bench_dir/app.pgbench" --log --log-prefix="$run_dir/pgb_$tag" \
        >"$run_dir/pgbench_$tag.out" 2>&1 &
    pgb=$!
    sleep "$warm"
    pids=$(q -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'pgbench'")
    t0=$(now)
    case $name in
        none)
            # as long as a key job takes under load, for the TPS outside it
            sleep "${BENCH_NONE_WINDOW:-10}"
            t1=$(now) ;;
        procedure)
            q -c "CALL bench_proc_backfill('bench_t')"
            t1=$(now) ;;
        mt_key|mt_ctid)
            job=$(q -c "SELECT migration_tools.backfill('bench_t', 'slug = md5(id::text)',
                          'slug IS NULL', strategy => '${name#mt_}')")
            state=$(mt_wait "$job")
            t1=$(now)
            [ "$state" = completed ] || { log "job $job: $state"; bf=fail; }
            q -F $'\t' -c "SELECT batch_no, rows, duration_ms, batch_size,
                                  extract(epoch FROM finished_at)
                             FROM migration_tools.backfill_batches
                            WHERE job_id = $job AND attempt = 0 ORDER BY batch_no" \
                >"$run_dir/batches_$tag.tsv" || true
            # what the job itself recorded about the waits it caused
            q -c "SELECT coalesce(max(lock_wait_caused_ms), 0)
                    FROM migration_tools.backfill_batches WHERE job_id = $job" \
                >"$run_dir/selfreport_$tag" 2>/dev/null || true ;;
    esac
    [ "$name" != none ] && [ "$bf" != fail ] && bf=$(elapsed "$t0" "$t1")
    wait "$pgb" 2>/dev/null || true
    # the window ends when the backfill or the pgbench run ended, whichever first
    tend=$(awk -v a="$t1" -v s="$ts" -v d="$secs" 'BEGIN { e = s + d; printf "%.6f", (a < e ? a : e) }')
    stats=$(app_stats "$run_dir/pgb_$tag" "$t0" "$tend")
    base=$(base_tps "$run_dir/pgb_$tag" "$ts" "$t0" "$tend" "$(awk -v s="$ts" -v d="$secs" 'BEGIN { printf "%.6f", s + d }')")
    waits=$(lock_waits "$BENCH_SERVER_LOG" "$off" "$pids")
    if [ "$name" != none ] && [ "$(check_done bench_t)" != 0 ]; then
        log "$name under load: rows left wrong"
        bf=fail
    fi
    set -- $stats
    local tps=$1 p99=$2
    set -- $waits
    echo "$tps $p99 $1 $2 $bf $base"
}

declare -A best_tps=() best_p99=() max_wait=() nwaits=() bf_secs=() kept_same=()
for r in $(seq 1 "$BENCH_ROUNDS"); do
    for s in $scenarios; do
        log "under load, round $r: backfill $s"
        read -r tps p99 nw mw bf base < <(scenario "$s" "$r")
        printf 'load\t%s\t%s\t%s %s %s %s %s %s\n' "$s" "$r" "$tps" "$p99" "$nw" "$mw" "$bf" "$base" >>"$run_dir/rounds.tsv"
        kept=$(awk -v a="$tps" -v b="$base" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print "-" }')
        kept_same[$s]="${kept_same[$s]:+${kept_same[$s]}, }$kept %"
        log "under load, round $r, $s: $tps TPS ($kept % of the $base TPS of the same run without it), p99 $p99 ms, $nw waits (max $mw ms), backfill $bf s"
        if [ -z "${best_tps[$s]:-}" ] || awk -v a="$tps" -v b="${best_tps[$s]}" 'BEGIN { exit !(a > b) }'; then
            best_tps[$s]=$tps; best_p99[$s]=$p99; bf_secs[$s]=$bf
        fi
        if [ -z "${max_wait[$s]:-}" ] || awk -v a="$mw" -v b="${max_wait[$s]}" 'BEGIN { exit !(a > b) }'; then
            max_wait[$s]=$mw
        fi
        nwaits[$s]=$(( ${nwaits[$s]:-0} + nw ))
    done
done

base=${best_tps[none]:-}
for s in $scenarios; do
    record "load.$s.tps" "${best_tps[$s]}" TPS "application TPS while the backfill ran, best of $BENCH_ROUNDS rounds ($clients clients)"
    record "load.$s.p99_ms" "${best_p99[$s]}" ms "application p99 latency in that round"
    record "load.$s.tps_kept_same_run" "${kept_same[$s]}" "" \
        "each round: TPS during the backfill relative to the TPS of the same pgbench run before and after it (for none: the variation of the measurement)"
    [ -n "$base" ] && [ "$s" != none ] &&
        record "load.$s.tps_kept" \
            "$(awk -v a="${best_tps[$s]}" -v b="$base" 'BEGIN { printf "%.0f", 100 * a / b }')" % \
            "application TPS relative to no backfill (target >= 80)"
    [ "$s" != none ] && {
        record "load.$s.max_lock_wait_ms" "${max_wait[$s]}" ms "longest wait of an application session on a lock the backfill held, all rounds (target <= 400 = 2 x target_batch_time)"
        record "load.$s.lock_waits" "${nwaits[$s]}" waits "application waits on the backfill longer than 10 ms, all rounds"
        record "load.$s.backfill_seconds" "${bf_secs[$s]}" s "time the backfill of $n rows took under load (when longer than the $((secs - warm)) s of load it ended without it)"
        case $s in
            mt_*)
                record "load.$s.self_reported_wait_ms" \
                    "$(cat "$run_dir"/selfreport_load_"${s}"_r* 2>/dev/null | sort -n | tail -1)" ms \
                    "longest wait caused, as migration_tools.backfill_batches recorded it (lock_wait_caused_ms), all rounds" ;;
        esac
    }
done
cp "$run_dir"/batches_load_mt_key_r1.tsv "$run_dir/profile_load_mt_key.tsv" 2>/dev/null || true
