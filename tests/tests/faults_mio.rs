//! Faults injected into the mio driver at its system-call boundaries
//! (`tpio_mio::faults`, cargo feature `fault-injection`, enabled for this
//! package only) — the non-blocking try and the registration with a poll —
//! and the faults real I/O produces on its own (`fault_rig`: a handle closed
//! with operations pending, a peer that resets, a callback that panics).
//! Each test shows the outcome `spec/faults.md` promises and that nothing is
//! lost, leaked or freed early (see `faults_uring.rs`, whose scenarios these
//! mirror where the mio driver has the same boundary).
//!
//! One plan is armed at a time in a process, so every test here arms one
//! (even an empty one): they run one at a time, each on a mio backend of
//! its own made after arming.
#![cfg(unix)]

mod fault_rig;
mod support;

use std::sync::{mpsc, Mutex};

use fault_rig::*;
use support::*;
use tpio::{BackendKind, OverlappedHandle, Win32Error};
use tpio_mio::faults::{Faults, FOREVER};

const MIO: BackendKind = BackendKind::Mio;

/// "Would block" from the try at issue, with the data already there: the
/// operation waits for readiness (reported at once: the descriptor is
/// ready when it is registered), is tried again and completes; the user
/// sees no error.
#[test]
fn fault_try_eagain_is_back_pressure() {
    let faults = Faults::arm();
    let Some(r) = rig(MIO, "fault-mio-eagain") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    raw_write(&wr, b"here");
    faults.try_errno(libc::EAGAIN, 1);
    let (b, p) = buffer(8, 0);
    io.read(b, 1).expect("no error: back-pressure");
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..4]), (1, Ok(4), &b"here"[..]));
    assert_eq!(d.buf.as_ptr() as usize, p);
    assert_eq!(faults.hits().try_now, 1);
    settled(&r.pool, io, &rx, &rd);
}

/// A descriptor the poll cannot take (`ENOSPC`: epoll's limit on watches;
/// `ENOMEM`): the issue fails at once with `ERROR_NOT_ENOUGH_MEMORY` (8),
/// its buffer back, no callback, nothing left registered or in flight; the
/// next issue registers and completes.
#[test]
fn fault_registration_enospc_or_enomem_fails_the_issue_now_with_8() {
    let faults = Faults::arm();
    let Some(r) = rig(MIO, "fault-mio-register") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    for (tag, errno) in [(1, libc::ENOSPC), (2, libc::ENOMEM)] {
        faults.register_errno(errno, 1);
        let (b, p) = buffer(8, tag as u8);
        let e = io.read(b, tag).expect_err("failed now");
        assert_eq!(e.error, Win32Error::NOT_ENOUGH_MEMORY, "errno {errno}");
        assert_eq!(e.buf.as_ptr() as usize, p);
        assert_eq!(rd.in_flight(), 0);
        assert_eq!(io.counts(), tpio::IoCounts::default());
    }
    assert_eq!(faults.hits().register, 2);
    assert!(rx.recv_timeout(QUIET).is_err(), "rule 2: no callback");
    io.read(vec![0; 8], 3).expect("registers now");
    raw_write(&wr, b"ok");
    let d = next(&rx);
    assert_eq!((d.tag, d.result), (3, Ok(2)));
    settled(&r.pool, io, &rx, &rd);
}

/// Registrations that keep failing: every issue that needs one fails at
/// once with 8 — from a plain thread (the poller's poll) and from a pool
/// worker (its own poll) — never a hang; an issue that finishes at once
/// needs no registration and still works. Once the fault ends, issues
/// register and complete.
#[test]
fn fault_registration_that_persists_fails_every_issue_now_with_8_and_never_hangs() {
    let faults = Faults::arm();
    let Some(r) = rig(MIO, "fault-mio-register-persists") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (rd2, _wr2) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io2, rx2) = channel_io(&rd2, &r.env, None);
    let io2c = io2.clone();
    let (from_worker_tx, from_worker) = mpsc::channel();
    let from_worker_tx = Mutex::new(from_worker_tx);
    let then: Then = Box::new(move |d, _io| {
        if d.tag == 10 {
            let e = io2c.read(vec![0; 8], 11).map(|_| ()).map_err(|e| e.error);
            let _ = from_worker_tx.lock().map(|t| t.send(e));
        }
    });
    let (io, rx) = channel_io(&rd, &r.env, Some(then));
    faults.register_errno(libc::ENOMEM, FOREVER);
    for tag in 1..=5 {
        let e = io.read(vec![0; 8], tag).expect_err("failed now");
        assert_eq!(e.error, Win32Error::NOT_ENOUGH_MEMORY);
    }
    // Done at once (data there): no registration; its callback issues on
    // the worker, which cannot register either.
    raw_write(&wr, b"at once");
    io.read(vec![0; 16], 10).expect("done at once");
    assert_eq!(next(&rx).result, Ok(7));
    assert_eq!(
        from_worker.recv_timeout(PATIENCE).expect("issued"),
        Err(Win32Error::NOT_ENOUGH_MEMORY)
    );
    assert!(faults.hits().register >= 6);
    faults.clear();
    io.read(vec![0; 8], 20).expect("registers now");
    raw_write(&wr, b"end");
    let d = next(&rx);
    assert_eq!((d.tag, d.result), (20, Ok(3)));
    settled(&r.pool, io, &rx, &rd);
    assert!(rx2.try_recv().is_err());
    settled(&r.pool, io2, &rx2, &rd2);
}

/// An errno the map does not know, from the try at issue: the issue fails
/// at once with `ERROR_GEN_FAILURE` (31), no callback, the buffer back, the
/// data untouched for the next read.
#[test]
fn fault_unknown_errno_from_the_at_once_try_fails_now_with_31_and_no_callback() {
    let unknown = libc::ENOTRECOVERABLE;
    assert_eq!(
        tpio_core::errno_map::lookup(unknown),
        None,
        "pick another errno"
    );
    let faults = Faults::arm();
    let Some(r) = rig(MIO, "fault-mio-unknown-try") else {
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
    assert!(rx.recv_timeout(QUIET).is_err(), "rule 2: no callback");
    io.read(vec![0; 8], 2).expect("issued");
    let d = next(&rx);
    assert_eq!((d.tag, d.result, &d.buf[..4]), (2, Ok(4), &b"data"[..]));
    settled(&r.pool, io, &rx, &rd);
}

/// The same errno when the driver tries a waiting operation again on
/// readiness (mio's "completion"): one callback with 31 and 0 bytes, the
/// buffer back.
#[test]
fn fault_unknown_errno_when_readiness_retries_is_gen_failure_31_with_one_callback() {
    let unknown = libc::ENOTRECOVERABLE;
    let faults = Faults::arm();
    let Some(r) = rig(MIO, "fault-mio-unknown-retry") else {
        return;
    };
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (io, rx) = channel_io(&rd, &r.env, None);
    let (b, p) = buffer(8, 0);
    io.read(b, 5).expect("pending");
    assert_eq!(rd.in_flight(), 1);
    faults.try_errno(unknown, 1);
    raw_write(&wr, b"x");
    let d = next(&rx);
    assert_eq!(
        (d.tag, d.result, d.bytes()),
        (5, Err(Win32Error::GEN_FAILURE), 0)
    );
    assert_eq!(d.buf.as_ptr() as usize, p);
    assert_eq!(faults.hits().try_now, 1);
    settled(&r.pool, io, &rx, &rd);
}

/// A descriptor that is not open at the OS level (`EBADF` from the try),
/// through the raw layer: `ERROR_INVALID_HANDLE` (6) at once, no callback.
#[test]
fn fault_descriptor_not_open_fails_a_raw_read_now_with_6() {
    let faults = Faults::arm();
    fault_rig::raw_read_on_a_descriptor_that_is_not_open(MIO, || {
        faults.try_errno(libc::EBADF, 1);
    });
    assert_eq!(faults.hits().try_now, 1);
}

/// The faults real I/O produces on its own (`fault_rig`), on mio.
#[test]
fn fault_handle_closed_with_operations_pending_completes_each_exactly_once() {
    let _faults = Faults::arm();
    fault_rig::fault_handle_closed_with_operations_pending_completes_each_exactly_once(MIO);
}

#[test]
fn fault_peer_reset_before_a_recv_fails_it_now_with_10054() {
    let _faults = Faults::arm();
    fault_rig::fault_peer_reset_before_a_recv_fails_it_now_with_10054(MIO);
}

#[test]
fn fault_peer_reset_with_two_recvs_pending_ends_each_once_the_first_with_10054() {
    let _faults = Faults::arm();
    fault_rig::fault_peer_reset_with_two_recvs_pending_ends_each_once_the_first_with_10054(MIO);
}

#[test]
fn fault_callback_panic_on_a_worker_with_a_read_in_flight_is_caught_and_the_read_completes() {
    let _faults = Faults::arm();
    fault_rig::fault_callback_panic_on_a_worker_with_a_read_in_flight_is_caught_and_the_read_completes(
        MIO,
    );
}
