//! The "at once" path of `UringDriver`: what completes during `submit`
//! (`CompletedNow`), what goes to the ring (`Pending`), and that an
//! operation never overtakes one of its direction already in flight.
#![cfg(target_os = "linux")]

mod common;

use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use tpio_core::driver::{
    AddrBuf, Driver, HandleKind, HandleOps, Issued, OpKind, RawHandle, Submission,
};
use tpio_core::{CallbackEnvironment, CallbackInstance, Completion, IoObject, Pool, Win32Error};
use tpio_uring::UringDriver;

struct Rig {
    _pool: Pool,
    io: IoObject,
    rx: mpsc::Receiver<Completion>,
    driver: UringDriver,
    ops: Arc<HandleOps>,
}

fn rig() -> Rig {
    let pool = Pool::new("tpio-uring-at-once");
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let io = IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |_i: &mut CallbackInstance<'_>, c: Completion| {
            let _ = tx.lock().unwrap().send(c);
        },
    );
    Rig {
        _pool: pool,
        io,
        rx,
        driver: UringDriver::new(16).unwrap().with_at_once(true),
        ops: Arc::new(HandleOps::new()),
    }
}

impl Rig {
    /// Submits (without `start`: these tests look at `Issued` only, and
    /// start the object just for the operations that go `Pending`).
    fn submit(&self, fd: i32, kind: HandleKind, op: OpKind, buf: &mut [u8], ov: usize) -> Issued {
        self.io.start().unwrap();
        let sub = Submission {
            handle: RawHandle(fd as u64),
            handle_kind: kind,
            kind: op,
            buf: buf.as_mut_ptr(),
            len: buf.len(),
            addr: std::ptr::null_mut::<AddrBuf>(),
            overlapped: ov,
            ops: Arc::clone(&self.ops),
            thread: std::thread::current().id(),
            skip_on_success: false,
        };
        // SAFETY: every test keeps its buffers alive until the operation
        // is over (callback received, or completed at once).
        let issued = unsafe { self.driver.submit(sub, self.io.target()) };
        if issued != Issued::Pending {
            self.io.cancel().unwrap(); // no packet: balance the start
        }
        issued
    }

    fn next(&self) -> Completion {
        self.rx.recv_timeout(TIMEOUT).expect("no callback")
    }
}

#[test]
fn a_cached_file_read_completes_at_once_and_end_of_file_goes_to_the_ring() {
    if !uring_here() {
        return;
    }
    let data = pattern(4096);
    let f = TempFile::with(&data);
    let r = rig();
    let mut a = [0u8; 100];
    let got = r.submit(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(10) },
        &mut a,
        1,
    );
    assert_eq!(
        got,
        Issued::CompletedNow {
            status: Win32Error::SUCCESS,
            bytes: 100
        }
    );
    assert_eq!(a[..], data[10..110]);
    let mut b = [0u8; 8];
    let got = r.submit(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(4096) },
        &mut b,
        2,
    );
    // End of file comes as a completion (as on mio), not as a failure now.
    assert_eq!(got, Issued::Pending);
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (2, Win32Error::HANDLE_EOF, 0)
    );
    assert!(r.ops.is_empty(), "nothing left in flight");
    r.io.wait_for_callbacks(false).unwrap();
}

#[test]
fn an_empty_pipe_goes_to_the_ring_and_a_second_read_does_not_overtake_it() {
    if !uring_here() {
        return;
    }
    let (rd, wr) = pipe();
    let r = rig();
    let mut a = [0u8; 4];
    let mut b = [0u8; 4];
    let fd = rd.as_raw_fd();
    let read = OpKind::Read { offset: None };
    assert_eq!(
        r.submit(fd, HandleKind::Pipe, read, &mut a, 1),
        Issued::Pending
    );
    // Data arrives after the first read went to the ring but before the
    // second is issued: the second must still queue behind the first.
    write_all(wr.as_raw_fd(), b"abcdefgh");
    assert_eq!(
        r.submit(fd, HandleKind::Pipe, read, &mut b, 2),
        Issued::Pending
    );
    let mut got = [r.next(), r.next()];
    got.sort_by_key(|c| c.overlapped);
    assert_eq!((got[0].status, got[0].bytes), (Win32Error::SUCCESS, 4));
    assert_eq!((got[1].status, got[1].bytes), (Win32Error::SUCCESS, 4));
    assert_eq!(&a, b"abcd", "the first read gets the first bytes");
    assert_eq!(&b, b"efgh");
    // Nothing in flight now, data waiting: at once.
    write_all(wr.as_raw_fd(), b"xy");
    let mut c = [0u8; 4];
    assert_eq!(
        r.submit(fd, HandleKind::Pipe, read, &mut c, 3),
        Issued::CompletedNow {
            status: Win32Error::SUCCESS,
            bytes: 2
        }
    );
    assert_eq!(&c[..2], b"xy");
    r.io.wait_for_callbacks(false).unwrap();
}

#[test]
fn a_write_is_not_held_back_by_a_pending_read_on_the_same_socket() {
    if !uring_here() {
        return;
    }
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    let mut rbuf = [0u8; 8];
    let mut wbuf = *b"ping";
    let fd = a.as_raw_fd();
    let rd = OpKind::Read { offset: None };
    let wr = OpKind::Write { offset: None };
    assert_eq!(
        r.submit(fd, HandleKind::StreamSocket, rd, &mut rbuf, 1),
        Issued::Pending
    );
    assert_eq!(
        r.submit(fd, HandleKind::StreamSocket, wr, &mut wbuf, 2),
        Issued::CompletedNow {
            status: Win32Error::SUCCESS,
            bytes: 4
        }
    );
    write_all(b.as_raw_fd(), b"pong");
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (1, Win32Error::SUCCESS, 4)
    );
    assert_eq!(&rbuf[..4], b"pong");
    r.io.wait_for_callbacks(false).unwrap();
}

#[test]
fn a_bad_descriptor_fails_at_once_with_invalid_handle() {
    if !uring_here() {
        return;
    }
    let r = rig();
    let mut buf = [0u8; 4];
    let got = r.submit(
        1_000_000,
        HandleKind::File,
        OpKind::Read { offset: Some(0) },
        &mut buf,
        1,
    );
    assert_eq!(
        got,
        Issued::CompletedNow {
            status: Win32Error::INVALID_HANDLE,
            bytes: 0
        }
    );
    assert!(r.rx.recv_timeout(Duration::from_millis(100)).is_err());
}
