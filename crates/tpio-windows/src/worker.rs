//! What tpio sees of a kernel32 pool's threads: [`PoolThreads`], which
//! pool a thread works for (a thread-local set by tpio's own callback
//! trampolines), how many of a pool's threads have run a tpio callback and
//! are still alive, and how many callbacks submitted through tpio wait for
//! a thread.
//!
//! kernel32 tells a program none of this: it has no call that lists or
//! counts a pool's threads, nor one that says whether a thread belongs to
//! a pool. What it does promise is that a pool's callbacks run on that
//! pool's own threads, and each kernel32 worker thread serves one pool for
//! its life. So a thread that has entered a tpio trampoline of pool P is a
//! thread of P until it exits; Rust's thread-local destructors (which run
//! on every thread of the process at `DLL_THREAD_DETACH`, kernel32's
//! included) say when that is. This module owns that bookkeeping and must
//! never guess beyond it: threads kernel32 started that never ran a tpio
//! callback (e.g. those `SetThreadpoolThreadMinimum` starts ahead of work)
//! are not seen, and are not counted.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// The threads tpio has seen of one pool, and its submitted callbacks not
/// yet started. Shared by the pool's clones, the objects bound to it and
/// every callback submitted to it.
#[derive(Debug)]
pub(crate) struct PoolThreads {
    /// Unique in the process, never 0 (0 is "no pool" in the thread-local).
    id: u64,
    /// Threads that entered a tpio trampoline of this pool and have not exited.
    alive: Mutex<usize>,
    alive_cv: Condvar,
    /// `submit_callback` callbacks handed to kernel32 whose trampoline has
    /// not started.
    queued: AtomicUsize,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the pool this thread works for (0: none seen), for the
    /// fast check on every callback.
    static POOL_ID: Cell<u64> = const { Cell::new(0) };
    /// The pool this thread was counted in; dropped when the thread exits.
    static COUNTED: RefCell<Option<Counted>> = const { RefCell::new(None) };
}

/// One thread counted in a pool's `alive`; uncounts it on drop (thread exit).
struct Counted(Arc<PoolThreads>);

impl Drop for Counted {
    fn drop(&mut self) {
        let mut n = self.0.alive.lock();
        *n -= 1;
        drop(n);
        self.0.alive_cv.notify_all();
    }
}

impl PoolThreads {
    pub(crate) fn new() -> Arc<PoolThreads> {
        Arc::new(PoolThreads {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            alive: Mutex::new(0),
            alive_cv: Condvar::new(),
            queued: AtomicUsize::new(0),
        })
    }

    /// Called by every tpio trampoline of this pool as it starts, on the
    /// kernel32 thread that runs it: the thread is (from now on, for its
    /// life) known to be one of this pool's.
    pub(crate) fn enter(this: &Arc<PoolThreads>) {
        if POOL_ID.with(Cell::get) == this.id {
            return;
        }
        // First callback of this pool on this thread. (A kernel32 thread
        // serves one pool; should one ever move, it is recounted here.)
        let counted = COUNTED.try_with(|c| {
            *this.alive.lock() += 1;
            // The old entry (another pool's), if any, uncounts itself.
            c.replace(Some(Counted(Arc::clone(this))))
        });
        match counted {
            Ok(old) => {
                drop(old);
                POOL_ID.with(|p| p.set(this.id));
            }
            Err(_) => {
                // The thread is exiting (its thread-locals are being torn
                // down): it cannot be counted, and will not run long.
                tracing::trace!("tpio: a callback on a thread tearing down its thread-locals");
            }
        }
    }

    /// True when the calling thread has run a tpio callback of this pool.
    pub(crate) fn is_current(&self) -> bool {
        POOL_ID.try_with(Cell::get).unwrap_or(0) == self.id
    }

    /// Threads of this pool that ran a tpio callback and have not exited.
    pub(crate) fn alive(&self) -> usize {
        *self.alive.lock()
    }

    /// Waits up to `timeout` until [`alive`](Self::alive) is `n`; true if it is.
    #[cfg(test)]
    pub(crate) fn wait_alive(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut a = self.alive.lock();
        while *a != n {
            if self.alive_cv.wait_until(&mut a, deadline).timed_out() {
                return *a == n;
            }
        }
        true
    }

    /// One more submitted callback waits for a thread.
    pub(crate) fn submitted(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// A submitted callback started (or kernel32 refused it).
    pub(crate) fn unqueued(&self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }

    /// Submitted callbacks not started yet.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_counted_once_and_uncounted_when_it_exits() {
        if crate::wine::running_under_wine() {
            // spec/wine-deviations.md, "A thread's exit with a thread-local
            // destructor of tpio's can hang".
            eprintln!("not run under Wine: a thread's exit can hang there");
            return;
        }
        let p = PoolThreads::new();
        let q = Arc::clone(&p);
        std::thread::spawn(move || {
            PoolThreads::enter(&q);
            PoolThreads::enter(&q);
            assert!(q.is_current());
            assert_eq!(q.alive(), 1);
        })
        .join()
        .expect("thread");
        assert!(!p.is_current());
        assert!(p.wait_alive(0, std::time::Duration::from_secs(20)));
    }
}
