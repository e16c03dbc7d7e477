//! Subcommands. Each one parses its arguments and calls into the library crates.

mod bench;
mod client;
mod cluster;
mod demo;
mod gateway;
mod inspect;
mod keys;
mod loadgen;
mod node;
mod pki;
mod proof;
mod prove;
mod query;
mod relay;
mod sigcheck;
mod status;
mod tx;
mod validator;
mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Tally: a GPU/SIMD-accelerated settlement ledger engine.
#[derive(Parser, Debug)]
#[command(name = "tally", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a small network of validators in this process under signed load for a while and
    /// print what it did (payments, tax, the rejections it injects on purpose).
    Demo(demo::DemoArgs),
    /// Write a new Ed25519 key file (owner-only permissions).
    Keygen(keys::KeygenArgs),
    /// Build a genesis file from a spec (resolves key files, checks every field).
    Genesis(keys::GenesisArgs),
    /// Drive a node with a named workload (ubin, vat, mixed), open or closed loop, and write
    /// a text summary, JSON, an HdrHistogram log and an HTML report with plots.
    Loadgen(Box<loadgen::LoadgenArgs>),
    /// Measure each stage beside the ceiling of the same machine in the same run.
    Bench(bench::BenchArgs),
    /// Look inside a node's files.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Write the proof that trusts no node of a transaction (record, Merkle path, header,
    /// commit certificate, validator-set changes) from a running node (--node) or a stopped
    /// node's data directory (--data-dir).
    Prove(prove::ProveArgs),
    /// Ledger queries of a running node (--node) or over a stopped node's data directory
    /// (--data-dir): balance, status, history, queue, pending, tax-report, totals,
    /// validators (JSON).
    Query(query::QueryArgs),
    /// Sign one transaction with a key file, send it to a running node and print its result:
    /// transfer, pending/post/void, taxed-payment, refund, pledge, redeem, suspend,
    /// reinstate, queue-hold/release/cancel/priority, set-tax-rate, validator-vote,
    /// revoke-certificate.
    Tx(tx::TxArgs),
    /// Follow accounts' events on a running node (settled, queued, released from the queue,
    /// expired, reserved, refunded), resuming after restarts and failover.
    Watch(watch::WatchArgs),
    /// Check a proof of `tally prove` against the genesis alone; says which link fails.
    VerifyProof(proof::VerifyProofArgs),
    /// Verify Ed25519 signatures from JSON lines {"pk","msg","sig"} (hex), one verdict per line.
    Sigcheck(sigcheck::SigcheckArgs),
    /// Run one validator node with its client port and /metrics until SIGINT or SIGTERM.
    Node(node::NodeArgs),
    /// Show a running node's height, mempool, counters and backend (client protocol).
    Status(status::StatusArgs),
    /// A cluster of validator processes on this machine: `init` writes its files, `up`
    /// starts and supervises one `tally node` per validator.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The network's PKI: create the CA, issue and show identities (certificates).
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Validator-set changes by authority vote: vote, or show the set and pending votes.
    #[command(subcommand)]
    Validator(validator::ValidatorCommand),
    /// Delaying TCP relays for validator links (one-way delay and jitter), so validators on
    /// one machine behave as validators far apart.
    Relay(relay::RelayArgs),
    /// A participant's ISO 20022 gateway: `serve` its payment hub over HTTP (pacs.008,
    /// pacs.009, pacs.004, camt.056, camt.050 in; pacs.002, camt.054, camt.052, camt.053
    /// out), or `bench` it against direct submission.
    #[command(subcommand)]
    Gateway(gateway::GatewayCommand),
}

#[derive(Subcommand, Debug)]
enum InspectCommand {
    /// List segments and entries of an append log, verify its whole chain, report the first
    /// problem precisely. Read-only.
    Log(inspect::InspectLogArgs),
    /// Verify a node's audit trail (DATA_DIR/audit.log: every submission, refusal and
    /// connection by identity, hash-chained) and print it, one JSON line per event.
    Audit(inspect::InspectAuditArgs),
}

/// How a client command connects: `--identity PATH` or `--insecure-plaintext`.
#[derive(clap::Args, Debug)]
pub(crate) struct Access {
    /// The identity to connect with (`tally pki issue`, or DIR/participants/NAME.identity
    /// of `tally cluster init`).
    #[arg(long)]
    identity: Option<std::path::PathBuf>,
    /// Connect over plain TCP, without TLS (to a node run with --insecure-plaintext).
    #[arg(long, conflicts_with = "identity")]
    insecure_plaintext: bool,
}

impl Access {
    pub(crate) fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
        client_tls(self.identity.as_deref(), self.insecure_plaintext)
    }

    /// The identity file given, if any.
    pub(crate) fn identity_path(&self) -> Option<&std::path::Path> {
        self.identity.as_deref()
    }
}

/// The TLS configuration of a client command: its `--identity`, or none with
/// `--insecure-plaintext`; one of the two is required.
pub(crate) fn client_tls(
    identity: Option<&std::path::Path>,
    insecure_plaintext: bool,
) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
    match identity {
        Some(path) => Ok(Some(tally_pki::Identity::load(path)?.client_config()?)),
        None if insecure_plaintext => Ok(None),
        None => anyhow::bail!(
            "pass --identity PATH (an identity file from `tally pki issue`, or DIR/participants/NAME.identity of `tally cluster init`), or --insecure-plaintext for a node that runs without TLS"
        ),
    }
}

/// Logs go to standard error; `RUST_LOG` sets the level (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Keygen(args) => keys::run_keygen(&args),
        Command::Genesis(args) => keys::run_genesis(&args),
        Command::Bench(args) => bench::run_bench(&args),
        Command::Loadgen(args) => loadgen::run(&args),
        Command::Inspect(InspectCommand::Log(args)) => {
            inspect::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Inspect(InspectCommand::Audit(args)) => {
            inspect::run_audit(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Prove(args) => prove::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Tx(args) => tx::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::VerifyProof(args) => proof::run_verify(&args).map(|()| ExitCode::SUCCESS),
        Command::Sigcheck(args) => sigcheck::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Node(args) => node::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Cluster(command) => cluster::run(&command),
        Command::Validator(command) => validator::run(&command),
        Command::Pki(command) => pki::run(&command),
        Command::Relay(args) => relay::run(&args),
        Command::Gateway(command) => gateway::run(&command),
    }
}

/// SIGINT and SIGTERM, caught from `install` on (the handler only writes to a pipe,
/// signal-hook) and delivered on `received`.
pub(crate) struct StopSignals {
    pub received: crossbeam::channel::Receiver<i32>,
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl StopSignals {
    pub(crate) fn install() -> anyhow::Result<StopSignals> {
        use anyhow::Context;
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .context("installing the SIGINT/SIGTERM handlers")?;
        let handle = signals.handle();
        let (sender, received) = crossbeam::channel::bounded(1);
        let thread = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = sender.send(signal);
            }
        });
        Ok(StopSignals {
            received,
            handle,
            thread,
        })
    }

    /// Stops catching and joins the watching thread.
    pub(crate) fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}
