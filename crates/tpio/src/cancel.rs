//! `CancelIoEx` and `CancelIo` on tpio handles (rule 6).
//!
//! Owns only the mapping from the Win32 call to the core's
//! [`CancelScope`]; selection ("nothing to cancel") is the core's
//! [`HandleOps::select`](tpio_core::driver::HandleOps::select) and the
//! kernel request the driver's. It must never wait for the cancelled
//! operations: they complete later, with 995 and 0 bytes, or normally if
//! they finished first.

use tpio_core::driver::CancelScope;
use tpio_core::Win32Error;

use crate::handle::OverlappedHandle;
use crate::threadpool_io::OverlappedId;

/// `CancelIoEx(h, ov)`: cancels the operations on `handle` issued with
/// `overlapped` (any thread's), or all of them with `None`. Nothing in
/// flight to match → `Err(ERROR_NOT_FOUND)`.
pub fn cancel_io_ex<H: OverlappedHandle + ?Sized>(
    handle: &H,
    overlapped: Option<OverlappedId>,
) -> Result<(), Win32Error> {
    let scope = match overlapped {
        Some(ov) => CancelScope::Overlapped(ov.0),
        None => CancelScope::All,
    };
    handle.core().cancel(scope)
}

/// `CancelIo(h)`: cancels the operations on `handle` that the calling
/// thread issued; succeeds when there are none.
pub fn cancel_io<H: OverlappedHandle + ?Sized>(handle: &H) -> Result<(), Win32Error> {
    handle
        .core()
        .cancel(CancelScope::Thread(crate::handle::current_thread_id()))
}
