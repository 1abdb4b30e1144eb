#!/usr/bin/env bash
# Runs the core's race tests (tests/tests/core_races.rs) N times (default
# 20), stopping at the first failure. See scripts/repeat.sh.
exec "$(dirname "$0")/repeat.sh" "${1:-20}" core_races
