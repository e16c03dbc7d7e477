//! Four validators in one process over real TCP links on loopback: blocks are final with a
//! commit certificate, every validator holds the same blocks and state roots, a stopped
//! validator catches up by block sync, and wrong validator configurations are refused.

mod common;

use common::*;
use crossbeam::channel::{unbounded, Receiver};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tally_engine::block::{self, proposal_id};
use tally_engine::consensus::{Certificate, ValidatorSet};
use tally_engine::keys::public_key_of;
use tally_engine::log::{Log, LogConfig};
use tally_engine::mempool::Ack;
use tally_engine::node::{Node, NodeConfig, NodeError};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFields, TxKind, TxRecord};
use tally_engine::validator::{cluster, ValidatorConfig};

const VALIDATORS: usize = 4;

fn template(dir: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.mempool_tx_max = 4_096;
    let key = cluster::validator_keys(1, 0).remove(0);
    let mut validator = ValidatorConfig::new(key, "127.0.0.1:0".parse().unwrap(), Vec::new());
    validator.empty_block_interval = Duration::from_millis(200);
    config.validator = Some(validator);
    config
}

struct Cluster {
    fixture: Fixture,
    keys: Vec<ed25519_zebra::SigningKey>,
    configs: Vec<NodeConfig>,
}

fn cluster_in(dir: &Path) -> Cluster {
    cluster_of(dir, VALIDATORS, VALIDATORS, 1_000)
}

/// `nodes` validator nodes linked with each other; the first `members` keys are the
/// genesis's validators, the others candidates.
fn cluster_of(dir: &Path, nodes: usize, members: usize, heights_per_epoch: u64) -> Cluster {
    let keys = cluster::validator_keys(nodes, 7);
    let fixture = Fixture::from_table(
        &[
            (
                CENTRAL_BANK,
                tally_engine::genesis::Role::CentralBank,
                0,
                None,
            ),
            (TAX, tally_engine::genesis::Role::TaxAuthority, 0, None),
            (BANK_A, tally_engine::genesis::Role::Bank, 1_000_000, None),
            (BANK_B, tally_engine::genesis::Role::Bank, 1_000_000, None),
            (
                ALICE,
                tally_engine::genesis::Role::Consumer,
                1_000_000,
                Some(BANK_A),
            ),
            (
                BOB,
                tally_engine::genesis::Role::Consumer,
                1_000_000,
                Some(BANK_B),
            ),
        ],
        |genesis| {
            cluster::set_validators(genesis, &keys[..members]);
            genesis.heights_per_epoch = heights_per_epoch;
        },
    );
    let mut configs = cluster::loopback_configs(&template(dir), dir, &keys).unwrap();
    for config in &mut configs[members..] {
        config.validator.as_mut().unwrap().candidate = true;
    }
    Cluster {
        fixture,
        keys,
        configs,
    }
}

fn collect(acks: &Receiver<Ack>, count: usize) -> BTreeMap<u128, Ack> {
    let mut out = BTreeMap::new();
    while out.len() < count {
        let ack = acks
            .recv_timeout(Duration::from_secs(60))
            .expect("every transaction is answered");
        out.insert(ack.id, ack);
    }
    out
}

fn wait_for_height(node: &Node, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.handle().height() < height {
        assert!(
            Instant::now() < deadline,
            "height {} did not reach {height}",
            node.handle().height()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every block of a stopped node's log: (header hash, state root, certificate).
fn blocks_of(config: &NodeConfig) -> Vec<([u8; 32], [u8; 32], Certificate)> {
    let log = Log::open(&config.data_dir.join("log"), LogConfig::default()).unwrap();
    let mut out = Vec::new();
    for item in log.entries(0).unwrap() {
        let (_, entry) = item.unwrap();
        let view = block::decode_entry(entry).unwrap();
        let certificate = Certificate::decode(view.certificate.expect("a certificate"))
            .expect("a well-formed certificate");
        assert_eq!(certificate.height, view.header.height());
        assert_eq!(certificate.value, proposal_id(&view.header));
        out.push((view.header.hash(), view.header.state_root, certificate));
    }
    out
}

fn validator_set(keys: &[ed25519_zebra::SigningKey]) -> ValidatorSet {
    ValidatorSet::new(NETWORK, 0, keys.iter().map(public_key_of).collect()).unwrap()
}

/// Blocks all nodes hold agree, and every certificate is a quorum of the set.
fn assert_same_chain(cluster: &Cluster, configs: &[&NodeConfig]) -> usize {
    let set = validator_set(&cluster.keys);
    let chains: Vec<_> = configs.iter().map(|c| blocks_of(c)).collect();
    let common = chains.iter().map(Vec::len).min().unwrap();
    assert!(common > 0, "no blocks");
    for height in 0..common {
        let (hash, root, certificate) = &chains[0][height];
        certificate.verify(&set).expect("a quorum certificate");
        for chain in &chains[1..] {
            assert_eq!(
                (&chain[height].0, &chain[height].1),
                (hash, root),
                "validators differ at height {}",
                height + 1
            );
            chain[height].2.verify(&set).expect("a quorum certificate");
        }
    }
    common
}

#[test]
fn four_validators_finalize_the_same_blocks_with_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_in(dir.path());
    let nodes = cluster::start(&cluster.fixture.genesis, &cluster.configs).unwrap();
    let f = &cluster.fixture;
    let (reply, acks) = unbounded();
    // Transactions enter at two different validators.
    let count = 300u128;
    for id in 1..=count {
        let (payer, payee) = if id % 2 == 0 {
            (ALICE, BOB)
        } else {
            (BOB, ALICE)
        };
        let node = &nodes[(id % 2) as usize * 2];
        node.handle()
            .submit(&[f.tx(id, TxKind::Transfer, payer, payee, 10)], &reply)
            .unwrap();
    }
    // A bad signature is answered by the node that took it and never reaches a block.
    let mut forged = f.tx(count + 1, TxKind::Transfer, ALICE, BOB, 10);
    forged.signature[3] ^= 1;
    nodes[1].handle().submit(&[forged], &reply).unwrap();
    let answered = collect(&acks, count as usize + 1);
    assert_eq!(answered[&(count + 1)].code, ResultCode::BadSignature);
    let top = (1..=count)
        .map(|id| {
            let ack = answered[&id];
            assert_eq!(ack.code, ResultCode::Ok, "transaction {id}");
            ack.height.expect("a height")
        })
        .max()
        .unwrap();
    for node in &nodes {
        wait_for_height(node, top);
    }
    let outcomes: Vec<_> = nodes.into_iter().map(Node::shutdown).collect();
    for outcome in &outcomes {
        assert_eq!(outcome.fatal, None);
        assert_eq!(
            outcome.ledger.sum_of_balances(),
            outcome.ledger.genesis_total()
        );
    }
    let configs: Vec<&NodeConfig> = cluster.configs.iter().collect();
    let common = assert_same_chain(&cluster, &configs);
    assert!(common as u64 >= top);
}

/// The value of an unlabelled metric on `node`'s /metrics page.
fn metric(node: &Node, name: &str) -> u64 {
    let page = tally_engine::node::render_metrics(&node.handle());
    let line = page
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} is on the page"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_stopped_validator_catches_up_from_its_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_in(dir.path());
    let mut nodes = cluster::start(&cluster.fixture.genesis, &cluster.configs).unwrap();
    let f = &cluster.fixture;
    let (reply, acks) = unbounded();
    let submit = |node: &Node, from: u128, to: u128| {
        for id in from..to {
            node.handle()
                .submit(&[f.tx(id, TxKind::Transfer, ALICE, BOB, 1)], &reply)
                .unwrap();
        }
    };
    submit(&nodes[0], 1, 51);
    collect(&acks, 50);
    // Validator 3 stops; three of four are a quorum and keep finalizing.
    let stopped = nodes.pop().unwrap().shutdown();
    assert_eq!(stopped.fatal, None);
    submit(&nodes[1], 51, 151);
    let answered = collect(&acks, 100);
    assert!(answered.values().all(|ack| ack.code == ResultCode::Ok));
    let top = answered.values().filter_map(|a| a.height).max().unwrap();
    assert!(top > stopped.height);
    // It restarts on its address and fetches what it missed.
    let config = &mut cluster.configs[3];
    config.validator.as_mut().unwrap().listener = None;
    let restarted = Node::start(&cluster.fixture.genesis, config.clone()).unwrap();
    wait_for_height(&restarted, top);
    nodes.push(restarted);
    // /metrics shows the links: the three saw validator 3 come back, and it linked to all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reconnects: Vec<u64> = nodes[..3]
            .iter()
            .map(|node| metric(node, "tally_peer_reconnects_total"))
            .collect();
        let established = metric(&nodes[3], "tally_peer_links_established_total");
        if reconnects.iter().all(|count| *count >= 1) && established >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reconnects {reconnects:?}, links of the restarted validator {established}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&nodes[0], "tally_peer_links_replaced_total"), 0);
    for node in nodes {
        assert_eq!(node.shutdown().fatal, None);
    }
    let configs: Vec<&NodeConfig> = cluster.configs.iter().collect();
    let common = assert_same_chain(&cluster, &configs);
    assert!(common as u64 >= top);
}

/// Validators that archive their log at checkpoints still serve block sync from the
/// archive: a validator stopped for longer than its peers keep blocks in their live logs
/// catches up.
#[test]
fn a_validator_behind_the_archive_horizon_catches_up_from_archived_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = cluster_in(dir.path());
    for config in &mut cluster.configs {
        config.checkpoint_interval_blocks = 4;
        config.archive_dir = Some(config.data_dir.join("archive"));
        config.log = LogConfig {
            segment_bytes: 16 * 1024,
            entry_bytes_max: 8 * 1024,
        };
        config.block_tx_max = 16;
        config.sigverify_batch_tx_max = 16;
        config.validator.as_mut().unwrap().empty_block_interval = Duration::from_millis(50);
    }
    let mut nodes = cluster::start(&cluster.fixture.genesis, &cluster.configs).unwrap();
    let f = &cluster.fixture;
    let (reply, acks) = unbounded();
    for id in 1..=20u128 {
        nodes[(id % 4) as usize]
            .handle()
            .submit(&[f.tx(id, TxKind::Transfer, ALICE, BOB, 1)], &reply)
            .unwrap();
    }
    collect(&acks, 20);
    let stopped = nodes.pop().unwrap().shutdown();
    assert_eq!(stopped.fatal, None);
    // The three go on (empty blocks every 50 ms) until each has archived the block after the
    // stopped validator's height out of its live log.
    let needed = stopped.height; // log sequence of block stopped.height + 1
    let deadline = Instant::now() + Duration::from_secs(60);
    for config in &cluster.configs[..3] {
        let archive = config.archive_dir.clone().unwrap();
        while !archive.exists()
            || tally_engine::log::read_archived(&archive, needed, |_, _| false).unwrap() == 0
        {
            assert!(
                Instant::now() < deadline,
                "block {} was not archived in time",
                needed + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    submit_one(&nodes[0], f, 1_000, &reply);
    let top = collect(&acks, 1)[&1_000].height.unwrap();
    let config = &mut cluster.configs[3];
    config.validator.as_mut().unwrap().listener = None;
    let restarted = Node::start(&cluster.fixture.genesis, config.clone()).unwrap();
    wait_for_height(&restarted, top);
    nodes.push(restarted);
    for node in nodes {
        assert_eq!(node.shutdown().fatal, None);
    }
}

fn submit_one(node: &Node, f: &Fixture, id: u128, reply: &crossbeam::channel::Sender<Ack>) {
    node.handle()
        .submit(&[f.tx(id, TxKind::Transfer, ALICE, BOB, 1)], reply)
        .unwrap();
}

#[test]
fn a_wrong_validator_configuration_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_in(dir.path());
    let genesis = &cluster.fixture.genesis;
    let start_error = |edit: &dyn Fn(&mut NodeConfig)| {
        let mut config = cluster.configs[0].clone();
        config.validator.as_mut().unwrap().listener = None;
        config.validator.as_mut().unwrap().listen = "127.0.0.1:0".parse().unwrap();
        edit(&mut config);
        match Node::start(genesis, config) {
            Err(NodeError::Config(message)) => message,
            Err(other) => panic!("expected a configuration error, got {other}"),
            Ok(node) => {
                node.shutdown();
                panic!("a wrong configuration started")
            }
        }
    };
    let outsider = start_error(&|config| {
        config.validator.as_mut().unwrap().signing_key = cluster::validator_keys(1, 99).remove(0)
    });
    assert!(
        outsider.contains("is not a validator of epoch 0") && outsider.contains("candidate"),
        "{outsider}"
    );
    let missing = start_error(&|config| {
        config.validator.as_mut().unwrap().peers.pop();
    });
    assert!(missing.contains("no address"), "{missing}");
    // A stranger in a member's place leaves that member without an address.
    let stranger = start_error(&|config| {
        let validator = config.validator.as_mut().unwrap();
        validator.peers[0].public_key = public_key_of(&cluster::validator_keys(1, 98)[0]);
    });
    assert!(stranger.contains("no address"), "{stranger}");
}

/// Votes signed by validator `voter`'s key, submitted to `node`; returns their answers.
fn vote(
    cluster: &Cluster,
    node: &Node,
    votes: &[(u128, usize, bool, usize)],
) -> BTreeMap<u128, Ack> {
    let (reply, acks) = unbounded();
    let records: Vec<TxRecord> = votes
        .iter()
        .map(|&(id, voter, add, subject)| {
            let fields =
                TxFields::validator_vote(id, LEDGER, add, &public_key_of(&cluster.keys[subject]))
                    .valid_until(VALID_UNTIL);
            TxRecord::signed(&fields, NETWORK, &cluster.keys[voter])
        })
        .collect();
    node.handle().submit(&records, &reply).unwrap();
    collect(&acks, votes.len())
}

#[test]
fn the_authorities_vote_a_validator_in_and_another_out_from_the_next_epoch() {
    const EPOCH: u64 = 6;
    let dir = tempfile::tempdir().unwrap();
    // Four genesis validators and a candidate (index 4), all linked.
    let cluster = cluster_of(dir.path(), 5, 4, EPOCH);
    let mut nodes = cluster::start(&cluster.fixture.genesis, &cluster.configs).unwrap();
    let candidate = 4;

    // The candidate cannot vote; three of the four validators (a quorum) vote it in; a
    // second vote of the same validator counts once. One batch, so one block: votes lapse
    // when their epoch ends.
    let answers = vote(
        &cluster,
        &nodes[0],
        &[
            (1, candidate, true, candidate),
            (2, 0, true, candidate),
            (3, 0, true, candidate),
            (4, 1, true, candidate),
            (5, 2, true, candidate),
        ],
    );
    assert_eq!(answers[&1].code, ResultCode::NotAValidator);
    assert_eq!(answers[&3].code, ResultCode::ValidatorVoteAlreadyCounted);
    for id in [2, 4, 5] {
        assert_eq!(answers[&id].code, ResultCode::Ok, "vote {id}");
    }
    let adopted_at = answers[&5].height.unwrap();
    // A later vote finds the candidate in the next set already.
    let answers = vote(&cluster, &nodes[2], &[(6, 3, true, candidate)]);
    assert_eq!(answers[&6].code, ResultCode::ValidatorAlreadyMember);
    let joined = (adopted_at / EPOCH + 1) * EPOCH;
    for node in &nodes {
        wait_for_height(node, joined + 1);
    }

    // Validator 0 stops. Four of the five remain: exactly a quorum, so blocks are final
    // only with the newcomer's precommits.
    let stopped = nodes.remove(0).shutdown();
    assert_eq!(stopped.fatal, None);
    let f = &cluster.fixture;
    let (reply, acks) = unbounded();
    for id in 100..130u128 {
        nodes[(id % 4) as usize]
            .handle()
            .submit(&[f.tx(id, TxKind::Transfer, ALICE, BOB, 1)], &reply)
            .unwrap();
    }
    let answered = collect(&acks, 30);
    assert!(answered.values().all(|ack| ack.code == ResultCode::Ok));

    // The four vote validator 0 out (a quorum of five is four).
    let answers = vote(
        &cluster,
        &nodes[0],
        &[
            (7, 1, false, 0),
            (8, 2, false, 0),
            (9, 3, false, 0),
            (10, candidate, false, 0),
        ],
    );
    assert!(
        answers.values().all(|ack| ack.code == ResultCode::Ok),
        "{answers:?}"
    );
    let removed_at = answers.values().filter_map(|ack| ack.height).max().unwrap();
    let left = (removed_at / EPOCH + 1) * EPOCH;
    for node in &nodes {
        wait_for_height(node, left + 2);
    }
    let outcomes: Vec<_> = nodes.into_iter().map(Node::shutdown).collect();
    let expected: Vec<[u8; 32]> = cluster.keys[1..].iter().map(public_key_of).collect();
    for outcome in &outcomes {
        assert_eq!(outcome.fatal, None);
        let schedule = outcome.ledger.validator_schedule();
        assert_eq!(schedule.current().public_keys(), &expected[..]);
        // After its last block the ledger holds the set of the next height.
        assert_eq!(schedule.current().epoch(), (outcome.height + 1) / EPOCH);
    }

    // Every certificate is a quorum of its epoch's set; the newcomer signs from its first
    // epoch on (every block while validator 0 was stopped needs it).
    let keys: Vec<[u8; 32]> = cluster.keys.iter().map(public_key_of).collect();
    let set_of = |epoch: u64| {
        let members: Vec<[u8; 32]> = if epoch < joined / EPOCH {
            keys[..4].to_vec()
        } else if epoch < left / EPOCH {
            keys.clone()
        } else {
            keys[1..].to_vec()
        };
        ValidatorSet::new(NETWORK, epoch, members).unwrap()
    };
    let chains: Vec<_> = cluster.configs[1..].iter().map(blocks_of).collect();
    let common = chains.iter().map(Vec::len).min().unwrap() as u64;
    assert!(common >= left + 2);
    let mut signed_by_newcomer = 0;
    for (index, (hash, _, certificate)) in chains[0].iter().enumerate() {
        let height = index as u64 + 1;
        assert_eq!(certificate.epoch, height / EPOCH, "height {height}");
        certificate
            .verify(&set_of(certificate.epoch))
            .unwrap_or_else(|error| panic!("height {height}: {error}"));
        for chain in &chains[1..] {
            if let Some(other) = chain.get(index) {
                assert_eq!(&other.0, hash, "validators differ at height {height}");
            }
        }
        let by_newcomer = certificate
            .signatures
            .iter()
            .any(|s| s.validator == keys[candidate]);
        assert!(!by_newcomer || height >= joined, "height {height}");
        signed_by_newcomer += usize::from(by_newcomer);
    }
    assert!(signed_by_newcomer > 0);
    let heights_after_stop: Vec<u64> = answered.values().filter_map(|a| a.height).collect();
    for height in heights_after_stop {
        let certificate = &chains[0][height as usize - 1].2;
        assert!(
            certificate
                .signatures
                .iter()
                .any(|s| s.validator == keys[candidate]),
            "block {height} was final without the newcomer"
        );
    }
}

#[test]
fn a_faulty_validator_is_refused_its_equivocation_kept_and_the_others_go_on() {
    use tally_engine::consensus::{Body, SignedMessage, VoteKind};
    use tally_engine::net::peers::{PeerConfig, PeerEvent, PeerLinks};
    use tally_engine::validator::{state_file, wire};
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_in(dir.path());
    let genesis = &cluster.fixture.genesis;
    // Validators 0-2 are honest nodes; validator 3's key is held by a raw link that sends
    // whatever it likes.
    let nodes = cluster::start(genesis, &cluster.configs[..3]).unwrap();
    let faulty = cluster.configs[3].validator.clone().unwrap();
    let (events_tx, events) = crossbeam::channel::bounded(1_024);
    let links = PeerLinks::start_with_listener(
        faulty.listener.as_ref().unwrap().try_clone().unwrap(),
        PeerConfig {
            listen: faulty.listen,
            peers: faulty.peers.clone(),
            network_id: NETWORK,
            genesis_hash: genesis.hash(),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            out_bytes_max: 8 * 1024 * 1024,
            tls: None,
        },
        faulty.signing_key,
        events_tx,
    )
    .unwrap();
    let mut connected = 0;
    while connected < 3 {
        if let PeerEvent::Connected { .. } = events.recv_timeout(Duration::from_secs(30)).unwrap() {
            connected += 1;
        }
    }
    let before: u64 = nodes
        .iter()
        .map(|n| n.handle().metrics().frames_rejected.get())
        .sum();
    let height = nodes[0].handle().height() + 1;
    let outsider = cluster::validator_keys(1, 1234).remove(0);
    let prevote_at = |height: u64, value: [u8; 32], key: &ed25519_zebra::SigningKey| {
        SignedMessage::sign(
            Body::Vote {
                kind: VoteKind::Prevote,
                height,
                round: 0,
                value: Some(value),
            },
            NETWORK,
            key,
        )
        .encode()
    };
    let prevote = |value: [u8; 32], key: &ed25519_zebra::SigningKey| prevote_at(height, value, key);
    // Signed by a key outside the set; garbage; an unknown type; a proposal body whose
    // records do not match its root; a "final" block without a quorum certificate.
    links.broadcast(wire::KIND_CONSENSUS, &prevote([1; 32], &outsider));
    links.broadcast(wire::KIND_CONSENSUS, &[0xAB; 152]);
    links.broadcast(0x7E, b"what is this");
    let mut junk_body = vec![0u8; tally_engine::block::BLOCK_HEADER_BYTES];
    junk_body[..8].copy_from_slice(b"TLYBLK01");
    links.broadcast(wire::KIND_PROPOSAL_BODY, &junk_body);
    // Two different prevotes for the same height and round: equivocation (for this height
    // and the next, in case a block is decided meanwhile: the next height's are buffered).
    for at in [height, height + 1] {
        links.broadcast(
            wire::KIND_CONSENSUS,
            &prevote_at(at, [1; 32], &faulty.signing_key),
        );
        links.broadcast(
            wire::KIND_CONSENSUS,
            &prevote_at(at, [2; 32], &faulty.signing_key),
        );
    }
    // The honest three still finalize.
    let f = &cluster.fixture;
    let (reply, acks) = unbounded();
    for id in 1..=50u128 {
        nodes[(id % 3) as usize]
            .handle()
            .submit(&[f.tx(id, TxKind::Transfer, ALICE, BOB, 5)], &reply)
            .unwrap();
    }
    let answered = collect(&acks, 50);
    assert!(answered.values().all(|ack| ack.code == ResultCode::Ok));
    let after: u64 = nodes
        .iter()
        .map(|n| n.handle().metrics().frames_rejected.get())
        .sum();
    assert!(
        after >= before + 3 * 3,
        "each honest node refuses the outsider's vote, the garbage and the unknown type ({before} -> {after})"
    );
    drop(links);
    for node in nodes {
        assert_eq!(node.shutdown().fatal, None);
    }
    let evidence: usize = cluster.configs[..3]
        .iter()
        .map(|c| state_file::read_evidence(&c.data_dir).unwrap().len())
        .sum();
    assert!(evidence >= 1, "the equivocation is kept as evidence");
    for config in &cluster.configs[..3] {
        for kept in state_file::read_evidence(&config.data_dir).unwrap() {
            assert_eq!(kept.validator(), &public_key_of(&faulty.signing_key));
            kept.verify(&validator_set(&cluster.keys)).unwrap();
        }
    }
}
