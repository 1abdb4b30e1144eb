//! Callback environments: the SDK's inline helpers, in Rust.
//!
//! `winbase.h` / `winnt.h` define `InitializeThreadpoolEnvironment`,
//! `SetThreadpoolCallbackPool`, `SetThreadpoolCallbackCleanupGroup`,
//! `SetThreadpoolCallbackPriority`, `SetThreadpoolCallbackRunsLong`,
//! `SetThreadpoolCallbackLibrary`, `SetThreadpoolCallbackPersistent` and
//! `DestroyThreadpoolEnvironment` as `FORCEINLINE` functions (over the
//! `TpInitializeCallbackEnviron` / `TpSetCallback*` family) that only write
//! fields of a [`TP_CALLBACK_ENVIRON_V3`]. They are not exported by any DLL,
//! so `windows-sys` has none of them; this module reproduces them field for
//! field, for a `_WIN32_WINNT >= 0x0601` build (version 3 of the structure).
//!
//! These functions only write memory the caller owns, so they are safe. What
//! the fields point to (a pool, a cleanup group) is checked when the
//! environment is used, e.g. by [`crate::raw::ThreadpoolIo::new`], whose
//! contract requires them to be alive.
//!
//! ```
//! use tpio_windows::env;
//! use windows_sys::Win32::System::Threading::{
//!     CloseThreadpool, CreateThreadpool, TP_CALLBACK_ENVIRON_V3,
//!     TP_CALLBACK_PRIORITY_HIGH,
//! };
//!
//! let mut ce = TP_CALLBACK_ENVIRON_V3::default();
//! env::initialize_threadpool_environment(&mut ce);
//! assert_eq!(ce.Version, 3);
//! // SAFETY: CreateThreadpool takes a reserved null pointer.
//! let pool = unsafe { CreateThreadpool(std::ptr::null()) };
//! assert_ne!(pool, 0);
//! env::set_threadpool_callback_pool(&mut ce, pool);
//! env::set_threadpool_callback_priority(&mut ce, TP_CALLBACK_PRIORITY_HIGH);
//! env::set_threadpool_callback_runs_long(&mut ce);
//! assert_eq!(ce.Pool, pool);
//! env::destroy_threadpool_environment(&mut ce);
//! // SAFETY: the pool was created above and nothing uses it any more.
//! unsafe { CloseThreadpool(pool) };
//! ```

use core::ffi::c_void;

use windows_sys::Win32::System::Threading::{
    PTP_CLEANUP_GROUP, PTP_CLEANUP_GROUP_CANCEL_CALLBACK, PTP_POOL, TP_CALLBACK_ENVIRON_V3,
    TP_CALLBACK_ENVIRON_V3_0, TP_CALLBACK_PRIORITY, TP_CALLBACK_PRIORITY_NORMAL,
};

/// Bit of `u.Flags` that the SDK names `u.s.LongFunction`.
const FLAG_LONG_FUNCTION: u32 = 1 << 0;
/// Bit of `u.Flags` that the SDK names `u.s.Persistent`.
const FLAG_PERSISTENT: u32 = 1 << 1;

/// `InitializeThreadpoolEnvironment` (= `TpInitializeCallbackEnviron`):
/// version 3, no pool (the process's default pool), no cleanup group,
/// normal priority, `Size` set.
pub fn initialize_threadpool_environment(ce: &mut TP_CALLBACK_ENVIRON_V3) {
    *ce = TP_CALLBACK_ENVIRON_V3 {
        Version: 3,
        Pool: 0,
        CleanupGroup: 0,
        CleanupGroupCancelCallback: None,
        RaceDll: core::ptr::null_mut(),
        ActivationContext: 0,
        FinalizationCallback: None,
        u: TP_CALLBACK_ENVIRON_V3_0 { Flags: 0 },
        CallbackPriority: TP_CALLBACK_PRIORITY_NORMAL,
        Size: core::mem::size_of::<TP_CALLBACK_ENVIRON_V3>() as u32,
    };
}

/// `SetThreadpoolCallbackPool` (= `TpSetCallbackThreadpool`): callbacks of
/// objects created with this environment run on `pool`.
pub fn set_threadpool_callback_pool(ce: &mut TP_CALLBACK_ENVIRON_V3, pool: PTP_POOL) {
    ce.Pool = pool;
}

/// `SetThreadpoolCallbackCleanupGroup` (= `TpSetCallbackCleanupGroup`):
/// objects created with this environment become members of `group`;
/// `cancel_callback` runs for a member whose callbacks
/// `CloseThreadpoolCleanupGroupMembers(.., TRUE, ..)` cancels.
pub fn set_threadpool_callback_cleanup_group(
    ce: &mut TP_CALLBACK_ENVIRON_V3,
    group: PTP_CLEANUP_GROUP,
    cancel_callback: PTP_CLEANUP_GROUP_CANCEL_CALLBACK,
) {
    ce.CleanupGroup = group;
    ce.CleanupGroupCancelCallback = cancel_callback;
}

/// `SetThreadpoolCallbackPriority` (= `TpSetCallbackPriority`).
pub fn set_threadpool_callback_priority(
    ce: &mut TP_CALLBACK_ENVIRON_V3,
    priority: TP_CALLBACK_PRIORITY,
) {
    ce.CallbackPriority = priority;
}

/// `SetThreadpoolCallbackRunsLong` (= `TpSetCallbackLongFunction`): a hint
/// that callbacks may run long, so the pool should not wait for them before
/// starting another thread.
pub fn set_threadpool_callback_runs_long(ce: &mut TP_CALLBACK_ENVIRON_V3) {
    // SAFETY: both union members are plain u32 bit patterns; `Flags` is the
    // whole word that the bitfield struct `s` overlays.
    let flags = unsafe { ce.u.Flags };
    ce.u.Flags = flags | FLAG_LONG_FUNCTION;
}

/// `SetThreadpoolCallbackPersistent` (= `TpSetCallbackPersistent`): callbacks
/// run on a thread that never exits.
pub fn set_threadpool_callback_persistent(ce: &mut TP_CALLBACK_ENVIRON_V3) {
    // SAFETY: as in `set_threadpool_callback_runs_long`: u32 over u32.
    let flags = unsafe { ce.u.Flags };
    ce.u.Flags = flags | FLAG_PERSISTENT;
}

/// `SetThreadpoolCallbackLibrary` (= `TpSetCallbackRaceWithDll`): keep the
/// DLL `module` loaded while callbacks of this environment run.
pub fn set_threadpool_callback_library(ce: &mut TP_CALLBACK_ENVIRON_V3, module: *mut c_void) {
    ce.RaceDll = module;
}

/// `DestroyThreadpoolEnvironment` (= `TpDestroyCallbackEnviron`): does
/// nothing in the SDK either; kept so ported code maps one to one.
pub fn destroy_threadpool_environment(ce: &mut TP_CALLBACK_ENVIRON_V3) {
    let _ = ce;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_matches_sdk_layout() {
        let mut ce = TP_CALLBACK_ENVIRON_V3 {
            Version: 99,
            Pool: 5,
            ..Default::default()
        };
        initialize_threadpool_environment(&mut ce);
        assert_eq!(ce.Version, 3);
        assert_eq!(ce.Pool, 0);
        assert_eq!(ce.CallbackPriority, TP_CALLBACK_PRIORITY_NORMAL);
        // 64-bit SDK: sizeof(TP_CALLBACK_ENVIRON_V3) == 72.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(ce.Size, 72);
        set_threadpool_callback_runs_long(&mut ce);
        set_threadpool_callback_persistent(&mut ce);
        // SAFETY: u32 over u32.
        assert_eq!(unsafe { ce.u.Flags }, 0b11);
    }
}
