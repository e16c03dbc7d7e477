//! Proofs that trust no node: built from a log of certified blocks (real keys, in memory),
//! verified against the genesis alone, and each forgery refused with the error of its link.

use tally_engine::consensus::{Certificate, CommitSignature};
use tally_engine::proof::sample::SampleNetwork;
use tally_engine::proof::{self, ProofError, TxProof, Verified};
use tally_engine::query::QueryError;

/// A 4-validator network with a transfer in block 3 of 4; its log, and the transfer's id.
fn four_validators() -> (SampleNetwork, tempfile::TempDir, u128) {
    let mut network = SampleNetwork::new(4, 2, 1_000, 1);
    let first = network.transfer(0, 5);
    network.push_block(&[first]);
    network.push_block(&[]);
    let records: Vec<_> = (0..7)
        .map(|i| network.transfer(i % 4, 100 + i as u64))
        .collect();
    let id = records[5].id();
    network.push_block(&records);
    let last = network.transfer(1, 9);
    network.push_block(&[last]);
    let dir = tempfile::tempdir().unwrap();
    network.write_log(dir.path()).unwrap();
    (network, dir, id)
}

fn prove(network: &SampleNetwork, dir: &tempfile::TempDir, id: u128) -> TxProof {
    let log = tally_engine::log::Log::open(dir.path(), Default::default()).unwrap();
    proof::build(
        &log,
        network.anchor.network_id,
        network.anchor.heights_per_epoch,
        id,
        None,
    )
    .unwrap()
}

/// Flips the lowest bit of the hex digit at `at`.
fn flip(text: &mut String, at: usize) {
    let digit = u8::from_str_radix(&text[at..at + 1], 16).unwrap() ^ 1;
    text.replace_range(at..at + 1, &format!("{digit:x}"));
}

fn certificate(proof: &TxProof) -> Certificate {
    Certificate::decode(&hex::decode(&proof.block.certificate).unwrap()).unwrap()
}

fn with_certificate(proof: &TxProof, certificate: &Certificate) -> TxProof {
    let mut forged = proof.clone();
    forged.block.certificate = hex::encode(certificate.encode());
    forged
}

#[test]
fn an_honest_proof_verifies_offline_and_survives_its_json_form() {
    let (network, dir, id) = four_validators();
    let proof = prove(&network, &dir, id);
    assert_eq!(proof.block.height, 3);
    assert_eq!(proof.record.leaf_index, 5);
    assert!(proof.set_changes.is_empty());
    let text = serde_json::to_string_pretty(&proof).unwrap();
    let parsed: TxProof = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, proof);
    let verified: Verified = proof::verify(&parsed, &network.anchor).unwrap();
    assert_eq!(verified.tx_id, id);
    assert_eq!(verified.height, 3);
    assert_eq!(verified.tx_count, 7);
    assert_eq!(verified.validators, 4);
    assert_eq!(verified.signers, 3);
    assert_eq!(verified.epoch, 0);
    // a named height finds it too; a height that does not hold it says so
    let log = tally_engine::log::Log::open(dir.path(), Default::default()).unwrap();
    let at = proof::build(&log, network.anchor.network_id, 1_000, id, Some(3)).unwrap();
    assert_eq!(at, proof);
    let error = proof::build(&log, network.anchor.network_id, 1_000, id, Some(2)).unwrap_err();
    assert!(
        matches!(error, QueryError::NoSuchTransaction { height: 2, .. }),
        "{error}"
    );
    let error = proof::build(&log, network.anchor.network_id, 1_000, 999_999, None).unwrap_err();
    assert!(matches!(error, QueryError::NotInLog { .. }), "{error}");
    let error = proof::build(&log, network.anchor.network_id, 1_000, id, Some(9)).unwrap_err();
    assert!(
        matches!(error, QueryError::NoSuchBlock { height: 9, last: 4 }),
        "{error}"
    );
}

#[test]
fn an_altered_record_is_refused_as_such() {
    let (network, dir, id) = four_validators();
    let mut forged = prove(&network, &dir, id);
    // the amount (bytes 32..40 of the record): the signature no longer covers the record
    flip(&mut forged.record.record, 2 * 32 + 1);
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::AlteredRecord { .. }), "{error}");
    assert!(error.to_string().starts_with("altered record"), "{error}");
    // another genuine record of the block, passed off as the one proved
    let mut forged = prove(&network, &dir, id);
    forged.tx_id += 1;
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::AlteredRecord { .. }), "{error}");
}

#[test]
fn an_altered_path_is_refused_as_such() {
    let (network, dir, id) = four_validators();
    let honest = prove(&network, &dir, id);
    let mut forged = honest.clone();
    flip(&mut forged.record.siblings[0], 7);
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(
        matches!(error, ProofError::AlteredPath { height: 3, .. }),
        "{error}"
    );
    let mut forged = honest.clone();
    forged.record.leaf_index = 4;
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::AlteredPath { .. }), "{error}");
    let mut forged = honest;
    forged.record.siblings.pop();
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::AlteredPath { .. }), "{error}");
}

#[test]
fn an_altered_header_is_refused_as_such() {
    let (network, dir, id) = four_validators();
    let honest = prove(&network, &dir, id);
    // the tx_root (bytes 72..104): a root made up to fit an altered record
    let mut forged = honest.clone();
    flip(&mut forged.block.header, 2 * 72 + 3);
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(
        matches!(error, ProofError::AlteredHeader { height: 3, .. }),
        "{error}"
    );
    // the timestamp
    let mut forged = honest.clone();
    flip(&mut forged.block.header, 2 * 16);
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::AlteredHeader { .. }), "{error}");
    // another block's header under this certificate
    let mut forged = honest;
    forged.block.height = 4;
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::AlteredHeader { .. }), "{error}");
}

#[test]
fn a_bad_certificate_signature_is_refused_as_such() {
    let (network, dir, id) = four_validators();
    let honest = prove(&network, &dir, id);
    let mut certificate = certificate(&honest);
    certificate.signatures[2].signature[10] ^= 1;
    let forged = with_certificate(&honest, &certificate);
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    match &error {
        ProofError::BadCertificateSignature { height, validator } => {
            assert_eq!(*height, 3);
            assert_eq!(*validator, hex::encode(certificate.signatures[2].validator));
        }
        other => panic!("expected a bad signature, got {other}"),
    }
}

#[test]
fn too_few_signers_are_refused_as_such() {
    let (network, dir, id) = four_validators();
    let honest = prove(&network, &dir, id);
    let mut certificate = certificate(&honest);
    certificate.signatures.truncate(2);
    let error =
        proof::verify(&with_certificate(&honest, &certificate), &network.anchor).unwrap_err();
    assert_eq!(
        error,
        ProofError::TooFewSigners {
            height: 3,
            epoch: 0,
            validators: 4,
            have: 2,
            need: 3
        }
    );
    // the same signer twice does not make a quorum
    let mut certificate = self::certificate(&honest);
    certificate.signatures.truncate(2);
    certificate.signatures.push(certificate.signatures[1]);
    let error =
        proof::verify(&with_certificate(&honest, &certificate), &network.anchor).unwrap_err();
    assert!(
        matches!(error, ProofError::DuplicateSigner { .. }),
        "{error}"
    );
}

#[test]
fn a_signer_outside_the_set_is_refused_as_a_wrong_validator_set() {
    let (network, dir, id) = four_validators();
    let honest = prove(&network, &dir, id);
    let mut certificate = certificate(&honest);
    // a valid precommit signature, by a key that is not a validator (spare key 4)
    certificate.signatures.truncate(2);
    let outsider: CommitSignature = network.sign_precommit(&certificate, 4);
    certificate.signatures.push(outsider);
    certificate.signatures.sort_by_key(|entry| entry.validator);
    let error =
        proof::verify(&with_certificate(&honest, &certificate), &network.anchor).unwrap_err();
    match &error {
        ProofError::SignerNotInSet {
            height, validator, ..
        } => {
            assert_eq!(*height, 3);
            assert_eq!(*validator, hex::encode(network.public_key(4)));
        }
        other => panic!("expected a signer outside the set, got {other}"),
    }
    assert!(
        error.to_string().starts_with("wrong validator set"),
        "{error}"
    );
    // a whole other set: a genesis whose validators are other keys
    let mut other = network.anchor.clone();
    other.validators = vec![network.public_key(4), network.public_key(5)];
    let error = proof::verify(&honest, &other).unwrap_err();
    assert!(
        matches!(
            error,
            ProofError::SignerNotInSet { .. } | ProofError::TooManySigners { .. }
        ),
        "{error}"
    );
}

#[test]
fn a_wrong_network_or_genesis_or_version_is_refused_as_such() {
    let (network, dir, id) = four_validators();
    let honest = prove(&network, &dir, id);
    let mut other = network.anchor.clone();
    other.network_id += 1;
    let error = proof::verify(&honest, &other).unwrap_err();
    assert!(
        matches!(error, ProofError::WrongNetwork { what: "proof", .. }),
        "{error}"
    );
    // a proof relabelled for that network: its header and signatures are still of the first
    let mut relabelled = honest.clone();
    relabelled.network_id = other.network_id;
    let error = proof::verify(&relabelled, &other).unwrap_err();
    assert!(
        matches!(
            error,
            ProofError::WrongNetwork {
                what: "block header",
                ..
            }
        ),
        "{error}"
    );
    let mut other = network.anchor.clone();
    other.genesis_hash[0] ^= 1;
    let error = proof::verify(&honest, &other).unwrap_err();
    assert!(matches!(error, ProofError::WrongGenesis { .. }), "{error}");
    let mut newer = honest;
    newer.version = 2;
    let error = proof::verify(&newer, &network.anchor).unwrap_err();
    assert_eq!(error, ProofError::UnsupportedVersion { found: 2 });
}

/// 4 genesis validators; in epoch 0 (heights 1 to 4) three of them vote to add spare key 4
/// and all four to remove validator 3 (the fourth vote comes after the removal was adopted
/// and is refused); from height 5 the set is {0, 1, 2, 4}, and 1, 2 and 4 sign. The proved
/// transfer is in block 7.
fn set_change() -> (SampleNetwork, tempfile::TempDir, u128) {
    let mut network = SampleNetwork::new(4, 2, 5, 2);
    let votes: Vec<_> = (0..3).map(|voter| network.vote(voter, true, 4)).collect();
    network.push_block(&votes[..2]);
    let filler = network.transfer(0, 1);
    network.push_block(&[filler, votes[2]]);
    let removals: Vec<_> = (0..4).map(|voter| network.vote(voter, false, 3)).collect();
    network.push_block(&removals);
    network.push_block(&[]);
    assert_eq!(network.current_set().epoch(), 1);
    let expected = [0, 1, 2, 4].map(|i| network.public_key(i));
    assert_eq!(network.current_set().public_keys(), &expected);
    network.push_block(&[]);
    network.push_block(&[]);
    let transfer = network.transfer(4, 77);
    let id = transfer.id();
    let filler = network.transfer(1, 2);
    network.push_block(&[filler, transfer]);
    let dir = tempfile::tempdir().unwrap();
    network.write_log(dir.path()).unwrap();
    (network, dir, id)
}

#[test]
fn a_proof_across_a_validator_set_change_carries_and_checks_the_votes() {
    let (network, dir, id) = set_change();
    let honest = prove(&network, &dir, id);
    assert_eq!(honest.block.height, 7);
    let heights: Vec<u64> = honest.set_changes.iter().map(|b| b.block.height).collect();
    assert_eq!(heights, [1, 2, 3]);
    let counts: Vec<usize> = honest.set_changes.iter().map(|b| b.votes.len()).collect();
    assert_eq!(counts, [2, 1, 3]);
    let verified = proof::verify(&honest, &network.anchor).unwrap();
    assert_eq!(verified.epoch, 1);
    assert_eq!(verified.validators, 4);
    assert_eq!(verified.vote_blocks, 3);
    assert_eq!(verified.votes, 6);
    // without the votes the verifier knows only the genesis set, and the new validator's
    // signature is outside it
    let mut forged = honest.clone();
    forged.set_changes.clear();
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(
        matches!(error, ProofError::SignerNotInSet { height: 7, .. }),
        "{error}"
    );
    // one vote short of the quorum to add key 4: not adopted, same refusal
    let mut forged = honest.clone();
    forged.set_changes.remove(1);
    let error = proof::verify(&forged, &network.anchor).unwrap_err();
    assert!(
        matches!(error, ProofError::SignerNotInSet { height: 7, .. }),
        "{error}"
    );
}

#[test]
fn a_broken_set_chain_is_refused_at_the_vote_block_that_breaks_it() {
    let (network, dir, id) = set_change();
    let honest = prove(&network, &dir, id);
    let cause = |forged: &TxProof| match proof::verify(forged, &network.anchor).unwrap_err() {
        ProofError::BrokenSetChain { height, cause } => (height, *cause),
        other => panic!("expected a broken set chain, got {other}"),
    };
    // an altered vote (its subject)
    let mut forged = honest.clone();
    flip(&mut forged.set_changes[0].votes[0].record, 2 * 80 + 1);
    let (height, error) = cause(&forged);
    assert_eq!(height, 1);
    assert!(matches!(error, ProofError::AlteredRecord { .. }), "{error}");
    // a vote block whose certificate is short of a quorum
    let mut forged = honest.clone();
    let mut certificate =
        Certificate::decode(&hex::decode(&forged.set_changes[2].block.certificate).unwrap())
            .unwrap();
    certificate.signatures.truncate(1);
    forged.set_changes[2].block.certificate = hex::encode(certificate.encode());
    let (height, error) = cause(&forged);
    assert_eq!(height, 3);
    assert!(matches!(error, ProofError::TooFewSigners { .. }), "{error}");
    // the same vote twice
    let mut forged = honest.clone();
    let repeat = forged.set_changes[0].votes[0].clone();
    forged.set_changes[0].votes.push(repeat);
    let (_, error) = cause(&forged);
    assert!(
        matches!(error, ProofError::VoteNotCounted { .. }),
        "{error}"
    );
    // vote blocks out of order
    let mut forged = honest.clone();
    forged.set_changes.swap(0, 1);
    let (_, error) = cause(&forged);
    assert!(
        matches!(error, ProofError::VoteNotCounted { .. }),
        "{error}"
    );
    // a record that is not a vote, passed off as one
    let mut forged = honest;
    let block_2 = prove(&network, &dir, 4); // the filler transfer of block 2 (id 4)
    assert_eq!(block_2.block.height, 2);
    forged.set_changes[1].votes[0] = block_2.record;
    let (_, error) = cause(&forged);
    assert!(
        matches!(error, ProofError::VoteNotCounted { .. }),
        "{error}"
    );
}

#[test]
fn a_single_nodes_log_without_certificates_proves_nothing() {
    let mut network = SampleNetwork::new(1, 0, 1_000, 3);
    let transfer = network.transfer(0, 5);
    let id = transfer.id();
    network.push_uncertified_block(&[transfer]);
    let dir = tempfile::tempdir().unwrap();
    let log = network.write_log(dir.path()).unwrap();
    let error = proof::build(&log, network.anchor.network_id, 1_000, id, None).unwrap_err();
    assert!(
        matches!(error, QueryError::NoCertificate { height: 1 }),
        "{error}"
    );
    assert!(
        error.to_string().contains("carries no commit certificate"),
        "{error}"
    );
}

#[test]
fn a_proof_beyond_its_bounds_is_refused_before_anything_is_checked() {
    let (network, dir, id) = four_validators();
    let mut honest = prove(&network, &dir, id);
    honest.record.siblings = vec!["00".repeat(32); 17];
    let error = proof::verify(&honest, &network.anchor).unwrap_err();
    assert!(matches!(error, ProofError::TooLarge { .. }), "{error}");
}
