#!/usr/bin/env bash
# Run tests of tpio crates cross-compiled for Windows under Wine.
#
#   scripts/wine-test.sh        # the kernel32 tests (-p tpio-windows), then the
#                               # conformance suite on the kernel32 facade
#                               # (-p tpio-tests --test 'conformance_*')
#   scripts/wine-test.sh -p tpio-windows -- rule_6   # any cargo test arguments
#
# What it does, idempotently (see shared WINE.md for why each step exists):
#   1. installs gcc-mingw-w64-x86-64 and wine64 with apt-get if missing
#      (needs root, or sudo), and the x86_64-pc-windows-gnu Rust target;
#   2. builds scripts/wine/processprng.c into a bcryptprimitives.dll shim
#      (Wine 8.0 lacks ProcessPrng, which Rust's std imports);
#   3. creates a Wine prefix in target/wine/prefix and puts the shim into its
#      system32;
#   4. runs `cargo test --target x86_64-pc-windows-gnu <args>` (with no
#      arguments: the two default runs above, both always run) with Wine as
#      the runner and CARGO_TARGET_DIR=target/wine/cargo (not the host build
#      dir, so it never waits on the host build lock).
#
# Exits with cargo's status: non-zero when a test fails.  Safe without stdin
# (CI=true) and with no display.
set -euo pipefail

TARGET=x86_64-pc-windows-gnu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WINE_DIR="$ROOT/target/wine"
PREFIX="$WINE_DIR/prefix"
SHIM_SRC="$ROOT/scripts/wine/processprng.c"
SHIM_DLL="$WINE_DIR/bcryptprimitives.dll"

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'wine-test: error: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
mkdir -p "$WINE_DIR"

# One run at a time per work tree: the prefix and its wineserver are shared.
exec 9>"$WINE_DIR/lock"
if ! flock -n 9; then
    step "another wine-test.sh holds $WINE_DIR/lock; waiting"
    flock 9
fi

# --- 1. system packages -----------------------------------------------------
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

find_wine() {
    # Debian's wine64 package recommends `wine`, which puts /usr/bin/wine on
    # PATH; without recommends only the loader in /usr/lib/wine is there.
    local w
    for w in wine wine64 /usr/lib/wine/wine64; do
        if command -v "$w" >/dev/null 2>&1; then
            command -v "$w"
            return 0
        fi
    done
    return 1
}

# apt-get with a few retries: mirrors and locks are sometimes briefly busy.
apt_retry() {
    local i
    for i in 1 2 3; do
        if as_root apt-get -o DPkg::Lock::Timeout=120 "$@" </dev/null >>"$WINE_DIR/apt.log" 2>&1; then
            return 0
        fi
        step "apt-get $1 failed (try $i of 3)"
        sleep $((i * 5))
    done
    tail -n 30 "$WINE_DIR/apt.log" >&2
    return 1
}

missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
find_wine >/dev/null || missing+=(wine64)
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    : >"$WINE_DIR/apt.log"
    apt_retry update -qq || die "apt-get update failed (log: $WINE_DIR/apt.log)"
    apt_retry install -y -qq "${missing[@]}" || die "apt-get install failed (log: $WINE_DIR/apt.log)"
fi
WINE="$(find_wine)" || die "wine not found after install"
WINESERVER=""
for w in wineserver /usr/lib/wine/wineserver64 /usr/lib/wine/wineserver; do
    if command -v "$w" >/dev/null 2>&1; then WINESERVER="$(command -v "$w")"; break; fi
done
[ -n "$WINESERVER" ] || die "wineserver not found"

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    step "rustup target add $TARGET"
    rustup target add "$TARGET" >/dev/null
fi

# --- 2. ProcessPrng shim ----------------------------------------------------
if [ ! -f "$SHIM_DLL" ] || [ "$SHIM_SRC" -nt "$SHIM_DLL" ]; then
    step "building ProcessPrng shim -> $SHIM_DLL"
    x86_64-w64-mingw32-gcc -O2 -Wall -Werror -shared -s \
        -o "$SHIM_DLL.tmp" "$SHIM_SRC" -ladvapi32
    mv -f "$SHIM_DLL.tmp" "$SHIM_DLL"
fi

# --- 3. Wine prefix ---------------------------------------------------------
export WINEPREFIX="$PREFIX"
export WINEDEBUG=-all
export WINEARCH=win64
# No Mono/Gecko install prompts during wineboot; none of the tests need them.
BOOT_OVERRIDES="mscoree,mshtml="
SYS32="$PREFIX/drive_c/windows/system32"
if [ ! -f "$PREFIX/.tpio-ready" ] || [ ! -d "$SYS32" ]; then
    step "creating Wine prefix $PREFIX (first start takes a while)"
    rm -rf "$PREFIX"
    mkdir -p "$PREFIX"
    # wineboot returns before the prefix is fully written: wait for the
    # server (and with it every wine process of this prefix) to finish.
    WINEDLLOVERRIDES="$BOOT_OVERRIDES" DISPLAY= "$WINE" wineboot --init \
        </dev/null >"$WINE_DIR/wineboot.log" 2>&1 \
        || { tail -n 30 "$WINE_DIR/wineboot.log" >&2; die "wineboot failed"; }
    "$WINESERVER" -w
    [ -d "$SYS32" ] || die "wineboot did not create $SYS32 (see $WINE_DIR/wineboot.log)"
    touch "$PREFIX/.tpio-ready"
fi
if ! cmp -s "$SHIM_DLL" "$SYS32/bcryptprimitives.dll"; then
    step "installing shim into $SYS32"
    cp -f "$SHIM_DLL" "$SYS32/bcryptprimitives.dll"
fi

# --- 4. cargo test under Wine -----------------------------------------------
export CARGO_TARGET_DIR="$ROOT/target/wine/cargo"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$WINE"
export WINEDLLOVERRIDES="bcryptprimitives=n;$BOOT_OVERRIDES"
# Tells the tests they run under Wine, so they check that Wine is detected.
export TPIO_EXPECT_WINE=1
unset DISPLAY WAYLAND_DISPLAY

# Keep one wineserver alive across the test binaries (each would otherwise
# start and tear down its own), and stop it when we are done.
"$WINESERVER" -p 30 </dev/null >/dev/null 2>&1 || true
cleanup() { "$WINESERVER" -k >/dev/null 2>&1 || true; }
trap cleanup EXIT

run() {
    step "cargo test --target $TARGET $* (runner: $WINE, $("$WINE" --version 2>/dev/null))"
    local rc=0
    # Bounded: a test that hangs under Wine fails the run instead of
    # holding CI (spec/wine-deviations.md, "Unit tests not run under Wine").
    timeout --kill-after=30 "${TPIO_WINE_TIMEOUT:-1200}" \
        cargo test --target "$TARGET" "$@" </dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
        step "cargo test under Wine failed (exit $rc): $*"
    fi
    return "$rc"
}

status=0
if [ "$#" -gt 0 ]; then
    run "$@" || status=$?
else
    run -p tpio-windows || status=$?
    run -p tpio-tests --test 'conformance_*' || status=$?
fi
exit "$status"
