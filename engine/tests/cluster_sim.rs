//! The cluster simulator over many seeds: validators running the production consensus
//! stage (driver, pool, block sync, sealing, commit over real log files) under network
//! faults, crashes with lost and torn unsynced writes, and Byzantine validators that
//! propose blocks with a wrong previous-block hash and send conflicting votes; clients
//! submit transfers, taxed payments, interbank payments that queue, pledges and records
//! that fail. Every seed checks safety, durability of acknowledged transactions, votes
//! only after durable state, recovery from each validator's own disk, and liveness.
//!
//! Bugs switched on in the production driver through `InjectedBug` must be caught.
//!
//! - `TALLY_CLUSTER_SIM_SEEDS=<n>` runs seeds `0..n` (default 64);
//! - `TALLY_CLUSTER_SIM_SEED=<s>` replays seed `s` alone and prints its report;
//! - `TALLY_CLUSTER_SIM_SEED_START=<s>` shifts the range to `s..s+n`.

mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tally_engine::consensus::sim::SimRng;
use tally_engine::tx::{TxFlags, TxKind, TxRecord};
use tally_engine::validator::sim::{
    run, ClusterSimConfig, ClusterSimFailure, ClusterSimReport, InjectedBug,
};

const BANKS: [u64; 4] = SIM_BANKS;
const CONSUMERS: [u64; 3] = SIM_CONSUMERS;
const MERCHANT: u64 = SIM_MERCHANT;

fn pick<T: Copy>(rng: &mut SimRng, items: &[T]) -> T {
    items[rng.range(0, items.len() as u64 - 1) as usize]
}

fn pick_two<T: Copy>(rng: &mut SimRng, items: &[T]) -> (T, T) {
    let first = rng.range(0, items.len() as u64 - 1) as usize;
    let second = (first + rng.range(1, items.len() as u64 - 1) as usize) % items.len();
    (items[first], items[second])
}

/// The `index`-th client transaction of a run: a mix of every settlement path, and some
/// that fail (an observer as payee, an id used before).
fn client_tx(fixture: &Fixture, rng: &mut SimRng, index: u64) -> TxRecord {
    let id = u128::from(index) + 1;
    match rng.range(0, 9) {
        0..=2 => {
            let (payer, payee) = pick_two(rng, &BANKS);
            let flags = if rng.chance(250) { TxFlags::URGENT } else { 0 };
            let amount = rng.range(50, 600);
            fixture.custom(payer, id, TxKind::Transfer, payer, payee, amount, |f| {
                f.flags = TxFlags(flags)
            })
        }
        3 => {
            let (payer, payee) = pick_two(rng, &CONSUMERS);
            fixture.tx(id, TxKind::Transfer, payer, payee, rng.range(1, 900))
        }
        4 | 5 => {
            let payer = pick(rng, &CONSUMERS);
            fixture.tx(id, TxKind::TaxedPayment, payer, MERCHANT, rng.range(1, 700))
        }
        6 => {
            let bank = pick(rng, &BANKS);
            fixture.tx(id, TxKind::Pledge, CENTRAL_BANK, bank, rng.range(1, 300))
        }
        7 => {
            let bank = pick(rng, &BANKS);
            fixture.tx(id, TxKind::Redeem, bank, CENTRAL_BANK, rng.range(1, 200))
        }
        8 => {
            let payer = pick(rng, &CONSUMERS);
            fixture.tx(id, TxKind::Transfer, payer, OBSERVER, 1)
        }
        _ => {
            // An id used before (or the first one): a duplicate unless it was refused.
            let reused = u128::from(rng.range(0, index)) + 1;
            let bank = pick(rng, &BANKS);
            fixture.tx(reused, TxKind::Pledge, CENTRAL_BANK, bank, 1)
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.parse() {
        Ok(value) => Some(value),
        Err(_) => panic!("{name}={text:?} is not a number"),
    }
}

fn run_config(
    fixture: &Fixture,
    config: &ClusterSimConfig,
) -> Result<ClusterSimReport, ClusterSimFailure> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut workload = |rng: &mut SimRng, index: u64| client_tx(fixture, rng, index);
    run(config, &fixture.genesis, &mut workload, dir.path())
}

#[test]
fn simulated_validators_are_safe_durable_and_live() {
    let fixture = sim_fixture();
    if let Some(seed) = env_u64("TALLY_CLUSTER_SIM_SEED") {
        let config = ClusterSimConfig::for_seed(seed);
        println!("replaying seed {seed}: {config:?}");
        match run_config(&fixture, &config) {
            Ok(report) => println!("seed {seed} passed: {report:?}"),
            Err(failure) => panic!("seed {seed} failed: {failure}"),
        }
        return;
    }
    let seed_count = env_u64("TALLY_CLUSTER_SIM_SEEDS").unwrap_or(64);
    let seed_start = env_u64("TALLY_CLUSTER_SIM_SEED_START").unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(seed_start);
    let failures = Mutex::new(Vec::new());
    let reports = Mutex::new(Vec::<ClusterSimReport>::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seed_start + seed_count {
                    break;
                }
                match run_config(&fixture, &ClusterSimConfig::for_seed(seed)) {
                    Ok(report) => reports.lock().expect("lock").push(report),
                    Err(failure) => {
                        eprintln!(
                            "seed {seed} FAILED: {failure}\n  replay: TALLY_CLUSTER_SIM_SEED={seed} \
                             cargo test -p tally-engine --test cluster_sim -- --nocapture"
                        );
                        failures.lock().expect("lock").push(seed);
                    }
                }
            });
        }
    });
    let reports = reports.into_inner().expect("threads joined");
    let failures = failures.into_inner().expect("threads joined");
    let sum = |field: fn(&ClusterSimReport) -> u64| reports.iter().map(field).sum::<u64>();
    println!(
        "{} seeds from {seed_start} in {:.1} s: {} events, {} heights (lowest honest per run, \
         summed), {} crashes between events, {} in a sync, {} unsynced writes lost or torn, \
         {} restarts, {} bad proposals, {} transactions submitted, {} acknowledged ({} ok), \
         {} frames ({} lost)",
        reports.len(),
        started.elapsed().as_secs_f64(),
        sum(|r| r.events),
        sum(|r| r.heights.iter().copied().min().unwrap_or(0)),
        sum(|r| r.crashes),
        sum(|r| r.sync_crashes),
        sum(|r| r.writes_damaged),
        sum(|r| r.restarts),
        sum(|r| r.bad_proposals),
        sum(|r| r.transactions_submitted),
        sum(|r| r.transactions_acknowledged),
        sum(|r| r.transactions_ok),
        sum(|r| r.frames_sent),
        sum(|r| r.frames_lost),
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert_eq!(reports.len() as u64, seed_count);
    // The faults and the paths must have been exercised, or the runs prove little.
    if seed_count >= 32 {
        assert!(sum(|r| r.crashes) > 0, "no crash between events");
        assert!(sum(|r| r.sync_crashes) > 0, "no crash in a sync");
        assert!(
            sum(|r| r.writes_damaged) > 0,
            "no unsynced write lost or torn"
        );
        assert!(sum(|r| r.bad_proposals) > 0, "no Byzantine proposal");
        assert!(sum(|r| r.transactions_ok) > 0, "nothing settled");
        let refused = sum(|r| r.transactions_acknowledged) - sum(|r| r.transactions_ok);
        assert!(refused > 0, "no transaction refused");
    }
}

/// The first seeds in which `bug`, switched on in every validator's driver, is caught, and
/// the failures.
fn catches(bug: InjectedBug, seeds: u64) -> Vec<(u64, ClusterSimFailure)> {
    let fixture = sim_fixture();
    (0..seeds)
        .filter_map(|seed| {
            let mut config = ClusterSimConfig::for_seed(seed);
            config.injected_bug = Some(bug);
            run_config(&fixture, &config).err().map(|f| (seed, f))
        })
        .collect()
}

/// A validator that takes a proposal without checking its previous-block hash (and so the
/// last state root) commits a Byzantine proposer's block and finds out only when it seals
/// it: the simulator sees an honest validator stop.
#[test]
fn a_driver_that_skips_the_proposal_header_check_is_caught() {
    let caught = catches(InjectedBug::SkipProposalHeaderCheck, 8);
    println!("caught in {} of 8 seeds: {caught:?}", caught.len());
    assert!(
        caught
            .iter()
            .any(|(_, f)| matches!(f, ClusterSimFailure::Fatal { reason, .. } if reason.contains("diverged"))),
        "{caught:?}"
    );
}

/// A validator that sends its votes before its consensus state is durable could sign a
/// second, different vote after a crash: the simulator sees the first such vote leave.
#[test]
fn a_driver_that_votes_before_its_state_is_durable_is_caught() {
    let caught = catches(InjectedBug::VoteBeforeStateDurable, 4);
    println!("caught in {} of 4 seeds: {caught:?}", caught.len());
    assert_eq!(caught.len(), 4, "{caught:?}");
    assert!(
        caught
            .iter()
            .all(|(_, f)| matches!(f, ClusterSimFailure::UndurableVote { .. })),
        "{caught:?}"
    );
}

/// A seed replays exactly: the same configuration gives the same report.
#[test]
fn a_seed_replays_exactly() {
    let fixture = sim_fixture();
    for seed in [3, 4] {
        let config = ClusterSimConfig::for_seed(seed);
        let first = run_config(&fixture, &config).unwrap_or_else(|f| panic!("seed {seed}: {f}"));
        let second = run_config(&fixture, &config).unwrap_or_else(|f| panic!("seed {seed}: {f}"));
        assert_eq!(first, second, "seed {seed}");
    }
}

/// A validator whose last log entry, wholly written and acknowledged, is damaged on disk
/// (a byte flipped at a crash, not a torn write) does not stop and does not drop the block
/// as a torn tail: at its restart it cuts the entry (kept aside), takes the block again from
/// its peers with a certificate of the validator set, and goes on; every seed still checks
/// safety, the acknowledged transactions and liveness against all logs.
#[test]
fn a_validator_repairs_a_damaged_last_entry_from_its_peers() {
    let fixture = sim_fixture();
    let mut damaged = 0;
    let mut cut = 0;
    for seed in 0..8 {
        let mut config = ClusterSimConfig::for_seed(seed);
        config.damage_last_entry_per_mille = 1000;
        // Crashes often enough that some validator restarts with a damaged log.
        config.faults.crash_per_mille = config.faults.crash_per_mille.max(3);
        let report = run_config(&fixture, &config)
            .unwrap_or_else(|failure| panic!("seed {seed}: {failure}"));
        damaged += report.entries_damaged;
        cut += report.entries_cut_for_repair;
    }
    println!("{damaged} last entries damaged, {cut} cut at restart and taken again from peers");
    assert!(cut > 0, "no damaged entry repaired ({damaged} damaged)");
}

/// Decided heights per simulated second in `[from_ms, to_ms)`.
fn heights_per_second(report: &ClusterSimReport, from_ms: u64, to_ms: u64) -> f64 {
    let count = report
        .committed_at_ms
        .iter()
        .filter(|at| (from_ms..to_ms).contains(*at))
        .count();
    count as f64 * 1_000.0 / (to_ms - from_ms) as f64
}

/// Leader reputation in the production stage: one of four validators crashes for good.
/// Without demotion each of its round-0 turns (every fourth height) costs a propose timeout;
/// once it has missed one turn it is left out, and the decided heights per simulated second
/// come back to near the healthy rate, on every seed tried. Clients keep sending to the
/// three left, whose transactions every proposer includes.
#[test]
fn a_validator_crashed_for_good_is_demoted_and_the_rate_recovers() {
    let fixture = sim_fixture();
    for seed in 0..2u64 {
        let mut config = ClusterSimConfig::for_seed(seed * 2); // four validators
        config.byzantine_count = 0;
        config.faults = tally_engine::consensus::sim::Faults {
            fault_phase_ms: 4_000,
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            fault_delay_ms_max: 3,
            healed_delay_ms_max: 3,
            partition: false,
            crash_per_mille: 0,
            downtime_ms_max: 1,
        };
        config.sync_crash_per_mille = 0;
        config.client_interval_ms_max = 4;
        let dead = (seed * 3 % 4) as usize;
        config.crashed_for_good = Some((dead, 1_500));
        let report = run_config(&fixture, &config)
            .unwrap_or_else(|failure| panic!("seed {}: {failure}", config.seed));
        let healthy = heights_per_second(&report, 300, 1_500);
        // The crash is noticed at the dead validator's next round-0 turn: one propose
        // timeout (200 ms simulated) and a few heights after the crash.
        let after = heights_per_second(&report, 2_500, 4_000);
        // The longest wait between two heights, from the crash on and once demoted: one
        // propose timeout at the missed turn, then none.
        let gap = |from: u64, to: u64| {
            let times: Vec<u64> = report
                .committed_at_ms
                .iter()
                .copied()
                .filter(|at| (from..to).contains(at))
                .collect();
            times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
        };
        let (noticed, settled) = (gap(1_500, 2_500), gap(2_500, 4_000));
        println!(
            "seed {}: validator {dead} down at 1.5 s; heights/s healthy {healthy:.0}, after \
             demotion {after:.0}; longest wait between heights {noticed} ms while noticing, \
             {settled} ms after; heights {:?}",
            config.seed, report.heights
        );
        assert!(
            settled < config.timeouts.propose_ms,
            "seed {}: a {settled} ms wait after demotion",
            config.seed
        );
        assert!(healthy > 0.0);
        assert!(
            after >= 0.75 * healthy,
            "seed {}: {after:.0} heights/s after demotion against {healthy:.0} healthy",
            config.seed
        );
    }
}

/// The RTGS business day on simulated validators: a calendar whose customer cut-off, end of
/// day and next opening fall 1, 2.5 and 3 simulated seconds into the run (simulated block
/// time starts at 2026-01-01 00:00 UTC), while clients send the usual mix and interbank
/// payments warehoused for the next day. Every seed's safety check compares the honest
/// validators' headers at every height (results and state root included), so each
/// validator refuses late payments, rejects the unsettled queue at the end of day and
/// applies the warehouse at the opening in the same block.
#[test]
fn simulated_validators_close_and_open_the_business_day_at_the_same_block() {
    use tally_engine::calendar::CalendarSpec;
    use tally_engine::genesis::DAY_MS;
    let mut fixture = sim_fixture();
    fixture.genesis.settlement.calendar = Some(CalendarSpec {
        opening_ms: 3_000 - DAY_MS as i64,
        customer_cut_off_ms: Some(1_000),
        interbank_cut_off_ms: None,
        liquidity_cut_off_ms: None,
        end_of_day_ms: 2_500,
        closed_weekdays: Vec::new(),
        holidays: Vec::new(),
        warehouse_days: 1,
        warehouse_capacity: tally_engine::calendar::WAREHOUSE_CAPACITY_MAX,
    });
    fixture.genesis.validate().expect("a valid calendar");
    // 2026-01-01, the simulator's first block time, is day 20454: its day ends 2.5 s in,
    // the next one (20455) opens 3 s in
    let next_day: u32 = 20_455;
    let mut codes = std::collections::BTreeMap::<&str, u64>::new();
    for seed in 0..6 {
        let config = ClusterSimConfig::for_seed(seed);
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut workload = |rng: &mut SimRng, index: u64| {
            if rng.chance(250) {
                let (payer, payee) = pick_two(rng, &BANKS);
                let amount = rng.range(50, 600);
                let id = u128::from(index) + 1;
                fixture.custom(payer, id, TxKind::Transfer, payer, payee, amount, |f| {
                    f.flags = TxFlags(TxFlags::WAREHOUSED);
                    f.reserved_a = next_day;
                })
            } else {
                client_tx(&fixture, rng, index)
            }
        };
        let report = run(&config, &fixture.genesis, &mut workload, dir.path())
            .unwrap_or_else(|failure| panic!("seed {seed}: {failure}"));
        for (code, count) in report.acknowledged_by_code {
            *codes.entry(code).or_default() += count;
        }
    }
    println!("acknowledged by code over the seeds: {codes:?}");
    for code in ["ok", "after_cut_off", "business_day_closed", "warehoused"] {
        assert!(
            codes.get(code).is_some_and(|n| *n > 0),
            "no {code}: {codes:?}"
        );
    }
}
