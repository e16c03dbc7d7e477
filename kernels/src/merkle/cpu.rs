//! CPU backend: leaves and levels hashed in parallel with rayon (the blake3 crate uses SIMD
//! inside each hash).
//!
//! `root` splits the leaves into aligned subtrees of `SUBTREE_LEAVES` leaves. One rayon task
//! hashes a subtree's leaves and reduces them to the subtree's root in a cache-resident
//! buffer; the few subtree roots are then reduced like any level. This gives the same root
//! as level-by-level building because every subtree starts at an even index of every level
//! below its root, so pairs never straddle two subtrees, and the only odd node a subtree can
//! end a level with is the last node of the whole level, which the rule promotes anyway.

use super::{empty_root, leaf_hash, node_hash, Hash};
use rayon::prelude::*;

/// Levels below this many nodes are hashed on the calling thread: rayon's fork costs more.
const PARALLEL_NODES_MIN: usize = 2048;
/// Leaves per rayon task in `root`: a power of two (see the module comment), small enough
/// that its hashes (32 KiB) stay in L1/L2 and that 2^16 leaves make 64 tasks.
const SUBTREE_LEAVES: usize = 1024;
const _: () = assert!(SUBTREE_LEAVES.is_power_of_two());

/// Root of the tree over `leaf_count = data.len() / leaf_bytes` fixed-size leaves.
///
/// Panics if `leaf_bytes == 0` or `data.len()` is not a multiple of `leaf_bytes` (the caller
/// owns the layout; the engine's records have a compile-time size).
pub fn root(data: &[u8], leaf_bytes: usize) -> Hash {
    assert!(leaf_bytes > 0, "leaf_bytes must be positive");
    assert_eq!(data.len() % leaf_bytes, 0, "data must hold whole leaves");
    if data.is_empty() {
        return empty_root();
    }
    let leaf_count = data.len() / leaf_bytes;
    if leaf_count <= SUBTREE_LEAVES {
        return subtree_root(data, leaf_bytes, &mut Vec::with_capacity(leaf_count));
    }
    let mut level: Vec<Hash> = data
        .par_chunks(SUBTREE_LEAVES * leaf_bytes)
        .map_init(
            || Vec::with_capacity(SUBTREE_LEAVES),
            |scratch, subtree| subtree_root(subtree, leaf_bytes, scratch),
        )
        .collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// Every level of the tree, leaves' hashes first, root last. Used to build proofs.
///
/// Zero leaves give `[[empty_root()]]`: there is no leaf to prove, callers check the count.
/// Panics as [`root`].
pub fn tree_levels(data: &[u8], leaf_bytes: usize) -> Vec<Vec<Hash>> {
    assert!(leaf_bytes > 0, "leaf_bytes must be positive");
    assert_eq!(data.len() % leaf_bytes, 0, "data must hold whole leaves");
    if data.is_empty() {
        return vec![vec![empty_root()]];
    }
    let mut levels = vec![hash_leaves(data, leaf_bytes)];
    while levels.last().map_or(0, Vec::len) > 1 {
        let next = next_level(levels.last().expect("levels is not empty"));
        levels.push(next);
    }
    levels
}

/// Root of one subtree, on the calling thread; `scratch` is reused between calls.
fn subtree_root(data: &[u8], leaf_bytes: usize, scratch: &mut Vec<Hash>) -> Hash {
    scratch.clear();
    scratch.extend(data.chunks_exact(leaf_bytes).map(leaf_hash));
    let mut width = scratch.len();
    debug_assert!(width > 0);
    while width > 1 {
        // In place: parent i is written after children 2i and 2i+1 (>= i) are read.
        for parent in 0..width / 2 {
            scratch[parent] = node_hash(&scratch[2 * parent], &scratch[2 * parent + 1]);
        }
        if width % 2 == 1 {
            scratch[width / 2] = scratch[width - 1];
        }
        width = width.div_ceil(2);
    }
    scratch[0]
}

fn hash_leaves(data: &[u8], leaf_bytes: usize) -> Vec<Hash> {
    let leaf_count = data.len() / leaf_bytes;
    if leaf_count < PARALLEL_NODES_MIN {
        data.chunks_exact(leaf_bytes).map(leaf_hash).collect()
    } else {
        data.par_chunks_exact(leaf_bytes)
            .with_min_len(256)
            .map(leaf_hash)
            .collect()
    }
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    let pair = |pair: &[Hash]| match pair {
        [left, right] => node_hash(left, right),
        [odd] => *odd,
        _ => unreachable!("chunks(2) yields one or two nodes"),
    };
    if level.len() < PARALLEL_NODES_MIN {
        level.chunks(2).map(pair).collect()
    } else {
        // Many 64-byte nodes per task: one node is a single compression, far below the cost
        // of a rayon split.
        level.par_chunks(2).with_min_len(512).map(pair).collect()
    }
}
