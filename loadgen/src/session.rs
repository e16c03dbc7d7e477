//! One `tally loadgen` run: build (or replay) a workload, drive a target with it, write the
//! reports.
//!
//! The population (genesis and every key) is generated from the workload name, the seed and
//! the bank count, so a node started with the genesis that [`write_genesis`] writes accepts
//! the load generator's signatures.

use crate::driver::{run_records, Records};
use crate::driver::{RunConfig, RunResult};
use crate::pacing::Pacing;
use crate::population::Population;
use crate::recording::{self, RecordingError};
use crate::report::{write_all, ReportError, WrittenReport};
use crate::target::{RemoteTarget, Target};
use crate::workload::{presign, sign, transfer_population, Distribution, Generator, WorkloadName};
use std::path::{Path, PathBuf};
use std::time::Duration;
#[cfg(feature = "engine")]
use tally_engine::node::{Backend, Node, NodeConfig, NodeError};
use tally_protocol::genesis::Genesis;

/// Transactions signed ahead by default (192 MB of records).
pub const SIGN_AHEAD_DEFAULT: usize = 1_000_000;

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
    /// Accounts of the `transfer` workload.
    pub accounts: usize,
    /// Who signs for the `transfer` workload's accounts.
    pub custody: crate::population::Custody,
    /// How the `transfer` workload picks its accounts.
    pub distribution: Distribution,
    /// Percent of deliberately invalid transactions.
    pub invalid_pct: u32,
    pub pacing: Pacing,
    pub duration: Duration,
    pub warmup: Duration,
    /// Transactions a closed-loop run sends at most.
    pub closed_loop_tx_count: usize,
    /// A run of more transactions signs this many before the clock starts and the rest
    /// while it runs, never more than this many ahead of the sender (bounding memory).
    pub sign_ahead: usize,
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
    /// Append one line `id code height` per acknowledgement to this file.
    pub ack_log: Option<PathBuf>,
    /// How a remote target notices a node that stopped answering.
    pub liveness: crate::target::Liveness,
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
            accounts: crate::workload::TRANSFER_ACCOUNTS_DEFAULT,
            custody: crate::population::Custody::Own,
            distribution: Distribution::Uniform,
            invalid_pct: 0,
            pacing: Pacing::Fixed {
                rate_per_s: 10_000.0,
            },
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            closed_loop_tx_count: 300_000,
            sign_ahead: SIGN_AHEAD_DEFAULT,
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
            ack_log: None,
            liveness: crate::target::Liveness::default(),
            genesis: None,
        }
    }
}

/// What a run produced.
pub struct LoadgenOutcome {
    pub workload: String,
    pub result: RunResult,
    pub written: Option<WrittenReport>,
    /// Transactions the run had to send (at most): signed up front, or while it ran when
    /// `streamed`.
    pub signed_tx_count: usize,
    /// Signed while the run went (a run longer than `sign_ahead`).
    pub streamed: bool,
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
    #[error("the recording {path} has expired: its records are valid until {valid_until_ms} ms (Unix), and it is {now_ms} ms now; every record carries the last block time at which it may execute (docs/SETTLEMENT.md, \"Idempotency and expiry\"), so record the workload again")]
    RecordingExpired {
        path: PathBuf,
        valid_until_ms: u64,
        now_ms: u64,
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
    #[error("the genesis {path} is not the population of workload {workload}, seed {seed}, {banks} banks (only its validators and settlement settings may differ): pass the --workload, --seed and --banks it was made with (`tally cluster init` prints them)")]
    GenesisNotPopulation {
        path: PathBuf,
        workload: &'static str,
        seed: u64,
        banks: usize,
    },
    #[error("the workload is empty: nothing to send")]
    Empty,
    #[error("a sweep needs at least one level")]
    EmptySweep,
}

/// The population of a workload, seed and bank count (what `tally loadgen` signs for, and
/// what `tally cluster init` opens in its genesis).
pub fn population_for(workload: WorkloadName, seed: u64, banks: usize) -> Population {
    Population::generate(&workload.population(seed, banks))
}

/// The population of a workload, seed and bank count, with the `transfer` workload's
/// `accounts` and `custody` (the other workloads have their own populations).
pub fn population_with(
    workload: WorkloadName,
    seed: u64,
    banks: usize,
    accounts: usize,
    custody: crate::population::Custody,
) -> Population {
    match workload {
        WorkloadName::Transfer => {
            Population::generate(&transfer_population(seed, banks, accounts, custody))
        }
        workload => population_for(workload, seed, banks),
    }
}

/// Refuses population flags that the workload does not use: `--accounts` and `--custody`
/// shape the `transfer` workload's population only.
pub fn check_population(
    workload: WorkloadName,
    accounts: usize,
    custody: crate::population::Custody,
) -> Result<(), String> {
    if workload == WorkloadName::Transfer {
        if accounts < 2 {
            return Err(format!(
                "--accounts must be at least 2 (a transfer has two sides), got {accounts}"
            ));
        }
        return Ok(());
    }
    if accounts != crate::workload::TRANSFER_ACCOUNTS_DEFAULT
        || custody != crate::population::Custody::Own
    {
        return Err(format!(
            "--accounts and --custody shape the transfer workload's population; the {} workload has its own",
            workload.name()
        ));
    }
    Ok(())
}

/// The population of a run's options ([`population_with`]).
pub fn population_of(options: &LoadgenOptions) -> Population {
    population_with(
        options.workload,
        options.seed,
        options.banks,
        options.accounts,
        options.custody,
    )
}

/// The transaction mix of a run: the workload's, with the `transfer` workload's account
/// distribution.
pub fn mix_of(options: &LoadgenOptions) -> crate::workload::TransferMix {
    let mut mix = options.workload.mix(options.seed, options.invalid_pct);
    if let Some(plain) = mix.plain.as_mut() {
        plain.distribution = options.distribution;
    }
    mix
}

/// The population the target runs: [`population_of`], with the genesis of
/// `options.genesis` when given (same accounts, network and rates; other validators, as
/// `tally cluster init` writes, and other settlement settings: a day cut-off, windows, as an
/// operator or `scripts/soak.sh` sets them; records are signed valid for the half of its
/// validity window).
pub(crate) fn target_population(options: &LoadgenOptions) -> Result<Population, LoadgenError> {
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
    ours.settlement = theirs.settlement.clone();
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

/// How many transactions a generated run signs: enough for its duration at an open-loop
/// rate (with a margin for Poisson arrivals running ahead of the mean), or the closed-loop
/// count.
fn signed_count(options: &LoadgenOptions) -> usize {
    match options.pacing.rate_per_s() {
        Some(rate) => (rate * options.duration.as_secs_f64() * 1.1).ceil() as usize + 64,
        None => options.closed_loop_tx_count,
    }
}

/// Records a streamed run's signer signs at a time.
const SIGN_CHUNK: usize = 16_384;

/// Builds or reads the signed workload.
pub(crate) fn workload(
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
        // A recording is replayed within its records' validity: past it, every record would
        // come back `expired`, which measures nothing.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        if let Some(valid_until_ms) = recorded.records.iter().map(|r| r.valid_until()).min() {
            if valid_until_ms < now_ms {
                return Err(LoadgenError::RecordingExpired {
                    path: path.clone(),
                    valid_until_ms,
                    now_ms,
                });
            }
        }
        return Ok((recorded.workload, recorded.records));
    }
    let count = signed_count(options);
    let mix = mix_of(options);
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
    run_against_records(options, target, Records::All(records), workload)
}

/// [`run_against`] over records signed up front or while the run goes.
fn run_against_records(
    options: &LoadgenOptions,
    target: &dyn Target,
    records: Records<'_>,
    workload: &str,
) -> Result<LoadgenOutcome, LoadgenError> {
    let (signed_tx_count, streamed) = match &records {
        Records::All(records) => (records.len(), false),
        Records::Stream { total, .. } => (*total, true),
    };
    let config = RunConfig {
        pacing: options.pacing,
        duration: options.duration,
        warmup: options.warmup,
        submit_batch_tx_max: options.submit_batch_tx_max,
        progress: options.progress,
        ack_log: options.ack_log.clone(),
        ..RunConfig::default()
    };
    let mut result = run_records(target, records, &config);
    if options.replay.is_none() {
        result.ok_share_min = Some(options.workload.ok_share_min(options.invalid_pct));
    }
    let written = match &options.out_dir {
        Some(dir) => Some(write_all(dir, workload, &result)?),
        None => None,
    };
    Ok(LoadgenOutcome {
        workload: workload.to_string(),
        result,
        written,
        signed_tx_count,
        streamed,
    })
}

/// The whole run: population, workload, target, load, reports.
pub fn run_loadgen(options: &LoadgenOptions) -> Result<LoadgenOutcome, LoadgenError> {
    let population = target_population(options)?;
    let count = signed_count(options);
    if options.replay.is_none() && options.record.is_none() && count > options.sign_ahead {
        return run_streamed(options, &population, count);
    }
    let (name, records) = workload(options, &population)?;
    with_target(options, &population, |target| {
        run_against(options, target, &records, &name)
    })
}

/// A generated run longer than `options.sign_ahead` transactions: the first
/// `sign_ahead` are signed before the clock starts, the rest by a signer thread (on all
/// cores) that stays at most `sign_ahead` ahead of the sender, so memory holds no more
/// than that whatever the run's length.
fn run_streamed(
    options: &LoadgenOptions,
    population: &Population,
    count: usize,
) -> Result<LoadgenOutcome, LoadgenError> {
    let mix = mix_of(options);
    // chunks small enough that two of them stay within `sign_ahead` (records signed now are
    // valid for half a validity window: a short window needs a short lead)
    let chunk_size = SIGN_CHUNK.min(options.sign_ahead.div_ceil(2)).max(1);
    let ahead_chunks = options.sign_ahead.div_ceil(chunk_size).max(2);
    if options.progress {
        eprintln!(
            "signing {count} transactions: the first {} before the clock starts, the rest on \
             all cores while the run goes ...",
            (ahead_chunks * chunk_size).min(count)
        );
    }
    let (chunks_tx, chunks) = crossbeam::channel::bounded(ahead_chunks);
    std::thread::scope(|scope| {
        let signer = std::thread::Builder::new()
            .name("loadgen-signer".into())
            .spawn_scoped(scope, move || {
                let mut generator = Generator::new(population, &mix, options.id_base);
                let mut made = 0;
                while made < count {
                    let n = chunk_size.min(count - made);
                    let chunk = sign(population, &generator.plans(n));
                    if chunks_tx.send(chunk).is_err() {
                        break;
                    }
                    made += n;
                }
            })
            .expect("start the signer thread");
        // Sign ahead before the clock starts.
        while !chunks.is_full() && chunks.len() * chunk_size < count && !signer.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let records = Records::Stream {
            first_id: options.id_base + 1,
            total: count,
            chunks,
        };
        with_target(options, population, |target| {
            run_against_records(options, target, records, options.workload.name())
        })
    })
}

/// Starts (in process) or connects to (remote, genesis checked) the target of `options`
/// and hands it to `body`.
pub(crate) fn with_target<R>(
    options: &LoadgenOptions,
    population: &Population,
    body: impl FnOnce(&dyn Target) -> Result<R, LoadgenError>,
) -> Result<R, LoadgenError> {
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
            let outcome = body(&node.handle());
            node.shutdown();
            outcome
        }
        TargetChoice::Remote {
            addresses,
            connections,
            client,
        } => {
            let target =
                RemoteTarget::connect_with(addresses, *connections, options.liveness, client)?;
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
            body(&target)
        }
    }
}
