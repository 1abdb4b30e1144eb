//! Property test: random sequences of start / issue / complete / fail-now /
//! succeed-now (with and without skip-on-success) / cancel-threadpool-io /
//! cancel by OVERLAPPED / cancel all / run queued callbacks / wait(true|false)
//! / close / stray packets, run against the core (manual pool, simulated
//! driver) and against `Model`, a small sequential reference written from
//! `spec/semantics.md`. After every step the callbacks, discards, releases,
//! counts and misuse counters must agree exactly.
//!
//! Cases: `TPIO_MODEL_CASES` (default 10,000).

use proptest::prelude::*;
use std::collections::VecDeque;
use tpio_core::driver::{cancel_io, CancelScope, IssueOutcome, Issued};
use tpio_core::{Completion, Discard, Win32Error};
use tpio_tests::{done, Harness};

const STATUSES: [Win32Error; 4] = [
    Win32Error::SUCCESS,
    Win32Error::HANDLE_EOF,
    Win32Error::BROKEN_PIPE,
    Win32Error::WSAECONNRESET,
];

#[derive(Clone, Debug)]
enum Outcome {
    Pending,
    SuccessNow(usize),
    FailNow,
}

#[derive(Clone, Debug)]
enum Action {
    Issue {
        outcome: Outcome,
        skip: bool,
    },
    Complete {
        pick: usize,
        status: usize,
        bytes: usize,
        finished_first: bool,
    },
    CancelOverlapped {
        pick: usize,
        stale: bool,
    },
    CancelAll,
    RunQueued(usize),
    Wait {
        cancel: bool,
    },
    Close,
    Stray,
}

fn action() -> impl Strategy<Value = Action> {
    let outcome = prop_oneof![
        4 => Just(Outcome::Pending),
        1 => (0usize..4096).prop_map(Outcome::SuccessNow),
        1 => Just(Outcome::FailNow),
    ];
    prop_oneof![
        6 => (outcome, any::<bool>()).prop_map(|(outcome, skip)| Action::Issue { outcome, skip }),
        5 => (any::<usize>(), 0..STATUSES.len(), 0usize..4096, prop::bool::weighted(0.2))
            .prop_map(|(pick, status, bytes, finished_first)| Action::Complete { pick, status, bytes, finished_first }),
        2 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(pick, stale)| Action::CancelOverlapped { pick, stale }),
        1 => Just(Action::CancelAll),
        3 => (0usize..4).prop_map(Action::RunQueued),
        2 => any::<bool>().prop_map(|cancel| Action::Wait { cancel }),
        1 => Just(Action::Close),
        1 => Just(Action::Stray),
    ]
}

#[derive(Debug)]
struct MOp {
    ov: usize,
    epoch: u32,
    cancel_requested: bool,
}

#[derive(Debug, Default)]
struct Model {
    epoch: u32,
    pending: u32,
    skipped: u32,
    queued: VecDeque<Completion>,
    in_flight: Vec<MOp>,
    callbacks: Vec<Completion>,
    discards: Vec<(Completion, Discard)>,
    closed: bool,
    released: usize,
    misuse_no_start: u64,
    next_ov: usize,
}

impl Model {
    /// What the rules say a packet of an operation issued in `epoch` gets.
    fn accept(&mut self, epoch: u32, c: Completion) {
        if epoch != self.epoch && self.skipped > 0 {
            self.skipped -= 1;
            self.discards.push((c, Discard::Skipped));
        } else if self.pending > 0 {
            self.pending -= 1;
            self.queued.push_back(c);
        } else if self.skipped > 0 {
            self.skipped -= 1;
            self.discards.push((c, Discard::Skipped));
        } else {
            self.discards.push((c, Discard::NoStart));
            self.misuse_no_start += 1;
        }
    }

    fn settle_release(&mut self) {
        if self.closed
            && self.released == 0
            && self.pending == 0
            && self.skipped == 0
            && self.queued.is_empty()
        {
            self.released = 1;
        }
    }

    fn fresh_ov(&mut self) -> usize {
        self.next_ov += 1;
        self.next_ov * 0x10
    }
}

fn step(h: &mut Harness, m: &mut Model, a: &Action) {
    match a {
        Action::Issue { outcome, skip } => {
            if m.closed {
                return;
            }
            let ov = m.fresh_ov();
            match outcome {
                Outcome::Pending => {
                    assert_eq!(
                        h.issue(ov, Issued::Pending, *skip),
                        Ok(IssueOutcome::Pending)
                    );
                    m.in_flight.push(MOp {
                        ov,
                        epoch: m.epoch,
                        cancel_requested: false,
                    });
                    m.pending += 1;
                }
                Outcome::SuccessNow(bytes) => {
                    let got = h.issue(
                        ov,
                        Issued::CompletedNow {
                            status: Win32Error::SUCCESS,
                            bytes: *bytes,
                        },
                        *skip,
                    );
                    assert_eq!(
                        got,
                        Ok(IssueOutcome::Done {
                            bytes: *bytes,
                            callback: !*skip
                        })
                    );
                    if *skip {
                        h.io().cancel().unwrap();
                    } else {
                        m.pending += 1;
                        let e = m.epoch;
                        m.accept(e, done(ov, Win32Error::SUCCESS, *bytes));
                    }
                }
                Outcome::FailNow => {
                    let e = Win32Error::INVALID_PARAMETER;
                    assert_eq!(h.issue(ov, Issued::FailedNow(e), *skip), Err(e));
                    h.io().cancel().unwrap();
                }
            }
        }
        Action::Complete {
            pick,
            status,
            bytes,
            finished_first,
        } => {
            if m.in_flight.is_empty() {
                return;
            }
            let op = m.in_flight.remove(pick % m.in_flight.len());
            let key = h
                .driver
                .key_of(op.ov)
                .expect("model and driver agree on what is in flight");
            let status = STATUSES[*status];
            assert!(h.driver.complete_with(key, status, *bytes, *finished_first));
            let c = if op.cancel_requested && !finished_first {
                done(op.ov, Win32Error::OPERATION_ABORTED, 0)
            } else {
                done(op.ov, status, *bytes)
            };
            m.accept(op.epoch, c);
        }
        Action::CancelOverlapped { pick, stale } => {
            let target = if *stale || m.in_flight.is_empty() {
                None
            } else {
                let n = m.in_flight.len();
                Some(&mut m.in_flight[pick % n])
            };
            match target {
                None => assert_eq!(
                    cancel_io(&*h.driver, &h.ops, CancelScope::Overlapped(0xDEAD_0000)),
                    Err(Win32Error::NOT_FOUND)
                ),
                Some(op) => {
                    assert_eq!(
                        cancel_io(&*h.driver, &h.ops, CancelScope::Overlapped(op.ov)),
                        Ok(())
                    );
                    op.cancel_requested = true;
                }
            }
        }
        Action::CancelAll => {
            let r = cancel_io(&*h.driver, &h.ops, CancelScope::All);
            if m.in_flight.is_empty() {
                assert_eq!(r, Err(Win32Error::NOT_FOUND));
            } else {
                assert_eq!(r, Ok(()));
                m.in_flight
                    .iter_mut()
                    .for_each(|o| o.cancel_requested = true);
            }
        }
        Action::RunQueued(n) => {
            let k = (*n).min(m.queued.len());
            assert_eq!(h.pool.run_queued(*n), Ok(k));
            for _ in 0..k {
                let c = m.queued.pop_front().unwrap();
                m.callbacks.push(c);
            }
        }
        Action::Wait { cancel } => {
            if m.closed {
                return;
            }
            if *cancel {
                m.epoch = m.epoch.wrapping_add(1);
                m.skipped += m.pending;
                m.pending = 0;
                while let Some(c) = m.queued.pop_front() {
                    m.discards.push((c, Discard::Dropped));
                }
            }
            let idle = m.pending == 0 && m.queued.is_empty();
            let got = h
                .io()
                .wait_for_callbacks_timeout(*cancel, std::time::Duration::ZERO);
            assert_eq!(got, Ok(idle), "wait({cancel}) idle");
        }
        Action::Close => {
            if !m.closed {
                h.close();
                m.closed = true;
            }
        }
        Action::Stray => {
            if m.closed {
                return;
            }
            let ov = m.fresh_ov();
            h.io().target().complete(done(ov, Win32Error::SUCCESS, 1));
            let e = m.epoch;
            m.accept(e, done(ov, Win32Error::SUCCESS, 1));
        }
    }
    m.settle_release();
}

fn check(h: &Harness, m: &Model, a: &Action) {
    assert_eq!(h.rec.callbacks(), m.callbacks, "callbacks after {a:?}");
    assert_eq!(h.rec.discards(), m.discards, "discards after {a:?}");
    assert_eq!(h.rec.releases(), m.released, "releases after {a:?}");
    if let Some(io) = &h.io {
        let c = io.counts();
        assert_eq!(
            (c.pending, c.skipped, c.queued as usize),
            (m.pending, m.skipped, m.queued.len()),
            "counts after {a:?}"
        );
    }
    assert_eq!(h.pool.queued_len(), m.queued.len());
    assert_eq!(
        h.pool.stats().misuse_completion_without_start,
        m.misuse_no_start
    );
}

fn run(actions: &[Action]) {
    let mut h = Harness::manual("model");
    let mut m = Model::default();
    for a in actions {
        step(&mut h, &mut m, a);
        check(&h, &m, a);
    }
    // Drain: every operation completes, every callback runs, the object closes.
    let finish: Vec<Action> = (0..m.in_flight.len())
        .map(|_| Action::Complete {
            pick: 0,
            status: 0,
            bytes: 1,
            finished_first: false,
        })
        .chain([Action::RunQueued(usize::MAX), Action::Close])
        .collect();
    for a in &finish {
        step(&mut h, &mut m, a);
        check(&h, &m, a);
    }
    assert_eq!(h.pool.run_queued(usize::MAX), Ok(0));
    assert_eq!(h.rec.releases(), 1, "released exactly once");
    assert!(h.driver.in_flight().is_empty());
    assert!(h.ops.is_empty());
    let s = h.pool.stats();
    assert_eq!(s.live_objects(), 0);
    assert_eq!(s.callbacks_run as usize, m.callbacks.len());
}

fn cases() -> u32 {
    std::env::var("TPIO_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn core_matches_reference_model(actions in prop::collection::vec(action(), 1..48)) {
        run(&actions);
    }
}

#[test]
fn model_case_wait_cancel_then_new_start_finishing_first() {
    run(&[
        Action::Issue {
            outcome: Outcome::Pending,
            skip: false,
        },
        Action::Wait { cancel: true },
        Action::Issue {
            outcome: Outcome::Pending,
            skip: false,
        },
        Action::Complete {
            pick: 1,
            status: 0,
            bytes: 3,
            finished_first: false,
        },
        Action::Complete {
            pick: 0,
            status: 0,
            bytes: 3,
            finished_first: false,
        },
        Action::RunQueued(5),
    ]);
}
