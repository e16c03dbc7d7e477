//! A cluster of four validator processes made by `tally cluster init`: transfers go to
//! several validators, validator 3 is killed with SIGKILL mid-load while the other three
//! keep finalizing, it restarts on the same configuration and catches up, and afterwards
//! every acknowledged transaction is in the block it was acknowledged with, with its result
//! code, in every validator's log, and all logs hold the same blocks; a follower of the
//! banks' events on validator 3 subscribes again after the restart from the block after the
//! last it got, and hears every settlement exactly once. `tally cluster up`
//! starts the validators, prints where they are and stops them cleanly on SIGTERM.

mod common;

use crossbeam::channel::{unbounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tally_engine::block::decode_entry;
use tally_engine::events::{EventBatch, EventKind, Subscription};
use tally_engine::log::{Log, LogConfig};
use tally_engine::mempool::Ack;
use tally_engine::net::Client;
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFields, TxRecord};
use tally_loadgen::cluster::{self, ClusterFiles};
use tally_loadgen::population::Population;
use tally_loadgen::session::population_for;
use tally_loadgen::WorkloadName;

const VALIDATORS: usize = 4;
const BANKS: usize = 2;
const SEED: u64 = 5;
const WAIT: Duration = Duration::from_secs(60);

/// A client of the cluster, with the load generator's identity (it submits for every bank).
fn connect(
    files: &ClusterFiles,
    addr: impl std::net::ToSocketAddrs,
) -> Result<Client, tally_engine::net::ClientError> {
    common::tls_client(&files.loadgen_identity(), addr)
}

fn sigterm(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a positive pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM sent");
}

/// `tally cluster init` into `dir` on free ports; the files as the library reads them back.
fn init(dir: &Path) -> ClusterFiles {
    let output = common::run(&[
        "cluster",
        "init",
        "--validators",
        &VALIDATORS.to_string(),
        "--dir",
        dir.to_str().unwrap(),
        "--base-port",
        "0",
        "--banks",
        &BANKS.to_string(),
        "--seed",
        &SEED.to_string(),
    ]);
    let text = common::text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("load it: tally loadgen --node "), "{text}");
    cluster::open(dir, VALIDATORS, true).unwrap()
}

/// A `tally node` process of the cluster.
struct Node {
    child: Child,
    /// The rest of its standard output, read until it exits.
    stdout: std::thread::JoinHandle<String>,
    stderr_file: PathBuf,
    /// The height it replayed from its own log at start.
    replayed: u64,
}

/// Starts validator `index`; `None` when it exited before listening (its standard error
/// says why).
fn start(files: &ClusterFiles, index: usize, run: usize) -> Result<Node, String> {
    let validator = &files.validators[index];
    let stderr_file = files.dir.join(format!("node-{index}.run-{run}.stderr"));
    let mut child = common::tally()
        .args(["node", "--config", validator.config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut replayed = None;
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            return Err(std::fs::read_to_string(&stderr_file).unwrap_or_default());
        }
        if let Some((before, _)) = line.split_once(" (replayed)") {
            let height = before.rsplit(' ').next().unwrap();
            replayed = Some(height.parse::<u64>().unwrap());
        }
        if let Some(addr) = line.trim().strip_prefix("clients: ") {
            assert_eq!(addr, validator.client.to_string());
            break;
        }
    }
    let stdout = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        rest
    });
    Ok(Node {
        child,
        stdout,
        stderr_file,
        replayed: replayed.expect("the node prints the height it replayed"),
    })
}

impl Node {
    /// SIGTERM, then the exit status must be 0; what it printed meanwhile.
    fn stop(mut self, index: usize) -> String {
        sigterm(self.child.id());
        let status = self.child.wait().unwrap();
        let stdout = self.stdout.join().unwrap();
        let stderr = std::fs::read_to_string(&self.stderr_file).unwrap_or_default();
        assert!(
            status.success(),
            "validator {index} exits 0 on SIGTERM: {status:?}\n{stdout}\n{stderr}"
        );
        stdout
    }
}

/// A fresh cluster with every validator running; retried on other ports when one of them
/// cannot bind (another process took a port between init and start).
fn start_cluster(root: &Path) -> (ClusterFiles, Vec<Node>) {
    for attempt in 0..3 {
        let files = init(&root.join(format!("cluster-{attempt}")));
        let mut nodes = Vec::with_capacity(VALIDATORS);
        for index in 0..VALIDATORS {
            match start(&files, index, 0) {
                Ok(node) => nodes.push(node),
                Err(stderr) if stderr.contains("in use") => {
                    eprintln!("attempt {attempt}: validator {index} could not bind: {stderr}");
                    for node in nodes.drain(..) {
                        sigterm(node.child.id());
                        let mut child = node.child;
                        let _ = child.wait();
                    }
                    break;
                }
                Err(stderr) => panic!("validator {index} did not start:\n{stderr}"),
            }
        }
        if nodes.len() == VALIDATORS {
            return (files, nodes);
        }
    }
    panic!("no free ports for the cluster in three attempts");
}

/// Counts the `settled` events of a block by transaction id.
fn count_settled(seen: &mut HashMap<u128, usize>, batch: &EventBatch) {
    for event in &batch.events {
        if event.kind == EventKind::Settled {
            *seen.entry(event.id).or_default() += 1;
        }
    }
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

/// Sends batches and collects their acknowledgements.
struct Load<'a> {
    population: &'a Population,
    next_id: u128,
    /// Every acknowledgement: id -> (code, height).
    acked: BTreeMap<u128, (ResultCode, Option<u64>)>,
    /// The cluster directory, where the nodes' standard error goes.
    dir: PathBuf,
}

/// The last lines each node wrote to standard error (for failure messages).
fn stderr_tails(dir: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "stderr"));
    names.sort();
    let mut out = String::new();
    for name in names {
        let text = std::fs::read_to_string(&name).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- {} (last lines)\n", name.display()));
        for line in &lines[lines.len().saturating_sub(30)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Load<'_> {
    /// Submits `count` transfers through `client`; how many it took, answered on `reply`.
    fn submit(&mut self, client: &Client, count: usize, reply: &Sender<Ack>) -> usize {
        let records = transfers(self.population, self.next_id, count);
        self.next_id += count as u128;
        let taken = client
            .submit(&records, reply)
            .expect("the validator takes them");
        assert_eq!(taken, count);
        taken
    }

    /// Waits for `count` acknowledgements on `acks`, of the transactions `ids` (for the
    /// message when some never come, which asks `clients` about them); the highest height
    /// among them.
    fn collect(
        &mut self,
        acks: &Receiver<Ack>,
        ids: std::ops::Range<u128>,
        clients: &[&Client],
    ) -> u64 {
        let mut top = 0;
        let mut seen = std::collections::BTreeSet::new();
        let count = (ids.end - ids.start) as usize;
        for _ in 0..count {
            let Ok(ack) = acks.recv_timeout(WAIT) else {
                let missing: Vec<u128> = ids.clone().filter(|id| !seen.contains(id)).collect();
                let nodes: Vec<String> = clients
                    .iter()
                    .map(|client| {
                        let settled = missing
                            .iter()
                            .filter(|&&id| client.transaction_settled(id).unwrap_or(false))
                            .count();
                        let status = client.status().map(|s| {
                            format!(
                                "height {}, consensus height {} round {}, {} peers",
                                s.height, s.consensus_height, s.consensus_round, s.peers_connected
                            )
                        });
                        format!(
                            "{}: {status:?}, {settled} of the missing settled",
                            client.peer_addr()
                        )
                    })
                    .collect();
                panic!(
                    "{} of {} transactions unanswered after {WAIT:?} (ids {:?}); {}\n{}",
                    missing.len(),
                    count,
                    missing,
                    nodes.join("; "),
                    stderr_tails(&self.dir)
                );
            };
            seen.insert(ack.id);
            assert_eq!(ack.code, ResultCode::Ok, "transaction {}", ack.id);
            let height = ack.height.expect("a settled transaction has a height");
            top = top.max(height);
            assert!(self.acked.insert(ack.id, (ack.code, ack.height)).is_none());
        }
        top
    }

    /// One round: `per_node` transfers to each of `clients`, all answered.
    fn round(&mut self, clients: &[&Client], per_node: usize) -> u64 {
        let (reply, acks) = unbounded();
        let first = self.next_id;
        for client in clients {
            self.submit(client, per_node, &reply);
        }
        self.collect(&acks, first..self.next_id, clients)
    }
}

fn height_of(client: &Client) -> u64 {
    client.status().expect("a status answer").height
}

fn wait_for_height(client: &Client, height: u64, who: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = height_of(client);
        if now >= height {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} stayed at height {now}, below {height}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_peers(client: &Client, peers: u64, index: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = client.status().expect("a status answer").peers_connected;
        if now >= peers {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "validator {index} links to {now} validators, not {peers}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One validator's log: block hashes by height, and where each transaction settled.
struct Chain {
    hashes: Vec<[u8; 32]>,
    placed: HashMap<u128, (u64, u8)>,
}

fn chain_of(data_dir: &Path) -> Chain {
    let log = Log::open(&data_dir.join("log"), LogConfig::default()).unwrap();
    let mut chain = Chain {
        hashes: Vec::new(),
        placed: HashMap::new(),
    };
    for entry in log.entries(0).unwrap() {
        let (_, payload) = entry.unwrap();
        let block = decode_entry(payload).unwrap();
        let height = block.header.height();
        assert_eq!(height, chain.hashes.len() as u64 + 1, "heights follow");
        chain.hashes.push(block.header.hash());
        for (record, &code) in block.records.iter().zip(block.results) {
            assert!(
                chain.placed.insert(record.id(), (height, code)).is_none(),
                "transaction {} is in two blocks",
                record.id()
            );
        }
    }
    chain
}

#[test]
fn a_validator_killed_mid_load_restarts_catches_up_and_every_log_agrees() {
    let root = tempfile::tempdir().unwrap();
    let (files, mut nodes) = start_cluster(root.path());
    let population = population_for(WorkloadName::Mixed, SEED, BANKS);
    let clients: Vec<Client> = files
        .validators
        .iter()
        .map(|v| connect(&files, v.client).unwrap())
        .collect();
    for client in &clients {
        assert_eq!(client.welcome().genesis_hash, files.genesis_hash);
    }
    // A follower of both banks' events on validator 3, on a connection of its own.
    let watched = vec![population.banks[0], population.banks[1]];
    let follower = connect(&files, files.validators[3].client).unwrap();
    let (_, first_feed) = follower
        .subscribe(&Subscription {
            accounts: watched.clone(),
            from_height: 1,
        })
        .unwrap();
    // Load starts at once, links still coming up: a validator may miss a decision the one
    // killed below helped make, and must then be sent the block by a peer that sees it
    // still voting at the decided height.
    let mut load = Load {
        population: &population,
        next_id: 1,
        acked: BTreeMap::new(),
        dir: files.dir.clone(),
    };
    let all: Vec<&Client> = clients.iter().collect();
    let three: Vec<&Client> = clients[..3].iter().collect();

    // Transactions enter at every validator.
    let mut top = load.round(&all, 25);

    // Mid-load: batches in flight at all four, then validator 3 is killed.
    let (reply, acks) = unbounded();
    let (reply_3, acks_3) = unbounded();
    let first = load.next_id;
    for client in &three {
        load.submit(client, 25, &reply);
    }
    let to_three = first..load.next_id;
    load.submit(&clients[3], 25, &reply_3);
    let mut killed = nodes.pop().unwrap();
    killed.child.kill().unwrap(); // SIGKILL
    let status = killed.child.wait().unwrap();
    assert!(!status.success());
    let _ = killed.stdout.join();
    // its events end with the connection: the follower knows the last block it got
    let before_restart: Vec<EventBatch> = first_feed.iter().collect();
    drop(follower);
    let resume_at = before_restart.last().map_or(1, |batch| batch.height + 1);
    top = top.max(load.collect(&acks, to_three, &three));
    // What validator 3 answered before it died counts as acknowledged too.
    let before_kill: Vec<Ack> = acks_3.try_iter().collect();
    for ack in &before_kill {
        assert_eq!(ack.code, ResultCode::Ok);
        load.acked.insert(ack.id, (ack.code, ack.height));
        top = top.max(ack.height.unwrap());
    }

    // Three of four are a quorum: they keep finalizing, each round at a greater height.
    for round in 0..5 {
        let round_top = load.round(&three, 20);
        assert!(
            round_top > top,
            "round {round} after the kill settled at {round_top}, not above {top}"
        );
        top = round_top;
    }

    // Validator 3 restarts on the same configuration and fetches what it missed.
    let restarted = start(&files, 3, 1).unwrap_or_else(|stderr| {
        panic!("validator 3 did not restart:\n{stderr}");
    });
    assert!(restarted.replayed < top, "it missed blocks");
    nodes.push(restarted);
    let client_3 = connect(&files, files.validators[3].client).unwrap();
    wait_for_height(&client_3, top, "the restarted validator 3");
    // The follower subscribes again, to the restarted validator, from the block after the
    // last one it got.
    let follower = connect(&files, files.validators[3].client).unwrap();
    let (_, second_feed) = follower
        .subscribe(&Subscription {
            accounts: watched.clone(),
            from_height: resume_at,
        })
        .unwrap();
    // It takes transactions again, with the others.
    let mut again: Vec<&Client> = three.clone();
    again.push(&client_3);
    top = top.max(load.round(&again, 10));
    for (index, client) in again.iter().enumerate() {
        wait_for_height(client, top, &format!("validator {index}"));
    }
    drop(again);
    drop(three);
    drop(all);
    drop(client_3);
    // Every settlement of the banks' accounts, exactly once across the restart.
    let settled_ok: Vec<u128> = load
        .acked
        .iter()
        .filter(|(_, (code, _))| *code == ResultCode::Ok)
        .map(|(id, _)| *id)
        .collect();
    let mut batches = before_restart;
    let deadline = Instant::now() + WAIT;
    let mut seen: HashMap<u128, usize> = HashMap::new();
    for batch in &batches {
        count_settled(&mut seen, batch);
    }
    while settled_ok.iter().any(|id| !seen.contains_key(id)) && Instant::now() < deadline {
        if let Ok(batch) = second_feed.recv_timeout(Duration::from_millis(200)) {
            count_settled(&mut seen, &batch);
            batches.push(batch);
        }
    }
    drop(follower);
    assert!(
        batches
            .windows(2)
            .all(|pair| pair[0].height < pair[1].height),
        "every block once, in order"
    );
    for id in &settled_ok {
        assert_eq!(seen.get(id), Some(&1), "settlement {id} heard once");
    }
    assert!(seen.values().all(|count| *count == 1), "no event twice");
    eprintln!(
        "follower: {} settlements heard once, resumed at block {resume_at} after the restart",
        seen.len()
    );

    for (index, node) in nodes.into_iter().enumerate() {
        let said = node.stop(index);
        assert!(said.contains("stopped at height"), "{said}");
    }

    let chains: Vec<Chain> = files
        .validators
        .iter()
        .map(|v| chain_of(&v.data_dir))
        .collect();
    for (id, (code, height)) in &load.acked {
        for (index, chain) in chains.iter().enumerate() {
            assert_eq!(
                chain.placed.get(id),
                Some(&(height.unwrap(), *code as u8)),
                "acknowledged transaction {id} in validator {index}'s log"
            );
        }
    }
    for (a, first) in chains.iter().enumerate() {
        for (b, second) in chains.iter().enumerate().skip(a + 1) {
            let common = first.hashes.len().min(second.hashes.len());
            assert!(common as u64 >= top);
            assert_eq!(
                first.hashes[..common],
                second.hashes[..common],
                "validators {a} and {b} hold different blocks"
            );
        }
    }
    eprintln!(
        "{} acknowledged transactions ({} answered by validator 3 before its kill) in every log; top height {top}",
        load.acked.len(),
        before_kill.len()
    );
    assert_eq!(
        load.acked.len() as u128,
        load.next_id - 1 - 25 + before_kill.len() as u128
    );
}

#[test]
fn cluster_up_starts_prints_and_stops_every_validator_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let mut up = common::tally()
        .args([
            "cluster",
            "up",
            "--validators",
            "4",
            "--dir",
            dir.to_str().unwrap(),
            "--base-port",
            "0",
            "--banks",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(up.stdout.take().unwrap());
    let mut printed = String::new();
    let mut validators = Vec::new();
    let mut loadgen_line = None;
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "cluster up ended early:\n{printed}"
        );
        printed.push_str(&line);
        if line.starts_with("supervising") {
            break;
        }
        if let Some(command) = line.trim().strip_prefix("load it: tally ") {
            loadgen_line = Some(command.to_string());
        }
        // validator I: clients ADDR, metrics URL, pid PID, log FILE
        if let Some(rest) = line.trim().strip_prefix("validator ") {
            let fields: Vec<&str> = rest.split(", ").collect();
            assert_eq!(fields.len(), 4, "{line}");
            let (index, client) = fields[0].split_once(": clients ").unwrap();
            assert!(fields[1].starts_with("metrics http://127.0.0.1:"), "{line}");
            let pid: u32 = fields[2].strip_prefix("pid ").unwrap().parse().unwrap();
            let log = fields[3].strip_prefix("log ").unwrap();
            assert_eq!(Path::new(log), dir.join(format!("node-{index}.log")));
            validators.push((index.parse::<usize>().unwrap(), client.to_string(), pid));
        }
    }
    assert_eq!(
        validators.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "{printed}"
    );
    let files = cluster::open(&dir, 4, false).unwrap();
    for (index, client, pid) in &validators {
        assert_eq!(*client, files.validators[*index].client.to_string());
        let written = std::fs::read_to_string(&files.validators[*index].pid_file).unwrap();
        assert_eq!(written.trim(), pid.to_string());
    }
    // Every validator serves clients, and the cluster finalizes blocks.
    let deadline = Instant::now() + WAIT;
    let clients: Vec<Client> = validators
        .iter()
        .map(|(index, client, _)| loop {
            match connect(&files, client.as_str()) {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "validator {index} does not take clients: {error}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
        .collect();
    wait_for_height(&clients[0], 1, "validator 0");
    for (index, client) in clients.iter().enumerate() {
        wait_for_peers(client, 3, index);
    }
    drop(clients);

    // The authorities vote validator 3 out with `tally validator vote`; `show` reads the
    // schedule back. A key outside the set and a malformed key are refused, each saying why.
    let genesis = files.genesis.to_str().unwrap();
    let node = validators[1].1.as_str();
    let removed = hex::encode(files.validators[3].public_key);
    let operator = files.operator_identity();
    let operator = operator.to_str().unwrap();
    // Each validator votes with its own identity (its certificate binds its validator key).
    let vote = |voter: &Path, identity: usize, change: &str, key: &str| {
        let identity = cluster::validator_identity_path(&dir, identity);
        common::run(&[
            "validator",
            "vote",
            "--node",
            node,
            "--identity",
            identity.to_str().unwrap(),
            "--genesis",
            genesis,
            "--key-file",
            voter.to_str().unwrap(),
            change,
            key,
        ])
    };
    for voter in 0..3 {
        let output = vote(
            &files.validators[voter].key_file,
            voter,
            "--remove",
            &removed,
        );
        let said = common::text(&output);
        assert!(output.status.success(), "{said}");
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(answer["result"], "ok", "{said}");
        assert_eq!(answer["change"], "remove");
        assert_eq!(answer["validator"], removed.as_str());
        assert_eq!(
            answer["voter"],
            hex::encode(files.validators[voter].public_key).as_str()
        );
    }
    let outsider = dir.join("outsider.key");
    assert!(
        common::run(&["keygen", "--out", outsider.to_str().unwrap()])
            .status
            .success()
    );
    // An outsider's vote: its key is bound by no certificate, so the node refuses it at the
    // door, whoever's connection carries it.
    let output = vote(&outsider, 0, "--remove", &removed);
    assert!(!output.status.success());
    let said = common::text(&output);
    assert!(said.contains("(forbidden)"), "{said}");
    let output = vote(&files.validators[0].key_file, 0, "--add", "12ab");
    assert!(!output.status.success());
    assert!(common::text(&output).contains("validator key \"12ab\""));
    let genesis = files.genesis.to_str().unwrap();
    let show = |json: bool| {
        let mut args = vec![
            "validator",
            "show",
            "--node",
            node,
            "--identity",
            operator,
            "--genesis",
            genesis,
        ];
        if json {
            args.push("--json");
        }
        common::run(&args)
    };
    let output = show(false);
    let said = common::text(&output);
    assert!(output.status.success(), "{said}");
    // for people: the names of the genesis, the removal adopted for the next epoch
    assert!(said.contains("epoch 0: 4 validators, quorum 3"), "{said}");
    assert!(said.contains("- validator-3 "), "{said}");
    assert!(said.contains("no votes pending"), "{said}");
    let output = show(true);
    assert!(output.status.success(), "{}", common::text(&output));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["names"][&removed], "validator-3", "{shown}");
    assert_eq!(shown["epoch"], 0);
    assert_eq!(shown["quorum"], 3);
    assert_eq!(shown["validators"].as_array().unwrap().len(), 4);
    let next: Vec<&str> = shown["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 3, "{shown}");
    assert!(!next.contains(&removed.as_str()), "{shown}");
    assert_eq!(shown["pending"].as_array().unwrap().len(), 0, "{shown}");

    // The load generator command it printed drives all four validators.
    let loadgen_line = loadgen_line.unwrap_or_else(|| panic!("no `load it:` line in\n{printed}"));
    let mut args: Vec<&str> = loadgen_line.split(' ').collect();
    assert_eq!(
        args[2],
        validators
            .iter()
            .map(|v| v.1.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let reports = dir.join("reports");
    let reports_arg = reports.to_str().unwrap().to_string();
    args.extend([
        "--rate",
        "400",
        "--duration",
        "1",
        "--quiet",
        "--json",
        "--out",
        &reports_arg,
    ]);
    let output = common::run(&args);
    assert!(output.status.success(), "{}", common::text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["acknowledged"], report["sent"], "{report}");
    // Every report a load tester reads, from a run against the cluster.
    for file in ["summary.txt", "report.json", "latency.hlog", "report.html"] {
        let bytes = std::fs::read(reports.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!bytes.is_empty(), "{file} is empty");
    }
    let html = std::fs::read_to_string(reports.join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 4,
        "the HTML report draws its plots"
    );
    let summary = std::fs::read_to_string(reports.join("summary.txt")).unwrap();
    assert!(summary.contains("4 nodes at "), "{summary}");
    assert!(report["sent"].as_u64().unwrap() >= 350, "{report}");
    let target = report["target"].as_str().unwrap();
    assert!(target.starts_with("4 nodes at "), "{target}");
    // A second `up` of the same cluster is refused: its pid files name live validators.
    let output = common::run(&[
        "cluster",
        "up",
        "--validators",
        "4",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let said = common::text(&output);
    assert!(
        said.contains("this cluster already runs (validator 0 as pid"),
        "{said}"
    );
    // Another population than the genesis's is refused before any load, with the reason.
    let banks = args.iter().position(|a| *a == "--banks").unwrap() + 1;
    args[banks] = "3";
    let output = common::run(&args);
    assert!(!output.status.success());
    let said = common::text(&output);
    assert!(
        said.contains("is not the population of workload mixed, seed 1, 3 banks"),
        "{said}"
    );

    sigterm(up.id());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = up.wait().unwrap();
    let mut stderr = String::new();
    up.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{printed}{rest}{stderr}");
    for (index, _, pid) in &validators {
        let line = format!("validator {index} (pid {pid}): exited 0");
        assert!(rest.contains(&line), "{line:?} not in:\n{rest}");
        assert!(!files.validators[*index].pid_file.exists());
    }
}

/// An operator's day on a four-validator network, driven only through `tally` commands and
/// the files of `tally cluster init`: each step's printed result is checked.
#[test]
fn an_operator_runs_the_network_through_tally_commands_only() {
    use serde_json::Value;
    let root = tempfile::tempdir().unwrap();
    let (files, nodes) = start_cluster(root.path());
    let dir = files.dir.clone();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let participant = |name: &str| file(&format!("participants/{name}"));
    let genesis = files.genesis.to_str().unwrap().to_string();
    let addresses: Vec<String> = files
        .validators
        .iter()
        .map(|v| v.client.to_string())
        .collect();
    let (bank_a, bank_b) = (1000u64, 1001u64);
    // `tally tx KIND` as `who` signed with `key`, sent to validator `at` first (the others
    // after it for failover): whether it was accepted, and what it printed.
    let tx = |who: &str, key: &str, at: usize, args: &[&str]| -> (bool, Value) {
        let identity = participant(&format!("{who}.identity"));
        let mut all = vec!["tx", args[0]];
        for offset in 0..addresses.len() {
            all.extend([
                "--node",
                addresses[(at + offset) % addresses.len()].as_str(),
            ]);
        }
        all.extend([
            "--identity",
            &identity,
            "--genesis",
            &genesis,
            "--key-file",
            key,
            "--json",
        ]);
        all.extend(&args[1..]);
        let output = common::run(&all);
        let printed: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{all:?}: {e}: {}", common::text(&output)));
        (output.status.success(), printed)
    };
    let accepted = |printed: &Value, result: &str| -> String {
        assert_eq!(printed["result"], result, "{printed}");
        assert!(printed["height"].as_u64().unwrap() > 0, "{printed}");
        printed["id"].as_str().unwrap().to_string()
    };
    let cb_key = participant("central-bank.key");
    let a_key = participant(&format!("bank-{bank_a}.key"));
    let b_key = participant(&format!("bank-{bank_b}.key"));
    let (a, b) = (format!("bank-{bank_a}"), format!("bank-{bank_b}"));
    // `tally query --node` of validator `at` as `who`: the answers.
    let query = |who: &str, at: usize, args: &[&str]| -> Vec<Value> {
        let identity = participant(&format!("{who}.identity"));
        let mut all = vec!["query", "--node", &addresses[at], "--identity", &identity];
        all.extend(args);
        let output = common::run(&all);
        assert!(
            output.status.success(),
            "{all:?}: {}",
            common::text(&output)
        );
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        printed["answers"].as_array().unwrap().clone()
    };
    let balance = |who: &str, at: usize, account: u64| -> i64 {
        query(who, at, &["balance", &account.to_string()])[0]["account"]["balance"]
            .as_i64()
            .unwrap()
    };
    let status = |at: usize, id: &str| -> String {
        query("central-bank", at, &["status", id])[0]["tx_status"]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let sa = &a[..];
    let sb = &b[..];
    let (ta, tb) = (bank_a.to_string(), bank_b.to_string());

    // A payment by hand, read back on another validator.
    let before = balance(sb, 2, bank_b);
    let (ok, printed) = tx(
        sa,
        &a_key,
        0,
        &["transfer", "--from", &ta, "--to", &tb, "--amount", "2.50"],
    );
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    assert_eq!(balance(sb, 2, bank_b), before + 250);

    // An account opened by the central bank, with a key of its own, held at bank A.
    let shop_key = file("shop.key");
    let output = common::run(&["keygen", "--out", &shop_key]);
    assert!(output.status.success(), "{}", common::text(&output));
    let shop = "7000000";
    let (ok, printed) = tx(
        "central-bank",
        &cb_key,
        1,
        &[
            "open-account",
            "--account",
            shop,
            "--role",
            "merchant",
            "--bank",
            &ta,
            "--owner",
            &shop_key,
        ],
    );
    assert!(ok, "{printed}");
    accepted(&printed, "ok");

    // A taxed payment to it and its refund, signed by its own key.
    let (ok, printed) = tx(
        sa,
        &a_key,
        2,
        &[
            "taxed-payment",
            "--from",
            &ta,
            "--to",
            shop,
            "--amount",
            "109.00",
            "--category",
            "1",
        ],
    );
    assert!(ok, "{printed}");
    let payment = accepted(&printed, "ok");
    let shop_balance = balance(sa, 3, 7_000_000);
    assert!(
        shop_balance > 0 && shop_balance < 10_900,
        "net of tax: {shop_balance}"
    );
    let (ok, printed) = tx(
        sa,
        &shop_key,
        3,
        &[
            "refund",
            "--payment",
            &payment,
            "--from",
            shop,
            "--to",
            &ta,
            "--amount",
            "10.90",
        ],
    );
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    assert!(balance(sa, 0, 7_000_000) < shop_balance);

    // A pledge and a redeem.
    let before = balance(sb, 1, bank_b);
    let (ok, printed) = tx(
        "central-bank",
        &cb_key,
        0,
        &["pledge", "--to", &tb, "--amount", "100"],
    );
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    let (ok, printed) = tx(sb, &cb_key, 0, &["redeem", "--from", &tb, "--amount", "40"]);
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    assert_eq!(balance(sb, 1, bank_b), before + 6_000);

    // A gridlock: each bank pays the other one minor unit more than it holds. A's payment
    // is held while B's queues behind nothing it can cover; once A's is released, the
    // gridlock resolver settles both at the end of that block.
    let (held_a, held_b) = (balance(sa, 0, bank_a), balance(sb, 0, bank_b));
    let (x, y) = ((held_a + 1).to_string(), (held_b + 1).to_string());
    let (ok, printed) = tx(
        sa,
        &a_key,
        0,
        &[
            "transfer",
            "--from",
            &ta,
            "--to",
            &tb,
            "--amount",
            &x,
            "--minor-units",
        ],
    );
    assert!(ok, "{printed}");
    let a_to_b = accepted(&printed, "queued");
    let (ok, printed) = tx(sa, &a_key, 0, &["queue-hold", "--payment", &a_to_b]);
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    let (ok, printed) = tx(
        sb,
        &b_key,
        1,
        &[
            "transfer",
            "--from",
            &tb,
            "--to",
            &ta,
            "--amount",
            &y,
            "--minor-units",
        ],
    );
    assert!(ok, "{printed}");
    let b_to_a = accepted(&printed, "queued");
    assert_eq!(
        status(2, &b_to_a),
        "queued",
        "A's payment is held: no offset yet"
    );
    let (ok, printed) = tx(sa, &a_key, 0, &["queue-release", "--payment", &a_to_b]);
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    for id in [&a_to_b, &b_to_a] {
        assert_eq!(status(3, id), "settled_from_queue", "{id}");
    }
    // A paid held_a + 1 and received held_b + 1
    assert_eq!(balance(sa, 2, bank_a), held_b);

    // A suspension: a payment to the suspended bank is refused with its code.
    let (ok, printed) = tx("central-bank", &cb_key, 1, &["suspend", "--account", &tb]);
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    let (ok, printed) = tx(
        sa,
        &a_key,
        2,
        &["transfer", "--from", &ta, "--to", &tb, "--amount", "1"],
    );
    assert!(!ok, "{printed}");
    accepted(&printed, "credit_account_suspended");
    let (ok, printed) = tx("central-bank", &cb_key, 1, &["reinstate", "--account", &tb]);
    assert!(ok, "{printed}");
    accepted(&printed, "ok");

    // A key rotation after a compromise: the old key's records are refused, the new key's
    // settle.
    let new_key = file("bank-a-new.key");
    let output = common::run(&["keygen", "--out", &new_key]);
    assert!(output.status.success(), "{}", common::text(&output));
    let (ok, printed) = tx(
        "central-bank",
        &cb_key,
        2,
        &[
            "rotate-key",
            "--account",
            &ta,
            "--new-owner",
            &new_key,
            "--by-central-bank",
        ],
    );
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    // the old key, over the certificate that binds it: refused at the door, which no
    // longer counts that certificate as covering the account
    let old_identity = participant(&format!("{sa}.identity"));
    let output = common::run(&[
        "tx",
        "transfer",
        "--node",
        &addresses[3],
        "--identity",
        &old_identity,
        "--genesis",
        &genesis,
        "--key-file",
        &a_key,
        "--from",
        &ta,
        "--to",
        &tb,
        "--amount",
        "1",
    ]);
    assert!(!output.status.success());
    let said = common::text(&output);
    assert!(said.contains("does not cover"), "{said}");
    // the new key, over a certificate the network's CA issues for it: settled
    let output = common::run(&[
        "pki",
        "issue",
        "--ca",
        &file("ca"),
        "--name",
        "bank-a-rotated",
        "--role",
        "bank",
        "--signer",
        &new_key,
        "--out",
        &participant("bank-a-rotated.identity"),
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    let (ok, printed) = tx(
        "bank-a-rotated",
        &new_key,
        3,
        &["transfer", "--from", &ta, "--to", &tb, "--amount", "1"],
    );
    assert!(ok, "{printed}");
    accepted(&printed, "ok");
    // and an old-key record over the new certificate is refused by the ledger
    let (ok, printed) = tx(
        "bank-a-rotated",
        &a_key,
        0,
        &["transfer", "--from", &ta, "--to", &tb, "--amount", "1"],
    );
    assert!(!ok, "{printed}");
    accepted(&printed, "not_owner");

    // History over the network: the shop's payment and refund.
    let history = query("bank-a-rotated", 1, &["history", shop, "--limit", "100"]);
    let kinds: Vec<&str> = history[0]["account_history"]["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .filter(|kind| matches!(*kind, "taxed_payment" | "refund"))
        .collect();
    assert_eq!(kinds, vec!["taxed_payment", "refund"], "{history:?}");

    // A proof of the taxed payment fetched from one validator, verified offline against
    // the genesis alone.
    let proof = file("payment.proof");
    let output = common::run(&[
        "prove",
        "--node",
        &addresses[2],
        "--identity",
        &participant("auditor.identity"),
        "--genesis",
        &genesis,
        "--tx",
        &payment,
        "--out",
        &proof,
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    let output = common::run(&["verify-proof", &proof, "--genesis", &genesis]);
    let said = common::text(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains(&format!("OK: transaction {payment}")),
        "{said}"
    );
    eprintln!("{said}");

    for (index, node) in nodes.into_iter().enumerate() {
        node.stop(index);
    }
}
