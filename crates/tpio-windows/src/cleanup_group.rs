//! `PTP_CLEANUP_GROUP`: [`CleanupGroup`], kernel32's cleanup group, and the
//! list of tpio objects created in it.
//!
//! Owns the group's lifetime and the release protocol around
//! `CloseThreadpoolCleanupGroupMembers`: before it, every member is marked
//! released (so tpio never calls kernel32 on it again: later calls are
//! `ERROR_INVALID_HANDLE`) and, with `cancel_pending`, its epoch is bumped;
//! after it, each member gives up the operations kernel32 stopped counting.
//! Called from a member's own callback it returns `ERROR_POSSIBLE_DEADLOCK`
//! (kernel32 would wait for itself). What happens to each member (cancel,
//! wait, cleanup callback, release) is kernel32's.

use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tpio_core::{Misuse, Win32Error};
use windows_sys::Win32::System::Threading::{
    CloseThreadpoolCleanupGroup, CloseThreadpoolCleanupGroupMembers, CreateThreadpoolCleanupGroup,
    PTP_CLEANUP_GROUP,
};

use crate::callback::{current_callback_object, ObjectCore};

/// A tpio object that can be a member of a group.
pub(crate) trait GroupMember: Send + Sync {
    fn core(&self) -> &ObjectCore;
    /// Before kernel32 releases it: no more kernel32 calls on it.
    fn before_release(&self, cancel_pending: bool);
    /// After kernel32 released it (and, with `cancel_pending`, stopped
    /// counting its outstanding starts).
    fn after_release(&self, cancel_pending: bool);
}

struct GroupInner {
    ptp: PTP_CLEANUP_GROUP,
    members: Mutex<Vec<Weak<dyn GroupMember>>>,
}

impl Drop for GroupInner {
    fn drop(&mut self) {
        // SAFETY: our group, closed once; every member object of tpio holds
        // a clone of the group, so none is left that could still use it.
        unsafe { CloseThreadpoolCleanupGroup(self.ptp) }
    }
}

/// A cleanup group. Cloning shares it.
#[derive(Clone)]
pub struct CleanupGroup {
    inner: Arc<GroupInner>,
}

impl Default for CleanupGroup {
    fn default() -> Self {
        Self::new()
    }
}

impl CleanupGroup {
    /// `CreateThreadpoolCleanupGroup`. Panics only if kernel32 cannot
    /// create one (out of memory).
    pub fn new() -> Self {
        // SAFETY: no arguments.
        let ptp = unsafe { CreateThreadpoolCleanupGroup() };
        assert!(
            ptp != 0,
            "CreateThreadpoolCleanupGroup failed: {:?}",
            crate::error::last()
        );
        CleanupGroup {
            inner: Arc::new(GroupInner {
                ptp,
                members: Mutex::new(Vec::new()),
            }),
        }
    }

    pub(crate) fn ptp(&self) -> PTP_CLEANUP_GROUP {
        self.inner.ptp
    }

    pub(crate) fn add(&self, m: Weak<dyn GroupMember>) {
        let mut v = self.inner.members.lock();
        v.retain(|w| w.strong_count() > 0);
        v.push(m);
    }

    /// Objects created in this group and not yet released.
    pub fn member_count(&self) -> usize {
        self.inner
            .members
            .lock()
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// `CloseThreadpoolCleanupGroupMembers(group, cancel_pending, ctx)`
    /// (rule 9): kernel32 releases every member, with `cancel_pending`
    /// first dropping their queued callbacks, no longer expecting their
    /// outstanding starts and running the cleanup callback for each member
    /// the user had not closed. From inside a member's callback:
    /// `ERROR_POSSIBLE_DEADLOCK`, nothing released.
    pub fn close_members(
        &self,
        cancel_pending: bool,
        cleanup_ctx: usize,
    ) -> Result<(), Win32Error> {
        let members: Vec<Arc<dyn GroupMember>> = self
            .inner
            .members
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        if let Some(cur) = current_callback_object() {
            if let Some(m) = members.iter().find(|m| m.core().id == cur) {
                m.core().stats.misuse(Misuse::WaitInOwnCallback, cur);
                return Err(Win32Error::POSSIBLE_DEADLOCK);
            }
        }
        self.inner.members.lock().clear();
        for m in &members {
            m.before_release(cancel_pending);
        }
        // SAFETY: our live group; the context is an opaque value kernel32
        // hands to the cleanup callback. `members` keeps every tpio member
        // object alive while kernel32 may call back into it.
        unsafe {
            CloseThreadpoolCleanupGroupMembers(
                self.inner.ptp,
                cancel_pending.into(),
                cleanup_ctx as *mut core::ffi::c_void,
            )
        };
        for m in &members {
            m.after_release(cancel_pending);
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
