//! Model checking of the TP_IO state machine under `loom`: every
//! interleaving (up to a preemption bound) of a completion with the calls
//! that race it — `cancel_io_ex`, `wait_for_callbacks(true)`, `close`,
//! `wait_for_callbacks(false)` against two running callbacks, a cleanup
//! group's `close_members(true)` — and of a driver losing a packet.
//!
//! Each model asserts the rules of `spec/semantics.md`, not only the absence
//! of panics and deadlocks (loom reports a deadlock as a failure): rule 1
//! (each operation gets exactly one callback or one discard, never both,
//! never two), rule 4 (when `wait_for_callbacks` returns nothing is queued,
//! running or outstanding, and no callback starts afterwards), rule 5 (close
//! neither cancels nor waits; released exactly once, after the last
//! callback), rule 6 (a cancelled operation reports 995 and 0 bytes, or its
//! own result if it finished first; `ERROR_NOT_FOUND` only when it had),
//! rule 9 (cleanup callback once per member, nothing runs after
//! `close_members` returns), and no misuse and no live object at the end.
//!
//! The pool is a manual one (`Pool::new_manual`): no worker threads; model
//! threads run its queue with `run_queued`, so loom sees every step. Run with
//! `scripts/loom.sh` (release mode; `LOOM_MAX_PREEMPTIONS` overrides the
//! default bound of 3).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use tpio_core::driver::{
    cancel_io, CancelScope, Driver, HandleKind, HandleOps, Issued, OpKind, RawHandle, Submission,
};
use tpio_core::sim::SimDriver;
use tpio_core::{
    CallbackEnvironment, CallbackInstance, CleanupGroup, Completion, CompletionTarget, Discard,
    IoCallback, IoObject, Pool, Win32Error,
};

const OK: Win32Error = Win32Error::SUCCESS;
const ABORTED: Win32Error = Win32Error::OPERATION_ABORTED;

/// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS`
/// (default 3), and prints how many interleavings it explored.
fn model<F: Fn() + Sync + Send + 'static>(name: &str, f: F) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    let t0 = std::time::Instant::now();
    b.check(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "loom {name}: {} interleavings (preemption bound {:?}) in {:.1?}",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        b.preemption_bound,
        t0.elapsed()
    );
}

/// What the object's callback side saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Callback(Completion),
    Discard(Completion, Discard),
    Released,
}

/// The recorder: an `IoCallback` whose state loom sees.
#[derive(Default)]
struct Rec {
    seen: Mutex<Vec<Ev>>,
    /// Set by a racing call once it has returned; a callback that starts
    /// afterwards counts a violation.
    fence: AtomicBool,
    after_fence: AtomicUsize,
    /// Callback bodies that started, and that finished.
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl Rec {
    fn seen(&self) -> Vec<Ev> {
        self.seen.lock().unwrap().clone()
    }
    fn releases(&self) -> usize {
        self.seen()
            .iter()
            .filter(|e| matches!(e, Ev::Released))
            .count()
    }
    /// Rule 1 for one operation: exactly one callback or one discard.
    fn exactly_once(&self, ov: usize) -> Ev {
        let mine: Vec<Ev> = self
            .seen()
            .into_iter()
            .filter(|e| match e {
                Ev::Callback(c) | Ev::Discard(c, _) => c.overlapped == ov,
                Ev::Released => false,
            })
            .collect();
        assert_eq!(mine.len(), 1, "rule 1: operation {ov:#x} saw {mine:?}");
        mine[0]
    }
    /// Rules 4 and 9: no callback body is running now.
    fn none_running(&self, what: &str) {
        let (s, f) = (self.started.load(SeqCst), self.finished.load(SeqCst));
        assert_eq!(s, f, "{what}: returned while a callback was running");
    }
    /// Rule 5: released exactly once, and nothing after it.
    fn released_once_last(&self) {
        let seen = self.seen();
        assert_eq!(self.releases(), 1, "rule 5: releases in {seen:?}");
        assert_eq!(seen.last(), Some(&Ev::Released), "rule 5: {seen:?}");
    }
}

struct RecCallback(Arc<Rec>);

impl IoCallback for RecCallback {
    fn complete(&self, _inst: &mut CallbackInstance<'_>, c: Completion) {
        self.0.started.fetch_add(1, SeqCst);
        if self.0.fence.load(SeqCst) {
            self.0.after_fence.fetch_add(1, SeqCst);
        }
        self.0.seen.lock().unwrap().push(Ev::Callback(c));
        self.0.finished.fetch_add(1, SeqCst);
    }
    fn discard(&self, c: Completion, reason: Discard) {
        self.0.seen.lock().unwrap().push(Ev::Discard(c, reason));
    }
    fn released(&self) {
        self.0.seen.lock().unwrap().push(Ev::Released);
    }
}

/// One object on a manual pool, with the simulated driver and handle.
struct World {
    pool: Pool,
    io: Option<IoObject>,
    rec: Arc<Rec>,
    driver: std::sync::Arc<SimDriver>,
    ops: std::sync::Arc<HandleOps>,
}

impl World {
    fn new(env: impl FnOnce(CallbackEnvironment) -> CallbackEnvironment) -> World {
        let pool = Pool::new_manual("loom");
        let rec = Arc::new(Rec::default());
        let io = IoObject::new(
            &env(CallbackEnvironment::new().pool(&pool)),
            0x5eed,
            RecCallback(rec.clone()),
        );
        World {
            pool,
            io: Some(io),
            rec,
            driver: std::sync::Arc::new(SimDriver::new()),
            ops: std::sync::Arc::new(HandleOps::new()),
        }
    }

    fn io(&self) -> &IoObject {
        self.io.as_ref().expect("open")
    }

    fn submission(&self, ov: usize) -> Submission {
        Submission {
            handle: RawHandle(3),
            handle_kind: HandleKind::Pipe,
            kind: OpKind::Read { offset: None },
            buf: std::ptr::null_mut(),
            len: 0,
            addr: std::ptr::null_mut(),
            overlapped: ov,
            ops: self.ops.clone(),
            thread: std::thread::current().id(),
            skip_on_success: false,
        }
    }

    /// start + a pending submission; returns the driver's key.
    fn issue_pending(&self, ov: usize) -> u64 {
        self.io().start().expect("start");
        let sub = self.submission(ov);
        let driver = &self.driver;
        // SAFETY: the simulated driver touches no buffer.
        let issued = self
            .io()
            .issue_with(ov, |t| unsafe { driver.submit(sub, t) });
        assert_eq!(issued, Issued::Pending);
        self.driver.key_of(ov).expect("in flight")
    }

    /// The checks every model ends with: nothing queued, no misuse, no
    /// object alive, no callback after a fence.
    fn finish(mut self) {
        if let Some(io) = self.io.take() {
            io.close();
        }
        assert_eq!(self.pool.run_queued(usize::MAX), Ok(0), "work left queued");
        self.rec.released_once_last();
        let st = self.pool.stats();
        assert_eq!(st.live_objects(), 0, "{st:?}");
        assert_eq!(st.misuse_total(), 0, "misuse diagnosed: {st:?}");
        assert_eq!(
            self.rec.after_fence.load(SeqCst),
            0,
            "a callback ran after the fence"
        );
        assert!(self.driver.in_flight().is_empty());
    }
}

/// Rule 6: a completion racing `cancel_io_ex(h, Some(ov))`, while a third
/// thread runs the queue; a second operation on the handle is not touched.
#[test]
fn completion_races_cancel_io_ex() {
    model("completion_races_cancel_io_ex", || {
        let w = World::new(|e| e);
        let key = w.issue_pending(0x10);
        let other = w.issue_pending(0x11);
        let d = w.driver.clone();
        let kernel = thread::spawn(move || d.complete(key, OK, 7));
        let (d, ops) = (w.driver.clone(), w.ops.clone());
        let canceller = thread::spawn(move || cancel_io(&*d, &ops, CancelScope::Overlapped(0x10)));
        let pool = w.pool.clone();
        let runner = thread::spawn(move || pool.run_queued(1).unwrap());
        assert!(kernel.join().unwrap());
        let cancelled = canceller.join().unwrap();
        let ran = runner.join().unwrap();
        assert_eq!(ran + w.pool.run_queued(usize::MAX).unwrap(), 1);
        let Ev::Callback(c) = w.rec.exactly_once(0x10) else {
            panic!("rule 1: no callback: {:?}", w.rec.seen());
        };
        let normal = c
            == Completion {
                overlapped: 0x10,
                status: OK,
                bytes: 7,
            };
        let aborted = c
            == Completion {
                overlapped: 0x10,
                status: ABORTED,
                bytes: 0,
            };
        match cancelled {
            Ok(()) => assert!(normal || aborted, "rule 6: {c:?}"),
            Err(e) => {
                assert_eq!(e, Win32Error::NOT_FOUND, "rule 6");
                assert!(normal, "rule 6: not found, yet cancelled: {c:?}");
            }
        }
        // Nothing left to cancel with that OVERLAPPED; the other operation
        // was not touched and completes normally.
        assert_eq!(
            cancel_io(&*w.driver, &w.ops, CancelScope::Overlapped(0x10)),
            Err(Win32Error::NOT_FOUND),
            "rule 6: nothing to cancel"
        );
        assert!(
            !w.driver.cancel_requested(other),
            "rule 6: the other one was cancelled"
        );
        assert!(w.driver.complete(other, OK, 1));
        assert_eq!(w.pool.run_queued(usize::MAX), Ok(1));
        assert_eq!(
            w.rec.exactly_once(0x11),
            Ev::Callback(Completion {
                overlapped: 0x11,
                status: OK,
                bytes: 1
            })
        );
        assert_eq!(w.io().wait_for_callbacks(false), Ok(()));
        w.finish();
    });
}

/// Rule 4: a completion racing `wait_for_callbacks(true)`, while a third
/// thread runs the pool's queue.
#[test]
fn completion_races_wait_for_callbacks_cancel() {
    model("completion_races_wait_for_callbacks_cancel", || {
        let w = std::sync::Arc::new(World::new(|e| e));
        let key = w.issue_pending(0x20);
        let d = w.driver.clone();
        let kernel = thread::spawn(move || d.complete(key, OK, 3));
        let w2 = w.clone();
        let waiter = thread::spawn(move || {
            assert_eq!(w2.io().wait_for_callbacks(true), Ok(()));
            w2.rec.fence.store(true, SeqCst);
            w2.rec.none_running("rule 4: wait_for_callbacks(true)");
            let c = w2.io().counts();
            assert_eq!(
                (c.pending, c.queued, c.associated),
                (0, 0, 0),
                "rule 4: {c:?}"
            );
        });
        let w3 = w.clone();
        let runner = thread::spawn(move || w3.pool.run_queued(1).unwrap());
        kernel.join().unwrap();
        waiter.join().unwrap();
        runner.join().unwrap();
        let w = std::sync::Arc::into_inner(w).expect("sole owner");
        match w.rec.exactly_once(0x20) {
            Ev::Callback(c) => assert_eq!((c.status, c.bytes), (OK, 3)),
            Ev::Discard(c, why) => {
                assert!(
                    matches!(why, Discard::Dropped | Discard::Skipped),
                    "{why:?}"
                );
                assert_eq!((c.status, c.bytes), (OK, 3));
            }
            Ev::Released => unreachable!(),
        }
        w.finish();
    });
}

/// Rule 5: a completion racing `close`, while a third thread runs the queue.
#[test]
fn completion_races_close() {
    model("completion_races_close", || {
        let mut w = World::new(|e| e);
        let key = w.issue_pending(0x30);
        let io = w.io.take().unwrap();
        let d = w.driver.clone();
        let kernel = thread::spawn(move || d.complete(key, OK, 5));
        let closer = thread::spawn(move || io.close());
        let pool = w.pool.clone();
        let runner = thread::spawn(move || pool.run_queued(1).unwrap());
        kernel.join().unwrap();
        closer.join().unwrap();
        let ran = runner.join().unwrap();
        let rest = w.pool.run_queued(usize::MAX).unwrap();
        assert_eq!(ran + rest, 1, "rule 5: close must not cancel");
        assert_eq!(
            w.rec.exactly_once(0x30),
            Ev::Callback(Completion {
                overlapped: 0x30,
                status: OK,
                bytes: 5
            })
        );
        w.finish();
    });
}

/// Rules 4 and 5: the late packet of a start that `wait_for_callbacks(true)`
/// stopped expecting races `close`: the packet is discarded (no callback),
/// and the release waits for it and comes last.
#[test]
fn late_packet_after_wait_cancel_races_close() {
    model("late_packet_after_wait_cancel_races_close", || {
        let mut w = World::new(|e| e);
        let key = w.issue_pending(0x38);
        assert_eq!(w.io().wait_for_callbacks(true), Ok(()));
        let io = w.io.take().unwrap();
        let d = w.driver.clone();
        let kernel = thread::spawn(move || d.complete(key, OK, 4));
        let closer = thread::spawn(move || io.close());
        kernel.join().unwrap();
        closer.join().unwrap();
        assert_eq!(
            w.rec.exactly_once(0x38),
            Ev::Discard(
                Completion {
                    overlapped: 0x38,
                    status: OK,
                    bytes: 4
                },
                Discard::Skipped
            )
        );
        w.finish();
    });
}

/// Rule 4: two callbacks of one object running on two threads race
/// `wait_for_callbacks(false)`; it returns only after both bodies finished.
#[test]
fn two_callbacks_race_wait_for_callbacks() {
    model("two_callbacks_race_wait_for_callbacks", || {
        let w = std::sync::Arc::new(World::new(|e| e));
        for ov in [0x41, 0x42] {
            let key = w.issue_pending(ov);
            assert!(w.driver.complete(key, OK, ov));
        }
        let runners: Vec<_> = (0..2)
            .map(|_| {
                let w = w.clone();
                thread::spawn(move || assert_eq!(w.pool.run_queued(1), Ok(1)))
            })
            .collect();
        let w2 = w.clone();
        let waiter = thread::spawn(move || {
            assert_eq!(w2.io().wait_for_callbacks(false), Ok(()));
            assert_eq!(
                w2.rec.finished.load(SeqCst),
                2,
                "rule 4: returned before both callbacks"
            );
            let c = w2.io().counts();
            assert_eq!((c.pending, c.queued, c.running), (0, 0, 0), "rule 4: {c:?}");
        });
        for r in runners {
            r.join().unwrap();
        }
        waiter.join().unwrap();
        let w = std::sync::Arc::into_inner(w).expect("sole owner");
        for ov in [0x41, 0x42] {
            assert_eq!(
                w.rec.exactly_once(ov),
                Ev::Callback(Completion {
                    overlapped: ov,
                    status: OK,
                    bytes: ov
                })
            );
        }
        w.finish();
    });
}

/// Rule 9: `close_members(true)` racing a completion, while a third thread
/// runs the queue.
#[test]
fn close_members_cancel_races_completion() {
    model("close_members_cancel_races_completion", || {
        let group = CleanupGroup::new();
        let cleanups = Arc::new(Mutex::new(Vec::new()));
        let c2 = cleanups.clone();
        let cb: tpio_core::CleanupCallback = std::sync::Arc::new(move |member, ctx| {
            c2.lock().unwrap().push((member, ctx));
        });
        let w = std::sync::Arc::new(World::new(|e| e.cleanup_group(&group, Some(cb))));
        let key = w.issue_pending(0x50);
        let d = w.driver.clone();
        let kernel = thread::spawn(move || d.complete(key, OK, 2));
        let (g, w2) = (group.clone(), w.clone());
        let closer = thread::spawn(move || {
            assert_eq!(g.close_members(true, 0xc7), Ok(()));
            w2.rec.fence.store(true, SeqCst);
            w2.rec.none_running("rule 9: close_members(true)");
            assert_eq!(g.member_count(), 0);
        });
        let w3 = w.clone();
        let runner = thread::spawn(move || w3.pool.run_queued(1).unwrap());
        kernel.join().unwrap();
        closer.join().unwrap();
        runner.join().unwrap();
        let w = std::sync::Arc::into_inner(w).expect("sole owner");
        assert_eq!(*cleanups.lock().unwrap(), vec![(0x5eed, 0xc7)], "rule 9");
        match w.rec.exactly_once(0x50) {
            Ev::Callback(c) | Ev::Discard(c, Discard::Dropped | Discard::Skipped) => {
                assert_eq!((c.status, c.bytes), (OK, 2))
            }
            other => panic!("rule 9: {other:?}"),
        }
        // The object was released by its group; the user's close is use
        // after release and changes nothing.
        w.finish();
    });
}

/// A driver that loses a packet (drops the target of a pending operation on
/// its own thread) racing `wait_for_callbacks(false)`: the core delivers
/// `ERROR_INTERNAL_ERROR` in its place, so the wait returns.
#[test]
fn lost_packet_races_wait_for_callbacks() {
    model("lost_packet_races_wait_for_callbacks", || {
        let w = std::sync::Arc::new(World::new(|e| e));
        w.io().start().unwrap();
        let kept: Arc<Mutex<Option<CompletionTarget>>> = Arc::new(Mutex::new(None));
        let k = kept.clone();
        let issued = w.io().issue_with(0x60, |t| {
            *k.lock().unwrap() = Some(t);
            Issued::Pending
        });
        assert_eq!(issued, Issued::Pending);
        let loser = thread::spawn(move || drop(kept.lock().unwrap().take()));
        let w2 = w.clone();
        let waiter = thread::spawn(move || {
            assert_eq!(w2.io().wait_for_callbacks(false), Ok(()));
            assert_eq!(
                w2.rec.finished.load(SeqCst),
                1,
                "rule 4: returned before the callback"
            );
        });
        let w3 = w.clone();
        let runner = thread::spawn(move || {
            while w3.rec.finished.load(SeqCst) == 0 {
                if w3.pool.run_queued(1).unwrap() == 0 {
                    thread::yield_now();
                }
            }
        });
        loser.join().unwrap();
        waiter.join().unwrap();
        runner.join().unwrap();
        let w = std::sync::Arc::into_inner(w).expect("sole owner");
        assert_eq!(
            w.rec.exactly_once(0x60),
            Ev::Callback(Completion {
                overlapped: 0x60,
                status: Win32Error::INTERNAL_ERROR,
                bytes: 0
            })
        );
        let st = w.pool.stats();
        assert_eq!(st.misuse_driver_lost_packet, 1, "{st:?}");
        // `finish` checks for no misuse: take this one out of the count.
        let mut w = w;
        w.io.take().unwrap().close();
        assert_eq!(w.pool.run_queued(usize::MAX), Ok(0));
        w.rec.released_once_last();
        assert_eq!(w.pool.stats().live_objects(), 0);
    });
}
