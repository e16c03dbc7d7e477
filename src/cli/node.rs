//! `tally node --config FILE`: runs one validator (a PoA of one until consensus runs over the
//! network) with its client port and `/metrics`, until SIGINT or SIGTERM.

use anyhow::Context;
use crossbeam::channel::RecvTimeoutError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::genesis::Genesis;
use tally_engine::net::config;
use tally_engine::net::NodeService;

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The node's configuration file (TOML; see docs/OPERATIONS.md).
    #[arg(long)]
    config: PathBuf,
    /// Serve clients and validators over plain TCP, without TLS or certificates: anyone who
    /// reaches the ports may submit and read. For tests and benchmarks only.
    #[arg(long)]
    insecure_plaintext: bool,
}

pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = config::load(&args.config)?;
    if args.insecure_plaintext {
        loaded.service.server.tls = None;
        if let Some(validator) = loaded.node.validator.as_mut() {
            validator.tls = None;
        }
        let warning = "WARNING: --insecure-plaintext: no TLS, no certificates; anyone who reaches this node's ports can submit and read";
        eprintln!("{warning}");
        tracing::warn!("{warning}");
    } else if loaded.identity.is_none() {
        anyhow::bail!(
            "{} names no `identity`: issue one with `tally pki issue --role validator` (docs/OPERATIONS.md), or pass --insecure-plaintext for a test",
            args.config.display()
        );
    }
    let genesis = Genesis::load(&loaded.genesis_path).with_context(|| {
        format!(
            "genesis file {} (field `genesis` of {})",
            loaded.genesis_path.display(),
            args.config.display()
        )
    })?;
    // Signals are caught from here on; the handler only writes to a pipe (signal-hook).
    let signals = super::StopSignals::install()?;
    let data_dir = loaded.node.data_dir.clone();
    let loaded_identity = loaded
        .service
        .server
        .tls
        .as_ref()
        .map(|tls| tls.holder().name.clone());
    let metrics_scheme = if loaded.service.metrics_tls {
        "https"
    } else {
        "http"
    };
    let service = NodeService::start(&genesis, loaded.node, loaded.service)
        .with_context(|| format!("starting the node on {}", data_dir.display()))?;
    let handle = service.handle();
    println!(
        "tally node: network {}, genesis {}, data {}, height {} (replayed), backend {}",
        genesis.network_id,
        hex::encode(genesis.hash()),
        data_dir.display(),
        service.replayed_height(),
        handle.metrics().backend()
    );
    println!("start: {}", service.start_cost());
    println!("clients: {}", service.client_addr());
    match &loaded_identity {
        Some(name) => println!("tls: on, identity {name}"),
        None => println!("tls: OFF (--insecure-plaintext)"),
    }
    match service.metrics_addr() {
        Some(addr) => println!("metrics: {metrics_scheme}://{addr}/metrics"),
        None => println!("metrics: off"),
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    tracing::info!(clients = %service.client_addr(), "node running");

    let cause = loop {
        match signals.received.recv_timeout(Duration::from_millis(200)) {
            Ok(signal) => break format!("signal {signal}"),
            Err(RecvTimeoutError::Disconnected) => break "signal handler ended".to_string(),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(reason) = handle.fatal_error() {
                    break format!("fatal error: {reason}");
                }
            }
        }
    };
    println!("stopping ({cause}): finishing accepted transactions");
    let _ = std::io::stdout().flush();
    let outcome = service.shutdown();
    signals.close();
    println!(
        "stopped at height {}, state root {}",
        outcome.height,
        hex::encode(outcome.state_root)
    );
    match outcome.fatal {
        Some(reason) => {
            eprintln!("error: the node stopped on an error: {reason}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
