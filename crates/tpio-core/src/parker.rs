//! How an idle pool worker can wait in its driver instead of on the pool's
//! condition variable: the [`Parker`] contract.
//!
//! A Windows pool worker waits on the completion port, which hands it both
//! I/O completions and queued work, so the thread that learns of a
//! completion is the one that runs its callback. A driver that can do the
//! same (the io_uring driver gives each worker a ring of its own) installs a
//! [`Parker`] on the worker thread with [`install_parker`]; from then on the
//! pool parks that worker in [`Parker::park`], where the driver reaps its
//! completions and delivers them, and wakes it with [`Parker::unpark`]
//! instead of a condition variable. Every callback a worker with a parker
//! queues on its own pool — from its delivery in `park`, or while it runs
//! a callback (an operation that completed at once, say) — goes to the
//! worker's own queue ([`crate::local_queue`]): nobody is woken, the worker
//! runs it itself, in order, with no thread hand-off, so a chain of
//! operations keeps to one thread. It is shared only with an idle worker
//! that has nothing of its own in flight ([`Parker::outstanding`]), when the
//! worker is about to block in tpio ([`flush_current`]), or by the rescue:
//! the driver promises ([`Parker::kept`]) to call [`rescue_kept`] every few
//! milliseconds from another thread, which moves work that waited across a
//! whole rescue interval to the pool's shared queue and wakes a worker for
//! it — so a callback that blocks never strands the work it queued.
//!
//! This module owns the contract and the per-thread record of which pool and
//! parker a worker has. It must never reach the OS, and never let a parker
//! run on a thread that is not a pool worker.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

/// A driver's wait for an idle pool worker. See the [module docs](self).
///
/// The pool calls every method but `unpark` on the worker thread that
/// installed the parker; `unpark` comes from any thread.
pub trait Parker: Send + Sync + 'static {
    /// Blocks until [`unpark`](Self::unpark) was called (now, or since the
    /// last `park` returned), until `timeout` passed, or until the driver
    /// delivered completions. Spurious returns are allowed: the pool looks
    /// at its queue again each time.
    fn park(&self, timeout: Duration);

    /// Makes the current or the next [`park`](Self::park) return. Must not
    /// block and must be cheap when the worker is not parked.
    fn unpark(&self);

    /// The worker queued a callback for itself that it cannot run next (see
    /// the [module docs](self)): from now until [`rescue_kept`] returns
    /// false, the driver must call it from another thread every few
    /// milliseconds.
    fn kept(&self);

    /// False while the thread owns work the driver cannot move to another
    /// thread (operations it submitted that have not completed): the pool
    /// then keeps the thread alive, parked, even past its idle time-out or
    /// the pool's shutdown, until this says true.
    fn may_exit(&self) -> bool;

    /// Operations the worker owns that are in flight in its wait: how much
    /// work is coming its way. The pool balances by it: an idle worker
    /// with none takes queued work from any busy worker, one with some
    /// only from a worker with clearly more. Must be cheap and change
    /// nothing. The default, 0, makes the worker help whenever it is idle.
    fn outstanding(&self) -> usize {
        0
    }

    /// The worker is about to block outside its parker (a wait of tpio's
    /// own, or a blocking call, made from a callback): a driver that holds
    /// the worker's submissions back until it parks (to hand the kernel a
    /// batch with one system call) must hand them over now, since what the
    /// thread waits for may depend on them. Called on the worker thread.
    /// The default does nothing.
    fn flush(&self) {}

    /// The worker ran a callback and is about to take its next one: a
    /// driver that holds the worker's submissions back may hand over those
    /// that have waited long enough, so that a run of callbacks bounds how
    /// long an operation waits for the worker's next park. Called on the
    /// worker thread after every callback: must be cheap. The default does
    /// nothing.
    fn between_callbacks(&self) {}
}

/// What the current thread is, for the pool: which pool it works for (0:
/// none), its worker id, and its parker.
struct WorkerCtx {
    pool: Cell<u64>,
    worker: Cell<u64>,
    parker: RefCell<Option<Arc<dyn Parker>>>,
    /// `(pool, worker)` while the worker is parked and has not yet taken
    /// its first queued callback of its own delivery; see [`take_credit`].
    delivering: Cell<(u64, u64)>,
    /// The worker's idle count was already given back by [`take_credit`].
    unidled: Cell<bool>,
    /// The worker is in [`Parker::park`] (delivering, not running a
    /// callback): the first work it queues is the next it runs.
    in_park: Cell<bool>,
    /// The driver state that goes with the parker ([`worker_slot`]).
    slot: RefCell<Slot>,
}

/// What [`worker_slot`] decided for the current thread.
enum Slot {
    /// Nothing yet (not a worker when asked, or never asked).
    Undecided,
    /// No driver state here (making it failed, or another driver's parker
    /// is installed).
    None,
    /// The state of the driver with this identity.
    Mine(usize, Arc<dyn std::any::Any + Send + Sync>),
}

std::thread_local! {
    static CTX: WorkerCtx = const {
        WorkerCtx {
            pool: Cell::new(0),
            worker: Cell::new(0),
            parker: RefCell::new(None),
            delivering: Cell::new((0, 0)),
            unidled: Cell::new(false),
            in_park: Cell::new(false),
            slot: RefCell::new(Slot::Undecided),
        }
    };
}

/// Installs `parker` for the current thread, which must be a pool worker
/// with none installed yet. Returns false (and installs nothing) otherwise.
pub fn install_parker(parker: Arc<dyn Parker>) -> bool {
    CTX.with(|c| {
        if c.pool.get() == 0 {
            return false;
        }
        let mut p = c.parker.borrow_mut();
        if p.is_some() {
            return false;
        }
        *p = Some(parker);
        true
    })
}

/// The per-thread state of a driver that parks workers (a worker's own
/// ring or poll), for the driver with identity `owner` (its address):
/// the state made earlier on this thread, or — on a pool worker without a
/// parker — the one `make` returns now, whose parker is then installed.
/// `None` on any other thread (asked again next time: a thread may become
/// a worker), on a worker whose parker is another driver's, and once `make`
/// returned `None` on this thread. The identity must not be reused while a
/// state made for it lives (a driver's parker can hold a `Weak` to it).
pub fn worker_slot<T: Send + Sync + 'static>(
    owner: usize,
    make: impl FnOnce() -> Option<(Arc<T>, Arc<dyn Parker>)>,
) -> Option<Arc<T>> {
    CTX.with(|c| {
        match &*c.slot.borrow() {
            Slot::Mine(o, state) if *o == owner => return Arc::clone(state).downcast::<T>().ok(),
            Slot::Mine(..) | Slot::None => return None,
            Slot::Undecided => {}
        }
        if c.pool.get() == 0 || c.parker.borrow().is_some() {
            return None;
        }
        let made = make();
        let mut slot = c.slot.borrow_mut();
        let Some((state, parker)) = made else {
            *slot = Slot::None;
            return None;
        };
        *c.parker.borrow_mut() = Some(parker);
        *slot = Slot::Mine(owner, state.clone());
        Some(state)
    })
}

/// A driver's "my thread is watching worker waits" flag, shared with its
/// parkers: on while any worker has operations in its own wait or kept work
/// may need a rescue (the driver's thread then wakes every few ms to look).
#[derive(Debug, Default)]
pub struct Watch {
    on: std::sync::atomic::AtomicBool,
}

impl Watch {
    /// Whether the driver's thread is watching.
    pub fn is_on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Turns watching on; true when it was off (the caller must then wake
    /// the driver's thread, which may be waiting with no time-out).
    pub fn turn_on(&self) -> bool {
        !self.is_on() && !self.on.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// After a scan: keeps watching while `busy()` (whether anything still
    /// needs it) says so; else turns watching off and asks `busy()` once
    /// more, since work that came between the scan and the store saw the
    /// flag still on and woke nobody.
    pub fn settle(&self, mut busy: impl FnMut() -> bool) {
        use std::sync::atomic::Ordering;
        if busy() {
            self.on.store(true, Ordering::Release);
            return;
        }
        self.on.store(false, Ordering::Release);
        if busy() {
            self.on.store(true, Ordering::Release);
        }
    }
}

/// True when the current thread is a pool worker that can take a parker
/// (it has none yet).
pub fn can_install_parker() -> bool {
    CTX.with(|c| c.pool.get() != 0 && c.parker.borrow().is_none())
}

/// The id of the pool the current thread works for (0: not a worker).
pub(crate) fn current_pool() -> u64 {
    CTX.with(|c| c.pool.get())
}

/// Marks the current thread as worker `worker` of pool `pool`.
pub(crate) fn enter_worker(pool: u64, worker: u64) {
    CTX.with(|c| {
        c.pool.set(pool);
        c.worker.set(worker);
    });
}

/// The current worker's parker, if a driver installed one.
pub(crate) fn current_parker() -> Option<Arc<dyn Parker>> {
    CTX.with(|c| c.parker.borrow().clone())
}

/// Called before tpio blocks the current thread outside a park: the
/// worker's own queue goes to the pool's shared queue (someone else runs
/// it), and the parker hands over what it holds back ([`Parker::flush`]).
/// Does nothing on a thread that is not a pool worker.
pub fn flush_current() {
    crate::pool::PoolInner::share_mine();
    // `try_with`: a wait may run in a thread-local destructor.
    let _ = CTX.try_with(|c| {
        if let Ok(p) = c.parker.try_borrow() {
            if let Some(p) = p.as_ref() {
                p.flush();
            }
        }
    });
}

/// After each callback a pool worker runs: [`Parker::between_callbacks`].
pub(crate) fn between_callbacks() {
    CTX.with(|c| {
        if let Ok(p) = c.parker.try_borrow() {
            if let Some(p) = p.as_ref() {
                p.between_callbacks();
            }
        }
    });
}

/// Forgets the worker's parker (the thread is about to exit).
pub(crate) fn leave_worker() {
    CTX.with(|c| {
        c.pool.set(0);
        c.parker.borrow_mut().take();
    });
}

/// Around [`Parker::park`]: from now until [`end_park`], the first callback
/// the worker's delivery queues on its own pool is the worker's.
pub(crate) fn begin_park(pool: u64, worker: u64) {
    CTX.with(|c| {
        c.delivering.set((pool, worker));
        c.unidled.set(false);
        c.in_park.set(true);
    });
}

/// After [`Parker::park`]: true when [`take_credit`] already gave back the
/// worker's idle count.
pub(crate) fn end_park() -> bool {
    CTX.with(|c| {
        c.delivering.set((0, 0));
        c.in_park.set(false);
        c.unidled.get()
    })
}

/// Called when work is queued on pool `pool`: if the current thread is a
/// parked worker of that pool delivering its own completions and has not
/// used its credit yet, uses it and returns the worker's id — the caller
/// then counts the worker as no longer idle and wakes nobody for this work.
pub(crate) fn take_credit(pool: u64) -> Option<u64> {
    CTX.with(|c| {
        let (p, w) = c.delivering.get();
        if p == 0 || p != pool {
            return None;
        }
        c.delivering.set((0, 0));
        c.unidled.set(true);
        Some(w)
    })
}

/// What `push` does with work the current thread queues on pool `pool`.
pub(crate) enum Push {
    /// Queue it on the pool's shared queue and wake or grow as usual.
    Wake,
    /// The current thread is a worker of the pool with a parker: the work
    /// goes to its own queue ([`crate::local_queue`]).
    Local {
        /// The worker is parked and this is the first work its own
        /// delivery queues (id given): it is no longer idle.
        credit: Option<u64>,
        /// The worker is delivering in [`Parker::park`], not running a
        /// callback: the first work it queues is the next it runs.
        in_park: bool,
    },
}

/// Decides [`Push`] for work queued on `pool` from the current thread.
pub(crate) fn on_push(pool: u64) -> Push {
    let credit = take_credit(pool);
    CTX.with(|c| {
        if c.pool.get() != pool || c.parker.borrow().is_none() {
            return Push::Wake;
        }
        Push::Local {
            credit,
            in_park: c.in_park.get(),
        }
    })
}

/// The current pool worker, for deliveries another thread makes on its
/// behalf ([`deliver_for`]); `parker` is the parker its driver installs (or
/// has installed) on it. `None` on a thread that is not a pool worker.
pub fn current_worker(parker: &Arc<dyn Parker>) -> Option<crate::pool::WorkerRef> {
    crate::pool::worker_ref(parker)
}

/// Runs `f` — a driver's delivery of completions that belong to `worker`'s
/// own wait, made by another thread because the worker was busy (a rescue)
/// — so that the callbacks it queues go to the worker's own queue, as if
/// the worker had delivered them itself: it runs them when it is free, and
/// each chain of operations keeps to its worker. The worker is woken if it
/// parks meanwhile. If it stays blocked, the pool's rescue shares them
/// ([`rescue_kept`]). With `None`, or once the worker has exited, they go
/// to the pool's shared queue as usual.
pub fn deliver_for<R>(worker: Option<&crate::pool::WorkerRef>, f: impl FnOnce() -> R) -> R {
    match worker {
        Some(w) => crate::pool::deliver_for(w, f),
        None => f(),
    }
}

/// Tells the current worker's parker that it queued work for itself
/// which it cannot run next ([`Parker::kept`]).
pub(crate) fn kept_current() {
    CTX.with(|c| {
        if let Some(p) = c.parker.borrow().as_ref() {
            p.kept();
        }
    });
}

/// Pools where a worker kept work (see [`Parker::kept`]). Worker threads,
/// and so kept work, never run under loom.
#[cfg(not(loom))]
static KEPT_POOLS: std::sync::Mutex<Vec<std::sync::Weak<crate::pool::PoolInner>>> =
    std::sync::Mutex::new(Vec::new());

/// Lists `pool` for [`rescue_kept`] (once).
#[cfg(not(loom))]
pub(crate) fn list_for_rescue(pool: &std::sync::Arc<crate::pool::PoolInner>) {
    let mut v = KEPT_POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if !v
        .iter()
        .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(pool)))
    {
        v.push(Arc::downgrade(pool));
    }
}

#[cfg(loom)]
pub(crate) fn list_for_rescue<T>(_pool: &T) {}

/// For drivers whose parkers keep work ([`Parker::kept`]), called every
/// few milliseconds: in every pool, moves the work that waited in a
/// worker's own queue across a whole rescue interval to the shared queue,
/// and wakes (or starts) a worker where queued work made no progress since
/// the previous call. Returns true while any
/// such pool has queued work (call again).
#[cfg(not(loom))]
pub fn rescue_kept() -> bool {
    let pools: Vec<_> = {
        let mut v = KEPT_POOLS.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.clone()
    };
    let mut pending = false;
    for w in pools {
        if let Some(p) = w.upgrade() {
            pending |= crate::pool::PoolInner::rescue(&p);
        }
    }
    pending
}
