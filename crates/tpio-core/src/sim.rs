//! The simulated driver: a test instrument, not a backend.
//!
//! Operations submitted to it stay pending until a test completes them
//! ([`SimDriver::complete`]) or cancels them; the outcome of each submission
//! (pending, completed now, failed now) is chosen by the test. It implements
//! [`Driver`] exactly as a real driver must, so the core's rules can be
//! checked with completions delivered at chosen moments, deterministically.
//! It must never be chosen as a backend for real I/O.

use crate::driver::{Driver, HandleOps, Issued, Submission};
use crate::io_object::CompletionTarget;
use crate::sync::Mutex;
use crate::{Completion, Win32Error};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

struct SimOp {
    overlapped: usize,
    target: CompletionTarget,
    ops: Arc<HandleOps>,
    cancel_requested: bool,
}

/// See the module docs.
#[derive(Default)]
pub struct SimDriver {
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    next_key: u64,
    /// What the next submissions report at once (default: pending).
    script: VecDeque<Issued>,
    in_flight: HashMap<u64, SimOp>,
}

impl SimDriver {
    /// A driver with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next submission report `issued` at once instead of `Pending`.
    pub fn script_next(&self, issued: Issued) {
        self.state.lock().script.push_back(issued);
    }

    /// Keys of the operations in flight, oldest first.
    pub fn in_flight(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.state.lock().in_flight.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The in-flight operation with this OVERLAPPED identity, if any.
    pub fn key_of(&self, overlapped: usize) -> Option<u64> {
        let st = self.state.lock();
        let mut keys: Vec<u64> = st
            .in_flight
            .iter()
            .filter(|(_, o)| o.overlapped == overlapped)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        keys.first().copied()
    }

    /// True when a cancel was requested for `key` and it has not completed.
    pub fn cancel_requested(&self, key: u64) -> bool {
        self.state
            .lock()
            .in_flight
            .get(&key)
            .is_some_and(|o| o.cancel_requested)
    }

    /// Completes `key` as the kernel would: a cancel-requested operation with
    /// `OPERATION_ABORTED` and 0 bytes (unless `finished_first`), otherwise
    /// with `status` and `bytes`. False if `key` is not in flight.
    pub fn complete(&self, key: u64, status: Win32Error, bytes: usize) -> bool {
        self.complete_with(key, status, bytes, false)
    }

    /// Like [`complete`](Self::complete); `finished_first` lets a
    /// cancel-requested operation complete normally (it won the race).
    pub fn complete_with(
        &self,
        key: u64,
        status: Win32Error,
        bytes: usize,
        finished_first: bool,
    ) -> bool {
        let Some(op) = self.state.lock().in_flight.remove(&key) else {
            return false;
        };
        op.ops.remove(key);
        let (status, bytes) = if op.cancel_requested && !finished_first {
            (Win32Error::OPERATION_ABORTED, 0)
        } else {
            (status, bytes)
        };
        op.target.complete(Completion {
            overlapped: op.overlapped,
            status,
            bytes,
        });
        true
    }

    /// Completes every cancel-requested operation with `OPERATION_ABORTED`;
    /// returns how many.
    pub fn deliver_cancellations(&self) -> usize {
        let keys: Vec<u64> = {
            let st = self.state.lock();
            let mut v: Vec<u64> = st
                .in_flight
                .iter()
                .filter(|(_, o)| o.cancel_requested)
                .map(|(k, _)| *k)
                .collect();
            v.sort_unstable();
            v
        };
        keys.iter()
            .filter(|k| self.complete(**k, Win32Error::SUCCESS, 0))
            .count()
    }
}

impl Driver for SimDriver {
    fn name(&self) -> &'static str {
        "sim"
    }

    #[allow(unsafe_code)] // the simulator never touches the buffers
    unsafe fn submit(&self, op: Submission, target: CompletionTarget) -> Issued {
        let mut st = self.state.lock();
        let issued = st.script.pop_front().unwrap_or(Issued::Pending);
        if issued == Issued::Pending {
            st.next_key += 1;
            let key = st.next_key;
            op.ops.insert(key, op.overlapped, op.thread);
            st.in_flight.insert(
                key,
                SimOp {
                    overlapped: op.overlapped,
                    target,
                    ops: op.ops,
                    cancel_requested: false,
                },
            );
        }
        issued
    }

    fn cancel(&self, keys: &[u64]) {
        let mut st = self.state.lock();
        for k in keys {
            if let Some(op) = st.in_flight.get_mut(k) {
                op.cancel_requested = true;
            }
        }
    }
}

impl fmt::Debug for SimDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimDriver")
            .field("in_flight", &self.state.lock().in_flight.len())
            .finish()
    }
}
