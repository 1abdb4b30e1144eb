#!/usr/bin/env bash
# Runs the conformance suite and the backend property test (every
# tests/tests/conformance_*.rs and backend_model.rs) N times in a row on the
# backend TPIO_BACKEND names (the probe's choice when unset), stopping at
# the first failure and printing its output.
#
#   scripts/repeat-conformance.sh              # 20 runs, the host's backend
#   TPIO_BACKEND=mio scripts/repeat-conformance.sh 20
#
# Exit status: 0 when every run passed, 1 on the first failure, 2 on a bad
# argument or a build failure.
set -uo pipefail
cd "$(dirname "$0")/.."

n="${1:-20}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [N]   (N: how many runs, a positive integer; default 20)" >&2
  exit 2
fi

tests=()
for f in tests/tests/conformance_*.rs tests/tests/backend_model.rs; do
  tests+=(--test "$(basename "$f" .rs)")
done
cmd=(cargo test --release -p tpio-tests "${tests[@]}")

if ! build_out=$("${cmd[@]}" --no-run 2>&1); then
  printf '%s\n' "$build_out" >&2
  echo "repeat-conformance: the build failed" >&2
  exit 2
fi

backend="${TPIO_BACKEND:-(probe)}"
start=$SECONDS
for ((i = 1; i <= n; i++)); do
  if ! out=$("${cmd[@]}" 2>&1); then
    printf '%s\n' "$out"
    echo "repeat-conformance [$backend]: run $i of $n FAILED (after $((SECONDS - start)) s)"
    exit 1
  fi
  passed=$(grep -E '^test result:' <<<"$out" | awk '{s += $4} END {print s}')
  echo "run $i/$n [$backend]: $passed tests passed"
done
echo "repeat-conformance [$backend]: all $n runs passed in $((SECONDS - start)) s"
