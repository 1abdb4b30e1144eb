//! Property test: random sequences of reads issued through `MioDriver` on
//! one end of a stream socket pair, writes by the peer, cancels by
//! OVERLAPPED (of pending, finished or never-issued operations) and
//! cancel-all, on one thread. Whatever the timing, each case checks:
//!
//! * every issued read gets exactly one outcome: at once, or one packet;
//! * the bytes of the successful reads, in issue order, are exactly the
//!   start of what the peer wrote (no reordering, loss or duplication: a
//!   later read never overtakes an earlier one);
//! * a cancelled read reports 995 with 0 bytes and its buffer untouched;
//! * what no read took is still in the socket afterwards;
//! * nothing is left in flight or registered at the end.
//!
//! Cases: `TPIO_MIO_PROP_CASES` (default 64).
#![cfg(unix)]

mod common;

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use common::*;
use proptest::prelude::*;
use tpio_core::driver::{cancel_io, CancelScope, HandleKind, Issued, OpKind};
use tpio_core::Win32Error;

#[derive(Clone, Debug)]
enum Action {
    /// Issue a read of this many bytes.
    Read(usize),
    /// The peer writes this many bytes (of the running pattern).
    PeerWrite(usize),
    /// Cancel the read issued `pick`-th (mod the number issued; may be done).
    CancelOne(usize),
    /// Cancel an OVERLAPPED never used.
    CancelStranger,
    /// Cancel everything on the handle.
    CancelAll,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (1usize..24).prop_map(Action::Read),
        3 => (1usize..40).prop_map(Action::PeerWrite),
        2 => any::<usize>().prop_map(Action::CancelOne),
        1 => Just(Action::CancelStranger),
        1 => Just(Action::CancelAll),
    ]
}

/// The running pattern the peer writes: byte `i` of the stream.
fn stream_byte(i: usize) -> u8 {
    (i * 31 % 253) as u8 + 1
}

const UNTOUCHED: u8 = 0;

fn run(actions: &[Action]) {
    let (a, b) = socketpair(libc::SOCK_STREAM);
    let r = rig();
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut at_once: HashMap<usize, (Win32Error, usize)> = HashMap::new();
    let mut written = 0usize;
    for act in actions {
        match *act {
            Action::Read(n) => {
                let ov = bufs.len();
                bufs.push(vec![UNTOUCHED; n]);
                let buf = bufs.last_mut().expect("just pushed");
                let kind = OpKind::Read { offset: None };
                match r.submit(
                    a.as_raw_fd(),
                    HandleKind::StreamSocket,
                    kind,
                    buf,
                    std::ptr::null_mut(),
                    ov,
                ) {
                    Issued::Pending => {}
                    Issued::CompletedNow { status, bytes } => {
                        at_once.insert(ov, (status, bytes));
                    }
                    Issued::FailedNow(e) => panic!("read {ov} failed at once: {e:?}"),
                }
            }
            Action::PeerWrite(n) => {
                let data: Vec<u8> = (written..written + n).map(stream_byte).collect();
                write_all(b.as_raw_fd(), &data);
                written += n;
            }
            Action::CancelOne(pick) if !bufs.is_empty() => {
                let ov = pick % bufs.len();
                // NOT_FOUND when it finished already: both are right here.
                let _ = cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(ov));
            }
            Action::CancelOne(_) | Action::CancelStranger => {
                assert_eq!(
                    cancel_io(&r.driver, &r.ops, CancelScope::Overlapped(usize::MAX)),
                    Err(Win32Error::NOT_FOUND)
                );
            }
            Action::CancelAll => {
                let _ = cancel_io(&r.driver, &r.ops, CancelScope::All);
            }
        }
    }
    // The end: whatever still waits is cancelled; every read then has its outcome.
    let _ = cancel_io(&r.driver, &r.ops, CancelScope::All);
    let mut outcomes = at_once;
    let packets = bufs.len() - outcomes.len();
    for _ in 0..packets {
        let (ov, status, bytes) = r.next3();
        assert!(
            outcomes.insert(ov, (status, bytes)).is_none(),
            "two outcomes for read {ov}"
        );
    }
    r.drained();
    assert!(
        r.rx.lock().unwrap().try_recv().is_err(),
        "a packet too many"
    );
    // A registration, if any operation waited, lasts until the handle goes.
    r.closing(a.as_raw_fd());
    assert_eq!(r.driver.stats().registered_now, 0);

    let mut got = Vec::new();
    for (ov, buf) in bufs.iter().enumerate() {
        match outcomes[&ov] {
            (Win32Error::SUCCESS, n) => {
                assert!(n > 0 && n <= buf.len(), "read {ov}: {n} bytes");
                got.extend_from_slice(&buf[..n]);
                assert!(
                    buf[n..].iter().all(|&x| x == UNTOUCHED),
                    "read {ov} wrote past its count"
                );
            }
            (Win32Error::OPERATION_ABORTED, 0) => {
                assert!(
                    buf.iter().all(|&x| x == UNTOUCHED),
                    "cancelled read {ov} moved data"
                );
            }
            other => panic!("read {ov}: unexpected outcome {other:?}"),
        }
    }
    let expected: Vec<u8> = (0..got.len()).map(stream_byte).collect();
    assert_eq!(
        got, expected,
        "successful reads, in issue order, are the stream's start"
    );
    // What no read took is still there, in order.
    let rest = written - got.len();
    if rest > 0 {
        let tail = read_exact(a.as_raw_fd(), rest);
        let expected: Vec<u8> = (got.len()..written).map(stream_byte).collect();
        assert_eq!(tail, expected);
    }
}

fn cases() -> u32 {
    std::env::var("TPIO_MIO_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reads_cancels_and_peer_writes_keep_order_and_exactly_once(
        actions in prop::collection::vec(action(), 1..48)
    ) {
        run(&actions);
    }
}
