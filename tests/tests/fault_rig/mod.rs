//! What the fault tests of every backend share (`faults_uring.rs`,
//! `faults_mio.rs`): a rig (a backend of the test's own, a private pool), a
//! TP_IO that reports each completion on a channel, the checks that nothing
//! was lost, leaked or freed early, and the faults that real I/O produces on
//! its own — a handle closed with operations pending, a peer that resets, a
//! callback that panics — run the same way on each backend. The caller arms
//! its backend's fault plan (even an empty one) before making the rig, so
//! the tests of one file run one at a time.
#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use crate::support::*;
use tpio::{
    Backend, BackendKind, CallbackEnvironment, Done, OverlappedHandle, Pool, ThreadpoolIo,
    Win32Error,
};

/// A backend of this test's own (made after the test armed its plan, so
/// the plan applies to it) and a private pool.
pub struct Rig {
    pub backend: Backend,
    pub pool: Pool,
    pub env: CallbackEnvironment,
}

/// A rig on a new backend of `kind`; `None` (the test is skipped, saying
/// so) where that backend cannot run.
pub fn rig(kind: BackendKind, name: &str) -> Option<Rig> {
    let backend = match Backend::new(kind) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipped: no {kind:?} backend here ({e})");
            return None;
        }
    };
    let pool = Pool::new(name);
    let env = CallbackEnvironment::new().pool(&pool);
    Some(Rig { backend, pool, env })
}

pub type Then = Box<dyn Fn(&Done, &ThreadpoolIo) + Send + Sync>;

/// A TP_IO on `h` whose callback sends each [`Done`] (after running `then`
/// with it, e.g. to issue from the worker).
pub fn channel_io(
    h: &(impl OverlappedHandle + ?Sized),
    env: &CallbackEnvironment,
    then: Option<Then>,
) -> (Arc<ThreadpoolIo>, mpsc::Receiver<Done>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let me: Arc<OnceLock<Weak<ThreadpoolIo>>> = Arc::default();
    let me2 = me.clone();
    let io = Arc::new(
        ThreadpoolIo::new(h, Some(env), move |_i, d: Done| {
            if let (Some(then), Some(io)) = (&then, me2.get().and_then(Weak::upgrade)) {
                then(&d, &io);
            }
            let _ = tx.lock().map(|t| t.send(d));
        })
        .expect("create"),
    );
    me.set(Arc::downgrade(&io)).expect("once");
    (io, rx)
}

/// A buffer whose allocation can be recognised when it comes back.
pub fn buffer(n: usize, fill: u8) -> (Vec<u8>, usize) {
    let b = vec![fill; n];
    let p = b.as_ptr() as usize;
    (b, p)
}

/// Writes to a pipe's write end with `write(2)`, outside tpio (so the
/// driver and its hooks see only the operation under test).
pub fn raw_write(wr: &tpio::Pipe, data: &[u8]) {
    // SAFETY: `data` is a live slice of the length passed; the fd is open.
    let n = unsafe { libc::write(wr.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "write(2)");
}

/// Waits (bounded, without sleeping) until `cond` holds.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::yield_now();
    }
}

/// One callback, within `PATIENCE`.
pub fn next(rx: &mpsc::Receiver<Done>) -> Done {
    rx.recv_timeout(PATIENCE).expect("a callback")
}

/// Nothing lost, leaked or freed early: no callback beyond those seen, the
/// object idle with zero counts, the handle's table empty, the object
/// released once closed (the pool's live objects go down by one), no
/// misuse counted.
pub fn settled(
    pool: &Pool,
    io: Arc<ThreadpoolIo>,
    rx: &mpsc::Receiver<Done>,
    h: &(impl OverlappedHandle + ?Sized),
) {
    idle(&io);
    assert!(rx.recv_timeout(QUIET).is_err(), "a second callback came");
    assert_eq!(io.counts(), tpio::IoCounts::default());
    assert_eq!(h.in_flight(), 0, "the handle's in-flight table");
    let live = pool.stats().live_objects();
    assert!(live >= 1);
    drop(io);
    eventually("the object is released", || {
        pool.stats().live_objects() == live - 1
    });
    assert_eq!(pool.stats().misuse_total(), 0, "{:?}", pool.stats());
}

/// `CloseHandle` with operations pending — three reads on a pipe (io_uring:
/// one in the kernel, two waiting behind it in the driver's order queue;
/// mio: all three in the descriptor's queue), a receive and a send on a
/// socket: each ends exactly once with 995 and its own buffer, the objects
/// drain and are released, and the descriptor closes after the completions
/// (the pipe's writer then sees `EPIPE`).
pub fn fault_handle_closed_with_operations_pending_completes_each_exactly_once(kind: BackendKind) {
    let Some(r) = rig(kind, "fault-closed") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    let mut ptrs = Vec::new();
    for tag in 1..=3u64 {
        let (b, p) = buffer(8, tag as u8);
        ptrs.push((tag, p));
        io.read(b, tag).expect("pending");
    }
    assert_eq!(rd.in_flight(), 3);
    let (a, _b) = tpio::UnixStream::pair_on(&r.backend).expect("pair");
    let (sio, srx) = channel_io(&a, &r.env, None);
    let (rb, rp) = buffer(8, 9);
    sio.recv(rb, 10).expect("pending recv");
    // Fill the socket until a send has to wait.
    let mut tag = 100;
    let mut early = 0;
    while a.in_flight() < 2 {
        sio.send(vec![0x55; 1 << 16], tag).expect("send");
        tag += 1;
        early += 1;
        assert!(early < 1000, "the socket never filled");
    }
    let pending_send = tag - 1;
    // The sends that finished at once have their callbacks coming.
    let mut sends_done = 0;
    while sends_done < early - 1 {
        let d = next(&srx);
        assert!(
            matches!(d.result, Ok(n) if n > 0),
            "send {} finished at once: {:?}",
            d.tag,
            d.result
        );
        sends_done += 1;
    }
    drop(rd);
    drop(a);
    let mut got: Vec<(u64, usize)> = (0..3)
        .map(|_| {
            let d = next(&rx);
            assert_eq!(
                d.result,
                Err(Win32Error::OPERATION_ABORTED),
                "read {}",
                d.tag
            );
            assert_eq!(d.buf, vec![d.tag as u8; 8]);
            (d.tag, d.buf.as_ptr() as usize)
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, ptrs, "each read once, with its own buffer");
    let mut ends: Vec<(u64, Result<usize, Win32Error>)> = (0..2)
        .map(|_| {
            let d = next(&srx);
            if d.tag == 10 {
                assert_eq!(d.buf.as_ptr() as usize, rp);
            }
            (d.tag, d.result)
        })
        .collect();
    ends.sort_unstable();
    assert_eq!(
        ends,
        [
            (10, Err(Win32Error::OPERATION_ABORTED)),
            (pending_send, Err(Win32Error::OPERATION_ABORTED))
        ]
    );
    settled(&r.pool, io, &rx, &wr);
    idle(&sio);
    assert!(srx.recv_timeout(QUIET).is_err(), "a second callback came");
    drop(sio);
    eventually("both objects released", || {
        r.pool.stats().live_objects() == 0
    });
    // The read end's descriptor is closed now.
    // SAFETY: a live one-byte buffer; the fd is the open write end.
    let n = unsafe { libc::write(wr.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    assert_eq!(
        (n, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EPIPE))
    );
}

/// Sets SO_LINGER to 0, so that closing sends a reset.
pub fn linger_zero(s: &std::net::TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a live linger struct of the size passed; the fd is open.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
}

/// A connected pair on `backend`: (tpio server side, std peer).
pub fn tcp_pair(backend: &Backend) -> (tpio::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (s, _) = l.accept().expect("accept");
    (
        tpio::TcpStream::from_std_on(s, backend).expect("wrap"),
        peer,
    )
}

/// A reset that arrived before the receive was issued: the at-once try
/// meets it, and the receive fails at once with `WSAECONNRESET` (10054),
/// no callback, its buffer back — as `WSARecv` fails on a reset socket.
pub fn fault_peer_reset_before_a_recv_fails_it_now_with_10054(kind: BackendKind) {
    let Some(r) = rig(kind, "fault-reset-now") else {
        return;
    };
    let (server, peer) = tcp_pair(&r.backend);
    let (io, rx) = channel_io(&server, &r.env, None);
    linger_zero(&peer);
    drop(peer);
    let mut pfd = libc::pollfd {
        fd: server.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd; waits (bounded) for the reset to arrive.
    let n = unsafe { libc::poll(&mut pfd, 1, PATIENCE.as_millis() as i32) };
    assert_eq!(n, 1, "the reset arrived");
    let (b, p) = buffer(16, 0);
    let e = io.recv(b, 1).expect_err("failed now");
    assert_eq!(e.error, Win32Error::WSAECONNRESET);
    assert_eq!(e.buf.as_ptr() as usize, p);
    settled(&r.pool, io, &rx, &server);
}

/// A reset while one receive waits for data and a second waits behind it:
/// the first completes with 10054; the second, tried after, completes
/// exactly once too — with success and 0 bytes, the end of the stream (the
/// OS reports a reset once; Windows fails it with 10054 as well:
/// `spec/faults.md`).
pub fn fault_peer_reset_with_two_recvs_pending_ends_each_once_the_first_with_10054(
    kind: BackendKind,
) {
    let Some(r) = rig(kind, "fault-reset-pending") else {
        return;
    };
    let (server, peer) = tcp_pair(&r.backend);
    let (io, rx) = channel_io(&server, &r.env, None);
    io.recv(vec![1; 16], 1).expect("pending");
    io.recv(vec![2; 16], 2).expect("pending");
    assert_eq!(server.in_flight(), 2);
    linger_zero(&peer);
    drop(peer);
    let d1 = next(&rx);
    assert_eq!((d1.tag, d1.result), (1, Err(Win32Error::WSAECONNRESET)));
    let d2 = next(&rx);
    assert_eq!((d2.tag, d2.result), (2, Ok(0)));
    assert_eq!((d1.buf, d2.buf), (vec![1; 16], vec![2; 16]));
    settled(&r.pool, io, &rx, &server);
}

/// A callback that panics on a worker right after issuing a read, which
/// waits on that worker (io_uring: in the worker's own ring; mio: in its
/// own poll): the panic is caught and counted, the worker goes on (the pool
/// has one), the read completes on it exactly once, the counts return to
/// zero and `wait_for_callbacks` returns.
pub fn fault_callback_panic_on_a_worker_with_a_read_in_flight_is_caught_and_the_read_completes(
    kind: BackendKind,
) {
    quiet_expected_panics();
    let Some(r) = rig(kind, "fault-panic") else {
        return;
    };
    r.pool.set_thread_maximum(1);
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let then: Then = Box::new(|d, io| {
        if d.tag == 1 {
            io.read(vec![2; 8], 2).expect("issued from the callback");
            panic!("a user callback panics (expected by the test)");
        }
    });
    let (io, rx) = channel_io(&rd, &r.env, Some(then));
    io.read(vec![1; 8], 1).expect("issued");
    raw_write(&wr, b"boom");
    eventually("the panic is caught", || {
        r.pool.stats().callbacks_panicked == 1
    });
    assert!(
        rx.try_recv().is_err(),
        "the panicking callback sent nothing"
    );
    assert_eq!(io.counts().running, 0);
    assert_eq!(io.counts().pending, 1, "the read from the callback");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| io.wait_for_callbacks_timeout(false, PATIENCE));
        raw_write(&wr, b"ok");
        assert_eq!(waiter.join().expect("waiter"), Ok(true));
    });
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..2]), (2, Ok(2), &b"ok"[..]));
    let st = r.pool.stats();
    assert_eq!((st.callbacks_run, st.callbacks_panicked), (2, 1));
    settled(&r.pool, io, &rx, &rd);
}

/// Raw-layer callbacks seen by [`raw_read_on_a_descriptor_that_is_not_open`].
static RAW_CALLBACKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn on_raw(
    _i: &mut tpio::CallbackInstance<'_>,
    _context: usize,
    _ov: *mut tpio::raw::Overlapped,
    _result: u32,
    _bytes: usize,
    _io: tpio::raw::TpIo,
) {
    RAW_CALLBACKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// A raw `ReadFile` whose descriptor is not open at the OS level (closed
/// behind tpio's back: `arm` makes the driver's non-blocking try fail with
/// `EBADF`): `ERROR_INVALID_HANDLE` (6) at once, no callback, the caller's
/// cancel balances the start, the OVERLAPPED carries 6, nothing in flight.
pub fn raw_read_on_a_descriptor_that_is_not_open(kind: BackendKind, arm: impl FnOnce()) {
    use tpio::raw::*;
    let Some(r) = rig(kind, "fault-raw-ebadf") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let io = create_threadpool_io(&rd, on_raw, 1, Some(&r.env)).expect("create");
    let ov = Overlapped::default();
    let mut buf = [0u8; 8];
    raw_write(&wr, b"there");
    arm();
    start_threadpool_io(io).expect("start");
    // SAFETY: the call fails at once; nothing outlives it.
    let res = unsafe { read_file(&rd, buf.as_mut_ptr(), 8, &ov as *const _ as *mut _) };
    assert_eq!(res, Err(Win32Error::INVALID_HANDLE));
    cancel_threadpool_io(io).expect("balance");
    assert_eq!(
        get_overlapped_result(&rd, &ov, false),
        Err(Win32Error::INVALID_HANDLE)
    );
    assert_eq!(rd.in_flight(), 0);
    wait_for_threadpool_io_callbacks(io, false).expect("idle");
    close_threadpool_io(io).expect("close");
    eventually("the object is released", || {
        r.pool.stats().live_objects() == 0
    });
    assert_eq!(RAW_CALLBACKS.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(r.pool.stats().misuse_total(), 0);
}
