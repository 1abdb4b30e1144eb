//! What every overlapped handle shares: the OS object (its fd), its kind and
//! access, its in-flight table, its skip-completion-on-success flag, its
//! binding to one TP_IO, and the one function that issues an operation on it.
//!
//! Owns the fd's lifetime: [`HandleCore`] is shared (`Arc`) by the user's
//! handle, the TP_IO bound to it and every operation in flight, and closes
//! the fd only when the last of them is gone, so the kernel never sees a
//! closed — or reused — descriptor number under an operation. Dropping the
//! user's handle is `CloseHandle`: later issues fail with
//! `ERROR_INVALID_HANDLE`, operations in flight are cancelled (they complete
//! with 995), and the fd closes after their completions.
//!
//! This module never starts or cancels a TP_IO count (that is the safe
//! layer's or the raw-layer caller's job), and never touches a buffer.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use tpio_core::driver::{
    cancel_io, settle, AddrBuf, CancelScope, Driver, HandleKind, HandleOps, IssueOutcome, OpKind,
    RawHandle, Submission,
};
use tpio_core::{IoObject, Win32Error};

/// The OS object behind a handle (kept typed so the blocking helpers, such
/// as accept, can use std without unsafe fd juggling).
#[derive(Debug)]
pub(crate) enum Os {
    File(std::fs::File),
    Fd(OwnedFd),
    Tcp(std::net::TcpStream),
    Listener(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    Unix(StdUnixStream),
}

impl Os {
    fn raw_fd(&self) -> RawFd {
        match self {
            Os::File(f) => f.as_raw_fd(),
            Os::Fd(f) => f.as_raw_fd(),
            Os::Tcp(s) => s.as_raw_fd(),
            Os::Listener(s) => s.as_raw_fd(),
            Os::Udp(s) => s.as_raw_fd(),
            Os::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// Which layer's object a handle is bound to. The layers' packets carry
/// different things (a safe object's OVERLAPPED is its own operation box),
/// so the raw layer must never issue for a safe object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    Safe,
    Raw,
}

struct Binding {
    obj: Weak<IoObject>,
    layer: Layer,
}

/// The state shared by a handle, its TP_IO and its operations in flight.
#[doc(hidden)]
pub struct HandleCore {
    pub(crate) os: Os,
    fd: RawFd,
    pub(crate) kind: HandleKind,
    readable: bool,
    writable: bool,
    pub(crate) ops: Arc<HandleOps>,
    pub(crate) driver: Arc<dyn Driver>,
    /// The backend carrying this handle (handles it creates, such as
    /// accepted connections, share it).
    pub(crate) backend: crate::Backend,
    skip_on_success: AtomicBool,
    /// True once the user's handle is gone (`CloseHandle`). Issues hold the
    /// read side so that "closed" and "cancel all in flight" see every op.
    closed: RwLock<bool>,
    /// The TP_IO this handle is bound to (one per handle, for life, as on
    /// Windows); weak, so that closing the TP_IO is not delayed by it.
    binding: Mutex<Option<Binding>>,
}

impl HandleCore {
    /// Wraps an OS object, carried by `backend`; its access mode is read
    /// from the fd.
    pub(crate) fn new(
        os: Os,
        kind: HandleKind,
        backend: &crate::Backend,
    ) -> std::io::Result<Arc<HandleCore>> {
        let driver = Arc::clone(backend.driver());
        let fd = os.raw_fd();
        // SAFETY: F_GETFL on a descriptor we own (it is open: `os` owns it);
        // the call reads no memory of ours.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if fl < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mode = fl & libc::O_ACCMODE;
        Ok(Arc::new(HandleCore {
            os,
            fd,
            kind,
            readable: mode == libc::O_RDONLY || mode == libc::O_RDWR,
            writable: mode == libc::O_WRONLY || mode == libc::O_RDWR,
            ops: Arc::new(HandleOps::new()),
            driver,
            backend: backend.clone(),
            skip_on_success: AtomicBool::new(false),
            closed: RwLock::new(false),
            binding: Mutex::new(None),
        }))
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd
    }

    pub(crate) fn skip_on_success(&self) -> bool {
        self.skip_on_success.load(Ordering::Acquire)
    }

    /// Binds `io` to this handle (`CreateThreadpoolIo`'s association).
    /// A handle is bound at most once, for life: `ERROR_INVALID_PARAMETER`
    /// afterwards, as on Windows; `ERROR_INVALID_HANDLE` once closed.
    pub(crate) fn bind(&self, io: &Arc<IoObject>, layer: Layer) -> Result<(), Win32Error> {
        if *self.closed.read() {
            return Err(Win32Error::INVALID_HANDLE);
        }
        let mut b = self.binding.lock();
        if b.is_some() {
            return Err(Win32Error::INVALID_PARAMETER);
        }
        *b = Some(Binding {
            obj: Arc::downgrade(io),
            layer,
        });
        Ok(())
    }

    /// The raw-layer TP_IO bound to this handle, if it is still open.
    /// `ERROR_INVALID_PARAMETER` when the handle is bound to a safe
    /// [`ThreadpoolIo`](crate::ThreadpoolIo) (whose callback owns its
    /// packets' memory), `ERROR_INVALID_HANDLE` when unbound or closed.
    pub(crate) fn bound_raw(&self) -> Result<Arc<IoObject>, Win32Error> {
        match self.binding.lock().as_ref() {
            Some(b) if b.layer == Layer::Raw => b.obj.upgrade().ok_or(Win32Error::INVALID_HANDLE),
            Some(_) => Err(Win32Error::INVALID_PARAMETER),
            None => Err(Win32Error::INVALID_HANDLE),
        }
    }

    /// The checks Windows makes before an I/O call starts: the handle is
    /// open and of a kind the operation can use (`ERROR_INVALID_HANDLE`:
    /// accept on a listener, connect on a TCP stream, datagrams on a UDP
    /// socket) and has the access the operation needs
    /// (`ERROR_ACCESS_DENIED`; io_uring would report EBADF later, as a
    /// completion).
    ///
    /// `closed` is the caller's reading of the handle's closed flag (taken
    /// once: [`issue`](Self::issue) holds the read lock across the submit).
    fn check_issue(&self, kind: OpKind, closed: bool) -> Result<(), Win32Error> {
        if closed {
            return Err(Win32Error::INVALID_HANDLE);
        }
        let fits = match kind {
            OpKind::Read { .. } | OpKind::Write { .. } => true,
            OpKind::RecvFrom | OpKind::SendTo => self.kind == HandleKind::DatagramSocket,
            OpKind::Accept => matches!(self.os, Os::Listener(_)),
            OpKind::Connect => matches!(self.os, Os::Tcp(_)),
        };
        if !fits {
            // Windows fails AcceptEx/WSARecvFrom/… on the wrong kind of
            // handle at once (WSAENOTSOCK and friends); tpio's one code
            // for "not a handle this call can use" is 6.
            tracing::warn!(
                fd = self.fd,
                ?kind,
                handle = ?self.kind,
                "tpio: this operation needs another kind of handle"
            );
            return Err(Win32Error::INVALID_HANDLE);
        }
        let needs = match kind {
            OpKind::Read { .. } | OpKind::RecvFrom | OpKind::Accept => self.readable,
            OpKind::Write { .. } | OpKind::SendTo | OpKind::Connect => self.writable,
        };
        if !needs {
            return Err(Win32Error::ACCESS_DENIED);
        }
        self.ops.check_not_shut(kind)
    }

    /// Windows' checks ([`check_issue`](Self::check_issue)), then the
    /// driver's view of the operation. Offsets mean something for files
    /// only (Windows ignores them elsewhere). `ops` is the in-flight table
    /// the operation is registered in: the handle's, or a blocking call's
    /// own (which `CancelIo`/`CancelIoEx` never see).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submission(
        &self,
        closed: bool,
        kind: OpKind,
        buf: *mut u8,
        len: usize,
        addr: *mut AddrBuf,
        overlapped: usize,
        ops: Arc<HandleOps>,
    ) -> Result<Submission, Win32Error> {
        self.check_issue(kind, closed)?;
        let kind = match kind {
            OpKind::Read { .. } if self.kind != HandleKind::File => OpKind::Read { offset: None },
            OpKind::Write { .. } if self.kind != HandleKind::File => OpKind::Write { offset: None },
            k => k,
        };
        Ok(Submission {
            handle: RawHandle(self.fd as u64),
            handle_kind: self.kind,
            kind,
            buf,
            len,
            addr,
            overlapped,
            ops,
            thread: current_thread_id(),
            skip_on_success: self.skip_on_success(),
        })
    }

    /// Whether the user's handle is gone (`CloseHandle`).
    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.read()
    }

    /// Issues one operation for `io` (whose `start` the caller has done) and
    /// applies rule 2 ([`settle`]). On `Err` and on `Done { callback: false }`
    /// the caller must `cancel` and owns its memory again at once.
    ///
    /// # Safety
    /// `buf[..len]` and `*addr` (when not null) must stay valid, and be
    /// accessed by nobody else, until the operation's packet reaches `io`'s
    /// callback (or its `discard`), or — when this returns `Err` or
    /// `Done { callback: false }` — until this returns.
    pub(crate) unsafe fn issue(
        &self,
        kind: OpKind,
        buf: *mut u8,
        len: usize,
        addr: *mut AddrBuf,
        overlapped: usize,
        io: &IoObject,
    ) -> Result<IssueOutcome, Win32Error> {
        // Held across the submit, so that `close` (the writer) sees every
        // operation issued before it in the in-flight table.
        let closed = self.closed.read();
        let sub = self.submission(
            *closed,
            kind,
            buf,
            len,
            addr,
            overlapped,
            Arc::clone(&self.ops),
        )?;
        // The mode the driver was told is the one rule 2 applies.
        let skip = sub.skip_on_success;
        // The core watches the target: a driver that answers Pending and
        // then loses the packet is diagnosed, and the start is balanced.
        let issued = io.issue_with(overlapped, |target| {
            // SAFETY: the buffer and address obligations are this
            // function's own (passed through unchanged); the fd is open
            // while `self` lives, and every in-flight operation keeps an
            // `Arc<HandleCore>` (the callers' obligation), so it stays open
            // until the packet is delivered.
            unsafe { self.driver.submit(sub, target) }
        });
        drop(closed);
        let sync_target = matches!(
            issued,
            tpio_core::driver::Issued::CompletedNow { status, .. } if status.is_success()
        )
        .then(|| io.target());
        settle(issued, sync_target, overlapped, skip)
    }

    /// `CancelIoEx` / `CancelIo` on this handle.
    pub(crate) fn cancel(&self, scope: CancelScope) -> Result<(), Win32Error> {
        cancel_io(&*self.driver, &self.ops, scope)
    }

    /// `CloseHandle`: no more issues; operations in flight are cancelled.
    fn close(&self) {
        let mut closed = self.closed.write();
        *closed = true;
        match self.cancel(CancelScope::All) {
            Ok(()) | Err(Win32Error::NOT_FOUND) => {}
            Err(e) => tracing::warn!(fd = self.fd, error = ?e, "cancel at handle close failed"),
        }
    }
}

impl fmt::Debug for HandleCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("fd", &self.fd)
            .field("kind", &self.kind)
            .field("in_flight", &self.ops.len())
            .field("skip_on_success", &self.skip_on_success())
            .field("closed", &*self.closed.read())
            .finish()
    }
}

impl Drop for HandleCore {
    /// The last reference: no operation is in flight (each holds one), and
    /// the fd closes right after this. The driver drops what it kept of it.
    fn drop(&mut self) {
        self.driver.closing(RawHandle(self.fd as u64));
    }
}

/// The user's ownership of a handle: dropping it is `CloseHandle`.
pub(crate) struct Owner(pub(crate) Arc<HandleCore>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub(crate) mod sealed {
    /// Only tpio's handle types implement [`OverlappedHandle`](super::OverlappedHandle).
    pub trait Sealed {}
}

/// A handle tpio can issue overlapped operations on: [`File`](crate::File),
/// [`Pipe`](crate::Pipe), [`UnixStream`](crate::UnixStream),
/// [`TcpStream`](crate::TcpStream), [`TcpListener`](crate::TcpListener),
/// [`UdpSocket`](crate::UdpSocket). Sealed.
pub trait OverlappedHandle: sealed::Sealed + AsRawFd {
    #[doc(hidden)]
    fn core(&self) -> &Arc<HandleCore>;

    /// What kind of object this is (decides how a 0-byte read reads).
    fn kind(&self) -> HandleKind {
        self.core().kind
    }

    /// `SetFileCompletionNotificationModes(h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`:
    /// an operation that succeeds at once gets no callback (rule 2); the safe
    /// layer then hands its result back from the issuing call
    /// ([`Started::completed_now`](crate::Started::completed_now)). Both
    /// emulated backends complete at once what needs no waiting (a cached
    /// file read, a socket or pipe with data there).
    fn set_skip_completion_on_success(&self, on: bool) {
        self.core().skip_on_success.store(on, Ordering::Release);
    }

    /// Whether skip-completion-on-success is set.
    fn skip_completion_on_success(&self) -> bool {
        self.core().skip_on_success()
    }

    /// Operations issued on this handle whose completion has not arrived.
    fn in_flight(&self) -> usize {
        self.core().ops.len()
    }

    /// Synchronous `ReadFile` at the current position (streams; files use
    /// and advance their file position): blocks the calling thread until
    /// data arrives. Another thread's
    /// [`cancel_synchronous_io`](crate::cancel_synchronous_io) ends it with
    /// `ERROR_OPERATION_ABORTED` (995). End of a file is `Ok(0)`; a pipe
    /// whose writer is gone is `ERROR_BROKEN_PIPE` (109); a stream socket
    /// closed by its peer is `Ok(0)`.
    fn read_blocking(&self, buf: &mut [u8]) -> Result<usize, Win32Error> {
        // SAFETY: `buf` is borrowed for the whole call, which returns only
        // after the driver is done with it.
        unsafe {
            self.core().blocking(
                OpKind::Read { offset: None },
                buf.as_mut_ptr(),
                buf.len(),
                std::ptr::null_mut(),
            )
        }
    }

    /// Synchronous `ReadFile` at `offset` (files; other handles ignore it).
    /// Cancellable as [`read_blocking`](Self::read_blocking).
    fn read_at_blocking(&self, buf: &mut [u8], offset: u64) -> Result<usize, Win32Error> {
        // SAFETY: as in `read_blocking`.
        unsafe {
            self.core().blocking(
                OpKind::Read {
                    offset: Some(offset),
                },
                buf.as_mut_ptr(),
                buf.len(),
                std::ptr::null_mut(),
            )
        }
    }

    /// Synchronous `WriteFile` at the current position. Cancellable as
    /// [`read_blocking`](Self::read_blocking) while it waits (a full pipe).
    fn write_blocking(&self, buf: &[u8]) -> Result<usize, Win32Error> {
        // SAFETY: `buf` is borrowed for the whole call; a write only reads
        // it (the pointer is `*mut` for the driver's one signature).
        unsafe {
            self.core().blocking(
                OpKind::Write { offset: None },
                buf.as_ptr().cast_mut(),
                buf.len(),
                std::ptr::null_mut(),
            )
        }
    }

    /// Synchronous `WriteFile` at `offset` (files; other handles ignore it).
    fn write_at_blocking(&self, buf: &[u8], offset: u64) -> Result<usize, Win32Error> {
        // SAFETY: as in `write_blocking`.
        unsafe {
            self.core().blocking(
                OpKind::Write {
                    offset: Some(offset),
                },
                buf.as_ptr().cast_mut(),
                buf.len(),
                std::ptr::null_mut(),
            )
        }
    }
}

macro_rules! overlapped_handle {
    ($t:ty) => {
        impl $crate::handle::sealed::Sealed for $t {}
        impl $crate::handle::OverlappedHandle for $t {
            fn core(&self) -> &std::sync::Arc<$crate::handle::HandleCore> {
                &self.owner.0
            }
        }
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.owner.0.raw_fd()
            }
        }
    };
}
pub(crate) use overlapped_handle;

/// The calling thread's id (cancel_io's selector, rule 6), without
/// `thread::current()`'s reference count on every operation.
pub(crate) fn current_thread_id() -> std::thread::ThreadId {
    std::thread_local! {
        static ID: std::thread::ThreadId = std::thread::current().id();
    }
    ID.try_with(|id| *id)
        .unwrap_or_else(|_| std::thread::current().id())
}
