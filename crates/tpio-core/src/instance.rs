//! `CallbackInstance` (`PTP_CALLBACK_INSTANCE`): what a running callback may
//! do about itself: say it may run long, disassociate from its object, and
//! schedule actions for when it returns.
//!
//! Owns the per-callback bookkeeping. It must never outlive the callback:
//! it is created by the worker before the callback and finished after it.

use crate::io_object::IoInner;
use crate::pool::PoolInner;
use crate::stats::Stats;
use crate::sync::Arc;
use crate::{Event, Semaphore};
use std::fmt;

enum ReturnAction {
    SetEvent(Event),
    ReleaseSemaphore(Semaphore, u32),
    Run(Box<dyn FnOnce() + Send>),
}

/// The instance a callback receives.
///
/// ```
/// use std::time::Duration;
/// let pool = tpio_core::Pool::new("docs");
/// let done = tpio_core::Event::new(true, false);
/// let ev = done.clone();
/// pool.submit_callback(move |inst| inst.set_event_when_callback_returns(&ev));
/// assert!(done.wait_timeout(Duration::from_secs(10)));
/// ```
pub struct CallbackInstance<'a> {
    pool: &'a Arc<PoolInner>,
    object: Option<&'a Arc<IoInner>>,
    associated: bool,
    long: Option<bool>,
    actions: Vec<ReturnAction>,
}

impl<'a> CallbackInstance<'a> {
    pub(crate) fn new(pool: &'a Arc<PoolInner>, object: Option<&'a Arc<IoInner>>) -> Self {
        CallbackInstance {
            pool,
            associated: object.is_some(),
            object,
            long: None,
            actions: Vec::new(),
        }
    }

    /// `CallbackMayRunLong`: tells the pool this callback may not return soon.
    /// True when another thread is free, or could be started, for the pool's
    /// other callbacks; false when the pool is at its maximum with no idle
    /// thread. Calling it again returns the first answer.
    pub fn may_run_long(&mut self) -> bool {
        if let Some(v) = self.long {
            return v;
        }
        let v = PoolInner::may_run_long(self.pool);
        self.long = Some(v);
        v
    }

    /// `DisassociateCurrentThreadFromCallback`: from now on this callback no
    /// longer counts as running for its object's `wait_for_callbacks` (so the
    /// callback itself may wait on the object). A cleanup group still waits
    /// for it, and the object is not released until it returns.
    pub fn disassociate(&mut self) {
        if self.associated {
            self.associated = false;
            if let Some(obj) = self.object {
                obj.disassociate_running();
            }
        }
    }

    /// Whether the callback still counts as running for its object.
    pub fn is_associated(&self) -> bool {
        self.associated
    }

    /// `SetEventWhenCallbackReturns`.
    pub fn set_event_when_callback_returns(&mut self, ev: &Event) {
        self.actions.push(ReturnAction::SetEvent(ev.clone()));
    }

    /// `ReleaseSemaphoreWhenCallbackReturns`.
    pub fn release_semaphore_when_callback_returns(&mut self, sem: &Semaphore, count: u32) {
        self.actions
            .push(ReturnAction::ReleaseSemaphore(sem.clone(), count));
    }

    /// Runs `f` after the callback returns, before its object stops counting it
    /// as running (the place of `LeaveCriticalSectionWhenCallbackReturns` and
    /// friends, for any action).
    pub fn when_callback_returns(&mut self, f: impl FnOnce() + Send + 'static) {
        self.actions.push(ReturnAction::Run(Box::new(f)));
    }

    /// Runs the return actions in the order they were asked for.
    pub(crate) fn finish(self) -> bool {
        if self.long.is_some() {
            self.pool.end_long();
        }
        for a in self.actions {
            match a {
                ReturnAction::SetEvent(e) => e.set(),
                ReturnAction::ReleaseSemaphore(s, n) => {
                    if let Err(e) = s.release(n) {
                        tracing::warn!(error = %e, "release_semaphore_when_callback_returns: semaphore already at its maximum");
                    }
                }
                // A user action may panic: catch it as the callback's own
                // panic is caught, so the later actions still run and the
                // worker goes on to update the object's counts.
                ReturnAction::Run(f) => {
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                        Stats::bump(&self.pool.stats.callbacks_panicked);
                        tracing::error!(
                            "a when_callback_returns action panicked; the panic was caught"
                        );
                    }
                }
            }
        }
        self.associated
    }
}

impl fmt::Debug for CallbackInstance<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackInstance")
            .field("associated", &self.associated)
            .field("may_run_long", &self.long)
            .field("actions", &self.actions.len())
            .finish()
    }
}
