#!/usr/bin/env bash
# Checks that the workspace compiles for the kqueue platforms the mio driver
# carries (macOS and FreeBSD), so that path never rots on a Linux-only CI.
# `cargo check` needs no linker or SDK for these targets. Libraries and
# binaries (several test suites are Linux-only on purpose), plus the mio
# driver's own tests and examples, which run on every Unix. Installs the rustup targets if they
# are missing. Usage: scripts/cross-check.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(x86_64-apple-darwin x86_64-unknown-freebsd)
fi

installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$installed"; then
        echo "cross-check: installing rustup target $t"
        rustup target add "$t"
    fi
done

for t in "${targets[@]}"; do
    echo "cross-check: cargo check --workspace --target $t"
    cargo check --workspace --target "$t"
    # The mio driver's own tests run on every Unix: check them too.
    cargo check -p tpio-mio --all-targets --target "$t"
done
echo "cross-check: ok (${targets[*]})"
