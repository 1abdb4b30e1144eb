//! Another thread's wake-up unblocks a reaper waiting in the kernel, in
//! both wake modes; wake-ups coalesce and are never lost.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tpio_uring::{op, Reaped, Ring, RingBuilder, WakeMode};

/// Waits until thread `tid` of this process is asleep (state `S`), i.e. the
/// reaper has entered the kernel wait. A condition, not a sleep.
fn wait_until_sleeping(tid: i32) {
    let path = format!("/proc/self/task/{tid}/stat");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stat = std::fs::read_to_string(&path).expect("read stat");
        // The state follows the ")" that closes the command name.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        if state == Some("S") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reaper thread never went to sleep: {stat}"
        );
        std::thread::yield_now();
    }
}

fn wake_unblocks_waiting_reaper(mode: WakeMode) {
    wake_unblocks(RingBuilder::new(8).wake_mode(mode));
}

fn wake_unblocks(builder: RingBuilder) {
    let ring = Arc::new(builder.build().unwrap());
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let r2 = Arc::clone(&ring);
    let t = std::thread::spawn(move || {
        // SAFETY: plain syscall.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let mut reaper = r2.reaper();
        let mut ops = 0;
        let r = reaper.wait(None, |_| ops += 1).unwrap();
        done_tx.send((r, ops)).unwrap();
    });
    let tid = tid_rx.recv_timeout(TIMEOUT).unwrap();
    wait_until_sleeping(tid);
    // Still blocked: nothing has been reported.
    assert!(done_rx.try_recv().is_err());
    ring.wake();
    let (r, ops) = done_rx.recv_timeout(TIMEOUT).expect("reaper did not wake");
    assert_eq!(
        r,
        Reaped {
            delivered: 0,
            woken: true,
            timed_out: false
        }
    );
    assert_eq!(ops, 0, "a wake-up is never a user completion");
    t.join().unwrap();
    assert_eq!(ring.stats().wakes_posted, 1);
}

#[test]
fn nop_wake_unblocks_waiting_reaper() {
    if uring_here() {
        wake_unblocks_waiting_reaper(WakeMode::Nop);
    }
}

#[test]
fn owner_mode_wake_unblocks_waiting_reaper() {
    if uring_here() {
        wake_unblocks(RingBuilder::new(8).submit_mode(tpio_uring::SubmitMode::Owner));
    }
}

/// Owner mode: a push from another thread reaches the kernel through the
/// blocked reaper, which submits it and goes on waiting (the submit request
/// is not reported as a wake-up).
#[test]
fn owner_mode_push_from_other_thread_is_submitted_by_blocked_reaper() {
    if !uring_here() {
        return;
    }
    let ring = Arc::new(
        RingBuilder::new(8)
            .submit_mode(tpio_uring::SubmitMode::Owner)
            .build()
            .unwrap(),
    );
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let r2 = Arc::clone(&ring);
    let t = std::thread::spawn(move || {
        // SAFETY: plain syscall.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let mut reaper = r2.reaper();
        let mut seen = Vec::new();
        let r = reaper.wait(None, |c| seen.push(c)).unwrap();
        done_tx.send((r, seen)).unwrap();
    });
    wait_until_sleeping(tid_rx.recv_timeout(TIMEOUT).unwrap());
    // SAFETY: a NOP touches no memory.
    unsafe { ring.push(77, op::nop()) }.unwrap();
    let (r, seen) = done_rx
        .recv_timeout(TIMEOUT)
        .expect("push never reached the kernel");
    assert_eq!(
        seen,
        [tpio_uring::Completion::Op {
            user_data: 77,
            result: 0
        }]
    );
    assert!(!r.woken, "a submit request is not a wake-up: {r:?}");
    t.join().unwrap();
}

#[test]
fn eventfd_wake_unblocks_waiting_reaper() {
    if uring_here() {
        wake_unblocks_waiting_reaper(WakeMode::EventFd);
    }
}

fn wake_before_wait_is_not_lost_and_coalesces(mode: WakeMode) {
    let ring = RingBuilder::new(8).wake_mode(mode).build().unwrap();
    ring.wake();
    ring.wake();
    ring.wake();
    let s = ring.stats();
    assert_eq!((s.wakes_posted, s.wakes_coalesced), (1, 2));
    let mut reaper = ring.reaper();
    let r = reaper
        .wait(Some(TIMEOUT), |c| panic!("unexpected {c:?}"))
        .unwrap();
    assert!(r.woken && !r.timed_out, "{r:?}");
    // Consumed: the next wait times out.
    let r = reaper
        .wait(Some(Duration::from_millis(30)), |c| {
            panic!("unexpected {c:?}")
        })
        .unwrap();
    assert_eq!(
        r,
        Reaped {
            delivered: 0,
            woken: false,
            timed_out: true
        }
    );
    // And a new wake-up works again (the eventfd read was re-armed).
    ring.wake();
    let r = reaper
        .wait(Some(TIMEOUT), |c| panic!("unexpected {c:?}"))
        .unwrap();
    assert!(r.woken, "{r:?}");
    assert_eq!(ring.stats().wakes_posted, 2);
}

#[test]
fn nop_wake_before_wait_is_not_lost() {
    if uring_here() {
        wake_before_wait_is_not_lost_and_coalesces(WakeMode::Nop);
    }
}

#[test]
fn eventfd_wake_before_wait_is_not_lost() {
    if uring_here() {
        wake_before_wait_is_not_lost_and_coalesces(WakeMode::EventFd);
    }
}

#[test]
fn wait_reports_completion_and_wake_together() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    // SAFETY: a NOP touches no memory.
    unsafe { ring.push(9, op::nop()) }.unwrap();
    ring.wake();
    let mut seen = Vec::new();
    let mut reaper = ring.reaper();
    let deadline = Instant::now() + TIMEOUT;
    let mut woken = false;
    while (seen.is_empty() || !woken) && Instant::now() < deadline {
        woken |= reaper.wait(Some(TIMEOUT), |c| seen.push(c)).unwrap().woken;
    }
    assert!(woken);
    assert_eq!(
        seen,
        [tpio_uring::Completion::Op {
            user_data: 9,
            result: 0
        }]
    );
}

#[test]
fn only_one_reaper_at_a_time() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    let first = ring.try_reaper();
    assert!(first.is_some());
    assert!(ring.try_reaper().is_none());
    drop(first);
    assert!(ring.try_reaper().is_some());
}
