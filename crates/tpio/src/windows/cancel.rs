//! `CancelIoEx` and `CancelIo` on tpio handles (rule 6), on kernel32.
//!
//! Owns the mapping from the safe layer's call to kernel32's:
//! `cancel_io_ex(h, Some(ov))` is `CancelIoEx(h, ov)` and `cancel_io(h)` is
//! `CancelIo(h)`, answered by kernel32; `cancel_io_ex(h, None)` is
//! `CancelIoEx(h, ov)` for each operation tpio has in flight on `h`, so
//! tpio's blocking calls on the same handle are never touched (rule 7) and
//! "nothing to cancel" is `ERROR_NOT_FOUND`. It never waits for the
//! cancelled operations.

use tpio_core::Win32Error;

use crate::windows::handle::OverlappedHandle;
use crate::OverlappedId;

/// `CancelIoEx(h, ov)`: cancels the operation issued on `handle` with
/// `overlapped` (any thread's), or every operation tpio has in flight on
/// it with `None`. Nothing to match → `Err(ERROR_NOT_FOUND)`.
pub fn cancel_io_ex<H: OverlappedHandle + ?Sized>(
    handle: &H,
    overlapped: Option<OverlappedId>,
) -> Result<(), Win32Error> {
    match overlapped {
        Some(ov) => handle.core().cancel_overlapped(ov.0),
        None => handle.core().cancel_in_flight(),
    }
}

/// `CancelIo(h)`: cancels the operations on `handle` that the calling
/// thread issued; succeeds when there are none.
pub fn cancel_io<H: OverlappedHandle + ?Sized>(handle: &H) -> Result<(), Win32Error> {
    handle.core().cancel_thread()
}
