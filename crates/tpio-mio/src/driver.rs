//! The mio implementation of the core's driver contract
//! ([`tpio_core::driver::Driver`]).
//!
//! Owns the mapping from the core's [`Submission`]s to tries, queues and
//! workers; the driver keys (each says where its operation waits, for
//! `cancel`: [`Loc`]); and delivery. The data path: a pipe or
//! socket operation is tried at once, on the issuing thread, unless one of
//! the same direction already waits on that descriptor; if it would block
//! it waits in the descriptor's queue ([`crate::slot`]) and the poller
//! thread ([`crate::poller`]) tries it again on readiness. A file operation
//! goes to the blocking workers ([`crate::file_pool`]) and always reports
//! pending. `cancel` takes waiting operations out at once, under their
//! queue's lock (so a cancelled operation can no longer move data), and
//! wakes the poller, which delivers them with `ERROR_OPERATION_ABORTED`.
//!
//! It must never run a user callback, never deliver two packets for one
//! operation (delivery consumes the [`Op`]), never touch a buffer after its
//! packet is delivered, and never make `cancel` wait for I/O.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};

use mio::{Poll, Waker};
use parking_lot::Mutex;
use tpio_core::driver::{
    issue_result, transfer_result, Driver, HandleKind, Issued, OpKind, RawHandle, Submission,
};
use tpio_core::{io_error_to_win32, Completion, CompletionTarget, Striped, Win32Error};

use crate::attempt::{self, attempt, needs_nonblocking_fd, Attempt, MAX_RW};
use crate::file_pool::FilePool;
use crate::op::{Dir, Loc, Op, OpParts};
use crate::slot::{Reg, WAKE};
use crate::slot_table::SlotTable;
use crate::stats::{Counters, MioStats};
use crate::worker_poll::{self, WorkerPoll, WORKER_POLLS_ENV};

/// File workers a driver starts at most, unless told otherwise.
pub const DEFAULT_FILE_WORKERS: usize = 4;

/// The state the driver's threads share.
pub(crate) struct Shared {
    /// The poller thread's registry.
    reg: Arc<Reg>,
    waker: Waker,
    /// This value, for worker polls to refer back to it.
    me: std::sync::Weak<Shared>,
    /// Pool workers wait on descriptors in polls of their own
    /// ([`crate::worker_poll`]).
    pub(crate) worker_polls: bool,
    /// Every worker poll made for this driver (dead ones pruned).
    workers: Mutex<Vec<std::sync::Weak<WorkerPoll>>>,
    /// The poller thread wakes every few ms to rescue busy workers; when
    /// false it must be woken before that is needed.
    watching: Arc<tpio_core::parker::Watch>,
    slots: SlotTable,
    /// Operations pending (issued and not yet delivered), striped: every
    /// issue and delivery counts here.
    in_flight: Striped,
    /// Cancelled operations, taken out of their queues, for the poller to
    /// deliver.
    cancelled: Mutex<Vec<Op>>,
    files: FilePool,
    next_key: AtomicU32,
    pub(crate) stop: AtomicBool,
    counters: Counters,
}

/// The mio driver. See the module docs.
///
/// ```
/// # #[cfg(unix)] {
/// use tpio_core::driver::Driver;
/// let d = tpio_mio::MioDriver::new().expect("poller");
/// assert_eq!(d.name(), "mio");
/// assert_eq!(d.stats().in_flight, 0);
/// # }
/// ```
pub struct MioDriver {
    shared: Arc<Shared>,
    poller: Option<JoinHandle<()>>,
}

impl fmt::Debug for MioDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MioDriver")
            .field("stats", &self.stats())
            .finish()
    }
}

impl MioDriver {
    /// A driver with its poller thread and up to [`DEFAULT_FILE_WORKERS`]
    /// file workers (started when first needed).
    pub fn new() -> io::Result<MioDriver> {
        Self::with_file_workers(DEFAULT_FILE_WORKERS)
    }

    /// A driver whose file operations run on at most `workers` threads (at
    /// least one).
    pub fn with_file_workers(workers: usize) -> io::Result<MioDriver> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        let worker_polls = std::env::var(WORKER_POLLS_ENV).map_or(true, |v| v.trim() != "0");
        let shared = Arc::new_cyclic(|me| Shared {
            reg: Arc::new(Reg::new(registry)),
            waker,
            me: me.clone(),
            worker_polls,
            workers: Mutex::new(Vec::new()),
            watching: Arc::default(),
            slots: SlotTable::default(),
            in_flight: Striped::default(),
            cancelled: Mutex::new(Vec::new()),
            files: FilePool::new(workers),
            next_key: AtomicU32::new(1),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let s = Arc::clone(&shared);
        let poller = std::thread::Builder::new()
            .name("tpio-mio".into())
            .spawn(move || crate::poller::run(s, poll))?;
        tracing::debug!(
            file_workers = shared.files.max(),
            "tpio-mio: driver started"
        );
        Ok(MioDriver {
            shared,
            poller: Some(poller),
        })
    }

    /// The driver's counters and what it holds now.
    pub fn stats(&self) -> MioStats {
        let s = &self.shared;
        let c = &s.counters;
        let (file_workers, file_queued, file_running) = s.files.counts();
        MioStats {
            completed_at_once: c.at_once.get(),
            waited_for_readiness: c.pending.get(),
            file_operations: c.file_ops.get(),
            cancelled: c.cancelled.get(),
            registrations: c.registrations.get(),
            tries_skipped: c.tries_skipped.get(),
            in_flight: s.in_flight.level() as usize,
            registered_now: s
                .slots
                .all()
                .iter()
                .filter(|(_, sl)| sl.q.lock().registered())
                .count(),
            file_workers,
            file_queued,
            file_running,
        }
    }
}

impl Drop for MioDriver {
    /// Stops the poller. Operations still waiting are delivered with
    /// `ERROR_OPERATION_ABORTED` (their buffers go back to their owners);
    /// a file operation a worker is running completes normally, and that
    /// worker then ends.
    fn drop(&mut self) {
        let s = &self.shared;
        s.stop.store(true, Ordering::Release);
        if let Err(e) = s.waker.wake() {
            tracing::error!("tpio-mio: cannot wake the poller to stop it: {e}");
        }
        if let Some(t) = self.poller.take() {
            // The last handle of a separate backend can go inside a
            // delivery (a discarded packet frees its operation), that is,
            // on the poller itself: it sees `stop` when it returns to `poll`.
            if t.thread().id() != std::thread::current().id() && t.join().is_err() {
                tracing::error!("tpio-mio: poller thread panicked");
            }
        }
        let mut left = s.files.stop();
        for (fd, slot) in s.slots.all() {
            let mut q = slot.q.lock();
            left.extend(q.take_all());
            q.release(fd);
        }
        left.append(&mut s.cancelled.lock());
        for op in left {
            s.deliver(op, Win32Error::OPERATION_ABORTED, 0);
        }
    }
}

impl Shared {
    /// Removes `op` from the in-flight tables and delivers its packet.
    pub(crate) fn deliver(&self, op: Op, status: Win32Error, bytes: usize) {
        self.in_flight.decrement();
        op.ops.remove(op.key());
        op.target.complete(Completion {
            overlapped: op.overlapped,
            status,
            bytes,
        });
    }

    /// Delivers a finished operation's raw result, mapped for its handle.
    pub(crate) fn deliver_raw(&self, op: Op, raw: Result<usize, Win32Error>) {
        let (status, bytes) = transfer_result(op.handle_kind, op.kind(), op.len(), raw);
        self.deliver(op, status, bytes);
    }

    /// An event on `fd` (what may be ready): tries its queue heads again
    /// and delivers what finished.
    pub(crate) fn on_ready(&self, fd: RawFd, readable: bool, writable: bool) {
        let Some(slot) = self.slots.get(fd) else {
            return;
        };
        let done = {
            let mut q = slot.q.lock();
            q.mark_ready(readable, writable);
            let done = q.progress();
            if let Err(e) = q.sync_registration(fd, &self.reg) {
                tracing::warn!(fd, "tpio-mio: deregister failed: {e}");
            }
            done
        };
        for (op, raw) in done {
            self.deliver_raw(op, raw);
        }
    }

    /// Delivers the operations `cancel` took out.
    pub(crate) fn deliver_cancelled(&self) {
        let ops = std::mem::take(&mut *self.cancelled.lock());
        for op in ops {
            self.counters.cancelled.bump();
            self.deliver(op, Win32Error::OPERATION_ABORTED, 0);
        }
    }

    /// Drops the registrations `reg` (a worker's poll) holds for
    /// descriptors on which nothing waits, so its worker may exit; the next
    /// wait on one registers it again where it is issued.
    pub(crate) fn release_idle(&self, reg: &Arc<Reg>) {
        for (fd, slot) in self.slots.all() {
            let mut q = slot.q.lock();
            if q.owned_by(reg) {
                q.release(fd);
            }
        }
    }

    /// This driver's state, while it is alive.
    pub(crate) fn me(&self) -> Option<Arc<Shared>> {
        self.me.upgrade()
    }

    /// The flag [`Self::start_watching`] sets, for worker parkers to read.
    pub(crate) fn watching_flag(&self) -> Arc<tpio_core::parker::Watch> {
        Arc::clone(&self.watching)
    }

    /// A worker poll was made for this driver.
    pub(crate) fn register_worker(&self, wp: &Arc<WorkerPoll>) {
        self.workers.lock().push(Arc::downgrade(wp));
    }

    /// The poller thread must watch worker polls and kept work from now on
    /// (it is woken if it was waiting without a time-out).
    pub(crate) fn start_watching(&self) {
        if self.watching.turn_on() {
            if let Err(e) = self.waker.wake() {
                tracing::error!("tpio-mio: cannot wake the poller: {e}");
            }
        }
    }

    /// The poller's look after each wait: rescues busy workers, and says
    /// whether the next wait needs a time-out for that.
    pub(crate) fn watch_workers(&self) {
        let polls = {
            let mut w = self.workers.lock();
            w.retain(|p| p.strong_count() > 0);
            w.clone()
        };
        self.watching.settle(|| {
            let polls_busy = worker_poll::rescue(self, &polls);
            tpio_core::parker::rescue_kept() || polls_busy
        });
    }

    /// Whether the poller's next wait needs a time-out.
    pub(crate) fn watching(&self) -> bool {
        self.watching.is_on()
    }

    /// Makes `op` pending with its key's `count` (the descriptor's own for
    /// a stream — its slot's, under its queue lock: no line shared between
    /// workers — or `None` for a file: the driver's count), counted in
    /// flight; returns its key.
    fn pend(&self, op: &mut Op, count: Option<u32>) -> u64 {
        self.in_flight.bump();
        op.pend(count.unwrap_or_else(|| self.next_key.fetch_add(1, Ordering::Relaxed)))
    }

    /// A pipe or socket operation: at once, or queued behind its direction.
    fn submit_stream(&self, mut op: Op, thread: ThreadId) -> Issued {
        if needs_nonblocking_fd(op.handle_kind, op.kind()) {
            if let Err(e) = attempt::set_nonblocking(op.fd) {
                return Issued::FailedNow(e);
            }
        }
        let (dir, fd) = (Dir::of(op.kind()), op.fd);
        let slot = self.slots.get_or_insert(fd);
        let mut q = slot.q.lock();
        q.claim(op.fd, &op.ops);
        if q.queue(dir).is_empty() {
            if q.may_be_ready(dir) {
                // SAFETY: the buffers are valid and the fd open for this call
                // (the submit contract).
                if let Attempt::Done(raw) = unsafe { attempt(&mut op) } {
                    drop(q);
                    self.counters.at_once.bump();
                    let (status, bytes) = issue_result(op.handle_kind, op.kind(), op.len(), raw);
                    return Issued::CompletedNow { status, bytes };
                }
                q.not_ready(dir);
            } else {
                self.counters.tries_skipped.bump();
            }
        }
        let key = self.pend(&mut op, Some(q.next_count()));
        // Registered before it can complete: nobody tries it before the
        // queue lock is released.
        op.ops.insert(key, op.overlapped, thread);
        // A descriptor waits in the issuing worker's own poll (the poller
        // thread's from any other thread): its registration moves there if
        // nothing else waits on it.
        let mine = worker_poll::for_current_thread(self);
        let here = mine.as_ref().map_or(&self.reg, |w| &w.reg);
        q.follow(op.fd, here);
        let was_registered = q.registered();
        q.push(dir, op);
        let registered = q.sync_registration(fd, here);
        if registered.is_ok() && q.owner().is_some_and(|o| !Arc::ptr_eq(o, &self.reg)) {
            // Waiting in a worker's poll: after the registration, the
            // poller's look (for a busy worker) must find it.
            self.start_watching();
        }
        if let Err(e) = registered {
            let op = q.queue(dir).pop_back();
            drop(q);
            tracing::warn!(fd, "tpio-mio: cannot register with the poller: {e}");
            if let Some(op) = op {
                self.in_flight.decrement();
                op.ops.remove(op.key());
            }
            return Issued::FailedNow(registration_error(&e));
        }
        if !was_registered {
            self.counters.registrations.bump();
        }
        self.counters.pending.bump();
        Issued::Pending
    }

    /// A file operation: to the blocking workers; always pending.
    fn submit_file(self: &Arc<Self>, mut op: Op, thread: ThreadId) -> Issued {
        if !matches!(op.kind(), OpKind::Read { .. } | OpKind::Write { .. }) {
            return Issued::FailedNow(Win32Error::INVALID_PARAMETER);
        }
        let key = self.pend(&mut op, None);
        op.ops.insert(key, op.overlapped, thread);
        self.counters.file_ops.bump();
        if self.files.push(op) {
            let s = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("tpio-mio-file".into())
                .spawn(move || s.file_worker());
            if let Err(e) = spawned {
                tracing::error!("tpio-mio: cannot start a file worker: {e}");
                // With no worker at all, nothing would ever run them.
                for op in self.files.spawn_failed() {
                    if op.key() == key {
                        self.in_flight.decrement();
                        op.ops.remove(op.key());
                        return Issued::FailedNow(io_error_to_win32(&e));
                    }
                    self.deliver(op, io_error_to_win32(&e), 0);
                }
            }
        }
        Issued::Pending
    }

    fn file_worker(&self) {
        while let Some(op) = self.files.next() {
            // SAFETY: the buffer is valid and the fd open until the packet
            // is delivered (the submit contract); delivery is next.
            let raw = unsafe { attempt::run_file(&op) };
            self.files.finished();
            self.deliver_raw(op, raw);
        }
    }
}

/// What an issue whose descriptor could not be registered reports: the
/// poll is out of room or memory (`ENOMEM`; `ENOSPC`, epoll's limit on
/// watches) → `ERROR_NOT_ENOUGH_MEMORY` (8), as Windows reports an I/O it
/// could not allocate for; anything else through the errno map.
fn registration_error(e: &io::Error) -> Win32Error {
    match e.raw_os_error() {
        Some(libc::ENOMEM | libc::ENOSPC) => Win32Error::NOT_ENOUGH_MEMORY,
        _ => io_error_to_win32(e),
    }
}

impl Driver for MioDriver {
    fn name(&self) -> &'static str {
        "mio"
    }

    unsafe fn submit(&self, s: Submission, target: CompletionTarget) -> Issued {
        let Ok(fd) = RawFd::try_from(s.handle.0) else {
            return Issued::FailedNow(Win32Error::INVALID_HANDLE);
        };
        if fd < 0 {
            return Issued::FailedNow(Win32Error::INVALID_HANDLE);
        }
        let needs_addr = matches!(s.kind, OpKind::RecvFrom | OpKind::SendTo | OpKind::Connect);
        if needs_addr && s.addr.is_null() {
            return Issued::FailedNow(Win32Error::INVALID_PARAMETER);
        }
        let op = Op::new(OpParts {
            fd,
            handle_kind: s.handle_kind,
            kind: s.kind,
            buf: s.buf,
            len: s.len.min(MAX_RW),
            addr: s.addr,
            overlapped: s.overlapped,
            ops: s.ops,
            target,
            faults: self.shared.reg.faults,
        });
        if s.handle_kind == HandleKind::File {
            self.shared.submit_file(op, s.thread)
        } else {
            self.shared.submit_stream(op, s.thread)
        }
    }

    fn cancel(&self, keys: &[u64]) {
        let s = &self.shared;
        let mut out = Vec::new();
        for &key in keys {
            // Not found where its key says: delivered already (or running,
            // for a file operation: it ends normally).
            match Loc::of(key) {
                Loc::Stream(fd) => {
                    let Some(slot) = s.slots.get(fd) else {
                        continue;
                    };
                    let mut q = slot.q.lock();
                    if let Some(op) = q.take(key) {
                        // Registered already: this only counts.
                        let _ = q.sync_registration(fd, &s.reg);
                        out.push(op);
                    }
                }
                Loc::File => out.extend(s.files.take(key)),
            }
        }
        if out.is_empty() {
            return;
        }
        s.cancelled.lock().append(&mut out);
        if let Err(e) = s.waker.wake() {
            tracing::error!("tpio-mio: cannot wake the poller for a cancel: {e}");
        }
    }

    /// Drops the descriptor's registration ([`crate::slot`]).
    fn closing(&self, handle: RawHandle) {
        let Ok(fd) = RawFd::try_from(handle.0) else {
            return;
        };
        if let Some(slot) = self.shared.slots.get(fd) {
            if !slot.q.lock().release(fd) {
                tracing::warn!(fd, "tpio-mio: a handle closing with operations waiting");
            }
        }
    }
}
