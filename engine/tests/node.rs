//! The single-node pipeline end to end: ingress, mempool, signature batches, blocks, log,
//! acknowledgements, restart.

mod common;

use common::*;
use crossbeam::channel::{unbounded, Receiver};
use std::collections::BTreeMap;
use std::time::Duration;
use tally_engine::mempool::Ack;
use tally_engine::node::{replay_dir, Node, NodeConfig, NodeError, SubmitError};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxKind, TxRecord};

fn collect(acks: &Receiver<Ack>, count: usize) -> BTreeMap<u128, Ack> {
    let mut out = BTreeMap::new();
    while out.len() < count {
        let ack = acks
            .recv_timeout(Duration::from_secs(30))
            .expect("every accepted transaction is acknowledged");
        out.insert(ack.id, ack);
    }
    out
}

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.mempool_tx_max = 1_024;
    config
}

#[test]
fn transactions_flow_to_durable_blocks_with_their_result_codes() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let good = f.tx(1, TxKind::Transfer, ALICE, BOB, 100);
    let mut forged = f.tx(2, TxKind::Transfer, ALICE, BOB, 100);
    forged.signature[10] ^= 0x04;
    let mut altered = f.tx(3, TxKind::Transfer, ALICE, BOB, 100);
    // change the amount after signing: the signature no longer covers the body
    let mut fields = altered.fields();
    fields.amount = 9_000;
    let (public_key, signature) = (altered.public_key, altered.signature);
    altered = TxRecord::new(&fields);
    altered.public_key = public_key;
    altered.signature = signature;
    // signed for another network
    let other_network = TxRecord::signed(
        &f.fields(4, TxKind::Transfer, ALICE, BOB, 1),
        NETWORK + 1,
        &f.keys[&ALICE],
    );
    let duplicate = f.tx(1, TxKind::Transfer, ALICE, BOB, 100);
    let poor = f.tx(5, TxKind::Transfer, BOB, ALICE, 1_000_000);
    let wrong_owner = f.signed_by(BOB, &f.fields(6, TxKind::Transfer, ALICE, BOB, 1));
    let taxed = f.tx(7, TxKind::TaxedPayment, ALICE, SHOP, 1_000);
    handle
        .submit(&[good, forged, altered, other_network], &reply)
        .unwrap();
    let first = collect(&acks, 4);
    handle
        .submit(&[duplicate, poor, wrong_owner, taxed], &reply)
        .unwrap();
    // The duplicate answers under id 1 again, so gather the four answers as a list.
    let second: Vec<Ack> = (0..4)
        .map(|_| {
            acks.recv_timeout(Duration::from_secs(30))
                .expect("acknowledged")
        })
        .collect();
    assert_eq!(first[&1].code, ResultCode::Ok);
    assert!(first[&1].height.is_some());
    assert_eq!(first[&2].code, ResultCode::BadSignature);
    assert_eq!(first[&2].height, None);
    assert_eq!(first[&3].code, ResultCode::BadSignature);
    assert_eq!(first[&4].code, ResultCode::BadSignature);
    let by_id = |id: u128| {
        second
            .iter()
            .find(|ack| ack.id == id)
            .expect("answered")
            .code
    };
    assert_eq!(by_id(1), ResultCode::DuplicateId);
    let second: BTreeMap<u128, Ack> = second.iter().map(|ack| (ack.id, *ack)).collect();
    assert_eq!(second[&5].code, ResultCode::InsufficientFunds);
    assert_eq!(second[&6].code, ResultCode::NotOwner);
    assert_eq!(second[&7].code, ResultCode::Ok);
    let outcome = node.shutdown();
    assert_eq!(outcome.fatal, None);
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000 - 100 - 1_000));
    assert_eq!(outcome.ledger.balance(BOB), Some(600));
    assert_eq!(outcome.ledger.balance(SHOP), Some(910));
    assert_eq!(outcome.ledger.balance(TAX), Some(90));
    assert_eq!(
        outcome.ledger.sum_of_balances(),
        outcome.ledger.genesis_total()
    );
}

#[test]
fn malformed_bytes_are_answered_with_their_code_and_change_nothing() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let good = *f.tx(9, TxKind::Transfer, ALICE, BOB, 5).as_bytes();
    let cases: Vec<(Vec<u8>, ResultCode)> = vec![
        (good[..100].to_vec(), ResultCode::MalformedLength),
        (
            [&good[..], &[0u8][..]].concat(),
            ResultCode::MalformedLength,
        ),
        (
            {
                let mut b = good;
                b[44] = 0;
                b.to_vec()
            },
            ResultCode::MalformedUnknownKind,
        ),
        (
            {
                let mut b = good;
                // bit 15: no flag has it
                b[47] = 0x80;
                b.to_vec()
            },
            ResultCode::MalformedUnknownFlags,
        ),
        (
            {
                let mut b = good;
                b[32..40].fill(0);
                b.to_vec()
            },
            ResultCode::MalformedZeroAmount,
        ),
        (
            {
                let mut b = good;
                b[40..44].fill(0);
                b.to_vec()
            },
            ResultCode::MalformedZeroLedger,
        ),
        (
            {
                let mut b = good;
                b[86] = 1; // reserved_a of a plain transfer
                b.to_vec()
            },
            ResultCode::MalformedReservedNotZero,
        ),
        (
            {
                let mut b = good;
                b[88..96].fill(0);
                b.to_vec()
            },
            ResultCode::MalformedZeroValidUntil,
        ),
        (
            {
                let mut b = good;
                b[24..32].copy_from_slice(&ALICE.to_le_bytes());
                b.to_vec()
            },
            ResultCode::MalformedSameAccount,
        ),
    ];
    for (bytes, expected) in &cases {
        handle.submit_bytes(bytes, &reply).unwrap();
        let ack = acks.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(ack.code, *expected, "{} bytes", bytes.len());
        assert_eq!(ack.height, None);
    }
    let outcome = node.shutdown();
    assert_eq!(outcome.height, 0, "no malformed record reached a block");
    assert_eq!(outcome.ledger.balance(ALICE), Some(10_000));
}

#[test]
fn a_full_mempool_answers_busy_and_loses_nothing_it_took() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut small = config(dir.path());
    small.mempool_tx_max = 8;
    small.sigverify_batch_tx_max = 8;
    let node = Node::start(&f.genesis, small).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    let records: Vec<TxRecord> = (1..=2_000u128)
        .map(|id| f.tx(id, TxKind::Transfer, BANK_A, BANK_B, 1))
        .collect();
    let mut accepted = 0usize;
    let mut busy = 0usize;
    let mut next = 0;
    while next < records.len() {
        match handle.submit(&records[next..], &reply) {
            Ok(taken) => next += taken,
            Err(SubmitError::Busy { accepted: taken }) => {
                busy += 1;
                next += taken;
                std::thread::yield_now();
            }
            Err(other) => panic!("{other}"),
        }
        accepted = next;
    }
    assert!(
        busy > 0,
        "a mempool of 8 must push back on 2000 transactions"
    );
    let acked = collect(&acks, accepted);
    assert!(acked.values().all(|ack| ack.code == ResultCode::Ok));
    let outcome = node.shutdown();
    assert_eq!(
        outcome.ledger.balance(BANK_B),
        Some(1_000_000 + accepted as i64)
    );
}

#[test]
fn a_restarted_node_replays_its_log_to_the_same_state_root() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    for round in 0..5u128 {
        let batch: Vec<TxRecord> = (0..50u128)
            .map(|i| {
                f.tx(
                    round * 100 + i + 1,
                    TxKind::TaxedPayment,
                    ALICE,
                    SHOP,
                    7 + i as u64,
                )
            })
            .collect();
        handle.submit(&batch, &reply).unwrap();
        collect(&acks, 50);
    }
    let first = node.shutdown();
    assert!(first.height >= 1);
    // stop without shutdown: drop the process state, keep the files
    let restarted = Node::start(&f.genesis, config(dir.path())).unwrap();
    assert_eq!(restarted.replayed_height(), first.height);
    let handle = restarted.handle();
    handle
        .submit(&[f.tx(1, TxKind::TaxedPayment, ALICE, SHOP, 7)], &reply)
        .unwrap();
    assert_eq!(
        collect(&acks, 1)[&1].code,
        ResultCode::DuplicateId,
        "the id index survived restart"
    );
    let second = restarted.shutdown();
    assert_eq!(second.height, first.height + 1);
    let replayed = replay_dir(&f.genesis, &config(dir.path())).unwrap();
    assert_eq!(replayed.ledger.state_root(), second.state_root);
    assert_eq!(replayed.height, second.height);
}

#[test]
fn a_data_directory_of_another_genesis_is_refused() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let (reply, acks) = unbounded();
    node.handle()
        .submit(&[f.tx(1, TxKind::Transfer, ALICE, BOB, 1)], &reply)
        .unwrap();
    collect(&acks, 1);
    node.shutdown();
    let mut other = f.genesis.clone();
    other.accounts[5].balance += 1;
    match Node::start(&other, config(dir.path())) {
        Err(NodeError::BadBlock { reason, .. }) => {
            assert!(reason.contains("another genesis"), "{reason}")
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a log of another genesis was accepted"),
    }
}

#[test]
fn a_configuration_that_cannot_work_is_refused() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut zero = config(dir.path());
    zero.mempool_tx_max = 0;
    let error = Node::start(&f.genesis, zero).err().expect("refused");
    assert!(error.to_string().contains("mempool_tx_max"), "{error}");
    let mut huge = config(dir.path());
    huge.block_tx_max = 1 << 20;
    let error = Node::start(&f.genesis, huge).err().expect("refused");
    assert!(error.to_string().contains("block_tx_max"), "{error}");
    let mut back_to_back = config(dir.path());
    back_to_back.checkpoint_interval_ms = 10;
    let error = Node::start(&f.genesis, back_to_back)
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("checkpoint_interval_ms 10 is below 1000"),
        "{error}"
    );
    let mut every_block = config(dir.path());
    every_block.checkpoint_log_bytes = 4_096;
    let error = Node::start(&f.genesis, every_block).err().expect("refused");
    assert!(
        error
            .to_string()
            .contains("checkpoint_log_bytes 4096 is below one block's largest log entry"),
        "{error}"
    );
}

/// Fails every flush once armed: fdatasync and msync both answer EIO.
#[derive(Debug, Default)]
struct FailingFlushes {
    armed: std::sync::atomic::AtomicBool,
}

impl tally_engine::log::FileOps for FailingFlushes {
    fn sync_file(&self, path: &std::path::Path, file: &std::fs::File) -> std::io::Result<()> {
        if self.armed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        tally_engine::log::OsFileOps.sync_file(path, file)
    }
    fn flush_map(
        &self,
        path: &std::path::Path,
        map: &tally_engine::log::MmapMut,
        offset: usize,
        bytes: usize,
    ) -> std::io::Result<()> {
        if self.armed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        tally_engine::log::OsFileOps.flush_map(path, map, offset, bytes)
    }
}

#[test]
fn a_failed_flush_stops_the_node_and_acknowledges_nothing_it_did_not_make_durable() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let faults = std::sync::Arc::new(FailingFlushes::default());
    let mut with_faults = config(dir.path());
    with_faults.file_ops = faults.clone();
    let node = Node::start(&f.genesis, with_faults).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    handle
        .submit(&[f.tx(1, TxKind::Transfer, ALICE, BOB, 10)], &reply)
        .unwrap();
    let durable = collect(&acks, 1);
    assert_eq!(durable[&1].code, ResultCode::Ok);
    faults
        .armed
        .store(true, std::sync::atomic::Ordering::Release);
    let batch: Vec<TxRecord> = (2..=50u128)
        .map(|id| f.tx(id, TxKind::Transfer, ALICE, BOB, 1))
        .collect();
    handle.submit(&batch, &reply).unwrap();
    // Wait for the log thread to hit the fault and stop the node.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while handle.fatal_error().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let reason = handle
        .fatal_error()
        .expect("the failed flush stopped the node");
    assert!(reason.contains("never retried"), "{reason}");
    assert!(matches!(
        handle.submit(&batch, &reply),
        Err(SubmitError::Stopped { .. })
    ));
    let outcome = node.shutdown();
    assert!(outcome.fatal.is_some());
    while let Ok(ack) = acks.try_recv() {
        assert!(
            ack.height.is_none(),
            "transaction {} was acknowledged durable after a failed flush",
            ack.id
        );
    }
    // After the fault is gone, a restart finds only what was durable.
    faults
        .armed
        .store(false, std::sync::atomic::Ordering::Release);
    let replayed = replay_dir(&f.genesis, &config(dir.path())).unwrap();
    assert!(replayed.ledger.is_settled(1));
}

/// Holds every flush of the log once armed: says so on `entered`, then waits for a word on
/// `release` before flushing for real.
#[derive(Debug)]
struct HeldFlushes {
    armed: std::sync::atomic::AtomicBool,
    entered: crossbeam::channel::Sender<()>,
    release: crossbeam::channel::Receiver<()>,
}

impl HeldFlushes {
    fn hold(&self) {
        if self.armed.load(std::sync::atomic::Ordering::Acquire) {
            let _ = self.entered.send(());
            let _ = self.release.recv();
        }
    }
}

impl tally_engine::log::FileOps for HeldFlushes {
    fn sync_file(&self, path: &std::path::Path, file: &std::fs::File) -> std::io::Result<()> {
        self.hold();
        tally_engine::log::OsFileOps.sync_file(path, file)
    }
    fn flush_map(
        &self,
        path: &std::path::Path,
        map: &tally_engine::log::MmapMut,
        offset: usize,
        bytes: usize,
    ) -> std::io::Result<()> {
        self.hold();
        tally_engine::log::OsFileOps.flush_map(path, map, offset, bytes)
    }
}

#[test]
fn the_next_block_executes_during_a_flush_and_nothing_is_acknowledged_before_it_is_durable() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = unbounded();
    let (release, release_rx) = unbounded();
    let held = std::sync::Arc::new(HeldFlushes {
        armed: std::sync::atomic::AtomicBool::new(false),
        entered: entered_tx,
        release: release_rx,
    });
    let mut with_held = config(dir.path());
    with_held.file_ops = held.clone();
    let node = Node::start(&f.genesis, with_held).unwrap();
    let handle = node.handle();
    let (reply, acks) = unbounded();
    handle
        .submit(&[f.tx(1, TxKind::Transfer, ALICE, BOB, 10)], &reply)
        .unwrap();
    assert_eq!(collect(&acks, 1)[&1].code, ResultCode::Ok);
    held.armed.store(true, std::sync::atomic::Ordering::Release);
    let first: Vec<TxRecord> = (2..=20u128)
        .map(|id| f.tx(id, TxKind::Transfer, ALICE, BOB, 1))
        .collect();
    handle.submit(&first, &reply).unwrap();
    entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the log thread flushes the first block");
    // The first block's flush is held: the next block is verified, executed and sealed
    // meanwhile, and neither block's transactions hear anything.
    let second: Vec<TxRecord> = (21..=40u128)
        .map(|id| f.tx(id, TxKind::Transfer, ALICE, BOB, 1))
        .collect();
    handle.submit(&second, &reply).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while handle
        .counters()
        .executed
        .load(std::sync::atomic::Ordering::Relaxed)
        < 40
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        handle
            .counters()
            .executed
            .load(std::sync::atomic::Ordering::Relaxed),
        40,
        "the second block executes while the first one's flush is held"
    );
    if let Ok(ack) = acks.try_recv() {
        panic!(
            "transaction {} was acknowledged before its block was durable",
            ack.id
        );
    }
    held.armed
        .store(false, std::sync::atomic::Ordering::Release);
    drop(release); // every held flush goes on
    let answered = collect(&acks, 39);
    for id in 2..=40u128 {
        assert_eq!(answered[&id].code, ResultCode::Ok, "transaction {id}");
        assert!(answered[&id].height.is_some(), "transaction {id} durable");
    }
    let heights = |txs: &[TxRecord]| -> Vec<Option<u64>> {
        txs.iter().map(|tx| answered[&tx.id()].height).collect()
    };
    assert!(heights(&first).iter().max() <= heights(&second).iter().min());
    let outcome = node.shutdown();
    assert!(outcome.fatal.is_none());
    let replayed = replay_dir(&f.genesis, &config(dir.path())).unwrap();
    assert_eq!(replayed.ledger.state_root(), outcome.state_root);
}

#[test]
fn every_transaction_taken_during_shutdown_is_answered() {
    let f = std::sync::Arc::new(Fixture::new());
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    let (reply, acks) = unbounded();
    let submitters: Vec<_> = (0..2u128)
        .map(|thread| {
            let handle = node.handle();
            let reply = reply.clone();
            let f = std::sync::Arc::clone(&f);
            std::thread::spawn(move || {
                let mut taken = 0usize;
                for i in 0..100_000u128 {
                    let id = thread * 1_000_000 + i + 1;
                    match handle.submit(&[f.tx(id, TxKind::Transfer, BANK_A, BANK_B, 1)], &reply) {
                        Ok(count) => taken += count,
                        Err(SubmitError::Busy { .. } | SubmitError::OverQuota { .. }) => {
                            std::thread::yield_now()
                        }
                        Err(SubmitError::Stopped { .. }) => break,
                    }
                }
                taken
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let outcome = node.shutdown();
    let taken: usize = submitters.into_iter().map(|t| t.join().unwrap()).sum();
    drop(reply);
    let answered = acks.iter().count();
    assert!(taken > 0);
    assert_eq!(
        answered, taken,
        "a transaction taken while the node stopped was never answered"
    );
    assert_eq!(
        outcome.ledger.balance(BANK_B),
        Some(1_000_000 + taken as i64)
    );
}
