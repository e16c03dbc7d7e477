//! The AVX2 many-input BLAKE3 kernel: 8 independent single-chunk keyed hashes per call, one
//! per 32-bit lane of 256-bit vectors (the "transposed" layout BLAKE3's own `hash_many` uses
//! for chunks): 8 leaves or 8 parents for the price of about one and a half single
//! compressions.
//!
//! Every input here is a single BLAKE3 chunk (at most 1024 bytes) hashed as the root, keyed:
//! blocks of 64 bytes, counter 0, flags `KEYED_HASH` on every block, `CHUNK_START` on the
//! first, `CHUNK_END | ROOT` on the last, block length 64 except for a shorter last block
//! (zero-padded, its length in `block_len`). The 32-byte output is then the chaining value of
//! the last compression. Inner nodes are one 64-byte block under `NODE_KEY`.
//!
//! This is the only module of the crate that allows `unsafe` (AVX2 intrinsics, raw-pointer
//! loads); every `unsafe` block says why it is sound. It is compiled on x86-64 only and
//! reached only through `Kernel(Imp::Avx2)` (`super::Kernel`), which is built only after
//! `is_x86_feature_detected!("avx2")`. The portable kernel (`portable.rs`) is the reference
//! it is held to (tests in `super`).

use super::{Hash, NODE_KEY, SIMD_LEAF_BYTES_MAX};
use std::arch::x86_64::*;

const BLOCK_LEN: usize = 64;
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const ROOT: u32 = 8;
const KEYED_HASH: u32 = 16;
const IV: [u32; 8] = [
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
const MSG_SCHEDULE: [[usize; 16]; 7] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
    [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
    [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
    [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
    [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
    [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
];

/// A 32-byte key as 8 little-endian words.
const fn key_words(key: &[u8; 32]) -> [u32; 8] {
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

/// Inputs hashed side by side: 8 lanes of 32 bits in a 256-bit vector.
const LANES: usize = 8;
const NODE_KEY_WORDS: [u32; 8] = key_words(&NODE_KEY);

/// Writes `blake3::keyed_hash(key, leaf i)` to `out[i]`, leaf `i` being
/// `data[i * leaf_bytes..][..leaf_bytes]`, 8 leaves per call.
///
/// Panics unless `leaf_bytes` is 1..=[`SIMD_LEAF_BYTES_MAX`] and `data` holds exactly
/// `out.len()` leaves (the caller, `super::Kernel`, checked both).
#[inline]
pub(super) fn hash_inputs(key: &[u8; 32], data: &[u8], leaf_bytes: usize, out: &mut [Hash]) {
    assert!((1..=SIMD_LEAF_BYTES_MAX).contains(&leaf_bytes));
    assert_eq!(data.len(), out.len() * leaf_bytes);
    let key = &key_words(key);
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
#[inline]
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
