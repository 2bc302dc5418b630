#!/bin/sh
# Create a Kryoptic token with test keys for Keyferry's bring-your-own-key import.
#
# Usage: scripts/tokens/kryoptic-setup.sh DIR [LABEL] [USER_PIN]
#   DIR       directory for the token database and kryoptic.conf (created if missing)
#   LABEL     token label (default: keyferry)
#   USER_PIN  user PIN (default: 5678); the SO PIN is 1234
#
# The module is $KRYOPTIC_MODULE, else libkryoptic_pkcs11.so in $KRYOPTIC_DIR (default
# ~/.cache/keyferry/kryoptic), where `KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh`
# builds it; pkcs11-tool comes from opensc. All keys are CKA_TOKEN, CKA_SENSITIVE and
# CKA_EXTRACTABLE:
#   aes-256   AES-256 secret key, value from DIR/aes-256.bin (id 01) -> SYMMETRIC_DEFAULT
#             (the value is kept in the file only so that tests can check KMS holds it)
#   hmac-256  generic secret, 32 bytes       (id 02)  -> HMAC_256
#   ec-p256   EC P-256 key pair              (id 04)  -> ECC_NIST_P256
#   ec-p384   EC P-384 key pair              (id 05)  -> ECC_NIST_P384
#   rsa-2048  RSA-2048 key pair              (id 06)  -> RSA_2048
#   rsa-3072  RSA-3072 key pair              (id 07)  -> RSA_3072
#   rsa-4096  RSA-4096 key pair              (id 08)  -> RSA_4096
# At the end it prints the `export KRYOPTIC_CONF=...` line to use the token.
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

DIR=$1
LABEL=${2:-keyferry}
USER_PIN=${3:-5678}
SO_PIN=1234

MODULE=${KRYOPTIC_MODULE:-${KRYOPTIC_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyferry/kryoptic}/libkryoptic_pkcs11.so}
if [ ! -f "$MODULE" ]; then
    echo "kryoptic-setup: $MODULE not found; build it with KEYFERRY_WITH_KRYOPTIC=1 scripts/tokens/install.sh" >&2
    exit 1
fi
if ! command -v pkcs11-tool >/dev/null 2>&1; then
    echo "kryoptic-setup: pkcs11-tool not found; apt-get install opensc" >&2
    exit 1
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF="$DIR/kryoptic.conf"
cat >"$CONF" <<CONF
[[slots]]
slot = 42
dbtype = "sqlite"
dbargs = "$DIR/token.sql"
CONF
export KRYOPTIC_CONF="$CONF"

tool() {
    out=$(pkcs11-tool --module "$MODULE" "$@" 2>&1) || {
        echo "kryoptic-setup: pkcs11-tool $*: $out" >&2
        return 1
    }
}
tool --slot 42 --init-token --label "$LABEL" --so-pin "$SO_PIN"
tool --slot 42 --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$USER_PIN"

p11() { tool --token-label "$LABEL" --login --pin "$USER_PIN" "$@"; }

openssl rand -out "$DIR/aes-256.bin" 32
p11 --write-object "$DIR/aes-256.bin" --type secrkey --key-type AES:32 --label aes-256 --id 01 \
    --sensitive --extractable --usage-decrypt --usage-wrap
# pkcs11-tool cannot write a generic secret with a value ("Unknown key type"): generated.
p11 --keygen --key-type GENERIC:32 --label hmac-256 --id 02 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type EC:prime256v1 --label ec-p256 --id 04 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type EC:secp384r1 --label ec-p384 --id 05 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type rsa:2048 --label rsa-2048 --id 06 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type rsa:3072 --label rsa-3072 --id 07 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type rsa:4096 --label rsa-4096 --id 08 --sensitive --extractable --usage-sign

echo "# Kryoptic token \"$LABEL\" in $DIR (user PIN $USER_PIN, module $MODULE); use it with:"
echo "export KRYOPTIC_CONF=$CONF"
