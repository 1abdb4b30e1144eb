//! `PTP_CALLBACK_INSTANCE`: [`CallbackInstance`], what a running callback
//! may do about itself on kernel32: say it may run long
//! (`CallbackMayRunLong`), disassociate from its object
//! (`DisassociateCurrentThreadFromCallback`), and schedule actions for when
//! it returns.
//!
//! Owns the per-callback bookkeeping. The return actions work on tpio's
//! portable [`Event`] and [`Semaphore`] (not kernel handles), so tpio runs
//! them itself, right after the callback body returns and before the object
//! stops counting the callback as running, as kernel32 does with its own.
//! It must never outlive the callback.

use std::fmt;

use tpio_core::{Event, Semaphore};
use windows_sys::Win32::System::Threading::{
    CallbackMayRunLong, DisassociateCurrentThreadFromCallback, PTP_CALLBACK_INSTANCE,
};

use crate::callback::ObjectCore;
use crate::pool::PoolStats;

enum ReturnAction {
    SetEvent(Event),
    ReleaseSemaphore(Semaphore, u32),
    Run(Box<dyn FnOnce() + Send>),
}

/// The instance a callback receives.
pub struct CallbackInstance<'a> {
    raw: PTP_CALLBACK_INSTANCE,
    object: Option<&'a ObjectCore>,
    stats: &'a PoolStats,
    associated: bool,
    long: Option<bool>,
    actions: Vec<ReturnAction>,
}

impl<'a> CallbackInstance<'a> {
    pub(crate) fn new(
        raw: PTP_CALLBACK_INSTANCE,
        object: Option<&'a ObjectCore>,
        stats: &'a PoolStats,
    ) -> Self {
        CallbackInstance {
            raw,
            associated: object.is_some(),
            object,
            stats,
            long: None,
            actions: Vec::new(),
        }
    }

    /// `CallbackMayRunLong`: true when kernel32 has (or can start) another
    /// thread for the pool's other callbacks. Calling it again returns the
    /// first answer.
    pub fn may_run_long(&mut self) -> bool {
        if let Some(v) = self.long {
            return v;
        }
        // SAFETY: `raw` is the instance kernel32 passed to the running
        // callback, valid until it returns (this value does not outlive it).
        let v = unsafe { CallbackMayRunLong(self.raw) } != 0;
        self.long = Some(v);
        v
    }

    /// `DisassociateCurrentThreadFromCallback`: from now on this callback no
    /// longer counts for its object's `wait_for_callbacks` (so it may wait
    /// on the object itself). A cleanup group still waits for it.
    pub fn disassociate(&mut self) {
        if !self.associated {
            return;
        }
        self.associated = false;
        // SAFETY: as in `may_run_long`: the running callback's instance.
        unsafe { DisassociateCurrentThreadFromCallback(self.raw) };
        crate::callback::disassociate_current();
        if let Some(o) = self.object {
            o.disassociated();
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

    /// Runs `f` after the callback returns, before its object stops counting
    /// it as running.
    pub fn when_callback_returns(&mut self, f: impl FnOnce() + Send + 'static) {
        self.actions.push(ReturnAction::Run(Box::new(f)));
    }

    /// Runs the return actions in order; true when still associated.
    pub(crate) fn finish(self) -> bool {
        for a in self.actions {
            match a {
                ReturnAction::SetEvent(e) => e.set(),
                ReturnAction::ReleaseSemaphore(s, n) => {
                    if let Err(e) = s.release(n) {
                        tracing::warn!(error = %e, "release_semaphore_when_callback_returns: semaphore already at its maximum");
                    }
                }
                ReturnAction::Run(f) => {
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                        PoolStats::bump(&self.stats.callbacks_panicked);
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
