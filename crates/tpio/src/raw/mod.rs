//! The Win32-shaped layer, for code ported from Windows: explicit
//! `StartThreadpoolIo` / `CancelThreadpoolIo`, a `#[repr(C)]`
//! [`Overlapped`] whose address is the operation's identity, and buffers
//! whose lifetime the caller guarantees. Each function carries its Win32
//! name and the caller's obligations.
//!
//! Owns the table of live raw TP_IO objects: a [`TpIo`] is an opaque id, not
//! a pointer, so using one after [`close_threadpool_io`] is diagnosed
//! (`ERROR_INVALID_HANDLE` and a `tracing` event) instead of being the heap
//! corruption it is on Windows; that is why only the calls that take raw
//! buffers ([`read_file`], [`write_file`]) are `unsafe`. It must never own
//! or free a caller's buffer or OVERLAPPED, and never balance a start on the
//! caller's behalf (that is what the safe layer is for).
//!
//! The protocol, as on Windows:
//!
//! ```no_run
//! use tpio::raw::*;
//! fn on_io(_i: &mut tpio::CallbackInstance<'_>, _ctx: usize, ov: *mut Overlapped,
//!          result: u32, bytes: usize, _io: TpIo) {
//!     // `ov` is the OVERLAPPED the read was issued with.
//! }
//! let (rd, _wr) = tpio::pipe()?;
//! let io = create_threadpool_io(&rd, on_io, 0, None)?;          // CreateThreadpoolIo
//! let mut ov = Box::new(Overlapped::default());
//! let mut buf = vec![0u8; 64];
//! start_threadpool_io(io)?;                                      // StartThreadpoolIo
//! // SAFETY: `buf` and `ov` outlive the callback (waited for below).
//! match unsafe { read_file(&rd, buf.as_mut_ptr(), buf.len() as u32, &mut *ov) } {
//!     Ok(_) => {}                                                // done; callback still comes
//!     Err(e) if e == tpio::Win32Error::IO_PENDING => {}          // callback comes later
//!     Err(_) => cancel_threadpool_io(io)?,                       // failed now: balance
//! }
//! # cancel_io_ex(&rd, Some(&*ov as *const Overlapped)).ok();
//! wait_for_threadpool_io_callbacks(io, false)?;                  // WaitForThreadpoolIoCallbacks
//! close_threadpool_io(io)?;                                      // CloseThreadpoolIo
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tpio_core::driver::{CancelScope, IssueOutcome, OpKind};
use tpio_core::{
    CallbackEnvironment, CallbackInstance, Completion, IoCallback, IoObject, Win32Error,
};

use crate::handle::{HandleCore, Layer, OverlappedHandle};

mod overlapped;

pub use overlapped::{get_overlapped_result, get_overlapped_result_ex, Overlapped, STATUS_PENDING};

/// `PTP_IO`: an opaque id of a raw TP_IO object. Copy it freely; after
/// [`close_threadpool_io`] every call with it fails with `ERROR_INVALID_HANDLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TpIo(u64);

/// `PTP_WIN32_IO_CALLBACK`: `(Instance, Context, Overlapped, IoResult,
/// NumberOfBytesTransferred, Io)`. `io_result` is a Win32 code (0 on
/// success, 995 when cancelled, 38 at end of file, …). Runs on a pool worker.
pub type IoCallbackFn = fn(
    instance: &mut CallbackInstance<'_>,
    context: usize,
    overlapped: *mut Overlapped,
    io_result: u32,
    bytes: usize,
    io: TpIo,
);

struct Entry {
    obj: Arc<IoObject>,
}

static LIVE: RwLock<BTreeMap<u64, Arc<Entry>>> = RwLock::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lookup(io: TpIo, call: &'static str) -> Result<Arc<Entry>, Win32Error> {
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

struct RawCallback {
    f: IoCallbackFn,
    context: usize,
    io: TpIo,
}

impl IoCallback for RawCallback {
    fn complete(&self, instance: &mut CallbackInstance<'_>, c: Completion) {
        // SAFETY: a raw-layer packet's identity is the caller's OVERLAPPED,
        // valid until its callback has started (read_file's contract).
        unsafe { overlapped::finish(c.overlapped as *const Overlapped, c.status, c.bytes) };
        (self.f)(
            instance,
            self.context,
            c.overlapped as *mut Overlapped,
            c.status.code(),
            c.bytes,
            self.io,
        );
    }

    fn discard(&self, c: Completion, _reason: tpio_core::Discard) {
        // SAFETY: as in `complete`: the operation is over and its OVERLAPPED
        // still valid (the caller keeps it until the kernel is done).
        unsafe { overlapped::finish(c.overlapped as *const Overlapped, c.status, c.bytes) };
    }
}

/// `CreateThreadpoolIo(handle, callback, context, env)`: a TP_IO bound to
/// `handle` (once per handle: `ERROR_INVALID_PARAMETER` the second time,
/// also across the safe layer). Callbacks run on `env`'s pool (default pool
/// when `None`) with `context` as given.
pub fn create_threadpool_io<H: OverlappedHandle + ?Sized>(
    handle: &H,
    callback: IoCallbackFn,
    context: usize,
    env: Option<&CallbackEnvironment>,
) -> Result<TpIo, Win32Error> {
    let io = TpIo(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let env = env.cloned().unwrap_or_default();
    let cb = RawCallback {
        f: callback,
        context,
        io,
    };
    let obj = Arc::new(IoObject::new(&env, context, cb));
    handle.core().bind(&obj, Layer::Raw)?;
    LIVE.write().insert(io.0, Arc::new(Entry { obj }));
    Ok(io)
}

/// `StartThreadpoolIo(io)`: call before each `ReadFile` / `WriteFile` /
/// `WSARecv` … on the bound handle. Obligation: balance it — by the
/// operation's callback, or by [`cancel_threadpool_io`] when the issuing
/// call failed at once (anything but `Err(ERROR_IO_PENDING)` or `Ok`), or
/// succeeded at once on a handle that skips completion on success.
pub fn start_threadpool_io(io: TpIo) -> Result<(), Win32Error> {
    lookup(io, "StartThreadpoolIo")?.obj.start()
}

/// `CancelThreadpoolIo(io)`: balances one start whose operation will bring
/// no callback. With no start outstanding: `ERROR_NOT_FOUND` (Windows
/// corrupts its count here).
pub fn cancel_threadpool_io(io: TpIo) -> Result<(), Win32Error> {
    lookup(io, "CancelThreadpoolIo")?.obj.cancel()
}

/// `WaitForThreadpoolIoCallbacks(io, cancel_pending)` (rule 4). From inside
/// this object's own callback: `ERROR_POSSIBLE_DEADLOCK` instead of a hang.
/// With `cancel_pending`, packets of outstanding operations will get no
/// callback: the caller learns of their end only by other means, and must
/// keep their buffers and OVERLAPPEDs valid until the kernel is done
/// (e.g. cancel them and wait for the handle's in-flight count to reach 0).
pub fn wait_for_threadpool_io_callbacks(io: TpIo, cancel_pending: bool) -> Result<(), Win32Error> {
    let e = lookup(io, "WaitForThreadpoolIoCallbacks")?;
    e.obj.wait_for_callbacks(cancel_pending)
}

/// `CloseThreadpoolIo(io)` (rule 5): neither cancels nor waits; the object
/// is released once nothing is queued, running or outstanding. The id is
/// dead at once.
pub fn close_threadpool_io(io: TpIo) -> Result<(), Win32Error> {
    match LIVE.write().remove(&io.0) {
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                io = io.0,
                "tpio raw layer: CloseThreadpoolIo twice; \
                 rule 5: a TP_IO is closed once, and the second close did nothing"
            );
            Err(Win32Error::INVALID_HANDLE)
        }
    }
}

/// Issues on the TP_IO bound to `handle`.
///
/// # Safety
/// As [`read_file`].
unsafe fn issue(
    core: &HandleCore,
    kind: OpKind,
    buf: *mut u8,
    len: u32,
    overlapped: *mut Overlapped,
    call: &'static str,
) -> Result<usize, Win32Error> {
    if overlapped.is_null() {
        return Err(Win32Error::INVALID_PARAMETER);
    }
    let obj = core.bound_raw().inspect_err(|e| {
        tracing::warn!(call, error = ?e, "tpio raw layer: handle has no open raw TP_IO bound to it");
    })?;
    // SAFETY: the caller guarantees `overlapped` is valid.
    let ov = unsafe { &*overlapped };
    if core.ops.contains_overlapped(overlapped as usize) || !ov.begin() {
        tracing::warn!(
            call,
            "tpio raw layer: an OVERLAPPED was reused while its operation is pending \
             (rule 10: an OVERLAPPED belongs to one operation until its completion)"
        );
        return Err(Win32Error::INVALID_PARAMETER);
    }
    let pos = ov.position();
    let kind = match kind {
        OpKind::Read { .. } => OpKind::Read { offset: Some(pos) },
        OpKind::Write { .. } => OpKind::Write { offset: Some(pos) },
        k => k,
    };
    let ptr = if buf.is_null() && len == 0 {
        std::ptr::NonNull::<u8>::dangling().as_ptr()
    } else {
        buf
    };
    // SAFETY: the caller keeps `buf[..len]` and `*overlapped` valid and
    // otherwise untouched until the callback (this function's contract);
    // the address of `*overlapped` is only carried as the identity.
    let r = unsafe {
        core.issue(
            kind,
            ptr,
            len as usize,
            std::ptr::null_mut(),
            overlapped as usize,
            &obj,
        )
    };
    match r {
        Ok(IssueOutcome::Pending) => Err(Win32Error::IO_PENDING),
        Ok(IssueOutcome::Done { bytes, .. }) => {
            // Done at once: `GetOverlappedResult` says so from now on (the
            // callback, if one comes, writes the same again).
            // SAFETY: the OVERLAPPED is valid until its callback has started
            // (this function's contract), and the callback, if any, writes
            // the same values atomically.
            unsafe { overlapped::finish(overlapped, Win32Error::SUCCESS, bytes) };
            Ok(bytes)
        }
        Err(e) => {
            // SAFETY: failed at once: as above.
            unsafe { overlapped::finish(overlapped, e, 0) };
            Err(e)
        }
    }
}

/// `ReadFile(handle, buf, len, NULL, overlapped)` on a handle bound to a
/// raw TP_IO (after [`start_threadpool_io`]). A handle bound to a safe
/// [`ThreadpoolIo`](crate::ThreadpoolIo) gives `ERROR_INVALID_PARAMETER`;
/// an unbound one, or one whose TP_IO is closed, `ERROR_INVALID_HANDLE`. The file position is the
/// OVERLAPPED's `offset`/`offset_high` (files only).
///
/// Returns what Win32 does: `Ok(bytes)` = `TRUE` (done at once; the callback
/// still comes unless the handle skips completion on success),
/// `Err(ERROR_IO_PENDING)` = the callback will come, any other `Err` = failed
/// at once, no callback: the caller must [`cancel_threadpool_io`].
///
/// # Safety
/// `buf[..len]` must be valid for writes and `*overlapped` valid, and the
/// caller must neither free nor access them, from the call until the
/// operation's callback has started (or, when this returns an error other
/// than `ERROR_IO_PENDING`, until it returns). No two operations in flight
/// may share a buffer.
pub unsafe fn read_file<H: OverlappedHandle + ?Sized>(
    handle: &H,
    buf: *mut u8,
    len: u32,
    overlapped: *mut Overlapped,
) -> Result<usize, Win32Error> {
    // SAFETY: the caller's obligations are `issue`'s.
    unsafe {
        issue(
            handle.core(),
            OpKind::Read { offset: None },
            buf,
            len,
            overlapped,
            "ReadFile",
        )
    }
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
    // SAFETY: the caller's obligations are `issue`'s; a write only reads
    // the buffer, so a `*const` made `*mut` is never written through.
    unsafe {
        issue(
            handle.core(),
            OpKind::Write { offset: None },
            buf.cast_mut(),
            len,
            overlapped,
            "WriteFile",
        )
    }
}

/// `CancelIoEx(handle, overlapped)`: cancels the operations issued with that
/// OVERLAPPED (all of the handle's with `None`); `ERROR_NOT_FOUND` when none
/// is in flight. The pointer is only compared, never read.
pub fn cancel_io_ex<H: OverlappedHandle + ?Sized>(
    handle: &H,
    overlapped: Option<*const Overlapped>,
) -> Result<(), Win32Error> {
    let scope = match overlapped {
        Some(ov) => CancelScope::Overlapped(ov as usize),
        None => CancelScope::All,
    };
    handle.core().cancel(scope)
}

/// `CancelIo(handle)`: the calling thread's operations on `handle`.
pub fn cancel_io<H: OverlappedHandle + ?Sized>(handle: &H) -> Result<(), Win32Error> {
    crate::cancel_io(handle)
}

/// `SetFileCompletionNotificationModes(handle, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`.
pub fn set_file_completion_notification_modes<H: OverlappedHandle + ?Sized>(
    handle: &H,
    skip_completion_port_on_success: bool,
) {
    handle.set_skip_completion_on_success(skip_completion_port_on_success);
}
