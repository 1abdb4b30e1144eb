//! The pool-side API is the same on every OS: `Pool`, `CallbackEnvironment`,
//! `CleanupGroup`, `CallbackInstance`, `Event` and `Semaphore` have the same
//! methods with the same signatures on Unix (tpio-core's emulated pool) and
//! on Windows (kernel32's, through tpio-windows), checked at compile time
//! here, and the methods whose meaning both have behave alike: which thread
//! counts as a pool's worker, how many workers ran callbacks, the order of
//! queued callbacks by priority, the count of queued callbacks, the
//! runs-long hint, the test instrument of a manual pool (which only the
//! emulated pool has, and which says so on kernel32). `spec/kernel32.md`
//! says what each method does on kernel32.

mod support;

use std::sync::{mpsc, Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use support::*;
use tpio::{
    CallbackEnvironment, CallbackInstance, CleanupGroup, Event, Pool, Priority, Semaphore,
    StatsSnapshot, ThreadpoolIo, Win32Error,
};

type Job = Box<dyn FnOnce(&mut CallbackInstance<'_>) + Send>;

fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug>() {}

/// Every public method of the core's types, as a function pointer of the
/// core's exact signature: this file does not compile on an OS where one
/// is missing or differs.
#[test]
fn api_every_pool_side_method_has_the_same_signature_on_every_os() {
    // Pool
    let _: fn(&str) -> Pool = Pool::new;
    let _: fn(&str) -> Pool = Pool::new_manual;
    let _: fn() -> Pool = Pool::default_pool;
    let _: fn(&Pool, usize) -> Result<usize, Win32Error> = Pool::run_queued;
    let _: fn(&Pool) -> usize = Pool::queued_len;
    let _: fn(&Pool, usize) = Pool::set_thread_maximum;
    let _: fn(&Pool, usize) -> Result<(), Win32Error> = Pool::set_thread_minimum;
    let _: fn(&Pool, Duration) = Pool::set_idle_timeout;
    let _: fn(&Pool) -> usize = Pool::thread_count;
    let _: fn(&Pool) -> StatsSnapshot = Pool::stats;
    let _: for<'a> fn(&'a Pool) -> &'a str = Pool::name;
    let _: fn(&Pool, Job) = Pool::submit_callback;
    let _: fn(&Pool, Priority, bool, Job) = Pool::submit_callback_with;
    let _: fn(&Pool, usize) = Pool::set_concurrency;
    let _: fn(&Pool) -> bool = Pool::is_worker_thread;
    assert_traits::<Pool>();

    // CallbackEnvironment
    let _: fn() -> CallbackEnvironment = CallbackEnvironment::new;
    let _: fn(CallbackEnvironment, &Pool) -> CallbackEnvironment = CallbackEnvironment::pool;
    let _: fn(
        CallbackEnvironment,
        &CleanupGroup,
        Option<tpio_core::CleanupCallback>,
    ) -> CallbackEnvironment = CallbackEnvironment::cleanup_group;
    let _: fn(CallbackEnvironment, Priority) -> CallbackEnvironment = CallbackEnvironment::priority;
    let _: fn(CallbackEnvironment, bool) -> CallbackEnvironment = CallbackEnvironment::runs_long;
    let _: fn(&CallbackEnvironment) -> Priority = CallbackEnvironment::get_priority;
    let _: fn(&CallbackEnvironment) -> Pool = CallbackEnvironment::get_pool;
    let _: CallbackEnvironment = Default::default();
    assert_traits::<CallbackEnvironment>();

    // CleanupGroup
    let _: fn() -> CleanupGroup = CleanupGroup::new;
    let _: fn(&CleanupGroup) -> usize = CleanupGroup::member_count;
    let _: fn(&CleanupGroup, bool, usize) -> Result<(), Win32Error> = CleanupGroup::close_members;
    let _: CleanupGroup = Default::default();
    assert_traits::<CleanupGroup>();

    // CallbackInstance (its lifetime named, so each method is one fn type)
    fn instance_api<'i>(_: Option<&CallbackInstance<'i>>) {
        type I<'i> = CallbackInstance<'i>;
        let _: fn(&mut I<'i>) -> bool = I::<'i>::may_run_long;
        let _: fn(&mut I<'i>) = I::<'i>::disassociate;
        let _: fn(&I<'i>) -> bool = I::<'i>::is_associated;
        let _: fn(&mut I<'i>, &Event) = I::<'i>::set_event_when_callback_returns;
        let _: fn(&mut I<'i>, &Semaphore, u32) = I::<'i>::release_semaphore_when_callback_returns;
        let _: fn(&mut I<'i>, Box<dyn FnOnce() + Send>) = I::<'i>::when_callback_returns;
        let _: fn(&I<'i>) -> String = |i| format!("{i:?}");
    }
    instance_api(None);

    // Event and Semaphore (tpio-core's own types on every OS)
    let _: fn(bool, bool) -> Event = Event::new;
    let _: fn(&Event) = Event::set;
    let _: fn(&Event) = Event::reset;
    let _: fn(&Event) -> bool = Event::is_set;
    let _: fn(&Event) = Event::wait;
    let _: fn(&Event, Duration) -> bool = Event::wait_timeout;
    assert_traits::<Event>();
    let _: fn(u32, u32) -> Result<Semaphore, Win32Error> = Semaphore::new;
    let _: fn(&Semaphore, u32) -> Result<u32, Win32Error> = Semaphore::release;
    let _: fn(&Semaphore) -> u32 = Semaphore::count;
    let _: fn(&Semaphore, Duration) -> bool = Semaphore::acquire_timeout;
    assert_traits::<Semaphore>();
}

/// What a callback saw of the pools, and on which thread it ran.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    thread: ThreadId,
    on_own_pool: bool,
    on_other_pool: bool,
    on_default_pool: bool,
}

fn seen(own: &Pool, other: &Pool) -> Seen {
    Seen {
        thread: std::thread::current().id(),
        on_own_pool: own.is_worker_thread(),
        on_other_pool: other.is_worker_thread(),
        on_default_pool: Pool::default_pool().is_worker_thread(),
    }
}

#[test]
fn api_is_worker_thread_is_true_on_that_pools_callback_threads_only() {
    if !backend_here() {
        return;
    }
    let a = Pool::new("api-worker-a");
    let b = Pool::new("api-worker-b");
    for p in [&a, &b, &Pool::default_pool()] {
        assert!(!p.is_worker_thread(), "the test thread is no pool's worker");
    }

    // A submitted callback.
    let (tx, rx) = mpsc::channel();
    let (a2, b2) = (a.clone(), b.clone());
    a.submit_callback(move |_| {
        let _ = tx.send(seen(&a2, &b2));
    });
    let s = rx.recv_timeout(PATIENCE).expect("submitted callback ran");
    assert_ne!(s.thread, std::thread::current().id());
    assert!(s.on_own_pool, "a's callback runs on a's worker: {s:?}");
    assert!(!s.on_other_pool && !s.on_default_pool, "{s:?}");

    // An I/O callback of an object on b.
    let (rd, wr) = tpio::pipe().expect("pipe");
    let env = CallbackEnvironment::new().pool(&b);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (a3, b3) = (a.clone(), b.clone());
    let io = ThreadpoolIo::new(&rd, Some(&env), move |_i, d| {
        assert_eq!(d.result, Ok(1));
        let _ = tx.lock().map(|t| t.send(seen(&b3, &a3)));
    })
    .expect("create");
    io.read(vec![0; 4], 1).expect("issued");
    write_pipe(&wr, b"z");
    let s = rx.recv_timeout(PATIENCE).expect("I/O callback ran");
    assert!(s.on_own_pool, "b's I/O callback runs on b's worker: {s:?}");
    assert!(!s.on_other_pool && !s.on_default_pool, "{s:?}");
    idle(&io);

    // A callback of the default pool.
    let (tx, rx) = mpsc::channel();
    let (a4, b4) = (a.clone(), b.clone());
    Pool::default_pool().submit_callback(move |_| {
        let _ = tx.send(seen(&a4, &b4));
    });
    let s = rx
        .recv_timeout(PATIENCE)
        .expect("default-pool callback ran");
    assert!(s.on_default_pool, "{s:?}");
    assert!(!s.on_own_pool && !s.on_other_pool, "{s:?}");
    assert!(!a.is_worker_thread() && !b.is_worker_thread());
}

#[test]
fn api_thread_count_is_zero_before_any_callback_and_counts_the_worker_that_runs_one() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("api-threads");
    pool.set_thread_maximum(1);
    assert_eq!(pool.thread_count(), 0, "no callback ran on the pool yet");
    let (tx, rx) = mpsc::channel();
    for _ in 0..3 {
        let (tx, p) = (tx.clone(), pool.clone());
        pool.submit_callback(move |_| {
            let _ = tx.send(p.thread_count());
        });
    }
    for _ in 0..3 {
        assert_eq!(
            rx.recv_timeout(PATIENCE),
            Ok(1),
            "a pool of at most one thread runs its callback on its one worker"
        );
    }
}

/// Holds a pool's only worker in a callback until released.
struct Gate {
    release: Event,
}

impl Gate {
    fn hold(pool: &Pool) -> Gate {
        let started = Event::new(true, false);
        let release = Event::new(true, false);
        let (s, r) = (started.clone(), release.clone());
        pool.submit_callback(move |_| {
            s.set();
            assert!(r.wait_timeout(PATIENCE), "the gate was never opened");
        });
        assert!(started.wait_timeout(PATIENCE), "the gate callback started");
        Gate { release }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release.set();
    }
}

#[test]
fn api_submit_callback_with_starts_queued_callbacks_highest_priority_first_and_queued_len_counts_them(
) {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("api-priority");
    pool.set_thread_maximum(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let gate = Gate::hold(&pool);
    assert_eq!(pool.queued_len(), 0);
    for p in [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Low,
    ] {
        let (o, tx) = (order.clone(), tx.clone());
        pool.submit_callback_with(p, false, move |_| {
            o.lock().expect("order").push(p);
            let _ = tx.send(());
        });
    }
    assert_eq!(
        pool.queued_len(),
        4,
        "four callbacks wait behind the gate on a pool of one thread"
    );
    drop(gate);
    for _ in 0..4 {
        rx.recv_timeout(PATIENCE).expect("callback ran");
    }
    assert_eq!(
        *order.lock().expect("order"),
        [
            Priority::High,
            Priority::Normal,
            Priority::Low,
            Priority::Low
        ]
    );
    assert_eq!(pool.queued_len(), 0, "every queued callback started");
}

#[test]
fn api_submit_callback_with_runs_long_is_told_it_may_run_long_on_a_pool_with_room() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("api-long");
    pool.set_thread_maximum(8);
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    pool.submit_callback_with(Priority::Normal, true, move |inst| {
        let first = inst.may_run_long();
        let _ = tx.send((first, inst.may_run_long(), p.is_worker_thread()));
    });
    assert_eq!(
        rx.recv_timeout(PATIENCE),
        Ok((true, true, true)),
        "a runs-long callback on a pool of 8 threads may run long, and asks twice the same"
    );
}

#[test]
fn api_name_and_stats_count_submitted_callbacks_and_a_caught_panic() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("api-stats");
    assert_eq!(pool.name(), "api-stats");
    assert_eq!(Pool::default_pool().name(), "default");
    let done = Semaphore::new(0, 3).expect("semaphore");
    for i in 0..3 {
        let d = done.clone();
        pool.submit_callback(move |inst| {
            inst.release_semaphore_when_callback_returns(&d, 1);
            if i == 2 {
                panic!("a deliberate panic in the third callback (tpio catches it)");
            }
        });
    }
    for _ in 0..3 {
        assert!(done.acquire_timeout(PATIENCE), "callback returned");
    }
    let s = pool.stats();
    assert_eq!(s.callbacks_run, 3);
    assert_eq!(s.callbacks_panicked, 1);
}

#[test]
fn api_set_idle_timeout_and_set_concurrency_are_taken_and_the_pool_still_runs_callbacks() {
    if !backend_here() {
        return;
    }
    // On the emulated pool these set its retirement time and concurrency
    // target; kernel32 has neither setting and documents them as no-ops.
    let pool = Pool::new("api-knobs");
    pool.set_idle_timeout(Duration::from_secs(30));
    pool.set_concurrency(1);
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    pool.submit_callback(move |_| {
        let _ = tx.send(p.is_worker_thread());
    });
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(true));
}

#[test]
fn api_run_queued_is_invalid_function_on_a_pool_with_threads() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("api-run-queued");
    assert_eq!(pool.run_queued(10), Err(Win32Error::INVALID_FUNCTION));
    assert_eq!(
        Pool::default_pool().run_queued(1),
        Err(Win32Error::INVALID_FUNCTION)
    );
}

/// `new_manual` is a test instrument of the emulated pool only: there its
/// callbacks wait for `run_queued`, which runs them on the calling thread;
/// kernel32 has no such pool, so on Windows it is an ordinary pool, whose
/// `run_queued` says `ERROR_INVALID_FUNCTION` and whose callbacks run on a
/// worker. The test checks each OS's documented answer.
#[test]
fn api_new_manual_runs_callbacks_in_run_queued_where_the_pool_is_emulated_only() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new_manual("api-manual");
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    pool.submit_callback(move |_| {
        let _ = tx.send((std::thread::current().id(), p.is_worker_thread()));
    });
    let me = std::thread::current().id();
    if cfg!(windows) {
        assert_eq!(pool.run_queued(1), Err(Win32Error::INVALID_FUNCTION));
        let (thread, worker) = rx.recv_timeout(PATIENCE).expect("ran on a worker");
        assert_ne!(thread, me);
        assert!(worker, "on kernel32 the callback runs on the pool's worker");
    } else {
        assert_eq!(pool.queued_len(), 1, "a manual pool holds its callback");
        assert!(rx.try_recv().is_err(), "nothing ran before run_queued");
        assert_eq!(pool.run_queued(5), Ok(1));
        assert_eq!(rx.try_recv(), Ok((me, false)), "ran on the calling thread");
        assert_eq!(pool.queued_len(), 0);
    }
}
