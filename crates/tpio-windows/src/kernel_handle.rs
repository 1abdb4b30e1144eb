//! [`KernelHandle`]: one overlapped kernel object tpio issues on (a file, a
//! named-pipe end, a TCP or UDP socket), its kind, its binding to one TP_IO,
//! its skip-completion-on-success mode and the operations tpio has in
//! flight on it; and [`pipe_pair`], the named pipes behind `tpio::pipe()`.
//!
//! Owns the handle's lifetime: it is shared (`Arc`) by the user's object,
//! its TP_IO and every operation in the kernel, and closed (`CloseHandle` /
//! `closesocket`) only when the last of them is gone, so the kernel never
//! sees a closed — or reused — handle value under an operation. Closing the
//! user's object ([`KernelHandle::close`]) is `CloseHandle` as the program
//! sees it: later issues fail with `ERROR_INVALID_HANDLE` and operations in
//! flight are cancelled (`CancelIoEx`; they complete with 995).
//!
//! It never starts or cancels a TP_IO count and never frees a record.

use std::collections::HashSet;
use std::fmt;
use std::os::windows::io::{AsRawHandle, AsRawSocket, FromRawHandle, OwnedHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use tpio_core::driver::HandleKind;
use tpio_core::Win32Error;
use windows_sys::Win32::Foundation::{
    ERROR_IO_PENDING, ERROR_PIPE_CONNECTED, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, FILE_READ_ATTRIBUTES,
    OPEN_EXISTING, PIPE_ACCESS_INBOUND,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_BYTE, PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{WaitForSingleObject, INFINITE};
use windows_sys::Win32::System::WindowsProgramming::FILE_SKIP_COMPLETION_PORT_ON_SUCCESS;
use windows_sys::Win32::System::IO::{CancelIo, CancelIoEx, OVERLAPPED};

use crate::callback::Life;
use crate::cleanup_group::GroupMember;
use crate::error;
use crate::record::{kernel_pending, OpKind, OwnedEvent, Record};

/// The OS object behind a handle.
#[derive(Debug)]
pub enum OsObject {
    /// A file or a named-pipe end, opened with `FILE_FLAG_OVERLAPPED`.
    File(std::fs::File),
    /// A listening TCP socket.
    Listener(std::net::TcpListener),
    /// A TCP connection (or a bound socket not connected yet).
    Tcp(std::net::TcpStream),
    /// A UDP socket.
    Udp(std::net::UdpSocket),
}

impl OsObject {
    fn raw(&self) -> usize {
        match self {
            OsObject::File(f) => f.as_raw_handle() as usize,
            OsObject::Listener(s) => s.as_raw_socket() as usize,
            OsObject::Tcp(s) => s.as_raw_socket() as usize,
            OsObject::Udp(s) => s.as_raw_socket() as usize,
        }
    }
}

/// Which layer's TP_IO a handle is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `tpio::ThreadpoolIo`: its packets carry tpio's records.
    Safe,
    /// `tpio::raw`: its packets carry the caller's OVERLAPPEDs.
    Raw,
}

struct Binding {
    layer: Layer,
    object: Weak<dyn GroupMember>,
}

#[derive(Default)]
struct InFlight {
    /// Safe-layer records whose packet is expected.
    records: HashSet<usize>,
    /// Safe-layer records kernel32 stopped expecting (leaked): counted
    /// while the kernel still has them.
    abandoned: HashSet<usize>,
    /// Raw-layer OVERLAPPEDs whose callback is expected.
    raw: HashSet<usize>,
}

/// An overlapped kernel object and what tpio knows about it.
pub struct KernelHandle {
    os: OsObject,
    raw: usize,
    kind: HandleKind,
    closed: RwLock<bool>,
    binding: Mutex<Option<Binding>>,
    skip: AtomicBool,
    ops: Mutex<InFlight>,
    /// The position of offset-less file operations (overlapped handles
    /// have no file pointer of their own).
    position: AtomicU64,
}

impl KernelHandle {
    /// Wraps `os` (which must be open for overlapped I/O).
    pub fn new(os: OsObject, kind: HandleKind) -> Arc<KernelHandle> {
        Arc::new(KernelHandle {
            raw: os.raw(),
            os,
            kind,
            closed: RwLock::new(false),
            binding: Mutex::new(None),
            skip: AtomicBool::new(false),
            ops: Mutex::new(InFlight::default()),
            position: AtomicU64::new(0),
        })
    }

    /// The OS object.
    pub fn os(&self) -> &OsObject {
        &self.os
    }

    /// The `HANDLE` / `SOCKET` value.
    pub fn raw(&self) -> usize {
        self.raw
    }

    fn handle(&self) -> HANDLE {
        self.raw as HANDLE
    }

    /// What kind of object it is.
    pub fn kind(&self) -> HandleKind {
        self.kind
    }

    /// Whether the user's object is gone (`CloseHandle`).
    pub fn is_closed(&self) -> bool {
        *self.closed.read()
    }

    /// Held across an issue, so that [`close`](Self::close) sees it.
    pub(crate) fn issuing(&self) -> RwLockReadGuard<'_, bool> {
        self.closed.read()
    }

    /// Binds a TP_IO (`CreateThreadpoolIo`'s association): once per handle,
    /// for life, as on Windows (`ERROR_INVALID_PARAMETER` the second time,
    /// also across layers); `ERROR_INVALID_HANDLE` once closed.
    pub(crate) fn bind(
        &self,
        layer: Layer,
        object: Weak<dyn GroupMember>,
    ) -> Result<(), Win32Error> {
        if self.is_closed() {
            return Err(Win32Error::INVALID_HANDLE);
        }
        let mut b = self.binding.lock();
        if b.is_some() {
            return Err(Win32Error::INVALID_PARAMETER);
        }
        *b = Some(Binding { layer, object });
        Ok(())
    }

    /// Whether a free handle may be bound (checked before kernel32 is asked).
    pub(crate) fn check_unbound(&self) -> Result<(), Win32Error> {
        if self.is_closed() {
            return Err(Win32Error::INVALID_HANDLE);
        }
        if self.binding.lock().is_some() {
            return Err(Win32Error::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// For the raw layer's `ReadFile`: the handle is bound to a raw TP_IO
    /// that is still open. `ERROR_INVALID_PARAMETER` when it is bound to a
    /// safe one (whose callback owns its packets' memory),
    /// `ERROR_INVALID_HANDLE` when unbound, closed, or its TP_IO is closed.
    pub fn bound_raw(&self) -> Result<(), Win32Error> {
        if self.is_closed() {
            return Err(Win32Error::INVALID_HANDLE);
        }
        match self.binding.lock().as_ref() {
            Some(b) if b.layer == Layer::Raw => match b.object.upgrade() {
                Some(o) if *o.core().life.read() == Life::Open => Ok(()),
                _ => Err(Win32Error::INVALID_HANDLE),
            },
            Some(_) => Err(Win32Error::INVALID_PARAMETER),
            None => Err(Win32Error::INVALID_HANDLE),
        }
    }

    /// Windows' checks before an issue: the handle is open and of a kind
    /// the operation can use (`ERROR_INVALID_HANDLE`: accept needs a
    /// listener, connect a TCP socket, datagrams a UDP socket). Access is
    /// kernel32's to check (`ERROR_ACCESS_DENIED`).
    pub(crate) fn check_op(&self, kind: OpKind, closed: bool) -> Result<(), Win32Error> {
        if closed {
            return Err(Win32Error::INVALID_HANDLE);
        }
        let fits = match kind {
            OpKind::Read { .. } | OpKind::Write { .. } => !matches!(self.os, OsObject::Listener(_)),
            OpKind::RecvFrom | OpKind::SendTo(_) => matches!(self.os, OsObject::Udp(_)),
            OpKind::Accept => matches!(self.os, OsObject::Listener(_)),
            OpKind::Connect(_) => matches!(self.os, OsObject::Tcp(_)),
        };
        if fits {
            Ok(())
        } else {
            tracing::warn!(handle = self.raw, ?kind, kind_of_handle = ?self.kind,
                "tpio: this operation needs another kind of handle");
            Err(Win32Error::INVALID_HANDLE)
        }
    }

    /// The file position of an operation without an offset: files use and
    /// advance the handle's own position by the length asked for.
    pub(crate) fn position_for(&self, kind: OpKind, len: usize) -> Option<u64> {
        if self.kind != HandleKind::File {
            return None;
        }
        match kind {
            OpKind::Read { offset: Some(o) } | OpKind::Write { offset: Some(o) } => Some(o),
            OpKind::Read { offset: None } | OpKind::Write { offset: None } => {
                Some(self.position.fetch_add(len as u64, Ordering::AcqRel))
            }
            _ => None,
        }
    }

    /// `SetFileCompletionNotificationModes(h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`.
    /// Windows cannot turn the mode off again: `on == false` after it was
    /// set is `ERROR_NOT_SUPPORTED` and the mode stays.
    pub fn set_skip_completion_on_success(&self, on: bool) -> Result<(), Win32Error> {
        if !on {
            return if self.skip.load(Ordering::Acquire) {
                Err(Win32Error::NOT_SUPPORTED)
            } else {
                Ok(())
            };
        }
        crate::raw::set_file_completion_notification_modes(
            self.handle(),
            FILE_SKIP_COMPLETION_PORT_ON_SUCCESS,
        )
        .map_err(|e| error::from_io(&e))?;
        self.skip.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether skip-completion-on-success is set.
    pub fn skip_completion_on_success(&self) -> bool {
        self.skip.load(Ordering::Acquire)
    }

    pub(crate) fn track(&self, rec: usize) {
        self.ops.lock().records.insert(rec);
    }

    pub(crate) fn untrack(&self, rec: usize) {
        self.ops.lock().records.remove(&rec);
    }

    /// The record's packet will not come: it is watched until the kernel
    /// is done with it.
    pub(crate) fn abandon(&self, rec: usize) {
        let mut ops = self.ops.lock();
        ops.records.remove(&rec);
        ops.abandoned.insert(rec);
    }

    pub(crate) fn track_raw(&self, ov: usize) {
        self.ops.lock().raw.insert(ov);
    }

    pub(crate) fn untrack_raw(&self, ov: usize) {
        self.ops.lock().raw.remove(&ov);
    }

    /// Forgets the raw OVERLAPPEDs whose callbacks `wait_for_callbacks(true)`
    /// dropped (the raw layer cannot read a caller's OVERLAPPED later).
    pub(crate) fn clear_raw(&self) {
        self.ops.lock().raw.clear();
    }

    /// Operations tpio issued on this handle that the kernel has not
    /// finished (an OVERLAPPED's `Internal` is `STATUS_PENDING` until then),
    /// plus raw-layer operations whose callback has not run.
    pub fn in_flight(&self) -> usize {
        let mut ops = self.ops.lock();
        // SAFETY: every address in `records` is a live record (removed under
        // this lock before it is freed); abandoned ones are leaked.
        let live = ops
            .records
            .iter()
            .filter(|&&p| unsafe { kernel_pending(p as *const Record) })
            .count();
        // SAFETY: as above (leaked records).
        ops.abandoned
            .retain(|&p| unsafe { kernel_pending(p as *const Record) });
        live + ops.abandoned.len() + ops.raw.len()
    }

    /// `CancelIoEx(h, ov)`: `ERROR_NOT_FOUND` when no operation of this
    /// process on `h` was issued with `ov`.
    pub fn cancel_overlapped(&self, ov: usize) -> Result<(), Win32Error> {
        // SAFETY: CancelIoEx only compares the pointer with those of the
        // pending operations; a bad handle is an error, not UB.
        error::check(unsafe { CancelIoEx(self.handle(), ov as *const OVERLAPPED) })
    }

    /// `CancelIoEx(h, NULL)` as kernel32 answers it.
    pub fn cancel_all_kernel(&self) -> Result<(), Win32Error> {
        // SAFETY: as in `cancel_overlapped`, with no OVERLAPPED.
        error::check(unsafe { CancelIoEx(self.handle(), std::ptr::null()) })
    }

    /// The safe layer's `cancel_io_ex(h, None)`: `CancelIoEx(h, ov)` for
    /// every operation tpio has in flight on `h` — so tpio's blocking calls
    /// on the same handle (rule 7) are never touched.
    /// `ERROR_NOT_FOUND` when none was found.
    pub fn cancel_in_flight(&self) -> Result<(), Win32Error> {
        let keys: Vec<usize> = {
            let ops = self.ops.lock();
            let pending = |p: &&usize| {
                // SAFETY: as in `in_flight`.
                unsafe { kernel_pending(**p as *const Record) }
            };
            ops.records
                .iter()
                .filter(pending)
                .chain(ops.abandoned.iter().filter(pending))
                .chain(ops.raw.iter())
                .copied()
                .collect()
        };
        let mut found = false;
        for k in keys {
            match self.cancel_overlapped(k) {
                Ok(()) => found = true,
                Err(e) if e == Win32Error::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        if found {
            Ok(())
        } else {
            Err(Win32Error::NOT_FOUND)
        }
    }

    /// `CancelIo(h)`: the calling thread's operations on `h`.
    pub fn cancel_thread(&self) -> Result<(), Win32Error> {
        // SAFETY: takes a handle value only; a bad handle is an error.
        error::check(unsafe { CancelIo(self.handle()) })
    }

    /// `CloseHandle` as the program sees it: no more issues, operations in
    /// flight cancelled; the handle itself closes with the last reference.
    pub fn close(&self) {
        let mut closed = self.closed.write();
        *closed = true;
        let _ = self.cancel_all_kernel();
    }
}

impl fmt::Debug for KernelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("raw", &self.raw)
            .field("kind", &self.kind)
            .field("skip_on_success", &self.skip_completion_on_success())
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// A connected pair of named-pipe ends in byte mode, both overlapped:
/// `(read end, write end)`. The read end is the server
/// (`PIPE_ACCESS_INBOUND`: read access only), the write end the client
/// (`GENERIC_WRITE`): a read on the write end fails at once with
/// `ERROR_ACCESS_DENIED`, as on an anonymous pipe. The name is
/// `\\.\pipe\tpio-<pid>-<n>`.
pub fn pipe_pair() -> std::io::Result<(std::fs::File, std::fs::File)> {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        r"\\.\pipe\tpio-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let w = wide(&name);
    // SAFETY: a NUL-terminated name; no security attributes.
    let server = unsafe {
        CreateNamedPipeW(
            w.as_ptr(),
            PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            65536,
            65536,
            0,
            std::ptr::null(),
        )
    };
    if server == INVALID_HANDLE_VALUE {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new handle nobody else owns, wrapped exactly once.
    let server = std::fs::File::from(unsafe { OwnedHandle::from_raw_handle(server) });
    // SAFETY: as above; no template, no attributes.
    let client = unsafe {
        CreateFileW(
            w.as_ptr(),
            GENERIC_WRITE | FILE_READ_ATTRIBUTES,
            0,
            std::ptr::null(),
            OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED,
            std::ptr::null_mut(),
        )
    };
    if client == INVALID_HANDLE_VALUE {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new handle nobody else owns, wrapped exactly once.
    let client = std::fs::File::from(unsafe { OwnedHandle::from_raw_handle(client) });
    // The client is connected; ConnectNamedPipe confirms it (at once, with
    // ERROR_PIPE_CONNECTED). Neither end is bound to a port yet.
    let ev = OwnedEvent::new().map_err(std::io::Error::from)?;
    let mut ov = OVERLAPPED {
        hEvent: ev.0,
        ..Default::default()
    };
    // SAFETY: `ov` and its event outlive the call and, if it pends, the
    // wait below.
    let ok = unsafe { ConnectNamedPipe(server.as_raw_handle(), &mut ov) };
    if ok == 0 {
        let e = error::last();
        if e.code() == ERROR_IO_PENDING {
            // SAFETY: our event; `ov` stays alive until it is signalled.
            unsafe { WaitForSingleObject(ev.0, INFINITE) };
        } else if e.code() != ERROR_PIPE_CONNECTED {
            return Err(e.into());
        }
    }
    Ok((server, client))
}

/// A TCP socket for an overlapped `ConnectEx` to `to`: overlapped, of
/// `to`'s family, bound to the unspecified address (`ConnectEx` needs a
/// bound socket), not connected.
pub fn unconnected_tcp(to: &std::net::SocketAddr) -> Result<std::net::TcpStream, Win32Error> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    let s = crate::winsock::tcp_socket(to.is_ipv6())?;
    let any = if to.is_ipv6() {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    };
    crate::winsock::bind_to(s.as_raw_socket() as _, any)?;
    Ok(std::net::TcpStream::from(s))
}

/// Opens `path` with `options` plus `FILE_FLAG_OVERLAPPED` (any custom
/// flags of the options are replaced).
pub fn open_overlapped(
    path: &std::path::Path,
    options: &std::fs::OpenOptions,
) -> std::io::Result<std::fs::File> {
    use std::os::windows::fs::OpenOptionsExt;
    options
        .clone()
        .custom_flags(FILE_FLAG_OVERLAPPED)
        .open(path)
}
