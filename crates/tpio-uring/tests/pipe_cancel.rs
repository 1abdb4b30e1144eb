//! A pipe read stays pending until data comes, or until it is cancelled.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use tpio_uring::{op, Completion, Ring};

#[test]
fn pending_pipe_read_is_cancelled_by_user_data() {
    if !uring_here() {
        return;
    }
    let (rd, _wr) = pipe();
    let ring = Ring::new(8).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: `buf` outlives the completion, reaped below.
    unsafe {
        ring.push(
            42,
            op::read_at(rd.as_raw_fd(), buf.as_mut_ptr(), 16, op::CURRENT_POSITION),
        )
    }
    .unwrap();
    let mut reaper = ring.reaper();
    assert_quiet(&mut reaper, Duration::from_millis(100));
    assert_eq!(ring.stats().in_flight, 1);

    ring.cancel(42).unwrap();
    let mut cs = collect(&mut reaper, 2);
    cs.sort_by_key(|c| matches!(c, Completion::Cancel { .. }));
    assert_eq!(
        cs,
        [
            Completion::Op {
                user_data: 42,
                result: -libc::ECANCELED
            },
            Completion::Cancel {
                target: 42,
                result: 0
            },
        ]
    );
    assert_eq!(ring.stats().in_flight, 0);
}

#[test]
fn cancel_of_nothing_reports_enoent() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    ring.cancel(7).unwrap();
    let cs = collect(&mut ring.reaper(), 1);
    assert_eq!(
        cs,
        [Completion::Cancel {
            target: 7,
            result: -libc::ENOENT
        }]
    );
}

#[test]
fn pending_pipe_read_completes_when_data_arrives() {
    if !uring_here() {
        return;
    }
    let (rd, wr) = pipe();
    let ring = Ring::new(8).unwrap();
    let mut buf = [0u8; 16];
    // SAFETY: `buf` outlives the completion.
    unsafe {
        ring.push(
            1,
            op::read_at(rd.as_raw_fd(), buf.as_mut_ptr(), 16, op::CURRENT_POSITION),
        )
    }
    .unwrap();
    let mut reaper = ring.reaper();
    assert_quiet(&mut reaper, Duration::from_millis(50));
    write_all(wr.as_raw_fd(), b"abc");
    let cs = collect(&mut reaper, 1);
    assert_eq!(
        cs,
        [Completion::Op {
            user_data: 1,
            result: 3
        }]
    );
    assert_eq!(&buf[..3], b"abc");
    // Writer gone: a read sees end of file (0).
    drop(wr);
    // SAFETY: `buf` outlives the completion.
    unsafe {
        ring.push(
            2,
            op::read_at(rd.as_raw_fd(), buf.as_mut_ptr(), 16, op::CURRENT_POSITION),
        )
    }
    .unwrap();
    assert_eq!(
        collect(&mut reaper, 1),
        [Completion::Op {
            user_data: 2,
            result: 0
        }]
    );
}

#[test]
fn cancel_batch_cancels_each_by_user_data() {
    if !uring_here() {
        return;
    }
    let pipes: Vec<_> = (0..5).map(|_| pipe()).collect();
    let ring = Ring::new(4).unwrap();
    let mut bufs = [[0u8; 8]; 5];
    let ops: Vec<_> = pipes
        .iter()
        .zip(bufs.iter_mut())
        .enumerate()
        .map(|(i, ((rd, _), b))| {
            (
                100 + i as u64,
                op::read_at(rd.as_raw_fd(), b.as_mut_ptr(), 8, op::CURRENT_POSITION),
            )
        })
        .collect();
    // SAFETY: the buffers outlive the completions.
    unsafe { ring.push_batch(&ops) }.unwrap();
    ring.cancel_batch(&[100, 101, 102, 103, 104]).unwrap();
    let cs = collect(&mut ring.reaper(), 10);
    for i in 0..5u64 {
        assert_eq!(op_result(&cs, 100 + i), -libc::ECANCELED);
        assert!(
            cs.contains(&Completion::Cancel {
                target: 100 + i,
                result: 0
            }),
            "{cs:?}"
        );
    }
}

#[test]
fn cancel_fd_cancels_all_reads_on_that_fd_only() {
    if !uring_here() {
        return;
    }
    let (rd, _wr) = pipe();
    let (other, other_wr) = pipe();
    let ring = Ring::new(8).unwrap();
    let mut b1 = [0u8; 8];
    let mut b2 = [0u8; 8];
    let mut b3 = [0u8; 8];
    // SAFETY: the buffers outlive the completions.
    unsafe {
        ring.push_batch(&[
            (
                1,
                op::read_at(rd.as_raw_fd(), b1.as_mut_ptr(), 8, op::CURRENT_POSITION),
            ),
            (
                2,
                op::read_at(rd.as_raw_fd(), b2.as_mut_ptr(), 8, op::CURRENT_POSITION),
            ),
            (
                3,
                op::read_at(other.as_raw_fd(), b3.as_mut_ptr(), 8, op::CURRENT_POSITION),
            ),
        ])
    }
    .unwrap();
    let mut reaper = ring.reaper();
    if !ring.features().cancel_fd_all {
        assert_eq!(
            ring.cancel_fd(rd.as_raw_fd()),
            Err(tpio_uring::SubmitError::CancelFdUnsupported)
        );
        ring.cancel_batch(&[1, 2, 3]).unwrap();
        collect(&mut reaper, 6);
        return;
    }
    ring.cancel_fd(rd.as_raw_fd()).unwrap();
    let cs = collect(&mut reaper, 3);
    assert_eq!(op_result(&cs, 1), -libc::ECANCELED);
    assert_eq!(op_result(&cs, 2), -libc::ECANCELED);
    assert!(
        cs.contains(&Completion::CancelFd {
            fd: rd.as_raw_fd(),
            result: 2
        }),
        "{cs:?}"
    );
    // The read on the other pipe is untouched.
    write_all(other_wr.as_raw_fd(), b"x");
    assert_eq!(
        collect(&mut reaper, 1),
        [Completion::Op {
            user_data: 3,
            result: 1
        }]
    );
    // Nothing left on the fd: a count of 0 (with ALL the kernel does not
    // say ENOENT, unlike a cancel by user_data).
    ring.cancel_fd(rd.as_raw_fd()).unwrap();
    assert_eq!(
        collect(&mut reaper, 1),
        [Completion::CancelFd {
            fd: rd.as_raw_fd(),
            result: 0
        }]
    );
}

#[test]
fn cancel_now_cancels_a_pending_read_before_returning() {
    if !uring_here() {
        return;
    }
    let (rd, wr) = pipe();
    let ring = Ring::new(8).unwrap();
    if !ring.features().sync_cancel {
        eprintln!("skipped: IORING_REGISTER_SYNC_CANCEL needs Linux 6.0");
        return;
    }
    let mut buf = [0u8; 16];
    // SAFETY: `buf` outlives the completion, reaped below.
    unsafe {
        ring.push(
            9,
            op::read_at(rd.as_raw_fd(), buf.as_mut_ptr(), 16, op::CURRENT_POSITION),
        )
    }
    .unwrap();
    let mut reaper = ring.reaper();
    assert_quiet(&mut reaper, Duration::from_millis(100));
    assert_eq!(
        ring.cancel_now(9),
        Ok(tpio_uring::cancel::CancelNow::Cancelled)
    );
    // Written after the cancel returned: the cancelled read must not take it.
    // SAFETY: writes 4 bytes from a live array to an open pipe.
    let n = unsafe { libc::write(wr.as_raw_fd(), b"late".as_ptr().cast(), 4) };
    assert_eq!(n, 4);
    // One completion only (a synchronous cancel has none of its own).
    let cs = collect(&mut reaper, 1);
    assert_eq!(
        cs,
        [Completion::Op {
            user_data: 9,
            result: -libc::ECANCELED
        }]
    );
    assert_quiet(&mut reaper, Duration::from_millis(100));
    assert_eq!(ring.stats().in_flight, 0);
    let mut left = [0u8; 8];
    // SAFETY: reads into a live 8-byte array from an open pipe with data.
    let n = unsafe { libc::read(rd.as_raw_fd(), left.as_mut_ptr().cast(), 8) };
    assert_eq!(
        &left[..n as usize],
        b"late",
        "the data is still in the pipe"
    );
}

#[test]
fn cancel_now_of_nothing_or_of_a_reserved_tag() {
    if !uring_here() {
        return;
    }
    let ring = Ring::new(8).unwrap();
    if !ring.features().sync_cancel {
        assert_eq!(
            ring.cancel_now(7),
            Err(tpio_uring::SubmitError::SyncCancelUnsupported)
        );
        return;
    }
    assert_eq!(
        ring.cancel_now(7),
        Ok(tpio_uring::cancel::CancelNow::NotFound)
    );
    assert_eq!(
        ring.cancel_now(u64::MAX),
        Err(tpio_uring::SubmitError::ReservedUserData(u64::MAX))
    );
    assert_quiet(&mut ring.reaper(), Duration::from_millis(50));
}
