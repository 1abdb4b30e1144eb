//! [`Pipe`] and [`pipe()`] on Windows: a connected pair of overlapped
//! named-pipe ends in byte mode (`\\.\pipe\tpio-<pid>-<n>`, through
//! `CreateNamedPipeW` and `CreateFileW`).
//!
//! Owns creating the pair. It must never do I/O itself. A read whose
//! writer is gone completes with `ERROR_BROKEN_PIPE` (109), kernel32's code.

use std::os::windows::io::{AsRawHandle, RawHandle};

use tpio_core::driver::HandleKind;
use tpio_windows::kernel_handle::{self, KernelHandle, OsObject};

use crate::windows::handle::{overlapped_handle, Owner};
use crate::Backend;

/// One end of a pipe. The read end has read access only, the write end
/// write access only: issuing the other way fails at once with
/// `ERROR_ACCESS_DENIED`.
pub struct Pipe {
    pub(crate) owner: Owner,
}

/// Creates a pipe: `(read end, write end)`.
pub fn pipe() -> std::io::Result<(Pipe, Pipe)> {
    pipe_on(&Backend::process()?)
}

/// Creates a pipe; on Windows `backend` is kernel32.
pub fn pipe_on(_backend: &Backend) -> std::io::Result<(Pipe, Pipe)> {
    let (rd, wr) = kernel_handle::pipe_pair()?;
    let end = |f| Pipe {
        owner: Owner(KernelHandle::new(OsObject::File(f), HandleKind::Pipe)),
    };
    Ok((end(rd), end(wr)))
}

impl AsRawHandle for Pipe {
    fn as_raw_handle(&self) -> RawHandle {
        self.owner.0.raw() as RawHandle
    }
}

overlapped_handle!(Pipe);
