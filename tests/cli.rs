//! Whole-system tests of the `tally` binary: keys, genesis, demo, and a node process killed
//! with SIGKILL and restarted.

mod common;

use common::{run, start_node, tally, text, NodeProcess};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn keygen_writes_an_owner_only_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bank.key");
    let output = run(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let public = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(public.len(), 64, "prints the public key as hex");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = run(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
}

fn write_spec(dir: &Path, bank_key_ref: &str) -> std::path::PathBuf {
    for name in ["cb", "tax", "bank", "v0"] {
        let output = run(&[
            "keygen",
            "--out",
            dir.join(format!("{name}.key")).to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let spec = format!(
        r#"network_id = 9
ledger = 702

[[validators]]
name = "v0"
public_key = "file:v0.key"

[[tax_rates]]
category = 1
rate_bp = 900
basis = "inclusive"
rounding = "half_up"

[[accounts]]
id = 1
name = "central bank"
role = "central_bank"
owner = "file:cb.key"

[[accounts]]
id = 2
name = "tax authority"
role = "tax_authority"
owner = "file:tax.key"

[[accounts]]
id = 10
name = "bank"
role = "bank"
owner = "{bank_key_ref}"
balance = 1000
"#
    );
    let path = dir.join("spec.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

#[test]
fn genesis_resolves_key_files_and_names_a_broken_field() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "file:bank.key");
    let out = dir.path().join("genesis.toml");
    let output = run(&[
        "genesis",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let genesis = tally_engine::genesis::Genesis::load(&out).expect("the written genesis loads");
    assert_eq!(genesis.accounts.len(), 3);
    assert!(!genesis.accounts[2].owner.starts_with("file:"));

    let other = tempfile::tempdir().unwrap();
    let broken = write_spec(other.path(), "12ab");
    let output = run(&[
        "genesis",
        "--spec",
        broken.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("accounts[2].owner"),
        "{}",
        text(&output)
    );

    // A rate that names no basis is refused with what to add.
    let third = tempfile::tempdir().unwrap();
    let spec = write_spec(third.path(), "file:bank.key");
    let without_basis = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("basis = \"inclusive\"\n", "");
    std::fs::write(&spec, without_basis).unwrap();
    let output = run(&[
        "genesis",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("tax_rates[0].basis")
            && text(&output).contains("add basis = \"inclusive\""),
        "{}",
        text(&output)
    );
}

#[test]
fn demo_runs_and_reports_conservation() {
    let output = run(&[
        "demo",
        "--duration",
        "2",
        "--rate",
        "2000",
        "--quiet",
        "--banks",
        "4",
        "--merchants",
        "10",
        "--consumers",
        "20",
    ]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    for expected in [
        "throughput:",
        "p99.9",
        "results:",
        "ok ",
        "final state root:",
        "conserved",
        "replay of the log",
        "validator 3: height",
        "validators: every log holds the same",
        "injected on purpose: about 1%",
        "tax: collected",
        " units",
        "(inclusive ",
        "the tax accounts moved",
        "reconciled",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert!(
        !all.contains("NOT CONSERVED")
            && !all.contains("DIFFERS")
            && !all.contains("NOT RECONCILED"),
        "{all}"
    );
}

#[test]
fn demo_refuses_bad_options_with_a_reason() {
    let output = run(&["demo", "--duration=-1"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("--duration"), "{}", text(&output));
    let output = run(&["demo", "--backend", "quantum"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("unknown signature backend"),
        "{}",
        text(&output)
    );
}

#[test]
fn four_validators_killed_with_sigkill_restart_on_their_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("four_validators_killed_with_sigkill_restart_on_their_logs: seed {seed} (rerun with TALLY_TEST_SEED={seed})");
    for round in 0..3u64 {
        let mut child = tally()
            .args([
                "demo",
                "--duration",
                "8",
                "--rate",
                "2000",
                "--quiet",
                "--banks",
                "4",
                "--merchants",
                "10",
                "--consumers",
                "20",
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay_ms = 1_500 + (seed.wrapping_mul(round + 1) % 1_500);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // The next start recovers the log, replays it, and finishes a run on top of it.
    let output = run(&[
        "demo",
        "--duration",
        "1",
        "--rate",
        "500",
        "--quiet",
        "--banks",
        "4",
        "--merchants",
        "10",
        "--consumers",
        "20",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("conserved") && all.contains("matches"),
        "{all}"
    );
}

#[test]
fn inspect_works_on_a_real_log_and_corruption_stops_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let demo = [
        "demo",
        "--validators",
        "0",
        "--duration",
        "1",
        "--rate",
        "2000",
        "--quiet",
        "--banks",
        "4",
        "--merchants",
        "10",
        "--consumers",
        "20",
        "--data-dir",
        data_arg,
    ];
    let output = run(&demo);
    assert!(output.status.success(), "{}", text(&output));
    let log_dir = data.join("log");
    let output = run(&["inspect", "log", log_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("the log opens"), "{}", text(&output));

    // Flip one bit in the middle of the first segment: inspect names it, the node refuses.
    let segment = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("segment-")
        })
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let report = text(&run(&["inspect", "log", log_dir.to_str().unwrap()]));
    assert!(report.contains("entries"), "{report}");
    bytes[5_000] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let output = run(&["inspect", "log", log_dir.to_str().unwrap()]);
    assert!(!output.status.success(), "{}", text(&output));
    let output = run(&demo);
    assert!(
        !output.status.success(),
        "a node started on a corrupt log: {}",
        text(&output)
    );
    assert!(
        text(&output).contains("is damaged") && text(&output).contains("at byte"),
        "{}",
        text(&output)
    );
}

/// What `tally query` prints.
#[derive(serde::Deserialize)]
struct Printed {
    ledger_height: u64,
    answers: Vec<tally_engine::net::query::Answer>,
}

fn query(data: &Path, genesis: &Path, what: &[&str]) -> Printed {
    let mut args = vec![
        "query",
        "--data-dir",
        data.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ];
    args.extend(what);
    let output = run(&args);
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", text(&output)))
}

#[test]
fn query_answers_a_stopped_node_as_the_running_node_answered() {
    use tally_engine::net::query::{Answer, Query};
    use tally_engine::net::Client;

    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.toml");
    let data = dir.path().join("data");
    let population = ["--workload", "vat", "--seed", "5", "--banks", "3"];
    // Ids above u64: JSON carries them whole.
    let first: u128 = (1 << 70) + 1;
    let id_base = (first - 1).to_string();
    let mut args = vec!["loadgen", "--write-genesis", genesis.to_str().unwrap()];
    args.extend(population);
    let output = run(&args);
    assert!(output.status.success(), "{}", text(&output));
    // A short run in this process leaves a ledger with payments, refunds and tax.
    let mut args = vec![
        "loadgen",
        "--data-dir",
        data.to_str().unwrap(),
        "--rate",
        "400",
        "--duration",
        "1",
        "--quiet",
        "--id-base",
        &id_base,
    ];
    args.extend(population);
    let output = run(&args);
    assert!(output.status.success(), "{}", text(&output));

    // The node on that data directory answers over the network...
    // The node's standard output stays open (it prints on its way out).
    let NodeProcess {
        child: mut node,
        address,
        stdout: _stdout,
    } = start_node(dir.path());
    let client = Client::connect(address.as_str()).unwrap();
    // A merchant the short run paid with tax (which ones the workload drew).
    let paid = |merchant: u64| {
        let report = client.query(&Query::TaxReport {
            payee: Some(merchant),
            from_day: 0,
            to_day: u64::MAX,
        });
        matches!(report, Ok(Answer::TaxReport { rows, .. }) if !rows.is_empty())
    };
    let merchant = (100_000..100_200u64)
        .find(|merchant| paid(*merchant))
        .expect("the run paid some merchant with tax");
    let bank = 1_000;
    let asked = [
        Query::Account { account: bank },
        Query::Balance { account: merchant },
        Query::Transaction { id: first },
        Query::TxStatus { id: first },
        Query::Queue { payer: Some(bank) },
        Query::TaxReport {
            payee: Some(merchant),
            from_day: 0,
            to_day: u64::MAX,
        },
        Query::Validators,
        // what reads the log too: the running node reads its own
        Query::TxHistory { id: first },
        Query::AccountHistory {
            account: merchant,
            from: None,
            limit: None,
        },
        Query::PendingTransfers {
            account: None,
            after: None,
            limit: None,
        },
        Query::Totals,
        Query::BusinessDay,
        Query::TaxReport {
            payee: None,
            from_day: 0,
            to_day: u64::MAX,
        },
    ];
    let online: Vec<Answer> = asked
        .iter()
        .map(|query| client.query(query).unwrap())
        .collect();
    let Answer::TxStatus(status) = &online[3] else {
        panic!("{:?}", online[3]);
    };
    assert_eq!(status.status, "settled", "{status:?}");
    let Answer::TaxReport { rows, .. } = &online[5] else {
        panic!("{:?}", online[5]);
    };
    assert!(!rows.is_empty(), "the merchant was paid taxed payments");
    let Answer::TxHistory { blocks, .. } = &online[7] else {
        panic!("{:?}", online[7]);
    };
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let Answer::AccountHistory { transactions, .. } = &online[8] else {
        panic!("{:?}", online[8]);
    };
    assert!(!transactions.is_empty());
    drop(client);
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(node.wait().unwrap().success());

    // Stopped, its data directory gives the same answers in the same JSON.
    for (asked, answer) in asked.iter().zip(&online) {
        let json = serde_json::to_string(asked).unwrap();
        let printed = query(&data, &genesis, &["ask", &json]);
        assert!(printed.ledger_height > 0);
        assert_eq!(printed.answers, vec![answer.clone()], "{json}");
    }
    // The subcommands ask the same queries.
    let printed = query(&data, &genesis, &["balance", "1000"]);
    assert_eq!(printed.answers, vec![online[0].clone()]);
    // without a calendar the day is always open, and ends at the day cut-off
    let printed = query(&data, &genesis, &["business-day"]);
    assert_eq!(printed.answers, vec![online[11].clone()]);
    let Answer::BusinessDay(day) = &online[11] else {
        panic!("{:?}", online[11]);
    };
    assert!(
        !day.calendar && day.phase == "open" && day.date.is_none(),
        "{day:?}"
    );
    assert_eq!(day.next_boundary.as_deref(), Some("end_of_day"));
    let printed = query(&data, &genesis, &["status", &first.to_string()]);
    assert_eq!(printed.answers[0], online[3]);
    let Answer::TxHistory { id, blocks, .. } = &printed.answers[1] else {
        panic!("{:?}", printed.answers);
    };
    assert_eq!(*id, first);
    assert_eq!(blocks.len(), 1, "the first transaction was carried once");
    assert_eq!((blocks[0].id, blocks[0].result.as_str()), (first, "ok"));
    let printed = query(&data, &genesis, &["history", &merchant.to_string()]);
    let Answer::AccountHistory { transactions, .. } = &printed.answers[0] else {
        panic!("{:?}", printed.answers);
    };
    assert!(transactions
        .iter()
        .all(|t| t.debit_account == merchant || t.credit_account == merchant));
    assert!(transactions.iter().any(|t| t.status.is_some()));
    let printed = query(&data, &genesis, &["tax-report"]);
    let Answer::TaxReport {
        payee: None,
        rows,
        net_tax,
        ..
    } = &printed.answers[0]
    else {
        panic!("{:?}", printed.answers);
    };
    assert_eq!(*net_tax, rows.iter().map(|row| row.net_tax).sum::<i128>());
    // retail prices carry their tax inside, business invoices add it to the net
    for basis in ["inclusive", "exclusive"] {
        assert!(
            rows.iter().any(|row| row.basis == basis && row.tax > 0),
            "no {basis} tax in {rows:?}"
        );
    }
    for row in rows {
        assert_eq!(row.net_tax, row.tax as i128 - row.refunded_tax as i128);
        assert!(row.tax <= row.gross, "{row:?}");
    }
    let output = run(&[
        "query",
        "--data-dir",
        data.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
        "balance",
        "999999999",
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("not in this ledger"),
        "{}",
        text(&output)
    );

    // A mistyped --data-dir is refused, not answered from the genesis, and nothing is
    // created there.
    let missing = dir.path().join("dta");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (data_dir, why) in [
        (&missing, "no such directory"),
        (&empty, "it has no log/ directory"),
    ] {
        let output = run(&[
            "query",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--genesis",
            genesis.to_str().unwrap(),
            "balance",
            "1000",
        ]);
        assert!(!output.status.success(), "{}", text(&output));
        let said = text(&output);
        assert!(
            said.contains("holds no node's log") && said.contains(why),
            "{said}"
        );
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// A `tally node` process over TLS on `dir/node.toml`, and the client address it printed.
fn start_tls_node(dir: &Path) -> (std::process::Child, String) {
    common::start_tls_node(&dir.join("node.toml")).drain_output()
}

fn stop(mut child: std::process::Child) {
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn pki_revoke_signs_the_central_banks_revocation_and_every_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_string();
    let spec = write_spec(d, "file:bank.key");
    let ok = |args: &[&str]| {
        let output = run(args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        output
    };
    ok(&[
        "genesis",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        &path("genesis.toml"),
    ]);
    ok(&["pki", "init", "--dir", &path("ca"), "--network-id", "9"]);
    for (name, role, signer, host) in [
        ("v0", "validator", "v0.key", Some("127.0.0.1")),
        ("cb", "central_bank", "cb.key", None),
        ("bank", "bank", "bank.key", None),
    ] {
        let out = path(&format!("{name}.identity"));
        let signer = path(signer);
        let ca = path("ca");
        let mut args = vec![
            "pki", "issue", "--ca", &ca, "--name", name, "--role", role, "--signer", &signer,
            "--out", &out,
        ];
        if let Some(host) = host {
            args.extend(["--host", host]);
        }
        ok(&args);
    }
    std::fs::write(
        d.join("node.toml"),
        "data_dir = \"data\"\ngenesis = \"genesis.toml\"\nlisten = \"127.0.0.1:0\"\nidentity = \"v0.identity\"\n[limits]\ncheckpoint_interval_blocks = 1\n",
    )
    .unwrap();
    let serial = tally_pki::Identity::load(&d.join("bank.identity"))
        .unwrap()
        .serial;
    let (node, address) = start_tls_node(d);
    let status =
        |identity: &str| run(&["status", "--node", &address, "--identity", &path(identity)]);
    assert!(status("bank.identity").status.success());
    let revoke = |identity: &str, key: &str| {
        run(&[
            "pki",
            "revoke",
            "--node",
            &address,
            "--identity",
            &path(identity),
            "--key-file",
            &path(key),
            "--genesis",
            &path("genesis.toml"),
            "--serial",
            &serial,
        ])
    };
    // A bank's certificate does not cover the issuance account: the node forbids it.
    let output = revoke("bank.identity", "bank.key");
    assert!(!output.status.success());
    assert!(text(&output).contains("forbidden"), "{}", text(&output));
    // The central bank's connection, but another key: the ledger refuses it with its code.
    let output = revoke("cb.identity", "bank.key");
    assert!(!output.status.success());
    assert!(
        text(&output).contains("\"result\":\"not_central_bank\""),
        "{}",
        text(&output)
    );
    assert!(status("bank.identity").status.success());
    // The central bank's key: revoked, and the bank is refused from then on.
    let output = revoke("cb.identity", "cb.key");
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("\"result\":\"ok\""),
        "{}",
        text(&output)
    );
    let refused = status("bank.identity");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("CertificateRevoked"),
        "{}",
        text(&refused)
    );
    let output = revoke("cb.identity", "cb.key");
    assert!(
        text(&output).contains("\"result\":\"certificate_already_revoked\""),
        "{}",
        text(&output)
    );
    stop(node);
    // Restarted (from its checkpoint), the node still refuses it.
    let (node, address) = start_tls_node(d);
    let refused = run(&[
        "status",
        "--node",
        &address,
        "--identity",
        &path("bank.identity"),
    ]);
    assert!(
        text(&refused).contains("CertificateRevoked"),
        "{}",
        text(&refused)
    );
    assert!(run(&[
        "status",
        "--node",
        &address,
        "--identity",
        &path("cb.identity")
    ])
    .status
    .success());
    stop(node);
}

#[test]
fn a_cluster_directorys_own_files_revoke_a_bank_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let path = |name: &str| cluster.join(name).to_str().unwrap().to_string();
    common::single_node_cluster(&cluster, &["--banks", "2"]);
    let (node, address) = start_tls_node(&cluster);
    let shown = run(&["pki", "show", &path("participants/bank-1000.identity")]);
    let serial = text(&shown)
        .lines()
        .find_map(|line| line.strip_prefix("serial").map(|s| s.trim().to_string()))
        .expect("pki show prints the serial");
    let status = || {
        run(&[
            "status",
            "--node",
            &address,
            "--identity",
            &path("participants/bank-1000.identity"),
        ])
    };
    assert!(status().status.success());
    let output = run(&[
        "pki",
        "revoke",
        "--node",
        &address,
        "--identity",
        &path("participants/central-bank.identity"),
        "--key-file",
        &path("participants/central-bank.key"),
        "--genesis",
        &path("genesis.toml"),
        "--serial",
        &serial,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("\"result\":\"ok\""),
        "{}",
        text(&output)
    );
    let refused = status();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("CertificateRevoked"),
        "{}",
        text(&refused)
    );
    stop(node);
}

#[test]
fn cluster_init_opens_millions_of_bank_held_accounts_in_a_small_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let output = run(&[
        "cluster",
        "init",
        "--validators",
        "1",
        "--banks",
        "4",
        "--workload",
        "transfer",
        "--accounts",
        "2000000",
        "--custody",
        "bank",
        "--dir",
        cluster.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output)
            .contains("--workload transfer --seed 1 --banks 4 --accounts 2000000 --custody bank"),
        "{}",
        text(&output)
    );
    let genesis_path = cluster.join("genesis.toml");
    assert!(std::fs::metadata(&genesis_path).unwrap().len() < 16 * 1024);
    let genesis = tally_engine::genesis::Genesis::load(&genesis_path).unwrap();
    assert_eq!(genesis.account_ranges.len(), 4);
    assert_eq!(
        genesis.account_count(),
        genesis.accounts.len() as u64 + 2_000_000
    );
    // The flags shape the transfer workload only.
    let refused = run(&[
        "cluster",
        "init",
        "--custody",
        "bank",
        "--dir",
        dir.path().join("other").to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("the mixed workload has its own"),
        "{}",
        text(&refused)
    );
}

/// `tally tx` and `tally query --node` against a running node over TLS, each step through
/// the binary as an operator would type it, each printed result checked.
#[test]
fn tx_and_query_commands_operate_a_running_node_over_tls() {
    use serde_json::Value;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_string();
    let spec = write_spec(d, "file:bank.key");
    let ok = |args: &[&str]| {
        let output = run(args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        output
    };
    ok(&["keygen", "--out", &path("bank2.key")]);
    let mut text_of_spec = std::fs::read_to_string(&spec).unwrap();
    text_of_spec = text_of_spec.replacen(
        "[[validators]]",
        "[currency]\ncode = \"EUR\"\nminor_unit_digits = 2\n\n[[validators]]",
        1,
    );
    text_of_spec.push_str(
        r#"
[[accounts]]
id = 11
name = "bank two"
role = "bank"
owner = "file:bank2.key"

[[accounts]]
id = 100
name = "alice"
role = "consumer"
owner = "file:bank.key"
bank = 10
balance = 50000

[[accounts]]
id = 200
name = "shop"
role = "merchant"
owner = "file:bank.key"
bank = 10
"#,
    );
    std::fs::write(&spec, text_of_spec).unwrap();
    ok(&[
        "genesis",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        &path("genesis.toml"),
    ]);
    ok(&["pki", "init", "--dir", &path("ca"), "--network-id", "9"]);
    for (name, role, signer) in [
        ("v0", "validator", "v0.key"),
        ("cb", "central_bank", "cb.key"),
        ("tax", "tax_authority", "tax.key"),
        ("bank", "bank", "bank.key"),
        ("bank2", "bank", "bank2.key"),
    ] {
        let (out, signer, ca) = (path(&format!("{name}.identity")), path(signer), path("ca"));
        let mut args = vec![
            "pki", "issue", "--ca", &ca, "--name", name, "--role", role, "--signer", &signer,
            "--out", &out,
        ];
        if role == "validator" {
            args.extend(["--host", "127.0.0.1"]);
        }
        ok(&args);
    }
    std::fs::write(
        d.join("node.toml"),
        "data_dir = \"data\"\ngenesis = \"genesis.toml\"\nlisten = \"127.0.0.1:0\"\nidentity = \"v0.identity\"\n",
    )
    .unwrap();
    let (node, address) = start_tls_node(d);
    // stopped by SIGTERM at the end, killed if a step fails before
    struct KillOnDrop(Option<std::process::Child>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let mut node = KillOnDrop(Some(node));
    let genesis = path("genesis.toml");

    // `tally tx KIND` as `who` (identity and key file): its exit status and printed JSON.
    let tx = |who: &str, key: &str, args: &[&str]| -> (bool, Value) {
        let (identity, key) = (path(&format!("{who}.identity")), path(key));
        let mut all = vec!["tx", args[0]];
        all.extend([
            "--node",
            &address,
            "--identity",
            &identity,
            "--genesis",
            &genesis,
            "--key-file",
            &key,
            "--json",
        ]);
        all.extend(&args[1..]);
        let output = run(&all);
        let printed: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{all:?}: {error}: {}", text(&output)));
        (output.status.success(), printed)
    };
    let settled = |printed: &Value, result: &str| {
        assert_eq!(printed["result"], result, "{printed}");
        assert!(printed["height"].as_u64().unwrap() > 0, "{printed}");
        assert!(!printed["meaning"].as_str().unwrap().is_empty());
        printed["id"].as_str().unwrap().to_string()
    };
    // `tally query --node` as `who`: the answers.
    let query = |who: &str, args: &[&str]| -> Result<Vec<Value>, String> {
        let identity = path(&format!("{who}.identity"));
        let mut all = vec!["query", "--node", &address, "--identity", &identity];
        all.extend(args);
        let output = run(&all);
        if !output.status.success() {
            return Err(text(&output));
        }
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(printed["ledger_height"].as_u64().is_some(), "{printed}");
        Ok(printed["answers"].as_array().unwrap().clone())
    };
    let balance = |who: &str, account: &str| -> i64 {
        let answers = query(who, &["balance", account]).unwrap();
        answers[0]["account"]["balance"].as_i64().unwrap()
    };

    // A payment by hand, in currency units.
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &["transfer", "--from", "10", "--to", "11", "--amount", "2.50"],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(printed["amount"], "2.50 EUR");
    assert_eq!(printed["minor_units"], "250");
    assert_eq!(balance("bank2", "11"), 250);
    // Minor units on request; malformed amounts get their own errors.
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &[
            "transfer",
            "--from",
            "10",
            "--to",
            "11",
            "--amount",
            "50",
            "--minor-units",
        ],
    );
    assert!(success, "{printed}");
    assert_eq!(balance("bank2", "11"), 300);
    for (amount, why) in [
        ("12,50", "is not a number"),
        ("1.005", "has 3 decimals; the currency has 2"),
        ("-4", "is negative"),
        ("0.00", "is zero"),
    ] {
        let output = run(&[
            "tx",
            "transfer",
            "--node",
            &address,
            "--identity",
            &path("bank.identity"),
            "--genesis",
            &genesis,
            "--key-file",
            &path("bank.key"),
            "--from",
            "10",
            "--to",
            "11",
            "--amount",
            amount,
        ]);
        assert!(!output.status.success());
        assert!(text(&output).contains(why), "{amount}: {}", text(&output));
    }

    // A taxed payment (9% inclusive) and its refund; the tax report over the network.
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &[
            "taxed-payment",
            "--from",
            "100",
            "--to",
            "200",
            "--amount",
            "109.00",
            "--category",
            "1",
        ],
    );
    assert!(success, "{printed}");
    let payment = settled(&printed, "ok");
    assert_eq!(balance("bank", "200"), 10_000);
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &[
            "refund",
            "--payment",
            &payment,
            "--from",
            "200",
            "--to",
            "100",
            "--amount",
            "10.90",
        ],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(balance("bank", "100"), 50_000 - 10_900 + 1_090);
    let answers = query("tax", &["tax-report", "--merchant", "200"]).unwrap();
    let report = &answers[0]["tax_report"];
    assert_eq!(
        report["to_day"],
        Value::Null,
        "an open end is null: {report}"
    );
    assert_eq!(report["rows"][0]["tax"], 900);
    assert_eq!(report["rows"][0]["refunded_tax"], 90);
    assert_eq!(report["net_tax"], 810);

    // A pledge and a redeem, signed by the central bank (the redeem over the bank's
    // connection: it debits the bank).
    let (success, printed) = tx("cb", "cb.key", &["pledge", "--to", "11", "--amount", "100"]);
    assert!(success, "{printed}");
    settled(&printed, "ok");
    let (success, printed) = tx(
        "bank2",
        "cb.key",
        &["redeem", "--from", "11", "--amount", "10"],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(balance("bank2", "11"), 300 + 10_000 - 1_000);

    // A payment beyond the payer's liquidity waits in its queue: held, released,
    // re-prioritised, cancelled, each read back over the network.
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &["transfer", "--from", "10", "--to", "11", "--amount", "500"],
    );
    assert!(success, "queued is accepted: {printed}");
    let queued = settled(&printed, "queued");
    let status = |who: &str, id: &str| query(who, &["status", id]).unwrap();
    let answers = status("bank", &queued);
    assert_eq!(answers[0]["tx_status"]["status"], "queued", "{answers:?}");
    assert_eq!(answers[0]["tx_status"]["queue_position"], 1);
    assert_eq!(answers[1]["tx_history"]["blocks"][0]["result"], "queued");
    for (op, extra) in [
        ("queue-hold", None),
        ("queue-release", None),
        ("queue-priority", Some("--urgent")),
    ] {
        let mut args = vec![op, "--payment", &queued];
        args.extend(extra);
        let (success, printed) = tx("bank", "bank.key", &args);
        assert!(success, "{op}: {printed}");
        settled(&printed, "ok");
        assert_eq!(printed["payer"], "10");
    }
    let answers = query("bank", &["queue", "--bank", "10"]).unwrap();
    assert_eq!(
        answers[0]["queue"]["payments"][0]["urgent"], true,
        "{answers:?}"
    );
    // another bank may not read it, nor act on it
    let refused = query("bank2", &["queue", "--bank", "10"]).unwrap_err();
    assert!(refused.contains("may not read"), "{refused}");
    let (success, printed) = tx("bank", "bank.key", &["queue-cancel", "--payment", &queued]);
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(
        status("bank", &queued)[0]["tx_status"]["status"],
        "cancelled"
    );

    // Suspension: a payment to the suspended bank is refused with its code and meaning.
    let (success, printed) = tx("cb", "cb.key", &["suspend", "--account", "11"]);
    assert!(success, "{printed}");
    settled(&printed, "ok");
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &["transfer", "--from", "10", "--to", "11", "--amount", "1"],
    );
    assert!(!success, "{printed}");
    let refused_id = settled(&printed, "credit_account_suspended");
    assert_eq!(printed["meaning"], "the credit account is suspended");
    let (success, printed) = tx("cb", "cb.key", &["reinstate", "--account", "11"]);
    assert!(success, "{printed}");
    settled(&printed, "ok");
    // the refusal's reason, read back: the central bank reads it, the bank its own attempt
    let answers = status("cb", &refused_id);
    assert_eq!(answers[0]["tx_status"]["status"], "unknown");
    assert_eq!(
        answers[1]["tx_history"]["blocks"][0]["result"],
        "credit_account_suspended"
    );
    let ask = format!(r#"{{"tx_history":{{"id":{refused_id}}}}}"#);
    let answers = query("bank", &["ask", &ask]).unwrap();
    assert_eq!(
        answers[0]["tx_history"]["blocks"][0]["result"],
        "credit_account_suspended"
    );
    let refused = query("tax", &["ask", &ask]).unwrap_err();
    assert!(refused.contains("may not read transaction"), "{refused}");

    // Two-phase: reserve, read the reservation, post it; reserve again and void it.
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &[
            "pending",
            "--from",
            "10",
            "--to",
            "11",
            "--amount",
            "1.00",
            "--expires-in-s",
            "600",
        ],
    );
    assert!(success, "{printed}");
    let pending = settled(&printed, "ok");
    let answers = query("bank", &["pending", "--account", "10"]).unwrap();
    assert_eq!(answers[0]["pending_transfers"]["total"], 1, "{answers:?}");
    assert_eq!(
        answers[0]["pending_transfers"]["transfers"][0]["amount"],
        100
    );
    // a second one, and the two read a page at a time, in id order
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &["pending", "--from", "10", "--to", "11", "--amount", "0.30"],
    );
    assert!(success, "{printed}");
    let second = settled(&printed, "ok");
    let page = |after: Option<&str>| {
        let mut args = vec!["pending", "--account", "10", "--limit", "1"];
        if let Some(after) = after {
            args.extend(["--after", after]);
        }
        // typed: ids are u128, beyond what a JSON double holds
        let identity = path("bank.identity");
        let mut all = vec!["query", "--node", &address, "--identity", &identity];
        all.extend(args);
        let output = run(&all);
        assert!(output.status.success(), "{}", text(&output));
        #[derive(serde::Deserialize)]
        struct Printed {
            answers: Vec<tally_engine::net::query::Answer>,
        }
        let printed: Printed = serde_json::from_slice(&output.stdout).unwrap();
        match printed.answers.into_iter().next().unwrap() {
            tally_engine::net::query::Answer::PendingTransfers {
                total,
                transfers,
                next,
                ..
            } => (total, transfers, next),
            other => panic!("{other:?}"),
        }
    };
    let mut ids: Vec<u128> = [pending.parse().unwrap(), second.parse().unwrap()].to_vec();
    ids.sort_unstable();
    let (total, first_page, next) = page(None);
    assert_eq!((total, first_page.len(), next), (2, 1, Some(ids[0])));
    assert_eq!(first_page[0].id, ids[0]);
    let after = ids[0].to_string();
    let (_, second_page, next) = page(Some(&after));
    assert_eq!((second_page.len(), next), (1, None));
    assert_eq!(second_page[0].id, ids[1]);
    let (success, printed) = tx("bank", "bank.key", &["void", "--pending", &second]);
    assert!(success, "{printed}");
    let (success, printed) = tx("bank", "bank.key", &["post", "--pending", &pending]);
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(status("bank", &pending)[0]["tx_status"]["status"], "posted");
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &["pending", "--from", "10", "--to", "11", "--amount", "0.40"],
    );
    assert!(success, "{printed}");
    let pending = settled(&printed, "ok");
    let (success, printed) = tx("bank", "bank.key", &["void", "--pending", &pending]);
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(status("bank", &pending)[0]["tx_status"]["status"], "voided");

    // A tax rate by the tax authority.
    let (success, printed) = tx(
        "tax",
        "tax.key",
        &[
            "set-tax-rate",
            "--category",
            "1",
            "--rate-bp",
            "1000",
            "--effective-in-s",
            "60",
        ],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");

    // Another key than the account's owner: refused by the ledger, printed for people.
    let output = run(&[
        "tx",
        "transfer",
        "--node",
        &address,
        "--identity",
        &path("bank.identity"),
        "--genesis",
        &genesis,
        "--key-file",
        &path("bank2.key"),
        "--from",
        "10",
        "--to",
        "11",
        "--amount",
        "1",
    ]);
    assert!(!output.status.success());
    let said = text(&output);
    assert!(
        said.contains("not_owner: the signing key is not the debit account's owner key"),
        "{said}"
    );
    assert!(
        said.contains("amount") && said.contains("1.00 EUR"),
        "{said}"
    );

    // Failover: the first node named cannot be reached, the second takes it.
    let output = run(&[
        "tx",
        "transfer",
        "--node",
        "127.0.0.1:1",
        "--node",
        &address,
        "--identity",
        &path("bank.identity"),
        "--genesis",
        &genesis,
        "--key-file",
        &path("bank.key"),
        "--from",
        "10",
        "--to",
        "11",
        "--amount",
        "0.01",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["node"], address.as_str());
    // Without waiting: the node took it, no result is printed for it yet.
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &[
            "transfer",
            "--from",
            "10",
            "--to",
            "11",
            "--amount",
            "0.01",
            "--no-wait",
        ],
    );
    assert!(success, "{printed}");
    assert_eq!(printed["result"], "submitted", "{printed}");
    assert_eq!(printed["height"], Value::Null, "{printed}");
    // it settles in a block of its own time (read back before the history below)
    let id = printed["id"].as_str().unwrap().to_string();
    while status("bank", &id)[0]["tx_status"]["status"] != "settled" {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A genesis of another network is named, not sent to.
    let other = path("other-genesis.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&genesis)
            .unwrap()
            .replacen("network_id = 9", "network_id = 8", 1),
    )
    .unwrap();
    let output = run(&[
        "tx",
        "transfer",
        "--node",
        &address,
        "--identity",
        &path("bank.identity"),
        "--genesis",
        &other,
        "--key-file",
        &path("bank.key"),
        "--from",
        "10",
        "--to",
        "11",
        "--amount",
        "1",
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("runs genesis"), "{}", text(&output));

    // History over the network, paged.
    let first = query("bank2", &["history", "11", "--limit", "2"]).unwrap();
    let page = &first[0]["account_history"];
    assert_eq!(page["transactions"].as_array().unwrap().len(), 2, "{page}");
    let next = &page["next"];
    let (height, index) = (next["height"].to_string(), next["index"].to_string());
    let second = query(
        "bank2",
        &[
            "history",
            "11",
            "--from-height",
            &height,
            "--from-index",
            &index,
            "--limit",
            "1000",
        ],
    )
    .unwrap();
    let rest = &second[0]["account_history"];
    assert_eq!(rest["next"], Value::Null, "{rest}");
    let all = query("bank2", &["history", "11", "--limit", "1000"]).unwrap();
    let all = all[0]["account_history"]["transactions"]
        .as_array()
        .unwrap()
        .clone();
    let mut paged = page["transactions"].as_array().unwrap().clone();
    paged.extend(rest["transactions"].as_array().unwrap().iter().cloned());
    assert_eq!(paged, all);
    assert!(all
        .iter()
        .any(|t| t["result"] == "credit_account_suspended"));
    // privacy: another bank's history is not read
    let refused = query("bank2", &["history", "10"]).unwrap_err();
    assert!(refused.contains("may not read account 10"), "{refused}");
    // totals and the validator set, by the central bank
    let answers = query("cb", &["totals"]).unwrap();
    let totals = &answers[0]["totals"];
    // the opening balances and the pledge less the redeem
    assert_eq!(
        totals["money_in_circulation"],
        1_000 + 50_000 + 9_000,
        "{totals}"
    );
    assert_eq!(totals["net_tax"], 810, "{totals}");
    assert!(query("bank", &["totals"])
        .unwrap_err()
        .contains("may not read"));
    let answers = query("cb", &["validators"]).unwrap();
    assert_eq!(
        answers[0]["validators"]["validators"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Events of the merchant's and the customer's accounts from the first block: the taxed
    // payment with its tax and where it went, then its refund; nothing of others' accounts.
    let watch = |who: &str, args: &[&str]| {
        let identity = path(&format!("{who}.identity"));
        let mut all = vec![
            "watch",
            "--node",
            &address,
            "--identity",
            &identity,
            "--genesis",
            &genesis,
        ];
        all.extend(args);
        run(&all)
    };
    let state = path("watch.state");
    let output = watch(
        "bank",
        &[
            "--account",
            "200",
            "--from-height",
            "1",
            "--count",
            "2",
            "--json",
            "--state-file",
            &state,
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    // typed: ids are u128, beyond what a JSON double holds
    let batches: Vec<tally_engine::events::EventBatch> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let events: Vec<_> = batches.iter().flat_map(|batch| &batch.events).collect();
    let payment_id: u128 = payment.parse().unwrap();
    assert_eq!(events.len(), 2, "{batches:?}");
    assert_eq!(events[0].kind, tally_engine::events::EventKind::Settled);
    assert_eq!(events[0].id, payment_id);
    assert_eq!((events[0].payer, events[0].payee), (100, 200));
    assert_eq!((events[0].amount, events[0].tax), (10_900, Some(900)));
    assert_eq!(events[1].kind, tally_engine::events::EventKind::Refunded);
    assert_eq!(events[1].related_id, Some(payment_id));
    // the state file holds the block after the refund's: a watch started again from it
    // waits for new blocks, and the merchant has none
    let refund_height = batches.last().unwrap().height;
    assert_eq!(
        std::fs::read_to_string(&state).unwrap().trim(),
        (refund_height + 1).to_string()
    );
    let output = watch(
        "bank",
        &[
            "--account",
            "200",
            "--state-file",
            &state,
            "--until-height",
            &refund_height.to_string(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(output.stdout.is_empty(), "{}", text(&output));
    // for people: amounts in the currency
    let output = watch(
        "tax",
        &["--account", "2", "--from-height", "1", "--count", "1"],
    );
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "settled {payment} 100 -> 200 109.00 EUR (tax 9.00 EUR to 2)"
        )),
        "{said}"
    );
    // another bank may not follow the merchant
    let output = watch(
        "bank2",
        &["--account", "200", "--from-height", "1", "--count", "1"],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("may not follow account 200"),
        "{}",
        text(&output)
    );

    // The participants' lifecycle. A consumer opened at bank 10 (owned by a key of its own)
    // is paid through its bank's gateway, capped, pays back and is closed by its bank.
    for key in ["carol.key", "bank3.key", "bank3-new.key"] {
        ok(&["keygen", "--out", &path(key)]);
    }
    let carol = path("carol.key");
    let (success, printed) = tx(
        "cb",
        "cb.key",
        &[
            "open-account",
            "--account",
            "300",
            "--role",
            "consumer",
            "--bank",
            "10",
            "--owner",
            &carol,
        ],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(printed["kind"], "open_account");
    let pay = |from: &str, to: &str, amount: &str| {
        tx(
            "bank",
            "bank.key",
            &["transfer", "--from", from, "--to", to, "--amount", amount],
        )
    };
    let (success, printed) = pay("100", "300", "5.00");
    assert!(success, "{printed}");
    assert_eq!(balance("bank", "300"), 500);
    let (success, printed) = tx(
        "cb",
        "cb.key",
        &["set-limits", "--account", "300", "--balance-max", "6.00"],
    );
    assert!(success, "{printed}");
    assert_eq!(printed["balance_max"], "6.00 EUR");
    let (success, printed) = pay("100", "300", "2.00");
    assert!(!success, "{printed}");
    settled(&printed, "balance_limit_exceeded");
    // carol's own key signs for her account, over her bank's connection
    let (success, printed) = tx(
        "bank",
        "carol.key",
        &[
            "transfer", "--from", "300", "--to", "100", "--amount", "5.00",
        ],
    );
    assert!(success, "{printed}");
    let (success, printed) = tx(
        "bank",
        "bank.key",
        &["close-account", "--account", "300", "--by-bank", "10"],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    let (success, printed) = pay("100", "300", "1.00");
    assert!(!success, "{printed}");
    settled(&printed, "account_closed");
    assert_eq!(printed["meaning"], "the record names a closed account");
    let answers = query("cb", &["balance", "300"]).unwrap();
    assert_eq!(answers[0]["account"]["closed"], true, "{answers:?}");
    // A bank joins with five customers; after a compromise the central bank rotates its key:
    // the old key's certificate covers it no more, a certificate of the new key does.
    let (success, printed) = tx(
        "cb",
        "cb.key",
        &[
            "add-bank",
            "--bank",
            "12",
            "--owner",
            &path("bank3.key"),
            "--customers-from",
            "1000",
            "--customers",
            "5",
        ],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    let (success, printed) = tx("cb", "cb.key", &["pledge", "--to", "12", "--amount", "50"]);
    assert!(success, "{printed}");
    for (name, signer) in [("bank3", "bank3.key"), ("bank3-new", "bank3-new.key")] {
        let (out, signer, ca) = (path(&format!("{name}.identity")), path(signer), path("ca"));
        ok(&[
            "pki", "issue", "--ca", &ca, "--name", name, "--role", "bank", "--signer", &signer,
            "--out", &out,
        ]);
    }
    let (success, printed) = tx(
        "bank3",
        "bank3.key",
        &["transfer", "--from", "12", "--to", "10", "--amount", "1.00"],
    );
    assert!(success, "{printed}");
    let (success, printed) = tx(
        "cb",
        "cb.key",
        &[
            "rotate-key",
            "--account",
            "12",
            "--new-owner",
            &path("bank3-new.key"),
            "--by-central-bank",
        ],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    let old_key = run(&[
        "tx",
        "transfer",
        "--node",
        &address,
        "--identity",
        &path("bank3.identity"),
        "--genesis",
        &genesis,
        "--key-file",
        &path("bank3.key"),
        "--from",
        "12",
        "--to",
        "10",
        "--amount",
        "1",
    ]);
    assert!(!old_key.status.success());
    assert!(
        text(&old_key).contains("does not cover"),
        "{}",
        text(&old_key)
    );
    let (success, printed) = tx(
        "bank3-new",
        "bank3-new.key",
        &["transfer", "--from", "12", "--to", "10", "--amount", "1.00"],
    );
    assert!(success, "{printed}");
    settled(&printed, "ok");
    assert_eq!(balance("bank3-new", "12"), 5_000 - 200);
    assert_eq!(balance("bank3-new", "1004"), 0);
    // a key that is neither hex nor a key file is refused before anything is sent
    let output = run(&[
        "tx",
        "rotate-key",
        "--node",
        &address,
        "--identity",
        &path("cb.identity"),
        "--genesis",
        &genesis,
        "--key-file",
        &path("cb.key"),
        "--account",
        "12",
        "--new-owner",
        "no-such-key",
        "--by-central-bank",
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("--new-owner: no-such-key is neither a hex public key"),
        "{}",
        text(&output)
    );
    stop(node.0.take().unwrap());

    // Stopped, the data directory answers the same queries in the same JSON shape.
    let output = run(&[
        "query",
        "--data-dir",
        &path("data"),
        "--genesis",
        &genesis,
        "history",
        "11",
        "--limit",
        "1000",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed["answers"][0]["account_history"]["transactions"],
        Value::Array(all)
    );
}
