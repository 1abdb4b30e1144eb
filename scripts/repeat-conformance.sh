#!/usr/bin/env bash
# Runs the conformance suite and the backend property test (every
# tests/tests/conformance_*.rs and backend_model.rs) N times in a row
# (default 20) on the backend TPIO_BACKEND names (the probe's choice when
# unset), stopping at the first failure. See scripts/repeat.sh.
#
#   scripts/repeat-conformance.sh
#   TPIO_BACKEND=mio scripts/repeat-conformance.sh 20
cd "$(dirname "$0")/.." || exit 2
tests=()
for f in tests/tests/conformance_*.rs tests/tests/backend_model.rs; do
  tests+=("$(basename "$f" .rs)")
done
exec scripts/repeat.sh "${1:-20}" "${tests[@]}"
