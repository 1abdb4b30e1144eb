//! Deferred submission: a worker's operations wait in its ring's SQ until
//! the worker enters the kernel anyway (to park), so a batch of callbacks
//! that each issue an operation costs one `io_uring_enter`, not one each —
//! as an event loop registers interest when it next polls.
//!
//! Owns the rule of who may enter a ring whose owner defers, because on
//! Linux the thread that submits an operation becomes its owner in the
//! kernel (see [`crate::submit`]):
//!
//! * The deferring thread (the ring's worker) pushes without entering; its
//!   next enter — the park's wait, a cancel, an SQ that is full — submits
//!   them all, and so does [`Ring::submit_deferred`].
//! * A push that leaves [`DEFER_MAX`] entries waiting submits at once, so
//!   a worker that never parks (its pool's queue never empties) still hands
//!   its operations over in bounded batches; and between two callbacks the
//!   worker submits what has waited [`DEFER_AGE`] or more
//!   ([`Ring::submit_deferred_if_old`]), so a run of callbacks holds an
//!   operation back for at most that plus one callback.
//! * Before the worker blocks anywhere else in tpio (a wait of its own, a
//!   blocking call) the core calls its parker's `flush`, which submits.
//! * A worker busy in a long callback is covered by the driver thread's
//!   rescue ([`crate::worker::rescue`]), which submits for it: the driver
//!   thread lives as long as the driver, so those operations are safe.
//! * Any other thread never enters the ring: its cancels queue behind the
//!   worker's operations and wait until someone submits them (a foreign
//!   enter would make the worker's operations that thread's, to be
//!   cancelled by the kernel when it exits).
//!
//! This module must never let a thread other than the owner or the
//! driver's thread submit a deferring ring's operations.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::ring::Ring;
use crate::submit::{thread_token, SubmitMode};

/// Entries a deferring thread may leave in the SQ before a push submits.
pub(crate) const DEFER_MAX: usize = 32;

/// How long an entry may wait in the SQ for its worker's park before the
/// worker, between two callbacks, submits it anyway. Long enough not to
/// split the batches of a busy worker (W1: 32 callbacks take 30–50 µs; at
/// 50 µs `io_uring_enter` per read went 0.14 → 0.27), short against the
/// driver's rescue (2–4 ms).
pub(crate) const DEFER_AGE: Duration = Duration::from_micros(200);

/// Nanoseconds on a process-wide monotonic clock (never 0).
pub(crate) fn clock() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    (base.elapsed().as_nanos() as u64).max(1)
}

impl Ring {
    /// From now on, the operations the calling thread pushes on this
    /// [`SubmitMode::Direct`] ring wait for its next enter, and no other
    /// thread submits on it except through [`Ring::submit_deferred`]. See
    /// the [module docs](self).
    pub(crate) fn defer_for_current_thread(&self) {
        debug_assert_eq!(self.submit_mode, SubmitMode::Direct);
        self.defer_owner.store(thread_token(), Ordering::Release);
    }

    /// For a push: whether the calling thread may enter the kernel with
    /// submissions, and whether a caller's operations should wait instead.
    pub(crate) fn submit_here_or_defer(&self, user: bool) -> (bool, bool) {
        let owner = self.defer_owner.load(Ordering::Relaxed);
        if owner == 0 {
            return (self.may_submit_here(), false);
        }
        if owner != thread_token() {
            return (false, false);
        }
        (
            true,
            user && self.deferred.load(Ordering::Relaxed) < DEFER_MAX,
        )
    }

    /// Whether the calling thread's pushes on this ring wait for its next
    /// enter (it is the ring's deferring owner).
    pub(crate) fn defers_for_current_thread(&self) -> bool {
        let owner = self.defer_owner.load(Ordering::Relaxed);
        owner != 0 && owner == thread_token()
    }

    /// Whether operations wait in the SQ for a deferring owner's enter.
    pub fn has_deferred(&self) -> bool {
        self.deferred.load(Ordering::Acquire) != 0
    }

    /// [`Ring::submit_deferred`] if the oldest entry waiting has waited
    /// [`DEFER_AGE`] or more. For the deferring owner, between callbacks.
    pub(crate) fn submit_deferred_if_old(&self) -> bool {
        if !self.has_deferred() {
            return false;
        }
        let since = self.deferred_since.load(Ordering::Relaxed);
        if clock().saturating_sub(since) < DEFER_AGE.as_nanos() as u64 {
            return false;
        }
        self.submit_deferred()
    }

    /// Submits what a deferring owner left in the SQ. Only for the owner
    /// and for the driver's thread (see the [module docs](self)). Returns
    /// whether there was anything.
    pub(crate) fn submit_deferred(&self) -> bool {
        if !self.has_deferred() {
            return false;
        }
        if self.submit_queued() {
            self.wake();
        }
        // Cancellers queued behind these wait for them to reach the kernel.
        self.owner_entered();
        true
    }
}
