#!/usr/bin/env bash
# Section 3 at full size: one key-strategy backfill of BENCH_GROWTH_ROWS
# rows (default 10,000,000), alone, for the cost per batch at the start,
# middle and end of a long job and the worker's peak memory, to compare
# with the smaller jobs of bench/backfill.sh.  No baselines, one round:
# the throughput comparisons are bench/backfill.sh's.  Run through bench/run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

n=${BENCH_GROWTH_ROWS:-$(scaled 10000000)}
strategies=${BENCH_GROWTH_STRATEGIES:-"key"}
run_dir=$BENCH_RUN_DIR

case " ${BENCH_SIZES:-} " in
    *" $n "*)
        log "growth: the backfill part has a $n-row job already, nothing to add"
        exit 0 ;;
esac
log "building the $n-row template"
q -c "SELECT bench_build_template('tpl_int_$n', $n, 'int')" >/dev/null
for s in $strategies; do
    fresh_copy "tpl_int_$n" bench_t
    tag="${n}_mt_${s}_growth"
    mem=$run_dir/mem_$tag
    rm -f "$mem" "$mem.stop"
    sample_memory "$mem" &
    sampler=$!
    t0=$(now)
    if ! run_mt bench_t "$s" "$tag" >/dev/null; then
        touch "$mem.stop"; wait "$sampler" || true
        record "growth.$n.mt_$s.seconds" fail s "the job did not complete"
        continue
    fi
    secs=$(elapsed "$t0")
    touch "$mem.stop"; wait "$sampler" || true
    bad=$(check_done bench_t)
    [ "$bad" = 0 ] || log "$bad rows wrong after the $n-row job"
    record "growth.$n.mt_$s.seconds" "$secs" s "the whole job, one round ($bad rows wrong)"
    growth_stats "$n" "mt_$s" "$run_dir/batches_$tag.tsv"
    memory_stats "$n" "mt_$s" "$mem"
    cp "$run_dir/batches_$tag.tsv" "$run_dir/profile_mt_$s.tsv"
done
q -c "DROP TABLE IF EXISTS bench_t" -c "DROP TABLE IF EXISTS tpl_int_$n"
