//! Pool workers that wait in their driver (`tpio_core::parker`): the
//! io_uring driver's worker rings (`crates/tpio-uring/src/worker.rs`) and
//! the mio driver's worker polls (`crates/tpio-mio/src/worker_poll.rs`),
//! through the facade with real pipes, each test on each backend: an
//! operation a callback issues is completed by its worker, and its callback
//! runs there (no thread hand-off); a worker blocked in a callback does not
//! hold back what completes in its ring or poll; a worker that owns an
//! operation in flight is not retired (io_uring would cancel the operation
//! with the thread; mio would lose the registration); a cancel from another
//! thread takes effect before it returns.
//!
//! Not a rule of `spec/semantics.md` (the rules hold wherever an operation
//! waits); these pin the design the W2 benchmark figure depends on.
#![cfg(unix)]

mod support;

use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use support::*;
use tpio::{
    Backend, BackendKind, CallbackEnvironment, Done, OverlappedHandle, Pool, ThreadpoolIo,
    Win32Error,
};

/// Writes all of `data` to the pipe with the facade's blocking write.
fn write_all(wr: &tpio::Pipe, data: &[u8]) {
    assert_eq!(wr.write_blocking(data), Ok(data.len()));
}

type Seen = mpsc::Receiver<(u64, Result<usize, Win32Error>, ThreadId, Vec<u8>)>;

/// A read end on its own backend of `kind`, its TP_IO on a private pool of
/// `workers`, and a callback that reports each completion and then runs
/// `then(tag, io)` (e.g. to issue the next read from the worker).
struct Rig {
    _backend: Backend,
    pool: Pool,
    rd: tpio::Pipe,
    wr: tpio::Pipe,
    io: Arc<ThreadpoolIo>,
    seen: Seen,
}

/// The backends this host has whose workers wait in the driver (not
/// switched off by their environment variable).
fn kinds() -> Vec<BackendKind> {
    let off = |var: &str| std::env::var(var).is_ok_and(|v| v.trim() == "0");
    let mut k = Vec::new();
    #[cfg(target_os = "linux")]
    if !off(tpio_uring::WORKER_RINGS_ENV) {
        k.push(BackendKind::Uring);
    }
    if !off(tpio_mio::WORKER_POLLS_ENV) {
        k.push(BackendKind::Mio);
    }
    k
}

fn rig(
    kind: BackendKind,
    workers: usize,
    then: impl Fn(u64, &ThreadpoolIo) + Send + Sync + 'static,
) -> Option<Rig> {
    let backend = match Backend::new(kind) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipped on {kind:?}: {e}");
            return None;
        }
    };
    let pool = Pool::new("wring");
    pool.set_thread_maximum(workers);
    let env = CallbackEnvironment::new().pool(&pool);
    let (rd, wr) = tpio::pipe_on(&backend).expect("pipe");
    let (tx, seen) = mpsc::channel();
    let tx = Mutex::new(tx);
    let me: Arc<OnceLock<Weak<ThreadpoolIo>>> = Arc::default();
    let me2 = me.clone();
    let io = Arc::new(
        ThreadpoolIo::new(&rd, Some(&env), move |_i, d: Done| {
            let n = d.result.unwrap_or(0);
            let _ = tx.lock().expect("tx").send((
                d.tag,
                d.result,
                thread::current().id(),
                d.buf[..n].to_vec(),
            ));
            if let Some(io) = me2.get().and_then(Weak::upgrade) {
                then(d.tag, &io);
            }
        })
        .expect("create"),
    );
    me.set(Arc::downgrade(&io)).expect("once");
    Some(Rig {
        _backend: backend,
        pool,
        rd,
        wr,
        io,
        seen,
    })
}

impl Rig {
    fn next(&self) -> (u64, Result<usize, Win32Error>, ThreadId, Vec<u8>) {
        self.seen.recv_timeout(PATIENCE).expect("a callback")
    }
}

#[test]
fn a_read_issued_by_a_callback_completes_on_the_same_worker() {
    for kind in kinds() {
        a_read_issued_by_a_callback_completes_on_the_same_worker_on(kind);
    }
}

fn a_read_issued_by_a_callback_completes_on_the_same_worker_on(kind: BackendKind) {
    let Some(r) = rig(kind, 2, |tag, io| {
        if tag < 20 {
            io.read(vec![0; 8], tag + 1).expect("next read");
        }
    }) else {
        return;
    };
    r.io.read(vec![0; 8], 1).expect("first read");
    let mut prev: Option<ThreadId> = None;
    for tag in 1..=20u64 {
        write_all(&r.wr, &[tag as u8]);
        let (t, res, thread, data) = r.next();
        assert_eq!((t, res, data), (tag, Ok(1), vec![tag as u8]));
        if let Some(p) = prev {
            // Issued on worker `p`, into its ring: `p` reaped it and ran it.
            assert_eq!(thread, p, "read {tag} was handed to another thread");
        }
        prev = Some(thread);
    }
    idle(&r.io);
    assert_eq!(r.rd.in_flight(), 0);
}

#[test]
fn a_worker_blocked_in_a_callback_does_not_hold_back_its_completions() {
    for kind in kinds() {
        a_worker_blocked_in_a_callback_does_not_hold_back_its_completions_on(kind);
    }
}

fn a_worker_blocked_in_a_callback_does_not_hold_back_its_completions_on(kind: BackendKind) {
    let (unblock_tx, unblock_rx) = mpsc::channel::<ThreadId>();
    let unblock_rx = Mutex::new(unblock_rx);
    let blocked_on = Arc::new(Mutex::new(None));
    let b2 = blocked_on.clone();
    let Some(r) = rig(kind, 2, move |tag, io| {
        if tag == 1 {
            // Issue into this worker's ring, then block until that read's
            // callback has run (on another worker: this one is busy).
            io.read(vec![0; 8], 2).expect("read 2");
            *b2.lock().expect("b") = Some(thread::current().id());
            let got = unblock_rx.lock().expect("rx").recv_timeout(PATIENCE);
            assert!(
                got.is_ok(),
                "read 2's callback never ran while worker 1 was busy"
            );
        } else if tag == 2 {
            unblock_tx.send(thread::current().id()).expect("unblock");
        }
    }) else {
        return;
    };
    r.io.read(vec![0; 8], 1).expect("read 1");
    write_all(&r.wr, b"1");
    let (t, ..) = r.next();
    assert_eq!(t, 1);
    let deadline = Instant::now() + PATIENCE;
    while blocked_on.lock().expect("b").is_none() {
        assert!(Instant::now() < deadline, "callback 1 never issued read 2");
        thread::yield_now();
    }
    let t0 = Instant::now();
    write_all(&r.wr, b"2");
    let (t, res, thread, _) = r.next();
    let took = t0.elapsed();
    assert_eq!((t, res), (2, Ok(1)));
    assert_ne!(
        Some(thread),
        *blocked_on.lock().expect("b"),
        "run by the other worker"
    );
    eprintln!(
        "{kind:?}: read 2's callback ran {took:?} after its data, while its worker was blocked"
    );
    idle(&r.io);
}

#[test]
fn a_worker_with_a_read_in_flight_outlives_its_idle_time_out() {
    for kind in kinds() {
        a_worker_with_a_read_in_flight_outlives_its_idle_time_out_on(kind);
    }
}

fn a_worker_with_a_read_in_flight_outlives_its_idle_time_out_on(kind: BackendKind) {
    let Some(r) = rig(kind, 2, |tag, io| {
        if tag == 1 {
            io.read(vec![0; 8], 2).expect("read 2");
        }
    }) else {
        return;
    };
    r.pool.set_idle_timeout(Duration::from_millis(20));
    r.io.read(vec![0; 8], 1).expect("read 1");
    write_all(&r.wr, b"1");
    assert_eq!(r.next().0, 1);
    // Many idle time-outs pass with read 2 pending in the worker's ring: had
    // the worker exited, the kernel would have ended the read with
    // -ECANCELED (995), and the data below would stay unread.
    let quiet = r.seen.recv_timeout(QUIET);
    assert!(
        quiet.is_err(),
        "nothing completes while the pipe is empty: {quiet:?}"
    );
    assert!(
        r.pool.thread_count() >= 1,
        "the worker that owns read 2 is alive"
    );
    write_all(&r.wr, b"late");
    let (t, res, _, data) = r.next();
    assert_eq!((t, res, data), (2, Ok(4), b"late".to_vec()));
    idle(&r.io);
    // Nothing in flight: the worker may now retire.
    let deadline = Instant::now() + PATIENCE;
    while r.pool.thread_count() > 0 {
        assert!(Instant::now() < deadline, "the workers never retired");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_cancel_from_another_thread_takes_effect_before_it_returns() {
    for kind in kinds() {
        a_cancel_from_another_thread_takes_effect_before_it_returns_on(kind);
    }
}

fn a_cancel_from_another_thread_takes_effect_before_it_returns_on(kind: BackendKind) {
    let (issued_tx, issued_rx) = mpsc::channel::<tpio::OverlappedId>();
    let issued_tx = Mutex::new(issued_tx);
    let Some(r) = rig(kind, 2, move |tag, io| {
        if tag == 1 {
            let s = io.read(vec![0; 8], 2).expect("read 2");
            issued_tx
                .lock()
                .expect("tx")
                .send(s.overlapped)
                .expect("send");
        }
    }) else {
        return;
    };
    r.io.read(vec![0; 8], 1).expect("read 1");
    write_all(&r.wr, b"1");
    assert_eq!(r.next().0, 1);
    let ov = issued_rx.recv_timeout(PATIENCE).expect("read 2 issued");
    let deadline = Instant::now() + PATIENCE;
    while r.rd.in_flight() == 0 {
        assert!(Instant::now() < deadline, "read 2 never pending");
        thread::yield_now();
    }
    assert_eq!(tpio::cancel_io_ex(&r.rd, Some(ov)), Ok(()));
    // Written after the cancel returned: the cancelled read must not get it.
    write_all(&r.wr, b"after");
    let (t, res, ..) = r.next();
    assert_eq!((t, res), (2, Err(Win32Error::OPERATION_ABORTED)));
    let mut buf = [0u8; 8];
    assert_eq!(r.rd.read_blocking(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"after");
    idle(&r.io);
}

#[test]
fn a_cancel_from_a_thread_that_exits_spares_the_busy_workers_other_reads() {
    for kind in kinds() {
        a_cancel_from_a_thread_that_exits_spares_the_busy_workers_other_reads_on(kind);
    }
}

/// A worker issues read 2 on one pipe and read 3 on another and stays
/// busy (blocked outside tpio, so on io_uring both still wait in its ring's
/// SQ for its next enter); a short-lived thread cancels read 2 and exits.
/// The cancel takes effect before it returns, and read 3 is untouched: the
/// cancelling thread did not hand it to the kernel, or its exit would have
/// ended it (995) when its data came.
fn a_cancel_from_a_thread_that_exits_spares_the_busy_workers_other_reads_on(kind: BackendKind) {
    let other: Arc<OnceLock<Arc<ThreadpoolIo>>> = Arc::default();
    let other2 = other.clone();
    let (issued_tx, issued_rx) = mpsc::channel::<tpio::OverlappedId>();
    let issued_tx = Mutex::new(issued_tx);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let Some(r) = rig(kind, 2, move |tag, io| {
        if tag == 1 {
            let s = io.read(vec![0; 8], 2).expect("read 2");
            let io3 = other2.get().expect("set before read 1");
            io3.read(vec![0; 8], 3).expect("read 3");
            issued_tx
                .lock()
                .expect("tx")
                .send(s.overlapped)
                .expect("send");
            let go = go_rx.lock().expect("rx").recv_timeout(PATIENCE);
            assert!(go.is_ok(), "never released");
        }
    }) else {
        return;
    };
    let (rd3, wr3) = tpio::pipe_on(&r._backend).expect("pipe");
    let env = CallbackEnvironment::new().pool(&r.pool);
    let (tx3, rx3) = mpsc::channel();
    let tx3 = Mutex::new(tx3);
    let io3 = ThreadpoolIo::new(&rd3, Some(&env), move |_i, d: Done| {
        let _ = tx3.lock().expect("tx3").send((d.tag, d.result));
    })
    .expect("create");
    assert!(other.set(Arc::new(io3)).is_ok());
    r.io.read(vec![0; 8], 1).expect("read 1");
    write_all(&r.wr, b"1");
    assert_eq!(r.next().0, 1);
    let ov = issued_rx.recv_timeout(PATIENCE).expect("reads issued");
    let t0 = Instant::now();
    let cancelled = thread::scope(|sc| {
        sc.spawn(|| tpio::cancel_io_ex(&r.rd, Some(ov)))
            .join()
            .expect("canceller")
    });
    eprintln!(
        "{kind:?}: the cancel of a read in a busy worker's SQ took {:?}",
        t0.elapsed()
    );
    assert_eq!(cancelled, Ok(()));
    // The canceller has exited: data written now is read 3's.
    write_all(&wr3, b"three");
    let (t, res, ..) = r.next();
    assert_eq!((t, res), (2, Err(Win32Error::OPERATION_ABORTED)));
    let io3 = other.get().expect("set");
    assert_eq!(rx3.recv_timeout(PATIENCE).expect("read 3"), (3, Ok(5)));
    go_tx.send(()).expect("release");
    idle(&r.io);
    idle(io3);
    assert_eq!((r.rd.in_flight(), rd3.in_flight()), (0, 0));
}

/// io_uring: a file read a pool worker issues waits in the worker's ring for
/// its next enter (a batch costs one system call), completing with a
/// callback on that worker; in skip-completion-on-success mode the same
/// read finishes at once in the issuing call, with no callback
/// (`tpio_uring::driver`, `batch_in_ring`).
#[cfg(target_os = "linux")]
#[test]
fn a_file_read_issued_by_a_worker_waits_in_its_ring_unless_skip_mode() {
    let off = |var: &str| std::env::var(var).is_ok_and(|v| v.trim() == "0");
    if off(tpio_uring::WORKER_RINGS_ENV) || off(tpio_uring::FILE_BATCH_ENV) {
        eprintln!("skipped: worker rings or file batches switched off");
        return;
    }
    let backend = match Backend::new(BackendKind::Uring) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let data = pattern(4096);
    let tmp = TempFile::with(&data);
    // In the page cache, read once: a non-blocking try would finish it.
    assert_eq!(std::fs::read(&tmp.0).expect("read"), data);
    let std_file = std::fs::File::open(&tmp.0).expect("open");
    let file = Arc::new(tpio::File::from_std_on(std_file, &backend).expect("file"));
    let pool = Pool::new("wring-file");
    pool.set_thread_maximum(1);
    let env = CallbackEnvironment::new().pool(&pool);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let io = Arc::new(
        ThreadpoolIo::new(&*file, Some(&env), move |_i, d: Done| {
            let _ = tx
                .lock()
                .expect("tx")
                .send((d.tag, d.result, thread::current().id(), d.buf));
        })
        .expect("create"),
    );
    for skip in [false, true] {
        tpio::OverlappedHandle::set_skip_completion_on_success(&*file, skip);
        let (started_tx, started_rx) = mpsc::channel();
        let (io2, file2) = (io.clone(), file.clone());
        pool.submit_callback(move |_| {
            let started = io2.read_at(vec![0; 4096], 0, 7).expect("read");
            // Its callback cannot run before this one returns (it is this
            // worker's): in flight now means it was not finished at once.
            let in_flight = tpio::OverlappedHandle::in_flight(&*file2);
            let now = started.completed_now.map(|d| (d.result, d.buf));
            started_tx
                .send((now, in_flight, thread::current().id()))
                .expect("send");
        });
        let (now, in_flight, worker) = started_rx.recv_timeout(PATIENCE).expect("issued");
        if skip {
            assert_eq!(now, Some((Ok(4096), data.clone())), "finished at once");
            assert_eq!(in_flight, 0);
            assert!(
                rx.recv_timeout(QUIET).is_err(),
                "no callback in skip mode for a read that finished at once"
            );
        } else {
            assert_eq!(now, None);
            assert_eq!(in_flight, 1, "pending: it waits in the worker's ring");
            let (tag, res, on, buf) = rx.recv_timeout(PATIENCE).expect("callback");
            assert_eq!(
                (tag, res, on),
                (7, Ok(4096), worker),
                "on the issuing worker"
            );
            assert_eq!(buf, data);
        }
    }
    idle(&io);
}
