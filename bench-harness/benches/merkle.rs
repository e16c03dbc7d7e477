//! Merkle benches: blake3 leaves alone, the CPU tree (detected kernel, and the portable
//! kernel where they differ) and the GPU tree (when an adapter exists) over 2^16 leaves of 192 bytes (criterion), then `tally_bench::merkle::measure`
//! figures for 2^16 and 2^20 leaves printed as JSON lines.
//!
//! `cargo bench -p tally-bench --bench merkle`; `TALLY_MERKLE_FIGURES_ONLY=1` skips criterion.

use criterion::{BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use tally_kernels::gpu::GpuContext;
use tally_kernels::merkle::gpu::GpuMerkle;
use tally_kernels::merkle::{self, Kernel, LEAF_KEY};

const LEAF_BYTES: usize = 192;
const LEAF_COUNT: usize = 1 << 16;

fn benches(criterion: &mut Criterion) {
    let data: Vec<u8> = (0..LEAF_COUNT * LEAF_BYTES)
        .map(|index| (index % 251) as u8)
        .collect();
    let mut group = criterion.benchmark_group("merkle");
    group.throughput(Throughput::Elements(LEAF_COUNT as u64));
    group.sample_size(20);
    let mut hashes = Vec::with_capacity(LEAF_COUNT);
    group.bench_function(
        BenchmarkId::new("blake3_leaves_alone", LEAF_COUNT),
        |bench| {
            bench.iter(|| {
                data.par_chunks_exact(LEAF_BYTES)
                    .map(|leaf| *blake3::keyed_hash(&LEAF_KEY, leaf).as_bytes())
                    .collect_into_vec(&mut hashes);
            })
        },
    );
    let kernel = Kernel::detect().name();
    group.bench_function(
        BenchmarkId::new(format!("cpu_tree_{kernel}"), LEAF_COUNT),
        |bench| bench.iter(|| merkle::root(&data, LEAF_BYTES)),
    );
    if Kernel::detect() != Kernel::portable() {
        group.bench_function(BenchmarkId::new("cpu_tree_portable", LEAF_COUNT), |bench| {
            bench.iter(|| merkle::root_with(Kernel::portable(), &data, LEAF_BYTES))
        });
    }
    match GpuContext::shared().and_then(GpuMerkle::new) {
        Ok(mut gpu) => {
            let name = if gpu.context().is_cpu_adapter() {
                "gpu_tree_on_cpu_type_adapter"
            } else {
                "gpu_tree"
            };
            group.bench_function(BenchmarkId::new(name, LEAF_COUNT), |bench| {
                bench.iter(|| gpu.root(&data, LEAF_BYTES).expect("GPU root"))
            });
        }
        Err(error) => eprintln!("no GPU bench: {error}"),
    }
    group.finish();
}

fn main() {
    for leaf_count in [1 << 16, 1 << 20] {
        let figures = tally_bench::merkle::measure(leaf_count, LEAF_BYTES, true);
        eprintln!("{figures}");
        println!(
            "{}",
            serde_json::to_string(&figures).expect("figures serialise")
        );
    }
    if std::env::var("TALLY_MERKLE_FIGURES_ONLY").is_ok_and(|value| value == "1") {
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
