//! `tally prove` and `tally verify-proof` against a running validator: a payment sent by
//! hand, its proof fetched over the client protocol with a bank's identity (read privacy:
//! another bank is refused), verified offline against the genesis alone, the same proof made
//! from the stopped node's data directory, a forged proof refused with its link, and a
//! mistyped data directory refused.

mod common;

use common::{run, text};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

struct KillOnDrop(Option<Child>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_proof_fetched_from_a_running_validator_verifies_offline_and_forgeries_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let path = |name: &str| cluster.join(name).to_str().unwrap().to_string();
    let output = run(&[
        "cluster",
        "init",
        "--validators",
        "1",
        "--dir",
        &path(""),
        "--base-port",
        "0",
        "--banks",
        "2",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let files = tally_loadgen::cluster::open(&cluster, 1, false).unwrap();
    let validator = &files.validators[0];
    let address = validator.client.to_string();
    let genesis = path("genesis.toml");
    let mut child = common::tally()
        .args(["node", "--config", validator.config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut node = KillOnDrop(Some(child));
    loop {
        let line = stdout.next().expect("the node prints its address").unwrap();
        if line.starts_with("clients: ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in stdout {});

    // A payment by hand from bank 1000 to bank 1001, final in a certified block.
    let output = run(&[
        "tx",
        "transfer",
        "--node",
        &address,
        "--identity",
        &path("participants/bank-1000.identity"),
        "--genesis",
        &genesis,
        "--key-file",
        &path("participants/bank-1000.key"),
        "--from",
        "1000",
        "--to",
        "1001",
        "--amount",
        "1.00",
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let sent: Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = sent["id"].as_str().unwrap().to_string();
    let height = sent["height"].as_u64().unwrap();

    // The paying bank proves it over the network; the proof verifies against the genesis.
    let proof_file = dir.path().join("proof.json");
    let output = run(&[
        "prove",
        "--node",
        &address,
        "--identity",
        &path("participants/bank-1000.identity"),
        "--genesis",
        &genesis,
        "--tx",
        &id,
        "--out",
        proof_file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let verify = |file: &std::path::Path| {
        run(&[
            "verify-proof",
            file.to_str().unwrap(),
            "--genesis",
            &genesis,
        ])
    };
    let output = verify(&proof_file);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("OK: transaction {id} is record")),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains(&format!("in block {height} ")),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("record: transfer from account 1000 to account 1001, amount 1.00"),
        "{}",
        text(&output)
    );
    // Compared as text: ids are u128, which `serde_json::Value` does not hold whole.
    let proof_text = std::fs::read_to_string(&proof_file).unwrap();
    let proof: Value = serde_json::from_str(&proof_text).unwrap();
    assert_eq!(proof["version"], 1);
    assert_eq!(proof["block"]["height"], height);

    // Read privacy: the payee bank and the central bank prove it too; the tax authority,
    // which reads only taxed payments of others, is refused, as is a bank asking for an id
    // the ledger does not hold.
    let ask = |who: &str| {
        run(&[
            "prove",
            "--node",
            &address,
            "--identity",
            &path(&format!("participants/{who}.identity")),
            "--tx",
            &id,
        ])
    };
    let output = ask("central-bank");
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), proof_text);
    let output = ask("bank-1001");
    assert!(output.status.success(), "{}", text(&output));
    let output = ask("tax-authority");
    assert!(!output.status.success());
    assert!(
        text(&output).contains("may not read transaction"),
        "{}",
        text(&output)
    );
    let output = run(&[
        "prove",
        "--node",
        &address,
        "--identity",
        &path("participants/bank-1000.identity"),
        "--tx",
        "123456789",
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("may not read transaction"),
        "{}",
        text(&output)
    );

    // A forged proof: the amount of the record altered.
    let record = proof["record"]["record"].as_str().unwrap().to_string();
    let at = 2 * 32;
    let digit = if &record[at..at + 1] == "0" { "1" } else { "0" };
    let altered = format!("{}{digit}{}", &record[..at], &record[at + 1..]);
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, proof_text.replace(&record, &altered)).unwrap();
    let output = verify(&forged_file);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("does NOT verify"),
        "{}",
        text(&output)
    );
    assert!(
        text(&output).contains("altered record"),
        "{}",
        text(&output)
    );
    // Against another network's genesis.
    let other = dir.path().join("other-genesis.toml");
    let mut genesis_text = std::fs::read_to_string(&genesis).unwrap();
    let network_line = genesis_text
        .lines()
        .find(|line| line.starts_with("network_id"))
        .unwrap()
        .to_string();
    genesis_text = genesis_text.replace(&network_line, "network_id = 424242");
    std::fs::write(&other, genesis_text).unwrap();
    let output = run(&[
        "verify-proof",
        proof_file.to_str().unwrap(),
        "--genesis",
        other.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("wrong network"), "{}", text(&output));

    // Stopped: the same proof from the data directory; a mistyped directory is refused.
    let mut child = node.0.take().unwrap();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(child.wait().unwrap().success());
    let data_dir = validator.data_dir.to_str().unwrap().to_string();
    let output = run(&[
        "prove",
        "--data-dir",
        &data_dir,
        "--genesis",
        &genesis,
        "--tx",
        &id,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), proof_text);
    let mistyped = format!("{data_dir}-typo");
    let output = run(&[
        "prove",
        "--data-dir",
        &mistyped,
        "--genesis",
        &genesis,
        "--tx",
        &id,
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("holds no node's log"),
        "{}",
        text(&output)
    );
    assert!(!std::path::Path::new(&mistyped).exists());
}
