//! `PTP_POOL`: [`Pool`], a kernel32 thread pool, and the counters tpio keeps
//! about the objects and callbacks on it ([`PoolStats`]).
//!
//! Owns the pool's lifetime (`CreateThreadpool` … `CloseThreadpool`, when
//! the last clone goes; kernel32 then frees it once no object is bound to
//! it) and its counters. It never runs a callback itself except through
//! `TrySubmitThreadpoolCallback`, and never decides anything kernel32
//! decides (which thread, how many).
//!
//! kernel32 does not say when it queues a callback, only when it runs one,
//! so `callbacks_queued` counts callbacks as they start; `callbacks_dropped`
//! stays 0 (a callback kernel32 drops is invisible). `packets_skipped`
//! counts the operations whose start `wait_for_callbacks(true)` or a cleanup
//! group stopped expecting (each one's memory is leaked, see `tp_io`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tpio_core::{Misuse, StatsSnapshot, Win32Error, MAX_POOL_THREADS};
use windows_sys::Win32::System::Threading::{
    CloseThreadpool, CreateThreadpool, SetThreadpoolThreadMaximum, SetThreadpoolThreadMinimum,
    TrySubmitThreadpoolCallback, PTP_CALLBACK_INSTANCE, PTP_POOL,
};

use crate::callback;
use crate::environment::CallbackEnvironment;
use crate::instance::CallbackInstance;

/// Live counters of one pool (shared by the pool's clones and by every
/// object created on it, so an object can count after the pool handle is
/// gone).
#[derive(Debug, Default)]
pub struct PoolStats {
    pub(crate) objects_created: AtomicU64,
    pub(crate) objects_released: AtomicU64,
    pub(crate) callbacks_queued: AtomicU64,
    pub(crate) callbacks_run: AtomicU64,
    pub(crate) callbacks_panicked: AtomicU64,
    pub(crate) packets_skipped: AtomicU64,
    misuse_completion_without_start: AtomicU64,
    misuse_cancel_without_start: AtomicU64,
    misuse_wait_in_own_callback: AtomicU64,
    misuse_use_after_close: AtomicU64,
}

impl PoolStats {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts and reports a misuse (a `tracing` warning naming the rule).
    pub fn misuse(&self, m: Misuse, object: u64) {
        let c = match m {
            Misuse::CompletionWithoutStart => &self.misuse_completion_without_start,
            Misuse::CancelWithoutStart => &self.misuse_cancel_without_start,
            Misuse::WaitInOwnCallback => &self.misuse_wait_in_own_callback,
            Misuse::UseAfterClose => &self.misuse_use_after_close,
            // No driver of tpio's runs under kernel32: nothing to lose.
            _ => return,
        };
        Self::bump(c);
        tracing::warn!(target: "tpio::misuse", object, misuse = ?m, "{}", m.rule());
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            objects_created: r(&self.objects_created),
            objects_released: r(&self.objects_released),
            callbacks_queued: r(&self.callbacks_queued),
            callbacks_run: r(&self.callbacks_run),
            callbacks_dropped: 0,
            callbacks_panicked: r(&self.callbacks_panicked),
            packets_skipped: r(&self.packets_skipped),
            misuse_completion_without_start: r(&self.misuse_completion_without_start),
            misuse_cancel_without_start: r(&self.misuse_cancel_without_start),
            misuse_wait_in_own_callback: r(&self.misuse_wait_in_own_callback),
            misuse_use_after_close: r(&self.misuse_use_after_close),
            misuse_driver_lost_packet: 0,
        }
    }
}

struct PoolInner {
    /// 0 for the process's default pool (a null `Pool` in an environment).
    ptp: PTP_POOL,
    name: String,
    stats: Arc<PoolStats>,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if self.ptp != 0 {
            // SAFETY: a pool we created and close exactly once; kernel32
            // frees it once no object is bound to it any more.
            unsafe { CloseThreadpool(self.ptp) }
        }
    }
}

/// A thread pool (`PTP_POOL`). Cloning shares it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    /// `CreateThreadpool`: a private pool. kernel32 names its threads, not
    /// tpio; `name` is kept for [`name`](Self::name) and logs. Panics only
    /// if kernel32 cannot create a pool (out of memory).
    pub fn new(name: &str) -> Pool {
        // SAFETY: the reserved argument is null, as documented.
        let ptp = unsafe { CreateThreadpool(std::ptr::null()) };
        assert!(
            ptp != 0,
            "CreateThreadpool failed: {:?}",
            crate::error::last()
        );
        Pool {
            inner: Arc::new(PoolInner {
                ptp,
                name: name.to_string(),
                stats: Arc::default(),
            }),
        }
    }

    /// The process's default pool (what a `NULL` environment uses).
    pub fn default_pool() -> Pool {
        static DEFAULT: OnceLock<Pool> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Pool {
                inner: Arc::new(PoolInner {
                    ptp: 0,
                    name: "default".into(),
                    stats: Arc::default(),
                }),
            })
            .clone()
    }

    pub(crate) fn ptp(&self) -> PTP_POOL {
        self.inner.ptp
    }

    pub(crate) fn stats_arc(&self) -> &Arc<PoolStats> {
        &self.inner.stats
    }

    /// `SetThreadpoolThreadMaximum` (0 is taken as 1). The default pool has
    /// no handle in kernel32: there it does nothing.
    pub fn set_thread_maximum(&self, max: usize) {
        if self.inner.ptp == 0 {
            tracing::warn!("tpio: the default kernel32 pool's maximum cannot be set");
            return;
        }
        let max = max.clamp(1, MAX_POOL_THREADS) as u32;
        // SAFETY: a live pool of ours.
        unsafe { SetThreadpoolThreadMaximum(self.inner.ptp, max) }
    }

    /// `SetThreadpoolThreadMinimum`: `ERROR_INVALID_PARAMETER` above
    /// [`MAX_POOL_THREADS`], kernel32's error when it cannot start the
    /// threads, `ERROR_NOT_SUPPORTED` on the default pool.
    pub fn set_thread_minimum(&self, min: usize) -> Result<(), Win32Error> {
        if min > MAX_POOL_THREADS {
            return Err(Win32Error::INVALID_PARAMETER);
        }
        if self.inner.ptp == 0 {
            return Err(Win32Error::NOT_SUPPORTED);
        }
        // SAFETY: a live pool of ours.
        crate::error::check(unsafe { SetThreadpoolThreadMinimum(self.inner.ptp, min as u32) })
    }

    /// The pool's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `TrySubmitThreadpoolCallback`: runs `f` once on a worker of this pool.
    pub fn submit_callback(&self, f: impl FnOnce(&mut CallbackInstance<'_>) + Send + 'static) {
        type Job = Box<dyn FnOnce(&mut CallbackInstance<'_>) + Send>;
        unsafe extern "system" fn simple(
            instance: PTP_CALLBACK_INSTANCE,
            ctx: *mut core::ffi::c_void,
        ) {
            // SAFETY: `ctx` is the `Box<(Job, Arc<PoolStats>)>` leaked below,
            // handed to kernel32 for exactly one call.
            let job = unsafe { Box::from_raw(ctx.cast::<(Job, Arc<PoolStats>)>()) };
            let (f, stats) = *job;
            callback::run_simple(instance, &stats, f);
        }
        let job: Box<(Job, Arc<PoolStats>)> =
            Box::new((Box::new(f), Arc::clone(&self.inner.stats)));
        let ctx = Box::into_raw(job);
        let env = CallbackEnvironment::new().pool(self).native();
        // SAFETY: `simple` matches PTP_SIMPLE_CALLBACK and takes ownership
        // of `ctx`; `env` is a valid environment naming our live pool.
        let ok = unsafe { TrySubmitThreadpoolCallback(Some(simple), ctx.cast(), &env.ce) };
        if ok == 0 {
            tracing::error!(error = ?crate::error::last(), "TrySubmitThreadpoolCallback failed");
            // SAFETY: kernel32 refused the callback, so `ctx` is still ours.
            drop(unsafe { Box::from_raw(ctx) });
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("ptp", &self.inner.ptp)
            .finish()
    }
}
