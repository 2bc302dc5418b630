#!/bin/sh
# Install the four PKCS#11 tokens `keyferry import` is tested on, idempotently (quick when they
# are there already). Run as root (CI and the development machines are). .ci/run calls it
# before the tests.
#
#   SoftHSM2        apt: softhsm2 (+ opensc for pkcs11-tool)
#   NSS softoken    apt: libnss3 (libsoftokn3.so)
#   openCryptoki    apt: opencryptoki (soft token, slot 3); pkcsslotd is started by
#                   scripts/tokens/opencryptoki-start.sh
#   Kryoptic        crates.io: kryoptic, built with cargo into $KRYOPTIC_DIR (default
#                   /opt/kryoptic) only when KEYFERRY_WITH_KRYOPTIC=1: it needs OpenSSL >= 3.2
#                   and Debian 12 ships 3.0; the static build against the openssl-src
#                   sources below does not finish yet ("No OpenSSL version detected"), so
#                   the tests do not use Kryoptic.
set -eu

need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in softhsm2 opensc libnss3 opencryptoki; do
    have "$p" || need="$need $p"
done
if [ "${KEYFERRY_WITH_KRYOPTIC:-0}" = 1 ]; then
    for p in clang libclang-dev libssl-dev pkg-config; do
        have "$p" || need="$need $p"
    done
fi
if [ -n "$need" ]; then
    echo "tokens/install: apt-get install$need" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ "${KEYFERRY_WITH_KRYOPTIC:-0}" = 1 ]; then
    dir=${KRYOPTIC_DIR:-/opt/kryoptic}
    version=${KRYOPTIC_VERSION:-1.5.4}
    if [ ! -f "$dir/libkryoptic_pkcs11.so" ] || [ "$(cat "$dir/VERSION" 2>/dev/null)" != "$version" ]; then
        echo "tokens/install: building kryoptic $version from crates.io into $dir" >&2
        start=$(date +%s)
        work=$(mktemp -d)
        # kryoptic is a cdylib only, so it cannot be a dependency: fetch its .crate through a
        # throwaway project, unpack it and build it as its own workspace.
        crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/kryoptic-"$version".crate 2>/dev/null | head -1 || true)
        if [ -z "$crate" ]; then
            mkdir -p "$work/fetch/src"
            printf '[package]\nname = "kryoptic-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nkryoptic-lib = "=%s"\nkryoptic = "=%s"\n\n[workspace]\n' "$version" "$version" >"$work/fetch/Cargo.toml"
            : >"$work/fetch/src/lib.rs"
            (cd "$work/fetch" && cargo fetch --quiet 2>/dev/null || true)
            crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/kryoptic-"$version".crate 2>/dev/null | head -1 || true)
        fi
        if [ -z "$crate" ]; then
            echo "tokens/install: cannot download kryoptic $version from crates.io" >&2
            exit 1
        fi
        tar xzf "$crate" -C "$work"
        # Kryoptic needs OpenSSL >= 3.2 (Debian 12 has 3.0): build it statically against the
        # OpenSSL sources the crates.io package openssl-src ships.
        osrc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/openssl-src-300.*/openssl 2>/dev/null | sort -V | tail -1 || true)
        if [ -z "$osrc" ]; then
            mkdir -p "$work/osrc/src"
            printf '[package]\nname = "osrc-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nopenssl-src = "300.5"\n\n[workspace]\n' >"$work/osrc/Cargo.toml"
            : >"$work/osrc/src/lib.rs"
            (cd "$work/osrc" && cargo metadata --format-version 1 >/dev/null 2>&1 && cargo fetch --quiet)
            # cargo fetch downloads; a check unpacks the source.
            (cd "$work/osrc" && cargo check --quiet 2>/dev/null || true)
            osrc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/openssl-src-300.*/openssl 2>/dev/null | sort -V | tail -1 || true)
        fi
        if [ -z "$osrc" ]; then
            echo "tokens/install: cannot get the OpenSSL sources (crates.io openssl-src) for kryoptic" >&2
            exit 1
        fi
        trap 'rm -rf "$work"' EXIT
        (cd "$work/kryoptic-$version" && printf '\n[workspace]\n' >>Cargo.toml \
            && KRYOPTIC_OPENSSL_SOURCES="$osrc" cargo build --release --quiet --no-default-features --features standard)
        mkdir -p "$dir"
        so=$(find "$work/kryoptic-$version/target/release" -maxdepth 1 -name 'libkryoptic_pkcs11.so' | head -1)
        if [ -z "$so" ]; then
            echo "tokens/install: kryoptic built but libkryoptic_pkcs11.so not found" >&2
            exit 1
        fi
        cp "$so" "$dir/libkryoptic_pkcs11.so"
        echo "$version" >"$dir/VERSION"
        rm -rf "$work"
        echo "tokens/install: kryoptic built in $(( $(date +%s) - start )) s" >&2
    fi
fi
