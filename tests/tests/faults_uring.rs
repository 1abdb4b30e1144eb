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
//! One plan is armed at a time in a process, so every test here arms one
//! (even an empty one): they run one at a time, each on an io_uring
//! backend of its own made after arming (the plan applies to its rings).
#![cfg(target_os = "linux")]

mod fault_rig;
mod support;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fault_rig::*;
use support::*;
use tpio::{BackendKind, OverlappedHandle, Win32Error};
use tpio_uring::faults::{Faults, FOREVER, PERSISTENT_AFTER};

const URING: BackendKind = BackendKind::Uring;
/// Submit errors that pass (`errno` for 50 submitting enters in a row):
/// retried, never seen by the user. One read goes through the shared ring
/// (issued here; the driver's thread submits it), one through a worker's
/// own ring (issued by the first read's callback; the worker submits it).
fn transient_submit_error_is_back_pressure(name: &str, errno: i32) {
    let faults = Faults::arm();
    let Some(r) = rig(URING, name) else { return };
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
    let Some(r) = rig(URING, "fault-sq-full") else {
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
    let Some(r) = rig(URING, "fault-persist-shared") else {
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

/// As above on a worker's own ring (direct submission, deferred to the
/// worker's next enter): the worker's first read waits in its SQ; a wait of
/// tpio's own hands it to the kernel first (`Parker::flush`), where the
/// worker's retries run out; its next issue is refused at once with 8; the
/// queued read goes in with the worker's next enter after the fault ends
/// and completes once.
#[test]
fn fault_submit_enomem_that_persists_fails_the_next_issue_with_8_on_a_worker_ring() {
    let faults = Faults::arm();
    let Some(r) = rig(URING, "fault-persist-worker") else {
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
        // Deferred: nothing entered the kernel yet. A wait flushes it.
        tpio::Event::new(true, false).wait_timeout(Duration::from_millis(1));
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

/// An operation waiting its turn in the driver's order queue (behind a
/// read in the kernel on the same pipe) when the kernel keeps refusing:
/// the read before it completes, and it — already reported pending — gets
/// exactly one callback with 8 and its buffer, instead of an entry that
/// might never go in.
#[test]
fn fault_submit_enomem_that_persists_ends_an_operation_waiting_its_turn_with_one_callback_of_8() {
    let faults = Faults::arm();
    let Some(r) = rig(URING, "fault-persist-queued") else {
        return;
    };
    r.pool.set_thread_maximum(1);
    let (rd, wr) = tpio::pipe_on(&r.backend).expect("pipe");
    let (rd2, wr2) = tpio::pipe_on(&r.backend).expect("pipe");
    let (issued_tx, issued) = mpsc::channel();
    let issued_tx = Mutex::new(issued_tx);
    let then: Then = Box::new(move |d, io| {
        if d.tag != 1 {
            return;
        }
        // From the worker: its own ring; the second waits behind the first
        // in the driver's queue. A wait of tpio's own hands the first to the
        // kernel now (it would go with the worker's next enter), before
        // the fault below starts.
        let a = io.read(vec![0xa; 8], 2).map(|_| ()).map_err(|e| e.error);
        let b = io.read(vec![0xb; 8], 3).map(|_| ()).map_err(|e| e.error);
        tpio::Event::new(true, false).wait_timeout(Duration::from_millis(1));
        let _ = issued_tx.lock().map(|t| t.send((a, b)));
    });
    let (io, rx) = channel_io(&rd, &r.env, Some(then));
    let (io2, rx2) = channel_io(&rd2, &r.env, None);
    raw_write(&wr, b"go");
    io.read(vec![0; 8], 1).expect("done at once");
    assert_eq!(next(&rx).result, Ok(2));
    assert_eq!(
        issued.recv_timeout(PATIENCE).expect("issued"),
        (Ok(()), Ok(()))
    );
    assert_eq!(rd.in_flight(), 2);
    faults.submit_errno(libc::ENOMEM, FOREVER);
    // The same (only) worker issues once more: that read is refused (its
    // ring already met the refusals when the worker woke) or queued in the
    // ring's SQ with its retries run out there. Either way the ring refuses
    // from now on: no enter of it can succeed while the fault lasts.
    let (met_tx, met) = mpsc::channel();
    let io2c = io2.clone();
    r.pool.submit_callback(move |_| {
        let c = io2c.read(vec![0xc; 8], 4).map(|_| ()).map_err(|e| e.error);
        let _ = met_tx.send(c);
    });
    let c = met.recv_timeout(PATIENCE).expect("ran");
    assert!(
        matches!(c, Ok(()) | Err(Win32Error::NOT_ENOUGH_MEMORY)),
        "{c:?}"
    );
    raw_write(&wr, b"a");
    let mut got: Vec<_> = (0..2).map(|_| next(&rx)).collect();
    got.sort_by_key(|d| d.tag);
    assert_eq!(
        (got[0].tag, got[0].result, &got[0].buf[..1]),
        (2, Ok(1), &b"a"[..])
    );
    assert_eq!(
        (got[1].tag, got[1].result, &got[1].buf),
        (3, Err(Win32Error::NOT_ENOUGH_MEMORY), &vec![0xb; 8])
    );
    faults.clear();
    settled(&r.pool, io, &rx, &rd);
    if c.is_ok() {
        // The read queued in the SQ goes in once the kernel takes entries.
        raw_write(&wr2, b"c");
        let d = next(&rx2);
        assert_eq!((d.tag, d.result), (4, Ok(1)));
    }
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
    let Some(r) = rig(URING, "fault-unknown-cqe") else {
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
    let Some(r) = rig(URING, "fault-unknown-try") else {
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

/// A descriptor that is not open at the OS level (`EBADF` from the try),
/// through the raw layer: `ERROR_INVALID_HANDLE` (6) at once, no callback.
#[test]
fn fault_descriptor_not_open_fails_a_raw_read_now_with_6() {
    let faults = Faults::arm();
    fault_rig::raw_read_on_a_descriptor_that_is_not_open(URING, || {
        faults.try_errno(libc::EBADF, 1);
    });
    assert_eq!(faults.hits().try_now, 1);
}

/// The faults real I/O produces on its own (`fault_rig`), on io_uring.
#[test]
fn fault_handle_closed_with_operations_pending_completes_each_exactly_once() {
    let _faults = Faults::arm();
    fault_rig::fault_handle_closed_with_operations_pending_completes_each_exactly_once(URING);
}

#[test]
fn fault_peer_reset_before_a_recv_fails_it_now_with_10054() {
    let _faults = Faults::arm();
    fault_rig::fault_peer_reset_before_a_recv_fails_it_now_with_10054(URING);
}

#[test]
fn fault_peer_reset_with_two_recvs_pending_ends_each_once_the_first_with_10054() {
    let _faults = Faults::arm();
    fault_rig::fault_peer_reset_with_two_recvs_pending_ends_each_once_the_first_with_10054(URING);
}

#[test]
fn fault_callback_panic_on_a_worker_with_a_read_in_flight_is_caught_and_the_read_completes() {
    let _faults = Faults::arm();
    fault_rig::fault_callback_panic_on_a_worker_with_a_read_in_flight_is_caught_and_the_read_completes(
        URING,
    );
}
