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
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::slot::Slot;

/// Slots per leaf of the array.
const LEAF: usize = 1024;
/// Leaves: numbers below `LEAF * LEAVES` are found without a lock.
const LEAVES: usize = 1024;
/// The first number kept in the locked map (2^20).
pub(crate) const DIRECT: usize = LEAF * LEAVES;

/// A leaf: one cell per descriptor number, null until its slot is made,
/// then a pointer from `Box::into_raw` that never changes until the table
/// is dropped.
type Leaf = Box<[AtomicPtr<Slot>]>;

/// The map. Its fixed part is one pointer-sized cell per leaf (16 KiB); a
/// leaf (8 KiB: a pointer per number) is made with the first slot of its
/// 1,024 numbers. A slot is a box of its own, not shared (`Arc`): slots
/// live as long as the table, so a lookup lends it for the table's borrow
/// (W4's memory per outstanding operation, `spec/benchmark.md`).
pub(crate) struct SlotTable {
    leaves: Box<[OnceLock<Leaf>]>,
    /// Numbers past the array. A box is never removed or replaced while
    /// the table lives.
    far: Mutex<HashMap<RawFd, Box<Slot>>>,
}

impl Default for SlotTable {
    fn default() -> Self {
        SlotTable {
            leaves: (0..LEAVES).map(|_| OnceLock::new()).collect(),
            far: Mutex::default(),
        }
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        for leaf in self.leaves.iter_mut().filter_map(OnceLock::get_mut) {
            for cell in leaf.iter_mut() {
                let p = std::mem::replace(cell.get_mut(), ptr::null_mut());
                if !p.is_null() {
                    // SAFETY: a non-null cell holds a pointer from
                    // `Box::into_raw` that nothing else frees; `&mut self`
                    // means no slot is lent out.
                    drop(unsafe { Box::from_raw(p) });
                }
            }
        }
    }
}

impl SlotTable {
    /// The array cell of `fd`, making its leaf if `make`; `None` for a
    /// number past the array (or a leaf not made).
    fn cell(&self, fd: RawFd, make: bool) -> Option<&AtomicPtr<Slot>> {
        let n = usize::try_from(fd).ok().filter(|n| *n < DIRECT)?;
        let leaf = &self.leaves[n / LEAF];
        let leaf = if make {
            leaf.get_or_init(|| (0..LEAF).map(|_| AtomicPtr::default()).collect())
        } else {
            leaf.get()?
        };
        Some(&leaf[n % LEAF])
    }

    /// The slot a cell points to, if made.
    fn lend(&self, cell: &AtomicPtr<Slot>) -> Option<&Slot> {
        let p = cell.load(Ordering::Acquire);
        // SAFETY: a non-null cell holds a pointer from `Box::into_raw`
        // (published with Release, read with Acquire) that stays valid and
        // unchanged until the table is dropped, which `&self` outlives.
        // Slots are only read through shared references.
        unsafe { p.as_ref() }
    }

    /// The slot of `fd`, made if new.
    pub(crate) fn get_or_insert(&self, fd: RawFd) -> &Slot {
        let Some(cell) = self.cell(fd, true) else {
            let mut far = self.far.lock();
            let slot: *const Slot = &**far.entry(fd).or_default();
            drop(far);
            // SAFETY: the box is never removed or replaced while the table
            // lives (`far`), so its slot outlives `&self`.
            return unsafe { &*slot };
        };
        if let Some(slot) = self.lend(cell) {
            return slot;
        }
        let new = Box::into_raw(Box::default());
        match cell.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            // SAFETY: `new` came from `Box::into_raw` above and lost the
            // race: nobody else saw it.
            Err(_) => drop(unsafe { Box::from_raw(new) }),
        }
        self.lend(cell).expect("a cell is set once made")
    }

    /// The slot of `fd`, if one was ever made.
    pub(crate) fn get(&self, fd: RawFd) -> Option<&Slot> {
        match usize::try_from(fd) {
            Ok(n) if n < DIRECT => self.lend(self.cell(fd, false)?),
            _ => {
                let slot: *const Slot = &**self.far.lock().get(&fd)?;
                // SAFETY: as in `get_or_insert`.
                Some(unsafe { &*slot })
            }
        }
    }

    /// Every slot with its number (for shutdown and statistics).
    pub(crate) fn all(&self) -> Vec<(RawFd, &Slot)> {
        let mut all = Vec::new();
        for (i, leaf) in self.leaves.iter().enumerate() {
            let Some(leaf) = leaf.get() else { continue };
            for (j, cell) in leaf.iter().enumerate() {
                if let Some(slot) = self.lend(cell) {
                    // Below DIRECT (2^20): fits.
                    all.push(((i * LEAF + j) as RawFd, slot));
                }
            }
        }
        let far: Vec<(RawFd, *const Slot)> = self
            .far
            .lock()
            .iter()
            .map(|(fd, b)| (*fd, &**b as *const Slot))
            .collect();
        // SAFETY: as in `get_or_insert`.
        all.extend(far.into_iter().map(|(fd, p)| (fd, unsafe { &*p })));
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
            assert!(std::ptr::eq(a, b), "fd {fd}: one slot");
            assert!(std::ptr::eq(a, t.get(fd).expect("made")), "fd {fd}");
            assert!(
                t.all().iter().any(|(n, s)| *n == fd && std::ptr::eq(*s, a)),
                "fd {fd}: listed with its number"
            );
        }
        assert_eq!(t.all().len(), 7);
        assert!(t.get(-1).is_none());
    }

    #[test]
    fn threads_racing_for_a_number_get_one_slot() {
        let t = SlotTable::default();
        let fds: Vec<RawFd> = (0..64).chain([DIRECT as RawFd + 1]).collect();
        let seen: Vec<Vec<usize>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        fds.iter()
                            .map(|&fd| t.get_or_insert(fd) as *const Slot as usize)
                            .collect()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        for w in seen.windows(2) {
            assert_eq!(w[0], w[1], "every thread got the same slots");
        }
        assert_eq!(t.all().len(), fds.len());
    }
}
