//! `tally node` as a process: start it from a config file, submit over the client protocol,
//! look with `tally status` and `/metrics`, stop it with SIGTERM (every accepted transaction
//! acknowledged), restart it on the same data and find the state kept. A config with a wrong
//! field is refused with the field named.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tally_engine::net::client::submit_and_wait;
use tally_engine::net::http::fetch_metrics;
use tally_engine::net::Client;
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFields, TxRecord};
use tally_loadgen::population::{Population, PopulationSpec};

const WAIT: Duration = Duration::from_secs(60);

struct Running {
    child: Child,
    clients: String,
    metrics: String,
    /// The `start:` line: where the start spent its time.
    start: String,
    stdout: BufReader<std::process::ChildStdout>,
}

fn start(config: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "node",
            "--insecure-plaintext",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut clients, mut metrics, mut start) = (None, None, None);
    while clients.is_none() || metrics.is_none() {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the node exited before listening"
        );
        if let Some(addr) = line.trim().strip_prefix("clients: ") {
            clients = Some(addr.to_string());
        }
        if let Some(url) = line.trim().strip_prefix("metrics: http://") {
            metrics = Some(url.trim_end_matches("/metrics").to_string());
        }
        if let Some(split) = line.trim().strip_prefix("start: ") {
            start = Some(split.to_string());
        }
    }
    Running {
        child,
        clients: clients.unwrap(),
        metrics: metrics.unwrap(),
        start: start.expect("a start: line before the client port"),
        stdout,
    }
}

fn sigterm(mut running: Running) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut running.stdout, &mut rest).unwrap();
    let exit = running.child.wait().unwrap();
    assert!(
        exit.success(),
        "the node exits cleanly on SIGTERM: {exit:?}\n{rest}"
    );
    rest
}

fn transfers(population: &Population, first_id: u128, count: usize) -> Vec<TxRecord> {
    let (payer, payee) = (population.banks[0], population.banks[1]);
    (0..count as u128)
        .map(|i| {
            let fields =
                TxFields::transfer(first_id + i, payer, payee, 1, population.genesis.ledger)
                    .valid_until(tally_loadgen::workload::valid_until_from_now(
                        &population.genesis,
                    ));
            TxRecord::signed(
                &fields,
                population.genesis.network_id,
                &population.keys[&payer],
            )
        })
        .collect()
}

/// Writes a small network's genesis (two banks, a merchant, a consumer) and a node
/// configuration (clients and metrics on free loopback ports, CPU backend, then `extra`)
/// into `dir`: the population and the configuration's path.
fn small_network(dir: &Path, extra: &str) -> (Population, std::path::PathBuf) {
    let population = Population::generate(&PopulationSpec {
        banks: 2,
        merchants: 1,
        consumers: 1,
        ..PopulationSpec::default()
    });
    std::fs::write(dir.join("genesis.toml"), population.genesis.to_toml()).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\ngenesis = \"genesis.toml\"\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nbackend = \"cpu\"\n{extra}"
        ),
    )
    .unwrap();
    (population, config)
}

#[test]
fn tally_node_serves_clients_stops_on_sigterm_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let (population, config) = small_network(dir.path(), "[limits]\nmempool_tx_max = 100000\n");

    let node = start(&config);
    let client = Client::connect(node.clients.as_str()).unwrap();
    assert_eq!(client.network_id(), population.genesis.network_id);
    let payee = population.banks[1];
    let opening = client.balance(payee).unwrap().unwrap();
    let (acks, refusal) = submit_and_wait(&client, &transfers(&population, 1, 500), WAIT).unwrap();
    assert_eq!(refusal, None);
    assert_eq!(acks.len(), 500);
    assert!(acks
        .iter()
        .all(|a| a.code == ResultCode::Ok && a.height.is_some()));

    let status = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "status",
            "--node",
            &node.clients,
            "--insecure-plaintext",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["counters"]["executed"], 500);
    assert_eq!(json["backend"], "cpu");
    let height = json["height"].as_u64().unwrap();
    assert!(height >= 1);
    let table = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["status", "--node", &node.clients, "--insecure-plaintext"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("executed") && table.contains("500"),
        "{table}"
    );

    let metrics = fetch_metrics(node.metrics.parse().unwrap()).unwrap();
    // the business figures: what settled, by kind and value, and every result code
    for line in [
        "tally_transactions_executed_total 500",
        "tally_settled_total{kind=\"transfer\"} 500",
        "tally_settled_value_total{kind=\"transfer\"} 500",
        "tally_settled_total{kind=\"taxed_payment\"} 0",
        "tally_results_total{code=\"ok\"} 500",
        "tally_tax_collected_total 0",
        "tally_queue_payments 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }

    // SIGTERM while a second batch is in flight: every accepted one is acknowledged.
    let (reply, acks) = crossbeam::channel::unbounded();
    let taken = client
        .submit(&transfers(&population, 1_001, 2_000), &reply)
        .unwrap();
    let stopped = sigterm(node);
    assert!(stopped.contains("stopped at height"), "{stopped}");
    for _ in 0..taken {
        let ack = acks
            .recv_timeout(WAIT)
            .expect("acknowledged before the node exited");
        assert_eq!(ack.code, ResultCode::Ok);
    }
    drop(client);

    let node = start(&config);
    // The start names what it replayed: every record since the genesis, or since a checkpoint.
    let replayed: usize = node
        .start
        .split_once(" records) replayed")
        .and_then(|(before, _)| before.rsplit('(').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("a replayed record count in {:?}", node.start));
    // the accounts' tree is built at start, before the replay, and its time named
    let tree_then_replay = node
        .start
        .find("state tree ")
        .zip(node.start.find("replayed in"));
    assert!(
        tree_then_replay.is_some_and(|(tree, replay)| tree < replay),
        "{}",
        node.start
    );
    if node.start.contains("no checkpoint") {
        assert_eq!(replayed, 500 + taken, "{}", node.start);
    } else {
        assert!(replayed < 500 + taken, "{}", node.start);
    }
    let client = Client::connect(node.clients.as_str()).unwrap();
    assert_eq!(
        client.balance(payee).unwrap(),
        Some(opening + 500 + taken as i64),
        "the restarted node replayed its log"
    );
    assert!(client.welcome().height > height);
    // An id settled before the restart is a duplicate now.
    let (acks, _) = submit_and_wait(&client, &transfers(&population, 1, 1), WAIT).unwrap();
    assert_eq!(acks[0].code, ResultCode::DuplicateId);
    // counted by its reason; the blocks replayed at start are not counted again
    let metrics = fetch_metrics(node.metrics.parse().unwrap()).unwrap();
    for line in [
        "tally_results_total{code=\"duplicate_id\"} 1",
        "tally_settled_total{kind=\"transfer\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    drop(client);
    sigterm(node);
}

#[test]
fn a_wrong_config_field_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    for (text, needle) in [
        (
            "data_dir = \"d\"\ngenesis = \"g\"\nlisten = \"nowhere\"\n",
            "`listen`",
        ),
        (
            "data_dir = \"d\"\ngenesis = \"g\"\nlisten = \"127.0.0.1:0\"\nbackend = \"fpga\"\n",
            "`backend`",
        ),
        (
            "data_dir = \"d\"\ngenesis = \"g\"\nlisten = \"127.0.0.1:0\"\nport = 5\n",
            "port",
        ),
        (
            "data_dir = \"d\"\ngenesis = \"missing.toml\"\nlisten = \"127.0.0.1:0\"\n",
            "missing.toml",
        ),
        (
            "data_dir = \"d\"\ngenesis = \"g\"\nlisten = \"127.0.0.1:0\"\nidentity = \"none.identity\"\n",
            "field `identity`: cannot read identity file",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["node", "--insecure-plaintext", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
    // Without an identity the node does not start unless told to run without TLS.
    std::fs::write(
        &config,
        "data_dir = \"d\"\ngenesis = \"g.toml\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["node", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("names no `identity`"), "{stderr}");
}

/// `tally relay` in front of a node: a client reaches the node through it (the relay carries
/// bytes, so the client protocol passes unchanged), the relay prints what it carried when
/// stopped, and wrong arguments are refused with the argument named.
#[test]
fn tally_relay_carries_a_client_to_a_node_and_names_wrong_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (population, config) = small_network(dir.path(), "");
    let node = start(&config);
    let mut relay = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "relay",
            "--link",
            &format!("127.0.0.1:0={}", node.clients),
            "--delay-ms",
            "5",
            "--jitter-ms",
            "2",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut relay_out = BufReader::new(relay.stdout.take().unwrap());
    let mut line = String::new();
    relay_out.read_line(&mut line).unwrap();
    let address = line
        .strip_prefix("relay ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert!(line.contains("5 ms one way, jitter 2 ms"), "{line}");

    let client = Client::connect(address.as_str()).unwrap();
    assert_eq!(client.network_id(), population.genesis.network_id);
    let record = transfers(&population, 1, 1).remove(0);
    let (acks, refusal) = submit_and_wait(&client, &[record], WAIT).unwrap();
    assert!(refusal.is_none(), "{refusal:?}");
    assert_eq!(acks[0].code, ResultCode::Ok, "{acks:?}");
    drop(client);

    assert!(Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut relay_out, &mut rest).unwrap();
    assert!(relay.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("jitter seed 7"), "{rest}");
    assert!(rest.contains(": 1 connections,"), "{rest}");
    sigterm(node);

    for (args, expected) in [
        (
            vec!["relay", "--link", "127.0.0.1:7000"],
            "is not LISTEN=TARGET",
        ),
        (
            vec!["relay", "--link", "127.0.0.1:0=nowhere"],
            "target address \"nowhere\"",
        ),
        (
            vec![
                "relay",
                "--link",
                "127.0.0.1:0=127.0.0.1:9",
                "--delay-ms",
                "5",
                "--jitter-ms",
                "6",
            ],
            "exceeds its one-way delay",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
