//! A paged slab with generation-checked keys: where the driver's table keeps
//! its operations in flight.
//!
//! Owns slot storage and key validity. An entry lives in a fixed slot of a
//! page of [`PAGE`] slots; its key is the slot's index and the slot's
//! generation, which moves on when the entry leaves, so a key that outlived
//! its entry (a cancel racing a completion) finds nothing instead of the
//! slot's next tenant. It must never hand out a key a live entry has, and
//! never move an entry once inserted.
//!
//! Why not a hash table or a `Vec`: both grow by doubling, so at a given
//! count they hold up to twice the memory the entries need (a hash table
//! 1.14–2.3× at its 7/8 load, measured 1.64× at W4's count), and both move
//! every entry when they grow. Pages are added one at a time and never move
//! or shrink; what a process reached at its peak it keeps, as before.

/// Slots per page: small enough that a shard's last page is mostly used
/// (W4 spreads 10,000 operations over 64 shards, ~156 each).
pub(crate) const PAGE: usize = 32;

/// Bits of a key that hold the slot's index; the generation is above them.
const INDEX_BITS: u32 = 24;
/// Bits of a key that hold the generation.
const GEN_BITS: u32 = 32;
/// Bits a key uses in all.
pub(crate) const KEY_BITS: u32 = INDEX_BITS + GEN_BITS;

const NO_SLOT: u32 = u32::MAX;

struct Slot<T> {
    /// Never 0 (so no key is 0); moves on when the entry leaves.
    gen: u32,
    entry: Entry<T>,
}

enum Entry<T> {
    /// Free; the next free slot, or [`NO_SLOT`].
    Free {
        next: u32,
    },
    Used(T),
}

/// The slab. Keys fit in [`KEY_BITS`] bits.
pub(crate) struct Slab<T> {
    pages: Vec<Box<[Slot<T>]>>,
    /// Pages it may hold: all the index bits allow, or fewer in tests.
    max_pages: usize,
    /// Head of the free list (most recently freed first: its page is warm).
    free: u32,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            pages: Vec::new(),
            max_pages: (1 << INDEX_BITS) / PAGE,
            free: NO_SLOT,
            len: 0,
        }
    }
}

fn split(key: u64) -> (usize, u32) {
    (
        (key & ((1 << INDEX_BITS) - 1)) as usize,
        (key >> INDEX_BITS) as u32,
    )
}

impl<T> Slab<T> {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key the next [`Self::insert`] will return, or `None` when every
    /// index is taken (2^24 entries).
    pub(crate) fn next_key(&mut self) -> Option<u64> {
        if self.free == NO_SLOT {
            self.add_page()?;
        }
        let i = self.free as usize;
        let gen = self.slot(i).gen;
        Some(u64::from(gen) << INDEX_BITS | i as u64)
    }

    /// Inserts `value`; returns its key, or gives it back when every index
    /// is taken.
    pub(crate) fn insert(&mut self, value: T) -> Result<u64, T> {
        let Some(key) = self.next_key() else {
            return Err(value);
        };
        let (i, _) = split(key);
        let slot = self.slot_mut(i);
        let Entry::Free { next } = slot.entry else {
            unreachable!("the free list names a used slot");
        };
        slot.entry = Entry::Used(value);
        self.free = next;
        self.len += 1;
        Ok(key)
    }

    /// The entry of `key`, if it is still there.
    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        let (i, gen) = split(key);
        match self.pages.get_mut(i / PAGE)?.get_mut(i % PAGE)? {
            Slot {
                gen: g,
                entry: Entry::Used(v),
            } if *g == gen => Some(v),
            _ => None,
        }
    }

    /// Takes the entry of `key` out, if it is still there.
    pub(crate) fn remove(&mut self, key: u64) -> Option<T> {
        let (i, gen) = split(key);
        let free = self.free;
        let slot = self.pages.get_mut(i / PAGE)?.get_mut(i % PAGE)?;
        if slot.gen != gen || matches!(slot.entry, Entry::Free { .. }) {
            return None;
        }
        let Entry::Used(v) = std::mem::replace(&mut slot.entry, Entry::Free { next: free }) else {
            unreachable!("checked above");
        };
        slot.gen = slot.gen.checked_add(1).unwrap_or(1);
        self.free = i as u32;
        self.len -= 1;
        Some(v)
    }

    fn slot(&self, i: usize) -> &Slot<T> {
        &self.pages[i / PAGE][i % PAGE]
    }

    fn slot_mut(&mut self, i: usize) -> &mut Slot<T> {
        &mut self.pages[i / PAGE][i % PAGE]
    }

    /// Adds a page of free slots, threaded onto the free list in index
    /// order. `None` when the index space is used up.
    fn add_page(&mut self) -> Option<()> {
        if self.pages.len() >= self.max_pages {
            return None;
        }
        let first = self.pages.len() * PAGE;
        let page: Box<[Slot<T>]> = (0..PAGE)
            .map(|j| Slot {
                gen: 1,
                entry: Entry::Free {
                    next: if j + 1 < PAGE {
                        (first + j + 1) as u32
                    } else {
                        self.free
                    },
                },
            })
            .collect();
        self.pages.push(page);
        self.free = first as u32;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_key_finds_nothing_even_when_its_slot_is_reused() {
        let mut s = Slab::default();
        let a = s.insert("a").unwrap();
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b").unwrap();
        assert_ne!(a, b, "the slot is reused under a new generation");
        assert_eq!(split(a).0, split(b).0);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.get_mut(b), Some(&mut "b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn keys_are_never_zero_and_fit_their_bits() {
        let mut s = Slab::default();
        let keys: Vec<u64> = (0..3 * PAGE).map(|i| s.insert(i).unwrap()).collect();
        assert!(keys.iter().all(|k| *k != 0 && *k >> KEY_BITS == 0));
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "keys are distinct");
    }

    #[test]
    fn pages_are_added_one_at_a_time_and_freed_slots_are_used_first() {
        let mut s = Slab::default();
        let keys: Vec<u64> = (0..PAGE + 1).map(|i| s.insert(i).unwrap()).collect();
        assert_eq!(s.pages.len(), 2);
        for k in &keys[..PAGE] {
            s.remove(*k).unwrap();
        }
        for i in 0..PAGE {
            s.insert(i).unwrap();
        }
        assert_eq!(
            s.pages.len(),
            2,
            "freed slots were reused before a new page"
        );
        assert_eq!(s.len(), PAGE + 1);
    }

    #[test]
    fn a_full_slab_gives_the_value_back_and_takes_it_once_a_slot_is_free() {
        let mut s = Slab {
            max_pages: 1,
            ..Slab::default()
        };
        let keys: Vec<u64> = (0..PAGE).map(|i| s.insert(i).unwrap()).collect();
        assert_eq!(s.next_key(), None);
        assert_eq!(s.insert(99), Err(99), "every index taken");
        assert_eq!(s.remove(keys[5]), Some(5));
        let k = s.insert(99).expect("a slot is free again");
        assert_eq!(s.get_mut(k), Some(&mut 99));
        assert_eq!(s.len(), PAGE);
    }

    #[test]
    fn next_key_is_the_key_insert_returns() {
        let mut s = Slab::default();
        let a = s.insert(1).unwrap();
        let want = s.next_key().unwrap();
        assert_eq!(s.insert(2).unwrap(), want);
        s.remove(a).unwrap();
        let want = s.next_key().unwrap();
        assert_eq!(s.insert(3).unwrap(), want);
    }
}
