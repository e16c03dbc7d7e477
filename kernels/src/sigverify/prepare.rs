//! Per-item preparation shared by the backends: the canonical-S check, the challenge
//! `k = SHA-512(R || A || M) mod L`, and ZIP-215 decompression of `A` and `R`. The GPU
//! kernels' packing of the same checks is in `gpu_tables.rs`.
//!
//! Decompression is curve25519-dalek's `CompressedEdwardsY::decompress`, the very function
//! ed25519-zebra calls: it reads y as 255 bits without requiring y < p (non-canonical
//! encodings accepted, as ZIP-215 demands) and accepts x = 0 with the sign bit set.

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
