//! [`Record`]: the heap memory of one operation issued through kernel32 —
//! its `OVERLAPPED` (first field, so the record's address is the
//! OVERLAPPED's), its buffer, socket address and, for `AcceptEx`, the new
//! socket and address buffer.
//!
//! Owns the record's layout and the two ways its address crosses kernel32:
//! [`Record::leak`] before the issuing call, [`Record::reclaim`] once, by
//! whoever holds the operation's last word (its callback, or the issuing
//! call when the operation ended at once). It must never be freed while the
//! kernel may still write to it or a callback may still receive it; what
//! is never reclaimed is leaked (memory, never a use after free).

use std::net::SocketAddr;
use std::os::windows::io::OwnedSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::Networking::WinSock::SOCKADDR_STORAGE;
use windows_sys::Win32::System::Threading::CreateEventW;
use windows_sys::Win32::System::IO::OVERLAPPED;

use crate::kernel_handle::KernelHandle;
use crate::tp_io::IoCore;
use crate::winsock::SockAddr;

/// `STATUS_PENDING`: what `Internal` holds while the kernel has the operation.
pub(crate) const STATUS_PENDING: usize = 0x103;

/// Room for one address in `AcceptEx`'s output buffer.
pub(crate) const ACCEPT_ADDR_LEN: u32 = std::mem::size_of::<SOCKADDR_STORAGE>() as u32 + 16;

/// The operation to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `ReadFile` / `WSARecv`; at `offset` for files (the handle's own
    /// position when `None`).
    Read {
        /// Byte offset (files).
        offset: Option<u64>,
    },
    /// `WriteFile` / `WSASend`; at `offset` for files.
    Write {
        /// Byte offset (files).
        offset: Option<u64>,
    },
    /// `WSARecvFrom`: one datagram and its sender.
    RecvFrom,
    /// `WSASendTo`: one datagram to the address.
    SendTo(SocketAddr),
    /// `AcceptEx` on a listening socket.
    Accept,
    /// `ConnectEx` on an unconnected TCP socket.
    Connect(SocketAddr),
}

/// A manual-reset event, closed on drop.
#[derive(Debug)]
pub(crate) struct OwnedEvent(pub(crate) HANDLE);

// SAFETY: an event handle may be used and closed from any thread.
unsafe impl Send for OwnedEvent {}
// SAFETY: as above; only thread-safe kernel32 calls take it.
unsafe impl Sync for OwnedEvent {}

impl OwnedEvent {
    pub(crate) fn new() -> Result<OwnedEvent, tpio_core::Win32Error> {
        // SAFETY: unnamed manual-reset event, not signalled, no attributes.
        let h = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if h.is_null() {
            return Err(crate::error::last());
        }
        Ok(OwnedEvent(h))
    }
}

impl Drop for OwnedEvent {
    fn drop(&mut self) {
        // SAFETY: our event, closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// `AcceptEx`'s new socket and output buffer.
pub(crate) struct AcceptSlot {
    pub(crate) socket: Option<OwnedSocket>,
    pub(crate) out: [u8; 2 * ACCEPT_ADDR_LEN as usize],
    /// Signalled by the kernel when the accept is over (the packet still
    /// goes to the port): lets an accept whose packet kernel32 will drop
    /// close its connection (see `tp_io`).
    pub(crate) done: Option<OwnedEvent>,
}

/// One operation's memory, from issue to its last word.
#[repr(C)]
pub(crate) struct Record {
    /// First: the record's address is the OVERLAPPED's.
    pub(crate) ov: OVERLAPPED,
    pub(crate) kind: OpKind,
    /// The safe layer's buffer (owned; handed back in the completion).
    pub(crate) buf: Vec<u8>,
    /// What the call reads or writes: `buf`'s heap block, or a blocking
    /// caller's slice.
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
    /// `WSARecv` / `WSARecvFrom` flags (kept here: valid until completion).
    pub(crate) flags: u32,
    pub(crate) addr: SockAddr,
    pub(crate) accept: Option<AcceptSlot>,
    pub(crate) tag: u64,
    /// The object's epoch when the start was made (`tp_io`).
    pub(crate) epoch: u64,
    /// Keeps the object alive while kernel32 may deliver this operation.
    pub(crate) io: Option<Arc<IoCore>>,
    /// Keeps the handle open while the operation is in the kernel.
    pub(crate) handle: Option<Arc<KernelHandle>>,
}

// SAFETY: `ptr` points into `buf` (owned) or into a blocking caller's
// slice that outlives the call; the record moves between the issuing
// thread and the pool worker that completes it, never shared.
unsafe impl Send for Record {}

impl Record {
    /// A record for `kind` over `buf` (`ptr`/`len` = the Vec's block).
    pub(crate) fn new(kind: OpKind, mut buf: Vec<u8>, tag: u64) -> Box<Record> {
        let (ptr, len) = (buf.as_mut_ptr(), buf.len());
        let mut r = Box::new(Record {
            ov: OVERLAPPED::default(),
            kind,
            buf,
            ptr,
            len,
            flags: 0,
            addr: SockAddr::default(),
            accept: None,
            tag,
            epoch: 0,
            io: None,
            handle: None,
        });
        match kind {
            OpKind::SendTo(a) | OpKind::Connect(a) => r.addr = crate::winsock::to_sockaddr(a),
            _ => {}
        }
        r
    }

    /// Sets the file position of a read or write (`Offset`/`OffsetHigh`).
    pub(crate) fn set_offset(&mut self, offset: u64) {
        self.ov.Anonymous.Anonymous.Offset = offset as u32;
        self.ov.Anonymous.Anonymous.OffsetHigh = (offset >> 32) as u32;
    }

    /// Hands the record to the kernel's side; its address is the
    /// OVERLAPPED's (the operation's identity).
    pub(crate) fn leak(self: Box<Self>) -> *mut Record {
        Box::into_raw(self)
    }

    /// Takes a record back.
    ///
    /// # Safety
    /// `p` came from [`leak`](Self::leak), the kernel is done with it, no
    /// callback can still receive it, and it is reclaimed only once.
    pub(crate) unsafe fn reclaim(p: *mut Record) -> Box<Record> {
        // SAFETY: the caller's obligations.
        unsafe { Box::from_raw(p) }
    }
}

/// Reads (`None`) or writes `Internal` of the OVERLAPPED at `p`, as an
/// atomic: the kernel writes it while other threads poll it.
///
/// # Safety
/// `p` points to a live (or leaked) record.
unsafe fn internal(p: *const Record, set: Option<usize>) -> usize {
    // SAFETY: `Internal` is the first usize of the record (repr(C), the
    // OVERLAPPED first); an AtomicUsize has usize's layout; the caller keeps
    // the record alive for this call.
    let a = unsafe { &*p.cast::<AtomicUsize>() };
    match set {
        Some(v) => {
            a.store(v, Ordering::Release);
            v
        }
        None => a.load(Ordering::Acquire),
    }
}

/// True while the kernel has not finished the operation at `p`.
///
/// # Safety
/// `p` points to a live (or leaked) record.
pub(crate) unsafe fn kernel_pending(p: *const Record) -> bool {
    // SAFETY: the caller's obligation.
    unsafe { internal(p, None) == STATUS_PENDING }
}

/// Marks the operation at `p` pending before its issuing call, as
/// kernel32's `ReadFile` does, so a concurrent `in_flight` counts it.
///
/// # Safety
/// `p` points to a live record not yet handed to the kernel.
pub(crate) unsafe fn mark_pending(p: *mut Record) {
    // SAFETY: the caller's obligation.
    unsafe { internal(p, Some(STATUS_PENDING)) };
}
