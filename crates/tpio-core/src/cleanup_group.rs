//! Cleanup groups (`PTP_CLEANUP_GROUP`): release every member at once,
//! optionally dropping their queued callbacks and running the group's
//! cleanup callback for each (rule 9).
//!
//! Owns the member list. The per-member work (cancel, wait, release) is
//! `io_object`'s; this module only drives it over the members.

use crate::io_object::{self, IoInner};
use crate::stats::Misuse;
use crate::sync::{Arc, Mutex};
use crate::Win32Error;
use std::fmt;

/// A cleanup group. Cloning shares it.
#[derive(Clone, Default)]
pub struct CleanupGroup {
    inner: std::sync::Arc<GroupInner>,
}

#[derive(Default)]
struct GroupInner {
    members: Mutex<Vec<Arc<IoInner>>>,
}

impl CleanupGroup {
    /// `CreateThreadpoolCleanupGroup`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Objects created in this group and not yet released.
    pub fn member_count(&self) -> usize {
        self.inner.members.lock().len()
    }

    pub(crate) fn add(&self, m: Arc<IoInner>) {
        self.inner.members.lock().push(m);
    }

    pub(crate) fn remove(&self, id: u64) {
        self.inner.members.lock().retain(|m| m.id() != id);
    }

    /// `CloseThreadpoolCleanupGroupMembers` (rule 9): releases every member.
    /// With `cancel_pending`, first drops each member's queued callbacks and
    /// stops expecting its outstanding starts. Then, member by member, blocks
    /// until it has no start outstanding (none, after a cancel) and no
    /// callback queued or running, runs the cleanup callback with
    /// (`member context`, `cleanup_ctx`) for members the user had not closed
    /// (only with `cancel_pending`), and releases it.
    ///
    /// Called from inside a member's callback it would wait for itself: it
    /// returns `ERROR_POSSIBLE_DEADLOCK` and releases nothing.
    pub fn close_members(
        &self,
        cancel_pending: bool,
        cleanup_ctx: usize,
    ) -> Result<(), Win32Error> {
        if let Some(cur) = io_object::current_callback_object() {
            let members = self.inner.members.lock();
            if let Some(m) = members.iter().find(|m| m.id() == cur) {
                m.pool.stats.misuse(Misuse::WaitInOwnCallback, cur);
                return Err(Win32Error::POSSIBLE_DEADLOCK);
            }
        }
        let members = std::mem::take(&mut *self.inner.members.lock());
        if cancel_pending {
            for m in &members {
                IoInner::group_cancel(m);
            }
        }
        for m in &members {
            IoInner::group_wait_and_release(m, cancel_pending, cleanup_ctx);
        }
        Ok(())
    }
}

impl fmt::Debug for CleanupGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanupGroup")
            .field("members", &self.member_count())
            .finish()
    }
}
