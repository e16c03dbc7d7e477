//! Certificate revocations (kind 14) on the ledger: only the central bank's key on its issuance
//! account revokes, each refusal has its own code, the revocation list is part of the state
//! root and of snapshots, and the genesis may start it.

mod common;

use common::*;
use tally_engine::ledger::{Ledger, SnapshotPoint};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxFields, TxRecord};

const SERIAL: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn revocation(f: &Fixture, id: u128, signer: u64, debit: u64, serial: &str) -> TxRecord {
    let fields = TxFields::revoke_certificate(id, LEDGER, debit, serial)
        .unwrap()
        .valid_until(VALID_UNTIL);
    f.signed_by(signer, &fields)
}

#[test]
fn only_the_central_bank_revokes_and_each_refusal_has_its_code() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    let before = ledger.state_root();
    let results = ledger.execute_block(
        1,
        1_000,
        &[
            // a bank, on its own account, with its own key
            revocation(&f, 1, BANK_A, BANK_A, SERIAL),
            // the central bank's key on another account than its issuance account
            revocation(&f, 2, CENTRAL_BANK, BANK_A, SERIAL),
            // the issuance account signed by someone else
            revocation(&f, 3, BANK_A, CENTRAL_BANK, SERIAL),
            revocation(&f, 4, CENTRAL_BANK, CENTRAL_BANK, SERIAL),
            revocation(&f, 5, CENTRAL_BANK, CENTRAL_BANK, SERIAL),
        ],
    );
    assert_eq!(
        results,
        vec![
            ResultCode::NotCentralBank,
            ResultCode::NotPermitted,
            ResultCode::NotCentralBank,
            ResultCode::Ok,
            ResultCode::CertificateAlreadyRevoked,
        ]
    );
    let serial = hex::decode(SERIAL).unwrap();
    assert!(ledger.is_revoked(&serial));
    assert_eq!(ledger.block_revocations(), std::slice::from_ref(&serial));
    assert_ne!(
        ledger.state_root(),
        before,
        "the state root commits the list"
    );
    assert_eq!(ledger.state_root(), ledger.state_root_from_scratch());
    // the next block revokes nothing new
    ledger.execute_block(2, 2_000, &[]);
    assert!(ledger.block_revocations().is_empty());
    assert!(ledger.is_revoked(&serial));
    // a malformed serial (a leading zero byte) has its own code
    let mut fields = TxFields::revoke_certificate(6, LEDGER, CENTRAL_BANK, "ab")
        .unwrap()
        .valid_until(VALID_UNTIL);
    fields.reference <<= 8;
    fields.category = 2;
    let malformed = f.signed_by(CENTRAL_BANK, &fields);
    assert_eq!(
        ledger.execute_block(3, 3_000, &[malformed]),
        vec![ResultCode::MalformedRevocationSerial]
    );
}

#[test]
fn snapshots_keep_the_revocation_list_and_the_genesis_may_start_it() {
    let f = Fixture::new();
    let mut ledger = Ledger::from_genesis(&f.genesis);
    ledger.execute_block(
        1,
        1_000,
        &[revocation(&f, 1, CENTRAL_BANK, CENTRAL_BANK, SERIAL)],
    );
    let point = SnapshotPoint {
        height: 1,
        last_block_hash: [3; 32],
    };
    let bytes = ledger.snapshot(&f.genesis.hash(), point);
    let (mut restored, _) = Ledger::restore(&bytes, &f.genesis.hash()).expect("restores");
    assert_eq!(restored.state_root(), ledger.state_root());
    assert_eq!(restored.revoked_serials(), ledger.revoked_serials());
    // both refuse the same serial again alike
    for l in [&mut ledger, &mut restored] {
        assert_eq!(
            l.execute_block(
                2,
                2_000,
                &[revocation(&f, 2, CENTRAL_BANK, CENTRAL_BANK, SERIAL)]
            ),
            vec![ResultCode::CertificateAlreadyRevoked]
        );
    }
    assert_eq!(restored.state_root(), ledger.state_root());

    // A genesis's list starts the ledger's (hex as `tally pki show` prints it).
    let mut genesis = f.genesis.clone();
    genesis.revoked = vec![SERIAL.to_uppercase(), "ff".into()];
    genesis.validate().expect("a valid genesis");
    let seeded = Ledger::from_genesis(&genesis);
    assert!(seeded.is_revoked(&hex::decode(SERIAL).unwrap()));
    assert!(seeded.is_revoked(&[0xff]));
    assert_ne!(
        seeded.state_root(),
        Ledger::from_genesis(&f.genesis).state_root()
    );
    let mut seeded = seeded;
    assert_eq!(
        seeded.execute_block(
            1,
            1_000,
            &[revocation(&f, 1, CENTRAL_BANK, CENTRAL_BANK, "ff")]
        ),
        vec![ResultCode::CertificateAlreadyRevoked]
    );
    // a genesis naming a serial twice, or one that is not hex, names the field
    for bad in [vec!["ff".to_string(), "00ff".into()], vec!["xyz".into()]] {
        let mut genesis = f.genesis.clone();
        genesis.revoked = bad;
        let error = genesis.validate().unwrap_err().to_string();
        assert!(error.contains("revoked["), "{error}");
    }
}
