//! `tally prove`: the proof that trusts no node of one transaction (docs/MERKLE.md, "Proofs
//! that trust no node"), asked of a running node over the client protocol (`--node`, the
//! `proof` query, with the identity's read privacy) or made from a stopped node's data
//! directory (`--data-dir`, which must hold a log). Printed as JSON, or written to `--out`.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::genesis::Genesis;
use tally_engine::log::LogConfig;
use tally_engine::net::query::{Answer, Query};
use tally_engine::net::ClientOptions;
use tally_engine::proof::TxProof;
use tally_engine::query::prove_offline;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["nodes", "data_dir"])))]
pub struct ProveArgs {
    /// A running node's client address (host:port); repeat for failover.
    #[arg(long = "node")]
    nodes: Vec<String>,
    #[command(flatten)]
    access: super::Access,
    /// A stopped node's data directory (its `data_dir`; the node must not be running).
    #[arg(long, conflicts_with_all = ["nodes", "identity", "insecure_plaintext"])]
    data_dir: Option<PathBuf>,
    /// The network's genesis file: needed with --data-dir; with --node, the node is checked
    /// to run it.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Transaction id (decimal u128).
    #[arg(long)]
    tx: u128,
    /// The block that holds it (default: the first block of the log that does).
    #[arg(long)]
    block: Option<u64>,
    /// Write the proof to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds to wait for a connection and the answer (--node); a node reads its log from
    /// the first block to answer.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

pub fn run(args: &ProveArgs) -> anyhow::Result<ExitCode> {
    let genesis = args.genesis.as_deref().map(Genesis::load).transpose()?;
    let proof = match &args.data_dir {
        Some(data_dir) => {
            let Some(genesis) = &genesis else {
                anyhow::bail!("--data-dir needs --genesis: the network's genesis file");
            };
            prove_offline(
                data_dir,
                LogConfig::default(),
                genesis.network_id,
                genesis.heights_per_epoch,
                args.tx,
                args.block,
            )?
        }
        None => online(args, genesis.as_ref())?,
    };
    let text = serde_json::to_string_pretty(&proof)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, format!("{text}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "transaction {} is leaf {} of block {}; {} blocks of validator votes; proof written to {} ({} bytes): check it with tally verify-proof {} --genesis GENESIS",
                proof.tx_id,
                proof.record.leaf_index,
                proof.block.height,
                proof.set_changes.len(),
                path.display(),
                text.len() + 1,
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn online(args: &ProveArgs, genesis: Option<&Genesis>) -> anyhow::Result<TxProof> {
    let timeout = Duration::from_secs(args.timeout_s.max(1));
    let options = ClientOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
        tls: args.access.tls()?,
        ..ClientOptions::default()
    };
    let genesis_hash = genesis.map(Genesis::hash);
    let connected =
        tally_protocol::operator::connect_any(&args.nodes, &options, genesis_hash.as_ref())?;
    let query = Query::Proof {
        id: args.tx,
        height: args.block,
    };
    match connected.client.query(&query) {
        Ok(Answer::Proof(proof)) => Ok(*proof),
        Ok(other) => anyhow::bail!(
            "node {} answered the proof query with something else: {other:?}",
            connected.node
        ),
        Err(error) => anyhow::bail!("node {}: {error}", connected.node),
    }
}
