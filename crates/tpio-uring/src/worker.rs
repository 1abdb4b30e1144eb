//! Worker rings: a ring of its own for each pool worker that issues I/O, so
//! the thread that submits an operation reaps its completion and runs its
//! callback, with no thread hand-off (as a Windows worker waits on the
//! completion port itself).
//!
//! Owns the per-thread ring, the [`Parker`] through which the pool parks
//! its worker in that ring, and the rescue of completions stuck behind a
//! busy worker. How it fits:
//!
//! * An operation pushed from a pool worker goes to that worker's ring
//!   ([`SubmitMode::Direct`]: the worker submits it at once, and the worker
//!   becomes its owner in the kernel); from any other thread, to the
//!   driver's shared ring and its thread, as before.
//! * An idle worker parks in [`WorkerParker::park`]: it waits in its ring,
//!   delivers what completes (the first callback that queues runs on this
//!   worker, see `tpio_core::parker`), and returns.
//! * The worker cannot exit while operations it submitted are in flight
//!   (the kernel would cancel them): [`Parker::may_exit`] says so.
//! * A worker busy in a long callback does not reap its ring. Its
//!   completions are still posted (the ring is cooperative, so the kernel
//!   finishes them at the worker's next system call, and wakes it for them
//!   if it sleeps, say blocked on a lock), and the driver's thread
//!   ([`rescue`]) reaps them after [`STUCK`] and hands them to the pool,
//!   so no completion waits on one busy callback — a callback that blocks
//!   on another operation of its own ring gets it a few ms late, not
//!   never. A callback that computes for long without any system
//!   call holds its ring's completions until it makes one or returns.
//! * Cancels reach a worker ring from any thread with one system call
//!   (`Ring::cancel_now`); worker rings are only made where that works.
//!
//! This module must never let a thread push to another thread's worker
//! ring (only cancels cross), and never let a worker exit with operations
//! of its own in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tpio_core::parker::{self, Parker};

use crate::driver::Shared;
use crate::reap::Completion;
use crate::ring::{Ring, RingBuilder};
use crate::submit::SubmitMode;
use crate::wake::WakeMode;

/// How long a worker may stay busy with completions waiting in its ring
/// before the driver's thread takes them.
pub(crate) const STUCK: Duration = Duration::from_millis(2);

/// Set to `0` to keep every operation on the shared ring (no worker rings):
/// for comparing the two designs.
pub const WORKER_RINGS_ENV: &str = "TPIO_URING_WORKER_RINGS";

/// Set to `0` to have a worker submit each operation as it is issued
/// instead of with its next park ([`crate::defer`]): for comparing the two.
pub const DEFER_ENV: &str = "TPIO_URING_DEFER";

fn defer_enabled() -> bool {
    std::env::var(DEFER_ENV).map_or(true, |v| v != "0")
}

/// SQ slots of a worker ring (its CQ has [`crate::driver`]'s minimum).
const WORKER_RING_ENTRIES: u32 = 256;

/// One worker's ring.
pub(crate) struct WorkerRing {
    pub(crate) ring: Ring,
    /// Operations this worker submitted whose packet is not delivered yet.
    ops: AtomicUsize,
    /// Bumped as the worker enters its ring (even: parked) and leaves it
    /// (odd: busy elsewhere); unchanged and odd across two [`rescue`]s
    /// means busy all that time.
    parks: AtomicU64,
    /// `parks` as the last rescue saw it (the rescuer's own).
    rescue_seen: AtomicU64,
    /// The pool worker that owns the ring: a [`rescue`] delivers for it.
    worker: std::sync::OnceLock<tpio_core::WorkerRef>,
}

impl WorkerRing {
    /// An operation was pushed to this ring.
    pub(crate) fn op_pushed(&self) {
        self.ops.fetch_add(1, Ordering::AcqRel);
    }

    /// An operation of this ring was delivered (or never made it in).
    pub(crate) fn op_done(&self) {
        self.ops.fetch_sub(1, Ordering::AcqRel);
    }

    /// Operations of this ring in flight.
    pub(crate) fn ops(&self) -> usize {
        self.ops.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for WorkerRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRing")
            .field("ops", &self.ops())
            .field("ring", &self.ring)
            .finish()
    }
}

/// The current thread's worker ring for the driver `shared`, made (and its
/// parker installed) on first use by a pool worker that has no parker yet.
/// `None` on any other thread, and on workers whose parker is another
/// driver's.
pub(crate) fn for_current_thread(shared: &Shared) -> Option<Arc<WorkerRing>> {
    if !shared.worker_rings {
        return None;
    }
    // The identity of `shared` cannot be reused while a worker ring of it
    // exists: its parker holds a `Weak`, which keeps the allocation.
    let me = shared as *const Shared as usize;
    parker::worker_slot(me, || {
        let strong = shared.me()?; // the driver is being dropped
        match make(&strong) {
            Ok((wr, p)) => {
                shared.register_worker(&wr);
                Some((wr, p))
            }
            Err(e) => {
                tracing::warn!(
                    "tpio-uring: no worker ring on this thread ({e}); using the shared ring"
                );
                None
            }
        }
    })
}

fn make(shared: &Arc<Shared>) -> std::io::Result<(Arc<WorkerRing>, Arc<dyn Parker>)> {
    let ring = RingBuilder::new(WORKER_RING_ENTRIES)
        .cq_entries(crate::driver::CANCEL_HASH_CQ)
        .submit_mode(SubmitMode::Direct)
        .wake_mode(WakeMode::EventFd)
        // A busy worker is not interrupted for each completion: the kernel
        // finishes them at its next system call (a worker asleep, even in
        // a blocked callback, is woken for them, so [`rescue`] sees them).
        .coop_taskrun(true)
        .build()?;
    if defer_enabled() {
        // `make` runs on the worker thread itself.
        ring.defer_for_current_thread();
    }
    if !ring.features().sync_cancel {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "worker rings need IORING_REGISTER_SYNC_CANCEL (Linux 6.0)",
        ));
    }
    let wr = Arc::new(WorkerRing {
        ring,
        ops: AtomicUsize::new(0),
        parks: AtomicU64::new(1),
        rescue_seen: AtomicU64::new(0),
        worker: std::sync::OnceLock::new(),
    });
    let p: Arc<dyn Parker> = Arc::new(WorkerParker {
        wr: wr.clone(),
        shared: Arc::downgrade(shared),
        watching: shared.watching_flag(),
        notified: AtomicBool::new(false),
    });
    if let Some(w) = parker::current_worker(&p) {
        let _ = wr.worker.set(w);
    }
    Ok((wr, p))
}

/// The pool's way to park a worker in its ring.
struct WorkerParker {
    wr: Arc<WorkerRing>,
    shared: Weak<Shared>,
    /// The driver's watching flag (read without reaching the driver).
    watching: Arc<parker::Watch>,
    /// Set by `unpark`: the eventfd's completion may be taken by a
    /// [`rescue`], so `park` looks here too.
    notified: AtomicBool,
}

impl Parker for WorkerParker {
    fn park(&self, timeout: Duration) {
        let wr = &self.wr;
        wr.parks.fetch_add(1, Ordering::AcqRel);
        let shared = self.shared.upgrade();
        {
            let mut reaper = wr.ring.reaper();
            let deadline = Instant::now() + timeout;
            loop {
                if self.notified.swap(false, Ordering::AcqRel) {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                let r = reaper.wait(Some(left), |c| {
                    if let Some(s) = &shared {
                        s.on_completion(c);
                    } else {
                        tracing::debug!(
                            "tpio-uring: completion after the driver was dropped: {c:?}"
                        );
                    }
                });
                match r {
                    Ok(r) if r.delivered > 0 || r.timed_out => break,
                    Ok(_) => {} // woken: look at `notified`
                    Err(e) => {
                        tracing::error!("tpio-uring: worker ring wait failed: {e}");
                        break;
                    }
                }
            }
        }
        // A wait that found completions waiting returns without entering
        // the kernel: hand over what the last callbacks issued.
        wr.ring.submit_deferred();
        wr.parks.fetch_add(1, Ordering::AcqRel);
    }

    fn flush(&self) {
        self.wr.ring.submit_deferred();
    }

    fn between_callbacks(&self) {
        self.wr.ring.submit_deferred_if_old();
    }

    fn unpark(&self) {
        self.notified.store(true, Ordering::Release);
        self.wr.ring.wake();
    }

    fn kept(&self) {
        if self.watching.is_on() {
            return; // the driver's thread is already looking
        }
        if let Some(s) = self.shared.upgrade() {
            s.start_watching();
        }
    }

    fn may_exit(&self) -> bool {
        self.wr.ops() == 0
    }

    fn outstanding(&self) -> usize {
        self.wr.ops()
    }
}

/// The driver thread's rescue, every [`STUCK`]: takes the completions
/// waiting in the rings of workers that stayed busy since the last rescue
/// (between one and two [`STUCK`]s) and delivers them for their worker
/// (their callbacks go to its own queue; the pool shares them with other
/// workers if it stays blocked). Returns whether any
/// worker ring has operations in flight (the driver thread then keeps
/// waking up to look).
pub(crate) fn rescue(shared: &Shared, rings: &[Weak<WorkerRing>]) -> bool {
    let mut any = false;
    for w in rings {
        let Some(wr) = w.upgrade() else { continue };
        if wr.ops() == 0 {
            continue;
        }
        any = true;
        let parks = wr.parks.load(Ordering::Acquire);
        let seen = wr.rescue_seen.swap(parks, Ordering::AcqRel);
        if parks % 2 == 0 || parks != seen {
            continue; // parked, or it has been back to its ring since
        }
        // Its operations waiting for its next enter go to the kernel from
        // this (long-lived) thread.
        wr.ring.submit_deferred();
        // Their callbacks go to the worker's own queue: it runs them when
        // it is free (each chain keeps to its worker), and if it stays
        // blocked the pool's rescue shares them.
        let stolen = parker::deliver_for(wr.worker.get(), || {
            wr.ring.steal(|c| shared.on_completion(c))
        });
        if let Some(r) = stolen {
            if r.delivered > 0 {
                tracing::trace!(
                    delivered = r.delivered,
                    "tpio-uring: took completions from a busy worker's ring"
                );
            }
        }
    }
    any
}

/// Logs a cancel's own completion if it failed unexpectedly (from a worker
/// ring or the shared ring).
pub(crate) fn log_cancel(c: Completion) {
    if let Completion::Cancel { target, result } = c {
        if result != 0 && result != -libc::ENOENT && result != -libc::EALREADY {
            tracing::warn!("tpio-uring: cancel of {target} failed: {result}");
        }
    }
}
