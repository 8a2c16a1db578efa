#!/usr/bin/env bash
# Sections 1 and 3 of the benchmarks: backfill throughput on an otherwise
# idle server, and how the cost of a batch and the worker's memory grow
# over a job.  Run through bench/run (it starts the cluster).
#
# For each table size, a template table is built once; every contender
# then starts from an identical copy of it (CREATE TABLE AS, primary key,
# VACUUM ANALYZE, CHECKPOINT) and runs
#     SET slug = md5(id::text) WHERE slug IS NULL
# to completion.  Rounds are interleaved (round 1 of every contender, then
# round 2, ...) and the best time of each contender is kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

sizes=${BENCH_SIZES:-"$(scaled 1000000) $(scaled 10000000)"}
contenders=${BENCH_CONTENDERS:-"update procedure mt_key mt_ctid uuid_update uuid_procedure uuid_mt_key uuid_mt_ctid"}
client_budget=${BENCH_CLIENT_SECONDS:-60}
run_dir=$BENCH_RUN_DIR

# run_contender N CONTENDER ROUND: prints the seconds the backfill took.
run_contender() {
    local n=$1 c=$2 r=$3 kind=int what=${2#uuid_} t0 secs bad tag mem
    [ "$c" != "$what" ] && kind=uuid
    fresh_copy "tpl_${kind}_$n" bench_t
    tag="${n}_${c}_r$r"
    t0=$(now)
    case $what in
        update)
            q -c "UPDATE bench_t SET slug = md5(id::text) WHERE slug IS NULL" ;;
        procedure)
            q -c "CALL bench_proc_backfill('bench_t')" ;;
        mt_key|mt_ctid)
            mem=$run_dir/mem_$tag
            rm -f "$mem" "$mem.stop"
            sample_memory "$mem" &
            local sampler=$!
            if ! run_mt bench_t "${what#mt_}" "$tag" >/dev/null; then
                touch "$mem.stop"; wait "$sampler" || true
                echo fail
                return 0
            fi
            touch "$mem.stop"
            wait "$sampler" || true ;;
    esac
    secs=$(elapsed "$t0")
    bad=$(check_done bench_t)
    if [ "$bad" != 0 ]; then
        log "$c at $n rows, round $r: $bad rows wrong after the backfill"
        echo fail
        return 0
    fi
    echo "$secs"
}

for n in $sizes; do
    # the UUID contenders only up to BENCH_UUID_MAX_ROWS rows
    these=""
    for c in $contenders; do
        case $c in
            uuid_*) [ "$n" -le "${BENCH_UUID_MAX_ROWS:-$n}" ] || continue ;;
        esac
        these="$these $c"
    done
    log "building the $n-row templates"
    q -c "SELECT bench_build_template('tpl_int_$n', $n, 'int')" >/dev/null
    case " $these " in
        *" uuid_"*) q -c "SELECT bench_build_template('tpl_uuid_$n', $n, 'uuid')" >/dev/null ;;
    esac
    declare -A best=()
    for r in $(seq 1 "$BENCH_ROUNDS"); do
        for c in $these; do
            log "$n rows, round $r: $c"
            s=$(run_contender "$n" "$c" "$r") || s=fail
            printf '%s\t%s\t%s\t%s\n' "$n" "$c" "$r" "$s" >>"$run_dir/rounds.tsv"
            log "$n rows, round $r: $c took $s s"
            if [ "$s" != fail ] &&
               { [ -z "${best[$c]:-}" ] || awk -v a="$s" -v b="${best[$c]}" 'BEGIN { exit !(a < b) }'; }; then
                best[$c]=$s
            fi
        done
    done
    for c in $these; do
        if [ -z "${best[$c]:-}" ]; then
            record "backfill.$n.$c.seconds" fail s "did not complete correctly in any round"
            continue
        fi
        record "backfill.$n.$c.seconds" "${best[$c]}" s "best of $BENCH_ROUNDS rounds"
        record "backfill.$n.$c.rows_per_s" \
            "$(awk -v n="$n" -v s="${best[$c]}" 'BEGIN { printf "%.0f", n / s }')" rows/s ""
    done
    for k in "" uuid_; do
        base=${best[${k}update]:-}
        proc=${best[${k}procedure]:-}
        for m in mt_key mt_ctid; do
            v=${best[$k$m]:-}
            [ -n "$v" ] || continue
            [ -n "$base" ] && record "backfill.$n.$k$m.vs_update" \
                "$(awk -v a="$v" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" x \
                "time relative to one plain UPDATE (target <= 1.10)"
            [ -n "$proc" ] && record "backfill.$n.$k$m.vs_procedure" \
                "$(awk -v a="$v" -v b="$proc" 'BEGIN { printf "%.2f", a / b }')" x \
                "time relative to the commit-every-10000 procedure (target <= 1.00)"
        done
    done
    # worker memory: the peak over all rounds and both strategies
    for m in mt_key mt_ctid uuid_mt_key uuid_mt_ctid; do
        ls "$run_dir"/mem_"${n}_${m}"_r* >/dev/null 2>&1 || continue
        memory_stats "$n" "$m" "$run_dir"/mem_"${n}_${m}"_r*
    done
    # how long the worker took to start on a queued job (best round)
    for m in mt_key mt_ctid uuid_mt_key uuid_mt_ctid; do
        ls "$run_dir"/job_"${n}_${m}"_r* >/dev/null 2>&1 || continue
        record "backfill.$n.$m.start_ms" \
            "$(cat "$run_dir"/job_"${n}_${m}"_r* | awk 'NR == 1 || $1 < b { b = $1 } END { printf "%.0f", b }')" ms \
            "from queueing the job to its start in the worker (the least of the rounds)"
    done
    unset best

    # The client-side loop: once, on a fresh copy, within a time budget.
    if [ "$client_budget" != 0 ]; then
        fresh_copy "tpl_int_$n" bench_t
        log "$n rows: client loop (budget ${client_budget}s)"
        rows=""; secs=""
        read -r rows secs < <(bash "$bench_dir/client_loop.sh" bench_t "$client_budget" || true) || true
        if [ -z "${rows:-}" ] || [ "$rows" = 0 ]; then
            record "backfill.$n.client_loop.seconds" fail s "the client loop failed (see backfill.log)"
        elif [ "$rows" -ge "$n" ]; then
            record "backfill.$n.client_loop.seconds" "$secs" s "measured, one round"
        else
            record "backfill.$n.client_loop.seconds" \
                "$(awk -v r="$rows" -v s="$secs" -v n="$n" 'BEGIN { printf "%.1f", s * n / r }')" s \
                "extrapolated from $rows rows in ${secs}s (the rate only falls later: each SELECT skips more dead rows)"
        fi
        [ -n "${rows:-}" ] && [ "$rows" != 0 ] && record "backfill.$n.client_loop.rows_per_s" \
            "$(awk -v r="$rows" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')" rows/s ""
    fi
    q -c "DROP TABLE IF EXISTS bench_t" -c "DROP TABLE IF EXISTS tpl_uuid_$n"
    # the int template is kept when bench/concurrent.sh can use it
    [ "$n" = "${BENCH_LOAD_ROWS:-$(scaled 1000000)}" ] || q -c "DROP TABLE tpl_int_$n"
done

# Section 3: cost per batch at the start, middle and end of the largest
# jobs (their last round), from the per-batch history.
n=${sizes##* }
for m in mt_key mt_ctid; do
    f=$(ls "$run_dir"/batches_"${n}_${m}"_r* 2>/dev/null | tail -1 || true)
    [ -n "$f" ] && [ -s "$f" ] || continue
    growth_stats "$n" "$m" "$f"
    cp "$f" "$run_dir/profile_${m}.tsv"
done
