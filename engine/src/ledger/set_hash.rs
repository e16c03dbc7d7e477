//! An incremental digest of a set: LtHash16 (docs/MERKLE.md, "Set digests"). Each element's
//! bytes are expanded with BLAKE3's extendable output, under the set's domain tag, into 1024
//! lanes of 16 bits; the set's value is the lane-wise sum (mod 2^16) of its elements'
//! expansions. Adding an element adds its expansion, removing one subtracts it, so the
//! digest of a table follows each insert and removal in constant time, whatever the table's
//! size, and it does not depend on the order the elements came in: the same set gives the
//! same value however it was built, which is what the state root's from-scratch computation
//! checks.
//!
//! Collision resistance: finding two different multisets of the same value is the short
//! integer solution problem over Z_(2^16)^1024 (Bellare and Micciancio's LtHash; the
//! parameters are LtHash16's, analysed at about 200 bits of security by Lewi, Kim, Maykov
//! and Weis, "Securing Update Propagation with Homomorphic Hashing", 2019). The tables
//! hashed this way are maps (each key once), so a different table is a different set.

use tally_kernels::merkle::Hash;

/// Lanes of the digest.
const LANES: usize = 1024;
/// Bytes of the digest's value.
pub(super) const SET_HASH_BYTES: usize = LANES * 2;

/// The running value of one set.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SetHash {
    /// The domain tag of this set's elements (a different table, different expansions).
    tag: &'static [u8; 16],
    lanes: Box<[u16; LANES]>,
}

impl std::fmt::Debug for SetHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SetHash({:02x?})", &self.digest()[..8])
    }
}

impl SetHash {
    /// The empty set's value, for the elements tagged `tag`.
    pub(super) fn new(tag: &'static [u8; 16]) -> SetHash {
        SetHash {
            tag,
            lanes: Box::new([0; LANES]),
        }
    }

    fn expand(&self, element: &[u8]) -> [u8; SET_HASH_BYTES] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.tag);
        hasher.update(&(element.len() as u64).to_le_bytes());
        hasher.update(element);
        let mut out = [0u8; SET_HASH_BYTES];
        hasher.finalize_xof().fill(&mut out);
        out
    }

    /// Adds `element` (its canonical bytes) to the set.
    pub(super) fn insert(&mut self, element: &[u8]) {
        let expanded = self.expand(element);
        for (lane, pair) in self.lanes.iter_mut().zip(expanded.chunks_exact(2)) {
            *lane = lane.wrapping_add(u16::from_le_bytes([pair[0], pair[1]]));
        }
    }

    /// Removes `element` (its canonical bytes, as inserted) from the set.
    pub(super) fn remove(&mut self, element: &[u8]) {
        let expanded = self.expand(element);
        for (lane, pair) in self.lanes.iter_mut().zip(expanded.chunks_exact(2)) {
            *lane = lane.wrapping_sub(u16::from_le_bytes([pair[0], pair[1]]));
        }
    }

    /// BLAKE3 of the lanes (little-endian): what the state root commits to.
    pub(super) fn digest(&self) -> Hash {
        let mut bytes = [0u8; SET_HASH_BYTES];
        for (pair, lane) in bytes.chunks_exact_mut(2).zip(self.lanes.iter()) {
            pair.copy_from_slice(&lane.to_le_bytes());
        }
        *blake3::hash(&bytes).as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &[u8; 16] = b"TALLY-TEST-SET\0\0";

    #[test]
    fn the_value_depends_on_the_set_not_on_the_order_or_the_history() {
        let mut a = SetHash::new(TAG);
        let mut b = SetHash::new(TAG);
        for element in [&b"one"[..], b"two", b"three"] {
            a.insert(element);
        }
        b.insert(b"three");
        b.insert(b"gone");
        b.insert(b"one");
        b.remove(b"gone");
        b.insert(b"two");
        assert_eq!(a.digest(), b.digest());
        b.remove(b"two");
        assert_ne!(a.digest(), b.digest());
        b.remove(b"one");
        b.remove(b"three");
        assert_eq!(b.digest(), SetHash::new(TAG).digest());
        // The same bytes under another tag are another element.
        let mut other = SetHash::new(b"TALLY-OTHER-SET\0");
        other.insert(b"one");
        let mut same = SetHash::new(TAG);
        same.insert(b"one");
        assert_ne!(other.digest(), same.digest());
    }
}
