//! CPU backend: cofactored batch verification over all cores with rayon.
//!
//! A batch is cut into equations of at most [`CHUNK_ITEMS_MAX`] items. Per item (in
//! parallel, a few items per task so that an idle core always finds work): the canonical-S
//! check, ZIP-215 decompression of `R` (and of `A` unless the key is registered), and the
//! challenge `k`. Per equation: one random linear combination of the cofactored equations,
//!
//! ```text
//! [8] ( [-sum z_i s_i] B + sum [z_i] R_i + sum_keys [sum_{i: key} z_i k_i] A_key ) == identity
//! ```
//!
//! with 128-bit `z_i` from the thread's CSPRNG. Every term of the sum is multiplied by the
//! cofactor, so an equation over items that each pass the single cofactored check always
//! holds, and one with a failing item fails except with probability 2^-128 (the failing
//! item's `[8]`-multiplied error lies in the prime-order subgroup). A failing equation is
//! split; small failing pieces are judged item by item with the same cofactored check
//! ed25519-zebra's single verifier makes, so verdicts equal the reference item by item.
//!
//! Where the time goes (one core, 2-core AMD EPYC VM): decompressing a point about 8 us, the
//! challenge about 1 us, a point of a Pippenger multiscalar multiplication 7 to 11 us with a
//! 128-bit scalar (an `R_i`) and 12 to 17 us with a full scalar (a key, `B`), less per point
//! the more points. Beyond ed25519-zebra's batch verifier: registered keys are decompressed
//! once (zebra decompresses every distinct key of every batch), one equation spans the whole
//! batch up to [`CHUNK_ITEMS_MAX`] items, so that the signatures of one key share one key term
//! and the multiscalar multiplication is large (cheaper per point), and the multiscalar
//! multiplication of one equation is cut into parts that run in parallel and are summed, so
//! that a batch smaller than one equation per core still uses every core. Each part takes
//! the same share of the cheap `R_i` terms and of the full-size terms, so the parts finish
//! together. Batches of at most [`FUSED_ITEMS_MAX`] items take one parallel pass instead
//! of two (see [`verify_fused`]): each join between threads costs a wake-up, which on a
//! loaded machine is a large part of a small batch's time.

use super::keys::KeyRegistry;
use super::prepare::{prepare, KeyPoint, Prepared};
use super::SigItem;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, IsIdentity, VartimeMultiscalarMul};
use ed25519_zebra::{Signature, VerificationKey};
use rand::Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Most items in one random linear combination. Larger equations share key terms among more
/// signatures and cost less per point; a failing equation costs about two to three times its
/// work per bad item to split down (see [`SPLIT_WAYS`]).
pub const CHUNK_ITEMS_MAX: usize = 8192;

/// Batches of at most this many items are verified in one parallel pass
/// ([`verify_fused`]); larger ones prepare every item first and then split one equation.
const FUSED_ITEMS_MAX: usize = 256;

/// Fewest items per part of a fused pass, unless the threads need more parts: smaller parts
/// cost more per item (fixed costs per part, key terms shared by fewer items; measured 8%
/// more work at 256 items in four parts than in two).
const FUSED_PART_ITEMS_MIN: usize = 128;

/// Items per parallel task when preparing items: small enough that a core that finishes
/// early (or one that the machine's other load leaves free) takes over the rest.
const PREPARE_ITEMS_PER_TASK: usize = 16;

/// Points per part of a split multiscalar multiplication, when the batch offers enough work:
/// dalek's Pippenger takes its widest window (the cheapest per point) from 800 points.
const PART_POINTS_WIDE: usize = 800;

/// Fewest points in a part: below it the fixed cost of a multiscalar multiplication (256
/// doublings) outweighs the gain of a second core.
const PART_POINTS_MIN: usize = 32;

/// A failing piece at most this large is judged item by item instead of split further.
const BISECT_ITEMS_MIN: usize = 4;

/// A failing piece is split into this many parts, not two: with a few bad items in a large
/// equation, halving re-verifies the whole equation at every level (about 7 times its work
/// at 1% bad items for 2048 items), eight-way splitting at a third of the levels (about 3.5
/// times; about 2.2 times for a single bad item, against 3 for halving).
const SPLIT_WAYS: usize = 8;

/// How an equation's multiscalar multiplication is cut into parallel parts.
#[derive(Clone, Copy, Debug)]
struct Parts {
    /// At least this many parts (to occupy the cores), when the points allow.
    min: usize,
    /// At most this many parts.
    max: usize,
}

impl Parts {
    const ONE: Parts = Parts { min: 1, max: 1 };

    /// Parts for `equations` equations running side by side on `threads` threads: enough
    /// parts to give every thread work, up to two per thread so that a core slowed by other
    /// work hands some of its share to the other.
    fn for_equations(equations: usize, threads: usize) -> Parts {
        Parts {
            min: threads.div_ceil(equations),
            max: (2 * threads).div_ceil(equations),
        }
    }

    /// How many parts for an equation of `points` points.
    fn count(self, points: usize) -> usize {
        (points / PART_POINTS_WIDE)
            .clamp(self.min, self.max)
            .min(points / PART_POINTS_MIN)
            .max(1)
    }
}

/// Verifies `items` into `verdicts` (same length) on the rayon pool.
pub(super) fn verify_batch(registry: &KeyRegistry, items: &[SigItem<'_>], verdicts: &mut [bool]) {
    assert_eq!(items.len(), verdicts.len());
    if items.is_empty() {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    // Equations of equal size: 8193 items make two of 4097, not 8192 and 1.
    let equations = items.len().div_ceil(CHUNK_ITEMS_MAX);
    let chunk_items = items.len().div_ceil(equations);
    if items.len() <= FUSED_ITEMS_MAX && threads > 1 {
        let parts = (items.len() / FUSED_PART_ITEMS_MIN).clamp(threads, 2 * threads);
        return verify_fused(registry, items, verdicts, parts);
    }
    let parts = Parts::for_equations(equations, threads);
    items
        .par_chunks(chunk_items)
        .zip(verdicts.par_chunks_mut(chunk_items))
        .for_each(|(chunk, out)| verify_chunk(registry, chunk, out, parts));
}

fn verify_chunk(
    registry: &KeyRegistry,
    items: &[SigItem<'_>],
    verdicts: &mut [bool],
    parts: Parts,
) {
    // One parallel pass prepares each item and draws its coefficients (with its thread's
    // generator), so that the equation's serial part is only sums and a sort.
    let prepared: Vec<Option<(Prepared, Coefficients)>> = items
        .par_iter()
        .with_min_len(PREPARE_ITEMS_PER_TASK)
        .map_init(rand::rng, |rng, item| {
            prepare(item, registry).map(|prepared| {
                let coefficients = Coefficients::draw(rng, &prepared);
                (prepared, coefficients)
            })
        })
        .collect();
    // Items that fail to parse are false now; the rest go to the equation.
    let mut ready: Vec<Prepared> = Vec::with_capacity(items.len());
    let mut coefficients: Vec<Coefficients> = Vec::with_capacity(items.len());
    let mut ready_index: Vec<usize> = Vec::with_capacity(items.len());
    for (index, prepared) in prepared.into_iter().enumerate() {
        match prepared {
            Some((prepared, item_coefficients)) => {
                ready.push(prepared);
                coefficients.push(item_coefficients);
                ready_index.push(index);
            }
            None => verdicts[index] = false,
        }
    }
    let mut ready_verdicts = vec![false; ready.len()];
    if ready.len() <= BISECT_ITEMS_MIN {
        resolve(registry, &ready, &mut ready_verdicts);
    } else if batch_check(registry, &ready, &coefficients, parts) {
        ready_verdicts.fill(true);
    } else {
        split(registry, &ready, &mut ready_verdicts);
    }
    for (index, verdict) in ready_index.into_iter().zip(ready_verdicts) {
        verdicts[index] = verdict;
    }
}

/// One equation over a small batch in a single parallel pass: each of `parts` parts
/// prepares its items, draws their coefficients and computes its share of the equation's
/// sum (its items' terms, the terms of one registered key summed within the part); the
/// shares are added and checked once. Fewer joins between threads than [`verify_chunk`]
/// (which matters most for small batches) at the cost of key terms shared only within a part.
fn verify_fused(
    registry: &KeyRegistry,
    items: &[SigItem<'_>],
    verdicts: &mut [bool],
    parts: usize,
) {
    let part_items = items.len().div_ceil(parts);
    let pieces: Vec<&[SigItem<'_>]> = items.chunks(part_items).collect();
    // The calling thread takes parts itself, and so do pool threads as they come: when the
    // machine's other load keeps the pool threads from running, the caller does every part
    // and the batch costs what one thread costs, instead of waiting for a thread that does
    // not run (rayon's parallel iterators would hand the whole batch to the pool).
    let next = AtomicUsize::new(0);
    let shares: Vec<OnceLock<(Vec<Option<Prepared>>, EdwardsPoint)>> =
        pieces.iter().map(|_| OnceLock::new()).collect();
    let work = || loop {
        let part = next.fetch_add(1, Ordering::Relaxed);
        let Some(items) = pieces.get(part) else {
            break;
        };
        let prepared: Vec<Option<Prepared>> =
            items.iter().map(|item| prepare(item, registry)).collect();
        let ready: Vec<Prepared> = prepared.iter().flatten().copied().collect();
        let mut rng = rand::rng();
        let coefficients: Vec<Coefficients> = ready
            .iter()
            .map(|prepared| Coefficients::draw(&mut rng, prepared))
            .collect();
        let share = equation_sum(registry, &ready, &coefficients, Parts::ONE);
        // Each part is taken once, so each cell is set once.
        let _ = shares[part].set((prepared, share));
    };
    rayon::in_place_scope(|scope| {
        for _ in 1..pieces.len() {
            scope.spawn(|_| work());
        }
        work();
    });
    // Every part was taken, and the scope waited for the pool's parts.
    let shares: Vec<(Vec<Option<Prepared>>, EdwardsPoint)> = shares
        .into_iter()
        .map(|share| share.into_inner().expect("every part of the pass ran"))
        .collect();
    let sum: EdwardsPoint = shares.iter().map(|(_, share)| share).sum();
    let all_pass = sum.mul_by_cofactor().is_identity();
    let mut ready: Vec<Prepared> = Vec::new();
    let mut ready_index: Vec<usize> = Vec::new();
    let prepared = shares.into_iter().flat_map(|(prepared, _)| prepared);
    for (index, (prepared, verdict)) in prepared.zip(verdicts.iter_mut()).enumerate() {
        *verdict = prepared.is_some() && all_pass;
        if let (Some(prepared), false) = (prepared, all_pass) {
            ready.push(prepared);
            ready_index.push(index);
        }
    }
    if all_pass || ready.is_empty() {
        return;
    }
    let mut ready_verdicts = vec![false; ready.len()];
    if ready.len() <= BISECT_ITEMS_MIN {
        resolve(registry, &ready, &mut ready_verdicts);
    } else {
        split(registry, &ready, &mut ready_verdicts);
    }
    for (index, verdict) in ready_index.into_iter().zip(ready_verdicts) {
        verdicts[index] = verdict;
    }
}

/// Writes the verdict of every item of `ready` into `verdicts` (same length) by a batch
/// equation with fresh coefficients, and splitting when it fails.
fn resolve(registry: &KeyRegistry, ready: &[Prepared], verdicts: &mut [bool]) {
    if ready.len() <= BISECT_ITEMS_MIN {
        for (prepared, verdict) in ready.iter().zip(verdicts.iter_mut()) {
            *verdict = single_check(registry, prepared);
        }
        return;
    }
    let mut rng = rand::rng();
    let coefficients: Vec<Coefficients> = ready
        .iter()
        .map(|prepared| Coefficients::draw(&mut rng, prepared))
        .collect();
    if batch_check(registry, ready, &coefficients, Parts::ONE) {
        verdicts.fill(true);
    } else {
        split(registry, ready, verdicts);
    }
}

/// Resolves the [`SPLIT_WAYS`] pieces of a failing equation in parallel.
fn split(registry: &KeyRegistry, ready: &[Prepared], verdicts: &mut [bool]) {
    let piece = ready.len().div_ceil(SPLIT_WAYS);
    ready
        .par_chunks(piece)
        .zip(verdicts.par_chunks_mut(piece))
        .for_each(|(ready, verdicts)| resolve(registry, ready, verdicts));
}

/// The single cofactored check, `[8](R - (sB - kA)) == identity`, as ed25519-zebra's
/// `VerificationKey::verify_prehashed` computes it.
fn single_check(registry: &KeyRegistry, prepared: &Prepared) -> bool {
    let a = match prepared.key {
        KeyPoint::Registered(index) => *registry.point(index),
        KeyPoint::Point(point) => point,
    };
    let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&prepared.k, &-a, &prepared.s);
    (prepared.r - r_prime).mul_by_cofactor().is_identity()
}

/// Per item of an equation: `z_i`, `-z_i s_i`, `z_i k_i`.
struct Coefficients {
    z: Scalar,
    minus_zs: Scalar,
    zk: Scalar,
}

impl Coefficients {
    /// Draws a 128-bit `z` for `prepared` from a CSPRNG.
    fn draw(rng: &mut impl Rng, prepared: &Prepared) -> Coefficients {
        let z = Scalar::from(u128::from(rng.next_u64()) | u128::from(rng.next_u64()) << 64);
        Coefficients {
            z,
            minus_zs: -(z * prepared.s),
            zk: z * prepared.k,
        }
    }
}

/// One random linear combination of the cofactored equations of `ready`, with the
/// coefficients `coefficients` (same length, drawn at random for this equation); true when
/// it holds.
fn batch_check(
    registry: &KeyRegistry,
    ready: &[Prepared],
    coefficients: &[Coefficients],
    parts: Parts,
) -> bool {
    equation_sum(registry, ready, coefficients, parts)
        .mul_by_cofactor()
        .is_identity()
}

/// The random linear combination of the equations of `ready` before the cofactor:
/// `[-sum z_i s_i] B + sum [z_i] R_i + sum [z_i k_i] A_i`, the terms of one registered key
/// summed into one.
fn equation_sum(
    registry: &KeyRegistry,
    ready: &[Prepared],
    coefficients: &[Coefficients],
    parts: Parts,
) -> EdwardsPoint {
    // Two lists of terms: the `R_i` with their 128-bit `z_i`, and the full-size ones (`B`,
    // one term per registered key, `A` per item of an unregistered key), which cost about
    // 1.6 times as much each. Every part takes the same share of both lists, so that the
    // parts cost the same.
    let mut r_scalars: Vec<Scalar> = Vec::with_capacity(ready.len());
    let mut r_points: Vec<EdwardsPoint> = Vec::with_capacity(ready.len());
    let mut full_scalars: Vec<Scalar> = Vec::with_capacity(ready.len() + 1);
    let mut full_points: Vec<EdwardsPoint> = Vec::with_capacity(ready.len() + 1);
    let mut registered: Vec<(u32, Scalar)> = Vec::with_capacity(ready.len());
    let mut b_coefficient = Scalar::ZERO;
    for (prepared, coefficients) in ready.iter().zip(coefficients) {
        b_coefficient += coefficients.minus_zs;
        r_scalars.push(coefficients.z);
        r_points.push(prepared.r);
        match prepared.key {
            KeyPoint::Registered(index) => registered.push((index, coefficients.zk)),
            KeyPoint::Point(point) => {
                full_scalars.push(coefficients.zk);
                full_points.push(point);
            }
        }
    }
    full_scalars.push(b_coefficient);
    full_points.push(ED25519_BASEPOINT_POINT);
    registered.sort_unstable_by_key(|(index, _)| *index);
    for run in registered.chunk_by(|a, b| a.0 == b.0) {
        full_scalars.push(run.iter().map(|(_, zk)| zk).sum());
        full_points.push(*registry.point(run[0].0));
    }
    let count = parts.count(r_points.len() + full_points.len());
    let share = |len: usize, part: usize| len * part / count..len * (part + 1) / count;
    (0..count)
        .into_par_iter()
        .map(|part| {
            let r = share(r_points.len(), part);
            let full = share(full_points.len(), part);
            EdwardsPoint::vartime_multiscalar_mul(
                r_scalars[r.clone()]
                    .iter()
                    .chain(&full_scalars[full.clone()]),
                r_points[r].iter().chain(&full_points[full]),
            )
        })
        .reduce(EdwardsPoint::identity, |a, b| a + b)
}

/// The reference: ed25519-zebra's single verifier.
pub(super) fn verify_single(item: &SigItem<'_>) -> bool {
    let Ok(key) = VerificationKey::try_from(*item.public_key) else {
        return false;
    };
    let signature = Signature::from_bytes(item.signature);
    key.verify(&signature, item.message).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_zebra::SigningKey;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    type Case = ([u8; 32], Vec<u8>, [u8; 64]);

    /// `count` signatures by 40 keys (the first 20 registered in the returned registry), with
    /// the items at `altered` changed (a bit of S, of the message or of R, in turn).
    fn signed_cases(count: usize, altered: &[usize]) -> (Vec<Case>, KeyRegistry) {
        let seed = std::env::var("TALLY_TEST_SEED")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| rand::rng().next_u64());
        eprintln!("seed: {seed} (re-run with TALLY_TEST_SEED={seed})");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let keys: Vec<SigningKey> = (0..40)
            .map(|_| {
                let mut bytes = [0u8; 32];
                rng.fill_bytes(&mut bytes);
                SigningKey::from(bytes)
            })
            .collect();
        let public: Vec<[u8; 32]> = keys
            .iter()
            .map(|key| VerificationKey::from(key).into())
            .collect();
        let mut cases: Vec<Case> = (0..count)
            .map(|i| {
                let key = rng.next_u64() as usize % keys.len();
                let message = (i as u64).to_le_bytes().to_vec();
                let signature = keys[key].sign(&message).to_bytes();
                (public[key], message, signature)
            })
            .collect();
        for (n, &at) in altered.iter().enumerate() {
            match n % 3 {
                0 => cases[at].2[40] ^= 0x01,
                1 => cases[at].1[0] ^= 0x80,
                _ => cases[at].2[3] ^= 0x20,
            }
        }
        let mut registry = KeyRegistry::new();
        registry.register(&public[..20]);
        (cases, registry)
    }

    use crate::sigverify::items_of as items;

    /// Every verdict equals the reference's, and exactly the altered items fail.
    fn assert_verdicts(items: &[SigItem<'_>], verdicts: &[bool], altered: &[usize]) {
        for (index, (item, verdict)) in items.iter().zip(verdicts).enumerate() {
            assert_eq!(*verdict, verify_single(item), "item {index}");
            assert_eq!(*verdict, !altered.contains(&index), "item {index}");
        }
    }

    /// A batch of two equations with bad items in both, one of them at each end.
    #[test]
    fn two_equations_with_bad_items_in_both_match_the_reference() {
        let count = CHUNK_ITEMS_MAX + 301;
        let altered = [0, 3, 1000, count / 2 + 7, count / 2 + 8, count - 1];
        let (cases, registry) = signed_cases(count, &altered);
        let items = items(&cases);
        let mut verdicts = vec![true; count];
        verify_batch(&registry, &items, &mut verdicts);
        assert_verdicts(&items, &verdicts, &altered);
    }

    /// The one-pass path for small batches, whatever the number of threads here: bad items
    /// in one part, in several, none.
    #[test]
    fn fused_pass_matches_the_reference_in_every_part() {
        for (count, parts, altered) in [
            (200, 2, vec![]),
            (200, 2, vec![150]),
            (200, 4, vec![0, 60, 120, 199]),
            (9, 3, vec![4]),
            (3, 2, vec![1]),
        ] {
            let (cases, registry) = signed_cases(count, &altered);
            let items = items(&cases);
            let mut verdicts = vec![!altered.is_empty(); count];
            verify_fused(&registry, &items, &mut verdicts, parts);
            assert_verdicts(&items, &verdicts, &altered);
        }
    }

    #[test]
    fn parts_fill_the_threads_and_keep_parts_wide() {
        // One equation on two threads: two parts even when small, up to four when wide.
        let one = Parts::for_equations(1, 2);
        assert_eq!(one.count(127), 2);
        assert_eq!(one.count(1665), 2);
        assert_eq!(one.count(5096), 4);
        assert_eq!(one.count(40), 1);
        // Eight equations on two threads: no split.
        let eight = Parts::for_equations(8, 2);
        assert_eq!(eight.count(9000), 1);
        // Two equations on two threads: split only when each part stays wide.
        let two = Parts::for_equations(2, 2);
        assert_eq!(two.count(900), 1);
        assert_eq!(two.count(9200), 2);
    }
}
