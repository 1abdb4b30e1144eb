//! The waiting operations of each pipe or socket descriptor, and its `mio`
//! registration.
//!
//! Owns the per-descriptor state: two FIFO queues (reads, writes), the
//! registration, and what the last events said about readiness. A
//! descriptor is registered (edge-triggered, for reading and writing) the
//! first time an operation on it has to wait, and stays registered until
//! its handle closes ([`Queues::release`], from the driver's `closing`), as
//! an event loop keeps a socket's registration: no `epoll_ctl` per wait.
//! While registered, the slot remembers whether the descriptor may be
//! ready in each direction (set by an event, cleared when a try would
//! block), so an operation issued when nothing arrived since the last
//! "would block" waits for the next edge without a failing try.
//!
//! The registration belongs to one handle ([`HandleOps`] identity): a
//! submission on the same descriptor number from another handle (the old
//! one was closed without `closing`) drops the old registration first. A
//! queued operation keeps its descriptor open (the facade's guarantee),
//! so the descriptor cannot change under waiting operations. The token of
//! a registration is the descriptor number; a stale event only makes the
//! driver try its queue heads once more, which is harmless because every
//! try is non-blocking.
//!
//! It must never try an operation that is not at the head of its queue
//! (that would let it overtake an earlier one of the same direction), and
//! never block while a queue lock is held.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use parking_lot::Mutex;
use tpio_core::driver::HandleOps;
use tpio_core::Win32Error;

use crate::attempt::{attempt, Attempt};
use crate::op::{Dir, Op};

/// The token of the driver's waker (no descriptor has this number).
pub(crate) const WAKE: Token = Token(usize::MAX);

/// A `mio` registry a descriptor can be registered with — the poller
/// thread's, or a pool worker's own ([`crate::worker_poll`]) — and how
/// many descriptors are registered with it now.
pub(crate) struct Reg {
    pub(crate) registry: Registry,
    count: AtomicUsize,
    /// Of those, the ones with an operation waiting.
    active: AtomicUsize,
    /// The fault-injection plan it was made under (empty without the
    /// `fault-injection` feature).
    pub(crate) faults: crate::faults::Scope,
}

impl Reg {
    pub(crate) fn new(registry: Registry) -> Reg {
        Reg {
            registry,
            count: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            faults: crate::faults::Scope::now(),
        }
    }

    /// Descriptors registered with it now.
    pub(crate) fn registered(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Descriptors registered with it on which an operation waits now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// One descriptor number's waiting operations (its number is where the
/// slot table keeps it).
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) q: Mutex<Queues>,
}

/// The queues of a [`Slot`], its registration and readiness.
#[derive(Default)]
pub(crate) struct Queues {
    reads: VecDeque<Op>,
    writes: VecDeque<Op>,
    /// The registry it is registered with (`None`: not registered).
    owner: Option<Arc<Reg>>,
    /// The handle the registration is for.
    handle: Weak<HandleOps>,
    /// An operation waits (counted in the owner's `active`).
    active: bool,
    /// While registered: (readable, writable) may be ready — no try would
    /// block since the last event said so.
    ready: (bool, bool),
    /// Operations that went pending on this descriptor number, for their
    /// keys (wrapping).
    count: u32,
}

impl Queues {
    /// The queue of direction `d`.
    pub(crate) fn queue(&mut self, d: Dir) -> &mut VecDeque<Op> {
        match d {
            Dir::In => &mut self.reads,
            Dir::Out => &mut self.writes,
        }
    }

    /// The next count for a key of this descriptor's operations.
    pub(crate) fn next_count(&mut self) -> u32 {
        self.count = self.count.wrapping_add(1);
        self.count
    }

    /// Queues `op` in direction `d`. A queue's first block holds one
    /// operation: most descriptors never have two waiting one way, and a
    /// `VecDeque`'s first growth takes room for four (~600 bytes per waiting
    /// socket; W4's memory per outstanding operation, `spec/benchmark.md`).
    /// The second operation grows it as usual.
    pub(crate) fn push(&mut self, d: Dir, op: Op) {
        let q = self.queue(d);
        if q.capacity() == 0 {
            q.reserve_exact(1);
        }
        q.push_back(op);
    }

    /// Removes the operation with driver key `key`, if it is waiting here.
    pub(crate) fn take(&mut self, key: u64) -> Option<Op> {
        for q in [&mut self.reads, &mut self.writes] {
            if let Some(i) = q.iter().position(|o| o.key() == key) {
                return q.remove(i);
            }
        }
        None
    }

    /// Removes every waiting operation (the driver is going away).
    pub(crate) fn take_all(&mut self) -> Vec<Op> {
        self.reads.drain(..).chain(self.writes.drain(..)).collect()
    }

    /// Tries the head of each queue until it would block or the queue is
    /// empty; returns the operations that finished, in order, with their
    /// raw results.
    pub(crate) fn progress(&mut self) -> Vec<(Op, Result<usize, Win32Error>)> {
        let mut done = Vec::new();
        let registered = self.owner.is_some();
        for (q, ready) in [
            (&mut self.reads, &mut self.ready.0),
            (&mut self.writes, &mut self.ready.1),
        ] {
            if registered && !*ready {
                continue; // no edge since the last try that would block
            }
            while let Some(head) = q.front_mut() {
                // SAFETY: a queued operation's buffers are valid and its fd
                // open until its packet is delivered (the submit contract),
                // which happens only after it leaves this queue.
                match unsafe { attempt(head) } {
                    Attempt::WouldBlock => {
                        *ready = false;
                        break;
                    }
                    Attempt::Done(r) => {
                        if let Some(op) = q.pop_front() {
                            done.push((op, r));
                        }
                    }
                }
            }
        }
        done
    }

    /// Brings the registration of `fd` in line with the queues: registers
    /// it (with `here`, the calling thread's registry) when an operation
    /// waits on a descriptor that is not registered yet, and keeps the
    /// owner's count of descriptors with waiting operations. Called with
    /// the queue lock held, while `fd` is open.
    pub(crate) fn sync_registration(&mut self, fd: RawFd, here: &Arc<Reg>) -> io::Result<()> {
        let waiting = !self.reads.is_empty() || !self.writes.is_empty();
        if let Some(owner) = &self.owner {
            if waiting != self.active {
                self.active = waiting;
                if waiting {
                    owner.active.fetch_add(1, Ordering::AcqRel);
                } else {
                    owner.active.fetch_sub(1, Ordering::AcqRel);
                }
            }
            return Ok(());
        }
        if !waiting {
            return Ok(());
        }
        let registry = &here.registry;
        let interest = Interest::READABLE | Interest::WRITABLE;
        let r = crate::faults::register(here.faults, || {
            registry.register(&mut SourceFd(&fd), Token(fd as usize), interest)
        });
        match r {
            // Registered by someone else's stale state: take it over.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                registry.reregister(&mut SourceFd(&fd), Token(fd as usize), interest)
            }
            r => r,
        }?;
        here.count.fetch_add(1, Ordering::AcqRel);
        here.active.fetch_add(1, Ordering::AcqRel);
        self.owner = Some(Arc::clone(here));
        self.active = true;
        // A direction whose operation waits has just been tried and would
        // block; the other is unknown. Readiness that came since the try
        // is reported by the registration itself (an edge-triggered
        // registration of a ready descriptor gets an event at once).
        self.ready = (self.reads.is_empty(), self.writes.is_empty());
        Ok(())
    }

    /// Whether the registration is for another handle than `handle` (one
    /// closed without `closing`, whose number came back): then it is
    /// dropped, and the next wait registers afresh.
    pub(crate) fn claim(&mut self, fd: RawFd, handle: &Arc<HandleOps>) {
        if std::ptr::eq(self.handle.as_ptr(), Arc::as_ptr(handle)) && self.handle.strong_count() > 0
        {
            return; // the handle it already belongs to
        }
        // Nothing of another handle can wait here: its descriptor would
        // still be open, and this number not reused.
        self.release(fd);
        self.handle = Arc::downgrade(handle);
    }

    /// Drops the registration of `fd` (its handle is closing, the driver
    /// is going away, or a worker that owns it is leaving), if nothing
    /// waits. Returns false if operations wait (nothing is changed).
    pub(crate) fn release(&mut self, fd: RawFd) -> bool {
        if !self.reads.is_empty() || !self.writes.is_empty() {
            return false;
        }
        if let Some(owner) = self.owner.take() {
            if self.active {
                owner.active.fetch_sub(1, Ordering::AcqRel);
                self.active = false;
            }
            owner.count.fetch_sub(1, Ordering::AcqRel);
            match owner.registry.deregister(&mut SourceFd(&fd)) {
                // The descriptor was closed (and so left the poll) already.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBADF)) => {}
                Err(e) => tracing::warn!(fd, "tpio-mio: deregister failed: {e}"),
                Ok(()) => {}
            }
        }
        // `handle` stays: a registration made next (after a move to another
        // poll) is still that handle's.
        true
    }

    /// An event for the descriptor: what may be ready now.
    pub(crate) fn mark_ready(&mut self, readable: bool, writable: bool) {
        self.ready.0 |= readable;
        self.ready.1 |= writable;
    }

    /// Whether a try in direction `d` may succeed: unregistered (nothing
    /// known), or no try would block since the last event for it.
    pub(crate) fn may_be_ready(&self, d: Dir) -> bool {
        self.owner.is_none()
            || match d {
                Dir::In => self.ready.0,
                Dir::Out => self.ready.1,
            }
    }

    /// A try in direction `d` would block: wait for the next edge.
    pub(crate) fn not_ready(&mut self, d: Dir) {
        match d {
            Dir::In => self.ready.0 = false,
            Dir::Out => self.ready.1 = false,
        }
    }

    /// True while registered with a poll.
    pub(crate) fn registered(&self) -> bool {
        self.owner.is_some()
    }

    /// Moves an idle registration to `here` (the issuing thread's poll):
    /// the next wait registers it there, so a worker's operation completes
    /// in its own poll. One that has operations waiting stays.
    pub(crate) fn follow(&mut self, fd: RawFd, here: &Arc<Reg>) {
        if self.owner.as_ref().is_some_and(|o| !Arc::ptr_eq(o, here)) {
            self.release(fd);
        }
    }

    /// The registry it is registered with.
    pub(crate) fn owner(&self) -> Option<&Arc<Reg>> {
        self.owner.as_ref()
    }

    /// Whether the registration is with `reg`.
    pub(crate) fn owned_by(&self, reg: &Arc<Reg>) -> bool {
        self.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, reg))
    }
}
