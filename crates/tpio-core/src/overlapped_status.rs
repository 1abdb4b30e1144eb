//! The status an emulated OVERLAPPED carries (`Internal`/`InternalHigh`) and
//! `GetOverlappedResult(Ex)` over it: rule 8.
//!
//! Owns the pending → done transition of one operation and the waits on it.
//! It lives inside the caller's OVERLAPPED memory (no allocation); it never
//! decides callbacks (that is `io_object`'s job).

use crate::sync::{Condvar, Mutex};
use crate::Win32Error;
use std::fmt;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Pending,
    Done(Win32Error, usize),
}

/// One operation's status, as `GetOverlappedResult` sees it.
pub struct OverlappedStatus {
    state: Mutex<State>,
    cv: Condvar,
}

impl Default for OverlappedStatus {
    fn default() -> Self {
        Self::new()
    }
}

impl OverlappedStatus {
    /// A status with no operation issued yet.
    pub fn new() -> Self {
        OverlappedStatus {
            state: Mutex::new(State::Idle),
            cv: Condvar::new(),
        }
    }

    /// Marks an operation issued with this OVERLAPPED as pending.
    pub fn set_pending(&self) {
        *self.state.lock() = State::Pending;
    }

    /// Records the final result and wakes every waiter.
    pub fn set_done(&self, status: Win32Error, bytes: usize) {
        *self.state.lock() = State::Done(status, bytes);
        self.cv.notify_all();
    }

    /// True while the operation is in flight.
    pub fn is_pending(&self) -> bool {
        *self.state.lock() == State::Pending
    }

    /// `GetOverlappedResult(h, ov, &n, wait)`: `Ok(bytes)` when the operation
    /// succeeded, `Err(status)` when it failed, `Err(ERROR_IO_INCOMPLETE)` when
    /// still pending and `wait` is false; with `wait` it blocks until done.
    /// With no operation ever issued it reports `ERROR_INVALID_PARAMETER`.
    pub fn get(&self, wait: bool) -> Result<usize, Win32Error> {
        self.get_timeout(if wait { None } else { Some(Duration::ZERO) })
    }

    /// `GetOverlappedResultEx` with a time-out (`None` = infinite): on
    /// time-out `Err(WAIT_TIMEOUT)` (258), with a zero time-out on a pending
    /// operation `Err(ERROR_IO_INCOMPLETE)` (996), as Windows does.
    pub fn get_timeout(&self, timeout: Option<Duration>) -> Result<usize, Win32Error> {
        if timeout != Some(Duration::ZERO) {
            crate::parker::flush_current();
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.state.lock();
        loop {
            match *st {
                State::Done(s, n) if s.is_success() => return Ok(n),
                State::Done(s, _) => return Err(s),
                State::Idle => return Err(Win32Error::INVALID_PARAMETER),
                State::Pending => {}
            }
            match (timeout, deadline) {
                (Some(t), _) if t.is_zero() => return Err(Win32Error::IO_INCOMPLETE),
                (Some(_), Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Win32Error::WAIT_TIMEOUT);
                    }
                    self.cv.wait_for(&mut st, left);
                }
                _ => self.cv.wait(&mut st),
            }
        }
    }
}

impl fmt::Debug for OverlappedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OverlappedStatus({:?})", *self.state.lock())
    }
}
