//! The core's driver contract on io_uring, end to end: TP_IO objects in a
//! pool, operations through `UringDriver`, callbacks with Win32 results.

mod common;

use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use tpio_core::driver::{
    cancel_io, AddrBuf, CancelScope, Driver, HandleKind, HandleOps, Issued, OpKind, RawHandle,
    Submission,
};
use tpio_core::{CallbackEnvironment, CallbackInstance, Completion, IoObject, Pool, Win32Error};
use tpio_uring::UringDriver;

struct Rig {
    _pool: Pool,
    io: IoObject,
    rx: std::sync::Mutex<mpsc::Receiver<(Completion, std::thread::ThreadId)>>,
    driver: UringDriver,
    ops: Arc<HandleOps>,
}

fn rig() -> Rig {
    let pool = Pool::new("tpio-uring-test");
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let io = IoObject::new(
        &CallbackEnvironment::new().pool(&pool),
        0,
        move |_i: &mut CallbackInstance<'_>, c: Completion| {
            let _ = tx.lock().unwrap().send((c, std::thread::current().id()));
        },
    );
    Rig {
        _pool: pool,
        io,
        rx: std::sync::Mutex::new(rx),
        // The ring path: these tests are about what comes back from the
        // ring (tests/at_once.rs covers the non-blocking path).
        driver: UringDriver::new(64).unwrap().with_at_once(false),
        ops: Arc::new(HandleOps::new()),
    }
}

impl Rig {
    /// start + submit; the buffers must outlive the callback.
    fn issue(
        &self,
        fd: i32,
        kind: HandleKind,
        op: OpKind,
        buf: &mut [u8],
        addr: *mut AddrBuf,
        ov: usize,
    ) {
        self.io.start().unwrap();
        let sub = Submission {
            handle: RawHandle(fd as u64),
            handle_kind: kind,
            kind: op,
            buf: buf.as_mut_ptr(),
            len: buf.len(),
            addr,
            overlapped: ov,
            ops: Arc::clone(&self.ops),
            thread: std::thread::current().id(),
            skip_on_success: false,
        };
        // SAFETY: every test keeps its buffers alive until the callback.
        let issued = unsafe { self.driver.submit(sub, self.io.target()) };
        assert_eq!(issued, Issued::Pending);
    }

    /// Asserts no callback runs within `d` (the operations pend).
    fn quiet(&self, d: Duration) {
        if let Ok(c) = self.rx.lock().unwrap().recv_timeout(d) {
            panic!("unexpected callback {c:?}");
        }
    }

    fn next(&self) -> Completion {
        let (c, thread) = self
            .rx
            .lock()
            .unwrap()
            .recv_timeout(TIMEOUT)
            .expect("no callback");
        assert_ne!(
            thread,
            std::thread::current().id(),
            "callbacks run on pool workers"
        );
        c
    }
}

#[test]
fn file_reads_at_offset_and_eof_map_to_win32() {
    if !uring_here() {
        return;
    }
    let data = pattern(1000);
    let f = TempFile::with(&data);
    let r = rig();
    let mut a = [0u8; 100];
    let mut b = [0u8; 100];
    r.issue(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(900) },
        &mut a,
        std::ptr::null_mut(),
        1,
    );
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (1, Win32Error::SUCCESS, 100)
    );
    assert_eq!(a[..], data[900..]);
    r.issue(
        f.fd(),
        HandleKind::File,
        OpKind::Read { offset: Some(1000) },
        &mut b,
        std::ptr::null_mut(),
        2,
    );
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (2, Win32Error::HANDLE_EOF, 0)
    );
    assert!(r.ops.is_empty());
    r.io.wait_for_callbacks(false).unwrap();
}

#[test]
fn cancel_io_ex_all_aborts_pending_pipe_reads_and_then_finds_nothing() {
    if !uring_here() {
        return;
    }
    let (rd, _wr) = pipe();
    let r = rig();
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    r.issue(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        OpKind::Read { offset: None },
        &mut a,
        std::ptr::null_mut(),
        10,
    );
    r.issue(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        OpKind::Read { offset: None },
        &mut b,
        std::ptr::null_mut(),
        11,
    );
    r.quiet(Duration::from_millis(50));
    assert_eq!(r.ops.len(), 2);
    cancel_io(&r.driver, &r.ops, CancelScope::All).unwrap();
    let mut got = [r.next(), r.next()];
    got.sort_by_key(|c| c.overlapped);
    for (c, ov) in got.iter().zip([10, 11]) {
        assert_eq!(
            (c.overlapped, c.status, c.bytes),
            (ov, Win32Error::OPERATION_ABORTED, 0)
        );
    }
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::All),
        Err(Win32Error::NOT_FOUND)
    );
    r.io.wait_for_callbacks(false).unwrap();
}

#[test]
fn pipe_read_issued_by_an_exited_thread_still_completes() {
    if !uring_here() {
        return;
    }
    let (rd, wr) = pipe();
    let r = Arc::new(rig());
    let buf = Arc::new(std::sync::Mutex::new([0u8; 8]));
    {
        let (r, buf) = (Arc::clone(&r), Arc::clone(&buf));
        let fd = rd.as_raw_fd();
        std::thread::spawn(move || {
            let mut b = buf.lock().unwrap();
            r.issue(
                fd,
                HandleKind::Pipe,
                OpKind::Read { offset: None },
                &mut b[..],
                std::ptr::null_mut(),
                5,
            );
        })
        .join()
        .unwrap();
    }
    r.quiet(Duration::from_millis(50));
    write_all(wr.as_raw_fd(), b"thread");
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (5, Win32Error::SUCCESS, 6)
    );
    assert_eq!(&buf.lock().unwrap()[..6], b"thread");
    // The writer gone, a pipe read reports ERROR_BROKEN_PIPE.
    drop(wr);
    let mut b2 = [0u8; 8];
    r.issue(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        OpKind::Read { offset: None },
        &mut b2,
        std::ptr::null_mut(),
        6,
    );
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (6, Win32Error::BROKEN_PIPE, 0)
    );
}

#[test]
fn udp_recv_from_fills_the_source_address() {
    if !uring_here() {
        return;
    }
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = rig();
    let mut buf = [0u8; 32];
    let mut addr = AddrBuf::default();
    r.issue(
        rx.as_raw_fd(),
        HandleKind::DatagramSocket,
        OpKind::RecvFrom,
        &mut buf,
        &mut addr,
        7,
    );
    tx.send_to(b"dgram", rx.local_addr().unwrap()).unwrap();
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (7, Win32Error::SUCCESS, 5)
    );
    assert_eq!(&buf[..5], b"dgram");
    assert_eq!(addr.len as usize, std::mem::size_of::<libc::sockaddr_in>());
    let port = u16::from_be_bytes([addr.bytes[2], addr.bytes[3]]);
    assert_eq!(port, tx.local_addr().unwrap().port());
}

#[test]
fn bad_handle_completes_with_invalid_handle() {
    if !uring_here() {
        return;
    }
    let r = rig();
    let mut buf = [0u8; 4];
    r.issue(
        1_000_000,
        HandleKind::File,
        OpKind::Read { offset: Some(0) },
        &mut buf,
        std::ptr::null_mut(),
        3,
    );
    let c = r.next();
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (3, Win32Error::INVALID_HANDLE, 0)
    );
}
