//! Latency an operator can quote (issue 20): a node alone and a network of four validators
//! in this process, its maximum measured first (closed loop), then open-loop runs at 25, 50
//! and 75% of it, each transaction's latency from its intended send time (fixed before the
//! run) to its durable, final acknowledgement, as p50, p99 and p99.9. Beside each run, where
//! the first node's time went: its `tally_stage_seconds` histograms over that run alone.

use crate::pipeline::{bench_setup, quantile_ms, shut_down, start_network, PipelineBenchError};
use std::time::Duration;
use tally_engine::node::{Backend, Node};
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
    /// The first node's stages over this run (those that observed anything).
    pub stages: Vec<StageFigure>,
}

/// One stage of the first node over one run, from its `tally_stage_seconds` histogram: the
/// upper bounds of the buckets that hold its p50 and p99 ("at most"; infinite past 10 s).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageFigure {
    pub stage: &'static str,
    /// Observations (per transaction, per batch, per block or per group, by stage).
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Every stage's bucket counts now.
fn stage_counts(node: &Node) -> Vec<Vec<u64>> {
    let handle = node.handle();
    let stages = handle.metrics().stage.named();
    stages.iter().map(|(_, h)| h.bucket_counts()).collect()
}

/// The stages that observed anything between the readings `before` and `after`.
fn stage_figures(node: &Node, before: &[Vec<u64>], after: &[Vec<u64>]) -> Vec<StageFigure> {
    let handle = node.handle();
    let stages = handle.metrics().stage.named();
    let mut figures = Vec::new();
    for (((name, histogram), before), after) in stages.iter().zip(before).zip(after) {
        let between: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        let (Some(p50), Some(p99)) = (
            histogram.quantile_bound(&between, 0.5),
            histogram.quantile_bound(&between, 0.99),
        ) else {
            continue;
        };
        figures.push(StageFigure {
            stage: name,
            count: between.iter().sum(),
            p50_ms: p50 * 1e3,
            p99_ms: p99 * 1e3,
        });
    }
    figures
}

impl LoadLevel {
    /// The stages as one line: `name p50/p99 ms (count)`.
    pub fn stages_line(&self) -> String {
        self.stages
            .iter()
            .map(|s| format!("{} {}/{} ({})", s.stage, s.p50_ms, s.p99_ms, s.count))
            .collect::<Vec<_>>()
            .join(", ")
    }
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
        let before = stage_counts(&nodes[0]);
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
        let stages = stage_figures(&nodes[0], &before, &stage_counts(&nodes[0]));
        levels.push(LoadLevel {
            share,
            offered_tx_per_s: rate,
            acknowledged_tx_per_s: result.throughput_per_s(),
            p50_ms: quantile_ms(&result, 0.5),
            p99_ms: quantile_ms(&result, 0.99),
            p999_ms: quantile_ms(&result, 0.999),
            stages,
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
