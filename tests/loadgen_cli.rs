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
