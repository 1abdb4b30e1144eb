//! A worker's own queue (`crates/tpio-core/src/local_queue.rs`): work a
//! worker with a parker queues on its own pool stays on it, in order, so a
//! chain of operations keeps to one thread; it is shared only with a worker
//! that has nothing of its own to wait for, by the driver's rescue once it
//! waited too long, or when its worker is about to block in tpio; the
//! shared queue's higher priorities and its turn come first;
//! `wait_for_callbacks(true)` finds callbacks queued there; and a driver's
//! delivery made for a busy worker (`parker::deliver_for`) goes there too.
//!
//! `rescue_kept` acts on every pool of the process: the test that calls it
//! and the tests that assert work stays put hold [`RESCUE`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, ThreadId};
use std::time::Duration;

use tpio_core::{CallbackEnvironment, Discard, Event, IoObject, Pool, Priority, Win32Error};
use tpio_tests::parker_rig::{two_workers, worker_with_parker, Rescuer, TestParker};
use tpio_tests::{done, Recorder, PATIENCE};

static RESCUE: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// On `parker`'s worker, runs `body` in a callback of that worker (queued
/// by its own delivery, as a completion's callback is).
fn on_worker(pool: &Pool, parker: &TestParker, body: impl FnOnce() + Send + 'static) {
    let pool2 = pool.clone();
    parker.complete(move || pool2.submit_callback(move |_| body()));
}

/// Queues `n` callbacks on `pool` that send their index and thread to `tx`.
fn queue_recorders(pool: &Pool, n: usize, tx: &mpsc::Sender<(usize, ThreadId)>) {
    for i in 0..n {
        let tx = tx.clone();
        pool.submit_callback(move |_| tx.send((i, thread::current().id())).unwrap());
    }
}

#[test]
fn a_workers_own_callbacks_stay_on_it_while_the_other_waits_for_its_own_operations() {
    let _serial = RESCUE.lock();
    let (pool, a, _b) = two_workers("lq-stay", 1);
    let (tx, rx) = mpsc::channel();
    let (outer_tx, outer_rx) = mpsc::channel();
    let pool2 = pool.clone();
    on_worker(&pool, &a, move || {
        queue_recorders(&pool2, 5, &tx);
        // The other worker has time to take them, and must not.
        let early = rx.recv_timeout(Duration::from_millis(200)).ok();
        outer_tx.send((thread::current().id(), early, rx)).unwrap();
    });
    let (ta, early, rx) = outer_rx.recv_timeout(PATIENCE).expect("outer ran");
    assert_eq!(early, None, "the other worker took queued work");
    for i in 0..5 {
        let (n, t) = rx
            .recv_timeout(PATIENCE)
            .expect("each queued callback runs");
        assert_eq!((n, t), (i, ta), "in order, on the worker that queued them");
    }
}

#[test]
fn an_idle_worker_with_nothing_in_flight_takes_a_busy_workers_queued_work() {
    let (pool, a, b) = two_workers("lq-help", 0);
    let (tx, rx) = mpsc::channel();
    let (outer_tx, outer_rx) = mpsc::channel();
    let pool2 = pool.clone();
    let unparks = b.unparks.load(Ordering::SeqCst);
    on_worker(&pool, &a, move || {
        queue_recorders(&pool2, 2, &tx);
        // Both must run while this callback blocks.
        let got: Vec<_> = (0..2)
            .filter_map(|_| rx.recv_timeout(PATIENCE).ok())
            .collect();
        outer_tx.send((thread::current().id(), got)).unwrap();
    });
    let (ta, got) = outer_rx.recv_timeout(PATIENCE * 3).expect("outer ran");
    assert_eq!(got.len(), 2, "both ran while their worker was busy");
    assert!(got.iter().all(|(_, t)| *t != ta), "on the other worker");
    assert!(b.unparks.load(Ordering::SeqCst) > unparks, "woken to help");
    assert_eq!(pool.stats().callbacks_stolen, 2);
}

#[test]
fn work_in_a_blocked_workers_own_queue_is_shared_at_the_rescue() {
    let _serial = RESCUE.lock();
    let (pool, a, _b) = two_workers("lq-rescue", 1);
    // The driver's side of the contract: a rescue every millisecond.
    let rescuer = Rescuer::start();
    let (tx, rx) = mpsc::channel();
    let (outer_tx, outer_rx) = mpsc::channel();
    let pool2 = pool.clone();
    on_worker(&pool, &a, move || {
        queue_recorders(&pool2, 3, &tx);
        // Blocked (not in a wait of tpio's) until all three ran.
        let got: Vec<_> = (0..3)
            .filter_map(|_| rx.recv_timeout(PATIENCE).ok())
            .collect();
        outer_tx.send((thread::current().id(), got)).unwrap();
    });
    let r = outer_rx.recv_timeout(PATIENCE * 3);
    drop(rescuer);
    let (ta, got) = r.expect("outer ran");
    assert_eq!(got.len(), 3, "all three ran while their worker was blocked");
    assert!(got.iter().all(|(_, t)| *t != ta), "on the other worker");
    assert!(a.kept.load(Ordering::SeqCst) >= 1, "the parker was told");
}

#[test]
fn a_worker_about_to_wait_in_tpio_hands_its_own_queue_over() {
    let _serial = RESCUE.lock();
    let (pool, a, _b) = two_workers("lq-wait", 1);
    let (outer_tx, outer_rx) = mpsc::channel();
    let pool2 = pool.clone();
    on_worker(&pool, &a, move || {
        let ev = Event::new(true, false);
        let (ev2, ran_on) = (ev.clone(), Arc::new(parking_lot::Mutex::new(None)));
        let r2 = ran_on.clone();
        pool2.submit_callback(move |_| {
            *r2.lock() = Some(thread::current().id());
            ev2.set();
        });
        // No rescue runs in this test: only the hand-over lets it finish.
        let set = ev.wait_timeout(PATIENCE);
        let on = *ran_on.lock();
        outer_tx.send((thread::current().id(), set, on)).unwrap();
    });
    let (ta, set, on) = outer_rx.recv_timeout(PATIENCE * 2).expect("outer ran");
    assert!(set, "the queued callback ran while its worker waited");
    assert!(on.is_some_and(|t| t != ta), "on the other worker");
}

#[test]
fn shared_work_of_a_higher_priority_runs_before_a_workers_own() {
    let pool = Pool::new("lq-prio");
    pool.set_thread_maximum(1);
    let (a, _t) = worker_with_parker(&pool);
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let pool2 = pool.clone();
    let tx2 = tx.clone();
    on_worker(&pool, &a, move || {
        for i in 0..3 {
            let tx = tx2.clone();
            pool2.submit_callback(move |_| tx.send(format!("own {i}")).unwrap());
        }
        ready_tx.send(()).unwrap();
        go_rx
            .recv_timeout(PATIENCE)
            .expect("the high one was queued");
    });
    ready_rx.recv_timeout(PATIENCE).expect("outer ran");
    let tx3 = tx.clone();
    pool.submit_callback_with(Priority::High, false, move |_| {
        tx3.send("shared high".to_string()).unwrap()
    });
    go_tx.send(()).unwrap();
    let order: Vec<String> = (0..4).map(|_| rx.recv_timeout(PATIENCE).unwrap()).collect();
    assert_eq!(order, ["shared high", "own 0", "own 1", "own 2"]);
}

#[test]
fn a_workers_own_chain_never_starves_the_shared_queue() {
    let pool = Pool::new("lq-fair");
    pool.set_thread_maximum(1);
    let (a, _t) = worker_with_parker(&pool);
    let stop = Arc::new(AtomicBool::new(false));
    let laps = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    /// One lap of a chain that queues its next lap on its own worker.
    fn lap(pool: Pool, stop: Arc<AtomicBool>, laps: Arc<std::sync::atomic::AtomicUsize>) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        laps.fetch_add(1, Ordering::SeqCst);
        let p2 = pool.clone();
        pool.submit_callback(move |_| lap(p2, stop, laps));
    }
    let (p2, s2, l2) = (pool.clone(), stop.clone(), laps.clone());
    on_worker(&pool, &a, move || lap(p2, s2, l2));
    while laps.load(Ordering::SeqCst) < 10 {
        thread::yield_now();
    }
    let (tx, rx) = mpsc::channel();
    let s3 = stop.clone();
    pool.submit_callback(move |_| {
        s3.store(true, Ordering::SeqCst);
        tx.send(()).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Ok(()),
        "the shared queue got a turn while the chain ran"
    );
}

#[test]
fn wait_for_callbacks_cancel_drops_callbacks_queued_in_a_workers_own_queue() {
    let _serial = RESCUE.lock();
    let (pool, a, _b) = two_workers("lq-drop", 1);
    let env = CallbackEnvironment::new().pool(&pool);
    let rec = Recorder::new();
    let obj = IoObject::new(&env, 0, rec.callback());
    obj.start().unwrap();
    let target = obj.target();
    let (queued_tx, queued_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    on_worker(&pool, &a, move || {
        // The packet's callback goes to this worker's own queue.
        target.complete(done(0x10, Win32Error::SUCCESS, 4));
        queued_tx.send(()).unwrap();
        go_rx.recv_timeout(PATIENCE).expect("released");
    });
    queued_rx
        .recv_timeout(PATIENCE)
        .expect("completed on the worker");
    assert_eq!(pool.queued_len(), 1, "counted while in the worker's queue");
    assert_eq!(obj.counts().queued, 1);
    obj.wait_for_callbacks(true).unwrap();
    assert_eq!(obj.counts().queued, 0);
    assert_eq!(pool.queued_len(), 0);
    assert_eq!(
        rec.discards(),
        vec![(done(0x10, Win32Error::SUCCESS, 4), Discard::Dropped)]
    );
    go_tx.send(()).unwrap();
    // The worker goes on to later work; the dropped callback never runs.
    let (tx, rx) = mpsc::channel();
    on_worker(&pool, &a, move || tx.send(()).unwrap());
    rx.recv_timeout(PATIENCE).expect("later work ran");
    assert!(rec.callbacks().is_empty(), "the dropped callback ran");
}

/// The worker `parker` is installed on, as a driver names it at install.
fn worker_ref(pool: &Pool, parker: &Arc<TestParker>) -> tpio_core::WorkerRef {
    let (tx, rx) = mpsc::channel();
    let p: Arc<dyn tpio_core::parker::Parker> = parker.clone();
    on_worker(pool, parker, move || {
        tx.send(tpio_core::parker::current_worker(&p)).unwrap()
    });
    rx.recv_timeout(PATIENCE)
        .expect("ran")
        .expect("a pool worker")
}

#[test]
fn a_delivery_made_for_a_busy_worker_runs_on_it_when_it_is_free() {
    let _serial = RESCUE.lock();
    let (pool, a, _b) = two_workers("lq-for-busy", 1);
    let wa = worker_ref(&pool, &a);
    let (busy_tx, busy_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    on_worker(&pool, &a, move || {
        busy_tx.send(thread::current().id()).unwrap();
        go_rx.recv_timeout(PATIENCE).expect("released");
    });
    let ta = busy_rx.recv_timeout(PATIENCE).expect("worker busy");
    // This thread stands in for a driver's rescue of the busy worker's
    // completions.
    let (tx, rx) = mpsc::channel();
    let pool2 = pool.clone();
    tpio_core::parker::deliver_for(Some(&wa), move || {
        pool2.submit_callback(move |_| tx.send(thread::current().id()).unwrap())
    });
    assert_eq!(pool.queued_len(), 1);
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "ran before its worker was free"
    );
    go_tx.send(()).unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(ta), "on its own worker");
}

#[test]
fn a_delivery_made_for_a_parked_worker_wakes_it() {
    let _serial = RESCUE.lock();
    let (pool, a, _b) = two_workers("lq-for-parked", 1);
    let wa = worker_ref(&pool, &a);
    let (tx, rx) = mpsc::channel();
    on_worker(&pool, &a, move || tx.send(thread::current().id()).unwrap());
    let ta = rx.recv_timeout(PATIENCE).expect("ran");
    let unparks = a.unparks.load(Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    let pool2 = pool.clone();
    tpio_core::parker::deliver_for(Some(&wa), move || {
        pool2.submit_callback(move |_| tx.send(thread::current().id()).unwrap())
    });
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(ta), "on its own worker");
    assert!(a.unparks.load(Ordering::SeqCst) > unparks, "woken for it");
}
