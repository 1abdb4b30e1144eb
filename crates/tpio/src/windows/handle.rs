//! [`OverlappedHandle`] on Windows: what every handle type shares (its
//! `tpio_windows::kernel_handle::KernelHandle`), the blocking calls, and
//! the user's ownership ([`Owner`]: dropping it is `CloseHandle`).
//!
//! Owns only the mapping of the trait's methods to `tpio-windows`; it never
//! starts or cancels a TP_IO count and never touches a buffer after a call
//! returns.

use std::fmt;
use std::sync::Arc;

use tpio_core::driver::HandleKind;
use tpio_core::Win32Error;
use tpio_windows::kernel_handle::KernelHandle;
use tpio_windows::sync_call::{self, Buf};
use tpio_windows::OpKind;

/// The user's ownership of a handle: dropping it is `CloseHandle` (later
/// issues fail with `ERROR_INVALID_HANDLE`; operations in flight are
/// cancelled; the kernel handle closes after their completions).
pub(crate) struct Owner(pub(crate) Arc<KernelHandle>);

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

fn bytes(r: Result<sync_call::SyncDone, Win32Error>) -> Result<usize, Win32Error> {
    r.map(|d| d.bytes)
}

/// A handle tpio can issue overlapped operations on: [`File`](crate::File),
/// [`Pipe`](crate::Pipe), [`TcpStream`](crate::TcpStream),
/// [`TcpListener`](crate::TcpListener), [`UdpSocket`](crate::UdpSocket).
/// Sealed.
pub trait OverlappedHandle: sealed::Sealed {
    #[doc(hidden)]
    fn core(&self) -> &Arc<KernelHandle>;

    /// What kind of object this is.
    fn kind(&self) -> HandleKind {
        self.core().kind()
    }

    /// `SetFileCompletionNotificationModes(h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`:
    /// an operation that succeeds at once gets no callback (rule 2); the safe
    /// layer hands its result back from the issuing call
    /// ([`Started::completed_now`](crate::Started::completed_now)). Windows
    /// cannot turn the mode off again: `false` after `true` is logged and
    /// the mode stays.
    fn set_skip_completion_on_success(&self, on: bool) {
        if let Err(e) = self.core().set_skip_completion_on_success(on) {
            tracing::warn!(error = ?e, on, "tpio: SetFileCompletionNotificationModes refused");
        }
    }

    /// Whether skip-completion-on-success is set.
    fn skip_completion_on_success(&self) -> bool {
        self.core().skip_completion_on_success()
    }

    /// Operations issued on this handle whose kernel completion has not come.
    fn in_flight(&self) -> usize {
        self.core().in_flight()
    }

    /// Synchronous `ReadFile` at the current position (files: the handle's
    /// own position, advanced by the length asked for): blocks until data
    /// arrives; another thread's
    /// [`cancel_synchronous_io`](crate::cancel_synchronous_io) ends it with
    /// `ERROR_OPERATION_ABORTED` (995). End of a file is `Ok(0)`; a pipe
    /// whose writer is gone is `ERROR_BROKEN_PIPE` (109).
    fn read_blocking(&self, buf: &mut [u8]) -> Result<usize, Win32Error> {
        bytes(sync_call::call(
            self.core(),
            OpKind::Read { offset: None },
            Buf::In(buf),
        ))
    }

    /// Synchronous `ReadFile` at `offset` (files; other handles ignore it).
    fn read_at_blocking(&self, buf: &mut [u8], offset: u64) -> Result<usize, Win32Error> {
        bytes(sync_call::call(
            self.core(),
            OpKind::Read {
                offset: Some(offset),
            },
            Buf::In(buf),
        ))
    }

    /// Synchronous `WriteFile` at the current position.
    fn write_blocking(&self, buf: &[u8]) -> Result<usize, Win32Error> {
        bytes(sync_call::call(
            self.core(),
            OpKind::Write { offset: None },
            Buf::Out(buf),
        ))
    }

    /// Synchronous `WriteFile` at `offset` (files; other handles ignore it).
    fn write_at_blocking(&self, buf: &[u8], offset: u64) -> Result<usize, Win32Error> {
        bytes(sync_call::call(
            self.core(),
            OpKind::Write {
                offset: Some(offset),
            },
            Buf::Out(buf),
        ))
    }
}

macro_rules! overlapped_handle {
    ($t:ty) => {
        impl $crate::windows::handle::sealed::Sealed for $t {}
        impl $crate::windows::handle::OverlappedHandle for $t {
            fn core(&self) -> &std::sync::Arc<tpio_windows::kernel_handle::KernelHandle> {
                &self.owner.0
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($t)).field(&self.owner).finish()
            }
        }
    };
}
pub(crate) use overlapped_handle;
