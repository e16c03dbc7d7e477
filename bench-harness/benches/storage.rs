//! Criterion bench of the append log: append + commit at transaction and block sizes, and
//! open + replay of a 64 MiB log.
//!
//! Run: `cargo bench -p tally-bench --bench storage`. After the criterion groups it prints
//! the side-by-side figures (raw pwrite + fdatasync of the same bytes against the log, with
//! entries prepared on a producer thread and on one thread, on the same disk, alternating in
//! rounds: `tally_bench::storage::measure_log_vs_raw`) and
//! the restart time of a log of about a million 192-byte transactions. Environment:
//! `TALLY_STORAGE_DIR` (where to write; default the system temp dir), `TALLY_STORAGE_SECONDS`
//! (seconds per side of a side-by-side run, default 3), `TALLY_STORAGE_TX_COUNT` (default 1000000).

use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tally_bench::storage::{measure_log_vs_raw, measure_replay, BLOCK_TX_COUNT, TX_RECORD_BYTES};
use tally_engine::log::{Log, LogConfig};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TALLY_STORAGE_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).expect("temp dir in TALLY_STORAGE_DIR"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn bench_append_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_append_commit");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for (entry_bytes, entries_per_commit) in [
        (TX_RECORD_BYTES, 1),
        (TX_RECORD_BYTES, 256),
        (BLOCK_TX_COUNT * TX_RECORD_BYTES, 1),
    ] {
        let dir = bench_dir();
        let mut log = Log::open(dir.path(), LogConfig::default()).expect("open log");
        let payload = vec![0x3Cu8; entry_bytes];
        group.throughput(Throughput::Bytes((entry_bytes * entries_per_commit) as u64));
        group.bench_function(
            BenchmarkId::new(
                format!("{entry_bytes}B"),
                format!("{entries_per_commit}_per_commit"),
            ),
            |b| {
                b.iter(|| {
                    for _ in 0..entries_per_commit {
                        log.append(&payload).expect("append");
                    }
                    log.commit().expect("commit")
                })
            },
        );
    }
    group.finish();
}

fn bench_open_replay(c: &mut Criterion) {
    let dir = bench_dir();
    let block = vec![0x42u8; BLOCK_TX_COUNT * TX_RECORD_BYTES];
    let entry_count = (60 << 20) / block.len();
    {
        let mut log = Log::open(dir.path(), LogConfig::default()).expect("open log");
        for _ in 0..entry_count {
            log.append(&block).expect("append");
        }
        log.commit().expect("commit");
    }
    let mut group = c.benchmark_group("log_restart");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((entry_count * block.len()) as u64));
    group.bench_function("open_verify_60MiB", |b| {
        b.iter(|| {
            Log::open(dir.path(), LogConfig::default())
                .expect("open")
                .next_sequence()
        })
    });
    let log = Log::open(dir.path(), LogConfig::default()).expect("open");
    group.bench_function("replay_60MiB", |b| {
        b.iter(|| {
            // Touch every 192-byte record as a node's replay would (first word of each).
            let mut sum = 0u64;
            log.replay(0, |_, payload| {
                for record in payload.chunks_exact(TX_RECORD_BYTES) {
                    sum = sum.wrapping_add(u64::from(record[0]));
                }
                Ok::<(), ()>(())
            })
            .expect("replay");
            sum
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append_commit, bench_open_replay);

fn print_figures() {
    let seconds: u64 = std::env::var("TALLY_STORAGE_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3);
    let tx_count: u64 = std::env::var("TALLY_STORAGE_TX_COUNT")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "\nstorage figures (about {seconds} s per side, raw and both logs alternating, same directory)"
    );
    // The last two are the runner's (`tally bench --parts storage`).
    for (entry_bytes, entries_per_commit) in [
        (TX_RECORD_BYTES, 1),
        (TX_RECORD_BYTES, 64),
        (TX_RECORD_BYTES, 4096),
        (4096, 16),
        (BLOCK_TX_COUNT * TX_RECORD_BYTES, 1),
    ] {
        let dir = bench_dir();
        let figures = measure_log_vs_raw(
            dir.path(),
            entry_bytes,
            entries_per_commit,
            Duration::from_secs(seconds),
        );
        println!("{figures}");
    }
    let dir = bench_dir();
    println!("{}", measure_replay(dir.path(), tx_count));
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not: skip the long runs there.
    if std::env::args().any(|arg| arg == "--bench") {
        print_figures();
    }
}
