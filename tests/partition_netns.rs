//! Four validator processes over TLS, each in its own network namespace on a bridge (a cut link
//! gives no reset, as on a real network), under open-loop load from `tally loadgen` spread
//! over all four: one validator is cut off for 10 s, later the network splits 2|2 for
//! 12 s. The acknowledged rate stays near the offered rate while one validator is cut off
//! (the load generator notices it, sends on to the others and fails over what it did not
//! answer; the cut validator misses one turn as proposer and is demoted, so the others
//! decide blocks at their own pace; the test prints the ratio and holds it at 0.9 or more,
//! issue 22's bar); acknowledgements resume
//! within 5 s of the split healing; no transaction failed over is left `duplicate_id`; every
//! acknowledged transaction is in its block in all four logs, which agree block for block
//! (one state root).
//!
//! Needs root (network namespaces, bridges, veth pairs) and `ip` (iproute2); CI runs as root
//! with TALLY_REQUIRE_NETNS=1, which makes a missing one fail the test. Elsewhere the test
//! says why it did not run and passes. It creates every namespace and link it uses
//! (names carry the process id) and removes them, also when it fails.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tally_engine::block::decode_entry;
use tally_engine::log::{Log, LogConfig};
use tally_engine::net::Client;

const VALIDATORS: usize = 4;
const BASE_PORT: u16 = 7400;
const RATE: f64 = 1_000.0;
/// How far past the rejoin the cut's window reaches: the acknowledgements of transactions
/// sent just before the rejoin (before leader reputation, the three left decided a block
/// only about every 2 s, the missing validator's turns timing out).
const BLOCK_INTERVAL_CUT_S: f64 = 2.0;

/// Runs `ip` with `args`; its output when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    ip(args).unwrap_or_else(|error| panic!("{error}"));
}

/// The namespaces, veth pairs and bridges of one run; removed on drop.
struct Network {
    tag: u32,
    subnet: String,
    namespaces: Vec<String>,
    created: Vec<String>,
}

impl Network {
    fn bridge(&self, which: char) -> String {
        format!("tpb{which}{}", self.tag)
    }

    fn host_end(&self, index: usize) -> String {
        format!("tph{index}x{}", self.tag)
    }

    fn address(&self, index: usize) -> String {
        format!("{}.{}", self.subnet, 10 + index)
    }

    fn host(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// Builds bridge A (the host at .1, every validator at .10 + i) and an empty bridge B.
    fn create() -> Result<Network, String> {
        let tag = std::process::id() % 100_000;
        let mut network = Network {
            tag,
            subnet: format!("10.213.{}", 20 + tag % 200),
            namespaces: Vec::new(),
            created: Vec::new(),
        };
        // Both bridges carry the host's address in turn (bridge B during a split), so they
        // share one MAC address: a validator that moves back after the split finds the host
        // where its neighbour table says, as it would on a real network where the host's
        // interface does not change.
        let mac = format!(
            "02:54:{:02x}:{:02x}:{:02x}:01",
            tag >> 16,
            (tag >> 8) & 0xff,
            tag & 0xff
        );
        for which in ['a', 'b'] {
            let bridge = network.bridge(which);
            ip(&["link", "add", &bridge, "type", "bridge"])?;
            network.created.push(bridge.clone());
            ip(&["link", "set", &bridge, "address", &mac])?;
            ip(&["link", "set", &bridge, "up"])?;
        }
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.host()),
            "dev",
            &network.bridge('a'),
        ])?;
        for index in 0..VALIDATORS {
            let namespace = format!("tally-part-{tag}-{index}");
            ip(&["netns", "add", &namespace])?;
            network.namespaces.push(namespace.clone());
            let (host_end, inner) = (network.host_end(index), format!("tpn{index}x{tag}"));
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &namespace])?;
            ip(&[
                "link",
                "set",
                &host_end,
                "master",
                &network.bridge('a'),
                "up",
            ])?;
            let address = format!("{}/24", network.address(index));
            ip(&["-n", &namespace, "addr", "add", &address, "dev", &inner])?;
            ip(&["-n", &namespace, "link", "set", &inner, "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// Cuts validator `index` off (its link goes down: no reset reaches anyone) or back.
    fn set_link(&self, index: usize, up: bool) {
        must(&[
            "link",
            "set",
            &self.host_end(index),
            if up { "up" } else { "down" },
        ]);
    }

    /// Splits validators 0, 1 | 2, 3: the second half moves to bridge B, which the host
    /// reaches through routes of its own; the halves cannot reach each other. `false` heals.
    fn split(&self, split: bool) {
        let host = format!("{}/32", self.host());
        if split {
            must(&["addr", "add", &host, "dev", &self.bridge('b')]);
        }
        for index in 2..VALIDATORS {
            let bridge = self.bridge(if split { 'b' } else { 'a' });
            must(&["link", "set", &self.host_end(index), "master", &bridge]);
            let route = format!("{}/32", self.address(index));
            if split {
                must(&["route", "add", &route, "dev", &self.bridge('b')]);
            } else {
                must(&["route", "del", &route]);
            }
        }
        if !split {
            must(&["addr", "del", &host, "dev", &self.bridge('b')]);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
        for link in &self.created {
            let _ = ip(&["link", "del", link]);
        }
    }
}

/// Validator processes, killed on drop (a failing test leaves none behind), and the files
/// their output goes to: when the test fails, the warnings and errors of each are printed.
struct Nodes(Vec<Child>, Vec<PathBuf>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for log in &self.1 {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let notable: Vec<&str> = text
                    .lines()
                    .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                    .collect();
                eprintln!("--- {} (last warnings and errors)", log.display());
                for line in &notable[notable.len().saturating_sub(20)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Rewrites a node configuration of `tally cluster init` from 127.0.0.1 to the validators'
/// addresses in their namespaces (port `BASE_PORT + k * 100 + i` belongs to validator i).
fn place(config: &str, network: &Network) -> String {
    // `/metrics` stays on the namespace's own loopback: plain metrics elsewhere need
    // `metrics_plaintext_non_loopback` (docs/OPERATIONS.md, "Ports")
    let mut out = String::new();
    for line in config.lines() {
        if line.starts_with("metrics_listen") {
            out.push_str(line);
        } else {
            out.push_str(&place_addresses(line, network));
        }
        out.push('\n');
    }
    out
}

fn place_addresses(config: &str, network: &Network) -> String {
    let mut out = String::new();
    let mut rest = config;
    while let Some(at) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "127.0.0.1:".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let port: u16 = after[..digits].parse().unwrap();
        let index = usize::from(port - BASE_PORT) % 100;
        out.push_str(&format!("{}:{port}", network.address(index)));
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// One validator's log: block hashes by height, and the height of each transaction.
type Chain = (Vec<[u8; 32]>, HashMap<u128, u64>);

fn chain_of(data_dir: &Path) -> Chain {
    let log = Log::open(&data_dir.join("log"), LogConfig::default()).unwrap();
    let (mut hashes, mut placed) = (Vec::new(), HashMap::new());
    for entry in log.entries(0).unwrap() {
        let (_, payload) = entry.unwrap();
        let block = decode_entry(payload).unwrap();
        let height = block.header.height();
        hashes.push(block.header.hash());
        for record in block.records.iter() {
            assert!(
                placed.insert(record.id(), height).is_none(),
                "in two blocks"
            );
        }
    }
    (hashes, placed)
}

/// Acknowledgements per timeline interval of the run's report: (start s, acknowledged).
fn timeline(report: &serde_json::Value) -> Vec<(f64, u64)> {
    report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["start_s"].as_f64().unwrap(),
                i["acknowledged"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_cut_validator_and_a_healed_split_keep_acknowledgements_flowing() {
    let required = std::env::var("TALLY_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "TALLY_REQUIRE_NETNS=1, but {why}");
        println!("skipped: {why}");
    };
    if !rustix::process::geteuid().is_root() {
        return skip("network namespaces need root (CI runs this test as root)".into());
    }
    let network = match Network::create() {
        Ok(network) => network,
        Err(error) => return skip(format!("cannot build the namespaces and bridges: {error}")),
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let output = common::run(&[
        "cluster",
        "init",
        "--validators",
        &VALIDATORS.to_string(),
        "--dir",
        cluster.to_str().unwrap(),
        "--base-port",
        &BASE_PORT.to_string(),
        "--banks",
        "2",
        "--seed",
        "5",
        "--hosts",
        &(0..VALIDATORS)
            .map(|i| network.address(i))
            .collect::<Vec<_>>()
            .join(","),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    let identity = cluster.join("participants/loadgen.identity");
    let mut nodes = Nodes(Vec::new(), Vec::new());
    let mut outputs = Vec::new();
    for index in 0..VALIDATORS {
        let config = cluster.join(format!("node-{index}.toml"));
        let placed = place(&std::fs::read_to_string(&config).unwrap(), &network);
        std::fs::write(&config, placed).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &network.namespaces[index]])
            .arg(env!("CARGO_BIN_EXE_tally"))
            .args(["node", "--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(cluster.join(format!("node-{index}.stderr"))).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "validator {index} exited: {}",
                std::fs::read_to_string(cluster.join(format!("node-{index}.stderr")))
                    .unwrap_or_default()
            );
            if line.starts_with("clients: ") {
                break;
            }
        }
        let log = cluster.join(format!("node-{index}.stdout"));
        let mut file = std::fs::File::create(&log).unwrap();
        outputs.push(std::thread::spawn(move || {
            let _ = std::io::copy(&mut stdout, &mut file);
        }));
        nodes.0.push(child);
        nodes.1.push(log);
        nodes.1.push(cluster.join(format!("node-{index}.stderr")));
    }
    let addresses: Vec<String> = (0..VALIDATORS)
        .map(|i| format!("{}:{}", network.address(i), BASE_PORT + i as u16))
        .collect();
    let clients: Vec<Client> = addresses
        .iter()
        .map(|a| common::tls_client(&identity, a.as_str()).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients
        .iter()
        .any(|c| c.status().unwrap().peers_connected < (VALIDATORS - 1) as u64)
    {
        assert!(Instant::now() < deadline, "the validators did not link up");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(clients);

    // Open loop at 1000 tx/s over all four for 50 s.
    let out = dir.path().join("out");
    let acks = dir.path().join("acks.log");
    let loadgen = common::tally()
        .args([
            "loadgen",
            "--node",
            &addresses.join(","),
            "--identity",
            identity.to_str().unwrap(),
            "--genesis",
            cluster.join("genesis.toml").to_str().unwrap(),
            "--workload",
            "mixed",
            "--seed",
            "5",
            "--banks",
            "2",
            "--connections",
            "2",
            "--rate",
            &RATE.to_string(),
            "--duration",
            "50",
            "--node-timeout",
            "1",
            "--ack-log",
            acks.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while std::fs::metadata(&acks).map_or(0, |m| m.len()) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no acknowledgement"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let at = |seconds: f64| {
        let until = started + Duration::from_secs_f64(seconds);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        started.elapsed().as_secs_f64()
    };
    let cut = at(8.0);
    network.set_link(3, false);
    let rejoined = at(18.0);
    network.set_link(3, true);
    let split = at(26.0);
    network.split(true);
    let healed = at(38.0);
    network.split(false);
    println!("cut {cut:.1} s, rejoined {rejoined:.1} s, split {split:.1} s, healed {healed:.1} s");
    let output = loadgen.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&output.stdout).to_string();
    println!("{summary}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let timeline = timeline(&report);
    println!(
        "acknowledged per second: {:?}",
        timeline.iter().map(|t| t.1).collect::<Vec<_>>()
    );

    // One validator cut off: the others keep acknowledging. The cut validator misses its
    // next turn as proposer (one propose timeout, with the load generator's failover the
    // only stall) and is then left out of round-0 turns (leader reputation, DESIGN.md
    // decision 17), so the three left decide blocks at their own pace. Measured 0.98 of the
    // offered rate in four runs on a 2-core machine (0.85 to 0.93 before demotion, when
    // every fourth height waited for a timeout); the bar is issue 22's 0.9.
    let (from, to) = (cut.floor(), rejoined.floor() + BLOCK_INTERVAL_CUT_S);
    let during_cut: u64 = timeline
        .iter()
        .filter(|(start, _)| *start >= from && *start < to)
        .map(|t| t.1)
        .sum();
    let rate = during_cut as f64 / (to - from);
    println!(
        "acknowledged {rate:.0} tx/s ({:.2} of the offered rate) while validator 3 was cut off",
        rate / RATE
    );
    assert!(
        rate >= 0.9 * RATE,
        "{rate:.0} tx/s with one validator cut off"
    );
    // The 2|2 split healed: acknowledgements resume within 5 s.
    let resumed = timeline
        .iter()
        .find(|(start, acked)| *start + 1.0 > healed && *acked > 0)
        .map(|t| t.0)
        .expect("acknowledgements resumed");
    println!(
        "acknowledgements resumed {:.1} s after the split healed",
        resumed - healed
    );
    assert!(
        resumed - healed <= 5.0,
        "resumed {:.1} s after healing",
        resumed - healed
    );
    assert_eq!(
        report["acknowledged"], report["sent"],
        "every transaction answered"
    );
    // What the cut validator took and did not answer went to the others: one that had
    // reached the chain through it was answered `duplicate_id` there, and counts as what its
    // first copy was answered (the load generator asks the ledger).
    println!(
        "failed over {}; results {}",
        report["failed_over"], report["results"]
    );
    assert_eq!(
        report["results"].get("duplicate_id"),
        None,
        "no transaction left duplicate_id: {}",
        report["results"]
    );

    // Every acknowledged transaction is in its block in all four logs, block for block.
    let acked: BTreeMap<u128, u64> = std::fs::read_to_string(&acks)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let id = parts.next()?.parse().ok()?;
            let height: i128 = parts.nth(1)?.parse().ok()?;
            (height > 0).then_some((id, height as u64))
        })
        .collect();
    assert!(
        acked.len() > 30_000,
        "{} acknowledged with a height",
        acked.len()
    );
    let clients: Vec<Client> = addresses
        .iter()
        .map(|a| common::tls_client(&identity, a.as_str()).unwrap())
        .collect();
    let top = clients
        .iter()
        .map(|c| c.status().unwrap().height)
        .max()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients.iter().any(|c| c.status().unwrap().height < top) {
        assert!(Instant::now() < deadline, "the validators did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(clients);
    for child in &nodes.0 {
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    for child in &mut nodes.0 {
        child.wait().unwrap();
    }
    for output in outputs {
        let _ = output.join();
    }
    let chains: Vec<Chain> = (0..VALIDATORS)
        .map(|i| chain_of(&data_dir(&cluster, i)))
        .collect();
    let shortest = chains.iter().map(|c| c.0.len()).min().unwrap();
    assert!(
        shortest as u64 >= top,
        "every log holds the blocks up to {top}"
    );
    for (index, (hashes, placed)) in chains.iter().enumerate() {
        assert_eq!(
            hashes[..shortest],
            chains[0].0[..shortest],
            "validator {index}'s blocks"
        );
        for (id, height) in &acked {
            assert_eq!(
                placed.get(id),
                Some(height),
                "transaction {id} in validator {index}"
            );
        }
    }
}

fn data_dir(cluster: &Path, index: usize) -> PathBuf {
    cluster.join(format!("data-{index}"))
}
