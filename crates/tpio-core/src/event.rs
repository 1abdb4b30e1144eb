//! `Event` and `Semaphore`: the portable kernel objects a callback can signal
//! when it returns (`SetEventWhenCallbackReturns`,
//! `ReleaseSemaphoreWhenCallbackReturns`).
//!
//! Owns their state and waiting. Must never call the OS: on Windows the
//! facade maps these to its own objects where it needs real kernel handles.

use crate::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A Win32-style event: manual-reset (stays set until `reset`) or
/// auto-reset (one waiter consumes the signal). Cloning shares the event.
///
/// ```
/// let ev = tpio_core::Event::new(true, false);
/// ev.set();
/// assert!(ev.wait_timeout(std::time::Duration::ZERO));
/// ```
#[derive(Clone, Debug)]
pub struct Event(Arc<EventInner>);

#[derive(Debug)]
struct EventInner {
    manual_reset: bool,
    signalled: Mutex<bool>,
    cv: Condvar,
}

impl Event {
    /// `CreateEvent(manual_reset, initial_state)`.
    pub fn new(manual_reset: bool, initial_state: bool) -> Self {
        Event(Arc::new(EventInner {
            manual_reset,
            signalled: Mutex::new(initial_state),
            cv: Condvar::new(),
        }))
    }

    /// `SetEvent`: wakes every waiter (manual-reset) or one (auto-reset).
    pub fn set(&self) {
        let mut s = self.0.signalled.lock();
        *s = true;
        if self.0.manual_reset {
            self.0.cv.notify_all();
        } else {
            self.0.cv.notify_one();
        }
    }

    /// `ResetEvent`.
    pub fn reset(&self) {
        *self.0.signalled.lock() = false;
    }

    /// Whether the event is set now (does not consume an auto-reset signal).
    pub fn is_set(&self) -> bool {
        *self.0.signalled.lock()
    }

    /// Waits until set; an auto-reset event is consumed.
    pub fn wait(&self) {
        crate::parker::flush_current();
        let mut s = self.0.signalled.lock();
        while !*s {
            self.0.cv.wait(&mut s);
        }
        if !self.0.manual_reset {
            *s = false;
        }
    }

    /// Waits up to `timeout`; true when the event was (and, auto-reset, is now consumed) set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        crate::parker::flush_current();
        let deadline = Instant::now().checked_add(timeout);
        let mut s = self.0.signalled.lock();
        while !*s {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return false;
            }
            self.0.cv.wait_for(&mut s, left);
        }
        if !self.0.manual_reset {
            *s = false;
        }
        true
    }
}

/// A counting semaphore with a maximum, as `CreateSemaphore`. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Semaphore(Arc<SemInner>);

#[derive(Debug)]
struct SemInner {
    max: u32,
    count: Mutex<u32>,
    cv: Condvar,
}

impl Semaphore {
    /// `CreateSemaphore(initial, max)`; `initial > max` or `max == 0` is
    /// `ERROR_INVALID_PARAMETER`.
    pub fn new(initial: u32, max: u32) -> Result<Self, crate::Win32Error> {
        if max == 0 || initial > max {
            return Err(crate::Win32Error::INVALID_PARAMETER);
        }
        Ok(Semaphore(Arc::new(SemInner {
            max,
            count: Mutex::new(initial),
            cv: Condvar::new(),
        })))
    }

    /// `ReleaseSemaphore`: adds `n`; returns the previous count, or
    /// `ERROR_TOO_MANY_POSTS` (298) if that would pass the maximum (nothing is added).
    pub fn release(&self, n: u32) -> Result<u32, crate::Win32Error> {
        let mut c = self.0.count.lock();
        let prev = *c;
        match prev.checked_add(n) {
            Some(v) if v <= self.0.max => {
                *c = v;
                for _ in 0..n {
                    self.0.cv.notify_one();
                }
                Ok(prev)
            }
            _ => Err(crate::Win32Error::from_code(298)),
        }
    }

    /// The current count.
    pub fn count(&self) -> u32 {
        *self.0.count.lock()
    }

    /// Takes one unit, waiting up to `timeout`; false on time-out.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        crate::parker::flush_current();
        let deadline = Instant::now() + timeout;
        let mut c = self.0.count.lock();
        while *c == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.0.cv.wait_for(&mut c, left);
        }
        *c -= 1;
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn auto_reset_event_is_consumed_by_one_wait() {
        let ev = Event::new(false, true);
        assert!(ev.wait_timeout(Duration::ZERO));
        assert!(!ev.wait_timeout(Duration::from_millis(1)));
    }

    #[test]
    fn manual_reset_event_stays_set() {
        let ev = Event::new(true, false);
        let ev2 = ev.clone();
        let t = std::thread::spawn(move || ev2.wait());
        ev.set();
        t.join().unwrap();
        assert!(ev.is_set());
        ev.reset();
        assert!(!ev.is_set());
    }

    #[test]
    fn semaphore_respects_its_maximum() {
        assert!(Semaphore::new(2, 1).is_err());
        let s = Semaphore::new(0, 2).unwrap();
        assert_eq!(s.release(2), Ok(0));
        assert_eq!(s.release(1).unwrap_err().code(), 298);
        assert!(s.acquire_timeout(Duration::ZERO));
        assert_eq!(s.count(), 1);
    }
}
