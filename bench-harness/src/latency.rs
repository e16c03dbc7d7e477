//! Latency an operator can quote (issue 20): a node alone and a network of four validators
//! in this process, its maximum measured first (closed loop), then open-loop runs at 25, 50
//! and 75% of it, each transaction's latency from its intended send time (fixed before the
//! run) to its durable, final acknowledgement, as p50, p99 and p99.9.

use crate::pipeline::{bench_setup, quantile_ms, shut_down, start_network, PipelineBenchError};
use std::time::Duration;
use tally_engine::node::Backend;
use tally_loadgen::driver::{run, RunConfig};
use tally_loadgen::workload::presign;
use tally_loadgen::Pacing;

/// The loads measured, as shares of the closed-loop maximum.
pub const LOADS: [f64; 3] = [0.25, 0.50, 0.75];

/// One open-loop run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadLevel {
    pub share: f64,
    pub offered_tx_per_s: f64,
    pub acknowledged_tx_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// Figures of one network.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LatencyFigures {
    pub validators: usize,
    pub max_tx_per_s: f64,
    pub levels: Vec<LoadLevel>,
}

/// Measures one network (`validators` 0: a node alone) with runs of `duration` each.
pub fn measure(
    validators: usize,
    duration: Duration,
    closed_tx_count: usize,
) -> Result<LatencyFigures, PipelineBenchError> {
    let (mut population, mix, dir) = bench_setup("latency")?;
    let (nodes, target) = start_network(&mut population, dir.path(), Backend::Cpu, validators)?;
    let closed_records = presign(&population, &mix, 0, closed_tx_count);
    let closed = run(
        &*target,
        &closed_records,
        &RunConfig {
            pacing: Pacing::Closed {
                in_flight_tx_max: if validators == 0 { 65_536 } else { 16_384 },
            },
            duration,
            ..RunConfig::default()
        },
    );
    drop(closed_records);
    let max_tx_per_s = closed.throughput_per_s();
    let mut levels = Vec::new();
    let mut stopped = closed.stopped;
    let mut first_id = 1u128 << 64;
    for share in LOADS {
        if stopped.is_some() {
            break;
        }
        let rate = max_tx_per_s * share;
        let count = (rate * duration.as_secs_f64() * 1.1) as usize + 1;
        let records = presign(&population, &mix, first_id, count);
        first_id += count as u128;
        let result = run(
            &*target,
            &records,
            &RunConfig {
                pacing: Pacing::Fixed { rate_per_s: rate },
                duration,
                drain_timeout: Duration::from_secs(30),
                ..RunConfig::default()
            },
        );
        stopped = result.stopped.clone();
        levels.push(LoadLevel {
            share,
            offered_tx_per_s: rate,
            acknowledged_tx_per_s: result.throughput_per_s(),
            p50_ms: quantile_ms(&result, 0.5),
            p99_ms: quantile_ms(&result, 0.99),
            p999_ms: quantile_ms(&result, 0.999),
        });
    }
    drop(target);
    let (_, fatal) = shut_down(nodes);
    if let Some(reason) = stopped.or(fatal) {
        return Err(PipelineBenchError::Stopped(reason));
    }
    Ok(LatencyFigures {
        validators,
        max_tx_per_s,
        levels,
    })
}
