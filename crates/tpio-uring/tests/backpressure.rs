//! A full SQ is back-pressure, never an error: far more operations than SQ
//! (and CQ) entries, pushed with nobody reaping, all complete exactly once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use tpio_uring::{op, Completion, Ring, RingBuilder, SubmitMode};

#[test]
fn thousand_nops_through_eight_slots_one_by_one() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    assert_eq!(ring.features().sq_entries, 8);
    for ud in 0..1000u64 {
        // SAFETY: NOPs touch no memory.
        unsafe { ring.push(ud, op::nop()) }.unwrap();
    }
    // Nobody reaped while pushing: 1000 completions did not fit a 16-entry CQ.
    // Each push submitted at once, so the SQ never filled; the CQ (16)
    // overflowed into the kernel's overflow list, which the reaper flushes.
    let s = ring.stats();
    assert_eq!((s.in_flight, s.sq_full), (1000, 0), "{s:?}");
    let cs = collect(&mut ring.reaper(), 1000);
    let uds: HashSet<u64> = cs
        .iter()
        .map(|c| match *c {
            Completion::Op {
                user_data,
                result: 0,
            } => user_data,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(uds, (0..1000).collect());
    assert_eq!(ring.stats().in_flight, 0);
}

#[test]
fn thousand_file_reads_in_one_batch_through_eight_slots() {
    if !uring_here() {
        return;
    }
    let data = pattern(4000);
    let f = TempFile::with(&data);
    let ring = Ring::new(8).unwrap();
    let mut bufs = vec![[0u8; 4]; 1000];
    let ops: Vec<_> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| {
            (
                i as u64,
                op::read_at(f.fd(), b.as_mut_ptr(), 4, i as u64 * 4),
            )
        })
        .collect();
    // SAFETY: `bufs` outlives the completions, all reaped below.
    unsafe { ring.push_batch(&ops) }.unwrap();
    // One lock, and one submit each time the 8 slots filled, plus the last.
    let s = ring.stats();
    assert!(
        s.sq_full >= 1000 / 8 - 1,
        "the SQ should have filled: {s:?}"
    );
    assert_eq!(s.submit_calls, s.sq_full + 1, "{s:?}");
    let cs = collect(&mut ring.reaper(), 1000);
    let mut seen = HashSet::new();
    for c in &cs {
        match *c {
            Completion::Op { user_data, result } => {
                assert_eq!(result, 4, "read {user_data}");
                assert!(seen.insert(user_data), "twice: {user_data}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for (i, b) in bufs.iter().enumerate() {
        assert_eq!(b[..], data[i * 4..i * 4 + 4], "buffer {i}");
    }
}

const PER: u64 = 2000;

#[test]
fn four_pushers_and_a_reaper_lose_nothing_direct() {
    if uring_here() {
        four_pushers_and_a_reaper(SubmitMode::Direct);
    }
}

/// Owner mode: pushers never submit; when the SQ is full they wait for the
/// reaper thread to submit for them.
#[test]
fn four_pushers_and_a_reaper_lose_nothing_owner() {
    if uring_here() {
        let s = four_pushers_and_a_reaper(SubmitMode::Owner);
        assert!(s.sq_full > 0, "{s:?}");
    }
}

#[test]
fn four_pushers_and_a_reaper_lose_nothing_sqpoll() {
    if uring_here() {
        four_pushers_and_a_reaper(SubmitMode::SqPoll {
            idle: std::time::Duration::from_millis(5),
        });
    }
}

fn four_pushers_and_a_reaper(mode: SubmitMode) -> tpio_uring::RingStats {
    let ring = Arc::new(
        RingBuilder::new(8)
            .cq_entries(16)
            .submit_mode(mode)
            .build()
            .unwrap(),
    );
    let reaper_ring = Arc::clone(&ring);
    let reaper = std::thread::spawn(move || {
        let mut reaper = reaper_ring.reaper();
        let mut seen = HashSet::new();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while seen.len() < (4 * PER) as usize {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} reaped",
                seen.len()
            );
            reaper
                .wait(Some(TIMEOUT), |c| match c {
                    Completion::Op {
                        user_data,
                        result: 0,
                    } => assert!(seen.insert(user_data)),
                    other => panic!("unexpected {other:?}"),
                })
                .unwrap();
        }
        seen
    });
    let pushers: Vec<_> = (0..4u64)
        .map(|t| {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                for i in 0..PER {
                    if i % 3 == 0 {
                        let batch: Vec<_> = (0..3)
                            .map(|k| (t * PER + i + k, op::nop()))
                            .take((PER - i).min(3) as usize)
                            .collect();
                        // SAFETY: NOPs touch no memory.
                        unsafe { ring.push_batch(&batch) }.unwrap();
                    }
                }
            })
        })
        .collect();
    for p in pushers {
        p.join().unwrap();
    }
    let seen = reaper.join().unwrap();
    assert_eq!(seen, (0..4 * PER).collect());
    let s = ring.stats();
    assert_eq!(s.in_flight, 0, "{mode:?}");
    s
}
