//! The driver's counters ([`MioStats`]): how operations went (at once,
//! pending, cancelled, to the file workers) and what it holds now.
//!
//! Owns the counting only; it must never decide anything.

use tpio_core::Striped;

/// Running totals, bumped by the driver; striped, so that workers counting
/// their operations do not share a cache line.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) at_once: Striped,
    pub(crate) pending: Striped,
    pub(crate) file_ops: Striped,
    pub(crate) cancelled: Striped,
    pub(crate) registrations: Striped,
    pub(crate) tries_skipped: Striped,
}

/// A snapshot of a [`MioDriver`](crate::MioDriver)'s counters and state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MioStats {
    /// Operations that finished during submission (`Issued::CompletedNow`).
    pub completed_at_once: u64,
    /// Pipe and socket operations that had to wait for readiness.
    pub waited_for_readiness: u64,
    /// File operations handed to the blocking workers.
    pub file_operations: u64,
    /// Operations that completed with `ERROR_OPERATION_ABORTED` because
    /// they were cancelled before they finished.
    pub cancelled: u64,
    /// Times a descriptor was registered with a poll (once per handle, and
    /// again after a worker that held it left).
    pub registrations: u64,
    /// Operations that waited for readiness without a try, because no
    /// event came since the last try in their direction would block.
    pub tries_skipped: u64,
    /// Operations submitted whose packet has not been delivered yet.
    pub in_flight: usize,
    /// Descriptors registered with a poll now (a registration stays until
    /// its handle closes).
    pub registered_now: usize,
    /// File workers started (at most the configured number).
    pub file_workers: usize,
    /// File operations queued, not started.
    pub file_queued: usize,
    /// File operations a worker is carrying out now.
    pub file_running: usize,
}
