//! [`RawIo`]: the Win32-shaped layer's TP_IO on kernel32, and its
//! `ReadFile` / `WriteFile` ([`read_file`], [`write_file`]) on the caller's
//! OVERLAPPED, which is passed to kernel32 unchanged.
//!
//! Owns what tpio adds to kernel32 for ports: explicit start/cancel with a
//! count of outstanding starts (a `CancelThreadpoolIo` with none is
//! `ERROR_NOT_FOUND` instead of kernel32's corrupted count), the open/closed
//! state (calls after close are `ERROR_INVALID_HANDLE`, not a use after
//! free), the deadlock and panic diagnoses of every tpio callback, and the
//! refusal of an OVERLAPPED that is still pending (rule 10). It never owns
//! or frees a caller's buffer or OVERLAPPED and never balances a start on
//! the caller's behalf.
//!
//! The object lives while kernel32 may call back into it: every start holds
//! a reference, given back by the callback or the cancel that balances it;
//! the starts `wait_for_callbacks(true)` makes kernel32 forget keep theirs
//! for good (memory, never a use after free).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use tpio_core::{Misuse, Win32Error};
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
use windows_sys::Win32::System::Threading::{
    CancelThreadpoolIo, CloseThreadpoolIo, CreateThreadpoolIo, StartThreadpoolIo,
    WaitForThreadpoolIoCallbacks, PTP_CALLBACK_INSTANCE, PTP_IO,
};
use windows_sys::Win32::System::IO::{GetOverlappedResult, GetOverlappedResultEx};

use windows_sys::Win32::System::IO::OVERLAPPED;

use crate::callback::{Life, ObjectCore};
use crate::cleanup_group::GroupMember;
use crate::environment::CallbackEnvironment;
use crate::error;
use crate::instance::CallbackInstance;
use crate::kernel_handle::{KernelHandle, Layer};

/// NTSTATUS_FROM_WIN32's facility and severity bits.
const NT_FROM_WIN32: usize = 0xC007_0000;

/// `OVERLAPPED`, layout-identical to kernel32's (checked at compile time),
/// so the raw layer passes it to `ReadFile` / `WriteFile` unchanged. Its
/// address identifies an operation from issue to callback. `offset` /
/// `offset_high` give a file operation's position. `internal` and
/// `internal_high` are written by the kernel (`STATUS_PENDING` while in
/// flight, then the NTSTATUS and the bytes); atomics, since a thread may
/// poll them while the kernel completes the operation. `h_event`, when not
/// 0, is signalled by the kernel at completion.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Overlapped {
    /// `Internal`: `STATUS_PENDING` while in flight, then the NTSTATUS.
    pub internal: AtomicUsize,
    /// `InternalHigh`: bytes transferred.
    pub internal_high: AtomicUsize,
    /// `Offset`: low 32 bits of the file position.
    pub offset: u32,
    /// `OffsetHigh`: high 32 bits of the file position.
    pub offset_high: u32,
    /// `hEvent`.
    pub h_event: usize,
}

const _: () = {
    assert!(std::mem::size_of::<Overlapped>() == std::mem::size_of::<OVERLAPPED>());
    assert!(std::mem::align_of::<Overlapped>() == std::mem::align_of::<OVERLAPPED>());
    assert!(
        std::mem::offset_of!(Overlapped, internal) == std::mem::offset_of!(OVERLAPPED, Internal)
    );
    assert!(
        std::mem::offset_of!(Overlapped, internal_high)
            == std::mem::offset_of!(OVERLAPPED, InternalHigh)
    );
    assert!(
        std::mem::offset_of!(Overlapped, offset) == std::mem::offset_of!(OVERLAPPED, Anonymous)
    );
    assert!(std::mem::offset_of!(Overlapped, h_event) == std::mem::offset_of!(OVERLAPPED, hEvent));
};

/// `STATUS_PENDING`: what `Internal` holds while the operation is in flight.
pub const STATUS_PENDING: usize = crate::record::STATUS_PENDING;

impl Overlapped {
    /// An OVERLAPPED for file position `offset`.
    pub fn at(offset: u64) -> Overlapped {
        Overlapped {
            offset: offset as u32,
            offset_high: (offset >> 32) as u32,
            ..Overlapped::default()
        }
    }

    /// The file position it names.
    pub fn position(&self) -> u64 {
        u64::from(self.offset) | (u64::from(self.offset_high) << 32)
    }

    /// `HasOverlappedIoCompleted`: false while its operation is in flight.
    pub fn has_completed(&self) -> bool {
        self.internal.load(Ordering::Acquire) != STATUS_PENDING
    }

    fn as_win32(&self) -> *const OVERLAPPED {
        (self as *const Overlapped).cast()
    }
}

type RawCallback =
    Box<dyn Fn(&mut CallbackInstance<'_>, *mut Overlapped, u32, usize) + Send + Sync>;

#[repr(C)]
pub(crate) struct RawCore {
    /// First: see `callback::group_cancel_trampoline`.
    obj: ObjectCore,
    callback: RawCallback,
    handle: Weak<KernelHandle>,
}

impl Drop for RawCore {
    fn drop(&mut self) {
        self.obj.mark_released();
    }
}

/// A kernel32 TP_IO of the Win32-shaped layer.
pub struct RawIo {
    core: Arc<RawCore>,
}

/// The `PTP_WIN32_IO_CALLBACK` of raw-layer objects.
///
/// # Safety
/// Called by kernel32 only, with the context given in [`RawIo::new`]: a
/// `RawCore` kept alive by the reference of the start this packet balances
/// (a start kernel32 stopped counting keeps its reference for good).
unsafe extern "system" fn raw_trampoline(
    instance: PTP_CALLBACK_INSTANCE,
    context: *mut c_void,
    overlapped: *mut c_void,
    result: u32,
    bytes: usize,
    _io: PTP_IO,
) {
    // SAFETY: per this function's contract.
    let core = unsafe { &*context.cast_const().cast::<RawCore>() };
    let release = {
        let mut st = core.obj.state.lock();
        let r = st.starts > 0;
        if r {
            st.starts -= 1;
        }
        ObjectCore::begin_locked(&mut st);
        r
    };
    if let Some(h) = core.handle.upgrade() {
        h.untrack_raw(overlapped as usize);
    }
    let associated = core.obj.run_body(instance, |inst| {
        (core.callback)(inst, overlapped.cast(), result, bytes)
    });
    core.obj.end(associated);
    if release {
        // SAFETY: the balanced start took this strong count (see `start`);
        // `core` is not used after.
        unsafe { Arc::decrement_strong_count(context.cast_const().cast::<RawCore>()) };
    }
}

impl RawIo {
    /// `CreateThreadpoolIo(handle, callback, context, env)`; the callback
    /// gets (instance, OVERLAPPED, IoResult, bytes). One TP_IO per handle,
    /// across layers (`ERROR_INVALID_PARAMETER` the second time).
    pub fn new(
        handle: &Arc<KernelHandle>,
        env: Option<&CallbackEnvironment>,
        context: usize,
        callback: impl Fn(&mut CallbackInstance<'_>, *mut Overlapped, u32, usize)
            + Send
            + Sync
            + 'static,
    ) -> Result<RawIo, Win32Error> {
        handle.check_unbound()?;
        let env = env.cloned().unwrap_or_default();
        let core = Arc::new(RawCore {
            obj: ObjectCore::new(
                env.get_pool(),
                env.group.clone(),
                env.cleanup_callback.clone(),
                context,
            ),
            callback: Box::new(callback),
            handle: Arc::downgrade(handle),
        });
        let native = env.native();
        // SAFETY: the trampoline matches PTP_WIN32_IO_CALLBACK and reads the
        // context as the `RawCore`, alive while any start is counted (see
        // `raw_trampoline`); the handle is open; the environment is valid.
        let ptp = unsafe {
            CreateThreadpoolIo(
                handle.raw() as HANDLE,
                Some(raw_trampoline),
                Arc::as_ptr(&core).cast_mut().cast(),
                &native.ce,
            )
        };
        if ptp == 0 {
            return Err(error::last());
        }
        core.obj.set_ptp(ptp);
        let weak: Weak<dyn GroupMember> = Arc::downgrade(&core) as Weak<dyn GroupMember>;
        if let Err(e) = handle.bind(Layer::Raw, weak.clone()) {
            *core.obj.life.write() = Life::Closed;
            // SAFETY: the TP_IO we just created; nothing was started on it.
            unsafe { CloseThreadpoolIo(ptp) };
            return Err(e);
        }
        if let Some(g) = &env.group {
            g.add(weak);
        }
        Ok(RawIo { core })
    }

    /// `StartThreadpoolIo`.
    pub fn start(&self) -> Result<(), Win32Error> {
        let _life = self.core.obj.open()?;
        self.core.obj.state.lock().starts += 1;
        // SAFETY: a live `Arc`: this count is given back by the callback or
        // cancel that balances the start.
        unsafe { Arc::increment_strong_count(Arc::as_ptr(&self.core)) };
        // SAFETY: the TP_IO is open while `_life` is held.
        unsafe { StartThreadpoolIo(self.core.obj.ptp()) };
        Ok(())
    }

    /// `CancelThreadpoolIo`; with no start outstanding `ERROR_NOT_FOUND`
    /// (counted as a misuse) and kernel32 is not called.
    pub fn cancel(&self) -> Result<(), Win32Error> {
        let _life = self.core.obj.open()?;
        {
            let mut st = self.core.obj.state.lock();
            if st.starts == 0 {
                drop(st);
                self.core
                    .obj
                    .stats
                    .misuse(Misuse::CancelWithoutStart, self.core.obj.id);
                return Err(Win32Error::NOT_FOUND);
            }
            st.starts -= 1;
        }
        // SAFETY: the TP_IO is open and a start is outstanding.
        unsafe { CancelThreadpoolIo(self.core.obj.ptp()) };
        // SAFETY: that start's strong count (see `start`), still held by
        // `self.core` besides, so this is not the last.
        unsafe { Arc::decrement_strong_count(Arc::as_ptr(&self.core)) };
        Ok(())
    }

    /// `WaitForThreadpoolIoCallbacks`; `ERROR_POSSIBLE_DEADLOCK` from the
    /// object's own callback.
    pub fn wait_for_callbacks(&self, cancel_pending: bool) -> Result<(), Win32Error> {
        self.core.obj.check_wait()?;
        let _life = self.core.obj.open()?;
        // SAFETY: the TP_IO is open while `_life` is held.
        unsafe { WaitForThreadpoolIoCallbacks(self.core.obj.ptp(), cancel_pending.into()) };
        if cancel_pending {
            self.forget_starts();
        }
        Ok(())
    }

    /// kernel32 no longer counts the outstanding starts: their references
    /// stay taken for good, and their OVERLAPPEDs are no longer in flight
    /// for tpio (it cannot read the caller's memory later).
    fn forget_starts(&self) {
        self.core.obj.state.lock().starts = 0;
        if let Some(h) = self.core.handle.upgrade() {
            h.clear_raw();
        }
    }

    /// `CloseThreadpoolIo`: `ERROR_INVALID_HANDLE` the second time.
    pub fn close(&self) -> Result<(), Win32Error> {
        let mut life = self.core.obj.life.write();
        if *life != Life::Open {
            drop(life);
            self.core
                .obj
                .stats
                .misuse(Misuse::UseAfterClose, self.core.obj.id);
            return Err(Win32Error::INVALID_HANDLE);
        }
        *life = Life::Closed;
        // SAFETY: open until now, closed exactly once, here.
        unsafe { CloseThreadpoolIo(self.core.obj.ptp()) };
        Ok(())
    }
}

impl Drop for RawIo {
    fn drop(&mut self) {
        let mut life = self.core.obj.life.write();
        if *life == Life::Open {
            *life = Life::Closed;
            // SAFETY: open until now, closed exactly once, here.
            unsafe { CloseThreadpoolIo(self.core.obj.ptp()) };
        }
    }
}

impl std::fmt::Debug for RawIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawIo")
            .field("id", &self.core.obj.id)
            .finish()
    }
}

impl GroupMember for RawCore {
    fn core(&self) -> &ObjectCore {
        &self.obj
    }

    fn before_release(&self, _cancel_pending: bool) {
        let mut life = self.obj.life.write();
        if *life == Life::Open {
            *life = Life::GroupReleased;
        }
    }

    fn after_release(&self, cancel_pending: bool) {
        if cancel_pending {
            self.obj.state.lock().starts = 0;
            if let Some(h) = self.handle.upgrade() {
                h.clear_raw();
            }
        }
        self.obj.mark_released();
    }
}

/// `ReadFile` (`write == false`) or `WriteFile` on a handle bound to an
/// open raw TP_IO.
///
/// # Safety
/// As [`read_file`].
unsafe fn file_io(
    h: &KernelHandle,
    buf: *mut u8,
    len: u32,
    ov: *mut Overlapped,
    write: bool,
) -> Result<usize, Win32Error> {
    if ov.is_null() {
        return Err(Win32Error::INVALID_PARAMETER);
    }
    h.bound_raw().inspect_err(|e| {
        tracing::warn!(error = ?e, "tpio raw layer: the handle has no open raw TP_IO bound to it");
    })?;
    let closed = h.issuing();
    if *closed {
        return Err(Win32Error::INVALID_HANDLE);
    }
    // SAFETY: `ov` is valid (contract).
    let st = unsafe { &(*ov).internal };
    if st.load(Ordering::Acquire) == STATUS_PENDING {
        tracing::warn!(
            "tpio raw layer: an OVERLAPPED was reused while its operation is pending \
             (rule 10: an OVERLAPPED belongs to one operation until its completion)"
        );
        return Err(Win32Error::INVALID_PARAMETER);
    }
    h.track_raw(ov as usize);
    // Read before the call: a mode set now is one the kernel applies.
    let skip = h.skip_completion_on_success();
    let mut n = 0u32;
    // SAFETY: the caller keeps `buf[..len]` and `*ov` valid and untouched
    // until the callback (contract); `n` is written only on success at once.
    let ok = unsafe {
        if write {
            WriteFile(h.raw() as HANDLE, buf, len, &mut n, ov.cast())
        } else {
            ReadFile(h.raw() as HANDLE, buf, len, &mut n, ov.cast())
        }
    };
    if ok != 0 {
        if skip {
            h.untrack_raw(ov as usize);
        }
        return Ok(n as usize);
    }
    let e = error::last();
    if e == Win32Error::IO_PENDING || e == Win32Error::from_code(234) {
        return Err(e);
    }
    h.untrack_raw(ov as usize);
    // Failed at once: the OVERLAPPED says so too (kernel32 would leave it
    // STATUS_PENDING), so GetOverlappedResult reports the failure.
    // SAFETY: `ov` is valid and not the kernel's (nothing was issued).
    unsafe { (*ov).internal_high.store(0, Ordering::Release) };
    st.store(NT_FROM_WIN32 | e.code() as usize, Ordering::Release);
    Err(e)
}

/// `ReadFile(h, buf, len, NULL, ov)` on a handle bound to an open raw
/// TP_IO. `Ok(bytes)` = done at once (the callback still comes unless the
/// handle skips completion on success); `Err(ERROR_IO_PENDING)` = the
/// callback comes; any other `Err` = failed at once: no callback, the
/// caller must cancel its start.
///
/// # Safety
/// `buf[..len]` is valid for writes and `*ov` valid, and the caller neither
/// frees nor touches them from the call until the operation's callback has
/// started (or, on failure at once, until this returns).
pub unsafe fn read_file(
    h: &KernelHandle,
    buf: *mut u8,
    len: u32,
    ov: *mut Overlapped,
) -> Result<usize, Win32Error> {
    // SAFETY: the caller's obligations.
    unsafe { file_io(h, buf, len, ov, false) }
}

/// `WriteFile(h, buf, len, NULL, ov)`; as [`read_file`].
///
/// # Safety
/// As [`read_file`], with `buf[..len]` valid for reads.
pub unsafe fn write_file(
    h: &KernelHandle,
    buf: *const u8,
    len: u32,
    ov: *mut Overlapped,
) -> Result<usize, Win32Error> {
    // SAFETY: the caller's obligations; a write only reads the buffer.
    unsafe { file_io(h, buf.cast_mut(), len, ov, true) }
}

/// `GetOverlappedResultEx(h, ov, &bytes, ms, FALSE)`; `None` waits forever
/// (`GetOverlappedResult(.., TRUE)`).
pub fn get_overlapped_result(
    h: &KernelHandle,
    ov: &Overlapped,
    timeout: Option<std::time::Duration>,
) -> Result<usize, Win32Error> {
    let mut n = 0u32;
    let ok = match timeout {
        // SAFETY: `ov` is a valid OVERLAPPED (same layout) for the call;
        // `n` a local.
        None => unsafe { GetOverlappedResult(h.raw() as HANDLE, ov.as_win32(), &mut n, 1) },
        Some(t) => {
            let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX - 1);
            // SAFETY: as above.
            unsafe { GetOverlappedResultEx(h.raw() as HANDLE, ov.as_win32(), &mut n, ms, 0) }
        }
    };
    error::check(ok).map(|()| n as usize)
}
