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
