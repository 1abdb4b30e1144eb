//! The waiting operations of each pipe or socket descriptor, and its `mio`
//! registration.
//!
//! Owns the per-descriptor state: two FIFO queues (reads, writes) and the
//! registration that exists exactly while a queue is non-empty. A queued
//! operation keeps its descriptor open (the facade's guarantee), so a
//! registration can never outlive its descriptor or be mistaken for a new
//! descriptor with the same number: when the last queued operation leaves,
//! the descriptor is deregistered before that operation's packet is
//! delivered. An idle [`Slot`] holds nothing about the descriptor, only
//! empty queues for its number. The token of a registration is the
//! descriptor number; a stale event (from a registration already gone)
//! only makes the driver try its queue heads once more, which is harmless
//! because every try is non-blocking.
//!
//! It must never try an operation that is not at the head of its queue
//! (that would let it overtake an earlier one of the same direction), and
//! never block while a queue lock is held.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use parking_lot::Mutex;
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
    /// The fault-injection plan it was made under (empty without the
    /// `fault-injection` feature).
    pub(crate) faults: crate::faults::Scope,
}

impl Reg {
    pub(crate) fn new(registry: Registry) -> Reg {
        Reg {
            registry,
            count: AtomicUsize::new(0),
            faults: crate::faults::Scope::now(),
        }
    }

    /// Descriptors registered with it now.
    pub(crate) fn registered(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// One descriptor number's waiting operations.
pub(crate) struct Slot {
    pub(crate) fd: RawFd,
    pub(crate) q: Mutex<Queues>,
}

/// The queues of a [`Slot`] and what it is registered for.
#[derive(Default)]
pub(crate) struct Queues {
    reads: VecDeque<Op>,
    writes: VecDeque<Op>,
    /// Registered for (readable, writable), or not registered.
    interest: Option<(bool, bool)>,
    /// The registry it is registered with (while `interest` is set).
    owner: Option<Arc<Reg>>,
}

impl Queues {
    /// The queue of direction `d`.
    pub(crate) fn queue(&mut self, d: Dir) -> &mut VecDeque<Op> {
        match d {
            Dir::In => &mut self.reads,
            Dir::Out => &mut self.writes,
        }
    }

    /// Removes the operation with driver key `key`, if it is waiting here.
    pub(crate) fn take(&mut self, key: u64) -> Option<Op> {
        for q in [&mut self.reads, &mut self.writes] {
            if let Some(i) = q.iter().position(|o| o.key == key) {
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
        for q in [&mut self.reads, &mut self.writes] {
            while let Some(head) = q.front_mut() {
                // SAFETY: a queued operation's buffers are valid and its fd
                // open until its packet is delivered (the submit contract),
                // which happens only after it leaves this queue.
                match unsafe { attempt(head) } {
                    Attempt::WouldBlock => break,
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
    /// (with `here`, the calling thread's registry) when an operation
    /// waits, widens the interest when the other direction starts waiting,
    /// deregisters when nothing waits — the last two with the registry it
    /// is registered with. Called with the queue lock held, and before any
    /// packet of an operation that left the queues is delivered (so `fd` is
    /// still open).
    pub(crate) fn sync_registration(&mut self, fd: RawFd, here: &Arc<Reg>) -> io::Result<()> {
        let want = (!self.reads.is_empty(), !self.writes.is_empty());
        match (self.interest, want) {
            (None, (false, false)) => Ok(()),
            (Some(_), (false, false)) => {
                self.interest = None;
                let owner = self.owner.take().unwrap_or_else(|| Arc::clone(here));
                owner.count.fetch_sub(1, Ordering::AcqRel);
                owner.registry.deregister(&mut SourceFd(&fd))
            }
            (None, w) => {
                let registry = &here.registry;
                let r = crate::faults::register(here.faults, || {
                    registry.register(&mut SourceFd(&fd), Token(fd as usize), interest(w))
                });
                let r = match r {
                    // Registered by someone else's stale state: take it over.
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        registry.reregister(&mut SourceFd(&fd), Token(fd as usize), interest(w))
                    }
                    r => r,
                };
                if r.is_ok() {
                    self.interest = Some(w);
                    here.count.fetch_add(1, Ordering::AcqRel);
                    self.owner = Some(Arc::clone(here));
                }
                r
            }
            (Some(cur), w) => {
                let union = (cur.0 || w.0, cur.1 || w.1);
                if union == cur {
                    return Ok(());
                }
                let owner = self.owner.as_ref().unwrap_or(here);
                crate::faults::register(owner.faults, || {
                    owner.registry.reregister(
                        &mut SourceFd(&fd),
                        Token(fd as usize),
                        interest(union),
                    )
                })?;
                self.interest = Some(union);
                Ok(())
            }
        }
    }

    /// True while registered with the poller.
    pub(crate) fn registered(&self) -> bool {
        self.interest.is_some()
    }
}

fn interest((r, w): (bool, bool)) -> Interest {
    match (r, w) {
        (true, true) => Interest::READABLE | Interest::WRITABLE,
        (false, true) => Interest::WRITABLE,
        _ => Interest::READABLE,
    }
}

/// Every descriptor number's [`Slot`] (created on first use, kept: an idle
/// slot holds no state of the descriptor).
#[derive(Default)]
pub(crate) struct SlotTable {
    map: Mutex<HashMap<RawFd, Arc<Slot>>>,
}

impl SlotTable {
    /// The slot of `fd`, made if new.
    pub(crate) fn get_or_insert(&self, fd: RawFd) -> Arc<Slot> {
        Arc::clone(self.map.lock().entry(fd).or_insert_with(|| {
            Arc::new(Slot {
                fd,
                q: Mutex::new(Queues::default()),
            })
        }))
    }

    /// The slot of `fd`, if one was ever made.
    pub(crate) fn get(&self, fd: RawFd) -> Option<Arc<Slot>> {
        self.map.lock().get(&fd).cloned()
    }

    /// Every slot (for shutdown and statistics).
    pub(crate) fn all(&self) -> Vec<Arc<Slot>> {
        self.map.lock().values().cloned().collect()
    }
}
