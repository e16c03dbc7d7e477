//! Criterion bench of the mempool (crossbeam `ArrayQueue` of pending transactions): one
//! thread pushing and draining in batches, and several producers feeding one consumer that
//! drains in signature-batch sizes, as ingress and the signature stage do.
//!
//! Run: `cargo bench -p tally-bench --bench mempool`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::channel::unbounded;
use std::time::Instant;
use tally_engine::mempool::{Ack, Mempool, PendingTx};
use tally_engine::tx::{TxFields, TxRecord};

fn record(id: u128) -> TxRecord {
    TxRecord::new(&TxFields::transfer(id, 1_000, 1_001, 1, 702).valid_until(1_000))
}

fn bench_single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("mempool_push_drain");
    let (reply, _acks) = unbounded::<Ack>();
    for batch in [256usize, 4_096] {
        let mempool = Mempool::new(batch);
        let mut out = Vec::with_capacity(batch);
        let template = record(1);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                let now = Instant::now();
                for _ in 0..batch {
                    let pending = PendingTx {
                        record: template,
                        reply: reply.clone(),
                        received_at: now,
                        lane: tally_engine::mempool::COMMON_LANE,
                    };
                    assert!(mempool.push(pending).is_ok());
                }
                out.clear();
                assert_eq!(mempool.drain_into(&mut out, batch), batch);
            })
        });
    }
    group.finish();
}

fn bench_producers_one_consumer(c: &mut Criterion) {
    let mut group = c.benchmark_group("mempool_producers_to_consumer");
    group.sample_size(20);
    let per_producer = 50_000usize;
    for producers in [1usize, 2, 4] {
        let total = producers * per_producer;
        group.throughput(Throughput::Elements(total as u64));
        group.bench_function(BenchmarkId::new("producers", producers), |b| {
            b.iter(|| {
                let mempool = Mempool::new(65_536);
                let (reply, _acks) = unbounded::<Ack>();
                std::thread::scope(|scope| {
                    for producer in 0..producers {
                        let (mempool, reply) = (&mempool, reply.clone());
                        scope.spawn(move || {
                            let template = record(producer as u128 + 1);
                            let now = Instant::now();
                            for _ in 0..per_producer {
                                let mut pending = PendingTx {
                                    record: template,
                                    reply: reply.clone(),
                                    received_at: now,
                                    lane: tally_engine::mempool::COMMON_LANE,
                                };
                                // Full: spin until the consumer makes room (ingress answers
                                // Busy instead; here every item must arrive).
                                while let Err(back) = mempool.push(pending) {
                                    pending = back;
                                    std::hint::spin_loop();
                                }
                            }
                        });
                    }
                    let mut out = Vec::with_capacity(4_096);
                    let mut drained = 0;
                    while drained < total {
                        out.clear();
                        drained += mempool.drain_into(&mut out, 4_096);
                    }
                });
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_single_thread, bench_producers_one_consumer);
criterion_main!(benches);
