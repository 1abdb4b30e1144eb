//! The TP_IO state machine: outstanding starts, skipped starts, queued and
//! running callbacks, close-after-drain (rules 1–5 of `spec/semantics.md`).
//!
//! Owns every decision about a completion packet: callback, skip, or misuse.
//! Drivers hand packets in through [`CompletionTarget::complete`] and never
//! count anything themselves; this module never touches the OS.
//!
//! Lock order: an object's lock may be held while taking its pool's queue
//! lock, never the other way round.

use crate::cleanup_group::CleanupGroup;
use crate::driver::Issued;
use crate::environment::CleanupCallback;
use crate::overlapped_status::OverlappedStatus;
use crate::pool::{PoolInner, Work};
use crate::stats::{Misuse, Stats};
use crate::sync::{thread_local_cell, Arc, AtomicU32, Condvar, Mutex, MutexGuard};
use crate::target_watch;
use crate::{CallbackEnvironment, CallbackInstance, Priority, Win32Error};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a completion reports (the callback's `Overlapped`, `IoResult` and
/// `NumberOfBytesTransferred`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Completion {
    /// Which operation: the OVERLAPPED's address in the Win32-shaped layer, an
    /// operation id in the safe layer. The core only carries it.
    pub overlapped: usize,
    /// `SUCCESS`, or why the operation did not complete normally.
    pub status: Win32Error,
    /// Bytes transferred (0 when cancelled).
    pub bytes: usize,
}

/// Why a packet gets no callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Discard {
    /// Its start was stopped being expected by `wait_for_callbacks(true)` (rule 4).
    Skipped,
    /// Its callback was queued and then dropped, by `wait_for_callbacks(true)`
    /// or a cleanup group's `close_members(true, …)` (rules 4 and 9).
    Dropped,
    /// No start was outstanding (misuse of rule 1).
    NoStart,
}

/// The object's side of a TP_IO: the user callback and its hooks.
pub trait IoCallback: Send + Sync + 'static {
    /// Runs on a pool worker for each accepted completion (rule 3).
    fn complete(&self, instance: &mut CallbackInstance<'_>, completion: Completion);
    /// A packet that will get no callback: the operation is over, and whatever
    /// it owned may be freed. Called on the thread that decided it.
    fn discard(&self, completion: Completion, reason: Discard) {
        let _ = (completion, reason);
    }
    /// Called exactly once, when the object is released (rule 5).
    fn released(&self) {}
}

impl<F> IoCallback for F
where
    F: Fn(&mut CallbackInstance<'_>, Completion) + Send + Sync + 'static,
{
    fn complete(&self, instance: &mut CallbackInstance<'_>, completion: Completion) {
        self(instance, completion)
    }
}

/// The counts of one object at one moment (for tests and diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// Starts whose packet will get a callback.
    pub pending: u32,
    /// Starts whose packet will be dropped (after `wait_for_callbacks(true)`).
    pub skipped: u32,
    /// Callbacks queued and not yet started.
    pub queued: u32,
    /// Callbacks running (associated or not).
    pub running: u32,
    /// Running callbacks that still count for `wait_for_callbacks`.
    pub associated: u32,
    /// `close` was called.
    pub closed: bool,
    /// The object has been released.
    pub released: bool,
}

#[derive(Default)]
struct IoState {
    c: IoCounts,
    /// Bumped by every `wait_for_callbacks(true)`; packets of older epochs are
    /// the ones that stopped being expected.
    epoch: u32,
    /// Released by its cleanup group (`close_members`).
    group_released: bool,
    /// Packets being handed to `IoCallback::discard` outside the lock: the
    /// object is not released until they are, so `released` stays the
    /// callback side's last call (found by `tests/loom_models.rs`).
    discarding: u32,
}

impl IoState {
    fn idle_for_wait(&self) -> bool {
        self.c.pending == 0 && self.c.queued == 0 && self.c.associated == 0
    }
    fn idle_for_group(&self) -> bool {
        self.c.pending == 0 && self.c.queued == 0 && self.c.running == 0
    }
    fn gone(&self) -> bool {
        self.c.closed || self.group_released
    }
    /// Marks the object released if it is closed and drained; true once.
    fn take_release(&mut self) -> bool {
        let drained =
            self.c.pending == 0 && self.c.skipped == 0 && self.c.queued == 0 && self.c.running == 0;
        if self.gone() && drained && self.discarding == 0 && !self.c.released {
            self.c.released = true;
            return true;
        }
        false
    }
}

pub(crate) struct IoInner {
    id: u64,
    pub(crate) pool: Arc<PoolInner>,
    priority: Priority,
    runs_long: bool,
    context: usize,
    cleanup_callback: Option<CleanupCallback>,
    group: Option<CleanupGroup>,
    state: Mutex<IoState>,
    /// A copy of `IoState::epoch`, written only under `state`'s lock, so
    /// `target()` (once per operation) needs no lock to read it.
    epoch: AtomicU32,
    cv: Condvar,
    callback: Box<dyn IoCallback>,
}

static NEXT_OBJECT_ID: AtomicU64 = AtomicU64::new(1);

thread_local_cell! {
    /// The object whose callback this thread is running, and whether that
    /// callback is still associated with it (0 = none).
    static CURRENT: Cell<(u64, bool)> = Cell::new((0, false));
}

/// A thread-pool I/O object (`PTP_IO`), as the core sees it.
///
/// Dropping it is `close`. See the crate docs for the whole lifecycle.
pub struct IoObject {
    inner: Arc<IoInner>,
}

/// Where a driver delivers the packet of one operation. Made by
/// [`IoObject::issue_with`] (or taken with [`IoObject::target`]) when the
/// operation is issued, after `start`; it keeps the object alive until the
/// packet is delivered. A blocking (synchronous) call made through a driver
/// takes one with [`CompletionTarget::for_status`] instead: its packet only
/// records the result for the waiting thread.
///
/// A target made by `issue_with` is *watched*: if the driver said `Pending`
/// and the target is dropped without delivering its packet, the core
/// diagnoses the driver ([`Misuse::DriverLostPacket`]) and delivers a packet
/// in its place — the operation's OVERLAPPED, `ERROR_INTERNAL_ERROR` (1359),
/// 0 bytes — so the start is balanced and no wait hangs
/// (`spec/semantics.md`, "A driver that loses a packet").
pub struct CompletionTarget {
    to: To,
    /// The operation's OVERLAPPED identity (watched targets; 0 otherwise).
    overlapped: usize,
    /// Its submission's token (`target_watch`); 0 = not watched.
    watch: u64,
}

enum To {
    Object {
        inner: Arc<IoInner>,
        epoch: u32,
    },
    Status(std::sync::Arc<OverlappedStatus>),
    /// Delivered: nothing left to do when dropped.
    Spent,
}

impl IoObject {
    /// `CreateThreadpoolIo`: a new object in `env` (its pool, group, priority),
    /// with `context` (the `pv` argument: passed to the group's cleanup
    /// callback) and the callback to run for each accepted completion.
    pub fn new(env: &CallbackEnvironment, context: usize, callback: impl IoCallback) -> IoObject {
        let pool = env.get_pool();
        pool.inner.add_ref();
        Stats::bump(&pool.inner.stats.objects_created);
        let inner = Arc::new(IoInner {
            id: NEXT_OBJECT_ID.fetch_add(1, Ordering::Relaxed),
            pool: pool.inner.clone(),
            priority: env.priority,
            runs_long: env.runs_long,
            context,
            cleanup_callback: env.cleanup_callback.clone(),
            group: env.group.clone(),
            state: Mutex::new(IoState::default()),
            epoch: AtomicU32::new(0),
            cv: Condvar::new(),
            callback: Box::new(callback),
        });
        if let Some(g) = &env.group {
            g.add(inner.clone());
        }
        IoObject { inner }
    }

    /// A process-unique id of this object (for logs).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// `StartThreadpoolIo`: one more operation will be issued, and its packet
    /// gets a callback (rule 1). Fails with `ERROR_INVALID_HANDLE` after close.
    pub fn start(&self) -> Result<(), Win32Error> {
        let mut st = self.inner.state.lock();
        if st.gone() {
            drop(st);
            return Err(self
                .inner
                .misuse(Misuse::UseAfterClose, Win32Error::INVALID_HANDLE));
        }
        st.c.pending += 1;
        Ok(())
    }

    /// `CancelThreadpoolIo`: balances a `start` whose operation failed at once,
    /// or succeeded at once in skip-completion-on-success mode (rule 2). With no
    /// start outstanding it is misuse: `ERROR_NOT_FOUND`, nothing changes.
    pub fn cancel(&self) -> Result<(), Win32Error> {
        let mut st = self.inner.state.lock();
        if st.c.pending > 0 {
            st.c.pending -= 1;
        } else if st.c.skipped > 0 {
            st.c.skipped -= 1;
        } else {
            drop(st);
            return Err(self
                .inner
                .misuse(Misuse::CancelWithoutStart, Win32Error::NOT_FOUND));
        }
        self.inner.cv.notify_all();
        let release = st.take_release();
        drop(st);
        if release {
            self.inner.finish_release();
        }
        Ok(())
    }

    /// The delivery address for the operation about to be issued (call after
    /// `start`). Cheap: one reference count, no allocation. Not watched: a
    /// driver that drops it undelivered goes unnoticed (and the start stays
    /// outstanding); issuing calls use [`issue_with`](Self::issue_with).
    pub fn target(&self) -> CompletionTarget {
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        CompletionTarget {
            to: To::Object {
                inner: self.inner.clone(),
                epoch,
            },
            overlapped: 0,
            watch: 0,
        }
    }

    /// Issues one operation (call after `start`): calls `submit` — the
    /// driver's [`submit`](crate::driver::Driver::submit), in the caller's
    /// `unsafe` block — with a *watched* target for `overlapped`, and returns
    /// the driver's answer. If the driver answers `Pending` but drops the
    /// target without delivering its packet (inside `submit`, or later on any
    /// thread), the core records [`Misuse::DriverLostPacket`] and delivers
    /// `Completion { overlapped, status: INTERNAL_ERROR, bytes: 0 }` in its
    /// place. A target dropped inside `submit` with any other answer is the
    /// contract's normal case. Costs no allocation and no atomic operation
    /// beyond [`target`](Self::target)'s (the watch is a thread-local token).
    pub fn issue_with(
        &self,
        overlapped: usize,
        submit: impl FnOnce(CompletionTarget) -> Issued,
    ) -> Issued {
        let submitting = target_watch::open();
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let target = CompletionTarget {
            to: To::Object {
                inner: self.inner.clone(),
                epoch,
            },
            overlapped,
            watch: submitting.token(),
        };
        let issued = submit(target);
        if submitting.close() && issued == Issued::Pending {
            IoInner::lost_packet(self.inner.clone(), epoch, overlapped);
        }
        issued
    }

    /// `WaitForThreadpoolIoCallbacks` (rule 4). With `cancel_pending` it first
    /// drops the callbacks queued and not started, and stops expecting the
    /// outstanding starts. Then it blocks until no start is outstanding and no
    /// callback is queued or running (disassociated callbacks excepted).
    ///
    /// From inside one of this object's own (associated) callbacks it returns
    /// `ERROR_POSSIBLE_DEADLOCK` at once instead of waiting for itself.
    pub fn wait_for_callbacks(&self, cancel_pending: bool) -> Result<(), Win32Error> {
        self.wait_impl(cancel_pending, None).map(|_| ())
    }

    /// Like [`wait_for_callbacks`](Self::wait_for_callbacks) but gives up
    /// after `timeout`: `Ok(true)` when the object went idle, `Ok(false)` on
    /// time-out (the `cancel_pending` part is done either way).
    pub fn wait_for_callbacks_timeout(
        &self,
        cancel_pending: bool,
        timeout: Duration,
    ) -> Result<bool, Win32Error> {
        self.wait_impl(cancel_pending, Some(timeout))
    }

    fn wait_impl(
        &self,
        cancel_pending: bool,
        timeout: Option<Duration>,
    ) -> Result<bool, Win32Error> {
        let inner = &self.inner;
        if CURRENT.with(|c| c.get()) == (inner.id, true) {
            return Err(inner.misuse(Misuse::WaitInOwnCallback, Win32Error::POSSIBLE_DEADLOCK));
        }
        // What this waits for may hang on submissions a worker's driver
        // holds back until it parks (before any lock: the driver's own).
        crate::parker::flush_current();
        let mut st = inner.state.lock();
        if st.gone() {
            drop(st);
            return Err(inner.misuse(Misuse::UseAfterClose, Win32Error::INVALID_HANDLE));
        }
        if cancel_pending {
            let dropped = IoInner::cancel_pending_locked(inner, &mut st);
            if !dropped.is_empty() {
                drop(st);
                inner.discard_all(dropped, Discard::Dropped);
                st = inner.state.lock();
            }
        }
        Ok(inner.wait_until(&mut st, timeout, IoState::idle_for_wait))
    }

    /// The object's counts now.
    pub fn counts(&self) -> IoCounts {
        self.inner.state.lock().c
    }

    /// `CloseThreadpoolIo` (rule 5): neither cancels nor waits. The object is
    /// released once nothing is queued, running or outstanding; callbacks
    /// already queued still run. Same as dropping it.
    pub fn close(self) {}
}

impl Drop for IoObject {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock();
        if st.gone() {
            return;
        }
        st.c.closed = true;
        let release = st.take_release();
        drop(st);
        if release {
            self.inner.finish_release();
        }
    }
}

impl fmt::Debug for IoObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoObject")
            .field("id", &self.inner.id)
            .field("counts", &self.counts())
            .finish()
    }
}

impl CompletionTarget {
    /// Delivers the packet of the operation this target was taken for: a
    /// callback is queued if a start is outstanding for it; otherwise the
    /// packet is discarded (skipped after `wait_for_callbacks(true)`, or a
    /// diagnosed completion-without-start).
    pub fn complete(mut self, completion: Completion) {
        let (inner, epoch) = match std::mem::replace(&mut self.to, To::Spent) {
            To::Object { inner, epoch } => (inner, epoch),
            To::Status(s) => {
                s.set_done(completion.status, completion.bytes);
                return;
            }
            To::Spent => return,
        };
        let mut st = inner.state.lock();
        let skip_old = epoch != st.epoch && st.c.skipped > 0;
        if !skip_old && st.c.pending > 0 {
            st.c.pending -= 1;
            st.c.queued += 1;
            inner.pool.stats.callbacks_queued.bump();
            // No clone of the pool's `Arc`: its count is shared by every
            // object of the pool, and this runs once per completion.
            PoolInner::push(
                &inner.pool,
                inner.priority,
                Work::Io(inner.clone(), completion),
            );
            return;
        }
        if st.c.skipped > 0 {
            st.c.skipped -= 1;
            st.discarding += 1;
            Stats::bump(&inner.pool.stats.packets_skipped);
            drop(st);
            inner.callback.discard(completion, Discard::Skipped);
            inner.discards_done(1);
            return;
        }
        drop(st);
        inner.misuse(
            Misuse::CompletionWithoutStart,
            Win32Error::INVALID_PARAMETER,
        );
        inner.callback.discard(completion, Discard::NoStart);
    }

    /// A target that records the packet in `status` (marked pending now)
    /// and wakes its waiters: no object, no callback, no pool. For blocking
    /// calls that a driver carries like any other operation. Dropped without
    /// a packet, it records `ERROR_INTERNAL_ERROR`, so a waiter never hangs
    /// on a driver that lost the packet.
    pub fn for_status(status: std::sync::Arc<OverlappedStatus>) -> CompletionTarget {
        status.set_pending();
        CompletionTarget {
            to: To::Status(status),
            overlapped: 0,
            watch: 0,
        }
    }

    /// The id of the object this target delivers to (0 for a status target).
    pub fn object_id(&self) -> u64 {
        match &self.to {
            To::Object { inner, .. } => inner.id,
            To::Status(_) | To::Spent => 0,
        }
    }
}

/// A watched target dropped undelivered after its driver said `Pending`
/// (dropped after the submission closed, or on another thread) lost its
/// packet: deliver one in its place. Dropped inside its own submission it is
/// the contract's normal case for `CompletedNow`/`FailedNow`, and
/// `IoObject::issue_with` settles it once the driver has answered.
impl Drop for CompletionTarget {
    fn drop(&mut self) {
        if let To::Status(s) = &self.to {
            // Never completed: a blocking call must not wait forever. After
            // `CompletedNow`/`FailedNow` nobody reads this status (the
            // caller has the driver's answer); after `Pending` it is a lost
            // packet, and the waiting thread gets ERROR_INTERNAL_ERROR.
            if s.is_pending() {
                s.set_done(Win32Error::INTERNAL_ERROR, 0);
            }
            return;
        }
        if self.watch == 0 || !matches!(self.to, To::Object { .. }) {
            return;
        }
        if target_watch::dropped_in_submit(self.watch) {
            return;
        }
        if let To::Object { inner, epoch } = std::mem::replace(&mut self.to, To::Spent) {
            IoInner::lost_packet(inner, epoch, self.overlapped);
        }
    }
}

impl fmt::Debug for CompletionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.to {
            To::Object { inner, epoch } => f
                .debug_struct("CompletionTarget")
                .field("object", &inner.id)
                .field("epoch", epoch)
                .field("watched", &(self.watch != 0))
                .finish(),
            To::Status(s) => f.debug_tuple("CompletionTarget").field(s).finish(),
            To::Spent => f.write_str("CompletionTarget(delivered)"),
        }
    }
}

impl IoInner {
    fn misuse(&self, m: Misuse, e: Win32Error) -> Win32Error {
        self.pool.stats.misuse(m, self.id);
        e
    }

    /// The driver lost the packet of a pending operation: diagnose it and
    /// deliver `INTERNAL_ERROR` with 0 bytes for the operation's OVERLAPPED,
    /// through the normal path (a callback, or a discard if its start was
    /// skipped by `wait_for_callbacks(true)`).
    fn lost_packet(this: Arc<Self>, epoch: u32, overlapped: usize) {
        this.misuse(Misuse::DriverLostPacket, Win32Error::INTERNAL_ERROR);
        CompletionTarget {
            to: To::Object { inner: this, epoch },
            overlapped,
            watch: 0,
        }
        .complete(Completion {
            overlapped,
            status: Win32Error::INTERNAL_ERROR,
            bytes: 0,
        });
    }

    /// Rule 4's first half: drop queued callbacks, skip outstanding starts.
    fn cancel_pending_locked(
        this: &Arc<Self>,
        st: &mut MutexGuard<'_, IoState>,
    ) -> Vec<Completion> {
        st.epoch = st.epoch.wrapping_add(1);
        this.epoch.store(st.epoch, Ordering::Release);
        st.c.skipped += st.c.pending;
        st.c.pending = 0;
        let dropped = if st.c.queued > 0 {
            this.pool.remove_queued_of(this)
        } else {
            Vec::new()
        };
        st.c.queued -= dropped.len() as u32;
        st.discarding += dropped.len() as u32;
        Stats::add(&this.pool.stats.callbacks_dropped, dropped.len() as u64);
        this.cv.notify_all();
        dropped
    }

    fn discard_all(&self, dropped: Vec<Completion>, why: Discard) {
        let n = dropped.len() as u32;
        for c in dropped {
            self.callback.discard(c, why);
        }
        self.discards_done(n);
    }

    /// `n` discards counted in `IoState::discarding` have returned: the
    /// object may be released now.
    fn discards_done(&self, n: u32) {
        if n == 0 {
            return;
        }
        let mut st = self.state.lock();
        st.discarding -= n;
        let release = st.take_release();
        drop(st);
        if release {
            self.finish_release();
        }
    }

    /// Blocks until `done(state)`, or the timeout; true when done.
    fn wait_until(
        &self,
        st: &mut MutexGuard<'_, IoState>,
        timeout: Option<Duration>,
        done: fn(&IoState) -> bool,
    ) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        while !done(st) {
            match (timeout, deadline) {
                (None, _) | (Some(_), None) => self.cv.wait(st),
                (Some(_), Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.cv.wait_for(st, left);
                }
            }
        }
        true
    }

    pub(crate) fn disassociate_running(&self) {
        let mut st = self.state.lock();
        st.c.associated -= 1;
        self.cv.notify_all();
        drop(st);
        CURRENT.with(|c| c.set((self.id, false)));
    }

    fn finish_release(&self) {
        Stats::bump(&self.pool.stats.objects_released);
        if let Some(g) = &self.group {
            g.remove(self.id);
        }
        self.callback.released();
        self.pool.unref();
    }

    /// For cleanup groups: rule 9 on one member.
    pub(crate) fn group_cancel(this: &Arc<Self>) {
        let mut st = this.state.lock();
        let dropped = IoInner::cancel_pending_locked(this, &mut st);
        drop(st);
        this.discard_all(dropped, Discard::Dropped);
    }

    pub(crate) fn group_wait_and_release(
        this: &Arc<Self>,
        cancel_pending: bool,
        cleanup_ctx: usize,
    ) {
        crate::parker::flush_current();
        let mut st = this.state.lock();
        this.wait_until(&mut st, None, IoState::idle_for_group);
        let user_closed = st.c.closed;
        drop(st);
        if cancel_pending && !user_closed {
            if let Some(cb) = &this.cleanup_callback {
                cb(this.context, cleanup_ctx);
            }
        }
        let mut st = this.state.lock();
        st.group_released = true;
        let release = st.take_release();
        drop(st);
        if release {
            this.finish_release();
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// Runs one queued callback of `obj` on the current (worker) thread.
pub(crate) fn run_callback(pool: &Arc<PoolInner>, obj: Arc<IoInner>, completion: Completion) {
    {
        let mut st = obj.state.lock();
        st.c.queued -= 1;
        st.c.running += 1;
        st.c.associated += 1;
    }
    let prev = CURRENT.with(|c| c.replace((obj.id, true)));
    let mut inst = CallbackInstance::new(pool, Some(&obj));
    if obj.runs_long {
        inst.may_run_long();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.callback.complete(&mut inst, completion)
    }));
    pool.stats.callbacks_run.bump();
    if r.is_err() {
        Stats::bump(&pool.stats.callbacks_panicked);
        tracing::error!(
            object = obj.id,
            "an I/O callback panicked; the panic was caught and the object's counts kept"
        );
    }
    let associated = inst.finish();
    CURRENT.with(|c| c.set(prev));
    let mut st = obj.state.lock();
    st.c.running -= 1;
    if associated {
        st.c.associated -= 1;
    }
    obj.cv.notify_all();
    let release = st.take_release();
    drop(st);
    if release {
        obj.finish_release();
    }
}

/// The id of the object whose callback the current thread runs, if any.
pub fn current_callback_object() -> Option<u64> {
    match CURRENT.with(|c| c.get()) {
        (0, _) => None,
        (id, _) => Some(id),
    }
}
