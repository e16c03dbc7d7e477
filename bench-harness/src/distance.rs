//! Validators far apart (issue 20): four validators in this process, every link through a
//! delaying relay ([`tally_loadgen::relay`]), at several one-way delays. For each delay: the
//! closed-loop throughput (final + durable acknowledgements) and, at a fixed moderate
//! open-loop rate, the finality latency from each transaction's intended send time.

use crate::pipeline::{bench_setup, quantile_ms, shut_down, start_network_far, PipelineBenchError};
use std::time::Duration;
use tally_engine::node::Backend;
use tally_loadgen::driver::{run, RunConfig};
use tally_loadgen::relay::LinkDelay;
use tally_loadgen::workload::presign;
use tally_loadgen::Pacing;

/// The one-way delays measured.
pub const DELAYS_MS: [u64; 4] = [0, 5, 25, 50];

/// Jitter as a share of the one-way delay.
pub const JITTER_SHARE: f64 = 0.1;

/// Validators in the network.
pub const VALIDATORS: usize = 4;

/// Figures at one delay.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DistanceFigures {
    pub one_way_ms: u64,
    pub jitter_ms: f64,
    /// Closed loop: final, durable acknowledgements per second.
    pub max_tx_per_s: f64,
    /// Blocks the first validator made durable during the whole measurement.
    pub blocks: u64,
    /// The open-loop rate of the latency run.
    pub open_rate_tx_per_s: f64,
    pub open_acknowledged_tx_per_s: f64,
    /// Transactions the open-loop run sent, and how many of them were answered.
    pub open_sent: u64,
    pub open_acknowledged: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// Measures one delay: a closed-loop run of `closed_tx_count` (at most `duration`), then an
/// open-loop run at `open_rate` for `duration`. `seed` drives the relays' jitter.
pub fn measure(
    one_way: Duration,
    closed_tx_count: usize,
    open_rate: f64,
    duration: Duration,
    seed: u64,
) -> Result<DistanceFigures, PipelineBenchError> {
    let (mut population, mix, dir) = bench_setup("distance")?;
    let delay = LinkDelay {
        one_way,
        jitter: one_way.mul_f64(JITTER_SHARE),
        seed,
    };
    let (nodes, target, relays) = start_network_far(
        &mut population,
        dir.path(),
        Backend::Cpu,
        VALIDATORS,
        Some(delay),
    )?;
    let closed_records = presign(&population, &mix, 0, closed_tx_count);
    let closed = run(
        &*target,
        &closed_records,
        &RunConfig {
            pacing: Pacing::Closed {
                in_flight_tx_max: 16_384,
            },
            duration,
            ..RunConfig::default()
        },
    );
    drop(closed_records);
    let mut stopped = closed.stopped.clone();
    let open = if stopped.is_none() {
        let count = (open_rate * duration.as_secs_f64() * 1.1) as usize + 1;
        let records = presign(&population, &mix, 1u128 << 64, count);
        let open = run(
            &*target,
            &records,
            &RunConfig {
                pacing: Pacing::Fixed {
                    rate_per_s: open_rate,
                },
                duration,
                ..RunConfig::default()
            },
        );
        stopped = open.stopped.clone();
        Some(open)
    } else {
        None
    };
    drop(target);
    let (blocks, fatal) = shut_down(nodes);
    drop(relays);
    if let Some(reason) = stopped.or(fatal) {
        return Err(PipelineBenchError::Stopped(reason));
    }
    let open = open.expect("an open-loop run when nothing stopped");
    Ok(DistanceFigures {
        one_way_ms: one_way.as_millis() as u64,
        jitter_ms: delay.jitter.as_secs_f64() * 1e3,
        max_tx_per_s: closed.throughput_per_s(),
        blocks,
        open_rate_tx_per_s: open_rate,
        open_acknowledged_tx_per_s: open.throughput_per_s(),
        open_sent: open.sent,
        open_acknowledged: open.acknowledged,
        p50_ms: quantile_ms(&open, 0.5),
        p99_ms: quantile_ms(&open, 0.99),
        p999_ms: quantile_ms(&open, 0.999),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four validators whose every link goes through a 10 ms relay still finalize every
    /// transaction, and no transaction is final sooner than the prevote and precommit
    /// hops allow (two one-way delays less their jitter).
    #[test]
    fn validators_behind_delaying_relays_finalize_every_transaction() {
        let seed = rand::random::<u64>();
        println!("jitter seed {seed}");
        let one_way = Duration::from_millis(10);
        let f = measure(one_way, 3_000, 300.0, Duration::from_secs(2), seed).unwrap();
        assert!(f.max_tx_per_s > 0.0, "{f:?}");
        assert!(f.open_sent >= 500, "{f:?}");
        assert_eq!(
            f.open_acknowledged, f.open_sent,
            "every transaction answered"
        );
        let floor_ms = 2.0 * (one_way.as_secs_f64() * 1e3) * (1.0 - JITTER_SHARE);
        let earliest = f.p50_ms.min(f.p99_ms);
        assert!(earliest >= floor_ms, "{f:?}");
        assert_eq!(f.one_way_ms, 10);
    }
}
