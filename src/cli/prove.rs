//! `tally prove`: an inclusion proof of one transaction, from a stopped node's data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use tally_engine::log::LogConfig;
use tally_engine::query::prove_transaction;

#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// The node's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// Block height.
    #[arg(long)]
    block: u64,
    /// Transaction id (decimal u128).
    #[arg(long)]
    tx: u128,
}

pub fn run(args: &ProveArgs) -> anyhow::Result<ExitCode> {
    let proof = prove_transaction(&args.data_dir, LogConfig::default(), args.block, args.tx)?;
    eprintln!(
        "transaction {} is leaf {} of block {} (result {}); block hash {}",
        args.tx,
        proof.proof.leaf_index,
        proof.header.height(),
        proof.result.name(),
        hex::encode(proof.header.hash())
    );
    println!("{}", serde_json::to_string_pretty(&proof.proof)?);
    Ok(ExitCode::SUCCESS)
}
