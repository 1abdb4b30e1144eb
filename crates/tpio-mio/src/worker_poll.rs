//! Worker polls: a `mio::Poll` of its own for each pool worker that waits
//! on a descriptor, so the worker that issued an operation retries it on
//! readiness and runs its callback, with no hand-off to the poller thread
//! (as a Windows worker waits on the completion port itself).
//!
//! Owns the per-thread poll, the [`Parker`] through which the pool parks its
//! worker in that poll, and the rescue of readiness that a busy worker
//! cannot see. How it fits:
//!
//! * An operation that would block, issued on a pool worker, waits in that
//!   worker's poll: its descriptor's registration is made there, or moved
//!   there if nothing else waits on it (one with operations waiting stays
//!   where it is); from any other thread, in the poller thread's.
//! * An idle worker parks in [`WorkerParker::park`]: it waits in its poll,
//!   retries the operations of the descriptors that became ready, delivers
//!   what finished (the first callback that queues runs on this worker, see
//!   `tpio_core::parker`), and returns.
//! * A worker cannot exit while operations wait in its poll (their
//!   readiness would go unseen): [`Parker::may_exit`] says so, and drops
//!   the registrations of idle descriptors (kept for their handles) first.
//! * A worker busy in a long callback does not look at its poll. The poller
//!   thread ([`rescue`]), which wakes every [`STUCK`] while operations wait
//!   in any worker poll, polls the poll of a worker that stayed busy since
//!   its last look and handles what is ready for that worker (the
//!   callbacks go to its own queue, which the pool shares with the other
//!   workers if it stays blocked), so a callback that blocks on another
//!   operation of its own poll gets it a few ms late, not never.
//!
//! This module must never block while holding a descriptor's queue lock and
//! never let a worker exit with descriptors registered in its poll.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use mio::{Events, Poll, Waker};
use parking_lot::Mutex;
use tpio_core::parker::{self, Parker};

use crate::driver::Shared;
use crate::slot::{Reg, WAKE};

/// How often the poller thread looks at busy workers' polls.
pub(crate) const STUCK: Duration = Duration::from_millis(2);

/// Set to `0` to keep every descriptor on the poller thread (no worker
/// polls): for comparing the two designs.
pub const WORKER_POLLS_ENV: &str = "TPIO_MIO_WORKER_POLLS";

/// Events taken per poll.
const EVENTS: usize = 64;

/// One worker's poll.
pub(crate) struct WorkerPoll {
    /// The poll and its event buffer; held by the worker while it waits in
    /// it, and by a rescue while it looks.
    poll: Mutex<(Poll, Events)>,
    pub(crate) reg: Arc<Reg>,
    waker: Waker,
    /// Bumped as the worker enters its poll (even: parked) and leaves it
    /// (odd: busy elsewhere).
    parks: AtomicU64,
    /// `parks` as the last rescue saw it (the rescuer's own).
    rescue_seen: AtomicU64,
    /// The pool worker that owns the poll: a [`rescue`] delivers for it.
    worker: std::sync::OnceLock<tpio_core::WorkerRef>,
}

impl std::fmt::Debug for WorkerPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPoll")
            .field("registered", &self.reg.registered())
            .finish()
    }
}

/// The worker poll of the current thread for driver `shared` (made, and its
/// parker installed, on first use by a pool worker without a parker), else
/// `None` (the poller thread's registry is used).
pub(crate) fn for_current_thread(shared: &Shared) -> Option<Arc<WorkerPoll>> {
    if !shared.worker_polls {
        return None;
    }
    // The identity of `shared` cannot be reused while a worker poll of it
    // exists: its parker holds a `Weak`, which keeps the allocation.
    let me = shared as *const Shared as usize;
    parker::worker_slot(me, || {
        let strong = shared.me()?; // the driver is being dropped
        match make(&strong) {
            Ok((wp, p)) => {
                shared.register_worker(&wp);
                Some((wp, p))
            }
            Err(e) => {
                tracing::warn!("tpio-mio: no worker poll on this thread ({e}); using the poller's");
                None
            }
        }
    })
}

fn make(shared: &Arc<Shared>) -> io::Result<(Arc<WorkerPoll>, Arc<dyn Parker>)> {
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let wp = Arc::new(WorkerPoll {
        poll: Mutex::new((poll, Events::with_capacity(EVENTS))),
        reg: Arc::new(Reg::new(registry)),
        waker,
        parks: AtomicU64::new(1),
        rescue_seen: AtomicU64::new(0),
        worker: std::sync::OnceLock::new(),
    });
    let p: Arc<dyn Parker> = Arc::new(WorkerParker {
        wp: wp.clone(),
        shared: Arc::downgrade(shared),
        watching: shared.watching_flag(),
        notified: AtomicBool::new(false),
    });
    if let Some(w) = parker::current_worker(&p) {
        let _ = wp.worker.set(w);
    }
    Ok((wp, p))
}

/// Takes what is ready in a worker's poll (waiting up to `timeout`), and
/// hands each ready descriptor to the driver (`None`: the driver is gone,
/// only wake-ups can come). Returns how many descriptors were ready.
/// Caller holds the poll's lock.
fn poll_once(
    shared: Option<&Shared>,
    guard: &mut (Poll, Events),
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let (poll, events) = guard;
    if let Err(e) = poll.poll(events, timeout) {
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        return Ok(0);
    }
    let mut ready = 0;
    for ev in events.iter() {
        if ev.token() == WAKE {
            continue;
        }
        ready += 1;
        if let Some(s) = shared {
            let (r, w) = readiness(ev);
            s.on_ready(ev.token().0 as RawFd, r, w);
        }
    }
    Ok(ready)
}

/// What an event says may be ready: (readable, writable). An error or a
/// hang-up makes both worth a try (the try reports it).
pub(crate) fn readiness(ev: &mio::event::Event) -> (bool, bool) {
    let bad = ev.is_error();
    (
        bad || ev.is_readable() || ev.is_read_closed(),
        bad || ev.is_writable() || ev.is_write_closed(),
    )
}

/// The pool's way to park a worker in its poll.
struct WorkerParker {
    wp: Arc<WorkerPoll>,
    shared: Weak<Shared>,
    /// The driver's watching flag (read without reaching the driver).
    watching: Arc<parker::Watch>,
    /// Set by `unpark`: a rescue may take the waker's event, so `park`
    /// looks here too.
    notified: AtomicBool,
}

impl Parker for WorkerParker {
    fn park(&self, timeout: Duration) {
        let wp = &self.wp;
        wp.parks.fetch_add(1, Ordering::AcqRel);
        // Gone once the driver is: then only wake-ups come.
        let shared = self.shared.upgrade();
        let mut guard = wp.poll.lock();
        if !self.notified.swap(false, Ordering::AcqRel) {
            if let Err(e) = poll_once(shared.as_deref(), &mut guard, Some(timeout)) {
                tracing::error!("tpio-mio: worker poll failed: {e}");
            }
        }
        self.notified.store(false, Ordering::Release);
        drop(guard);
        wp.parks.fetch_add(1, Ordering::AcqRel);
    }

    fn unpark(&self) {
        self.notified.store(true, Ordering::Release);
        if let Err(e) = self.wp.waker.wake() {
            tracing::error!("tpio-mio: cannot wake a worker: {e}");
        }
    }

    fn kept(&self) {
        if self.watching.is_on() {
            return;
        }
        if let Some(s) = self.shared.upgrade() {
            s.start_watching();
        }
    }

    fn outstanding(&self) -> usize {
        self.wp.reg.active()
    }

    fn may_exit(&self) -> bool {
        let reg = &self.wp.reg;
        if reg.active() > 0 {
            return false; // operations wait in this poll
        }
        if reg.registered() > 0 {
            // Registrations kept for idle handles go; they come back where
            // their next wait is issued.
            if let Some(s) = self.shared.upgrade() {
                s.release_idle(reg);
            }
        }
        reg.registered() == 0
    }
}

/// The poller thread's rescue, every [`STUCK`]: looks at the polls of the
/// workers that stayed busy since the last rescue and handles what is ready
/// there. Returns whether operations wait in any worker poll (the poller
/// then keeps waking up to look).
pub(crate) fn rescue(shared: &Shared, polls: &[Weak<WorkerPoll>]) -> bool {
    let mut any = false;
    for w in polls {
        let Some(wp) = w.upgrade() else { continue };
        if wp.reg.active() == 0 {
            continue;
        }
        any = true;
        let parks = wp.parks.load(Ordering::Acquire);
        let seen = wp.rescue_seen.swap(parks, Ordering::AcqRel);
        if parks % 2 == 0 || parks != seen {
            continue; // parked, or it has been back to its poll since
        }
        let Some(mut guard) = wp.poll.try_lock() else {
            continue;
        };
        // The callbacks go to the worker's own queue (see
        // `tpio_core::parker::deliver_for`).
        let polled = parker::deliver_for(wp.worker.get(), || {
            poll_once(Some(shared), &mut guard, Some(Duration::ZERO))
        });
        match polled {
            Ok(ready) if ready > 0 => {
                tracing::trace!(ready, "tpio-mio: handled readiness of a busy worker's poll");
            }
            Ok(_) => {}
            Err(e) => tracing::error!("tpio-mio: rescue poll failed: {e}"),
        }
        drop(guard);
    }
    any
}
