//! Registered keys: decompressed once, with per-key precomputed tables for the CPU backend.
//!
//! The ledger knows its account keys in advance. Decompressing a key costs about as much as
//! one field inversion, and a width-8 NAF table lets the batch equation spend fewer point
//! additions on it; both are paid once at registration instead of once per signature.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint, VartimeEdwardsPrecomputation};
use curve25519_dalek::traits::VartimePrecomputedMultiscalarMul;
use std::collections::HashMap;

/// Most keys kept decompressed (160 bytes each, 160 MiB at the maximum). Keys beyond it are
/// verified on the unregistered path: the same verdicts, slower.
pub const REGISTERED_KEYS_MAX: usize = 1 << 20;

/// Most keys that also get a width-8 NAF table (about 7.7 KiB each, 31 MiB at the maximum).
pub const KEY_TABLES_MAX: usize = 4096;

/// Decompressed registered keys and the static precomputation `[B, A_0, A_1, ...]`.
pub(crate) struct KeyRegistry {
    index_by_key: HashMap<[u8; 32], u32>,
    /// `points[i]` is the ZIP-215 decompression of `keys[i]`.
    points: Vec<EdwardsPoint>,
    keys: Vec<[u8; 32]>,
    /// Static points: the base point at index 0, then `points[..table_keys]`.
    table: VartimeEdwardsPrecomputation,
    table_keys: usize,
}

impl KeyRegistry {
    pub(crate) fn new() -> Self {
        KeyRegistry {
            index_by_key: HashMap::new(),
            points: Vec::new(),
            keys: Vec::new(),
            table: VartimeEdwardsPrecomputation::new([ED25519_BASEPOINT_POINT]),
            table_keys: 0,
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
        let table_keys = self.points.len().min(KEY_TABLES_MAX);
        if table_keys != self.table_keys {
            self.table = VartimeEdwardsPrecomputation::new(
                std::iter::once(&ED25519_BASEPOINT_POINT).chain(&self.points[..table_keys]),
            );
            self.table_keys = table_keys;
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

    /// Keys with an index below this have a table in [`KeyRegistry::table`] at `index + 1`.
    pub(crate) fn table_keys(&self) -> usize {
        self.table_keys
    }

    pub(crate) fn table(&self) -> &VartimeEdwardsPrecomputation {
        &self.table
    }
}
