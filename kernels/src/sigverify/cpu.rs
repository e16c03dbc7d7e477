//! CPU backend: cofactored batch verification over all cores with rayon.
//!
//! Per item (in parallel): the canonical-S check, ZIP-215 decompression of `R` (and of `A`
//! unless the key is registered), and the challenge `k`. Per chunk: one random linear
//! combination of the cofactored equations,
//!
//! ```text
//! [8] ( [-sum z_i s_i] B + sum [z_i] R_i + sum_keys [sum_{i: key} z_i k_i] A_key ) == identity
//! ```
//!
//! with 128-bit `z_i` from the thread's CSPRNG. Every term of the sum is multiplied by the
//! cofactor, so a chunk of items that each pass the single cofactored check always passes,
//! and a chunk with a failing item fails except with probability 2^-128 (the failing
//! item's `[8]`-multiplied error lies in the prime-order subgroup). A failing chunk is
//! bisected; small failing pieces are judged item by item with the same cofactored check
//! ed25519-zebra's single verifier makes, so verdicts equal the reference item by item.
//!
//! Beyond ed25519-zebra's batch verifier: registered keys are decompressed once and carry
//! width-8 NAF tables, and chunks are large (up to [`CHUNK_ITEMS_MAX`]) so that all signatures
//! by one key share one key term.

use super::keys::KeyRegistry;
use super::prepare::{prepare, KeyPoint, Prepared};
use super::SigItem;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{
    IsIdentity, VartimeMultiscalarMul, VartimePrecomputedMultiscalarMul,
};
use ed25519_zebra::{Signature, VerificationKey};
use rand::Rng;
use rayon::prelude::*;

/// Most items in one random linear combination. Larger chunks share key terms among more
/// signatures; a failing chunk costs about two extra multiscalar multiplications of its size
/// per bad item to bisect.
pub const CHUNK_ITEMS_MAX: usize = 2048;

/// Fewest items per chunk when a batch is split over threads: below it the fixed cost of a
/// multiscalar multiplication (256 doublings) dominates.
const CHUNK_ITEMS_MIN: usize = 64;

/// A failing piece at most this large is judged item by item instead of bisected further.
const BISECT_ITEMS_MIN: usize = 4;

/// A failing piece is split into this many parts, not two: with a few bad items in a chunk
/// of 2048, halving re-verifies the whole chunk at every one of nine levels (about 7 times
/// the chunk's work at 1% bad items), eight-way splitting at three levels (about 3.5 times;
/// about 2.2 times for a single bad item, against 3 for halving).
const SPLIT_WAYS: usize = 8;

/// Below this many dynamic points dalek's Straus (mixed with the static tables) beats
/// Pippenger; dalek switches at the same size.
const PIPPENGER_POINTS_MIN: usize = 190;

/// Verifies `items` into `verdicts` (same length) on the rayon pool.
pub(super) fn verify_batch(registry: &KeyRegistry, items: &[SigItem<'_>], verdicts: &mut [bool]) {
    assert_eq!(items.len(), verdicts.len());
    if items.is_empty() {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let chunk_items = items
        .len()
        .div_ceil(threads)
        .clamp(CHUNK_ITEMS_MIN, CHUNK_ITEMS_MAX);
    items
        .par_chunks(chunk_items)
        .zip(verdicts.par_chunks_mut(chunk_items))
        .for_each(|(chunk, out)| verify_chunk(registry, chunk, out));
}

fn verify_chunk(registry: &KeyRegistry, items: &[SigItem<'_>], verdicts: &mut [bool]) {
    // Items that fail to parse are false now; the rest (with their chunk index) go to the
    // equation.
    let mut ready: Vec<(usize, Prepared)> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match prepare(item, registry) {
            Some(prepared) => ready.push((index, prepared)),
            None => verdicts[index] = false,
        }
    }
    resolve(registry, &ready, verdicts);
}

/// Writes the verdict of every item in `ready` by batch equation and splitting.
fn resolve(registry: &KeyRegistry, ready: &[(usize, Prepared)], verdicts: &mut [bool]) {
    if ready.len() <= BISECT_ITEMS_MIN {
        for (index, prepared) in ready {
            verdicts[*index] = single_check(registry, prepared);
        }
        return;
    }
    if batch_check(registry, ready) {
        for (index, _) in ready {
            verdicts[*index] = true;
        }
        return;
    }
    for piece in ready.chunks(ready.len().div_ceil(SPLIT_WAYS)) {
        resolve(registry, piece, verdicts);
    }
}

/// The single cofactored check, `[8](R - (sB - kA)) == identity`, as ed25519-zebra's
/// `VerificationKey::verify_prehashed` computes it.
fn single_check(registry: &KeyRegistry, prepared: &Prepared) -> bool {
    let a = key_point(registry, &prepared.key);
    let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&prepared.k, &-a, &prepared.s);
    (prepared.r - r_prime).mul_by_cofactor().is_identity()
}

fn key_point(registry: &KeyRegistry, key: &KeyPoint) -> EdwardsPoint {
    match key {
        KeyPoint::Registered(index) => *registry.point(*index),
        KeyPoint::Point(point) => *point,
    }
}

/// One random linear combination of the cofactored equations of `ready`; true when it holds.
fn batch_check(registry: &KeyRegistry, ready: &[(usize, Prepared)]) -> bool {
    let mut rng = rand::rng();
    let table_keys = registry.table_keys();
    // Static scalars: index 0 is the base point, index `i + 1` is registered key `i`.
    let mut static_scalars: Vec<Scalar> = Vec::new();
    let mut static_present = 0usize;
    let mut dynamic_scalars: Vec<Scalar> = Vec::with_capacity(ready.len() * 2);
    let mut dynamic_points: Vec<EdwardsPoint> = Vec::with_capacity(ready.len() * 2);
    let mut b_coefficient = Scalar::ZERO;
    let mut max_table_index = 0usize;
    for (_, prepared) in ready {
        if let KeyPoint::Registered(index) = prepared.key {
            if (index as usize) < table_keys {
                max_table_index = max_table_index.max(index as usize + 1);
            }
        }
    }
    static_scalars.resize(max_table_index + 1, Scalar::ZERO);
    for (_, prepared) in ready {
        let z = Scalar::from(rng.next_u64() as u128 | (rng.next_u64() as u128) << 64);
        b_coefficient -= z * prepared.s;
        dynamic_scalars.push(z);
        dynamic_points.push(prepared.r);
        let zk = z * prepared.k;
        match prepared.key {
            KeyPoint::Registered(index) if (index as usize) < table_keys => {
                let slot = &mut static_scalars[index as usize + 1];
                if *slot == Scalar::ZERO {
                    static_present += 1;
                }
                *slot += zk;
            }
            KeyPoint::Registered(index) => {
                dynamic_scalars.push(zk);
                dynamic_points.push(*registry.point(index));
            }
            KeyPoint::Point(point) => {
                dynamic_scalars.push(zk);
                dynamic_points.push(point);
            }
        }
    }
    static_scalars[0] = b_coefficient;
    // A zero static scalar still costs a NAF and 256 digit tests (about a fifth of a point's
    // additions): when the present keys are sparse among the table's, move them to the
    // dynamic points instead.
    if static_scalars.len() - 1 > 4 * static_present {
        for (index, scalar) in static_scalars.iter().enumerate().skip(1) {
            if *scalar != Scalar::ZERO {
                dynamic_scalars.push(*scalar);
                dynamic_points.push(*registry.point(index as u32 - 1));
            }
        }
        static_scalars.truncate(1);
    }
    let table = registry.table();
    let sum = if dynamic_points.len() >= PIPPENGER_POINTS_MIN {
        EdwardsPoint::vartime_multiscalar_mul(&dynamic_scalars, &dynamic_points)
            + table.vartime_multiscalar_mul(&static_scalars)
    } else {
        table.vartime_mixed_multiscalar_mul(&static_scalars, &dynamic_scalars, &dynamic_points)
    };
    sum.mul_by_cofactor().is_identity()
}

/// The reference: ed25519-zebra's single verifier.
pub(super) fn verify_single(item: &SigItem<'_>) -> bool {
    let Ok(key) = VerificationKey::try_from(*item.public_key) else {
        return false;
    };
    let signature = Signature::from_bytes(item.signature);
    key.verify(&signature, item.message).is_ok()
}
