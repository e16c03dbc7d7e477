//! `tally loadgen`: drive a node with a named workload and write the reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::node::Backend;
use tally_loadgen::report::summary;
use tally_loadgen::session::{run_loadgen, write_genesis, LoadgenOptions, TargetChoice};
use tally_loadgen::sweep::{run_sweep, SweepLevels};
use tally_loadgen::target::Liveness;
use tally_loadgen::{Distribution, Pacing, WorkloadName};

#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {
    /// Workload: ubin (interbank RTGS with a liquidity squeeze), vat (tax-inclusive retail
    /// prices and tax-exclusive business invoices, with refunds), mixed, or transfer (plain
    /// transfers between --accounts accounts, all valid: the shape of TigerBeetle's
    /// benchmark). Each keeps its accounts solvent for any run length.
    #[arg(long, default_value = "mixed")]
    workload: WorkloadName,
    /// Accounts of the transfer workload (TigerBeetle: --account-count).
    #[arg(long, default_value_t = tally_loadgen::workload::TRANSFER_ACCOUNTS_DEFAULT)]
    accounts: usize,
    /// Who signs for the transfer workload's accounts: own (a key each, named one by one in
    /// the genesis) or bank (their bank's key; opened as one account range per bank, so
    /// that millions of accounts load in seconds).
    #[arg(long, default_value = "own")]
    custody: tally_loadgen::population::Custody,
    /// How the transfer workload picks accounts: uniform or zipfian (TigerBeetle:
    /// --account-distribution).
    #[arg(long, default_value = "uniform")]
    distribution: Distribution,
    /// Open-loop rate in transactions per second (latency from each intended send time).
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Open-loop arrivals as a Poisson process at --rate (exponential gaps) instead of a
    /// constant spacing.
    #[arg(long)]
    poisson: bool,
    /// Closed loop: as fast as the node takes them, at most --in-flight unacknowledged
    /// (maximum throughput; --rate is ignored).
    #[arg(long)]
    closed_loop: bool,
    /// Closed loop: most transactions in flight.
    #[arg(long, default_value_t = 65_536)]
    in_flight: usize,
    /// Closed loop: most transactions sent (the run ends at --duration or when they are).
    #[arg(long, default_value_t = 300_000)]
    closed_loop_tx_count: usize,
    /// Transactions signed before the clock starts; a longer run signs the rest on all cores
    /// while it goes, never more than this many ahead of the sender (memory stays bounded),
    /// and says so when its signing, not the node, was the limit.
    #[arg(long, default_value_t = tally_loadgen::session::SIGN_AHEAD_DEFAULT)]
    sign_ahead: usize,
    /// Seconds of load (sending stops then; the last acknowledgements are awaited).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start kept out of the latency figures.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Seed of the population (keys) and of the transaction stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Banks in the population.
    #[arg(long, default_value_t = 20)]
    banks: usize,
    /// Percent of deliberately invalid transactions (bad signature, wrong signer, unknown
    /// account), so that rejection paths run under load.
    #[arg(long, default_value_t = 0)]
    invalid_pct: u32,
    /// First transaction id minus one; defaults to a value derived from the clock so that
    /// reruns against a long-lived node do not reuse ids.
    #[arg(long)]
    id_base: Option<u128>,
    /// Address of a running node (`tally node`), or the addresses of several (the validators
    /// of `tally cluster up`), comma-separated or the flag repeated: batches go to the nodes
    /// in turn. Without it a node is started in this process.
    #[arg(long, alias = "target", value_delimiter = ',', num_args = 1)]
    node: Vec<String>,
    /// The identity to connect with (e.g. DIR/participants/central-bank.identity of `tally
    /// cluster init`).
    #[arg(long, requires = "node")]
    identity: Option<std::path::PathBuf>,
    /// Connect over plain TCP, without TLS (to a node run with --insecure-plaintext).
    #[arg(long, requires = "node", conflicts_with = "identity")]
    insecure_plaintext: bool,
    /// Connections to each node (load is spread over them in turn; TigerBeetle: --clients).
    #[arg(long, alias = "clients", default_value_t = 4, requires = "node")]
    connections: usize,
    /// Seconds a node may stay silent while transactions await results before it is probed
    /// (a status query, answered within the same time): one that does not answer is lost.
    /// With one node that ends the run; with several the others take its load and what it
    /// did not answer.
    #[arg(long, default_value_t = 1.5, requires = "node")]
    node_timeout: f64,
    /// Run the workload at each of these levels in turn and write sweep.txt, sweep.json and
    /// sweep.svg (p50/p99 latency against acknowledged throughput) into --out: in-flight
    /// depths with --closed-loop, rates in tx/s otherwise; comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1, requires = "out")]
    sweep: Vec<f64>,
    /// The genesis the nodes run, when it is this workload's population with other
    /// validators (DIR/genesis.toml of `tally cluster init`).
    #[arg(long, requires = "node")]
    genesis: Option<PathBuf>,
    /// Data directory of the in-process node (kept); a temporary one otherwise.
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// Signature backend of the in-process node: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    backend: Backend,
    /// Write summary.txt, report.json, latency.hlog (HdrHistogram log) and report.html here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Save the signed workload to this file (replay it later with --replay).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Run the workload saved in this file instead of generating one.
    #[arg(long, conflicts_with = "record")]
    replay: Option<PathBuf>,
    /// Write the genesis of this workload's population to this file and exit (start a node
    /// with it, then point the load generator at the node).
    #[arg(long)]
    write_genesis: Option<PathBuf>,
    /// Most transactions in one submission.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Append one line `id code height` per acknowledgement to this file (height -1: none),
    /// flushed every few milliseconds.
    #[arg(long)]
    ack_log: Option<PathBuf>,
    /// Print the JSON report to standard output instead of the text summary.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn seconds(value: f64, flag: &str, allow_zero: bool) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0)),
        "{flag} must be a {} number of seconds, got {value}",
        if allow_zero {
            "non-negative"
        } else {
            "positive"
        }
    );
    Ok(Duration::from_secs_f64(value))
}

pub fn run(args: &LoadgenArgs) -> anyhow::Result<ExitCode> {
    let pacing = if args.closed_loop {
        anyhow::ensure!(args.in_flight > 0, "--in-flight must be at least 1");
        Pacing::Closed {
            in_flight_tx_max: args.in_flight,
        }
    } else {
        anyhow::ensure!(
            args.rate.is_finite() && args.rate > 0.0,
            "--rate must be a positive number of transactions per second, got {}",
            args.rate
        );
        if args.poisson {
            Pacing::Poisson {
                rate_per_s: args.rate,
                seed: args.seed,
            }
        } else {
            Pacing::Fixed {
                rate_per_s: args.rate,
            }
        }
    };
    anyhow::ensure!(args.banks >= 2, "--banks must be at least 2");
    anyhow::ensure!(
        args.invalid_pct <= 100,
        "--invalid-pct is a percentage (0..=100), got {}",
        args.invalid_pct
    );
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.sign_ahead > 0, "--sign-ahead must be at least 1");
    tally_loadgen::session::check_population(args.workload, args.accounts, args.custody)
        .map_err(anyhow::Error::msg)?;
    let node_timeout = seconds(args.node_timeout, "--node-timeout", false)?;
    if let Some(bad) = args
        .sweep
        .iter()
        .find(|level| !(level.is_finite() && **level > 0.0))
    {
        anyhow::bail!("--sweep levels must be positive numbers, got {bad}");
    }
    if args.closed_loop {
        if let Some(bad) = args.sweep.iter().find(|level| level.fract() != 0.0) {
            anyhow::bail!("--sweep with --closed-loop takes whole in-flight depths, got {bad}");
        }
    }
    let duration = seconds(args.duration, "--duration", false)?;
    let warmup = seconds(args.warmup, "--warmup", true)?;
    anyhow::ensure!(
        warmup < duration,
        "--warmup ({}) must be shorter than --duration ({})",
        args.warmup,
        args.duration
    );
    let id_base = args.id_base.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        now << 32
    });
    let options = LoadgenOptions {
        workload: args.workload,
        seed: args.seed,
        banks: args.banks,
        accounts: args.accounts,
        custody: args.custody,
        distribution: args.distribution,
        invalid_pct: args.invalid_pct,
        pacing,
        duration,
        warmup,
        closed_loop_tx_count: args.closed_loop_tx_count,
        sign_ahead: args.sign_ahead,
        id_base,
        target: if args.node.is_empty() {
            TargetChoice::InProcess {
                data_dir: args.data_dir.clone(),
                backend: args.backend,
            }
        } else {
            anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
            if let Some(empty) = args.node.iter().position(|a| a.trim().is_empty()) {
                anyhow::bail!(
                    "--node: address {} of the list is empty (give HOST:PORT[,HOST:PORT...])",
                    empty + 1
                );
            }
            TargetChoice::Remote {
                addresses: args.node.iter().map(|a| a.trim().to_string()).collect(),
                connections: args.connections,
                client: tally_engine::net::ClientOptions {
                    tls: super::client_tls(args.identity.as_deref(), args.insecure_plaintext)?,
                    ..tally_engine::net::ClientOptions::default()
                },
            }
        },
        out_dir: args.out.clone(),
        record: args.record.clone(),
        replay: args.replay.clone(),
        submit_batch_tx_max: args.batch,
        progress: !args.quiet && !args.json,
        ack_log: args.ack_log.clone(),
        liveness: Liveness {
            silence_max: node_timeout,
            probe_timeout: node_timeout,
            ..Liveness::default()
        },
        genesis: args.genesis.clone(),
    };
    if let Some(path) = &args.write_genesis {
        let hash = write_genesis(&options, path)?;
        println!(
            "wrote the genesis of workload {} (seed {}, {} banks) to {}: genesis hash {}",
            args.workload.name(),
            args.seed,
            args.banks,
            path.display(),
            hex::encode(hash)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !args.sweep.is_empty() {
        let levels = if args.closed_loop {
            SweepLevels::InFlight(args.sweep.iter().map(|level| *level as usize).collect())
        } else {
            SweepLevels::Rates {
                rates: args.sweep.clone(),
                poisson: args.poisson,
            }
        };
        let out = args.out.as_ref().expect("clap requires --out with --sweep");
        let outcome = run_sweep(&options, &levels, out)?;
        print!("{}", tally_loadgen::sweep::table(&outcome.points));
        println!(
            "sweep: {}, {}, {}",
            outcome.table.display(),
            outcome.json.display(),
            outcome.plot.display()
        );
        let stopped = outcome.points.iter().any(|point| point.stopped.is_some());
        return Ok(if stopped {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let outcome = run_loadgen(&options)?;
    if outcome.result.ok_share_below_promise() {
        eprint!(
            "\n{}\n",
            tally_loadgen::report::ok_share_lines(&outcome.result)
        );
    }
    if args.json {
        let report = tally_loadgen::report::Report::new(&outcome.workload, &outcome.result);
        println!("{}", report.to_json());
    } else {
        if outcome.streamed {
            println!(
                "workload {} (up to {} transactions, signed while the run went)",
                outcome.workload, outcome.signed_tx_count
            );
        } else {
            println!(
                "workload {} ({} transactions signed before the clock started)",
                outcome.workload, outcome.signed_tx_count
            );
        }
        print!("{}", summary(&outcome.result));
        if let Some(written) = &outcome.written {
            println!(
                "reports: {}, {}, {}, {}",
                written.summary.display(),
                written.json.display(),
                written.hdr_log.display(),
                written.html.display()
            );
        }
    }
    Ok(if outcome.result.stopped.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
