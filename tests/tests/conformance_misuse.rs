//! Conformance of the diagnoses tpio adds where Windows corrupts or hangs,
//! with real I/O on the backend this host has (kernel32 under Wine too):
//! `wait_for_callbacks` or `close_members` from the object's own callback
//! is `ERROR_POSSIBLE_DEADLOCK` (after `disassociate` the wait is allowed),
//! and a panicking callback is caught and counted while the pool and the
//! object go on working.

mod support;

use std::sync::{mpsc, Arc, Mutex};

use support::*;
use tpio::{
    CallbackEnvironment, CleanupGroup, Done, OverlappedHandle, Pool, ThreadpoolIo, Win32Error,
};

/// An object its own callback can reach: the callback finds it here.
type Slot = Arc<Mutex<Option<Arc<ThreadpoolIo>>>>;

fn self_reaching(
    h: &(impl OverlappedHandle + ?Sized),
    env: &CallbackEnvironment,
    body: impl Fn(&mut tpio::CallbackInstance<'_>, &ThreadpoolIo, Done) + Send + Sync + 'static,
) -> (Arc<ThreadpoolIo>, Slot) {
    let slot: Slot = Arc::default();
    let s2 = slot.clone();
    let io = ThreadpoolIo::new(h, Some(env), move |inst, d| {
        let io = s2.lock().expect("slot").clone();
        if let Some(io) = io {
            body(inst, &io, d);
        }
    })
    .expect("create");
    let io = Arc::new(io);
    *slot.lock().expect("slot") = Some(io.clone());
    (io, slot)
}

#[test]
fn rule_4_wait_for_callbacks_from_its_own_callback_is_possible_deadlock() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-own-wait");
    let env = CallbackEnvironment::new().pool(&pool);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (io, slot) = self_reaching(&rd, &env, move |inst, io, d| {
        let associated = io.wait_for_callbacks(false);
        inst.disassociate();
        let disassociated = io.wait_for_callbacks(false);
        let _ = tx
            .lock()
            .map(|t| t.send((d.result, associated, disassociated)));
    });
    io.read(vec![0; 8], 1).expect("issued");
    write_pipe(&wr, b"own");
    let (result, associated, disassociated) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(result, Ok(3));
    assert_eq!(
        associated,
        Err(Win32Error::POSSIBLE_DEADLOCK),
        "no hang: an error"
    );
    assert_eq!(
        disassociated,
        Ok(()),
        "after disassociate the callback may wait"
    );
    idle(&io);
    assert_eq!(pool.stats().misuse_wait_in_own_callback, 1);
    slot.lock().expect("slot").take();
}

#[test]
fn rule_9_close_members_from_a_members_callback_is_possible_deadlock() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-own-group");
    let group = CleanupGroup::new();
    let env = CallbackEnvironment::new()
        .pool(&pool)
        .cleanup_group(&group, None);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let g2 = group.clone();
    let (io, slot) = self_reaching(&rd, &env, move |_inst, _io, d| {
        let r = g2.close_members(false, 0);
        let _ = tx.lock().map(|t| t.send((d.result, r)));
    });
    io.read(vec![0; 8], 1).expect("issued");
    write_pipe(&wr, b"grp");
    let (result, r) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(result, Ok(3));
    assert_eq!(r, Err(Win32Error::POSSIBLE_DEADLOCK), "no hang: an error");
    assert_eq!(group.member_count(), 1, "nothing was released");
    idle(&io);
    slot.lock().expect("slot").take();
    // From outside a callback it works.
    group.close_members(false, 0).expect("close_members");
    assert_eq!(group.member_count(), 0);
}

#[test]
fn rule_3_a_panicking_callback_is_caught_and_the_pool_and_object_go_on() {
    if !backend_here() {
        return;
    }
    quiet_expected_panics();
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-panic");
    let env = CallbackEnvironment::new().pool(&pool);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let io = ThreadpoolIo::new(&rd, Some(&env), move |_i, d: Done| {
        if d.tag == 1 {
            panic!("a user callback panics (expected by the test)");
        }
        let _ = tx.lock().map(|t| t.send(d));
    })
    .expect("create");
    io.read(vec![0; 8], 1).expect("issued");
    write_pipe(&wr, b"boom");
    idle(&io);
    assert_eq!(pool.stats().callbacks_panicked, 1);
    // The object and its pool still work; the counts are right.
    io.read(vec![0; 8], 2).expect("issued after the panic");
    write_pipe(&wr, b"ok");
    let d = rx.recv_timeout(PATIENCE).expect("the next callback runs");
    assert_eq!((d.tag, d.result), (2, Ok(2)));
    idle(&io);
    assert_eq!(io.counts().running, 0);
    assert_eq!(pool.stats().callbacks_run, 2);
    assert_eq!(pool.stats().callbacks_panicked, 1);
}

/// What the raw callbacks below saw: (context, io_result, own wait's result).
type RawSeen = (usize, u32, Result<(), Win32Error>);

fn raw_seen() -> &'static Mutex<Option<mpsc::Sender<RawSeen>>> {
    static S: Mutex<Option<mpsc::Sender<RawSeen>>> = Mutex::new(None);
    &S
}

fn raw_on_io(
    _i: &mut tpio::CallbackInstance<'_>,
    context: usize,
    _ov: *mut tpio::raw::Overlapped,
    result: u32,
    _bytes: usize,
    io: tpio::raw::TpIo,
) {
    if context == 2 {
        panic!("a raw callback panics (expected by the test)");
    }
    let own = tpio::raw::wait_for_threadpool_io_callbacks(io, false);
    if let Some(tx) = raw_seen().lock().expect("seen").as_ref() {
        let _ = tx.send((context, result, own));
    }
}

#[test]
fn rule_4_raw_wait_from_its_own_callback_is_possible_deadlock_and_a_raw_panic_is_caught() {
    use tpio::raw::*;
    if !backend_here() {
        return;
    }
    quiet_expected_panics();
    let (tx, rx) = mpsc::channel();
    *raw_seen().lock().expect("seen") = Some(tx);
    let pool = Pool::new("conformance-raw-misuse");
    let env = CallbackEnvironment::new().pool(&pool);
    // Context 1: the callback waits on its own object.
    let (rd, wr) = tpio::pipe().expect("pipe");
    let io = create_threadpool_io(&rd, raw_on_io, 1, Some(&env)).expect("create");
    let ov = Box::new(Overlapped::default());
    let ovp = &*ov as *const Overlapped as *mut Overlapped;
    let mut buf = vec![0u8; 8];
    start_threadpool_io(io).expect("start");
    // SAFETY: `buf` and `ov` live until after the callback (waited for below).
    let r = unsafe { read_file(&rd, buf.as_mut_ptr(), 8, ovp) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    write_pipe(&wr, b"raw");
    let (ctx, result, own) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!((ctx, result), (1, 0));
    assert_eq!(own, Err(Win32Error::POSSIBLE_DEADLOCK), "no hang: an error");
    wait_for_threadpool_io_callbacks(io, false).expect("wait");
    close_threadpool_io(io).expect("close");
    // Context 2: the callback panics; the pool goes on.
    let (rd2, wr2) = tpio::pipe().expect("pipe");
    let io2 = create_threadpool_io(&rd2, raw_on_io, 2, Some(&env)).expect("create");
    let ov2 = Box::new(Overlapped::default());
    let ovp2 = &*ov2 as *const Overlapped as *mut Overlapped;
    let mut buf2 = vec![0u8; 8];
    start_threadpool_io(io2).expect("start");
    // SAFETY: as above.
    let r = unsafe { read_file(&rd2, buf2.as_mut_ptr(), 8, ovp2) };
    assert_eq!(r, Err(Win32Error::IO_PENDING));
    write_pipe(&wr2, b"boom");
    wait_for_threadpool_io_callbacks(io2, false).expect("wait");
    assert_eq!(get_overlapped_result(&rd2, &ov2, false), Ok(4));
    close_threadpool_io(io2).expect("close");
    let st = pool.stats();
    assert_eq!((st.callbacks_panicked, st.callbacks_run), (1, 2));
    assert_eq!(st.misuse_wait_in_own_callback, 1);
    drop((buf, buf2));
}
