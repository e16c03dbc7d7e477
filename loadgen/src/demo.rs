//! `tally demo`: a whole single-node run that needs nothing else.
//!
//! Makes a data directory and a genesis (a central bank, banks, a tax authority, merchants
//! and consumers), starts a node in-process, drives signed transactions at it, and checks
//! afterwards that money is conserved and that the node's state matches a replay of its log.

use crate::driver::{run, RunConfig, RunResult};
use crate::pacing::Pacing;
use crate::population::{Population, PopulationSpec};
use crate::workload::{presign, TransferMix};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tally_engine::node::Backend;
use tally_engine::node::{Node, NodeConfig, NodeError};

/// Options of a demo run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub duration: Duration,
    /// Open-loop rate; `None` drives the node as fast as it takes transactions.
    pub rate_per_s: Option<f64>,
    /// Data directory; `None` makes a temporary one, removed afterwards.
    pub data_dir: Option<PathBuf>,
    pub population: PopulationSpec,
    pub mix: TransferMix,
    pub backend: Backend,
    /// Transactions signed before the clock starts when no rate bounds the run.
    pub closed_loop_tx_count: usize,
    pub progress: bool,
    /// Record every acknowledgement in this file (see `RunConfig::ack_log`).
    pub ack_log: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            duration: Duration::from_secs(10),
            rate_per_s: None,
            data_dir: None,
            population: PopulationSpec::default(),
            mix: TransferMix::default(),
            backend: Backend::Cpu,
            closed_loop_tx_count: 600_000,
            progress: false,
            ack_log: None,
        }
    }
}

/// What the demo measured and checked.
pub struct DemoReport {
    pub run: RunResult,
    pub data_dir: PathBuf,
    pub signed_tx_count: usize,
    pub signing_time: Duration,
    pub height: u64,
    pub state_root: [u8; 32],
    pub genesis_total: i128,
    pub final_total: i128,
    pub money_in_circulation_before: i128,
    pub money_in_circulation_after: i128,
    /// Height and state root a fresh replay of the log reached.
    pub replayed_height: u64,
    pub replayed_state_root: [u8; 32],
}

impl DemoReport {
    /// Sum of every balance is the same before and after, and a replay of the log reaches
    /// the same state.
    pub fn conserved(&self) -> bool {
        self.genesis_total == self.final_total
    }

    pub fn replay_matches(&self) -> bool {
        self.replayed_height == self.height && self.replayed_state_root == self.state_root
    }
}

/// Errors of a demo run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot make a temporary data directory: {0}")]
    TempDir(std::io::Error),
}

/// Runs the demo.
pub fn run_demo(options: &DemoOptions) -> Result<DemoReport, DemoError> {
    let temporary = match options.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("tally-demo-")
                .tempdir()
                .map_err(DemoError::TempDir)?,
        ),
    };
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| temporary.as_ref().expect("made above").path().to_path_buf());
    let population = Population::generate(&options.population);
    let mut config = NodeConfig::new(data_dir.clone());
    config.backend = options.backend;
    let node = Node::start(&population.genesis, config.clone())?;
    let money_in_circulation_before = node.replayed_money_in_circulation();
    // A rerun on the same data directory continues after the ids already used.
    let id_base = (u128::from(node.replayed_height()) << 64) | (u128::from(options.mix.seed) << 32);
    let count = match options.rate_per_s {
        Some(rate) => (rate * options.duration.as_secs_f64()).ceil() as usize + 1,
        None => options.closed_loop_tx_count,
    };
    let mut mix = options.mix.clone();
    mix.seed ^= node.replayed_height();
    if options.progress {
        eprintln!("signing {count} transactions on all cores before the clock starts ...");
    }
    let signing_start = Instant::now();
    let txs = presign(&population, &mix, id_base, count);
    let signing_time = signing_start.elapsed();
    let handle = node.handle();
    let run_config = RunConfig {
        pacing: match options.rate_per_s {
            Some(rate_per_s) => Pacing::Fixed { rate_per_s },
            None => RunConfig::default().pacing,
        },
        duration: options.duration,
        progress: options.progress,
        ack_log: options.ack_log.clone(),
        ..RunConfig::default()
    };
    let result = run(&handle, &txs, &run_config);
    let outcome = node.shutdown();
    let replayed = tally_engine::node::replay_dir(&population.genesis, &config)?;
    Ok(DemoReport {
        run: result,
        data_dir,
        signed_tx_count: txs.len(),
        signing_time,
        height: outcome.height,
        state_root: outcome.state_root,
        genesis_total: outcome.ledger.genesis_total(),
        final_total: outcome.ledger.sum_of_balances(),
        money_in_circulation_before,
        money_in_circulation_after: outcome.ledger.money_in_circulation(),
        replayed_height: replayed.height,
        replayed_state_root: replayed.ledger.state_root(),
    })
}
