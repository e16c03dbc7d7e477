//! `tally bench`: the ceiling runner.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use tally_bench::runner::{run, Part, RunnerOptions};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Parts to measure, comma-separated: sigverify, merkle, storage, executor, checkpoint
    /// (the copy a checkpoint takes on the execution thread at 1 and 10 million accounts,
    /// not in the default list), pipeline,
    /// finality (1 and 4 validators in this process), access (the client port: TLS against
    /// plain TCP, an honest client under a bad-signature attacker), queries (query latency
    /// under half the node's maximum load against the idle node), latency (open loop at 25,
    /// 50 and 75% of the maximum, a node alone and four validators: p50, p99, p99.9), proof
    /// (size and offline verification of a proof that trusts no node, 4 and 100 validators),
    /// distance (4 validators whose links are delayed 0, 5, 25 and 50 ms one way by relays:
    /// throughput and finality latency).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sigverify,merkle,storage,executor,pipeline,finality,access,queries,latency,proof,distance"
    )]
    parts: Vec<Part>,
    /// Smaller sizes and shorter runs.
    #[arg(long)]
    quick: bool,
    /// Also measure the GPU paths (on a CPU-type adapter such as llvmpipe the figures are
    /// labelled as such).
    #[arg(long)]
    gpu: bool,
    /// Folder for the storage measurement's files (put it on the disk the node uses).
    #[arg(long, default_value = ".")]
    scratch_dir: PathBuf,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write the table as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run_bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let options = RunnerOptions {
        parts: args.parts.clone(),
        quick: args.quick,
        gpu: args.gpu,
        scratch_dir: args.scratch_dir.clone(),
    };
    let table = run(&options, |what| eprintln!("measuring {what} ..."));
    print!("{}", table.to_text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, table.to_markdown())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, table.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
