//! The contestants' code, one module per peer: tpio itself, plain io_uring
//! loops, tokio, compio, plain mio, and `pread` on threads.
//!
//! Each peer module owns how that peer does a workload's job, written the
//! way a user of that peer would write it. A peer must never share state
//! with another, leave a thread or an operation running after it returns,
//! or report a figure for work it did not check.

pub mod compio_peer;
pub mod mio_peer;
pub mod pread_peer;
pub mod tokio_peer;
pub mod tpio_peer;
#[cfg(target_os = "linux")]
pub mod uring_peer;

use std::time::{Duration, Instant};

use crate::measure::RunError;

/// Waits until `done()` holds, polling every millisecond, for at most
/// `limit`: a contestant's end-of-run drain, never a test's wait.
pub(crate) fn wait_until(
    limit: Duration,
    what: &str,
    done: impl Fn() -> bool,
) -> Result<(), RunError> {
    let end = Instant::now() + limit;
    while !done() {
        if Instant::now() > end {
            return Err(RunError::Failed(format!("timed out waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// How long any drain may take before the sample is called failed.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(30);
