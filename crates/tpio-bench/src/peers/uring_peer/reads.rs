//! W1 on plain io_uring: the one-thread loop with no callbacks (the
//! ceiling), and the same loop handing each completion to worker threads
//! through a channel, whose "callback" asks for the next read.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, Sender};
use io_uring::{opcode, types, IoUring};

use super::KernelBufs;
use crate::datafile::Offsets;
use crate::measure::RunError;
use crate::workloads::w1_reads::ReadJob;

fn read_sqe(fd: i32, buf: &mut [u8], off: u64, slot: usize) -> io_uring::squeue::Entry {
    opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
        .offset(off)
        .build()
        .user_data(slot as u64)
}

/// The ceiling: one thread submits and reaps, no callbacks, no hand-off.
pub fn ceiling(job: &ReadJob<'_>) -> Result<f64, RunError> {
    let fd = job.data.file.as_raw_fd();
    let offsets = Offsets::new(job.blocks(), job.block);
    // Buffers first: dropped after the ring, and only once all is reaped.
    let mut bufs = KernelBufs::new(vec![vec![0u8; job.block]; job.depth]);
    let mut states: Vec<u64> = (0..job.depth as u64).map(Offsets::seed).collect();
    let mut ring = IoUring::new((2 * job.depth) as u32)?;
    {
        let mut sq = ring.submission();
        for (slot, b) in bufs.iter_mut().enumerate() {
            let e = read_sqe(fd, b, offsets.offset(states[slot]), slot);
            // SAFETY: each buffer outlives its read: the loop below reaps
            // every read before the function returns, and `bufs` is dropped
            // after the ring.
            unsafe { sq.push(&e) }.map_err(|_| RunError::Failed("SQ full".into()))?;
        }
    }
    let t0 = Instant::now();
    let (mut inflight, mut done, mut bad) = (job.depth, 0u64, 0u64);
    let mut stopping = false;
    while inflight > 0 {
        ring.submit_and_wait(1)?;
        let (_, mut sq, cq) = ring.split();
        for cqe in cq {
            inflight -= 1;
            done += 1;
            if cqe.result() != job.block as i32 {
                bad += 1;
            }
            if stopping {
                continue;
            }
            let slot = cqe.user_data() as usize;
            states[slot] = Offsets::next(states[slot]);
            let e = read_sqe(fd, &mut bufs[slot], offsets.offset(states[slot]), slot);
            // SAFETY: as above; at most `depth` entries in a 2×depth SQ.
            unsafe { sq.push(&e) }.map_err(|_| RunError::Failed("SQ full".into()))?;
            inflight += 1;
        }
        stopping = stopping || t0.elapsed() >= job.duration;
    }
    bufs.all_reaped();
    let secs = t0.elapsed().as_secs_f64();
    if bad > 0 {
        return Err(RunError::Failed(format!("{bad} short reads")));
    }
    Ok(done as f64 / secs)
}

/// A completion handed to a worker: slot, its offset state, the result.
type Handed = (usize, u64, i32);
/// A worker's answer: the slot, and the next state (`None`: stop).
type Next = (usize, Option<u64>);

/// The ring thread (the caller) reaps and sends each completion through a
/// channel to `workers` threads; a worker checks it and sends the slot back
/// with its next offset, which the ring thread submits.
pub fn handoff(job: &ReadJob<'_>, workers: usize) -> Result<f64, RunError> {
    let fd = job.data.file.as_raw_fd();
    let offsets = Offsets::new(job.blocks(), job.block);
    let mut bufs = KernelBufs::new(vec![vec![0u8; job.block]; job.depth]);
    let mut ring = IoUring::new((2 * job.depth) as u32)?;
    let (to_workers, work_rx) = unbounded::<Handed>();
    let (next_tx, from_workers) = unbounded::<Next>();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, tx) = (work_rx.clone(), next_tx.clone());
            let (stop, done, bad, block) = (stop.clone(), done.clone(), bad.clone(), job.block);
            std::thread::spawn(move || worker(rx, tx, &stop, &done, &bad, block))
        })
        .collect();
    drop((work_rx, next_tx));
    let r = ring_thread(
        &mut ring,
        fd,
        &mut bufs,
        offsets,
        job,
        &to_workers,
        &from_workers,
        &stop,
    );
    if r.is_ok() {
        bufs.all_reaped();
    }
    drop(to_workers);
    for h in handles {
        let _ = h.join();
    }
    let secs = r?;
    let bad = bad.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(RunError::Failed(format!("{bad} short reads")));
    }
    Ok(done.load(Ordering::Relaxed) as f64 / secs)
}

fn worker(
    rx: Receiver<Handed>,
    tx: Sender<Next>,
    stop: &AtomicBool,
    done: &AtomicU64,
    bad: &AtomicU64,
    block: usize,
) {
    for (slot, state, res) in rx {
        if res != block as i32 {
            bad.fetch_add(1, Ordering::Relaxed);
        }
        done.fetch_add(1, Ordering::Relaxed);
        let next = (!stop.load(Ordering::Relaxed)).then(|| Offsets::next(state));
        if tx.send((slot, next)).is_err() {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ring_thread(
    ring: &mut IoUring,
    fd: i32,
    bufs: &mut [Vec<u8>],
    offsets: Offsets,
    job: &ReadJob<'_>,
    to_workers: &Sender<Handed>,
    from_workers: &Receiver<Next>,
    stop: &AtomicBool,
) -> Result<f64, RunError> {
    let mut states: Vec<u64> = (0..job.depth as u64).map(Offsets::seed).collect();
    let t0 = Instant::now();
    // Reads in the kernel, and slots out with the workers.
    let (mut in_kernel, mut with_workers) = (0usize, 0usize);
    let mut queue: Vec<(usize, u64)> = states.iter().copied().enumerate().collect();
    loop {
        if queue.is_empty() && in_kernel == 0 && with_workers > 0 {
            // Nothing to submit or reap: wait for a worker.
            let (slot, next) = from_workers
                .recv()
                .map_err(|_| RunError::Failed("workers gone".into()))?;
            with_workers -= 1;
            if let Some(s) = next {
                queue.push((slot, s));
            }
        }
        while let Ok((slot, next)) = from_workers.try_recv() {
            with_workers -= 1;
            if let Some(s) = next {
                queue.push((slot, s));
            }
        }
        {
            let mut sq = ring.submission();
            for (slot, s) in queue.drain(..) {
                states[slot] = s;
                let e = read_sqe(fd, &mut bufs[slot], offsets.offset(s), slot);
                // SAFETY: each slot's buffer has one read at a time and
                // outlives it: the loop runs until every read is reaped.
                unsafe { sq.push(&e) }.map_err(|_| RunError::Failed("SQ full".into()))?;
                in_kernel += 1;
            }
        }
        if in_kernel == 0 && with_workers == 0 {
            break;
        }
        ring.submit_and_wait(usize::from(in_kernel > 0))?;
        for cqe in ring.completion() {
            in_kernel -= 1;
            with_workers += 1;
            let slot = cqe.user_data() as usize;
            to_workers
                .send((slot, states[slot], cqe.result()))
                .map_err(|_| RunError::Failed("workers gone".into()))?;
        }
        if t0.elapsed() >= job.duration {
            stop.store(true, Ordering::Relaxed);
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}
