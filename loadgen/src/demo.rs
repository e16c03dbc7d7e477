//! `tally demo`: a whole run of a network of validators that needs nothing else.
//!
//! Makes a data directory and a genesis (a central bank, banks, a tax authority, merchants
//! and consumers, and the validators), starts the validators in-process, each a whole node
//! with its own log, linked over TLS on loopback with certificates of a CA made for the run
//! (engine::validator::cluster), drives signed
//! transactions at them in turn, and checks afterwards that money is conserved, that every
//! validator finalized the same blocks (same state root at each common height) and that
//! each one's state matches a replay of its log.

use crate::driver::{run, RunConfig, RunResult};
use crate::pacing::Pacing;
use crate::population::{Population, PopulationSpec};
use crate::target::ClusterTarget;
use crate::workload::{presign, TransferMix};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tally_engine::genesis::Role;
use tally_engine::node::Backend;
use tally_engine::node::{replay_dir, Node, NodeConfig, NodeError};
use tally_engine::tax::TaxBasis;
use tally_engine::validator::{cluster, ValidatorConfig};

/// Options of a demo run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub duration: Duration,
    /// Open-loop rate; `None` drives the node as fast as it takes transactions.
    pub rate_per_s: Option<f64>,
    /// Data directory; `None` makes a temporary one, removed afterwards.
    pub data_dir: Option<PathBuf>,
    pub population: PopulationSpec,
    pub mix: TransferMix,
    pub backend: Backend,
    /// Transactions signed before the clock starts when no rate bounds the run.
    pub closed_loop_tx_count: usize,
    pub progress: bool,
    /// Record every acknowledgement in this file (see `RunConfig::ack_log`).
    pub ack_log: Option<PathBuf>,
    /// Validators (4 tolerates one faulty validator); 0 runs one node that builds blocks
    /// alone, without consensus, in the data directory itself.
    pub validators: usize,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            duration: Duration::from_secs(10),
            rate_per_s: None,
            data_dir: None,
            population: PopulationSpec::default(),
            mix: TransferMix::default(),
            backend: Backend::Cpu,
            closed_loop_tx_count: 600_000,
            progress: false,
            ack_log: None,
            validators: 4,
        }
    }
}

/// What the demo measured and checked.
pub struct DemoReport {
    pub run: RunResult,
    pub data_dir: PathBuf,
    /// Each validator's final height and state root, in validator order.
    pub validators: Vec<(u64, [u8; 32])>,
    /// Whether every validator's log holds the same blocks up to the lowest final height.
    pub validators_agree: bool,
    pub signed_tx_count: usize,
    pub signing_time: Duration,
    pub height: u64,
    pub state_root: [u8; 32],
    pub genesis_total: i128,
    pub final_total: i128,
    pub money_in_circulation_before: i128,
    pub money_in_circulation_after: i128,
    /// Height and state root a fresh replay of the log reached.
    pub replayed_height: u64,
    pub replayed_state_root: [u8; 32],
    /// Tax since genesis, one line per basis.
    pub tax: Vec<TaxLine>,
    /// The tax accounts' (the tax authority's and every tax sub-account's) balances added up,
    /// at genesis and at the end.
    pub tax_accounts_at_genesis: i128,
    pub tax_accounts_at_end: i128,
    /// What moved the tax accounts besides taxed payments and refunds: the tax authority's
    /// own payments (the workload spends what it collects, so money keeps circulating),
    /// read from the log.
    pub tax_accounts_other: i128,
}

/// Tax on one basis since genesis (the ledger's tax report over every payee and day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaxLine {
    pub basis: TaxBasis,
    pub payments: u64,
    /// Tax collected.
    pub tax: u128,
    pub refunds: u64,
    /// Tax reversed by refunds.
    pub refunded_tax: u128,
}

impl DemoReport {
    /// Sum of every balance is the same before and after.
    pub fn conserved(&self) -> bool {
        self.genesis_total == self.final_total
    }

    pub fn replay_matches(&self) -> bool {
        self.replayed_height == self.height && self.replayed_state_root == self.state_root
    }

    /// Tax collected less tax reversed, over every basis.
    pub fn net_tax(&self) -> i128 {
        self.tax
            .iter()
            .map(|line| line.tax as i128 - line.refunded_tax as i128)
            .sum()
    }

    /// The tax report equals the tax accounts' movement less the tax authority's own
    /// payments.
    pub fn tax_reconciled(&self) -> bool {
        self.net_tax()
            == self.tax_accounts_at_end - self.tax_accounts_at_genesis - self.tax_accounts_other
    }
}

/// Tax per basis over the whole ledger, and the tax accounts' balances added up.
fn tax_lines(ledger: &tally_engine::ledger::Ledger) -> (Vec<TaxLine>, i128) {
    let mut lines: Vec<TaxLine> = TaxBasis::ALL
        .iter()
        .map(|&basis| TaxLine {
            basis,
            payments: 0,
            tax: 0,
            refunds: 0,
            refunded_tax: 0,
        })
        .collect();
    for row in ledger.tax_report(None, 0, u64::MAX) {
        let line = lines
            .iter_mut()
            .find(|line| line.basis == row.basis)
            .expect("every basis has a line");
        line.payments += row.totals.payments;
        line.tax += row.totals.tax;
        line.refunds += row.totals.refunds;
        line.refunded_tax += row.totals.refunded_tax;
    }
    lines.retain(|line| line.payments > 0);
    let tax_accounts = ledger
        .accounts()
        .iter()
        .filter(|a| matches!(a.role, Role::TaxAuthority | Role::TaxSubAccount))
        .map(|a| i128::from(a.balance))
        .sum();
    (lines, tax_accounts)
}

/// Errors of a demo run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot make a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot bind the validators' loopback ports: {0}")]
    Bind(std::io::Error),
    #[error("cannot make the validators' certificates: {0}")]
    Tls(String),
    #[error("reading validator {index}'s log for the comparison: {reason}")]
    Compare { index: usize, reason: String },
}

/// Runs the demo.
pub fn run_demo(options: &DemoOptions) -> Result<DemoReport, DemoError> {
    let temporary = match options.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("tally-demo-")
                .tempdir()
                .map_err(DemoError::TempDir)?,
        ),
    };
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| temporary.as_ref().expect("made above").path().to_path_buf());
    let mut population = Population::generate(&options.population);
    let mut template = NodeConfig::new(data_dir.clone());
    template.backend = options.backend;
    let configs = if options.validators == 0 {
        vec![template]
    } else {
        let keys = cluster::validator_keys(options.validators, options.mix.seed);
        cluster::set_validators(&mut population.genesis, &keys);
        let mut validator = ValidatorConfig::new(
            keys[0],
            "127.0.0.1:0".parse().expect("an address"),
            Vec::new(),
        );
        validator.empty_block_interval = Duration::from_millis(200);
        template.validator = Some(validator);
        let mut configs =
            cluster::loopback_configs(&template, &data_dir, &keys).map_err(DemoError::Bind)?;
        cluster::loopback_tls(&mut configs, population.genesis.network_id)
            .map_err(DemoError::Tls)?;
        configs
    };
    let nodes = cluster::start(&population.genesis, &configs)?;
    let money_in_circulation_before = nodes[0].replayed_money_in_circulation();
    let replayed_height = nodes.iter().map(|n| n.replayed_height()).max().unwrap_or(0);
    // A rerun on the same data directory continues after the ids already used.
    let id_base = (u128::from(replayed_height) << 64) | (u128::from(options.mix.seed) << 32);
    let count = match options.rate_per_s {
        Some(rate) => (rate * options.duration.as_secs_f64()).ceil() as usize + 1,
        None => options.closed_loop_tx_count,
    };
    let mut mix = options.mix;
    mix.seed ^= replayed_height;
    if options.progress {
        eprintln!("signing {count} transactions on all cores before the clock starts ...");
    }
    let signing_start = Instant::now();
    let txs = presign(&population, &mix, id_base, count);
    let signing_time = signing_start.elapsed();
    let target = ClusterTarget::new(nodes.iter().map(Node::handle).collect());
    let run_config = RunConfig {
        pacing: match options.rate_per_s {
            Some(rate_per_s) => Pacing::Fixed { rate_per_s },
            None => RunConfig::default().pacing,
        },
        duration: options.duration,
        progress: options.progress,
        ack_log: options.ack_log.clone(),
        ..RunConfig::default()
    };
    let result = run(&target, &txs, &run_config);
    let outcomes: Vec<_> = nodes.into_iter().map(|node| node.shutdown()).collect();
    let validators: Vec<(u64, [u8; 32])> =
        outcomes.iter().map(|o| (o.height, o.state_root)).collect();
    let validators_agree = same_blocks(&configs)?;
    // The first validator speaks for the run; the others are compared with it above.
    let outcome = outcomes.into_iter().next().expect("at least one validator");
    let replayed = replay_dir(&population.genesis, &configs[0])?;
    let (tax, tax_accounts_at_end) = tax_lines(&outcome.ledger);
    let tax_accounts: Vec<&tally_engine::genesis::AccountSpec> = population
        .genesis
        .accounts
        .iter()
        .filter(|a| matches!(a.role, Role::TaxAuthority | Role::TaxSubAccount))
        .collect();
    let tax_accounts_at_genesis = tax_accounts.iter().map(|a| i128::from(a.balance)).sum();
    let tax_ids: Vec<u64> = tax_accounts.iter().map(|a| a.id).collect();
    let tax_accounts_other = other_tax_account_movement(&configs[0], &tax_ids)
        .map_err(|reason| DemoError::Compare { index: 0, reason })?;
    Ok(DemoReport {
        run: result,
        data_dir,
        validators,
        validators_agree,
        signed_tx_count: txs.len(),
        signing_time,
        height: outcome.height,
        state_root: outcome.state_root,
        genesis_total: outcome.ledger.genesis_total(),
        final_total: outcome.ledger.sum_of_balances(),
        money_in_circulation_before,
        money_in_circulation_after: outcome.ledger.money_in_circulation(),
        replayed_height: replayed.height,
        replayed_state_root: replayed.ledger.state_root(),
        tax,
        tax_accounts_at_genesis,
        tax_accounts_at_end,
        tax_accounts_other,
    })
}

/// The net amount settled into the tax accounts `tax_ids` by records of the log other than
/// taxed payments and refunds (the tax authority's own payments).
fn other_tax_account_movement(config: &NodeConfig, tax_ids: &[u64]) -> Result<i128, String> {
    use tally_engine::result::ResultCode;
    use tally_engine::tx::TxKind;
    let log = tally_engine::log::Log::open(&config.data_dir.join("log"), config.log)
        .map_err(|e| e.to_string())?;
    let mut moved = 0i128;
    for item in log.entries(0).map_err(|e| e.to_string())? {
        let (_, entry) = item.map_err(|e| e.to_string())?;
        let view = tally_engine::block::decode_entry(entry).map_err(|e| e.to_string())?;
        for (record, &code) in view.records.iter().zip(view.results) {
            let settled = ResultCode::from_wire(code).is_some_and(|code| code.is_ok());
            let kind = record.kind();
            if !settled || matches!(kind, Some(TxKind::TaxedPayment | TxKind::Refund)) {
                continue;
            }
            let amount = i128::from(record.amount());
            if tax_ids.contains(&record.credit_account()) {
                moved += amount;
            }
            if tax_ids.contains(&record.debit_account()) {
                moved -= amount;
            }
        }
    }
    Ok(moved)
}

/// Whether every validator's log holds the same block hashes up to the shortest log.
fn same_blocks(configs: &[NodeConfig]) -> Result<bool, DemoError> {
    let mut chains = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        let compare = |reason: String| DemoError::Compare { index, reason };
        let log = tally_engine::log::Log::open(&config.data_dir.join("log"), config.log)
            .map_err(|e| compare(e.to_string()))?;
        let mut hashes = Vec::new();
        for item in log.entries(0).map_err(|e| compare(e.to_string()))? {
            let (_, entry) = item.map_err(|e| compare(e.to_string()))?;
            let view =
                tally_engine::block::decode_entry(entry).map_err(|e| compare(e.to_string()))?;
            hashes.push(view.header.hash());
        }
        chains.push(hashes);
    }
    let common = chains.iter().map(Vec::len).min().unwrap_or(0);
    Ok(chains
        .windows(2)
        .all(|pair| pair[0][..common] == pair[1][..common]))
}
