//! `TP_CALLBACK_ENVIRON`: [`CallbackEnvironment`], the settings a TP_IO is
//! created with (pool, cleanup group and its cleanup callback, priority,
//! runs-long), and their translation into kernel32's structure.
//!
//! Owns only the description and the translation (through the SDK's inline
//! helpers in [`crate::env`]); the objects act on it. The group's cleanup
//! callback is a Rust closure kept by each member object, called from one
//! C function this module hands to kernel32 (`CleanupGroupCancelCallback`).

use std::fmt;

use tpio_core::{CleanupCallback, Priority};
use windows_sys::Win32::System::Threading::{
    TP_CALLBACK_ENVIRON_V3, TP_CALLBACK_PRIORITY_HIGH, TP_CALLBACK_PRIORITY_LOW,
    TP_CALLBACK_PRIORITY_NORMAL,
};

use crate::cleanup_group::CleanupGroup;
use crate::env;
use crate::pool::Pool;

/// `TP_CALLBACK_ENVIRON`, as a builder. Cloning copies the settings (the
/// pool and group are shared).
#[derive(Clone, Default)]
pub struct CallbackEnvironment {
    pub(crate) pool: Option<Pool>,
    pub(crate) group: Option<CleanupGroup>,
    pub(crate) cleanup_callback: Option<CleanupCallback>,
    pub(crate) priority: Priority,
    pub(crate) runs_long: bool,
}

/// A kernel32 environment and what keeps the objects it names alive while
/// it is in use.
pub(crate) struct NativeEnv {
    pub(crate) ce: TP_CALLBACK_ENVIRON_V3,
    _pool: Option<Pool>,
    _group: Option<CleanupGroup>,
}

impl CallbackEnvironment {
    /// `InitializeThreadpoolEnvironment`: the default pool, no group, normal priority.
    pub fn new() -> Self {
        Self::default()
    }
    /// `SetThreadpoolCallbackPool`.
    pub fn pool(mut self, pool: &Pool) -> Self {
        self.pool = Some(pool.clone());
        self
    }
    /// `SetThreadpoolCallbackCleanupGroup`; `callback` runs with (member
    /// context, the context given to `close_members`) for each member whose
    /// callbacks `close_members(true, …)` cancels.
    pub fn cleanup_group(
        mut self,
        group: &CleanupGroup,
        callback: Option<CleanupCallback>,
    ) -> Self {
        self.group = Some(group.clone());
        self.cleanup_callback = callback;
        self
    }
    /// `SetThreadpoolCallbackPriority`.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }
    /// `SetThreadpoolCallbackRunsLong`.
    pub fn runs_long(mut self, yes: bool) -> Self {
        self.runs_long = yes;
        self
    }
    /// The priority objects created with this environment get.
    pub fn get_priority(&self) -> Priority {
        self.priority
    }
    /// The pool objects created with this environment use (the default pool
    /// when none was set).
    pub fn get_pool(&self) -> Pool {
        self.pool.clone().unwrap_or_else(Pool::default_pool)
    }

    /// kernel32's structure for these settings.
    pub(crate) fn native(&self) -> NativeEnv {
        let mut ce = TP_CALLBACK_ENVIRON_V3::default();
        env::initialize_threadpool_environment(&mut ce);
        if let Some(p) = &self.pool {
            env::set_threadpool_callback_pool(&mut ce, p.ptp());
        }
        if let Some(g) = &self.group {
            env::set_threadpool_callback_cleanup_group(
                &mut ce,
                g.ptp(),
                Some(crate::callback::group_cancel_trampoline),
            );
        }
        env::set_threadpool_callback_priority(
            &mut ce,
            match self.priority {
                Priority::High => TP_CALLBACK_PRIORITY_HIGH,
                Priority::Normal => TP_CALLBACK_PRIORITY_NORMAL,
                Priority::Low => TP_CALLBACK_PRIORITY_LOW,
            },
        );
        if self.runs_long {
            env::set_threadpool_callback_runs_long(&mut ce);
        }
        NativeEnv {
            ce,
            _pool: self.pool.clone(),
            _group: self.group.clone(),
        }
    }
}

impl fmt::Debug for CallbackEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackEnvironment")
            .field("pool", &self.pool)
            .field("group", &self.group)
            .field("cleanup_callback", &self.cleanup_callback.is_some())
            .field("priority", &self.priority)
            .field("runs_long", &self.runs_long)
            .finish()
    }
}
