//! The deterministic cluster simulator over many seeds: safety, one chain, valid
//! certificates and liveness after healing, with loss, delay, reordering, duplication,
//! partitions, crashes with restarts from persisted state, and Byzantine equivocators.
//!
//! - `TALLY_SIM_SEEDS=<n>` runs seeds `0..n` (default 1000; scripts/consensus-soak.sh runs
//!   100000 in release mode).
//! - `TALLY_SIM_SEED=<s>` replays seed `s` alone and prints its report.
//! - `TALLY_SIM_SEED_START=<s>` shifts the range to `s..s+n`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tally_engine::consensus::sim::{run, SimConfig, SimReport};

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.parse() {
        Ok(value) => Some(value),
        Err(_) => panic!("{name}={text:?} is not a number"),
    }
}

#[test]
fn simulated_clusters_are_safe_and_live() {
    if let Some(seed) = env_u64("TALLY_SIM_SEED") {
        let config = SimConfig::for_seed(seed);
        println!("replaying seed {seed}: {config:?}");
        match run(&config) {
            Ok(report) => println!("seed {seed} passed: {report:?}"),
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
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut reports = Vec::new();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seed_start + seed_count {
                        break;
                    }
                    match run(&SimConfig::for_seed(seed)) {
                        Ok(report) => reports.push(report),
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
    let events: u64 = reports.iter().map(|r| r.events).sum();
    println!(
        "{} seeds from {seed_start} on {threads} threads in {elapsed_s:.1} s ({:.0} seeds/s, \
         {:.0} events/s): {heights} heights decided (min per run, summed), {crashes} crashes, \
         {with_byzantine} runs with Byzantine validators, {evidence} evidence, highest round \
         {round_max}",
        reports.len(),
        reports.len() as f64 / elapsed_s,
        events as f64 / elapsed_s,
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert_eq!(reports.len() as u64, seed_count);
    // The faults must actually have been exercised, or the run proves little.
    if seed_count >= 100 {
        assert!(crashes > 0, "no validator ever crashed");
        assert!(
            evidence > 0,
            "Byzantine validators never caught equivocating"
        );
    }
}
