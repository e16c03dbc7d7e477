//! A map keyed by transaction id, in [`SHARDS`] hash maps of its own instead of one. The
//! ledger's per-transaction maps (valid ids, taxed payments, closed outcomes) grow by one
//! entry a transaction until their window turns over; a single hash map doubles by moving
//! every entry at once, on the executor's thread, and at a few hundred thousand entries that
//! held every block behind it for 50 to 180 ms (the tail of a node's latency at half its
//! maximum load). Split in shards, a map grows one shard at a time, each a sixty-fourth of
//! the entries: the same total work, in pauses a sixty-fourth as long (under a millisecond
//! at a million ids). Lookups pick the shard by a
//! multiply-shift of the id's folded halves with a per-process random key (cheap, and an
//! attacker who chose ids to crowd one shard would only get the one map this replaced); each
//! shard is a standard `HashMap` with its own randomly keyed hasher. Iteration order is
//! unspecified, as a `HashMap`'s.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::ops::Index;

/// Shards per map (a power of two).
const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

#[derive(Clone, Debug)]
pub(super) struct IdMap<V> {
    shards: Box<[HashMap<u128, V>]>,
    /// Mixed into the shard choice, so that ids cannot be picked to crowd one shard.
    key: u64,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> IdMap<V> {
        IdMap::with_capacity(0)
    }
}

impl<V> IdMap<V> {
    pub(super) fn new() -> IdMap<V> {
        IdMap::default()
    }

    /// Room for about `capacity` entries without growing.
    pub(super) fn with_capacity(capacity: usize) -> IdMap<V> {
        let per_shard = capacity.div_ceil(SHARDS);
        IdMap {
            shards: (0..SHARDS)
                .map(|_| HashMap::with_capacity(per_shard))
                .collect(),
            key: RandomState::new().hash_one(0x1d_u8) | 1,
            len: 0,
        }
    }

    #[inline]
    fn shard(&self, id: u128) -> usize {
        let folded = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
        ((folded ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, id: &u128) -> Option<&V> {
        self.shards[self.shard(*id)].get(id)
    }

    pub(super) fn contains_key(&self, id: &u128) -> bool {
        self.shards[self.shard(*id)].contains_key(id)
    }

    pub(super) fn insert(&mut self, id: u128, value: V) -> Option<V> {
        let shard = self.shard(id);
        let old = self.shards[shard].insert(id, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn remove(&mut self, id: &u128) -> Option<V> {
        let shard = self.shard(*id);
        let old = self.shards[shard].remove(id);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u128, &V)> {
        self.shards.iter().flat_map(HashMap::iter)
    }
}

impl<V> Index<&u128> for IdMap<V> {
    type Output = V;

    fn index(&self, id: &u128) -> &V {
        self.get(id).expect("the id is in the map")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_holds_what_a_hash_map_holds() {
        // a seeded stream of inserts and removes against std's map
        let seed = 0x1d_5eed_u64;
        println!("seed {seed:#x}");
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut ours, mut theirs) = (IdMap::with_capacity(100), HashMap::new());
        for step in 0..200_000u64 {
            let id = u128::from(next() % 5_000) << (next() % 70);
            if next() % 3 == 0 {
                assert_eq!(ours.remove(&id), theirs.remove(&id), "step {step}");
            } else {
                assert_eq!(
                    ours.insert(id, step),
                    theirs.insert(id, step),
                    "step {step}"
                );
            }
            assert_eq!(ours.len(), theirs.len());
            assert_eq!(ours.contains_key(&id), theirs.contains_key(&id));
            assert_eq!(ours.get(&id), theirs.get(&id));
        }
        let mut all: Vec<(u128, u64)> = ours.iter().map(|(k, v)| (*k, *v)).collect();
        let mut expected: Vec<(u128, u64)> = theirs.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_unstable();
        expected.sort_unstable();
        assert_eq!(all, expected);
        // the ids spread over the shards
        let used = ours.shards.iter().filter(|s| !s.is_empty()).count();
        assert_eq!(used, SHARDS, "every shard holds some of {} ids", ours.len());
        let copy = ours.clone();
        let any = *theirs.keys().next().unwrap();
        assert_eq!(copy[&any], theirs[&any]);
    }
}
