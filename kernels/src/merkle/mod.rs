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
//!
//! Backends, one file each: the tree on CPU threads (`cpu.rs`, rayon) hashes with a many-input
//! [`Kernel`] chosen here, `portable.rs` (the blake3 crate) or `avx2.rs` (8 inputs per call,
//! x86-64 with AVX2 detected at run time); the GPU backend is [`gpu::GpuMerkle`] (`gpu.rs`,
//! WGSL). Every backend gives bit-identical hashes. Inclusion proofs are in `proof.rs`.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // The only unsafe code of the crate: AVX2 intrinsics (see avx2.rs).
mod avx2;
mod cpu;
pub mod gpu;
mod portable;
mod proof;

pub use cpu::{root, root_with, tree_levels, tree_levels_with};
pub use proof::{build_proof, verify_proof, Proof, ProofError, ProofJson};

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

/// Hashes many leaves at once with the fastest kernel of this CPU: `out[i]` is
/// [`leaf_hash`] of `data[i * leaf_bytes..][..leaf_bytes]` (for trees updated in place,
/// whose changed leaves are scattered).
pub fn leaf_hashes(data: &[u8], leaf_bytes: usize, out: &mut [Hash]) {
    Kernel::detect().hash_leaves(data, leaf_bytes, out);
}

/// Hashes many inner nodes at once with the fastest kernel of this CPU: `out[i]` is
/// [`node_hash`] of `children[2i]` and `children[2i + 1]`.
pub fn node_hashes(children: &[Hash], out: &mut [Hash]) {
    Kernel::detect().hash_nodes(children, out);
}

/// Root of the empty tree.
pub fn empty_root() -> Hash {
    *blake3::keyed_hash(&NODE_KEY, b"").as_bytes()
}

/// Longest leaf the many-input kernels hash themselves: one BLAKE3 chunk. Longer leaves go
/// to the blake3 crate whatever the kernel.
pub const SIMD_LEAF_BYTES_MAX: usize = 1024;

/// Which many-input BLAKE3 implementation hashes leaves and inner nodes.
///
/// The blake3 crate hashes one input at a time: a 192-byte leaf is three compressions in a
/// row, each using SIMD only inside the one compression. A Merkle level is many independent
/// short inputs, so the AVX2 kernel (`avx2.rs`) hashes 8 of them side by side, one per 32-bit
/// lane; the portable kernel (`portable.rs`) is the blake3 crate, one input at a time. Both
/// give bit-identical hashes (tests below, against `blake3::keyed_hash`).
///
/// A value naming a SIMD kernel exists only where the CPU has the instructions it needs
/// ([`Kernel::avx2`] returns `None` elsewhere), so every kernel value is safe to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(Imp);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU supports (AVX2 where detected, else portable).
    pub fn detect() -> Kernel {
        Kernel::avx2().unwrap_or(Kernel::portable())
    }

    /// The blake3 crate, one input at a time: runs everywhere.
    pub const fn portable() -> Kernel {
        Kernel(Imp::Portable)
    }

    /// The 8-lane AVX2 kernel, if this CPU has AVX2.
    pub fn avx2() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Kernel(Imp::Avx2));
        }
        None
    }

    /// Short name for logs and bench labels: `"avx2"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Imp::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2 => "avx2",
        }
    }

    /// Writes the hash of leaf `i` (`data[i * leaf_bytes..][..leaf_bytes]`) to `out[i]`.
    ///
    /// Panics if `leaf_bytes == 0` or `data.len() != out.len() * leaf_bytes`.
    #[inline]
    pub(crate) fn hash_leaves(self, data: &[u8], leaf_bytes: usize, out: &mut [Hash]) {
        self.hash_keyed(&LEAF_KEY, data, leaf_bytes, out);
    }

    /// Writes `blake3::keyed_hash(key, input i)` to `out[i]`, input `i` being
    /// `data[i * input_bytes..][..input_bytes]`.
    ///
    /// Panics if `input_bytes == 0` or `data.len() != out.len() * input_bytes`.
    #[inline]
    pub(crate) fn hash_keyed(
        self,
        key: &[u8; 32],
        data: &[u8],
        input_bytes: usize,
        out: &mut [Hash],
    ) {
        assert!(input_bytes > 0, "leaf_bytes must be positive");
        assert_eq!(
            data.len(),
            out.len() * input_bytes,
            "data must hold exactly one leaf per output hash"
        );
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2 if input_bytes <= SIMD_LEAF_BYTES_MAX => {
                avx2::hash_inputs(key, data, input_bytes, out)
            }
            _ => portable::hash_keyed(key, data, input_bytes, out),
        }
    }

    /// Writes `node_hash(children[2i], children[2i + 1])` to `out[i]`.
    ///
    /// Panics if `children.len() != 2 * out.len()`.
    #[inline]
    pub(crate) fn hash_nodes(self, children: &[Hash], out: &mut [Hash]) {
        assert_eq!(
            children.len(),
            2 * out.len(),
            "every parent needs exactly two children"
        );
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2 => avx2::hash_nodes(children, out),
            Imp::Portable => portable::hash_nodes(children, out),
        }
    }
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

#[cfg(test)]
#[cfg(test)]
mod kernel_tests {
    use super::*;
    use rand::RngExt;
    use rand_chacha::ChaCha8Rng;

    fn check_leaves(kernel: Kernel, rng: &mut ChaCha8Rng, leaf_bytes: usize) {
        for count in 1..=17 {
            let mut data = vec![0u8; count * leaf_bytes];
            rng.fill(&mut data[..]);
            let mut out = vec![[0xAAu8; 32]; count];
            kernel.hash_leaves(&data, leaf_bytes, &mut out);
            for (index, leaf) in data.chunks_exact(leaf_bytes).enumerate() {
                assert_eq!(
                    out[index],
                    *blake3::keyed_hash(&LEAF_KEY, leaf).as_bytes(),
                    "{} kernel, {leaf_bytes}-byte leaves, {count} leaves, leaf {index}",
                    kernel.name()
                );
            }
        }
    }

    #[test]
    fn leaves_match_blake3_for_every_lane_count_and_block_multiple() {
        let mut rng = seeded_rng("leaves_match_blake3_for_every_lane_count_and_block_multiple");
        for kernel in test_kernels() {
            for leaf_bytes in [64, 128, 192, 256, 512, 1024] {
                check_leaves(kernel, &mut rng, leaf_bytes);
            }
        }
    }

    #[test]
    fn leaves_match_blake3_for_partial_last_blocks() {
        let mut rng = seeded_rng("leaves_match_blake3_for_partial_last_blocks");
        for kernel in test_kernels() {
            for leaf_bytes in [1, 31, 32, 63, 65, 100, 127, 160, 191, 193, 1000, 1023] {
                check_leaves(kernel, &mut rng, leaf_bytes);
            }
        }
    }

    /// Leaves longer than one chunk go to the blake3 crate in every kernel.
    #[test]
    fn leaves_longer_than_a_chunk_match_blake3() {
        let mut rng = seeded_rng("leaves_longer_than_a_chunk_match_blake3");
        for kernel in test_kernels() {
            for leaf_bytes in [1025, 2048, 3000] {
                check_leaves(kernel, &mut rng, leaf_bytes);
            }
        }
    }

    /// The official BLAKE3 keyed vectors of one chunk or less (the file the GPU tests use),
    /// each input hashed 9 times in a row: one full 8-lane call and one partial call.
    #[test]
    fn official_keyed_vectors_match() {
        #[derive(serde::Deserialize)]
        struct Vectors {
            key: String,
            cases: Vec<Case>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            input_len: usize,
            keyed_hash: String,
        }
        let text = include_str!("../../tests/vectors/blake3_test_vectors.json");
        let vectors: Vectors = serde_json::from_str(text).expect("valid vector file");
        let key: [u8; 32] = vectors.key.as_bytes().try_into().expect("32-byte key");
        for kernel in test_kernels() {
            let mut checked = 0;
            for case in &vectors.cases {
                if !(1..=SIMD_LEAF_BYTES_MAX).contains(&case.input_len) {
                    continue;
                }
                let input: Vec<u8> = (0..case.input_len).map(|i| (i % 251) as u8).collect();
                let expected = hex::decode(&case.keyed_hash).expect("hex");
                let mut out = vec![[0u8; 32]; 9];
                kernel.hash_keyed(&key, &input.repeat(9), case.input_len, &mut out);
                for hash in &out {
                    assert_eq!(
                        &hash[..],
                        &expected[..32],
                        "{} kernel, input_len {}",
                        kernel.name(),
                        case.input_len
                    );
                }
                checked += 1;
            }
            assert!(checked >= 10, "only {checked} vectors apply: wrong file?");
        }
    }

    #[test]
    fn nodes_match_blake3_for_every_lane_count() {
        let mut rng = seeded_rng("nodes_match_blake3_for_every_lane_count");
        for kernel in test_kernels() {
            for count in 1..=17 {
                let mut children = vec![[0u8; 32]; 2 * count];
                for child in &mut children {
                    rng.fill(&mut child[..]);
                }
                let mut out = vec![[0xAAu8; 32]; count];
                kernel.hash_nodes(&children, &mut out);
                for (index, pair) in children.chunks_exact(2).enumerate() {
                    let mut block = [0u8; 64];
                    block[..32].copy_from_slice(&pair[0]);
                    block[32..].copy_from_slice(&pair[1]);
                    assert_eq!(
                        out[index],
                        *blake3::keyed_hash(&NODE_KEY, &block).as_bytes(),
                        "{} kernel, {count} parents, parent {index}",
                        kernel.name()
                    );
                }
            }
        }
    }

    /// Lanes of a partial call never disturb the slots after the ones asked for.
    #[test]
    fn outputs_beyond_the_asked_count_are_untouched() {
        let mut rng = seeded_rng("outputs_beyond_the_asked_count_are_untouched");
        for kernel in test_kernels() {
            let mut data = vec![0u8; 5 * 192];
            rng.fill(&mut data[..]);
            let mut out = vec![[0x55u8; 32]; 8];
            kernel.hash_leaves(&data, 192, &mut out[..5]);
            assert!(out[5..].iter().all(|hash| *hash == [0x55; 32]));
            let children = vec![[7u8; 32]; 6];
            kernel.hash_nodes(&children, &mut out[..3]);
            assert!(out[5..].iter().all(|hash| *hash == [0x55; 32]));
        }
    }

    #[test]
    fn detect_prefers_avx2_where_present() {
        let detected = Kernel::detect();
        match Kernel::avx2() {
            Some(avx2) => assert_eq!(detected, avx2),
            None => assert_eq!(detected, Kernel::portable()),
        }
        assert_eq!(Kernel::portable().name(), "portable");
    }

    #[test]
    #[should_panic(expected = "exactly one leaf per output hash")]
    fn leaf_count_mismatch_is_refused() {
        Kernel::detect().hash_leaves(&[0u8; 192 * 3], 192, &mut [[0u8; 32]; 2]);
    }

    #[test]
    #[should_panic(expected = "exactly two children")]
    fn child_count_mismatch_is_refused() {
        Kernel::detect().hash_nodes(&[[0u8; 32]; 5], &mut [[0u8; 32]; 2]);
    }
}
