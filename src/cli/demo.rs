//! `tally demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_engine::node::Backend;
use tally_loadgen::demo::{run_demo, DemoOptions};
use tally_loadgen::report::summary;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open-loop rate in transactions per second, latency measured from each intended send
    /// time.
    #[arg(long, default_value_t = 4_000.0)]
    rate: f64,
    /// Ignore --rate and drive the node as fast as it takes transactions (maximum
    /// throughput; latency then measures queueing in the deep window).
    #[arg(long)]
    closed_loop: bool,
    /// Data directory (kept afterwards); without it a temporary one is used and removed.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Signature backend: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    backend: Backend,
    /// Banks in the generated genesis.
    #[arg(long, default_value_t = 20)]
    banks: usize,
    /// Merchants in the generated genesis.
    #[arg(long, default_value_t = 200)]
    merchants: usize,
    /// Consumers in the generated genesis.
    #[arg(long, default_value_t = 400)]
    consumers: usize,
    /// Transactions signed up front for a closed-loop run.
    #[arg(long, default_value_t = 600_000)]
    closed_loop_tx_count: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Append `id code height` for every acknowledgement to this file (for crash tests).
    #[arg(long)]
    ack_log: Option<PathBuf>,
    /// Validators of the network, each a whole node in this process, linked over TCP on
    /// loopback, data in DATA_DIR/validator-N (4 tolerates one faulty validator); 0 runs
    /// one node that builds blocks alone, data in DATA_DIR itself.
    #[arg(long, default_value_t = 4)]
    validators: usize,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be a positive number of seconds"
    );
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be a positive number of transactions per second"
    );
    let rate = (!args.closed_loop).then_some(args.rate);
    anyhow::ensure!(args.banks >= 2, "--banks must be at least 2");
    anyhow::ensure!(
        args.merchants >= 1 && args.consumers >= 2,
        "--merchants must be at least 1 and --consumers at least 2"
    );
    let mut options = DemoOptions {
        duration: Duration::from_secs_f64(args.duration),
        rate_per_s: rate,
        data_dir: args.data_dir.clone(),
        backend: args.backend,
        closed_loop_tx_count: args.closed_loop_tx_count,
        progress: !args.quiet,
        ack_log: args.ack_log.clone(),
        validators: args.validators,
        ..DemoOptions::default()
    };
    options.population.banks = args.banks;
    options.population.merchants = args.merchants;
    options.population.consumers = args.consumers;
    let population = &options.population;
    println!(
        "tally demo: {} validators (0: one node alone), {} banks, {} merchants, {} consumers, backend {}, {} for {:.0} s",
        options.validators,
        population.banks,
        population.merchants,
        population.consumers,
        options.backend,
        rate.map_or("closed loop".to_string(), |r| format!(
            "open loop at {r:.0} tx/s"
        )),
        args.duration
    );
    let report = run_demo(&options)?;
    println!(
        "signed {} transactions in {:.2} s before the clock started",
        report.signed_tx_count,
        report.signing_time.as_secs_f64()
    );
    print!("{}", summary(&report.run));
    if options.mix.invalid_pct > 0 {
        println!(
            "injected on purpose: about {}% of the records are made invalid (a bad signature, a \
             wrong signer, an unknown account) so that the rejection paths run under load; the \
             bad_signature, not_owner and unknown_*_account results above are those",
            options.mix.invalid_pct
        );
    }
    println!(
        "blocks: {}  final state root: {}",
        report.height,
        hex::encode(report.state_root)
    );
    for (index, (height, root)) in report.validators.iter().enumerate() {
        println!(
            "validator {index}: height {height}, state root {}",
            hex::encode(root)
        );
    }
    let lowest = report.validators.iter().map(|(height, _)| *height).min();
    let highest = report.validators.iter().map(|(height, _)| *height).max();
    println!(
        "validators: {}",
        match (report.validators_agree, lowest, highest) {
            (false, _, _) => "LOGS DIFFER".to_string(),
            (true, Some(low), Some(high)) if low < high => format!(
                "every log holds the same blocks up to height {low}; the ones above it ({} \
                 at most) were still being committed by the others when the run stopped",
                high - low
            ),
            (true, _, _) => "every log holds the same final blocks".to_string(),
        }
    );
    // The demo's genesis names no currency: amounts in its units, two minor-unit digits.
    let currency = tally_engine::genesis::CurrencySpec::default();
    let money = |minor: i128| format!("{} units", currency.format(minor));
    println!(
        "money: sum of all balances {} at genesis, {} at the end: {}",
        money(report.genesis_total),
        money(report.final_total),
        if report.conserved() {
            "conserved"
        } else {
            "NOT CONSERVED"
        }
    );
    println!(
        "money in circulation: {} before, {} after (changes only by pledge and redeem)",
        money(report.money_in_circulation_before),
        money(report.money_in_circulation_after)
    );
    let by_basis: Vec<String> = report
        .tax
        .iter()
        .map(|line| format!("{} {}", line.basis, money(line.tax as i128)))
        .collect();
    println!(
        "tax: collected {} on {} payments ({}), {} reversed by {} refunds, net {}; the tax \
         accounts moved {}, of which {} the tax authority's own payments: {}",
        money(report.tax.iter().map(|line| line.tax).sum::<u128>() as i128),
        report.tax.iter().map(|line| line.payments).sum::<u64>(),
        by_basis.join(", "),
        money(
            report
                .tax
                .iter()
                .map(|line| line.refunded_tax)
                .sum::<u128>() as i128
        ),
        report.tax.iter().map(|line| line.refunds).sum::<u64>(),
        money(report.net_tax()),
        money(report.tax_accounts_at_end - report.tax_accounts_at_genesis),
        money(report.tax_accounts_other),
        if report.tax_reconciled() {
            "reconciled"
        } else {
            "NOT RECONCILED"
        }
    );
    println!(
        "replay of the log: height {}, state root {}: {}",
        report.replayed_height,
        hex::encode(report.replayed_state_root),
        if report.replay_matches() {
            "matches"
        } else {
            "DIFFERS"
        }
    );
    if args.data_dir.is_some() {
        println!("data directory kept: {}", report.data_dir.display());
    }
    let healthy = report.conserved()
        && report.tax_reconciled()
        && report.replay_matches()
        && report.validators_agree
        && report.run.stopped.is_none();
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
