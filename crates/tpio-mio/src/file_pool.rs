//! The bounded set of blocking workers that carry regular-file operations
//! (files have no readiness: a read from the page cache or the disk is a
//! plain blocking `pread`).
//!
//! Owns the queue of file operations not yet started and the count of
//! workers (started on demand, at most `max`, kept until the driver goes).
//! An operation still in the queue can be taken out (cancelled); once a
//! worker has taken it, it runs to its normal end. This module never runs
//! the operations itself and never delivers a packet: the worker loop in
//! [`crate::driver`] does both.

use std::collections::VecDeque;

use parking_lot::{Condvar, Mutex};

use crate::op::Op;

#[derive(Default)]
struct FileState {
    queue: VecDeque<Op>,
    /// Workers started (and not given up on).
    threads: usize,
    /// Workers waiting for an operation.
    idle: usize,
    /// Workers in the middle of an operation.
    running: usize,
    stop: bool,
}

/// The queue of file operations and its workers' bookkeeping.
pub(crate) struct FilePool {
    st: Mutex<FileState>,
    cv: Condvar,
    max: usize,
}

impl FilePool {
    /// A pool of at most `max` workers (at least one).
    pub(crate) fn new(max: usize) -> FilePool {
        FilePool {
            st: Mutex::new(FileState::default()),
            cv: Condvar::new(),
            max: max.max(1),
        }
    }

    /// The most workers this pool starts.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Queues `op`. True when the caller must start one more worker (none
    /// is idle and fewer than `max` exist); it is counted already.
    pub(crate) fn push(&self, op: Op) -> bool {
        let mut st = self.st.lock();
        st.queue.push_back(op);
        if st.idle == 0 && st.threads < self.max {
            st.threads += 1;
            return true;
        }
        self.cv.notify_one();
        false
    }

    /// A worker could not be started: uncounts it. When no worker is left
    /// at all, the queued operations would never run; they are returned.
    pub(crate) fn spawn_failed(&self) -> Vec<Op> {
        let mut st = self.st.lock();
        st.threads -= 1;
        if st.threads == 0 {
            st.queue.drain(..).collect()
        } else {
            Vec::new()
        }
    }

    /// The next operation for a worker, waiting for one; `None` when the
    /// driver is going away and the queue is empty.
    pub(crate) fn next(&self) -> Option<Op> {
        let mut st = self.st.lock();
        loop {
            if let Some(op) = st.queue.pop_front() {
                st.running += 1;
                return Some(op);
            }
            if st.stop {
                st.threads -= 1;
                return None;
            }
            st.idle += 1;
            self.cv.wait(&mut st);
            st.idle -= 1;
        }
    }

    /// A worker is done with an operation (called before its packet is
    /// delivered, so the counts are right by the time anyone sees it).
    pub(crate) fn finished(&self) {
        self.st.lock().running -= 1;
    }

    /// Takes the queued (not started) operation with driver key `key`.
    pub(crate) fn take(&self, key: u64) -> Option<Op> {
        let mut st = self.st.lock();
        let i = st.queue.iter().position(|o| o.key() == key)?;
        st.queue.remove(i)
    }

    /// Stops the workers once they finish what they run; returns the
    /// operations that never started.
    pub(crate) fn stop(&self) -> Vec<Op> {
        let mut st = self.st.lock();
        st.stop = true;
        self.cv.notify_all();
        st.queue.drain(..).collect()
    }

    /// (workers started, operations queued, operations running).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let st = self.st.lock();
        (st.threads, st.queue.len(), st.running)
    }
}
