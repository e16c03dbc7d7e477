//! Subcommands. Each one parses its arguments and calls into the library crates.

mod demo;
mod keys;

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
    /// Run a single node in-process under signed load for a while and print what it did.
    Demo(demo::DemoArgs),
    /// Write a new Ed25519 key file (owner-only permissions).
    Keygen(keys::KeygenArgs),
    /// Build a genesis file from a spec (resolves key files, checks every field).
    Genesis(keys::GenesisArgs),
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
    }
}
