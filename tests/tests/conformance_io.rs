//! Conformance of the safe facade (`tpio::ThreadpoolIo`) with REAL I/O on
//! the backend this host has (io_uring on Linux): files, pipes, sockets.
//! Each test is named after the rule of `spec/semantics.md` it checks.
//!
//! Tests fail when no backend can run here (see `support`). They wait on
//! conditions with generous time-outs; the only timed waits are "quiet
//! windows" that assert something does NOT happen, and those never decide
//! the order of events.

mod support;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, ThreadId};

use support::*;
use tpio::{
    cancel_io, cancel_io_ex, CallbackEnvironment, Done, OverlappedHandle, Pool, ThreadpoolIo,
    Win32Error,
};

/// What every callback of a test reports: the `Done` and the worker thread.
struct Rec {
    rx: Receiver<(Done, ThreadId)>,
}

fn recorder() -> (
    impl Fn(&mut tpio::CallbackInstance<'_>, Done) + Send + Sync + 'static,
    Rec,
) {
    let (tx, rx) = mpsc::channel();
    let cb = move |_i: &mut tpio::CallbackInstance<'_>, d: Done| {
        let _ = tx.send((d, thread::current().id()));
    };
    (cb, Rec { rx })
}

impl Rec {
    /// The next callback's `Done`; asserts it ran on a worker, not here.
    fn next(&self) -> Done {
        let (d, t) = self
            .rx
            .recv_timeout(PATIENCE)
            .expect("no callback within the patience window");
        assert_ne!(
            t,
            thread::current().id(),
            "rule 3: callbacks run on workers"
        );
        d
    }

    fn assert_quiet(&self) {
        match self.rx.recv_timeout(QUIET) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok((d, _)) => panic!("unexpected callback: {d:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("callback dropped early"),
        }
    }

    fn assert_none_now(&self) {
        if let Ok((d, _)) = self.rx.try_recv() {
            panic!("unexpected callback: {d:?}");
        }
    }
}

#[test]
fn rule_3_file_read_at_offset_gives_the_bytes_and_status_0() {
    if !backend_here() {
        return;
    }
    let data = pattern(1000);
    let tf = TempFile::with(&data);
    let f = tpio::File::open_overlapped(&tf.0).expect("open");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&f, None, cb).expect("create");
    let s = io.read_at(vec![0; 100], 900, 7).expect("issued");
    assert!(s.completed_now.is_none());
    let d = rec.next();
    assert_eq!((d.tag, d.overlapped), (7, s.overlapped));
    assert_eq!((d.status(), d.bytes()), (Win32Error::SUCCESS, 100));
    assert_eq!(d.result, Ok(100));
    assert_eq!(d.buf[..], data[900..]);
    idle(&io);
    assert_eq!(f.in_flight(), 0);
}

#[test]
fn rule_3_file_read_at_eof_gives_38_and_0_bytes() {
    if !backend_here() {
        return;
    }
    let tf = TempFile::with(&pattern(1000));
    let f = tpio::File::open_overlapped(&tf.0).expect("open");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&f, None, cb).expect("create");
    // Windows reports end of file either by failing ReadFile at once or by
    // a completion with 38; every tpio backend does the latter, the same.
    io.read_at(vec![0; 64], 1000, 1)
        .expect("issued: end of file comes by callback");
    let d = rec.next();
    assert_eq!(d.result, Err(Win32Error::HANDLE_EOF));
    assert_eq!((d.status().code(), d.bytes()), (38, 0));
    assert_eq!(d.buf.len(), 64, "the buffer comes back whole");
    idle(&io);
}

#[test]
fn rule_3_file_write_at_then_read_back() {
    if !backend_here() {
        return;
    }
    let tf = TempFile::with(b"");
    let f = tpio::File::create_overlapped(&tf.0).expect("create file");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&f, None, cb).expect("create");
    io.write_at(b"0123456789".to_vec(), 4, 1)
        .expect("write issued");
    assert_eq!(rec.next().result, Ok(10));
    io.read_at(vec![0; 6], 8, 2).expect("read issued");
    let d = rec.next();
    assert_eq!(d.result, Ok(6));
    assert_eq!(&d.buf[..], b"456789");
    assert_eq!(f.len().expect("len"), 14);
    idle(&io);
}

#[test]
fn rule_4_a_pending_pipe_read_blocks_wait_for_callbacks_until_data_is_written() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    io.read(vec![0; 32], 1).expect("issued");
    assert_eq!(io.counts().pending, 1);
    let (tx, waited) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| {
            let r = io.wait_for_callbacks(false);
            let _ = tx.send(r);
        });
        assert_eq!(
            waited.recv_timeout(QUIET),
            Err(RecvTimeoutError::Timeout),
            "wait_for_callbacks(false) returned with a read outstanding"
        );
        write_pipe(&wr, b"ping");
        assert_eq!(waited.recv_timeout(PATIENCE), Ok(Ok(())));
    });
    // The wait returned after the callback finished: its Done is there.
    let (d, _) = rec
        .rx
        .try_recv()
        .expect("callback ran before the wait returned");
    assert_eq!((d.tag, d.result), (1, Ok(4)));
    assert_eq!(&d.buf[..4], b"ping");
}

#[test]
fn rule_1_two_operations_give_two_callbacks_with_their_own_overlapped_and_tag() {
    if !backend_here() {
        return;
    }
    let data = pattern(4096);
    let tf = TempFile::with(&data);
    let f = tpio::File::open_overlapped(&tf.0).expect("open");
    let pool = Pool::new("conformance-two-ops");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&f, Some(&env), cb).expect("create");
    let a = io.read_at(vec![0; 10], 0, 100).expect("a");
    let b = io.read_at(vec![0; 20], 2000, 200).expect("b");
    assert_ne!(a.overlapped, b.overlapped);
    let mut got = [rec.next(), rec.next()];
    got.sort_by_key(|d| d.tag);
    assert_eq!((got[0].tag, got[0].overlapped), (100, a.overlapped));
    assert_eq!((got[1].tag, got[1].overlapped), (200, b.overlapped));
    assert_eq!(got[0].result, Ok(10));
    assert_eq!(got[1].result, Ok(20));
    assert_eq!(got[0].buf[..], data[..10]);
    assert_eq!(got[1].buf[..], data[2000..2020]);
    idle(&io);
    rec.assert_none_now();
    assert_eq!(pool.stats().callbacks_run, 2, "exactly one callback each");
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn rule_2_a_read_on_a_write_only_pipe_end_fails_now_with_no_callback() {
    if !backend_here() {
        return;
    }
    let (_rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-failed-now");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&wr, Some(&env), cb).expect("create");
    let e = io.read(vec![9; 16], 5).expect_err("must fail at once");
    assert_eq!(e.error, Win32Error::ACCESS_DENIED);
    assert_eq!(e.buf, vec![9; 16], "the buffer comes back untouched");
    assert_eq!(io.counts().pending, 0, "the start was balanced");
    idle(&io);
    rec.assert_quiet();
    assert_eq!(pool.stats().callbacks_queued, 0);
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn rule_2_an_issue_after_the_handle_is_closed_fails_now_with_6() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    drop(rd); // CloseHandle
    let e = io.read(vec![0; 8], 1).expect_err("closed handle");
    assert_eq!(e.error, Win32Error::INVALID_HANDLE);
    assert_eq!(io.counts().pending, 0);
    idle(&io);
    rec.assert_quiet();
}

#[test]
fn rule_2_a_read_done_at_once_still_calls_back_without_skip_mode() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    assert!(!rd.skip_completion_on_success());
    write_pipe(&wr, b"now");
    let pool = Pool::new("conformance-at-once");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, Some(&env), cb).expect("create");
    let s = io.read(vec![0; 16], 4).expect("issued");
    assert!(
        s.completed_now.is_none(),
        "rule 2: without skip mode the result comes by callback"
    );
    let d = rec.next();
    assert_eq!((d.tag, d.overlapped, d.result), (4, s.overlapped, Ok(3)));
    idle(&io);
    rec.assert_none_now();
    assert_eq!(pool.stats().callbacks_run, 1);
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn rule_2_skip_completion_on_success_with_data_already_there_balances_once() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    rd.set_skip_completion_on_success(true);
    assert!(rd.skip_completion_on_success());
    write_pipe(&wr, b"ready");
    let pool = Pool::new("conformance-skip");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, Some(&env), cb).expect("create");
    let s = io.read(vec![0; 16], 3).expect("issued");
    let d = match s.completed_now {
        // Completed during submission: no callback may come (rule 2).
        Some(d) => {
            idle(&io);
            rec.assert_quiet();
            assert_eq!(pool.stats().callbacks_queued, 0);
            d
        }
        // The backend reported pending (io_uring always does): exactly one
        // callback, as for any pending operation.
        None => {
            let d = rec.next();
            idle(&io);
            rec.assert_none_now();
            assert_eq!(pool.stats().callbacks_run, 1);
            d
        }
    };
    assert_eq!((d.tag, d.overlapped, d.result), (3, s.overlapped, Ok(5)));
    assert_eq!(&d.buf[..5], b"ready");
    assert_eq!(io.counts(), tpio::IoCounts::default());
    assert_eq!(pool.stats().misuse_total(), 0);
}

/// Whether a small send on an idle connection finishes during the call
/// here: tpio's Unix backends try a send before it waits (io_uring unless
/// its tries are switched off), while Windows may report it pending.
fn a_small_send_finishes_at_once() -> bool {
    #[cfg(target_os = "linux")]
    if std::env::var(tpio_uring::AT_ONCE_ENV).is_ok_and(|v| v.trim() == "0") {
        return false;
    }
    cfg!(unix)
}

#[test]
fn rule_2_a_send_a_worker_issues_in_skip_mode_that_finishes_at_once_gets_no_callback() {
    // A pool worker's sends may be held in its io_uring ring until its next
    // enter (`spec/uring.md`): never in skip mode, where a send that can go
    // now must finish during the call, with no packet.
    if !backend_here() {
        return;
    }
    let (server, mut peer) = tcp_pair();
    server.set_skip_completion_on_success(true);
    let pool = Pool::new("conformance-skip-send");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = std::sync::Arc::new(ThreadpoolIo::new(&server, Some(&env), cb).expect("create"));
    let (tx, rx) = mpsc::channel();
    let on_worker = io.clone();
    pool.submit_callback(move |_| {
        let s = on_worker.send(b"hello".to_vec(), 9).expect("issued");
        let now = s.completed_now.map(|d| (d.tag, d.result));
        let _ = tx.send((s.overlapped, now));
    });
    let (overlapped, now) = rx.recv_timeout(PATIENCE).expect("issued on a worker");
    match now {
        Some(done) => {
            assert_eq!(done, (9, Ok(5)));
            idle(&io);
            rec.assert_quiet();
        }
        None => {
            assert!(
                !a_small_send_finishes_at_once(),
                "rule 2: a send that could go at once was left pending in skip mode"
            );
            let d = rec.next();
            assert_eq!((d.tag, d.overlapped, d.result), (9, overlapped, Ok(5)));
            idle(&io);
        }
    }
    let mut got = [0u8; 5];
    std::io::Read::read_exact(&mut peer, &mut got).expect("peer reads");
    assert_eq!(&got, b"hello");
    assert_eq!(io.counts(), tpio::IoCounts::default());
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn rule_6_cancel_io_ex_of_one_overlapped_gives_995_while_the_other_read_completes() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    let a = io.read(vec![1; 8], 1).expect("a");
    let b = io.read(vec![2; 8], 2).expect("b");
    rec.assert_quiet();
    assert_eq!(rd.in_flight(), 2);
    cancel_io_ex(&rd, Some(a.overlapped)).expect("cancel a");
    let d = rec.next();
    assert_eq!((d.tag, d.overlapped), (1, a.overlapped));
    assert_eq!((d.status(), d.bytes()), (Win32Error::OPERATION_ABORTED, 0));
    assert_eq!(d.buf, vec![1; 8], "the cancelled buffer comes back");
    rec.assert_quiet();
    write_pipe(&wr, b"xyz");
    let d = rec.next();
    assert_eq!((d.tag, d.overlapped, d.result), (2, b.overlapped, Ok(3)));
    assert_eq!(&d.buf[..3], b"xyz");
    idle(&io);
    // Rule 6: cancelling it again after its completion finds nothing.
    assert_eq!(
        cancel_io_ex(&rd, Some(a.overlapped)),
        Err(Win32Error::NOT_FOUND)
    );
}

#[test]
fn rule_6_a_read_cancelled_before_data_arrives_gives_995_not_the_data() {
    if !backend_here() {
        return;
    }
    // Windows cancels a pending pipe read inside CancelIoEx: data written
    // after it returned goes to the next read. Issue, cancel at once and
    // write at once, many times, so a cancel still queued when the data
    // arrives would show.
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    for i in 0..200u64 {
        let s = io.read(vec![0; 8], i).expect("issued");
        assert!(s.completed_now.is_none());
        cancel_io_ex(&rd, Some(s.overlapped)).expect("cancel");
        write_pipe(&wr, b"d");
        let d = rec.next();
        assert_eq!(
            (d.tag, d.status(), d.bytes()),
            (i, Win32Error::OPERATION_ABORTED, 0),
            "round {i}: the cancelled read got data"
        );
        // The byte is still there for the next read (at once, no wait).
        let s = io.read(vec![0; 8], 1000 + i).expect("issued");
        let d = match s.completed_now {
            Some(d) => d,
            None => rec.next(),
        };
        assert_eq!((d.tag, d.result), (1000 + i, Ok(1)));
    }
    idle(&io);
}

#[test]
fn rule_6_cancel_io_ex_of_a_completed_overlapped_is_not_found() {
    if !backend_here() {
        return;
    }
    let tf = TempFile::with(&pattern(100));
    let f = tpio::File::open_overlapped(&tf.0).expect("open");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&f, None, cb).expect("create");
    let s = io.read_at(vec![0; 10], 0, 1).expect("issued");
    assert_eq!(rec.next().result, Ok(10));
    assert_eq!(
        cancel_io_ex(&f, Some(s.overlapped)),
        Err(Win32Error::NOT_FOUND)
    );
    assert_eq!(
        cancel_io_ex(&f, Some(s.overlapped)).map_err(|e| e.code()),
        Err(1168)
    );
    idle(&io);
}

#[test]
fn rule_6_cancel_io_ex_all_with_nothing_pending_is_not_found() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    assert_eq!(cancel_io_ex(&rd, None), Err(Win32Error::NOT_FOUND));
    let (cb, _rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    assert_eq!(cancel_io_ex(&rd, None), Err(Win32Error::NOT_FOUND));
    // cancel_io (this thread's) with nothing pending succeeds.
    assert_eq!(cancel_io(&rd), Ok(()));
    idle(&io);
}

#[test]
fn rule_6_cancel_io_from_another_thread_does_not_touch_this_threads_operations() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    let mine = io.read(vec![0; 8], 1).expect("mine");
    let theirs = thread::scope(|s| {
        s.spawn(|| {
            // Nothing of this thread's: succeeds, cancels nothing.
            assert_eq!(cancel_io(&rd), Ok(()));
            // Its own read is the only one its cancel_io reaches.
            let theirs = io.read(vec![0; 8], 2).expect("theirs");
            assert_eq!(cancel_io(&rd), Ok(()));
            theirs.overlapped
        })
        .join()
        .expect("thread")
    });
    let d = rec.next();
    assert_eq!((d.tag, d.overlapped), (2, theirs));
    assert_eq!(d.result, Err(Win32Error::OPERATION_ABORTED));
    rec.assert_quiet();
    assert_eq!(rd.in_flight(), 1, "this thread's read is still pending");
    write_pipe(&wr, b"mine");
    let d = rec.next();
    assert_eq!((d.tag, d.overlapped, d.result), (1, mine.overlapped, Ok(4)));
    idle(&io);
}

#[test]
fn rule_6_cancel_io_cancels_this_threads_pending_read_with_995() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    let s = io.read(vec![0; 8], 1).expect("issued");
    assert_eq!(cancel_io(&rd), Ok(()));
    let d = rec.next();
    assert_eq!(
        (d.overlapped, d.status(), d.bytes()),
        (s.overlapped, Win32Error::OPERATION_ABORTED, 0)
    );
    idle(&io);
}

/// Makes `s`'s close send a reset (SO_LINGER on, 0 seconds).
#[cfg(unix)]
fn linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
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
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Makes `s`'s close send a reset (SO_LINGER on, 0 seconds).
#[cfg(windows)]
fn linger_zero(s: &std::net::TcpStream) {
    use std::os::windows::io::AsRawSocket;
    use windows_sys::Win32::Networking::WinSock::{setsockopt, LINGER, SOL_SOCKET, SO_LINGER};
    let l = LINGER {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a live LINGER of the size passed; the socket is open.
    let r = unsafe {
        setsockopt(
            s.as_raw_socket() as usize,
            SOL_SOCKET,
            SO_LINGER,
            (&l as *const LINGER).cast(),
            std::mem::size_of::<LINGER>() as i32,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// Bytes of a write larger than any pipe's or socket buffer here, so it
/// must wait for its reader.
const BIG: usize = 4 << 20;

/// A connected pair: a tpio stream and its std peer.
fn tcp_pair() -> (tpio::TcpStream, std::net::TcpStream) {
    let l = tpio::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    peer.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let (server, _) = l.accept_blocking().expect("accept");
    (server, peer)
}

/// Rule 3: the write of `data` (tag 1) completes with every byte, and the
/// reader (started apart, see `read_apart`) got them all, in order.
fn assert_written_whole(rec: &Rec, reader: thread::JoinHandle<Vec<u8>>, data: &[u8]) {
    let d = rec.next();
    assert_eq!(
        (d.tag, d.result),
        (1, Ok(data.len())),
        "a stream write never completes short"
    );
    let got = reader.join().expect("reader");
    assert!(got == data, "every byte, in order");
}

/// Reads `n` bytes from `rd` on a thread of its own (not scoped: a write
/// that completed short would leave it waiting for bytes that never come,
/// and the test must fail on the callback, not hang on a join).
fn read_apart(rd: tpio::Pipe, n: usize) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 64 << 10];
        while got.len() < n {
            let k = rd.read_blocking(&mut buf).expect("read");
            assert!(k > 0, "the pipe ended after {} bytes", got.len());
            got.extend_from_slice(&buf[..k]);
        }
        got
    })
}

#[test]
fn rule_3_a_write_to_a_pipe_whose_reader_is_gone_fails_now_with_232() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    drop(rd);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&wr, None, cb).expect("create");
    let e = io.write(b"lost".to_vec(), 1).expect_err("fails at issue");
    assert_eq!(
        e.error,
        Win32Error::NO_DATA,
        "ERROR_NO_DATA, the pipe is being closed"
    );
    assert_eq!(e.error.code(), 232);
    idle(&io);
    rec.assert_quiet();
}

#[test]
fn rule_3_a_pipe_write_larger_than_the_pipe_completes_whole() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&wr, None, cb).expect("create");
    let data: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let s = io.write(data.clone(), 1).expect("issued");
    assert!(s.completed_now.is_none());
    rec.assert_quiet();
    let reader = read_apart(rd, BIG);
    assert_written_whole(&rec, reader, &data);
    idle(&io);
}

#[test]
fn rule_3_two_large_pipe_writes_from_two_threads_never_interleave() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&wr, None, cb).expect("create");
    // Each thread's write is a run of one byte value; issued at the same
    // moment, on a pipe with room for part of either.
    let go = std::sync::Barrier::new(2);
    thread::scope(|s| {
        for v in [1u8, 2] {
            let (io, go) = (&io, &go);
            s.spawn(move || {
                go.wait();
                io.write(vec![v; BIG], u64::from(v)).expect("issued");
            });
        }
    });
    let reader = read_apart(rd, 2 * BIG);
    let mut done = [rec.next(), rec.next()].map(|d| (d.tag, d.result));
    done.sort_unstable();
    assert_eq!(done, [(1, Ok(BIG)), (2, Ok(BIG))]);
    let got = reader.join().expect("reader");
    let first = got[0];
    assert!(
        got[..BIG].iter().all(|b| *b == first) && got[BIG..].iter().all(|b| *b == 3 - first),
        "one write's bytes, then the other's"
    );
    idle(&io);
}

#[test]
fn rule_3_a_pending_pipe_write_fails_with_109_when_the_reader_goes() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&wr, None, cb).expect("create");
    let s = io.write(vec![7; BIG], 1).expect("issued");
    assert!(s.completed_now.is_none());
    rec.assert_quiet();
    drop(rd);
    let d = rec.next();
    assert_eq!((d.tag, d.result), (1, Err(Win32Error::BROKEN_PIPE)));
    // Issued after the reader went: fails at once (the test above).
    let e = io.write(b"after".to_vec(), 2).expect_err("fails at issue");
    assert_eq!(e.error, Win32Error::NO_DATA);
    idle(&io);
    rec.assert_quiet();
}

#[test]
fn rule_3_a_tcp_send_larger_than_the_socket_buffers_completes_whole() {
    if !backend_here() {
        return;
    }
    let (server, mut peer) = tcp_pair();
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&server, None, cb).expect("create");
    let data: Vec<u8> = (0..BIG).map(|i| (i % 253) as u8).collect();
    let s = io.send(data.clone(), 1).expect("issued");
    assert!(s.completed_now.is_none());
    rec.assert_quiet();
    // Apart, for the reason `read_apart` gives.
    let reader = thread::spawn(move || {
        let mut got = vec![0u8; BIG];
        std::io::Read::read_exact(&mut peer, &mut got).expect("peer reads it all");
        got
    });
    assert_written_whole(&rec, reader, &data);
    idle(&io);
}

#[test]
fn rule_3_a_tcp_peer_reset_gives_wsaeconnreset() {
    if !backend_here() {
        return;
    }
    let l = tpio::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let peer = std::net::TcpStream::connect(addr).expect("connect");
    let (server, from) = l.accept_blocking().expect("accept");
    assert_eq!(from, peer.local_addr().expect("peer addr"));
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&server, None, cb).expect("create");
    io.recv(vec![0; 64], 1).expect("issued");
    rec.assert_quiet();
    linger_zero(&peer);
    drop(peer);
    let d = rec.next();
    assert_eq!(d.result, Err(Win32Error::WSAECONNRESET));
    assert_eq!((d.status().code(), d.bytes()), (10054, 0));
    idle(&io);
}

#[test]
fn rule_3_sends_after_a_reset_keep_failing_with_wsaeconnreset() {
    if !backend_here() {
        return;
    }
    let (server, peer) = tcp_pair();
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&server, None, cb).expect("create");
    // A receive waiting when the reset comes sees it.
    io.recv(vec![0; 8], 0).expect("recv issued");
    rec.assert_quiet();
    linger_zero(&peer);
    drop(peer);
    let d = rec.next();
    assert_eq!((d.tag, d.result), (0, Err(Win32Error::WSAECONNRESET)));
    // Linux says ECONNRESET once, then EPIPE; Windows says 10054 each time.
    for tag in 1..4u64 {
        let r = match io.send(b"x".to_vec(), tag) {
            Ok(s) => match s.completed_now {
                Some(d) => d.result,
                None => rec.next().result,
            },
            Err(e) => Err(e.error),
        };
        assert_eq!(
            r,
            Err(Win32Error::WSAECONNRESET),
            "send {tag} after the reset"
        );
    }
    idle(&io);
}

#[test]
fn rule_3_a_tcp_graceful_close_gives_success_with_0_bytes() {
    if !backend_here() {
        return;
    }
    let (server, mut peer) = tcp_pair();
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&server, None, cb).expect("create");
    io.send(b"hello".to_vec(), 1).expect("send");
    assert_eq!(rec.next().result, Ok(5));
    io.recv(vec![0; 64], 2).expect("recv");
    // Read what was sent first: closing with unread data would send a reset.
    let mut got = [0u8; 5];
    std::io::Read::read_exact(&mut peer, &mut got).expect("peer reads");
    assert_eq!(&got, b"hello");
    drop(peer);
    let d = rec.next();
    assert_eq!((d.tag, d.result), (2, Ok(0)));
    idle(&io);
}

// Gated: UnixStream exists in the facade on Unix only (std has no AF_UNIX
// on Windows).
#[cfg(unix)]
#[test]
fn rule_3_unix_stream_pair_send_and_recv() {
    if !backend_here() {
        return;
    }
    let (a, b) = tpio::UnixStream::pair().expect("pair");
    let (cba, reca) = recorder();
    let (cbb, recb) = recorder();
    let ioa = ThreadpoolIo::new(&a, None, cba).expect("a");
    let iob = ThreadpoolIo::new(&b, None, cbb).expect("b");
    iob.recv(vec![0; 16], 1).expect("recv");
    ioa.send(b"over".to_vec(), 2).expect("send");
    assert_eq!(reca.next().result, Ok(4));
    let d = recb.next();
    assert_eq!((d.result, &d.buf[..4]), (Ok(4), &b"over"[..]));
    idle(&ioa);
    idle(&iob);
}

#[test]
fn rule_3_udp_recv_from_reports_the_sender() {
    if !backend_here() {
        return;
    }
    let a = tpio::UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = tpio::UdpSocket::bind("127.0.0.1:0").expect("b");
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        a.local_addr().expect("a addr"),
        b.local_addr().expect("b addr"),
    );
    let (cba, reca) = recorder();
    let (cbb, recb) = recorder();
    let ioa = ThreadpoolIo::new(&a, None, cba).expect("a");
    let iob = ThreadpoolIo::new(&b, None, cbb).expect("b");
    iob.recv_from(vec![0; 32], 1).expect("recv_from");
    ioa.send_to(b"datagram".to_vec(), b_addr, 2)
        .expect("send_to");
    let sent = reca.next();
    assert_eq!((sent.result, sent.addr), (Ok(8), Some(b_addr)));
    let got = recb.next();
    assert_eq!((got.result, got.addr), (Ok(8), Some(a_addr)));
    assert_eq!(&got.buf[..8], b"datagram");
    idle(&ioa);
    idle(&iob);
}

/// Sends on the channel when dropped: tells the test the callback (and so
/// the object holding it) is gone.
struct DropSignal(mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn rule_5_close_with_a_read_outstanding_still_runs_its_callback_then_releases() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-close");
    let env = CallbackEnvironment::new().pool(&pool);
    let (tx, rx) = mpsc::channel();
    let (gone_tx, gone) = mpsc::channel();
    let signal = DropSignal(gone_tx);
    let io = ThreadpoolIo::new(&rd, Some(&env), move |_i, d: Done| {
        let _keep = &signal;
        let _ = tx.send(d);
    })
    .expect("create");
    io.read(vec![0; 16], 1).expect("issued");
    io.close(); // neither cancels nor waits
    assert_eq!(
        pool.stats().live_objects(),
        1,
        "not released: a read is outstanding"
    );
    assert_eq!(gone.recv_timeout(QUIET), Err(RecvTimeoutError::Timeout));
    write_pipe(&wr, b"late");
    let d = rx.recv_timeout(PATIENCE).expect("the callback still runs");
    assert_eq!((d.tag, d.result), (1, Ok(4)));
    assert_eq!(&d.buf[..4], b"late");
    // The object (and the callback it owns) goes once the callback returned.
    assert_eq!(gone.recv_timeout(PATIENCE), Ok(()));
    assert_eq!(pool.stats().objects_released, 1);
    assert_eq!(pool.stats().live_objects(), 0);
}

#[test]
fn rule_10_dropping_the_handle_with_a_read_in_flight_cancels_it_and_returns_the_buffer() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, None, cb).expect("create");
    let s = io.read(vec![7; 8], 1).expect("issued");
    drop(rd); // CloseHandle: the read is cancelled; the fd closes after it
    let d = rec.next();
    assert_eq!(
        (d.overlapped, d.result),
        (s.overlapped, Err(Win32Error::OPERATION_ABORTED))
    );
    assert_eq!(d.buf, vec![7; 8]);
    idle(&io);
}

#[test]
fn rule_4_wait_for_callbacks_true_stops_expecting_a_pending_read_and_frees_it_later() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-wait-true");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, Some(&env), cb).expect("create");
    io.read(vec![0; 8], 1).expect("issued");
    // Returns at once: the outstanding start is no longer expected.
    assert_eq!(io.wait_for_callbacks_timeout(true, PATIENCE), Ok(true));
    assert_eq!(io.counts().skipped, 1);
    // It never cancels in the kernel: the read still takes the data, and
    // its packet is dropped (the buffer freed) with no callback.
    write_pipe(&wr, b"gone");
    let deadline = std::time::Instant::now() + PATIENCE;
    while io.counts().skipped != 0 {
        assert!(std::time::Instant::now() < deadline, "packet never arrived");
        thread::yield_now();
    }
    rec.assert_none_now();
    assert_eq!(pool.stats().packets_skipped, 1);
    assert_eq!(pool.stats().callbacks_run, 0);
}

#[test]
fn rule_4_a_late_packet_after_wait_true_gets_no_callback_and_a_newer_read_completes() {
    if !backend_here() {
        return;
    }
    let (rd, wr) = tpio::pipe().expect("pipe");
    let pool = Pool::new("conformance-late-packet");
    let env = CallbackEnvironment::new().pool(&pool);
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&rd, Some(&env), cb).expect("create");
    io.read(vec![0; 8], 1).expect("old read");
    assert_eq!(io.wait_for_callbacks_timeout(true, PATIENCE), Ok(true));
    let newer = io.read(vec![0; 8], 2).expect("newer read");
    // The old read takes these bytes (reads of a pipe complete in order);
    // its packet arrives after wait(true): rule 4, no callback.
    write_pipe(&wr, b"old");
    let deadline = std::time::Instant::now() + PATIENCE;
    // Only the newer read is left in the kernel once the old one is over.
    while rd.in_flight() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the old read never ended"
        );
        thread::yield_now();
    }
    write_pipe(&wr, b"new");
    // Either the newer read's callback comes (rule 4 counts per operation),
    // or — kernel32 only, below — nothing comes and everything settles.
    let settled = |c: tpio::IoCounts| c.pending + c.queued + c.skipped + c.running == 0;
    let got = loop {
        match rec.rx.try_recv() {
            Ok((d, _)) => break Some(d),
            Err(_) if settled(io.counts()) && rd.in_flight() == 0 => {
                // A last look: the callback may have run just before.
                break rec.rx.try_recv().ok().map(|(d, _)| d);
            }
            Err(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "neither a callback nor settled: {:?}, {} in flight, {:?}",
                    io.counts(),
                    rd.in_flight(),
                    pool.stats()
                );
                thread::yield_now();
            }
        }
    };
    match got {
        Some(d) => {
            assert_eq!(
                (d.tag, d.overlapped, d.result),
                (2, newer.overlapped, Ok(3))
            );
            assert_eq!(
                &d.buf[..3],
                b"new",
                "the old read's bytes went to the old read"
            );
            idle(&io);
            assert_eq!(pool.stats().packets_skipped, 1);
            assert_eq!(pool.stats().callbacks_run, 1);
        }
        None if cfg!(windows) => {
            // kernel32 pairs packets with starts by count, not by operation
            // (Windows documents neither): the old read's late packet used up
            // the newer read's start, and the newer read's own packet found
            // none. tpio gives the late packet no callback and gives the
            // newer read up (memory leaked, counted), so nothing is left
            // pending (spec/kernel32.md).
            backend_behaviour("kernel32 pairs packets with starts by count");
            rec.assert_quiet();
            assert_eq!(pool.stats().packets_skipped, 2);
            assert_eq!(pool.stats().callbacks_run, 0);
            idle(&io);
        }
        None => panic!("rule 4: the newer read got no callback"),
    }
    assert_eq!(pool.stats().misuse_total(), 0);
}

#[test]
fn binding_a_handle_twice_is_invalid_parameter() {
    if !backend_here() {
        return;
    }
    let (rd, _wr) = tpio::pipe().expect("pipe");
    let _io = ThreadpoolIo::new(&rd, None, |_, _| {}).expect("first");
    let e = ThreadpoolIo::new(&rd, None, |_, _| {}).expect_err("second");
    assert_eq!(e, Win32Error::INVALID_PARAMETER);
}

// Gated: the io_uring/mio choice exists on Unix only; Windows has the
// test below.
#[cfg(unix)]
#[test]
fn the_backend_is_the_one_asked_for_else_io_uring_where_the_probe_allows() {
    if !backend_here() {
        return;
    }
    let b = tpio::Backend::process().expect("backend");
    let forced = std::env::var(tpio::BACKEND_ENV).ok();
    let expect = match forced.as_deref().and_then(tpio::BackendKind::parse) {
        Some(k) => k,
        None if cfg!(target_os = "linux") && tpio_uring_works() => tpio::BackendKind::Uring,
        None => tpio::BackendKind::Mio,
    };
    assert_eq!(b.kind(), expect, "why: {}", b.why());
    assert!(!b.why().is_empty());
}

#[cfg(target_os = "linux")]
fn tpio_uring_works() -> bool {
    tpio_uring::probe::cached().is_available()
}

#[cfg(all(unix, not(target_os = "linux")))]
fn tpio_uring_works() -> bool {
    false
}

#[cfg(windows)]
#[test]
fn the_backend_is_kernel32_on_windows() {
    if !backend_here() {
        return;
    }
    let b = tpio::Backend::process().expect("backend");
    assert_eq!(
        (b.kind(), b.name()),
        (tpio::BackendKind::Kernel32, "kernel32")
    );
    assert_eq!(tpio::backend_name().expect("name"), "kernel32");
    let e = tpio::Backend::new(tpio::BackendKind::Mio).expect_err("no mio on Windows");
    assert_eq!(e.code, Win32Error::NOT_SUPPORTED);
}

#[test]
fn rule_3_a_send_after_shutdown_of_sends_fails_at_issue_with_wsaeshutdown() {
    if !backend_here() {
        return;
    }
    let (server, mut peer) = tcp_pair();
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&server, None, cb).expect("create");
    server
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let e = io.send(b"late".to_vec(), 1).expect_err("fails at issue");
    assert_eq!(e.error, Win32Error::WSAESHUTDOWN);
    assert_eq!(server.send_blocking(b"late"), Err(Win32Error::WSAESHUTDOWN));
    let mut b = [0u8; 8];
    assert_eq!(
        std::io::Read::read(&mut peer, &mut b).expect("peer reads"),
        0,
        "the peer sees the end of the stream"
    );
    // Receives go on.
    io.recv(vec![0; 8], 2).expect("issued");
    std::io::Write::write_all(&mut peer, b"still").expect("peer writes");
    let d = rec.next();
    assert_eq!((d.tag, d.result), (2, Ok(5)));
    idle(&io);
    rec.assert_quiet();
}

/// A receive issued after `shutdown(Read)` fails at issue with 10058 on
/// every backend. One in flight at the shutdown is left to the OS: Linux
/// completes it with 0 bytes at once, kernel32 under Wine when the peer
/// closes (`spec/semantics.md`, rule 3).
#[test]
fn rule_3_a_receive_after_shutdown_of_receives_fails_at_issue_with_wsaeshutdown() {
    if !backend_here() {
        return;
    }
    let (server, mut peer) = tcp_pair();
    let (cb, rec) = recorder();
    let io = ThreadpoolIo::new(&server, None, cb).expect("create");
    server.shutdown(std::net::Shutdown::Read).expect("shutdown");
    let e = io.recv(vec![0; 8], 1).expect_err("fails at issue");
    assert_eq!(e.error, Win32Error::WSAESHUTDOWN);
    let mut b = [0u8; 8];
    assert_eq!(server.recv_blocking(&mut b), Err(Win32Error::WSAESHUTDOWN));
    // Sends go on.
    io.send(b"still".to_vec(), 2).expect("issued");
    let d = rec.next();
    assert_eq!((d.tag, d.result), (2, Ok(5)));
    std::io::Read::read_exact(&mut peer, &mut b[..5]).expect("peer reads");
    assert_eq!(&b[..5], b"still");
    idle(&io);
    rec.assert_quiet();
}

/// Rule 3: a write to a pipe whose reader is gone fails (232 at issue, 109
/// when pending) and raises no `SIGPIPE`, as `WriteFile` raises nothing: a
/// child process with `SIGPIPE` at its default action (a C host would
/// have it so; Rust binaries ignore it) makes both writes and must live.
/// Needs a kernel with `RWF_NOSIGNAL` (Linux 6.18+); elsewhere the gap is
/// documented (`spec/semantics.md`) and the test says it did not run.
#[cfg(target_os = "linux")]
#[test]
fn rule_3_a_pipe_write_to_a_gone_reader_raises_no_sigpipe() {
    const NAME: &str = "rule_3_a_pipe_write_to_a_gone_reader_raises_no_sigpipe";
    if !backend_here() {
        return;
    }
    if std::env::var_os("TPIO_SIGPIPE_CHILD").is_some() {
        // SAFETY: setting a signal's disposition to its default touches no
        // memory of ours; this child process exists for it.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let (rd, wr) = tpio::pipe().expect("pipe");
        drop(rd);
        let (cb, rec) = recorder();
        let io = ThreadpoolIo::new(&wr, None, cb).expect("create");
        match io.write(b"lost".to_vec(), 1) {
            Err(e) => assert_eq!(e.error, Win32Error::NO_DATA),
            // With io_uring's at-once tries off (`TPIO_URING_AT_ONCE=0`)
            // the write goes to the ring and fails there.
            Ok(_) => assert_eq!(rec.next().result, Err(Win32Error::BROKEN_PIPE)),
        }
        let (rd, wr) = tpio::pipe().expect("pipe");
        let (cb2, rec2) = recorder();
        let io2 = ThreadpoolIo::new(&wr, None, cb2).expect("create");
        io2.write(vec![7; BIG], 2).expect("issued");
        drop(rd);
        assert_eq!(rec2.next().result, Err(Win32Error::BROKEN_PIPE));
        idle(&io);
        idle(&io2);
        println!("child: no SIGPIPE");
        return;
    }
    if !tpio_uring::probe::nosignal_writes() {
        eprintln!("{NAME}: not run: this kernel has no RWF_NOSIGNAL (Linux 6.18+)");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("TPIO_SIGPIPE_CHILD", "1")
        .output()
        .expect("run the child");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("child: no SIGPIPE"),
        "the child died or failed: {:?}\n{said}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
