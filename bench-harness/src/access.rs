//! Access under load, over real sockets (issue 16): one node alone serving its client port in
//! this process, the load generator's remote target as the client, back to back in one run.
//!
//! - TLS against `--insecure-plaintext`: the same closed-loop load through the client port,
//!   over TLS 1.3 with a certificate of the network's CA, and over plain TCP.
//! - An honest client under a bad-signature attacker: the honest identity's closed loop alone,
//!   then the same while a second identity (another certificate for the same keys) sends
//!   open loop at a high rate, a fifth of its records with a bad signature.
//!
//! The node runs with its default limits, except `bad_signatures_max` (never reached here):
//! the attacker stays connected for the whole run, so what protects the honest client is
//! that the attacker's records are verified in their own lane at its suspect rate.
//!
//! Each measurement starts a fresh node on the same genesis, and the pairs run in the order
//! A B B A so that a drift of the machine's other load falls on both sides alike; each
//! figure is the sum of its two runs' acknowledgements over the sum of their times.

use std::sync::Arc;
use std::time::Duration;
use tally_engine::net::message::Quota;
use tally_engine::net::server::ServerConfig;
use tally_engine::net::tls::{NodeTls, Revocations};
use tally_engine::net::{ClientOptions, NodeService, ServiceConfig};
use tally_engine::node::NodeConfig;
use tally_engine::tx::TxRecord;
use tally_loadgen::driver::{run, RunConfig, RunResult};
use tally_loadgen::population::{Population, PopulationSpec, CENTRAL_BANK_ID, TAX_AUTHORITY_ID};
use tally_loadgen::target::RemoteTarget;
use tally_loadgen::workload::{presign, TransferMix};
use tally_loadgen::Pacing;
use tally_pki::{Access, Ca, Identity, Request, Validity};

/// What to run.
#[derive(Clone, Debug)]
pub struct AccessOptions {
    /// Length of each closed-loop run.
    pub duration: Duration,
    /// Records signed for each closed-loop run (more than it can send in `duration`).
    pub tx_count: usize,
    /// The attacker's open-loop rate (records a second).
    pub attack_rate_per_s: f64,
    /// Connections of the honest client (and of the attacker).
    pub connections: usize,
    /// The honest client's closed-loop window.
    pub in_flight_tx_max: usize,
}

impl AccessOptions {
    pub fn new(quick: bool) -> AccessOptions {
        AccessOptions {
            duration: Duration::from_secs(if quick { 4 } else { 8 }),
            tx_count: if quick { 400_000 } else { 800_000 },
            attack_rate_per_s: 20_000.0,
            connections: 2,
            in_flight_tx_max: 16_384,
        }
    }
}

/// Figures of one access measurement.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccessFigures {
    /// Acknowledged tx/s over TLS and over plain TCP, same load (sums of two runs each).
    pub tls_tx_per_s: f64,
    pub plaintext_tx_per_s: f64,
    /// The honest client's acknowledged tx/s alone and while attacked.
    pub alone_tx_per_s: f64,
    pub attacked_tx_per_s: f64,
    /// What the attacker sent and had taken, over both attacked runs.
    pub attacker_sent: u64,
    pub attacker_acknowledged: u64,
    pub attacker_bad_signatures: u64,
    /// Attacker records refused as over its suspect rate, and records verified in isolated
    /// lanes, over both attacked runs (the nodes' counters).
    pub attacker_over_quota: u64,
    pub isolated_tx: u64,
    /// Signature batches of the common lane that held a bad signature while attacked.
    pub common_failed_batches: u64,
}

/// Errors of an access measurement.
#[derive(Debug, thiserror::Error)]
pub enum AccessBenchError {
    #[error("cannot make the network's certificates: {0}")]
    Pki(String),
    #[error("cannot start the node: {0}")]
    Node(String),
    #[error("cannot connect the load generator: {0}")]
    Connect(String),
    #[error("cannot make a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("the run stopped: {0}")]
    Stopped(String),
}

/// A network of one node over TLS: the population, the node's certificate and the
/// clients' (shared with [`crate::queries`]).
pub(crate) struct Network {
    pub(crate) population: Population,
    node: Identity,
    pub(crate) honest: Identity,
    attacker: Identity,
    /// An auditor: reads everything, sends nothing.
    pub(crate) auditor: Identity,
}

impl Network {
    pub(crate) fn new() -> Result<Network, AccessBenchError> {
        let population = Population::generate(&PopulationSpec::default());
        let pki = |error: tally_pki::PkiError| AccessBenchError::Pki(error.to_string());
        let network_id = population.genesis.network_id;
        let ca = Ca::create(network_id, Validity::days_from_now(2)).map_err(pki)?;
        let key = |id: u64| tally_engine::keys::public_key_of(&population.keys[&id]);
        // As `tally cluster init` issues the load generator's identity: the central bank's
        // role with the central bank's, the tax authority's and every bank's key.
        let mut everyone = vec![key(CENTRAL_BANK_ID), key(TAX_AUTHORITY_ID)];
        everyone.extend(population.banks.iter().map(|&bank| key(bank)));
        let issue = |name: &str, access: Access, signers: Vec<[u8; 32]>, hosts: Vec<String>| {
            ca.issue(&Request {
                name: name.into(),
                access,
                signers,
                hosts,
                validity: Validity::days_from_now(1),
            })
            .map_err(pki)
        };
        let validator_key = population
            .validator_keys
            .first()
            .map(tally_engine::keys::public_key_of)
            .unwrap_or_else(|| key(CENTRAL_BANK_ID));
        Ok(Network {
            node: issue(
                "validator-0",
                Access::Validator,
                vec![validator_key],
                vec!["127.0.0.1".into()],
            )?,
            honest: issue("honest", Access::CentralBank, everyone.clone(), Vec::new())?,
            attacker: issue("attacker", Access::CentralBank, everyone, Vec::new())?,
            auditor: issue("auditor", Access::Auditor, Vec::new(), Vec::new())?,
            population,
        })
    }

    pub(crate) fn start(
        &self,
        dir: &std::path::Path,
        tls: bool,
    ) -> Result<NodeService, AccessBenchError> {
        let mut node = NodeConfig::new(dir.to_path_buf());
        node.checkpoint_interval_blocks = 0;
        let tls = if tls {
            let tls = NodeTls::new(&self.node, Arc::new(Revocations::default()))
                .map_err(|e| AccessBenchError::Node(e.to_string()))?;
            Some(Arc::new(tls))
        } else {
            None
        };
        let config = ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().expect("an address"),
                tls,
                // The node's defaults, except that the attacker is never closed for its bad
                // signatures: the figure measures its records' isolation and its suspect
                // rate alone, not the back-off that would end the attack after seconds.
                bad_signatures_max: u64::MAX,
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        };
        NodeService::start(&self.population.genesis, node, config)
            .map_err(|e| AccessBenchError::Node(e.to_string()))
    }

    pub(crate) fn client(
        &self,
        identity: Option<&Identity>,
    ) -> Result<ClientOptions, AccessBenchError> {
        let tls = match identity {
            Some(identity) => Some(
                identity
                    .client_config()
                    .map_err(|e| AccessBenchError::Pki(e.to_string()))?,
            ),
            None => None,
        };
        Ok(ClientOptions {
            tls,
            ..ClientOptions::default()
        })
    }
}

/// One closed-loop run of `honest` records against a fresh node, with the attacker's
/// records sent open loop beside it when given. Returns the honest run, the attacker's and
/// the node's counters (over quota, isolated, common failed batches).
fn closed_loop(
    network: &Network,
    options: &AccessOptions,
    tls: bool,
    honest: &[TxRecord],
    attack: Option<&[TxRecord]>,
) -> Result<(RunResult, Option<RunResult>, [u64; 3]), AccessBenchError> {
    let dir = tempfile::Builder::new()
        .prefix("tally-bench-access-")
        .tempdir()
        .map_err(AccessBenchError::TempDir)?;
    let service = network.start(dir.path(), tls)?;
    let address = vec![service.client_addr().to_string()];
    let connect = |identity: Option<&Identity>| -> Result<RemoteTarget, AccessBenchError> {
        RemoteTarget::connect(&address, options.connections, &network.client(identity)?)
            .map_err(|e| AccessBenchError::Connect(e.to_string()))
    };
    let honest_target = connect(tls.then_some(&network.honest))?;
    let config = RunConfig {
        pacing: Pacing::Closed {
            in_flight_tx_max: options.in_flight_tx_max,
        },
        duration: options.duration,
        drain_timeout: Duration::from_secs(30),
        ..RunConfig::default()
    };
    let (honest_result, attack_result) = match attack {
        None => (run(&honest_target, honest, &config), None),
        Some(records) => {
            let attacker_target = connect(Some(&network.attacker))?;
            let attack_config = RunConfig {
                pacing: Pacing::Fixed {
                    rate_per_s: options.attack_rate_per_s,
                },
                // Starts first and ends last: the honest run is attacked throughout.
                duration: options.duration + Duration::from_secs(2),
                drain_timeout: Duration::from_secs(5),
                ..RunConfig::default()
            };
            std::thread::scope(|scope| {
                let attacker = scope.spawn(|| run(&attacker_target, records, &attack_config));
                std::thread::sleep(Duration::from_secs(1));
                let honest = run(&honest_target, honest, &config);
                (honest, Some(attacker.join().expect("the attacker's run")))
            })
        }
    };
    let metrics = service.handle();
    let metrics = metrics.metrics();
    let counters = [
        metrics.quota_refused[Quota::SuspectSubmitRate.index()].get(),
        metrics.isolated_tx.get(),
        metrics.failed_batches_common.get(),
    ];
    drop(honest_target);
    let outcome = service.shutdown();
    if let Some(reason) = honest_result.stopped.clone().or(outcome.fatal) {
        return Err(AccessBenchError::Stopped(reason));
    }
    Ok((honest_result, attack_result, counters))
}

/// Acknowledged per second over several runs: their acknowledgements over their times.
fn rate(runs: &[&RunResult]) -> f64 {
    let acknowledged: u64 = runs.iter().map(|r| r.acknowledged).sum();
    let seconds: f64 = runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    acknowledged as f64 / seconds
}

/// Runs the four pairs: plain TCP, TLS, TLS, plain TCP; alone, attacked, attacked, alone.
pub fn measure(options: &AccessOptions) -> Result<AccessFigures, AccessBenchError> {
    let network = Network::new()?;
    let mix = TransferMix {
        invalid_pct: 0,
        ..TransferMix::default()
    };
    let honest = presign(&network.population, &mix, 0, options.tx_count);
    let attack_count =
        (options.attack_rate_per_s * (options.duration.as_secs_f64() + 3.0)) as usize;
    let mut attack = presign(&network.population, &mix, 1 << 60, attack_count);
    // A fifth of the attacker's records carry a bad signature.
    for record in attack.iter_mut().step_by(5) {
        record.signature[0] ^= 0x40;
    }
    let plain_a = closed_loop(&network, options, false, &honest, None)?.0;
    let tls_a = closed_loop(&network, options, true, &honest, None)?.0;
    let tls_b = closed_loop(&network, options, true, &honest, None)?.0;
    let plain_b = closed_loop(&network, options, false, &honest, None)?.0;
    let alone_a = closed_loop(&network, options, true, &honest, None)?.0;
    let (attacked_a, attacker_a, counters_a) =
        closed_loop(&network, options, true, &honest, Some(&attack))?;
    let (attacked_b, attacker_b, counters_b) =
        closed_loop(&network, options, true, &honest, Some(&attack))?;
    let alone_b = closed_loop(&network, options, true, &honest, None)?.0;
    let attackers: Vec<RunResult> = [attacker_a, attacker_b].into_iter().flatten().collect();
    let bad_signatures = |r: &RunResult| {
        r.counts
            .by_code
            .get(&tally_engine::result::ResultCode::BadSignature)
            .copied()
            .unwrap_or(0)
    };
    Ok(AccessFigures {
        tls_tx_per_s: rate(&[&tls_a, &tls_b]),
        plaintext_tx_per_s: rate(&[&plain_a, &plain_b]),
        alone_tx_per_s: rate(&[&alone_a, &alone_b]),
        attacked_tx_per_s: rate(&[&attacked_a, &attacked_b]),
        attacker_sent: attackers.iter().map(|r| r.sent).sum(),
        attacker_acknowledged: attackers.iter().map(|r| r.acknowledged).sum(),
        attacker_bad_signatures: attackers.iter().map(bad_signatures).sum(),
        attacker_over_quota: counters_a[0] + counters_b[0],
        isolated_tx: counters_a[1] + counters_b[1],
        common_failed_batches: counters_a[2] + counters_b[2],
    })
}
