//! The io_uring implementation of the core's driver contract
//! ([`tpio_core::driver::Driver`]).
//!
//! Owns the mapping from the core's [`Submission`]s to ring operations, the
//! table of operations in flight (driver key → where its packet goes), and
//! the one thread that reaps the ring and delivers packets. It must never
//! run a user callback (delivering a packet only queues one, in the core),
//! never deliver two packets for one operation, and never touch a buffer
//! after its packet is delivered.
//!
//! The ring runs in [`SubmitMode::Owner`]: the driver's thread submits for
//! every caller, so an operation survives the thread that issued it (as
//! I/O on a Windows completion-port handle does); issuing from another
//! thread costs one coalesced `write(2)` on the wake eventfd. Before that,
//! an operation that can finish without blocking does so on the calling
//! thread ([`crate::at_once`]) and reports `CompletedNow`; everything else
//! reports `Pending`.

use std::fmt;
use std::io;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tpio_core::driver::{transfer_result, AddrBuf, Driver, HandleKind, Issued, OpKind, Submission};
use tpio_core::{Completion as Packet, CompletionTarget, Win32Error};

use crate::at_once::{map_errno, try_now, Try};
use crate::cancel::CancelNow;
use crate::op::{self, Sqe, CURRENT_POSITION};
use crate::reap::Completion;
use crate::ring::{is_transient, Ring, RingBuilder};
use crate::submit::SubmitMode;
use crate::table::{self, Finish, Finished, InFlight, State, Tables};
use crate::worker::{self, WorkerRing, WORKER_RINGS_ENV};
use crate::SubmitError;

/// Linux transfers at most this many bytes per read or write call.
pub(crate) const MAX_RW: usize = 0x7fff_f000;

/// The smallest CQ the driver's ring gets. The kernel sizes the hash table
/// it searches for every cancel by user_data from the CQ (`log2(cq) - 5`
/// bits, at most 8): with 1,024 CQ entries 10,000 pending reads share 32
/// buckets and each cancel walks ~300 of them (measured: 14 % of W3's time
/// in `io_poll_find`); 8,192 entries give the maximum, 256 buckets, for
/// 128 KiB of CQ.
pub(crate) const CANCEL_HASH_CQ: u32 = 8192;

/// The `msghdr` and `iovec` of a datagram operation, kept in the caller's
/// [`AddrBuf::scratch`] (stable while the kernel holds it; no allocation).
#[repr(C)]
struct MsgHdr {
    msg: libc::msghdr,
    iov: libc::iovec,
}

const _: () = assert!(
    mem::size_of::<MsgHdr>() <= mem::size_of::<[u64; tpio_core::driver::ADDR_SCRATCH_WORDS]>()
        && mem::align_of::<MsgHdr>() <= mem::align_of::<u64>()
);

/// The datagram header inside `addr`'s scratch space.
///
/// # Safety
/// `addr` must be valid for writes (the submit contract).
unsafe fn msg_hdr(addr: *mut AddrBuf) -> *mut MsgHdr {
    // SAFETY: the caller's obligation; taking a field's address reads nothing.
    unsafe { std::ptr::addr_of_mut!((*addr).scratch) }.cast()
}

/// What the driver's thread, its handle and the worker rings share.
pub(crate) struct Shared {
    /// The shared ring, for operations issued off the pool's workers.
    ring: Ring,
    tables: Tables,
    stop: AtomicBool,
    /// This value, for worker rings to refer back to it.
    me: std::sync::Weak<Shared>,
    /// Pool workers get a ring of their own ([`crate::worker`]).
    pub(crate) worker_rings: bool,
    /// Every worker ring made for this driver (dead ones pruned).
    workers: Mutex<Vec<std::sync::Weak<WorkerRing>>>,
    /// The driver's thread waits with a time-out, to rescue completions of
    /// busy workers ([`worker::rescue`]); when false it must be woken
    /// before a worker ring may need that.
    watching: Arc<tpio_core::parker::Watch>,
}

/// The io_uring driver. See the module docs.
pub struct UringDriver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Try each operation with a non-blocking call first ([`crate::at_once`]).
    at_once: bool,
    /// File operations of worker rings go to the ring ([`batch_in_ring`]).
    batch_files: bool,
    /// So do sends on stream sockets ([`batch_in_ring`]).
    batch_sends: bool,
}

/// Set to `0` to send every operation to the ring (no "at once" path):
/// for measuring the ring alone, and for tests that need `Pending`.
pub const AT_ONCE_ENV: &str = "TPIO_URING_AT_ONCE";

/// Set to `0` to try file operations at once on worker rings too (see
/// [`batch_in_ring`]): for comparing the two.
pub const FILE_BATCH_ENV: &str = "TPIO_URING_FILE_BATCH";

/// Set to `0` to try sends on stream sockets at once on worker rings too
/// (see [`batch_in_ring`]): a send then goes out when it is issued.
pub const SEND_BATCH_ENV: &str = "TPIO_URING_SEND_BATCH";

/// Whether `s`, issued by a worker whose ring defers its submissions, goes
/// to that ring without a non-blocking try: file reads and writes
/// (`files`), and sends on stream sockets (`sends`), unless the handle is
/// in skip-completion-on-success mode. On a worker ring a batch of them
/// costs one `io_uring_enter` — the kernel reads from the page cache or
/// sends during the submission, and the park that submits them reaps them
/// — where each try is a system call of its own. W1: 0.85–1.08× the plain
/// ring loop with a try each, 1.22–1.40× batched; W2: 1.22–1.27× the
/// round trips with a try per send (`spec/benchmark.md`). A batched
/// operation waits for the worker's next park, or [`DEFER_AGE`] of
/// callbacks at most, where the try would have sent at once; a callback
/// that runs long after its send holds it until the driver's rescue
/// ([`crate::defer`]). Receives keep their try, governed by [`skip_try`];
/// pipes keep theirs. In skip mode an operation that finishes at once ends
/// the issuing call with no callback, which is worth the system call.
///
/// [`DEFER_AGE`]: crate::defer::DEFER_AGE
fn batch_in_ring(s: &Submission, wr: Option<&Arc<WorkerRing>>, files: bool, sends: bool) -> bool {
    let batched = match (s.handle_kind, s.kind) {
        (HandleKind::File, OpKind::Read { .. } | OpKind::Write { .. }) => files,
        (HandleKind::StreamSocket, OpKind::Write { .. }) => sends,
        _ => false,
    };
    batched && !s.skip_on_success && wr.is_some_and(|w| w.ring.defers_for_current_thread())
}

impl fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringDriver")
            .field("in_flight", &self.shared.tables.len())
            .field("ring", &self.shared.ring)
            .finish()
    }
}

impl UringDriver {
    /// A driver on a ring of `entries` SQ slots (CQ 4×), with its thread.
    /// Whether io_uring should be used at all is the caller's decision
    /// ([`crate::probe`]).
    pub fn new(entries: u32) -> io::Result<UringDriver> {
        let ring = RingBuilder::new(entries)
            .cq_entries(entries.saturating_mul(4).max(CANCEL_HASH_CQ))
            .submit_mode(SubmitMode::Owner)
            .build()?;
        let worker_rings = ring.features().sync_cancel
            && std::env::var(WORKER_RINGS_ENV).map_or(true, |v| v.trim() != "0");
        let shared = Arc::new_cyclic(|me| Shared {
            ring,
            tables: Tables::default(),
            stop: AtomicBool::new(false),
            me: me.clone(),
            worker_rings,
            workers: Mutex::new(Vec::new()),
            watching: Arc::default(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tpio-uring".into())
            .spawn(move || s.run())?;
        let at_once = std::env::var(AT_ONCE_ENV).map_or(true, |v| v.trim() != "0");
        let batch_files = std::env::var(FILE_BATCH_ENV).map_or(true, |v| v.trim() != "0");
        let batch_sends = std::env::var(SEND_BATCH_ENV).map_or(true, |v| v.trim() != "0");
        Ok(UringDriver {
            shared,
            thread: Some(thread),
            at_once,
            batch_files,
            batch_sends,
        })
    }

    /// Turns the "at once" path on or off (on by default unless
    /// [`AT_ONCE_ENV`]`=0`).
    pub fn with_at_once(mut self, on: bool) -> UringDriver {
        self.at_once = on;
        self
    }

    /// The ring's counters.
    pub fn ring_stats(&self) -> crate::RingStats {
        self.shared.ring.stats()
    }

    /// Operations submitted whose packet has not been delivered.
    pub fn in_flight(&self) -> usize {
        self.shared.tables.len()
    }
}

impl Drop for UringDriver {
    /// Stops the thread. Operations still in flight are cancelled when the
    /// ring drops (which waits for them); their packets are not delivered.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.ring.wake();
        if let Some(t) = self.thread.take() {
            // The last reference can be dropped on the driver's own thread
            // (a delivered packet frees the last handle of a separate
            // backend): it then stops by itself after this delivery, and
            // must not join itself.
            if t.thread().id() == std::thread::current().id() {
                return;
            }
            if t.join().is_err() {
                tracing::error!("tpio-uring: driver thread panicked");
            }
        }
    }
}

impl Shared {
    fn run(&self) {
        let mut reaper = self.ring.reaper();
        // Scans for busy workers come every STUCK while watching, however
        // often completions wake this thread (a scan takes locks).
        let mut next_scan = std::time::Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let watching = self.worker_rings && self.watching.is_on();
            let timeout =
                watching.then(|| next_scan.saturating_duration_since(std::time::Instant::now()));
            let r = reaper.wait(timeout, |c| self.on_completion(c));
            if let Err(e) = r {
                tracing::error!("tpio-uring: driver wait failed: {e}");
                std::thread::yield_now();
            }
            if !self.worker_rings || !self.watching.is_on() {
                continue;
            }
            let now = std::time::Instant::now();
            if now >= next_scan {
                self.watch_workers();
                next_scan = now + worker::STUCK;
            }
        }
    }

    /// Rescues completions stuck behind busy workers, and decides whether
    /// the next wait needs a time-out for that.
    fn watch_workers(&self) {
        let rings = {
            let mut w = self.workers.lock();
            w.retain(|r| r.strong_count() > 0);
            w.clone()
        };
        self.watching.settle(|| {
            let rings_busy = worker::rescue(self, &rings);
            // Work a worker kept for itself (tpio_core::parker) must not
            // wait behind a long callback either.
            tpio_core::parker::rescue_kept() || rings_busy
        });
    }

    /// The driver's thread must watch worker rings and kept work from now
    /// on (it is woken if it was waiting without a time-out).
    pub(crate) fn start_watching(&self) {
        if self.watching.turn_on() {
            self.ring.wake();
        }
    }

    /// A worker ring was made for this driver.
    pub(crate) fn register_worker(&self, wr: &Arc<WorkerRing>) {
        self.workers.lock().push(Arc::downgrade(wr));
    }

    /// One completion from any of this driver's rings.
    pub(crate) fn on_completion(&self, c: Completion) {
        match c {
            Completion::Op { user_data, result } => self.deliver(user_data, result),
            c => worker::log_cancel(c),
        }
    }

    fn deliver(&self, key: u64, result: i32) {
        let wr = self.my_ring();
        let finished = self.tables.of(key).finish(key, result, wr.as_ref());
        match finished {
            None => tracing::error!("tpio-uring: completion for unknown key {key}"),
            // A stream write's rest: pushed at once, still first of its queue.
            Some(Finished::Again(sqe)) => self.push_next(key, sqe, wr.as_ref()),
            Some(Finished::Left(op, next)) => {
                self.deliver_op(op, result);
                if let Some((k, sqe)) = next {
                    self.push_next(k, sqe, wr.as_ref());
                }
            }
        }
    }

    /// The calling thread's worker ring for this driver, if it has one (or
    /// is a pool worker that can have one now).
    fn my_ring(&self) -> Option<Arc<WorkerRing>> {
        if !self.worker_rings {
            return None;
        }
        worker::for_current_thread(self)
    }

    /// This driver's state, while it is alive.
    pub(crate) fn me(&self) -> Option<Arc<Shared>> {
        self.me.upgrade()
    }

    /// The flag [`Self::start_watching`] sets, for worker parkers to read.
    pub(crate) fn watching_flag(&self) -> Arc<tpio_core::parker::Watch> {
        Arc::clone(&self.watching)
    }

    /// Pushes an operation the table handed out (to `wr`, the calling
    /// thread's worker ring, or the shared ring), then marks it in the
    /// kernel, where a cancel finds it. `Err`: the ring refused it and
    /// nothing reached the kernel; it is still in the table (`Pushing`),
    /// and the caller decides how it ends.
    fn push(&self, key: u64, sqe: Sqe, wr: Option<&WorkerRing>) -> Result<(), Win32Error> {
        let ring = wr.map_or(&self.ring, |w| &w.ring);
        if wr.is_some() {
            self.start_watching();
        }
        // SAFETY: the entry was built from a submission whose buffers stay
        // valid until its packet is delivered (the submit contract); the
        // datagram header lives in the caller's AddrBuf.
        if let Err(e) = unsafe { ring.push(key, sqe) } {
            tracing::warn!("tpio-uring: operation {key} refused by the ring: {e}");
            return Err(refused_status(e));
        }
        self.tables.of(key).pushed(key);
        Ok(())
    }

    /// Pushes a queued operation whose turn came (it was reported
    /// `Pending` long ago). If the ring refuses it, its packet is
    /// delivered with the refusal's code and the next one of its queue
    /// gets its turn.
    fn push_next(&self, key: u64, sqe: Sqe, wr: Option<&Arc<WorkerRing>>) {
        let mut next = Some((key, sqe));
        while let Some((k, sqe)) = next.take() {
            let Err(status) = self.push(k, sqe, wr.map(|w| &**w)) else {
                return;
            };
            let Some((op, after)) = self.tables.of(k).complete(k, wr) else {
                return;
            };
            self.deliver_status(op, status, 0);
            next = after;
        }
    }

    /// Cancels operations that are in the kernel (or in the SQ on their
    /// way to it) and returns once the kernel has taken every cancel. Each
    /// is first cancelled from this thread with one system call
    /// ([`Ring::cancel_now`]); those it does not find — still in the SQ, or
    /// completed but not yet reaped — get a cancel queued behind them
    /// ([`Ring::cancel_batch`], which waits for the owner's submission).
    fn cancel_in_kernel(&self, keys: &[(u64, Option<Arc<WorkerRing>>)]) {
        if keys.is_empty() {
            return;
        }
        let mut behind = Vec::new();
        let mut now_works = self.ring.features().sync_cancel;
        for (k, wr) in keys {
            let ring = wr.as_ref().map_or(&self.ring, |w| &w.ring);
            if now_works || wr.is_some() {
                match ring.cancel_now(*k) {
                    Ok(CancelNow::Cancelled | CancelNow::Running) => continue,
                    Ok(CancelNow::NotFound) => {}
                    Err(e) => {
                        tracing::warn!("tpio-uring: synchronous cancel failed ({e}); queueing it");
                        now_works = wr.is_some() && now_works;
                    }
                }
            }
            match wr {
                // Direct submission: the cancel queues behind the operation
                // (if it still waits in the SQ) and this thread submits both.
                Some(w) => {
                    if let Err(e) = w.ring.cancel_batch(&[*k]) {
                        tracing::error!("tpio-uring: cancel refused: {e}");
                    }
                }
                None => behind.push(*k),
            }
        }
        if behind.is_empty() {
            return;
        }
        if let Err(e) = self.ring.cancel_batch(&behind) {
            tracing::error!("tpio-uring: cancel refused: {e}");
        }
    }

    /// Delivers the packet of `op`, which has left the table, with the
    /// kernel's result.
    fn deliver_op(&self, op: InFlight, result: i32) {
        let raw = if result < 0 {
            Err(map_errno(-result))
        } else {
            // A stream write's earlier calls count too.
            Ok(result as usize + op.done as usize)
        };
        if let (Finish::RecvFrom, Ok(_)) = (op.finish, raw) {
            // SAFETY: `addr` is the caller's AddrBuf, valid until this
            // packet is delivered (the submit contract); the kernel is done
            // with it and with the header in its scratch.
            unsafe { (*op.addr()).len = (*msg_hdr(op.addr())).msg.msg_namelen };
        }
        let (status, bytes) =
            transfer_result(op.handle_kind, op.finish.kind(), op.len as usize, raw);
        self.deliver_status(op, status, bytes);
    }

    /// Delivers the packet of `op`, which has left the table (and its
    /// handle's).
    fn deliver_status(&self, op: InFlight, status: Win32Error, bytes: usize) {
        op.target.complete(Packet {
            overlapped: op.overlapped,
            status,
            bytes,
        });
        if let Some(wr) = &op.ring {
            wr.op_done();
        }
    }
}

/// What an operation the ring refused reports: the kernel kept refusing
/// submissions with a transient errno (`EAGAIN`, `EBUSY`, `ENOMEM`: out of
/// resources) → `ERROR_NOT_ENOUGH_MEMORY` (8), as Windows reports an I/O it
/// could not allocate for; any other errno through the map.
fn refused_status(e: SubmitError) -> Win32Error {
    match e {
        SubmitError::Os(errno) if is_transient(&io::Error::from_raw_os_error(errno)) => {
            Win32Error::NOT_ENOUGH_MEMORY
        }
        SubmitError::Os(errno) => map_errno(errno),
        // A key past USER_DATA_MAX (2^62 submissions).
        _ => Win32Error::INVALID_PARAMETER,
    }
}

/// Builds the ring operation for `s` (a datagram's header goes in the
/// scratch of its address buffer).
fn build(s: &Submission) -> Result<Sqe, Win32Error> {
    let fd = i32::try_from(s.handle.0).map_err(|_| Win32Error::INVALID_HANDLE)?;
    let len = s.len.min(MAX_RW) as u32;
    let need_addr = || {
        if s.addr.is_null() {
            Err(Win32Error::INVALID_PARAMETER)
        } else {
            Ok(s.addr)
        }
    };
    Ok(match s.kind {
        OpKind::Read { offset } => op::read_at(fd, s.buf, len, offset.unwrap_or(CURRENT_POSITION)),
        // `send` on a socket (`table::stream_write`): never SIGPIPE.
        OpKind::Write { .. }
            if matches!(s.handle_kind, HandleKind::StreamSocket | HandleKind::Pipe) =>
        {
            table::stream_write(s.handle_kind, fd, s.buf, len)
        }
        OpKind::Write { offset } => {
            op::write_at(fd, s.buf, len, offset.unwrap_or(CURRENT_POSITION))
        }
        OpKind::Connect => {
            let a = need_addr()?;
            // SAFETY: the caller keeps `*addr` valid until delivery.
            let alen = unsafe { (*a).len };
            // SAFETY: `a` is valid (above); taking a field's address reads nothing.
            let bytes = unsafe { std::ptr::addr_of!((*a).bytes) };
            op::connect(fd, bytes.cast(), alen)
        }
        OpKind::Accept => {
            if s.addr.is_null() {
                op::accept(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            } else {
                let a = s.addr;
                // SAFETY: the caller keeps `*addr` valid until delivery;
                // taking field addresses reads nothing.
                let (bytes, alen) = unsafe {
                    (
                        std::ptr::addr_of_mut!((*a).bytes),
                        std::ptr::addr_of_mut!((*a).len),
                    )
                };
                op::accept(fd, bytes.cast(), alen, libc::SOCK_CLOEXEC)
            }
        }
        OpKind::RecvFrom | OpKind::SendTo => {
            let a = need_addr()?;
            // SAFETY: `a` is valid for writes until delivery (the submit
            // contract); the scratch is the driver's and nobody else's.
            let m = unsafe { msg_hdr(a) };
            // SAFETY: `m` points into the caller's AddrBuf (above), aligned
            // and large enough (the const assertion); all-zero is a valid
            // msghdr, then its fields are set before the kernel sees it.
            unsafe {
                m.write(mem::zeroed());
                (*m).iov = libc::iovec {
                    iov_base: s.buf.cast(),
                    iov_len: len as usize,
                };
                (*m).msg.msg_name = std::ptr::addr_of_mut!((*a).bytes).cast();
                (*m).msg.msg_namelen = if s.kind == OpKind::RecvFrom {
                    mem::size_of::<libc::sockaddr_storage>() as u32
                } else {
                    (*a).len
                };
                (*m).msg.msg_iov = std::ptr::addr_of_mut!((*m).iov);
                (*m).msg.msg_iovlen = 1;
            }
            // SAFETY: as above; taking a field's address reads nothing.
            let p = unsafe { std::ptr::addr_of_mut!((*m).msg) };
            if s.kind == OpKind::RecvFrom {
                op::recvmsg(fd, p, 0)
            } else {
                op::sendmsg(fd, p, libc::MSG_NOSIGNAL as u32)
            }
        }
    })
}

/// Reads on a stream that would have blocked at once go straight to the
/// ring for the next few: on a worker's own ring the kernel waits for data
/// before its first attempt (`POLL_FIRST`), so the failed non-blocking call
/// would be a system call for nothing. The first run skips this many tries;
/// each try that would block again at the end of a run doubles the next
/// run, up to [`SKIP_MOST`]; a try that finds data starts over. So a socket
/// whose reads always wait (an echo's) pays one failed try in 64 reads, and
/// one whose data is usually there already is tried at once again soon.
const SKIP_AFTER_WOULD_BLOCK: u32 = 3;

/// The longest run of reads that skip the try (see [`SKIP_AFTER_WOULD_BLOCK`]).
const SKIP_MOST: u32 = 64;

/// The handle's hint word after one more read: `Some` (the word to store)
/// when this read skips the try. The word holds the run's length in the
/// high half and the skips left in it in the low half.
fn take_skip(word: u32) -> Option<u32> {
    (word & 0xffff != 0).then(|| word - 1)
}

/// The hint word after a try that would have blocked: a run twice as long
/// as the last (at least [`SKIP_AFTER_WOULD_BLOCK`], at most [`SKIP_MOST`]).
fn after_would_block(word: u32) -> u32 {
    let next = ((word >> 16) * 2).clamp(SKIP_AFTER_WOULD_BLOCK, SKIP_MOST);
    next << 16 | next
}

fn stream_read(s: &Submission) -> bool {
    matches!(s.handle_kind, HandleKind::Pipe | HandleKind::StreamSocket)
        && matches!(s.kind, OpKind::Read { .. })
}

/// Whether to skip the non-blocking try for `s` (see
/// [`SKIP_AFTER_WOULD_BLOCK`]): only for stream reads issued by a worker
/// with its own ring; a shared-ring push costs a thread hop, a try does not.
fn skip_try(s: &Submission, on_worker_ring: bool) -> bool {
    if !on_worker_ring || !stream_read(s) {
        return false;
    }
    let hint = s.ops.driver_hint();
    match take_skip(hint.load(Ordering::Relaxed)) {
        Some(word) => {
            hint.store(word, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// A stream read's non-blocking try would have blocked: the next run of
/// reads skips it, twice as long as the last (see [`SKIP_AFTER_WOULD_BLOCK`]).
fn would_have_blocked(s: &Submission) {
    if stream_read(s) {
        let hint = s.ops.driver_hint();
        hint.store(
            after_would_block(hint.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }
}

/// A stream read's try found data: the runs start over.
fn found_data(s: &Submission) {
    if stream_read(s) {
        let hint = s.ops.driver_hint();
        if hint.load(Ordering::Relaxed) != 0 {
            hint.store(0, Ordering::Relaxed);
        }
    }
}

impl Driver for UringDriver {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    unsafe fn submit(&self, s: Submission, target: CompletionTarget) -> Issued {
        // A blocking call's thread waits for the packet instead of reaping
        // a ring: it goes to the shared ring even from a pool worker.
        let wr = if target.object_id() == 0 {
            None
        } else {
            self.shared.my_ring()
        };
        // Two reasons to go to the ring without a try: a stream read that
        // would likely block (it then waits for data first), or an
        // operation batched into the worker's ring.
        let likely_blocks = skip_try(&s, wr.is_some());
        let skipped =
            likely_blocks || batch_in_ring(&s, wr.as_ref(), self.batch_files, self.batch_sends);
        let len = u32::try_from(s.len).unwrap_or(u32::MAX);
        let stream = s.handle_kind != HandleKind::File;
        let finish = Finish::of(s.kind, s.handle_kind);
        let mut done = 0;
        // A stream write is tried with its shard locked, until it is in the
        // table: another write on the handle then sees it in flight and
        // waits behind it, so a rest left by a partial try can never be
        // overtaken by a later write's bytes (Windows never interleaves
        // two writes' data). A system call under the lock, for such writes
        // only (a worker's sends are batched, without a try).
        let mut held = None;
        if self.at_once && !skipped {
            if finish == Finish::StreamWrite {
                held = Some(self.shared.tables.for_new(s.handle.0 as i32, true));
            }
            // SAFETY: the buffer and address are valid for the call (this
            // function's contract) and the fd is open.
            match unsafe { try_now(&s, MAX_RW, self.shared.ring.fault_scope) } {
                Try::Done(issued) => {
                    found_data(&s);
                    return issued;
                }
                Try::Ring => would_have_blocked(&s),
                // A stream write that wrote part of its bytes: the rest
                // goes to the ring (it completes whole, as on Windows).
                Try::Partial(n) => done = n,
            }
        }
        let sqe = if done > 0 {
            // SAFETY: `done < len`: the rest is in the caller's buffer.
            let rest = unsafe { s.buf.add(done as usize) };
            table::stream_write(s.handle_kind, s.handle.0 as i32, rest, len - done)
        } else if likely_blocks && s.handle_kind == HandleKind::StreamSocket {
            // A receive likely to block (and on a worker ring, so Linux
            // 6.0+): wait for data before the first attempt.
            let fd = i32::try_from(s.handle.0).map_err(|_| Win32Error::INVALID_HANDLE);
            match fd {
                Ok(fd) => op::recv_poll_first(fd, s.buf, s.len.min(MAX_RW) as u32),
                Err(e) => return Issued::FailedNow(e),
            }
        } else {
            match build(&s) {
                Ok(sqe) => sqe,
                Err(e) => return Issued::FailedNow(e),
            }
        };
        let queue = stream.then(|| (s.handle.0 as i32, s.kind.direction()));
        let op = InFlight {
            target,
            ops: Arc::clone(&s.ops),
            overlapped: s.overlapped,
            handle_kind: s.handle_kind,
            finish,
            len,
            done,
            mem: match finish {
                Finish::StreamWrite => s.buf,
                Finish::RecvFrom => s.addr.cast(),
                Finish::Read | Finish::Other => std::ptr::null_mut(),
            },
            queue,
            state: State::Queued,
            sqe: None,
            ring: None,
        };
        // Registered with the handle under the shard's lock, before the
        // push: the completion may be reaped at once.
        let mut table = match held {
            Some(t) => t,
            None => self.shared.tables.for_new(s.handle.0 as i32, stream),
        };
        let inserted = table.insert(op, sqe, wr.as_ref(), |key| {
            s.ops
                .insert_dir(key, s.overlapped, s.thread, s.kind.direction())
        });
        drop(table);
        let (key, now) = match inserted {
            Ok(v) => v,
            // The target is dropped here, on the calling thread, as the
            // contract wants for `FailedNow`.
            Err(_op) => return Issued::FailedNow(Win32Error::NOT_ENOUGH_MEMORY),
        };
        if let Some(sqe) = now {
            if let Err(status) = self.shared.push(key, sqe, wr.as_deref()) {
                // Refused before the kernel saw it: the issue fails now,
                // and the target is dropped here, on the calling thread,
                // as the contract wants for `FailedNow`.
                let Some((op, next)) = self.shared.tables.of(key).complete(key, wr.as_ref()) else {
                    return Issued::Pending; // cannot happen: only we end a `Pushing` one
                };
                if let Some(w) = &op.ring {
                    w.op_done();
                }
                drop(op);
                if let Some((k, sqe)) = next {
                    // Queued behind this one meanwhile by another thread.
                    self.shared.push_next(k, sqe, wr.as_ref());
                }
                return Issued::FailedNow(status);
            }
        }
        Issued::Pending
    }

    fn cancel(&self, keys: &[u64]) {
        let mut keys = keys.to_vec();
        while !keys.is_empty() {
            let sorted = self.shared.tables.cancel(&keys);
            for op in sorted.waiting {
                // Never reached the kernel: cancelled here, at once.
                self.shared.deliver_op(op, -libc::ECANCELED);
            }
            self.shared.cancel_in_kernel(&sorted.kernel);
            // Another thread is pushing these right now (a few
            // instructions, or a wait for SQ room): their cancel must
            // follow them into the kernel before this returns.
            if !sorted.pushing.is_empty() {
                std::thread::yield_now();
            }
            keys = sorted.pushing;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `reads` reads skip the try when every try would block.
    fn tries(reads: usize) -> usize {
        let (mut word, mut tried) = (0, 0);
        for _ in 0..reads {
            match take_skip(word) {
                Some(w) => word = w,
                None => {
                    tried += 1;
                    word = after_would_block(word);
                }
            }
        }
        tried
    }

    #[test]
    fn runs_of_skipped_tries_double_up_to_the_most_and_start_over_on_data() {
        // 1 try, 3 skips, 1 try, 6 skips, 1, 12, 1, 24, 1, 48, 1, 64, ...
        assert_eq!(tries(1), 1);
        assert_eq!(tries(4), 1);
        assert_eq!(tries(5), 2);
        assert_eq!(tries(1 + 3 + 1 + 6), 2);
        assert_eq!(tries(1 + 3 + 1 + 6 + 1), 3);
        // From then on one try in 65 reads.
        let long = tries(100_000);
        assert!((1_500..1_600).contains(&long), "{long} tries");
        // A try that found data: the next read tries again.
        assert_eq!(take_skip(0), None);
        assert_eq!(after_would_block(after_would_block(0)) >> 16, 6);
    }
}
