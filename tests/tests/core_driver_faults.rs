//! A deliberately broken driver: it says an operation is pending and then
//! loses its packet (drops the `CompletionTarget` undelivered), inside
//! `submit` or later, on another thread. The core must diagnose it
//! (`Misuse::DriverLostPacket`, counted in `misuse_driver_lost_packet`) and
//! deliver `ERROR_INTERNAL_ERROR` (1359) with 0 bytes for the operation's own
//! OVERLAPPED, so the start is balanced, `wait_for_callbacks` returns and the
//! object is released. A driver that keeps the contract — dropping the
//! target inside `submit` when it answers `CompletedNow` or `FailedNow` —
//! must cause no diagnosis and no extra packet.
//!
//! See `spec/semantics.md`, "A driver that loses a packet".

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tpio_core::driver::{
    settle, Driver, HandleKind, HandleOps, IssueOutcome, Issued, OpKind, RawHandle, Submission,
};
use tpio_core::{CallbackEnvironment, CompletionTarget, Discard, IoObject, Pool};
use tpio_core::{Misuse, Win32Error};
use tpio_tests::{done, Recorder, Seen, PATIENCE};

const OK: Win32Error = Win32Error::SUCCESS;
const LOST: Win32Error = Win32Error::INTERNAL_ERROR;

/// What the broken driver does with the next submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    /// Drops the target inside `submit` and answers `Pending` (broken).
    DropSayPending,
    /// Keeps the target and answers `Pending` (fine until it loses it).
    KeepSayPending,
    /// Drops the target inside `submit` and answers this (the contract).
    DropSay(Issued),
}

#[derive(Debug)]
struct BrokenDriver {
    act: Mutex<Act>,
    kept: Mutex<Vec<(usize, CompletionTarget)>>,
}

impl BrokenDriver {
    fn new(act: Act) -> Arc<Self> {
        Arc::new(BrokenDriver {
            act: Mutex::new(act),
            kept: Mutex::new(Vec::new()),
        })
    }

    /// Drops every kept target undelivered (a driver losing its table).
    fn lose_all(&self) -> usize {
        let kept = std::mem::take(&mut *self.kept.lock());
        let n = kept.len();
        drop(kept);
        n
    }

    /// Delivers the kept target of `overlapped` properly.
    fn deliver(&self, overlapped: usize, status: Win32Error, bytes: usize) {
        let mut kept = self.kept.lock();
        let i = kept
            .iter()
            .position(|(ov, _)| *ov == overlapped)
            .expect("kept");
        let (_, t) = kept.remove(i);
        drop(kept);
        t.complete(done(overlapped, status, bytes));
    }
}

impl Driver for BrokenDriver {
    fn name(&self) -> &'static str {
        "broken"
    }

    unsafe fn submit(&self, op: Submission, target: CompletionTarget) -> Issued {
        match *self.act.lock() {
            Act::DropSayPending => {
                drop(target);
                Issued::Pending
            }
            Act::KeepSayPending => {
                self.kept.lock().push((op.overlapped, target));
                Issued::Pending
            }
            Act::DropSay(issued) => {
                drop(target);
                issued
            }
        }
    }

    fn cancel(&self, _keys: &[u64]) {}
}

/// One object on a private pool, recorded.
struct Fixture {
    pool: Pool,
    io: Option<IoObject>,
    rec: Arc<Recorder>,
    ops: Arc<HandleOps>,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let pool = Pool::new(name);
        let rec = Recorder::new();
        let io = IoObject::new(&CallbackEnvironment::new().pool(&pool), 0, rec.callback());
        Fixture {
            pool,
            io: Some(io),
            rec,
            ops: Arc::new(HandleOps::new()),
        }
    }

    fn io(&self) -> &IoObject {
        self.io.as_ref().expect("open")
    }

    /// start → issue through `issue_with` → rule 2 (with the balancing
    /// cancel a Win32 caller makes), as the facade does.
    fn issue(&self, driver: &BrokenDriver, ov: usize) -> Result<IssueOutcome, Win32Error> {
        self.io().start()?;
        let sub = Submission {
            handle: RawHandle(1),
            handle_kind: HandleKind::Pipe,
            kind: OpKind::Read { offset: None },
            buf: std::ptr::null_mut(),
            len: 0,
            addr: std::ptr::null_mut(),
            overlapped: ov,
            ops: self.ops.clone(),
            thread: std::thread::current().id(),
            skip_on_success: false,
        };
        // SAFETY: the broken driver touches no buffer.
        let issued = self
            .io()
            .issue_with(ov, |t| unsafe { driver.submit(sub, t) });
        let sync = matches!(issued, Issued::CompletedNow { status, .. } if status.is_success())
            .then(|| self.io().target());
        let out = settle(issued, sync, ov, false);
        if out.is_err() {
            self.io().cancel().expect("balancing cancel");
        }
        out
    }

    fn lost(&self) -> u64 {
        self.pool.stats().misuse_driver_lost_packet
    }
}

#[test]
fn pending_then_target_dropped_inside_submit_gets_internal_error_callback() {
    let mut f = Fixture::new("faults-in-submit");
    let driver = BrokenDriver::new(Act::DropSayPending);
    assert_eq!(f.issue(&driver, 0x51), Ok(IssueOutcome::Pending));
    assert!(f.rec.wait_callbacks(1), "no callback for the lost packet");
    assert_eq!(f.rec.callbacks(), vec![done(0x51, LOST, 0)]);
    assert_eq!(f.lost(), 1);
    assert_eq!(f.pool.stats().misuse_total(), 1);
    assert_eq!(
        f.io().wait_for_callbacks_timeout(false, PATIENCE),
        Ok(true),
        "wait_for_callbacks hangs on a lost packet"
    );
    let c = f.io().counts();
    assert_eq!((c.pending, c.queued, c.running), (0, 0, 0));
    f.io.take().unwrap().close();
    assert!(f.rec.wait_until(|s| s.contains(&Seen::Released)));
    assert_eq!(f.rec.releases(), 1);
    assert_eq!(f.pool.stats().live_objects(), 0);
}

#[test]
fn pending_target_lost_later_on_another_thread_unblocks_a_waiter() {
    let f = Fixture::new("faults-later");
    let driver = BrokenDriver::new(Act::KeepSayPending);
    for ov in [0x61, 0x62, 0x63] {
        assert_eq!(f.issue(&driver, ov), Ok(IssueOutcome::Pending));
    }
    // One is delivered properly; the other two are lost while a thread waits.
    driver.deliver(0x62, OK, 9);
    assert!(f.rec.wait_callbacks(1));
    assert_eq!(
        f.io()
            .wait_for_callbacks_timeout(false, Duration::from_millis(50)),
        Ok(false),
        "two starts are still outstanding"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| f.io().wait_for_callbacks_timeout(false, PATIENCE));
        let d = driver.clone();
        let loser = s.spawn(move || d.lose_all());
        assert_eq!(loser.join().unwrap(), 2);
        assert_eq!(
            waiter.join().unwrap(),
            Ok(true),
            "the waiter was not released"
        );
    });
    let mut got = f.rec.callbacks();
    got.sort_by_key(|c| c.overlapped);
    assert_eq!(
        got,
        vec![done(0x61, LOST, 0), done(0x62, OK, 9), done(0x63, LOST, 0)]
    );
    assert_eq!(f.lost(), 2);
    assert!(f.rec.discards().is_empty());
}

#[test]
fn contract_drops_for_completed_now_and_failed_now_are_not_diagnosed() {
    let f = Fixture::new("faults-legal");
    let failed = BrokenDriver::new(Act::DropSay(Issued::FailedNow(Win32Error::ACCESS_DENIED)));
    assert_eq!(f.issue(&failed, 0x71), Err(Win32Error::ACCESS_DENIED));
    let now = BrokenDriver::new(Act::DropSay(Issued::CompletedNow {
        status: OK,
        bytes: 4,
    }));
    assert_eq!(
        f.issue(&now, 0x72),
        Ok(IssueOutcome::Done {
            bytes: 4,
            callback: true
        })
    );
    let failed_late = BrokenDriver::new(Act::DropSay(Issued::CompletedNow {
        status: Win32Error::BROKEN_PIPE,
        bytes: 0,
    }));
    assert_eq!(f.issue(&failed_late, 0x73), Err(Win32Error::BROKEN_PIPE));
    assert_eq!(f.io().wait_for_callbacks_timeout(false, PATIENCE), Ok(true));
    // Exactly one callback: the synchronous success's, with its own result.
    assert_eq!(f.rec.callbacks(), vec![done(0x72, OK, 4)]);
    assert!(f.rec.discards().is_empty());
    assert_eq!(f.pool.stats().misuse_total(), 0, "{:?}", f.pool.stats());
    // A plain (unwatched) target dropped undelivered goes unnoticed, as documented.
    drop(f.io().target());
    assert_eq!(f.pool.stats().misuse_total(), 0);
}

#[test]
fn lost_packet_of_a_start_skipped_by_wait_true_is_discarded_not_called_back() {
    let mut f = Fixture::new("faults-skipped");
    let driver = BrokenDriver::new(Act::KeepSayPending);
    assert_eq!(f.issue(&driver, 0x81), Ok(IssueOutcome::Pending));
    assert_eq!(f.io().wait_for_callbacks(true), Ok(()));
    f.io.take().unwrap().close();
    assert_eq!(
        f.rec.releases(),
        0,
        "released with a start's I/O in the kernel"
    );
    assert_eq!(driver.lose_all(), 1);
    assert!(f.rec.wait_until(|s| s.contains(&Seen::Released)));
    assert!(f.rec.callbacks().is_empty(), "{:?}", f.rec.seen());
    assert_eq!(
        f.rec.discards(),
        vec![(done(0x81, LOST, 0), Discard::Skipped)]
    );
    assert_eq!(f.lost(), 1);
    assert_eq!(f.rec.releases(), 1);
    assert_eq!(f.pool.stats().live_objects(), 0);
}

#[test]
fn lost_packet_after_close_still_calls_back_then_releases() {
    let mut f = Fixture::new("faults-closed");
    let driver = BrokenDriver::new(Act::KeepSayPending);
    assert_eq!(f.issue(&driver, 0x91), Ok(IssueOutcome::Pending));
    f.io.take().unwrap().close();
    assert_eq!(driver.lose_all(), 1);
    assert!(f.rec.wait_until(|s| s.contains(&Seen::Released)));
    let seen = f.rec.seen();
    assert!(
        matches!(&seen[..], [Seen::Callback { c, .. }, Seen::Released] if *c == done(0x91, LOST, 0)),
        "{seen:?}"
    );
    assert_eq!(f.lost(), 1);
}

#[test]
fn the_diagnosis_names_the_driver_contract() {
    let rule = Misuse::DriverLostPacket.rule();
    assert!(rule.contains("driver contract"), "{rule}");
    assert!(rule.contains("1359"), "{rule}");
    assert_eq!(Win32Error::INTERNAL_ERROR.code(), 1359);
    assert_eq!(
        Win32Error::INTERNAL_ERROR.name(),
        Some("ERROR_INTERNAL_ERROR")
    );
}

#[test]
fn a_lost_packet_of_a_blocking_call_ends_its_wait_with_internal_error() {
    use std::sync::Arc;
    use tpio_core::{CompletionTarget, OverlappedStatus, Win32Error};
    let status = Arc::new(OverlappedStatus::new());
    let target = CompletionTarget::for_status(status.clone());
    assert!(status.is_pending());
    let waiter = {
        let s = status.clone();
        std::thread::spawn(move || s.get(true))
    };
    // A driver that said Pending and then lost the target.
    drop(target);
    assert_eq!(
        waiter.join().expect("waiter"),
        Err(Win32Error::INTERNAL_ERROR)
    );
    // A delivered packet is not overwritten by the drop.
    let status = Arc::new(OverlappedStatus::new());
    let target = CompletionTarget::for_status(status.clone());
    target.complete(tpio_core::Completion {
        overlapped: 0,
        status: Win32Error::SUCCESS,
        bytes: 5,
    });
    assert_eq!(status.get(false), Ok(5));
}
