//! Counters a pool keeps about its objects and callbacks, and the misuse
//! diagnoses of DESIGN.md ("misuse"): each one is counted here, reported as a
//! `tracing` warning naming the rule, and (where the API can) returned as an
//! error by the caller.
//!
//! Owns only counting and reporting; it must never decide semantics.

use crate::sync::{AtomicU64, Ordering};

/// A misuse that Windows turns into corruption or a hang, and tpio diagnoses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Misuse {
    /// A completion packet arrived for an object with no start outstanding
    /// (rule 1). The packet is dropped; no callback runs.
    CompletionWithoutStart,
    /// `cancel` (CancelThreadpoolIo) with no start outstanding (rule 1).
    CancelWithoutStart,
    /// `wait_for_callbacks` from inside one of the same object's callbacks,
    /// still associated (rule 4): it would wait for itself.
    WaitInOwnCallback,
    /// A call on an object after it was closed or released by its cleanup group.
    UseAfterClose,
    /// A driver broke its contract (`driver.rs`): it said an operation was
    /// pending, then dropped the operation's completion target without
    /// delivering the packet (rule 1 could never be kept). The core delivered
    /// `ERROR_INTERNAL_ERROR` with 0 bytes in its place.
    DriverLostPacket,
}

impl Misuse {
    /// The rule that was broken, in words a log reader can act on.
    pub fn rule(self) -> &'static str {
        match self {
            Misuse::CompletionWithoutStart => {
                "rule 1: a completion arrived with no start outstanding (call start before issuing each operation); the packet was dropped"
            }
            Misuse::CancelWithoutStart => {
                "rule 1: cancel (CancelThreadpoolIo) was called with no start outstanding"
            }
            Misuse::WaitInOwnCallback => {
                "rule 4: wait_for_callbacks was called from inside a callback of the same object; it would wait for itself (call CallbackInstance::disassociate first)"
            }
            Misuse::UseAfterClose => {
                "rule 5: the object was used after close (or after its cleanup group released it)"
            }
            Misuse::DriverLostPacket => {
                "driver contract: the backend said an operation was pending, then dropped its completion target without delivering the packet; tpio delivered ERROR_INTERNAL_ERROR (1359) with 0 bytes in its place so the start is balanced (a bug in the backend, not in the program)"
            }
        }
    }
}

/// Live counters of one pool. Read them with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub objects_created: AtomicU64,
    pub objects_released: AtomicU64,
    pub callbacks_queued: Striped,
    pub callbacks_run: Striped,
    pub callbacks_dropped: AtomicU64,
    pub callbacks_panicked: AtomicU64,
    pub packets_skipped: AtomicU64,
    pub callbacks_stolen: AtomicU64,
    pub callbacks_shared: AtomicU64,
    pub misuse_completion_without_start: AtomicU64,
    pub misuse_cancel_without_start: AtomicU64,
    pub misuse_wait_in_own_callback: AtomicU64,
    pub misuse_use_after_close: AtomicU64,
    pub misuse_driver_lost_packet: AtomicU64,
}

/// A copy of a pool's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// TP_IO objects created on this pool.
    pub objects_created: u64,
    /// TP_IO objects released (closed and drained).
    pub objects_released: u64,
    /// Callbacks queued for a worker.
    pub callbacks_queued: u64,
    /// Callbacks that ran (including ones that panicked).
    pub callbacks_run: u64,
    /// Queued callbacks dropped by `wait_for_callbacks(true)` or a cleanup group.
    pub callbacks_dropped: u64,
    /// Callbacks that panicked (the panic was caught; the pool lives on).
    pub callbacks_panicked: u64,
    /// Packets of starts that `wait_for_callbacks(true)` stopped expecting.
    pub packets_skipped: u64,
    /// Callbacks queued in a worker's own queue that an idle worker with
    /// nothing of its own in flight took (`local_queue.rs`).
    pub callbacks_stolen: u64,
    /// Callbacks moved from a worker's own queue to the shared queue: they
    /// waited across a rescue interval, or the worker was about to block.
    pub callbacks_shared: u64,
    /// Misuse: completions with no start outstanding.
    pub misuse_completion_without_start: u64,
    /// Misuse: cancels with no start outstanding.
    pub misuse_cancel_without_start: u64,
    /// Misuse: waits from inside the object's own callback.
    pub misuse_wait_in_own_callback: u64,
    /// Misuse: calls on a closed object.
    pub misuse_use_after_close: u64,
    /// A driver's misuse: packets of pending operations it lost (each got
    /// `ERROR_INTERNAL_ERROR` in their place).
    pub misuse_driver_lost_packet: u64,
}

impl StatsSnapshot {
    /// Objects created and not yet released.
    pub fn live_objects(&self) -> u64 {
        self.objects_created - self.objects_released
    }
    /// All misuse diagnoses together.
    pub fn misuse_total(&self) -> u64 {
        self.misuse_completion_without_start
            + self.misuse_cancel_without_start
            + self.misuse_wait_in_own_callback
            + self.misuse_use_after_close
            + self.misuse_driver_lost_packet
    }
}

impl Stats {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts and reports a misuse.
    pub fn misuse(&self, m: Misuse, object: u64) {
        let c = match m {
            Misuse::CompletionWithoutStart => &self.misuse_completion_without_start,
            Misuse::CancelWithoutStart => &self.misuse_cancel_without_start,
            Misuse::WaitInOwnCallback => &self.misuse_wait_in_own_callback,
            Misuse::UseAfterClose => &self.misuse_use_after_close,
            Misuse::DriverLostPacket => &self.misuse_driver_lost_packet,
        };
        Self::bump(c);
        tracing::warn!(target: "tpio::misuse", object, misuse = ?m, "{}", m.rule());
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            objects_created: r(&self.objects_created),
            objects_released: r(&self.objects_released),
            callbacks_queued: self.callbacks_queued.get(),
            callbacks_run: self.callbacks_run.get(),
            callbacks_dropped: r(&self.callbacks_dropped),
            callbacks_panicked: r(&self.callbacks_panicked),
            packets_skipped: r(&self.packets_skipped),
            callbacks_stolen: r(&self.callbacks_stolen),
            callbacks_shared: r(&self.callbacks_shared),
            misuse_completion_without_start: r(&self.misuse_completion_without_start),
            misuse_cancel_without_start: r(&self.misuse_cancel_without_start),
            misuse_wait_in_own_callback: r(&self.misuse_wait_in_own_callback),
            misuse_use_after_close: r(&self.misuse_use_after_close),
            misuse_driver_lost_packet: r(&self.misuse_driver_lost_packet),
        }
    }
}

/// Cells of a [`Striped`] counter.
const STRIPES: usize = 8;

/// One cell, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Cell(AtomicU64);

/// A counter bumped on every callback by every worker: one cell per
/// stripe of threads, summed when read, so that two workers counting do
/// not bounce one cache line between them (it was 1.3 % of W2). Also a
/// gauge: [`Striped::decrement`] on another thread than the increment
/// leaves one cell below zero (wrapping) and the total right.
#[derive(Debug, Default)]
pub struct Striped {
    cells: [Cell; STRIPES],
}

impl Striped {
    /// Adds one, in the calling thread's cell.
    pub fn bump(&self) {
        self.cells[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away, in the calling thread's cell.
    pub fn decrement(&self) {
        self.cells[stripe()].0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The total (a snapshot: concurrent changes may or may not be in it).
    pub fn get(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |t, c| t.wrapping_add(c.0.load(Ordering::Relaxed)))
    }

    /// The total of a gauge: as [`Self::get`], but a snapshot that read a
    /// decrement and missed its increment (made on another thread, in a
    /// cell read before it) is 0, not a wrapped-around count.
    pub fn level(&self) -> u64 {
        (self.get() as i64).max(0) as u64
    }
}

/// The calling thread's cell index (threads numbered as they first count).
fn stripe() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    MINE.with(|m| {
        if m.get() == usize::MAX {
            m.set(NEXT.fetch_add(1, StdOrdering::Relaxed) % STRIPES);
        }
        m.get()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_gauge_balances_across_threads_and_never_reads_below_zero() {
        let g = Striped::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| g.bump()));
            }
        });
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| g.decrement()));
            }
        });
        assert_eq!((g.get(), g.level()), (0, 0));
        // A decrement seen without its increment.
        g.decrement();
        assert_eq!(g.get(), u64::MAX);
        assert_eq!(g.level(), 0);
        g.bump();
        g.bump();
        assert_eq!(g.level(), 1);
    }
}
