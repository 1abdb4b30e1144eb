//! `PTP_POOL`: [`Pool`], a kernel32 thread pool, and the counters tpio keeps
//! about the objects and callbacks on it ([`PoolStats`]).
//!
//! It has every method of `tpio_core::Pool`, with the same signature, so
//! portable code builds on every OS. Where kernel32 has the concept the
//! method forwards to it (`submit_callback_with` is
//! `TrySubmitThreadpoolCallback` with a priority and the runs-long flag in
//! its environment) or answers from what tpio's own trampolines saw
//! (`is_worker_thread`, `thread_count`, `queued_len`, see `worker`); where
//! kernel32 has none (`set_idle_timeout`, `set_concurrency`, the manual
//! pool of the emulated backends) the method says in its doc what it does
//! instead, and never pretends.
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
use std::time::Duration;

use tpio_core::{Misuse, Priority, StatsSnapshot, Win32Error, MAX_POOL_THREADS};
use windows_sys::Win32::System::Threading::{
    CloseThreadpool, CreateThreadpool, SetThreadpoolThreadMaximum, SetThreadpoolThreadMinimum,
    TrySubmitThreadpoolCallback, PTP_CALLBACK_INSTANCE, PTP_POOL,
};

use crate::callback;
use crate::environment::CallbackEnvironment;
use crate::instance::CallbackInstance;
use crate::worker::PoolThreads;

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
            // kernel32's pool has no per-worker queues of tpio's.
            callbacks_stolen: 0,
            callbacks_shared: 0,
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
    threads: Arc<PoolThreads>,
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
                threads: PoolThreads::new(),
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
                    threads: PoolThreads::new(),
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

    pub(crate) fn threads(&self) -> &Arc<PoolThreads> {
        &self.inner.threads
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

    /// `TrySubmitThreadpoolCallback`: runs `f` once on a worker of this
    /// pool, at normal priority.
    pub fn submit_callback(&self, f: impl FnOnce(&mut CallbackInstance<'_>) + Send + 'static) {
        self.submit_callback_with(Priority::Normal, false, f);
    }

    /// `TrySubmitThreadpoolCallback` with an environment that carries
    /// `priority` (`SetThreadpoolCallbackPriority`) and, when `runs_long`,
    /// `SetThreadpoolCallbackRunsLong`: kernel32 starts a queued
    /// higher-priority callback before a lower one, and does not wait for a
    /// runs-long callback before giving the pool's other work a thread.
    /// If kernel32 refuses the callback (out of memory) it is logged and
    /// `f` is dropped without running, as `submit_callback` does.
    pub fn submit_callback_with(
        &self,
        priority: Priority,
        runs_long: bool,
        f: impl FnOnce(&mut CallbackInstance<'_>) + Send + 'static,
    ) {
        type Job = Box<dyn FnOnce(&mut CallbackInstance<'_>) + Send>;
        struct Submitted {
            f: Job,
            stats: Arc<PoolStats>,
            threads: Arc<PoolThreads>,
        }
        unsafe extern "system" fn simple(
            instance: PTP_CALLBACK_INSTANCE,
            ctx: *mut core::ffi::c_void,
        ) {
            // SAFETY: `ctx` is the `Box<Submitted>` leaked below, handed to
            // kernel32 for exactly one call.
            let job = unsafe { Box::from_raw(ctx.cast::<Submitted>()) };
            let Submitted { f, stats, threads } = *job;
            threads.unqueued();
            PoolThreads::enter(&threads);
            callback::run_simple(instance, &stats, f);
        }
        let job = Box::new(Submitted {
            f: Box::new(f),
            stats: Arc::clone(&self.inner.stats),
            threads: Arc::clone(&self.inner.threads),
        });
        let ctx = Box::into_raw(job);
        let env = CallbackEnvironment::new()
            .pool(self)
            .priority(priority)
            .runs_long(runs_long)
            .native();
        self.inner.threads.submitted();
        // SAFETY: `simple` matches PTP_SIMPLE_CALLBACK and takes ownership
        // of `ctx`; `env` is a valid environment naming our live pool.
        let ok = unsafe { TrySubmitThreadpoolCallback(Some(simple), ctx.cast(), &env.ce) };
        if ok == 0 {
            tracing::error!(error = ?crate::error::last(), "TrySubmitThreadpoolCallback failed");
            self.inner.threads.unqueued();
            // SAFETY: kernel32 refused the callback, so `ctx` is still ours.
            drop(unsafe { Box::from_raw(ctx) });
        }
    }

    /// Callbacks submitted with [`submit_callback`](Self::submit_callback)
    /// or [`submit_callback_with`](Self::submit_callback_with) that have
    /// not started. kernel32 does not say when it queues an I/O callback
    /// (only when it runs one), so on Windows this count leaves queued I/O
    /// callbacks out; `IoCounts::queued` of each object has those.
    pub fn queued_len(&self) -> usize {
        self.inner.threads.queued()
    }

    /// True when the calling thread is one of this pool's workers: a
    /// thread-local that tpio's trampolines (I/O callbacks of both layers,
    /// submitted callbacks) set for their pool says so. A kernel32 worker
    /// serves one pool for its life, so the answer is also right after the
    /// callback returns; a thread that never ran a tpio callback of the
    /// pool is never taken for one of its workers.
    pub fn is_worker_thread(&self) -> bool {
        self.inner.threads.is_current()
    }

    /// Worker threads alive now, as far as tpio can see them: the threads
    /// of this pool that have run a tpio callback and have not exited
    /// (each is uncounted by its thread-local's destructor as it exits).
    /// kernel32 does not say how many threads a pool has, so threads it
    /// started that have not run a tpio callback yet — e.g. the ones
    /// [`set_thread_minimum`](Self::set_thread_minimum) starts ahead of
    /// work — are not counted: this is a lower bound of kernel32's count,
    /// exact for the threads that ran callbacks.
    pub fn thread_count(&self) -> usize {
        self.inner.threads.alive()
    }

    /// Has no effect on Windows: kernel32 retires idle threads on its own
    /// timer and has no call to set it. Logged at debug level.
    pub fn set_idle_timeout(&self, t: Duration) {
        tracing::debug!(pool = %self.inner.name, timeout = ?t, "set_idle_timeout: kernel32 decides when idle threads exit; no effect");
    }

    /// Has no effect on Windows: kernel32 decides how many callbacks run at
    /// once (up to [`set_thread_maximum`](Self::set_thread_maximum)) and
    /// has no call to set its concurrency target. Logged at debug level.
    pub fn set_concurrency(&self, n: usize) {
        tracing::debug!(pool = %self.inner.name, n, "set_concurrency: kernel32 decides how many callbacks run at once; no effect");
    }

    /// The emulated pool's test instrument (a pool with no threads whose
    /// callbacks run only in [`run_queued`](Self::run_queued)) has no
    /// kernel32 equivalent: kernel32 runs a pool's callbacks on its own
    /// threads as soon as it can. On Windows this is [`Pool::new`] (with a
    /// warning logged): callbacks run on kernel32's workers, and
    /// `run_queued` answers `ERROR_INVALID_FUNCTION`, by which portable
    /// code can tell.
    pub fn new_manual(name: &str) -> Pool {
        tracing::warn!(
            pool = name,
            "new_manual: kernel32 has no manual pool; this is an ordinary pool, run_queued is ERROR_INVALID_FUNCTION"
        );
        Pool::new(name)
    }

    /// `ERROR_INVALID_FUNCTION` on Windows, always: this is what the
    /// emulated backends answer for a pool that is not manual, and on
    /// kernel32 no pool is (see [`new_manual`](Self::new_manual)); nothing
    /// is run.
    pub fn run_queued(&self, max: usize) -> Result<usize, Win32Error> {
        let _ = max;
        Err(Win32Error::INVALID_FUNCTION)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const PATIENCE: Duration = Duration::from_secs(20);

    #[test]
    fn a_kernel32_worker_is_counted_while_it_lives_and_uncounted_when_it_exits() {
        if crate::wine::running_under_wine() {
            // spec/wine-deviations.md, "A thread's exit with a thread-local
            // destructor of tpio's can hang".
            eprintln!("not run under Wine: a worker's exit can hang there");
            return;
        }
        let pool = Pool::new("unit-threads");
        pool.set_thread_maximum(1);
        let threads = Arc::clone(pool.threads());
        assert_eq!(pool.thread_count(), 0, "no callback ran yet");
        let (tx, rx) = mpsc::channel();
        let p2 = pool.clone();
        pool.submit_callback(move |_| {
            let _ = tx.send((p2.is_worker_thread(), p2.thread_count()));
        });
        assert_eq!(rx.recv_timeout(PATIENCE), Ok((true, 1)));
        assert!(!pool.is_worker_thread());
        // The last clone (the callback's went with its closure) closes the
        // pool: kernel32's threads exit, and their thread-locals uncount them.
        drop(pool);
        assert!(
            threads.wait_alive(0, PATIENCE),
            "the worker was not uncounted after CloseThreadpool ({} alive)",
            threads.alive()
        );
    }
}
