#!/usr/bin/env bash
# Soaks every backend this host has with tests/tests/soak.rs: threads issuing
# random operations, cancels, waits and closes on real pipes and sockets,
# with exactly-once checks on every operation and buffer (see the file).
#
#   scripts/soak.sh              # the CI mode: 20 s per backend, one run
#   scripts/soak.sh 1800         # the long mode: 30 minutes per backend
#   scripts/soak.sh 20 20        # 20 runs of 20 s in a row per backend
#   SOAK_BACKENDS=uring scripts/soak.sh 1800
#
# Each run prints its totals (operations, cancels, callbacks, ...). A backend
# the host cannot run is reported and skipped. Exit status: 0 when every run
# passed, 1 on the first failure (its output is printed), 2 on bad arguments
# or a build failure.
set -uo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
runs="${2:-1}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ && "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS] [RUNS]   (positive integers; default 20 1)" >&2
  exit 2
fi

cmd=(cargo test -q --release -p tpio-tests --test soak -- --nocapture)
if ! build_out=$(cargo test -q --release -p tpio-tests --test soak --no-run 2>&1); then
  printf '%s\n' "$build_out" >&2
  echo "soak: the build failed" >&2
  exit 2
fi

for backend in ${SOAK_BACKENDS:-uring mio}; do
  start=$SECONDS
  for ((i = 1; i <= runs; i++)); do
    out=$(TPIO_BACKEND="$backend" TPIO_SOAK_SECS="$secs" "${cmd[@]}" 2>&1)
    rc=$?
    if grep -q 'is not available' <<<"$out"; then
      echo "soak $backend: not available on this host, skipped"
      grep -m1 'is not available' <<<"$out"
      continue 2
    fi
    if [[ $rc -ne 0 ]]; then
      printf '%s\n' "$out"
      echo "soak $backend: run $i of $runs FAILED (after $((SECONDS - start)) s)"
      exit 1
    fi
    echo "soak $backend run $i/$runs:$(grep -m1 '^soak totals' <<<"$out" | cut -d: -f2-)"
  done
  echo "soak $backend: all $runs run(s) of $secs s passed in $((SECONDS - start)) s"
done
