#!/bin/sh
# Start openCryptoki's pkcsslotd (if it is not running) and (re)initialise the soft token
# (slot 3, libpkcs11_sw.so) for the tests: label LABEL, user PIN USER_PIN, SO PIN 87654321
# (openCryptoki's default, kept). Needs root (pkcsslotd) and scripts/tokens/install.sh.
# Usage: scripts/tokens/opencryptoki-start.sh [LABEL] [USER_PIN]
set -eu
LABEL=${1:-keyferry}
USER_PIN=${2:-5678}
SO_PIN=87654321
SLOT=3
MODULE=""
for m in /usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0 \
    /usr/lib/aarch64-linux-gnu/opencryptoki/libopencryptoki.so.0 \
    /usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so; do
    if [ -f "$m" ]; then MODULE=$m; break; fi
done
if [ -z "$MODULE" ]; then
    echo "opencryptoki-start: openCryptoki is not installed; run scripts/tokens/install.sh" >&2
    exit 1
fi
if ! pgrep -x pkcsslotd >/dev/null 2>&1; then
    mkdir -p /run/opencryptoki /var/lib/opencryptoki/swtok
    chgrp pkcs11 /run/opencryptoki /var/lib/opencryptoki/swtok 2>/dev/null || true
    chmod 0770 /run/opencryptoki /var/lib/opencryptoki/swtok 2>/dev/null || true
    /usr/sbin/pkcsslotd
    sleep 1
fi
tool() { pkcs11-tool --module "$MODULE" --slot "$SLOT" "$@"; }
tool --init-token --label "$LABEL" --so-pin "$SO_PIN" >/dev/null
tool --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$USER_PIN" >/dev/null
echo "$MODULE"
