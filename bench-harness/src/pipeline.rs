//! The pipeline's throughput, one standalone node or a network of validators in this process
//! (each a whole node, linked over TCP on loopback), beside the raw signature-verification
//! rate of the same machine in the same run.

use std::time::Duration;
use tally_engine::node::{Backend, Node, NodeConfig};
use tally_engine::validator::{cluster, ValidatorConfig};
use tally_loadgen::driver::{run, RunConfig};
use tally_loadgen::population::{Population, PopulationSpec};
use tally_loadgen::relay::{LinkDelay, Relay};
use tally_loadgen::target::{ClusterTarget, Target};
use tally_loadgen::workload::{presign, TransferMix};
use tally_loadgen::Pacing;

/// Figures of one pipeline run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PipelineFigures {
    pub tx_count: usize,
    pub backend: String,
    /// Validators (0: a standalone node that builds blocks alone, without consensus).
    pub validators: usize,
    /// Blocks the first node made durable.
    pub blocks: u64,
    /// Durable, acknowledged transactions per second, closed loop.
    pub pipeline_tx_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    /// ed25519-zebra's batch verifier on all cores, same machine, same run.
    pub zebra_batch_per_s: f64,
    /// Our own CPU verifier on all cores at the node's signature batch (4096), same run.
    pub ours_per_s: f64,
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
    #[error("cannot bind the validators' loopback ports: {0}")]
    Bind(std::io::Error),
    #[error("cannot start a link relay: {0}")]
    Relay(String),
}

/// What every network part starts from: the default population, the transfer mix without
/// invalid records, and a fresh data directory named for the part.
pub(crate) fn bench_setup(
    part: &str,
) -> Result<(Population, TransferMix, tempfile::TempDir), PipelineBenchError> {
    let population = Population::generate(&PopulationSpec::default());
    let mix = TransferMix {
        invalid_pct: 0,
        ..TransferMix::default()
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("tally-bench-{part}-"))
        .tempdir()
        .map_err(PipelineBenchError::TempDir)?;
    Ok((population, mix, dir))
}

/// A run's latency quantile `q`, in milliseconds.
pub(crate) fn quantile_ms(result: &tally_loadgen::driver::RunResult, q: f64) -> f64 {
    result.latency_us.value_at_quantile(q) as f64 / 1e3
}

/// Starts a fresh node (`validators == 0`) or a network of `validators` validators linked
/// over loopback in this process, with data under `dir`; returns the nodes and a target that
/// spreads records over them in turn.
pub(crate) fn start_network(
    population: &mut Population,
    dir: &std::path::Path,
    backend: Backend,
    validators: usize,
) -> Result<(Vec<Node>, Box<dyn Target>), PipelineBenchError> {
    let (nodes, target, relays) = start_network_far(population, dir, backend, validators, None)?;
    debug_assert!(relays.is_empty());
    Ok((nodes, target))
}

/// The nodes of a network, a target spreading records over them, and the relays of its links
/// (which must outlive the nodes).
pub(crate) type FarNetwork = (Vec<Node>, Box<dyn Target>, Vec<Relay>);

/// As [`start_network`], with every validator link through a [`Relay`] that holds each
/// direction's bytes for `delay` (`None`: direct links, no relays). The relays must outlive
/// the nodes.
pub(crate) fn start_network_far(
    population: &mut Population,
    dir: &std::path::Path,
    backend: Backend,
    validators: usize,
    delay: Option<LinkDelay>,
) -> Result<FarNetwork, PipelineBenchError> {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.backend = backend;
    let mut relays = Vec::new();
    let nodes = if validators == 0 {
        vec![Node::start(&population.genesis, config)?]
    } else {
        let keys = cluster::validator_keys(validators, 1);
        cluster::set_validators(&mut population.genesis, &keys);
        config.validator = Some(ValidatorConfig::new(
            keys[0],
            "127.0.0.1:0".parse().expect("an address"),
            Vec::new(),
        ));
        let mut configs =
            cluster::loopback_configs(&config, dir, &keys).map_err(PipelineBenchError::Bind)?;
        if let Some(delay) = delay {
            // One relay per link and direction of dialling: each validator reaches each
            // peer through its own relay (only the dialling side's entry is used).
            for (index, config) in configs.iter_mut().enumerate() {
                let validator = config.validator.as_mut().expect("a validator's config");
                for (n, peer) in validator.peers.iter_mut().enumerate() {
                    let relay = Relay::start(
                        "127.0.0.1:0".parse().expect("an address"),
                        peer.addr,
                        LinkDelay {
                            seed: delay.seed ^ ((index as u64) << 32 | n as u64),
                            ..delay
                        },
                    )
                    .map_err(|e| PipelineBenchError::Relay(e.to_string()))?;
                    peer.addr = relay.addr();
                    relays.push(relay);
                }
            }
        }
        cluster::start(&population.genesis, &configs)?
    };
    let target: Box<dyn Target> = if validators == 0 {
        Box::new(nodes[0].handle())
    } else {
        Box::new(ClusterTarget::new(nodes.iter().map(Node::handle).collect()))
    };
    Ok((nodes, target, relays))
}

/// Shuts the nodes down; the first node's height and the first fatal error.
pub(crate) fn shut_down(nodes: Vec<Node>) -> (u64, Option<String>) {
    let mut blocks = 0;
    let mut fatal = None;
    for (index, node) in nodes.into_iter().enumerate() {
        let outcome = node.shutdown();
        if index == 0 {
            blocks = outcome.height;
        }
        fatal = fatal.or(outcome.fatal);
    }
    (blocks, fatal)
}

/// Signs `tx_count` valid transactions (taxed payments, transfers, interbank, central-bank
/// operations), drives them through a fresh node (`validators == 0`) or a fresh network of
/// `validators` validators, spread over them in turn, as fast as it takes them, and measures
/// the zebra batch ceiling beside it. With validators, an acknowledgement means final (a
/// quorum's certificate) and durable.
pub fn measure(
    tx_count: usize,
    backend: Backend,
    validators: usize,
) -> Result<PipelineFigures, PipelineBenchError> {
    let (mut population, mix, dir) = bench_setup("pipeline")?;
    let txs = presign(&population, &mix, 0, tx_count);
    let (nodes, target) = start_network(&mut population, dir.path(), backend, validators)?;
    let result = run(
        &*target,
        &txs,
        &RunConfig {
            pacing: Pacing::Closed {
                // A network decides one block at a time: a deeper window only queues.
                in_flight_tx_max: if validators == 0 { 65_536 } else { 16_384 },
            },
            duration: Duration::from_secs(600),
            ..RunConfig::default()
        },
    );
    drop(target);
    let (blocks, fatal) = shut_down(nodes);
    if let Some(reason) = result.stopped.clone().or(fatal) {
        return Err(PipelineBenchError::Stopped(reason));
    }
    let ceiling = crate::sigverify::measure(&[4_096], false);
    let zebra_batch_per_s = ceiling.first().map_or(f64::NAN, |f| f.zebra_batch_per_s);
    let ours_per_s = ceiling.first().map_or(f64::NAN, |f| f.cpu_per_s);
    let pipeline_tx_per_s = result.throughput_per_s();
    Ok(PipelineFigures {
        tx_count,
        backend: backend.to_string(),
        validators,
        blocks,
        pipeline_tx_per_s,
        latency_ms_p50: quantile_ms(&result, 0.5),
        latency_ms_p99: quantile_ms(&result, 0.99),
        zebra_batch_per_s,
        ours_per_s,
        ratio_to_zebra_batch: pipeline_tx_per_s / zebra_batch_per_s,
    })
}
