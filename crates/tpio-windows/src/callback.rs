//! What every TP_IO of tpio shares on kernel32, whichever layer made it:
//! [`ObjectCore`] (identity, pool counters, open/closed state, the counts
//! of running callbacks, the set of operations expected back) and the one
//! way a callback runs (thread-local "which object's callback am I in",
//! the thread marked as its pool's worker, the [`CallbackInstance`],
//! panics caught, return actions).
//!
//! Owns the diagnoses kernel32 does not make: `wait_for_callbacks` from the
//! object's own callback (`ERROR_POSSIBLE_DEADLOCK` instead of a hang), use
//! after close (`ERROR_INVALID_HANDLE`), a panicking callback (caught and
//! counted: unwinding into kernel32 is undefined). It must never let a
//! panic cross into kernel32 and never call kernel32 on a TP_IO that was
//! closed or released by its cleanup group.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard};
use tpio_core::{CleanupCallback, Misuse, Win32Error};
use windows_sys::Win32::System::Threading::{PTP_CALLBACK_INSTANCE, PTP_IO};

use crate::cleanup_group::CleanupGroup;
use crate::instance::CallbackInstance;
use crate::pool::{Pool, PoolStats};
use crate::worker::PoolThreads;

/// Whether kernel32 may still be called on the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Life {
    Open,
    /// `CloseThreadpoolIo` was called.
    Closed,
    /// `CloseThreadpoolCleanupGroupMembers` released it.
    GroupReleased,
}

/// Counts and operations of one object, under its lock. Lock order: an
/// object's `life` before its `state`, and its `state` before a handle's
/// table of operations.
#[derive(Debug, Default)]
pub(crate) struct ObjState {
    pub(crate) running: u32,
    pub(crate) associated: u32,
    /// Safe layer: records issued whose callback kernel32 will run (their
    /// start is still counted by kernel32), with the epoch their start was
    /// made in.
    pub(crate) live: HashMap<usize, u64>,
    /// Bumped before each `WaitForThreadpoolIoCallbacks(TRUE)` and group
    /// cancel: a record of an older epoch is one whose start kernel32
    /// stopped counting (see `tp_io`).
    pub(crate) epoch: u64,
    /// Safe layer: records whose start `wait_for_callbacks(true)` or a
    /// cleanup group made kernel32 stop counting. Leaked, never freed
    /// (see `tp_io`), so their OVERLAPPED may always be read; kept here for
    /// the object's life, so a late packet is recognised as theirs.
    pub(crate) abandoned: HashSet<usize>,
    /// Safe layer: starts kernel32 used up for late packets of abandoned
    /// records (it pairs packets with starts by count): that many expected
    /// records will get no callback (see `tp_io::settle_debt`).
    pub(crate) debt: usize,
    /// Raw layer: starts not yet balanced (tpio's mirror of kernel32's count).
    pub(crate) starts: u32,
}

thread_local! {
    /// The object whose callback this thread runs, and whether the callback
    /// is still associated with it (0: none).
    static CURRENT: Cell<(u64, bool)> = const { Cell::new((0, false)) };
}

/// The object whose associated callback the calling thread is running.
pub(crate) fn current_callback_object() -> Option<u64> {
    match CURRENT.with(Cell::get) {
        (id, true) if id != 0 => Some(id),
        _ => None,
    }
}

/// The calling thread's callback disassociated itself.
pub(crate) fn disassociate_current() {
    CURRENT.with(|c| c.set((c.get().0, false)));
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The shared part of a safe-layer or raw-layer TP_IO. It is the first
/// field of both (`#[repr(C)]`), so the cleanup-group callback, which gets
/// only the object's context pointer, can find it.
pub(crate) struct ObjectCore {
    pub(crate) id: u64,
    ptp: AtomicIsize,
    pub(crate) stats: Arc<PoolStats>,
    /// The context a cleanup callback gets for this member (the raw
    /// layer's `Context`, 0 in the safe layer).
    pub(crate) context: usize,
    cleanup: Option<CleanupCallback>,
    pub(crate) life: RwLock<Life>,
    pub(crate) state: Mutex<ObjState>,
    pub(crate) cv: Condvar,
    released: AtomicBool,
    /// Keeps the group (and its kernel32 object) alive while a member is.
    _group: Option<CleanupGroup>,
    pool: Pool,
}

impl std::fmt::Debug for ObjectCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let life = *self.life.read();
        f.debug_struct("ObjectCore")
            .field("id", &self.id)
            .field("life", &life)
            .field("state", &*self.state.lock())
            .finish()
    }
}

impl ObjectCore {
    pub(crate) fn new(
        pool: Pool,
        group: Option<CleanupGroup>,
        cleanup: Option<CleanupCallback>,
        context: usize,
    ) -> ObjectCore {
        let stats = Arc::clone(pool.stats_arc());
        PoolStats::bump(&stats.objects_created);
        ObjectCore {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ptp: AtomicIsize::new(0),
            stats,
            context,
            cleanup,
            life: RwLock::new(Life::Open),
            state: Mutex::new(ObjState::default()),
            cv: Condvar::new(),
            released: AtomicBool::new(false),
            _group: group,
            pool,
        }
    }

    pub(crate) fn set_ptp(&self, ptp: PTP_IO) {
        self.ptp.store(ptp, Ordering::Release);
    }

    /// The kernel32 TP_IO; call it only while [`open`](Self::open) holds.
    pub(crate) fn ptp(&self) -> PTP_IO {
        self.ptp.load(Ordering::Acquire)
    }

    /// Holds the object open for a kernel32 call: `ERROR_INVALID_HANDLE`
    /// (counted as use after close) once closed or released.
    pub(crate) fn open(&self) -> Result<RwLockReadGuard<'_, Life>, Win32Error> {
        let g = self.life.read();
        if *g == Life::Open {
            Ok(g)
        } else {
            drop(g);
            self.stats.misuse(Misuse::UseAfterClose, self.id);
            Err(Win32Error::INVALID_HANDLE)
        }
    }

    /// `ERROR_POSSIBLE_DEADLOCK` when called from this object's own
    /// (associated) callback: kernel32 would wait for itself.
    pub(crate) fn check_wait(&self) -> Result<(), Win32Error> {
        if current_callback_object() == Some(self.id) {
            self.stats.misuse(Misuse::WaitInOwnCallback, self.id);
            return Err(Win32Error::POSSIBLE_DEADLOCK);
        }
        Ok(())
    }

    /// Counts the object released, once.
    pub(crate) fn mark_released(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            PoolStats::bump(&self.stats.objects_released);
        }
    }

    /// The group's cleanup callback for this member.
    fn run_cleanup(&self, cleanup_ctx: usize) {
        if let Some(cb) = &self.cleanup {
            if catch_unwind(AssertUnwindSafe(|| cb(self.context, cleanup_ctx))).is_err() {
                PoolStats::bump(&self.stats.callbacks_panicked);
                tracing::error!("a cleanup-group callback panicked; the panic was caught");
            }
        }
    }

    /// Under the lock: one more callback running (and associated).
    pub(crate) fn begin_locked(st: &mut ObjState) {
        st.running += 1;
        st.associated += 1;
    }

    /// Runs `body` as this object's callback: the thread-local marks it,
    /// a panic is caught and counted, the return actions run after it.
    /// The caller has counted it with [`begin_locked`](Self::begin_locked)
    /// and ends it with [`end`](Self::end).
    pub(crate) fn run_body(
        &self,
        instance: PTP_CALLBACK_INSTANCE,
        body: impl FnOnce(&mut CallbackInstance<'_>),
    ) -> bool {
        PoolStats::bump(&self.stats.callbacks_queued);
        PoolThreads::enter(self.pool.threads());
        let prev = CURRENT.with(|c| c.replace((self.id, true)));
        let mut inst = CallbackInstance::new(instance, Some(self), &self.stats);
        let panicked = catch_unwind(AssertUnwindSafe(|| body(&mut inst))).is_err();
        PoolStats::bump(&self.stats.callbacks_run);
        if panicked {
            PoolStats::bump(&self.stats.callbacks_panicked);
            tracing::error!(
                object = self.id,
                "a TP_IO callback panicked; the panic was caught (it must not unwind into kernel32)"
            );
        }
        let associated = inst.finish();
        CURRENT.with(|c| c.set(prev));
        associated
    }

    /// The callback returned: it no longer runs (nor counts for waits).
    pub(crate) fn end(&self, associated: bool) {
        let mut st = self.state.lock();
        st.running -= 1;
        if associated {
            st.associated -= 1;
        }
        drop(st);
        self.cv.notify_all();
    }

    /// The callback disassociated itself (`DisassociateCurrentThreadFromCallback`).
    pub(crate) fn disassociated(&self) {
        self.state.lock().associated -= 1;
        self.cv.notify_all();
    }

    /// Waits until `idle(state)` holds, at most `timeout` (`None`: forever).
    pub(crate) fn wait_until(
        &self,
        timeout: Option<Duration>,
        idle: impl Fn(&ObjState) -> bool,
    ) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut st = self.state.lock();
        while !idle(&st) {
            match deadline {
                None => self.cv.wait(&mut st),
                Some(d) => {
                    if self.cv.wait_until(&mut st, d).timed_out() {
                        return idle(&st);
                    }
                }
            }
        }
        true
    }
}

/// Runs a `TrySubmitThreadpoolCallback` job as a callback with no object.
pub(crate) fn run_simple(
    instance: PTP_CALLBACK_INSTANCE,
    stats: &Arc<PoolStats>,
    f: Box<dyn FnOnce(&mut CallbackInstance<'_>) + Send>,
) {
    PoolStats::bump(&stats.callbacks_queued);
    let mut inst = CallbackInstance::new(instance, None, stats);
    let panicked = catch_unwind(AssertUnwindSafe(|| f(&mut inst))).is_err();
    PoolStats::bump(&stats.callbacks_run);
    if panicked {
        PoolStats::bump(&stats.callbacks_panicked);
        tracing::error!("a pool callback panicked; the panic was caught");
    }
    inst.finish();
}

/// The `PTP_CLEANUP_GROUP_CANCEL_CALLBACK` of every environment with a
/// group: runs the member's cleanup closure with (member context, the
/// context given to `CloseThreadpoolCleanupGroupMembers`).
///
/// # Safety
/// Called by kernel32 only, with the context of a member TP_IO created by
/// this crate (a pointer to a `#[repr(C)]` object whose first field is an
/// [`ObjectCore`]). kernel32 calls it only for members the user has not
/// closed, and an open member's object is kept alive by the user's handle.
pub(crate) unsafe extern "system" fn group_cancel_trampoline(
    object_ctx: *mut core::ffi::c_void,
    cleanup_ctx: *mut core::ffi::c_void,
) {
    // SAFETY: per this function's contract, `object_ctx` points to a live
    // object whose first field is an `ObjectCore`.
    let core = unsafe { &*object_ctx.cast_const().cast::<ObjectCore>() };
    core.run_cleanup(cleanup_ctx as usize);
}
