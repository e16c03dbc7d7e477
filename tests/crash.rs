//! Crash test: a real node process under load is killed with SIGKILL at random moments and
//! restarted; every transaction it acknowledged must be in the log exactly once, at the
//! height it was acknowledged with, and the chain must replay without a gap.
//!
//! Two ways in: `tally node` over TLS with its certificate from `tally cluster init`, loaded
//! by a `tally loadgen` process with the load generator's identity (the production path), and
//! `tally demo`, whose node and load generator share one process (killed together).
//!
//! `TALLY_CRASH_ROUNDS` sets the number of kills per test (20 by default;
//! scripts/crash-soak.sh runs more); `TALLY_TEST_SEED` replays a run's kill times.

mod common;

use rand::{RngExt, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tally_engine::block::decode_entry;
use tally_engine::genesis::Genesis;
use tally_engine::log::{Log, LogConfig};
use tally_engine::node::{replay_dir, NodeConfig};
use tally_engine::result::ResultCode;
use tally_loadgen::population::{Population, PopulationSpec};

const BANKS: usize = 4;
const MERCHANTS: usize = 10;
const CONSUMERS: usize = 20;

fn demo_args<'a>(data: &'a str, acks: &'a str, duration: &'a str) -> Vec<&'a str> {
    vec![
        "demo",
        "--validators",
        "0",
        "--quiet",
        "--rate",
        "4000",
        "--duration",
        duration,
        "--banks",
        "4",
        "--merchants",
        "10",
        "--consumers",
        "20",
        "--data-dir",
        data,
        "--ack-log",
        acks,
    ]
}

fn rounds_and_seed(test: &str) -> (u64, u64) {
    let rounds: u64 = std::env::var("TALLY_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: {rounds} rounds, seed {seed} (rerun with TALLY_TEST_SEED={seed})");
    (rounds, seed)
}

#[test]
fn every_acknowledged_transaction_survives_sigkill_exactly_once() {
    let (rounds, seed) = rounds_and_seed("crash test, tally demo");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acks = dir.path().join("acks.txt");
    let (data_arg, acks_arg) = (data.to_str().unwrap(), acks.to_str().unwrap());
    for round in 0..rounds {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(demo_args(data_arg, acks_arg, "3"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let delay_ms = rng.random_range(300..2_500);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("error:"),
            "round {round}: the node failed before the kill: {stderr}"
        );
    }
    // A last clean run on top of every crash.
    let output = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(demo_args(data_arg, acks_arg, "1"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let population = Population::generate(&PopulationSpec {
        banks: BANKS,
        merchants: MERCHANTS,
        consumers: CONSUMERS,
        ..PopulationSpec::default()
    });
    check_acknowledged(&population.genesis, &data, &acks);
}

/// The load generator's arguments against the TLS node at `address`, for `seconds`.
fn loadgen_args(cluster: &Path, address: &str, acks: &Path, seconds: &str) -> Vec<String> {
    let path = |name: &str| cluster.join(name).to_str().unwrap().to_string();
    [
        "loadgen",
        "--quiet",
        "--node",
        address,
        "--identity",
        &path("participants/loadgen.identity"),
        "--genesis",
        &path("genesis.toml"),
        "--workload",
        "mixed",
        "--seed",
        "1",
        "--banks",
        "4",
        "--rate",
        "4000",
        "--duration",
        seconds,
        "--ack-log",
        acks.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Waits for the load generator to end; it must notice its node's death within seconds.
fn wait_for_loadgen(mut loadgen: Child, round: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = loadgen.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            loadgen.kill().unwrap();
            panic!("round {round}: the load generator did not end after its node was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_acknowledged_transaction_over_tls_survives_sigkill_exactly_once() {
    let (rounds, seed) = rounds_and_seed("crash test, tally node over TLS");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    // One node outside consensus, on validator 0's certificate, clients on a free port.
    let config = common::single_node_cluster(&cluster, &["--banks", "4"]);
    let acks = dir.path().join("acks.txt");
    for round in 0..rounds {
        let (mut node, address) = common::start_tls_node(&config).drain_output();
        let loadgen = common::tally()
            .args(loadgen_args(&cluster, &address, &acks, "3"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2_500)));
        node.kill().unwrap(); // SIGKILL
        node.wait().unwrap();
        wait_for_loadgen(loadgen, round);
    }
    // A last clean run on top of every crash, stopped with SIGTERM.
    let (mut node, address) = common::start_tls_node(&config).drain_output();
    let output = common::tally()
        .args(loadgen_args(&cluster, &address, &acks, "1"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", common::text(&output));
    assert!(Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(node.wait().unwrap().success());

    let genesis = Genesis::load(&cluster.join("genesis.toml")).unwrap();
    check_acknowledged(&genesis, &cluster.join("data"), &acks);
}

/// Every transaction acknowledged `ok` in the ack log at `acks` is in the log under `data`
/// exactly once, at the height it was acknowledged with, and the chain replays.
fn check_acknowledged(genesis: &Genesis, data: &Path, acks: &Path) {
    let config = NodeConfig::new(data.to_path_buf());
    let recovered = replay_dir(genesis, &config).expect("the chain replays without a gap");
    assert_eq!(
        recovered.ledger.sum_of_balances(),
        recovered.ledger.genesis_total()
    );

    // Where each settled id is in the log, and how many times.
    let log = Log::open(&data.join("log"), LogConfig::default()).unwrap();
    let mut settled: HashMap<u128, (u64, u32)> = HashMap::new();
    for entry in log.entries(0).unwrap() {
        let (_, payload) = entry.unwrap();
        let block = decode_entry(payload).unwrap();
        for (record, &code) in block.records.iter().zip(block.results) {
            if code == ResultCode::Ok as u8 {
                let slot = settled
                    .entry(record.id())
                    .or_insert((block.header.height(), 0));
                slot.1 += 1;
            }
        }
    }
    assert!(
        settled.values().all(|(_, count)| *count == 1),
        "an id settled twice"
    );
    let text = std::fs::read_to_string(acks).unwrap();
    let mut checked = 0usize;
    for line in text.lines() {
        let mut fields = line.split(' ');
        let (Some(id), Some(code), Some(height), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue; // the last line of a killed writer may be cut
        };
        let (Ok(id), Ok(code), Ok(height)) = (
            id.parse::<u128>(),
            code.parse::<u8>(),
            height.parse::<i64>(),
        ) else {
            continue;
        };
        if code != ResultCode::Ok as u8 {
            continue;
        }
        let (found_height, count) = settled
            .get(&id)
            .copied()
            .unwrap_or_else(|| panic!("acknowledged transaction {id} is not in the log"));
        assert_eq!(count, 1);
        assert_eq!(
            found_height as i64, height,
            "transaction {id} moved to another block"
        );
        checked += 1;
    }
    eprintln!(
        "{checked} acknowledged transactions found exactly once; {} blocks",
        recovered.height
    );
    assert!(
        checked > 0,
        "no acknowledgement was recorded: the test proved nothing"
    );
}
