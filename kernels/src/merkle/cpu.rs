//! CPU backend: leaves and levels hashed in parallel with rayon, 8 hashes per call with the
//! many-input AVX2 kernel where the CPU has it (`avx2.rs`), else with the portable kernel
//! (`portable.rs`, the blake3 crate).
//!
//! `root` splits the leaves into aligned subtrees of `SUBTREE_LEAVES` leaves. One rayon task
//! hashes a subtree's leaves and reduces them to the subtree's root in cache-resident
//! buffers; the few subtree roots are then reduced like any level. This gives the same root
//! as level-by-level building because every subtree starts at an even index of every level
//! below its root, so pairs never straddle two subtrees, and the only odd node a subtree can
//! end a level with is the last node of the whole level, which the rule promotes anyway.

use super::{empty_root, Hash, Kernel};
use rayon::prelude::*;

/// Levels below this many nodes are hashed on the calling thread: rayon's fork costs more.
const PARALLEL_NODES_MIN: usize = 2048;
/// Leaves per rayon task in `root`: a power of two (see the module comment), small enough
/// that its hashes (32 KiB) stay in L1/L2 and that 2^16 leaves make 64 tasks.
const SUBTREE_LEAVES: usize = 1024;
const _: () = assert!(SUBTREE_LEAVES.is_power_of_two());
/// Nodes per rayon task when one level is hashed in parallel (`tree_levels`, and the levels
/// above the subtree roots): a multiple of the 8 SIMD lanes, many compressions per split.
const NODES_PER_TASK: usize = 512;

/// Root of the tree over `leaf_count = data.len() / leaf_bytes` fixed-size leaves.
///
/// Panics if `leaf_bytes == 0` or `data.len()` is not a multiple of `leaf_bytes` (the caller
/// owns the layout; the engine's records have a compile-time size).
pub fn root(data: &[u8], leaf_bytes: usize) -> Hash {
    root_with(Kernel::detect(), data, leaf_bytes)
}

/// [`root`] with a chosen hashing kernel (tests and benches compare them; every kernel
/// gives the same root).
pub fn root_with(kernel: Kernel, data: &[u8], leaf_bytes: usize) -> Hash {
    check_layout(data, leaf_bytes);
    if data.is_empty() {
        return empty_root();
    }
    let leaf_count = data.len() / leaf_bytes;
    if leaf_count <= SUBTREE_LEAVES {
        return subtree_root(kernel, data, leaf_bytes, &mut Scratch::default());
    }
    let mut level: Vec<Hash> = data
        .par_chunks(SUBTREE_LEAVES * leaf_bytes)
        .map_init(Scratch::default, |scratch, subtree| {
            subtree_root(kernel, subtree, leaf_bytes, scratch)
        })
        .collect();
    while level.len() > 1 {
        level = next_level(kernel, &level);
    }
    level[0]
}

/// Every level of the tree, leaves' hashes first, root last. Used to build proofs.
///
/// Zero leaves give `[[empty_root()]]`: there is no leaf to prove, callers check the count.
/// Panics as [`root`].
pub fn tree_levels(data: &[u8], leaf_bytes: usize) -> Vec<Vec<Hash>> {
    tree_levels_with(Kernel::detect(), data, leaf_bytes)
}

/// [`tree_levels`] with a chosen hashing kernel.
pub fn tree_levels_with(kernel: Kernel, data: &[u8], leaf_bytes: usize) -> Vec<Vec<Hash>> {
    check_layout(data, leaf_bytes);
    if data.is_empty() {
        return vec![vec![empty_root()]];
    }
    let mut levels = vec![hash_leaves(kernel, data, leaf_bytes)];
    while levels.last().map_or(0, Vec::len) > 1 {
        let next = next_level(kernel, levels.last().expect("levels is not empty"));
        levels.push(next);
    }
    levels
}

fn check_layout(data: &[u8], leaf_bytes: usize) {
    assert!(leaf_bytes > 0, "leaf_bytes must be positive");
    assert_eq!(data.len() % leaf_bytes, 0, "data must hold whole leaves");
}

/// Two buffers one subtree's levels alternate between, reused across a task's subtrees.
#[derive(Default)]
struct Scratch {
    even: Vec<Hash>,
    odd: Vec<Hash>,
}

/// Root of one subtree of at least one leaf, on the calling thread.
fn subtree_root(kernel: Kernel, data: &[u8], leaf_bytes: usize, scratch: &mut Scratch) -> Hash {
    let leaf_count = data.len() / leaf_bytes;
    debug_assert!(leaf_count > 0);
    scratch.even.resize(leaf_count, [0; 32]);
    scratch.odd.resize(leaf_count.div_ceil(2), [0; 32]);
    let (mut current, mut next) = (&mut scratch.even, &mut scratch.odd);
    kernel.hash_leaves(data, leaf_bytes, &mut current[..leaf_count]);
    let mut width = leaf_count;
    while width > 1 {
        let parents = width / 2;
        kernel.hash_nodes(&current[..2 * parents], &mut next[..parents]);
        if width % 2 == 1 {
            next[parents] = current[width - 1];
        }
        width = width.div_ceil(2);
        std::mem::swap(&mut current, &mut next);
    }
    current[0]
}

fn hash_leaves(kernel: Kernel, data: &[u8], leaf_bytes: usize) -> Vec<Hash> {
    let leaf_count = data.len() / leaf_bytes;
    let mut hashes = vec![[0u8; 32]; leaf_count];
    if leaf_count < PARALLEL_NODES_MIN {
        kernel.hash_leaves(data, leaf_bytes, &mut hashes);
    } else {
        const LEAVES_PER_TASK: usize = 256;
        hashes
            .par_chunks_mut(LEAVES_PER_TASK)
            .zip(data.par_chunks(LEAVES_PER_TASK * leaf_bytes))
            .for_each(|(out, leaves)| kernel.hash_leaves(leaves, leaf_bytes, out));
    }
    hashes
}

fn next_level(kernel: Kernel, level: &[Hash]) -> Vec<Hash> {
    let parents = level.len() / 2;
    let mut next = vec![[0u8; 32]; level.len().div_ceil(2)];
    let children = &level[..2 * parents];
    if level.len() < PARALLEL_NODES_MIN {
        kernel.hash_nodes(children, &mut next[..parents]);
    } else {
        next[..parents]
            .par_chunks_mut(NODES_PER_TASK)
            .zip(children.par_chunks(2 * NODES_PER_TASK))
            .for_each(|(out, pairs)| kernel.hash_nodes(pairs, out));
    }
    if level.len() % 2 == 1 {
        next[parents] = level[level.len() - 1];
    }
    next
}

#[cfg(test)]
mod tests {
    use super::super::{leaf_hash, node_hash};
    use super::*;
    use crate::merkle::{seeded_rng, test_kernels as kernels};
    use rand::RngExt;

    /// Level by level with `leaf_hash` / `node_hash` (the blake3 crate), one hash at a time.
    fn plain_root(data: &[u8], leaf_bytes: usize) -> Hash {
        if data.is_empty() {
            return empty_root();
        }
        let mut level: Vec<Hash> = data.chunks_exact(leaf_bytes).map(leaf_hash).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [odd] => *odd,
                    _ => unreachable!(),
                })
                .collect();
        }
        level[0]
    }

    #[test]
    fn every_kernel_gives_the_plain_root_and_levels() {
        let mut rng = seeded_rng("every_kernel_gives_the_plain_root_and_levels");
        let counts = [
            0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 1023, 1024, 1025, 2047, 2048, 2049, 4103,
        ];
        for leaf_bytes in [192, 160, 64, 1100] {
            let mut data = vec![0u8; 4103 * leaf_bytes];
            rng.fill(&mut data[..]);
            for count in counts {
                let data = &data[..count * leaf_bytes];
                let expected = plain_root(data, leaf_bytes);
                for kernel in kernels() {
                    let what =
                        format!("{} kernel, {count} leaves of {leaf_bytes} B", kernel.name());
                    assert_eq!(root_with(kernel, data, leaf_bytes), expected, "{what}");
                    let levels = tree_levels_with(kernel, data, leaf_bytes);
                    assert_eq!(levels.last().unwrap(), &vec![expected], "{what}");
                    if count > 0 {
                        let leaves: Vec<Hash> =
                            data.chunks_exact(leaf_bytes).map(leaf_hash).collect();
                        assert_eq!(levels[0], leaves, "{what}");
                    }
                }
            }
        }
    }
}
