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

/// Where a pending operation waits, as its key says: the low 32 bits are
/// the descriptor (bit 31 clear: descriptors are non-negative `i32`s) or
/// [`FILE_KEY`], the high 32 a count, so a cancel finds the queue without a
/// table of keys (a global map took a lock and ~30 bytes per operation:
/// W4, `spec/benchmark.md`). The count — the descriptor's own for a stream,
/// the driver's for a file — is never 0 (no key is 0, which an [`Op`] uses
/// for "not pending") and wraps after 2^32 operations: a key repeats only if
/// an operation of its descriptor (of the file queue) is still pending by
/// then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// In the queue of this descriptor's slot.
    Stream(RawFd),
    /// In the file queue, or on a worker.
    File,
}

/// The low half of a file operation's key.
const FILE_KEY: u64 = 1 << 31;

impl Loc {
    pub(crate) fn key(self, n: u32) -> u64 {
        let low = match self {
            Loc::Stream(fd) => u64::from(fd as u32) & (FILE_KEY - 1),
            Loc::File => FILE_KEY,
        };
        u64::from(n.max(1)) << 32 | low
    }

    pub(crate) fn of(key: u64) -> Loc {
        match key as u32 as u64 {
            FILE_KEY => Loc::File,
            fd => Loc::Stream(fd as RawFd),
        }
    }
}

/// An operation in the driver's hands. Kept to 88 bytes (a queue holds it
/// inline: W4's memory per outstanding operation, `spec/benchmark.md`):
/// its key as the count alone (the rest is its descriptor, [`Loc`]), its
/// kind in one byte, lengths in 32 bits (a try moves at most
/// [`crate::attempt::MAX_RW`]), and one word for a file's offset or a
/// stream write's progress (no operation has both).
pub(crate) struct Op {
    /// Its key's count ([`Loc::key`]); 0 until the operation goes pending.
    count: u32,
    pub(crate) fd: RawFd,
    /// The length asked for, capped at what one system call moves.
    len: u32,
    pub(crate) handle_kind: HandleKind,
    what: What,
    /// Connect: the `connect(2)` call was made and is in progress.
    pub(crate) connecting: bool,
    /// A file's read or write at an offset: the offset. A stream write:
    /// the bytes written by earlier tries.
    pos: u64,
    pub(crate) buf: *mut u8,
    pub(crate) addr: *mut AddrBuf,
    pub(crate) overlapped: usize,
    pub(crate) ops: Arc<HandleOps>,
    pub(crate) target: CompletionTarget,
    /// The fault-injection plan of its driver (empty without the
    /// `fault-injection` feature).
    pub(crate) faults: crate::faults::Scope,
}

/// An [`OpKind`] without its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Read,
    ReadAt,
    Write,
    WriteAt,
    RecvFrom,
    SendTo,
    Accept,
    Connect,
}

/// What an [`Op`] is made of, but for the driver's own fields.
pub(crate) struct OpParts {
    pub(crate) fd: RawFd,
    pub(crate) handle_kind: HandleKind,
    pub(crate) kind: OpKind,
    pub(crate) buf: *mut u8,
    /// At most [`crate::attempt::MAX_RW`].
    pub(crate) len: usize,
    pub(crate) addr: *mut AddrBuf,
    pub(crate) overlapped: usize,
    pub(crate) ops: Arc<HandleOps>,
    pub(crate) target: CompletionTarget,
    pub(crate) faults: crate::faults::Scope,
}

impl Op {
    pub(crate) fn new(p: OpParts) -> Op {
        // A pipe or socket has no offset: its reads and writes go at the
        // stream's position whatever the caller said.
        let at = |o: Option<u64>| o.filter(|_| p.handle_kind == HandleKind::File);
        let (what, offset) = match p.kind {
            OpKind::Read { offset: None } => (What::Read, 0),
            OpKind::Read { offset: Some(o) } => match at(Some(o)) {
                Some(o) => (What::ReadAt, o),
                None => (What::Read, 0),
            },
            OpKind::Write { offset: None } => (What::Write, 0),
            OpKind::Write { offset: Some(o) } => match at(Some(o)) {
                Some(o) => (What::WriteAt, o),
                None => (What::Write, 0),
            },
            OpKind::RecvFrom => (What::RecvFrom, 0),
            OpKind::SendTo => (What::SendTo, 0),
            OpKind::Accept => (What::Accept, 0),
            OpKind::Connect => (What::Connect, 0),
        };
        Op {
            count: 0,
            fd: p.fd,
            len: u32::try_from(p.len.min(crate::attempt::MAX_RW)).unwrap_or(u32::MAX),
            handle_kind: p.handle_kind,
            what,
            connecting: false,
            pos: offset,
            buf: p.buf,
            addr: p.addr,
            overlapped: p.overlapped,
            ops: p.ops,
            target: p.target,
            faults: p.faults,
        }
    }

    /// Where it waits.
    pub(crate) fn loc(&self) -> Loc {
        match self.handle_kind {
            HandleKind::File => Loc::File,
            _ => Loc::Stream(self.fd),
        }
    }

    /// Makes it pending with its key's `count`; returns the key.
    pub(crate) fn pend(&mut self, count: u32) -> u64 {
        self.count = count.max(1);
        self.key()
    }

    /// The driver's key (in the handle's `HandleOps` while pending); 0
    /// until the operation goes pending.
    pub(crate) fn key(&self) -> u64 {
        match self.count {
            0 => 0,
            n => self.loc().key(n),
        }
    }

    /// What it does, and where (files).
    pub(crate) fn kind(&self) -> OpKind {
        let o = Some(self.pos);
        match self.what {
            What::Read => OpKind::Read { offset: None },
            What::ReadAt => OpKind::Read { offset: o },
            What::Write => OpKind::Write { offset: None },
            What::WriteAt => OpKind::Write { offset: o },
            What::RecvFrom => OpKind::RecvFrom,
            What::SendTo => OpKind::SendTo,
            What::Accept => OpKind::Accept,
            What::Connect => OpKind::Connect,
        }
    }

    /// The length asked for (capped at what one system call moves).
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Stream writes: bytes already written by earlier tries.
    pub(crate) fn done(&self) -> usize {
        debug_assert!(self.what == What::Write);
        self.pos as usize
    }

    /// Stream writes: `k` more bytes written (`done + k <= len`).
    pub(crate) fn advance(&mut self, k: usize) {
        debug_assert!(self.what == What::Write && self.done() + k <= self.len());
        self.pos += k as u64;
    }
}

// SAFETY: `buf` and `addr` name memory that the caller of `Driver::submit`
// keeps valid, and leaves alone, until the packet is delivered. An `Op` is
// owned by exactly one place at a time (a handle's queue, the file queue, a
// worker, the cancelled list), always behind a lock or by value, so the
// pointers are used by one thread at a time.
unsafe impl Send for Op {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_stays_small() {
        // W4's memory per outstanding operation (spec/benchmark.md); the
        // fault-injection plan adds a word.
        let most = if cfg!(feature = "fault-injection") {
            96
        } else {
            88
        };
        assert!(
            std::mem::size_of::<Op>() <= most,
            "{}",
            std::mem::size_of::<Op>()
        );
    }

    #[test]
    fn a_key_says_where_its_operation_waits() {
        for (n, loc) in [
            (1, Loc::Stream(0)),
            (7, Loc::Stream(i32::MAX)),
            (u32::MAX, Loc::Stream(3)),
            (2, Loc::File),
        ] {
            let key = loc.key(n);
            assert_ne!(key, 0);
            assert_eq!(Loc::of(key), loc, "key {key:#x}");
        }
        // A count of 0 (wrapped) counts as 1: fd 0's key is never 0.
        assert_eq!(Loc::Stream(0).key(0), Loc::Stream(0).key(1));
        assert_ne!(Loc::Stream(5).key(1), Loc::Stream(5).key(2));
        assert_ne!(Loc::File.key(1), Loc::Stream(1 << 31 >> 1).key(1));
    }
}
