//! Idempotency with bounded memory: every record carries `valid_until`; a copy of an accepted
//! record is refused as a duplicate while it is valid and as expired after, across restarts
//! from a checkpoint and from the log alone; the ledger forgets ids whose window has passed,
//! so its structures stop growing once the window has turned over.

mod common;

use common::*;
use crossbeam::channel::unbounded;
use rand::{RngExt, SeedableRng};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::node::{checkpoints_dir, Node, NodeConfig};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxKind, TxRecord};

const WINDOW_MS: u64 = 10_000;

fn windowed(window_ms: u64) -> Fixture {
    let table: Vec<AccountRow> = vec![
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
        (SHOP, tally_engine::genesis::Role::Merchant, 0, Some(BANK_A)),
    ];
    Fixture::from_table(&table, |g| g.settlement.validity_window_ms = window_ms)
}

fn pay(f: &Fixture, id: u128, valid_until: u64) -> TxRecord {
    f.custom(ALICE, id, TxKind::Transfer, ALICE, SHOP, 1, |t| {
        t.valid_until = valid_until
    })
}

#[test]
fn a_record_is_refused_as_duplicate_while_valid_and_as_expired_after() {
    let f = windowed(WINDOW_MS);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let record = pay(&f, 1, 5_000);
    assert_eq!(ledger.execute_block(1, 1_000, &[record]), [ResultCode::Ok]);
    assert_eq!(
        ledger.execute_block(2, 5_000, &[record]),
        [ResultCode::DuplicateId],
        "at its valid_until a copy is still a duplicate"
    );
    assert_eq!(ledger.settled_count(), 1);
    assert_eq!(
        ledger.execute_block(3, 5_001, &[record]),
        [ResultCode::Expired],
        "after its valid_until every copy is expired"
    );
    assert_eq!(ledger.settled_count(), 0, "the id was forgotten");
    assert_eq!(ledger.balance(SHOP), Some(1), "applied once");
    // a valid_until more than one window after the block's time, and zero
    assert_eq!(
        ledger.execute_block(4, 6_000, &[pay(&f, 2, 6_000 + WINDOW_MS + 1)]),
        [ResultCode::ValidUntilBeyondWindow]
    );
    assert_eq!(
        ledger.execute_block(5, 6_000, &[pay(&f, 3, 6_000 + WINDOW_MS)]),
        [ResultCode::Ok],
        "exactly one window ahead is valid"
    );
    assert_eq!(
        ledger.execute_block(6, 6_000, &[pay(&f, 4, 0)]),
        [ResultCode::MalformedZeroValidUntil]
    );
}

#[test]
fn an_id_held_by_live_state_is_a_duplicate_after_its_record_expired() {
    // a pending transfer without a time-out outlives its record's window: its id stays taken
    let f = windowed(WINDOW_MS);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let pending = f.custom(ALICE, 7, TxKind::Transfer, ALICE, SHOP, 10, |t| {
        t.valid_until = 2_000;
        t.flags = tally_engine::tx::TxFlags(tally_engine::tx::TxFlags::PENDING);
    });
    assert_eq!(ledger.execute_block(1, 1_000, &[pending]), [ResultCode::Ok]);
    let again = f.custom(ALICE, 7, TxKind::Transfer, ALICE, SHOP, 10, |t| {
        t.valid_until = 20_000;
        t.flags = tally_engine::tx::TxFlags(tally_engine::tx::TxFlags::PENDING);
    });
    assert_eq!(
        ledger.execute_block(2, 15_000, &[again]),
        [ResultCode::DuplicateId]
    );
}

#[test]
fn the_ledgers_structures_stop_growing_once_the_window_has_turned_over() {
    let seed = test_seed("the_ledgers_structures_stop_growing");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let f = windowed(WINDOW_MS);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    const PER_BLOCK: u64 = 50;
    const BLOCK_MS: u64 = 500;
    let mut id = 0u128;
    let mut sizes = Vec::new();
    // 20 windows; each record valid for a random part of the window
    for height in 1..=400u64 {
        let time = height * BLOCK_MS;
        let records: Vec<TxRecord> = (0..PER_BLOCK)
            .map(|_| {
                id += 1;
                pay(&f, id, time + rng.random_range(0..=WINDOW_MS))
            })
            .collect();
        let codes = ledger.execute_block(height, time, &records);
        assert!(codes.iter().all(|c| *c == ResultCode::Ok));
        sizes.push(ledger.retained_counts());
    }
    // held ids never exceed one window of records (plus the block at its edge)
    let bound = (WINDOW_MS / BLOCK_MS + 1) * PER_BLOCK;
    let largest = sizes.iter().map(|s| s[0]).max().unwrap();
    assert!(largest as u64 <= bound, "{largest} ids held, bound {bound}");
    // after the first windows the count stays flat: the last 10 windows hold no more than the
    // second window did, within the randomness of valid_until
    let second_window = sizes[40..80].iter().map(|s| s[0]).max().unwrap();
    let late = sizes[200..].iter().map(|s| s[0]).max().unwrap();
    println!("held ids: second window max {second_window}, late max {late}, bound {bound}");
    assert!(late as f64 <= second_window as f64 * 1.10 + 1.0);
    assert!(sizes.iter().all(|s| s[1] == 0 && s[2] == 0));
    // a snapshot holds the same bounded set and restores the same behaviour
    let bytes = ledger.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: 400,
            last_block_hash: [0; 32],
        },
    );
    let (mut restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored.retained_counts(), ledger.retained_counts());
    assert_eq!(restored.state_root(), ledger.state_root());
    let old = pay(&f, 1, 400 * BLOCK_MS); // the first id again, valid now
    let codes_a = ledger.execute_block(401, 401 * BLOCK_MS, &[old]);
    let codes_b = restored.execute_block(401, 401 * BLOCK_MS, &[old]);
    assert_eq!(codes_a, codes_b);
    assert_eq!(restored.state_root(), ledger.state_root());
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn config(dir: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.checkpoint_interval_blocks = 2;
    config
}

fn submit(node: &Node, record: TxRecord) -> ResultCode {
    let (reply, acks) = unbounded();
    node.handle().submit(&[record], &reply).unwrap();
    acks.recv_timeout(Duration::from_secs(30)).unwrap().code
}

#[test]
fn replays_are_refused_forever_across_restarts_from_a_checkpoint_and_from_the_log() {
    const NODE_WINDOW_MS: u64 = 2_000;
    let f = windowed(NODE_WINDOW_MS);
    let dir = tempfile::tempdir().unwrap();
    let record = pay(&f, 1, now_ms() + 1_000);
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    assert_eq!(submit(&node, record), ResultCode::Ok);
    assert_eq!(
        submit(&node, record),
        ResultCode::DuplicateId,
        "within its window a copy is a duplicate"
    );
    // let the window pass; a later block moves the ledger's time past valid_until
    std::thread::sleep(Duration::from_millis(1_200));
    let mut next_id = 100;
    let mut tick = |node: &Node| {
        next_id += 1;
        assert_eq!(
            submit(node, pay(&f, next_id, now_ms() + 1_000)),
            ResultCode::Ok
        );
    };
    tick(&node);
    tick(&node);
    assert_eq!(submit(&node, record), ResultCode::Expired);
    let outcome = node.shutdown();
    assert_eq!(outcome.fatal, None);
    assert!(
        std::fs::read_dir(checkpoints_dir(&config(dir.path())))
            .unwrap()
            .count()
            > 0
    );
    // from the checkpoint (and the log after it)
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    assert_eq!(node.handle().height(), outcome.height);
    assert_eq!(submit(&node, record), ResultCode::Expired);
    let outcome = node.shutdown();
    assert_eq!(outcome.fatal, None);
    // from the log alone
    std::fs::remove_dir_all(checkpoints_dir(&config(dir.path()))).unwrap();
    let node = Node::start(&f.genesis, config(dir.path())).unwrap();
    assert_eq!(submit(&node, record), ResultCode::Expired);
    // and at execution, not only at ingress: the ledger's time has passed valid_until
    assert_eq!(node.shutdown().fatal, None);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    ledger.execute_block(1, record.valid_until() + 1, &[]);
    assert_eq!(
        ledger.execute_block(2, record.valid_until() + 1, &[record]),
        [ResultCode::Expired]
    );
}
