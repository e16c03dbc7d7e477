//! The single-node pipeline's throughput beside the raw signature-verification rate of the
//! same machine in the same run.

use std::time::Duration;
use tally_engine::node::{Backend, Node, NodeConfig};
use tally_loadgen::driver::{run, RunConfig};
use tally_loadgen::population::{Population, PopulationSpec};
use tally_loadgen::workload::{presign, TransferMix};
use tally_loadgen::Pacing;

/// Figures of one pipeline run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PipelineFigures {
    pub tx_count: usize,
    pub backend: String,
    /// Durable, acknowledged transactions per second, closed loop.
    pub pipeline_tx_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    /// ed25519-zebra's batch verifier on all cores, same machine, same run.
    pub zebra_batch_per_s: f64,
    pub ratio_to_zebra_batch: f64,
}

/// Errors of a pipeline measurement.
#[derive(Debug, thiserror::Error)]
pub enum PipelineBenchError {
    #[error(transparent)]
    Node(#[from] tally_engine::node::NodeError),
    #[error("cannot make a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("the node stopped during the measurement: {0}")]
    Stopped(String),
}

/// Signs `tx_count` valid transactions (taxed payments, transfers, interbank, central-bank
/// operations), drives them through a fresh node as fast as it takes them, and measures the
/// zebra batch ceiling beside it.
pub fn measure(tx_count: usize, backend: Backend) -> Result<PipelineFigures, PipelineBenchError> {
    let population = Population::generate(&PopulationSpec::default());
    let mix = TransferMix {
        invalid_pct: 0,
        ..TransferMix::default()
    };
    let txs = presign(&population, &mix, 0, tx_count);
    let dir = tempfile::Builder::new()
        .prefix("tally-bench-pipeline-")
        .tempdir()
        .map_err(PipelineBenchError::TempDir)?;
    let mut config = NodeConfig::new(dir.path().to_path_buf());
    config.backend = backend;
    let node = Node::start(&population.genesis, config)?;
    let result = run(
        &node.handle(),
        &txs,
        &RunConfig {
            pacing: Pacing::Closed {
                in_flight_tx_max: 65_536,
            },
            duration: Duration::from_secs(600),
            ..RunConfig::default()
        },
    );
    let outcome = node.shutdown();
    if let Some(reason) = result.stopped.clone().or(outcome.fatal) {
        return Err(PipelineBenchError::Stopped(reason));
    }
    let ceiling = crate::sigverify::measure(&[4_096], false);
    let zebra_batch_per_s = ceiling.first().map_or(f64::NAN, |f| f.zebra_batch_per_s);
    let pipeline_tx_per_s = result.throughput_per_s();
    Ok(PipelineFigures {
        tx_count,
        backend: backend.to_string(),
        pipeline_tx_per_s,
        latency_ms_p50: result.latency_us.value_at_quantile(0.5) as f64 / 1e3,
        latency_ms_p99: result.latency_us.value_at_quantile(0.99) as f64 / 1e3,
        zebra_batch_per_s,
        ratio_to_zebra_batch: pipeline_tx_per_s / zebra_batch_per_s,
    })
}
