//! The "at once" path: before an operation goes to the ring, try it with a
//! non-blocking system call, as Windows does (a cached file read, or a
//! socket with data waiting, completes inside `ReadFile`/`WSARecv`, and the
//! call returns `TRUE`).
//!
//! Owns the choice of which operations may complete at once and the
//! non-blocking call for each: `preadv2`/`pwritev2` with `RWF_NOWAIT` for
//! files and pipes, `recv`/`send`/`recvmsg`/`sendmsg` with `MSG_DONTWAIT`
//! for sockets. "Would block" (`EAGAIN`, or `EOPNOTSUPP` where the kernel
//! cannot promise not to block) sends the operation to the ring. This is a
//! fast path and a faithful one: the page-cache hit never leaves the
//! calling thread, so a callback that issues the next read keeps its own
//! core busy instead of waiting for the ring's thread.
//!
//! It must never let an operation overtake one of the same direction that
//! is already in flight on the handle (streams complete in issue order),
//! never block, and never try accept or connect (they have no per-call
//! non-blocking flag; they always go to the ring).

use std::mem;

use tpio_core::driver::{issue_result, AddrBuf, HandleKind, Issued, OpKind, Submission};
use tpio_core::{errno_to_win32, Win32Error};

use crate::nocancel;
use crate::table::Finish;

/// The outcome of a try: done (either way), or "use the ring".
pub(crate) enum Try {
    /// Finished during the call (success or failure).
    Done(Issued),
    /// Would block: submit to the ring.
    Ring,
    /// A pipe or stream socket write wrote this many bytes, fewer than
    /// asked: the rest goes to the ring.
    Partial(u32),
}

/// Tries `s` without blocking. `max` caps the transfer length.
///
/// # Safety
/// The buffer and address of `s` must be valid for the call (the submit
/// contract), and `s.handle` an open descriptor.
///
/// `faults` is the issuing driver's fault-injection scope.
pub(crate) unsafe fn try_now(s: &Submission, max: usize, faults: crate::faults::Scope) -> Try {
    let eligible = matches!(
        s.kind,
        OpKind::Read { .. } | OpKind::Write { .. } | OpKind::RecvFrom | OpKind::SendTo
    );
    if !eligible {
        return Try::Ring;
    }
    // Order matters on streams only: file operations carry their offsets.
    if s.handle_kind != HandleKind::File && s.ops.busy(s.kind.direction()) {
        return Try::Ring;
    }
    if let Some(errno) = crate::faults::try_now(faults) {
        return failed(s, errno);
    }
    let fd = s.handle.0 as i32;
    let len = s.len.min(max);
    let r: isize = match (s.kind, s.handle_kind) {
        (OpKind::Read { offset }, HandleKind::File | HandleKind::Pipe) => {
            let iov = libc::iovec {
                iov_base: s.buf.cast(),
                iov_len: len,
            };
            let off = offset.map_or(-1, |o| o as i64);
            // SAFETY: `iov` names the caller's buffer, valid for `len`
            // bytes of writes (this function's contract).
            unsafe { nocancel::preadv2(fd, &iov, off, libc::RWF_NOWAIT) }
        }
        (OpKind::Write { offset }, HandleKind::File | HandleKind::Pipe) => {
            let iov = libc::iovec {
                iov_base: s.buf.cast(),
                iov_len: len,
            };
            let off = offset.map_or(-1, |o| o as i64);
            let flags = match s.handle_kind {
                HandleKind::Pipe => libc::RWF_NOWAIT | crate::table::pipe_write_flags(),
                _ => libc::RWF_NOWAIT,
            };
            // SAFETY: as above, for reads of the caller's buffer.
            unsafe { nocancel::pwritev2(fd, &iov, off, flags) }
        }
        (OpKind::Read { .. }, _) => {
            // SAFETY: the caller's buffer, valid for `len` bytes of writes.
            unsafe { nocancel::recv(fd, s.buf, len, libc::MSG_DONTWAIT) }
        }
        (OpKind::Write { .. }, _) => {
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            // SAFETY: the caller's buffer, valid for `len` bytes of reads.
            unsafe { nocancel::send(fd, s.buf, len, flags) }
        }
        (OpKind::RecvFrom | OpKind::SendTo, _) => {
            if s.addr.is_null() {
                return Try::Done(Issued::FailedNow(Win32Error::INVALID_PARAMETER));
            }
            // SAFETY: the caller's buffer and address (this function's contract).
            unsafe { datagram(fd, s, len) }
        }
        _ => return Try::Ring,
    };
    if r < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return failed(s, errno);
    }
    if r == 0
        && s.len > 0
        && s.handle_kind == HandleKind::File
        && matches!(s.kind, OpKind::Read { .. })
    {
        // End of file: reported by the ring as a completion with 38, as
        // the mio driver (whose file reads always pend) reports it, so
        // both backends agree (Windows allows either; tpio picks one).
        return Try::Ring;
    }
    let stream_write = Finish::of(s.kind, s.handle_kind) == Finish::StreamWrite;
    if stream_write && r > 0 && (r as usize) < s.len {
        return Try::Partial(r as u32);
    }
    let (status, bytes) = issue_result(s.handle_kind, s.kind, s.len, Ok(r as usize));
    Try::Done(Issued::CompletedNow { status, bytes })
}

/// The non-blocking call for `s` failed with `errno`: "would block" (and
/// `EINTR`) go to the ring, anything else is the operation's result.
fn failed(s: &Submission, errno: i32) -> Try {
    if errno == libc::EAGAIN || errno == libc::EWOULDBLOCK || errno == libc::EOPNOTSUPP {
        return Try::Ring;
    }
    if errno == libc::EINTR {
        return Try::Ring;
    }
    let (status, _) = issue_result(s.handle_kind, s.kind, s.len, Err(map_errno(errno)));
    Try::Done(Issued::CompletedNow { status, bytes: 0 })
}

/// [`errno_to_win32`], reporting an errno the map does not know (it maps to
/// `ERROR_GEN_FAILURE`, and the map should grow).
pub(crate) fn map_errno(errno: i32) -> Win32Error {
    match tpio_core::errno_map::lookup(errno) {
        Some(w) => w,
        None => {
            tracing::warn!(
                errno,
                "tpio-uring: the kernel reported an errno the map does not know; \
                 reported as ERROR_GEN_FAILURE (31)"
            );
            errno_to_win32(errno)
        }
    }
}

/// `recvmsg`/`sendmsg` with `MSG_DONTWAIT`, the address in `*s.addr`.
///
/// # Safety
/// As [`try_now`], with `s.addr` not null.
unsafe fn datagram(fd: i32, s: &Submission, len: usize) -> isize {
    let a: *mut AddrBuf = s.addr;
    let mut iov = libc::iovec {
        iov_base: s.buf.cast(),
        iov_len: len,
    };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // SAFETY: `a` is valid (the caller's contract); taking a field's
    // address reads nothing.
    msg.msg_name = unsafe { std::ptr::addr_of_mut!((*a).bytes) }.cast();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if s.kind == OpKind::RecvFrom {
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as u32;
        // SAFETY: `msg` names the caller's buffer and address, both valid.
        let r = unsafe { nocancel::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if r >= 0 {
            // SAFETY: `a` is valid for writes (the caller's contract).
            unsafe { (*a).len = msg.msg_namelen };
        }
        r
    } else {
        // SAFETY: `a` is valid for reads (the caller's contract).
        msg.msg_namelen = unsafe { (*a).len };
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: `msg` names the caller's buffer and address, both valid.
        unsafe { nocancel::sendmsg(fd, &msg, flags) }
    }
}
