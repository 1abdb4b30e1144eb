//! Rules 7 (`CancelSynchronousIo`) and 8 (`GetOverlappedResult`) on the core's
//! building blocks; the conformance suite checks them again with real I/O.

use std::sync::Arc;
use std::time::Duration;
use tpio_core::{
    cancel_synchronous_io, cancel_synchronous_io_raw, BlockingCall, Event, OverlappedStatus,
    ThreadHandle, Win32Error,
};
use tpio_tests::{Harness, PATIENCE};

/// A stand-in for a blocking read: waits for `data` until cancelled.
fn blocking_read(data: &Event, entered: &Event) -> Result<usize, Win32Error> {
    let wake = data.clone();
    let call = BlockingCall::enter(move || wake.set());
    entered.set();
    loop {
        call.check()?;
        if data.wait_timeout(PATIENCE) {
            call.check()?;
            return Ok(1);
        }
    }
}

#[test]
fn rule_7_cancel_synchronous_io_aborts_the_blocked_call() {
    let (data, entered) = (Event::new(true, false), Event::new(true, false));
    let (d2, e2) = (data.clone(), entered.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(ThreadHandle::current()).unwrap();
        blocking_read(&d2, &e2)
    });
    let th = rx.recv().unwrap();
    assert!(entered.wait_timeout(PATIENCE));
    assert_eq!(cancel_synchronous_io(&th), Ok(()));
    assert_eq!(t.join().unwrap(), Err(Win32Error::OPERATION_ABORTED));
    // The thread has exited: nothing to cancel.
    assert_eq!(cancel_synchronous_io(&th), Err(Win32Error::NOT_FOUND));
}

#[test]
fn rule_7_nothing_blocked_is_not_found_and_bad_handle_is_invalid() {
    assert_eq!(
        cancel_synchronous_io(&ThreadHandle::current()),
        Err(Win32Error::NOT_FOUND)
    );
    assert_eq!(
        cancel_synchronous_io_raw(u64::MAX),
        Err(Win32Error::INVALID_HANDLE)
    );
    let me = ThreadHandle::current();
    assert_eq!(
        cancel_synchronous_io_raw(me.raw()),
        Err(Win32Error::NOT_FOUND)
    );
}

#[test]
fn rule_7_cancel_is_for_the_current_call_only() {
    let call = BlockingCall::enter(|| {});
    assert_eq!(cancel_synchronous_io(&ThreadHandle::current()), Ok(()));
    assert_eq!(call.check(), Err(Win32Error::OPERATION_ABORTED));
    // A second cancel of the same call finds nothing new to cancel.
    assert_eq!(
        cancel_synchronous_io(&ThreadHandle::current()),
        Err(Win32Error::NOT_FOUND)
    );
    drop(call);
    let next = BlockingCall::enter(|| {});
    assert_eq!(next.check(), Ok(()), "a new call starts uncancelled");
}

#[test]
fn rule_7_overlapped_operations_are_never_touched() {
    let h = Arc::new(Harness::new("r7"));
    let key = h.issue_pending(0x70);
    let call = BlockingCall::enter(|| {});
    assert_eq!(cancel_synchronous_io(&ThreadHandle::current()), Ok(()));
    assert!(call.cancelled());
    assert!(
        !h.driver.cancel_requested(key),
        "the overlapped read must not be cancelled"
    );
    assert_eq!(h.ops.len(), 1);
    h.driver.complete(key, Win32Error::SUCCESS, 1);
    h.io().wait_for_callbacks(false).unwrap();
}

#[test]
fn rule_8_get_overlapped_result_incomplete_timeout_and_wait() {
    let st = Arc::new(OverlappedStatus::new());
    assert_eq!(
        st.get(false),
        Err(Win32Error::INVALID_PARAMETER),
        "nothing issued"
    );
    st.set_pending();
    assert_eq!(st.get(false), Err(Win32Error::IO_INCOMPLETE));
    assert_eq!(
        st.get_timeout(Some(Duration::from_millis(20))),
        Err(Win32Error::WAIT_TIMEOUT)
    );
    let s2 = st.clone();
    let waiter = std::thread::spawn(move || s2.get(true));
    st.set_done(Win32Error::SUCCESS, 42);
    assert_eq!(waiter.join().unwrap(), Ok(42));
    assert_eq!(st.get(false), Ok(42));
    st.set_pending();
    st.set_done(Win32Error::OPERATION_ABORTED, 0);
    assert_eq!(st.get(true), Err(Win32Error::OPERATION_ABORTED));
}
