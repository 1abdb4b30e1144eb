//! Every descriptor number's [`Slot`], found without a lock.
//!
//! Owns the map from a descriptor number to its slot. A slot is made on
//! first use and kept (an idle slot holds no state of the descriptor).
//! Descriptor numbers are small and dense (the kernel hands out the lowest
//! free one), so the map is a two-level array indexed by the number: a
//! lookup is two atomic loads, where a hash map behind one mutex made every
//! issue and every readiness event of every thread take the same lock
//! (W2 on mio, `spec/benchmark.md`). Numbers past the array (above
//! [`DIRECT`], beyond Linux's default `nr_open`) go to a locked map.
//!
//! It must never make two slots for one number: a slot's queues order that
//! descriptor's operations.

use rustc_hash::FxHashMap as HashMap;
use std::os::fd::RawFd;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::slot::{Queues, Slot};

/// Slots per leaf of the array.
const LEAF: usize = 1024;
/// Leaves: numbers below `LEAF * LEAVES` are found without a lock.
const LEAVES: usize = 1024;
/// The first number kept in the locked map (2^20).
pub(crate) const DIRECT: usize = LEAF * LEAVES;

type Leaf = Box<[OnceLock<Arc<Slot>>]>;

/// The map. Its fixed part is one pointer-sized cell per leaf (16 KiB); a
/// leaf (16 KiB) is made with the first slot of its 1,024 numbers.
pub(crate) struct SlotTable {
    leaves: Box<[OnceLock<Leaf>]>,
    far: Mutex<HashMap<RawFd, Arc<Slot>>>,
}

impl Default for SlotTable {
    fn default() -> Self {
        SlotTable {
            leaves: (0..LEAVES).map(|_| OnceLock::new()).collect(),
            far: Mutex::default(),
        }
    }
}

fn new_slot(fd: RawFd) -> Arc<Slot> {
    Arc::new(Slot {
        fd,
        q: Mutex::new(Queues::default()),
    })
}

impl SlotTable {
    /// The array cell of `fd`, making its leaf if `make`; `None` for a
    /// number past the array (or a leaf not made).
    fn cell(&self, fd: RawFd, make: bool) -> Option<&OnceLock<Arc<Slot>>> {
        let n = usize::try_from(fd).ok().filter(|n| *n < DIRECT)?;
        let leaf = &self.leaves[n / LEAF];
        let leaf = if make {
            leaf.get_or_init(|| (0..LEAF).map(|_| OnceLock::new()).collect())
        } else {
            leaf.get()?
        };
        Some(&leaf[n % LEAF])
    }

    /// The slot of `fd`, made if new.
    pub(crate) fn get_or_insert(&self, fd: RawFd) -> Arc<Slot> {
        match self.cell(fd, true) {
            Some(c) => Arc::clone(c.get_or_init(|| new_slot(fd))),
            None => Arc::clone(self.far.lock().entry(fd).or_insert_with(|| new_slot(fd))),
        }
    }

    /// The slot of `fd`, if one was ever made.
    pub(crate) fn get(&self, fd: RawFd) -> Option<Arc<Slot>> {
        match usize::try_from(fd) {
            Ok(n) if n < DIRECT => self.cell(fd, false)?.get().cloned(),
            _ => self.far.lock().get(&fd).cloned(),
        }
    }

    /// Every slot (for shutdown and statistics).
    pub(crate) fn all(&self) -> Vec<Arc<Slot>> {
        let near = self
            .leaves
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|leaf| leaf.iter().filter_map(OnceLock::get).cloned());
        let mut all: Vec<Arc<Slot>> = near.collect();
        all.extend(self.far.lock().values().cloned());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_per_number_near_and_far() {
        let t = SlotTable::default();
        for fd in [
            0,
            3,
            1023,
            1024,
            (DIRECT - 1) as RawFd,
            DIRECT as RawFd,
            RawFd::MAX,
        ] {
            assert!(t.get(fd).is_none(), "fd {fd}: none before first use");
            let a = t.get_or_insert(fd);
            let b = t.get_or_insert(fd);
            assert!(Arc::ptr_eq(&a, &b), "fd {fd}: one slot");
            assert!(Arc::ptr_eq(&a, &t.get(fd).expect("made")), "fd {fd}");
            assert_eq!(a.fd, fd);
        }
        assert_eq!(t.all().len(), 7);
        assert!(t.get(-1).is_none());
    }
}
