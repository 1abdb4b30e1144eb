//! What the io_uring driver remembers about its operations in flight, and
//! the per-handle queues that keep a stream's operations in issue order.
//!
//! Owns two things. The table: driver key → where the packet goes and how
//! to map the result. The order: io_uring does not promise that two reads
//! pending on one pipe or socket take the data in the order they were
//! issued (their poll wake-ups retry in any order), and Windows does. So on
//! a pipe or socket only the first operation of each direction is in the
//! kernel; the others wait here, in order, and the next one is pushed when
//! the one before it completes. A waiting operation that is cancelled never
//! reaches the kernel: it completes at once with 995. Files are not
//! queued (their operations carry offsets).
//!
//! It must never push anything itself (the driver does, outside the lock),
//! and never let a cancel that raced with a push be lost: a cancel of an
//! operation being pushed is retried by the canceller once the push is done.

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;
use std::sync::Arc;

use tpio_core::driver::{AddrBuf, Direction, HandleKind, HandleOps, OpKind};
use tpio_core::CompletionTarget;

use crate::op::Sqe;
use crate::worker::WorkerRing;

/// Which queue an operation waits in: its descriptor and direction.
pub(crate) type QueueKey = (i32, Direction);

/// Where an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting here behind an earlier operation of its queue.
    Queued,
    /// Being pushed to the ring by some thread.
    Pushing,
    /// In the kernel.
    InKernel,
}

/// What the driver remembers about one operation in flight.
pub(crate) struct InFlight {
    pub(crate) target: CompletionTarget,
    pub(crate) ops: Arc<HandleOps>,
    pub(crate) overlapped: usize,
    pub(crate) handle_kind: HandleKind,
    pub(crate) kind: OpKind,
    pub(crate) len: usize,
    /// The caller's address buffer (RecvFrom writes its length back).
    pub(crate) addr: *mut AddrBuf,
    pub(crate) queue: Option<QueueKey>,
    pub(crate) state: State,
    /// The entry to push when its turn comes (`Queued` only: boxed, so
    /// the entries of the many operations that never wait stay small).
    pub(crate) sqe: Option<Box<Sqe>>,
    /// The worker ring it was pushed to (`None`: the shared ring, or not
    /// pushed yet). Set when the table hands the entry out for pushing, and
    /// counted in that ring's operations until delivery.
    pub(crate) ring: Option<Arc<WorkerRing>>,
}

/// A cancel request, sorted by where its operations are.
#[derive(Default)]
pub(crate) struct Sorted {
    /// Never reached the kernel: out of the table, to complete with 995.
    pub(crate) waiting: Vec<(u64, InFlight)>,
    /// In the kernel: cancel through the ring (a worker's, or the shared one).
    pub(crate) kernel: Vec<(u64, Option<Arc<WorkerRing>>)>,
    /// Being pushed: ask again in a moment.
    pub(crate) pushing: Vec<u64>,
}

// SAFETY: the raw pointer `addr` (and the header in its scratch) names
// memory the caller of `Driver::submit` keeps valid until delivery; it is
// only dereferenced at delivery, after the entry was removed from the
// table, so moving the record between threads is sound.
unsafe impl Send for InFlight {}

/// The operations in flight and the order queues.
#[derive(Default)]
pub(crate) struct Table {
    ops: HashMap<u64, InFlight>,
    /// Per descriptor and direction, the keys in issue order; the first is
    /// in the kernel (or being pushed), the rest wait. Inline up to two, so
    /// a stream with one operation each way costs no block of its own (a
    /// `VecDeque` took one at its first operation: W4's memory per
    /// outstanding operation, `spec/benchmark.md`).
    queues: HashMap<QueueKey, SmallVec<[u64; 2]>>,
}

impl Table {
    /// Operations in flight.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Registers `op` with `sqe`. Returns the entry to push now (to `ring`,
    /// the pushing thread's), or `None` when the operation must wait for an
    /// earlier one of its queue.
    pub(crate) fn insert(
        &mut self,
        key: u64,
        mut op: InFlight,
        sqe: Sqe,
        ring: Option<&Arc<WorkerRing>>,
    ) -> Option<Sqe> {
        let now = match op.queue {
            None => true,
            Some(q) => {
                let q = self.queues.entry(q).or_default();
                q.push(key);
                q.len() == 1
            }
        };
        let out = if now {
            op.state = State::Pushing;
            op.ring = ring.map(|r| {
                r.op_pushed();
                Arc::clone(r)
            });
            Some(sqe)
        } else {
            op.state = State::Queued;
            op.sqe = Some(Box::new(sqe));
            None
        };
        self.ops.insert(key, op);
        out
    }

    /// After a push: marks the operation as in the kernel.
    pub(crate) fn pushed(&mut self, key: u64) {
        if let Some(op) = self.ops.get_mut(&key) {
            op.state = State::InKernel;
        } // else: already completed
    }

    /// Removes a completed operation. Returns it, and the next operation of
    /// its queue to push now (its key and entry; to `ring`, the calling
    /// thread's), if any.
    pub(crate) fn complete(
        &mut self,
        key: u64,
        ring: Option<&Arc<WorkerRing>>,
    ) -> Option<(InFlight, Option<(u64, Sqe)>)> {
        let op = self.ops.remove(&key)?;
        let next = op.queue.and_then(|qk| self.advance(qk, key, ring));
        Some((op, next))
    }

    /// Takes `key` out of queue `qk`; if that exposes a waiting operation at
    /// the front, hands it out for pushing.
    fn advance(
        &mut self,
        qk: QueueKey,
        key: u64,
        ring: Option<&Arc<WorkerRing>>,
    ) -> Option<(u64, Sqe)> {
        let q = self.queues.get_mut(&qk)?;
        let was_front = q.first() == Some(&key);
        if was_front {
            q.remove(0);
        } else {
            q.retain(|k| *k != key);
        }
        // An empty queue stays (no allocation per operation); there is at
        // most one per descriptor number and direction, reused by the next
        // handle that gets the number.
        let front = q.first().copied().filter(|_| was_front)?;
        let op = self.ops.get_mut(&front)?;
        if op.state != State::Queued {
            return None;
        }
        op.state = State::Pushing;
        op.ring = ring.map(|r| {
            r.op_pushed();
            Arc::clone(r)
        });
        op.sqe.take().map(|s| (front, *s))
    }

    /// Sorts a cancel request. Waiting operations leave the table (returned:
    /// the caller delivers 995 for them; a waiting one is never the front
    /// of its queue, so nothing new is exposed); those in the kernel are
    /// returned as keys for the ring; those being pushed right now are
    /// returned apart: the caller asks again once the push is done, so that
    /// its cancel reaches the kernel before it returns.
    pub(crate) fn cancel(&mut self, keys: &[u64]) -> Sorted {
        let mut out = Sorted::default();
        for &k in keys {
            let Some(op) = self.ops.get_mut(&k) else {
                continue;
            };
            match op.state {
                State::InKernel => out.kernel.push((k, op.ring.clone())),
                State::Pushing => out.pushing.push(k),
                State::Queued => {
                    let op = self.ops.remove(&k).expect("present");
                    if let Some(qk) = op.queue {
                        // Not the front (the front is never Queued), so
                        // nothing new is exposed.
                        let next = self.advance(qk, k, None);
                        debug_assert!(next.is_none());
                    }
                    out.waiting.push((k, op));
                }
            }
        }
        out
    }
}

/// Bits of a key that name its shard.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// One shard: its part of the table and its key counter, alone on its cache
/// lines (two workers touching two shards never share one).
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    table: parking_lot::Mutex<Table>,
    next: std::sync::atomic::AtomicU64,
}

/// The driver's table, sharded so that operations of different handles
/// rarely share a lock: a stream's operations all go to its descriptor's
/// shard (its order queues live there), a file's to a shard of the issuing
/// thread (file operations have no order between them). Every key carries
/// its shard in its low bits, so a completion or a cancel finds it without
/// a search.
pub(crate) struct Tables {
    shards: Box<[Shard]>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl Tables {
    /// A new key for an operation on `fd` (`stream`: ordered per descriptor).
    pub(crate) fn new_key(&self, fd: i32, stream: bool) -> u64 {
        let shard = if stream {
            (fd as u32 as usize) % SHARDS
        } else {
            (crate::submit::thread_token() as usize) % SHARDS
        };
        let n = self.shards[shard]
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ((n + 1) << SHARD_BITS) | shard as u64
    }

    /// The shard that holds `key`, locked.
    pub(crate) fn of(&self, key: u64) -> parking_lot::MutexGuard<'_, Table> {
        self.shards[(key as usize) % SHARDS].table.lock()
    }

    /// Operations in flight, over every shard.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.table.lock().len()).sum()
    }

    /// [`Table::cancel`] over keys of any shards.
    pub(crate) fn cancel(&self, keys: &[u64]) -> Sorted {
        let first = match keys.first() {
            Some(k) => *k as usize % SHARDS,
            None => return Sorted::default(),
        };
        if keys.iter().all(|k| *k as usize % SHARDS == first) {
            return self.shards[first].table.lock().cancel(keys);
        }
        let mut out = Sorted::default();
        for shard in 0..SHARDS {
            let mine: Vec<u64> = keys
                .iter()
                .copied()
                .filter(|k| *k as usize % SHARDS == shard)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let s = self.shards[shard].table.lock().cancel(&mine);
            out.waiting.extend(s.waiting);
            out.kernel.extend(s.kernel);
            out.pushing.extend(s.pushing);
        }
        out
    }
}
