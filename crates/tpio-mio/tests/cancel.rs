//! Cancellation through `MioDriver` (rule 6): by OVERLAPPED, by handle and
//! by issuing thread; 995 with 0 bytes for what had not finished; the
//! others untouched; a file operation that has not started can be
//! cancelled, a running one completes normally; `cancel` never waits.
#![cfg(unix)]

mod common;

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use tpio_core::driver::{cancel_io, CancelScope, Driver, HandleKind, Issued, OpKind};
use tpio_core::Win32Error;
use tpio_mio::MioDriver;

const READ: OpKind = OpKind::Read { offset: None };

#[test]
fn cancel_by_overlapped_gives_995_and_0_bytes_and_leaves_the_other() {
    let (rd, wr) = pipe();
    let r = rig();
    let mut a = [1u8; 8];
    let mut b = [2u8; 8];
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut a,
        std::ptr::null_mut(),
        1,
    );
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut b,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(1)),
        Ok(())
    );
    assert_eq!(r.next3(), (1, Win32Error::OPERATION_ABORTED, 0));
    assert_eq!(a, [1u8; 8], "a cancelled read moved no data");
    r.quiet();
    assert_eq!(r.ops.len(), 1);
    // Nothing left to cancel under that OVERLAPPED.
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(1)),
        Err(Win32Error::NOT_FOUND)
    );
    write_all(wr.as_raw_fd(), b"data");
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 4));
    assert_eq!(&b[..4], b"data");
    r.drained();
    assert_eq!(r.driver.stats().cancelled, 1);
    r.registration_kept_until_closing(rd.as_raw_fd());
}

#[test]
fn cancelling_the_middle_read_keeps_the_order_of_the_others() {
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    let mut bufs = [[0u8; 4]; 3];
    for (i, buf) in bufs.iter_mut().enumerate() {
        r.pending(
            a.as_raw_fd(),
            HandleKind::StreamSocket,
            READ,
            buf,
            std::ptr::null_mut(),
            1 + i,
        );
    }
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(2)),
        Ok(())
    );
    assert_eq!(r.next3(), (2, Win32Error::OPERATION_ABORTED, 0));
    write_all(b.as_raw_fd(), b"firstlst");
    let mut got = [r.next3(), r.next3()];
    got.sort();
    assert_eq!(
        got,
        [(1, Win32Error::SUCCESS, 4), (3, Win32Error::SUCCESS, 4)]
    );
    assert_eq!((&bufs[0], &bufs[2]), (b"firs", b"tlst"));
    r.drained();
}

#[test]
fn cancel_all_on_a_handle_and_cancel_by_thread() {
    let (rd, _wr) = pipe();
    let r = rig();
    let mut mine = [0u8; 4];
    let mut theirs = [0u8; 4];
    let mut extra = [0u8; 4];
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut mine,
        std::ptr::null_mut(),
        1,
    );
    let other = std::thread::scope(|s| {
        s.spawn(|| {
            r.pending(
                rd.as_raw_fd(),
                HandleKind::Pipe,
                READ,
                &mut theirs,
                std::ptr::null_mut(),
                2,
            );
            std::thread::current().id()
        })
        .join()
        .expect("thread")
    });
    // CancelIo from the other thread reaches its operation only.
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::Thread(other)),
        Ok(())
    );
    assert_eq!(r.next3(), (2, Win32Error::OPERATION_ABORTED, 0));
    r.quiet();
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut extra,
        std::ptr::null_mut(),
        3,
    );
    // CancelIoEx(h, NULL): everything on the handle.
    assert_eq!(cancel_io(&r.driver, &r.ops, CancelScope::All), Ok(()));
    let mut got = [r.next3(), r.next3()];
    got.sort();
    assert_eq!(
        got,
        [
            (1, Win32Error::OPERATION_ABORTED, 0),
            (3, Win32Error::OPERATION_ABORTED, 0)
        ]
    );
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::All),
        Err(Win32Error::NOT_FOUND)
    );
    r.drained();
}

#[test]
fn a_queued_file_operation_is_cancelled_a_running_one_completes_and_cancel_never_waits() {
    let fifo = Fifo::new();
    let r = rig_with(MioDriver::with_file_workers(1).expect("driver"));
    let mut running = [0u8; 8];
    let mut queued = [0u8; 8];
    // The one worker blocks in read(2) on the FIFO until the test writes.
    r.pending(
        fifo.fd(),
        HandleKind::File,
        READ,
        &mut running,
        std::ptr::null_mut(),
        1,
    );
    wait_until("the worker to take the first read", || {
        r.driver.stats().file_running == 1
    });
    r.pending(
        fifo.fd(),
        HandleKind::File,
        READ,
        &mut queued,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(r.driver.stats().file_queued, 1);
    // Cancel both, from another thread: it must return while the running
    // read is still blocked (a cancel that waited would never return here).
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(cancel_io(&r.driver, &r.ops, CancelScope::All));
        });
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(Ok(())), "cancel returned");
    });
    assert_eq!(r.next3(), (2, Win32Error::OPERATION_ABORTED, 0));
    r.quiet();
    assert_eq!(r.ops.len(), 1, "the running read is still in flight");
    write_all(fifo.fd(), b"finish");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 6));
    assert_eq!(&running[..6], b"finish");
    r.drained();
}

#[test]
fn a_cancel_for_an_operation_already_delivered_does_nothing() {
    let (rd, wr) = pipe();
    let r = rig();
    let mut buf = [0u8; 4];
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    let keys = r.ops.select(CancelScope::All).expect("one key");
    write_all(wr.as_raw_fd(), b"done");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 4));
    r.driver.cancel(&keys); // stale key: no second packet
    r.quiet();
    r.drained();
    assert_eq!(r.driver.stats().cancelled, 0);
}

#[test]
fn cancel_racing_completion_gives_exactly_one_packet_each_time() {
    let r = rig();
    for i in 0..200usize {
        let (a, b) = socketpair(libc::SOCK_STREAM);
        let mut buf = [0u8; 4];
        let issued = r.submit(
            a.as_raw_fd(),
            HandleKind::StreamSocket,
            READ,
            &mut buf,
            std::ptr::null_mut(),
            i,
        );
        assert_eq!(issued, Issued::Pending);
        std::thread::scope(|s| {
            s.spawn(|| write_all(b.as_raw_fd(), b"race"));
            let _ = cancel_io(&r.driver, &r.ops, CancelScope::All);
        });
        let (ov, status, bytes) = r.next3();
        assert_eq!(ov, i);
        match status {
            Win32Error::SUCCESS => assert_eq!((bytes, &buf), (4, b"race")),
            Win32Error::OPERATION_ABORTED => assert_eq!((bytes, &buf), (0, &[0u8; 4])),
            other => panic!("unexpected status {other:?}"),
        }
        r.drained();
    }
    assert!(r.rx.lock().unwrap().try_recv().is_err(), "no extra packet");
}

#[test]
fn dropping_the_driver_delivers_995_to_what_still_waits() {
    let (rd, _wr) = pipe();
    let r = rig();
    let mut buf = [0u8; 4];
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        9,
    );
    let Rig {
        io,
        driver,
        ops,
        rx,
        pool: _pool,
    } = r;
    drop(driver);
    let (c, _) = rx.lock().unwrap().recv_timeout(TIMEOUT).expect("packet");
    assert_eq!(
        (c.overlapped, c.status, c.bytes),
        (9, Win32Error::OPERATION_ABORTED, 0)
    );
    assert!(ops.is_empty());
    assert_eq!(
        io.wait_for_callbacks_timeout(false, Duration::from_secs(20)),
        Ok(true)
    );
}

#[test]
fn a_partly_sent_write_cancelled_reports_995_and_0_bytes_and_the_next_write_follows_its_part() {
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    let mut big = pattern(8 << 20);
    let mut next = *b"NEXT";
    let write = OpKind::Write { offset: None };
    // Far more than the socket buffers hold: part goes at once, the rest waits.
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        write,
        &mut big,
        std::ptr::null_mut(),
        1,
    );
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        write,
        &mut next,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(1)),
        Ok(())
    );
    assert_eq!(r.next3(), (1, Win32Error::OPERATION_ABORTED, 0));
    // The peer gets a start of the big write, then the next write whole.
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    while !got.ends_with(b"NEXT") {
        // SAFETY: `chunk` is a live, writable buffer of its length.
        let n = unsafe { libc::read(b.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        assert!(n > 0, "read: {}", std::io::Error::last_os_error());
        got.extend_from_slice(&chunk[..n as usize]);
        assert!(got.len() <= (8 << 20) + 4, "the next write never came");
    }
    let sent = got.len() - 4;
    assert!(
        sent > 0 && sent < 8 << 20,
        "part of the big write was sent: {sent}"
    );
    assert!(
        got[..sent] == pattern(8 << 20)[..sent],
        "its start, in order"
    );
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 4));
    r.drained();
}
