//! The completion side: one reaper at a time.
//!
//! Owns taking completions off the ring and handing them to the caller:
//! in batches of up to [`BATCH`] copied out under a short lock, then passed
//! one by one to a caller-supplied closure with no lock held (so the
//! closure may push, cancel or wake), without allocating per completion.
//! Internal completions (wake-ups, the eventfd read) are consumed here and
//! never reach the closure; cancel results are reported as their own
//! [`Completion`] variants, never as [`Completion::Op`].
//!
//! This module must never let two threads reap at once (the [`Reaper`]
//! guard is the role), and never block in the kernel while holding the CQ
//! lock.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::types;
use parking_lot::MutexGuard;

use crate::ring::{Ring, RingStats};
use crate::submit::{thread_token, SubmitMode};
use crate::tag::Tag;

/// How many completions are copied out of the ring per lock.
pub const BATCH: usize = 64;

/// One completion reported to the caller. Results are the kernel's: a
/// count or value (`>= 0`) or `-errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Completion {
    /// A caller's operation finished (`-ECANCELED` if it was cancelled).
    Op {
        /// The user_data it was pushed with.
        user_data: u64,
        /// Bytes, fd, 0, or `-errno`.
        result: i32,
    },
    /// A [`Ring::cancel`] finished: `0` the target was found and cancelled
    /// (its own completion follows or has come, usually `-ECANCELED`);
    /// `-ENOENT` nothing with that user_data was in flight (it had
    /// completed, or never existed); `-EALREADY` the target was running and
    /// was asked to stop (it completes when it completes).
    Cancel {
        /// The user_data the cancel aimed at.
        target: u64,
        /// `0`, `-ENOENT`, `-EALREADY`, or another `-errno`.
        result: i32,
    },
    /// A [`Ring::cancel_fd`] finished: the number of operations cancelled
    /// (`0` if there were none: with `ALL` the kernel does not answer
    /// `-ENOENT`), or `-errno`.
    CancelFd {
        /// The fd it aimed at.
        fd: RawFd,
        /// Count cancelled (may be 0), or `-errno`.
        result: i32,
    },
}

/// What one reap or wait did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Completions passed to the closure.
    pub delivered: usize,
    /// A wake-up ([`Ring::wake`]) was consumed.
    pub woken: bool,
    /// The wait's timeout ran out.
    pub timed_out: bool,
}

impl Reaped {
    fn merge(&mut self, other: Reaped) {
        self.delivered += other.delivered;
        self.woken |= other.woken;
        self.timed_out |= other.timed_out;
    }

    fn done(&self) -> bool {
        self.delivered > 0 || self.woken || self.timed_out
    }
}

/// The right to reap a [`Ring`]'s completions; one exists at a time.
pub struct Reaper<'a> {
    ring: &'a Ring,
    _role: MutexGuard<'a, ()>,
}

impl std::fmt::Debug for Reaper<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper").field("ring", self.ring).finish()
    }
}

impl Ring {
    /// Becomes the reaper, waiting while another thread is.
    ///
    /// The reaper's thread owns what it submits (see [`crate::submit`]): in
    /// [`SubmitMode::Owner`] it submits for every thread, so it must outlive
    /// the operations.
    pub fn reaper(&self) -> Reaper<'_> {
        Reaper::new(self, self.reaper_role.lock())
    }

    /// Becomes the reaper if nobody is.
    pub fn try_reaper(&self) -> Option<Reaper<'_>> {
        Some(Reaper::new(self, self.reaper_role.try_lock()?))
    }

    /// Copies up to `BATCH` completions out, the backlog first.
    fn take_batch(&self, out: &mut [(u64, i32); BATCH]) -> usize {
        let mut backlog = self.cq.lock();
        let mut n = 0;
        while n < BATCH {
            match backlog.pop_front() {
                Some(c) => {
                    out[n] = c;
                    n += 1;
                }
                None => break,
            }
        }
        if n < BATCH {
            // SAFETY: the `cq` lock is held, so no other CompletionQueue exists.
            let mut cq = unsafe { self.uring.completion_shared() };
            for e in cq.by_ref().take(BATCH - n) {
                out[n] = (e.user_data(), e.result());
                n += 1;
            }
            // Dropping `cq` hands the consumed slots back to the kernel.
        }
        n
    }

    /// Reports everything available now. Caller holds the reaper role (or
    /// is the ring's drop).
    pub(crate) fn reap_available(&self, f: &mut dyn FnMut(Completion)) -> Reaped {
        self.reap_inner(f, true)
    }

    /// Reports the completions available now from a thread that is not
    /// this ring's reaper, when nobody holds the role (else `None`): for
    /// rescuing the completions of a ring whose reaper is busy elsewhere.
    /// Never blocks in the kernel, never re-arms the wake read and never
    /// submits (the next reaper does both); a wake-up consumed here is
    /// reported in [`Reaped::woken`], and the one who posted it must not
    /// depend on the eventfd alone to be seen.
    pub fn steal(&self, mut f: impl FnMut(Completion)) -> Option<Reaped> {
        let _role = self.reaper_role.try_lock()?;
        Some(self.reap_inner(&mut f, false))
    }

    fn reap_inner(&self, f: &mut dyn FnMut(Completion), reaper: bool) -> Reaped {
        let mut out = Reaped::default();
        let mut batch = [(0u64, 0i32); BATCH];
        let mut rearm = false;
        let mut flushed = false;
        loop {
            let n = self.take_batch(&mut batch);
            if n == 0 {
                if !flushed && self.flush_overflow() {
                    flushed = true;
                    continue;
                }
                break;
            }
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
            for &(user_data, result) in &batch[..n] {
                match Tag::decode(user_data) {
                    Tag::User(user_data) => {
                        out.delivered += 1;
                        let result = crate::faults::completion(self.fault_scope, result);
                        f(Completion::Op { user_data, result });
                    }
                    Tag::Cancel(target) => {
                        out.delivered += 1;
                        f(Completion::Cancel { target, result });
                    }
                    Tag::CancelFd(fd) => {
                        out.delivered += 1;
                        f(Completion::CancelFd { fd, result });
                    }
                    Tag::WakeNop => {
                        self.wake.consumed();
                        out.woken = true;
                    }
                    Tag::WakeEventFd => {
                        self.wake.armed.store(false, Ordering::Release);
                        out.woken |= self.wake.consumed();
                        if result < 0 && result != -libc::ECANCELED {
                            tracing::error!(
                                "tpio-uring: wake eventfd read failed: {}",
                                io::Error::from_raw_os_error(-result)
                            );
                        }
                        rearm = true;
                    }
                    Tag::CancelAny => {}
                    Tag::Unknown(v) => {
                        tracing::error!("tpio-uring: completion with unknown internal tag {v:#x}");
                    }
                }
            }
        }
        if !reaper {
            return out;
        }
        if rearm && !self.closing.load(Ordering::Acquire) {
            self.arm_eventfd();
        }
        if self.submit_mode == SubmitMode::Owner
            && self.submit_requested.load(Ordering::Acquire)
            && !self.closing.load(Ordering::Acquire)
        {
            // Submit what other threads queued, without waiting.
            self.owner_entering();
            let _ = self.enter(|u| u.submit());
            self.owner_entered();
        }
        out
    }

    /// Waits for at least one completion or wake-up, or the timeout.
    pub(crate) fn wait_inner(
        &self,
        timeout: Option<Duration>,
        f: &mut dyn FnMut(Completion),
    ) -> io::Result<Reaped> {
        // The ring's drop waits for internal operations too.
        let finished = |total: &Reaped| {
            total.done()
                || (self.closing.load(Ordering::Acquire)
                    && self.in_flight.load(Ordering::Acquire) == 0)
        };
        let mut total = self.reap_available(f);
        if finished(&total) {
            return Ok(total);
        }
        let deadline = timeout.map(|d| Instant::now() + d);
        loop {
            self.owner_entering();
            let res = match deadline {
                None => self.enter(|u| u.submit_and_wait(1)),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        total.timed_out = true;
                        return Ok(total);
                    }
                    if !self.features.ext_arg {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            "timed waits need IORING_FEAT_EXT_ARG (Linux 5.11)",
                        ));
                    }
                    let ts = types::Timespec::from(left);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.enter(|u| u.submitter().submit_with_args(1, &args))
                }
            };
            self.stats.wait_calls.fetch_add(1, Ordering::Relaxed);
            self.owner_entered();
            match res {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => total.timed_out = true,
                Err(e) if crate::ring::is_transient(&e) => std::thread::yield_now(),
                Err(e) => return Err(e),
            }
            total.merge(self.reap_available(f));
            if finished(&total) {
                return Ok(total);
            }
        }
    }
}

impl<'a> Reaper<'a> {
    fn new(ring: &'a Ring, role: MutexGuard<'a, ()>) -> Reaper<'a> {
        ring.owner.store(thread_token(), Ordering::Release);
        ring.arm_eventfd();
        if ring.submit_mode == SubmitMode::Owner {
            // Pushes made while nobody was reaping are waiting in the SQ.
            ring.submit_requested.store(true, Ordering::Release);
        }
        Reaper { ring, _role: role }
    }
}

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        self.ring.owner.store(0, Ordering::Release);
    }
}

impl Reaper<'_> {
    /// The ring this reaper drains.
    pub fn ring(&self) -> &Ring {
        self.ring
    }

    /// Reports every completion available now, without blocking.
    pub fn reap(&mut self, mut f: impl FnMut(Completion)) -> Reaped {
        self.ring.reap_available(&mut f)
    }

    /// Submits anything queued, then blocks until at least one completion
    /// was reported, a wake-up arrived, or `timeout` (if any) ran out;
    /// reports everything available before returning. Interrupted waits
    /// (`EINTR`) are resumed. A timeout needs Linux 5.11
    /// ([`crate::RingFeatures::ext_arg`]); otherwise it is `Unsupported`.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(Completion),
    ) -> io::Result<Reaped> {
        self.ring.wait_inner(timeout, &mut f)
    }

    /// The ring's counters.
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}
