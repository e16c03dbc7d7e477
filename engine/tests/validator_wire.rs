//! Validator messages and the consensus state file: round trips, a specific error for each
//! malformed shape, and no panic on hostile bytes (seeded; the cargo-fuzz target
//! `net_decode` covers the same decoders without a bound).

mod common;

use common::*;
use proptest::prelude::*;
use tally_engine::block::{self, BlockHeader, BLOCK_HEADER_BYTES, BLOCK_MAGIC};
use tally_engine::consensus::{Body, PersistentState, SignedMessage, Step, VoteKind};
use tally_engine::tx::{TxKind, TX_BYTES};
use tally_engine::validator::state_file;
use tally_engine::validator::wire::{self, PeerMessage, ProposalBody, WireError};

fn body(count: u128) -> ProposalBody {
    let f = Fixture::new();
    let records: Vec<_> = (1..=count)
        .map(|id| f.tx(id, TxKind::Transfer, ALICE, BOB, 1))
        .collect();
    let header = BlockHeader {
        magic: BLOCK_MAGIC,
        height: 7u64.to_le_bytes(),
        timestamp_ms: 1_000u64.to_le_bytes(),
        tx_count: (records.len() as u32).to_le_bytes(),
        proposer: 2u32.to_le_bytes(),
        network_id: NETWORK.to_le_bytes(),
        previous_hash: [9; 32],
        tx_root: block::tx_root(&records),
        results_hash: [0; 32],
        state_root: [0; 32],
    };
    ProposalBody { header, records }
}

fn vote(round: u32) -> SignedMessage {
    let key = ed25519_zebra::SigningKey::from([3u8; 32]);
    SignedMessage::sign(
        Body::Vote {
            kind: VoteKind::Prevote,
            height: 7,
            round,
            value: Some([1; 32]),
        },
        NETWORK,
        &key,
    )
}

#[test]
fn a_proposal_body_round_trips_and_its_id_ignores_execution_results() {
    let original = body(5);
    let decoded = match wire::decode(wire::KIND_PROPOSAL_BODY, &original.encode()).unwrap() {
        PeerMessage::Proposal(decoded) => decoded,
        other => panic!("decoded as {other:?}"),
    };
    assert_eq!(decoded.records, original.records);
    assert_eq!(decoded.id(), original.id());
    // The executed header (results and state root filled in) has the same proposal id.
    let mut executed = original.header;
    executed.results_hash = [4; 32];
    executed.state_root = [5; 32];
    assert_eq!(block::proposal_id(&executed), original.id());
    // Every field known before execution changes the id.
    let mut other = original.header;
    other.timestamp_ms = 1_001u64.to_le_bytes();
    assert_ne!(block::proposal_id(&other), original.id());
}

#[test]
fn each_malformed_validator_message_gets_its_own_error() {
    let good = body(3).encode();
    let error = |kind: u8, bytes: &[u8]| wire::decode(kind, bytes).unwrap_err();
    assert!(matches!(
        error(wire::KIND_PROPOSAL_BODY, &good[..100]),
        WireError::Length { .. }
    ));
    assert!(matches!(
        error(wire::KIND_PROPOSAL_BODY, &good[..good.len() - 1]),
        WireError::Length { .. }
    ));
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 1;
    assert_eq!(
        error(wire::KIND_PROPOSAL_BODY, &bad_magic),
        WireError::Proposal("header magic is wrong".into())
    );
    let mut altered_record = good.clone();
    altered_record[BLOCK_HEADER_BYTES + 40] ^= 1;
    assert!(
        matches!(error(wire::KIND_PROPOSAL_BODY, &altered_record), WireError::Proposal(m) if m.contains("transaction root"))
    );
    let mut executed = good.clone();
    executed[BLOCK_HEADER_BYTES - 1] = 1; // state root byte
    assert!(
        matches!(error(wire::KIND_PROPOSAL_BODY, &executed), WireError::Proposal(m) if m.contains("must be zero"))
    );
    assert!(matches!(
        error(wire::KIND_CONSENSUS, &vote(0).encode()[..100]),
        WireError::Length { .. }
    ));
    let mut forged_kind = vote(0).encode();
    forged_kind[0] = 0xEE;
    assert!(matches!(
        error(wire::KIND_CONSENSUS, &forged_kind),
        WireError::Consensus(_)
    ));
    assert!(matches!(
        error(wire::KIND_TRANSACTIONS, &[0; TX_BYTES + 1]),
        WireError::Length { .. }
    ));
    assert!(matches!(
        error(wire::KIND_TRANSACTIONS, &[0; TX_BYTES]),
        WireError::Record { index: 0, .. }
    ));
    assert!(matches!(
        error(wire::KIND_SYNC_REQUEST, &[0; 7]),
        WireError::Length { .. }
    ));
    assert!(matches!(
        error(wire::KIND_SYNC_BLOCK, &good),
        WireError::Proposal(m) if m.contains("sync block")
    ));
    assert_eq!(error(0x7F, &[]), WireError::UnknownType(0x7F));
}

#[test]
fn a_block_entry_carries_its_certificate_section_and_refuses_a_damaged_one() {
    let proposal = body(2);
    let mut header = proposal.header;
    let codes = [0u8, 15];
    header.results_hash = block::results_hash(&codes);
    let mut entry = Vec::new();
    block::encode_entry(&header, &proposal.records, &codes, &mut entry);
    let plain = entry.clone();
    block::append_certificate(b"certificate bytes", &mut entry);
    assert_eq!(
        block::decode_entry(&entry).unwrap().certificate,
        Some(&b"certificate bytes"[..])
    );
    assert_eq!(block::decode_entry(&plain).unwrap().certificate, None);
    let mut cut = entry.clone();
    cut.truncate(entry.len() - 8);
    assert!(matches!(
        block::decode_entry(&cut),
        Err(block::BlockDecodeError::BadCertificateSection(_))
    ));
    let mut bad_magic = entry.clone();
    bad_magic[plain.len()] ^= 1;
    assert!(matches!(
        block::decode_entry(&bad_magic),
        Err(block::BlockDecodeError::BadCertificateSection(_))
    ));
}

#[test]
fn the_consensus_state_file_round_trips_and_names_damage() {
    let state = PersistentState {
        height: 12,
        started: true,
        round: 3,
        step: Step::Precommit,
        locked: Some(([7; 32], 2)),
        valid: Some(([7; 32], 2)),
        own_messages: vec![vote(3)],
        polka_messages: vec![vote(2), vote(1)],
    };
    let bytes = state_file::encode(&state);
    assert_eq!(state_file::decode(&bytes).unwrap(), state);
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        state_file::decode(&flipped).unwrap_err(),
        "checksum does not match"
    );
    assert!(state_file::decode(&bytes[..30]).is_err());

    // Two slots written in turn; the newest intact one is read back.
    let dir = tempfile::tempdir().unwrap();
    let ops = std::sync::Arc::new(tally_engine::log::OsFileOps);
    let (mut writer, found) = state_file::StateFile::open(dir.path(), ops.clone()).unwrap();
    assert_eq!(found, None);
    let mut later = state.clone();
    later.round = 4;
    writer.write(&state).unwrap();
    writer.write(&later).unwrap();
    assert_eq!(state_file::read(dir.path()).unwrap(), Some(later.clone()));
    // A write torn by a crash damages only its slot: the previous state is read.
    let newest = state_file::slot_path(dir.path(), 1);
    let torn = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &torn[..torn.len() / 2]).unwrap();
    assert_eq!(state_file::read(dir.path()).unwrap(), Some(state.clone()));
    // A writer reopened after it continues in the damaged slot, and wins again.
    let (mut writer, found) = state_file::StateFile::open(dir.path(), ops).unwrap();
    assert_eq!(found, Some(state.clone()));
    writer.write(&later).unwrap();
    assert_eq!(state_file::read(dir.path()).unwrap(), Some(later));
    // The first write ever, torn (the only slot): nothing was durable before, so no state.
    let first = tempfile::tempdir().unwrap();
    std::fs::write(
        state_file::slot_path(first.path(), 0),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();
    assert_eq!(state_file::read(first.path()).unwrap(), None);
    // Both slots damaged: the validator must not vote without it.
    for slot in 0..2 {
        std::fs::write(state_file::slot_path(dir.path(), slot), &flipped).unwrap();
    }
    let error = state_file::read(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("damaged") && error.contains("checksum"),
        "{error}"
    );
}

proptest! {
    #![proptest_config(proptest_config("validator_decoders_never_panic", 2_000))]
    #[test]
    fn validator_decoders_never_panic(kind in 0x40u8..=0x7F, bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        let _ = wire::decode(kind, &bytes);
        let _ = state_file::decode(&bytes);
        let _ = block::decode_entry(&bytes);
    }
}
