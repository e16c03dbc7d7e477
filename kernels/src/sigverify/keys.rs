//! Registered keys: decompressed once.
//!
//! The ledger knows its account keys in advance. Decompressing a key costs about as much as
//! one field inversion (about 8 us on one core of the 2-core VM, as much as the rest of a
//! signature's share of the batch equation): it is paid once at registration instead of in
//! every batch. The CPU backend keeps no per-key precomputed tables: with more keys than fit
//! in the cache, a width-8 NAF table costs as much per use as the key's point in Pippenger's
//! multiscalar multiplication, plus a NAF and 256 digit tests for every table entry, used or
//! not (measured: docs/BENCHMARKS.md).

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use std::collections::HashMap;

/// Most keys kept decompressed (160 bytes each, 160 MiB at the maximum). Keys beyond it are
/// verified on the unregistered path: the same verdicts, slower.
pub const REGISTERED_KEYS_MAX: usize = 1 << 20;

/// Decompressed registered keys.
pub(crate) struct KeyRegistry {
    index_by_key: HashMap<[u8; 32], u32>,
    /// `points[i]` is the ZIP-215 decompression of `keys[i]`.
    points: Vec<EdwardsPoint>,
    keys: Vec<[u8; 32]>,
}

impl KeyRegistry {
    pub(crate) fn new() -> Self {
        KeyRegistry {
            index_by_key: HashMap::new(),
            points: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Adds keys not yet registered. Keys that do not decompress are skipped: every item
    /// signed by them is invalid anyway and is rejected on the unregistered path.
    pub(crate) fn register(&mut self, keys: &[[u8; 32]]) {
        for key in keys {
            if self.points.len() >= REGISTERED_KEYS_MAX {
                break;
            }
            if self.index_by_key.contains_key(key) {
                continue;
            }
            let Some(point) = CompressedEdwardsY(*key).decompress() else {
                continue;
            };
            self.index_by_key.insert(*key, self.points.len() as u32);
            self.points.push(point);
            self.keys.push(*key);
        }
    }

    /// The index of a registered key, if registered.
    pub(crate) fn index(&self, key: &[u8; 32]) -> Option<u32> {
        self.index_by_key.get(key).copied()
    }

    pub(crate) fn point(&self, index: u32) -> &EdwardsPoint {
        &self.points[index as usize]
    }

    /// Registered keys in index order (the GPU backend uploads their decompressed points).
    pub(crate) fn keys(&self) -> &[[u8; 32]] {
        &self.keys
    }
}
