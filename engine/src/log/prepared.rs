//! Entries whose hash is prepared before they reach the writer.
//!
//! The entry hash is BLAKE3 (`derive_key`) over `header[0..48] ‖ payload`, and the header
//! holds the entry's sequence and the hash of the entry before it, which only the writer
//! knows. BLAKE3 hashes its input as a binary tree of 1024-byte chunks, though, and only the
//! first chunk holds header bytes. Every other chunk depends on the payload alone, and so
//! does every subtree to the right of the tree's left edge:
//!
//! ```text
//!                   root                 chunks = 5 (48 header bytes + 4096 payload bytes)
//!                /        \
//!             p2            [4,5)        right of the left edge: [1,2), [2,4), [4,5),
//!           /    \                       hashed from the payload alone (`PreparedEntry::new`)
//!        p1       [2,4)
//!      /    \
//!  chunk 0  [1,2)                        chunk 0 = header[0..48] ‖ payload[0..976]: hashed
//!                                        by the writer, then joined up the left edge
//! ```
//!
//! [`PreparedEntry::new`] hashes those right subtrees on the producing thread (in a node, the
//! thread that built the block, while the writer waits for the previous commit's flush). The
//! writer then hashes one chunk (16 compressions) and joins one parent node per level: 19 of
//! the 69 compressions of a 4 KiB entry, 26 of the 13 057 of a 768 KiB entry (docs/STORAGE.md,
//! "Hashing an entry in two steps", has the measured cost of the whole hash). The result is
//! the same hash bit for bit: the format does not change, and readers (`open`, `inspect`,
//! archived reads) verify entries with the plain one-pass hash, so any disagreement would
//! show at the next open as a damaged entry. Tests compare the two at every chunk and subtree
//! boundary.

use blake3::hazmat::{
    hash_derive_key_context, merge_subtrees_non_root, merge_subtrees_root, ChainingValue,
    ContextKey, HasherExt, Mode,
};
use blake3::{Hasher, CHUNK_LEN};
use std::sync::LazyLock;

use super::format::{ENTRY_HASHED_HEADER_BYTES, ENTRY_HASH_CONTEXT};

/// The derive_key context of entry hashes, hashed once.
static ENTRY_CONTEXT_KEY: LazyLock<ContextKey> =
    LazyLock::new(|| hash_derive_key_context(ENTRY_HASH_CONTEXT));

/// Payload bytes in the first chunk, behind the 48 hashed header bytes.
const FIRST_CHUNK_PAYLOAD_BYTES: usize = CHUNK_LEN - ENTRY_HASHED_HEADER_BYTES;

/// A payload together with the part of its entry hash that does not depend on where it
/// lands in the log; appended with [`Log::append_prepared`](super::Log::append_prepared).
///
/// `P` is anything that holds the payload bytes (`Vec<u8>`, `Arc<[u8]>`, `&[u8]`); its
/// `as_ref` must return the same bytes every time, as those types do. The payload cannot be
/// reached mutably once prepared.
#[derive(Debug, Clone)]
pub struct PreparedEntry<P: AsRef<[u8]> = Vec<u8>> {
    payload: P,
    /// Chaining values of the subtrees right of the tree's left edge, from the bottom (the
    /// single chunk 1) to the root's right child. Empty when the whole hashed input fits in
    /// one chunk.
    right_subtrees: Vec<ChainingValue>,
}

impl<P: AsRef<[u8]>> PreparedEntry<P> {
    /// Hashes every part of the entry hash that the payload alone determines.
    pub fn new(payload: P) -> PreparedEntry<P> {
        let right_subtrees = right_subtree_values(payload.as_ref());
        PreparedEntry {
            payload,
            right_subtrees,
        }
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        self.payload.as_ref()
    }

    /// Gives the payload back.
    pub fn into_payload(self) -> P {
        self.payload
    }

    /// The entry hash of this payload behind `hashed_header` (header bytes 0..48: magic,
    /// length, sequence, previous hash).
    pub(crate) fn entry_hash(&self, hashed_header: &[u8]) -> [u8; 32] {
        debug_assert_eq!(hashed_header.len(), ENTRY_HASHED_HEADER_BYTES);
        let payload = self.payload.as_ref();
        let first = &payload[..payload.len().min(FIRST_CHUNK_PAYLOAD_BYTES)];
        let mut hasher = Hasher::new_from_context_key(&ENTRY_CONTEXT_KEY);
        hasher.update(hashed_header);
        hasher.update(first);
        let Some((root_right, spine)) = self.right_subtrees.split_last() else {
            // The whole input is one chunk: that chunk is the root.
            return *hasher.finalize().as_bytes();
        };
        let mode = Mode::DeriveKeyMaterial(&ENTRY_CONTEXT_KEY);
        let mut left = hasher.finalize_non_root();
        for right in spine {
            left = merge_subtrees_non_root(&left, right, mode);
        }
        *merge_subtrees_root(&left, root_right, mode).as_bytes()
    }
}

/// The chaining values of the subtrees right of the left edge of the BLAKE3 tree over
/// `header[0..48] ‖ payload`, bottom up: chunks [1, 2), [2, 4), [4, 8), ... and last the
/// root's right child, chunks [2^m, n) for the n chunks of the input (2^m < n <= 2^(m+1)).
fn right_subtree_values(payload: &[u8]) -> Vec<ChainingValue> {
    let input_bytes = (ENTRY_HASHED_HEADER_BYTES + payload.len()) as u64;
    let chunk = CHUNK_LEN as u64;
    if input_bytes <= chunk {
        return Vec::new();
    }
    let chunks = input_bytes.div_ceil(chunk);
    let mut values = Vec::with_capacity(chunks.ilog2() as usize + 1);
    // `left` chunks are covered by the left-edge subtree below the next join.
    let mut left = 1u64;
    loop {
        let end_chunk = (2 * left).min(chunks);
        let start = left * chunk;
        let end = (end_chunk * chunk).min(input_bytes);
        let bytes = &payload[(start as usize - ENTRY_HASHED_HEADER_BYTES)
            ..(end as usize - ENTRY_HASHED_HEADER_BYTES)];
        let mut hasher = Hasher::new_from_context_key(&ENTRY_CONTEXT_KEY);
        hasher.set_input_offset(start);
        hasher.update(bytes);
        values.push(hasher.finalize_non_root());
        if end_chunk == chunks {
            return values;
        }
        left *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::entry_hash;
    use super::*;

    fn header(seed: u8) -> [u8; ENTRY_HASHED_HEADER_BYTES] {
        std::array::from_fn(|index| (index as u8).wrapping_mul(31).wrapping_add(seed))
    }

    fn payload(bytes: usize) -> Vec<u8> {
        (0..bytes)
            .map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect()
    }

    /// The prepared hash equals the one-pass hash that readers verify with, at every length
    /// around chunk and power-of-two subtree boundaries (lengths count the 48 header bytes).
    #[test]
    fn prepared_hash_equals_the_one_pass_hash_at_every_tree_boundary() {
        let mut lengths: Vec<usize> = (0..=2 * CHUNK_LEN + 8).collect();
        for chunks in [
            3usize, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 768, 769, 1024,
        ] {
            let input = chunks * CHUNK_LEN;
            for delta in [-1i64, 0, 1, 47, 48, 49] {
                let total = input as i64 + delta;
                if total >= ENTRY_HASHED_HEADER_BYTES as i64 {
                    lengths.push(total as usize - ENTRY_HASHED_HEADER_BYTES);
                }
            }
        }
        lengths.extend([4096, 768 << 10, (1 << 20) + 5]);
        for (index, &length) in lengths.iter().enumerate() {
            let header = header(index as u8);
            let payload = payload(length);
            let expected = entry_hash(&header, &payload);
            let prepared = PreparedEntry::new(payload.as_slice());
            assert_eq!(
                prepared.entry_hash(&header),
                expected,
                "payload of {length} bytes"
            );
        }
    }

    /// The right subtrees do not depend on the header: one preparation serves any sequence
    /// and previous hash, and a changed payload byte anywhere changes the hash.
    #[test]
    fn one_preparation_serves_any_header_and_covers_every_payload_byte() {
        let payload = payload(5 * CHUNK_LEN + 100);
        let prepared = PreparedEntry::new(payload.clone());
        for seed in [0u8, 1, 200] {
            let header = header(seed);
            assert_eq!(prepared.entry_hash(&header), entry_hash(&header, &payload));
        }
        let header = header(9);
        let base = prepared.entry_hash(&header);
        for position in [0, 975, 976, 977, 2000, 4047, 4048, payload.len() - 1] {
            let mut changed = payload.clone();
            changed[position] ^= 0x01;
            let changed = PreparedEntry::new(changed);
            assert_ne!(changed.entry_hash(&header), base, "byte {position}");
        }
        assert_eq!(prepared.into_payload(), payload);
    }
}
