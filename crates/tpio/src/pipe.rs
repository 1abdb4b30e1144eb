//! [`Pipe`] and [`pipe()`]: anonymous pipes for overlapped I/O.
//!
//! Owns creating the pair. It must never do I/O itself. A 0-byte read from
//! a pipe whose writer is gone completes with `ERROR_BROKEN_PIPE` (109), as
//! on Windows.

use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd};

use tpio_core::driver::HandleKind;

use crate::handle::{overlapped_handle, HandleCore, Os, Owner};
use crate::Backend;

/// One end of an anonymous pipe. The read end has read access only, the
/// write end write access only: issuing the other way fails at once with
/// `ERROR_ACCESS_DENIED`, as `ReadFile` on a write-only handle does.
pub struct Pipe {
    pub(crate) owner: Owner,
}

/// Creates a pipe: `(read end, write end)` (`CreatePipe`, overlapped),
/// carried by the process's backend.
pub fn pipe() -> std::io::Result<(Pipe, Pipe)> {
    pipe_on(&Backend::process()?)
}

/// Creates a pipe carried by `backend`.
pub fn pipe_on(backend: &Backend) -> std::io::Result<(Pipe, Pipe)> {
    let (rd, wr) = cloexec_pipe()?;
    let rd = Pipe {
        owner: Owner(HandleCore::new(Os::Fd(rd), HandleKind::Pipe, backend)?),
    };
    let wr = Pipe {
        owner: Owner(HandleCore::new(Os::Fd(wr), HandleKind::Pipe, backend)?),
    };
    Ok((rd, wr))
}

/// A close-on-exec pipe: `pipe2(O_CLOEXEC)` where it exists.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by
    // nobody else; each is wrapped exactly once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec pipe: `pipe` then `FD_CLOEXEC` (macOS has no `pipe2`).
#[cfg(any(target_os = "macos", target_os = "ios"))]
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe requires.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe succeeded, so both descriptors are open and owned by
    // nobody else; each is wrapped exactly once (and closed on error).
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&pair.0, &pair.1] {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETFD on a descriptor we own; it reads no memory of ours.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(pair)
}

overlapped_handle!(Pipe);

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pipe").field(&self.owner).finish()
    }
}
