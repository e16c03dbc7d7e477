//! `tally keygen` and `tally genesis`.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use tally_engine::genesis::Genesis;
use tally_engine::keys::{generate_key, public_key_of, write_key_file};

#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key file; refuses to overwrite an existing file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct GenesisArgs {
    /// The spec: a genesis whose keys may be `file:PATH` (relative to the spec's folder).
    #[arg(long)]
    spec: PathBuf,
    /// Where to write the genesis file.
    #[arg(long)]
    out: PathBuf,
}

pub fn run_keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = generate_key();
    write_key_file(&args.out, &key)?;
    println!("{}", hex::encode(public_key_of(&key)));
    Ok(ExitCode::SUCCESS)
}

pub fn run_genesis(args: &GenesisArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("cannot read genesis spec {}", args.spec.display()))?;
    let spec: Genesis = toml::from_str(&text)
        .with_context(|| format!("genesis spec {} is not valid", args.spec.display()))?;
    let base = args.spec.parent().unwrap_or(std::path::Path::new("."));
    let genesis = Genesis::resolve_spec(spec, base)
        .with_context(|| format!("genesis spec {}", args.spec.display()))?;
    std::fs::write(&args.out, genesis.to_toml())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "genesis {} written: network {}, {} validators, {} accounts",
        hex::encode(genesis.hash()),
        genesis.network_id,
        genesis.validators.len(),
        genesis.account_count()
    );
    Ok(ExitCode::SUCCESS)
}
