//! [`ThreadHandle`] and [`cancel_synchronous_io`] on kernel32 (rule 7).
//!
//! A `ThreadHandle` holds a real thread handle (`GetCurrentThread`
//! duplicated with `DuplicateHandle`, once per thread) and the thread's
//! entry in tpio-core's registry of blocking calls. `cancel_synchronous_io`
//! first cancels the tpio blocking call the thread is in (see
//! [`crate::sync_call`]: those are overlapped operations, which
//! `CancelSynchronousIo` does not reach), else calls
//! `CancelSynchronousIo` on the real handle, so a synchronous call made
//! outside tpio (std's blocking file I/O) is cancelled as on Windows. A
//! thread that has exited has nothing to cancel (`ERROR_NOT_FOUND`).
//!
//! It never touches the thread's overlapped operations.

use std::fmt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;

use tpio_core::Win32Error;
use windows_sys::Win32::Foundation::{DuplicateHandle, DUPLICATE_SAME_ACCESS, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, WaitForSingleObject,
};
use windows_sys::Win32::System::IO::CancelSynchronousIo;

/// A handle to a thread, for [`cancel_synchronous_io`]. Cheap to clone and
/// send; it does not keep the thread running.
#[derive(Clone)]
pub struct ThreadHandle {
    core: tpio_core::ThreadHandle,
    os: Arc<OwnedHandle>,
}

fn duplicate_current() -> OwnedHandle {
    let mut h = std::ptr::null_mut();
    // SAFETY: the pseudo-handles of this process and thread; `h` receives a
    // new real handle that we own.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            GetCurrentThread(),
            GetCurrentProcess(),
            &mut h,
            0,
            0,
            DUPLICATE_SAME_ACCESS,
        )
    };
    assert!(
        ok != 0,
        "DuplicateHandle(GetCurrentThread()) failed: {:?}",
        crate::error::last()
    );
    // SAFETY: a new handle nobody else owns, wrapped exactly once.
    unsafe { OwnedHandle::from_raw_handle(h) }
}

thread_local! {
    static ME: Arc<OwnedHandle> = Arc::new(duplicate_current());
}

impl ThreadHandle {
    /// The calling thread.
    pub fn current() -> ThreadHandle {
        ThreadHandle {
            core: tpio_core::ThreadHandle::current(),
            os: ME.with(Arc::clone),
        }
    }

    /// The thread handle's value.
    pub fn raw(&self) -> u64 {
        self.os.as_raw_handle() as u64
    }

    /// True while the thread has not exited.
    pub fn is_alive(&self) -> bool {
        // SAFETY: our open thread handle; a zero wait only polls it.
        unsafe { WaitForSingleObject(self.os.as_raw_handle(), 0) == WAIT_TIMEOUT }
    }
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ThreadHandle({:#x}{})",
            self.raw(),
            if self.is_alive() { "" } else { ", exited" }
        )
    }
}

/// `CancelSynchronousIo` (rule 7): cancels the blocking call `thread` is in
/// now; that call returns `ERROR_OPERATION_ABORTED`. Nothing blocked, or the
/// thread has exited: `ERROR_NOT_FOUND`; a bad handle: kernel32's
/// `ERROR_INVALID_HANDLE`. Never waits.
pub fn cancel_synchronous_io(thread: &ThreadHandle) -> Result<(), Win32Error> {
    if !thread.is_alive() {
        return Err(Win32Error::NOT_FOUND);
    }
    match tpio_core::cancel_synchronous_io(&thread.core) {
        Err(Win32Error::NOT_FOUND) => {}
        r => return r,
    }
    // SAFETY: takes a handle value only; kernel32 validates it.
    crate::error::check(unsafe { CancelSynchronousIo(thread.os.as_raw_handle()) })
}
