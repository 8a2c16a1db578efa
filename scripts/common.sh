# Shared by the scripts: where PostgreSQL is, and how to run a command as
# an unprivileged user (initdb and the test instances refuse root).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PG_CONFIG
PGBIN=$("$PG_CONFIG" --bindir 2>/dev/null || true)
RUN_AS=${RUN_AS:-postgres}

# as_user CMD...: run CMD as $RUN_AS when we are root, else as ourselves.
as_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$RUN_AS" -- env PATH="$PGBIN:$PATH" PG_CONFIG="$PG_CONFIG" "$@"
    else
        env PATH="$PGBIN:$PATH" "$@"
    fi
}
