//! The rules of `spec/semantics.md` checked on the core with the simulated
//! driver (completions at chosen moments) and real pool workers. Each test is
//! named after the rule it checks; `spec/semantics.md` lists them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tpio_core::driver::{cancel_io, CancelScope, IssueOutcome, Issued};
use tpio_core::{CallbackEnvironment, CleanupGroup, Discard, IoObject, Pool, Win32Error};
use tpio_tests::{done, Harness, Recorder, Seen, PATIENCE};

const OK: Win32Error = Win32Error::SUCCESS;
const SHORT: Duration = Duration::from_millis(50);

// ---- rule 1: every start is balanced exactly once -------------------------

#[test]
fn rule_1_each_start_gets_exactly_one_callback() {
    let h = Harness::new("r1a");
    let keys: Vec<u64> = (1..=3).map(|i| h.issue_pending(0x100 * i)).collect();
    for (i, k) in keys.iter().enumerate() {
        assert!(h.driver.complete(*k, OK, i + 1));
    }
    h.io().wait_for_callbacks(false).unwrap();
    let mut got = h.rec.callbacks();
    got.sort_by_key(|c| c.overlapped);
    assert_eq!(
        got,
        vec![done(0x100, OK, 1), done(0x200, OK, 2), done(0x300, OK, 3)]
    );
    assert_eq!(h.io().counts().pending, 0);
}

#[test]
fn rule_1_completion_without_start_is_dropped_and_diagnosed() {
    let h = Harness::new("r1b");
    // A packet for an operation nobody started.
    h.io().target().complete(done(0x42, OK, 7));
    assert_eq!(
        h.rec.discards(),
        vec![(done(0x42, OK, 7), Discard::NoStart)]
    );
    h.io().wait_for_callbacks(false).unwrap();
    assert!(h.rec.callbacks().is_empty());
    assert_eq!(h.pool.stats().misuse_completion_without_start, 1);
}

#[test]
fn rule_1_cancel_without_start_is_an_error() {
    let h = Harness::new("r1c");
    assert_eq!(h.io().cancel(), Err(Win32Error::NOT_FOUND));
    assert_eq!(h.pool.stats().misuse_cancel_without_start, 1);
    // A start is balanced by one cancel, not two.
    h.io().start().unwrap();
    assert_eq!(h.io().cancel(), Ok(()));
    assert_eq!(h.io().cancel(), Err(Win32Error::NOT_FOUND));
}

// ---- rule 2: failed-now and succeeded-now ---------------------------------

#[test]
fn rule_2_failed_now_gets_no_callback_and_cancel_balances() {
    let h = Harness::new("r2a");
    let r = h.issue(
        0x10,
        Issued::FailedNow(Win32Error::INVALID_PARAMETER),
        false,
    );
    assert_eq!(r, Err(Win32Error::INVALID_PARAMETER));
    assert_eq!(
        h.io().counts().pending,
        1,
        "the start is still outstanding until cancel"
    );
    assert_eq!(h.io().wait_for_callbacks_timeout(false, SHORT), Ok(false));
    h.io().cancel().unwrap();
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    assert!(h.rec.callbacks().is_empty());
}

#[test]
fn rule_2_success_now_still_calls_back() {
    let h = Harness::new("r2b");
    let r = h.issue(
        0x20,
        Issued::CompletedNow {
            status: OK,
            bytes: 9,
        },
        false,
    );
    assert_eq!(
        r,
        Ok(IssueOutcome::Done {
            bytes: 9,
            callback: true
        })
    );
    assert!(h.rec.wait_callbacks(1));
    assert_eq!(h.rec.callbacks(), vec![done(0x20, OK, 9)]);
}

#[test]
fn rule_2_success_now_in_skip_mode_gets_no_callback() {
    let h = Harness::new("r2c");
    let r = h.issue(
        0x30,
        Issued::CompletedNow {
            status: OK,
            bytes: 9,
        },
        true,
    );
    assert_eq!(
        r,
        Ok(IssueOutcome::Done {
            bytes: 9,
            callback: false
        })
    );
    assert_eq!(
        h.io().wait_for_callbacks_timeout(false, SHORT),
        Ok(false),
        "start outstanding until cancel"
    );
    h.io().cancel().unwrap();
    h.io().wait_for_callbacks(false).unwrap();
    assert!(h.rec.callbacks().is_empty());
}

// ---- rule 3: what the callback receives, and where it runs ----------------

#[test]
fn rule_3_callback_gets_overlapped_status_bytes_on_a_worker() {
    let h = Harness::new("r3a");
    let k = h.issue_pending(0xABC0);
    h.driver.complete(k, Win32Error::HANDLE_EOF, 0);
    assert!(h.rec.wait_callbacks(1));
    match &h.rec.seen()[0] {
        Seen::Callback {
            c,
            thread,
            thread_name,
        } => {
            assert_eq!(*c, done(0xABC0, Win32Error::HANDLE_EOF, 0));
            assert_ne!(
                *thread,
                std::thread::current().id(),
                "never inline on the issuing thread"
            );
            assert!(
                thread_name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("tpio-r3a-"),
                "{thread_name:?}"
            );
        }
        other => panic!("expected a callback, saw {other:?}"),
    }
}

#[test]
fn rule_3_callbacks_of_one_object_run_concurrently() {
    let h = Harness::new("r3b");
    h.pool.set_concurrency(2); // two short callbacks at once, even on one CPU
    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    *h.rec.hook.lock() = Some(Arc::new(move |_, _| {
        // Both callbacks must be inside at once for this to return.
        b.wait();
    }));
    let k1 = h.issue_pending(1);
    let k2 = h.issue_pending(2);
    h.driver.complete(k1, OK, 1);
    h.driver.complete(k2, OK, 2);
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    assert_eq!(h.rec.callbacks().len(), 2);
}

// ---- rule 4: wait_for_callbacks -------------------------------------------

#[test]
fn rule_4_wait_blocks_on_outstanding_start() {
    let h = Harness::new("r4a");
    let k = h.issue_pending(0x1);
    assert_eq!(h.io().wait_for_callbacks_timeout(false, SHORT), Ok(false));
    h.driver.complete(k, OK, 4);
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    assert_eq!(h.rec.callbacks(), vec![done(0x1, OK, 4)]);
}

#[test]
fn rule_4_wait_blocks_on_running_callback() {
    let h = Harness::new("r4b");
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    *h.rec.hook.lock() = Some(Arc::new(move |_, _| {
        g.wait();
        g.wait();
    }));
    let k = h.issue_pending(0x1);
    h.driver.complete(k, OK, 1);
    gate.wait(); // the callback is running
    assert_eq!(h.io().wait_for_callbacks_timeout(false, SHORT), Ok(false));
    gate.wait(); // let it return
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
}

#[test]
fn rule_4_wait_cancel_drops_queued_and_skips_outstanding() {
    let h = Harness::manual("r4c");
    let k1 = h.issue_pending(0x1);
    let k2 = h.issue_pending(0x2);
    h.driver.complete(k1, OK, 1); // queued, not started
    assert_eq!(h.pool.queued_len(), 1);
    assert_eq!(h.io().wait_for_callbacks_timeout(true, PATIENCE), Ok(true));
    assert_eq!(h.pool.queued_len(), 0);
    assert_eq!(h.rec.discards(), vec![(done(0x1, OK, 1), Discard::Dropped)]);
    // The outstanding start's packet arrives later: no callback.
    h.driver.complete(k2, OK, 2);
    assert_eq!(h.pool.run_queued(10), Ok(0));
    assert!(h.rec.callbacks().is_empty());
    assert_eq!(h.rec.discards()[1], (done(0x2, OK, 2), Discard::Skipped));
    // It never cancelled anything in the kernel.
    assert_eq!(h.pool.stats().packets_skipped, 1);
}

#[test]
fn rule_4_wait_cancel_skips_only_the_old_starts() {
    let h = Harness::manual("r4d");
    let old = h.issue_pending(0x1);
    h.io().wait_for_callbacks(true).unwrap();
    let new = h.issue_pending(0x2);
    // The old operation's packet comes first, while the new start is
    // outstanding: it is still the old one's, and gets no callback (kernel32
    // pairs by count and would give it the new start's callback).
    h.driver.complete(old, OK, 1);
    assert_eq!(h.rec.discards(), vec![(done(0x1, OK, 1), Discard::Skipped)]);
    h.driver.complete(new, OK, 2);
    assert_eq!(h.pool.run_queued(10), Ok(1));
    assert_eq!(h.rec.callbacks(), vec![done(0x2, OK, 2)]);
}

#[test]
fn rule_4_wait_in_own_callback_is_an_error_not_a_hang() {
    let pool = Pool::new("r4e");
    let result = Arc::new(parking_lot::Mutex::new(None));
    let io_slot: Arc<parking_lot::Mutex<Option<Arc<IoObject>>>> = Default::default();
    let (r2, slot2) = (result.clone(), io_slot.clone());
    let io = Arc::new(IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |_inst: &mut tpio_core::CallbackInstance<'_>, _c: tpio_core::Completion| {
            let io = slot2.lock().clone().unwrap();
            *r2.lock() = Some(io.wait_for_callbacks(false));
        },
    ));
    *io_slot.lock() = Some(io.clone());
    io.start().unwrap();
    io.target().complete(done(1, OK, 0));
    assert_eq!(io.wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    assert_eq!(*result.lock(), Some(Err(Win32Error::POSSIBLE_DEADLOCK)));
    assert_eq!(pool.stats().misuse_wait_in_own_callback, 1);
    io_slot.lock().take();
}

#[test]
fn rule_4_disassociated_callback_may_wait() {
    let pool = Pool::new("r4f");
    let result = Arc::new(parking_lot::Mutex::new(None));
    let finished = tpio_core::Event::new(true, false);
    let io_slot: Arc<parking_lot::Mutex<Option<Arc<IoObject>>>> = Default::default();
    let (r2, slot2, fin) = (result.clone(), io_slot.clone(), finished.clone());
    let io = Arc::new(IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |inst: &mut tpio_core::CallbackInstance<'_>, _c: tpio_core::Completion| {
            inst.disassociate();
            let io = slot2.lock().clone().unwrap();
            *r2.lock() = Some(io.wait_for_callbacks(false));
            fin.set();
        },
    ));
    *io_slot.lock() = Some(io.clone());
    io.start().unwrap();
    io.target().complete(done(1, OK, 0));
    assert!(
        finished.wait_timeout(PATIENCE),
        "the disassociated callback's wait never returned"
    );
    assert_eq!(*result.lock(), Some(Ok(())));
    io_slot.lock().take();
}

// ---- rule 5: close neither cancels nor waits ------------------------------

#[test]
fn rule_5_close_neither_cancels_nor_waits() {
    let mut h = Harness::new("r5a");
    let k = h.issue_pending(0x5);
    h.close(); // returns at once with the operation in flight
    assert!(!h.driver.cancel_requested(k), "close must not cancel");
    assert_eq!(
        h.rec.releases(),
        0,
        "not released while a start is outstanding"
    );
    h.driver.complete(k, OK, 5);
    assert!(h.rec.wait_until(|s| s.contains(&Seen::Released)));
    assert_eq!(h.rec.callbacks(), vec![done(0x5, OK, 5)]);
    assert_eq!(h.rec.releases(), 1);
    assert_eq!(h.pool.stats().live_objects(), 0);
}

#[test]
fn rule_5_queued_callbacks_still_run_after_close() {
    let mut h = Harness::manual("r5b");
    let k = h.issue_pending(0x5);
    h.driver.complete(k, OK, 5);
    h.close();
    assert_eq!(h.rec.releases(), 0);
    assert_eq!(h.pool.run_queued(10), Ok(1));
    assert_eq!(h.rec.callbacks(), vec![done(0x5, OK, 5)]);
    assert_eq!(h.rec.releases(), 1);
    // Released once: the callback came first.
    assert_eq!(h.rec.seen().last(), Some(&Seen::Released));
}

#[test]
fn rule_5_idle_object_is_released_at_close() {
    let mut h = Harness::new("r5c");
    h.close();
    assert_eq!(h.rec.releases(), 1);
    assert_eq!(h.pool.stats().live_objects(), 0);
}

// ---- rule 6: cancel selection (the core's part; real I/O in the conformance suite)

#[test]
fn rule_6_cancel_by_overlapped_cancels_only_that_one() {
    let h = Harness::new("r6a");
    let k1 = h.issue_pending(0x1);
    let k2 = h.issue_pending(0x2);
    cancel_io(&*h.driver, &h.ops, CancelScope::Overlapped(0x1)).unwrap();
    assert!(h.driver.cancel_requested(k1));
    assert!(!h.driver.cancel_requested(k2));
    assert_eq!(h.driver.deliver_cancellations(), 1);
    h.driver.complete(k2, OK, 2);
    h.io().wait_for_callbacks(false).unwrap();
    let mut got = h.rec.callbacks();
    got.sort_by_key(|c| c.overlapped);
    assert_eq!(
        got,
        vec![
            done(0x1, Win32Error::OPERATION_ABORTED, 0),
            done(0x2, OK, 2)
        ]
    );
    // The same OVERLAPPED again, now completed: nothing to cancel.
    assert_eq!(
        cancel_io(&*h.driver, &h.ops, CancelScope::Overlapped(0x1)),
        Err(Win32Error::NOT_FOUND)
    );
}

#[test]
fn rule_6_cancel_all_with_nothing_is_not_found_and_cancel_io_succeeds() {
    let h = Harness::new("r6b");
    assert_eq!(
        cancel_io(&*h.driver, &h.ops, CancelScope::All),
        Err(Win32Error::NOT_FOUND)
    );
    let me = std::thread::current().id();
    assert_eq!(
        cancel_io(&*h.driver, &h.ops, CancelScope::Thread(me)),
        Ok(())
    );
}

#[test]
fn rule_6_cancel_io_only_touches_the_calling_threads_operations() {
    let h = Arc::new(Harness::new("r6c"));
    let h2 = h.clone();
    let theirs = std::thread::spawn(move || h2.issue_pending(0x2))
        .join()
        .unwrap();
    let mine = h.issue_pending(0x1);
    let me = std::thread::current().id();
    cancel_io(&*h.driver, &h.ops, CancelScope::Thread(me)).unwrap();
    assert!(h.driver.cancel_requested(mine));
    assert!(!h.driver.cancel_requested(theirs));
    cancel_io(&*h.driver, &h.ops, CancelScope::All).unwrap();
    assert!(h.driver.cancel_requested(theirs));
}

#[test]
fn rule_6_cancelled_operation_that_finished_first_completes_normally() {
    let h = Harness::new("r6d");
    let k = h.issue_pending(0x1);
    cancel_io(&*h.driver, &h.ops, CancelScope::All).unwrap();
    h.driver.complete_with(k, OK, 10, true);
    h.io().wait_for_callbacks(false).unwrap();
    assert_eq!(h.rec.callbacks(), vec![done(0x1, OK, 10)]);
}

// ---- rule 9: cleanup groups -------------------------------------------------

fn group_member(
    pool: &Pool,
    group: &CleanupGroup,
    ctx: usize,
    cleaned: &Arc<parking_lot::Mutex<Vec<(usize, usize)>>>,
) -> (IoObject, Arc<Recorder>) {
    let rec = Recorder::new();
    let c = cleaned.clone();
    let env = CallbackEnvironment::new().pool(pool).cleanup_group(
        group,
        Some(Arc::new(move |obj, cctx| c.lock().push((obj, cctx)))),
    );
    (IoObject::new(&env, ctx, rec.callback()), rec)
}

#[test]
fn rule_9_close_members_cancel_drops_queued_and_runs_cleanup_callback_per_member() {
    let pool = Pool::new_manual("r9a");
    let group = CleanupGroup::new();
    let cleaned = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (a, ra) = group_member(&pool, &group, 11, &cleaned);
    let (b, rb) = group_member(&pool, &group, 22, &cleaned);
    a.start().unwrap();
    a.target().complete(done(1, OK, 1)); // queued
    b.start().unwrap();
    let late = b.target(); // outstanding
    assert_eq!(group.member_count(), 2);
    group.close_members(true, 99).unwrap();
    assert_eq!(pool.queued_len(), 0);
    assert_eq!(ra.discards(), vec![(done(1, OK, 1), Discard::Dropped)]);
    let mut c = cleaned.lock().clone();
    c.sort();
    assert_eq!(c, vec![(11, 99), (22, 99)]);
    assert_eq!(ra.releases(), 1);
    assert_eq!(rb.releases(), 0, "b's skipped start is still in flight");
    late.complete(done(2, OK, 2));
    assert_eq!(rb.discards(), vec![(done(2, OK, 2), Discard::Skipped)]);
    assert_eq!(rb.releases(), 1);
    assert_eq!(group.member_count(), 0);
    // The user's handles are now dead: use is diagnosed, not corruption.
    assert_eq!(a.start(), Err(Win32Error::INVALID_HANDLE));
    assert_eq!(pool.stats().misuse_use_after_close, 1);
    drop((a, b));
}

#[test]
fn rule_9_close_members_waits_for_running_callbacks() {
    let pool = Pool::new("r9b");
    let group = CleanupGroup::new();
    let cleaned = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (a, ra) = group_member(&pool, &group, 1, &cleaned);
    let gate = Arc::new(Barrier::new(2));
    let finished = Arc::new(AtomicUsize::new(0));
    let (g, f) = (gate.clone(), finished.clone());
    *ra.hook.lock() = Some(Arc::new(move |_, _| {
        g.wait();
        std::thread::yield_now();
        f.fetch_add(1, Ordering::SeqCst);
    }));
    a.start().unwrap();
    a.target().complete(done(1, OK, 1));
    gate.wait(); // running now
    group.close_members(false, 0).unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "returned before the running callback finished"
    );
    assert!(
        cleaned.lock().is_empty(),
        "no cleanup callback without cancel_pending"
    );
    assert_eq!(ra.releases(), 1);
    drop(a);
}

#[test]
fn rule_9_close_members_without_cancel_runs_queued_callbacks() {
    let pool = Pool::new("r9c");
    let group = CleanupGroup::new();
    let cleaned = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (a, ra) = group_member(&pool, &group, 1, &cleaned);
    for i in 0..5 {
        a.start().unwrap();
        a.target().complete(done(i, OK, i));
    }
    group.close_members(false, 0).unwrap();
    assert_eq!(ra.callbacks().len(), 5);
    assert!(ra.discards().is_empty());
    drop(a);
}
