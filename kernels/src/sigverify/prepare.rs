//! Per-item preparation shared by the backends: the canonical-S check, the challenge
//! `k = SHA-512(R || A || M) mod L`, and ZIP-215 decompression of `A` and `R` (CPU); the
//! same checks and `k` packed as words for the GPU kernels (`gpu.rs`).
//!
//! Decompression is curve25519-dalek's `CompressedEdwardsY::decompress`, the very function
//! ed25519-zebra calls: it reads y as 255 bits without requiring y < p (non-canonical
//! encodings accepted, as ZIP-215 demands) and accepts x = 0 with the sign bit set.

use super::gpu;
use super::keys::KeyRegistry;
use super::SigItem;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

/// The challenge scalar `k = SHA-512(R || A || M) mod L`, hashed over the bytes exactly as
/// given (never re-encoded: re-encoding a non-canonical point would change `k`).
pub(crate) fn challenge(item: &SigItem<'_>) -> Scalar {
    let mut hasher = Sha512::new();
    hasher.update(&item.signature[..32]);
    hasher.update(item.public_key);
    hasher.update(item.message);
    let digest: [u8; 64] = hasher.finalize().into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// `S` as a scalar when its encoding is canonical (`S < L`), else `None` (the item is invalid).
pub(crate) fn canonical_s(item: &SigItem<'_>) -> Option<Scalar> {
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&item.signature[32..]);
    Option::from(Scalar::from_canonical_bytes(s_bytes))
}

/// Where the public key point comes from.
#[derive(Clone, Copy)]
pub(crate) enum KeyPoint {
    /// A registered key: its index in the [`KeyRegistry`].
    Registered(u32),
    /// An unregistered key, decompressed for this item.
    Point(EdwardsPoint),
}

/// An item whose encodings all parse; it is valid iff `[8](R + kA - sB) == identity`.
#[derive(Clone, Copy)]
pub(crate) struct Prepared {
    pub(crate) s: Scalar,
    pub(crate) k: Scalar,
    pub(crate) r: EdwardsPoint,
    pub(crate) key: KeyPoint,
}

/// Prepares one item, or `None` when it is invalid before any curve equation: `S >= L`,
/// `A` or `R` not a curve point.
pub(crate) fn prepare(item: &SigItem<'_>, registry: &KeyRegistry) -> Option<Prepared> {
    let s = canonical_s(item)?;
    let key = match registry.index(item.public_key) {
        Some(index) => KeyPoint::Registered(index),
        None => KeyPoint::Point(CompressedEdwardsY(*item.public_key).decompress()?),
    };
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&item.signature[..32]);
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let k = challenge(item);
    Some(Prepared { s, k, r, key })
}

/// Host half of the GPU check for packed items (`ITEM_WORDS` words): R, A, s as given, then
/// [`gpu_key_words`].
pub(super) fn pack_gpu_item(
    registry: &KeyRegistry,
    table_keys: usize,
    item: &SigItem<'_>,
    words: &mut [u32],
) {
    let mut r = [0u8; 32];
    r.copy_from_slice(&item.signature[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&item.signature[32..]);
    bytes_to_words(&r, &mut words[0..8]);
    bytes_to_words(item.public_key, &mut words[8..16]);
    bytes_to_words(&s, &mut words[16..24]);
    gpu_key_words(registry, table_keys, item, &mut words[24..]);
}

/// Host half of the GPU check, the same for both input layouts: `S < L` and the challenge
/// `k`; the slot of a registered key (one of the first `table_keys`, which have GPU tables).
/// Writes `KEY_ITEM_WORDS` words: k, then the slot (`KEY_SKIP` with k = 0 when `S >= L`,
/// `KEY_DECOMPRESS` for a key without a table).
pub(super) fn gpu_key_words(
    registry: &KeyRegistry,
    table_keys: usize,
    item: &SigItem<'_>,
    words: &mut [u32],
) {
    assert_eq!(words.len(), gpu::KEY_ITEM_WORDS);
    let (k, slot) = match canonical_s(item) {
        None => ([0u8; 32], gpu::KEY_SKIP),
        Some(_) => {
            let slot = match registry.index(item.public_key) {
                Some(index) if (index as usize) < table_keys => index + 1,
                _ => gpu::KEY_DECOMPRESS,
            };
            (challenge(item).to_bytes(), slot)
        }
    };
    bytes_to_words(&k, &mut words[..8]);
    words[8] = slot;
}

/// Packs 32 little-endian bytes into 8 u32 words.
pub(super) fn bytes_to_words(bytes: &[u8; 32], words: &mut [u32]) {
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
}
