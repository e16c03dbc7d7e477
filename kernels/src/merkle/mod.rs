//! BLAKE3 Merkle trees with domain separation and inclusion proofs.
//!
//! The tree (specified in docs/MERKLE.md):
//! - a leaf hashes as `blake3::keyed_hash(LEAF_KEY, leaf_bytes)`;
//! - an inner node hashes as `blake3::keyed_hash(NODE_KEY, left || right)`: one 64-byte block,
//!   one compression;
//! - levels are built left to right; an odd node at the end of a level is promoted unchanged
//!   to the next level;
//! - the root of zero leaves is `blake3::keyed_hash(NODE_KEY, b"")` (an input no inner node
//!   can have, since every inner node hashes exactly 64 bytes).

mod cpu;
mod proof;
mod simd;

pub use cpu::{root, root_with, tree_levels, tree_levels_with};
pub use proof::{build_proof, verify_proof, Proof, ProofError, ProofJson};
pub use simd::{Kernel, SIMD_LEAF_BYTES_MAX};

/// Bytes in one hash.
pub const HASH_BYTES: usize = 32;

/// A 32-byte BLAKE3 output.
pub type Hash = [u8; HASH_BYTES];

/// Key for leaf hashes: "tally merkle leaf" padded with zeros to 32 bytes.
pub const LEAF_KEY: [u8; 32] = *b"tally.merkle.leaf.v1\0\0\0\0\0\0\0\0\0\0\0\0";
/// Key for inner-node hashes: "tally merkle node" padded with zeros to 32 bytes.
pub const NODE_KEY: [u8; 32] = *b"tally.merkle.node.v1\0\0\0\0\0\0\0\0\0\0\0\0";

/// Hash of one leaf.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    *blake3::keyed_hash(&LEAF_KEY, leaf).as_bytes()
}

/// Hash of an inner node from its two children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 2 * HASH_BYTES];
    block[..HASH_BYTES].copy_from_slice(left);
    block[HASH_BYTES..].copy_from_slice(right);
    *blake3::keyed_hash(&NODE_KEY, &block).as_bytes()
}

/// Root of the empty tree.
pub fn empty_root() -> Hash {
    *blake3::keyed_hash(&NODE_KEY, b"").as_bytes()
}

/// A seeded generator for this module's unit tests; prints its seed (`TALLY_TEST_SEED`
/// replays it).
#[cfg(test)]
pub(crate) fn seeded_rng(test: &str) -> rand_chacha::ChaCha8Rng {
    use rand::{RngExt, SeedableRng};
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: seed {seed} (re-run with TALLY_TEST_SEED={seed})");
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// Every kernel this machine can run, portable first, for the module's unit tests.
#[cfg(test)]
pub(crate) fn test_kernels() -> Vec<Kernel> {
    let mut kernels = vec![Kernel::portable()];
    match Kernel::avx2() {
        Some(kernel) => kernels.push(kernel),
        None => eprintln!("no AVX2 on this CPU: only the portable kernel is tested"),
    }
    kernels
}
