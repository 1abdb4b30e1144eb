//! Races between completions and the calls that end an object's work:
//! `wait_for_callbacks(true)`, `wait_for_callbacks(false)`, `close`,
//! `cancel_io`, and a cleanup group's `close_members`. Real pool workers,
//! the simulated driver, completions delivered from several threads at once.
//!
//! Each scenario runs a few hundred times with a different interleaving
//! (threads released together by a barrier, the racing call delayed by a
//! varying number of yields). At the end of every run: each operation got
//! exactly one callback or exactly one discard (never both, never two), the
//! object was released exactly once, and over the whole test no object is
//! left alive and no misuse was diagnosed. Nothing sleeps to synchronise;
//! every wait is bounded by `PATIENCE`.
//!
//! `scripts/repeat-races.sh N` runs this file N times in release mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use tpio_core::driver::{cancel_io, CancelScope};
use tpio_core::{CleanupGroup, Completion, Discard, Pool, Win32Error};
use tpio_tests::{done, Harness, Recorder, Seen, PATIENCE};

const OK: Win32Error = Win32Error::SUCCESS;
const ITERS: usize = 500;

/// A small deterministic generator (xorshift64*), one per iteration, so a
/// failing iteration can be named and its interleaving choices replayed.
struct Rng(u64);

impl Rng {
    fn new(scenario: u64, iteration: usize) -> Self {
        Rng(((scenario << 32) ^ iteration as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
    /// Yields a varying number of times: moves the racing call around.
    fn jitter(&mut self, max: u64) {
        for _ in 0..self.below(max) {
            std::thread::yield_now();
        }
    }
}

/// The bytes the simulated kernel reports for an operation (checked in the callback).
fn bytes_of(ov: usize) -> usize {
    ov % 251
}

/// Checks rule 1 under races: every operation in `ovs` got exactly one
/// callback or exactly one discard, discards only for a reason in `allowed`,
/// nothing for an unknown operation, and each callback reported either the
/// operation's own result or (when `aborted_ok`) a cancellation.
/// Returns (callbacks, discards).
fn assert_each_exactly_once(
    rec: &Recorder,
    ovs: &[usize],
    allowed: &[Discard],
    aborted_ok: bool,
    what: &str,
) -> (usize, usize) {
    let mut seen: HashMap<usize, (usize, usize)> = HashMap::new();
    for c in rec.callbacks() {
        let normal = c == done(c.overlapped, OK, bytes_of(c.overlapped));
        let aborted = c == done(c.overlapped, Win32Error::OPERATION_ABORTED, 0);
        assert!(
            normal || (aborted_ok && aborted),
            "{what}: callback with a wrong result {c:?}"
        );
        seen.entry(c.overlapped).or_default().0 += 1;
    }
    for (c, why) in rec.discards() {
        assert!(
            allowed.contains(&why),
            "{what}: discard {why:?} of {c:?} not allowed here"
        );
        assert_eq!(c.bytes, bytes_of(c.overlapped), "{what}: discard {c:?}");
        seen.entry(c.overlapped).or_default().1 += 1;
    }
    for ov in ovs {
        let (cb, dis) = seen.remove(ov).unwrap_or_default();
        assert_eq!(
            cb + dis,
            1,
            "{what}: operation {ov:#x} got {cb} callback(s) and {dis} discard(s)"
        );
    }
    assert!(seen.is_empty(), "{what}: unknown operations {seen:?}");
    let c = rec.callbacks().len();
    (c, ovs.len() - c)
}

/// Waits until the object was released, then checks it was once, last.
fn assert_released_once_last(rec: &Recorder, what: &str) {
    assert!(
        rec.wait_until(|s| s.contains(&Seen::Released)),
        "{what}: never released"
    );
    assert_eq!(rec.releases(), 1, "{what}: released more than once");
    assert_eq!(
        rec.seen().last(),
        Some(&Seen::Released),
        "{what}: something happened after the release"
    );
}

/// The pool-wide checks at the end of a scenario.
fn assert_pool_clean(pool: &Pool, created: usize) {
    let st = pool.stats();
    assert_eq!(st.objects_created, created as u64);
    assert_eq!(st.live_objects(), 0, "objects left alive: {st:?}");
    assert_eq!(st.misuse_total(), 0, "misuse diagnosed: {st:?}");
    assert_eq!(
        st.callbacks_panicked, 0,
        "a callback assertion failed: {st:?}"
    );
}

/// Splits `keys` into `n` shuffled, disjoint parts.
fn deal<T: Copy>(rng: &mut Rng, keys: &[T], n: usize) -> Vec<Vec<T>> {
    let mut all = keys.to_vec();
    rng.shuffle(&mut all);
    let mut parts = vec![Vec::new(); n];
    for (i, k) in all.into_iter().enumerate() {
        parts[i % n].push(k);
    }
    parts
}

/// Records violations seen inside callbacks (an assertion there would only
/// be caught and counted by the pool).
#[derive(Default)]
struct Flags {
    /// Set by the racing call once it returned.
    returned: AtomicBool,
    /// Callbacks that saw `returned` set.
    violations: AtomicUsize,
    /// Callbacks whose body finished.
    finished: AtomicUsize,
}

impl Flags {
    fn check(&self) {
        if self.returned.load(Ordering::SeqCst) {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A hook that checks `flags.returned` is still clear when the callback
/// starts and when it ends, yielding in between to widen the window.
fn checking_hook(h: &Harness, flags: &Arc<Flags>) {
    let f = flags.clone();
    *h.rec.hook.lock() = Some(Arc::new(move |_, c: Completion| {
        f.check();
        for _ in 0..c.overlapped % 7 {
            std::thread::yield_now();
        }
        f.check();
        f.finished.fetch_add(1, Ordering::SeqCst);
    }));
}

// ---- wait_for_callbacks(true) ---------------------------------------------------

#[test]
fn completion_races_wait_for_callbacks_cancel() {
    const OPS: usize = 12;
    let pool = Pool::new("race-wfc-true");
    let (mut callbacks, mut discards) = (0, 0);
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(1, it);
        let h = Harness::with_env(pool.clone(), |e| e);
        let flags = Arc::new(Flags::default());
        checking_hook(&h, &flags);
        // Every start comes before the wait: after wait(true) returns, no
        // callback of the object may be running or start.
        let ovs: Vec<usize> = (1..=OPS).map(|i| it * 0x100 + i).collect();
        let keys: Vec<(u64, usize)> = ovs.iter().map(|&ov| (h.issue_pending(ov), ov)).collect();
        let parts = deal(&mut rng, &keys, 3);
        let mode = it % 4; // 0: wait first; 1: completions first; else: race
        if mode == 0 {
            h.io().wait_for_callbacks(true).unwrap();
            flags.returned.store(true, Ordering::SeqCst);
        }
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            for part in &parts {
                let (driver, barrier) = (h.driver.clone(), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for &(k, ov) in part {
                        assert!(driver.complete(k, OK, bytes_of(ov)));
                    }
                });
            }
            barrier.wait();
            if mode >= 2 {
                rng.jitter(64);
                h.io().wait_for_callbacks(true).unwrap();
                flags.returned.store(true, Ordering::SeqCst);
            }
        });
        if mode == 1 {
            h.io().wait_for_callbacks(true).unwrap();
            flags.returned.store(true, Ordering::SeqCst);
        }
        assert_eq!(
            h.io().wait_for_callbacks_timeout(false, PATIENCE),
            Ok(true),
            "{what}"
        );
        assert_eq!(
            flags.violations.load(Ordering::SeqCst),
            0,
            "{what}: a callback ran after wait_for_callbacks(true) returned"
        );
        let (c, d) = assert_each_exactly_once(
            &h.rec,
            &ovs,
            &[Discard::Skipped, Discard::Dropped],
            false,
            &what,
        );
        assert_eq!(flags.finished.load(Ordering::SeqCst), c, "{what}");
        if mode == 0 {
            assert_eq!(c, 0, "{what}: all starts were skipped before any packet");
        }
        callbacks += c;
        discards += d;
        let rec = h.rec.clone();
        drop(h); // close
        assert_released_once_last(&rec, &what);
    }
    assert!(callbacks > 0 && discards > 0, "{callbacks} / {discards}");
    assert_pool_clean(&pool, ITERS);
}

#[test]
fn issues_and_completions_race_wait_for_callbacks_cancel() {
    const THREADS: usize = 3;
    const PER_THREAD: usize = 6;
    let pool = Pool::new("race-issue-wfc");
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(2, it);
        let h = Harness::with_env(pool.clone(), |e| e);
        let barrier = Barrier::new(THREADS + 1);
        // Each thread starts, issues and completes its own operations while
        // the test thread cancels the pending ones twice.
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (h, barrier) = (&h, &barrier);
                let order = rng.next();
                s.spawn(move || {
                    barrier.wait();
                    let mut keys = Vec::new();
                    for j in 0..PER_THREAD {
                        let ov = 1 + t * 0x10 + j;
                        keys.push((h.issue_pending(ov), ov));
                        if (order >> j) & 1 == 1 {
                            // Complete now, or some later (below).
                            let (k, ov) = keys.pop().unwrap();
                            assert!(h.driver.complete(k, OK, bytes_of(ov)));
                        }
                    }
                    for (k, ov) in keys {
                        assert!(h.driver.complete(k, OK, bytes_of(ov)));
                    }
                });
            }
            barrier.wait();
            rng.jitter(32);
            h.io().wait_for_callbacks(true).unwrap();
            rng.jitter(32);
            h.io().wait_for_callbacks(true).unwrap();
        });
        assert_eq!(
            h.io().wait_for_callbacks_timeout(false, PATIENCE),
            Ok(true),
            "{what}"
        );
        let ovs: Vec<usize> = (0..THREADS)
            .flat_map(|t| (0..PER_THREAD).map(move |j| 1 + t * 0x10 + j))
            .collect();
        assert_each_exactly_once(
            &h.rec,
            &ovs,
            &[Discard::Skipped, Discard::Dropped],
            false,
            &what,
        );
        let c = h.io().counts();
        assert_eq!(
            (c.pending, c.skipped, c.queued, c.running),
            (0, 0, 0, 0),
            "{what}"
        );
        let rec = h.rec.clone();
        drop(h);
        assert_released_once_last(&rec, &what);
    }
    assert_pool_clean(&pool, ITERS);
}

// ---- wait_for_callbacks(false) -----------------------------------------------------

#[test]
fn two_callbacks_race_wait_for_callbacks() {
    let pool = Pool::new("race-wfc-false");
    pool.set_concurrency(2); // the two callbacks may run at once even on one CPU
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(3, it);
        let h = Harness::with_env(pool.clone(), |e| e);
        let flags = Arc::new(Flags::default());
        checking_hook(&h, &flags);
        let k1 = h.issue_pending(it * 4 + 1);
        let k2 = h.issue_pending(it * 4 + 2);
        let barrier = Barrier::new(3);
        let early_return = AtomicBool::new(false);
        std::thread::scope(|s| {
            for (k, ov) in [(k1, it * 4 + 1), (k2, it * 4 + 2)] {
                let (driver, barrier) = (h.driver.clone(), &barrier);
                let delay = rng.below(48);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..delay {
                        std::thread::yield_now();
                    }
                    assert!(driver.complete(k, OK, bytes_of(ov)));
                });
            }
            // The waiter: both starts came before it, so it may return only
            // once both callbacks have finished.
            barrier.wait();
            rng.jitter(48);
            let r = h.io().wait_for_callbacks(false);
            if flags.finished.load(Ordering::SeqCst) != 2 {
                early_return.store(true, Ordering::SeqCst);
            }
            flags.returned.store(true, Ordering::SeqCst);
            assert_eq!(r, Ok(()), "{what}");
        });
        assert!(
            !early_return.load(Ordering::SeqCst),
            "{what}: wait_for_callbacks(false) returned before both callbacks finished"
        );
        assert_eq!(
            flags.violations.load(Ordering::SeqCst),
            0,
            "{what}: a callback was still running when the wait returned"
        );
        assert_each_exactly_once(&h.rec, &[it * 4 + 1, it * 4 + 2], &[], false, &what);
        let rec = h.rec.clone();
        drop(h);
        assert_released_once_last(&rec, &what);
    }
    assert_pool_clean(&pool, ITERS);
}

// ---- close and cancel_io ----------------------------------------------------------

#[test]
fn completion_races_close() {
    const OPS: usize = 12;
    let pool = Pool::new("race-close");
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(4, it);
        let mut h = Harness::with_env(pool.clone(), |e| e);
        let ovs: Vec<usize> = (1..=OPS).map(|i| it * 0x100 + i).collect();
        let keys: Vec<(u64, usize)> = ovs.iter().map(|&ov| (h.issue_pending(ov), ov)).collect();
        let parts = deal(&mut rng, &keys, 3);
        let barrier = Barrier::new(4);
        let rec = h.rec.clone();
        std::thread::scope(|s| {
            for part in &parts {
                let (driver, barrier) = (h.driver.clone(), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for &(k, ov) in part {
                        assert!(driver.complete(k, OK, bytes_of(ov)));
                    }
                });
            }
            barrier.wait();
            rng.jitter(64);
            h.close(); // neither cancels nor waits
        });
        // Close dropped nothing: every operation got its callback.
        assert_released_once_last(&rec, &what);
        let (c, _) = assert_each_exactly_once(&rec, &ovs, &[], false, &what);
        assert_eq!(c, OPS, "{what}");
    }
    assert_pool_clean(&pool, ITERS);
}

#[test]
fn completion_races_cancel_io_and_close() {
    const OPS: usize = 12;
    let pool = Pool::new("race-cancel-close");
    let (mut aborted, mut normal) = (0, 0);
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(5, it);
        let mut h = Harness::with_env(pool.clone(), |e| e);
        let ovs: Vec<usize> = (1..=OPS).map(|i| it * 0x100 + i).collect();
        let keys: Vec<(u64, usize)> = ovs.iter().map(|&ov| (h.issue_pending(ov), ov)).collect();
        let parts = deal(&mut rng, &keys, 2);
        let barrier = Barrier::new(4);
        let rec = h.rec.clone();
        let one = ovs[rng.below(OPS as u64) as usize];
        std::thread::scope(|s| {
            for part in &parts {
                let (driver, barrier) = (h.driver.clone(), &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for &(k, ov) in part {
                        assert!(driver.complete(k, OK, bytes_of(ov)));
                    }
                });
            }
            let (driver, ops, barrier) = (h.driver.clone(), h.ops.clone(), &barrier);
            let delay = rng.below(32);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..delay {
                    std::thread::yield_now();
                }
                // CancelIoEx(h, ov) then CancelIoEx(h, NULL): NOT_FOUND only
                // when the operations already completed.
                let r = cancel_io(&*driver, &ops, CancelScope::Overlapped(one));
                assert!(matches!(r, Ok(()) | Err(Win32Error::NOT_FOUND)), "{r:?}");
                let r = cancel_io(&*driver, &ops, CancelScope::All);
                assert!(matches!(r, Ok(()) | Err(Win32Error::NOT_FOUND)), "{r:?}");
            });
            barrier.wait();
            rng.jitter(64);
            h.close();
        });
        assert_released_once_last(&rec, &what);
        let (c, _) = assert_each_exactly_once(&rec, &ovs, &[], true, &what);
        assert_eq!(c, OPS, "{what}");
        for cb in rec.callbacks() {
            if cb.status == Win32Error::OPERATION_ABORTED {
                aborted += 1;
            } else {
                normal += 1;
            }
        }
    }
    assert!(aborted > 0 && normal > 0, "{aborted} / {normal}");
    assert_pool_clean(&pool, ITERS);
}

// ---- cleanup groups -----------------------------------------------------------------

/// `members` objects in one group on `pool`, each with `ops` operations
/// pending; returns the harnesses, their (driver key, harness index,
/// overlapped) triples, the cleanup callback's calls, and the group.
#[allow(clippy::type_complexity)]
fn group_with_pending(
    pool: &Pool,
    members: usize,
    ops: usize,
    it: usize,
) -> (
    Vec<Harness>,
    Vec<(u64, usize, usize)>,
    Arc<parking_lot::Mutex<Vec<(usize, usize)>>>,
    CleanupGroup,
) {
    let group = CleanupGroup::new();
    let cleaned: Arc<parking_lot::Mutex<Vec<(usize, usize)>>> = Default::default();
    let mut hs = Vec::new();
    let mut keys = Vec::new();
    for m in 0..members {
        let c = cleaned.clone();
        let h = Harness::with_env(pool.clone(), |e| {
            e.cleanup_group(
                &group,
                Some(Arc::new(move |obj, ctx| c.lock().push((obj, ctx)))),
            )
        });
        for j in 0..ops {
            let ov = it * 0x100 + m * 0x10 + j + 1;
            keys.push((h.issue_pending(ov), m, ov));
        }
        hs.push(h);
    }
    (hs, keys, cleaned, group)
}

#[test]
fn close_members_cancel_races_completions() {
    const MEMBERS: usize = 3;
    const OPS: usize = 6;
    let pool = Pool::new("race-group-cancel");
    let (mut callbacks, mut discards) = (0, 0);
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(6, it);
        let (hs, keys, cleaned, group) = group_with_pending(&pool, MEMBERS, OPS, it);
        let flags = Arc::new(Flags::default());
        for h in &hs {
            checking_hook(h, &flags);
        }
        let parts = deal(&mut rng, &keys, 3);
        let barrier = Barrier::new(4);
        std::thread::scope(|s| {
            for part in &parts {
                let drivers: Vec<_> = hs.iter().map(|h| h.driver.clone()).collect();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    for &(k, m, ov) in part {
                        assert!(drivers[m].complete(k, OK, bytes_of(ov)));
                    }
                });
            }
            barrier.wait();
            rng.jitter(64);
            group.close_members(true, 77).unwrap();
            // From here on no callback of a member may run or start.
            flags.returned.store(true, Ordering::SeqCst);
        });
        assert_eq!(
            flags.violations.load(Ordering::SeqCst),
            0,
            "{what}: a member's callback ran after close_members(true) returned"
        );
        assert_eq!(group.member_count(), 0, "{what}");
        let mut c = cleaned.lock().clone();
        c.sort();
        assert_eq!(
            c,
            vec![(0, 77); MEMBERS],
            "{what}: one cleanup call per member"
        );
        for (m, h) in hs.iter().enumerate() {
            let what = format!("{what}, member {m}");
            let ovs: Vec<usize> = keys.iter().filter(|k| k.1 == m).map(|k| k.2).collect();
            // The skipped packets all arrived (the completers are done), so
            // the member is released.
            assert_released_once_last(&h.rec, &what);
            let (cb, d) = assert_each_exactly_once(
                &h.rec,
                &ovs,
                &[Discard::Skipped, Discard::Dropped],
                false,
                &what,
            );
            callbacks += cb;
            discards += d;
        }
        drop(hs); // the user's handles: already released, nothing more happens
    }
    assert!(callbacks > 0 && discards > 0, "{callbacks} / {discards}");
    assert_pool_clean(&pool, ITERS * MEMBERS);
}

#[test]
fn close_members_without_cancel_races_completions() {
    const MEMBERS: usize = 3;
    const OPS: usize = 6;
    let pool = Pool::new("race-group-wait");
    for it in 0..ITERS {
        let what = format!("iteration {it}");
        let mut rng = Rng::new(7, it);
        let (hs, keys, cleaned, group) = group_with_pending(&pool, MEMBERS, OPS, it);
        let flags = Arc::new(Flags::default());
        for h in &hs {
            checking_hook(h, &flags);
        }
        let parts = deal(&mut rng, &keys, 3);
        let barrier = Barrier::new(4);
        let finished_at_return = AtomicUsize::new(usize::MAX);
        std::thread::scope(|s| {
            for part in &parts {
                let drivers: Vec<_> = hs.iter().map(|h| h.driver.clone()).collect();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    for &(k, m, ov) in part {
                        assert!(drivers[m].complete(k, OK, bytes_of(ov)));
                    }
                });
            }
            barrier.wait();
            rng.jitter(64);
            // Without cancel it waits for every outstanding start's callback.
            group.close_members(false, 5).unwrap();
            finished_at_return.store(flags.finished.load(Ordering::SeqCst), Ordering::SeqCst);
            flags.returned.store(true, Ordering::SeqCst);
        });
        assert_eq!(
            finished_at_return.load(Ordering::SeqCst),
            MEMBERS * OPS,
            "{what}: close_members(false) returned before every callback finished"
        );
        assert_eq!(flags.violations.load(Ordering::SeqCst), 0, "{what}");
        assert!(
            cleaned.lock().is_empty(),
            "{what}: no cleanup without cancel"
        );
        for (m, h) in hs.iter().enumerate() {
            let what = format!("{what}, member {m}");
            let ovs: Vec<usize> = keys.iter().filter(|k| k.1 == m).map(|k| k.2).collect();
            // Released before close_members returned.
            assert_eq!(h.rec.releases(), 1, "{what}");
            assert_released_once_last(&h.rec, &what);
            let (cb, _) = assert_each_exactly_once(&h.rec, &ovs, &[], false, &what);
            assert_eq!(cb, OPS, "{what}");
        }
    }
    assert_pool_clean(&pool, ITERS * MEMBERS);
}
