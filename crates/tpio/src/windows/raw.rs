//! The Win32-shaped layer on Windows, for code ported from Windows: the
//! same names as on Unix, each forwarding to the kernel32 call it is named
//! after. A [`TpIo`] is an opaque id, not a `PTP_IO`, so using one after
//! [`close_threadpool_io`] is `ERROR_INVALID_HANDLE` (and a `tracing`
//! event) instead of kernel32's use after free; [`Overlapped`] is
//! layout-identical to `OVERLAPPED` and goes to `ReadFile` / `WriteFile`
//! unchanged.
//!
//! Owns the table of live raw TP_IO ids. It must never own or free a
//! caller's buffer or OVERLAPPED, and never balance a start on the caller's
//! behalf.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tpio_core::Win32Error;
use tpio_windows::raw_io::RawIo;

pub use tpio_windows::raw_io::{Overlapped, STATUS_PENDING};

use crate::windows::handle::OverlappedHandle;
use crate::{CallbackEnvironment, CallbackInstance};

/// `PTP_IO`: an opaque id of a raw TP_IO object. After
/// [`close_threadpool_io`] every call with it fails with `ERROR_INVALID_HANDLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TpIo(u64);

/// `PTP_WIN32_IO_CALLBACK`: `(Instance, Context, Overlapped, IoResult,
/// NumberOfBytesTransferred, Io)`; `io_result` is kernel32's Win32 code.
pub type IoCallbackFn = fn(
    instance: &mut CallbackInstance<'_>,
    context: usize,
    overlapped: *mut Overlapped,
    io_result: u32,
    bytes: usize,
    io: TpIo,
);

static LIVE: RwLock<BTreeMap<u64, Arc<RawIo>>> = RwLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lookup(io: TpIo, call: &'static str) -> Result<Arc<RawIo>, Win32Error> {
    match LIVE.read().get(&io.0) {
        Some(e) => Ok(Arc::clone(e)),
        None => {
            tracing::warn!(
                io = io.0,
                call,
                "tpio raw layer: TP_IO used after close (or never created); \
                 rule 5: a closed TP_IO is gone, and this call did nothing"
            );
            Err(Win32Error::INVALID_HANDLE)
        }
    }
}

/// `CreateThreadpoolIo(handle, callback, context, env)`: one TP_IO per
/// handle (`ERROR_INVALID_PARAMETER` the second time, also across layers).
pub fn create_threadpool_io<H: OverlappedHandle + ?Sized>(
    handle: &H,
    callback: IoCallbackFn,
    context: usize,
    env: Option<&CallbackEnvironment>,
) -> Result<TpIo, Win32Error> {
    let io = TpIo(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let raw = RawIo::new(
        handle.core(),
        env,
        context,
        move |inst, ov, result, bytes| callback(inst, context, ov, result, bytes, io),
    )?;
    LIVE.write().insert(io.0, Arc::new(raw));
    Ok(io)
}

/// `StartThreadpoolIo(io)`.
pub fn start_threadpool_io(io: TpIo) -> Result<(), Win32Error> {
    lookup(io, "StartThreadpoolIo")?.start()
}

/// `CancelThreadpoolIo(io)`: with no start outstanding `ERROR_NOT_FOUND`
/// (kernel32 corrupts its count here; tpio does not call it).
pub fn cancel_threadpool_io(io: TpIo) -> Result<(), Win32Error> {
    lookup(io, "CancelThreadpoolIo")?.cancel()
}

/// `WaitForThreadpoolIoCallbacks(io, cancel_pending)` (rule 4). From inside
/// this object's own callback: `ERROR_POSSIBLE_DEADLOCK` instead of a hang.
pub fn wait_for_threadpool_io_callbacks(io: TpIo, cancel_pending: bool) -> Result<(), Win32Error> {
    lookup(io, "WaitForThreadpoolIoCallbacks")?.wait_for_callbacks(cancel_pending)
}

/// `CloseThreadpoolIo(io)` (rule 5): the id is dead at once.
pub fn close_threadpool_io(io: TpIo) -> Result<(), Win32Error> {
    let Some(e) = LIVE.write().remove(&io.0) else {
        tracing::warn!(
            io = io.0,
            "tpio raw layer: CloseThreadpoolIo twice; \
                 rule 5: a TP_IO is closed once, and the second close did nothing"
        );
        return Err(Win32Error::INVALID_HANDLE);
    };
    e.close()
}

/// `ReadFile(handle, buf, len, NULL, overlapped)` on a handle bound to a
/// raw TP_IO. `Ok(bytes)` = done at once (the callback still comes unless
/// the handle skips completion on success), `Err(ERROR_IO_PENDING)` = the
/// callback comes later, any other `Err` = failed at once: no callback, the
/// caller must [`cancel_threadpool_io`]. A handle bound to a safe
/// [`ThreadpoolIo`](crate::ThreadpoolIo) gives `ERROR_INVALID_PARAMETER`;
/// an unbound one, or one whose TP_IO is closed, `ERROR_INVALID_HANDLE`;
/// an OVERLAPPED whose operation is still pending, `ERROR_INVALID_PARAMETER`
/// (rule 10). A failure at once is written into the OVERLAPPED.
///
/// # Safety
/// `buf[..len]` valid for writes and `*overlapped` valid, neither freed nor
/// touched by the caller from the call until the operation's callback has
/// started (or, on failure at once, until this returns).
pub unsafe fn read_file<H: OverlappedHandle + ?Sized>(
    handle: &H,
    buf: *mut u8,
    len: u32,
    overlapped: *mut Overlapped,
) -> Result<usize, Win32Error> {
    // SAFETY: the caller's obligations are `read_file`'s.
    unsafe { tpio_windows::raw_io::read_file(handle.core(), buf, len, overlapped) }
}

/// `WriteFile(handle, buf, len, NULL, overlapped)`; as [`read_file`].
///
/// # Safety
/// As [`read_file`], with `buf[..len]` valid for reads.
pub unsafe fn write_file<H: OverlappedHandle + ?Sized>(
    handle: &H,
    buf: *const u8,
    len: u32,
    overlapped: *mut Overlapped,
) -> Result<usize, Win32Error> {
    // SAFETY: the caller's obligations are `write_file`'s.
    unsafe { tpio_windows::raw_io::write_file(handle.core(), buf, len, overlapped) }
}

/// `CancelIoEx(handle, overlapped)`, as kernel32 answers it (all of the
/// handle's operations with `None`).
pub fn cancel_io_ex<H: OverlappedHandle + ?Sized>(
    handle: &H,
    overlapped: Option<*const Overlapped>,
) -> Result<(), Win32Error> {
    match overlapped {
        Some(ov) => handle.core().cancel_overlapped(ov as usize),
        None => handle.core().cancel_all_kernel(),
    }
}

/// `CancelIo(handle)`: the calling thread's operations on `handle`.
pub fn cancel_io<H: OverlappedHandle + ?Sized>(handle: &H) -> Result<(), Win32Error> {
    handle.core().cancel_thread()
}

/// `SetFileCompletionNotificationModes(handle, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`.
pub fn set_file_completion_notification_modes<H: OverlappedHandle + ?Sized>(
    handle: &H,
    skip_completion_port_on_success: bool,
) {
    handle.set_skip_completion_on_success(skip_completion_port_on_success);
}

/// `GetOverlappedResult(handle, ov, &bytes, wait)`: `Ok(bytes)`, the
/// operation's error, or `ERROR_IO_INCOMPLETE` (996) while it is in flight
/// and `wait` is false.
pub fn get_overlapped_result<H: OverlappedHandle + ?Sized>(
    handle: &H,
    ov: &Overlapped,
    wait: bool,
) -> Result<usize, Win32Error> {
    get_overlapped_result_ex(handle, ov, if wait { None } else { Some(Duration::ZERO) })
}

/// `GetOverlappedResultEx(handle, ov, &bytes, ms, FALSE)` (`None`: forever):
/// `WAIT_TIMEOUT` (258) when the time runs out.
pub fn get_overlapped_result_ex<H: OverlappedHandle + ?Sized>(
    handle: &H,
    ov: &Overlapped,
    timeout: Option<Duration>,
) -> Result<usize, Win32Error> {
    tpio_windows::raw_io::get_overlapped_result(handle.core(), ov, timeout)
}
