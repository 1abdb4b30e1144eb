//! Who calls `io_uring_enter` to submit: the submission modes.
//!
//! Owns the choice of which thread hands queued SQEs to the kernel, because
//! on Linux that thread becomes the operation's owner: an operation whose
//! completion needs task work (every poll-driven socket or pipe operation,
//! and async file I/O) is completed with `-ECANCELED` if the thread that
//! submitted it has exited by then (pinned by `tests/lifetime.rs`). Windows
//! I/O on a completion-port handle survives its issuing thread, so tpio
//! must not submit from threads that may exit.
//!
//! * [`SubmitMode::Direct`]: the pushing thread submits. Cheapest (no thread
//!   hop); right when every pusher outlives its operations (a fixed pool).
//! * [`SubmitMode::Owner`]: only the thread holding the [`crate::Reaper`]
//!   role submits; other pushers queue their SQEs and ask it to submit via
//!   the wake eventfd (coalesced: one `write(2)` per batch the owner has not
//!   yet picked up). Operations survive their pusher. The reaper role must
//!   be held by a long-lived thread that keeps calling `wait`; while no
//!   reaper exists, queued operations wait in the SQ. A pusher that finds
//!   the SQ full waits for the owner to submit.
//! * [`SubmitMode::SqPoll`]: a kernel thread polls the SQ and submits
//!   (`IORING_SETUP_SQPOLL`). Operations survive their pusher and pushers
//!   make no syscall while it is awake; it burns a CPU while busy and for
//!   `idle` after, which matters on small machines.
//!
//! This module must never let a non-owner thread enter the kernel with
//! submissions in [`SubmitMode::Owner`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which thread submits queued operations to the kernel. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SubmitMode {
    /// The pushing thread submits; its operations die with it.
    #[default]
    Direct,
    /// The reaper thread submits for everyone; operations outlive pushers.
    Owner,
    /// A kernel thread submits; it sleeps after `idle` without work.
    SqPoll {
        /// How long the kernel thread polls before sleeping.
        idle: Duration,
    },
}

/// A small per-thread id (never 0) for "is this the owner thread".
pub(crate) fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }
    TOKEN.with(|t| {
        if t.get() == 0 {
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}
