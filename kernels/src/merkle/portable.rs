//! The portable many-input kernel: the blake3 crate, one input at a time. It runs on every
//! machine, and it is the reference the AVX2 kernel (`avx2.rs`) is held to.

use super::{node_hash, Hash};

/// Writes `blake3::keyed_hash(key, input i)` to `out[i]`, input `i` being
/// `data[i * input_bytes..][..input_bytes]` (any length; the caller checked the counts).
pub(super) fn hash_keyed(key: &[u8; 32], data: &[u8], input_bytes: usize, out: &mut [Hash]) {
    for (input, hash) in data.chunks_exact(input_bytes).zip(out.iter_mut()) {
        *hash = *blake3::keyed_hash(key, input).as_bytes();
    }
}

/// Writes `node_hash(children[2i], children[2i + 1])` to `out[i]`.
pub(super) fn hash_nodes(children: &[Hash], out: &mut [Hash]) {
    for (pair, hash) in children.chunks_exact(2).zip(out.iter_mut()) {
        *hash = node_hash(&pair[0], &pair[1]);
    }
}
