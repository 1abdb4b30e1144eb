#!/usr/bin/env bash
# Runs the conformance suite and a short soak (real I/O on the io_uring
# backend) under AddressSanitizer and ThreadSanitizer (nightly, std rebuilt
# with the sanitizer: -Zbuild-std, target x86_64-unknown-linux-gnu).
# Miri cannot do this part (it cannot make io_uring calls): see scripts/miri.sh.
#
#   scripts/sanitizers.sh              # both, soak 5 s each (~5 min from clean, ~30 s warm)
#   scripts/sanitizers.sh address      # one of them
#   scripts/sanitizers.sh thread 60    # with a 60 s soak
#
# Target dirs: target/san-address, target/san-thread. A sanitizer report
# fails the run (halt_on_error). Exit status: 0 when everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
soak="${2:-5}"
case "$which" in
  all) sans=(address thread) ;;
  address | thread) sans=("$which") ;;
  *)
    echo "usage: $0 [all|address|thread] [SOAK_SECONDS]" >&2
    exit 2
    ;;
esac

if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "sanitizers: installing rust-src for -Zbuild-std"
  rustup +nightly component add rust-src
fi

start=$SECONDS
for san in "${sans[@]}"; do
  t=$SECONDS
  echo "== sanitizer: $san (conformance_* and a ${soak} s soak, backend ${TPIO_BACKEND:-process default})"
  RUSTFLAGS="-Zsanitizer=$san" RUSTDOCFLAGS="-Zsanitizer=$san" \
    CARGO_TARGET_DIR="target/san-$san" \
    ASAN_OPTIONS="halt_on_error=1:detect_leaks=1" TSAN_OPTIONS="halt_on_error=1" \
    TPIO_SOAK_SECS="$soak" \
    cargo +nightly test -q -Zbuild-std --target x86_64-unknown-linux-gnu --release \
    -p tpio-tests --test 'conformance_*' --test soak -- --nocapture 2>&1 |
    grep -vE '^(test .* \.\.\. ok|running [0-9]+ tests?)$' | grep -v '^$'
  echo "== sanitizer: $san passed in $((SECONDS - t)) s"
done
echo "sanitizers: all passed in $((SECONDS - start)) s"
