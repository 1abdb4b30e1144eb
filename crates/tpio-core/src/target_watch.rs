//! Which submission is in progress on this thread: lets a watched
//! [`CompletionTarget`](crate::CompletionTarget) that a driver drops without
//! delivering its packet tell a legitimate drop from a lost packet.
//!
//! The driver contract (`driver.rs`): a driver that answers `CompletedNow` or
//! `FailedNow` drops the target before `submit` returns, on the calling
//! thread; one that answers `Pending` keeps it until it delivers the packet.
//! So a watched target dropped *inside its own submission* is either legal
//! (the answer will not be `Pending`) or a lost packet that the issuing call
//! sees when the answer is `Pending`; a watched target dropped anywhere else
//! was armed, and its packet is lost. [`IoObject::issue_with`](crate::IoObject::issue_with)
//! opens and closes the submission; the target's `Drop` asks [`dropped_in_submit`].
//!
//! Owns one thread-local token per thread: no atomic operation and no
//! allocation per operation (one std atomic per thread, for its number). It
//! must never decide what happens to a packet: that is `io_object`'s job.

use crate::sync::thread_local_cell;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of a token that count submissions on one thread (2^40 each).
const SEQ_BITS: u32 = 40;

/// Thread numbers, handed out once per thread (not synchronisation: a
/// plain std atomic, also under loom).
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy)]
struct Watch {
    /// This thread's number (0 until its first submission).
    thread: u64,
    /// Submissions opened on this thread.
    seq: u64,
    /// The token of the submission in progress here (0 = none).
    current: u64,
    /// Its target was dropped before the submission closed.
    dropped: bool,
}

thread_local_cell! {
    static WATCH: Cell<Watch> = Cell::new(Watch { thread: 0, seq: 0, current: 0, dropped: false });
}

/// A submission in progress on this thread. Closing it ([`Submitting::close`])
/// says whether its target was dropped meanwhile; dropping it unclosed (a
/// panicking driver) restores the state as it was.
pub(crate) struct Submitting {
    token: u64,
    /// The enclosing submission on this thread (a driver may issue from
    /// inside `submit`), restored at close.
    prev: (u64, bool),
}

/// Opens a submission on this thread; its token goes into the target.
pub(crate) fn open() -> Submitting {
    WATCH.with(|c| {
        let mut w = c.get();
        if w.thread == 0 {
            w.thread = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        }
        w.seq = w.seq.wrapping_add(1);
        let token = (w.thread << SEQ_BITS) | (w.seq & ((1 << SEQ_BITS) - 1));
        let prev = (w.current, w.dropped);
        w.current = token;
        w.dropped = false;
        c.set(w);
        Submitting { token, prev }
    })
}

impl Submitting {
    /// The token a watched target carries (never 0).
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Closes the submission: true when its target was dropped inside it.
    pub(crate) fn close(self) -> bool {
        let dropped = self.restore();
        std::mem::forget(self);
        dropped
    }

    fn restore(&self) -> bool {
        WATCH
            .try_with(|c| {
                let mut w = c.get();
                let dropped = w.current == self.token && w.dropped;
                (w.current, w.dropped) = self.prev;
                c.set(w);
                dropped
            })
            .unwrap_or(false)
    }
}

impl Drop for Submitting {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Called by a watched target dropped uncompleted: true (and noted for the
/// issuing call) when its own submission is still in progress on this
/// thread; false when it was dropped after the driver answered, or on
/// another thread — the packet of an armed target is lost.
pub(crate) fn dropped_in_submit(token: u64) -> bool {
    WATCH
        .try_with(|c| {
            let mut w = c.get();
            if w.current != token {
                return false;
            }
            w.dropped = true;
            c.set(w);
            true
        })
        .unwrap_or(false)
}
