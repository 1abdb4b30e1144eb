//! W1 on tpio: one file handle, one TP_IO, 64 reads in flight; each
//! callback checks its read and issues the next one at a new random offset
//! (the xorshift state travels in the operation's tag).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tpio::{Backend, CallbackEnvironment, ThreadpoolIo};

use crate::datafile::Offsets;
use crate::measure::RunError;
use crate::workloads::w1_reads::ReadJob;

struct Shared {
    io: OnceLock<ThreadpoolIo>,
    stop: AtomicBool,
    done: AtomicU64,
    bad: AtomicU64,
    offsets: Offsets,
    block: usize,
}

/// Runs W1 on `backend` with callbacks on `env`; reads per second.
pub fn run(
    backend: &Backend,
    env: &CallbackEnvironment,
    job: &ReadJob<'_>,
) -> Result<f64, RunError> {
    let file = tpio::File::from_std_on(job.data.file.try_clone()?, backend)?;
    let shared = Arc::new(Shared {
        io: OnceLock::new(),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        offsets: Offsets::new(job.blocks(), job.block),
        block: job.block,
    });
    let weak = Arc::downgrade(&shared);
    let io = ThreadpoolIo::new(&file, Some(env), move |_inst, done| {
        let Some(s) = weak.upgrade() else { return };
        if done.result != Ok(s.block) {
            s.bad.fetch_add(1, Ordering::Relaxed);
        }
        s.done.fetch_add(1, Ordering::Relaxed);
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        let state = Offsets::next(done.tag);
        if let Some(io) = s.io.get() {
            if io
                .read_at(done.buf, s.offsets.offset(state), state)
                .is_err()
            {
                s.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
    })?;
    let io = shared.io.get_or_init(|| io);
    let t0 = Instant::now();
    for i in 0..job.depth as u64 {
        let state = Offsets::seed(i);
        io.read_at(vec![0; job.block], shared.offsets.offset(state), state)
            .map_err(|e| RunError::Failed(format!("first reads: {e}")))?;
    }
    std::thread::sleep(job.duration);
    shared.stop.store(true, Ordering::Relaxed);
    io.wait_for_callbacks(false)?;
    let secs = t0.elapsed().as_secs_f64();
    let bad = shared.bad.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(RunError::Failed(format!(
            "{bad} reads did not return a full block"
        )));
    }
    Ok(shared.done.load(Ordering::Relaxed) as f64 / secs)
}
