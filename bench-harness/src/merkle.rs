//! Merkle figures: the blake3 crate hashing the leaves alone (the ceiling) against Tally's
//! CPU tree (with the kernel it detects, and with the portable kernel) and GPU tree, on the
//! same leaves in the same run.
//!
//! Every figure is leaves per second over all cores (rayon), best of [`REPETITIONS`] runs of
//! at least [`MEASURE_SECONDS_MIN`] each. The GPU figure is end to end from a host slice
//! (upload, kernels, 32-byte read-back); on a CPU-type adapter (llvmpipe) it is recorded but
//! says nothing about GPUs, and `gpu.cpu_type_adapter` says so.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use tally_kernels::gpu::GpuContext;
use tally_kernels::merkle::gpu::GpuMerkle;
use tally_kernels::merkle::{self, Hash, Kernel, LEAF_KEY};

/// Each figure runs the same work repeatedly for at least this long.
pub const MEASURE_SECONDS_MIN: f64 = 0.3;
/// Repetitions per figure; the best is reported (least disturbed by other load).
pub const REPETITIONS: usize = 3;
/// Largest leaf count `measure` accepts (the data is held in memory).
pub const LEAF_COUNT_MAX: usize = 1 << 22;
/// Seed of the leaf bytes (their values do not change the work).
pub const DATA_SEED: u64 = 0x7a11_4e4b;

/// Figures of one `measure` call.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MerkleFigures {
    pub leaf_count: usize,
    pub leaf_bytes: usize,
    pub threads: usize,
    /// `blake3::keyed_hash` of every leaf, rayon over the leaves, results kept in a vector.
    pub blake3_leaves_per_s: f64,
    /// The hashing kernel `merkle::root` picked on this CPU (`avx2` or `portable`).
    pub cpu_kernel: String,
    /// `tally_kernels::merkle::root` (leaves and all levels).
    pub cpu_tree_leaves_per_s: f64,
    /// Time of the CPU tree over time of the leaves alone: the target is at most 1.1.
    pub cpu_tree_time_over_blake3: f64,
    /// `merkle::root_with(Kernel::portable(), ..)`: the same tree hashed one input at a
    /// time by the blake3 crate (the path of CPUs without AVX2).
    pub cpu_tree_portable_leaves_per_s: f64,
    pub cpu_tree_portable_time_over_blake3: f64,
    /// Present when a GPU context was asked for and created.
    pub gpu: Option<GpuFigures>,
    /// Why there is no GPU figure, when one was asked for.
    pub gpu_unavailable: Option<String>,
}

/// The GPU tree's figure and the adapter it ran on.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GpuFigures {
    pub adapter: String,
    /// True for llvmpipe and other software adapters: the figure is a CPU figure.
    pub cpu_type_adapter: bool,
    /// `GpuMerkle::root`, end to end from host memory.
    pub tree_leaves_per_s: f64,
    pub tree_time_over_blake3: f64,
}

impl std::fmt::Display for MerkleFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} leaves x {} B, {} threads: blake3 leaves alone {:.2} M leaves/s; CPU tree ({}) {:.2} M leaves/s ({:.3}x the time); CPU tree (portable) {:.2} M leaves/s ({:.3}x the time)",
            self.leaf_count,
            self.leaf_bytes,
            self.threads,
            self.blake3_leaves_per_s / 1e6,
            self.cpu_kernel,
            self.cpu_tree_leaves_per_s / 1e6,
            self.cpu_tree_time_over_blake3,
            self.cpu_tree_portable_leaves_per_s / 1e6,
            self.cpu_tree_portable_time_over_blake3,
        )?;
        if let Some(gpu) = &self.gpu {
            let label = if gpu.cpu_type_adapter {
                " [CPU-type adapter: not a GPU figure]"
            } else {
                ""
            };
            write!(
                f,
                "; GPU tree on {}{label} {:.2} M leaves/s ({:.3}x the time)",
                gpu.adapter,
                gpu.tree_leaves_per_s / 1e6,
                gpu.tree_time_over_blake3
            )?;
        }
        if let Some(reason) = &self.gpu_unavailable {
            write!(f, "; no GPU figure: {reason}")?;
        }
        Ok(())
    }
}

/// Measures the three figures over `leaf_count` random leaves of `leaf_bytes` bytes.
///
/// Panics if `leaf_count` is 0 or above [`LEAF_COUNT_MAX`], if `leaf_bytes` is 0, or if the
/// GPU root differs from the CPU root (a correctness failure, never a figure).
pub fn measure(leaf_count: usize, leaf_bytes: usize, gpu: bool) -> MerkleFigures {
    assert!(
        (1..=LEAF_COUNT_MAX).contains(&leaf_count),
        "leaf_count out of range"
    );
    assert!(leaf_bytes > 0, "leaf_bytes must be positive");
    let mut data = vec![0u8; leaf_count * leaf_bytes];
    ChaCha20Rng::seed_from_u64(DATA_SEED).fill(&mut data[..]);

    let mut hashes: Vec<Hash> = Vec::with_capacity(leaf_count);
    let blake3_seconds = best_seconds(|| {
        data.par_chunks_exact(leaf_bytes)
            .map(|leaf| *blake3::keyed_hash(&LEAF_KEY, leaf).as_bytes())
            .collect_into_vec(&mut hashes);
        std::hint::black_box(&hashes);
    });
    let mut cpu_root = [0u8; 32];
    let cpu_seconds = best_seconds(|| {
        cpu_root = std::hint::black_box(merkle::root(&data, leaf_bytes));
    });
    let mut portable_root = [0u8; 32];
    let portable_seconds = best_seconds(|| {
        portable_root =
            std::hint::black_box(merkle::root_with(Kernel::portable(), &data, leaf_bytes));
    });
    assert_eq!(
        portable_root, cpu_root,
        "portable-kernel root differs from the detected kernel's root: a correctness bug"
    );

    let (gpu_figures, gpu_unavailable) = if gpu {
        match measure_gpu(&data, leaf_bytes, &cpu_root) {
            Ok((adapter, cpu_type_adapter, seconds)) => (
                Some(GpuFigures {
                    adapter,
                    cpu_type_adapter,
                    tree_leaves_per_s: leaf_count as f64 / seconds,
                    tree_time_over_blake3: seconds / blake3_seconds,
                }),
                None,
            ),
            Err(reason) => (None, Some(reason)),
        }
    } else {
        (None, None)
    };
    MerkleFigures {
        leaf_count,
        leaf_bytes,
        threads: rayon::current_num_threads(),
        blake3_leaves_per_s: leaf_count as f64 / blake3_seconds,
        cpu_kernel: Kernel::detect().name().to_string(),
        cpu_tree_leaves_per_s: leaf_count as f64 / cpu_seconds,
        cpu_tree_time_over_blake3: cpu_seconds / blake3_seconds,
        cpu_tree_portable_leaves_per_s: leaf_count as f64 / portable_seconds,
        cpu_tree_portable_time_over_blake3: portable_seconds / blake3_seconds,
        gpu: gpu_figures,
        gpu_unavailable,
    }
}

/// (adapter name, is CPU-type, best seconds per root) or why there is no GPU figure.
fn measure_gpu(
    data: &[u8],
    leaf_bytes: usize,
    cpu_root: &Hash,
) -> Result<(String, bool, f64), String> {
    let context = GpuContext::shared().map_err(|error| error.to_string())?;
    let mut gpu = GpuMerkle::new(context.clone()).map_err(|error| error.to_string())?;
    let root = gpu
        .root(data, leaf_bytes)
        .map_err(|error| error.to_string())?;
    assert_eq!(
        &root, cpu_root,
        "GPU root differs from the CPU root: a correctness bug"
    );
    let mut failure = None;
    let seconds = best_seconds(|| {
        if failure.is_none() {
            if let Err(error) = gpu.root(data, leaf_bytes) {
                failure = Some(error.to_string());
            }
        }
    });
    match failure {
        Some(reason) => Err(reason),
        None => Ok((context.info.name.clone(), context.is_cpu_adapter(), seconds)),
    }
}

/// The GPU block (signatures and tree over one upload of the records) beside the separate
/// GPU calls (records for the tree, packed items for the signatures) on the same records.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GpuBlockFigures {
    pub adapter: String,
    /// True for llvmpipe and other software adapters: the figures are CPU figures.
    pub cpu_type_adapter: bool,
    pub records: usize,
    /// `GpuBlock::verify_and_root`, end to end from host memory.
    pub block_records_per_s: f64,
    /// `GpuBlock::verify_and_root_separately` on the same records.
    pub separate_records_per_s: f64,
    pub block_upload_bytes_per_record: f64,
    pub separate_upload_bytes_per_record: f64,
}

/// Signing keys of the block figure's records (registered on the GPU).
pub const BLOCK_KEY_COUNT: usize = 64;

/// Measures [`GpuBlockFigures`] over `record_count` signed 192-byte transfer records.
///
/// Errors: why there is no figure (no adapter, kernels refused, a GPU failure). Panics if a
/// verdict or root differs from the CPU's (a correctness failure, never a figure).
pub fn measure_gpu_block(record_count: usize) -> Result<GpuBlockFigures, String> {
    use tally_engine::tx::{signing_message, TxFields, TxRecord, TX_BYTES};
    use tally_kernels::gpu::block::{GpuBlock, RecordLayout};
    use tally_kernels::sigverify::{verify_single, SigItem};
    const NETWORK_ID: u64 = 7;
    let signature = std::mem::offset_of!(TxRecord, signature);
    let layout = RecordLayout {
        record_bytes: TX_BYTES,
        public_key: std::mem::offset_of!(TxRecord, public_key),
        r: signature,
        s: signature + 32,
    };
    let keys: Vec<ed25519_zebra::SigningKey> = (0..BLOCK_KEY_COUNT)
        .map(|index| ed25519_zebra::SigningKey::from([index as u8 + 1; 32]))
        .collect();
    let records: Vec<TxRecord> = (0..record_count)
        .into_par_iter()
        .map(|index| {
            let fields =
                TxFields::transfer(index as u128 + 1, 1, 2, index as u64 + 1, 1).valid_until(1_000);
            TxRecord::signed(&fields, NETWORK_ID, &keys[index % keys.len()])
        })
        .collect();
    let messages: Vec<_> = records
        .iter()
        .map(|record| signing_message(NETWORK_ID, record))
        .collect();
    let items: Vec<SigItem<'_>> = records
        .iter()
        .zip(&messages)
        .map(|(record, message)| SigItem {
            public_key: &record.public_key,
            message,
            signature: &record.signature,
        })
        .collect();
    let bytes: Vec<u8> = records
        .iter()
        .flat_map(|record| record.as_bytes().iter().copied())
        .collect();
    let context = GpuContext::shared().map_err(|error| error.to_string())?;
    let mut block = GpuBlock::new(context.clone()).map_err(|error| error.to_string())?;
    let public_keys: Vec<[u8; 32]> = keys
        .iter()
        .map(|key| ed25519_zebra::VerificationKey::from(key).into())
        .collect();
    block
        .register_keys(&public_keys)
        .map_err(|error| error.to_string())?;
    let cpu_root = merkle::root(&bytes, TX_BYTES);
    let expected: Vec<bool> = items.par_iter().map(verify_single).collect();
    let mut verdicts = vec![false; items.len()];
    let mut failure = None;
    let mut upload = [0u64; 2];
    // Way 0 the shared upload, way 1 the separate calls, in interleaved rounds.
    let seconds = best_seconds_each(2, |which| {
        if failure.is_some() {
            return;
        }
        let share = which == 0;
        let run = if share {
            block.verify_and_root(&bytes, &layout, &items, &mut verdicts)
        } else {
            block.verify_and_root_separately(&bytes, &layout, &items, &mut verdicts)
        };
        match run {
            Ok(run) => {
                if let Some(error) = run.fallback {
                    failure = Some(error.to_string());
                    return;
                }
                assert_eq!(
                    run.root, cpu_root,
                    "GPU block root differs from the CPU root"
                );
                assert!(
                    verdicts == expected,
                    "GPU block verdicts differ from the reference"
                );
                upload[which] = run.upload.total();
            }
            Err(error) => failure = Some(error.to_string()),
        }
    });
    if let Some(reason) = failure {
        return Err(reason);
    }
    Ok(GpuBlockFigures {
        adapter: context.info.name.clone(),
        cpu_type_adapter: context.is_cpu_adapter(),
        records: record_count,
        block_records_per_s: record_count as f64 / seconds[0],
        separate_records_per_s: record_count as f64 / seconds[1],
        block_upload_bytes_per_record: upload[0] as f64 / record_count as f64,
        separate_upload_bytes_per_record: upload[1] as f64 / record_count as f64,
    })
}

/// Best over [`REPETITIONS`] of the mean seconds per call, each repetition calling `work`
/// until [`MEASURE_SECONDS_MIN`] has passed.
fn best_seconds(mut work: impl FnMut()) -> f64 {
    best_seconds_each(1, |_| work())[0]
}

/// [`best_seconds`] of `count` competing ways (`work(i)` runs way `i`), measured in
/// interleaved rounds (way 0, way 1, ... in each repetition), so that a change in the
/// machine's load falls on every way alike.
fn best_seconds_each(count: usize, mut work: impl FnMut(usize)) -> Vec<f64> {
    for way in 0..count {
        work(way); // Warm-up: page faults, buffer growth, pipeline caches.
    }
    let mut best = vec![f64::INFINITY; count];
    for _ in 0..REPETITIONS {
        for (way, best) in best.iter_mut().enumerate() {
            let start = Instant::now();
            let mut calls = 0u32;
            while calls == 0 || start.elapsed().as_secs_f64() < MEASURE_SECONDS_MIN {
                work(way);
                calls += 1;
            }
            *best = best.min(start.elapsed().as_secs_f64() / f64::from(calls));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures are consistent (not timed: speed is never asserted in tests).
    #[test]
    fn figures_are_finite_and_consistent() {
        let figures = measure(3000, 192, false);
        assert!(figures.blake3_leaves_per_s.is_finite() && figures.blake3_leaves_per_s > 0.0);
        assert!(figures.cpu_tree_leaves_per_s.is_finite() && figures.cpu_tree_leaves_per_s > 0.0);
        let ratio = figures.blake3_leaves_per_s / figures.cpu_tree_leaves_per_s;
        assert!((ratio - figures.cpu_tree_time_over_blake3).abs() < 1e-9);
        let portable = figures.blake3_leaves_per_s / figures.cpu_tree_portable_leaves_per_s;
        assert!((portable - figures.cpu_tree_portable_time_over_blake3).abs() < 1e-9);
        assert_eq!(figures.cpu_kernel, Kernel::detect().name());
        assert!(figures.gpu.is_none() && figures.gpu_unavailable.is_none());
        eprintln!("{figures}");
    }

    /// The GPU block figure on whatever adapter exists; about two minutes on llvmpipe
    /// (pipelines, then 64 signatures per call), so run on request:
    /// `cargo test -p tally-bench --lib merkle::tests::gpu_block -- --ignored`.
    #[test]
    #[ignore]
    fn gpu_block_figures_are_consistent() {
        match measure_gpu_block(64) {
            Ok(figures) => {
                assert_eq!(figures.block_upload_bytes_per_record, 192.0 + 36.0);
                assert_eq!(figures.separate_upload_bytes_per_record, 192.0 + 132.0);
                assert!(
                    figures.block_records_per_s.is_finite() && figures.block_records_per_s > 0.0
                );
                assert!(
                    figures.separate_records_per_s.is_finite()
                        && figures.separate_records_per_s > 0.0
                );
                eprintln!("{figures:?}");
            }
            Err(reason) if tally_kernels::gpu::gpu_required() => {
                panic!("TALLY_REQUIRE_GPU=1 but no GPU block figure: {reason}")
            }
            Err(reason) => eprintln!("notice: no GPU block figure: {reason}"),
        }
    }
}
