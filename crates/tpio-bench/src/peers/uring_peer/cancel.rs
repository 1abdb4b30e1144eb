//! W3 on plain io_uring: a `Read` pending on each of the sockets, then an
//! `ASYNC_CANCEL` per read by its user_data (or, for reference, one
//! `ASYNC_CANCEL_FD | ALL` per fd); the time until every read's
//! `-ECANCELED` completion is reaped.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::KernelBufs;
use crate::measure::RunError;

/// What each cancel names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// `IORING_OP_ASYNC_CANCEL` with the read's user_data.
    UserData,
    /// `IORING_ASYNC_CANCEL_FD | ALL` on the read's fd.
    Fd,
}

const CANCEL_TAG: u64 = 1 << 40;
const BATCH: usize = 1024;

/// Milliseconds from the first cancel submitted to the last read reaped.
pub fn run(pending: usize, by: By) -> Result<f64, RunError> {
    let pairs = crate::net_pairs::unix_pairs(pending / 2)?;
    let socks: Vec<_> = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
    let n = socks.len();
    let mut bufs = KernelBufs::new(vec![[0u8; 64]; n]);
    let mut ring = IoUring::builder()
        .setup_cqsize((4 * n).next_power_of_two().min(1 << 19) as u32)
        .build(BATCH as u32)?;
    let reads: Vec<squeue::Entry> = socks
        .iter()
        .zip(bufs.iter_mut())
        .enumerate()
        .map(|(i, (s, b))| {
            opcode::Read::new(types::Fd(s.as_raw_fd()), b.as_mut_ptr(), 64)
                .build()
                .user_data(i as u64)
        })
        .collect();
    submit_all(&mut ring, &reads)?;
    // Nothing may complete: the sockets are idle.
    std::thread::sleep(Duration::from_millis(20));
    let cancels: Vec<squeue::Entry> = socks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            match by {
                By::UserData => opcode::AsyncCancel::new(i as u64).build(),
                By::Fd => opcode::AsyncCancel2::new(
                    types::CancelBuilder::fd(types::Fd(s.as_raw_fd())).all(),
                )
                .build(),
            }
            .user_data(CANCEL_TAG | i as u64)
        })
        .collect();
    let t0 = Instant::now();
    let (mut reaped, mut cancelled) = (0usize, 0usize);
    let mut next = 0;
    while reaped < n {
        if next < n {
            let end = (next + BATCH).min(n);
            push(&mut ring, &cancels[next..end])?;
            next = end;
            ring.submit()?;
        } else {
            ring.submit_and_wait(1)?;
        }
        for cqe in ring.completion() {
            if cqe.user_data() & CANCEL_TAG == 0 {
                reaped += 1;
                if cqe.result() == -libc::ECANCELED {
                    cancelled += 1;
                }
            }
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    bufs.all_reaped();
    drop(ring);
    drop(bufs);
    if cancelled != n {
        return Err(RunError::Failed(format!(
            "{cancelled} of {n} reads ended -ECANCELED"
        )));
    }
    Ok(ms)
}

fn push(ring: &mut IoUring, entries: &[squeue::Entry]) -> Result<(), RunError> {
    // SAFETY: the reads' buffers (`bufs` in `run`) are freed only after
    // every read was reaped (a KernelBufs leaks them otherwise); cancels
    // touch no memory.
    unsafe { ring.submission().push_multiple(entries) }
        .map_err(|_| RunError::Failed("SQ full".into()))
}

fn submit_all(ring: &mut IoUring, entries: &[squeue::Entry]) -> Result<(), RunError> {
    for chunk in entries.chunks(BATCH) {
        push(ring, chunk)?;
        ring.submit()?;
    }
    Ok(())
}
