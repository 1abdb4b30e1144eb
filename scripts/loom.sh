#!/usr/bin/env bash
# Model-checks the core's state machine with loom
# (crates/tpio-core/tests/loom_*.rs, release mode, target dir target/loom).
#
#   scripts/loom.sh             # the CI run: preemption bound 3 (~10 s after the build)
#   scripts/loom.sh deep        # preemption bound 5 (~2 min on two cores)
#   scripts/loom.sh mutants     # breaks rules in a throwaway git worktree of HEAD
#                               # and checks that a model catches each (~10 s each
#                               # after the first build)
#   scripts/loom.sh mutants rule_5   # only the mutations whose name contains rule_5
#
# LOOM_MAX_PREEMPTIONS overrides the bound in the first two modes. Each model
# prints how many interleavings it explored. Exit status: 0 when every model
# passed (or, for `mutants`, every mutation was caught), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode="${1:-ci}"
filter="${2:-}"

run_models() { # dir target_dir
  (cd "$1" && RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$2" \
    cargo test -q -p tpio-core --release --test 'loom_*' -- --nocapture --test-threads 1)
}

case "$mode" in
  ci) ;;
  deep) export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-5}" ;;
  mutants) ;;
  *)
    echo "usage: $0 [ci|deep|mutants]" >&2
    exit 2
    ;;
esac

if [[ "$mode" != mutants ]]; then
  start=$SECONDS
  run_models "$root" "$root/target/loom"
  rc=$?
  if [[ $rc -eq 0 ]]; then echo "loom: all models passed in $((SECONDS - start)) s"; else echo "loom: FAILED (exit $rc)"; fi
  exit $rc
fi

# Each line: name @@ file (under crates/tpio-core/src) @@ old text @@ new text
mutations=$(cat <<'LIST'
rule_4_wait_ignores_running_callbacks @@ io_object.rs @@ self.c.pending == 0 && self.c.queued == 0 && self.c.associated == 0 @@ self.c.pending == 0 && self.c.queued == 0
rule_4_wait_true_keeps_queued_callbacks @@ io_object.rs @@ let dropped = if st.c.queued > 0 { @@ let dropped = if false {
rule_5_release_ignores_outstanding_starts @@ io_object.rs @@ self.c.pending == 0 && self.c.skipped == 0 && self.c.queued == 0 && self.c.running == 0; @@ self.c.queued == 0 && self.c.running == 0;
rule_5_release_overtakes_a_discard_in_flight @@ io_object.rs @@ if self.gone() && drained && self.discarding == 0 && !self.c.released { @@ if self.gone() && drained && !self.c.released {
rule_6_cancel_by_overlapped_hits_every_operation @@ driver.rs @@ .filter(|(_, e)| e.0 == ov) @@ .filter(|_| true)
rule_9_group_does_not_wait_for_running @@ io_object.rs @@ self.c.pending == 0 && self.c.queued == 0 && self.c.running == 0\n    } @@ self.c.pending == 0 && self.c.queued == 0\n    }
driver_lost_packet_not_replaced @@ io_object.rs @@ IoInner::lost_packet(inner, epoch, self.overlapped); @@ drop((inner, epoch));
LIST
)

wt=$(mktemp -d /tmp/loommut.XXXXXX)
rmdir "$wt"
git worktree add -q --detach "$wt" HEAD || exit 2
trap 'git -C "$root" worktree remove --force "$wt"' EXIT
missed=0
while IFS= read -r m; do
  name=${m%% @@ *}
  [[ -n "$filter" && "$name" != *"$filter"* ]] && continue
  git -C "$wt" checkout -q -- crates/tpio-core/src
  if ! python3 - "$wt/crates/tpio-core/src" "$m" <<'PY'
import sys
core, m = sys.argv[1], sys.argv[2]
name, file, old, new = (x.replace('\\n', '\n') for x in m.split(' @@ '))
path = f"{core}/{file}"
s = open(path).read()
if old not in s:
    sys.exit(f"mutation text not found in {path}: {old!r}")
open(path, 'w').write(s.replace(old, new, 1))
PY
  then echo "STALE   $name"; missed=1; continue; fi
  out=$(timeout 900 bash -c "$(declare -f run_models); run_models '$wt' '$root/target/loom-mut'" 2>&1)
  rc=$?
  failed=$(grep -oE '^    [a-z_0-9]+$' <<<"$out" | sort -u | tr -d ' ' | tr '\n' ' ')
  # A deadlock found by loom aborts the test binary: name the model that panicked.
  [[ -z "$failed" ]] && failed=$(grep -oE "^thread '[a-z_0-9]+'" <<<"$out" | sort -u | cut -d"'" -f2 | tr '\n' ' ')
  grep -q 'deadlock; threads' <<<"$out" && failed+="(loom found a deadlock) "
  if grep -q 'error\[E' <<<"$out"; then
    echo "BROKEN  $name (did not compile)"; missed=1
  elif [[ $rc -ne 0 ]]; then
    if [[ $rc -eq 124 ]]; then failed="(a model ran past the 900 s bound)"; fi
    echo "CAUGHT  $name by: ${failed:-(exit $rc; see the output)}"
  else
    echo "MISSED  $name"; missed=1
  fi
done <<<"$mutations"
exit $missed
