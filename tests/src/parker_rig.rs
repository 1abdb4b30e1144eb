//! A stand-in for a driver that parks pool workers in its own wait
//! ([`tpio_core::parker`]): the tests of the pool's parker contract and of
//! the workers' own queues share it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tpio_core::parker::{can_install_parker, install_parker, Parker};
use tpio_core::Pool;

use crate::PATIENCE;

type Delivery = Box<dyn FnOnce() + Send>;

/// A stand-in for a driver's ring: `park` waits for `unpark` or for a
/// "completion" (a closure the test hands it), which it runs on the parked
/// worker as a driver delivers a packet.
#[derive(Default)]
pub struct TestParker {
    state: Mutex<(bool, Vec<Delivery>)>,
    cv: Condvar,
    /// Times the pool parked the worker here.
    pub parks: AtomicUsize,
    /// Times the pool woke it through here.
    pub unparks: AtomicUsize,
    /// Times the pool said the worker kept work for itself.
    pub kept: AtomicUsize,
    /// The worker owns operations in flight: it may not exit.
    pub busy: AtomicBool,
    /// What [`Parker::outstanding`] says.
    pub outstanding: AtomicUsize,
}

impl TestParker {
    /// Delivers a "completion": `f` runs on the parked worker.
    pub fn complete(&self, f: impl FnOnce() + Send + 'static) {
        self.state.lock().1.push(Box::new(f));
        self.cv.notify_all();
    }
}

impl Parker for TestParker {
    fn park(&self, timeout: Duration) {
        self.parks.fetch_add(1, Ordering::SeqCst);
        let mut st = self.state.lock();
        let end = Instant::now() + timeout;
        while !st.0 && st.1.is_empty() {
            if self.cv.wait_until(&mut st, end).timed_out() {
                break;
            }
        }
        st.0 = false;
        let work = std::mem::take(&mut st.1);
        drop(st);
        for f in work {
            f();
        }
    }

    fn unpark(&self) {
        self.unparks.fetch_add(1, Ordering::SeqCst);
        self.state.lock().0 = true;
        self.cv.notify_all();
    }

    fn kept(&self) {
        self.kept.fetch_add(1, Ordering::SeqCst);
    }

    fn may_exit(&self) -> bool {
        !self.busy.load(Ordering::SeqCst)
    }

    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }
}

/// Starts a worker of `pool` and installs a fresh parker on it.
pub fn worker_with_parker(pool: &Pool) -> (Arc<TestParker>, ThreadId) {
    let p = Arc::new(TestParker::default());
    let (tx, rx) = mpsc::channel();
    let p2 = p.clone();
    pool.submit_callback(move |_| {
        assert!(can_install_parker());
        assert!(install_parker(p2.clone()));
        assert!(!install_parker(p2), "one parker per worker");
        tx.send(thread::current().id()).unwrap();
    });
    let t = rx.recv_timeout(PATIENCE).expect("the worker ran");
    let deadline = Instant::now() + PATIENCE;
    while p.parks.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the worker never parked in its parker"
        );
        thread::yield_now();
    }
    (p, t)
}

/// A pool of two workers, each parked in a test parker; `other` says it
/// has `in_flight` operations of its own coming.
pub fn two_workers(name: &str, in_flight: usize) -> (Pool, Arc<TestParker>, Arc<TestParker>) {
    let pool = Pool::new(name);
    pool.set_thread_maximum(2);
    // No idle time-out may end a worker during a test.
    pool.set_idle_timeout(Duration::from_secs(600));
    let (a, ta) = worker_with_parker(&pool);
    // The second worker: submitted while the first is busy, so a new one
    // starts for it.
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let (ran_tx, ran_rx) = mpsc::channel();
    pool.submit_callback(move |_| {
        ran_tx.send(()).unwrap();
        let _ = hold_rx.recv_timeout(PATIENCE);
    });
    ran_rx
        .recv_timeout(PATIENCE)
        .expect("the first worker is busy");
    let (b, tb) = worker_with_parker(&pool);
    hold_tx.send(()).unwrap();
    assert_ne!(ta, tb, "two workers");
    b.outstanding.store(in_flight, Ordering::SeqCst);
    (pool, a, b)
}

/// The thread of the worker `parker` is installed on.
pub fn worker_thread(pool: &Pool, parker: &TestParker) -> ThreadId {
    let (tx, rx) = mpsc::channel();
    let pool2 = pool.clone();
    parker
        .complete(move || pool2.submit_callback(move |_| tx.send(thread::current().id()).unwrap()));
    rx.recv_timeout(PATIENCE).expect("the worker ran it")
}

/// The driver's side of the kept-work contract, for tests: a thread that
/// calls [`tpio_core::parker::rescue_kept`] every millisecond until dropped.
pub struct Rescuer {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Rescuer {
    /// Starts rescuing (every pool of the process: see the tests' locks).
    pub fn start() -> Rescuer {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                tpio_core::parker::rescue_kept();
                thread::sleep(Duration::from_millis(1));
            }
        });
        Rescuer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Rescuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
