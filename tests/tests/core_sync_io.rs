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

/// A cancel that lands while the call is being issued runs its canceller
/// only after the issue returned (so it finds the operation in flight), and
/// a cancel before the issue stops it from running at all: a cancelled call
/// can never go on to take data that arrived after the cancel returned.
/// Without the gate in `BlockingCall::issue` the canceller sees an issue
/// half done in some of these rounds.
#[test]
fn rule_7_a_cancel_never_overtakes_an_issue_in_progress() {
    use std::sync::atomic::{AtomicU8, Ordering};
    const NOT_ISSUED: u8 = 0;
    const ISSUING: u8 = 1;
    const ISSUED: u8 = 2;
    let mut seen = [0usize; 3];
    for _ in 0..400 {
        let state = Arc::new(AtomicU8::new(NOT_ISSUED));
        let at_cancel = Arc::new(AtomicU8::new(u8::MAX));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, a2) = (state.clone(), at_cancel.clone());
        let t = std::thread::spawn(move || {
            tx.send(ThreadHandle::current()).unwrap();
            let a3 = a2.clone();
            let s3 = s2.clone();
            let call =
                BlockingCall::enter(move || a3.store(s3.load(Ordering::SeqCst), Ordering::SeqCst));
            let r = call.issue(|| {
                s2.store(ISSUING, Ordering::SeqCst);
                for _ in 0..4 {
                    std::thread::yield_now();
                }
                s2.store(ISSUED, Ordering::SeqCst);
            });
            (r, s2.load(Ordering::SeqCst))
        });
        let th = rx.recv().unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        // Retry until the thread has entered its call (or finished it).
        let cancelled = loop {
            match cancel_synchronous_io(&th) {
                Ok(()) => break true,
                Err(Win32Error::NOT_FOUND) if !t.is_finished() => {
                    assert!(std::time::Instant::now() < deadline, "never blocked");
                    std::hint::spin_loop();
                }
                Err(Win32Error::NOT_FOUND) => break false,
                Err(e) => panic!("cancel_synchronous_io: {e}"),
            }
        };
        let (r, end) = t.join().unwrap();
        if !cancelled {
            assert_eq!((r, end), (Ok(()), ISSUED));
            continue;
        }
        let at = at_cancel.load(Ordering::SeqCst);
        assert_ne!(at, ISSUING, "rule 7: the canceller ran during the issue");
        seen[at as usize] += 1;
        if at == NOT_ISSUED {
            assert_eq!(
                r,
                Err(Win32Error::OPERATION_ABORTED),
                "cancelled first: never issued"
            );
            assert_eq!(end, NOT_ISSUED);
        } else {
            assert_eq!(
                r,
                Ok(()),
                "issued first: the issue stands, the canceller follows it"
            );
        }
    }
    eprintln!(
        "cancels before the issue: {}, after it: {}",
        seen[0], seen[2]
    );
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
