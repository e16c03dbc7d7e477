//! Criterion bench of the executor: four blocks of 4 096 records per iteration (begin block,
//! execute each record, end block with queue retries and the liquidity-saving mechanism) on
//! a fresh copy of the ledger, for plain transfers, taxed payments and a gridlock-heavy
//! interbank mix. Signatures are excluded (the signature stage checks them).
//!
//! Run: `cargo bench -p tally-bench --bench executor`. The runner (`tally bench --parts
//! executor`) prints the same workloads beside the signature ceiling.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tally_bench::executor::{execute_blocks, workload_input, ExecutorWorkload, BLOCK_TX};
use tally_engine::ledger::Ledger;

fn bench_executor(c: &mut Criterion) {
    let mut group = c.benchmark_group("executor");
    group.sample_size(20);
    let count = 4 * BLOCK_TX;
    for workload in ExecutorWorkload::ALL {
        let (genesis, records) = workload_input(workload, count);
        let fresh = Ledger::from_genesis(&genesis);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(BenchmarkId::from_parameter(workload.name()), |b| {
            b.iter_batched(
                || fresh.clone(),
                |mut ledger| {
                    let accepted = execute_blocks(&mut ledger, &records, 1);
                    assert!(accepted > 0, "the workload settles something");
                    ledger
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_executor);
criterion_main!(benches);
