//! Faults injected into the io_uring driver at its system-call boundaries
//! (`tpio_uring::faults`, cargo feature `fault-injection`, enabled for this
//! package only), and faults that real I/O can produce on its own (a handle
//! closed with operations pending, a peer that resets, a callback that
//! panics). Each test shows the outcome `spec/faults.md` promises — a clear
//! `Win32Error`, back-pressure, or a caught panic — and that nothing is
//! lost, leaked or freed early: each operation ends exactly once (one
//! callback, or a failed-at-once issue), its buffer comes back (the same
//! allocation), the object's counts and the handle's in-flight table return
//! to zero, the object is released, and no misuse is counted.
//!
//! The plan is process-wide, so every test here arms one (even an empty
//! one): they run one at a time, each on its own io_uring backend.
#![cfg(target_os = "linux")]

mod support;

use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use support::*;
use tpio::{
    Backend, BackendKind, CallbackEnvironment, Done, OverlappedHandle, Pool, ThreadpoolIo,
    Win32Error,
};
use tpio_uring::faults::{Faults, FOREVER, PERSISTENT_AFTER};

/// An io_uring backend of this test's own and a private pool.
struct Rig {
    backend: Backend,
    pool: Pool,
    env: CallbackEnvironment,
}

fn rig(name: &str) -> Option<Rig> {
    let backend = match Backend::new(BackendKind::Uring) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipped: no io_uring here ({e})");
            return None;
        }
    };
    let pool = Pool::new(name);
    let env = CallbackEnvironment::new().pool(&pool);
    Some(Rig { backend, pool, env })
}

type Then = Box<dyn Fn(&Done, &ThreadpoolIo) + Send + Sync>;

/// A TP_IO on `h` whose callback sends each [`Done`] (after running `then`
/// with it, e.g. to issue from the worker).
fn channel_io(
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
fn buffer(n: usize, fill: u8) -> (Vec<u8>, usize) {
    let b = vec![fill; n];
    let p = b.as_ptr() as usize;
    (b, p)
}

/// Writes to a pipe's write end with `write(2)`, outside tpio (so the
/// driver and its hooks see only the operation under test).
fn raw_write(wr: &tpio::Pipe, data: &[u8]) {
    // SAFETY: `data` is a live slice of the length passed; the fd is open.
    let n = unsafe { libc::write(wr.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize, "write(2)");
}

/// Waits (bounded, without sleeping) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::yield_now();
    }
}

/// One callback, within `PATIENCE`.
fn next(rx: &mpsc::Receiver<Done>) -> Done {
    rx.recv_timeout(PATIENCE).expect("a callback")
}

/// Nothing lost, leaked or freed early: no callback beyond those seen, the
/// object idle with zero counts, the handle's table empty, the object
/// released once closed (the pool's live objects go down by one), no
/// misuse counted.
fn settled(
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

/// Submit errors that pass (`errno` for 50 submitting enters in a row):
/// retried, never seen by the user. One read goes through the shared ring
/// (issued here; the driver's thread submits it), one through a worker's
/// own ring (issued by the first read's callback; the worker submits it).
fn transient_submit_error_is_back_pressure(name: &str, errno: i32) {
    let faults = Faults::arm();
    let Some(r) = rig(name) else { return };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (b2, p2) = buffer(8, 2);
    let second = Mutex::new(Some(b2));
    let f2 = Arc::new(Mutex::new(None::<Result<(), Win32Error>>));
    let f2c = f2.clone();
    let then: Then = Box::new(move |d, io| {
        if d.tag == 1 {
            let b = second.lock().expect("b2").take().expect("once");
            *f2c.lock().expect("f2") = Some(io.read(b, 2).map(|_| ()).map_err(|e| e.error));
        }
    });
    let (io, rx) = channel_io(&rd, &r.env, Some(then));
    let (b1, p1) = buffer(8, 1);
    faults.submit_errno(errno, 50);
    io.read(b1, 1).expect("no error: back-pressure");
    raw_write(&wr, b"one");
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..3]), (1, Ok(3), &b"one"[..]));
    assert_eq!(d.buf.as_ptr() as usize, p1, "the same buffer comes back");
    // Every injected error was met before the read could be submitted.
    assert_eq!(faults.hits().submit, 50);
    assert_eq!(
        *f2.lock().expect("f2"),
        Some(Ok(())),
        "issued from the callback"
    );
    faults.submit_errno(errno, 50);
    raw_write(&wr, b"two");
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..3]), (2, Ok(3), &b"two"[..]));
    assert_eq!(d.buf.as_ptr() as usize, p2);
    settled(&r.pool, io, &rx, &rd);
    assert_eq!(r.pool.stats().callbacks_run, 2);
}

#[test]
fn fault_submit_eagain_is_back_pressure() {
    transient_submit_error_is_back_pressure("fault-eagain", libc::EAGAIN);
}

#[test]
fn fault_submit_ebusy_is_back_pressure() {
    transient_submit_error_is_back_pressure("fault-ebusy", libc::EBUSY);
}

#[test]
fn fault_submit_enomem_is_back_pressure() {
    transient_submit_error_is_back_pressure("fault-enomem", libc::ENOMEM);
}

/// A full SQ (the next 20 pushes find no room) is waited out: the read is
/// queued once there is room and completes; no error reaches the user.
#[test]
fn fault_sq_full_is_back_pressure() {
    let faults = Faults::arm();
    let Some(r) = rig("fault-sq-full") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    let (b, p) = buffer(16, 0);
    faults.sq_full(20);
    io.read(b, 7).expect("no error: back-pressure");
    assert_eq!(faults.hits().sq_full, 20, "the push met every full SQ");
    raw_write(&wr, b"room");
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..4]), (7, Ok(4), &b"room"[..]));
    assert_eq!((d.buf.as_ptr() as usize, d.buf.len()), (p, 16));
    settled(&r.pool, io, &rx, &rd);
}

/// The kernel refuses every submission (`ENOMEM` that does not pass), on
/// the shared ring. A read queued before the refusals were known stays
/// queued — an SQ entry cannot be taken back — and completes once the
/// kernel takes it; a read issued after `PERSISTENT_AFTER` failed enters is
/// refused before anything is queued: it fails at once with
/// `ERROR_NOT_ENOUGH_MEMORY` (8), its buffer back, no callback.
#[test]
fn fault_submit_enomem_that_persists_fails_the_next_issue_with_8_on_the_shared_ring() {
    let faults = Faults::arm();
    let Some(r) = rig("fault-persist-shared") else {
        return;
    };
    let (rd1, wr1) = tpio::pipe_on(&r.backend).expect("pipe");
    let (rd2, _wr2) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io1, rx1) = channel_io(&rd1, &r.env, None);
    let (io2, rx2) = channel_io(&rd2, &r.env, None);
    faults.submit_errno(libc::ENOMEM, FOREVER);
    let (a, pa) = buffer(8, 0xa);
    io1.read(a, 1)
        .expect("queued before the refusals were known");
    eventually("the driver's thread meets persistent refusals", || {
        faults.hits().submit >= u64::from(PERSISTENT_AFTER)
    });
    let (b, pb) = buffer(8, 0xb);
    let e = io2
        .read(b, 2)
        .expect_err("refused: the kernel takes nothing");
    assert_eq!(e.error, Win32Error::NOT_ENOUGH_MEMORY);
    assert_eq!(
        (e.buf.as_ptr() as usize, e.buf.len()),
        (pb, 8),
        "its buffer, at once"
    );
    assert_eq!(
        io2.counts(),
        tpio::IoCounts::default(),
        "balanced by the issue"
    );
    faults.clear();
    raw_write(&wr1, b"late");
    let d = next(&rx1);
    assert_eq!((d.tag, d.result, &d.buf[..4]), (1, Ok(4), &b"late"[..]));
    assert_eq!(d.buf.as_ptr() as usize, pa);
    settled(&r.pool, io1, &rx1, &rd1);
    assert!(rx2.try_recv().is_err(), "no callback for the refused read");
    settled(&r.pool, io2, &rx2, &rd2);
}

/// As above on a worker's own ring (direct submission): the worker's first
/// read is queued and its own retries run out; its next issue is refused at
/// once with 8; the queued read goes in with the worker's next enter after
/// the fault ends and completes once.
#[test]
fn fault_submit_enomem_that_persists_fails_the_next_issue_with_8_on_a_worker_ring() {
    let faults = Faults::arm();
    let Some(r) = rig("fault-persist-worker") else {
        return;
    };
    r.pool.set_thread_maximum(1);
    let (rd1, wr1) = tpio::pipe_on(&r.backend).expect("pipe");
    let (rd2, _wr2) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io2, rx2) = channel_io(&rd2, &r.env, None);
    let io2c = io2.clone();
    let (issued_tx, issued) = mpsc::channel();
    let issued_tx = Mutex::new(issued_tx);
    let then: Then = Box::new(move |d, io| {
        if d.tag != 1 {
            return;
        }
        // This worker's first I/O: its ring is new, and meets the refusals.
        let queued = io.read(vec![0xa; 8], 2).map(|_| ()).map_err(|e| e.error);
        let refused = io2c.read(vec![0xb; 8], 3).map(|_| ()).map_err(|e| e.error);
        let _ = issued_tx.lock().map(|t| t.send((queued, refused)));
    });
    let (io1, rx1) = channel_io(&rd1, &r.env, Some(then));
    faults.submit_errno(libc::ENOMEM, FOREVER);
    // Done at once (the data is there), so its callback needs no ring.
    raw_write(&wr1, b"go");
    io1.read(vec![0; 8], 1).expect("issued");
    assert_eq!(next(&rx1).result, Ok(2));
    let (queued, refused) = issued.recv_timeout(PATIENCE).expect("issued");
    assert_eq!(queued, Ok(()), "queued: the entry was in the SQ first");
    assert!(faults.hits().submit >= u64::from(PERSISTENT_AFTER));
    assert_eq!(refused, Err(Win32Error::NOT_ENOUGH_MEMORY));
    faults.clear();
    raw_write(&wr1, b"in");
    let d = next(&rx1);
    assert_eq!((d.tag, d.result, &d.buf[..2]), (2, Ok(2), &b"in"[..]));
    settled(&r.pool, io1, &rx1, &rd1);
    assert!(rx2.try_recv().is_err(), "no callback for the refused read");
    settled(&r.pool, io2, &rx2, &rd2);
}

/// The ring layer alone: once the kernel keeps refusing, `Ring::push`
/// refuses with the errno and queues nothing; the entry queued before
/// completes exactly once when the kernel takes it again.
#[test]
fn fault_ring_push_is_refused_with_the_errno_once_the_kernel_keeps_refusing() {
    use tpio_uring::{op, Completion, RingBuilder, SubmitError, SubmitMode};
    let faults = Faults::arm();
    if !tpio_uring::probe::cached().is_available() {
        eprintln!("skipped: no io_uring here");
        return;
    }
    let ring = RingBuilder::new(8)
        .submit_mode(SubmitMode::Direct)
        .build()
        .expect("ring");
    faults.submit_errno(libc::EBUSY, FOREVER);
    // SAFETY: NOPs touch no memory.
    assert_eq!(unsafe { ring.push(1, op::nop()) }, Ok(()), "queued");
    assert!(faults.hits().submit >= u64::from(PERSISTENT_AFTER));
    // SAFETY: as above.
    let second = unsafe { ring.push(2, op::nop()) };
    assert_eq!(
        second,
        Err(SubmitError::Os(libc::EBUSY)),
        "refused, nothing queued"
    );
    assert_eq!(ring.stats().in_flight, 1);
    faults.clear();
    let mut seen = Vec::new();
    let mut reaper = ring.reaper();
    let deadline = Instant::now() + PATIENCE;
    while seen.is_empty() {
        assert!(Instant::now() < deadline, "the queued NOP never completed");
        reaper.wait(Some(PATIENCE), |c| seen.push(c)).expect("wait");
    }
    assert_eq!(
        seen,
        [Completion::Op {
            user_data: 1,
            result: 0
        }]
    );
    assert_eq!(ring.stats().in_flight, 0);
    // And pushes work again.
    // SAFETY: as above.
    assert_eq!(unsafe { ring.push(3, op::nop()) }, Ok(()));
}

/// An errno the map does not know, in a completion: the map's documented
/// fallback `ERROR_GEN_FAILURE` (31), with exactly one callback, 0 bytes,
/// and the buffer back.
#[test]
fn fault_unknown_errno_in_a_completion_is_gen_failure_31_with_one_callback() {
    let unknown = libc::ENOTRECOVERABLE;
    assert_eq!(
        tpio_core::errno_map::lookup(unknown),
        None,
        "pick another errno"
    );
    let faults = Faults::arm();
    let Some(r) = rig("fault-unknown-cqe") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    let (b, p) = buffer(8, 0);
    io.read(b, 5).expect("pending");
    faults.completion_errno(unknown, 1);
    raw_write(&wr, b"x");
    let d = next(&rx);
    assert_eq!((d.tag, d.result), (5, Err(Win32Error::GEN_FAILURE)));
    assert_eq!((d.status().code(), d.bytes()), (31, 0));
    assert_eq!(d.buf.as_ptr() as usize, p);
    assert_eq!(faults.hits().completion, 1);
    settled(&r.pool, io, &rx, &rd);
}

/// The same errno from the non-blocking try: the issue fails at once with
/// 31 (rule 2: no callback), the buffer back; the next read works.
#[test]
fn fault_unknown_errno_from_the_at_once_try_fails_now_with_31_and_no_callback() {
    let unknown = libc::ENOTRECOVERABLE;
    let faults = Faults::arm();
    let Some(r) = rig("fault-unknown-try") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    raw_write(&wr, b"data");
    faults.try_errno(unknown, 1);
    let (b, p) = buffer(8, 0);
    let e = io.read(b, 1).expect_err("failed now");
    assert_eq!(e.error, Win32Error::GEN_FAILURE);
    assert_eq!(e.buf.as_ptr() as usize, p);
    assert_eq!(faults.hits().try_now, 1);
    assert!(rx.recv_timeout(QUIET).is_err(), "rule 2: no callback");
    // The data was not consumed by the failed try.
    io.read(vec![0; 8], 2).expect("issued");
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..4]), (2, Ok(4), &b"data"[..]));
    settled(&r.pool, io, &rx, &rd);
}

/// `CloseHandle` with operations pending — one read in the kernel and two
/// waiting behind it in the driver's order queue, a receive and a send on a
/// socket: each ends exactly once with 995 and its own buffer, the object
/// drains and is released, and the descriptor closes after the completions
/// (the pipe's writer then sees `EPIPE`).
#[test]
fn fault_handle_closed_with_operations_pending_completes_each_exactly_once() {
    let _faults = Faults::arm();
    let Some(r) = rig("fault-closed") else {
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
fn linger_zero(s: &std::net::TcpStream) {
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
fn tcp_pair(backend: &Backend) -> (tpio::TcpStream, std::net::TcpStream) {
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
#[test]
fn fault_peer_reset_before_a_recv_fails_it_now_with_10054() {
    let _faults = Faults::arm();
    let Some(r) = rig("fault-reset-now") else {
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

/// A reset while a receive waits in the kernel and a second waits behind
/// it in the driver's queue: the first completes with 10054; the second,
/// pushed after, completes exactly once too (the reset was reported, so
/// the kernel reports the end of the stream: success with 0 bytes).
#[test]
fn fault_peer_reset_with_two_recvs_pending_ends_each_once_the_first_with_10054() {
    let _faults = Faults::arm();
    let Some(r) = rig("fault-reset-pending") else {
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

/// A callback that panics on a worker whose own ring carries a read it
/// issued just before: the panic is caught and counted, the worker goes
/// on (the pool has one), the read completes on it exactly once, the
/// counts return to zero and `wait_for_callbacks` returns.
#[test]
fn fault_callback_panic_on_a_worker_with_a_read_in_its_ring_is_caught_and_the_read_completes() {
    let _faults = Faults::arm();
    quiet_expected_panics();
    let Some(r) = rig("fault-panic") else {
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
