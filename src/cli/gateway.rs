//! `tally gateway`: the ISO 20022 gateway of one participant (tally-gateway, docs/ISO20022.md),
//! `serve` until SIGINT/SIGTERM, or `bench` it against direct record submission.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tally_engine::genesis::Genesis;
use tally_engine::keys::read_key_file;
use tally_engine::net::ClientOptions;
use tally_gateway::{Gateway, GatewayConfig, Server, ServerLimits};

#[derive(clap::Subcommand, Debug)]
pub enum GatewayCommand {
    /// Serve a participant's payment hub: POST an ISO 20022 document to / for its pacs.002;
    /// GET /camt.054?from=N, /camt.052?account=A and /camt.053?account=A for notifications,
    /// the intraday report and the statement (which closes the period; with a business-day
    /// calendar each day's statements are made at its end of day, fetched with
    /// /camt.053?from=N or ?date=YYYY-MM-DD). The listener speaks
    /// TLS; --insecure-plaintext makes it plain HTTP as well as the node links.
    Serve(ServeArgs),
    /// Measure the gateway against direct record submission to the same node in the same
    /// run: throughput (messages/s) and the latency each message adds.
    Bench(BenchArgs),
}

/// As whom and to which nodes the gateway works.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// A node's client address (host:port). Repeat for failover.
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    /// The participant's identity, for the nodes. With --insecure-plaintext both the node
    /// links and the listener are plain.
    #[command(flatten)]
    access: super::Access,
    /// The network's genesis file (participants' BICs, the currency).
    #[arg(long)]
    genesis: PathBuf,
    /// The participant's signing key file (the owner key of the accounts it pays from; the
    /// central bank's for camt.050).
    #[arg(long)]
    key_file: PathBuf,
    /// The accounts followed for notifications, reports and statements, by BIC or number
    /// (repeat). Default: every account of the genesis with a BIC.
    #[arg(long = "follow")]
    follow: Vec<String>,
    /// Seconds to wait for a payment's result before answering PDNG.
    #[arg(long, default_value_t = 30)]
    result_timeout_s: u64,
    /// Where the gateway keeps its books (DIR/books.jnl): started again with the same
    /// directory it reloads them and follows on from the last block it booked. Without it
    /// the books live in memory and open again at the ledger's balances at each start.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Where the payment hub connects (host:port; port 0: any free one, printed).
    #[arg(long, default_value = "127.0.0.1:7480")]
    listen: SocketAddr,
    /// The identity the TLS listener presents, from the CA the bank and its payment hub
    /// share (not the network's: `tally pki init` and `tally pki issue --host` naming where
    /// the hub reaches the gateway); the hub's certificate must come from the same CA.
    /// Required unless --insecure-plaintext.
    #[arg(long, conflicts_with = "insecure_plaintext")]
    listen_identity: Option<PathBuf>,
    /// Most bytes of one document.
    #[arg(long, default_value_t = 1024 * 1024)]
    body_max_bytes: usize,
    /// Most connections served at once.
    #[arg(long, default_value_t = 64)]
    connections_max: usize,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The paying bank's BIC (its key is --key-file).
    #[arg(long)]
    from: String,
    /// The paid bank's BIC.
    #[arg(long)]
    to: String,
    /// Payments sent each way (direct, through the gateway).
    #[arg(long, default_value_t = 2_000)]
    messages: usize,
    /// Payments in flight at once (one connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

pub fn run(command: &GatewayCommand) -> anyhow::Result<ExitCode> {
    match command {
        GatewayCommand::Serve(args) => serve(args),
        GatewayCommand::Bench(args) => bench(args),
    }
}

/// Starts the gateway of `args` (its node connection, books and event follower).
fn start(args: &GatewayArgs) -> anyhow::Result<(Arc<Gateway>, Genesis)> {
    let genesis = Genesis::load(&args.genesis)?;
    let key = read_key_file(&args.key_file)
        .with_context(|| format!("key file {}", args.key_file.display()))?;
    let timeout = Duration::from_secs(args.result_timeout_s.max(1));
    let options = ClientOptions {
        connect_timeout: timeout.min(Duration::from_secs(10)),
        request_timeout: timeout,
        tls: args.access.tls()?,
        ..ClientOptions::default()
    };
    let directory = tally_gateway::translate::Directory::of(&genesis)
        .map_err(|reason| anyhow::anyhow!("the genesis does not suit the gateway: {reason}"))?;
    let follow = if args.follow.is_empty() {
        genesis
            .accounts
            .iter()
            .filter(|account| account.bic.is_some())
            .map(|account| account.id)
            .collect()
    } else {
        args.follow
            .iter()
            .map(|name| match name.parse::<u64>() {
                Ok(account) => Ok(account),
                Err(_) => directory
                    .account_of(name)
                    .map_err(|refusal| anyhow::anyhow!("--follow {name}: {}", refusal.info)),
            })
            .collect::<anyhow::Result<Vec<u64>>>()?
    };
    let gateway = Gateway::start(GatewayConfig {
        nodes: args.nodes.clone(),
        options,
        genesis: genesis.clone(),
        key,
        follow,
        result_timeout: timeout,
        data_dir: args.data_dir.clone(),
    })?;
    Ok((gateway, genesis))
}

/// The listener's TLS: `listen_identity`'s certificate, clients checked against its CA;
/// none with --insecure-plaintext.
fn listener_tls(
    access: &super::Access,
    listen_identity: Option<&std::path::Path>,
) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(path) = listen_identity else {
        if access.identity_path().is_some() {
            anyhow::bail!(
                "the TLS listener needs --listen-identity FILE: an identity naming the gateway's host (tally pki issue --host), from the CA the payment hub's certificate comes from; or --insecure-plaintext for plain HTTP and plain node links"
            );
        }
        return Ok(None);
    };
    let identity = tally_pki::Identity::load(path)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        identity.roots()?,
        tally_protocol::identity::crypto_provider(),
    )
    .build()
    .context("the listener's client verifier")?;
    Ok(Some(identity.server_config(verifier)?))
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let signals = super::StopSignals::install()?;
    let tls = listener_tls(&args.gateway.access, args.listen_identity.as_deref())?;
    let (gateway, _) = start(&args.gateway)?;
    let limits = ServerLimits {
        http: tally_protocol::http::Limits {
            body_bytes_max: args.body_max_bytes,
            ..ServerLimits::default().http
        },
        connections_max: args.connections_max.max(1),
        ..ServerLimits::default()
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = Server::start(Arc::clone(&gateway), args.listen, tls, limits)
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("gateway: {scheme}://{}", server.local_addr());
    println!("following accounts: {:?}", gateway.accounts());
    let _ = signals.received.recv();
    drop(server);
    gateway.stop();
    signals.close();
    Ok(ExitCode::SUCCESS)
}

fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let (gateway, genesis) = start(&args.gateway)?;
    let key = read_key_file(&args.gateway.key_file)?;
    let options = ClientOptions {
        tls: args.gateway.access.tls()?,
        ..ClientOptions::default()
    };
    let report = tally_gateway::bench::run(&tally_gateway::bench::BenchSpec {
        gateway,
        genesis,
        key,
        nodes: args.gateway.nodes.clone(),
        options,
        from_bic: args.from.clone(),
        to_bic: args.to.clone(),
        messages: args.messages.max(1),
        concurrency: args.concurrency.max(1),
    })
    .map_err(anyhow::Error::msg)?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
