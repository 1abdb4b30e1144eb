//! One io_uring instance shared between threads.
//!
//! Owns the ring's two queues and who may touch them:
//!
//! * the submission queue sits behind a mutex; any thread may push, one
//!   entry or a batch under one lock, followed by one `io_uring_enter`;
//! * the completion queue sits behind a second, short-held mutex; the
//!   [`crate::Reaper`] role (one thread at a time) takes entries from it.
//!
//! A full SQ is back-pressure, never an error: the pusher submits what is
//! queued and retries; if the kernel cannot take more because the CQ is
//! overflowing, the pusher moves completions into a backlog (a reused
//! `VecDeque`, no allocation per completion in the steady state) that the
//! reaper drains first, then wakes the reaper. Transient submit errors
//! (`EAGAIN`, `EBUSY`, `ENOMEM`) are back-pressure too: retried, and an
//! entry that is queued waits for the next `io_uring_enter` that works.
//! Only when [`TRANSIENT_RETRIES`] submitting enters in a row have failed
//! (the kernel keeps refusing) is a new operation refused, before anything
//! of it is queued ([`SubmitError::Os`]): an entry in the SQ cannot be
//! taken back, so refusing is decided before the push, never after.
//!
//! This module must never report a completion itself, never block a pusher
//! on the reaper, and never free memory the kernel may still write: dropping
//! a [`Ring`] cancels what is in flight and waits for every completion.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::SubmitError;
use crate::faults;
use crate::op::{Sqe, CURRENT_POSITION};
use crate::submit::{thread_token, SubmitMode};
use crate::tag::{self, Tag};
use crate::wake::{Wake, WakeMode};

/// How many times a submit that fails with a transient error (`EAGAIN`,
/// `EBUSY`, `ENOMEM`) is retried before the entries are left queued for the
/// next `io_uring_enter`; and how many submitting enters in a row must fail
/// before new operations are refused ([`Ring::push`]).
pub(crate) const TRANSIENT_RETRIES: u32 = 1000;

/// Builds a [`Ring`].
#[derive(Clone, Debug)]
pub struct RingBuilder {
    entries: u32,
    cq_entries: Option<u32>,
    wake_mode: WakeMode,
    submit_mode: SubmitMode,
    coop: Option<bool>,
}

impl RingBuilder {
    /// A ring with `entries` submission slots (rounded up to a power of two
    /// and clamped by the kernel); the CQ gets twice as many by default.
    pub fn new(entries: u32) -> RingBuilder {
        RingBuilder {
            entries,
            cq_entries: None,
            wake_mode: WakeMode::default(),
            submit_mode: SubmitMode::default(),
            coop: None,
        }
    }

    /// Asks for cooperative task running (`IORING_SETUP_COOP_TASKRUN`,
    /// 5.19; dropped silently where the kernel lacks it): completion work
    /// of operations this ring's submitters own runs when they next enter
    /// the kernel, instead of interrupting them with an IPI (a sleeping
    /// submitter is still woken). Default: on in [`SubmitMode::Owner`].
    #[must_use]
    pub fn coop_taskrun(mut self, on: bool) -> RingBuilder {
        self.coop = Some(on);
        self
    }

    /// Sets the completion queue's size (at least the SQ's).
    #[must_use]
    pub fn cq_entries(mut self, n: u32) -> RingBuilder {
        self.cq_entries = Some(n);
        self
    }

    /// Chooses how [`Ring::wake`] reaches the reaper (see [`crate::wake`]).
    #[must_use]
    pub fn wake_mode(mut self, mode: WakeMode) -> RingBuilder {
        self.wake_mode = mode;
        self
    }

    /// Chooses which thread submits to the kernel (see [`crate::submit`]).
    /// [`SubmitMode::Owner`] implies [`WakeMode::EventFd`].
    #[must_use]
    pub fn submit_mode(mut self, mode: SubmitMode) -> RingBuilder {
        self.submit_mode = mode;
        self
    }

    /// Sets the ring up. Does not consult [`crate::probe`]'s environment
    /// switch: whether to use io_uring at all is the caller's choice.
    pub fn build(self) -> io::Result<Ring> {
        let setup = |submit_all: bool, coop: bool| {
            let mut b = IoUring::builder();
            b.setup_clamp();
            if let Some(n) = self.cq_entries {
                b.setup_cqsize(n.max(self.entries));
            }
            if submit_all {
                b.setup_submit_all();
            }
            if coop {
                b.setup_coop_taskrun();
            }
            if let SubmitMode::SqPoll { idle } = self.submit_mode {
                b.setup_sqpoll(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX).max(1));
            }
            b.build(self.entries)
        };
        let coop_wanted = self.coop.unwrap_or(self.submit_mode == SubmitMode::Owner);
        let mut tries = vec![(true, coop_wanted), (true, false), (false, false)];
        tries.dedup();
        let mut last = None;
        let mut built = None;
        for (submit_all, coop) in tries {
            match setup(submit_all, coop) {
                Ok(r) => {
                    built = Some((r, submit_all, coop));
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        let Some((uring, submit_all, coop_taskrun)) = built else {
            return Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)));
        };
        let features = RingFeatures {
            cancel_fd_all: crate::probe::cancel_fd_all_supported(),
            sync_cancel: crate::cancel::sync_cancel_supported(&uring),
            ext_arg: uring.params().is_feature_ext_arg(),
            nodrop: uring.params().is_feature_nodrop(),
            submit_all,
            coop_taskrun,
            sq_entries: uring.params().sq_entries(),
            cq_entries: uring.params().cq_entries(),
        };
        let wake_mode = match self.submit_mode {
            SubmitMode::Owner => WakeMode::EventFd,
            _ => self.wake_mode,
        };
        Ok(Ring {
            uring,
            submit_mode: self.submit_mode,
            owner: AtomicU64::new(0),
            submit_requested: AtomicBool::new(false),
            sq_space: Condvar::new(),
            sq_waiters: AtomicUsize::new(0),
            pushed: AtomicU64::new(0),
            last_op: AtomicU64::new(0),
            sq_lock: Mutex::new(()),
            cq: Mutex::new(VecDeque::new()),
            reaper_role: Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            enter_failures: AtomicU32::new(0),
            enter_errno: AtomicI32::new(0),
            fault_scope: faults::Scope::now(),
            closing: AtomicBool::new(false),
            wake: Wake::new(wake_mode)?,
            features,
            stats: Counters::default(),
            defer_owner: AtomicU64::new(0),
            deferred: AtomicUsize::new(0),
            deferred_since: AtomicU64::new(0),
        })
    }
}

/// What this ring can do, fixed at setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFeatures {
    /// [`Ring::cancel_fd`] works (Linux 5.19+, found by trying).
    pub cancel_fd_all: bool,
    /// [`Ring::cancel_now`] works (`IORING_REGISTER_SYNC_CANCEL`, Linux
    /// 6.0+, found by trying on this ring).
    pub sync_cancel: bool,
    /// Timed waits work (`IORING_FEAT_EXT_ARG`, 5.11+).
    pub ext_arg: bool,
    /// The kernel never drops a CQE on overflow (`IORING_FEAT_NODROP`, 5.5+).
    pub nodrop: bool,
    /// `IORING_SETUP_SUBMIT_ALL` is on: one bad SQE does not stop a batch.
    pub submit_all: bool,
    /// `IORING_SETUP_COOP_TASKRUN` is on (owner mode, 5.19+): completion
    /// work is run when the owner enters the kernel, with no IPI.
    pub coop_taskrun: bool,
    /// Submission queue slots.
    pub sq_entries: u32,
    /// Completion queue slots.
    pub cq_entries: u32,
}

/// Counters, for tests, diagnostics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// `io_uring_enter` calls made to submit (not counting waits).
    pub submit_calls: u64,
    /// `io_uring_enter` calls made by the reaper to wait.
    pub wait_calls: u64,
    /// Times a push found the SQ full.
    pub sq_full: u64,
    /// Times a pusher moved completions into the backlog.
    pub cq_drains: u64,
    /// Wake-ups posted.
    pub wakes_posted: u64,
    /// Wake-ups absorbed by one already in flight.
    pub wakes_coalesced: u64,
    /// Operations pushed whose completion has not been reaped yet,
    /// including cancels and wake NOPs but not the wake eventfd's armed read.
    pub in_flight: usize,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submit_calls: AtomicU64,
    pub(crate) wait_calls: AtomicU64,
    pub(crate) sq_full: AtomicU64,
    pub(crate) cq_drains: AtomicU64,
    pub(crate) wakes_posted: AtomicU64,
    pub(crate) wakes_coalesced: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One io_uring shared between threads. See the [module docs](self).
///
/// Operations are identified by a caller-chosen `user_data` up to
/// [`crate::USER_DATA_MAX`]; the top two bits are the ring's own.
pub struct Ring {
    pub(crate) uring: IoUring,
    pub(crate) submit_mode: SubmitMode,
    /// [`thread_token`] of the reaper thread (0: none), for [`SubmitMode::Owner`].
    pub(crate) owner: AtomicU64,
    /// A non-owner pushed and asked the owner to submit; not yet done.
    pub(crate) submit_requested: AtomicBool,
    /// Signalled after the owner submitted, for pushers facing a full SQ.
    sq_space: Condvar,
    sq_waiters: AtomicUsize,
    /// Entries ever pushed (written under `sq_lock`); `pushed - sq.len()`
    /// is how many the kernel has taken.
    pushed: AtomicU64,
    /// `pushed` just after the last entry that is not a cancel.
    last_op: AtomicU64,
    /// Guards `uring.submission_shared()`.
    sq_lock: Mutex<()>,
    /// Guards `uring.completion_shared()`; holds completions moved out of a
    /// full CQ by pushers, which the reaper reports before the CQ's.
    pub(crate) cq: Mutex<VecDeque<(u64, i32)>>,
    /// Held by the one [`crate::Reaper`].
    pub(crate) reaper_role: Mutex<()>,
    /// Entries pushed whose CQE has not been reaped.
    pub(crate) in_flight: AtomicUsize,
    /// Submitting `io_uring_enter` calls that failed in a row (0 after one
    /// that worked), and the last one's errno.
    enter_failures: AtomicU32,
    enter_errno: AtomicI32,
    /// The fault-injection plan this ring belongs to (empty without the
    /// `fault-injection` feature).
    pub(crate) fault_scope: faults::Scope,
    /// Set by drop: stop re-arming the eventfd read.
    pub(crate) closing: AtomicBool,
    pub(crate) wake: Wake,
    pub(crate) features: RingFeatures,
    pub(crate) stats: Counters,
    /// Deferred submission ([`crate::defer`]): the [`thread_token`] of the
    /// one thread whose operations wait in the SQ until it parks (0: none).
    pub(crate) defer_owner: AtomicU64,
    /// Entries that thread pushed since the last enter (which took them).
    pub(crate) deferred: AtomicUsize,
    /// When the first of them was pushed ([`crate::defer`]'s clock).
    pub(crate) deferred_since: AtomicU64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("fd", &self.uring.as_raw_fd())
            .field("features", &self.features)
            .field("wake_mode", &self.wake.mode)
            .field("submit_mode", &self.submit_mode)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Ring {
    /// A ring with `entries` SQ slots and the default settings.
    pub fn new(entries: u32) -> io::Result<Ring> {
        RingBuilder::new(entries).build()
    }

    /// What this ring can do.
    pub fn features(&self) -> RingFeatures {
        self.features
    }

    /// Which thread submits.
    pub fn submit_mode(&self) -> SubmitMode {
        self.submit_mode
    }

    /// How wake-ups are delivered.
    pub fn wake_mode(&self) -> WakeMode {
        self.wake.mode
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RingStats {
        let s = &self.stats;
        RingStats {
            submit_calls: s.submit_calls.load(Ordering::Relaxed),
            wait_calls: s.wait_calls.load(Ordering::Relaxed),
            sq_full: s.sq_full.load(Ordering::Relaxed),
            cq_drains: s.cq_drains.load(Ordering::Relaxed),
            wakes_posted: s.wakes_posted.load(Ordering::Relaxed),
            wakes_coalesced: s.wakes_coalesced.load(Ordering::Relaxed),
            in_flight: self
                .in_flight
                .load(Ordering::Relaxed)
                .saturating_sub(usize::from(self.wake.armed.load(Ordering::Relaxed))),
        }
    }

    /// Queues one operation and submits it.
    ///
    /// Never fails for lack of room: a full SQ is waited out (see the
    /// module docs). Fails, and then queues nothing, if `user_data` is
    /// reserved, or with [`SubmitError::Os`] when the kernel keeps refusing
    /// submissions (the last [`TRANSIENT_RETRIES`] submitting enters failed
    /// and one more attempt — this thread's enter, or a wake of the owner —
    /// did not get through). The operation's completion is reported once,
    /// by the reaper, as [`crate::Completion::Op`] with this `user_data`.
    ///
    /// # Safety
    ///
    /// Every pointer in `sqe` must stay valid (and, for memory the kernel
    /// writes, unaliased by Rust references) until this operation's
    /// completion has been reaped; the fd must stay open until then or the
    /// operation may act on whatever file reuses its number.
    pub unsafe fn push(&self, user_data: u64, sqe: Sqe) -> Result<(), SubmitError> {
        if !tag::is_user(user_data) {
            return Err(SubmitError::ReservedUserData(user_data));
        }
        let entry = sqe.0.user_data(user_data);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.push_entries_as(1, |_| entry.clone(), Entries::User) }
            .map_err(SubmitError::Os)
    }

    /// Queues many operations under one lock and submits them with one
    /// `io_uring_enter` (more only when they do not fit in the SQ).
    ///
    /// All or nothing: if any `user_data` is reserved, or the kernel keeps
    /// refusing submissions when the batch starts (as for [`Ring::push`]),
    /// nothing is queued; once its first entry is queued, the rest wait for
    /// room.
    ///
    /// # Safety
    ///
    /// As for [`Ring::push`], for every operation.
    pub unsafe fn push_batch(&self, ops: &[(u64, Sqe)]) -> Result<(), SubmitError> {
        if let Some(&(bad, _)) = ops.iter().find(|(ud, _)| !tag::is_user(*ud)) {
            return Err(SubmitError::ReservedUserData(bad));
        }
        // SAFETY: forwarded from this function's contract.
        unsafe {
            self.push_entries_as(
                ops.len(),
                |i| ops[i].1 .0.clone().user_data(ops[i].0),
                Entries::User,
            )
        }
        .map_err(SubmitError::Os)
    }

    /// Makes the reaper's current wait return, or its next one if it is not
    /// waiting. Cheap when a wake-up is already in flight (coalesced).
    pub fn wake(&self) {
        if !self.wake.claim() {
            bump(&self.stats.wakes_coalesced);
            return;
        }
        bump(&self.stats.wakes_posted);
        match self.wake.mode {
            WakeMode::EventFd => self.poke_eventfd(),
            WakeMode::Nop => {
                let nop = opcode::Nop::new().build().user_data(Tag::WakeNop.encode());
                // SAFETY: a NOP reads and writes no memory.
                unsafe { self.push_entries(1, |_| nop.clone()) };
            }
        }
    }

    /// Adds 1 to the wake eventfd, completing the armed read.
    fn poke_eventfd(&self) {
        let Some(efd) = &self.wake.eventfd else {
            return;
        };
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an fd we own.
        let n = unsafe { libc::write(efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n != 8 {
            // EAGAIN means the counter is saturated: the armed read will
            // certainly complete, so nothing is lost.
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EAGAIN) {
                tracing::error!("tpio-uring: eventfd write failed: {e}");
            }
        }
    }

    /// Owner mode, from a non-owner: asks the owner to submit.
    pub(crate) fn request_submit(&self) {
        if !self.submit_requested.swap(true, Ordering::AcqRel) {
            self.poke_eventfd();
        }
    }

    /// Owner mode: the owner is about to enter the kernel, which submits
    /// everything queued so far.
    pub(crate) fn owner_entering(&self) {
        // A swap, not a store: reading the pusher's `true` (an RMW chain)
        // makes its published SQ tail visible before this enter.
        self.submit_requested.swap(false, Ordering::AcqRel);
    }

    /// The owner submitted: pushers waiting for SQ room may retry.
    pub(crate) fn owner_entered(&self) {
        if self.sq_waiters.load(Ordering::Acquire) > 0 {
            let _g = self.sq_lock.lock();
            self.sq_space.notify_all();
        }
    }

    /// Whether this thread may enter the kernel with submissions.
    pub(crate) fn may_submit_here(&self) -> bool {
        match self.submit_mode {
            SubmitMode::Direct | SubmitMode::SqPoll { .. } => true,
            SubmitMode::Owner => self.owner.load(Ordering::Acquire) == thread_token(),
        }
    }

    /// Arms the read on the wake eventfd unless it is armed. Called by the
    /// reaper, so the read belongs to the reaper's thread.
    pub(crate) fn arm_eventfd(&self) {
        let Some(efd) = &self.wake.eventfd else {
            return;
        };
        if self.wake.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let read = opcode::Read::new(types::Fd(efd.as_raw_fd()), self.wake.buf.as_mut_ptr(), 8)
            .offset(CURRENT_POSITION)
            .build()
            .user_data(Tag::WakeEventFd.encode());
        // SAFETY: the buffer is the ring's own 8-byte heap cell, which lives
        // until the ring is dropped, and drop waits for this read to complete
        // (in_flight counts it). Only one read is armed at a time: it is
        // re-armed only after its completion was reaped.
        unsafe { self.push_entries(1, |_| read.clone()) };
    }

    /// Pushes `n` entries (already carrying their user_data) and submits.
    ///
    /// # Safety
    ///
    /// Each entry's memory must stay valid until its completion is reaped.
    pub(crate) unsafe fn push_entries(&self, n: usize, entry: impl FnMut(usize) -> squeue::Entry) {
        // SAFETY: forwarded. Internal entries are never refused.
        let _ = unsafe { self.push_entries_as(n, entry, Entries::Internal) };
    }

    /// Pushes `n` cancel requests and returns only once the kernel has
    /// taken them (and so every operation pushed before them): a cancel
    /// that sat in the SQ could let its target complete normally with data
    /// that arrives after the canceller returned, which Windows never does
    /// for a cancellable operation. In owner mode a non-owner submits the
    /// cancels itself when nothing but cancels waits in the SQ (a cancel
    /// runs during submission, so it does not matter which thread entered),
    /// and otherwise waits for the owner to submit.
    ///
    /// # Safety
    ///
    /// The entries must be cancels (they reference no memory).
    pub(crate) unsafe fn push_cancels(&self, n: usize, entry: impl FnMut(usize) -> squeue::Entry) {
        // SAFETY: cancels reference no memory of the caller's; they are
        // never refused.
        let _ = unsafe { self.push_entries_as(n, entry, Entries::Cancels) };
    }

    /// One submitting `io_uring_enter` (through the fault-injection hook),
    /// keeping count of failures in a row: `ETIME` (a timed wait ran out)
    /// and `EINTR` are not failures.
    pub(crate) fn enter(&self, f: impl FnOnce(&IoUring) -> io::Result<usize>) -> io::Result<usize> {
        // Every enter submits what is queued, deferred entries too (a later
        // push sets the flag again).
        if self.deferred.load(Ordering::Relaxed) != 0 {
            self.deferred.store(0, Ordering::Release);
        }
        let r = faults::enter(self.fault_scope, || f(&self.uring));
        match &r {
            Ok(_) => {
                if self.enter_failures.load(Ordering::Relaxed) != 0 {
                    self.enter_failures.store(0, Ordering::Relaxed);
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => {
                self.enter_errno
                    .store(e.raw_os_error().unwrap_or(libc::EIO), Ordering::Relaxed);
                let _ =
                    self.enter_failures
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
            }
        }
        r
    }

    /// True when the last [`TRANSIENT_RETRIES`] submitting enters all failed.
    fn refusing(&self) -> bool {
        self.enter_failures.load(Ordering::Relaxed) >= TRANSIENT_RETRIES
    }

    /// Called with `sq_lock` held before a caller's operation is queued:
    /// if the kernel keeps refusing submissions, gives it one more chance
    /// (an enter from this thread if it may submit, else a wake of the
    /// owner and up to 100 ms for its enter) and returns the errno to
    /// refuse the push with if that did not get through.
    fn refusal(&self, here: bool, guard: &mut MutexGuard<'_, ()>) -> Option<i32> {
        if !self.refusing() {
            return None;
        }
        if here {
            bump(&self.stats.submit_calls);
            let _ = self.enter(|u| u.submit());
        } else {
            self.request_submit();
            self.sq_waiters.fetch_add(1, Ordering::AcqRel);
            self.sq_space.wait_for(guard, Duration::from_millis(100));
            self.sq_waiters.fetch_sub(1, Ordering::AcqRel);
        }
        self.refusing()
            .then(|| self.enter_errno.load(Ordering::Relaxed))
    }

    /// Submits from a non-owner, for [`Ring::push_cancels`]: returns once
    /// the kernel has taken the first `target` entries ever pushed.
    fn reach_kernel(&self, target: u64) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut guard = self.sq_lock.lock();
        loop {
            // SAFETY: `sq_lock` is held, so no other SubmissionQueue exists.
            let mut sq = unsafe { self.uring.submission_shared() };
            sq.sync();
            let consumed = self.pushed.load(Ordering::Relaxed) - sq.len() as u64;
            drop(sq);
            if consumed >= target {
                return;
            }
            if consumed >= self.last_op.load(Ordering::Relaxed) {
                // Only cancels wait in the SQ, and no operation can be
                // pushed while `sq_lock` is held: submit them here.
                let _ = self.submit_queued();
                continue;
            }
            if Instant::now() >= deadline {
                tracing::warn!("tpio-uring: the owner did not submit a cancel within 2 s");
                return;
            }
            self.request_submit();
            self.sq_waiters.fetch_add(1, Ordering::AcqRel);
            self.sq_space
                .wait_for(&mut guard, Duration::from_millis(10));
            self.sq_waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// # Safety
    ///
    /// Each entry's memory must stay valid until its completion is reaped.
    ///
    /// `Err(errno)` (only for [`Entries::User`]): refused, nothing queued.
    unsafe fn push_entries_as(
        &self,
        n: usize,
        mut entry: impl FnMut(usize) -> squeue::Entry,
        what: Entries,
    ) -> Result<(), i32> {
        let cancels = what == Entries::Cancels;
        let mut drained = false;
        let (here, defer) = self.submit_here_or_defer(what == Entries::User);
        let mut target = 0;
        let mut refused = None;
        'push: {
            let mut guard = self.sq_lock.lock();
            if what == Entries::User {
                refused = self.refusal(here, &mut guard);
                if refused.is_some() {
                    break 'push;
                }
            }
            // SAFETY: `sq_lock` is held, so no other SubmissionQueue exists.
            let mut sq = unsafe { self.uring.submission_shared() };
            for i in 0..n {
                let e = entry(i);
                loop {
                    // SAFETY: the entry's memory contract is the caller's.
                    if !faults::sq_full(self.fault_scope) && unsafe { sq.push(&e) }.is_ok() {
                        break;
                    }
                    bump(&self.stats.sq_full);
                    if what == Entries::User && i == 0 && self.refusing() {
                        // No room, the kernel refuses to make any, and
                        // nothing of this push is queued yet: refuse it
                        // rather than wait for room that may never come.
                        refused = Some(self.enter_errno.load(Ordering::Relaxed));
                        break 'push;
                    }
                    sq.sync();
                    if here {
                        drained |= self.relieve(&mut sq);
                    } else {
                        // Owner mode: only the owner may submit. Publish the
                        // tail, ask it to, and wait for room.
                        drop(sq);
                        self.request_submit();
                        self.sq_waiters.fetch_add(1, Ordering::AcqRel);
                        self.sq_space
                            .wait_for(&mut guard, Duration::from_millis(100));
                        self.sq_waiters.fetch_sub(1, Ordering::AcqRel);
                        // SAFETY: `sq_lock` is held again; the previous
                        // SubmissionQueue was dropped above.
                        sq = unsafe { self.uring.submission_shared() };
                    }
                }
                // Counted before the tail is published (at the next sync or
                // at drop), so a reaper can never see the CQE first.
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                target = self.pushed.fetch_add(1, Ordering::Relaxed) + 1;
                if !cancels {
                    self.last_op.store(target, Ordering::Relaxed);
                }
            }
            // Dropping `sq` publishes the tail.
        }
        if let Some(errno) = refused {
            if drained {
                self.wake();
            }
            return Err(errno);
        }
        if !here {
            if cancels {
                self.reach_kernel(target);
            } else {
                self.request_submit();
            }
            return Ok(());
        }
        if defer {
            // Submitted by the owner's next enter (its park, at the latest).
            if self.deferred.fetch_add(n, Ordering::Release) == 0 {
                self.deferred_since
                    .store(crate::defer::clock(), Ordering::Relaxed);
            }
        } else {
            drained |= self.submit_queued();
        }
        if drained {
            // A reaper blocked in the kernel would not notice completions
            // moved into the backlog.
            self.wake();
        }
        Ok(())
    }

    /// The SQ is full: get the kernel to take entries. Returns whether
    /// completions were moved into the backlog.
    fn relieve(&self, sq: &mut squeue::SubmissionQueue<'_>) -> bool {
        bump(&self.stats.submit_calls);
        let res = match self.submit_mode {
            // The kernel thread drains the SQ; wait until it has room.
            SubmitMode::SqPoll { .. } => {
                self.enter(|u| u.submit().and_then(|_| u.submitter().squeue_wait()))
            }
            _ => self.enter(|u| u.submit()),
        };
        sq.sync();
        if !sq.is_full() {
            return false;
        }
        match res {
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(e) => tracing::error!("tpio-uring: submit failed with a full SQ: {e}"),
        }
        // The kernel took nothing: most likely the CQ is overflowing. Make
        // room by moving completions out, and let others run.
        let drained = self.drain_cq_to_backlog() > 0;
        std::thread::yield_now();
        sq.sync();
        drained
    }

    /// Submits what is queued. Returns whether completions were moved into
    /// the backlog.
    pub(crate) fn submit_queued(&self) -> bool {
        let mut drained = false;
        for _ in 0..TRANSIENT_RETRIES {
            bump(&self.stats.submit_calls);
            match self.enter(|u| u.submit()) {
                Ok(_) => return drained,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if is_transient(&e) => {
                    drained |= self.drain_cq_to_backlog() > 0;
                    std::thread::yield_now();
                }
                Err(e) => {
                    tracing::error!("tpio-uring: submit failed: {e}; entries stay queued");
                    return drained;
                }
            }
        }
        tracing::warn!("tpio-uring: submit kept failing; entries stay queued for the next enter");
        drained
    }

    /// Moves every CQE into the backlog. Returns how many.
    pub(crate) fn drain_cq_to_backlog(&self) -> usize {
        let mut backlog = self.cq.lock();
        // SAFETY: the `cq` lock is held, so no other CompletionQueue exists.
        let cq = unsafe { self.uring.completion_shared() };
        let before = backlog.len();
        backlog.extend(cq.map(|e| (e.user_data(), e.result())));
        let moved = backlog.len() - before;
        if moved > 0 {
            bump(&self.stats.cq_drains);
        }
        moved
    }

    /// If the kernel holds overflowed CQEs, flushes them into the CQ.
    /// Returns whether it tried. Skips if another thread is submitting
    /// (its enter flushes them too).
    pub(crate) fn flush_overflow(&self) -> bool {
        let overflow = match self.sq_lock.try_lock() {
            // SAFETY: `sq_lock` is held, so no other SubmissionQueue exists.
            Some(_g) => unsafe { self.uring.submission_shared() }.cq_overflow(),
            None => false,
        };
        if overflow {
            // With the overflow flag set, submit() enters with GETEVENTS,
            // which flushes the kernel's overflow list.
            bump(&self.stats.submit_calls);
            let _ = self.enter(|u| u.submit());
        }
        overflow
    }
}

/// What a push is for: a caller's operations may be refused; the ring's
/// own entries (wake-ups, the eventfd read) and cancels never are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entries {
    User,
    Internal,
    Cancels,
}

pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOMEM | libc::EINTR)
    )
}

impl Drop for Ring {
    /// Cancels what is in flight (with `ASYNC_CANCEL_ANY` where the kernel
    /// has it) and waits until every completion has arrived, so no operation
    /// can write into memory after the ring is gone. Completions reaped here
    /// are dropped (logged at debug level): drop a ring only once its users
    /// are done. On kernels without cancel-any (before 5.19), user
    /// operations that never complete make this wait forever (warned about
    /// every few seconds).
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        if self.features.cancel_fd_all {
            let any = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(Tag::CancelAny.encode());
            // SAFETY: a cancel reads and writes no memory.
            unsafe { self.push_entries(1, |_| any.clone()) };
        } else if self.wake.mode == WakeMode::EventFd {
            let c = opcode::AsyncCancel::new(Tag::WakeEventFd.encode())
                .build()
                .user_data(Tag::CancelAny.encode());
            // SAFETY: a cancel reads and writes no memory.
            unsafe { self.push_entries(1, |_| c.clone()) };
        }
        let start = Instant::now();
        let mut warned = start;
        let mut dropped = 0usize;
        while self.in_flight.load(Ordering::Acquire) > 0 {
            let timeout = self.features.ext_arg.then_some(Duration::from_secs(1));
            let r = self.wait_inner(timeout, &mut |c| {
                dropped += 1;
                tracing::debug!("tpio-uring: completion dropped with the ring: {c:?}");
            });
            if let Err(e) = r {
                tracing::error!("tpio-uring: waiting for in-flight operations failed: {e}");
                std::thread::yield_now();
            }
            if warned.elapsed() >= Duration::from_secs(5) {
                warned = Instant::now();
                tracing::warn!(
                    "tpio-uring: ring drop still waiting for {} operations after {:?}",
                    self.in_flight.load(Ordering::Relaxed),
                    start.elapsed()
                );
            }
        }
        if dropped > 0 {
            tracing::debug!("tpio-uring: {dropped} completions dropped with the ring");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reap::Completion;

    /// The backlog path (taken when the kernel refuses submissions because
    /// the CQ overflows, which modern kernels with NODROP never do): moved
    /// completions are reported first, in order, exactly once, and a reaper
    /// blocked in the kernel is woken.
    #[test]
    fn backlog_is_reported_first_and_once() {
        if !crate::probe::cached().is_available() {
            return;
        }
        let ring = Ring::new(8).unwrap();
        for ud in 0..5u64 {
            // SAFETY: NOPs touch no memory.
            unsafe { ring.push(ud, crate::op::nop()) }.unwrap();
        }
        assert_eq!(ring.drain_cq_to_backlog(), 5);
        // SAFETY: NOPs touch no memory.
        unsafe { ring.push(5, crate::op::nop()) }.unwrap();
        ring.wake();
        let mut seen = Vec::new();
        let mut reaper = ring.reaper();
        let r = reaper
            .wait(Some(Duration::from_secs(5)), |c| seen.push(c))
            .unwrap();
        assert!(r.woken);
        let expect: Vec<_> = (0..6)
            .map(|user_data| Completion::Op {
                user_data,
                result: 0,
            })
            .collect();
        assert_eq!(seen, expect);
        assert_eq!(ring.stats().in_flight, 0);
        assert_eq!(ring.stats().cq_drains, 1);
    }
}
