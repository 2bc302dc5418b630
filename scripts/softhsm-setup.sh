#!/bin/sh
# Create a SoftHSM2 token with test keys for Keyferry's bring-your-own-key import.
#
# Usage: scripts/softhsm-setup.sh DIR [LABEL] [SO_PIN] [USER_PIN]
#   DIR       directory for the token store and softhsm2.conf (created if missing)
#   LABEL     token label (default: keyferry)
#   SO_PIN    security officer PIN (default: 1234)
#   USER_PIN  user PIN (default: 5678)
#
# Needs softhsm2 and opensc (pkcs11-tool): `apt-get install softhsm2 opensc`.
# All keys are CKA_TOKEN, CKA_SENSITIVE and CKA_EXTRACTABLE, the way a key destined for KMS import
# must be made: it can leave the HSM only wrapped.
#   aes-256      AES-256 secret key        (id 01)  -> SYMMETRIC_DEFAULT
#   hmac-256     generic secret, 32 bytes  (id 02)  -> HMAC_256
#   hmac-384     generic secret, 48 bytes  (id 03)  -> HMAC_384
#   ec-p256      EC P-256 key pair         (id 04)  -> ECC_NIST_P256
#   ec-p384      EC P-384 key pair         (id 05)  -> ECC_NIST_P384
#   rsa-2048     RSA-2048 key pair         (id 06)  -> RSA_2048
#   aes-256-nx   AES-256, NOT extractable  (id 07)  -> for the "CKA_EXTRACTABLE is false" error
# At the end it prints the `export SOFTHSM2_CONF=...` line to use the token.
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

DIR=$1
LABEL=${2:-keyferry}
SO_PIN=${3:-1234}
USER_PIN=${4:-5678}

MODULE=${SOFTHSM2_MODULE:-}
if [ -z "$MODULE" ]; then
    for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
        if [ -f "$m" ]; then MODULE=$m; break; fi
    done
fi
if [ -z "$MODULE" ] || [ ! -f "$MODULE" ]; then
    echo "softhsm-setup: libsofthsm2.so not found; install softhsm2 (apt-get install softhsm2) or set SOFTHSM2_MODULE" >&2
    exit 1
fi
for tool in softhsm2-util pkcs11-tool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "softhsm-setup: $tool not found; apt-get install softhsm2 opensc" >&2
        exit 1
    fi
done

mkdir -p "$DIR/tokens"
DIR=$(cd "$DIR" && pwd)
CONF="$DIR/softhsm2.conf"
cat >"$CONF" <<CONF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$CONF"

softhsm2-util --init-token --free --label "$LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN" >/dev/null

p11() {
    pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login --pin "$USER_PIN" "$@" >/dev/null
}

p11 --keygen --key-type AES:32 --label aes-256 --id 01 --sensitive --extractable \
    --usage-decrypt --usage-wrap
p11 --keygen --key-type GENERIC:32 --label hmac-256 --id 02 --sensitive --extractable --usage-sign
p11 --keygen --key-type GENERIC:48 --label hmac-384 --id 03 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type EC:prime256v1 --label ec-p256 --id 04 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type EC:secp384r1 --label ec-p384 --id 05 --sensitive --extractable --usage-sign
p11 --keypairgen --key-type rsa:2048 --label rsa-2048 --id 06 --sensitive --extractable --usage-sign
p11 --keygen --key-type AES:32 --label aes-256-nx --id 07 --sensitive --usage-decrypt

echo "# SoftHSM2 token \"$LABEL\" in $DIR (user PIN $USER_PIN); use it with:"
echo "export SOFTHSM2_CONF=$CONF"
