#!/usr/bin/env bash
# Runs the core's tests under Miri (nightly): undefined behaviour, data
# races and leaks in the state machine, the pool and the simulated driver.
# Real I/O is out of reach (Miri cannot make io_uring or epoll calls), so
# this is the core on the simulated driver, and the drivers' plain tables.
#
#   scripts/miri.sh          # the CI set (~1.5 min after Miri's one-off setup)
#   scripts/miri.sh full     # also the reference-model property test
#                            # (PROPTEST_CASES=16, ~2 min more)
#
# What runs: tpio-core's unit tests and doc tests, and tests/tests/
# core_rules, core_pool, core_sync_io and core_driver_faults, and the
# drivers' tables (tpio-mio's slot_table, tpio-uring's slab). Left out:
# core_races (500 interleavings of real threads per scenario: hours under
# Miri; the loom models cover those races exhaustively instead).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-ci}"

if ! cargo +nightly miri --version >/dev/null 2>&1; then
  echo "miri: installing the component (rustup +nightly component add miri rust-src)"
  rustup +nightly component add miri rust-src
fi
cargo +nightly miri setup >/dev/null

step() {
  local name=$1
  shift
  local t=$SECONDS
  echo "== miri: $name"
  "$@"
  echo "== miri: $name passed in $((SECONDS - t)) s"
}

start=$SECONDS
step "tpio-core unit tests" cargo +nightly miri test -q -p tpio-core --lib
step "tpio-core doc tests" cargo +nightly miri test -q -p tpio-core --doc
step "core rules, pool, sync_io, driver faults (simulated driver)" \
  cargo +nightly miri test -q -p tpio-tests \
  --test core_rules --test core_pool --test core_sync_io --test core_driver_faults
# The drivers' tables of operations are plain memory (no system call), so
# they run here too: the mio slot table's cells (raw pointers lent for the
# table's life) and the io_uring slab.
step "driver tables (mio slot table, io_uring slab)" bash -c \
  'cargo +nightly miri test -q -p tpio-mio --lib slot_table && cargo +nightly miri test -q -p tpio-uring --lib slab'
if [[ "$mode" == full ]]; then
  # proptest reads the working directory for its regression file.
  MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation" PROPTEST_CASES="${PROPTEST_CASES:-16}" \
    step "reference model (property test)" cargo +nightly miri test -q -p tpio-tests --test core_model
fi
echo "miri: all passed in $((SECONDS - start)) s"
