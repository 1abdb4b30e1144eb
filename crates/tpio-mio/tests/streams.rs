//! Pipes and stream sockets through `MioDriver`: at once when the data is
//! there, pending until readiness otherwise, one direction's operations in
//! issue order, 0-byte reads mapped by handle kind, and no per-descriptor
//! state left once nothing waits.
#![cfg(unix)]

mod common;

use std::os::fd::AsRawFd;

use common::*;
use tpio_core::driver::{cancel_io, CancelScope, HandleKind, Issued, OpKind};
use tpio_core::Win32Error;

const READ: OpKind = OpKind::Read { offset: None };
const WRITE: OpKind = OpKind::Write { offset: None };

#[test]
fn a_read_with_data_waiting_completes_at_once_and_sends_no_packet() {
    let (rd, wr) = pipe();
    let r = rig();
    write_all(wr.as_raw_fd(), b"ready");
    let mut buf = [0u8; 16];
    let issued = r.submit(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    assert_eq!(
        issued,
        Issued::CompletedNow {
            status: Win32Error::SUCCESS,
            bytes: 5
        }
    );
    assert_eq!(&buf[..5], b"ready");
    r.quiet();
    assert!(r.ops.is_empty(), "an at-once operation is never registered");
    assert_eq!(r.driver.stats().completed_at_once, 1);
    assert_eq!(r.driver.stats().registrations, 0);
    r.drained();
}

#[test]
fn a_pending_read_completes_when_data_arrives_and_its_registration_goes_with_its_handle() {
    let (rd, wr) = pipe();
    let r = rig();
    let mut buf = [0u8; 16];
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    assert_eq!(
        r.ops.len(),
        1,
        "registered in the handle's table while pending"
    );
    assert_eq!(r.driver.stats().registered_now, 1);
    r.quiet();
    write_all(wr.as_raw_fd(), b"late");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 4));
    assert_eq!(&buf[..4], b"late");
    r.drained();
    let st = r.driver.stats();
    assert_eq!((st.registrations, st.waited_for_readiness), (1, 1));
    r.registration_kept_until_closing(rd.as_raw_fd());
}

#[test]
fn a_read_with_nothing_arrived_since_the_last_would_block_waits_without_a_try() {
    let (rd, wr) = pipe();
    let r = rig();
    let fd = rd.as_raw_fd();
    let (mut a, mut b, mut c) = ([0u8; 8], [0u8; 8], [0u8; 8]);
    r.pending(fd, HandleKind::Pipe, READ, &mut a, std::ptr::null_mut(), 1);
    write_all(wr.as_raw_fd(), b"one");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 3));
    // The event's try took "one" and did not try again: the pipe may still
    // be readable as far as the driver knows, so the next read is tried.
    r.pending(fd, HandleKind::Pipe, READ, &mut b, std::ptr::null_mut(), 2);
    assert_eq!(r.driver.stats().tries_skipped, 0, "tried: it would block");
    write_all(wr.as_raw_fd(), b"two");
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 3));
    // Read 3 is tried, would block, and waits; cancelled, it leaves the
    // queue empty with no event since that "would block": read 4 waits for
    // the next edge without a try.
    r.pending(fd, HandleKind::Pipe, READ, &mut c, std::ptr::null_mut(), 3);
    assert_eq!(
        cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(3)),
        Ok(())
    );
    assert_eq!(r.next3(), (3, Win32Error::OPERATION_ABORTED, 0));
    let mut d = [0u8; 8];
    r.pending(fd, HandleKind::Pipe, READ, &mut d, std::ptr::null_mut(), 4);
    let st = r.driver.stats();
    assert_eq!(st.tries_skipped, 1, "read 4 went straight to the queue");
    assert_eq!(
        st.registrations, 1,
        "one registration for the handle's life"
    );
    r.quiet();
    write_all(wr.as_raw_fd(), b"four");
    assert_eq!(r.next3(), (4, Win32Error::SUCCESS, 4));
    assert_eq!(&d[..4], b"four");
    r.drained();
    r.registration_kept_until_closing(fd);
}

#[test]
fn pending_reads_on_one_pipe_complete_in_issue_order() {
    let (rd, wr) = pipe();
    let r = rig();
    let mut bufs = [[0u8; 4]; 3];
    for (i, b) in bufs.iter_mut().enumerate() {
        r.pending(
            rd.as_raw_fd(),
            HandleKind::Pipe,
            READ,
            b,
            std::ptr::null_mut(),
            10 + i,
        );
    }
    write_all(wr.as_raw_fd(), b"AAAABBBBCCCC");
    let mut got = [r.next3(), r.next3(), r.next3()];
    got.sort();
    assert_eq!(
        got,
        [
            (10, Win32Error::SUCCESS, 4),
            (11, Win32Error::SUCCESS, 4),
            (12, Win32Error::SUCCESS, 4)
        ]
    );
    assert_eq!(bufs, [*b"AAAA", *b"BBBB", *b"CCCC"]);
    r.drained();
}

#[test]
fn a_new_read_never_overtakes_one_already_waiting() {
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    let mut first = [0u8; 4];
    let mut second = [0u8; 4];
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        READ,
        &mut first,
        std::ptr::null_mut(),
        1,
    );
    // Data arrives; the second read is issued at once after it. Trying it
    // at once would hand it the bytes the first read waits for.
    write_all(b.as_raw_fd(), b"1111");
    let issued = r.submit(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        READ,
        &mut second,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(issued, Issued::Pending, "queued behind the waiting read");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 4));
    assert_eq!(&first, b"1111");
    r.quiet();
    write_all(b.as_raw_fd(), b"2222");
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 4));
    assert_eq!(&second, b"2222");
    r.drained();
}

#[test]
fn a_write_larger_than_the_pipe_completes_whole_and_in_order_with_the_next() {
    let (rd, wr) = pipe();
    let r = rig();
    let mut big = pattern(1 << 20);
    let mut small = *b"tail";
    r.pending(
        wr.as_raw_fd(),
        HandleKind::Pipe,
        WRITE,
        &mut big,
        std::ptr::null_mut(),
        1,
    );
    assert!(
        is_nonblocking(wr.as_raw_fd()),
        "pipes are made non-blocking"
    );
    // Queued behind the big write, though there may be room by now.
    r.pending(
        wr.as_raw_fd(),
        HandleKind::Pipe,
        WRITE,
        &mut small,
        std::ptr::null_mut(),
        2,
    );
    let got = read_exact(rd.as_raw_fd(), (1 << 20) + 4);
    assert_eq!(got[..1 << 20], pattern(1 << 20)[..]);
    assert_eq!(&got[1 << 20..], b"tail");
    let mut done = [r.next3(), r.next3()];
    done.sort();
    assert_eq!(
        done,
        [
            (1, Win32Error::SUCCESS, 1 << 20),
            (2, Win32Error::SUCCESS, 4)
        ]
    );
    r.drained();
}

#[test]
fn a_zero_byte_read_is_broken_pipe_on_a_pipe_and_success_on_a_socket() {
    let r = rig();
    // Pending, then the writer goes: 109.
    let (rd, wr) = pipe();
    let mut buf = [0u8; 8];
    r.pending(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    drop(wr);
    assert_eq!(r.next3(), (1, Win32Error::BROKEN_PIPE, 0));
    // At once, with the writer already gone: fails at once with 109.
    let issued = r.submit(
        rd.as_raw_fd(),
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(
        issued,
        Issued::CompletedNow {
            status: Win32Error::BROKEN_PIPE,
            bytes: 0
        }
    );
    // A stream socket's peer closing is a graceful close: success, 0 bytes.
    let (a, b) = socketpair(libc::SOCK_STREAM);
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        3,
    );
    drop(b);
    assert_eq!(r.next3(), (3, Win32Error::SUCCESS, 0));
    r.drained();
}

/// `ERROR_NO_DATA` (232) at issue, not the pending write's
/// `ERROR_BROKEN_PIPE` (`tpio_core::driver::issue_result`).
#[test]
fn writing_to_a_pipe_with_no_reader_fails_at_once_with_no_data() {
    let (rd, wr) = pipe();
    drop(rd);
    let r = rig();
    let mut data = *b"lost";
    let issued = r.submit(
        wr.as_raw_fd(),
        HandleKind::Pipe,
        WRITE,
        &mut data,
        std::ptr::null_mut(),
        1,
    );
    assert_eq!(
        issued,
        Issued::CompletedNow {
            status: Win32Error::NO_DATA,
            bytes: 0
        }
    );
    r.drained();
}

#[test]
fn reads_and_writes_wait_on_one_socket_at_the_same_time() {
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    // Fill a's send buffer so a write waits, while a read waits too.
    let mut rbuf = [0u8; 8];
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        READ,
        &mut rbuf,
        std::ptr::null_mut(),
        1,
    );
    let mut big = pattern(4 << 20);
    r.pending(
        a.as_raw_fd(),
        HandleKind::StreamSocket,
        WRITE,
        &mut big,
        std::ptr::null_mut(),
        2,
    );
    assert!(
        !is_nonblocking(a.as_raw_fd()),
        "sockets keep their mode: MSG_DONTWAIT per call"
    );
    write_all(b.as_raw_fd(), b"hi");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 2));
    let got = read_exact(b.as_raw_fd(), 4 << 20);
    assert!(
        got == pattern(4 << 20),
        "the write's bytes arrive whole and in order"
    );
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 4 << 20));
    r.drained();
    r.registration_kept_until_closing(a.as_raw_fd());
}

#[test]
fn a_reused_descriptor_number_starts_clean() {
    reused_number(true);
}

#[test]
fn a_reused_descriptor_number_of_another_handle_starts_clean_without_closing() {
    reused_number(false);
}

/// A read completes on a pipe; then the same number names another pipe
/// (dup2 swaps it in place, so no other test can take the number
/// meanwhile). With `closing`, the handle said it closed (the facade's
/// way); without, a user of the raw driver closed it without a word and
/// the new pipe comes with another handle (its own HandleOps). Either way
/// the old registration went with the old pipe, and the driver must
/// register the new one.
fn reused_number(closing: bool) {
    let r = rig();
    let (rd, wr) = pipe();
    let fd = rd.as_raw_fd();
    let mut buf = [0u8; 8];
    r.pending(
        fd,
        HandleKind::Pipe,
        READ,
        &mut buf,
        std::ptr::null_mut(),
        1,
    );
    write_all(wr.as_raw_fd(), b"one");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 3));
    let ops = if closing {
        r.closing(fd);
        std::sync::Arc::clone(&r.ops)
    } else {
        std::sync::Arc::new(tpio_core::driver::HandleOps::new())
    };
    let (rd2, wr2) = pipe();
    // SAFETY: both descriptors are open and ours; `fd` stays owned by `rd`.
    assert_eq!(unsafe { libc::dup2(rd2.as_raw_fd(), fd) }, fd);
    drop((rd2, wr));
    let mut buf2 = [0u8; 8];
    let issued = r.submit_with_ops(
        &ops,
        fd,
        HandleKind::Pipe,
        READ,
        &mut buf2,
        std::ptr::null_mut(),
        2,
    );
    assert_eq!(issued, Issued::Pending);
    r.quiet();
    write_all(wr2.as_raw_fd(), b"two");
    assert_eq!(r.next3(), (2, Win32Error::SUCCESS, 3));
    assert_eq!(&buf2[..3], b"two");
    assert_eq!(r.driver.stats().registrations, 2);
    r.drained();
    r.registration_kept_until_closing(fd);
    drop(rd);
}

/// A registration made by the poller thread (the test thread issued) moves
/// to a pool worker's own poll when the worker issues the next wait; the
/// same worker's later waits find it there and register nothing (it stays
/// the same handle's registration after the move), and it moves again only
/// when the other worker issues.
#[test]
fn a_registration_moves_to_the_issuing_workers_poll_once() {
    let (rd, wr) = pipe();
    let r = std::sync::Arc::new(rig());
    let fd = rd.as_raw_fd();
    let mut first = [0u8; 8];
    r.pending(
        fd,
        HandleKind::Pipe,
        READ,
        &mut first,
        std::ptr::null_mut(),
        1,
    );
    write_all(wr.as_raw_fd(), b"a");
    assert_eq!(r.next3(), (1, Win32Error::SUCCESS, 1));
    assert_eq!(r.driver.stats().registrations, 1);
    // Reads 2..=4, each issued by a pool worker after the one before has
    // completed; the buffers live as long as the test.
    let bufs: &'static mut [[u8; 8]; 3] = Box::leak(Box::new([[0u8; 8]; 3]));
    let mut issuers = Vec::new();
    for (i, buf) in bufs.iter_mut().enumerate() {
        let ov = i + 2;
        let (r2, ptr) = (std::sync::Arc::clone(&r), buf.as_mut_ptr() as usize);
        let (tx, rx) = std::sync::mpsc::channel();
        r.pool.submit_callback(move |_| {
            // SAFETY: a leaked 8-byte buffer, used by this read alone.
            let buf = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, 8) };
            r2.pending(fd, HandleKind::Pipe, READ, buf, std::ptr::null_mut(), ov);
            let _ = tx.send(std::thread::current().id());
        });
        issuers.push(rx.recv_timeout(TIMEOUT).expect("issued"));
        write_all(wr.as_raw_fd(), b"b");
        assert_eq!(r.next3(), (ov, Win32Error::SUCCESS, 1));
    }
    // Which worker takes each callback is the pool's choice: one move to
    // the first issuer, then one each time the issuing worker changes.
    let changes = issuers.windows(2).filter(|w| w[0] != w[1]).count();
    let st = r.driver.stats();
    assert_eq!(
        st.registrations,
        2 + changes as u64,
        "made once, moved to each new issuing worker, not made again per wait: {st:?}"
    );
    r.drained();
    r.registration_kept_until_closing(fd);
}
