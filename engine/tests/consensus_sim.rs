//! The deterministic cluster simulator over many seeds: safety, one chain, valid
//! certificates, liveness after healing and one state root per height, with loss, delay,
//! reordering, duplication, partitions, crashes with restarts from persisted state, and
//! Byzantine equivocators, and validator sets that change by epoch (standby nodes join as
//! others leave).
//!
//! Every validator executes the blocks it decides on its own [`Ledger`] (built from a test
//! genesis): the block behind a decided value is a deterministic list of signed transfers,
//! interbank payments (which queue, settle from the queue or expire at the business-day
//! cut-off), taxed payments, pledges and redemptions, and records that fail, drawn from a
//! ChaCha generator seeded by the value. The simulator fails a seed when two honest
//! validators have different state roots at a height; the executor checks the ledger
//! invariants after every block.
//!
//! - `TALLY_SIM_SEEDS=<n>` runs seeds `0..n` (default 1000; scripts/consensus-soak.sh runs
//!   100000 in release mode).
//! - `TALLY_SIM_SEED=<s>` replays seed `s` alone and prints its report.
//! - `TALLY_SIM_SEED_START=<s>` shifts the range to `s..s+n`.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tally_engine::consensus::sim::{
    run, run_with_executor, SimConfig, SimExecutor, SimFailure, SimReport,
};
use tally_engine::consensus::BlockId;
use tally_engine::genesis::{Role, DAY_MS};
use tally_engine::ledger::{Ledger, SettlementEvent};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

const BANKS: [u64; 4] = SIM_BANKS;
const CONSUMERS: [u64; 3] = SIM_CONSUMERS;
const MERCHANT: u64 = SIM_MERCHANT;
/// Blocks per business day: queued payments that do not settle within a few blocks expire.
const BLOCKS_PER_DAY: u64 = 6;

/// Block time of `height`, from the height alone so that every validator agrees.
fn block_time_ms(height: u64) -> u64 {
    1_000 + height * (DAY_MS / BLOCKS_PER_DAY)
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Two different items.
fn pick_two<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> (T, T) {
    let first = rng.random_range(0..items.len());
    let second = (first + rng.random_range(1..items.len())) % items.len();
    (items[first], items[second])
}

/// The block behind the value decided at `height`: a pledge first (always accepted), then 3
/// to 8 records drawn from a generator seeded by the value.
fn block_of(fixture: &Fixture, height: u64, value: &BlockId) -> Vec<TxRecord> {
    let mut rng = ChaCha8Rng::from_seed(*value);
    let id = |index: u64| (u128::from(height) << 32) | u128::from(index + 1);
    let bank = pick(&mut rng, &BANKS);
    let pledge = rng.random_range(1..=300);
    let mut block = vec![fixture.tx(id(0), TxKind::Pledge, CENTRAL_BANK, bank, pledge)];
    let count = rng.random_range(3..=8u64);
    for index in 1..=count {
        let record = match rng.random_range(0..10u32) {
            // RTGS payments, some urgent: they queue when the payer lacks liquidity.
            0..=3 => {
                let (payer, payee) = pick_two(&mut rng, &BANKS);
                let amount = rng.random_range(50..=600);
                let flags = if rng.random_range(0..4u32) == 0 {
                    TxFlags::URGENT
                } else {
                    0
                };
                fixture.custom(
                    payer,
                    id(index),
                    TxKind::Transfer,
                    payer,
                    payee,
                    amount,
                    |f| f.flags = TxFlags(flags),
                )
            }
            4 => {
                let (payer, payee) = pick_two(&mut rng, &CONSUMERS);
                let amount = rng.random_range(1..=2_500);
                fixture.tx(id(index), TxKind::Transfer, payer, payee, amount)
            }
            5 | 6 => {
                let payer = pick(&mut rng, &CONSUMERS);
                let amount = rng.random_range(1..=1_500);
                fixture.tx(id(index), TxKind::TaxedPayment, payer, MERCHANT, amount)
            }
            7 => {
                let bank = pick(&mut rng, &BANKS);
                let amount = rng.random_range(1..=500);
                fixture.tx(id(index), TxKind::Redeem, bank, CENTRAL_BANK, amount)
            }
            // Records that fail: an observer as payee, the block's pledge id again.
            8 => {
                let payer = pick(&mut rng, &CONSUMERS);
                fixture.tx(id(index), TxKind::Transfer, payer, OBSERVER, 1)
            }
            _ => fixture.tx(id(0), TxKind::Pledge, CENTRAL_BANK, bank, 1),
        };
        block.push(record);
    }
    block
}

/// What the executed blocks did, over all validators.
#[derive(Clone, Copy, Debug, Default)]
struct ExecutionStats {
    blocks: u64,
    settled: u64,
    queued: u64,
    failed: u64,
    settled_from_queue: u64,
    expired: u64,
}

impl ExecutionStats {
    fn add(&mut self, other: &ExecutionStats) {
        self.blocks += other.blocks;
        self.settled += other.settled;
        self.queued += other.queued;
        self.failed += other.failed;
        self.settled_from_queue += other.settled_from_queue;
        self.expired += other.expired;
    }
}

/// One ledger per validator; blocks are built once per decided value and shared.
struct LedgerExecutor<'f> {
    fixture: &'f Fixture,
    ledgers: Vec<Ledger>,
    next_height: Vec<u64>,
    blocks: HashMap<BlockId, Vec<TxRecord>>,
    /// (validator, height) at which that validator leaves out the block's first record.
    diverge: Option<(usize, u64)>,
    stats: ExecutionStats,
    /// Broken invariants, with validator and height.
    violations: Vec<String>,
}

impl<'f> LedgerExecutor<'f> {
    /// Each validator's ledger is built from the genesis on its own (not cloned), so each has
    /// its own hash-map seeds, as nodes in separate processes do: a state root that depended
    /// on a hash map's iteration order would differ between validators.
    fn new(fixture: &'f Fixture, validator_count: usize) -> Self {
        LedgerExecutor {
            fixture,
            ledgers: (0..validator_count)
                .map(|_| Ledger::from_genesis(&fixture.genesis))
                .collect(),
            next_height: vec![0; validator_count],
            blocks: HashMap::new(),
            diverge: None,
            stats: ExecutionStats::default(),
            violations: Vec::new(),
        }
    }

    fn check_invariants(&mut self, node: usize, height: u64) {
        let ledger = &self.ledgers[node];
        if ledger.sum_of_balances() != ledger.genesis_total() {
            self.violations.push(format!(
                "validator {node} height {height}: balances sum to {} but the genesis total is {}",
                ledger.sum_of_balances(),
                ledger.genesis_total()
            ));
        }
        for account in ledger.accounts() {
            if account.role != Role::CentralBank && account.available() < 0 {
                self.violations.push(format!(
                    "validator {node} height {height}: account {} has {} available",
                    account.id,
                    account.available()
                ));
            }
        }
        if ledger.money_in_circulation() < 0 {
            self.violations.push(format!(
                "validator {node} height {height}: {} in circulation",
                ledger.money_in_circulation()
            ));
        }
    }
}

impl SimExecutor for LedgerExecutor<'_> {
    fn execute(&mut self, node: usize, height: u64, value: &BlockId) -> [u8; 32] {
        if height != self.next_height[node] {
            self.violations.push(format!(
                "validator {node} executed height {height}, expected height {}",
                self.next_height[node]
            ));
        }
        self.next_height[node] = height + 1;
        let fixture = self.fixture;
        let block = self
            .blocks
            .entry(*value)
            .or_insert_with(|| block_of(fixture, height, value));
        let skip = usize::from(self.diverge == Some((node, height)));
        let ledger = &mut self.ledgers[node];
        ledger.begin_block(height, block_time_ms(height));
        let mut results: Vec<ResultCode> =
            block[skip..].iter().map(|tx| ledger.execute(tx)).collect();
        let events = ledger.end_block(&mut results);
        let stats = &mut self.stats;
        stats.blocks += 1;
        for event in events {
            match event {
                SettlementEvent::SettledFromQueue { .. } => stats.settled_from_queue += 1,
                SettlementEvent::QueueExpired { .. } => stats.expired += 1,
                SettlementEvent::PendingExpired { .. } => {}
                // the business day's events: this genesis has no calendar
                other => panic!("{other:?} without a calendar"),
            }
        }
        for code in results {
            match code {
                ResultCode::Queued => stats.queued += 1,
                code if code.is_ok() => stats.settled += 1,
                _ => stats.failed += 1,
            }
        }
        self.check_invariants(node, height);
        self.ledgers[node].state_root()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.parse() {
        Ok(value) => Some(value),
        Err(_) => panic!("{name}={text:?} is not a number"),
    }
}

/// Runs `seed` with a ledger per validator; a broken ledger invariant fails it too.
fn run_seed(fixture: &Fixture, seed: u64) -> Result<(SimReport, ExecutionStats), String> {
    let config = SimConfig::for_seed(seed);
    let mut executor = LedgerExecutor::new(fixture, config.node_count());
    let report = run_with_executor(&config, &mut executor).map_err(|f| f.to_string())?;
    if !executor.violations.is_empty() {
        return Err(format!("LEDGER: {}", executor.violations.join("; ")));
    }
    Ok((report, executor.stats))
}

#[test]
fn simulated_clusters_are_safe_live_and_agree_on_state() {
    let fixture = sim_fixture();
    if let Some(seed) = env_u64("TALLY_SIM_SEED") {
        let config = SimConfig::for_seed(seed);
        println!("replaying seed {seed}: {config:?}");
        match run_seed(&fixture, seed) {
            Ok((report, stats)) => println!("seed {seed} passed: {report:?}\n{stats:?}"),
            Err(failure) => panic!("seed {seed} failed: {failure}"),
        }
        return;
    }
    let seed_count = env_u64("TALLY_SIM_SEEDS").unwrap_or(1000);
    let seed_start = env_u64("TALLY_SIM_SEED_START").unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(seed_start);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(Vec::<SimReport>::new());
    let execution = Mutex::new(ExecutionStats::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut reports = Vec::new();
                let mut stats = ExecutionStats::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seed_start + seed_count {
                        break;
                    }
                    match run_seed(&fixture, seed) {
                        Ok((report, seed_stats)) => {
                            reports.push(report);
                            stats.add(&seed_stats);
                        }
                        Err(failure) => {
                            eprintln!(
                                "seed {seed} FAILED: {failure}\n  replay: TALLY_SIM_SEED={seed} \
                                 cargo test -p tally-engine --test consensus_sim -- --nocapture"
                            );
                            failures.lock().expect("no panics hold the lock").push(seed);
                        }
                    }
                }
                totals
                    .lock()
                    .expect("no panics hold the lock")
                    .extend(reports);
                execution
                    .lock()
                    .expect("no panics hold the lock")
                    .add(&stats);
            });
        }
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    let reports = totals.into_inner().expect("threads joined");
    let failures = failures.into_inner().expect("threads joined");
    let heights: u64 = reports
        .iter()
        .map(|r| r.heights.iter().min().copied().unwrap_or(0))
        .sum();
    let evidence: u64 = reports.iter().map(|r| r.evidence).sum();
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    let round_max = reports.iter().map(|r| r.round_max).max().unwrap_or(0);
    let with_byzantine = reports.iter().filter(|r| r.byzantine_count > 0).count();
    let with_set_changes = reports
        .iter()
        .filter(|r| r.standby_count > 0 && r.epoch_max > 0)
        .count();
    let events: u64 = reports.iter().map(|r| r.events).sum();
    let roots_compared: u64 = reports.iter().map(|r| r.roots_compared).sum();
    let execution = execution.into_inner().expect("threads joined");
    println!(
        "{} seeds from {seed_start} on {threads} threads in {elapsed_s:.1} s ({:.0} seeds/s, \
         {:.0} events/s): {heights} heights decided (min per run, summed), {crashes} crashes, \
         {with_byzantine} runs with Byzantine validators, {with_set_changes} with validator-set \
         changes, {evidence} evidence, highest round \
         {round_max}; {} blocks executed, {roots_compared} honest state roots compared, \
         {execution:?}",
        reports.len(),
        reports.len() as f64 / elapsed_s,
        events as f64 / elapsed_s,
        execution.blocks,
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert_eq!(reports.len() as u64, seed_count);
    assert_eq!(
        execution.blocks,
        reports.iter().flat_map(|r| &r.heights).sum::<u64>(),
        "every validator executes each block it decides exactly once"
    );
    // The faults and the settlement paths must actually have been exercised, or the run
    // proves little.
    if seed_count >= 100 {
        assert!(roots_compared > 0, "no state roots compared");
        assert!(execution.settled > 0, "{execution:?}");
        assert!(execution.queued > 0, "{execution:?}");
        assert!(execution.failed > 0, "{execution:?}");
        assert!(execution.settled_from_queue > 0, "{execution:?}");
        assert!(execution.expired > 0, "{execution:?}");
        assert!(crashes > 0, "no validator ever crashed");
        assert!(with_set_changes > 0, "no run changed its validator set");
        assert!(
            evidence > 0,
            "Byzantine validators never caught equivocating"
        );
    }
}

/// The executor only observes decisions: a run with one makes exactly the decisions (and
/// message schedule) of a run without, and executes every decided block once per validator.
#[test]
fn an_executor_does_not_change_the_run() {
    let fixture = sim_fixture();
    for seed in 0..24 {
        let config = SimConfig::for_seed(seed);
        let plain = run(&config).unwrap_or_else(|f| panic!("seed {seed}: {f}"));
        assert_eq!(plain.blocks_executed, 0);
        assert_eq!(plain.roots_compared, 0);
        let (mut executed, _) =
            run_seed(&fixture, seed).unwrap_or_else(|f| panic!("seed {seed}: {f}"));
        assert_eq!(
            executed.blocks_executed,
            executed.heights.iter().sum::<u64>(),
            "seed {seed}"
        );
        let honest = config.node_count() - config.byzantine_count;
        let honest_decisions: u64 = executed.heights[..honest].iter().sum();
        let heights_decided = *executed.heights[..honest].iter().max().expect("honest");
        assert_eq!(
            executed.roots_compared,
            honest_decisions - heights_decided,
            "seed {seed}: every honest root but the first of each height is compared"
        );
        executed.blocks_executed = 0;
        executed.roots_compared = 0;
        assert_eq!(executed, plain, "seed {seed}");
    }
}

/// The state-root check can fail: validator 2 (honest in every configuration) leaves out
/// the first record (an accepted pledge) of the block at height 3.
#[test]
fn a_diverging_validator_fails_the_state_root_check() {
    let fixture = sim_fixture();
    for seed in 0..12 {
        let config = SimConfig::for_seed(seed);
        assert!(config.byzantine_count < config.validator_count - 2);
        let mut executor = LedgerExecutor::new(&fixture, config.node_count());
        executor.diverge = Some((2, 3));
        let failure = run_with_executor(&config, &mut executor)
            .expect_err(&format!("seed {seed}: the divergence went unnoticed"));
        let SimFailure::StateRoot {
            seed: failed_seed,
            height,
            first,
            second,
            first_root,
            second_root,
        } = failure.clone()
        else {
            panic!("seed {seed}: expected a state-root failure, got {failure}");
        };
        assert_eq!((failed_seed, height), (seed, 3), "{failure}");
        assert!(first == 2 || second == 2, "{failure}");
        assert_ne!(first, second, "{failure}");
        assert_ne!(first_root, second_root, "{failure}");
        let text = failure.to_string();
        assert!(text.contains(&format!("seed {seed}")), "{text}");
        assert!(text.contains(&hex::encode(first_root)), "{text}");
        assert!(executor.violations.is_empty(), "{:?}", executor.violations);
    }
}
