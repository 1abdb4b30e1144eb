//! Conformance of the pool and callback-instance promises with real I/O on
//! the backend this host has (kernel32 under Wine too): the return actions
//! (`set_event_when_callback_returns`, `release_semaphore_when_callback_returns`,
//! `when_callback_returns`) run after the callback body and before the
//! object stops counting the callback; a pool takes its thread limits; a
//! callback in a runs-long environment or that asks `may_run_long` on a
//! pool with room is told yes; a priority is kept by the environment.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use support::*;
use tpio::{CallbackEnvironment, Event, Pool, Priority, Semaphore, ThreadpoolIo, Win32Error};

#[test]
fn pool_return_actions_run_after_the_callback_body_and_before_the_wait_returns() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-actions");
    let env = CallbackEnvironment::new().pool(&pool);
    let ev = Event::new(true, false);
    let sem = Semaphore::new(0, 2).expect("semaphore");
    let body_done = Arc::new(AtomicBool::new(false));
    let action_saw_body = Arc::new(AtomicBool::new(false));
    let (ev2, sem2, b2, a2) = (
        ev.clone(),
        sem.clone(),
        body_done.clone(),
        action_saw_body.clone(),
    );
    let io = ThreadpoolIo::new(&rd, Some(&env), move |inst, d| {
        assert_eq!(d.result, Ok(2));
        inst.set_event_when_callback_returns(&ev2);
        inst.release_semaphore_when_callback_returns(&sem2, 2);
        let (b, a) = (b2.clone(), a2.clone());
        inst.when_callback_returns(move || a.store(b.load(Ordering::SeqCst), Ordering::SeqCst));
        assert!(
            !ev2.is_set(),
            "the event is set only when the callback returns"
        );
        b2.store(true, Ordering::SeqCst);
    })
    .expect("create");
    io.read(vec![0; 8], 1).expect("issued");
    write_pipe(&wr, b"go");
    assert!(ev.wait_timeout(PATIENCE), "the event was set");
    io.wait_for_callbacks(false).expect("wait");
    assert!(
        action_saw_body.load(Ordering::SeqCst),
        "the action ran after the body"
    );
    assert_eq!(sem.count(), 2, "the semaphore was released by 2");
    assert_eq!(pool.stats().callbacks_run, 1);
}

#[test]
fn pool_thread_limits_are_taken_and_a_minimum_above_the_limit_is_refused() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("conformance-limits");
    pool.set_thread_maximum(2);
    assert_eq!(pool.set_thread_minimum(1), Ok(()));
    assert_eq!(
        pool.set_thread_minimum(tpio_core::MAX_POOL_THREADS + 1),
        Err(Win32Error::INVALID_PARAMETER)
    );
    // The pool still runs callbacks.
    let (rd, wr) = tpio::pipe().expect("pipe");
    let env = CallbackEnvironment::new()
        .pool(&pool)
        .priority(Priority::High);
    assert_eq!(env.get_priority(), Priority::High);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let io = ThreadpoolIo::new(&rd, Some(&env), move |_i, d| {
        let _ = tx.lock().map(|t| t.send(d.result));
    })
    .expect("create");
    io.read(vec![0; 4], 1).expect("issued");
    write_pipe(&wr, b"x");
    assert_eq!(rx.recv_timeout(PATIENCE).expect("callback"), Ok(1));
    idle(&io);
}

#[test]
fn pool_may_run_long_is_granted_on_a_pool_with_room_and_answers_the_same_twice() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-long");
    pool.set_thread_maximum(8);
    let env = CallbackEnvironment::new().pool(&pool).runs_long(true);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let io = ThreadpoolIo::new(&rd, Some(&env), move |inst, _d| {
        let first = inst.may_run_long();
        let again = inst.may_run_long();
        let _ = tx
            .lock()
            .map(|t| t.send((first, again, inst.is_associated())));
    })
    .expect("create");
    io.read(vec![0; 4], 1).expect("issued");
    write_pipe(&wr, b"y");
    let (first, again, associated) = rx.recv_timeout(PATIENCE).expect("callback");
    assert!(first, "a pool of 8 threads has room for another");
    assert_eq!(again, first);
    assert!(associated);
    idle(&io);
}
