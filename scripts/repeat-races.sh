#!/usr/bin/env bash
# Runs the core's race tests (tests/tests/core_races.rs) N times in release
# mode and stops at the first failure, printing its output.
#
#   scripts/repeat-races.sh        # 20 runs
#   scripts/repeat-races.sh 200    # 200 runs
#
# Builds once, then runs the test binary through cargo each time (cargo does
# not rebuild). Exit status: 0 when every run passed, 1 on the first failure,
# 2 on a bad argument or a build failure.
set -uo pipefail
cd "$(dirname "$0")/.."

n="${1:-20}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [N]   (N: how many runs, a positive integer; default 20)" >&2
  exit 2
fi

cmd=(cargo test --release -p tpio-tests --test core_races)

if ! build_out=$("${cmd[@]}" --no-run 2>&1); then
  printf '%s\n' "$build_out" >&2
  echo "repeat-races: the build failed" >&2
  exit 2
fi

start=$SECONDS
for ((i = 1; i <= n; i++)); do
  if ! out=$("${cmd[@]}" 2>&1); then
    printf '%s\n' "$out"
    echo "repeat-races: run $i of $n FAILED (after $((SECONDS - start)) s)"
    exit 1
  fi
  summary=$(grep -E '^test result:' <<<"$out" | tail -n 1)
  echo "run $i/$n: ${summary:-passed}"
done
echo "repeat-races: all $n runs passed in $((SECONDS - start)) s"
