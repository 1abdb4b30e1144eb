//! What an operation of the safe layer reports, on every OS: its identity
//! ([`OverlappedId`]), its end ([`Done`]), an issue that failed at once
//! ([`IoFailed`]) and one that was accepted ([`Started`]).
//!
//! Owns only these plain types, shared by the emulated facade (Unix) and
//! the kernel32 one (Windows) so both report operations in one shape; it
//! makes no call and holds no resource but the buffer and the accepted
//! connection it hands back.

use std::fmt;
use std::net::SocketAddr;

use tpio_core::Win32Error;

/// The identity of one operation (its OVERLAPPED's address): what
/// [`cancel_io_ex`](crate::cancel_io_ex) takes and [`Done`] reports. Like a
/// Win32 OVERLAPPED, the same value may name a new operation once this one
/// has completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverlappedId(pub usize);

/// A finished operation, as its callback sees it.
#[derive(Debug)]
pub struct Done {
    /// The tag the caller chose when issuing.
    pub tag: u64,
    /// The operation's identity.
    pub overlapped: OverlappedId,
    /// Bytes transferred, or why not: `OPERATION_ABORTED` (995) when
    /// cancelled, `HANDLE_EOF` (38) at the end of a file,
    /// `BROKEN_PIPE` (109) when a pipe's writer is gone, …
    pub result: Result<usize, Win32Error>,
    /// The buffer, back, at the length it was issued with (`result` says how
    /// many bytes are meaningful).
    pub buf: Vec<u8>,
    /// `recv_from`: the sender; `send_to` and `connect`: the destination;
    /// `accept`: the peer.
    pub addr: Option<SocketAddr>,
    /// `accept`: the new connection (carried by the listener's backend).
    pub accepted: Option<crate::TcpStream>,
}

impl Done {
    /// The Win32 view: the callback's `IoResult` (0 on success).
    pub fn status(&self) -> Win32Error {
        match self.result {
            Ok(_) => Win32Error::SUCCESS,
            Err(e) => e,
        }
    }

    /// The Win32 view: `NumberOfBytesTransferred` (0 on failure).
    pub fn bytes(&self) -> usize {
        self.result.unwrap_or(0)
    }
}

/// An issue that failed at once (rule 2): no callback will come; the buffer
/// is back. Converts into `std::io::Error` and `Win32Error` for `?`.
#[derive(Debug)]
pub struct IoFailed {
    /// Why (`ACCESS_DENIED` for a read on a write-only handle,
    /// `INVALID_HANDLE` after the handle was closed, …).
    pub error: Win32Error,
    /// The buffer, untouched.
    pub buf: Vec<u8>,
}

impl fmt::Display for IoFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operation failed at once: {}", self.error)
    }
}

impl std::error::Error for IoFailed {}

impl From<IoFailed> for Win32Error {
    fn from(e: IoFailed) -> Self {
        e.error
    }
}

impl From<IoFailed> for std::io::Error {
    fn from(e: IoFailed) -> Self {
        e.error.into()
    }
}

/// An issue that was accepted.
#[derive(Debug)]
pub struct Started {
    /// The operation's identity (for `cancel_io_ex`).
    pub overlapped: OverlappedId,
    /// `Some` when the operation completed at once on a handle in
    /// skip-completion-on-success mode: no callback will come, here is
    /// its result. `None`: exactly one callback will come.
    pub completed_now: Option<Done>,
}
