#!/usr/bin/env bash
# The test command (README): every test tier, with a throwaway PostgreSQL on loopback so the
# PostgreSQL backend is tested too. Needs: cargo, python3 with boto3/cryptography/dilithium-py, the aws CLI,
# openssl, postgresql, the PKCS#11 tokens of `KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh`
# (SoftHSM2 + opensc, NSS softoken, openCryptoki, Kryoptic). `.ci/run` installs them on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

pgdir=$(mktemp -d)
cleanup() { scripts/pg-test.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
if url=$(scripts/pg-test.sh start "$pgdir" 55432); then
  export KEYFERRY_TEST_POSTGRES_URL="$url"
  echo "test.sh: PostgreSQL for tests at ${url%%@*}@…"
else
  echo "test.sh: could not start PostgreSQL; the PostgreSQL tests will fail" >&2
  exit 1
fi

cargo build --workspace --all-targets
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e
# One total line over every test binary's "test result: ok. N passed; M failed; …".
sum() { grep -E '^test result:' target/test-output.log | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
echo "$(sum passed) passed, $(sum failed) failed"
exit "$status"
