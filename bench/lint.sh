#!/usr/bin/env bash
# Section 5 of the benchmarks: migration_tools.lint() on a long, realistic
# migration script (5,000 statements at BENCH_SCALE=1) against a database
# holding the tables it alters, with statistics.  The time is measured in
# the server (no client round trip), best of 3.  Run through bench/run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

stmts=${BENCH_LINT_STATEMENTS:-$(scaled 5000 100)}
run_dir=$BENCH_RUN_DIR
script=$run_dir/lint_script.sql

# The tables an application already has: 20 of them, with rows and stats.
q <<'SQL'
DO $$
BEGIN
    FOR i IN 1..20 LOOP
        EXECUTE format('DROP TABLE IF EXISTS app_%s CASCADE', i);
        EXECUTE format('CREATE TABLE app_%s (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          account_id bigint, name varchar(100), status text,
                          amount numeric(12,2), created_at timestamp DEFAULT now(),
                          note text)', i);
        EXECUTE format('INSERT INTO app_%s (account_id, name, status, amount, note)
                        SELECT g %% 1000, ''name '' || g, ''new'', g / 10.0, NULL
                          FROM generate_series(1, %s) g', i, 5000 * i);
        EXECUTE format('ANALYZE app_%s', i);
    END LOOP;
END
$$;
SQL

# A migration script as teams write them: many migrations one after the
# other, mixing safe and unsafe statements (new tables, new columns,
# indexes, constraints, data fixes, views, functions, grants, comments).
perl - "$stmts" >"$script" <<'PERL'
my $want = shift;
my $n = 0;
my $m = 0;
sub out { print $_[0], "\n"; $n++; }
while ($n < $want) {
    $m++;
    my $t = "app_" . (1 + $m % 20);
    my $u = "app_" . (1 + ($m + 7) % 20);
    my @stmts = (
        "SET lock_timeout = '2s';",
        "CREATE TABLE feature_$m (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, $t\_id bigint NOT NULL REFERENCES $t (id), label text NOT NULL, payload jsonb, enabled boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL DEFAULT now());",
        "CREATE INDEX feature_$m\_fk ON feature_$m ($t\_id);",
        "ALTER TABLE $t ADD COLUMN col_$m text;",
        "ALTER TABLE $t ADD COLUMN flag_$m boolean NOT NULL DEFAULT false;",
        "CREATE INDEX CONCURRENTLY ${t}_col_$m ON $t (col_$m);",
        "ALTER TABLE $t ADD CONSTRAINT ${t}_amount_$m CHECK (amount >= 0) NOT VALID;",
        "ALTER TABLE $t VALIDATE CONSTRAINT ${t}_amount_$m;",
        "UPDATE $t SET col_$m = status WHERE id BETWEEN 1 AND 1000;",
        "INSERT INTO feature_$m ($t\_id, label) SELECT id, name FROM $t WHERE id <= 10;",
        "COMMENT ON COLUMN $t.col_$m IS 'added by migration $m';",
        "CREATE OR REPLACE VIEW feature_${m}_v AS SELECT f.id, f.label, a.name FROM feature_$m f JOIN $t a ON a.id = f.$t\_id;",
        "CREATE OR REPLACE FUNCTION feature_${m}_count() RETURNS bigint LANGUAGE sql STABLE AS \$\$ SELECT count(*) FROM feature_$m \$\$;",
        "GRANT SELECT ON feature_$m TO PUBLIC;",
        ($m % 5 == 0 ? "CREATE INDEX ${u}_created_$m ON $u (created_at);"
                     : "ALTER TABLE $u ALTER COLUMN name TYPE varchar(200);"),
        ($m % 7 == 0 ? "ALTER TABLE $u ALTER COLUMN account_id SET NOT NULL;"
                     : "ALTER TABLE $u ADD COLUMN meta_$m json;"),
        ($m % 11 == 0 ? "UPDATE $u SET status = 'archived';"
                      : "DELETE FROM feature_$m WHERE enabled = false;"),
        ($m % 13 == 0 ? "ALTER TABLE $u RENAME COLUMN note TO note_$m;"
                      : "ALTER TABLE feature_$m ADD COLUMN score integer;"),
        "DROP INDEX CONCURRENTLY IF EXISTS ${t}_col_$m;",
    );
    for my $s (@stmts) { last if $n >= $want; out($s); }
}
PERL
log "lint: script of $(grep -c . "$script") statements, $(wc -c <"$script") bytes"

q -c "DROP TABLE IF EXISTS lint_input" -c "CREATE TABLE lint_input (body text)"
q <<SQL
\\set body \`cat '$script'\`
INSERT INTO lint_input VALUES (:'body');
SQL

best=""
for i in 1 2 3; do
    ms=$(q -c "SELECT bench_ms('SELECT count(*) FROM migration_tools.lint((SELECT body FROM lint_input))')")
    log "lint round $i: $ms ms"
    if [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ms; fi
done
parse=""
for i in 1 2 3; do
    ms=$(q -c "SELECT bench_ms('SELECT count(*) FROM migration_tools.script_statements((SELECT body FROM lint_input))')")
    if [ -z "$parse" ] || awk -v a="$ms" -v b="$parse" 'BEGIN { exit !(a < b) }'; then parse=$ms; fi
done
findings=$(q -c "SELECT count(*) FROM migration_tools.lint((SELECT body FROM lint_input))")
record "lint.statements" "$stmts" statements "in the generated migration script"
record "lint.ms" "$best" ms "one lint() call on the whole script, best of 3, in the server"
record "lint.statements_per_s" "$(awk -v n="$stmts" -v ms="$best" 'BEGIN { printf "%.0f", n * 1000 / ms }')" statements/s ""
record "lint.split_ms" "$parse" ms "script_statements() on the same script: parsing and lock analysis only, no catalog checks (best of 3)"
record "lint.findings" "$findings" rows "rows lint() returned"
q -c "DROP TABLE lint_input"
