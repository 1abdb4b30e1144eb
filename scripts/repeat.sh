#!/usr/bin/env bash
# Runs some of tpio-tests' test binaries N times in a row in release mode,
# stopping at the first failure and printing its output. Used by
# repeat-races.sh and repeat-conformance.sh; usable alone:
#
#   scripts/repeat.sh 20 core_races conformance_io
#
# Builds once (cargo does not rebuild between runs). Exit status: 0 when
# every run passed, 1 on the first failure, 2 on a bad argument or a build
# failure. TPIO_BACKEND is passed through (the label says which).
set -uo pipefail
cd "$(dirname "$0")/.."

n="${1:-}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ $# -lt 2 ]; then
  echo "usage: $0 N TEST...   (N runs, a positive integer; TEST: tests/tests/TEST.rs)" >&2
  exit 2
fi
shift
args=()
for t in "$@"; do args+=(--test "$t"); done
cmd=(cargo test --release -p tpio-tests "${args[@]}")

if ! build_out=$("${cmd[@]}" --no-run 2>&1); then
  printf '%s\n' "$build_out" >&2
  echo "repeat: the build failed" >&2
  exit 2
fi

label="${TPIO_BACKEND:-(probe)}"
start=$SECONDS
for ((i = 1; i <= n; i++)); do
  if ! out=$("${cmd[@]}" 2>&1); then
    printf '%s\n' "$out"
    echo "repeat [$label]: run $i of $n FAILED (after $((SECONDS - start)) s)"
    exit 1
  fi
  passed=$(grep -E '^test result:' <<<"$out" | awk '{s += $4} END {print s}')
  echo "run $i/$n [$label]: $passed tests passed"
done
echo "repeat [$label]: all $n runs passed in $((SECONDS - start)) s"
