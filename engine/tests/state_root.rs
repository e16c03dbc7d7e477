//! The incremental state root: the accounts' tree kept between blocks and updated for the
//! accounts a block changed gives, after every block, the root of a full rehash.

mod common;

use common::*;
use rand::{RngExt, SeedableRng};
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFlags, TxKind, TxRecord};

#[test]
fn the_kept_tree_gives_the_root_of_a_full_rehash_over_random_changes() {
    let seed = test_seed("the_kept_tree_gives_the_root_of_a_full_rehash");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    // 1 003 leaves: an odd count, so that odd nodes are promoted at several levels
    const BANKS: u64 = 1_000;
    let f = Fixture::banks(BANKS, 1_000);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
    let mut id = 0u128;
    for height in 1..=120u64 {
        let count = rng.random_range(0..40u64);
        let records: Vec<TxRecord> = (0..count)
            .map(|_| {
                id += 1;
                let payer = BANK_A + rng.random_range(0..BANKS);
                let payee = BANK_A + (payer - BANK_A + 1 + rng.random_range(0..BANKS - 1)) % BANKS;
                let amount = rng.random_range(1..1_500u64); // some lack liquidity and queue
                let roll = rng.random_range(0..10u32);
                f.custom(payer, id, TxKind::Transfer, payer, payee, amount, |t| {
                    if roll == 0 {
                        t.flags = TxFlags(TxFlags::PENDING);
                    } else if roll == 1 {
                        t.flags = TxFlags(TxFlags::LINKED); // chains that fail are undone
                    }
                })
            })
            .collect();
        let codes = ledger.execute_block(height, height * 1_000, &records);
        assert_eq!(codes.len() as u64, count);
        assert_eq!(
            ledger.state_root(),
            ledger.state_root_from_scratch(),
            "block {height}, seed {seed}"
        );
    }
    // a restored ledger builds its tree from every leaf and goes on with the same roots
    let bytes = ledger.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: 120,
            last_block_hash: [0; 32],
        },
    );
    let (restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored.state_root(), ledger.state_root());
}

/// Random blocks of queued payments (interbank payments short of liquidity), their holds,
/// releases, cancellations and re-prioritisations, reservations with and without time-outs,
/// their posts and voids, failing linked chains, and business days that end (queued payments
/// expire): after every block the kept set digests give the root of a full rehash.
#[test]
fn the_set_digests_give_the_root_of_a_full_rehash_over_random_queue_and_reservation_operations() {
    let seed = test_seed("the_set_digests_give_the_root_of_a_full_rehash");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    const BANKS: u64 = 40;
    let f = Fixture::banks(BANKS, 500);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let mut id = 0u128;
    // (id, payer, payee, amount) of reservations taken, and (id, payer) of queued payments
    let mut reservations: Vec<(u128, u64, u64, u64)> = Vec::new();
    let mut queued: Vec<(u128, u64)> = Vec::new();
    let (mut most_queued, mut most_reserved) = (0, 0);
    let mut time = 1_000u64;
    for height in 1..=150u64 {
        // now and then a business day ends between two blocks
        time += if rng.random_range(0..20u32) == 0 {
            tally_engine::genesis::DAY_MS
        } else {
            rng.random_range(0..30_000u64)
        };
        let count = rng.random_range(0..30u64);
        let records: Vec<TxRecord> = (0..count)
            .map(|_| {
                id += 1;
                let payer = BANK_A + rng.random_range(0..BANKS);
                let payee = BANK_A + (payer - BANK_A + 1 + rng.random_range(0..BANKS - 1)) % BANKS;
                let amount = rng.random_range(1..700u64);
                match rng.random_range(0..10u32) {
                    0 | 1 => {
                        let timeout_s = rng.random_range(0..3u32) * 20;
                        let amount = amount / 10 + 1; // small: most reservations are taken
                        f.custom(payer, id, TxKind::Transfer, payer, payee, amount, |t| {
                            t.flags = TxFlags(TxFlags::PENDING);
                            t.reserved_a = timeout_s;
                        })
                    }
                    2 if !reservations.is_empty() => {
                        let pick = rng.random_range(0..reservations.len());
                        let (related, from, to, reserved) = reservations[pick];
                        let post = rng.random_range(0..2u32) == 0;
                        let flag = if post {
                            TxFlags::POST_PENDING
                        } else {
                            TxFlags::VOID_PENDING
                        };
                        f.custom(from, id, TxKind::Transfer, from, to, reserved, |t| {
                            t.flags = TxFlags(flag);
                            t.related_id = related;
                        })
                    }
                    3 | 4 if !queued.is_empty() => {
                        let (related, payer) = queued[rng.random_range(0..queued.len())];
                        let kind = [
                            TxKind::QueueHold,
                            TxKind::QueueRelease,
                            TxKind::QueueCancel,
                            TxKind::QueueReprioritise,
                        ][rng.random_range(0..4usize)];
                        let urgent = rng.random_range(0..2u32) == 0;
                        f.custom(payer, id, kind, payer, 0, 0, |t| {
                            t.related_id = related;
                            if urgent {
                                t.flags = TxFlags(TxFlags::URGENT);
                            }
                        })
                    }
                    5 => f.custom(payer, id, TxKind::Transfer, payer, payee, amount, |t| {
                        t.flags = TxFlags(TxFlags::LINKED); // chains that fail are undone
                    }),
                    _ => f.custom(payer, id, TxKind::Transfer, payer, payee, amount, |_| {}),
                }
            })
            .collect();
        let codes = ledger.execute_block(height, time, &records);
        for (record, code) in records.iter().zip(&codes) {
            let flags = record.flags();
            if *code == ResultCode::Queued {
                queued.push((record.id(), record.debit_account()));
            } else if *code == ResultCode::Ok && flags.has(TxFlags::PENDING) {
                reservations.push((
                    record.id(),
                    record.debit_account(),
                    record.credit_account(),
                    record.amount(),
                ));
            }
        }
        reservations.retain(|r| ledger.pending_transfer(r.0).is_some());
        queued.retain(|q| ledger.queued_payments(None).iter().any(|p| p.id == q.0));
        most_queued = most_queued.max(ledger.queue_len());
        most_reserved = most_reserved.max(reservations.len());
        assert_eq!(
            ledger.state_root(),
            ledger.state_root_from_scratch(),
            "block {height}, seed {seed}"
        );
    }
    assert!(
        most_queued >= 10 && most_reserved >= 10,
        "the workload reached {most_queued} queued payments and {most_reserved} reservations (seed {seed})"
    );
    let bytes = ledger.snapshot(
        &f.genesis.hash(),
        SnapshotPoint {
            height: 150,
            last_block_hash: [0; 32],
        },
    );
    let (restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).unwrap();
    assert_eq!(restored.state_root(), ledger.state_root());
}
