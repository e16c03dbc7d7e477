//! Linked chains through the node: a chain is one unit from ingress to the block. It is taken
//! whole or refused whole at ingress (open, too long, a malformed member, Busy), fails whole
//! at the signature stage, lands contiguous in one block while other clients flood the node,
//! and settles all or nothing in the executor; also through the network client.

mod common;

use common::*;
use crossbeam::channel::{unbounded, Receiver, Sender};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally_engine::block::decode_entry;
use tally_engine::log::{Log, LogConfig};
use tally_engine::mempool::Ack;
use tally_engine::net::client::submit_and_wait;
use tally_engine::net::server::ServerConfig;
use tally_engine::net::{Client, NodeService, ServiceConfig};
use tally_engine::node::{Node, NodeConfig, NodeHandle, SubmitError};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

const WAIT: Duration = Duration::from_secs(60);

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.mempool_tx_max = 1_024;
    config.checkpoint_interval_blocks = 0;
    config
}

/// A transfer that carries the linked flag (continued or closed by the next record).
fn linked(f: &Fixture, id: u128, debit: u64, credit: u64, amount: u64) -> TxRecord {
    f.custom(
        debit,
        id,
        TxKind::Transfer,
        debit,
        credit,
        amount,
        |fields| fields.flags = TxFlags(TxFlags::LINKED),
    )
}

/// A chain of transfers of 1 from bank A to bank B with ids `first..first + length`.
fn bank_chain(f: &Fixture, first: u128, length: usize) -> Vec<TxRecord> {
    let last = first + length as u128 - 1;
    (first..=last)
        .map(|id| {
            if id < last {
                linked(f, id, BANK_A, BANK_B, 1)
            } else {
                f.tx(id, TxKind::Transfer, BANK_A, BANK_B, 1)
            }
        })
        .collect()
}

fn is_linked(record: &TxRecord) -> bool {
    record.flags().has(TxFlags::LINKED)
}

/// Waits for `count` acknowledgements, keyed by id.
fn collect(acks: &Receiver<Ack>, count: usize) -> BTreeMap<u128, Ack> {
    let mut out = BTreeMap::new();
    while out.len() < count {
        let ack = acks
            .recv_timeout(WAIT)
            .expect("every taken transaction is acknowledged");
        assert!(
            out.insert(ack.id, ack).is_none(),
            "{} answered twice",
            ack.id
        );
    }
    out
}

/// Submits all of `records`, retrying after Busy. Checks on every Busy that the records taken
/// end at a unit boundary (never inside a chain); returns how many Busy answers came.
fn submit_all(handle: &NodeHandle, records: &[TxRecord], reply: &Sender<Ack>) -> usize {
    let mut next = 0;
    let mut busy = 0;
    while next < records.len() {
        match handle.submit(&records[next..], reply) {
            Ok(taken) => {
                assert_eq!(taken, records.len() - next);
                next += taken;
            }
            Err(SubmitError::Busy { accepted }) => {
                busy += 1;
                next += accepted;
                assert!(
                    next == 0 || !is_linked(&records[next - 1]),
                    "Busy stopped inside a chain, after record {}",
                    records[next - 1].id()
                );
                std::thread::yield_now();
            }
            Err(other) => panic!("{other}"),
        }
    }
    busy
}

/// Every block of a stopped node's log: (height, records, result codes).
fn blocks_of(dir: &std::path::Path) -> Vec<(u64, Vec<TxRecord>, Vec<u8>)> {
    let log = Log::open(&dir.join("log"), LogConfig::default()).unwrap();
    log.entries(0)
        .unwrap()
        .map(|entry| {
            let (_, payload) = entry.unwrap();
            let block = decode_entry(payload).unwrap();
            (
                block.header.height(),
                block.records.to_vec(),
                block.results.to_vec(),
            )
        })
        .collect()
}

/// Asserts the members of the chain `ids` share one block height.
fn same_height(acked: &BTreeMap<u128, Ack>, ids: impl IntoIterator<Item = u128>) -> u64 {
    let heights: BTreeSet<Option<u64>> = ids.into_iter().map(|id| acked[&id].height).collect();
    assert_eq!(heights.len(), 1, "a chain spread over blocks: {heights:?}");
    heights
        .into_iter()
        .next()
        .flatten()
        .expect("in a durable block")
}

#[test]
fn a_chain_settles_contiguous_in_one_block_while_other_clients_flood_the_node() {
    let f = Arc::new(Fixture::new());
    let dir = tempfile::tempdir().unwrap();
    let mut small = config(dir.path());
    small.sigverify_batch_tx_max = 64;
    small.block_tx_max = 64;
    let node = Node::start(&f.genesis, small).unwrap();
    let handle = node.handle();
    let stop = Arc::new(AtomicBool::new(false));
    let (flood_reply, flood_acks) = unbounded();
    let flooders: Vec<_> = (0..2u128)
        .map(|thread| {
            let (handle, reply, f, stop) = (
                node.handle(),
                flood_reply.clone(),
                Arc::clone(&f),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut taken = 0usize;
                let mut next_id = 1_000_000 * (thread + 1);
                while !stop.load(Ordering::Acquire) {
                    let batch: Vec<TxRecord> = (0..16)
                        .map(|i| f.tx(next_id + i, TxKind::Transfer, BANK_A, BANK_B, 1))
                        .collect();
                    let count = match handle.submit(&batch, &reply) {
                        Ok(count) => count,
                        Err(SubmitError::Busy { accepted }) => {
                            std::thread::yield_now();
                            accepted
                        }
                        Err(other) => panic!("{other}"),
                    };
                    taken += count;
                    next_id += count as u128;
                }
                taken
            })
        })
        .collect();
    // The flood is under way before the chain goes in.
    while handle.counters().executed.load(Ordering::Relaxed) < 200 {
        std::thread::yield_now();
    }
    let (reply, acks) = unbounded();
    let chain = [
        linked(&f, 1, ALICE, BOB, 100),
        linked(&f, 2, ALICE, SHOP, 200),
        f.tx(3, TxKind::Transfer, BOB, ALICE, 50),
    ];
    assert_eq!(submit_all(&handle, &chain, &reply), 0, "room for three");
    let acked = collect(&acks, 3);
    stop.store(true, Ordering::Release);
    let flooded: usize = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    let outcome = node.shutdown();
    assert_eq!(outcome.fatal, None);
    for id in 1..=3 {
        assert_eq!(acked[&id].code, ResultCode::Ok, "member {id}");
    }
    let height = same_height(&acked, 1..=3);
    drop(flood_reply);
    assert_eq!(flood_acks.iter().count(), flooded);
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 300 + 50));
    assert_eq!(outcome.ledger.balance(BOB), Some(500 + 100 - 50));
    assert_eq!(outcome.ledger.balance(SHOP), Some(200));
    assert_eq!(
        outcome.ledger.balance(BANK_B),
        Some(1_000_000 + flooded as i64)
    );
    let blocks = blocks_of(dir.path());
    let (_, records, results) = blocks
        .iter()
        .find(|(h, _, _)| *h == height)
        .expect("the chain's block is in the log");
    let at = records
        .iter()
        .position(|r| r.id() == 1)
        .expect("the head is in its block");
    let ids: Vec<u128> = records[at..at + 3].iter().map(TxRecord::id).collect();
    assert_eq!(ids, vec![1, 2, 3], "the chain is contiguous in its block");
    assert!(results[at..at + 3]
        .iter()
        .all(|&code| code == ResultCode::Ok as u8));
}

#[test]
fn many_chains_are_never_cut_by_a_block_boundary() {
    let f = Arc::new(Fixture::new());
    let dir = tempfile::tempdir().unwrap();
    let mut small = config(dir.path());
    small.mempool_tx_max = 64;
    small.sigverify_batch_tx_max = 8;
    small.block_tx_max = 8;
    let node = Node::start(&f.genesis, small).unwrap();
    assert_eq!(node.handle().linked_chain_tx_max(), 8);
    let (reply, acks) = unbounded();
    // Two submitters, each alternating chains of 5 and single records, so that blocks of 8
    // would cut chains if a block could end inside one.
    const CHAINS: u128 = 60;
    let submitters: Vec<_> = (0..2u128)
        .map(|thread| {
            let (handle, reply, f) = (node.handle(), reply.clone(), Arc::clone(&f));
            std::thread::spawn(move || {
                let mut records = Vec::new();
                for c in 0..CHAINS {
                    let base = (thread * CHAINS + c) * 10;
                    records.extend(bank_chain(&f, base + 1, 5));
                    records.push(f.tx(base + 9, TxKind::Transfer, BANK_A, BANK_B, 1));
                }
                submit_all(&handle, &records, &reply);
                records.len()
            })
        })
        .collect();
    let total: usize = submitters.into_iter().map(|t| t.join().unwrap()).sum();
    let acked = collect(&acks, total);
    assert!(acked.values().all(|ack| ack.code == ResultCode::Ok));
    for thread in 0..2u128 {
        for c in 0..CHAINS {
            let base = (thread * CHAINS + c) * 10;
            same_height(&acked, base + 1..=base + 5);
        }
    }
    let outcome = node.shutdown();
    assert_eq!(
        outcome.ledger.balance(BANK_B),
        Some(1_000_000 + total as i64)
    );
    let blocks = blocks_of(dir.path());
    assert!(blocks.len() >= total / 8, "{} blocks", blocks.len());
    let mut seen = 0;
    for (height, records, _) in &blocks {
        assert!(records.len() <= 8, "block {height} over block_tx_max");
        assert!(
            !is_linked(records.last().unwrap()),
            "block {height} ends inside a chain"
        );
        // Inside a block, each chain's members follow one another, in order.
        for pair in records.windows(2) {
            if is_linked(&pair[0]) {
                assert_eq!(pair[1].id(), pair[0].id() + 1, "block {height}");
            }
        }
        seen += records.len();
    }
    assert_eq!(seen, total);
}

#[test]
fn a_bad_signature_fails_the_whole_chain_at_the_signature_stage() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let mut forged = linked(&f, 2, ALICE, SHOP, 200);
    forged.signature[7] ^= 0x10;
    let records = [
        f.tx(10, TxKind::Transfer, ALICE, BOB, 1),
        linked(&f, 1, ALICE, BOB, 100),
        forged,
        f.tx(3, TxKind::Transfer, BOB, ALICE, 50),
        f.tx(11, TxKind::Transfer, ALICE, BOB, 2),
    ];
    handle.submit(&records, &reply).unwrap();
    let acked = collect(&acks, 5);
    assert_eq!(acked[&2].code, ResultCode::BadSignature);
    assert_eq!(acked[&1].code, ResultCode::LinkedEventFailed);
    assert_eq!(acked[&3].code, ResultCode::LinkedEventFailed);
    for id in 1..=3 {
        assert_eq!(acked[&id].height, None, "member {id} reached no block");
    }
    // The records around the chain are transactions of their own.
    assert_eq!(acked[&10].code, ResultCode::Ok);
    assert_eq!(acked[&11].code, ResultCode::Ok);
    assert_eq!(handle.counters().bad_signatures.load(Ordering::Relaxed), 1);
    let outcome = node.shutdown();
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 3));
    assert_eq!(outcome.ledger.balance(BOB), Some(503));
    assert_eq!(outcome.ledger.balance(SHOP), Some(0));
    for id in 1..=3 {
        assert!(!outcome.ledger.is_settled(id));
    }
    let logged: usize = blocks_of(dir.path()).iter().map(|b| b.1.len()).sum();
    assert_eq!(logged, 2, "no member of the failed chain is in the log");
}

#[test]
fn a_member_that_fails_execution_fails_the_whole_chain() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let chain = [
        linked(&f, 1, ALICE, BOB, 100),
        linked(&f, 2, BOB, SHOP, 1_000_000),
        f.tx(3, TxKind::Transfer, ALICE, SHOP, 50),
    ];
    handle.submit(&chain, &reply).unwrap();
    let acked = collect(&acks, 3);
    assert_eq!(acked[&1].code, ResultCode::LinkedEventFailed);
    assert_eq!(acked[&2].code, ResultCode::InsufficientFunds);
    assert_eq!(acked[&3].code, ResultCode::LinkedEventFailed);
    same_height(&acked, 1..=3);
    // A failed chain uses up no id: the same ids settle later as a good chain.
    let again = [
        linked(&f, 1, ALICE, BOB, 100),
        f.tx(2, TxKind::Transfer, ALICE, SHOP, 50),
    ];
    handle.submit(&again, &reply).unwrap();
    let acked = collect(&acks, 2);
    assert!(acked.values().all(|ack| ack.code == ResultCode::Ok));
    let outcome = node.shutdown();
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 150));
    assert_eq!(outcome.ledger.balance(BOB), Some(600));
    assert_eq!(outcome.ledger.balance(SHOP), Some(50));
    assert!(!outcome.ledger.is_settled(3));
}

#[test]
fn a_chain_of_two_settles_and_the_next_record_stands_alone() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let records = [
        linked(&f, 1, ALICE, BOB, 100),
        f.tx(2, TxKind::Transfer, ALICE, BOB, 200),
        f.tx(3, TxKind::Transfer, BOB, ALICE, 1_000_000),
    ];
    assert_eq!(handle.submit(&records, &reply).unwrap(), 3);
    let acked = collect(&acks, 3);
    assert_eq!(acked[&1].code, ResultCode::Ok);
    assert_eq!(acked[&2].code, ResultCode::Ok);
    same_height(&acked, 1..=2);
    // The third is not in the chain: its failure undoes nothing.
    assert_eq!(acked[&3].code, ResultCode::InsufficientFunds);
    let outcome = node.shutdown();
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 300));
    assert!(outcome.ledger.is_settled(1) && outcome.ledger.is_settled(2));
}

#[test]
fn a_chain_open_at_the_end_of_a_submission_is_refused_whole_at_ingress() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let records = [
        f.tx(1, TxKind::Transfer, ALICE, BOB, 1),
        linked(&f, 2, ALICE, BOB, 10),
        linked(&f, 3, ALICE, BOB, 20),
    ];
    assert_eq!(handle.submit(&records, &reply).unwrap(), 3);
    let acked = collect(&acks, 3);
    assert_eq!(acked[&1].code, ResultCode::Ok);
    for id in 2..=3 {
        assert_eq!(acked[&id].code, ResultCode::LinkedEventChainOpen);
        assert_eq!(acked[&id].height, None);
    }
    // A lone linked record is an open chain too.
    handle
        .submit(&[linked(&f, 4, ALICE, BOB, 1)], &reply)
        .unwrap();
    assert_eq!(collect(&acks, 1)[&4].code, ResultCode::LinkedEventChainOpen);
    assert_eq!(
        handle
            .counters()
            .rejected_at_ingress
            .load(Ordering::Relaxed),
        3
    );
    let outcome = node.shutdown();
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 1));
}

#[test]
fn a_chain_longer_than_the_maximum_is_refused_whole_and_one_at_it_settles() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let max = handle.linked_chain_tx_max();
    assert_eq!(max, tally_engine::mempool::LINKED_CHAIN_TX_MAX.min(1_024));
    let (reply, acks) = unbounded();
    let too_long = bank_chain(&f, 1, max + 1);
    assert_eq!(handle.submit(&too_long, &reply).unwrap(), max + 1);
    let acked = collect(&acks, max + 1);
    assert!(acked
        .values()
        .all(|ack| ack.code == ResultCode::LinkedChainTooLong && ack.height.is_none()));
    assert_eq!(ResultCode::LinkedChainTooLong as u8, 57);
    assert_eq!(
        ResultCode::LinkedChainTooLong.name(),
        "linked_chain_too_long"
    );
    let at_max = bank_chain(&f, 10_001, max);
    handle.submit(&at_max, &reply).unwrap();
    let acked = collect(&acks, max);
    assert!(acked.values().all(|ack| ack.code == ResultCode::Ok));
    same_height(&acked, 10_001..10_001 + max as u128);
    let outcome = node.shutdown();
    assert_eq!(outcome.ledger.balance(BANK_B), Some(1_000_000 + max as i64));
}

#[test]
fn a_small_mempool_lowers_the_chain_maximum() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut small = config(dir.path());
    small.mempool_tx_max = 6;
    small.sigverify_batch_tx_max = 4;
    let node = Node::start(&f.genesis, small).unwrap();
    let handle = node.handle();
    assert_eq!(handle.linked_chain_tx_max(), 6);
    let (reply, acks) = unbounded();
    handle.submit(&bank_chain(&f, 1, 7), &reply).unwrap();
    let acked = collect(&acks, 7);
    assert!(acked
        .values()
        .all(|ack| ack.code == ResultCode::LinkedChainTooLong));
    // A chain of the mempool's size fits when the mempool has drained, and goes into one
    // block although it is larger than a signature batch.
    submit_all(&handle, &bank_chain(&f, 11, 6), &reply);
    let acked = collect(&acks, 6);
    assert!(acked.values().all(|ack| ack.code == ResultCode::Ok));
    same_height(&acked, 11..=16);
    node.shutdown();
}

#[test]
fn a_malformed_member_fails_the_chain_at_ingress() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let zero_amount = f.custom(ALICE, 2, TxKind::Transfer, ALICE, BOB, 0, |fields| {
        fields.flags = TxFlags(TxFlags::LINKED)
    });
    let records = [
        linked(&f, 1, ALICE, BOB, 100),
        zero_amount,
        f.tx(3, TxKind::Transfer, ALICE, BOB, 50),
        f.tx(4, TxKind::Transfer, ALICE, BOB, 7),
    ];
    assert_eq!(handle.submit(&records, &reply).unwrap(), 4);
    let acked = collect(&acks, 4);
    assert_eq!(acked[&2].code, ResultCode::MalformedZeroAmount);
    assert_eq!(acked[&1].code, ResultCode::LinkedEventFailed);
    assert_eq!(acked[&3].code, ResultCode::LinkedEventFailed);
    for id in 1..=3 {
        assert_eq!(acked[&id].height, None);
    }
    assert_eq!(acked[&4].code, ResultCode::Ok);
    assert_eq!(
        handle
            .counters()
            .rejected_at_ingress
            .load(Ordering::Relaxed),
        3
    );
    let outcome = node.shutdown();
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 7));
}

#[test]
fn busy_takes_a_chain_whole_or_not_at_all() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut small = config(dir.path());
    small.mempool_tx_max = 8;
    small.sigverify_batch_tx_max = 8;
    let node = Node::start(&f.genesis, small).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    // Singles and chains of 5 in turn: a mempool of 8 is nearly full most of the time.
    let mut records = Vec::new();
    for c in 0..150u128 {
        records.push(f.tx(c * 10 + 1, TxKind::Transfer, BANK_A, BANK_B, 1));
        records.extend(bank_chain(&f, c * 10 + 2, 5));
    }
    let busy = submit_all(&handle, &records, &reply);
    assert!(
        busy > 0,
        "a mempool of 8 must push back on 900 transactions"
    );
    let acked = collect(&acks, records.len());
    assert!(acked.values().all(|ack| ack.code == ResultCode::Ok));
    for c in 0..150u128 {
        same_height(&acked, c * 10 + 2..=c * 10 + 6);
    }
    let outcome = node.shutdown();
    assert_eq!(
        outcome.ledger.balance(BANK_B),
        Some(1_000_000 + records.len() as i64)
    );
}

#[test]
fn a_block_smaller_than_a_signature_batch_is_refused() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut bad = config(dir.path());
    bad.block_tx_max = 100;
    bad.sigverify_batch_tx_max = 101;
    let error = Node::start(&f.genesis, bad).err().expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("block_tx_max (100)") && text.contains("sigverify_batch_tx_max (101)"),
        "{text}"
    );
}

#[test]
fn a_chain_through_the_network_client_settles() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut node = config(dir.path());
    node.mempool_tx_max = 4_096;
    let service = NodeService::start(
        &f.genesis,
        node,
        ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        },
    )
    .expect("service starts");
    let client = Client::connect(service.client_addr()).unwrap();
    let mut records = vec![
        linked(&f, 1, ALICE, BOB, 100),
        linked(&f, 2, ALICE, SHOP, 200),
        f.tx(3, TxKind::Transfer, BOB, ALICE, 50),
    ];
    // and an open chain after it, refused whole
    records.push(linked(&f, 4, ALICE, BOB, 1));
    let (acked, refusal) = submit_and_wait(&client, &records, WAIT).unwrap();
    assert_eq!(refusal, None);
    let acked: BTreeMap<u128, Ack> = acked.into_iter().map(|ack| (ack.id, ack)).collect();
    for id in 1..=3 {
        assert_eq!(acked[&id].code, ResultCode::Ok, "member {id}");
    }
    same_height(&acked, 1..=3);
    assert_eq!(acked[&4].code, ResultCode::LinkedEventChainOpen);
    let outcome = service.shutdown();
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 300 + 50));
    assert_eq!(outcome.ledger.balance(SHOP), Some(200));
}

#[test]
fn the_network_client_keeps_each_chain_in_one_submit_batch() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = NodeService::start(
        &f.genesis,
        config(dir.path()),
        ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                submit_batch_tx_max: 4,
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        },
    )
    .expect("service starts");
    let client = Client::connect(service.client_addr()).unwrap();
    assert_eq!(client.welcome().submit_batch_tx_max, 4);
    // Cut every 4 records, the chain 3..=5 would straddle the first cut and its tail settle
    // alone; the chain 6..=11 is longer than a batch.
    let mut records = vec![
        f.tx(1, TxKind::Transfer, BANK_A, BANK_B, 1),
        f.tx(2, TxKind::Transfer, BANK_A, BANK_B, 1),
    ];
    records.extend(bank_chain(&f, 3, 3));
    records.extend(bank_chain(&f, 6, 6));
    records.push(f.tx(12, TxKind::Transfer, BANK_A, BANK_B, 1));
    records.extend(bank_chain(&f, 13, 4));
    let (acked, refusal) = submit_and_wait(&client, &records, WAIT).unwrap();
    assert_eq!(refusal, None);
    let acked: BTreeMap<u128, Ack> = acked.into_iter().map(|ack| (ack.id, ack)).collect();
    assert_eq!(acked.len(), records.len());
    for id in (1..=5).chain(12..=16) {
        assert_eq!(acked[&id].code, ResultCode::Ok, "record {id}");
    }
    same_height(&acked, 3..=5);
    same_height(&acked, 13..=16);
    for id in 6..=11 {
        assert_eq!(
            acked[&id].code,
            ResultCode::LinkedChainTooLong,
            "record {id}"
        );
    }
    let outcome = service.shutdown();
    assert_eq!(outcome.ledger.balance(BANK_B), Some(1_000_000 + 10));
}
