//! io_uring: sends a pool worker issues on a stream socket wait in the
//! worker's ring for its next enter (`tpio_uring::driver`, `batch_in_ring`;
//! `spec/uring.md`, "How an operation goes"), bounded by a run of
//! callbacks (`tpio_uring::defer`, `DEFER_AGE`); and a send that fails in
//! the ring on a closed connection fails as the non-blocking try's does,
//! with no `SIGPIPE`.
//!
//! This file's test binary restores `SIGPIPE`'s default action (Rust's
//! runtime ignores it), so a send that raised it would kill the binary.
#![cfg(target_os = "linux")]

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use tpio::{Backend, BackendKind, CallbackEnvironment, Done, Pool, ThreadpoolIo, Win32Error};

/// The io_uring backend with worker rings and send batches, or `None`
/// (with a note) where either is switched off or io_uring is missing.
fn batching_backend() -> Option<Backend> {
    static SIGPIPE_DEFAULT: Once = Once::new();
    SIGPIPE_DEFAULT.call_once(|| {
        // SAFETY: setting a signal's disposition to its default has no
        // memory effects; no handler of ours is replaced.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    });
    let off = |var: &str| std::env::var(var).is_ok_and(|v| v.trim() == "0");
    if off(tpio_uring::WORKER_RINGS_ENV)
        || off(tpio_uring::SEND_BATCH_ENV)
        || off(tpio_uring::AT_ONCE_ENV)
    {
        eprintln!("skipped: worker rings, send batches or tries switched off");
        return None;
    }
    match Backend::new(BackendKind::Uring) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A connected pair: tpio's end on `backend`, and the plain peer.
fn tcp_pair(backend: &Backend) -> (Arc<tpio::TcpStream>, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let ours = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (peer, _) = l.accept().expect("accept");
    let ours = tpio::TcpStream::from_std_on(ours, backend).expect("adopt");
    (Arc::new(ours), peer)
}

type Seen = (u64, Result<usize, Win32Error>, thread::ThreadId);

/// A TP_IO on `sock` in a one-worker pool whose callbacks report here.
fn one_worker_io(
    name: &str,
    sock: &tpio::TcpStream,
) -> (Pool, Arc<ThreadpoolIo>, mpsc::Receiver<Seen>) {
    let pool = Pool::new(name);
    pool.set_thread_maximum(1);
    let env = CallbackEnvironment::new().pool(&pool);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let io = ThreadpoolIo::new(sock, Some(&env), move |_i, d: Done| {
        let _ = tx
            .lock()
            .expect("tx")
            .send((d.tag, d.result, thread::current().id()));
    })
    .expect("create");
    (pool, Arc::new(io), rx)
}

/// A connected pair on the batching backend, tpio's end with a TP_IO in a
/// one-worker pool called `name`; `None` where batching is off.
struct Rig {
    sock: Arc<tpio::TcpStream>,
    peer: TcpStream,
    pool: Pool,
    io: Arc<ThreadpoolIo>,
    rx: mpsc::Receiver<Seen>,
}

fn rig(name: &str) -> Option<Rig> {
    let backend = batching_backend()?;
    let (sock, peer) = tcp_pair(&backend);
    let (pool, io, rx) = one_worker_io(name, &sock);
    Some(Rig {
        sock,
        peer,
        pool,
        io,
        rx,
    })
}

#[test]
fn a_send_issued_by_a_worker_waits_in_its_ring_unless_skip_mode() {
    let Some(Rig {
        sock,
        mut peer,
        pool,
        io,
        rx,
    }) = rig("sbatch-wait")
    else {
        return;
    };
    for skip in [false, true] {
        tpio::OverlappedHandle::set_skip_completion_on_success(&*sock, skip);
        let (started_tx, started_rx) = mpsc::channel();
        let (io2, sock2) = (io.clone(), sock.clone());
        pool.submit_callback(move |_| {
            let started = io2.send(b"hello".to_vec(), 7).expect("send");
            // Its callback cannot run before this one returns (it is this
            // worker's): in flight now means it was not sent at once.
            let in_flight = tpio::OverlappedHandle::in_flight(&*sock2);
            let now = started.completed_now.map(|d| d.result);
            started_tx
                .send((now, in_flight, thread::current().id()))
                .expect("report");
        });
        let (now, in_flight, worker) = started_rx.recv_timeout(PATIENCE).expect("issued");
        if skip {
            assert_eq!(now, Some(Ok(5)), "sent at once in skip mode");
            assert_eq!(in_flight, 0);
            assert!(
                rx.recv_timeout(QUIET).is_err(),
                "no callback in skip mode for a send that finished at once"
            );
        } else {
            assert_eq!(now, None);
            assert_eq!(in_flight, 1, "pending: it waits in the worker's ring");
            assert_eq!(
                rx.recv_timeout(PATIENCE).expect("callback"),
                (7, Ok(5), worker),
                "completed on the issuing worker"
            );
        }
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).expect("peer reads");
        assert_eq!(&got, b"hello");
    }
    idle(&io);
}

#[test]
fn a_held_send_goes_out_after_a_short_run_of_callbacks_not_at_the_park() {
    // `_sock` keeps tpio's end open (a `..` would drop it here).
    let Some(Rig {
        sock: _sock,
        peer,
        pool,
        io,
        rx,
    }) = rig("sbatch-age")
    else {
        return;
    };
    peer.set_nonblocking(true).expect("nonblocking");
    let peer = Arc::new(peer);
    // Each follower spins 250 µs (longer than a send is held between
    // callbacks, 200 µs) and notes whether the data has reached the peer:
    // loopback TCP delivers it during the submitting system call. Without
    // the bound it would go out at the driver's rescue (2 ms or more: 8
    // followers) or at the worker's park (after all 40).
    const FOLLOWERS: usize = 40;
    let first_seen = Arc::new(AtomicUsize::new(usize::MAX));
    let (done_tx, done_rx) = mpsc::channel();
    let (io2, pool2) = (io.clone(), pool.clone());
    let (first2, peer2) = (first_seen.clone(), peer.clone());
    pool.submit_callback(move |_| {
        let started = io2.send(b"ping".to_vec(), 9).expect("send");
        assert!(started.completed_now.is_none());
        for k in 0..FOLLOWERS {
            let (first, peer, done) = (first2.clone(), peer2.clone(), done_tx.clone());
            // A worker's callbacks queued from its own callback run on it,
            // in order.
            pool2.submit_callback(move |_| {
                let mut b = [0u8; 4];
                if first.load(Ordering::Relaxed) == usize::MAX && (&*peer).read(&mut b).is_ok() {
                    first.store(k, Ordering::Relaxed);
                }
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_micros(250) {
                    std::hint::spin_loop();
                }
                if k == FOLLOWERS - 1 {
                    let _ = done.send(());
                }
            });
        }
    });
    done_rx.recv_timeout(PATIENCE).expect("followers ran");
    let first = first_seen.load(Ordering::Relaxed);
    assert!(
        first <= 2,
        "the held send reached the peer only by follower {first} of {FOLLOWERS}"
    );
    assert_eq!(rx.recv_timeout(PATIENCE).expect("callback").1, Ok(4));
    idle(&io);
}

#[test]
fn a_send_on_a_closed_connection_fails_alike_at_once_and_in_the_ring_without_sigpipe() {
    let Some(Rig {
        sock,
        peer: _peer,
        pool,
        io,
        rx,
    }) = rig("sbatch-pipe")
    else {
        return;
    };
    // Shut for writing: every send now fails with EPIPE, which raises
    // SIGPIPE unless the call says MSG_NOSIGNAL.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&*sock);
    // SAFETY: `fd` is the open socket `sock` owns; shutdown changes no memory.
    assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_WR) }, 0);
    // At once: issued from this thread, which tries first.
    let at_once = match io.send(b"x".to_vec(), 1) {
        Ok(s) => {
            assert!(s.completed_now.is_none());
            rx.recv_timeout(PATIENCE).expect("callback").1
        }
        Err(e) => Err(e.error),
    };
    assert!(
        at_once.is_err(),
        "a send on a shut socket failed: {at_once:?}"
    );
    // In the ring: issued by the worker, held for its next enter.
    let io2 = io.clone();
    pool.submit_callback(move |_| {
        let s = io2.send(b"y".to_vec(), 2).expect("issued");
        assert!(s.completed_now.is_none());
    });
    let (tag, in_ring, _) = rx.recv_timeout(PATIENCE).expect("callback");
    assert_eq!(tag, 2);
    assert_eq!(in_ring, at_once, "the ring's failure is the try's");
    idle(&io);
}
