//! kernel32's TP_IO, characterised rule by rule (the numbered rules of the
//! design brief, see `spec/`). Each test is named after the rule it shows.
//!
//! These run on Windows and, on Linux, under Wine (`scripts/wine-test.sh`).
//! Where Wine is known to differ from documented Windows behaviour, the test
//! asks `wine_deviation(Deviation::X)` and asserts Windows' behaviour unless
//! it applies; the list is `tpio_windows::wine::Deviation` and
//! `spec/wine-deviations.md`.
#![cfg(windows)]

mod support;

use std::sync::{Arc, Condvar, Mutex};

use support::*;
use tpio_windows::env;
use tpio_windows::raw::{self, ThreadpoolIo, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS};
use tpio_windows::wine::{self, wine_deviation, Deviation};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_HANDLE_EOF, ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER, ERROR_IO_INCOMPLETE, ERROR_IO_PENDING, ERROR_NOT_FOUND,
    ERROR_OPERATION_ABORTED, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Threading::{
    CloseThreadpool, CloseThreadpoolCleanupGroup, CloseThreadpoolCleanupGroupMembers,
    CreateThreadpool, CreateThreadpoolCleanupGroup, SetThreadpoolThreadMaximum,
    TP_CALLBACK_ENVIRON_V3,
};

fn new_io(handle: HANDLE, rec: &Arc<Recorder>) -> ThreadpoolIo {
    // SAFETY: every handle the tests pass is open, overlapped, not yet bound
    // to a port, and outlives the test's operations (files and pipes are
    // dropped at the end of the test, after the operations completed).
    unsafe { ThreadpoolIo::new(handle, None, rec.callback()) }.expect("CreateThreadpoolIo")
}

/// Issue a read that must stay pending (a pipe with nothing written).
fn start_pending_read(io: &ThreadpoolIo, handle: HANDLE, op: &Op) {
    // SAFETY: a read is issued right after; if it does not pend we cancel
    // before failing the test.
    unsafe { io.start() };
    match read(handle, op) {
        Err(ERROR_IO_PENDING) => {}
        other => {
            // SAFETY: the read did not pend, so its start is unbalanced.
            unsafe { io.cancel() };
            panic!("expected a pending read, got {other:?}");
        }
    }
}

fn overlapped_error(handle: HANDLE, op: &Op, wait: bool) -> Result<u32, i32> {
    // SAFETY: `op.ov` is leaked and was issued on `handle`.
    unsafe { raw::get_overlapped_result(handle, op.ov, wait) }
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

#[test]
fn wine_detection_matches_the_runner() {
    // scripts/wine-test.sh sets TPIO_EXPECT_WINE=1; on Windows it is unset.
    let expected = std::env::var_os("TPIO_EXPECT_WINE").is_some_and(|v| v == "1");
    assert_eq!(
        wine::running_under_wine(),
        expected,
        "wine_get_version said {:?}",
        wine::wine_version()
    );
    if let Some(v) = wine::wine_version() {
        assert!(!v.is_empty());
        eprintln!("running under Wine {v}");
    }
}

#[test]
fn rule_1_read_completion_gets_one_callback() {
    let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let (file, _path) = overlapped_file(&data, true, false);
    let rec = Recorder::new();
    let io = new_io(h(&file), &rec);
    let op = Op::new(4096, 0);
    // SAFETY: the read follows; every outcome is handled below.
    unsafe { io.start() };
    match read(h(&file), &op) {
        // Succeeded at once: still gets its callback (rule 2).
        Ok(()) | Err(ERROR_IO_PENDING) => {}
        Err(e) => {
            // SAFETY: failed at once: the start is unbalanced.
            unsafe { io.cancel() };
            panic!("ReadFile failed: {e}");
        }
    }
    rec.wait_count(1);
    io.wait_for_callbacks(false);
    let seen = rec.snapshot();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].ov, op.ov_addr());
    assert_eq!(seen[0].result, 0);
    assert_eq!(seen[0].bytes, 4096);
    assert_eq!(op.data(4096), data);
    io.close();
}

#[test]
fn rule_1_cancel_balances_start_without_io() {
    let (file, _path) = overlapped_file(b"0123456789", true, false);
    let rec = Recorder::new();
    let io = Arc::new(new_io(h(&file), &rec));
    // SAFETY: no operation is issued; the cancel balances the start.
    unsafe {
        io.start();
        io.cancel();
    }
    // If the cancel had not balanced the start, this wait would never end.
    let io2 = Arc::clone(&io);
    assert!(
        within(TIMEOUT, move || io2.wait_for_callbacks(false)).is_some(),
        "wait_for_callbacks(false) still blocked after start + cancel"
    );
    assert!(rec.snapshot().is_empty());
    // The object still works afterwards.
    let op = Op::new(10, 0);
    // SAFETY: the read follows; failure is handled.
    unsafe { io.start() };
    if let Err(e) = read(h(&file), &op) {
        assert_eq!(e, ERROR_IO_PENDING);
    }
    rec.wait_op(&op);
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

#[test]
fn rule_2_failed_now_plus_cancel_no_callback() {
    // A write-only handle: ReadFile fails at once with ERROR_ACCESS_DENIED.
    let (file, _path) = overlapped_file(b"0123456789", false, true);
    let rec = Recorder::new();
    let io = new_io(h(&file), &rec);
    let bad = Op::new(10, 0);
    // SAFETY: the read follows and fails; we cancel.
    unsafe { io.start() };
    assert_eq!(read(h(&file), &bad), Err(ERROR_ACCESS_DENIED));
    // SAFETY: failed at once, so the start is unbalanced.
    unsafe { io.cancel() };
    // A good operation afterwards: only its callback arrives.
    let good = Op::with_data(b"abc", 0);
    // SAFETY: the write follows; failure is handled.
    unsafe { io.start() };
    if let Err(e) = write(h(&file), &good) {
        assert_eq!(e, ERROR_IO_PENDING);
    }
    rec.wait_op(&good);
    io.wait_for_callbacks(false);
    let seen = rec.snapshot();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].ov, good.ov_addr());
    assert_eq!((seen[0].result, seen[0].bytes), (0, 3));
}

#[test]
fn rule_2_success_now_still_gets_callback() {
    let (server, client) = pipe_pair(true);
    write_blocking(h(&client), b"hello");
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op = Op::new(16, 0);
    // SAFETY: the read follows; if it does not succeed at once, its
    // callback (or our cancel) still balances the start.
    unsafe { io.start() };
    let now = read(h(&server), &op);
    if let Err(e) = now {
        if e != ERROR_IO_PENDING {
            // SAFETY: failed at once.
            unsafe { io.cancel() };
        }
    }
    // Data was already in the pipe: the read completes at once.
    assert_eq!(now, Ok(()));
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 5));
    assert_eq!(op.data(5), b"hello");
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

#[test]
fn rule_2_skip_completion_on_success_gets_no_callback() {
    let (server, client) = pipe_pair(true);
    raw::set_file_completion_notification_modes(h(&server), FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)
        .expect("SetFileCompletionNotificationModes");
    write_blocking(h(&client), b"now");
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op1 = Op::new(16, 0);
    // SAFETY: the read follows; it succeeds at once (asserted) and in this
    // mode that queues no completion, so we cancel.
    unsafe { io.start() };
    let now = read(h(&server), &op1);
    if now != Err(ERROR_IO_PENDING) {
        // SAFETY: done at once (success in skip mode, or failure).
        unsafe { io.cancel() };
    }
    assert_eq!(now, Ok(()));
    assert_eq!(overlapped_error(h(&server), &op1, false), Ok(3));
    // A read that pends still gets its callback in this mode.
    let op2 = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op2);
    write_blocking(h(&client), b"later");
    let seen = rec.wait_op(&op2);
    assert_eq!((seen.result, seen.bytes), (0, 5));
    io.wait_for_callbacks(false);
    let all = rec.snapshot();
    assert_eq!(all.len(), 1, "the at-once success got a callback: {all:?}");
}

#[test]
fn rule_3_callback_gets_exact_overlapped_status_and_bytes() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op = Op::new(64, 0);
    start_pending_read(&io, h(&server), &op);
    write_blocking(h(&client), b"seven!!");
    let seen = rec.wait_op(&op);
    assert_eq!(seen.ov, op.ov_addr(), "the exact OVERLAPPED pointer");
    assert_eq!(seen.result, 0);
    assert_eq!(seen.bytes, 7);
    assert_eq!(seen.io, io.as_raw());
    assert_ne!(seen.instance, 0);
    assert_ne!(seen.thread, std::thread::current().id(), "ran inline");
    assert_eq!(op.data(7), b"seven!!");
}

#[test]
fn rule_3_read_at_eof_gives_38() {
    let (file, _path) = overlapped_file(b"0123456789", true, false);
    let rec = Recorder::new();
    let io = new_io(h(&file), &rec);
    let op = Op::new(16, 10);
    // SAFETY: the read follows; outcomes handled below.
    unsafe { io.start() };
    match read(h(&file), &op) {
        // Failed at once with 38: no callback (rule 2), we cancel.
        Err(ERROR_HANDLE_EOF) => {
            // SAFETY: failed at once.
            unsafe { io.cancel() };
            io.wait_for_callbacks(false);
            assert!(rec.snapshot().is_empty());
        }
        // Pending: the callback carries 38.
        Err(ERROR_IO_PENDING) => {
            let seen = rec.wait_op(&op);
            assert_eq!((seen.result, seen.bytes), (ERROR_HANDLE_EOF, 0));
        }
        other => {
            if other.is_ok() {
                rec.wait_op(&op);
            } else {
                // SAFETY: failed at once.
                unsafe { io.cancel() };
            }
            panic!("read at end of file: {other:?}, expected error 38");
        }
    }
}

#[test]
fn rule_4_wait_blocks_on_outstanding_start() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = Arc::new(new_io(h(&server), &rec));
    let op = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let io = Arc::clone(&io);
        let rec = Arc::clone(&rec);
        std::thread::spawn(move || {
            io.wait_for_callbacks(false);
            tx.send(rec.snapshot().len()).unwrap();
        })
    };
    // Negative check: the wait must still be blocked while the read pends.
    assert!(
        rx.recv_timeout(STILL_BLOCKED).is_err(),
        "wait_for_callbacks(false) returned with a start outstanding"
    );
    write_blocking(h(&client), b"x");
    let callbacks_at_return = rx.recv_timeout(TIMEOUT).expect("wait never returned");
    assert_eq!(
        callbacks_at_return, 1,
        "wait returned before the callback ran"
    );
    waiter.join().unwrap();
}

#[test]
fn rule_4_wait_true_stops_expecting_outstanding_start() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = Arc::new(new_io(h(&server), &rec));
    let op1 = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op1);
    let io2 = Arc::clone(&io);
    assert!(
        within(TIMEOUT, move || io2.wait_for_callbacks(true)).is_some(),
        "wait_for_callbacks(true) blocked on an outstanding start"
    );
    // It did not cancel the I/O in the kernel.
    assert_eq!(
        overlapped_error(h(&server), &op1, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    write_blocking(h(&client), b"abc");
    assert_eq!(overlapped_error(h(&server), &op1, true), Ok(3));
    // Negative check: the completed operation's packet gets no callback,
    // and nothing is outstanding any more.
    assert!(
        rec.wait_count_within(1, STILL_BLOCKED).is_empty(),
        "a dropped start still got a callback: {:?}",
        rec.snapshot()
    );
    let io3 = Arc::clone(&io);
    assert!(within(TIMEOUT, move || io3.wait_for_callbacks(false)).is_some());
    assert!(rec.snapshot().is_empty());
}

/// kernel32 pairs completion packets with starts by count, not by
/// OVERLAPPED: a packet of an operation whose start `wait(true)` dropped
/// still gets a callback if it arrives while a newer start is outstanding,
/// and that newer start is then used up. (Seen under Wine 8.0, whose
/// ntdll keeps only a counter; Windows documents nothing here.) tpio's
/// emulation must not copy this; the test pins the reference behaviour.
#[test]
fn rule_4_late_packet_after_wait_true_consumes_a_newer_start() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = Arc::new(new_io(h(&server), &rec));
    let op1 = Op::new(3, 0);
    start_pending_read(&io, h(&server), &op1);
    let io2 = Arc::clone(&io);
    assert!(within(TIMEOUT, move || io2.wait_for_callbacks(true)).is_some());
    // A newer operation is started and pends behind op1.
    let op2 = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op2);
    // op1 completes while op2's start is outstanding.
    write_blocking(h(&client), b"one");
    let seen = rec.wait_op(&op1);
    assert_eq!((seen.result, seen.bytes), (0, 3));
    // op2's start was used up: wait(false) returns while op2 still pends.
    let io3 = Arc::clone(&io);
    assert!(
        within(TIMEOUT, move || io3.wait_for_callbacks(false)).is_some(),
        "wait(false) still expects op2"
    );
    assert_eq!(
        overlapped_error(h(&server), &op2, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    // Balance op2's packet with one more start (never leave a packet with
    // no start: Windows documents corruption for that).
    // SAFETY: op2's packet is still to come and will balance this start.
    unsafe { io.start() };
    write_blocking(h(&client), b"two!");
    let seen2 = rec.wait_op(&op2);
    assert_eq!((seen2.result, seen2.bytes), (0, 4));
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 2);
}

#[test]
fn rule_5_close_with_io_in_flight_callback_still_runs() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let flag = Arc::new((Mutex::new(false), Condvar::new()));
    let guard = DropFlag(Arc::clone(&flag));
    let cb = rec.callback();
    // SAFETY: as in `new_io`.
    let io = unsafe {
        ThreadpoolIo::new(h(&server), None, move |c| {
            let _keep = &guard;
            cb(c)
        })
    }
    .expect("CreateThreadpoolIo");
    let op = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op);
    // close neither waits (it returns with the read pending) nor cancels.
    io.close();
    assert_eq!(
        overlapped_error(h(&server), &op, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    assert!(rec.snapshot().is_empty());
    write_blocking(h(&client), b"after close");
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 11));
    // The closure is released after that last callback.
    assert!(wait_dropped(&flag), "callback closure never released");
    assert_eq!(rec.snapshot().len(), 1);
}

#[test]
fn rule_6_cancel_io_ex_pending_read_gives_995() {
    let (server, _client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op);
    raw::cancel_io_ex(h(&server), Some(op.ov)).expect("CancelIoEx");
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (ERROR_OPERATION_ABORTED, 0));
    assert_eq!(
        overlapped_error(h(&server), &op, false),
        Err(ERROR_OPERATION_ABORTED as i32)
    );
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

#[test]
fn rule_6_cancel_io_ex_one_overlapped_leaves_the_others() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op1 = Op::new(16, 0);
    let op2 = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op1);
    start_pending_read(&io, h(&server), &op2);
    raw::cancel_io_ex(h(&server), Some(op1.ov)).expect("CancelIoEx");
    let seen1 = rec.wait_op(&op1);
    assert_eq!(seen1.result, ERROR_OPERATION_ABORTED);
    assert_eq!(
        overlapped_error(h(&server), &op2, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    write_blocking(h(&client), b"two");
    let seen2 = rec.wait_op(&op2);
    assert_eq!((seen2.result, seen2.bytes), (0, 3));
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 2);
}

#[test]
fn rule_6_cancel_io_ex_all_from_another_thread() {
    let (server, _client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op1 = Op::new(16, 0);
    let op2 = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op1);
    start_pending_read(&io, h(&server), &op2);
    let handle = h(&server) as usize;
    std::thread::spawn(move || raw::cancel_io_ex(handle as HANDLE, None))
        .join()
        .unwrap()
        .expect("CancelIoEx(h, NULL) from another thread");
    let seen = rec.wait_count(2);
    let mut ovs: Vec<usize> = seen.iter().map(|s| s.ov).collect();
    ovs.sort();
    let mut want = vec![op1.ov_addr(), op2.ov_addr()];
    want.sort();
    assert_eq!(ovs, want);
    assert!(seen
        .iter()
        .all(|s| s.result == ERROR_OPERATION_ABORTED && s.bytes == 0));
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 2);
}

#[test]
fn rule_6_cancel_io_ex_nothing_pending() {
    let (server, _client) = pipe_pair(true);
    let rec = Recorder::new();
    let _io = new_io(h(&server), &rec);
    let all = raw::cancel_io_ex(h(&server), None).map_err(|e| e.raw_os_error());
    if wine_deviation(Deviation::CancelIoExNothingPendingSucceeds) {
        assert_eq!(
            all,
            Ok(()),
            "Wine behaviour changed; update the deviation list"
        );
    } else {
        assert_eq!(all, Err(Some(ERROR_NOT_FOUND as i32)));
    }
    // A specific OVERLAPPED that was never issued.
    let never = Op::new(1, 0);
    let one = raw::cancel_io_ex(h(&server), Some(never.ov)).map_err(|e| e.raw_os_error());
    assert_eq!(one, Err(Some(ERROR_NOT_FOUND as i32)));
    assert!(rec.snapshot().is_empty());
}

#[test]
fn rule_6_cancel_io_cancels_only_the_calling_threads_io() {
    let (server, _client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = Arc::new(new_io(h(&server), &rec));
    // Nothing of this thread's pending: succeeds.
    raw::cancel_io(h(&server)).expect("CancelIo with nothing pending");
    let op = Arc::new(Op::new(16, 0));
    let handle = h(&server) as usize;
    let (issued_tx, issued_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let issuer = {
        let io = Arc::clone(&io);
        let op = Arc::clone(&op);
        std::thread::spawn(move || {
            start_pending_read(&io, handle as HANDLE, &op);
            issued_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            raw::cancel_io(handle as HANDLE)
        })
    };
    issued_rx.recv_timeout(TIMEOUT).expect("issuer thread");
    // Another thread's read: CancelIo here succeeds and leaves it alone.
    raw::cancel_io(h(&server)).expect("CancelIo");
    assert_eq!(
        overlapped_error(h(&server), &op, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    assert!(rec.snapshot().is_empty());
    // The issuing thread's CancelIo cancels it.
    go_tx.send(()).unwrap();
    issuer
        .join()
        .unwrap()
        .expect("CancelIo on the issuing thread");
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (ERROR_OPERATION_ABORTED, 0));
}

#[test]
fn rule_7_cancel_synchronous_io_nothing_blocked_or_bad_handle() {
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || go_rx.recv().unwrap());
    use std::os::windows::io::AsRawHandle;
    let th = t.as_raw_handle() as HANDLE;
    let r = raw::cancel_synchronous_io(th).map_err(|e| e.raw_os_error());
    go_tx.send(()).unwrap();
    t.join().unwrap();
    assert_eq!(
        r,
        Err(Some(ERROR_NOT_FOUND as i32)),
        "thread blocked in no I/O"
    );
    let bad = raw::cancel_synchronous_io(std::ptr::null_mut()).map_err(|e| e.raw_os_error());
    assert_eq!(bad, Err(Some(ERROR_INVALID_HANDLE as i32)));
}

#[test]
fn rule_7_cancel_synchronous_io_cancels_blocking_read() {
    // The client end is not overlapped: ReadFile on it blocks.
    let (server, client) = pipe_pair(false);
    let client_h = h(&client) as usize;
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let mut n = 0u32;
        // SAFETY: a synchronous read into a local buffer.
        let ok = unsafe {
            windows_sys::Win32::Storage::FileSystem::ReadFile(
                client_h as HANDLE,
                buf.as_mut_ptr(),
                buf.len() as u32,
                &mut n,
                std::ptr::null_mut(),
            )
        };
        if ok != 0 {
            Ok(n)
        } else {
            Err(raw::last_error())
        }
    });
    use std::os::windows::io::AsRawHandle;
    let th = reader.as_raw_handle() as HANDLE;
    // ERROR_NOT_FOUND until the reader is inside ReadFile: retry until the
    // cancel finds it, within the timeout.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let outcome = loop {
        match raw::cancel_synchronous_io(th) {
            Ok(()) => break Ok(()),
            Err(e) if e.raw_os_error() == Some(ERROR_NOT_FOUND as i32) => {
                if std::time::Instant::now() >= deadline {
                    break Err(e);
                }
                std::thread::yield_now();
            }
            Err(e) => break Err(e),
        }
    };
    if outcome.is_err() {
        // Unblock the reader so the test ends either way.
        write_blocking(h(&server), b"!");
    }
    let read = reader.join().unwrap();
    outcome.expect("CancelSynchronousIo never found the blocked read");
    assert_eq!(read, Err(ERROR_OPERATION_ABORTED));
}

#[test]
fn rule_8_get_overlapped_result_incomplete_996() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op);
    assert_eq!(
        overlapped_error(h(&server), &op, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    // wait=true blocks until the read is done (another thread writes).
    let client_h = h(&client) as usize;
    let writer = std::thread::spawn(move || write_blocking(client_h as HANDLE, b"done"));
    assert_eq!(overlapped_error(h(&server), &op, true), Ok(4));
    writer.join().unwrap();
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 4));
}

static GROUP_CANCELS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe extern "system" fn count_group_cancel(
    _object_context: *mut core::ffi::c_void,
    _cleanup_context: *mut core::ffi::c_void,
) {
    GROUP_CANCELS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn rule_9_cleanup_group_members_released_with_private_pool() {
    // SAFETY: reserved argument is null.
    let pool = unsafe { CreateThreadpool(std::ptr::null()) };
    assert_ne!(pool, 0);
    // SAFETY: `pool` is alive.
    unsafe { SetThreadpoolThreadMaximum(pool, 1) };
    // SAFETY: no arguments.
    let group = unsafe { CreateThreadpoolCleanupGroup() };
    assert_ne!(group, 0);
    let mut ce = TP_CALLBACK_ENVIRON_V3::default();
    env::initialize_threadpool_environment(&mut ce);
    env::set_threadpool_callback_pool(&mut ce, pool);
    env::set_threadpool_callback_cleanup_group(&mut ce, group, Some(count_group_cancel));

    let (file, _path) = overlapped_file(b"group member", true, false);
    let rec = Recorder::new();
    // SAFETY: the file is overlapped and unbound; pool and group are alive
    // until the end; the object leaves the wrapper before the group closes.
    let io = unsafe { ThreadpoolIo::new(h(&file), Some(&ce), rec.callback()) }
        .expect("CreateThreadpoolIo with environment");
    let op = Op::new(12, 0);
    // SAFETY: the read follows; failure handled.
    unsafe { io.start() };
    if let Err(e) = read(h(&file), &op) {
        assert_eq!(e, ERROR_IO_PENDING);
    }
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 12));
    assert_ne!(seen.thread, std::thread::current().id());
    io.wait_for_callbacks(false);
    let _member = io.into_cleanup_group_member();
    let before = GROUP_CANCELS.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: the group is alive; its only member is our TP_IO, which no
    // wrapper will close again.
    unsafe { CloseThreadpoolCleanupGroupMembers(group, 1, std::ptr::null_mut()) };
    let after = GROUP_CANCELS.load(std::sync::atomic::Ordering::SeqCst);
    // With cancel_pending, the cleanup callback runs for each member.
    assert_eq!(after - before, 1);
    env::destroy_threadpool_environment(&mut ce);
    // SAFETY: the group has no members left; the pool has no objects.
    unsafe {
        CloseThreadpoolCleanupGroup(group);
        CloseThreadpool(pool);
    }
}

/// A callback that blocks until released, to keep a one-thread pool busy.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (entered, released)
    cv: Condvar,
}

impl Gate {
    fn enter_and_hold(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.cv.notify_all();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !s.1 && std::time::Instant::now() < deadline {
            s = self.cv.wait_timeout(s, TIMEOUT).unwrap().0;
        }
    }
    fn wait_entered(&self) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            assert!(std::time::Instant::now() < deadline, "gate never entered");
            s = self.cv.wait_timeout(s, TIMEOUT).unwrap().0;
        }
    }
    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

#[test]
fn rule_4_wait_true_drops_queued_callbacks() {
    // A private pool with one thread: while the first callback is held, the
    // second completion can only be queued.
    // SAFETY: reserved argument is null.
    let pool = unsafe { CreateThreadpool(std::ptr::null()) };
    assert_ne!(pool, 0);
    // SAFETY: `pool` is alive.
    unsafe { SetThreadpoolThreadMaximum(pool, 1) };
    let mut ce = TP_CALLBACK_ENVIRON_V3::default();
    env::initialize_threadpool_environment(&mut ce);
    env::set_threadpool_callback_pool(&mut ce, pool);

    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let gate = Arc::new(Gate::default());
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cb = {
        let rec = Arc::clone(&rec);
        let gate = Arc::clone(&gate);
        let held = Arc::clone(&held);
        // Whichever callback runs first holds the pool's only thread (no
        // order between completions is promised, and Wine runs the later
        // one first).
        move |c: &raw::Completion| {
            rec.record(c);
            let me = c.overlapped as usize;
            let first = held.compare_exchange(
                0,
                me,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            );
            if first.is_ok() {
                gate.enter_and_hold();
            }
        }
    };
    // SAFETY: as in `new_io`; the pool outlives the object (closed below
    // after the object was closed and drained).
    let io = Arc::new(unsafe { ThreadpoolIo::new(h(&server), Some(&ce), cb) }.unwrap());
    let op1 = Op::new(1, 0);
    let op2 = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op1);
    start_pending_read(&io, h(&server), &op2);
    // One write completes both reads: one byte for op1, the rest for op2.
    write_blocking(h(&client), b"12345");
    assert_eq!(overlapped_error(h(&server), &op1, true), Ok(1));
    assert_eq!(overlapped_error(h(&server), &op2, true), Ok(4));
    gate.wait_entered();
    let (tx, rx) = std::sync::mpsc::channel();
    let (entering_tx, entering_rx) = std::sync::mpsc::channel();
    {
        let io = Arc::clone(&io);
        std::thread::spawn(move || {
            entering_tx.send(()).unwrap();
            io.wait_for_callbacks(true);
            tx.send(()).unwrap();
        });
    }
    entering_rx.recv_timeout(TIMEOUT).unwrap();
    // Negative check: the wait still blocks on the running callback.
    assert!(
        rx.recv_timeout(STILL_BLOCKED).is_err(),
        "wait(true) did not wait for the running callback"
    );
    gate.release();
    rx.recv_timeout(TIMEOUT).expect("wait(true) never returned");
    io.wait_for_callbacks(false);
    let seen = rec.snapshot();
    assert_eq!(seen.len(), 1, "queued callback was not dropped: {seen:?}");
    assert_eq!(seen[0].ov, held.load(std::sync::atomic::Ordering::SeqCst));
    drop(io);
    // SAFETY: the only object of the pool is closed and has nothing left.
    unsafe { CloseThreadpool(pool) };
}

#[test]
fn rule_3_callbacks_of_one_io_run_concurrently() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    // Each callback waits (bounded) until both are inside at once.
    let inside = Arc::new((Mutex::new((0usize, 0usize)), Condvar::new())); // (now, max)
    let cb = {
        let rec = Arc::clone(&rec);
        let inside = Arc::clone(&inside);
        move |c: &raw::Completion| {
            let (m, cv) = &*inside;
            let mut s = m.lock().unwrap();
            s.0 += 1;
            s.1 = s.1.max(s.0);
            cv.notify_all();
            let deadline = std::time::Instant::now() + TIMEOUT;
            while s.1 < 2 && std::time::Instant::now() < deadline {
                s = cv.wait_timeout(s, TIMEOUT).unwrap().0;
            }
            s.0 -= 1;
            drop(s);
            rec.record(c);
        }
    };
    // SAFETY: as in `new_io`.
    let io = unsafe { ThreadpoolIo::new(h(&server), None, cb) }.unwrap();
    let op1 = Op::new(1, 0);
    let op2 = Op::new(1, 0);
    start_pending_read(&io, h(&server), &op1);
    start_pending_read(&io, h(&server), &op2);
    write_blocking(h(&client), b"ab");
    let seen = rec.wait_count(2);
    assert!(seen.iter().all(|s| s.result == 0 && s.bytes == 1));
    assert_eq!(
        inside.0.lock().unwrap().1,
        2,
        "the two callbacks never overlapped"
    );
    assert_ne!(seen[0].thread, seen[1].thread);
    io.wait_for_callbacks(false);
}

#[test]
fn rule_7_cancel_synchronous_io_leaves_overlapped_io() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = Arc::new(new_io(h(&server), &rec));
    let op = Arc::new(Op::new(16, 0));
    let (issued_tx, issued_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let handle = h(&server) as usize;
    let issuer = {
        let io = Arc::clone(&io);
        let op = Arc::clone(&op);
        std::thread::spawn(move || {
            start_pending_read(&io, handle as HANDLE, &op);
            issued_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        })
    };
    issued_rx.recv_timeout(TIMEOUT).unwrap();
    use std::os::windows::io::AsRawHandle;
    let r =
        raw::cancel_synchronous_io(issuer.as_raw_handle() as HANDLE).map_err(|e| e.raw_os_error());
    assert_eq!(r, Err(Some(ERROR_NOT_FOUND as i32)));
    assert_eq!(
        overlapped_error(h(&server), &op, false),
        Err(ERROR_IO_INCOMPLETE as i32)
    );
    write_blocking(h(&client), b"still here");
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (0, 10));
    go_tx.send(()).unwrap();
    issuer.join().unwrap();
}

#[test]
fn rule_3_pipe_peer_close_gives_109() {
    let (server, client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op);
    drop(client);
    let seen = rec.wait_op(&op);
    assert_eq!((seen.result, seen.bytes), (ERROR_BROKEN_PIPE, 0));
    // The next read fails at once (no callback; the start is cancelled).
    let op2 = Op::new(16, 0);
    // SAFETY: the read follows; it fails at once and we cancel.
    unsafe { io.start() };
    let now = read(h(&server), &op2);
    if now != Err(ERROR_IO_PENDING) {
        // SAFETY: failed at once.
        unsafe { io.cancel() };
    }
    assert_eq!(now, Err(ERROR_BROKEN_PIPE));
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

/// Rule 10's premise: closing the handle does not end an operation
/// silently; its final completion still arrives (so the buffer and the
/// OVERLAPPED are in use until then). Windows documents no particular code
/// for this; Wine completes a pipe read with ERROR_BROKEN_PIPE (109).
#[test]
fn rule_10_handle_closed_with_read_pending_still_completes_once() {
    let (server, _client) = pipe_pair(true);
    let rec = Recorder::new();
    let io = new_io(h(&server), &rec);
    let op = Op::new(16, 0);
    start_pending_read(&io, h(&server), &op);
    drop(server);
    let seen = rec.wait_op(&op);
    assert_ne!(seen.result, 0, "read on a closed handle reported success");
    assert_eq!(seen.bytes, 0);
    io.wait_for_callbacks(false);
    assert_eq!(rec.snapshot().len(), 1);
}

/// What binding a handle can fail with: a handle already bound to a port
/// (here: to another TP_IO) or one opened without FILE_FLAG_OVERLAPPED is
/// ERROR_INVALID_PARAMETER (87); a bad handle is ERROR_INVALID_HANDLE (6).
/// The non-overlapped case is what NT's FileCompletionInformation does for
/// synchronous file objects; it was seen under Wine, not on Windows.
#[test]
fn create_threadpool_io_on_bound_or_bad_handle_fails() {
    let (file, _path) = overlapped_file(b"x", true, false);
    let rec = Recorder::new();
    let _io = new_io(h(&file), &rec);
    let code = |handle: HANDLE| {
        // SAFETY: creation is expected to fail; if it did not, the object
        // is closed at once and no operation is started.
        unsafe { ThreadpoolIo::new(handle, None, rec.callback()) }
            .map(drop)
            .map_err(|e| e.raw_os_error())
    };
    assert_eq!(
        code(h(&file)),
        Err(Some(ERROR_INVALID_PARAMETER as i32)),
        "bound twice"
    );
    assert_eq!(
        code(std::ptr::null_mut()),
        Err(Some(ERROR_INVALID_HANDLE as i32))
    );
    assert_eq!(
        code(INVALID_HANDLE_VALUE),
        Err(Some(ERROR_INVALID_HANDLE as i32))
    );
    let (sync_file, _sync_path) = {
        let (f, p) = overlapped_file(b"y", true, false);
        drop(f);
        (std::fs::File::open(&p.0).unwrap(), p)
    };
    assert_eq!(
        code(h(&sync_file)),
        Err(Some(ERROR_INVALID_PARAMETER as i32)),
        "non-overlapped handle"
    );
    assert!(rec.snapshot().is_empty());
}

#[test]
fn rule_6_cancel_io_on_bad_handle_gives_6() {
    let bad = std::ptr::null_mut();
    let code = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error());
    assert_eq!(
        code(raw::cancel_io_ex(bad, None)),
        Err(Some(ERROR_INVALID_HANDLE as i32))
    );
    assert_eq!(
        code(raw::cancel_io(bad)),
        Err(Some(ERROR_INVALID_HANDLE as i32))
    );
}
