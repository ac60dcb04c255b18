#!/usr/bin/env bash
# Fuzz the API from its own OpenAPI document with schemathesis (PyPI): a demo deployment is
# started, three people log in (below), and every operation is called with
# generated valid and invalid inputs under each token. Every schemathesis check runs (its
# default): nothing answers 5xx, every answer's status, content type and body are the ones the
# document gives, schema-valid requests are not refused for their data and schema-invalid ones
# are. `scripts/schemathesis.toml` gives names that exist in the demo and the one exception.
#
#   scripts/fuzz-api.sh [MAX_EXAMPLES]       (needs the release or debug `airlock` binary)
set -euo pipefail
cd "$(dirname "$0")/.."
MAX="${1:-25}"
BIN="${AIRLOCK_BIN:-${CARGO_TARGET_DIR:-target}/debug/airlock}"
PORT="${AIRLOCK_FUZZ_PORT:-18443}"
command -v schemathesis >/dev/null || python3 -m pip install -q schemathesis
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" demo --patients 6 --dir "$WORK/demo" --listen "127.0.0.1:$PORT" >"$WORK/demo.log" 2>&1 &
PID=$!
for _ in $(seq 1 120); do
    grep -q "stays up until Ctrl-C" "$WORK/demo.log" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/demo.log"; exit 1; }
    sleep 1
done
# Codes are single-use per 30 s step: log each user in once.
token() {
    local user="$1" pw code
    pw="$(awk -F'\t' -v u="$user" '$1==u{print $3}' "$WORK/demo/demo-logins.tsv")"
    # Password checks are rate-limited per source: the previous run's login fuzzing may have
    # used this address's share, so wait for it to refill (a refused check spends no code).
    for _ in $(seq 1 30); do
        code="$("$BIN" totp --secret-file "$WORK/demo/$user.otpauth")"
        if curl -sf --cacert "$WORK/demo/tls-cert.pem" -H 'content-type: application/json' \
            "https://localhost:$PORT/v1/auth/login" \
            -d "{\"username\":\"$user\",\"password\":\"$pw\",\"totp\":\"$code\"}" \
            -o "$WORK/login.json"; then
            python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/login.json"
            return
        fi
        sleep 2
    done
    echo "login as $user failed" >&2
    return 1
}
# The privacy officer may do most things, the clinician reads patients and breaks the glass, the
# security administrator manages principals and tokens (last: it may disable the others). Logout
# would end the session mid-run, so it is left out (its own tests cover it).
for user in pat-privacy casey-clinician sam-security; do
    TOKEN="$(token "$user")"
    echo "== schemathesis as $user ($MAX examples per operation)"
    schemathesis --config-file scripts/schemathesis.toml run "https://localhost:$PORT/openapi.json" \
        --tls-verify "$WORK/demo/tls-cert.pem" \
        -H "Authorization: Bearer $TOKEN" \
        -H "X-Purpose-Of-Use: operations" \
        --exclude-path /v1/auth/logout \
        --max-examples "$MAX" \
        --workers 1
done
echo "fuzz: every check passed"
