//! The thread pool (`TP_POOL`): worker threads, three priority queues,
//! minimum and maximum thread counts, idle retirement, and the process-wide
//! default pool.
//!
//! Owns the workers and the queue of work. It runs what it is given and
//! keeps the object accounting of a callback in step (queued → running →
//! done) by calling back into `io_object`; it must never decide whether a
//! completion gets a callback: that is `io_object`'s job.

use crate::io_object::{self, IoInner};
use crate::local_queue::{Epoch, LocalQueue};
use crate::parker::{self, Parker};
use crate::stats::{Stats, StatsSnapshot};
use crate::sync::{thread, Arc, AtomicUsize, Condvar, Mutex, Ordering};

mod worker;
// Pool ids are not synchronisation: a plain std atomic, also under loom.
use crate::{CallbackInstance, Completion, Priority, Win32Error};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

/// The most threads a pool may be asked to keep (`set_thread_minimum` above
/// this is `ERROR_INVALID_PARAMETER`).
pub const MAX_POOL_THREADS: usize = 4096;

/// The default maximum thread count of a pool (Windows uses 512).
pub const DEFAULT_MAX_THREADS: usize = 512;

/// How long an idle worker above the minimum waits for work before it exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One unit of work in a pool's queue.
pub(crate) enum Work {
    /// A TP_IO callback: the object and the completion it reports.
    Io(Arc<IoInner>, Completion),
    /// A plain callback (`TrySubmitThreadpoolCallback`).
    Simple(Box<dyn FnOnce(&mut CallbackInstance<'_>) + Send>, bool),
}

pub(crate) struct PoolState {
    queues: [VecDeque<Work>; 3],
    min: usize,
    max: usize,
    threads: usize,
    idle: usize,
    shutdown: bool,
    idle_timeout: Duration,
    spawned_total: usize,
    /// A test instrument: no worker threads; `run_queued` runs the queue.
    manual: bool,
    /// Callbacks running that said they may run long (they do not count
    /// against the concurrency target).
    long_running: usize,
    /// How many short callbacks may run at once before the pool stops adding
    /// threads for queued work: the number of CPUs.
    concurrency: usize,
    /// Idle workers waiting in their driver ([`Parker`]), the most recently
    /// parked last (woken first). Counted in `idle` too.
    parked: Vec<Parked>,
    /// Idle workers waiting on `work_cv` (no parker). Counted in `idle` too.
    cv_waiters: usize,
    /// Every worker's own queue ([`crate::local_queue`]).
    locals: Vec<Arc<LocalQueue>>,
    /// Counts takes of work and empty-to-non-empty pushes: unchanged
    /// between two [`parker::rescue_kept`] calls means queued work waited
    /// untaken for that long.
    progress: u64,
    /// When the current rescue epoch began.
    #[cfg_attr(loom, allow(dead_code))]
    epoch_started: std::time::Instant,
    /// `progress` as the last rescue saw it.
    #[cfg_attr(loom, allow(dead_code))]
    rescue_seen: u64,
}

/// A worker parked in its driver.
struct Parked {
    worker: u64,
    parker: std::sync::Arc<dyn Parker>,
    /// It may steal: it has no operation of its own in flight
    /// ([`Parker::outstanding`]) to wait for.
    hungry: bool,
}

/// The shortest rescue epoch: work queued in a worker's own queue is shared
/// once it has waited across a whole epoch (between one and two).
#[cfg_attr(loom, allow(dead_code))]
const RESCUE_EPOCH: Duration = Duration::from_millis(1);

pub(crate) struct PoolInner {
    id: u64,
    name: String,
    state: Mutex<PoolState>,
    work_cv: Condvar,
    /// User handles plus objects bound to the pool; at zero the pool shuts
    /// down once its queue is empty.
    refs: AtomicUsize,
    pub(crate) stats: Stats,
    /// Listed for [`parker::rescue_kept`] already (listing takes a global
    /// lock, so it happens once per pool, not once per kept callback).
    rescue_listed: std::sync::atomic::AtomicBool,
    /// Bit `p` set: the shared queue of priority `p` is not empty (written
    /// under `state`'s lock, read without it by workers choosing between
    /// their own queue and the shared one).
    shared_mask: AtomicUsize,
    /// Idle workers that may steal (`cv_waiters` plus hungry `parked`),
    /// read without the lock by a worker whose own queue grows.
    hungry_idle: AtomicUsize,
    /// The rescue epoch ([`crate::local_queue::Epoch`]).
    epoch: Epoch,
}

type Mine = Option<(Arc<PoolInner>, Arc<LocalQueue>)>;

std::thread_local! {
    /// The current worker's pool and own queue (none on other threads).
    static MINE: std::cell::RefCell<Mine> = const { std::cell::RefCell::new(None) };
}

/// A pool worker with its own queue, named so that another thread can
/// deliver completions on its behalf ([`crate::parker::deliver_for`]): the
/// callbacks go to the worker's own queue, as if it had delivered them.
#[derive(Clone)]
pub struct WorkerRef {
    pool: u64,
    queue: Arc<LocalQueue>,
    parker: std::sync::Weak<dyn Parker>,
}

impl fmt::Debug for WorkerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerRef")
            .field("pool", &self.pool)
            .field("worker", &self.queue.worker)
            .finish()
    }
}

std::thread_local! {
    /// The worker the current thread delivers for, if any.
    static DELIVERING_FOR: std::cell::RefCell<Option<WorkerRef>> =
        const { std::cell::RefCell::new(None) };
}

/// The current worker, with `parker` (the one its driver is installing).
pub(crate) fn worker_ref(parker: &std::sync::Arc<dyn Parker>) -> Option<WorkerRef> {
    MINE.try_with(|m| {
        m.borrow().as_ref().map(|(p, q)| WorkerRef {
            pool: p.id,
            queue: q.clone(),
            parker: std::sync::Arc::downgrade(parker),
        })
    })
    .ok()
    .flatten()
}

/// Runs `f` with the current thread delivering for `worker`.
pub(crate) fn deliver_for<R>(worker: &WorkerRef, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<WorkerRef>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            let _ = DELIVERING_FOR.try_with(|d| *d.borrow_mut() = prev);
        }
    }
    let prev = DELIVERING_FOR.with(|d| d.borrow_mut().replace(worker.clone()));
    let _restore = Restore(prev);
    f()
}

/// Runs `f` on the current thread's own queue if it is a worker of pool
/// `pool` (without a reference count: this is on every push).
fn with_my_queue(pool: u64, f: impl FnOnce(&LocalQueue)) {
    let _ = MINE.try_with(|m| {
        if let Some((p, q)) = &*m.borrow() {
            if p.id == pool {
                f(q);
            }
        }
    });
}

/// A thread pool (`PTP_POOL`). Cloning shares the pool; it shuts down when
/// the last handle and the last object on it are gone, after running every
/// callback still queued.
///
/// ```
/// use std::sync::mpsc;
/// let pool = tpio_core::Pool::new("docs");
/// let (tx, rx) = mpsc::channel();
/// pool.submit_callback(move |_inst| tx.send(std::thread::current().name().map(String::from)).unwrap());
/// let name = rx.recv().unwrap().unwrap();
/// assert!(name.starts_with("tpio-docs-"));
/// ```
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);
static DEFAULT_POOL: OnceLock<Pool> = OnceLock::new();

impl Pool {
    /// `CreateThreadpool`: a private pool; worker threads are named `tpio-NAME-N`.
    pub fn new(name: &str) -> Pool {
        Self::build(name, false)
    }

    /// A test instrument: a pool that never starts a thread. Its queued
    /// callbacks run only when [`run_queued`](Self::run_queued) is called, on
    /// the calling thread, so a test decides exactly when each runs. Never use
    /// it for real work: it breaks rule 3's "on a pool worker".
    pub fn new_manual(name: &str) -> Pool {
        Self::build(name, true)
    }

    /// Runs up to `max` queued callbacks on the calling thread, highest
    /// priority first; returns how many ran. Only for pools made with
    /// [`new_manual`](Self::new_manual) (`ERROR_INVALID_FUNCTION` otherwise).
    pub fn run_queued(&self, max: usize) -> Result<usize, Win32Error> {
        if !self.inner.state.lock().manual {
            return Err(Win32Error::INVALID_FUNCTION);
        }
        let mut ran = 0;
        while ran < max {
            let w = PoolInner::pop(&self.inner, &mut self.inner.state.lock());
            let Some((w, _)) = w else { break };
            PoolInner::run(&self.inner, w);
            ran += 1;
        }
        Ok(ran)
    }

    /// Callbacks queued and not started (on the shared queue and on the
    /// workers' own).
    pub fn queued_len(&self) -> usize {
        let st = self.inner.state.lock();
        let shared: usize = st.queues.iter().map(|q| q.len()).sum();
        shared + st.locals.iter().map(|l| l.len()).sum::<usize>()
    }

    fn build(name: &str, manual: bool) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                name: name.to_string(),
                state: Mutex::new(PoolState {
                    queues: Default::default(),
                    min: 0,
                    max: DEFAULT_MAX_THREADS,
                    threads: 0,
                    idle: 0,
                    shutdown: false,
                    idle_timeout: DEFAULT_IDLE_TIMEOUT,
                    spawned_total: 0,
                    manual,
                    long_running: 0,
                    concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
                    parked: Vec::new(),
                    cv_waiters: 0,
                    locals: Vec::new(),
                    progress: 0,
                    epoch_started: std::time::Instant::now(),
                    rescue_seen: 0,
                }),
                work_cv: Condvar::new(),
                refs: AtomicUsize::new(1),
                stats: Stats::default(),
                rescue_listed: std::sync::atomic::AtomicBool::new(false),
                shared_mask: AtomicUsize::new(0),
                hungry_idle: AtomicUsize::new(0),
                epoch: Epoch::new(),
            }),
        }
    }

    /// The process-wide default pool (what a `NULL` environment uses). It is
    /// never shut down.
    pub fn default_pool() -> Pool {
        DEFAULT_POOL.get_or_init(|| Pool::new("default")).clone()
    }

    /// `SetThreadpoolThreadMaximum`. 0 is taken as 1; the minimum is lowered to
    /// the maximum if it was above it.
    pub fn set_thread_maximum(&self, max: usize) {
        let mut st = self.inner.state.lock();
        st.max = max.clamp(1, MAX_POOL_THREADS);
        st.min = st.min.min(st.max);
    }

    /// `SetThreadpoolThreadMinimum`: starts threads until `min` run, and
    /// raises the maximum to `min` if it was below. Fails (and leaves the
    /// minimum unchanged) with `ERROR_INVALID_PARAMETER` above
    /// [`MAX_POOL_THREADS`], or with the error the OS gave when a thread could
    /// not be started.
    pub fn set_thread_minimum(&self, min: usize) -> Result<(), Win32Error> {
        if min > MAX_POOL_THREADS {
            tracing::warn!(
                min,
                limit = MAX_POOL_THREADS,
                "set_thread_minimum: above the pool's thread limit"
            );
            return Err(Win32Error::INVALID_PARAMETER);
        }
        let mut st = self.inner.state.lock();
        if st.manual {
            return Err(Win32Error::INVALID_FUNCTION);
        }
        while st.threads < min {
            st.threads += 1;
            if let Err(e) = PoolInner::spawn_worker(&self.inner, &mut st) {
                st.threads -= 1;
                return Err(e);
            }
        }
        st.min = min;
        st.max = st.max.max(min);
        Ok(())
    }

    /// How long idle workers above the minimum live (default 5 s).
    pub fn set_idle_timeout(&self, t: Duration) {
        let mut st = self.inner.state.lock();
        st.idle_timeout = t;
        PoolInner::wake_all(&self.inner, &mut st);
    }

    /// Worker threads alive now.
    pub fn thread_count(&self) -> usize {
        self.inner.state.lock().threads
    }

    /// The pool's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `TrySubmitThreadpoolCallback`: runs `f` once on a worker, at normal priority.
    pub fn submit_callback(&self, f: impl FnOnce(&mut CallbackInstance<'_>) + Send + 'static) {
        self.submit_callback_with(Priority::Normal, false, f);
    }

    /// Like `submit_callback`, with a priority and the runs-long hint.
    pub fn submit_callback_with(
        &self,
        priority: Priority,
        runs_long: bool,
        f: impl FnOnce(&mut CallbackInstance<'_>) + Send + 'static,
    ) {
        PoolInner::push(&self.inner, priority, Work::Simple(Box::new(f), runs_long));
    }

    /// How many short callbacks may run at once before queued work waits for
    /// a worker instead of getting a new thread (default: the CPU count).
    pub fn set_concurrency(&self, n: usize) {
        self.inner.state.lock().concurrency = n.max(1);
    }

    /// True when the calling thread is one of this pool's workers.
    pub fn is_worker_thread(&self) -> bool {
        parker::current_pool() == self.inner.id
    }

    pub(crate) fn from_inner(inner: &Arc<PoolInner>) -> Pool {
        inner.refs.fetch_add(1, Ordering::Relaxed);
        Pool {
            inner: inner.clone(),
        }
    }
}

impl Clone for Pool {
    fn clone(&self) -> Self {
        Pool::from_inner(&self.inner)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.unref();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .finish()
    }
}

impl PoolInner {
    pub(crate) fn add_ref(&self) {
        self.refs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unref(&self) {
        if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut st = self.state.lock();
            st.shutdown = true;
            Self::wake_all(self, &mut st);
        }
    }

    /// Wakes every idle worker, whatever it waits on.
    fn wake_all(this: &Self, st: &mut PoolState) {
        this.work_cv.notify_all();
        for p in &st.parked {
            p.parker.unpark();
        }
    }

    /// Queues work and makes sure a worker will take it. Work that a worker
    /// with a parker queues on its own pool goes to its own queue
    /// ([`crate::local_queue`]): nobody is woken for it, unless it already
    /// had work queued and a worker with nothing to wait for is idle, which
    /// is woken to steal. Other work goes to the shared queue and wakes (or
    /// starts) a worker.
    pub(crate) fn push(this: &Arc<Self>, priority: Priority, work: Work) {
        let mut work = Some(work);
        if let parker::Push::Local { credit, in_park } = parker::on_push(this.id) {
            with_my_queue(this.id, |local| {
                if let Some(w) = work.take() {
                    work = Self::push_local(this, local, priority, w, credit, in_park).err();
                }
            });
        }
        let Some(work) = work else { return };
        let work = match Self::push_for(this, priority, work) {
            Ok(()) => return,
            Err(work) => work,
        };
        let mut st = this.state.lock();
        if st.queues.iter().all(|q| q.is_empty()) {
            st.progress = st.progress.wrapping_add(1);
        }
        st.queues[priority as usize].push_back(work);
        Self::publish_mask(this, &st);
        PoolInner::wake_or_grow(this, &mut st);
    }

    /// Work queued by a thread delivering for a worker of this pool
    /// ([`deliver_for`]) goes to that worker's own queue, and the worker is
    /// unparked if it is about to park: `Err(work)` otherwise.
    fn push_for(this: &Arc<Self>, priority: Priority, work: Work) -> Result<(), Work> {
        let Some(w) = DELIVERING_FOR
            .try_with(|d| d.borrow().clone())
            .ok()
            .flatten()
        else {
            return Err(work);
        };
        let Some(parker) = w.parker.upgrade() else {
            return Err(work);
        };
        if w.pool != this.id {
            return Err(work);
        }
        let queued = w.queue.push(priority, work, this.epoch.now())?;
        if queued == 1 {
            parker.kept();
            Self::list_for_rescue(this);
        }
        parker.unpark();
        Ok(())
    }

    /// Queues `work` on the current worker's own queue (see [`push`]).
    /// `Err(work)` only if the worker has exited, which it cannot while it
    /// runs this.
    fn push_local(
        this: &Arc<Self>,
        local: &LocalQueue,
        priority: Priority,
        work: Work,
        credit: Option<u64>,
        in_park: bool,
    ) -> Result<(), Work> {
        if let Some(me) = credit {
            // A parked worker's own delivery: it is busy from now on.
            let mut st = this.state.lock();
            st.idle -= 1;
            st.parked.retain(|p| p.worker != me);
            Self::count_hungry(this, &st);
        }
        let queued = local.push(priority, work, this.epoch.now())?;
        // Work the worker cannot run next (it runs a callback, or earlier
        // work of its delivery comes first) needs the driver's rescue if the
        // worker blocks: once per stretch of a non-empty queue.
        if queued == 1 + usize::from(in_park) {
            parker::kept_current();
            Self::list_for_rescue(this);
        }
        if queued >= 2 && this.hungry_idle.load(Ordering::Relaxed) > 0 {
            Self::wake_hungry(this, &mut this.state.lock());
        }
        Ok(())
    }

    /// Lists the pool for [`parker::rescue_kept`] (once: it takes a
    /// process-wide lock).
    fn list_for_rescue(this: &Arc<Self>) {
        if !this
            .rescue_listed
            .load(std::sync::atomic::Ordering::Relaxed)
            && !this
                .rescue_listed
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            parker::list_for_rescue(this);
        }
    }

    /// Keeps `shared_mask` in step with the shared queues (under the lock).
    fn publish_mask(this: &Self, st: &PoolState) {
        let mask = st
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.is_empty())
            .fold(0, |m, (p, _)| m | 1 << p);
        this.shared_mask.store(mask, Ordering::Relaxed);
    }

    /// Keeps `hungry_idle` in step with the idle workers (under the lock).
    fn count_hungry(this: &Self, st: &PoolState) {
        let n = st.cv_waiters + st.parked.iter().filter(|p| p.hungry).count();
        this.hungry_idle.store(n, Ordering::Relaxed);
    }

    /// Wakes one idle worker that may steal, if there is one.
    fn wake_hungry(this: &Self, st: &mut PoolState) {
        if let Some(i) = st.parked.iter().rposition(|p| p.hungry) {
            let p = st.parked.remove(i);
            Self::count_hungry(this, st);
            p.parker.unpark();
        } else if st.cv_waiters > 0 {
            this.work_cv.notify_one();
        }
    }

    /// [`parker::rescue_kept`] for this pool, every few milliseconds: work
    /// in a worker's own queue that waited across a whole interval (its
    /// worker is blocked, or has more than it can run) moves to the shared
    /// queue; then, if queued work made no progress since the last call, a
    /// worker is woken (or started). True while work is queued.
    #[cfg(not(loom))]
    pub(crate) fn rescue(this: &Arc<Self>) -> bool {
        let mut st = this.state.lock();
        // Several drivers may call this: an epoch lasts at least
        // `RESCUE_EPOCH`, whoever calls.
        let now = std::time::Instant::now();
        let ended = if now.duration_since(st.epoch_started) >= RESCUE_EPOCH {
            st.epoch_started = now;
            this.epoch.advance()
        } else {
            0
        };
        let mut local_left = false;
        let mut moved = false;
        for i in 0..st.locals.len() {
            let local = st.locals[i].clone();
            for (w, p) in local.take_older_than(ended) {
                st.queues[p as usize].push_back(w);
                Stats::bump(&this.stats.callbacks_shared);
                moved = true;
            }
            local_left |= local.len() > 0;
        }
        if moved {
            tracing::trace!(pool = %this.name, "work waited in a worker's own queue: shared");
            Self::publish_mask(this, &st);
        }
        if st.queues.iter().all(|q| q.is_empty()) {
            return local_left;
        }
        if moved || st.progress == st.rescue_seen {
            tracing::trace!(pool = %this.name, "queued work waited untaken: waking a worker");
            PoolInner::wake_or_grow(this, &mut st);
            st.progress = st.progress.wrapping_add(1);
        }
        st.rescue_seen = st.progress;
        true
    }

    /// The current worker is about to block (a wait of tpio's own, or a
    /// callback that said it may run long): its own queue moves to the
    /// shared one, so the work waits for no one.
    pub(crate) fn share_mine() {
        let Some((this, local)) = MINE.try_with(|m| m.borrow().clone()).ok().flatten() else {
            return;
        };
        if local.len() == 0 {
            return;
        }
        let work = local.take_older_than(u64::MAX);
        Stats::add(&this.stats.callbacks_shared, work.len() as u64);
        let mut st = this.state.lock();
        for (w, p) in work {
            st.queues[p as usize].push_back(w);
            PoolInner::wake_or_grow(&this, &mut st);
        }
        st.progress = st.progress.wrapping_add(1);
        Self::publish_mask(&this, &st);
    }

    /// Wakes an idle worker, or starts one when every worker is busy, the
    /// maximum allows, and fewer short callbacks run than there are CPUs
    /// (callbacks that may run long do not count, as on Windows).
    fn wake_or_grow(this: &Arc<Self>, st: &mut PoolState) {
        if st.manual {
            return;
        }
        let busy_short = (st.threads - st.idle).saturating_sub(st.long_running);
        if st.idle > 0 {
            match st.parked.pop() {
                Some(p) => {
                    Self::count_hungry(this, st);
                    p.parker.unpark();
                }
                None => {
                    this.work_cv.notify_one();
                }
            }
        } else if st.threads < st.max && busy_short < st.concurrency {
            st.threads += 1;
            if let Err(e) = Self::spawn_worker(this, st) {
                st.threads -= 1;
                tracing::error!(pool = %this.name, error = %e, "could not start a worker thread; work stays queued");
            }
        }
    }

    /// A callback that said it may run long has returned.
    pub(crate) fn end_long(&self) {
        self.state.lock().long_running -= 1;
    }

    /// Removes every queued callback of one object, from the shared queue
    /// and the workers' own, and returns them (`wait_for_callbacks(true)`).
    /// Caller holds the object's lock.
    pub(crate) fn remove_queued_of(&self, object: &Arc<IoInner>) -> Vec<Completion> {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        for q in st.queues.iter_mut() {
            if q.is_empty() {
                continue;
            }
            q.retain_mut(|w| match w {
                Work::Io(o, c) if Arc::ptr_eq(o, object) => {
                    out.push(*c);
                    false
                }
                _ => true,
            });
        }
        Self::publish_mask(self, &st);
        for local in &st.locals {
            local.remove_of(object, &mut out);
        }
        out
    }

    fn spawn_worker(this: &Arc<Self>, st: &mut PoolState) -> Result<(), Win32Error> {
        st.spawned_total += 1;
        let name = format!("tpio-{}-{}", this.name, st.spawned_total);
        let me = this.clone();
        let id = st.spawned_total as u64;
        thread::Builder::new()
            .name(name)
            .spawn(move || PoolInner::worker_main(me, id))
            .map(|_| ())
            .map_err(|e| {
                let w = crate::errno_map::io_error_to_win32(&e);
                tracing::error!(error = %e, "thread pool: spawning a worker failed");
                if w == crate::errno_map::UNMAPPED_ERRNO {
                    Win32Error::NOT_ENOUGH_MEMORY
                } else {
                    w
                }
            })
    }

    /// The front of the highest-priority shared queue.
    pub(crate) fn pop(this: &Self, st: &mut PoolState) -> Option<(Work, Priority)> {
        for p in Priority::ALL {
            if let Some(w) = st.queues[p as usize].pop_front() {
                st.progress = st.progress.wrapping_add(1);
                Self::publish_mask(this, st);
                return Some((w, p));
            }
        }
        None
    }

    pub(crate) fn run(this: &Arc<Self>, work: Work) {
        match work {
            Work::Io(obj, completion) => io_object::run_callback(this, obj, completion),
            Work::Simple(f, runs_long) => {
                let mut inst = CallbackInstance::new(this, None);
                if runs_long {
                    inst.may_run_long();
                }
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut inst)));
                this.stats.callbacks_run.bump();
                if r.is_err() {
                    Stats::bump(&this.stats.callbacks_panicked);
                    tracing::error!(pool = %this.name, "a simple callback panicked; the panic was caught");
                }
                inst.finish();
            }
        }
    }

    /// `CallbackMayRunLong`: true when another thread is free or could be
    /// started for the pool's other work. The worker's own queue is shared
    /// first: nothing waits behind a long callback.
    pub(crate) fn may_run_long(this: &Arc<Self>) -> bool {
        Self::share_mine();
        let mut st = this.state.lock();
        st.long_running += 1;
        if st.queues.iter().any(|q| !q.is_empty()) {
            // This thread no longer counts: queued work may get a thread now.
            let before = st.threads;
            PoolInner::wake_or_grow(this, &mut st);
            if st.threads > before {
                // A thread was started for the pool's other work.
                return true;
            }
        }
        if st.idle > 0 {
            return true;
        }
        if st.manual {
            return false;
        }
        if st.threads < st.max {
            st.threads += 1;
            match Self::spawn_worker(this, &mut st) {
                Ok(()) => return true,
                Err(_) => st.threads -= 1,
            }
        }
        false
    }
}
