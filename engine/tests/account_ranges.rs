//! Account ranges of the genesis: a million bank customers opened in one line, each account
//! as real as one named alone (balance, owner, state root), debited only with its bank's
//! key, and covered by its bank's certificate only.

mod common;

use common::*;
use std::time::SystemTime;
use tally_engine::genesis::{AccountRangeSpec, Role};
use tally_engine::ledger::Ledger;
use tally_engine::net::access::{Directory, Scope};
use tally_engine::result::ResultCode;
use tally_engine::tx::TxKind;
use tally_pki::{Access, Holder};

const FIRST: u64 = 5_000_000;
const COUNT: u64 = 1_000_000;

fn fixture() -> Fixture {
    let mut fixture = Fixture::banks(2, 1_000_000);
    let owner = fixture.genesis.accounts[3].owner.clone(); // BANK_A's key
    assert_eq!(fixture.genesis.accounts[3].id, BANK_A);
    fixture.genesis.account_ranges = vec![AccountRangeSpec {
        first_id: FIRST,
        count: COUNT,
        role: Role::Consumer,
        bank: BANK_A,
        owner,
        balance: 100,
        balance_max: None,
    }];
    fixture.genesis.validate().unwrap();
    fixture
}

#[test]
fn a_range_opens_real_accounts_debited_by_their_banks_key() {
    let f = fixture();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    assert_eq!(ledger.accounts().len() as u64, 5 + COUNT);
    let last = ledger.account(FIRST + COUNT - 1).unwrap();
    assert_eq!(
        (last.balance, last.bank, last.role),
        (100, Some(BANK_A), Role::Consumer)
    );
    assert!(ledger.account(FIRST + COUNT).is_none());
    assert_eq!(
        ledger.sum_of_balances(),
        2 * 1_000_000 + 100 * i128::from(COUNT)
    );
    // the tree a node builds at start (its lower levels on their own mappings at this size)
    // gives the root of every leaf, before and after a block
    ledger.build_state_tree();
    assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
    let (a, b) = (FIRST + 1, FIRST + COUNT - 2);
    let fields = |id| f.fields(id, TxKind::Transfer, a, b, 40);
    let results = ledger.execute_block(
        1,
        1_000,
        &[
            // the bank signs for its customer
            f.signed_by(BANK_A, &fields(1)),
            // another bank's key does not
            f.signed_by(BANK_B, &fields(2)),
        ],
    );
    assert_eq!(results, vec![ResultCode::Ok, ResultCode::NotOwner]);
    assert_eq!(ledger.balance(a), Some(60));
    assert_eq!(ledger.balance(b), Some(140));
    assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
}

#[test]
fn a_range_is_covered_by_its_banks_certificate_only() {
    let f = fixture();
    let directory = std::sync::Arc::new(Directory::from_genesis(&f.genesis));
    let holder = |name: &str, signer: u64| Holder {
        name: name.into(),
        access: Access::Bank,
        network_id: NETWORK,
        serial: "01".into(),
        signers: vec![tally_engine::keys::public_key_of(&f.keys[&signer])],
        hosts: Vec::new(),
        not_after: SystemTime::now(),
    };
    let bank_a = Scope::new(&holder("bank-a", BANK_A), &directory);
    let bank_b = Scope::new(&holder("bank-b", BANK_B), &directory);
    for account in [FIRST, FIRST + COUNT / 2, FIRST + COUNT - 1] {
        assert!(bank_a.covers(account), "{account}");
        assert!(!bank_b.covers(account), "{account}");
    }
    assert!(!bank_a.covers(FIRST + COUNT));
    assert!(!bank_a.covers(FIRST - 1));
    let record = f.signed_by(BANK_A, &f.fields(1, TxKind::Transfer, FIRST, BANK_B, 1));
    assert!(bank_a.may_submit(std::slice::from_ref(&record)).is_ok());
    let refused = bank_b.may_submit(&[record]).unwrap_err();
    assert!(refused.contains("does not cover"), "{refused}");
}
