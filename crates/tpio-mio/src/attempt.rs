//! One non-blocking try of an operation on a pipe or socket, and the
//! blocking call of a file operation on a worker.
//!
//! Owns every system call that moves bytes: `read`/`write` on pipes,
//! `recv`/`send`/`recvfrom`/`sendto` with `MSG_DONTWAIT` on sockets (so a
//! socket's own blocking mode is never changed for data), `accept` and
//! `connect` on descriptors made non-blocking first ([`set_nonblocking`]),
//! `pread`/`pwrite` on files. It must never block in [`attempt`] (a caller
//! holds its handle's queue lock), never report "would block" as a result,
//! and never touch a buffer outside `buf[..len]` and `*addr`.

use std::io;
use std::mem;
use std::os::fd::RawFd;

use tpio_core::driver::{HandleKind, OpKind};
use tpio_core::{errno_map, errno_to_win32, Win32Error};

use crate::op::Op;

/// The most one read or write call moves (Linux's own cap).
pub(crate) const MAX_RW: usize = 0x7fff_f000;

/// Flags for every `send`: no `SIGPIPE` where the OS has a per-call flag.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(any(target_os = "macos", target_os = "ios"))]
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT;

/// What one try did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Finished: the raw result (bytes, or the mapped error).
    Done(Result<usize, Win32Error>),
    /// Would block: wait for readiness and try again.
    WouldBlock,
}

/// `errno` of the last failed call.
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Maps an errno, reporting ones the table does not know (so it can grow).
pub(crate) fn map_errno(e: i32) -> Win32Error {
    if errno_map::lookup(e).is_none() {
        tracing::warn!(errno = e, "tpio-mio: errno not in the Win32 map");
    }
    errno_to_win32(e)
}

/// How one system call ended, with `EINTR` already retried.
enum Call {
    Ok(usize),
    Again,
    Err(i32),
}

impl Call {
    /// A failed call's outcome by its errno (`EINTR` aside).
    fn from_errno(e: i32) -> Call {
        if e == libc::EAGAIN || e == libc::EWOULDBLOCK {
            Call::Again
        } else {
            Call::Err(e)
        }
    }
}

/// Runs `f` (a system call returning -1 on failure) until it is not
/// interrupted.
fn call(mut f: impl FnMut() -> isize) -> Call {
    loop {
        let r = f();
        if r >= 0 {
            return Call::Ok(r as usize);
        }
        match errno() {
            libc::EINTR => continue,
            e if e == libc::EAGAIN || e == libc::EWOULDBLOCK => return Call::Again,
            e => return Call::Err(e),
        }
    }
}

/// Makes `fd` non-blocking (`O_NONBLOCK`), if it is not already: pipes
/// (which have no per-call flag), and sockets about to accept or connect.
pub(crate) fn set_nonblocking(fd: RawFd) -> Result<(), Win32Error> {
    // SAFETY: F_GETFL reads no memory of ours; a bad fd is EBADF.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Err(map_errno(errno()));
    }
    if fl & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: as above; F_SETFL takes an int.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(map_errno(errno()));
    }
    Ok(())
}

/// Whether `op` needs its descriptor in non-blocking mode ([`set_nonblocking`]).
pub(crate) fn needs_nonblocking_fd(handle: HandleKind, kind: OpKind) -> bool {
    handle == HandleKind::Pipe || matches!(kind, OpKind::Accept | OpKind::Connect)
}

/// One non-blocking try of a pipe or socket operation.
///
/// # Safety
/// `op.buf[..op.len]` and `*op.addr` (when not null) must be valid (the
/// submit contract), and `op.fd` open.
pub(crate) unsafe fn attempt(op: &mut Op) -> Attempt {
    if let Some(e) = crate::faults::try_now(op.faults) {
        return finish(Call::from_errno(e));
    }
    let fd = op.fd;
    let socket = op.handle_kind != HandleKind::Pipe;
    match op.kind() {
        OpKind::Read { .. } => {
            let (b, n) = (op.buf.cast::<libc::c_void>(), op.len());
            let r = if socket {
                // SAFETY: the caller's buffer, valid for `n` bytes of writes.
                call(|| unsafe { libc::recv(fd, b, n, libc::MSG_DONTWAIT) })
            } else {
                // SAFETY: as above; the pipe is non-blocking (set at submission).
                call(|| unsafe { libc::read(fd, b, n) })
            };
            finish(r)
        }
        OpKind::Write { .. } => {
            // Streams: a write completes only when all of it is written.
            while op.done() < op.len() || op.len() == 0 {
                // SAFETY: `done < len` (or len 0), so the rest of the
                // caller's buffer is in bounds.
                let b = unsafe { op.buf.add(op.done()) }.cast::<libc::c_void>();
                let n = op.len() - op.done();
                let r = if socket {
                    nosigpipe(fd);
                    // SAFETY: the caller's buffer, valid for `n` bytes of reads.
                    call(|| unsafe { libc::send(fd, b, n, SEND_FLAGS) })
                } else {
                    // SAFETY: as above; the pipe is non-blocking.
                    unsafe { pipe_write(fd, b, n) }
                };
                match r {
                    Call::Ok(0) if op.len() == 0 => return Attempt::Done(Ok(0)),
                    Call::Ok(0) => return Attempt::Done(Err(Win32Error::GEN_FAILURE)),
                    Call::Ok(k) => op.advance(k),
                    Call::Again => return Attempt::WouldBlock,
                    Call::Err(e) => return Attempt::Done(Err(map_errno(e))),
                }
            }
            Attempt::Done(Ok(op.done()))
        }
        // SAFETY: the caller's obligations, passed on.
        OpKind::RecvFrom => unsafe { recv_from(op) },
        // SAFETY: the caller's obligations, passed on.
        OpKind::SendTo => unsafe { send_to(op) },
        // SAFETY: the caller's obligations, passed on.
        OpKind::Accept => unsafe { accept(op) },
        // SAFETY: the caller's obligations, passed on.
        OpKind::Connect => unsafe { connect(op) },
    }
}

fn finish(r: Call) -> Attempt {
    match r {
        Call::Ok(n) => Attempt::Done(Ok(n)),
        Call::Again => Attempt::WouldBlock,
        Call::Err(e) => Attempt::Done(Err(map_errno(e))),
    }
}

/// # Safety
/// As [`attempt`]; `op.addr` is not null (checked at submission).
unsafe fn recv_from(op: &mut Op) -> Attempt {
    let a = op.addr;
    let mut alen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `a` is the caller's AddrBuf, valid for writes; taking a
    // field's address reads nothing.
    let name = unsafe { std::ptr::addr_of_mut!((*a).bytes) }.cast::<libc::sockaddr>();
    let (fd, b, n) = (op.fd, op.buf.cast::<libc::c_void>(), op.len());
    // SAFETY: the buffer is valid for `n` bytes of writes and `name` for
    // 128 (`alen`) bytes, both the caller's until delivery.
    let r = call(|| unsafe { libc::recvfrom(fd, b, n, libc::MSG_DONTWAIT, name, &mut alen) });
    if let Call::Ok(_) = r {
        // SAFETY: as above.
        unsafe { (*a).len = alen };
    }
    finish(r)
}

/// # Safety
/// As [`attempt`]; `op.addr` is not null (checked at submission).
unsafe fn send_to(op: &mut Op) -> Attempt {
    let a = op.addr;
    // SAFETY: the caller's AddrBuf, valid for reads.
    let alen = unsafe { (*a).len }.min(128);
    // SAFETY: as above; taking a field's address reads nothing.
    let name = unsafe { std::ptr::addr_of!((*a).bytes) }.cast::<libc::sockaddr>();
    let (fd, b, n) = (op.fd, op.buf.cast::<libc::c_void>(), op.len());
    nosigpipe(fd);
    // SAFETY: the buffer is valid for `n` bytes of reads and `name` for
    // `alen` (at most 128) bytes.
    finish(call(|| unsafe {
        libc::sendto(fd, b, n, SEND_FLAGS, name, alen as libc::socklen_t)
    }))
}

/// # Safety
/// As [`attempt`]; the listener is non-blocking (set at submission).
unsafe fn accept(op: &mut Op) -> Attempt {
    let a = op.addr;
    let (name, mut alen) = if a.is_null() {
        (std::ptr::null_mut(), 0)
    } else {
        // SAFETY: the caller's AddrBuf, valid for reads and writes; taking a
        // field's address reads nothing.
        let (p, l) = unsafe { (std::ptr::addr_of_mut!((*a).bytes), (*a).len.min(128)) };
        (p.cast::<libc::sockaddr>(), l as libc::socklen_t)
    };
    let lenp: *mut libc::socklen_t = if a.is_null() {
        std::ptr::null_mut()
    } else {
        &mut alen
    };
    let fd = op.fd;
    // SAFETY: `name` is null or the caller's 128-byte address buffer, with
    // `*lenp` its size.
    let r = call(|| unsafe { accept_cloexec(fd, name, lenp) } as isize);
    if let (Call::Ok(_), false) = (&r, a.is_null()) {
        // SAFETY: as above.
        unsafe { (*a).len = alen };
    }
    finish(r)
}

/// `accept4(SOCK_CLOEXEC)`: the new descriptor is blocking, like every
/// descriptor the facade hands a driver.
///
/// # Safety
/// `name`/`len` as for `accept(2)`.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
unsafe fn accept_cloexec(
    fd: RawFd,
    name: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> libc::c_int {
    // SAFETY: the caller's obligations.
    unsafe { libc::accept4(fd, name, len, libc::SOCK_CLOEXEC) }
}

/// `accept` then close-on-exec and blocking mode set by hand (where the
/// new socket inherits `O_NONBLOCK` from the listener).
///
/// # Safety
/// `name`/`len` as for `accept(2)`.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
unsafe fn accept_cloexec(
    fd: RawFd,
    name: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> libc::c_int {
    // SAFETY: the caller's obligations.
    let s = unsafe { libc::accept(fd, name, len) };
    if s >= 0 {
        // SAFETY: `s` is the descriptor just accepted, ours alone; fcntl
        // reads no memory of ours.
        unsafe {
            libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
            let fl = libc::fcntl(s, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(s, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
    }
    s
}

/// # Safety
/// As [`attempt`]; `op.addr` is not null and the socket non-blocking.
unsafe fn connect(op: &mut Op) -> Attempt {
    let fd = op.fd;
    if op.connecting {
        return connect_progress(fd);
    }
    let a = op.addr;
    // SAFETY: the caller's AddrBuf, valid for reads; taking a field's
    // address reads nothing.
    let (name, alen) = unsafe { (std::ptr::addr_of!((*a).bytes), (*a).len.min(128)) };
    // SAFETY: `name` is valid for `alen` (at most 128) bytes.
    let r = unsafe { libc::connect(fd, name.cast(), alen as libc::socklen_t) };
    if r == 0 {
        return Attempt::Done(Ok(0));
    }
    match errno() {
        // Under way (EINTR: it goes on in the background).
        libc::EINPROGRESS | libc::EINTR => {
            op.connecting = true;
            Attempt::WouldBlock
        }
        // A Unix socket's backlog is full: try the call again later.
        libc::EAGAIN => Attempt::WouldBlock,
        e => Attempt::Done(Err(map_errno(e))),
    }
}

/// Whether a connect under way has finished, without starting another:
/// `SO_ERROR` says how it failed; a peer address says it succeeded.
fn connect_progress(fd: RawFd) -> Attempt {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live locals of the sizes passed.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Attempt::Done(Err(map_errno(errno())));
    }
    if err != 0 {
        return Attempt::Done(Err(map_errno(err)));
    }
    // SAFETY: an all-zero sockaddr_storage is valid; it and `len` are live
    // locals of the sizes passed.
    let mut peer: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut plen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above.
    let r = unsafe {
        libc::getpeername(
            fd,
            (&mut peer as *mut libc::sockaddr_storage).cast(),
            &mut plen,
        )
    };
    if r == 0 {
        return Attempt::Done(Ok(0));
    }
    match errno() {
        libc::ENOTCONN => Attempt::WouldBlock,
        e => Attempt::Done(Err(map_errno(e))),
    }
}

/// macOS has no per-call "no SIGPIPE" flag: the socket option does it.
#[cfg(any(target_os = "macos", target_os = "ios"))]
fn nosigpipe(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live int of the size passed; a failure (not a
    // socket) only leaves the default.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&one as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(not(any(target_os = "macos", target_os = "ios")))]
fn nosigpipe(_fd: RawFd) {}

/// `RWF_NOSIGNAL` (Linux 6.18, `include/uapi/linux/fs.h`; not in `libc`
/// yet): the write fails with `EPIPE` without raising `SIGPIPE`.
#[cfg(target_os = "linux")]
const RWF_NOSIGNAL: i32 = 0x100;

/// 2 once the kernel refused `RWF_NOSIGNAL` (0 until then: nothing is
/// written to it per write, so no line is shared between writing threads).
#[cfg(target_os = "linux")]
static NOSIGNAL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// A write to a pipe that does not raise `SIGPIPE` when the reader is gone,
/// where the kernel allows (Linux 6.18+: `pwritev2` with `RWF_NOSIGNAL`; an
/// older kernel answers `EOPNOTSUPP` once and gets `write` from then on).
/// `WriteFile` never raises a signal; a process that did not ignore
/// `SIGPIPE` (a C host, a `cdylib`) would be killed.
///
/// # Safety
/// `b` must be valid for reads of `n` bytes.
#[cfg(target_os = "linux")]
unsafe fn pipe_write(fd: RawFd, b: *const libc::c_void, n: usize) -> Call {
    use std::sync::atomic::Ordering::Relaxed;
    if NOSIGNAL.load(Relaxed) != 2 {
        let iov = libc::iovec {
            iov_base: b.cast_mut(),
            iov_len: n,
        };
        // SAFETY: `iov` names the caller's buffer, valid for `n` bytes of
        // reads; offset −1 (low word; the high word is 0) is the position.
        let r = call(|| unsafe {
            libc::syscall(
                libc::SYS_pwritev2,
                fd,
                &iov as *const libc::iovec,
                1,
                -1i64,
                0,
                RWF_NOSIGNAL,
            ) as isize
        });
        match r {
            Call::Err(libc::EOPNOTSUPP) => NOSIGNAL.store(2, Relaxed),
            r => return r,
        }
    }
    // SAFETY: the caller's buffer, valid for `n` bytes of reads.
    call(|| unsafe { libc::write(fd, b, n) })
}

/// Elsewhere: `write` (the BSDs and macOS have no such flag).
///
/// # Safety
/// `b` must be valid for reads of `n` bytes.
#[cfg(not(target_os = "linux"))]
unsafe fn pipe_write(fd: RawFd, b: *const libc::c_void, n: usize) -> Call {
    // SAFETY: the caller's buffer, valid for `n` bytes of reads.
    call(|| unsafe { libc::write(fd, b, n) })
}

/// The blocking call of a file operation, on a worker: `pread`/`pwrite` at
/// the offset, or `read`/`write` at the file position. One call, as
/// io_uring makes one (a short read near the end is a short read).
///
/// # Safety
/// `op.buf[..op.len]` must be valid (the submit contract) and `op.fd` open.
pub(crate) unsafe fn run_file(op: &Op) -> Result<usize, Win32Error> {
    let (fd, b, n) = (op.fd, op.buf, op.len());
    let r = match op.kind() {
        OpKind::Read { offset: Some(o) } => {
            // SAFETY: the caller's buffer, valid for `n` bytes of writes.
            call(|| unsafe { libc::pread(fd, b.cast(), n, o as libc::off_t) })
        }
        OpKind::Read { offset: None } => {
            // SAFETY: as above.
            call(|| unsafe { libc::read(fd, b.cast(), n) })
        }
        OpKind::Write { offset: Some(o) } => {
            // SAFETY: the caller's buffer, valid for `n` bytes of reads.
            call(|| unsafe { libc::pwrite(fd, b.cast(), n, o as libc::off_t) })
        }
        OpKind::Write { offset: None } => {
            // SAFETY: as above.
            call(|| unsafe { libc::write(fd, b.cast(), n) })
        }
        _ => return Err(Win32Error::INVALID_PARAMETER),
    };
    match r {
        Call::Ok(k) => Ok(k),
        // A descriptor someone made non-blocking: Windows has no such state.
        Call::Again => Err(Win32Error::WSAEWOULDBLOCK),
        Call::Err(e) => Err(map_errno(e)),
    }
}
