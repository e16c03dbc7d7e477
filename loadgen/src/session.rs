//! One `tally loadgen` run: build (or replay) a workload, drive a target with it, write the
//! reports.
//!
//! The population (genesis and every key) is generated from the workload name, the seed and
//! the bank count, so a node started with the genesis that [`write_genesis`] writes accepts
//! the load generator's signatures.

use crate::driver::{run, RunConfig, RunResult};
use crate::pacing::Pacing;
use crate::population::Population;
use crate::recording::{self, RecordingError};
use crate::report::{write_all, ReportError, WrittenReport};
use crate::target::{RemoteTarget, Target};
use crate::workload::{presign, WorkloadName};
use std::path::{Path, PathBuf};
use std::time::Duration;
#[cfg(feature = "engine")]
use tally_engine::node::{Backend, Node, NodeConfig, NodeError};
use tally_protocol::genesis::Genesis;

/// What the load goes to.
#[derive(Clone, Debug)]
pub enum TargetChoice {
    /// A node started in this process (data directory kept when given, else temporary); with
    /// the `engine` feature only.
    #[cfg(feature = "engine")]
    InProcess {
        data_dir: Option<PathBuf>,
        backend: Backend,
    },
    /// Running nodes (one, or a cluster's validators) at these addresses, over
    /// `connections` connections to each; batches go to each connection in turn.
    Remote {
        addresses: Vec<String>,
        connections: usize,
        /// How each connection is made (its TLS identity among it).
        client: tally_protocol::client::ClientOptions,
    },
}

/// Options of one run.
#[derive(Clone, Debug)]
pub struct LoadgenOptions {
    pub workload: WorkloadName,
    /// Seed of the population (keys) and of the transaction stream.
    pub seed: u64,
    pub banks: usize,
    /// Percent of deliberately invalid transactions.
    pub invalid_pct: u32,
    pub pacing: Pacing,
    pub duration: Duration,
    pub warmup: Duration,
    /// Transactions signed up front for a closed-loop run.
    pub closed_loop_tx_count: usize,
    /// Ids are `id_base + 1 ..`: choose a fresh base for each run against a long-lived node.
    pub id_base: u128,
    pub target: TargetChoice,
    /// Directory for summary.txt, report.json, latency.hlog and report.html.
    pub out_dir: Option<PathBuf>,
    /// Write the signed workload to this file before running it.
    pub record: Option<PathBuf>,
    /// Run the workload recorded in this file instead of generating one.
    pub replay: Option<PathBuf>,
    pub submit_batch_tx_max: usize,
    pub progress: bool,
    /// The genesis the remote nodes run, when its validators are not the population's own
    /// (a cluster of `tally cluster init`).
    pub genesis: Option<PathBuf>,
}

impl Default for LoadgenOptions {
    fn default() -> LoadgenOptions {
        LoadgenOptions {
            workload: WorkloadName::Mixed,
            seed: 1,
            banks: 20,
            invalid_pct: 0,
            pacing: Pacing::Fixed {
                rate_per_s: 10_000.0,
            },
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            closed_loop_tx_count: 300_000,
            id_base: 0,
            #[cfg(feature = "engine")]
            target: TargetChoice::InProcess {
                data_dir: None,
                backend: Backend::Cpu,
            },
            #[cfg(not(feature = "engine"))]
            target: TargetChoice::Remote {
                addresses: vec!["127.0.0.1:7400".to_string()],
                connections: 1,
                client: tally_protocol::client::ClientOptions::default(),
            },
            out_dir: None,
            record: None,
            replay: None,
            submit_batch_tx_max: 1024,
            progress: false,
            genesis: None,
        }
    }
}

/// What a run produced.
pub struct LoadgenOutcome {
    pub workload: String,
    pub result: RunResult,
    pub written: Option<WrittenReport>,
    pub signed_tx_count: usize,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[cfg(feature = "engine")]
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("the recording {path} was signed for genesis {recorded} (network {recorded_network:#x}), but this run's population has genesis {ours} (network {our_network:#x}): pass the --workload, --seed and --banks the recording was made with")]
    GenesisMismatch {
        path: PathBuf,
        recorded: String,
        recorded_network: u64,
        ours: String,
        our_network: u64,
    },
    #[error("cannot make a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot write the genesis {path}: {source}")]
    WriteGenesis {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] tally_protocol::client::ClientError),
    #[error("the node at {address} runs genesis {theirs} (network {their_network:#x}), but this workload signs for genesis {ours} (network {our_network:#x}): start the node with the genesis `tally loadgen --write-genesis FILE` writes for the same --workload, --seed and --banks, or pass the genesis it runs with --genesis (a cluster of `tally cluster init`)")]
    NodeGenesisMismatch {
        address: String,
        theirs: String,
        their_network: u64,
        ours: String,
        our_network: u64,
    },
    #[error("--genesis names the genesis of running nodes: use it with --node")]
    GenesisInProcess,
    #[error("cannot use the genesis {path}: {reason}")]
    ReadGenesis { path: PathBuf, reason: String },
    #[error("the genesis {path} is not the population of workload {workload}, seed {seed}, {banks} banks (only its validators may differ): pass the --workload, --seed and --banks it was made with (`tally cluster init` prints them)")]
    GenesisNotPopulation {
        path: PathBuf,
        workload: &'static str,
        seed: u64,
        banks: usize,
    },
    #[error("the workload is empty: nothing to send")]
    Empty,
}

/// The population of a workload, seed and bank count (what `tally loadgen` signs for, and
/// what `tally cluster init` opens in its genesis).
pub fn population_for(workload: WorkloadName, seed: u64, banks: usize) -> Population {
    Population::generate(&workload.population(seed, banks))
}

/// The population of a workload.
pub fn population_of(options: &LoadgenOptions) -> Population {
    population_for(options.workload, options.seed, options.banks)
}

/// The population the target runs: [`population_of`], with the genesis of
/// `options.genesis` when given (same accounts, network and rates; other validators, as
/// `tally cluster init` writes).
fn target_population(options: &LoadgenOptions) -> Result<Population, LoadgenError> {
    let mut population = population_of(options);
    let Some(path) = &options.genesis else {
        return Ok(population);
    };
    #[cfg(feature = "engine")]
    if matches!(options.target, TargetChoice::InProcess { .. }) {
        return Err(LoadgenError::GenesisInProcess);
    }
    let theirs = Genesis::load(path).map_err(|error| LoadgenError::ReadGenesis {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    let mut ours = population.genesis.clone();
    ours.validators = theirs.validators.clone();
    if ours != theirs {
        return Err(LoadgenError::GenesisNotPopulation {
            path: path.clone(),
            workload: options.workload.name(),
            seed: options.seed,
            banks: options.banks,
        });
    }
    population.genesis = theirs;
    Ok(population)
}

/// Writes the genesis of the population the load generator signs for, so an operator can
/// start a node (or a cluster) that accepts its transactions.
pub fn write_genesis(options: &LoadgenOptions, path: &Path) -> Result<[u8; 32], LoadgenError> {
    let population = population_of(options);
    std::fs::write(path, population.genesis.to_toml()).map_err(|source| {
        LoadgenError::WriteGenesis {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(population.genesis.hash())
}

/// Builds or reads the signed workload.
fn workload(
    options: &LoadgenOptions,
    population: &Population,
) -> Result<(String, Vec<tally_protocol::tx::TxRecord>), LoadgenError> {
    if let Some(path) = &options.replay {
        let recorded = recording::read(path)?;
        let ours = population.genesis.hash();
        if recorded.genesis_hash != ours || recorded.network_id != population.genesis.network_id {
            return Err(LoadgenError::GenesisMismatch {
                path: path.clone(),
                recorded: hex::encode(recorded.genesis_hash),
                recorded_network: recorded.network_id,
                ours: hex::encode(ours),
                our_network: population.genesis.network_id,
            });
        }
        return Ok((recorded.workload, recorded.records));
    }
    let count = match options.pacing.rate_per_s() {
        // Poisson arrivals may run ahead of the mean: sign a margin.
        Some(rate) => (rate * options.duration.as_secs_f64() * 1.1).ceil() as usize + 64,
        None => options.closed_loop_tx_count,
    };
    let mix = options.workload.mix(options.seed, options.invalid_pct);
    if options.progress {
        eprintln!("signing {count} transactions on all cores before the clock starts ...");
    }
    let records = presign(population, &mix, options.id_base, count);
    if let Some(path) = &options.record {
        recording::write(
            path,
            population.genesis.network_id,
            &population.genesis.hash(),
            options.workload.name(),
            &records,
        )?;
    }
    Ok((options.workload.name().to_string(), records))
}

/// Runs the load against `target` and writes the reports.
pub fn run_against(
    options: &LoadgenOptions,
    target: &dyn Target,
    records: &[tally_protocol::tx::TxRecord],
    workload: &str,
) -> Result<LoadgenOutcome, LoadgenError> {
    if records.is_empty() {
        return Err(LoadgenError::Empty);
    }
    let config = RunConfig {
        pacing: options.pacing,
        duration: options.duration,
        warmup: options.warmup,
        submit_batch_tx_max: options.submit_batch_tx_max,
        progress: options.progress,
        ..RunConfig::default()
    };
    let result = run(target, records, &config);
    let written = match &options.out_dir {
        Some(dir) => Some(write_all(dir, workload, &result)?),
        None => None,
    };
    Ok(LoadgenOutcome {
        workload: workload.to_string(),
        result,
        written,
        signed_tx_count: records.len(),
    })
}

/// The whole run: population, workload, target, load, reports.
pub fn run_loadgen(options: &LoadgenOptions) -> Result<LoadgenOutcome, LoadgenError> {
    let population = target_population(options)?;
    let (name, records) = workload(options, &population)?;
    match &options.target {
        #[cfg(feature = "engine")]
        TargetChoice::InProcess { data_dir, backend } => {
            let temporary = match data_dir {
                Some(_) => None,
                None => Some(
                    tempfile::Builder::new()
                        .prefix("tally-loadgen-")
                        .tempdir()
                        .map_err(LoadgenError::TempDir)?,
                ),
            };
            let dir = data_dir
                .clone()
                .unwrap_or_else(|| temporary.as_ref().expect("made above").path().into());
            let mut config = NodeConfig::new(dir);
            config.backend = *backend;
            let node = Node::start(&population.genesis, config)?;
            let outcome = run_against(options, &node.handle(), &records, &name);
            node.shutdown();
            outcome
        }
        TargetChoice::Remote {
            addresses,
            connections,
            client,
        } => {
            let target = RemoteTarget::connect(addresses, *connections, client)?;
            let ours = population.genesis.hash();
            for (address, welcome) in target.welcomes() {
                if welcome.genesis_hash != ours
                    || welcome.network_id != population.genesis.network_id
                {
                    return Err(LoadgenError::NodeGenesisMismatch {
                        address: address.to_string(),
                        theirs: hex::encode(welcome.genesis_hash),
                        their_network: welcome.network_id,
                        ours: hex::encode(ours),
                        our_network: population.genesis.network_id,
                    });
                }
            }
            run_against(options, &target, &records, &name)
        }
    }
}
