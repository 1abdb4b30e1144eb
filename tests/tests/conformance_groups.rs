//! Conformance of cleanup groups (rule 9) with real I/O on the backend this
//! host has: `close_members(true, …)` releases every member, runs the
//! group's cleanup callback once per member, drops queued callbacks, and a
//! read still pending in the kernel afterwards gets no callback — its
//! buffer is freed when it completes.

mod support;

use std::sync::{mpsc, Arc, Mutex};

use support::*;
use tpio::{
    CallbackEnvironment, CleanupGroup, Done, OverlappedHandle, Pool, ThreadpoolIo, Win32Error,
};

#[test]
fn rule_9_close_members_with_cancel_releases_members_with_a_pending_read() {
    if !backend_here() {
        return;
    }
    let pool = Pool::new("conformance-group");
    let group = CleanupGroup::new();
    let cleaned: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let c2 = cleaned.clone();
    let env = CallbackEnvironment::new().pool(&pool).cleanup_group(
        &group,
        Some(Arc::new(move |obj_ctx, group_ctx| {
            c2.lock().expect("cleaned").push((obj_ctx, group_ctx));
        })),
    );
    let (tx, rx) = mpsc::channel::<Done>();
    let make = |h: &dyn OverlappedHandle| {
        let tx = Mutex::new(tx.clone());
        ThreadpoolIo::new(h, Some(&env), move |_i, d| {
            let _ = tx.lock().map(|t| t.send(d));
        })
        .expect("create")
    };
    // Member a: a read that waits for data. Member b: a read that completes.
    let (rd_a, wr_a) = tpio::pipe().expect("pipe a");
    let (rd_b, wr_b) = tpio::pipe().expect("pipe b");
    let a = make(&rd_a);
    let b = make(&rd_b);
    a.read(vec![0; 8], 1).expect("a issued");
    write_pipe(&wr_b, b"b");
    b.read(vec![0; 8], 2).expect("b issued");
    let d = rx.recv_timeout(PATIENCE).expect("b's callback");
    assert_eq!((d.tag, d.result), (2, Ok(1)));
    assert_eq!(rd_a.in_flight(), 1);

    group.close_members(true, 7).expect("close_members");
    let mut c = cleaned.lock().expect("cleaned").clone();
    c.sort();
    assert_eq!(c, vec![(0, 7), (0, 7)], "one cleanup callback per member");
    assert_eq!(group.member_count(), 0);
    // The members are released: using them is diagnosed, not corruption.
    let e = a.read(vec![0; 8], 3).expect_err("a is released");
    assert_eq!(e.error, Win32Error::INVALID_HANDLE);
    // a's read is still in the kernel; when it completes, no callback.
    write_pipe(&wr_a, b"late");
    let deadline = std::time::Instant::now() + PATIENCE;
    while rd_a.in_flight() != 0 {
        assert!(std::time::Instant::now() < deadline, "a's read never ended");
        std::thread::yield_now();
    }
    assert!(
        rx.recv_timeout(QUIET).is_err(),
        "no callback after close_members(true)"
    );
    assert_eq!(pool.stats().misuse_total(), 1, "only the use after release");
}
