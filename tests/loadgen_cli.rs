//! `tally loadgen` as a load tester runs it: in-process, against a node process over the
//! network, with recordings, and with wrong arguments.

mod common;

use common::{run, start_node, tally, text, NodeProcess};
use std::process::Command;

#[test]
fn loadgen_writes_every_report_and_replays_its_recording() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let recording = dir.path().join("vat.tlw");
    let output = run(&[
        "loadgen",
        "--workload",
        "vat",
        "--rate",
        "800",
        "--poisson",
        "--duration",
        "1.5",
        "--warmup",
        "0.5",
        "--seed",
        "9",
        "--banks",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--record",
        recording.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("workload vat"), "{stdout}");
    assert!(stdout.contains("Poisson at 800 tx/s"), "{stdout}");
    for file in ["summary.txt", "report.json", "latency.hlog", "report.html"] {
        let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!bytes.is_empty(), "{file} is empty");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["workload"], "vat");
    assert!(json["acknowledged"].as_u64().unwrap() > 500);
    assert_eq!(json["warmup_s"].as_f64(), Some(0.5));

    // The recording replays, as JSON on standard output.
    let replay = run(&[
        "loadgen",
        "--workload",
        "vat",
        "--seed",
        "9",
        "--banks",
        "3",
        "--replay",
        recording.to_str().unwrap(),
        "--closed-loop",
        "--json",
    ]);
    assert!(replay.status.success(), "{}", text(&replay));
    let replayed: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(replayed["workload"], "vat");
    assert!(replayed["offered_rate_per_s"].is_null(), "closed loop");

    // Replaying it for another population is refused and says what to pass.
    let wrong = run(&[
        "loadgen",
        "--workload",
        "vat",
        "--seed",
        "10",
        "--banks",
        "3",
        "--replay",
        recording.to_str().unwrap(),
    ]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("--seed"), "{}", text(&wrong));
}

#[test]
fn loadgen_names_each_wrong_argument() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--rate", "0"], "--rate must be a positive"),
        (vec!["--duration", "0"], "--duration must be a positive"),
        (
            vec!["--duration", "1", "--warmup", "2"],
            "must be shorter than --duration",
        ),
        (
            vec!["--workload", "payroll"],
            "unknown workload \"payroll\"",
        ),
        (vec!["--invalid-pct", "101"], "percentage"),
        (vec!["--banks", "1"], "--banks must be at least 2"),
        (
            vec!["--workload", "transfer", "--accounts", "1"],
            "--accounts must be at least 2",
        ),
        (
            vec!["--custody", "bank"],
            "--accounts and --custody shape the transfer workload's population; the mixed workload has its own",
        ),
        (vec!["--custody", "paper"], "unknown custody \"paper\""),
        (vec!["--sign-ahead", "0"], "--sign-ahead must be at least 1"),
        (
            vec!["--distribution", "pareto"],
            "unknown account distribution \"pareto\"",
        ),
        (
            vec!["--sweep", "100,0", "--out", "/tmp/unused"],
            "--sweep levels must be positive",
        ),
        (
            vec!["--sweep", "2.5", "--closed-loop", "--out", "/tmp/unused"],
            "whole in-flight depths",
        ),
        (
            vec!["--node", "127.0.0.1:1", "--node-timeout", "0"],
            "--node-timeout must be a positive",
        ),
        (
            vec!["--replay", "/nonexistent/recording.tlw"],
            "cannot read recording",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["loadgen", "--quiet"];
        all.extend(args.iter());
        let output = run(&all);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    // A recording whose records' validity has passed is refused before anything is sent.
    let recorded = dir.path().join("recorded.tlw");
    let output = run(&[
        "loadgen",
        "--quiet",
        "--workload",
        "vat",
        "--closed-loop",
        "--closed-loop-tx-count",
        "50",
        "--record",
        recorded.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let mut recording = tally_loadgen::recording::read(&recorded).unwrap();
    for record in &mut recording.records {
        let mut bytes = record.as_bytes().to_vec();
        bytes[88..96].copy_from_slice(&1_000u64.to_le_bytes());
        *record = tally_engine::tx::TxRecord::decode(&bytes).unwrap();
    }
    let expired = dir.path().join("expired.tlw");
    tally_loadgen::recording::write(
        &expired,
        recording.network_id,
        &recording.genesis_hash,
        &recording.workload,
        &recording.records,
    )
    .unwrap();
    let output = run(&[
        "loadgen",
        "--workload",
        "vat",
        "--replay",
        expired.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("has expired: its records are valid until 1000 ms"),
        "{}",
        text(&output)
    );
    let not_a_recording = dir.path().join("garbage.tlw");
    std::fs::write(&not_a_recording, b"garbage").unwrap();
    let output = run(&["loadgen", "--replay", not_a_recording.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("not a tally-loadgen recording"),
        "{}",
        text(&output)
    );
}

/// A node process started from the genesis the load generator writes, driven over the
/// network, and paused with SIGSTOP for a known time in the middle of an open-loop run: the
/// recorded latencies hold the pause (measured from the intended send times).
#[test]
fn loadgen_over_the_network_records_a_paused_node() {
    use std::process::Stdio;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.toml");
    let population = ["--workload", "mixed", "--seed", "5", "--banks", "3"];
    let mut args = vec!["loadgen", "--write-genesis", genesis.to_str().unwrap()];
    args.extend(population);
    let output = run(&args);
    assert!(output.status.success(), "{}", text(&output));
    // The node's standard output stays open (it prints on its way out).
    let NodeProcess {
        child: mut node,
        address,
        stdout: _stdout,
    } = start_node(dir.path());
    let out = dir.path().join("out");
    let mut args = vec![
        "loadgen",
        "--node",
        &address,
        "--insecure-plaintext",
        "--rate",
        "1000",
        "--duration",
        "3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(population);
    let loadgen = tally().args(&args).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1_200));
    let pause = Duration::from_millis(600);
    let pid = node.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(pause);
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let loadgen_output = loadgen.wait_with_output().unwrap();
    assert!(loadgen_output.status.success(), "{}", text(&loadgen_output));
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        node.wait().unwrap().success(),
        "the node stops cleanly on SIGTERM"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(json["target"].as_str().unwrap().contains(&address));
    assert_eq!(json["acknowledged"], json["sent"]);
    assert!(json["sent"].as_u64().unwrap() >= 2_900, "{}", json["sent"]);
    let latency = &json["latency_ms"];
    // The transaction held longest waited the whole pause.
    assert!(
        latency["max"].as_f64().unwrap() >= 0.9 * pause.as_millis() as f64,
        "{latency}"
    );
    // About a fifth of the run was meant to go out during the pause, with waits spread
    // from the whole pause down to nothing: the 90th percentile is well into the pause.
    // Measured from actual send times it would be a few milliseconds.
    assert!(latency["p90"].as_f64().unwrap() >= 150.0, "{latency}");
}

/// Starts a node process in `dir` for the `transfer` workload (seed 5, 3 banks, 200
/// accounts): returns it and the workload's arguments.
fn transfer_node(dir: &std::path::Path) -> (NodeProcess, Vec<&'static str>) {
    let population = vec![
        "--workload",
        "transfer",
        "--accounts",
        "200",
        "--seed",
        "5",
        "--banks",
        "3",
    ];
    let genesis = dir.join("genesis.toml");
    let mut args = vec!["loadgen", "--write-genesis", genesis.to_str().unwrap()];
    args.extend(population.iter());
    let output = run(&args);
    assert!(output.status.success(), "{}", text(&output));
    (start_node(dir), population)
}

fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// A node killed in the middle of a long closed-loop run ends the run within seconds (not
/// at the end of its --duration), with an error that says so and a report of what was
/// acknowledged until then.
#[test]
fn a_node_killed_mid_run_ends_the_run_within_seconds_with_a_report() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let (node, population) = transfer_node(dir.path());
    let out = dir.path().join("out");
    let acks = dir.path().join("acks.log");
    let mut args = vec![
        "loadgen",
        "--node",
        &node.address,
        "--insecure-plaintext",
        "--closed-loop",
        "--in-flight",
        "256",
        "--closed-loop-tx-count",
        "10000000",
        "--sign-ahead",
        "50000",
        "--duration",
        "120",
        "--quiet",
        "--ack-log",
        acks.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(population.iter());
    let mut loadgen = tally().args(&args).stdout(Stdio::piped()).spawn().unwrap();
    let mut node = node;
    // Once acknowledgements flow (signing is over), a little more load, then the kill.
    let waited = Instant::now();
    while std::fs::metadata(&acks).map_or(0, |m| m.len()) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "no acknowledgement came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1_000));
    let killed = Instant::now();
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let status = loop {
        if let Some(status) = loadgen.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the run went on after its node died"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = killed.elapsed();
    let output = loadgen.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    println!("{stdout}");
    assert!(
        took < Duration::from_secs(5),
        "the run ended {took:?} after the kill"
    );
    assert!(!status.success(), "a run whose node died fails");
    assert!(stdout.contains("target stopped:"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(json["stopped"].is_string(), "{}", json["stopped"]);
    assert!(json["acknowledged"].as_u64().unwrap() > 0);
    let acked_lines = std::fs::read_to_string(&acks).unwrap().lines().count() as u64;
    assert_eq!(json["acknowledged"].as_u64(), Some(acked_lines));
}

/// Two nodes: the report shows each one's acknowledgements and latency; when one falls
/// silent (SIGSTOP: no reset, no answer) the load generator notices within its
/// --node-timeout, sends on to the other, fails over what the silent one had not
/// answered, and every transaction is still answered once.
#[test]
fn a_two_node_run_reports_both_and_survives_a_silent_one() {
    use std::process::Stdio;
    use std::time::Duration;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (node_a, population) = transfer_node(dir_a.path());
    let (node_b, _) = transfer_node(dir_b.path());
    let out = dir_a.path().join("out");
    let nodes = format!("{},{}", node_a.address, node_b.address);
    let mut args = vec![
        "loadgen",
        "--node",
        &nodes,
        "--insecure-plaintext",
        "--connections",
        "2",
        "--rate",
        "2000",
        "--duration",
        "5",
        "--node-timeout",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(population.iter());
    let b_address = node_b.address.clone();
    let loadgen = tally().args(&args).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2_000));
    signal(node_b.child.id(), "-STOP");
    let output = loadgen.wait_with_output().unwrap();
    signal(node_b.child.id(), "-CONT");
    for mut node in [node_a, node_b] {
        signal(node.child.id(), "-TERM");
        node.child.wait().unwrap();
    }
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    println!("{stdout}");
    assert!(output.status.success(), "{}", text(&output));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let sent = json["sent"].as_u64().unwrap();
    assert!(sent >= 9_000, "{sent}");
    assert_eq!(
        json["acknowledged"].as_u64(),
        Some(sent),
        "every record answered once"
    );
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for node in nodes {
        assert!(node["acknowledged"].as_u64().unwrap() > 1_000, "{node}");
        assert!(node["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{node}");
    }
    // The silent node took only what came before it stopped; the other took the rest.
    assert!(
        nodes[0]["sent"].as_u64().unwrap() > 2 * nodes[1]["sent"].as_u64().unwrap(),
        "{nodes:?}"
    );
    let lost = json["lost"].as_array().unwrap();
    assert_eq!(
        lost.len(),
        1,
        "the silent node is lost once, with both connections to it: {lost:?}"
    );
    assert!(
        lost.iter()
            .all(|l| l.as_str().unwrap().starts_with(&b_address)),
        "{lost:?}"
    );
    assert_eq!(nodes[1]["node"].as_str(), Some(b_address.as_str()));
    assert!(json["failed_over"].as_u64().is_some());
    assert!(stdout.contains("node lost:"), "{stdout}");
}

/// A sweep runs the workload at several in-flight depths against one node and writes one
/// table and one plot of latency against acknowledged throughput.
#[test]
fn a_sweep_writes_its_table_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let output = run(&[
        "loadgen",
        "--workload",
        "transfer",
        "--accounts",
        "300",
        "--distribution",
        "zipfian",
        "--banks",
        "2",
        "--closed-loop",
        "--closed-loop-tx-count",
        "1000",
        // the count ends each level, never the clock (one in flight waits for each block)
        "--duration",
        "120",
        "--sweep",
        "1,64,1024",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let table = std::fs::read_to_string(out.join("sweep.txt")).unwrap();
    println!("{table}");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for (row, depth) in rows
        .iter()
        .zip(["in flight 1 ", "in flight 64 ", "in flight 1024 "])
    {
        assert!(row.starts_with(depth), "{row}");
        assert!(row.contains("100.00%"), "every transfer is ok: {row}");
    }
    let points: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    let points = points.as_array().unwrap();
    assert_eq!(points.len(), 3);
    for point in points {
        assert_eq!(point["acknowledged"].as_u64(), Some(1_000), "{point}");
    }
    // Deeper windows go faster than one at a time.
    assert!(
        points[2]["throughput_per_s"].as_f64().unwrap()
            > points[0]["throughput_per_s"].as_f64().unwrap(),
        "{points:?}"
    );
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(
        svg.contains("p99") && svg.contains("in flight 64"),
        "the plot names its lines and points"
    );
}
