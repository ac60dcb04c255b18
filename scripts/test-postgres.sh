#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on loopback for the test suite, with an ordinary role
# (no SUPERUSER, no BYPASSRLS: the role row-level security binds), and print the URL to use.
#
#   eval "$(scripts/test-postgres.sh)"    # exports AIRLOCK_TEST_POSTGRES
#   scripts/test-postgres.sh --stop         # stops the cluster (CI does, if it started it)
#
# Installs Debian's postgresql package when no server binary is found. Idempotent: a cluster
# already running on the port is reused, and AIRLOCK_TEST_POSTGRES_STARTED says whether this
# call started it (1) or found it running (0), so a caller stops only what it started.
set -euo pipefail
PORT="${AIRLOCK_PG_PORT:-55432}"
DIR="${AIRLOCK_PG_DIR:-/tmp/airlock-pg-$PORT}"

find_bin() {
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
    done
    return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ] && [ "${1:-}" = "--stop" ]; then
    exit 0 # nothing installed, nothing running
fi
if [ -z "$BIN" ]; then
    echo "installing postgresql from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq postgresql >&2
    BIN="$(find_bin)"
fi

# PostgreSQL refuses to run as root: run the cluster as the `postgres` user when we are root.
RUN=()
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    RUN=(runuser -u postgres --)
fi

if [ "${1:-}" = "--stop" ]; then
    if [ -f "$DIR/postmaster.pid" ]; then
        "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null
        echo "stopped the test cluster in $DIR" >&2
    fi
    exit 0
fi

STARTED=0
if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
    STARTED=1
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
        "${RUN[@]}" "$BIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
        -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
fi

"$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_test') THEN
    CREATE ROLE airlock_test LOGIN PASSWORD 'airlock_test' CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_test_super') THEN
    CREATE ROLE airlock_test_super LOGIN PASSWORD 'airlock_test_super' SUPERUSER;
  END IF;
END
$$;
SQL
echo "export AIRLOCK_TEST_POSTGRES=postgres://airlock_test:airlock_test@127.0.0.1:$PORT/postgres"
echo "export AIRLOCK_TEST_POSTGRES_SUPER=postgres://airlock_test_super:airlock_test_super@127.0.0.1:$PORT/postgres"
echo "export AIRLOCK_TEST_POSTGRES_STARTED=$STARTED"
