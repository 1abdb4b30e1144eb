//! W3 on tpio: one TP_IO per socket, one read pending on each; then
//! `cancel_io_ex` on every handle — by OVERLAPPED or for the whole handle —
//! and the time until the last 995 callback has run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use tpio::{Backend, CallbackEnvironment, OverlappedId, ThreadpoolIo, Win32Error};

use crate::measure::RunError;

/// What each cancel names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// `cancel_io_ex(h, Some(ov))`: the one operation.
    Overlapped,
    /// `cancel_io_ex(h, None)`: everything on the handle.
    Handle,
}

/// Runs W3 on `backend`; milliseconds from the first cancel to the last
/// callback.
pub fn run(
    backend: &Backend,
    env: &CallbackEnvironment,
    pending: usize,
    by: By,
) -> Result<f64, RunError> {
    let mut socks = Vec::with_capacity(pending);
    for _ in 0..pending / 2 {
        let (a, b) = tpio::UnixStream::pair_on(backend)?;
        socks.push(a);
        socks.push(b);
    }
    let n = socks.len();
    let aborted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let (last_tx, last_rx) = bounded(1);
    let mut ios: Vec<(ThreadpoolIo, OverlappedId)> = Vec::with_capacity(n);
    for s in &socks {
        let (aborted, seen, last_tx) = (aborted.clone(), seen.clone(), last_tx.clone());
        let io = ThreadpoolIo::new(s, Some(env), move |_inst, done| {
            if done.result == Err(Win32Error::OPERATION_ABORTED) {
                aborted.fetch_add(1, Ordering::Relaxed);
            }
            if seen.fetch_add(1, Ordering::AcqRel) + 1 == n {
                let _ = last_tx.send(Instant::now());
            }
        })?;
        let started = io
            .read(vec![0; 64], 0)
            .map_err(|e| RunError::Failed(e.to_string()))?;
        ios.push((io, started.overlapped));
    }
    // The driver submits asynchronously: let every read reach the kernel.
    crate::peers::wait_until(Duration::from_secs(10), "reads in flight", || {
        socks
            .iter()
            .all(|s| tpio::OverlappedHandle::in_flight(s) == 1)
    })?;
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    for (s, (_, ov)) in socks.iter().zip(&ios) {
        let r = match by {
            By::Overlapped => tpio::cancel_io_ex(s, Some(*ov)),
            By::Handle => tpio::cancel_io_ex(s, None),
        };
        r?;
    }
    let last = last_rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
        RunError::Failed(format!(
            "only {} of {n} callbacks came",
            seen.load(Ordering::Relaxed)
        ))
    })?;
    let ms = last.duration_since(t0).as_secs_f64() * 1e3;
    for (io, _) in &ios {
        io.wait_for_callbacks(false)?;
    }
    let a = aborted.load(Ordering::Relaxed);
    if a != n {
        return Err(RunError::Failed(format!("{a} of {n} reads ended with 995")));
    }
    Ok(ms)
}
