//! Validator votes (kind 13) on the ledger: each malformed or refused vote gets its own code,
//! a quorum of the current set adopts a change for the next epoch, votes lapse with their
//! epoch, and the schedule is part of the state root and of snapshots.

mod common;

use common::*;
use ed25519_zebra::SigningKey;
use tally_engine::genesis::Genesis;
use tally_engine::keys::public_key_of;
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFields, TxFlags, TxKind, TxRecord};
use tally_engine::validator::cluster;

const EPOCH: u64 = 4;

struct Votes {
    genesis: Genesis,
    keys: Vec<SigningKey>,
}

/// Four genesis validators (keys 0..4) and one more key (4); epochs of four heights.
fn votes_fixture(members: usize) -> Votes {
    let f = Fixture::new();
    let keys = cluster::validator_keys(members + 1, 3);
    let mut genesis = f.genesis.clone();
    cluster::set_validators(&mut genesis, &keys[..members]);
    genesis.heights_per_epoch = EPOCH;
    genesis.validate().expect("a valid genesis");
    Votes { genesis, keys }
}

impl Votes {
    fn key(&self, index: usize) -> [u8; 32] {
        public_key_of(&self.keys[index])
    }
    fn vote(&self, id: u128, voter: usize, add: bool, subject: [u8; 32]) -> TxRecord {
        self.signed(
            voter,
            &TxFields::validator_vote(id, LEDGER, add, &subject).valid_until(VALID_UNTIL),
        )
    }
    fn signed(&self, voter: usize, fields: &TxFields) -> TxRecord {
        TxRecord::signed(fields, NETWORK, &self.keys[voter])
    }
}

#[test]
fn malformed_votes_are_refused_with_their_own_codes() {
    let v = votes_fixture(4);
    let mut ledger = Ledger::from_genesis(&v.genesis);
    let add = TxFields::validator_vote(1, LEDGER, true, &v.key(4)).valid_until(VALID_UNTIL);
    let cases: Vec<(&str, TxFields, ResultCode)> = vec![
        (
            "a debit account",
            TxFields {
                debit_account: ALICE,
                ..add
            },
            ResultCode::MalformedUnexpectedDebitAccount,
        ),
        (
            "a credit account",
            TxFields {
                credit_account: BOB,
                ..add
            },
            ResultCode::MalformedUnexpectedCreditAccount,
        ),
        (
            "an amount",
            TxFields { amount: 5, ..add },
            ResultCode::MalformedUnexpectedAmount,
        ),
        (
            "category 0",
            TxFields { category: 0, ..add },
            ResultCode::MalformedUnknownValidatorChange,
        ),
        (
            "category 3",
            TxFields { category: 3, ..add },
            ResultCode::MalformedUnknownValidatorChange,
        ),
        (
            "another ledger",
            TxFields {
                ledger: LEDGER + 1,
                ..add
            },
            ResultCode::LedgerMismatch,
        ),
        // Last: a record with the linked flag opens a chain, whatever its kind.
        (
            "the linked flag",
            TxFields {
                flags: TxFlags(TxFlags::LINKED),
                ..add
            },
            ResultCode::MalformedFlagNotForKind,
        ),
    ];
    ledger.begin_block(1, 1_000);
    for (what, fields, expected) in cases {
        let code = ledger.execute(&v.signed(0, &fields));
        assert_eq!(code, expected, "a vote with {what}");
    }
    let mut results = vec![];
    ledger.end_block(&mut results);
    assert!(ledger.validator_schedule().pending().next().is_none());
    assert_eq!(TxKind::ValidatorVote as u16, 13);
}

#[test]
fn a_quorum_adopts_a_change_for_the_next_epoch_and_unadopted_votes_lapse() {
    let v = votes_fixture(4);
    let mut ledger = Ledger::from_genesis(&v.genesis);
    let mut untouched = Ledger::from_genesis(&v.genesis);
    let newcomer = v.key(4);
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;

    // Block 1: two votes for the newcomer and every refusal.
    let block = [
        v.vote(1, 0, true, newcomer),
        v.vote(2, 1, true, newcomer),
        v.vote(3, 1, true, newcomer),
        v.vote(4, 4, true, newcomer),
        v.vote(5, 0, false, newcomer),
        v.vote(6, 0, true, v.key(1)),
        v.vote(7, 0, true, not_a_point),
        v.vote(1, 2, true, newcomer),
    ];
    let codes = ledger.execute_block(1, 1_000, &block);
    assert_eq!(
        codes,
        vec![
            ResultCode::Ok,
            ResultCode::Ok,
            ResultCode::ValidatorVoteAlreadyCounted,
            ResultCode::NotAValidator,
            ResultCode::ValidatorNotMember,
            ResultCode::ValidatorAlreadyMember,
            ResultCode::InvalidValidatorKey,
            ResultCode::DuplicateId,
        ]
    );
    untouched.execute_block(1, 1_000, &[]);
    // Pending votes are state: the roots differ.
    assert_ne!(ledger.state_root(), untouched.state_root());
    let pending: Vec<_> = ledger.validator_schedule().pending().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.len(), 2);

    // Block 2: the third vote is the quorum (3 of 4); not in force before the epoch ends.
    let codes = ledger.execute_block(2, 2_000, &[v.vote(8, 2, true, newcomer)]);
    assert_eq!(codes, vec![ResultCode::Ok]);
    assert_eq!(ledger.validator_schedule().next_public_keys().len(), 5);
    assert_eq!(ledger.validator_schedule().current().len(), 4);
    let codes = ledger.execute_block(3, 3_000, &[v.vote(9, 3, true, newcomer)]);
    assert_eq!(codes, vec![ResultCode::ValidatorAlreadyMember]);
    // Height 3 ends epoch 0 (heights 0..=3): the set of epoch 1 has five validators.
    let set = ledger.validator_schedule().current();
    assert_eq!(set.epoch(), 1);
    assert_eq!(set.len(), 5);
    assert_eq!(set.public_keys()[4], newcomer);
    assert_eq!(set.quorum(), 4);

    // The newcomer votes now; a removal with three of the five votes needed lapses at the
    // end of epoch 1 (height 7), and counts from zero in epoch 2.
    let remove_0 = |id: u128, voter: usize| v.vote(id, voter, false, v.key(0));
    let codes = ledger.execute_block(
        4,
        4_000,
        &[remove_0(10, 4), remove_0(11, 1), remove_0(12, 2)],
    );
    assert!(
        codes.iter().all(|code| *code == ResultCode::Ok),
        "{codes:?}"
    );
    for height in 5..=7 {
        ledger.execute_block(height, height * 1_000, &[]);
    }
    let schedule = ledger.validator_schedule();
    assert_eq!(schedule.current().epoch(), 2);
    assert_eq!(schedule.current().len(), 5);
    assert!(
        schedule.pending().next().is_none(),
        "votes lapse with their epoch"
    );
    let codes = ledger.execute_block(8, 8_000, &[remove_0(13, 1)]);
    assert_eq!(codes, vec![ResultCode::Ok]);
    assert_eq!(
        ledger
            .validator_schedule()
            .pending()
            .next()
            .unwrap()
            .1
            .len(),
        1
    );
}

#[test]
fn the_last_validator_cannot_be_removed() {
    let v = votes_fixture(1);
    let mut ledger = Ledger::from_genesis(&v.genesis);
    let codes = ledger.execute_block(
        1,
        1_000,
        &[v.vote(1, 0, false, v.key(0)), v.vote(2, 0, true, v.key(1))],
    );
    // One validator is its own quorum: the addition is adopted at once.
    assert_eq!(
        codes,
        vec![ResultCode::ValidatorSetWouldEmpty, ResultCode::Ok]
    );
    assert_eq!(ledger.validator_schedule().next_public_keys().len(), 2);
}

#[test]
fn snapshots_keep_the_schedule_and_its_pending_votes() {
    let v = votes_fixture(4);
    let mut ledger = Ledger::from_genesis(&v.genesis);
    ledger.execute_block(1, 1_000, &[v.vote(1, 0, true, v.key(4))]);
    for height in 2..=5 {
        ledger.execute_block(height, height * 1_000, &[]);
    }
    ledger.execute_block(6, 6_000, &[v.vote(2, 1, false, v.key(3))]);
    let point = SnapshotPoint {
        height: 6,
        last_block_hash: [7; 32],
    };
    let bytes = ledger.snapshot(&v.genesis.hash(), point);
    let (mut restored, _) = Ledger::restore(&bytes, &v.genesis.hash()).expect("restores");
    assert_eq!(restored.state_root(), ledger.state_root());
    assert_eq!(
        restored.validator_schedule().current(),
        ledger.validator_schedule().current()
    );
    assert_eq!(restored.validator_schedule().pending().count(), 1);
    // Both go on alike: two more votes remove validator 3 from epoch 2.
    let more = [v.vote(3, 2, false, v.key(3)), v.vote(4, 0, false, v.key(3))];
    for l in [&mut ledger, &mut restored] {
        assert_eq!(
            l.execute_block(7, 7_000, &more),
            vec![ResultCode::Ok, ResultCode::Ok]
        );
        assert_eq!(l.validator_schedule().current().len(), 3);
    }
    assert_eq!(restored.state_root(), ledger.state_root());
}
