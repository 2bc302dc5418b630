#!/usr/bin/env bash
# Install what the browser tests of the web console need (crates/keyferry/tests/console.rs):
# Debian's chromium + chromium-driver and Python's selenium. Idempotent: skips what is present.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# faketime: a second server issues an import token "25 hours ago" (the expired-token test).
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! python3 -c 'import selenium' >/dev/null 2>&1; then
    python3 -m pip install --quiet selenium
fi
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
    python3 -m pip install --quiet boto3
fi

chromium --version
chromedriver --version
faketime --version 2>&1 | head -1 || true
python3 -c 'import selenium; print("selenium", selenium.__version__)'
