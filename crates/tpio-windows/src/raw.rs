//! Thin wrappers around kernel32's thread-pool I/O calls.
//!
//! This module owns the forwarding of each Win32 call to kernel32 and the one
//! thing Win32 cannot express in Rust: a closure as the I/O callback. It keeps
//! no state of its own beyond what that closure needs to stay alive, and it
//! never changes what kernel32 does: results and error codes are kernel32's.
//!
//! | Win32 | here |
//! | --- | --- |
//! | `CreateThreadpoolIo` | [`ThreadpoolIo::new`] |
//! | `StartThreadpoolIo` | [`ThreadpoolIo::start`] |
//! | `CancelThreadpoolIo` | [`ThreadpoolIo::cancel`] |
//! | `WaitForThreadpoolIoCallbacks` | [`ThreadpoolIo::wait_for_callbacks`] |
//! | `CloseThreadpoolIo` | [`ThreadpoolIo::close`] (and `Drop`) |
//! | `CancelIo` | [`cancel_io`] |
//! | `CancelIoEx` | [`cancel_io_ex`] |
//! | `CancelSynchronousIo` | [`cancel_synchronous_io`] |
//! | `GetOverlappedResult` | [`get_overlapped_result`] |
//! | `SetFileCompletionNotificationModes` | [`set_file_completion_notification_modes`] |
//!
//! Errors come back as [`std::io::Error`] built from `GetLastError`, so
//! `err.raw_os_error()` is the Win32 error code (e.g. 1168 for
//! `ERROR_NOT_FOUND`).
//!
//! # Lifetime of the callback
//!
//! The closure is kept in an `Arc`. The [`ThreadpoolIo`] value holds one
//! reference; every [`ThreadpoolIo::start`] takes another, which the callback
//! that balances that start (or the [`ThreadpoolIo::cancel`] that does)
//! gives back after the closure has returned. So closing the object while
//! I/O is in flight is fine: the closure lives until the last expected
//! callback has run. A start whose callback kernel32 never delivers (e.g. one
//! dropped by `wait_for_callbacks(true)`) leaks its reference, which is
//! memory, never a use after free.
//!
//! `HANDLE` is an opaque kernel handle value that kernel32 validates (a bad
//! one is `ERROR_INVALID_HANDLE`); it is never dereferenced in this process,
//! which is why functions taking only a handle are safe.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use core::ffi::c_void;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use windows_sys::Win32::Foundation::{GetLastError, HANDLE};
use windows_sys::Win32::Storage::FileSystem::SetFileCompletionNotificationModes;
use windows_sys::Win32::System::Threading::{
    CancelThreadpoolIo, CloseThreadpoolIo, CreateThreadpoolIo, StartThreadpoolIo,
    WaitForThreadpoolIoCallbacks, PTP_CALLBACK_INSTANCE, PTP_IO, TP_CALLBACK_ENVIRON_V3,
};
use windows_sys::Win32::System::IO::{
    CancelIo, CancelIoEx, CancelSynchronousIo, GetOverlappedResult, OVERLAPPED,
};

pub use windows_sys::Win32::System::WindowsProgramming::{
    FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, FILE_SKIP_SET_EVENT_ON_HANDLE,
};

/// What kernel32 passes to a `PTP_WIN32_IO_CALLBACK`, minus the context
/// (which is the closure itself).
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// The callback instance (`PTP_CALLBACK_INSTANCE`), for
    /// `CallbackMayRunLong`, `SetEventWhenCallbackReturns`, ….
    pub instance: PTP_CALLBACK_INSTANCE,
    /// The exact `OVERLAPPED` pointer the operation was issued with.
    pub overlapped: *mut OVERLAPPED,
    /// The result as a Win32 error code: 0 on success, 995 when cancelled, …
    pub result: u32,
    /// Bytes transferred.
    pub bytes: usize,
    /// The TP_IO the callback belongs to.
    pub io: PTP_IO,
}

/// Keeps the closure's `Arc` alive from a type-erased pointer.
#[derive(Debug)]
struct ContextOps {
    add_ref: unsafe fn(*const c_void),
    release: unsafe fn(*const c_void),
}

/// # Safety
/// `ctx` comes from `Arc::<F>::into_raw` and the caller holds a reference.
unsafe fn add_ref<F>(ctx: *const c_void) {
    // SAFETY: per this function's contract, `ctx` is a live `Arc<F>` pointer.
    unsafe { Arc::increment_strong_count(ctx.cast::<F>()) }
}

/// # Safety
/// `ctx` comes from `Arc::<F>::into_raw` and the caller gives up one
/// reference it holds.
unsafe fn release<F>(ctx: *const c_void) {
    // SAFETY: per this function's contract, the caller owns one strong count.
    unsafe { Arc::decrement_strong_count(ctx.cast::<F>()) }
}

/// The `PTP_WIN32_IO_CALLBACK` handed to kernel32 for closures of type `F`.
///
/// # Safety
/// Called by kernel32 only, with the context given to `CreateThreadpoolIo`
/// in [`ThreadpoolIo::new`], once per balanced [`ThreadpoolIo::start`].
unsafe extern "system" fn trampoline<F>(
    instance: PTP_CALLBACK_INSTANCE,
    context: *mut c_void,
    overlapped: *mut c_void,
    result: u32,
    bytes: usize,
    io: PTP_IO,
) where
    F: Fn(&Completion) + Send + Sync + 'static,
{
    // SAFETY: `context` is `Arc::<F>::into_raw`; the start this callback
    // balances holds a strong count, so the closure is alive until we give
    // that count back below.
    let f = unsafe { &*context.cast_const().cast::<F>() };
    let completion = Completion {
        instance,
        overlapped: overlapped.cast(),
        result,
        bytes,
        io,
    };
    if catch_unwind(AssertUnwindSafe(|| f(&completion))).is_err() {
        // Unwinding into kernel32 is undefined; there is no caller to report
        // to, so stop here.
        eprintln!("tpio-windows: a TP_IO callback panicked; aborting");
        std::process::abort();
    }
    // SAFETY: this callback balances one start, which took one strong count.
    unsafe { release::<F>(context) }
}

/// A kernel32 TP_IO bound to one handle, with a Rust closure as callback.
///
/// Dropping it is `CloseThreadpoolIo`: it neither cancels I/O nor waits for
/// callbacks.
///
/// ```
/// use std::os::windows::{fs::OpenOptionsExt, io::AsRawHandle};
/// use std::time::Duration;
/// use tpio_windows::raw::{self, ThreadpoolIo};
/// use windows_sys::Win32::Foundation::ERROR_IO_PENDING;
/// use windows_sys::Win32::Storage::FileSystem::{ReadFile, FILE_FLAG_OVERLAPPED};
/// use windows_sys::Win32::System::IO::OVERLAPPED;
///
/// let path = std::env::temp_dir().join("tpio-windows-doc-example.txt");
/// std::fs::write(&path, b"hello")?;
/// let file = std::fs::OpenOptions::new()
///     .read(true)
///     .custom_flags(FILE_FLAG_OVERLAPPED)
///     .open(&path)?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// // SAFETY: `file` is overlapped, not bound to a port yet, and outlives
/// // the read below.
/// let io = unsafe {
///     ThreadpoolIo::new(file.as_raw_handle(), None, move |c| {
///         tx.send((c.result, c.bytes)).unwrap();
///     })
/// }?;
/// let mut buf = [0u8; 16];
/// let mut ov = OVERLAPPED::default();
/// // SAFETY: the read is issued right after; if it fails at once we cancel.
/// unsafe { io.start() };
/// // SAFETY: `buf` and `ov` outlive the read: we wait for its callback.
/// let ok = unsafe {
///     ReadFile(file.as_raw_handle(), buf.as_mut_ptr(), 16, std::ptr::null_mut(), &mut ov)
/// };
/// if ok == 0 && raw::last_error() != ERROR_IO_PENDING {
///     // SAFETY: failed at once: no callback will balance the start.
///     unsafe { io.cancel() };
///     panic!("ReadFile failed: {}", raw::last_error());
/// }
/// // Succeeded at once or pending: either way the callback comes.
/// assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), (0, 5));
/// assert_eq!(&buf[..5], b"hello");
/// io.close();
/// # drop(file);
/// # let _ = std::fs::remove_file(&path);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ThreadpoolIo {
    io: PTP_IO,
    ctx: *const c_void,
    ops: &'static ContextOps,
}

// SAFETY: kernel32's TP_IO functions may be called from any thread, and the
// closure behind `ctx` is `Send + Sync` (required by `new`).
unsafe impl Send for ThreadpoolIo {}
// SAFETY: as above; every method takes `&self` and forwards to thread-safe
// kernel32 calls or atomic reference counts.
unsafe impl Sync for ThreadpoolIo {}

impl ThreadpoolIo {
    /// `CreateThreadpoolIo(handle, trampoline, closure, env)`.
    ///
    /// The callback runs on a pool thread for every completion that balances
    /// a [`start`](Self::start); it must not panic (a panic aborts the
    /// process, since it cannot unwind into kernel32).
    ///
    /// # Safety
    /// - `handle` is an open handle opened for overlapped I/O (not yet bound
    ///   to another completion port), and it stays open until every started
    ///   operation has completed;
    /// - `env`, if given, was set up with [`crate::env`] and the pool and
    ///   cleanup group it names are alive. If it names a cleanup group, the
    ///   object must leave this wrapper through
    ///   [`into_cleanup_group_member`](Self::into_cleanup_group_member)
    ///   before the group's members are closed.
    pub unsafe fn new<F>(
        handle: HANDLE,
        env: Option<&TP_CALLBACK_ENVIRON_V3>,
        callback: F,
    ) -> io::Result<Self>
    where
        F: Fn(&Completion) + Send + Sync + 'static,
    {
        let ctx = Arc::into_raw(Arc::new(callback)).cast::<c_void>();
        let env_ptr = env.map_or(core::ptr::null(), |e| e as *const _);
        // SAFETY: the trampoline matches PTP_WIN32_IO_CALLBACK and reads
        // `ctx` as `Arc<F>`; handle and env validity are this function's
        // contract.
        let io =
            unsafe { CreateThreadpoolIo(handle, Some(trampoline::<F>), ctx.cast_mut(), env_ptr) };
        if io == 0 {
            let err = io::Error::last_os_error();
            // SAFETY: creation failed, so kernel32 never got the context; we
            // still own the one reference from `into_raw`.
            unsafe { release::<F>(ctx) };
            return Err(err);
        }
        Ok(ThreadpoolIo {
            io,
            ctx,
            ops: &ContextOps {
                add_ref: add_ref::<F>,
                release: release::<F>,
            },
        })
    }

    /// The kernel32 `PTP_IO`.
    pub fn as_raw(&self) -> PTP_IO {
        self.io
    }

    /// `StartThreadpoolIo`: announce one operation about to be issued on the
    /// handle.
    ///
    /// # Safety
    /// Exactly one of these must follow: the operation is issued and
    /// completes through the port (its callback balances the start), or
    /// [`cancel`](Self::cancel) is called (the operation failed at once, or
    /// succeeded at once in skip-completion-on-success mode, or was never
    /// issued). kernel32 documents memory corruption otherwise.
    pub unsafe fn start(&self) {
        // SAFETY: we hold the handle's reference, so `ctx` is alive; the
        // count taken here is given back by the balancing callback or cancel.
        unsafe { (self.ops.add_ref)(self.ctx) };
        // SAFETY: `self.io` is a live TP_IO (closed only by `close`/`Drop`).
        unsafe { StartThreadpoolIo(self.io) }
    }

    /// `CancelThreadpoolIo`: balance a [`start`](Self::start) whose
    /// operation will not complete through the port.
    ///
    /// # Safety
    /// A start is outstanding that no completion will balance (see
    /// [`start`](Self::start)).
    pub unsafe fn cancel(&self) {
        // SAFETY: `self.io` is live; the caller guarantees an unbalanced start.
        unsafe { CancelThreadpoolIo(self.io) }
        // SAFETY: that start took a strong count that nothing else releases.
        unsafe { (self.ops.release)(self.ctx) }
    }

    /// `WaitForThreadpoolIoCallbacks(io, cancel_pending)`.
    ///
    /// Must not be called from this object's own callback (kernel32 then
    /// waits forever).
    pub fn wait_for_callbacks(&self, cancel_pending: bool) {
        // SAFETY: `self.io` is a live TP_IO.
        unsafe { WaitForThreadpoolIoCallbacks(self.io, cancel_pending.into()) }
    }

    /// `CloseThreadpoolIo`: release the object; kernel32 frees it once no
    /// callback is outstanding. Neither cancels nor waits.
    pub fn close(self) {
        drop(self)
    }

    /// Hand the object over to the cleanup group it was created in: the
    /// wrapper forgets it (no `CloseThreadpoolIo` on drop), and
    /// `CloseThreadpoolCleanupGroupMembers` releases it. The closure is
    /// leaked, since nothing tells us when the group is done with it.
    pub fn into_cleanup_group_member(self) -> PTP_IO {
        let io = self.io;
        core::mem::forget(self);
        io
    }
}

impl Drop for ThreadpoolIo {
    fn drop(&mut self) {
        // SAFETY: `self.io` is live and closed exactly once, here.
        unsafe { CloseThreadpoolIo(self.io) }
        // SAFETY: give back the wrapper's own strong count; callbacks still
        // expected hold their own.
        unsafe { (self.ops.release)(self.ctx) }
    }
}

fn check(ok: i32) -> io::Result<()> {
    if ok != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `CancelIoEx(handle, overlapped)`: cancel the operations on `handle` issued
/// with `overlapped`, or all of them with `None`, from any thread. Does not
/// wait for the cancelled operations to complete.
///
/// Nothing to cancel is `Err` with `ERROR_NOT_FOUND` (1168) on Windows; see
/// [`crate::wine::Deviation::CancelIoExNothingPendingSucceeds`] for Wine.
pub fn cancel_io_ex(handle: HANDLE, overlapped: Option<*const OVERLAPPED>) -> io::Result<()> {
    // SAFETY: CancelIoEx only compares the pointer with those of pending
    // operations; it never dereferences it, and a bad handle is an error.
    check(unsafe { CancelIoEx(handle, overlapped.unwrap_or(core::ptr::null())) })
}

/// `CancelIo(handle)`: cancel the operations on `handle` that the calling
/// thread issued. Succeeds when there are none.
pub fn cancel_io(handle: HANDLE) -> io::Result<()> {
    // SAFETY: takes a handle value only; a bad handle is an error.
    check(unsafe { CancelIo(handle) })
}

/// `CancelSynchronousIo(thread)`: cancel the blocking operation `thread` is
/// in. `ERROR_NOT_FOUND` when it is in none.
pub fn cancel_synchronous_io(thread: HANDLE) -> io::Result<()> {
    // SAFETY: takes a handle value only; a bad handle is an error.
    check(unsafe { CancelSynchronousIo(thread) })
}

/// `GetOverlappedResult(handle, overlapped, &bytes, wait)`: bytes transferred,
/// or the operation's error (`ERROR_IO_INCOMPLETE` (996) when it is still
/// pending and `wait` is false).
///
/// # Safety
/// `overlapped` points to the live `OVERLAPPED` of an operation issued on
/// `handle`.
pub unsafe fn get_overlapped_result(
    handle: HANDLE,
    overlapped: *const OVERLAPPED,
    wait: bool,
) -> io::Result<u32> {
    let mut bytes = 0u32;
    // SAFETY: `overlapped` is valid per the contract; `bytes` is a local.
    check(unsafe { GetOverlappedResult(handle, overlapped, &mut bytes, wait.into()) })?;
    Ok(bytes)
}

/// `SetFileCompletionNotificationModes(handle, flags)`, e.g. with
/// [`FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`]: an operation that succeeds at
/// once then queues no completion, so its start must be cancelled.
pub fn set_file_completion_notification_modes(handle: HANDLE, flags: u32) -> io::Result<()> {
    let flags = u8::try_from(flags)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "flags do not fit in a byte"))?;
    // SAFETY: takes a handle value and flags only; a bad handle is an error.
    check(unsafe { SetFileCompletionNotificationModes(handle, flags) })
}

/// `GetLastError()` as a number, for callers that check a raw call.
pub fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value; no preconditions.
    unsafe { GetLastError() }
}
