//! Builders for the operations, as submission entries.
//!
//! Owns the mapping from "read at this offset", "recv", "accept", … to
//! io_uring SQEs. Building an [`Sqe`] is safe: it only records pointers.
//! Handing it to the kernel ([`crate::Ring::push`]) is what is unsafe,
//! because from then on the kernel may read or write the memory the
//! pointers name, until the operation's completion is reaped. This module
//! must never submit anything, nor set `user_data` (the ring does).

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

/// The `offset` meaning "the file's current position" (`-1`), for pipes,
/// sockets, character devices and other non-seekable files.
pub const CURRENT_POSITION: u64 = u64::MAX;

/// One operation ready to be pushed into a [`crate::Ring`].
#[derive(Clone, Debug)]
pub struct Sqe(pub(crate) squeue::Entry);

impl Sqe {
    /// Ask the kernel to skip the inline attempt and issue the operation
    /// from an io-wq worker straight away (`IOSQE_ASYNC`). Useful for reads
    /// known to block; it costs a thread hop otherwise.
    #[must_use]
    pub fn force_async(self) -> Sqe {
        Sqe(self.0.flags(squeue::Flags::ASYNC))
    }

    /// The io_uring opcode of this entry (for diagnostics).
    pub fn opcode(&self) -> u8 {
        self.0.get_opcode() as u8
    }
}

/// A no-op; completes with result 0.
pub fn nop() -> Sqe {
    Sqe(opcode::Nop::new().build())
}

/// `pread(fd, buf, len, offset)`; with [`CURRENT_POSITION`], `read(2)`.
///
/// The result is the byte count (0 at end of file) or `-errno`.
/// `buf` must stay valid for writes of `len` bytes until the completion.
pub fn read_at(fd: RawFd, buf: *mut u8, len: u32, offset: u64) -> Sqe {
    Sqe(opcode::Read::new(types::Fd(fd), buf, len)
        .offset(offset)
        .build())
}

/// `pwrite(fd, buf, len, offset)`; with [`CURRENT_POSITION`], `write(2)`.
///
/// `buf` must stay valid for reads of `len` bytes until the completion.
pub fn write_at(fd: RawFd, buf: *const u8, len: u32, offset: u64) -> Sqe {
    Sqe(opcode::Write::new(types::Fd(fd), buf, len)
        .offset(offset)
        .build())
}

/// `pwritev2(fd, buf, len, -1, flags)`: a write at the file position with
/// `RWF_*` flags (a pipe's with [`crate::probe::RWF_NOSIGNAL`]).
///
/// `buf` must stay valid for reads of `len` bytes until the completion.
pub fn write_flags(fd: RawFd, buf: *const u8, len: u32, flags: i32) -> Sqe {
    Sqe(opcode::Write::new(types::Fd(fd), buf, len)
        .offset(CURRENT_POSITION)
        .rw_flags(flags)
        .build())
}

/// `recv(fd, buf, len, flags)` on a socket.
pub fn recv(fd: RawFd, buf: *mut u8, len: u32, flags: i32) -> Sqe {
    Sqe(opcode::Recv::new(types::Fd(fd), buf, len)
        .flags(flags)
        .build())
}

/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19; `io_uring.h`): wait for
/// readiness before the first receive attempt.
const RECVSEND_POLL_FIRST: u16 = 1;

/// [`recv`] that skips the kernel's first non-blocking attempt and waits
/// for data straight away: for a receive that would very likely block
/// (saves a failed attempt in the kernel). Linux 5.19+; older kernels fail
/// it with `-EINVAL`.
pub fn recv_poll_first(fd: RawFd, buf: *mut u8, len: u32) -> Sqe {
    Sqe(opcode::Recv::new(types::Fd(fd), buf, len)
        .ioprio(RECVSEND_POLL_FIRST)
        .build())
}

/// `send(fd, buf, len, flags)` on a socket. Pass `libc::MSG_NOSIGNAL` to
/// get `-EPIPE` instead of `SIGPIPE` on a closed peer.
pub fn send(fd: RawFd, buf: *const u8, len: u32, flags: i32) -> Sqe {
    Sqe(opcode::Send::new(types::Fd(fd), buf, len)
        .flags(flags)
        .build())
}

/// `accept4(fd, addr, addrlen, flags)`; the result is the new socket's fd.
///
/// `addr` and `addrlen` may both be null; otherwise `*addrlen` holds the
/// size of the storage behind `addr`, and both must stay valid until the
/// completion. `flags` is e.g. `libc::SOCK_CLOEXEC`.
pub fn accept(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
    flags: i32,
) -> Sqe {
    Sqe(opcode::Accept::new(types::Fd(fd), addr, addrlen)
        .flags(flags)
        .build())
}

/// `connect(fd, addr, addrlen)`; `addr` must stay valid until the completion.
pub fn connect(fd: RawFd, addr: *const libc::sockaddr, addrlen: libc::socklen_t) -> Sqe {
    Sqe(opcode::Connect::new(types::Fd(fd), addr, addrlen).build())
}

/// `recvmsg(fd, msg, flags)`: for UDP `recv_from`, point `msg_name` at a
/// `sockaddr_storage`. The `msghdr`, its iovecs, the buffers and the name
/// storage are the caller's and must all stay valid until the completion.
pub fn recvmsg(fd: RawFd, msg: *mut libc::msghdr, flags: u32) -> Sqe {
    Sqe(opcode::RecvMsg::new(types::Fd(fd), msg)
        .flags(flags)
        .build())
}

/// `sendmsg(fd, msg, flags)`: for UDP `send_to`, point `msg_name` at the
/// destination address. Everything `msg` points to must stay valid until
/// the completion.
pub fn sendmsg(fd: RawFd, msg: *const libc::msghdr, flags: u32) -> Sqe {
    Sqe(opcode::SendMsg::new(types::Fd(fd), msg)
        .flags(flags)
        .build())
}
