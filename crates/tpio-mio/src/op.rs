//! One operation the driver holds between submission and delivery: what to
//! do, where its packet goes, and how far it got.
//!
//! Owns the record ([`Op`]) and its direction ([`Dir`]). It must never be
//! delivered twice: delivery consumes it ([`crate::driver::Shared::deliver`]).

use std::os::fd::RawFd;
use std::sync::Arc;

use tpio_core::driver::{AddrBuf, HandleKind, HandleOps, OpKind};
use tpio_core::CompletionTarget;

/// Which queue of its handle an operation waits in. One handle's reads
/// (and, separately, its writes) complete in issue order, as on Windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Read, receive, accept: waits for "readable".
    In,
    /// Write, send, connect: waits for "writable".
    Out,
}

impl Dir {
    pub(crate) fn of(kind: OpKind) -> Dir {
        match kind {
            OpKind::Read { .. } | OpKind::RecvFrom | OpKind::Accept => Dir::In,
            OpKind::Write { .. } | OpKind::SendTo | OpKind::Connect => Dir::Out,
        }
    }
}

/// An operation in the driver's hands.
pub(crate) struct Op {
    /// The driver's key (in the handle's `HandleOps` while pending); 0
    /// until the operation goes pending.
    pub(crate) key: u64,
    pub(crate) fd: RawFd,
    pub(crate) handle_kind: HandleKind,
    pub(crate) kind: OpKind,
    pub(crate) buf: *mut u8,
    /// The length asked for, capped at what one system call moves.
    pub(crate) len: usize,
    pub(crate) addr: *mut AddrBuf,
    pub(crate) overlapped: usize,
    pub(crate) ops: Arc<HandleOps>,
    pub(crate) target: CompletionTarget,
    /// Stream writes: bytes already written by earlier tries.
    pub(crate) done: usize,
    /// Connect: the `connect(2)` call was made and is in progress.
    pub(crate) connecting: bool,
    /// The fault-injection plan of its driver (empty without the
    /// `fault-injection` feature).
    pub(crate) faults: crate::faults::Scope,
}

// SAFETY: `buf` and `addr` name memory that the caller of `Driver::submit`
// keeps valid, and leaves alone, until the packet is delivered. An `Op` is
// owned by exactly one place at a time (a handle's queue, the file queue, a
// worker, the cancelled list), always behind a lock or by value, so the
// pointers are used by one thread at a time.
unsafe impl Send for Op {}
