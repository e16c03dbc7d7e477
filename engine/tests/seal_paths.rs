//! One block sealer: the blocks a single node and a network of validators write are, byte for
//! byte, the entries that sealing their proposals again makes (what replay checks), and the
//! single node's proposal of a validator's block is that block's proposal. Replay refuses a
//! log whose results or state root differ from sealing's, and a header that does not extend
//! the chain, each with its own error.

mod common;

use common::*;
use crossbeam::channel::{unbounded, Receiver};
use std::path::Path;
use std::time::{Duration, Instant};
use tally_engine::block::{self, BlockHeader, BLOCK_TX_COUNT_MAX};
use tally_engine::genesis::{Genesis, Role};
use tally_engine::ledger::Ledger;
use tally_engine::log::{Log, LogConfig};
use tally_engine::mempool::Ack;
use tally_engine::node::seal::{self, ChainTip, HeaderError};
use tally_engine::node::{replay, Node, NodeConfig, NodeError};
use tally_engine::tx::{TxFlags, TxKind, TxRecord};
use tally_engine::validator::{cluster, ValidatorConfig};

/// A workload that reaches every kind of outcome the sealer records: transfers, taxed
/// payments, payments that queue for liquidity and settle later, a linked chain, duplicates
/// and refusals.
fn workload(f: &Fixture) -> Vec<Vec<TxRecord>> {
    let mut units = Vec::new();
    for id in 1..=60u128 {
        let (payer, payee) = if id % 2 == 0 {
            (ALICE, BOB)
        } else {
            (BOB, ALICE)
        };
        units.push(vec![f.tx(id, TxKind::Transfer, payer, payee, 7)]);
    }
    for id in 100..120u128 {
        units.push(vec![f.tx(id, TxKind::TaxedPayment, ALICE, SHOP, 1_000)]);
    }
    // More than BANK_B holds: queued, settled once BANK_A pays it.
    units.push(vec![f.tx(200, TxKind::Transfer, BANK_B, BANK_A, 1_500_000)]);
    units.push(vec![f.tx(201, TxKind::Transfer, BANK_A, BANK_B, 900_000)]);
    // A linked chain of two, and one that fails as a whole.
    units.push(linked_chain(f, &[(300, 5), (301, 6)]));
    units.push(linked_chain(f, &[(310, 5), (311, u64::MAX / 4)]));
    // A duplicate id and an unknown account: refused with their own codes, still in a block.
    units.push(vec![f.tx(1, TxKind::Transfer, BOB, ALICE, 7)]);
    units.push(vec![f.tx(400, TxKind::Transfer, ALICE, 9_999, 7)]);
    units
}

/// Alice's transfers to Bob of `(id, amount)`, each linked to the next.
fn linked_chain(f: &Fixture, transfers: &[(u128, u64)]) -> Vec<TxRecord> {
    let last = transfers.len() - 1;
    transfers
        .iter()
        .enumerate()
        .map(|(index, &(id, amount))| {
            let mut fields = f.fields(id, TxKind::Transfer, ALICE, BOB, amount);
            if index < last {
                fields.flags = TxFlags(TxFlags::LINKED);
            }
            f.signed_by(ALICE, &fields)
        })
        .collect()
}

fn fixture(edit: impl FnOnce(&mut Genesis)) -> Fixture {
    Fixture::from_table(
        &[
            (CENTRAL_BANK, Role::CentralBank, 0, None),
            (TAX, Role::TaxAuthority, 0, None),
            (BANK_A, Role::Bank, 1_000_000, None),
            (BANK_B, Role::Bank, 1_000_000, None),
            (ALICE, Role::Consumer, 1_000_000, Some(BANK_A)),
            (BOB, Role::Consumer, 1_000_000, Some(BANK_B)),
            (SHOP, Role::Merchant, 0, Some(BANK_A)),
        ],
        edit,
    )
}

/// Submits every unit (to the nodes in turn) and waits until each transaction is answered
/// and every node has reached the highest height an answer names.
fn drive(nodes: &[Node], units: &[Vec<TxRecord>]) {
    let (reply, acks) = unbounded();
    let count: usize = units.iter().map(Vec::len).sum();
    for (index, unit) in units.iter().enumerate() {
        nodes[index % nodes.len()]
            .handle()
            .submit(unit, &reply)
            .expect("taken");
    }
    let top = collect(&acks, count)
        .iter()
        .filter_map(|ack| ack.height)
        .max()
        .expect("blocks were written");
    for node in nodes {
        let deadline = Instant::now() + Duration::from_secs(60);
        while node.handle().height() < top {
            assert!(Instant::now() < deadline, "height {top} not reached");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `count` answers (a duplicate id is answered once per submission).
fn collect(acks: &Receiver<Ack>, count: usize) -> Vec<Ack> {
    (0..count)
        .map(|_| {
            acks.recv_timeout(Duration::from_secs(60))
                .expect("every transaction is answered")
        })
        .collect()
}

/// Every entry of a stopped node's log.
fn entries(data_dir: &Path) -> Vec<Vec<u8>> {
    let log = Log::open(&data_dir.join("log"), LogConfig::default()).unwrap();
    log.entries(0)
        .unwrap()
        .map(|item| item.unwrap().1.to_vec())
        .collect()
}

/// Seals every stored block's proposal again over the genesis state and asserts that the
/// entry sealing makes is the stored entry, byte for byte. Returns the proposals.
fn reseal_all(genesis: &Genesis, stored: &[Vec<u8>]) -> Vec<(BlockHeader, Vec<TxRecord>)> {
    let mut ledger = Ledger::from_genesis(genesis);
    let mut tip = ChainTip::genesis(genesis.hash());
    let mut proposals = Vec::new();
    for entry in stored {
        let view = block::decode_entry(entry).unwrap();
        seal::check_header(
            &tip,
            genesis.network_id,
            &view.header,
            view.records.len(),
            BLOCK_TX_COUNT_MAX,
        )
        .unwrap();
        let proposal = block::unsealed(&view.header);
        let sealed = seal::seal(&mut ledger, &tip, &proposal, view.records);
        assert!(
            sealed.entry(view.records, view.certificate) == *entry,
            "block {} sealed again differs from the stored entry",
            view.header.height()
        );
        tip = sealed.tip();
        proposals.push((proposal, view.records.to_vec()));
    }
    proposals
}

#[test]
fn single_node_validators_and_replay_seal_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();

    // A node alone.
    let single = fixture(|_| {});
    let single_dir = dir.path().join("single");
    let node = Node::start(&single.genesis, NodeConfig::new(single_dir.clone())).unwrap();
    drive(std::slice::from_ref(&node), &workload(&single));
    assert_eq!(node.shutdown().fatal, None);
    let single_entries = entries(&single_dir);
    let single_blocks = reseal_all(&single.genesis, &single_entries);
    for (header, _) in &single_blocks {
        assert_eq!(u32::from_le_bytes(header.proposer), 0);
    }

    // Four validators over loopback.
    let keys = cluster::validator_keys(4, 11);
    let network = fixture(|genesis| cluster::set_validators(genesis, &keys));
    let mut template = NodeConfig::new(dir.path().join("validators"));
    let mut validator = ValidatorConfig::new(keys[0], "127.0.0.1:0".parse().unwrap(), Vec::new());
    validator.empty_block_interval = Duration::from_secs(3_600);
    template.validator = Some(validator);
    let configs =
        cluster::loopback_configs(&template, &dir.path().join("validators"), &keys).unwrap();
    let nodes = cluster::start(&network.genesis, &configs).unwrap();
    drive(&nodes, &workload(&network));
    for node in nodes {
        assert_eq!(node.shutdown().fatal, None);
    }
    let validator_entries = entries(&configs[0].data_dir);
    assert!(
        block::decode_entry(&validator_entries[0])
            .unwrap()
            .certificate
            .is_some(),
        "validators store certificates"
    );
    let validator_blocks = reseal_all(&network.genesis, &validator_entries);
    // Each validator stores the certificate it gathered (its own quorum of precommits); the
    // blocks themselves are the same bytes on all.
    let without_certificate = |entry: &Vec<u8>| {
        let view = block::decode_entry(entry).unwrap();
        entry[..block::entry_bytes(view.records.len())].to_vec()
    };
    for config in &configs[1..] {
        let other = entries(&config.data_dir);
        let common = other.len().min(validator_entries.len());
        assert!(common > 0);
        for height in 0..common {
            assert!(
                without_certificate(&other[height])
                    == without_certificate(&validator_entries[height]),
                "validators differ at height {}",
                height + 1
            );
        }
        reseal_all(&network.genesis, &other);
    }

    // The single node's proposal of each validator block is that block's proposal.
    let mut tip = ChainTip::genesis(network.genesis.hash());
    let mut ledger = Ledger::from_genesis(&network.genesis);
    for (header, records) in &validator_blocks {
        let proposal = seal::propose(
            &tip,
            network.genesis.network_id,
            header.timestamp_ms(),
            u32::from_le_bytes(header.proposer),
            records,
        );
        assert_eq!(proposal, *header);
        tip = seal::seal(&mut ledger, &tip, &proposal, records).tip();
    }

    // Replay (start-up recovery) reaches the same tip from either log.
    for (genesis, data_dir, blocks) in [
        (&single.genesis, single_dir.as_path(), single_entries.len()),
        (
            &network.genesis,
            configs[0].data_dir.as_path(),
            validator_entries.len(),
        ),
    ] {
        let log = Log::open(&data_dir.join("log"), LogConfig::default()).unwrap();
        let recovered = replay(genesis, &log).unwrap();
        assert_eq!(recovered.height, blocks as u64);
    }
    assert_eq!(tip.height, validator_entries.len() as u64);
}

/// Rewrites the last entry of a node's log with `edit` applied to its decoded parts (the
/// results hash is recomputed, so the entry still decodes).
fn rewrite_last_entry(data_dir: &Path, edit: impl FnOnce(&mut BlockHeader, &mut Vec<u8>)) {
    let stored = entries(data_dir);
    let last = stored.last().unwrap();
    let view = block::decode_entry(last).unwrap();
    let mut header = view.header;
    let mut results = view.results.to_vec();
    edit(&mut header, &mut results);
    header.results_hash = block::results_hash(&results);
    let mut entry = Vec::new();
    block::encode_entry(&header, view.records, &results, &mut entry);
    // The log is rewritten from its first entry: the others unchanged, the last edited.
    std::fs::remove_dir_all(data_dir.join("log")).unwrap();
    let mut log = Log::open(&data_dir.join("log"), LogConfig::default()).unwrap();
    for other in &stored[..stored.len() - 1] {
        log.append(other).unwrap();
    }
    log.append(&entry).unwrap();
    log.commit().unwrap();
}

/// A node alone writes the workload in two rounds: at least two blocks.
fn single_node_log(dir: &Path, f: &Fixture) {
    let node = Node::start(&f.genesis, NodeConfig::new(dir.to_path_buf())).unwrap();
    let units = workload(f);
    let (first, second) = units.split_at(units.len() / 2);
    drive(std::slice::from_ref(&node), first);
    drive(std::slice::from_ref(&node), second);
    assert_eq!(node.shutdown().fatal, None);
    assert!(entries(dir).len() >= 2);
}

/// A change to a stored block's header or result codes.
type Edit = fn(&mut BlockHeader, &mut Vec<u8>);

#[test]
fn replay_refuses_a_block_that_sealing_would_not_write() {
    let f = fixture(|_| {});
    let cases: [(&str, Edit); 3] = [
        ("result", |_, results| results[0] ^= 1),
        ("state", |header, _| header.state_root[0] ^= 1),
        ("network", |header, _| {
            header.network_id = (NETWORK + 1).to_le_bytes();
        }),
    ];
    for (name, edit) in cases {
        let dir = tempfile::tempdir().unwrap();
        single_node_log(dir.path(), &f);
        let height = entries(dir.path()).len() as u64;
        rewrite_last_entry(dir.path(), edit);
        let log = Log::open(&dir.path().join("log"), LogConfig::default()).unwrap();
        let error = replay(&f.genesis, &log).err().expect("refused");
        match (name, &error) {
            ("result", NodeError::ReplayMismatch { height: h, what }) => {
                assert_eq!((*h, *what), (height, "a result code"))
            }
            ("state", NodeError::ReplayMismatch { height: h, what }) => {
                assert_eq!((*h, *what), (height, "a state root"))
            }
            ("network", NodeError::BadBlock { sequence, reason }) => {
                assert_eq!(*sequence, height - 1);
                assert!(reason.contains("for network"), "{reason}");
            }
            _ => panic!("{name}: unexpected error {error}"),
        }
    }
}

/// A node alone once stamped blocks with its clock alone, so its log can hold a block whose
/// time went back: such a log still replays (the ledger's time is the largest timestamp),
/// while a new proposal whose time goes back is refused.
#[test]
fn a_stored_block_whose_time_went_back_still_replays() {
    let f = fixture(|_| {});
    let dir = tempfile::tempdir().unwrap();
    single_node_log(dir.path(), &f);
    let stored = entries(dir.path());
    let before = block::decode_entry(&stored[stored.len() - 2])
        .unwrap()
        .header
        .timestamp_ms();
    // The last block sealed again with time 0, as an old node whose clock stepped back.
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let mut tip = ChainTip::genesis(f.genesis.hash());
    let mut rewritten = Vec::new();
    for (index, entry) in stored.iter().enumerate() {
        let view = block::decode_entry(entry).unwrap();
        let mut proposal = block::unsealed(&view.header);
        if index == stored.len() - 1 {
            proposal.timestamp_ms = 0u64.to_le_bytes();
            assert_eq!(
                seal::check_timestamp(&tip, &proposal),
                Err(HeaderError::TimestampBackwards {
                    timestamp_ms: 0,
                    previous_ms: before
                })
            );
        }
        let sealed = seal::seal(&mut ledger, &tip, &proposal, view.records);
        rewritten.push(sealed.entry(view.records, None));
        tip = sealed.tip();
    }
    assert_eq!(
        tip.timestamp_ms, before,
        "the ledger's time does not go back"
    );
    std::fs::remove_dir_all(dir.path().join("log")).unwrap();
    let mut log = Log::open(&dir.path().join("log"), LogConfig::default()).unwrap();
    for entry in &rewritten {
        log.append(entry).unwrap();
    }
    log.commit().unwrap();
    let recovered = replay(&f.genesis, &log).unwrap();
    assert_eq!(recovered.tip(), tip);
}

#[test]
fn the_header_check_names_each_break_of_the_chain() {
    let f = fixture(|_| {});
    let genesis_tip = ChainTip::genesis(f.genesis.hash());
    let records = vec![f.tx(1, TxKind::Transfer, ALICE, BOB, 1)];
    let good = seal::propose(&genesis_tip, NETWORK, 1_000, 0, &records);
    assert_eq!(
        seal::check_header(&genesis_tip, NETWORK, &good, 1, BLOCK_TX_COUNT_MAX),
        Ok(())
    );
    let tip = ChainTip {
        height: 5,
        hash: [7; 32],
        timestamp_ms: 2_000,
    };
    let next = seal::propose(&tip, NETWORK, 1_000, 0, &records);
    assert_eq!(
        next.timestamp_ms(),
        2_000,
        "the clock behind the tip is not used"
    );
    let check = |header: &BlockHeader, count: usize, max: usize| {
        seal::check_header(&tip, NETWORK, header, count, max)
    };
    assert_eq!(check(&next, 1, BLOCK_TX_COUNT_MAX), Ok(()));
    let mut bad = next;
    bad.magic[0] ^= 1;
    assert_eq!(check(&bad, 1, 8), Err(HeaderError::BadMagic));
    let mut bad = next;
    bad.height = 7u64.to_le_bytes();
    assert_eq!(
        check(&bad, 1, 8),
        Err(HeaderError::NotNextHeight {
            height: 7,
            expected: 6
        })
    );
    let mut bad = next;
    bad.network_id = 9u64.to_le_bytes();
    assert_eq!(
        check(&bad, 1, 8),
        Err(HeaderError::OtherNetwork {
            found: 9,
            expected: NETWORK
        })
    );
    let mut bad = next;
    bad.previous_hash = [8; 32];
    assert_eq!(
        check(&bad, 1, 8),
        Err(HeaderError::OtherPrevious { height: 5 })
    );
    let mut other_genesis = good;
    other_genesis.previous_hash = [8; 32];
    assert_eq!(
        seal::check_header(&genesis_tip, NETWORK, &other_genesis, 1, 8),
        Err(HeaderError::OtherGenesis)
    );
    let mut bad = next;
    bad.timestamp_ms = 1_999u64.to_le_bytes();
    assert_eq!(
        check(&bad, 1, 8),
        Ok(()),
        "time is checked on new blocks only"
    );
    assert_eq!(
        seal::check_timestamp(&tip, &bad),
        Err(HeaderError::TimestampBackwards {
            timestamp_ms: 1_999,
            previous_ms: 2_000
        })
    );
    assert_eq!(seal::check_timestamp(&tip, &next), Ok(()));
    assert_eq!(
        check(&next, 9, 8),
        Err(HeaderError::TooManyTransactions { count: 9, max: 8 })
    );
    assert_eq!(
        check(&next, 2, 8),
        Err(HeaderError::CountMismatch {
            header: 1,
            records: 2
        })
    );
}

#[test]
#[should_panic(expected = "the ledger is at the tip")]
fn sealing_on_a_ledger_that_is_not_at_the_tip_is_a_bug() {
    let f = fixture(|_| {});
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let tip = ChainTip {
        height: 3,
        hash: [1; 32],
        timestamp_ms: 0,
    };
    let records = vec![f.tx(1, TxKind::Transfer, ALICE, BOB, 1)];
    let proposal = seal::propose(&tip, NETWORK, 0, 0, &records);
    seal::seal(&mut ledger, &tip, &proposal, &records);
}
