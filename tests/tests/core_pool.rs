//! The thread pool (`TP_POOL`) and the callback instance
//! (`PTP_CALLBACK_INSTANCE`) of the core, checked with real workers (and the
//! manual pool where an exact order is wanted): priorities, thread minimum and
//! maximum, worker names, idle retirement, shutdown without stranding work,
//! `may_run_long`, when-callback-returns actions, caught panics and
//! `disassociate`.
//!
//! Nothing here sleeps to synchronise: tests wait on events with
//! `PATIENCE` as the bound, or poll a counter under a `PATIENCE` deadline.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tpio_core::{
    CallbackEnvironment, CallbackInstance, CleanupGroup, Completion, Event, IoObject, Pool,
    Priority, Semaphore, Win32Error, MAX_POOL_THREADS,
};
use tpio_tests::{done, Harness, Seen, PATIENCE};

const OK: Win32Error = Win32Error::SUCCESS;

/// Polls `cond` until it holds; false after `PATIENCE`. For conditions on a
/// counter that no event reports (e.g. `thread_count`).
fn poll_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        if Instant::now() >= deadline {
            return cond();
        }
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(1));
    }
    true
}

/// A count that wakes waiters when it reaches a target.
#[derive(Clone)]
struct Countdown {
    n: Arc<AtomicUsize>,
    ev: Option<Event>,
    target: usize,
}

impl Countdown {
    fn new(target: usize) -> Self {
        Countdown {
            n: Arc::new(AtomicUsize::new(0)),
            ev: Some(Event::new(true, false)),
            target,
        }
    }
    fn hit(&self) {
        if self.n.fetch_add(1, Ordering::SeqCst) + 1 >= self.target {
            self.ev.as_ref().unwrap().set();
        }
    }
    fn wait(&self) -> bool {
        self.ev.as_ref().unwrap().wait_timeout(PATIENCE)
    }
    fn count(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }
}

fn current_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

// ---- priorities ---------------------------------------------------------------

#[test]
fn priority_manual_pool_runs_higher_priorities_first_fifo_within_one() {
    let pool = Pool::new_manual("prio-m");
    let order = Arc::new(Mutex::new(Vec::new()));
    let submit = |p: Priority, tag: &'static str| {
        let o = order.clone();
        pool.submit_callback_with(p, false, move |_| o.lock().push(tag));
    };
    submit(Priority::Low, "low1");
    submit(Priority::Normal, "normal1");
    submit(Priority::Low, "low2");
    submit(Priority::High, "high1");
    submit(Priority::Normal, "normal2");
    submit(Priority::High, "high2");
    assert_eq!(pool.queued_len(), 6);
    // One at a time: each run takes the highest queued.
    assert_eq!(pool.run_queued(1), Ok(1));
    assert_eq!(*order.lock(), vec!["high1"]);
    submit(Priority::High, "high3"); // arrives late, still goes before normal
    assert_eq!(pool.run_queued(usize::MAX), Ok(6));
    assert_eq!(
        *order.lock(),
        vec!["high1", "high2", "high3", "normal1", "normal2", "low1", "low2"]
    );
    assert_eq!(pool.queued_len(), 0);
    // The instrument refuses a real pool.
    assert_eq!(
        Pool::new("prio-m-real").run_queued(1),
        Err(Win32Error::INVALID_FUNCTION)
    );
}

#[test]
fn priority_manual_pool_orders_io_callbacks_by_their_environment() {
    let pool = Pool::new_manual("prio-io");
    let order = Arc::new(Mutex::new(Vec::new()));
    let make = |p: Priority, tag: &'static str| {
        let h = Harness::with_env(pool.clone(), |e| e.priority(p));
        let o = order.clone();
        *h.rec.hook.lock() = Some(Arc::new(move |_, _| o.lock().push(tag)));
        h
    };
    let low = make(Priority::Low, "low");
    let normal = make(Priority::Normal, "normal");
    let high = make(Priority::High, "high");
    // Packets arrive low first, high last.
    for h in [&low, &normal, &high] {
        let k = h.issue_pending(1);
        assert!(h.driver.complete(k, OK, 1));
    }
    assert_eq!(pool.queued_len(), 3);
    assert_eq!(pool.run_queued(usize::MAX), Ok(3));
    assert_eq!(*order.lock(), vec!["high", "normal", "low"]);
}

#[test]
fn priority_real_pool_single_busy_worker_takes_high_then_normal_then_low() {
    let pool = Pool::new("prio-r");
    pool.set_thread_maximum(1);
    let (started, release) = (Event::new(true, false), Event::new(true, false));
    let (s, r) = (started.clone(), release.clone());
    pool.submit_callback(move |_| {
        s.set();
        assert!(r.wait_timeout(PATIENCE));
    });
    assert!(started.wait_timeout(PATIENCE), "the blocker never started");

    let order = Arc::new(Mutex::new(Vec::new()));
    let all = Countdown::new(6);
    for (p, tag) in [
        (Priority::Low, "low"),
        (Priority::Normal, "normal"),
        (Priority::High, "high"),
    ] {
        let (o, a) = (order.clone(), all.clone());
        pool.submit_callback_with(p, false, move |_| {
            o.lock().push(tag);
            a.hit();
        });
    }
    // And I/O callbacks of objects with those priorities, queued behind them.
    let hs: Vec<Harness> = [
        (Priority::Low, "io-low"),
        (Priority::Normal, "io-normal"),
        (Priority::High, "io-high"),
    ]
    .into_iter()
    .map(|(p, tag)| {
        let h = Harness::with_env(pool.clone(), |e| e.priority(p));
        let (o, a) = (order.clone(), all.clone());
        *h.rec.hook.lock() = Some(Arc::new(move |_, _| {
            o.lock().push(tag);
            a.hit();
        }));
        let k = h.issue_pending(7);
        assert!(h.driver.complete(k, OK, 7));
        h
    })
    .collect();
    assert_eq!(pool.queued_len(), 6, "the only worker is busy: all queued");
    assert_eq!(pool.thread_count(), 1);
    release.set();
    assert!(all.wait(), "not every queued callback ran");
    assert_eq!(
        *order.lock(),
        vec!["high", "io-high", "normal", "io-normal", "low", "io-low"]
    );
    for h in &hs {
        assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    }
}

// ---- thread minimum and maximum -----------------------------------------------

#[test]
fn thread_minimum_starts_its_threads_at_once_and_raises_the_maximum() {
    let pool = Pool::new("min");
    pool.set_thread_maximum(2);
    assert_eq!(pool.thread_count(), 0, "a new pool starts no thread");
    pool.set_thread_minimum(4).unwrap();
    assert_eq!(
        pool.thread_count(),
        4,
        "the minimum's threads start at once"
    );
    // The maximum went up to 4: four callbacks that only return once all four
    // are inside run at once, on the four threads already started.
    let inside = Countdown::new(4);
    let names = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..4 {
        let (i, n) = (inside.clone(), names.clone());
        pool.submit_callback(move |_| {
            n.lock().push(current_name());
            i.hit();
            assert!(i.wait());
        });
    }
    assert!(inside.wait(), "four callbacks never ran at once");
    let mut names = names.lock().clone();
    names.sort();
    assert_eq!(
        names,
        ["tpio-min-1", "tpio-min-2", "tpio-min-3", "tpio-min-4"]
    );
    assert_eq!(pool.thread_count(), 4);
}

#[test]
fn thread_minimum_raises_a_lower_maximum() {
    let pool = Pool::new("min-raises");
    pool.set_thread_maximum(1);
    pool.set_thread_minimum(2).unwrap(); // the maximum becomes 2
    pool.set_thread_minimum(1).unwrap(); // lowering the minimum keeps it
    pool.set_idle_timeout(Duration::from_millis(5));
    assert!(poll_until(|| pool.thread_count() == 1));
    // One thread, busy with this callback, and a maximum of 2: a thread can
    // be started (with a maximum of 1 the answer would be false).
    let (tx, rx) = std::sync::mpsc::channel();
    pool.submit_callback(move |inst| tx.send(inst.may_run_long()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(true));
}

#[test]
fn thread_minimum_above_the_limit_is_invalid_parameter_and_changes_nothing() {
    let pool = Pool::new("min-limit");
    pool.set_thread_minimum(2).unwrap();
    assert_eq!(
        pool.set_thread_minimum(MAX_POOL_THREADS + 1),
        Err(Win32Error::INVALID_PARAMETER)
    );
    assert_eq!(pool.thread_count(), 2, "no thread was started");
    // The minimum is still 2: start two more threads, let idle ones retire
    // quickly, and the count comes down to 2 (not 0, not MAX+1).
    pool.set_thread_minimum(4).unwrap();
    pool.set_thread_minimum(2).unwrap();
    assert_eq!(pool.thread_count(), 4);
    assert_eq!(
        pool.set_thread_minimum(usize::MAX),
        Err(Win32Error::INVALID_PARAMETER)
    );
    pool.set_idle_timeout(Duration::from_millis(5));
    assert!(
        poll_until(|| pool.thread_count() == 2),
        "idle threads above the minimum did not retire: {}",
        pool.thread_count()
    );
    // Observe a while (about 20 idle periods) that it stays there. This can
    // only miss a bug, never fail a correct pool.
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until {
        assert_eq!(pool.thread_count(), 2, "retired below the minimum");
        std::thread::park_timeout(Duration::from_millis(1));
    }
    // The manual pool has no threads to keep.
    assert_eq!(
        Pool::new_manual("min-manual").set_thread_minimum(1),
        Err(Win32Error::INVALID_FUNCTION)
    );
}

#[test]
fn thread_maximum_lowers_the_minimum() {
    let pool = Pool::new("max-lowers");
    pool.set_thread_minimum(3).unwrap();
    assert_eq!(pool.thread_count(), 3);
    pool.set_thread_maximum(1); // the minimum becomes 1
    pool.set_idle_timeout(Duration::from_millis(5));
    assert!(
        poll_until(|| pool.thread_count() == 1),
        "the minimum was not lowered with the maximum: {} threads",
        pool.thread_count()
    );
    // The maximum holds: inside the only callback no other thread may start.
    let (tx, rx) = std::sync::mpsc::channel();
    pool.submit_callback(move |inst| tx.send(inst.may_run_long()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(false));
    // set_thread_maximum(0) is taken as 1, not as "no threads".
    pool.set_thread_maximum(0);
    let ran = Event::new(true, false);
    let r = ran.clone();
    pool.submit_callback(move |_| r.set());
    assert!(ran.wait_timeout(PATIENCE));
}

// ---- names and threads ----------------------------------------------------------

#[test]
fn workers_are_named_after_the_pool_and_never_the_submitting_thread() {
    let h = Harness::new("names");
    let me = std::thread::current().id();
    let seen: Arc<Mutex<Vec<(ThreadId, String, bool)>>> = Default::default();
    let all = Countdown::new(16);
    let other = Pool::new("names-other");
    for _ in 0..16 {
        let (s, a, p, o) = (seen.clone(), all.clone(), h.pool.clone(), other.clone());
        h.pool.submit_callback(move |_| {
            let mine = p.is_worker_thread() && !o.is_worker_thread();
            s.lock()
                .push((std::thread::current().id(), current_name(), mine));
            a.hit();
        });
    }
    assert!(all.wait());
    let k = h.issue_pending(0x77);
    h.driver.complete(k, OK, 3);
    assert!(h.rec.wait_callbacks(1));
    assert!(!h.pool.is_worker_thread(), "the test thread is no worker");
    let is_worker_name = |n: &str| {
        n.strip_prefix("tpio-names-")
            .is_some_and(|rest| rest.parse::<usize>().is_ok_and(|n| n >= 1))
    };
    for (id, name, mine) in seen.lock().iter() {
        assert_ne!(*id, me, "a callback ran on the submitting thread");
        assert!(is_worker_name(name), "unexpected worker name {name:?}");
        assert!(mine, "is_worker_thread is wrong inside a callback");
    }
    match &h.rec.seen()[0] {
        Seen::Callback {
            thread,
            thread_name,
            ..
        } => {
            assert_ne!(*thread, me);
            assert!(is_worker_name(thread_name.as_deref().unwrap_or("")));
        }
        s => panic!("expected a callback, saw {s:?}"),
    }
}

#[test]
fn idle_workers_above_the_minimum_retire_and_the_minimum_stays() {
    let pool = Pool::new("retire");
    pool.set_thread_minimum(4).unwrap();
    pool.set_thread_minimum(1).unwrap(); // lowering keeps the threads for now
    assert_eq!(pool.thread_count(), 4);
    pool.set_idle_timeout(Duration::from_millis(10));
    assert!(
        poll_until(|| pool.thread_count() == 1),
        "idle workers did not retire: {}",
        pool.thread_count()
    );
    // The one left serves new work without a new thread.
    let (tx, rx) = std::sync::mpsc::channel();
    pool.submit_callback(move |_| tx.send(current_name()).unwrap());
    let name = rx.recv_timeout(PATIENCE).unwrap();
    assert!(
        [
            "tpio-retire-1",
            "tpio-retire-2",
            "tpio-retire-3",
            "tpio-retire-4"
        ]
        .contains(&name.as_str()),
        "a new thread {name} was started although one was idle"
    );
    assert_eq!(pool.thread_count(), 1);
}

#[test]
fn dropping_the_pool_handle_runs_every_queued_callback() {
    const N: usize = 64;
    // A pool with one busy worker and work queued behind it.
    let pool = Pool::new("drop-q");
    pool.set_thread_maximum(1);
    let (started, release) = (Event::new(true, false), Event::new(true, false));
    let (s, r) = (started.clone(), release.clone());
    pool.submit_callback(move |_| {
        s.set();
        assert!(r.wait_timeout(PATIENCE));
    });
    assert!(started.wait_timeout(PATIENCE));
    let all = Countdown::new(N);
    for i in 0..N {
        let a = all.clone();
        let p = [Priority::Low, Priority::Normal, Priority::High][i % 3];
        pool.submit_callback_with(p, false, move |_| a.hit());
    }
    assert_eq!(pool.queued_len(), N);
    drop(pool);
    release.set();
    assert!(all.wait(), "stranded: only {} of {N} ran", all.count());
    assert_eq!(all.count(), N);

    // And a pool dropped at once after submitting, with no thread yet busy.
    let pool = Pool::new("drop-now");
    let all = Countdown::new(N);
    for _ in 0..N {
        let a = all.clone();
        pool.submit_callback(move |_| a.hit());
    }
    drop(pool);
    assert!(all.wait(), "stranded: only {} of {N} ran", all.count());
}

// ---- may_run_long and runs-long environments -----------------------------------

#[test]
fn may_run_long_is_true_when_a_thread_is_free_or_can_be_started() {
    let pool = Pool::new("mrl");
    pool.set_thread_maximum(2);
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pool.clone();
    pool.submit_callback(move |inst| {
        let first = inst.may_run_long();
        // A second thread was started for the pool's other work.
        let threads = p.thread_count();
        tx.send((first, inst.may_run_long(), threads)).unwrap();
    });
    assert_eq!(rx.recv_timeout(PATIENCE), Ok((true, true, 2)));
}

#[test]
fn may_run_long_is_false_at_the_maximum_with_no_idle_thread() {
    let pool = Pool::new("mrl-max");
    pool.set_thread_maximum(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let t2 = tx.clone();
    pool.submit_callback(move |inst| tx.send(inst.may_run_long()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(false));
    // The answer is remembered, and the pool still runs the next callback.
    pool.submit_callback(move |inst| {
        let a = inst.may_run_long();
        t2.send(a && inst.may_run_long()).unwrap()
    });
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(false));
    assert_eq!(pool.thread_count(), 1);

    // Maximum 2, the other thread busy: false too.
    let pool = Pool::new("mrl-max2");
    pool.set_thread_maximum(2);
    pool.set_concurrency(2);
    let (started, release) = (Event::new(true, false), Event::new(true, false));
    let (s, r) = (started.clone(), release.clone());
    pool.submit_callback(move |_| {
        s.set();
        assert!(r.wait_timeout(PATIENCE));
    });
    assert!(started.wait_timeout(PATIENCE));
    let (tx, rx) = std::sync::mpsc::channel();
    pool.submit_callback(move |inst| tx.send(inst.may_run_long()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(false));
    release.set();

    // The manual pool has no thread to give.
    let pool = Pool::new_manual("mrl-manual");
    let (tx, rx) = std::sync::mpsc::channel();
    pool.submit_callback(move |inst| tx.send(inst.may_run_long()).unwrap());
    assert_eq!(pool.run_queued(1), Ok(1));
    assert_eq!(rx.try_recv(), Ok(false));
}

#[test]
fn may_run_long_is_true_when_it_starts_a_thread_for_queued_work() {
    // One CPU's worth of concurrency and room for two threads: a second short
    // callback waits in the queue while the first runs. When the first says
    // it may run long, a thread can be started (the pool is below its
    // maximum), so the answer is true, and the queued callback gets it.
    let pool = Pool::new("mrl-queued");
    pool.set_thread_maximum(2);
    pool.set_concurrency(1);
    let (started, go) = (Event::new(true, false), Event::new(true, false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (s, g) = (started.clone(), go.clone());
    pool.submit_callback(move |inst| {
        s.set();
        assert!(g.wait_timeout(PATIENCE));
        tx.send(inst.may_run_long()).unwrap();
    });
    assert!(started.wait_timeout(PATIENCE));
    let second = Event::new(true, false);
    let s2 = second.clone();
    pool.submit_callback(move |_| s2.set());
    assert_eq!(pool.queued_len(), 1, "the second waits for a CPU");
    assert_eq!(pool.thread_count(), 1);
    go.set();
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Ok(true),
        "below the maximum, may_run_long must say a thread can be started"
    );
    assert!(
        second.wait_timeout(PATIENCE),
        "the queued callback never ran"
    );
    assert_eq!(pool.thread_count(), 2);
}

#[test]
fn runs_long_environment_lets_a_second_callback_start_while_the_first_blocks() {
    // One CPU's worth of short callbacks: without the runs-long hint the
    // second would wait for the first, which waits for the second.
    let pool = Pool::new("rl");
    pool.set_thread_maximum(2);
    pool.set_concurrency(1);
    let h = Harness::with_env(pool.clone(), |e| e.runs_long(true));
    let (first_in, second_in) = (Event::new(true, false), Event::new(true, false));
    let saw_second = Arc::new(AtomicBool::new(false));
    let threads: Arc<Mutex<Vec<ThreadId>>> = Default::default();
    let (f, s, saw, t) = (
        first_in.clone(),
        second_in.clone(),
        saw_second.clone(),
        threads.clone(),
    );
    *h.rec.hook.lock() = Some(Arc::new(move |inst, c| {
        t.lock().push(std::thread::current().id());
        if c.overlapped == 1 {
            // A runs-long callback below the maximum: a thread can be started.
            assert!(inst.may_run_long());
            f.set();
            saw.store(s.wait_timeout(PATIENCE), Ordering::SeqCst);
        } else {
            s.set();
        }
    }));
    let k1 = h.issue_pending(1);
    let k2 = h.issue_pending(2);
    h.driver.complete(k1, OK, 1);
    assert!(first_in.wait_timeout(PATIENCE));
    h.driver.complete(k2, OK, 2);
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    assert!(
        saw_second.load(Ordering::SeqCst),
        "the second callback did not start while the first blocked"
    );
    let t = threads.lock();
    assert_eq!(t.len(), 2);
    assert_ne!(t[0], t[1]);

    assert_eq!(h.pool.stats().callbacks_panicked, 0);

    // The same for a simple callback submitted with the runs-long hint.
    let pool = Pool::new("rl-simple");
    pool.set_thread_maximum(2);
    pool.set_concurrency(1);
    let (first_in, second_in) = (Event::new(true, false), Event::new(true, false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (f, s) = (first_in.clone(), second_in.clone());
    pool.submit_callback_with(Priority::Normal, true, move |_| {
        f.set();
        tx.send(s.wait_timeout(PATIENCE)).unwrap();
    });
    assert!(first_in.wait_timeout(PATIENCE));
    let s = second_in.clone();
    pool.submit_callback(move |_| s.set());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(true));
}

// ---- when-callback-returns actions ---------------------------------------------

#[test]
fn return_actions_run_after_the_body_and_before_wait_returns() {
    let h = Harness::new("ret");
    let ev = Event::new(true, false);
    let sem = Semaphore::new(0, 10).unwrap();
    let log: Arc<Mutex<Vec<&'static str>>> = Default::default();
    let (e, s, l) = (ev.clone(), sem.clone(), log.clone());
    *h.rec.hook.lock() = Some(Arc::new(move |inst, _| {
        inst.set_event_when_callback_returns(&e);
        inst.release_semaphore_when_callback_returns(&s, 3);
        let l2 = l.clone();
        let (e2, s2) = (e.clone(), s.clone());
        inst.when_callback_returns(move || {
            // Earlier actions ran first, in the order asked.
            assert!(e2.is_set());
            assert_eq!(s2.count(), 3);
            l2.lock().push("action-start");
            // Give a wrong implementation's wait time to return early.
            for _ in 0..200 {
                std::thread::yield_now();
            }
            l2.lock().push("action-end");
        });
        // Nothing has run yet: the body is not over.
        assert!(!e.is_set());
        assert_eq!(s.count(), 0);
        l.lock().push("body-end");
    }));
    let k = h.issue_pending(0x9);
    h.driver.complete(k, OK, 9);
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    log.lock().push("wait-returned");
    assert!(ev.is_set());
    assert_eq!(sem.count(), 3);
    assert_eq!(
        *log.lock(),
        vec!["body-end", "action-start", "action-end", "wait-returned"]
    );
    assert_eq!(h.pool.stats().callbacks_panicked, 0);
}

#[test]
fn return_actions_of_a_simple_callback_run_after_it() {
    let pool = Pool::new("ret-simple");
    let ev = Event::new(true, false);
    let sem = Semaphore::new(1, 2).unwrap();
    let body_done = Arc::new(AtomicBool::new(false));
    let action_saw_body = Arc::new(AtomicBool::new(false));
    let (e, s, b, a) = (
        ev.clone(),
        sem.clone(),
        body_done.clone(),
        action_saw_body.clone(),
    );
    pool.submit_callback(move |inst| {
        // The semaphore would pass its maximum: that release is refused and
        // the other actions still run.
        inst.release_semaphore_when_callback_returns(&s, 5);
        let b2 = b.clone();
        inst.when_callback_returns(move || a.store(b2.load(Ordering::SeqCst), Ordering::SeqCst));
        inst.set_event_when_callback_returns(&e);
        b.store(true, Ordering::SeqCst);
    });
    assert!(ev.wait_timeout(PATIENCE));
    assert!(action_saw_body.load(Ordering::SeqCst));
    assert_eq!(sem.count(), 1, "an over-maximum release adds nothing");
}

// ---- panics ---------------------------------------------------------------------

#[test]
fn panicking_simple_callback_is_caught_and_the_pool_lives_on() {
    let pool = Pool::new("panic-s");
    pool.set_thread_maximum(1);
    let ev = Event::new(true, false);
    let e = ev.clone();
    pool.submit_callback(move |inst| {
        inst.set_event_when_callback_returns(&e);
        panic!("deliberate panic in a simple callback (test)");
    });
    assert!(
        ev.wait_timeout(PATIENCE),
        "the return action of a panicking callback must still run"
    );
    let ran = Event::new(true, false);
    let name = Arc::new(Mutex::new(String::new()));
    let (r, n) = (ran.clone(), name.clone());
    pool.submit_callback(move |inst| {
        *n.lock() = current_name();
        inst.set_event_when_callback_returns(&r);
    });
    assert!(ran.wait_timeout(PATIENCE), "the pool stopped after a panic");
    assert_eq!(
        *name.lock(),
        "tpio-panic-s-1",
        "the worker must survive the panic"
    );
    let st = pool.stats();
    assert_eq!(st.callbacks_panicked, 1);
    assert_eq!(st.callbacks_run, 2);
    assert_eq!(pool.thread_count(), 1);
}

#[test]
fn panicking_io_callback_is_caught_and_the_object_counts_stay_right() {
    let pool = Pool::new("panic-io");
    pool.set_thread_maximum(1);
    let mut h = Harness::with_env(pool.clone(), |e| e);
    *h.rec.hook.lock() = Some(Arc::new(|_, c: Completion| {
        if c.overlapped == 1 {
            panic!("deliberate panic in an I/O callback (test)");
        }
    }));
    let k1 = h.issue_pending(1);
    let k2 = h.issue_pending(2);
    h.driver.complete(k1, OK, 1);
    h.driver.complete(k2, OK, 2);
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    let mut got = h.rec.callbacks();
    got.sort_by_key(|c| c.overlapped);
    assert_eq!(got, vec![done(1, OK, 1), done(2, OK, 2)]);
    let c = h.io().counts();
    assert_eq!((c.pending, c.queued, c.running, c.associated), (0, 0, 0, 0));
    assert_eq!(pool.stats().callbacks_panicked, 1);
    assert_eq!(pool.stats().callbacks_run, 2);
    h.close();
    assert!(h.rec.wait_until(|s| s.contains(&Seen::Released)));
    assert_eq!(h.rec.releases(), 1);
    assert_eq!(pool.stats().live_objects(), 0);
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn panicking_return_action_is_caught_and_later_actions_still_run() {
    let pool = Pool::new("panic-act");
    pool.set_thread_maximum(1);
    let mut h = Harness::with_env(pool.clone(), |e| e);
    let ev = Event::new(true, false);
    let e = ev.clone();
    *h.rec.hook.lock() = Some(Arc::new(move |inst, _| {
        inst.when_callback_returns(|| panic!("deliberate panic in a return action (test)"));
        inst.set_event_when_callback_returns(&e);
    }));
    let k = h.issue_pending(1);
    h.driver.complete(k, OK, 1);
    assert_eq!(
        h.io().wait_for_callbacks_timeout(false, PATIENCE),
        Ok(true),
        "a panicking return action left the callback counted as running"
    );
    assert!(
        ev.is_set(),
        "the action after the panicking one did not run"
    );
    assert_eq!(pool.stats().callbacks_panicked, 1);
    // The same for a simple callback; the one worker is still there.
    let ev2 = Event::new(true, false);
    let e2 = ev2.clone();
    pool.submit_callback(move |inst| {
        inst.when_callback_returns(|| panic!("deliberate panic in a return action (test)"));
        inst.set_event_when_callback_returns(&e2);
    });
    assert!(ev2.wait_timeout(PATIENCE));
    let (tx, rx) = std::sync::mpsc::channel();
    pool.submit_callback(move |_| tx.send(current_name()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE).as_deref(), Ok("tpio-panic-act-1"));
    assert_eq!(pool.stats().callbacks_panicked, 2);
    assert_eq!(pool.thread_count(), 1);
    h.close();
    assert!(h.rec.wait_until(|s| s.contains(&Seen::Released)));
    assert_eq!(pool.stats().live_objects(), 0);
}

// ---- disassociate ---------------------------------------------------------------

#[test]
fn disassociated_callback_frees_wait_but_not_close_members() {
    let pool = Pool::new("disassoc");
    let group = CleanupGroup::new();
    let h = Harness::with_env(pool.clone(), |e| e.cleanup_group(&group, None));
    let (detached, release) = (Event::new(true, false), Event::new(true, false));
    let finished = Arc::new(AtomicBool::new(false));
    let close_returned = Arc::new(AtomicBool::new(false));
    let close_returned_early = Arc::new(AtomicBool::new(false));
    let (d, r, f, cr, early) = (
        detached.clone(),
        release.clone(),
        finished.clone(),
        close_returned.clone(),
        close_returned_early.clone(),
    );
    *h.rec.hook.lock() = Some(Arc::new(move |inst, _| {
        assert!(inst.is_associated());
        inst.disassociate();
        assert!(!inst.is_associated());
        d.set();
        assert!(r.wait_timeout(PATIENCE));
        for _ in 0..100 {
            std::thread::yield_now();
        }
        early.store(cr.load(Ordering::SeqCst), Ordering::SeqCst);
        f.store(true, Ordering::SeqCst);
    }));
    let k = h.issue_pending(0x5);
    h.driver.complete(k, OK, 5);
    assert!(detached.wait_timeout(PATIENCE));
    // wait_for_callbacks does not count it any more ...
    assert_eq!(h.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    assert!(!finished.load(Ordering::SeqCst), "it is still running");
    let c = h.io().counts();
    assert_eq!((c.running, c.associated), (1, 0));
    // ... but the cleanup group does.
    std::thread::scope(|s| {
        let closer = s.spawn(|| {
            let r = group.close_members(false, 0);
            close_returned.store(true, Ordering::SeqCst);
            r
        });
        // close_members takes the member list first: it is inside now.
        assert!(poll_until(|| group.member_count() == 0));
        release.set();
        assert_eq!(closer.join().unwrap(), Ok(()));
    });
    assert!(finished.load(Ordering::SeqCst));
    assert!(
        !close_returned_early.load(Ordering::SeqCst),
        "close_members returned while the disassociated callback ran"
    );
    assert_eq!(h.rec.releases(), 1);
    assert_eq!(pool.stats().live_objects(), 0);
    drop(h);
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn disassociated_callback_keeps_its_object_until_it_returns() {
    let pool = Pool::new("disassoc-close");
    let mut h = Harness::with_env(pool.clone(), |e| e);
    let (detached, release) = (Event::new(true, false), Event::new(true, false));
    let (d, r) = (detached.clone(), release.clone());
    *h.rec.hook.lock() = Some(Arc::new(move |inst, _| {
        inst.disassociate();
        d.set();
        assert!(r.wait_timeout(PATIENCE));
    }));
    let k = h.issue_pending(1);
    h.driver.complete(k, OK, 1);
    assert!(detached.wait_timeout(PATIENCE));
    let rec = h.rec.clone();
    h.close();
    assert_eq!(rec.releases(), 0, "released under a running callback");
    assert_eq!(pool.stats().live_objects(), 1);
    release.set();
    assert!(rec.wait_until(|s| s.contains(&Seen::Released)));
    assert_eq!(pool.stats().live_objects(), 0);
}

// An `IoObject` built directly (not through the harness) on an environment
// with no pool uses the process-wide default pool.
#[test]
fn default_environment_uses_the_default_pool() {
    let (tx, rx) = std::sync::mpsc::channel();
    let io = IoObject::new(
        &CallbackEnvironment::new(),
        0,
        move |_inst: &mut CallbackInstance<'_>, c: Completion| {
            tx.send((c, current_name())).unwrap();
        },
    );
    io.start().unwrap();
    io.target().complete(done(3, OK, 3));
    let (c, name) = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(c, done(3, OK, 3));
    assert!(name.starts_with("tpio-default-"), "{name}");
    io.wait_for_callbacks(false).unwrap();
}
