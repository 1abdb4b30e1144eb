//! The callback environment (`TP_CALLBACK_ENVIRON`): which pool runs an
//! object's callbacks, its cleanup group and cleanup callback, its priority,
//! and whether its callbacks run long.
//!
//! Owns only the description; the pool and the objects act on it.

use crate::{CleanupGroup, Pool};
use std::fmt;
use std::sync::Arc;

/// Callback priority (`TP_CALLBACK_PRIORITY`). A queued higher-priority
/// callback starts before any queued lower-priority one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// `TP_CALLBACK_PRIORITY_HIGH`.
    High = 0,
    /// `TP_CALLBACK_PRIORITY_NORMAL`, the default.
    #[default]
    Normal = 1,
    /// `TP_CALLBACK_PRIORITY_LOW`.
    Low = 2,
}

impl Priority {
    /// All priorities, highest first (the order workers drain them).
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];
}

/// The group cleanup callback (`PTP_CLEANUP_GROUP_CANCEL_CALLBACK`): called by
/// `CleanupGroup::close_members(true, ctx)` with the member's context and `ctx`.
pub type CleanupCallback = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// `TP_CALLBACK_ENVIRON`: the settings an object is created with.
///
/// ```
/// use tpio_core::{CallbackEnvironment, Pool, Priority};
/// let pool = Pool::new("docs");
/// let env = CallbackEnvironment::new().pool(&pool).priority(Priority::High).runs_long(true);
/// assert_eq!(env.get_priority(), Priority::High);
/// ```
#[derive(Clone, Default)]
pub struct CallbackEnvironment {
    pub(crate) pool: Option<Pool>,
    pub(crate) group: Option<CleanupGroup>,
    pub(crate) cleanup_callback: Option<CleanupCallback>,
    pub(crate) priority: Priority,
    pub(crate) runs_long: bool,
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
    /// `SetThreadpoolCallbackCleanupGroup`.
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
    /// `SetThreadpoolCallbackRunsLong`: each callback starts as if it had
    /// called `CallbackInstance::may_run_long`.
    pub fn runs_long(mut self, yes: bool) -> Self {
        self.runs_long = yes;
        self
    }
    /// The priority objects created with this environment get.
    pub fn get_priority(&self) -> Priority {
        self.priority
    }
    /// The pool objects created with this environment use (the process-wide
    /// default pool when none was set).
    pub fn get_pool(&self) -> Pool {
        self.pool.clone().unwrap_or_else(Pool::default_pool)
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
