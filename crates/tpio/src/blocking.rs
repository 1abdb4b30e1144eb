//! Synchronous (blocking) calls that another thread can cancel with
//! [`cancel_synchronous_io`] (rule 7): `ReadFile`/`WriteFile` without an
//! OVERLAPPED, `recv`, `send`, `accept`.
//!
//! Owns the one way tpio blocks a thread in I/O: the call is issued through
//! the handle's driver like any operation, but its packet goes to a
//! [`CompletionTarget::for_status`] that the calling thread waits on, and
//! the thread registers a [`BlockingCall`] whose canceller cancels exactly
//! that operation through the driver. So the same code cancels a blocked
//! read on io_uring and on mio, with no signal that could land in user
//! code. The operation is kept out of the handle's in-flight table (it has
//! a private one): `CancelIo`/`CancelIoEx` are for overlapped operations
//! and never touch a blocking call, as rule 7 has it the other way round.
//!
//! It must never return before the driver is done with the caller's buffer
//! (a cancelled call still waits for its packet, which the cancel makes
//! prompt), and never leave a call uncancelled when the cancel raced with
//! the submission: the submission runs inside [`BlockingCall::issue`], which
//! a cancel waits for, so a cancel either comes first (the call is never
//! issued) or finds the operation in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tpio_core::driver::{cancel_io, AddrBuf, CancelScope, HandleKind, HandleOps, Issued, OpKind};
use tpio_core::{BlockingCall, CompletionTarget, OverlappedStatus, Win32Error};

pub use tpio_core::{cancel_synchronous_io, ThreadHandle};

use crate::handle::HandleCore;

/// Identities for blocking calls' operations (never an OVERLAPPED address:
/// odd numbers).
static NEXT_CALL: AtomicUsize = AtomicUsize::new(1);

impl HandleCore {
    /// Issues `kind` and blocks until it completes or is cancelled by
    /// `cancel_synchronous_io` (→ `ERROR_OPERATION_ABORTED`). Returns the
    /// bytes transferred (for `Accept`, the new descriptor).
    ///
    /// # Safety
    /// `buf[..len]` (read or written as `kind` says) and `*addr` (when not
    /// null) must be valid for the whole call; this function returns only
    /// after the driver is done with them.
    pub(crate) unsafe fn blocking(
        &self,
        kind: OpKind,
        buf: *mut u8,
        len: usize,
        addr: *mut AddrBuf,
    ) -> Result<usize, Win32Error> {
        let ops = Arc::new(HandleOps::new());
        let overlapped = NEXT_CALL.fetch_add(2, Ordering::Relaxed);
        let sub = self.submission(
            self.is_closed(),
            kind,
            buf,
            len,
            addr,
            overlapped,
            Arc::clone(&ops),
        )?;
        let status = Arc::new(OverlappedStatus::new());
        let driver = Arc::clone(&self.driver);
        let call = {
            let (ops, driver) = (Arc::clone(&ops), Arc::clone(&driver));
            BlockingCall::enter(move || {
                // Nothing registered means the operation finished at once
                // (or failed): there is nothing left to cancel.
                let _ = cancel_io(&*driver, &ops, CancelScope::All);
            })
        };
        let issued = call.issue(|| {
            // SAFETY: the buffer and address obligations are this function's
            // own; the fd is open while `self` lives, and `self` outlives
            // this call, which waits for the packet before returning.
            unsafe { driver.submit(sub, CompletionTarget::for_status(status.clone())) }
        })?;
        // A cancel from here on finds the operation in `ops` (the gate in
        // `BlockingCall::issue` ordered it after the submission).
        let raw = match issued {
            Issued::CompletedNow { status, bytes } => {
                if status.is_success() {
                    Ok(bytes)
                } else {
                    Err(status)
                }
            }
            Issued::FailedNow(e) => Err(e),
            Issued::Pending => status.get(true),
        };
        drop(call);
        match raw {
            // Synchronous ReadFile at the end of a file succeeds with 0 bytes.
            Err(Win32Error::HANDLE_EOF) if self.kind == HandleKind::File => Ok(0),
            r => r,
        }
    }
}
