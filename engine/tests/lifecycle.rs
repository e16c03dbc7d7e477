//! The participants' lifecycle (kinds 15 to 19): accounts opened, closed, re-keyed and
//! re-limited and banks added by signed records. Each refusal has its code, every change is
//! in the state root (the same on two ledgers fed the same blocks, and the same from
//! scratch), snapshots keep it, and a running node refuses an old key after a rotation, also
//! after restart from its log and from a checkpoint.

mod common;

use common::*;
use crossbeam::channel::unbounded;
use ed25519_zebra::SigningKey;
use std::time::Duration;
use tally_engine::genesis::Role;
use tally_engine::keys::public_key_of;
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::node::{replay_dir, Node, NodeConfig};
use tally_engine::result::ResultCode;
use tally_engine::tx::{
    TxFields, TxKind, TxRecord, ADD_BANK_ACCOUNTS_MAX, OVERDRAFT_MAX_LIMIT, ROLE_CODE_BANK,
    ROLE_CODE_CONSUMER, ROLE_CODE_MERCHANT,
};

/// A key that no account of the fixture has.
fn fresh_key(seed: u8) -> SigningKey {
    SigningKey::from([seed; 32])
}

fn public(key: &SigningKey) -> [u8; 32] {
    public_key_of(key)
}

/// 32 bytes that do not decompress to a curve point.
fn not_a_key() -> [u8; 32] {
    (1u8..)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[0] = i;
            bytes[1] = 7;
            bytes
        })
        .find(|bytes| ed25519_zebra::VerificationKey::try_from(*bytes).is_err())
        .expect("half of all encodings are not points")
}

fn signed(key: &SigningKey, fields: TxFields) -> TxRecord {
    TxRecord::signed(&fields.valid_until(VALID_UNTIL), NETWORK, key)
}

fn by(f: &Fixture, signer: u64, fields: TxFields) -> TxRecord {
    signed(&f.keys[&signer], fields)
}

fn open(f: &Fixture, id: u128, account: u64, role: u32, bank: u64, owner: &SigningKey) -> TxRecord {
    by(
        f,
        CENTRAL_BANK,
        TxFields::open_account(
            id,
            LEDGER,
            CENTRAL_BANK,
            account,
            role,
            bank,
            &public(owner),
        ),
    )
}

fn transfer(key: &SigningKey, id: u128, from: u64, to: u64, amount: u64) -> TxRecord {
    signed(key, TxFields::transfer(id, from, to, amount, LEDGER))
}

/// Runs one block of `records` and checks the codes and that the kept state root is the
/// root from scratch.
fn block(ledger: &mut Ledger, height: u64, records: &[TxRecord], expected: &[ResultCode]) {
    let results = ledger.execute_block(height, height * 1_000, records);
    assert_eq!(results, expected, "block {height}");
    assert_eq!(
        ledger.state_root(),
        ledger.state_root_from_scratch(),
        "block {height}"
    );
}

#[test]
fn opening_an_account_refuses_each_case_with_its_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let owner = fresh_key(1);
    let before = ledger.state_root();
    let mut malformed_role =
        TxFields::open_account(7, LEDGER, CENTRAL_BANK, 300, 2, 0, &public(&owner));
    malformed_role.valid_until = VALID_UNTIL;
    block(
        &mut ledger,
        1,
        &[
            // a bank's key on the issuance account
            by(
                &f,
                BANK_A,
                TxFields::open_account(
                    1,
                    LEDGER,
                    CENTRAL_BANK,
                    300,
                    ROLE_CODE_CONSUMER,
                    BANK_A,
                    &public(&owner),
                ),
            ),
            // the central bank's key on another account
            by(
                &f,
                CENTRAL_BANK,
                TxFields::open_account(
                    2,
                    LEDGER,
                    BANK_A,
                    300,
                    ROLE_CODE_CONSUMER,
                    BANK_A,
                    &public(&owner),
                ),
            ),
            // an id in use
            open(&f, 3, ALICE, ROLE_CODE_CONSUMER, BANK_A, &owner),
            // held at a merchant, and at no account at all
            open(&f, 4, 300, ROLE_CODE_CONSUMER, SHOP, &owner),
            open(&f, 5, 300, ROLE_CODE_MERCHANT, 999, &owner),
            // an unknown debit account
            by(
                &f,
                CENTRAL_BANK,
                TxFields::open_account(
                    6,
                    LEDGER,
                    999,
                    300,
                    ROLE_CODE_CONSUMER,
                    BANK_A,
                    &public(&owner),
                ),
            ),
            // role 2 (tax authority) is not opened; a key that is not a point
            by(&f, CENTRAL_BANK, malformed_role),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::open_account(
                    8,
                    LEDGER,
                    CENTRAL_BANK,
                    300,
                    ROLE_CODE_CONSUMER,
                    BANK_A,
                    &not_a_key(),
                ),
            ),
            // a bank held at a bank
            open(&f, 9, 300, ROLE_CODE_BANK, BANK_A, &owner),
        ],
        &[
            ResultCode::NotCentralBank,
            ResultCode::NotPermitted,
            ResultCode::AccountExists,
            ResultCode::HoldingBankNotOpen,
            ResultCode::HoldingBankNotOpen,
            ResultCode::UnknownDebitAccount,
            ResultCode::MalformedAccountFields,
            ResultCode::MalformedOwnerKey,
            ResultCode::MalformedAccountFields,
        ],
    );
    assert_eq!(
        ledger.state_root(),
        before,
        "a refused record changes nothing"
    );
    assert!(ledger.account(300).is_none());
    // opened, it is paid and pays with its owner's key
    block(
        &mut ledger,
        2,
        &[
            open(&f, 10, 300, ROLE_CODE_CONSUMER, BANK_A, &owner),
            f.tx(11, TxKind::Transfer, ALICE, 300, 2_000),
            transfer(&owner, 12, 300, BOB, 500),
            // another key than its owner's
            transfer(&f.keys[&ALICE], 13, 300, BOB, 1),
            open(&f, 14, 300, ROLE_CODE_CONSUMER, BANK_A, &owner),
        ],
        &[
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::NotOwner,
            ResultCode::AccountExists,
        ],
    );
    let opened = ledger.account(300).unwrap();
    assert_eq!(
        (opened.role, opened.bank, opened.balance),
        (Role::Consumer, Some(BANK_A), 1_500)
    );
    assert_eq!(opened.owner, public(&owner));
    assert_ne!(ledger.state_root(), before);
}

#[test]
fn closing_an_account_refuses_each_case_with_its_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let owner = fresh_key(2);
    block(
        &mut ledger,
        1,
        &[
            open(&f, 1, 300, ROLE_CODE_CONSUMER, BANK_A, &owner),
            // a reservation into it
            by(
                &f,
                ALICE,
                TxFields::pending_transfer(2, LEDGER, ALICE, 300, 100, 0),
            ),
        ],
        &[ResultCode::Ok, ResultCode::Ok],
    );
    let close = |id: u128, signer: u64, authority: u64, account: u64| {
        by(
            &f,
            signer,
            TxFields::close_account(id, LEDGER, authority, account),
        )
    };
    block(
        &mut ledger,
        2,
        &[
            close(10, CENTRAL_BANK, CENTRAL_BANK, ALICE),
            close(11, BANK_B, BANK_B, 300),
            close(12, BOB, BANK_A, 300),
            close(13, BANK_A, CENTRAL_BANK, 300),
            close(14, CENTRAL_BANK, CENTRAL_BANK, TAX),
            close(15, CENTRAL_BANK, CENTRAL_BANK, 999),
            close(16, BANK_A, BANK_A, 300),
        ],
        &[
            ResultCode::AccountNotEmpty,
            ResultCode::NotPermitted,
            ResultCode::NotOwner,
            ResultCode::NotCentralBank,
            ResultCode::NotPermitted,
            ResultCode::UnknownCreditAccount,
            ResultCode::AccountHasPending,
        ],
    );
    // voided, the bank that holds it closes it; then every record naming it is refused
    block(
        &mut ledger,
        3,
        &[
            by(
                &f,
                ALICE,
                TxFields::void_pending(20, LEDGER, ALICE, 300, 100, 2),
            ),
            close(21, BANK_A, BANK_A, 300),
        ],
        &[ResultCode::Ok, ResultCode::Ok],
    );
    assert!(ledger.account(300).unwrap().closed);
    block(
        &mut ledger,
        4,
        &[
            f.tx(30, TxKind::Transfer, ALICE, 300, 1),
            transfer(&owner, 31, 300, ALICE, 1),
            close(32, CENTRAL_BANK, CENTRAL_BANK, 300),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::rotate_key(33, LEDGER, 300, Some(CENTRAL_BANK), &public(&fresh_key(3))),
            ),
            signed(
                &owner,
                TxFields::rotate_key(34, LEDGER, 300, None, &public(&fresh_key(3))),
            ),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::set_limits(35, LEDGER, CENTRAL_BANK, 300, 0, Some(5)),
            ),
            open(&f, 36, 300, ROLE_CODE_CONSUMER, BANK_A, &owner),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::suspend(37, LEDGER, CENTRAL_BANK, 300),
            ),
        ],
        &[
            ResultCode::AccountClosed,
            ResultCode::AccountClosed,
            ResultCode::AccountClosed,
            ResultCode::AccountClosed,
            ResultCode::AccountClosed,
            ResultCode::AccountClosed,
            ResultCode::AccountExists,
            ResultCode::AccountClosed,
        ],
    );
}

#[test]
fn an_account_with_a_queued_payment_does_not_close() {
    // banks at zero: an interbank payment queues
    let f = Fixture::banks(2, 0);
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let close = |id: u128, account: u64| {
        by(
            &f,
            CENTRAL_BANK,
            TxFields::close_account(id, LEDGER, CENTRAL_BANK, account),
        )
    };
    block(
        &mut ledger,
        1,
        &[
            f.tx(1, TxKind::Transfer, BANK_A, BANK_A + 1, 50),
            close(2, BANK_A),
            close(3, BANK_A + 1),
        ],
        &[
            ResultCode::Queued,
            ResultCode::AccountHasQueued,
            ResultCode::AccountHasQueued,
        ],
    );
    let cancel =
        TxFields::queue_operation(TxKind::QueueCancel, 4, LEDGER, BANK_A, 1, false).unwrap();
    block(
        &mut ledger,
        2,
        &[by(&f, BANK_A, cancel), close(5, BANK_A + 1)],
        &[ResultCode::Ok, ResultCode::Ok],
    );
    // a closed bank closes none of its customers any more (and pays nothing)
    block(
        &mut ledger,
        3,
        &[close(6, BANK_A + 1)],
        &[ResultCode::AccountClosed],
    );
}

#[test]
fn a_rotated_key_replaces_the_old_one_and_each_refusal_has_its_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let (first, second) = (fresh_key(4), fresh_key(5));
    let rotate =
        |id: u128, signer: &SigningKey, account: u64, central: Option<u64>, key: &SigningKey| {
            signed(
                signer,
                TxFields::rotate_key(id, LEDGER, account, central, &public(key)),
            )
        };
    let alice = &f.keys[&ALICE];
    block(
        &mut ledger,
        1,
        &[
            rotate(1, &f.keys[&BOB], ALICE, None, &first),
            rotate(2, &f.keys[&BANK_A], ALICE, Some(CENTRAL_BANK), &first),
            rotate(3, &f.keys[&CENTRAL_BANK], ALICE, Some(BANK_A), &first),
            signed(
                &f.keys[&CENTRAL_BANK],
                TxFields::rotate_key(4, LEDGER, ALICE, Some(BANK_A), &public(&first)),
            ),
            rotate(5, alice, ALICE, None, alice),
            rotate(6, &f.keys[&CENTRAL_BANK], 999, Some(CENTRAL_BANK), &first),
            signed(
                alice,
                TxFields::rotate_key(7, LEDGER, ALICE, None, &not_a_key()),
            ),
        ],
        &[
            ResultCode::NotOwner,
            ResultCode::NotCentralBank,
            ResultCode::NotPermitted,
            ResultCode::NotPermitted,
            ResultCode::OwnerKeyUnchanged,
            ResultCode::UnknownCreditAccount,
            ResultCode::MalformedOwnerKey,
        ],
    );
    let root = ledger.state_root();
    // the owner rotates; in the same block the old key is refused from the next record on
    block(
        &mut ledger,
        2,
        &[
            transfer(alice, 10, ALICE, BOB, 1),
            rotate(11, alice, ALICE, None, &first),
            transfer(alice, 12, ALICE, BOB, 1),
            transfer(&first, 13, ALICE, BOB, 1),
        ],
        &[
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::NotOwner,
            ResultCode::Ok,
        ],
    );
    assert_ne!(
        ledger.state_root(),
        root,
        "the owner key is in the account's leaf"
    );
    // after a compromise the central bank rotates it
    block(
        &mut ledger,
        3,
        &[
            rotate(
                20,
                &f.keys[&CENTRAL_BANK],
                ALICE,
                Some(CENTRAL_BANK),
                &second,
            ),
            transfer(&first, 21, ALICE, BOB, 1),
            transfer(&second, 22, ALICE, BOB, 1),
        ],
        &[ResultCode::Ok, ResultCode::NotOwner, ResultCode::Ok],
    );
    assert_eq!(ledger.account(ALICE).unwrap().owner, public(&second));
    // the central bank's own key rotates too: its old key signs nothing more
    let central = fresh_key(6);
    block(
        &mut ledger,
        4,
        &[
            rotate(30, &f.keys[&CENTRAL_BANK], CENTRAL_BANK, None, &central),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::pledge(31, LEDGER, CENTRAL_BANK, BANK_A, 5),
            ),
            signed(
                &central,
                TxFields::pledge(32, LEDGER, CENTRAL_BANK, BANK_A, 5),
            ),
        ],
        &[ResultCode::Ok, ResultCode::NotCentralBank, ResultCode::Ok],
    );
}

#[test]
fn limits_change_and_each_refusal_has_its_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let limits = |id: u128, signer: u64, account: u64, overdraft: u64, max: Option<u64>| {
        by(
            &f,
            signer,
            TxFields::set_limits(id, LEDGER, CENTRAL_BANK, account, overdraft, max),
        )
    };
    block(
        &mut ledger,
        1,
        &[
            limits(1, BANK_A, ALICE, 0, Some(50_000)),
            limits(2, CENTRAL_BANK, CENTRAL_BANK, 0, None),
            limits(3, CENTRAL_BANK, OBSERVER, 10, None),
            limits(4, CENTRAL_BANK, BANK_A, 0, Some(5)),
            // Alice holds 10_000: a maximum below it is refused
            limits(5, CENTRAL_BANK, ALICE, 0, Some(5_000)),
            limits(6, CENTRAL_BANK, 999, 0, None),
            limits(7, CENTRAL_BANK, ALICE, OVERDRAFT_MAX_LIMIT + 1, None),
            // Bob (500) may go 1_000 below zero, and goes 700 below
            limits(8, CENTRAL_BANK, BOB, 1_000, None),
            f.tx(9, TxKind::Transfer, BOB, ALICE, 1_200),
        ],
        &[
            ResultCode::NotCentralBank,
            // issuance names itself: no limit of its own
            ResultCode::MalformedSameAccount,
            ResultCode::NotPermitted,
            ResultCode::NotPermitted,
            ResultCode::LimitBelowUse,
            ResultCode::UnknownCreditAccount,
            ResultCode::MalformedAccountFields,
            ResultCode::Ok,
            ResultCode::Ok,
        ],
    );
    assert_eq!(ledger.balance(BOB), Some(-700));
    block(
        &mut ledger,
        2,
        &[
            // less overdraft than Bob uses
            limits(10, CENTRAL_BANK, BOB, 500, None),
            limits(11, CENTRAL_BANK, BOB, 700, None),
            // Alice (11_200) capped at 12_000: a credit past it is refused
            limits(12, CENTRAL_BANK, ALICE, 0, Some(12_000)),
            f.tx(13, TxKind::Transfer, BANK_A, ALICE, 800),
            f.tx(14, TxKind::Transfer, BANK_A, ALICE, 1),
        ],
        &[
            ResultCode::LimitBelowUse,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::BalanceLimitExceeded,
        ],
    );
    let alice = ledger.account(ALICE).unwrap();
    assert_eq!(
        (
            alice.balance_max,
            ledger.account(BOB).unwrap().overdraft_max
        ),
        (Some(12_000), 700)
    );
}

#[test]
fn a_bank_joins_with_its_customers_and_each_refusal_has_its_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let key = fresh_key(7);
    let add = |id: u128, signer: u64, bank: u64, customers: Option<(u64, u32, u32)>| {
        by(
            &f,
            signer,
            TxFields::add_bank(id, LEDGER, CENTRAL_BANK, bank, &public(&key), customers),
        )
    };
    block(
        &mut ledger,
        1,
        &[
            add(1, BANK_A, 20, None),
            add(2, CENTRAL_BANK, BANK_B, None),
            // a customer id in use (Alice)
            add(3, CENTRAL_BANK, 20, Some((90, 20, ROLE_CODE_CONSUMER))),
            add(
                4,
                CENTRAL_BANK,
                20,
                Some((5_000, ADD_BANK_ACCOUNTS_MAX + 1, ROLE_CODE_CONSUMER)),
            ),
            add(5, CENTRAL_BANK, 20, Some((15, 10, ROLE_CODE_CONSUMER))),
            add(6, CENTRAL_BANK, 20, Some((5_000, 10, ROLE_CODE_BANK))),
        ],
        &[
            ResultCode::NotCentralBank,
            ResultCode::AccountExists,
            ResultCode::AccountExists,
            ResultCode::MalformedAccountFields,
            ResultCode::MalformedAccountFields,
            ResultCode::MalformedAccountFields,
        ],
    );
    let accounts = ledger.accounts().len();
    // a hundred customers: a run of the account index; then a merchant opened at the bank
    let merchant = fresh_key(8);
    block(
        &mut ledger,
        2,
        &[
            add(10, CENTRAL_BANK, 20, Some((5_000, 100, ROLE_CODE_CONSUMER))),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::pledge(11, LEDGER, CENTRAL_BANK, 20, 10_000),
            ),
            transfer(&key, 12, 20, 5_000, 300),
            transfer(&key, 13, 5_000, 5_099, 100),
            open(&f, 14, 400, ROLE_CODE_MERCHANT, 20, &merchant),
            transfer(&key, 15, 5_099, 400, 40),
            add(16, CENTRAL_BANK, 21, Some((5_050, 1, ROLE_CODE_MERCHANT))),
        ],
        &[
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::AccountExists,
        ],
    );
    assert_eq!(ledger.accounts().len(), accounts + 102);
    assert_eq!(ledger.balance(5_000), Some(200));
    assert_eq!(ledger.balance(5_099), Some(60));
    assert_eq!(ledger.balance(400), Some(40));
    assert_eq!(ledger.account(5_050).unwrap().bank, Some(20));
    assert_eq!(ledger.sum_of_balances(), ledger.recount_balances());
}

/// Blocks that use every lifecycle kind.
fn lifecycle_blocks(f: &Fixture) -> Vec<Vec<TxRecord>> {
    let (owner, bank_key, rotated) = (fresh_key(9), fresh_key(10), fresh_key(11));
    vec![
        vec![open(f, 1, 300, ROLE_CODE_CONSUMER, BANK_A, &owner)],
        vec![f.tx(2, TxKind::Transfer, ALICE, 300, 700)],
        vec![by(
            f,
            CENTRAL_BANK,
            TxFields::add_bank(
                3,
                LEDGER,
                CENTRAL_BANK,
                30,
                &public(&bank_key),
                Some((7_000, 70, ROLE_CODE_MERCHANT)),
            ),
        )],
        vec![by(
            f,
            CENTRAL_BANK,
            TxFields::set_limits(4, LEDGER, CENTRAL_BANK, 300, 100, Some(900)),
        )],
        vec![signed(
            &owner,
            TxFields::rotate_key(5, LEDGER, 300, None, &public(&rotated)),
        )],
        vec![transfer(&rotated, 6, 300, ALICE, 700)],
        vec![by(
            f,
            CENTRAL_BANK,
            TxFields::close_account(7, LEDGER, CENTRAL_BANK, 300),
        )],
    ]
}

#[test]
fn every_change_is_in_the_state_root_alike_on_two_ledgers_and_kept_by_snapshots() {
    let f = Fixture::new();
    let (mut first, mut second) = (
        Ledger::from_genesis(&f.genesis),
        Ledger::from_genesis(&f.genesis),
    );
    let mut roots = vec![first.state_root()];
    for (height, records) in lifecycle_blocks(&f).iter().enumerate() {
        let height = height as u64 + 1;
        let results = first.execute_block(height, height * 1_000, records);
        assert!(
            results.iter().all(|code| *code == ResultCode::Ok),
            "block {height}: {results:?}"
        );
        assert_eq!(
            second.execute_block(height, height * 1_000, records),
            results
        );
        let root = first.state_root();
        assert_eq!(root, second.state_root(), "block {height}");
        assert_eq!(root, first.state_root_from_scratch(), "block {height}");
        assert!(!roots.contains(&root), "block {height} changed the root");
        roots.push(root);
        // a snapshot after every block restores the same state
        let point = SnapshotPoint {
            height,
            last_block_hash: [height as u8; 32],
        };
        let (restored, _) =
            Ledger::restore(&first.snapshot(&f.genesis.hash(), point), &f.genesis.hash()).unwrap();
        assert_eq!(restored.state_root(), root, "block {height}");
        assert_eq!(restored.accounts(), first.accounts(), "block {height}");
    }
    // the restored ledger goes on alike: the closed account refuses, the added bank's
    // customers answer
    let point = SnapshotPoint {
        height: 7,
        last_block_hash: [7; 32],
    };
    let (mut restored, _) =
        Ledger::restore(&first.snapshot(&f.genesis.hash(), point), &f.genesis.hash()).unwrap();
    let next = [
        f.tx(20, TxKind::Transfer, ALICE, 300, 1),
        transfer(&fresh_key(10), 21, 30, 7_069, 1),
    ];
    let results = first.execute_block(8, 8_000, &next);
    assert_eq!(
        results,
        vec![ResultCode::AccountClosed, ResultCode::InsufficientFunds]
    );
    assert_eq!(restored.execute_block(8, 8_000, &next), results);
    assert_eq!(restored.state_root(), first.state_root());
}

fn node_config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir.to_path_buf());
    config.mempool_tx_max = 1_024;
    config.checkpoint_interval_blocks = 2;
    config.checkpoint_interval_ms = 0;
    config.checkpoint_log_bytes = 0;
    config
}

/// Submits `records` one at a time, each waiting for its answer: the codes.
fn run(node: &Node, records: &[TxRecord]) -> Vec<ResultCode> {
    let handle = node.handle();
    let (reply, acks) = unbounded();
    records
        .iter()
        .map(|record| {
            handle.submit(std::slice::from_ref(record), &reply).unwrap();
            acks.recv_timeout(Duration::from_secs(30))
                .expect("answered")
                .code
        })
        .collect()
}

#[test]
fn a_running_node_refuses_the_old_key_and_keeps_every_change_across_restarts() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path());
    let (alice, new, bank_key) = (&f.keys[&ALICE], fresh_key(12), fresh_key(16));
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    assert_eq!(
        run(
            &node,
            &[
                transfer(alice, 1, ALICE, BOB, 1),
                signed(
                    alice,
                    TxFields::rotate_key(2, LEDGER, ALICE, None, &public(&new))
                ),
                transfer(alice, 3, ALICE, BOB, 1),
                transfer(&new, 4, ALICE, BOB, 1),
                open(&f, 5, 300, ROLE_CODE_CONSUMER, BANK_A, &new),
                transfer(&new, 6, ALICE, 300, 10),
                // the other kinds, to be found again after restart
                by(
                    &f,
                    CENTRAL_BANK,
                    TxFields::set_limits(7, LEDGER, CENTRAL_BANK, 300, 0, Some(12))
                ),
                open(&f, 8, 301, ROLE_CODE_MERCHANT, BANK_A, &new),
                by(
                    &f,
                    CENTRAL_BANK,
                    TxFields::close_account(9, LEDGER, CENTRAL_BANK, 301)
                ),
                by(
                    &f,
                    CENTRAL_BANK,
                    TxFields::add_bank(
                        30,
                        LEDGER,
                        CENTRAL_BANK,
                        20,
                        &public(&bank_key),
                        Some((5_000, 10, ROLE_CODE_CONSUMER))
                    )
                ),
                by(
                    &f,
                    CENTRAL_BANK,
                    TxFields::pledge(31, LEDGER, CENTRAL_BANK, 20, 100)
                ),
            ]
        ),
        [
            [ResultCode::Ok, ResultCode::Ok, ResultCode::NotOwner].as_slice(),
            &[ResultCode::Ok; 8],
        ]
        .concat()
    );
    let first = node.shutdown();
    assert_eq!(first.fatal, None);
    // restarted from its newest checkpoint (every second block) and the log after it
    let node = Node::start(&f.genesis, config.clone()).unwrap();
    assert_eq!(
        run(
            &node,
            &[
                transfer(alice, 10, ALICE, BOB, 1),
                transfer(&new, 11, ALICE, BOB, 1),
                transfer(&new, 12, 300, BOB, 1),
                // the limit, the closure and the added bank survived
                transfer(&new, 13, ALICE, 300, 4),
                transfer(&new, 14, ALICE, 301, 1),
                transfer(&bank_key, 15, 20, 5_009, 30),
            ]
        ),
        vec![
            ResultCode::NotOwner,
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::BalanceLimitExceeded,
            ResultCode::AccountClosed,
            ResultCode::Ok,
        ]
    );
    let second = node.shutdown();
    // the whole log replayed without checkpoints gives the same state
    std::fs::remove_dir_all(tally_engine::node::checkpoints_dir(&config)).unwrap();
    let replayed = replay_dir(&f.genesis, &config).unwrap();
    assert_eq!(replayed.ledger.state_root(), second.state_root);
    assert_eq!(replayed.ledger.account(ALICE).unwrap().owner, public(&new));
    assert_eq!(replayed.ledger.balance(300), Some(9));
    assert!(replayed.ledger.account(301).unwrap().closed);
    assert_eq!(replayed.ledger.balance(5_009), Some(30));
    assert_eq!(replayed.ledger.account(300).unwrap().balance_max, Some(12));
    let node = Node::start(&f.genesis, config).unwrap();
    assert_eq!(
        run(
            &node,
            &[
                transfer(alice, 20, ALICE, BOB, 1),
                transfer(&new, 21, ALICE, BOB, 1)
            ]
        ),
        vec![ResultCode::NotOwner, ResultCode::Ok]
    );
    node.shutdown();
}

#[test]
fn the_client_ports_directory_follows_opened_and_rekeyed_accounts() {
    use std::sync::Arc;
    use tally_engine::net::access::{Directory, Scope};
    use tally_pki::{Access, Holder};
    let f = Fixture::new();
    let holder = |name: &str, key: [u8; 32]| Holder {
        name: name.into(),
        access: Access::Bank,
        network_id: NETWORK,
        serial: "01".into(),
        signers: vec![key],
        hosts: Vec::new(),
        not_after: std::time::SystemTime::now(),
    };
    let (alice, new_alice, bank_key) = (&f.keys[&ALICE], fresh_key(13), fresh_key(14));
    let mut ledger = Ledger::from_genesis(&f.genesis);
    block(
        &mut ledger,
        1,
        &[
            signed(
                alice,
                TxFields::rotate_key(1, LEDGER, ALICE, None, &public(&new_alice)),
            ),
            by(
                &f,
                CENTRAL_BANK,
                TxFields::add_bank(
                    2,
                    LEDGER,
                    CENTRAL_BANK,
                    20,
                    &public(&bank_key),
                    Some((5_000, 100, ROLE_CODE_CONSUMER)),
                ),
            ),
            open(&f, 3, 300, ROLE_CODE_CONSUMER, BANK_A, &fresh_key(15)),
        ],
        &[ResultCode::Ok, ResultCode::Ok, ResultCode::Ok],
    );
    let applied = Arc::new(Directory::from_genesis(&f.genesis));
    let old_key = Scope::new(&holder("alice-old", public(alice)), &applied);
    assert!(old_key.covers(ALICE), "before the block is applied");
    applied.apply(ledger.block_access_changes());
    // a restarted node seeds the same from its recovered ledger
    let seeded = Arc::new(Directory::from_genesis(&f.genesis));
    seeded.seed(&ledger);
    for directory in [&applied, &seeded] {
        let scope = |name: &str, key: [u8; 32]| Scope::new(&holder(name, key), directory);
        let (old, new) = (
            scope("alice-old", public(alice)),
            scope("alice-new", public(&new_alice)),
        );
        assert!(
            !old.covers(ALICE),
            "the rotated-out key covers the account no more"
        );
        assert!(new.covers(ALICE));
        let record = transfer(&new_alice, 9, ALICE, BOB, 1);
        assert!(new.may_submit(std::slice::from_ref(&record)).is_ok());
        assert!(old.may_submit(&[record]).is_err());
        let bank_a = scope("bank-a", public(&f.keys[&BANK_A]));
        assert!(
            bank_a.covers(ALICE) && bank_a.covers(300),
            "its customers, old and new"
        );
        assert!(!bank_a.covers(5_000));
        let added = scope("bank-20", public(&bank_key));
        for account in [20, 5_000, 5_099] {
            assert!(added.covers(account), "{account}");
        }
        assert!(!added.covers(5_100) && !added.covers(ALICE));
    }
}
