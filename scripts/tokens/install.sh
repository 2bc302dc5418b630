#!/bin/sh
# Install the four PKCS#11 tokens `keyferry import` is tested on, idempotently (quick when they
# are there already). Run as root (CI and the development machines are). .ci/run calls it
# before the tests.
#
#   SoftHSM2        apt: softhsm2 (+ opensc for pkcs11-tool)
#   NSS softoken    apt: libnss3 (libsoftokn3.so)
#   openCryptoki    apt: opencryptoki (soft token, slot 3); pkcsslotd is started by
#                   scripts/tokens/opencryptoki-start.sh
#   Kryoptic        crates.io: kryoptic 1.5.4, built with cargo (about 2 min of CPU: 129 s on
#                   this project's 2-core machine, 8 min 49 s from an empty CARGO_HOME while
#                   other builds shared the cores) into $KRYOPTIC_DIR (default
#                   ~/.cache/keyferry/kryoptic) when KEYFERRY_WITH_KRYOPTIC=1 (.ci/run sets
#                   it); warm runs find the library and its stamp there and skip the build. It is built against Debian 12's OpenSSL
#                   3.0 (kryoptic-lib's `dynamic` feature) with its `minimal` feature set (sqlite
#                   storage, AES, ECDSA/ECDH, SHA-1/2/3 and HMAC, RSA): the `standard` set needs
#                   OpenSSL >= 3.2 only for EdDSA (ossl320), which KMS import does not use.
#                   Its build needs clang/libclang (bindgen), libssl-dev, libsqlite3-dev.
set -eu

need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in softhsm2 opensc libnss3 opencryptoki; do
    have "$p" || need="$need $p"
done
if [ "${KEYFERRY_WITH_KRYOPTIC:-0}" = 1 ]; then
    for p in clang libclang-dev libssl-dev libsqlite3-dev pkg-config; do
        have "$p" || need="$need $p"
    done
fi
if [ -n "$need" ]; then
    echo "tokens/install: apt-get install$need" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ "${KEYFERRY_WITH_KRYOPTIC:-0}" = 1 ]; then
    dir=${KRYOPTIC_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyferry/kryoptic}
    version=${KRYOPTIC_VERSION:-1.5.4}
    features="minimal,kryoptic-lib/dynamic"
    stamp="$version $features"
    if [ ! -f "$dir/libkryoptic_pkcs11.so" ] || [ "$(cat "$dir/STAMP" 2>/dev/null)" != "$stamp" ]; then
        echo "tokens/install: building kryoptic $version from crates.io into $dir" >&2
        start=$(date +%s)
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        registry="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
        crate=$(ls "$registry"/*/kryoptic-"$version".crate 2>/dev/null | head -1 || true)
        if [ -z "$crate" ]; then
            # kryoptic is a cdylib only, so it cannot be built as a dependency: a throwaway
            # project makes cargo download its .crate, which is unpacked and built on its own.
            mkdir -p "$work/fetch/src"
            printf '[package]\nname = "kryoptic-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nkryoptic = "=%s"\n\n[workspace]\n' "$version" >"$work/fetch/Cargo.toml"
            : >"$work/fetch/src/lib.rs"
            (cd "$work/fetch" && cargo fetch --quiet)
            crate=$(ls "$registry"/*/kryoptic-"$version".crate 2>/dev/null | head -1 || true)
        fi
        if [ -z "$crate" ]; then
            echo "tokens/install: cannot download kryoptic $version from crates.io" >&2
            exit 1
        fi
        tar xzf "$crate" -C "$work"
        # Its own workspace (not the enclosing one), the versions of its published Cargo.lock.
        printf '\n[workspace]\n' >>"$work/kryoptic-$version/Cargo.toml"
        (cd "$work/kryoptic-$version" \
            && CARGO_TARGET_DIR="$work/target" cargo build --release --locked --quiet \
                --no-default-features --features "$features")
        so="$work/target/release/libkryoptic_pkcs11.so"
        if [ ! -f "$so" ]; then
            echo "tokens/install: kryoptic built but $so is missing" >&2
            exit 1
        fi
        mkdir -p "$dir"
        cp "$so" "$dir/libkryoptic_pkcs11.so.tmp"
        mv "$dir/libkryoptic_pkcs11.so.tmp" "$dir/libkryoptic_pkcs11.so"
        echo "$stamp" >"$dir/STAMP"
        echo "tokens/install: kryoptic built in $(( $(date +%s) - start )) s" >&2
    fi
fi
