//! Signature verification figures: ed25519-zebra single and batch against Tally's CPU and GPU
//! backends, on the same signatures in the same run.
//!
//! The corpus is realistic for a ledger: [`KEY_COUNT`] registered account keys, each item
//! signed by a key drawn at random, 128-byte messages. Every figure is verified signatures
//! per second over all cores (rayon), from the fastest of many timed runs of the batch.
//!
//! The shared 2-core machines these figures come from are noisy: a run that another process
//! interrupts is slow, and a best-of figure from more runs is luckier. So ed25519-zebra's
//! batch verifier (at each chunk size of [`ZEBRA_CHUNKS`]) and Tally's CPU backend are timed
//! in interleaved rounds, and Tally's backend gets as many timed runs as all zebra chunk
//! sizes together: the same load falls on both sides, and the ceiling (zebra's best chunk
//! size, its best run) draws from as many runs as the figure it is compared with.

use ed25519_zebra::{batch, Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use std::time::{Duration, Instant};
use tally_kernels::sigverify::{Backend, SigItem, Verifier};

/// Registered keys in the corpus.
pub const KEY_COUNT: usize = 1000;
/// Bytes per signed message (about one transaction record).
pub const MESSAGE_BYTES: usize = 128;
/// Largest batch `measure` accepts.
pub const BATCH_ITEMS_MAX: usize = 1 << 20;
/// Each figure runs its batch repeatedly for at least this long (the interleaved zebra batch
/// and Tally CPU rounds for this long per zebra chunk size).
pub const MEASURE_SECONDS_MIN: f64 = 0.4;
/// Chunk sizes tried for ed25519-zebra's batch verifier; the best is reported. 32 is tried
/// only for batches of at most 256 items, where it lets zebra use more cores.
pub const ZEBRA_CHUNKS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// The chunk sizes of [`ZEBRA_CHUNKS`] tried for a batch of `batch_items` (the smallest one
/// when the batch is smaller still).
pub fn zebra_chunks(batch_items: usize) -> Vec<usize> {
    let chunks: Vec<usize> = ZEBRA_CHUNKS
        .iter()
        .copied()
        .filter(|&chunk| chunk <= batch_items && (chunk >= 64 || batch_items <= 256))
        .collect();
    if chunks.is_empty() {
        vec![ZEBRA_CHUNKS[0]]
    } else {
        chunks
    }
}

/// A signed corpus: owned keys, messages and signatures.
pub struct Corpus {
    pub keys: Vec<[u8; 32]>,
    pub public_keys: Vec<[u8; 32]>,
    pub messages: Vec<Vec<u8>>,
    pub signatures: Vec<[u8; 64]>,
}

impl Corpus {
    /// `items` valid signatures by `key_count` keys, reproducible from `seed`.
    pub fn new(items: usize, key_count: usize, seed: u64) -> Corpus {
        assert!(items <= BATCH_ITEMS_MAX && key_count > 0);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let signing_keys: Vec<SigningKey> = (0..key_count)
            .map(|_| {
                let mut seed_bytes = [0u8; 32];
                rng.fill_bytes(&mut seed_bytes);
                SigningKey::from(seed_bytes)
            })
            .collect();
        let keys: Vec<[u8; 32]> = signing_keys
            .iter()
            .map(|key| VerificationKey::from(key).into())
            .collect();
        let plan: Vec<(usize, Vec<u8>)> = (0..items)
            .map(|_| {
                let key = rng.random_range(0..key_count);
                let mut message = vec![0u8; MESSAGE_BYTES];
                rng.fill_bytes(&mut message);
                (key, message)
            })
            .collect();
        let signatures: Vec<[u8; 64]> = plan
            .par_iter()
            .map(|(key, message)| signing_keys[*key].sign(message).to_bytes())
            .collect();
        Corpus {
            public_keys: plan.iter().map(|(key, _)| keys[*key]).collect(),
            messages: plan.into_iter().map(|(_, message)| message).collect(),
            keys,
            signatures,
        }
    }

    /// The first `count` items as borrowed `SigItem`s.
    pub fn items(&self, count: usize) -> Vec<SigItem<'_>> {
        (0..count)
            .map(|i| SigItem {
                public_key: &self.public_keys[i],
                message: &self.messages[i],
                signature: &self.signatures[i],
            })
            .collect()
    }
}

/// Figures for one batch size, in signatures per second; ratios are to `zebra_batch_per_s`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SigFigures {
    pub batch_items: usize,
    pub zebra_single_per_s: f64,
    pub zebra_batch_per_s: f64,
    /// The zebra chunk size that gave `zebra_batch_per_s`.
    pub zebra_batch_chunk_items: usize,
    pub cpu_per_s: f64,
    pub gpu_per_s: Option<f64>,
    pub zebra_single_ratio: f64,
    pub cpu_ratio: f64,
    pub gpu_ratio: Option<f64>,
    /// The GPU adapter's name, or why the GPU figure is missing.
    pub gpu_note: String,
}

/// Runs `work` (which verifies `items` signatures and returns how many passed) repeatedly
/// and returns the best rate in signatures per second. Panics if any signature failed: a
/// figure for a verifier that rejects valid signatures is meaningless.
fn rate(items: usize, mut work: impl FnMut() -> usize) -> f64 {
    let mut best = Duration::MAX;
    let started = Instant::now();
    let mut runs = 0;
    while runs < 2 || started.elapsed().as_secs_f64() < MEASURE_SECONDS_MIN {
        best = best.min(timed(items, &mut work));
        runs += 1;
    }
    items as f64 / best.as_secs_f64()
}

/// One timed run of `work`; panics if a signature failed (see [`rate`]).
fn timed(items: usize, work: &mut impl FnMut() -> usize) -> Duration {
    let started = Instant::now();
    let passed = work();
    let elapsed = started.elapsed();
    assert_eq!(passed, items, "a valid signature failed verification");
    elapsed
}

/// ed25519-zebra's batch verifier at each of `chunks` against `tally`, in interleaved rounds:
/// per round one run per chunk size, then as many runs of `tally`. Returns the best rate of
/// each chunk size (in the order of `chunks`) and the best rate of `tally`, in signatures per
/// second.
fn interleaved_rates(
    items: &[SigItem<'_>],
    chunks: &[usize],
    mut tally: impl FnMut() -> usize,
) -> (Vec<f64>, f64) {
    let mut zebra_best = vec![Duration::MAX; chunks.len()];
    let mut tally_best = Duration::MAX;
    let started = Instant::now();
    let budget = MEASURE_SECONDS_MIN * chunks.len().max(1) as f64 * 2.0;
    let mut rounds = 0;
    while rounds < 2 || started.elapsed().as_secs_f64() < budget {
        for (chunk, best) in chunks.iter().zip(zebra_best.iter_mut()) {
            *best = (*best).min(timed(items.len(), &mut || zebra_batch(items, *chunk)));
        }
        for _ in 0..chunks.len().max(1) {
            tally_best = tally_best.min(timed(items.len(), &mut tally));
        }
        rounds += 1;
    }
    let per_s = |best: Duration| items.len() as f64 / best.as_secs_f64();
    (
        zebra_best.into_iter().map(per_s).collect(),
        per_s(tally_best),
    )
}

fn zebra_single(items: &[SigItem<'_>]) -> usize {
    items
        .par_iter()
        .filter(|item| {
            VerificationKey::try_from(*item.public_key)
                .map(|key| {
                    key.verify(&Signature::from_bytes(item.signature), item.message)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .count()
}

fn zebra_batch(items: &[SigItem<'_>], chunk_items: usize) -> usize {
    items
        .par_chunks(chunk_items)
        .map(|chunk| {
            let mut verifier = batch::Verifier::new();
            for item in chunk {
                verifier.queue((
                    VerificationKeyBytes::from(*item.public_key),
                    Signature::from_bytes(item.signature),
                    item.message,
                ));
            }
            if verifier.verify(rand::rng()).is_ok() {
                chunk.len()
            } else {
                0
            }
        })
        .sum()
}

/// Measures every figure for each batch size (64 to 65536 is the intended range; at most
/// [`BATCH_ITEMS_MAX`]). With `gpu`, the GPU backend is measured on whatever adapter
/// `Backend::Gpu` finds (llvmpipe included, where it is slow but exact).
pub fn measure(batch_sizes: &[usize], gpu: bool) -> Vec<SigFigures> {
    let largest = batch_sizes.iter().copied().max().unwrap_or(0);
    let corpus = Corpus::new(largest, KEY_COUNT, 0x5167_7665);
    let mut cpu = Verifier::new(Backend::Cpu).expect("the CPU backend always builds");
    cpu.register_keys(&corpus.keys);
    let (gpu_verifier, mut gpu_note) = if gpu {
        match Verifier::new(Backend::Gpu) {
            Ok(mut verifier) => {
                verifier.register_keys(&corpus.keys);
                let mut note = verifier.gpu_adapter_name().unwrap_or_default();
                if let Some(kernels) = verifier.gpu_kernels() {
                    if kernels.context().is_cpu_adapter() {
                        note.push_str(": a CPU-type adapter, its speed means nothing for a GPU");
                    }
                }
                (Some(verifier), note)
            }
            Err(error) => (None, error.to_string()),
        }
    } else {
        (None, "not measured".to_string())
    };
    let mut figures = Vec::new();
    for &batch_items in batch_sizes {
        let items = corpus.items(batch_items);
        let mut verdicts = vec![false; batch_items];
        let count_true = |verdicts: &[bool]| verdicts.iter().filter(|v| **v).count();
        let zebra_single_per_s = rate(batch_items, || zebra_single(&items));
        let chunks = zebra_chunks(batch_items);
        let (zebra_rates, cpu_per_s) = interleaved_rates(&items, &chunks, || {
            cpu.verify_batch(&items, &mut verdicts);
            count_true(&verdicts)
        });
        let (zebra_batch_per_s, zebra_batch_chunk_items) = zebra_rates
            .into_iter()
            .zip(chunks)
            .fold(
                (0.0, 0),
                |best, next| if next.0 > best.0 { next } else { best },
            );
        let gpu_per_s = gpu_verifier.as_ref().map(|verifier| {
            rate(batch_items, || {
                verifier.verify_batch(&items, &mut verdicts);
                count_true(&verdicts)
            })
        });
        if gpu_per_s.is_some() && gpu_note.is_empty() {
            gpu_note = "gpu".to_string();
        }
        figures.push(SigFigures {
            batch_items,
            zebra_single_per_s,
            zebra_batch_per_s,
            zebra_batch_chunk_items,
            cpu_per_s,
            gpu_per_s,
            zebra_single_ratio: zebra_single_per_s / zebra_batch_per_s,
            cpu_ratio: cpu_per_s / zebra_batch_per_s,
            gpu_ratio: gpu_per_s.map(|rate| rate / zebra_batch_per_s),
            gpu_note: gpu_note.clone(),
        });
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zebra_chunks_fit_the_batch() {
        assert_eq!(zebra_chunks(10), vec![32]);
        assert_eq!(zebra_chunks(64), vec![32, 64]);
        assert_eq!(zebra_chunks(256), vec![32, 64, 128, 256]);
        assert_eq!(zebra_chunks(1024), vec![64, 128, 256, 512, 1024]);
        assert_eq!(zebra_chunks(65536), vec![64, 128, 256, 512, 1024]);
    }
}
