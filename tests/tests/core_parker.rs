//! The pool's [`Parker`] contract (`crates/tpio-core/src/parker.rs`): a
//! driver that installs a parker on a worker makes the pool park that
//! worker in the driver, wake it through the driver, give it the first
//! callback its own delivery queues (no hand-off to another thread), and
//! keep it alive while it owns operations in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tpio_core::parker::{can_install_parker, install_parker, Parker};
use tpio_core::Pool;
use tpio_tests::parker_rig::{two_workers, worker_thread, worker_with_parker, Rescuer, TestParker};
use tpio_tests::PATIENCE;

/// `rescue_kept` acts on every pool of the process: the test that calls it
/// and the tests that assert kept work stays put do not run at once.
static RESCUE: Mutex<()> = Mutex::new(());

#[test]
fn a_parker_can_only_be_installed_on_a_pool_worker() {
    assert!(!can_install_parker());
    assert!(!install_parker(Arc::new(TestParker::default())));
}

#[test]
fn an_idle_worker_parks_in_its_parker_and_submitted_work_unparks_it() {
    let pool = Pool::new("park-wake");
    pool.set_thread_maximum(1);
    let (p, t) = worker_with_parker(&pool);
    let (tx, rx) = mpsc::channel();
    pool.submit_callback(move |_| tx.send(thread::current().id()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(t), "run by the parked worker");
    assert!(
        p.unparks.load(Ordering::SeqCst) >= 1,
        "woken through the parker"
    );
}

#[test]
fn work_queued_by_a_parked_workers_own_delivery_runs_on_it_and_wakes_nobody() {
    let pool = Pool::new("park-local");
    pool.set_thread_maximum(2);
    let (p, t) = worker_with_parker(&pool);
    let threads_before = pool.thread_count();
    for round in 0..50 {
        let unparks = p.unparks.load(Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let pool2 = pool.clone();
        // The "driver" delivers a completion on the parked worker, which
        // queues a callback on the worker's own pool.
        p.complete(move || {
            pool2.submit_callback(move |_| tx.send(thread::current().id()).unwrap());
        });
        assert_eq!(
            rx.recv_timeout(PATIENCE),
            Ok(t),
            "round {round}: no hand-off"
        );
        assert_eq!(
            p.unparks.load(Ordering::SeqCst),
            unparks,
            "nobody was woken"
        );
    }
    assert_eq!(
        pool.thread_count(),
        threads_before,
        "no thread started for it"
    );
}

#[test]
fn a_second_callback_of_the_same_delivery_goes_to_another_worker() {
    let pool = Pool::new("park-spread");
    pool.set_thread_maximum(2);
    pool.set_thread_minimum(2).unwrap();
    // No idle time-out may stand in for the wake this test is about.
    pool.set_idle_timeout(Duration::from_secs(600));
    let (p, t) = worker_with_parker(&pool);
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let pool2 = pool.clone();
    let g2 = gate.clone();
    p.complete(move || {
        for _ in 0..2 {
            let (tx, g) = (tx.clone(), g2.clone());
            pool2.submit_callback(move |_| {
                tx.send(thread::current().id()).unwrap();
                // Both must be running at once: each waits for the other.
                let (m, cv) = &*g;
                let mut n = m.lock();
                if *n {
                    *n = false;
                    cv.notify_all();
                } else {
                    *n = true;
                    let end = Instant::now() + PATIENCE;
                    while *n && !cv.wait_until(&mut n, end).timed_out() {}
                }
            });
        }
    });
    let a = rx.recv_timeout(PATIENCE).expect("first");
    let b = rx
        .recv_timeout(PATIENCE)
        .expect("second: another worker took it");
    assert!(a == t || b == t, "the parked worker ran one of them");
    assert_ne!(a, b);
}

#[test]
fn a_worker_that_owns_operations_outlives_its_idle_time_out_and_the_pool() {
    let pool = Pool::new("park-keep");
    pool.set_idle_timeout(Duration::from_millis(20));
    let (p, _t) = worker_with_parker(&pool);
    p.busy.store(true, Ordering::SeqCst);
    let parks = p.parks.load(Ordering::SeqCst);
    // Several idle time-outs pass: the worker stays (parked again each time).
    let deadline = Instant::now() + PATIENCE;
    while p.parks.load(Ordering::SeqCst) < parks + 3 {
        assert!(Instant::now() < deadline, "the worker stopped parking");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        pool.thread_count(),
        1,
        "kept alive while it owns operations"
    );
    drop(pool);
    // The pool is gone; a late completion is still delivered on the worker.
    let (tx, rx) = mpsc::channel();
    p.complete(move || tx.send(()).unwrap());
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(()));
    p.busy.store(false, Ordering::SeqCst);
    p.unpark();
    // Now it may exit: the parker is released with the thread.
    let deadline = Instant::now() + PATIENCE;
    while Arc::strong_count(&p) > 1 {
        assert!(Instant::now() < deadline, "the worker never exited");
        p.unpark();
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_first_callback_a_busy_worker_queues_is_kept_for_it() {
    let _serial = RESCUE.lock();
    // The other worker has operations of its own in flight: an idle worker
    // with none would be free to help (`core_local_queue`).
    let (pool, p, _other) = two_workers("keep", 1);
    let t = worker_thread(&pool, &p);
    for round in 0..50 {
        let (tx, rx) = mpsc::channel();
        let pool2 = pool.clone();
        p.complete(move || {
            let inner = pool2.clone();
            pool2.submit_callback(move |_| {
                // On the parker's worker: queue one more and return.
                inner.submit_callback(move |_| tx.send(thread::current().id()).unwrap());
            });
        });
        assert_eq!(
            rx.recv_timeout(PATIENCE),
            Ok(t),
            "round {round}: handed off"
        );
    }
    assert_eq!(
        p.kept.load(Ordering::SeqCst),
        50,
        "the parker was told each time"
    );
}

#[test]
fn the_second_callback_a_busy_worker_queues_wakes_another() {
    let _serial = RESCUE.lock();
    // The other worker is parked with nothing in flight before anything is
    // queued (one still starting would take work as soon as it looks).
    let (pool, p, _other) = two_workers("keep-2", 0);
    let (tx, rx) = mpsc::channel();
    let pool2 = pool.clone();
    p.complete(move || {
        let inner = pool2.clone();
        pool2.submit_callback(move |_| {
            let (ran_tx, ran_rx) = mpsc::channel();
            for _ in 0..2 {
                let ran_tx = ran_tx.clone();
                inner.submit_callback(move |_| ran_tx.send(()).unwrap());
            }
            // Both must run while this callback still runs: the second
            // push woke the other worker (which takes them in order).
            let both = (0..2).all(|_| ran_rx.recv_timeout(PATIENCE).is_ok());
            tx.send(both).unwrap();
        });
    });
    assert_eq!(rx.recv_timeout(PATIENCE * 3), Ok(true));
    assert_eq!(p.kept.load(Ordering::SeqCst), 1, "only the first was kept");
}

/// Worker `a` queues `n` callbacks for itself and then blocks; worker `b`
/// (with `b_in_flight` operations of its own in flight) is made to look
/// for work by a delivery of its own. Returns the threads of `a`, `b` and
/// of the callbacks that ran while `a` was blocked (within `within`).
fn queue_on_a_then_wake_b(
    name: &str,
    b_in_flight: usize,
    n: usize,
    within: Duration,
) -> (thread::ThreadId, thread::ThreadId, Vec<thread::ThreadId>) {
    let (pool, a, b) = two_workers(name, b_in_flight);
    let (ta, tb) = (worker_thread(&pool, &a), worker_thread(&pool, &b));
    let (ran_tx, ran_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (queued_tx, queued_rx) = mpsc::channel();
    let pool2 = pool.clone();
    a.complete(move || {
        let inner = pool2.clone();
        pool2.submit_callback(move |_| {
            for _ in 0..n {
                let ran_tx = ran_tx.clone();
                inner.submit_callback(move |_| {
                    let _ = ran_tx.send(thread::current().id());
                });
            }
            queued_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(PATIENCE);
        });
    });
    queued_rx
        .recv_timeout(PATIENCE)
        .expect("a queued its callbacks");
    b.complete(|| {});
    let mut ran = Vec::new();
    let end = Instant::now() + within;
    while let Ok(t) = ran_rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        ran.push(t);
    }
    release_tx.send(()).unwrap();
    (ta, tb, ran)
}

#[test]
fn a_worker_with_operations_in_flight_steals_from_a_lopsided_queue() {
    let _serial = RESCUE.lock();
    // b has 1 operation in flight, a 40 callbacks queued: b takes half,
    // and half again while a's queue is longer than b's in flight by more
    // than the pool's margin (8 beyond twice b's), so a keeps some.
    let (ta, tb, ran) = queue_on_a_then_wake_b("lopsided", 1, 40, Duration::from_millis(500));
    assert_ne!(ta, tb);
    assert!(
        !ran.is_empty() && ran.iter().all(|t| *t == tb),
        "b ran some of a's queue while a was blocked: {} ran",
        ran.len()
    );
    assert!(ran.len() <= 30, "a kept its share: {} ran on b", ran.len());
}

#[test]
fn balanced_workers_do_not_steal_from_each_other() {
    let _serial = RESCUE.lock();
    // b has 40 operations in flight, a 20 callbacks queued: each chain
    // keeps to its worker.
    let (_, _, ran) = queue_on_a_then_wake_b("balanced", 40, 20, Duration::from_millis(300));
    assert!(
        ran.is_empty(),
        "{} ran elsewhere while a was blocked",
        ran.len()
    );
}

#[test]
fn kept_work_is_rescued_when_its_worker_blocks() {
    let _serial = RESCUE.lock();
    let pool = Pool::new("keep-rescue");
    pool.set_thread_maximum(2);
    pool.set_thread_minimum(2).unwrap();
    let (p, t) = worker_with_parker(&pool);
    // The driver's side of the contract: a rescue every millisecond.
    let rescuer = Rescuer::start();
    let (tx, rx) = mpsc::channel();
    let pool2 = pool.clone();
    p.complete(move || {
        let inner = pool2.clone();
        pool2.submit_callback(move |_| {
            let (done_tx, done_rx) = mpsc::channel();
            inner.submit_callback(move |_| done_tx.send(thread::current().id()).unwrap());
            // Block until the kept callback ran: only a rescue can run it.
            tx.send(done_rx.recv_timeout(PATIENCE)).unwrap();
        });
    });
    let r = rx
        .recv_timeout(PATIENCE * 2)
        .expect("the blocked callback returned");
    drop(rescuer);
    let ran_on = r.expect("the kept callback was rescued");
    assert_ne!(ran_on, t, "another worker ran it");
}

#[test]
fn worker_slot_makes_a_drivers_state_once_per_worker_and_only_for_one_driver() {
    use tpio_core::parker::worker_slot;
    // Not a worker: nothing is made, and the question stays open.
    let made = AtomicUsize::new(0);
    let mk = || {
        made.fetch_add(1, Ordering::SeqCst);
        let p: Arc<dyn Parker> = Arc::new(TestParker::default());
        Some((Arc::new(7u32), p))
    };
    assert!(worker_slot(1, mk).is_none());
    assert_eq!(made.load(Ordering::SeqCst), 0);

    let pool = Pool::new("slot");
    pool.set_thread_maximum(1);
    let (tx, rx) = mpsc::channel();
    pool.submit_callback(move |_| {
        let made = Arc::new(AtomicUsize::new(0));
        let m2 = made.clone();
        let mk = move || {
            m2.fetch_add(1, Ordering::SeqCst);
            let p: Arc<dyn Parker> = Arc::new(TestParker::default());
            Some((Arc::new(7u32), p))
        };
        let a = worker_slot(1, mk.clone());
        let b = worker_slot(1, mk.clone());
        // Another driver on the same worker gets nothing: one parker each.
        let other = worker_slot(2, mk);
        let same = matches!((&a, &b), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
        tx.send((
            same,
            other.is_none(),
            made.load(Ordering::SeqCst),
            can_install_parker(),
        ))
        .unwrap();
    });
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Ok((true, true, 1, false)),
        "made once, the same state after, none for another driver, the parker installed"
    );

    // A driver whose state could not be made is not asked again there.
    let pool = Pool::new("slot-fail");
    pool.set_thread_maximum(1);
    let (tx, rx) = mpsc::channel();
    pool.submit_callback(move |_| {
        let tries = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let t = tries.clone();
            let r = worker_slot::<u32>(3, move || {
                t.fetch_add(1, Ordering::SeqCst);
                None
            });
            assert!(r.is_none());
        }
        tx.send((tries.load(Ordering::SeqCst), can_install_parker()))
            .unwrap();
    });
    assert_eq!(rx.recv_timeout(PATIENCE), Ok((1, true)));
}

#[test]
fn watch_turns_on_once_and_settles_off_only_when_nothing_is_busy() {
    use tpio_core::parker::Watch;
    let w = Watch::default();
    assert!(!w.is_on());
    assert!(w.turn_on(), "off to on: the caller wakes its thread");
    assert!(!w.turn_on(), "already on: nobody to wake");
    w.settle(|| true);
    assert!(w.is_on(), "busy: keeps watching");
    let mut asks = 0;
    w.settle(|| {
        asks += 1;
        false
    });
    assert!(!w.is_on());
    assert_eq!(asks, 2, "asked again after turning off");
    // Work that came between the scan and the store keeps it on.
    let mut n = 0;
    w.settle(|| {
        n += 1;
        n == 2
    });
    assert!(w.is_on());
}
