#!/usr/bin/env bash
# Plot batch duration and batch size over a backfill job from the per-batch
# history saved by bench/backfill.sh and bench/concurrent.sh:
#   top: the largest key-strategy job on the idle server,
#   bottom: the key-strategy job under the application load (if run).
#   bench/plot.sh RUN_DIR OUT.png
set -euo pipefail
dir=${1:?usage: plot.sh RUN_DIR OUT.png}
out=${2:?usage: plot.sh RUN_DIR OUT.png}

panels=()
[ -s "$dir/profile_mt_key.tsv" ] && panels+=("$dir/profile_mt_key.tsv|idle server")
[ -s "$dir/profile_load_mt_key.tsv" ] && panels+=("$dir/profile_load_mt_key.tsv|under the pgbench write load")
if [ ${#panels[@]} -eq 0 ]; then
    echo "plot: no per-batch history in $dir" >&2
    exit 1
fi

{
    echo "set terminal pngcairo size 1000,$((320 * ${#panels[@]} + 40)) font ',10' noenhanced" 2>/dev/null
    echo "set output '$out'"
    echo "set multiplot layout ${#panels[@]},1"
    echo "set datafile separator '\t'"
    echo "set xlabel 'seconds since the job started'"
    echo "set ylabel 'batch duration (ms)'"
    echo "set y2label 'batch size (rows)'"
    echo "set ytics nomirror"
    echo "set y2tics"
    echo "set yrange [0:*]"
    echo "set y2range [0:*]"
    echo "set key top right"
    echo "set grid"
    for p in "${panels[@]}"; do
        f=${p%%|*}
        title=${p#*|}
        t0=$(awk -F'\t' 'NR == 1 { printf "%.6f", $5 - $3 / 1000 }' "$f")
        n=$(awk -F'\t' '{ r += $2 } END { print r }' "$f")
        echo "set title 'migration_tools.backfill, strategy key, $n rows, $title'"
        echo "plot '$f' using (\$5 - $t0):3 with linespoints pt 7 ps 0.4 title 'batch duration (ms)' axes x1y1, \\"
        echo "     '' using (\$5 - $t0):4 with fsteps lw 2 title 'batch size (rows)' axes x1y2, \\"
        echo "     200 with lines dt 2 lc rgb 'gray' title 'target_batch_time' axes x1y1"
    done
    echo "unset multiplot"
} >"$dir/plot.gp"
if ! gnuplot -e "set terminal pngcairo" >/dev/null 2>&1; then
    sed -i "s/^set terminal pngcairo/set terminal png/" "$dir/plot.gp"
fi
gnuplot "$dir/plot.gp"
echo "plot: $out"
