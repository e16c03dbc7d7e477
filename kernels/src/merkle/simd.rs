//! Many-input BLAKE3: the leaf and inner-node hashes of a Merkle level, several per call.
//!
//! The blake3 crate hashes one input at a time: a 192-byte leaf is three compressions in a
//! row, each using SIMD only inside the one compression. A Merkle level is many independent
//! short inputs, so here one AVX2 call hashes **8 inputs side by side**, one input per 32-bit
//! lane (the "transposed" layout BLAKE3's own `hash_many` uses for chunks): 8 leaves or 8
//! parents for the price of about one and a half single compressions.
//!
//! Every input here is a single BLAKE3 chunk (at most 1024 bytes) hashed as the root, keyed:
//! blocks of 64 bytes, counter 0, flags `KEYED_HASH` on every block, `CHUNK_START` on the
//! first, `CHUNK_END | ROOT` on the last, block length 64 except for a shorter last block
//! (zero-padded, its length in `block_len`). The 32-byte output is then the chaining value of
//! the last compression. Inner nodes are one 64-byte block under `NODE_KEY`.
//!
//! Kernels ([`Kernel`]):
//! - `avx2` (x86-64 with AVX2, detected at run time): leaves of 1..=1024 bytes and inner
//!   nodes, 8 lanes per call; leaves longer than one chunk go to the blake3 crate;
//! - `portable`: the blake3 crate, one input at a time (every other machine, and the
//!   reference the tests hold the AVX2 kernel to).
//!
//! Both give bit-identical hashes (tests below, against `blake3::keyed_hash`).

use super::{Hash, LEAF_KEY, NODE_KEY};

/// Longest leaf the many-input kernels hash themselves: one BLAKE3 chunk.
pub const SIMD_LEAF_BYTES_MAX: usize = 1024;

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod consts {
    pub const BLOCK_LEN: usize = 64;
    pub const CHUNK_START: u32 = 1;
    pub const CHUNK_END: u32 = 2;
    pub const ROOT: u32 = 8;
    pub const KEYED_HASH: u32 = 16;
    pub const IV: [u32; 8] = [
        0x6A09_E667,
        0xBB67_AE85,
        0x3C6E_F372,
        0xA54F_F53A,
        0x510E_527F,
        0x9B05_688C,
        0x1F83_D9AB,
        0x5BE0_CD19,
    ];
    /// Message word order of each of the 7 rounds (BLAKE3's permutation applied r times).
    pub const MSG_SCHEDULE: [[usize; 16]; 7] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
        [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
        [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
        [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
        [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
        [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
    ];

    /// A 32-byte key as 8 little-endian words.
    pub const fn key_words(key: &[u8; 32]) -> [u32; 8] {
        let mut words = [0u32; 8];
        let mut index = 0;
        while index < 8 {
            words[index] = u32::from_le_bytes([
                key[4 * index],
                key[4 * index + 1],
                key[4 * index + 2],
                key[4 * index + 3],
            ]);
            index += 1;
        }
        words
    }
}

/// Which many-input BLAKE3 implementation hashes leaves and inner nodes.
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
    pub(crate) fn hash_leaves(self, data: &[u8], leaf_bytes: usize, out: &mut [Hash]) {
        self.hash_keyed(&LEAF_KEY, data, leaf_bytes, out);
    }

    /// Writes `blake3::keyed_hash(key, input i)` to `out[i]`, input `i` being
    /// `data[i * input_bytes..][..input_bytes]`.
    ///
    /// Panics if `input_bytes == 0` or `data.len() != out.len() * input_bytes`.
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
                avx2::hash_inputs(&consts::key_words(key), data, input_bytes, out)
            }
            _ => {
                for (input, hash) in data.chunks_exact(input_bytes).zip(out.iter_mut()) {
                    *hash = *blake3::keyed_hash(key, input).as_bytes();
                }
            }
        }
    }

    /// Writes `node_hash(children[2i], children[2i + 1])` to `out[i]`.
    ///
    /// Panics if `children.len() != 2 * out.len()`.
    pub(crate) fn hash_nodes(self, children: &[Hash], out: &mut [Hash]) {
        assert_eq!(
            children.len(),
            2 * out.len(),
            "every parent needs exactly two children"
        );
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2 => avx2::hash_nodes(children, out),
            Imp::Portable => {
                for (pair, hash) in children.chunks_exact(2).zip(out.iter_mut()) {
                    *hash = super::node_hash(&pair[0], &pair[1]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // The only unsafe code of the crate: AVX2 intrinsics, raw-pointer loads.
mod avx2 {
    //! 8 independent single-chunk keyed BLAKE3 hashes per call, one per 32-bit lane of
    //! 256-bit vectors. Only reachable through `Kernel(Imp::Avx2)`, which is built only after
    //! `is_x86_feature_detected!("avx2")`.

    use super::consts::*;
    use super::{Hash, NODE_KEY};
    use std::arch::x86_64::*;

    const LANES: usize = 8;
    const NODE_KEY_WORDS: [u32; 8] = key_words(&NODE_KEY);

    /// Inputs of `leaf_bytes` (1..=1024) bytes keyed with `key`, 8 per call. The caller
    /// checked the lengths.
    pub(super) fn hash_inputs(key: &[u32; 8], data: &[u8], leaf_bytes: usize, out: &mut [Hash]) {
        assert!((1..=super::SIMD_LEAF_BYTES_MAX).contains(&leaf_bytes));
        assert_eq!(data.len(), out.len() * leaf_bytes);
        let full_blocks = leaf_bytes / BLOCK_LEN;
        let tail_len = leaf_bytes % BLOCK_LEN;
        let mut tails = [[0u8; BLOCK_LEN]; LANES];
        for (leaves, hashes) in data.chunks(LANES * leaf_bytes).zip(out.chunks_mut(LANES)) {
            let lanes = hashes.len();
            // Lanes without a leaf (the last call of a level) rehash lane 0's blocks and an
            // earlier tail; their outputs are dropped.
            let mut inputs = [leaves.as_ptr(); LANES];
            for (lane, input) in inputs.iter_mut().enumerate().take(lanes) {
                *input = leaves[lane * leaf_bytes..(lane + 1) * leaf_bytes].as_ptr();
            }
            if tail_len > 0 {
                for (lane, tail) in tails.iter_mut().enumerate().take(lanes) {
                    let leaf = &leaves[lane * leaf_bytes..(lane + 1) * leaf_bytes];
                    tail[..tail_len].copy_from_slice(&leaf[full_blocks * BLOCK_LEN..]);
                }
            }
            // SAFETY: this module is reached only through `Kernel(Imp::Avx2)`, which exists
            // only once AVX2 was detected. Each of the 8 pointers is the start of a
            // bounds-checked slice of `leaf_bytes >= full_blocks * 64` bytes, so the
            // `full_blocks * 64` bytes `hash8` reads from it are in bounds.
            unsafe { hash8_into(&inputs, full_blocks, &tails, tail_len, key, hashes) };
        }
    }

    /// Inner nodes, 8 per call: parent `i` hashes the 64 bytes of `children[2i..2i + 2]`.
    pub(super) fn hash_nodes(children: &[Hash], out: &mut [Hash]) {
        assert_eq!(children.len(), 2 * out.len());
        let no_tails = [[0u8; BLOCK_LEN]; LANES];
        for (pairs, hashes) in children.chunks(2 * LANES).zip(out.chunks_mut(LANES)) {
            let lanes = hashes.len();
            let mut inputs = [pairs.as_ptr().cast::<u8>(); LANES];
            for (lane, input) in inputs.iter_mut().enumerate().take(lanes) {
                // Two adjacent hashes are 64 contiguous bytes: one block.
                *input = pairs[2 * lane..2 * lane + 2].as_ptr().cast::<u8>();
            }
            // SAFETY: AVX2 was detected (see `hash_inputs`). Each pointer is the start of a
            // bounds-checked slice of two hashes (lane 0's for unused lanes), i.e. of the 64
            // bytes `hash8` reads.
            unsafe { hash8_into(&inputs, 1, &no_tails, 0, &NODE_KEY_WORDS, hashes) };
        }
    }

    /// Runs [`hash8`] and writes the first `out.len()` (1..=8) lanes' hashes to `out`.
    ///
    /// # Safety
    /// As [`hash8`].
    #[inline(always)]
    unsafe fn hash8_into(
        inputs: &[*const u8; LANES],
        full_blocks: usize,
        tails: &[[u8; BLOCK_LEN]; LANES],
        tail_len: usize,
        key: &[u32; 8],
        out: &mut [Hash],
    ) {
        if let Ok(out) = <&mut [Hash; LANES]>::try_from(&mut *out) {
            hash8(inputs, full_blocks, tails, tail_len, key, out);
        } else {
            let mut all = [[0u8; 32]; LANES];
            hash8(inputs, full_blocks, tails, tail_len, key, &mut all);
            let lanes = out.len();
            out.copy_from_slice(&all[..lanes]);
        }
    }

    /// Hashes 8 single-chunk inputs keyed with `key`, as the root: lane `i` is
    /// `full_blocks` 64-byte blocks read from `inputs[i]`, then, when `tail_len > 0`, the
    /// first `tail_len` bytes of `tails[i]` (zero-padded, as BLAKE3 pads a short block).
    /// `full_blocks * 64 + tail_len` must be 1..=1024.
    ///
    /// # Safety
    /// The CPU supports AVX2, and each `inputs[i]` is valid for reads of `full_blocks * 64`
    /// bytes.
    #[target_feature(enable = "avx2")]
    unsafe fn hash8(
        inputs: &[*const u8; LANES],
        full_blocks: usize,
        tails: &[[u8; BLOCK_LEN]; LANES],
        tail_len: usize,
        key: &[u32; 8],
        out: &mut [Hash; LANES],
    ) {
        let blocks = full_blocks + usize::from(tail_len > 0);
        debug_assert!((1..=16).contains(&blocks) && tail_len < BLOCK_LEN);
        let mut h = [
            set1(key[0]),
            set1(key[1]),
            set1(key[2]),
            set1(key[3]),
            set1(key[4]),
            set1(key[5]),
            set1(key[6]),
            set1(key[7]),
        ];
        for block in 0..blocks {
            let (words, block_len) = if block < full_blocks {
                (load_block(inputs, block * BLOCK_LEN), BLOCK_LEN)
            } else {
                let tail_inputs = [
                    tails[0].as_ptr(),
                    tails[1].as_ptr(),
                    tails[2].as_ptr(),
                    tails[3].as_ptr(),
                    tails[4].as_ptr(),
                    tails[5].as_ptr(),
                    tails[6].as_ptr(),
                    tails[7].as_ptr(),
                ];
                (load_block(&tail_inputs, 0), tail_len)
            };
            let mut flags = KEYED_HASH;
            if block == 0 {
                flags |= CHUNK_START;
            }
            if block + 1 == blocks {
                flags |= CHUNK_END | ROOT;
            }
            let zero = _mm256_setzero_si256();
            let mut v = [
                h[0],
                h[1],
                h[2],
                h[3],
                h[4],
                h[5],
                h[6],
                h[7],
                set1(IV[0]),
                set1(IV[1]),
                set1(IV[2]),
                set1(IV[3]),
                zero, // counter, low word: every input is chunk 0
                zero, // counter, high word
                set1(block_len as u32),
                set1(flags),
            ];
            round(&mut v, &words, 0);
            round(&mut v, &words, 1);
            round(&mut v, &words, 2);
            round(&mut v, &words, 3);
            round(&mut v, &words, 4);
            round(&mut v, &words, 5);
            round(&mut v, &words, 6);
            for (index, word) in h.iter_mut().enumerate() {
                *word = _mm256_xor_si256(v[index], v[index + 8]);
            }
        }
        transpose(&mut h);
        for (lane, hash) in out.iter_mut().enumerate() {
            // SAFETY: `hash` is 32 writable bytes; the store is unaligned.
            _mm256_storeu_si256(hash.as_mut_ptr().cast::<__m256i>(), h[lane]);
        }
    }

    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn set1(word: u32) -> __m256i {
        _mm256_set1_epi32(word as i32)
    }

    /// The 16 message words of one block of each lane, word `w` of lane `i` in lane `i` of
    /// vector `w`.
    ///
    /// # Safety
    /// AVX2 is enabled and each `inputs[i] + offset` is valid for reads of 64 bytes.
    #[inline(always)]
    unsafe fn load_block(inputs: &[*const u8; LANES], offset: usize) -> [__m256i; 16] {
        let mut words = [_mm256_setzero_si256(); 16];
        for (lane, input) in inputs.iter().enumerate() {
            let block = input.add(offset);
            words[lane] = _mm256_loadu_si256(block.cast::<__m256i>());
            words[LANES + lane] = _mm256_loadu_si256(block.add(32).cast::<__m256i>());
        }
        let (low, high) = words.split_at_mut(LANES);
        transpose(low.try_into().expect("8 vectors"));
        transpose(high.try_into().expect("8 vectors"));
        words
    }

    /// Transposes an 8x8 matrix of 32-bit words held as 8 vectors.
    ///
    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn transpose(vecs: &mut [__m256i; LANES]) {
        let ab_0145 = _mm256_unpacklo_epi32(vecs[0], vecs[1]);
        let ab_2367 = _mm256_unpackhi_epi32(vecs[0], vecs[1]);
        let cd_0145 = _mm256_unpacklo_epi32(vecs[2], vecs[3]);
        let cd_2367 = _mm256_unpackhi_epi32(vecs[2], vecs[3]);
        let ef_0145 = _mm256_unpacklo_epi32(vecs[4], vecs[5]);
        let ef_2367 = _mm256_unpackhi_epi32(vecs[4], vecs[5]);
        let gh_0145 = _mm256_unpacklo_epi32(vecs[6], vecs[7]);
        let gh_2367 = _mm256_unpackhi_epi32(vecs[6], vecs[7]);

        let abcd_04 = _mm256_unpacklo_epi64(ab_0145, cd_0145);
        let abcd_15 = _mm256_unpackhi_epi64(ab_0145, cd_0145);
        let abcd_26 = _mm256_unpacklo_epi64(ab_2367, cd_2367);
        let abcd_37 = _mm256_unpackhi_epi64(ab_2367, cd_2367);
        let efgh_04 = _mm256_unpacklo_epi64(ef_0145, gh_0145);
        let efgh_15 = _mm256_unpackhi_epi64(ef_0145, gh_0145);
        let efgh_26 = _mm256_unpacklo_epi64(ef_2367, gh_2367);
        let efgh_37 = _mm256_unpackhi_epi64(ef_2367, gh_2367);

        vecs[0] = _mm256_permute2x128_si256(abcd_04, efgh_04, 0x20);
        vecs[4] = _mm256_permute2x128_si256(abcd_04, efgh_04, 0x31);
        vecs[1] = _mm256_permute2x128_si256(abcd_15, efgh_15, 0x20);
        vecs[5] = _mm256_permute2x128_si256(abcd_15, efgh_15, 0x31);
        vecs[2] = _mm256_permute2x128_si256(abcd_26, efgh_26, 0x20);
        vecs[6] = _mm256_permute2x128_si256(abcd_26, efgh_26, 0x31);
        vecs[3] = _mm256_permute2x128_si256(abcd_37, efgh_37, 0x20);
        vecs[7] = _mm256_permute2x128_si256(abcd_37, efgh_37, 0x31);
    }

    /// One BLAKE3 round: the 4 column G functions, then the 4 diagonal ones.
    ///
    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn round(v: &mut [__m256i; 16], m: &[__m256i; 16], r: usize) {
        let s = &MSG_SCHEDULE[r];
        g(v, [0, 4, 8, 12], m[s[0]], m[s[1]]);
        g(v, [1, 5, 9, 13], m[s[2]], m[s[3]]);
        g(v, [2, 6, 10, 14], m[s[4]], m[s[5]]);
        g(v, [3, 7, 11, 15], m[s[6]], m[s[7]]);
        g(v, [0, 5, 10, 15], m[s[8]], m[s[9]]);
        g(v, [1, 6, 11, 12], m[s[10]], m[s[11]]);
        g(v, [2, 7, 8, 13], m[s[12]], m[s[13]]);
        g(v, [3, 4, 9, 14], m[s[14]], m[s[15]]);
    }

    /// BLAKE3's G on state words `a, b, c, d` with message words `x, y`.
    ///
    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn g(v: &mut [__m256i; 16], [a, b, c, d]: [usize; 4], x: __m256i, y: __m256i) {
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), x);
        v[d] = rot16(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rot12(_mm256_xor_si256(v[b], v[c]));
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), y);
        v[d] = rot8(_mm256_xor_si256(v[d], v[a]));
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rot7(_mm256_xor_si256(v[b], v[c]));
    }

    /// Rotations right by whole bytes are one byte shuffle; the others two shifts and an or.
    ///
    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn rot16(x: __m256i) -> __m256i {
        let shuffle = _mm256_setr_epi8(
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, //
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
        );
        _mm256_shuffle_epi8(x, shuffle)
    }

    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn rot8(x: __m256i) -> __m256i {
        let shuffle = _mm256_setr_epi8(
            1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, //
            1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
        );
        _mm256_shuffle_epi8(x, shuffle)
    }

    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn rot12(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20))
    }

    /// # Safety
    /// AVX2 is enabled.
    #[inline(always)]
    unsafe fn rot7(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{seeded_rng, test_kernels as kernels};
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
        for kernel in kernels() {
            for leaf_bytes in [64, 128, 192, 256, 512, 1024] {
                check_leaves(kernel, &mut rng, leaf_bytes);
            }
        }
    }

    #[test]
    fn leaves_match_blake3_for_partial_last_blocks() {
        let mut rng = seeded_rng("leaves_match_blake3_for_partial_last_blocks");
        for kernel in kernels() {
            for leaf_bytes in [1, 31, 32, 63, 65, 100, 127, 160, 191, 193, 1000, 1023] {
                check_leaves(kernel, &mut rng, leaf_bytes);
            }
        }
    }

    /// Leaves longer than one chunk go to the blake3 crate in every kernel.
    #[test]
    fn leaves_longer_than_a_chunk_match_blake3() {
        let mut rng = seeded_rng("leaves_longer_than_a_chunk_match_blake3");
        for kernel in kernels() {
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
        for kernel in kernels() {
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
        for kernel in kernels() {
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
        for kernel in kernels() {
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
