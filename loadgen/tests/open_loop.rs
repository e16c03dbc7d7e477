//! Open-loop latency is measured from the intended send time: a node that stalls shows up
//! in the recorded latencies (no coordinated omission).

use crossbeam::channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tally_engine::node::{Node, NodeConfig, NodeHandle};
use tally_loadgen::{
    presign, run, Pacing, Population, PopulationSpec, RunConfig, Target, TransferMix,
};
use tally_protocol::submit::{Ack, SubmitError};
use tally_protocol::tx::TxRecord;

/// A real node whose ingress stops answering for `stall` once `stall_at` has passed since
/// the first submission, as a node paused by the operating system or a long GC would.
struct StallingNode {
    handle: NodeHandle,
    first_submit: std::sync::OnceLock<Instant>,
    stall_at: Duration,
    stall: Duration,
    stalled: AtomicBool,
}

impl Target for StallingNode {
    fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        let first = *self.first_submit.get_or_init(Instant::now);
        if first.elapsed() >= self.stall_at && !self.stalled.swap(true, Ordering::SeqCst) {
            std::thread::sleep(self.stall);
        }
        self.handle.submit(records, reply)
    }

    fn fatal_error(&self) -> Option<String> {
        self.handle.fatal_error()
    }

    fn describe(&self) -> String {
        "in-process node with one stall".into()
    }
}

#[test]
fn a_stalled_node_shows_in_open_loop_latencies() {
    let population = Population::generate(&PopulationSpec {
        banks: 4,
        merchants: 20,
        consumers: 40,
        ..PopulationSpec::default()
    });
    let rate = 2_000.0;
    let count = 3_000; // 1.5 s at the rate
    let txs = presign(
        &population,
        &TransferMix {
            invalid_pct: 0,
            ..TransferMix::default()
        },
        0,
        count,
    );
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&population.genesis, NodeConfig::new(dir.path().into())).unwrap();
    let stall = Duration::from_millis(400);
    let target = StallingNode {
        handle: node.handle(),
        first_submit: std::sync::OnceLock::new(),
        stall_at: Duration::from_millis(500),
        stall,
        stalled: AtomicBool::new(false),
    };
    let result = run(
        &target,
        &txs,
        &RunConfig {
            pacing: Pacing::Fixed { rate_per_s: rate },
            duration: Duration::from_secs(30),
            submit_batch_tx_max: 64,
            ..RunConfig::default()
        },
    );
    let outcome = node.shutdown();
    assert!(outcome.fatal.is_none(), "{:?}", outcome.fatal);
    assert!(target.stalled.load(Ordering::SeqCst), "the stall happened");
    assert_eq!(result.sent, count as u64);
    assert_eq!(result.acknowledged, count as u64);
    assert_eq!(result.latency_us.len(), count as u64);
    // The first transaction held back waited the whole stall (less the time its batch had
    // already waited to be due): measured from its intended send time, its latency holds it.
    let max_ms = result.latency_us.max() as f64 / 1e3;
    assert!(
        max_ms >= 0.9 * stall.as_millis() as f64,
        "max latency {max_ms} ms"
    );
    // Every transaction meant to go out in the first half of the stall waited at least half
    // the stall: about rate * stall / 2 of them. A sender that measured from its actual send
    // time (coordinated omission) would record none of these.
    let delayed = result.latency_us.count_between(
        (stall.as_micros() / 2) as u64,
        tally_loadgen::driver::LATENCY_US_MAX,
    );
    let expected = rate * stall.as_secs_f64() / 2.0;
    assert!(
        delayed as f64 >= 0.8 * expected,
        "{delayed} latencies of at least half the stall, expected about {expected}"
    );
}

#[test]
fn warmup_keeps_early_transactions_out_of_the_latency_figures() {
    let population = Population::generate(&PopulationSpec {
        banks: 4,
        merchants: 20,
        consumers: 40,
        ..PopulationSpec::default()
    });
    let txs = presign(&population, &TransferMix::default(), 0, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&population.genesis, NodeConfig::new(dir.path().into())).unwrap();
    let result = run(
        &node.handle(),
        &txs,
        &RunConfig {
            pacing: Pacing::Fixed {
                rate_per_s: 2_000.0,
            },
            warmup: Duration::from_millis(250),
            duration: Duration::from_secs(30),
            ..RunConfig::default()
        },
    );
    node.shutdown();
    assert_eq!(result.acknowledged, 1_000);
    // Intended send times are i / 2000 s: the first 500 fall in the warm-up.
    assert_eq!(result.latency_us.len(), 500);
    let in_timeline: u64 = result.timeline.iter().map(|i| i.latency_us.len()).sum();
    assert_eq!(in_timeline, 500);
    let acknowledged: u64 = result.timeline.iter().map(|i| i.acknowledged).sum();
    assert_eq!(acknowledged, 1_000);
}

/// A run longer than what is signed ahead streams: the signer stays a bounded number of
/// records ahead, every record goes out and is answered once, with its latency; a signer
/// slower than the sending schedule is reported as the load generator's own limit.
#[test]
fn records_signed_while_the_run_goes_are_all_sent_and_a_slow_signer_is_reported() {
    use tally_loadgen::driver::{run_records, Records};
    use tally_loadgen::report::summary;
    use tally_loadgen::session::{run_loadgen, LoadgenOptions};
    use tally_loadgen::WorkloadName;

    // Through the session: 60 000 transfers, 16 384 signed ahead at a time.
    let outcome = run_loadgen(&LoadgenOptions {
        workload: WorkloadName::Transfer,
        accounts: 200,
        banks: 2,
        seed: 4,
        pacing: Pacing::Closed {
            in_flight_tx_max: 4_096,
        },
        closed_loop_tx_count: 60_000,
        sign_ahead: 16_384,
        duration: Duration::from_secs(120),
        ..LoadgenOptions::default()
    })
    .unwrap();
    let result = &outcome.result;
    assert_eq!(outcome.signed_tx_count, 60_000);
    assert_eq!(result.sent, 60_000);
    assert_eq!(result.acknowledged, 60_000);
    assert_eq!(
        result.counts.get(tally_protocol::result::ResultCode::Ok),
        60_000
    );
    assert_eq!(
        result.latency_us.len(),
        60_000,
        "every record has its latency"
    );

    // A signer that delivers 500 records every 100 ms (5 000/s) under an open loop of
    // 20 000/s: the run is the signer's, and the report says so.
    let population = Population::generate(&PopulationSpec {
        banks: 2,
        merchants: 10,
        consumers: 20,
        ..PopulationSpec::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&population.genesis, NodeConfig::new(dir.path().into())).unwrap();
    let mix = TransferMix {
        invalid_pct: 0,
        ..TransferMix::default()
    };
    let all = presign(&population, &mix, 1_000, 5_000);
    let (chunks_tx, chunks) = crossbeam::channel::bounded(1);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            for chunk in all.chunks(500) {
                std::thread::sleep(Duration::from_millis(100));
                if chunks_tx.send(chunk.to_vec()).is_err() {
                    break;
                }
            }
            drop(chunks_tx);
        });
        run_records(
            &node.handle(),
            Records::Stream {
                first_id: 1_001,
                total: 5_000,
                chunks,
            },
            &RunConfig {
                pacing: Pacing::Fixed {
                    rate_per_s: 20_000.0,
                },
                duration: Duration::from_secs(5),
                ..RunConfig::default()
            },
        )
    });
    node.shutdown();
    println!("{}", summary(&result));
    assert_eq!(result.sent, 5_000);
    assert_eq!(result.acknowledged, 5_000);
    assert!(result.signing_limited(), "{:?}", result.signing_stalled);
    assert!(result.signing_stalled >= Duration::from_millis(500));
    assert!(summary(&result).contains("LIMITED BY THE LOAD GENERATOR"));
}
