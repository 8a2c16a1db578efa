#!/usr/bin/env bash
# The client-side backfill loop of the usual recipe, as an application's
# migration script runs it: over one connection, select 1000 ids whose
# slug is still NULL, update them one by one inside one transaction,
# commit, repeat until no row is left.
#
#   bench/client_loop.sh TABLE [BUDGET_SECONDS]
#
# Stops after BUDGET_SECONDS (default: no limit) at a transaction boundary.
# Prints "ROWS SECONDS": the rows it updated and the time it took.
set -euo pipefail
tab=${1:?usage: client_loop.sh TABLE [BUDGET_SECONDS]}
budget=${2:-0}

coproc PSQL { psql -X -qAt -v ON_ERROR_STOP=1 2>&1; }
psql_pid=$PSQL_PID
exec 3>&"${PSQL[1]}" 4<&"${PSQL[0]}"

# run SQL: send it and read its output up to the end marker into $out.
run() {
    printf '%s\n\\echo __end__\n' "$1" >&3
    out=()
    local line
    while IFS= read -r line <&4; do
        [ "$line" = __end__ ] && return 0
        case $line in
            *ERROR:*) echo "client_loop: $line" >&2; exit 1 ;;
        esac
        out+=("$line")
    done
    echo "client_loop: psql went away" >&2
    exit 1
}

t0=$EPOCHREALTIME
rows=0
while :; do
    run "SELECT id FROM $tab WHERE slug IS NULL LIMIT 1000;"
    [ ${#out[@]} -eq 0 ] && break
    ids=("${out[@]}")
    batch="BEGIN;"$'\n'
    for id in "${ids[@]}"; do
        batch+="UPDATE $tab SET slug = md5(id::text) WHERE id = '$id';"$'\n'
    done
    batch+="COMMIT;"
    run "$batch"
    rows=$((rows + ${#ids[@]}))
    if [ "$budget" != 0 ] &&
       awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$budget" 'BEGIN { exit !(b - a >= l) }'; then
        break
    fi
done
printf '\\q\n' >&3
wait "$psql_pid" 2>/dev/null || true
awk -v r="$rows" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d %.3f\n", r, b - a }'
