#!/usr/bin/env bash
# Keyferry side-by-side benchmark: keyferry serve vs moto_server vs a trivial axum server
# (the ceiling), and over TLS keyferry-tls vs ceiling-tls (the same trivial server behind the same
# rustls configuration), all on loopback, driven by wrk. Not part of the test suite.
#
#   bench/run.sh [driver options]      e.g. bench/run.sh --rounds 1 --duration 5
#
# Needs: cargo, wrk (Debian package `wrk`), openssl, python3 with boto3/botocore/cryptography
# and moto[server] (`moto_server` on PATH). Writes bench/out/latest.{md,json} (not committed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

hint_wrk="apt-get install wrk"
hint_openssl="apt-get install openssl"
hint_moto_server="pip install 'moto[server]' boto3 botocore cryptography awscli"
hint_python3="apt-get install python3"
hint_cargo="https://rustup.rs"
for tool in cargo wrk openssl python3 moto_server aws; do
  if ! command -v "$tool" >/dev/null; then
    hint_var="hint_${tool}"
    echo "bench: $tool is not installed (${!hint_var:-pip install awscli})" >&2
    exit 2
  fi
done

cargo build --release --locked -p keyferry
cargo build --release --locked -p keyferry-server --example ceiling

mkdir -p bench/out
exec python3 bench/driver.py \
  --keyferry "$TARGET_DIR/release/keyferry" \
  --ceiling "$TARGET_DIR/release/examples/ceiling" \
  --json bench/out/latest.json --markdown bench/out/latest.md "$@"
