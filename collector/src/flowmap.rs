//! The flow table's map: flows in one dense vector, found through an
//! open-addressing index (linear probing) of 8-byte slots.
//!
//! Unlike a general-purpose hash map it lets the caller prefetch: the slot of
//! a key from its hash ([`FlowMap::prefetch_slot`]), then the entry that slot
//! points to ([`FlowMap::prefetch_entry`]), a few packets ahead, so that with
//! ~100k live flows (10+ MB, beyond the L2 cache) the lookups of a batch of
//! packets overlap their cache misses instead of waiting for each in turn.
//! Iteration follows the vector, so it is deterministic (insertion order,
//! changed only by removals moving the last entry into the hole).

use std::hash::BuildHasher;

use crate::prefetch;

/// An index slot: 0 is empty, else the top 32 bits of the key's hash (which
/// also give the slot's home position) above entry number + 1.
type Slot = u64;

/// Smallest index (slots).
const MIN_SLOTS: usize = 64;

pub(crate) struct FlowMap<K, V> {
    index: Vec<Slot>,
    entries: Vec<(K, V)>,
    hasher: foldhash::fast::RandomState,
}

fn tag(hash: u64) -> u64 {
    hash & 0xFFFF_FFFF_0000_0000
}

impl<K: std::hash::Hash + Eq, V> FlowMap<K, V> {
    pub(crate) fn new() -> Self {
        FlowMap {
            index: Vec::new(),
            entries: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The hasher, to work out hashes of keys elsewhere.
    pub(crate) fn hasher(&self) -> &foldhash::fast::RandomState {
        &self.hasher
    }

    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    /// Index position where the probe for `hash` (or for a slot) starts:
    /// from the top 32 bits, which the slot keeps.
    fn home(&self, hash: u64) -> usize {
        usize::try_from(hash >> 32).unwrap_or(0) & self.mask()
    }

    /// Entry number of the key, if present.
    pub(crate) fn find(&self, hash: u64, key: &K) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.mask();
        let t = tag(hash);
        let mut pos = self.home(hash);
        loop {
            let s = *self.index.get(pos)?;
            if s == 0 {
                return None;
            }
            if tag(s) == t {
                let i = usize::try_from(s & 0xFFFF_FFFF)
                    .unwrap_or(0)
                    .wrapping_sub(1);
                if self.entries.get(i).is_some_and(|e| e.0 == *key) {
                    return Some(i);
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    pub(crate) fn get(&self, hash: u64, key: &K) -> Option<&V> {
        let i = self.find(hash, key)?;
        self.entries.get(i).map(|e| &e.1)
    }

    pub(crate) fn get_mut(&mut self, hash: u64, key: &K) -> Option<&mut V> {
        let i = self.find(hash, key)?;
        self.entries.get_mut(i).map(|e| &mut e.1)
    }

    pub(crate) fn contains(&self, hash: u64, key: &K) -> bool {
        self.find(hash, key).is_some()
    }

    pub(crate) fn entry_mut(&mut self, i: usize) -> Option<&mut (K, V)> {
        self.entries.get_mut(i)
    }

    /// Adds a key that is not present; returns its entry number.
    pub(crate) fn insert_new(&mut self, hash: u64, key: K, value: V) -> usize {
        // At most 7/8 full: linear probing stays short with the tags.
        if (self.entries.len() + 1) * 8 > self.index.len() * 7 {
            self.grow();
        }
        let i = self.entries.len();
        self.entries.push((key, value));
        self.place(hash, i);
        i
    }

    fn place(&mut self, hash: u64, i: usize) {
        self.place_slot(tag(hash) | (u64::try_from(i).unwrap_or(0) + 1));
    }

    fn place_slot(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut pos = self.home(slot);
        while let Some(s) = self.index.get_mut(pos) {
            if *s == 0 {
                *s = slot;
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let slots = (self.index.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.index, vec![0; slots]);
        for s in old.into_iter().filter(|&s| s != 0) {
            // A slot carries what placing needs: its tag (and so its home) and entry.
            self.place_slot(s);
        }
    }

    /// Index position of the slot pointing at entry `i` (whose key hashes to `hash`).
    fn position_of(&self, hash: u64, i: usize) -> Option<usize> {
        let mask = self.mask();
        let want = u64::try_from(i).unwrap_or(0) + 1;
        let mut pos = self.home(hash);
        for _ in 0..self.index.len() {
            let s = *self.index.get(pos)?;
            if s == 0 {
                return None;
            }
            if s & 0xFFFF_FFFF == want {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
        None
    }

    /// Removes entry `i`; the last entry moves into its place.
    pub(crate) fn remove_at(&mut self, i: usize) -> Option<(K, V)> {
        if i >= self.entries.len() {
            return None;
        }
        let h = self.hash(&self.entries[i].0);
        if let Some(mut hole) = self.position_of(h, i) {
            // Backward-shift deletion: pull later slots of the run into the hole.
            let mask = self.mask();
            let mut pos = (hole + 1) & mask;
            loop {
                let s = self.index[pos];
                if s == 0 {
                    break;
                }
                let home = self.home(s);
                // Move the slot back when its home is not in (hole, pos].
                if (pos.wrapping_sub(home) & mask) >= (pos.wrapping_sub(hole) & mask) {
                    self.index[hole] = s;
                    hole = pos;
                }
                pos = (pos + 1) & mask;
            }
            self.index[hole] = 0;
        }
        let last = self.entries.len() - 1;
        if i != last {
            let hl = self.hash(&self.entries[last].0);
            if let Some(p) = self.position_of(hl, last) {
                self.index[p] = tag(self.index[p]) | (u64::try_from(i).unwrap_or(0) + 1);
            }
        }
        Some(self.entries.swap_remove(i))
    }

    pub(crate) fn remove(&mut self, hash: u64, key: &K) -> Option<(K, V)> {
        let i = self.find(hash, key)?;
        self.remove_at(i)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Removes the entries `take` says yes to, from entry `from` on (in entry
    /// order, which the removals change deterministically: the last entry
    /// moves into the hole), handing them to `each`. Stops after `limit`
    /// removals: returns where to go on, or `None` once the end is reached.
    pub(crate) fn extract_from(
        &mut self,
        from: usize,
        limit: usize,
        mut take: impl FnMut(&K, &V) -> bool,
        mut each: impl FnMut(K, V),
    ) -> Option<usize> {
        let mut i = from;
        let mut n = 0;
        while let Some(e) = self.entries.get(i) {
            if n == limit {
                return Some(i);
            }
            if take(&e.0, &e.1) {
                if let Some((k, v)) = self.remove_at(i) {
                    each(k, v);
                }
                n += 1;
                // The last entry now sits at `i`: look at it too.
            } else {
                i += 1;
            }
        }
        None
    }

    /// Empties the map, returning its entries (in entry order).
    pub(crate) fn take_all(&mut self) -> Vec<(K, V)> {
        self.index = Vec::new();
        std::mem::take(&mut self.entries)
    }

    /// Starts loading the index slot where the probe for `hash` begins.
    #[inline]
    pub(crate) fn prefetch_slot(&self, hash: u64) {
        if let Some(s) = self.index.get(self.home(hash)) {
            prefetch(std::ptr::from_ref(s).cast::<u8>());
        }
    }

    /// Starts loading the entry whose tag matches `hash` in its probe run
    /// (the key's entry, unless a rare tag collision); call it some packets
    /// after [`FlowMap::prefetch_slot`] for the same hash.
    #[inline]
    pub(crate) fn prefetch_entry(&self, hash: u64) {
        let mask = self.mask();
        let t = tag(hash);
        let mut pos = self.home(hash);
        // Within the prefetched line or the next (linear probing keeps runs short).
        for _ in 0..8 {
            let Some(&s) = self.index.get(pos) else {
                return;
            };
            if s == 0 {
                return;
            }
            if tag(s) == t {
                let i = usize::try_from(s & 0xFFFF_FFFF)
                    .unwrap_or(0)
                    .wrapping_sub(1);
                if let Some(e) = self.entries.get(i) {
                    let first = std::ptr::from_ref(e).cast::<u8>();
                    prefetch(first);
                    // An entry larger than a cache line spans two: load its last byte's too.
                    prefetch(first.wrapping_add(std::mem::size_of::<(K, V)>() - 1));
                }
                return;
            }
            pos = (pos + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Inserts, removals (by key and by predicate) and lookups agree with std's map.
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec((0u8..4, 0u16..300), 0..2000)) {
            let mut m: FlowMap<u16, u32> = FlowMap::new();
            let mut want: HashMap<u16, u32> = HashMap::new();
            for (n, (op, k)) in ops.into_iter().enumerate() {
                let h = m.hash(&k);
                let n = u32::try_from(n).unwrap();
                match op {
                    0 | 1 => {
                        if let Some(v) = m.get_mut(h, &k) {
                            *v = n;
                        } else {
                            m.insert_new(h, k, n);
                        }
                        want.insert(k, n);
                    }
                    2 => {
                        prop_assert_eq!(m.remove(h, &k).map(|e| e.1), want.remove(&k));
                    }
                    _ => {
                        let mut got = Vec::new();
                        let mut at = Some(0);
                        while let Some(from) = at {
                            at = m.extract_from(from, 3, |key, _| key % 7 == k % 7, |key, v| got.push((key, v)));
                        }
                        let mut gone: Vec<(u16, u32)> = want.iter().filter(|e| e.0 % 7 == k % 7).map(|(a, b)| (*a, *b)).collect();
                        want.retain(|key, _| key % 7 != k % 7);
                        got.sort_unstable();
                        gone.sort_unstable();
                        prop_assert_eq!(got, gone);
                    }
                }
                prop_assert_eq!(m.len(), want.len());
            }
            for (k, v) in &want {
                prop_assert_eq!(m.get(m.hash(k), k), Some(v));
            }
            let mut all: Vec<(u16, u32)> = m.iter().map(|(a, b)| (*a, *b)).collect();
            all.sort_unstable();
            let mut exp: Vec<(u16, u32)> = want.into_iter().collect();
            exp.sort_unstable();
            prop_assert_eq!(all, exp);
        }
    }
}
