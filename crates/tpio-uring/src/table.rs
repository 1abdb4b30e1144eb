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
//! queued (their operations carry offsets). Whether an operation is first
//! is its handle's count of operations that way ([`HandleOps::insert_dir`]),
//! which changes only under the shard's lock (an operation enters and
//! leaves its handle's table here): a descriptor whose operations never
//! wait costs no queue.
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
use crate::slab::{self, Slab};
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
    /// What the result means ([`Finish`]: the offset is not kept).
    pub(crate) finish: Finish,
    /// Bytes asked for.
    pub(crate) len: u32,
    /// A stream write's bytes written by earlier calls ([`Finish::StreamWrite`]).
    pub(crate) done: u32,
    /// The caller's memory the end needs, by [`Finish`]: a stream write's
    /// buffer (its rest is pushed from it), a receive's address buffer
    /// (its length is written back: [`Self::addr`]); nothing otherwise.
    /// One field for both keeps the record at 96 bytes.
    pub(crate) mem: *mut u8,
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

impl InFlight {
    /// Hands the operation out for pushing to `ring` (the pushing thread's
    /// worker ring; `None`: the shared ring), counted in that ring's
    /// operations until delivery.
    fn hand_out(&mut self, ring: Option<&Arc<WorkerRing>>) {
        self.state = State::Pushing;
        self.ring = ring.map(|r| {
            r.op_pushed();
            Arc::clone(r)
        });
    }

    /// A [`Finish::RecvFrom`] operation's address buffer.
    pub(crate) fn addr(&self) -> *mut AddrBuf {
        debug_assert_eq!(self.finish, Finish::RecvFrom);
        self.mem.cast()
    }
}

/// What an operation's kind says about its result: all
/// [`tpio_core::driver::transfer_result`] and the datagram address need,
/// in one byte (an [`OpKind`] is 24, with its offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// A read: 0 bytes may mean the end.
    Read,
    /// A receive with its source address.
    RecvFrom,
    /// A write to a pipe or a stream socket: it completes when all of it is
    /// written (a short write's rest is pushed again, [`Table::finish`]),
    /// as on Windows, where such a write never completes short.
    StreamWrite,
    /// Anything else.
    Other,
}

impl Finish {
    pub(crate) fn of(kind: OpKind, handle: HandleKind) -> Finish {
        match kind {
            OpKind::Read { .. } => Finish::Read,
            OpKind::Write { .. }
                if matches!(handle, HandleKind::Pipe | HandleKind::StreamSocket) =>
            {
                Finish::StreamWrite
            }
            OpKind::RecvFrom => Finish::RecvFrom,
            _ => Finish::Other,
        }
    }

    /// A kind with the same result mapping.
    pub(crate) fn kind(self) -> OpKind {
        match self {
            Finish::Read => OpKind::Read { offset: None },
            Finish::RecvFrom => OpKind::RecvFrom,
            Finish::StreamWrite | Finish::Other => OpKind::Write { offset: None },
        }
    }
}

/// What [`Table::finish`] made of a completion.
pub(crate) enum Finished {
    /// A stream write has more to write: push this (same key).
    Again(Sqe),
    /// The operation left the table; the next of its queue to push, if any.
    Left(InFlight, Option<(u64, Sqe)>),
}

/// The ring operation that writes `len` bytes from `buf` to the pipe or
/// stream socket `fd`: `send` on a socket, so that a closed connection
/// fails the operation with `EPIPE` instead of raising `SIGPIPE` (which
/// kills a process that did not ignore it), as the try's `send` does; on a
/// pipe a write with `RWF_NOSIGNAL` where the kernel has it (6.18+,
/// [`crate::probe::nosignal_writes`]).
pub(crate) fn stream_write(handle: HandleKind, fd: i32, buf: *const u8, len: u32) -> Sqe {
    let len = len.min(crate::driver::MAX_RW as u32);
    if handle == HandleKind::StreamSocket {
        crate::op::send(fd, buf, len, libc::MSG_NOSIGNAL)
    } else {
        crate::op::write_flags(fd, buf, len, pipe_write_flags())
    }
}

/// The `RWF_*` flags of a pipe write: [`crate::probe::RWF_NOSIGNAL`] where
/// the kernel takes it.
pub(crate) fn pipe_write_flags() -> i32 {
    if crate::probe::nosignal_writes() {
        crate::probe::RWF_NOSIGNAL
    } else {
        0
    }
}

/// A cancel request, sorted by where its operations are.
#[derive(Default)]
pub(crate) struct Sorted {
    /// Never reached the kernel: out of the table, to complete with 995.
    pub(crate) waiting: Vec<InFlight>,
    /// In the kernel: cancel through the ring (a worker's, or the shared one).
    pub(crate) kernel: Vec<(u64, Option<Arc<WorkerRing>>)>,
    /// Being pushed: ask again in a moment.
    pub(crate) pushing: Vec<u64>,
}

// SAFETY: the raw pointer `mem` (an address buffer and the header in its
// scratch, or a stream write's buffer) names memory the caller of
// `Driver::submit` keeps valid until delivery; it is dereferenced only at
// delivery, after the entry was removed from the table, or handed to the
// kernel for a write's rest under the shard's lock, so moving the record
// between threads is sound.
unsafe impl Send for InFlight {}

/// The operations in flight and the order queues of one shard.
#[derive(Default)]
pub(crate) struct Table {
    /// This shard's number, the low bits of each of its keys.
    shard: u64,
    /// Keyed by the slab key shifted over the shard's bits (a slab, not a
    /// hash table: W4's memory per outstanding operation, `slab.rs`).
    ops: Slab<InFlight>,
    /// Per descriptor and direction, the keys of the operations that wait,
    /// in issue order, behind the one in the kernel (or being pushed), which
    /// is not here. An entry exists only while an operation waits (W4's
    /// memory per outstanding operation, `spec/benchmark.md`); inline up to
    /// two keys.
    queues: HashMap<QueueKey, SmallVec<[u64; 2]>>,
}

impl Table {
    /// Operations in flight.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Registers `op` with `sqe` under a new key, which `register` is told
    /// first (with this shard locked: nothing can complete or cancel the
    /// operation before it is in its handle's [`HandleOps`]); `register`
    /// returns how many of the handle's operations that way were there
    /// before it (0: it goes to the kernel now). Returns the
    /// key and the entry to push now (to `ring`, the pushing thread's), or
    /// `None` for the entry when the operation must wait for an earlier one
    /// of its queue. `Err`: the shard holds 2^24 operations; `op` is given
    /// back, nothing was registered.
    pub(crate) fn insert(
        &mut self,
        mut op: InFlight,
        sqe: Sqe,
        ring: Option<&Arc<WorkerRing>>,
        register: impl FnOnce(u64) -> usize,
    ) -> Result<(u64, Option<Sqe>), InFlight> {
        let Some(local) = self.ops.next_key() else {
            return Err(op);
        };
        let key = local << SHARD_BITS | self.shard;
        let ahead = register(key);
        let now = match op.queue {
            None => true,
            Some(_) if ahead == 0 => true,
            Some(q) => {
                self.queues.entry(q).or_default().push(key);
                false
            }
        };
        let out = if now {
            op.hand_out(ring);
            Some(sqe)
        } else {
            op.state = State::Queued;
            op.sqe = Some(Box::new(sqe));
            None
        };
        let inserted = self.ops.insert(op);
        debug_assert_eq!(inserted.ok(), Some(local));
        Ok((key, out))
    }

    /// After a push: marks the operation as in the kernel.
    pub(crate) fn pushed(&mut self, key: u64) {
        if let Some(op) = self.ops.get_mut(key >> SHARD_BITS) {
            op.state = State::InKernel;
        } // else: already completed
    }

    /// The kernel finished `key` with `result`. A stream write that wrote
    /// part of what is left stays (its rest is returned, to push again at
    /// once to `ring`, the calling thread's; still the first of its queue);
    /// anything else leaves as [`Self::complete`] says.
    pub(crate) fn finish(
        &mut self,
        key: u64,
        result: i32,
        ring: Option<&Arc<WorkerRing>>,
    ) -> Option<Finished> {
        let op = self.ops.get_mut(key >> SHARD_BITS)?;
        let left = op.len - op.done;
        if op.finish == Finish::StreamWrite && result > 0 && (result as u32) < left {
            op.done += result as u32;
            let (fd, _) = op.queue.expect("a stream operation has a queue");
            // SAFETY: `done < len`: the rest is in the caller's buffer,
            // valid until delivery (the submit contract).
            let rest = unsafe { op.mem.add(op.done as usize) };
            let sqe = stream_write(op.handle_kind, fd, rest, op.len - op.done);
            if let Some(old) = op.ring.take() {
                old.op_done();
            }
            op.hand_out(ring);
            return Some(Finished::Again(sqe));
        }
        let (op, next) = self.complete(key, ring)?;
        Some(Finished::Left(op, next))
    }

    /// Removes a completed operation (one the kernel held, or one being
    /// pushed that the ring refused: the first of its queue) from the table
    /// and from its handle's. Returns it, and the next operation of its
    /// queue to push now (its key and entry; to `ring`, the calling
    /// thread's), if one waits.
    pub(crate) fn complete(
        &mut self,
        key: u64,
        ring: Option<&Arc<WorkerRing>>,
    ) -> Option<(InFlight, Option<(u64, Sqe)>)> {
        let op = self.ops.remove(key >> SHARD_BITS)?;
        debug_assert_ne!(op.state, State::Queued, "a waiting operation completed");
        op.ops.remove(key);
        let next = op.queue.and_then(|qk| self.advance(qk, ring));
        Some((op, next))
    }

    /// The first of queue `qk` completed: hands out the operation that
    /// waited next, if any, for pushing.
    fn advance(&mut self, qk: QueueKey, ring: Option<&Arc<WorkerRing>>) -> Option<(u64, Sqe)> {
        let q = self.queues.get_mut(&qk)?;
        let next = q.remove(0);
        if q.is_empty() {
            self.queues.remove(&qk);
        }
        let op = self.ops.get_mut(next >> SHARD_BITS)?;
        debug_assert_eq!(op.state, State::Queued);
        op.hand_out(ring);
        op.sqe.take().map(|s| (next, *s))
    }

    /// Takes a waiting operation's key out of its queue.
    fn unqueue(&mut self, qk: QueueKey, key: u64) {
        if let Some(q) = self.queues.get_mut(&qk) {
            q.retain(|k| *k != key);
            if q.is_empty() {
                self.queues.remove(&qk);
            }
        }
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
            let Some(op) = self.ops.get_mut(k >> SHARD_BITS) else {
                continue;
            };
            match op.state {
                State::InKernel => out.kernel.push((k, op.ring.clone())),
                State::Pushing => out.pushing.push(k),
                State::Queued => {
                    let op = self.ops.remove(k >> SHARD_BITS).expect("present");
                    op.ops.remove(k);
                    if let Some(qk) = op.queue {
                        // Not the first (the first is never Queued), so
                        // nothing new is exposed.
                        self.unqueue(qk, k);
                    }
                    out.waiting.push(op);
                }
            }
        }
        out
    }
}

/// Bits of a key that name its shard.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
// Every key is a caller's user_data as the ring sees it: below the bits the
// tag module reserves.
const _: () = assert!(slab::KEY_BITS + SHARD_BITS <= 62);

/// One shard: its part of the table, alone on its cache lines (two workers
/// touching two shards never share one).
#[repr(align(128))]
struct Shard {
    table: parking_lot::Mutex<Table>,
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
            shards: (0..SHARDS)
                .map(|i| Shard {
                    table: parking_lot::Mutex::new(Table {
                        shard: i as u64,
                        ..Table::default()
                    }),
                })
                .collect(),
        }
    }
}

impl Tables {
    /// The shard for an operation on `fd` (`stream`: ordered per
    /// descriptor), locked.
    pub(crate) fn for_new(&self, fd: i32, stream: bool) -> parking_lot::MutexGuard<'_, Table> {
        let shard = if stream {
            (fd as u32 as usize) % SHARDS
        } else {
            (crate::submit::thread_token() as usize) % SHARDS
        };
        self.shards[shard].table.lock()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// W4's memory per outstanding operation is mostly this record
    /// (`spec/benchmark.md`): a field added here shows there.
    #[test]
    fn an_operation_in_flight_stays_small() {
        let size = std::mem::size_of::<InFlight>();
        eprintln!("InFlight: {size} bytes");
        assert!(size <= 96, "InFlight grew to {size} bytes");
    }
}
