//! A pool worker's own queue: the callbacks a worker with a [`Parker`]
//! queues on its own pool, which it runs itself, in order, after the one it
//! is running.
//!
//! Why: a Windows pool worker that learns of a completion runs its
//! callback, and a callback's next operation completes where it was issued
//! (the io_uring and mio drivers give each worker its own wait). Work a
//! worker queues for itself therefore stays on it, so a chain of operations
//! (a socket's receive, its send, its next receive) keeps to one thread: its
//! object, buffers and socket stay in that core's cache, and no lock or
//! queue is shared with the other workers on the way. Measured in
//! `spec/benchmark.md` (W2).
//!
//! Owns the queue and its bookkeeping (a length other threads read without
//! the lock, and the rescue epoch each entry was queued in). It must never
//! decide who runs what: `pool.rs` decides when work leaves here for
//! another worker (an idle worker with nothing of its own in flight steals
//! the newer half; the rescue moves entries that waited across a rescue
//! interval to the pool's shared queue; a worker about to block hands all of
//! it over first).
//!
//! Lock order: the pool's lock may be held while taking a local queue's,
//! never the other way round; no two local queues are ever held at once.

use crate::io_object::IoInner;
use crate::pool::Work;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::{Completion, Priority};
use std::collections::VecDeque;

/// One queued entry: the work and the rescue epoch it was queued in.
pub(crate) struct Entry {
    pub(crate) work: Work,
    pub(crate) priority: Priority,
    epoch: u64,
}

/// A worker's own queue (see the [module docs](self)).
pub(crate) struct LocalQueue {
    /// The worker's id in its pool.
    pub(crate) worker: u64,
    queues: Mutex<[VecDeque<Entry>; 3]>,
    /// Entries queued, for readers without the lock.
    len: AtomicUsize,
    /// Its worker has exited: nothing may be queued here any more (written
    /// and read under `queues`' lock).
    retired: std::sync::atomic::AtomicBool,
}

impl LocalQueue {
    pub(crate) fn new(worker: u64) -> Arc<LocalQueue> {
        Arc::new(LocalQueue {
            worker,
            queues: Mutex::new(Default::default()),
            len: AtomicUsize::new(0),
            retired: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Entries queued now (may be stale by the time it is read).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Queues `work` at the back of its priority, stamped with the rescue
    /// `epoch` (by the worker itself, or by a thread delivering on its
    /// behalf); returns the number of entries queued after it, or
    /// `Err(work)` once the worker has exited.
    pub(crate) fn push(&self, priority: Priority, work: Work, epoch: u64) -> Result<usize, Work> {
        let mut q = self.queues.lock();
        if self.retired.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(work);
        }
        q[priority as usize].push_back(Entry {
            work,
            priority,
            epoch,
        });
        Ok(self.publish(&q))
    }

    /// Its worker exits: nothing more is queued here; returns what was.
    pub(crate) fn retire(&self) -> Vec<(Work, Priority)> {
        let mut q = self.queues.lock();
        self.retired
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let out = q
            .iter_mut()
            .flat_map(|q| q.drain(..))
            .map(|e| (e.work, e.priority))
            .collect();
        self.publish(&q);
        out
    }

    /// The front entry of the highest priority queued, unless `global_mask`
    /// (the pool's shared queue's non-empty priorities) has a higher one:
    /// the caller then takes from the shared queue first.
    pub(crate) fn pop_unless_outranked(&self, global_mask: usize) -> Option<(Work, Priority)> {
        if self.len() == 0 {
            return None;
        }
        let mut q = self.queues.lock();
        let p = Priority::ALL
            .into_iter()
            .find(|p| !q[*p as usize].is_empty())?;
        if global_mask & ((1 << p as usize) - 1) != 0 {
            return None;
        }
        let e = q[p as usize].pop_front()?;
        self.publish(&q);
        Some((e.work, e.priority))
    }

    /// The newer half (rounded up) of what is queued, highest priorities
    /// first, in queue order (a steal: the worker itself takes the oldest
    /// next, so the two start in queue order).
    pub(crate) fn steal_half(&self) -> Vec<(Work, Priority)> {
        if self.len() == 0 {
            return Vec::new();
        }
        let mut q = self.queues.lock();
        let total: usize = q.iter().map(VecDeque::len).sum();
        let mut want = total.div_ceil(2);
        let mut out = Vec::with_capacity(want);
        for queue in q.iter_mut() {
            let n = want.min(queue.len());
            out.extend(queue.drain(queue.len() - n..).map(|e| (e.work, e.priority)));
            want -= n;
        }
        self.publish(&q);
        out
    }

    /// Takes the entries queued in an epoch before `epoch` (every entry,
    /// with `u64::MAX`), in queue order.
    pub(crate) fn take_older_than(&self, epoch: u64) -> Vec<(Work, Priority)> {
        if self.len() == 0 {
            return Vec::new();
        }
        let mut q = self.queues.lock();
        let mut out = Vec::new();
        for queue in q.iter_mut() {
            // Epochs only grow along a queue: the old ones are a prefix.
            while queue.front().is_some_and(|e| e.epoch < epoch) {
                if let Some(e) = queue.pop_front() {
                    out.push((e.work, e.priority));
                }
            }
        }
        self.publish(&q);
        out
    }

    /// Removes every queued callback of `object` and returns their
    /// completions (`wait_for_callbacks(true)`, a group's release).
    pub(crate) fn remove_of(&self, object: &Arc<IoInner>, out: &mut Vec<Completion>) {
        if self.len() == 0 {
            return;
        }
        let mut q = self.queues.lock();
        for queue in q.iter_mut() {
            queue.retain(|e| match &e.work {
                Work::Io(o, c) if Arc::ptr_eq(o, object) => {
                    out.push(*c);
                    false
                }
                _ => true,
            });
        }
        self.publish(&q);
    }

    /// Stores the length other threads read; returns it.
    fn publish(&self, q: &[VecDeque<Entry>; 3]) -> usize {
        let len = q.iter().map(VecDeque::len).sum();
        self.len.store(len, Ordering::Relaxed);
        len
    }
}

/// The rescue epoch of a pool: bumped by each rescue, read by each push to a
/// local queue. An entry queued in an epoch before the current one has
/// waited across a whole rescue interval.
pub(crate) struct Epoch(AtomicU64);

impl Epoch {
    pub(crate) fn new() -> Epoch {
        Epoch(AtomicU64::new(0))
    }
    pub(crate) fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Starts a new epoch; returns the one that ended.
    pub(crate) fn advance(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}
