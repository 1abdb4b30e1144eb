//! The driver contract: what every emulated backend (io_uring, mio) must do,
//! and must never do. This file is tpio's `sys/mod.rs`: the one place the
//! obligations are written down; each driver crate implements [`Driver`].
//!
//! # What a driver does
//!
//! 1. **Submit.** [`Driver::submit`] issues one operation on an OS handle and
//!    says at once what happened ([`Issued`]): `Pending` (a packet will come
//!    later), `CompletedNow` (finished during submission; the driver sends no
//!    packet), or `FailedNow` (never started; no packet). Rule 2 (what the
//!    caller and the callback see for each) is decided by the core
//!    ([`settle`]), not by the driver.
//! 2. **Deliver.** For every `Pending` operation, exactly one packet, through
//!    the [`CompletionTarget`] that came with the submission (taken by the
//!    caller with [`IoObject::target`](crate::IoObject::target) after `start`):
//!    `target.complete(Completion { overlapped, status, bytes })`, with the
//!    kernel's result mapped by [`errno_to_win32`](crate::errno_to_win32) and
//!    [`transfer_result`]. A cancelled operation reports
//!    `OPERATION_ABORTED` and 0 bytes — or its normal result if it finished
//!    first. Before delivering, the driver removes the operation from its
//!    handle's [`HandleOps`].
//! 3. **Cancel.** [`Driver::cancel`] asks the kernel to cancel operations by the
//!    keys [`HandleOps::select`] returned (by OVERLAPPED, by handle, by issuing
//!    thread: rule 6). It never waits for their completion and never reports
//!    "nothing found": that answer is `HandleOps::select`'s.
//!
//! # What a driver must never do
//!
//! - run a user callback, or count starts, or decide whether a packet gets a
//!   callback (that is the core's state machine);
//! - deliver two packets for one operation, or one for an operation that was
//!   `CompletedNow` or `FailedNow`;
//! - touch a buffer after delivering its packet, or free it before;
//! - block the caller of `cancel` until the cancelled operation completes;
//! - reach into another driver.
//!
//! Buffers and addresses in a [`Submission`] are the caller's and stay valid
//! until the packet is delivered (rule 10): that is why `submit` is unsafe.

use crate::io_object::CompletionTarget;
use crate::sync::Mutex;
use crate::{Completion, Win32Error};
use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;
use std::fmt;
use std::thread::ThreadId;

/// An OS handle as the driver sees it: a file descriptor on Unix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawHandle(pub u64);

/// What kind of object a handle is; it decides how a 0-byte read reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandleKind {
    /// A regular file (positioned reads; 0 bytes at the end is `ERROR_HANDLE_EOF`).
    File,
    /// A pipe (0 bytes means the writer is gone: `ERROR_BROKEN_PIPE`).
    Pipe,
    /// A stream socket (0 bytes is a graceful close: success with 0 bytes).
    StreamSocket,
    /// A datagram socket (0 bytes is an empty datagram: success).
    DatagramSocket,
}

/// The operation to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Read into the buffer; at `offset` for files, the stream position otherwise.
    Read {
        /// Byte offset (files).
        offset: Option<u64>,
    },
    /// Write the buffer; at `offset` for files.
    Write {
        /// Byte offset (files).
        offset: Option<u64>,
    },
    /// Receive a datagram and its source address (into `addr`).
    RecvFrom,
    /// Send a datagram to the address in `addr`.
    SendTo,
    /// Accept a connection; the new handle is the completion's byte count.
    Accept,
    /// Connect to the address in `addr`.
    Connect,
}

/// A socket address in the OS's own layout (`sockaddr_storage` on Unix),
/// with room for the driver's per-operation header.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct AddrBuf {
    /// The raw bytes.
    pub bytes: [u8; 128],
    /// How many of them are meaningful.
    pub len: u32,
    /// The driver's, for the operation this address belongs to (a `msghdr`
    /// and its `iovec` on Linux): it lives exactly as long as the address
    /// must, so a datagram operation needs no allocation of the driver's.
    /// Callers leave it alone.
    pub scratch: [u64; ADDR_SCRATCH_WORDS],
}

/// Words of [`AddrBuf::scratch`] (128 bytes: a Linux `msghdr` and `iovec`
/// take 72).
pub const ADDR_SCRATCH_WORDS: usize = 16;

impl Default for AddrBuf {
    fn default() -> Self {
        AddrBuf {
            bytes: [0; 128],
            len: 128,
            scratch: [0; ADDR_SCRATCH_WORDS],
        }
    }
}

impl fmt::Debug for AddrBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AddrBuf({} bytes)", self.len)
    }
}

/// One operation handed to a driver.
#[derive(Debug)]
pub struct Submission {
    /// The OS handle.
    pub handle: RawHandle,
    /// What kind of handle (for result mapping).
    pub handle_kind: HandleKind,
    /// What to do.
    pub kind: OpKind,
    /// The data buffer (may be null with `len` 0).
    pub buf: *mut u8,
    /// Its length.
    pub len: usize,
    /// The address buffer for `RecvFrom`, `SendTo`, `Connect` (else null).
    pub addr: *mut AddrBuf,
    /// The OVERLAPPED identity the completion reports.
    pub overlapped: usize,
    /// The handle's in-flight table; the driver registers the operation here
    /// (with its own key) if it goes `Pending`, and removes it before delivery.
    pub ops: std::sync::Arc<HandleOps>,
    /// The thread that issued it (for `cancel_io`).
    pub thread: ThreadId,
    /// The handle is in skip-completion-on-success mode: an operation that
    /// finishes at once ends the issuing call with no packet, so the caller
    /// gains most from `Issued::CompletedNow`. A driver that sometimes
    /// prefers `Pending` where it could finish at once (to batch system
    /// calls) should finish at once when this is set.
    pub skip_on_success: bool,
}

/// What happened to a submission at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    /// In flight; one packet will be delivered.
    Pending,
    /// Finished during submission; no packet will come from the driver.
    CompletedNow {
        /// The result.
        status: Win32Error,
        /// Bytes transferred.
        bytes: usize,
    },
    /// Never started; no packet.
    FailedNow(Win32Error),
}

/// The contract every emulated driver implements. See the module docs.
pub trait Driver: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and `tpio probe` (`"io_uring"`, `"mio"`).
    fn name(&self) -> &'static str;

    /// Issues `op`.
    ///
    /// # Safety
    /// `op.buf[..op.len]` and `*op.addr` (when not null) must stay valid, and
    /// not be accessed by the caller in a conflicting way, until the packet is
    /// delivered (or, for `CompletedNow`/`FailedNow`, until this returns).
    /// `target` is where the packet goes if the operation is `Pending`. With
    /// `CompletedNow` or `FailedNow` the driver drops it before `submit`
    /// returns, on the calling thread; dropped any other way (after a
    /// `Pending`, later, or elsewhere) the core diagnoses a lost packet
    /// (`Misuse::DriverLostPacket`) and delivers `ERROR_INTERNAL_ERROR` in
    /// its place, when the target came from `IoObject::issue_with`.
    #[allow(unsafe_code)] // the contract itself: the caller keeps buffers alive
    unsafe fn submit(&self, op: Submission, target: CompletionTarget) -> Issued;

    /// Requests cancellation of the operations with these keys (from
    /// [`HandleOps::select`]). Must not wait for them to complete.
    fn cancel(&self, keys: &[u64]);

    /// `handle` is about to be closed, and no operation on it is in flight:
    /// a driver that keeps state of a handle past its operations (a
    /// readiness registration, say) drops it now, before the number can be
    /// reused. The caller (the facade, as its handle goes) calls it once;
    /// a driver must stay correct for handles closed without it (a handle
    /// number met again with another [`HandleOps`] is a new handle). The
    /// default does nothing.
    fn closing(&self, handle: RawHandle) {
        let _ = handle;
    }
}

/// What a Win32-shaped issuing call returns, after rule 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueOutcome {
    /// `FALSE` + `ERROR_IO_PENDING`: one callback will come.
    Pending,
    /// `TRUE`: done at once with these bytes; a callback comes unless the
    /// handle skips completion on success.
    Done {
        /// Bytes transferred.
        bytes: usize,
        /// True when a callback will still run for it.
        callback: bool,
    },
}

/// Rule 2, once for every backend: turns what a driver said about a
/// submission into what the caller sees, delivering the packet for a
/// synchronous success (through `target`, taken like the submission's) unless
/// `skip_on_success`. The caller must `cancel`
/// (CancelThreadpoolIo) after `Err(_)` and after `Done { callback: false, .. }`.
pub fn settle(
    issued: Issued,
    target: Option<CompletionTarget>,
    overlapped: usize,
    skip_on_success: bool,
) -> Result<IssueOutcome, Win32Error> {
    match issued {
        Issued::Pending => Ok(IssueOutcome::Pending),
        Issued::FailedNow(e) => Err(e),
        Issued::CompletedNow { status, .. } if !status.is_success() => Err(status),
        Issued::CompletedNow { status, bytes } => {
            let callback = !skip_on_success;
            if let (true, Some(t)) = (callback, target) {
                t.complete(Completion {
                    overlapped,
                    status,
                    bytes,
                });
            }
            Ok(IssueOutcome::Done { bytes, callback })
        }
    }
}

/// Maps a raw transfer result (`Ok(bytes)` or `Err(errno-mapped code)`) of a
/// read to what Windows reports for that kind of handle: 0 bytes from a file
/// is `ERROR_HANDLE_EOF`, from a pipe `ERROR_BROKEN_PIPE`; from a socket it is
/// a graceful close (success, 0 bytes). A write to a stream socket that
/// Linux fails with `EPIPE` (mapped to `ERROR_BROKEN_PIPE`, a pipe's code no
/// socket call returns) is `WSAECONNRESET`: Linux says `ECONNRESET` for a
/// reset connection's first failing send and `EPIPE` for every later one,
/// where Windows keeps saying `WSAECONNRESET` (observed under Wine,
/// `conformance_io::rule_3_sends_after_a_reset_keep_failing_with_wsaeconnreset`).
/// A send after this side's own `shutdown(SHUT_WR)` fails at issue with
/// `WSAESHUTDOWN` when the shutdown went through tpio
/// ([`HandleOps::check_not_shut`]); one made on the raw descriptor is
/// `EPIPE` here too, not told apart. Writes and non-empty reads pass through.
pub fn transfer_result(
    handle: HandleKind,
    kind: OpKind,
    requested: usize,
    raw: Result<usize, Win32Error>,
) -> (Win32Error, usize) {
    match raw {
        Err(Win32Error::BROKEN_PIPE)
            if handle == HandleKind::StreamSocket && matches!(kind, OpKind::Write { .. }) =>
        {
            (Win32Error::WSAECONNRESET, 0)
        }
        Err(e) => (e, 0),
        Ok(0) if requested > 0 && matches!(kind, OpKind::Read { .. }) => match handle {
            HandleKind::File => (Win32Error::HANDLE_EOF, 0),
            HandleKind::Pipe => (Win32Error::BROKEN_PIPE, 0),
            HandleKind::StreamSocket | HandleKind::DatagramSocket => (Win32Error::SUCCESS, 0),
        },
        Ok(n) => (Win32Error::SUCCESS, n),
    }
}

/// Rule 3: what an operation that finished while it was being issued
/// reports: [`transfer_result`], except that a write to a pipe whose
/// reader is gone fails at issue with `ERROR_NO_DATA` (232, "the pipe is
/// being closed"); one already pending when the reader goes fails with
/// `ERROR_BROKEN_PIPE` (109), as a read whose writer is gone does (Wine's
/// kernel32 pipe tests, which pass on Windows, check both; so does
/// `conformance_io` on every backend). Linux says `EPIPE` for either. The
/// drivers call this for a result they have before `submit` returns, and
/// [`transfer_result`] for one they deliver later.
pub fn issue_result(
    handle: HandleKind,
    kind: OpKind,
    requested: usize,
    raw: Result<usize, Win32Error>,
) -> (Win32Error, usize) {
    match (handle, kind, raw) {
        (HandleKind::Pipe, OpKind::Write { .. }, Err(Win32Error::BROKEN_PIPE)) => {
            (Win32Error::NO_DATA, 0)
        }
        _ => transfer_result(handle, kind, requested, raw),
    }
}

/// Which in-flight operations of a handle a cancel request means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelScope {
    /// `CancelIoEx(h, ov)`: those issued with this OVERLAPPED.
    Overlapped(usize),
    /// `CancelIoEx(h, NULL)`: all of them.
    All,
    /// `CancelIo(h)`: those issued by this thread.
    Thread(ThreadId),
}

/// Which way an operation moves data, for ordering on stream handles: an
/// operation may complete "at once" only when none of the same direction
/// is in flight on its handle (Windows completes one handle's reads, and its
/// writes, in issue order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read, receive, accept.
    In,
    /// Write, send, connect.
    Out,
}

impl OpKind {
    /// The direction of this operation.
    pub fn direction(self) -> Direction {
        match self {
            OpKind::Read { .. } | OpKind::RecvFrom | OpKind::Accept => Direction::In,
            OpKind::Write { .. } | OpKind::SendTo | OpKind::Connect => Direction::Out,
        }
    }
}

/// One in-flight entry: OVERLAPPED identity, issuing thread, direction.
type Entry = (usize, ThreadId, Direction);

/// The in-flight operations of one handle, for cancellation (rule 6) and
/// ordering. Owned by the handle; the driver inserts and removes its keys.
#[derive(Default)]
pub struct HandleOps {
    ops: Mutex<Table>,
    /// The driver's own per-handle word (see [`HandleOps::driver_hint`]).
    hint: std::sync::atomic::AtomicU32,
    /// The directions its socket was shut down in ([`HandleOps::shut_down`]):
    /// bit 0 receives, bit 1 sends.
    shut: std::sync::atomic::AtomicU8,
}

/// The entries, and how many of them go each way (so that
/// [`HandleOps::busy`] is a lookup, not a scan, on the issuing path). A
/// handle has one or two operations in flight most of the time: they are
/// kept inside the handle (`few`), with no allocation per operation (a hash
/// table took a block of about 150 bytes at a handle's first operation;
/// W4's memory per outstanding operation, `spec/benchmark.md`). A handle
/// with more — a file read at depth 64 — moves them all to `many`, a hash
/// table, and keeps using it, so a completion is never a scan of 64 (W1 with
/// a scan read 2–10 % lower in three alternating runs, near this VM's
/// noise).
#[derive(Default)]
struct Table {
    few: SmallVec<[(u64, Entry); INLINE_OPS]>,
    many: HashMap<u64, Entry>,
    ins: usize,
    outs: usize,
}

/// Operations a handle keeps inline.
const INLINE_OPS: usize = 2;

impl Table {
    /// Adds or replaces `key`'s entry; returns the one it replaced.
    fn insert(&mut self, key: u64, entry: Entry) -> Option<Entry> {
        if let Some(slot) = self.few.iter_mut().find(|(k, _)| *k == key) {
            return Some(std::mem::replace(&mut slot.1, entry));
        }
        if self.many.capacity() == 0 && self.few.len() < INLINE_OPS {
            self.few.push((key, entry));
            return None;
        }
        if !self.few.is_empty() {
            // Spilling: from now on every entry lives in `many` (an
            // `extend` per insert, even of nothing, cost W1 0.6 % of its CPU).
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(key, entry)
    }

    fn remove(&mut self, key: u64) -> Option<Entry> {
        match self.few.iter().position(|(k, _)| *k == key) {
            Some(i) => Some(self.few.remove(i).1),
            None => self.many.remove(&key),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &Entry)> {
        let few = self.few.iter().map(|(k, e)| (*k, e));
        few.chain(self.many.iter().map(|(k, e)| (*k, e)))
    }

    fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }

    fn count(&mut self, dir: Direction) -> &mut usize {
        match dir {
            Direction::In => &mut self.ins,
            Direction::Out => &mut self.outs,
        }
    }
}

impl HandleOps {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an operation (driver key, OVERLAPPED identity, issuing
    /// thread); its direction counts as [`Direction::In`].
    pub fn insert(&self, key: u64, overlapped: usize, thread: ThreadId) {
        self.insert_dir(key, overlapped, thread, Direction::In);
    }

    /// Registers an operation with its direction. Returns how many
    /// operations of that direction were in flight before it (a driver
    /// that keeps a stream's operations in issue order pushes only the
    /// first: `tpio_uring`'s table).
    pub fn insert_dir(
        &self,
        key: u64,
        overlapped: usize,
        thread: ThreadId,
        dir: Direction,
    ) -> usize {
        let mut t = self.ops.lock();
        if let Some(old) = t.insert(key, (overlapped, thread, dir)) {
            *t.count(old.2) -= 1;
        }
        let ahead = *t.count(dir);
        *t.count(dir) += 1;
        ahead
    }

    /// Unregisters it (before its packet is delivered). True if it was there.
    pub fn remove(&self, key: u64) -> bool {
        let mut t = self.ops.lock();
        match t.remove(key) {
            Some(e) => {
                *t.count(e.2) -= 1;
                true
            }
            None => false,
        }
    }

    /// How many operations are in flight.
    pub fn len(&self) -> usize {
        self.ops.lock().len()
    }

    /// True when none are in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The handle's socket was shut down (`shutdown`) for receives
    /// (`read`), sends (`write`) or both; directions already shut stay so.
    pub fn shut_down(&self, read: bool, write: bool) {
        let bits = u8::from(read) | u8::from(write) << 1;
        self.shut
            .fetch_or(bits, std::sync::atomic::Ordering::Release);
    }

    /// Rule 3: an operation issued in a direction its socket was shut down
    /// in fails at issue with `WSAESHUTDOWN` (10058), as `WSASend` after
    /// `shutdown(SD_SEND)` and `WSARecv` after `shutdown(SD_RECEIVE)` do on
    /// Windows. Linux would fail such a send with `EPIPE` (109, or 10054
    /// through [`transfer_result`]) and complete such a receive with 0
    /// bytes, a graceful close.
    pub fn check_not_shut(&self, kind: OpKind) -> Result<(), Win32Error> {
        let bit = match kind.direction() {
            Direction::In => 1,
            Direction::Out => 2,
        };
        if self.shut.load(std::sync::atomic::Ordering::Acquire) & bit != 0 {
            Err(Win32Error::WSAESHUTDOWN)
        } else {
            Ok(())
        }
    }

    /// A word the driver may keep per handle for its own heuristics (the
    /// io_uring driver counts reads to send straight to the ring after one
    /// that would have blocked). The core never reads or writes it, and no
    /// rule may depend on it.
    pub fn driver_hint(&self) -> &std::sync::atomic::AtomicU32 {
        &self.hint
    }

    /// True when an operation of direction `dir` is in flight.
    pub fn busy(&self, dir: Direction) -> bool {
        *self.ops.lock().count(dir) > 0
    }

    /// True when an operation with this OVERLAPPED identity is in flight
    /// (reusing it for another operation now is misuse).
    pub fn contains_overlapped(&self, overlapped: usize) -> bool {
        self.ops.lock().iter().any(|(_, e)| e.0 == overlapped)
    }

    /// Rule 6: the keys a cancel request targets. `Overlapped` and `All` with
    /// nothing matching are `ERROR_NOT_FOUND`; `Thread` with nothing matching
    /// succeeds with no keys (`CancelIo` does).
    pub fn select(&self, scope: CancelScope) -> Result<Vec<u64>, Win32Error> {
        let t = self.ops.lock();
        let keys: Vec<u64> = match scope {
            CancelScope::Overlapped(ov) => t
                .iter()
                .filter(|(_, e)| e.0 == ov)
                .map(|(k, _)| k)
                .collect(),
            CancelScope::All => t.iter().map(|(k, _)| k).collect(),
            CancelScope::Thread(th) => t
                .iter()
                .filter(|(_, e)| e.1 == th)
                .map(|(k, _)| k)
                .collect(),
        };
        if keys.is_empty() && !matches!(scope, CancelScope::Thread(_)) {
            return Err(Win32Error::NOT_FOUND);
        }
        Ok(keys)
    }
}

impl fmt::Debug for HandleOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleOps")
            .field("in_flight", &self.len())
            .finish()
    }
}

/// `CancelIoEx` / `CancelIo` over any driver: selects by rule 6, then asks the
/// driver to cancel. Returns what the Win32 call returns.
pub fn cancel_io(
    driver: &dyn Driver,
    ops: &HandleOps,
    scope: CancelScope,
) -> Result<(), Win32Error> {
    let keys = ops.select(scope)?;
    if !keys.is_empty() {
        driver.cancel(&keys);
    }
    Ok(())
}
