#!/usr/bin/env bash
# Breaks each rule of spec/semantics.md in tpio-core (and each promise of its
# thread pool), one at a time, runs the
# core's tests, and reports which tests caught it. Every mutation must be
# caught; the script exits non-zero if one is not. The sources are restored
# after each mutation (and on exit, whatever happens).
#
#   scripts/mutation-check.sh            # all mutations
#   scripts/mutation-check.sh rule_6     # those whose name contains rule_6
set -uo pipefail
cd "$(dirname "$0")/.."
filter="${1:-}"
core=crates/tpio-core/src
backup=$(mktemp -d)
cp -r "$core" "$backup/"
restore() { rm -rf "$core"; cp -r "$backup/src" "$core"; }
trap 'restore; rm -rf "$backup"' EXIT

# Each line: name @@ file @@ old text @@ new text   (\n in a text means a newline)
mutations=$(cat <<'LIST'
rule_1_packet_without_start_gets_a_callback @@ io_object.rs @@ if !skip_old && st.c.pending > 0 { @@ if !skip_old && (st.c.pending > 0 || st.c.skipped == 0) { st.c.pending += 1;
rule_2_skip_mode_still_calls_back @@ driver.rs @@ let callback = !skip_on_success; @@ let callback = true;
rule_3_callback_loses_the_byte_count @@ io_object.rs @@ obj.callback.complete(&mut inst, completion) @@ obj.callback.complete(&mut inst, Completion { bytes: 0, ..completion })
rule_4_wait_ignores_outstanding_starts @@ io_object.rs @@ self.c.pending == 0 && self.c.queued == 0 && self.c.associated == 0 @@ self.c.queued == 0 && self.c.associated == 0
rule_4_wait_ignores_running_callbacks @@ io_object.rs @@ self.c.pending == 0 && self.c.queued == 0 && self.c.associated == 0 @@ self.c.pending == 0 && self.c.queued == 0
rule_4_late_packets_of_old_epochs_not_skipped @@ io_object.rs @@ let skip_old = epoch != st.epoch && st.c.skipped > 0; @@ let skip_old = false;
rule_4_wait_true_keeps_queued_callbacks @@ io_object.rs @@ let dropped = if st.c.queued > 0 { @@ let dropped = if false {
rule_4_wait_in_own_callback_not_detected @@ io_object.rs @@ if CURRENT.with(|c| c.get()) == (inner.id, true) { @@ if false {
rule_5_release_ignores_outstanding_starts @@ io_object.rs @@ self.c.pending == 0 && self.c.skipped == 0 && self.c.queued == 0 && self.c.running == 0; @@ self.c.queued == 0 && self.c.running == 0;
rule_6_nothing_to_cancel_is_not_an_error @@ driver.rs @@ if keys.is_empty() && !matches!(scope, CancelScope::Thread(_)) { @@ if false {
rule_6_cancel_io_cancels_other_threads_ops @@ driver.rs @@ .filter(|(_, e)| e.1 == t) @@ .filter(|_| true)
rule_7_nothing_blocked_reports_success @@ sync_io.rs @@ _ => return Err(Win32Error::NOT_FOUND), @@ _ => return Ok(()),
rule_8_pending_reports_timeout_not_incomplete @@ overlapped_status.rs @@ (Some(t), _) if t.is_zero() => return Err(Win32Error::IO_INCOMPLETE), @@ (Some(t), _) if t.is_zero() => return Err(Win32Error::WAIT_TIMEOUT),
rule_9_group_does_not_wait_for_running @@ io_object.rs @@ fn idle_for_group(&self) -> bool {\n        self.c.pending == 0 && self.c.queued == 0 && self.c.running == 0 @@ fn idle_for_group(&self) -> bool {\n        self.c.pending == 0 && self.c.queued == 0
rule_9_cleanup_callback_without_cancel @@ io_object.rs @@ if cancel_pending && !user_closed { @@ if !user_closed {
pool_own_queue_never_used @@ pool.rs @@ if p.id == pool { @@ if p.id == pool && false {
pool_shared_queue_starved_by_own_chain @@ pool/worker.rs @@ if shared != 0 && *tick % FAIR_EVERY == 0 { @@ if false {
pool_own_work_outranks_shared_higher_priority @@ local_queue.rs @@ if global_mask & ((1 << p as usize) - 1) != 0 { @@ if false {
pool_wait_cancel_misses_own_queues @@ pool.rs @@ local.remove_of(object, &mut out); @@ let _ = (local, object);
pool_rescue_leaves_own_queues @@ pool.rs @@ for (w, p) in local.take_older_than(ended) { @@ for (w, p) in local.take_older_than(0) {
pool_delivery_for_a_worker_goes_to_the_shared_queue @@ pool.rs @@ let Some(parker) = w.parker.upgrade() else { @@ let Some(parker) = w.parker.upgrade().filter(|_| false) else {
pool_no_hook_between_callbacks @@ parker.rs @@                 p.between_callbacks(); @@                 let _ = p;
pool_no_steal_from_lopsided_queues @@ pool/worker.rs @@ let hungry = outstanding == 0 || Self::lopsided(&st, &local, outstanding); @@ let hungry = outstanding == 0;
pool_steal_from_balanced_workers @@ pool/worker.rs @@ .any(|l| l.len() > 2 * outstanding + LOPSIDED) @@ .any(|l| l.len() > 0)
pool_blocking_worker_keeps_its_queue @@ pool.rs @@ pub(crate) fn share_mine() {\n @@ pub(crate) fn share_mine() {\n        if true {\n            return;\n        }\n
LIST
)

missed=0
while IFS= read -r m; do
  name=${m%% @@ *}
  [[ -n "$filter" && "$name" != *"$filter"* ]] && continue
  restore
  if ! python3 - "$core" "$m" <<'PY'
import sys
core, m = sys.argv[1], sys.argv[2]
name, file, old, new = (x.replace('\\n', '\n') for x in m.split(' @@ '))
path = f"{core}/{file}"
s = open(path).read()
if old not in s:
    sys.exit(f"mutation text not found in {path}: {old!r}")
open(path, 'w').write(s.replace(old, new, 1))
PY
  then echo "STALE   $name (the code changed; update the mutation)"; missed=1; continue; fi
  # Build first (not timed), then run with a bound: a mutation may make a
  # test wait forever, which counts as caught (the healthy suite takes seconds).
  if ! cargo test -q --release --no-run -p tpio-tests >/dev/null 2>&1; then
    echo "BROKEN  $name (did not compile)"; missed=1; continue
  fi
  out=$(timeout 120 cargo test -q --release --no-fail-fast -p tpio-tests 2>&1); rc=$?
  caught=$(grep -E '^    [a-z_0-9:]+$' <<<"$out" | sort -u | tr -d ' ' | tr '\n' ' ')
  if [[ $rc -eq 124 ]]; then
    echo "caught  $name by: a test that hung (killed after 120 s) ${caught}"
  elif [[ -n "$caught" ]]; then
    echo "caught  $name by: $caught"
  else
    echo "MISSED  $name"; missed=1
  fi
done <<<"$mutations"
exit $missed
