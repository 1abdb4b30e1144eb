//! The at-once path's system calls, made with `syscall(2)` directly.
//!
//! glibc's wrappers for `preadv2`, `pwritev2`, `recv`, `send`, `recvmsg`
//! and `sendmsg` are POSIX cancellation points: each call enables and
//! disables asynchronous thread cancellation around the system call, which
//! measured 3 % of W1 (4 KiB cached reads) on the pool workers. tpio never
//! uses thread cancellation, and these calls never block (non-blocking
//! flags), so it makes the system calls itself. Each returns what the
//! kernel returned, `-1` with `errno` set on failure (as the wrappers do).
//!
//! This module must never be used for a call that can block: a blocking
//! call must stay a cancellation point for programs that use
//! `pthread_cancel`.

/// `preadv2(fd, iov, 1, offset, flags)`; `offset` −1 is the file position.
///
/// # Safety
/// `iov` must name memory valid for writes of its length.
pub(crate) unsafe fn preadv2(fd: i32, iov: &libc::iovec, offset: i64, flags: i32) -> isize {
    // SAFETY: the caller's contract; on 64-bit Linux the position is the
    // low word and the high word is ignored (passed as 0, as glibc does).
    unsafe {
        libc::syscall(
            libc::SYS_preadv2,
            fd,
            iov as *const libc::iovec,
            1,
            offset,
            0,
            flags,
        ) as isize
    }
}

/// `pwritev2(fd, iov, 1, offset, flags)`; `offset` −1 is the file position.
///
/// # Safety
/// `iov` must name memory valid for reads of its length.
pub(crate) unsafe fn pwritev2(fd: i32, iov: &libc::iovec, offset: i64, flags: i32) -> isize {
    // SAFETY: as for `preadv2`.
    unsafe {
        libc::syscall(
            libc::SYS_pwritev2,
            fd,
            iov as *const libc::iovec,
            1,
            offset,
            0,
            flags,
        ) as isize
    }
}

/// `recv(fd, buf, len, flags)`.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes.
pub(crate) unsafe fn recv(fd: i32, buf: *mut u8, len: usize, flags: i32) -> isize {
    // SAFETY: the caller's contract; recvfrom with no address is recv.
    unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf,
            len,
            flags,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        ) as isize
    }
}

/// `send(fd, buf, len, flags)`.
///
/// # Safety
/// `buf` must be valid for reads of `len` bytes.
pub(crate) unsafe fn send(fd: i32, buf: *const u8, len: usize, flags: i32) -> isize {
    // SAFETY: the caller's contract; sendto with no address is send.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf,
            len,
            flags,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        ) as isize
    }
}

/// `recvmsg(fd, msg, flags)`.
///
/// # Safety
/// `msg` and what it names must be valid as `recvmsg(2)` requires.
pub(crate) unsafe fn recvmsg(fd: i32, msg: *mut libc::msghdr, flags: i32) -> isize {
    // SAFETY: the caller's contract.
    unsafe { libc::syscall(libc::SYS_recvmsg, fd, msg, flags) as isize }
}

/// `sendmsg(fd, msg, flags)`.
///
/// # Safety
/// `msg` and what it names must be valid as `sendmsg(2)` requires.
pub(crate) unsafe fn sendmsg(fd: i32, msg: *const libc::msghdr, flags: i32) -> isize {
    // SAFETY: the caller's contract.
    unsafe { libc::syscall(libc::SYS_sendmsg, fd, msg, flags) as isize }
}
