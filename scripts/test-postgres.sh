#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on loopback for the test suite, reachable only over TLS
# with a certificate from a throw-away CA, and print the URLs to use (`sslmode=verify-full`):
#
#   AIRLOCK_TEST_POSTGRES        the serving role: no SUPERUSER, no BYPASSRLS, owns nothing (the
#                                role row-level security binds, and that cannot switch it off)
#   AIRLOCK_TEST_POSTGRES_OWNER  the owner role: creates the test databases, runs migrations
#   AIRLOCK_TEST_POSTGRES_SUPER  a superuser (for the test that such a role is refused)
#
#   eval "$(scripts/test-postgres.sh)"    # exports the three, and AIRLOCK_TEST_POSTGRES_STARTED
#   scripts/test-postgres.sh --stop         # stops the cluster (CI does, if it started it)
#
# Installs Debian's postgresql package when no server binary is found. Idempotent: a cluster
# already running on the port is reused (and given TLS if an older version of this script
# started it without), and AIRLOCK_TEST_POSTGRES_STARTED says whether this call started it (1)
# or found it running (0), so a caller stops only what it started.
set -euo pipefail
PORT="${AIRLOCK_PG_PORT:-55432}"
DIR="${AIRLOCK_PG_DIR:-/tmp/airlock-pg-$PORT}"
# The CA, and the server's certificate and key: outside the data directory, so the tests (which
# read the CA's certificate) need no access to it.
TLS="${AIRLOCK_PG_TLS_DIR:-$DIR-tls}"

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
PGUSER_OS="$(id -un)"
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    RUN=(runuser -u postgres --)
    PGUSER_OS=postgres
fi

if [ "${1:-}" = "--stop" ]; then
    if [ -f "$DIR/postmaster.pid" ]; then
        "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null
        echo "stopped the test cluster in $DIR" >&2
    fi
    exit 0
fi

# A CA and a server certificate for 127.0.0.1, ::1 and localhost (ECDSA P-256, which rustls on
# ring verifies). Made once; the server certificate again when it is about to expire.
mkdir -p "$TLS"
chmod 0755 "$TLS"
if [ ! -s "$TLS/ca.crt" ] || [ ! -s "$TLS/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=Airlock test PostgreSQL CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
    chmod 0600 "$TLS/ca.key"
    chmod 0644 "$TLS/ca.crt"
    rm -f "$TLS/server.crt"
fi
if [ ! -s "$TLS/server.crt" ] || ! openssl x509 -checkend 86400 -noout -in "$TLS/server.crt" >/dev/null; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" >"$TLS/server.ext"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
        -CAcreateserial -days 365 -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
    rm -f "$TLS/server.csr" "$TLS/server.ext"
    # PostgreSQL refuses a key that others can read.
    chmod 0600 "$TLS/server.key"
    chown "$PGUSER_OS" "$TLS/server.key" "$TLS/server.crt"
fi

STARTED=0
if ! "$BIN/pg_isready" -q -h /tmp -p "$PORT" 2>/dev/null; then
    STARTED=1
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        [ "$(id -u)" -eq 0 ] && chown postgres "$DIR"
        "${RUN[@]}" "$BIN/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
        -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
fi

# TLS and client authentication, for a cluster just started or one an older version of this
# script left running without them: over TCP only TLS with a password (SCRAM); the Unix socket,
# which this script uses as the superuser, stays as initdb made it. Applied by a reload.
"${RUN[@]}" tee "$DIR/pg_hba.conf" >/dev/null <<'HBA'
# Written by scripts/test-postgres.sh: no plaintext over TCP.
local   all  all                 trust
hostssl all  all  127.0.0.1/32   scram-sha-256
hostssl all  all  ::1/128        scram-sha-256
HBA
PSQL=("$BIN/psql" -q -h /tmp -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" >/dev/null <<SQL
ALTER SYSTEM SET ssl_cert_file = '$TLS/server.crt';
ALTER SYSTEM SET ssl_key_file = '$TLS/server.key';
ALTER SYSTEM SET ssl = on;
SELECT pg_reload_conf();
SQL
# The reload is asynchronous: wait until the server serves TLS.
for _ in $(seq 50); do
    [ "$("${PSQL[@]}" -At -c 'SHOW ssl')" = on ] && break
    sleep 0.1
done
if [ "$("${PSQL[@]}" -At -c 'SHOW ssl')" != on ]; then
    echo "the test cluster did not turn TLS on; see $DIR/server.log" >&2
    exit 1
fi

"${PSQL[@]}" >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_test_owner') THEN
    CREATE ROLE airlock_test_owner LOGIN PASSWORD 'airlock_test_owner' CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_test') THEN
    CREATE ROLE airlock_test LOGIN PASSWORD 'airlock_test';
  END IF;
  -- The serving role creates nothing: the owner role makes each test's database.
  ALTER ROLE airlock_test NOCREATEDB NOCREATEROLE NOSUPERUSER NOBYPASSRLS;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_test_super') THEN
    CREATE ROLE airlock_test_super LOGIN PASSWORD 'airlock_test_super' SUPERUSER;
  END IF;
END
$$;
SQL
TLS_QUERY="sslmode=verify-full&sslrootcert=$TLS/ca.crt"
echo "export AIRLOCK_TEST_POSTGRES='postgres://airlock_test:airlock_test@127.0.0.1:$PORT/postgres?$TLS_QUERY'"
echo "export AIRLOCK_TEST_POSTGRES_OWNER='postgres://airlock_test_owner:airlock_test_owner@127.0.0.1:$PORT/postgres?$TLS_QUERY'"
echo "export AIRLOCK_TEST_POSTGRES_SUPER='postgres://airlock_test_super:airlock_test_super@127.0.0.1:$PORT/postgres?$TLS_QUERY'"
echo "export AIRLOCK_TEST_POSTGRES_STARTED=$STARTED"
