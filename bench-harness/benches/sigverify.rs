//! Criterion bench: ed25519-zebra batch vs Tally's CPU backend (and the GPU backend when
//! `TALLY_BENCH_GPU=1`), 1000 registered keys, batches of 256 and 4096.
//!
//! Run: `cargo bench -p tally-bench --bench sigverify`. The side-by-side table for batch
//! sizes 64 to 65536 comes from the `figures` pseudo-bench:
//! `cargo bench -p tally-bench --bench sigverify -- figures`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tally_bench::sigverify::{measure, Corpus, KEY_COUNT};
use tally_kernels::sigverify::{Backend, Verifier};

fn bench_sigverify(c: &mut Criterion) {
    let corpus = Corpus::new(4096, KEY_COUNT, 7);
    let mut cpu = Verifier::new(Backend::Cpu).expect("the CPU backend always builds");
    cpu.register_keys(&corpus.keys);
    let gpu = if std::env::var("TALLY_BENCH_GPU").as_deref() == Ok("1") {
        Verifier::new(Backend::Gpu).ok().map(|mut verifier| {
            verifier.register_keys(&corpus.keys);
            verifier
        })
    } else {
        None
    };
    let mut group = c.benchmark_group("sigverify");
    group.sample_size(10);
    for batch_items in [256usize, 4096] {
        let items = corpus.items(batch_items);
        let mut verdicts = vec![false; batch_items];
        group.throughput(Throughput::Elements(batch_items as u64));
        group.bench_with_input(
            BenchmarkId::new("tally_cpu", batch_items),
            &items,
            |b, items| b.iter(|| cpu.verify_batch(items, &mut verdicts)),
        );
        if let Some(gpu) = &gpu {
            group.bench_with_input(
                BenchmarkId::new("tally_gpu", batch_items),
                &items,
                |b, items| b.iter(|| gpu.verify_batch(items, &mut verdicts)),
            );
        }
        group.bench_with_input(
            BenchmarkId::new("zebra_batch256", batch_items),
            &items,
            |b, items| {
                b.iter(|| {
                    use rayon::prelude::*;
                    items.par_chunks(256).for_each(|chunk| {
                        let mut verifier = ed25519_zebra::batch::Verifier::new();
                        for item in chunk {
                            verifier.queue((
                                ed25519_zebra::VerificationKeyBytes::from(*item.public_key),
                                ed25519_zebra::Signature::from_bytes(item.signature),
                                item.message,
                            ));
                        }
                        assert!(verifier.verify(rand::rng()).is_ok());
                    })
                })
            },
        );
    }
    group.finish();
}

/// Prints the side-by-side table (not a criterion measurement): only when asked with the
/// `figures` filter, because it takes about a minute.
fn print_figures(_c: &mut Criterion) {
    if !std::env::args().any(|arg| arg == "figures") {
        return;
    }
    // TALLY_BENCH_SIZES=64,256 picks other batch sizes (a software GPU adapter is slow).
    let sizes: Vec<usize> = match std::env::var("TALLY_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|size| {
                size.trim().parse().unwrap_or_else(|_| {
                    panic!("TALLY_BENCH_SIZES must be comma-separated batch sizes, got {list:?}")
                })
            })
            .collect(),
        Err(_) => vec![64, 256, 1024, 4096, 16384, 65536],
    };
    let gpu = std::env::var("TALLY_BENCH_GPU").as_deref() == Ok("1");
    println!(
        "batch  zebra_single/s  zebra_batch/s(chunk)  tally_cpu/s (ratio)  tally_gpu/s (ratio)"
    );
    for f in measure(&sizes, gpu) {
        println!(
            "{:>6} {:>14.0} {:>14.0} ({:>4}) {:>12.0} ({:.2}x) {}",
            f.batch_items,
            f.zebra_single_per_s,
            f.zebra_batch_per_s,
            f.zebra_batch_chunk_items,
            f.cpu_per_s,
            f.cpu_ratio,
            match (f.gpu_per_s, f.gpu_ratio) {
                (Some(rate), Some(ratio)) => format!("{rate:>12.0} ({ratio:.2}x) [{}]", f.gpu_note),
                _ => format!("- [{}]", f.gpu_note),
            }
        );
    }
}

criterion_group!(benches, bench_sigverify, print_figures);
criterion_main!(benches);
