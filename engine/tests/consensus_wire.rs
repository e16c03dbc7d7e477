//! The consensus wire format: every malformed input gets its specific decode error, random
//! and mutated bytes never panic the decoders, and whatever decodes re-encodes to the same
//! bytes. Seeded: `TALLY_FUZZ_SEED=<n>` replays a run (the seed is printed).

use ed25519_zebra::SigningKey;
use tally_engine::consensus::message::{NIL_ROUND, ROUND_MAX};
use tally_engine::consensus::sim::SimRng;
use tally_engine::consensus::{
    Body, Certificate, DecodeError, SignedMessage, ValidatorSet, VoteKind, MESSAGE_BYTES,
};

const NETWORK_ID: u64 = 0xfeed;

fn key(i: u8) -> SigningKey {
    SigningKey::from([i; 32])
}

fn set() -> ValidatorSet {
    let keys = (1..=4u8)
        .map(|i| ed25519_zebra::VerificationKey::from(&key(i)).into())
        .collect();
    ValidatorSet::new(NETWORK_ID, 0, keys).expect("set")
}

fn sample_messages() -> Vec<SignedMessage> {
    let value = [7u8; 32];
    vec![
        SignedMessage::sign(
            Body::Proposal {
                height: 3,
                round: 2,
                value,
                valid_round: Some(1),
            },
            NETWORK_ID,
            &key(1),
        ),
        SignedMessage::sign(
            Body::Proposal {
                height: u64::MAX,
                round: ROUND_MAX,
                value,
                valid_round: None,
            },
            NETWORK_ID,
            &key(2),
        ),
        SignedMessage::sign(
            Body::Vote {
                kind: VoteKind::Prevote,
                height: 3,
                round: 0,
                value: None,
            },
            NETWORK_ID,
            &key(3),
        ),
        SignedMessage::sign(
            Body::Vote {
                kind: VoteKind::Precommit,
                height: 0,
                round: 9,
                value: Some([0u8; 32]),
            },
            NETWORK_ID,
            &key(4),
        ),
    ]
}

#[test]
fn messages_round_trip_and_verify() {
    let set = set();
    for message in sample_messages() {
        let bytes = message.encode();
        assert_eq!(bytes.len(), MESSAGE_BYTES);
        let decoded = SignedMessage::decode(&bytes).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(decoded.encode(), bytes);
        decoded.verify(&set).expect("verifies");
    }
}

fn vote_bytes() -> [u8; MESSAGE_BYTES] {
    sample_messages()[2].encode()
}

#[test]
fn each_malformation_has_its_error() {
    let proposal = sample_messages()[0].encode();
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            vec![0u8; MESSAGE_BYTES - 1],
            DecodeError::Length {
                expected: MESSAGE_BYTES,
                actual: MESSAGE_BYTES - 1,
            },
        ),
        (
            vec![0u8; MESSAGE_BYTES + 1],
            DecodeError::Length {
                expected: MESSAGE_BYTES,
                actual: MESSAGE_BYTES + 1,
            },
        ),
        (
            Vec::new(),
            DecodeError::Length {
                expected: MESSAGE_BYTES,
                actual: 0,
            },
        ),
        (
            {
                let mut b = vote_bytes();
                b[0] = 9;
                b.to_vec()
            },
            DecodeError::UnknownKind(9),
        ),
        (
            {
                let mut b = vote_bytes();
                b[0] = 0;
                b.to_vec()
            },
            DecodeError::UnknownKind(0),
        ),
        (
            {
                let mut b = vote_bytes();
                b[1] = 0x82;
                b.to_vec()
            },
            DecodeError::UnknownFlags(0x82),
        ),
        (
            {
                let mut b = vote_bytes();
                b[3] = 1;
                b.to_vec()
            },
            DecodeError::ReservedNotZero,
        ),
        (
            {
                let mut b = vote_bytes();
                b[22] = 1;
                b.to_vec()
            },
            DecodeError::ReservedNotZero,
        ),
        (
            {
                let mut b = proposal;
                b[1] = 0;
                b[24..56].fill(0);
                b.to_vec()
            },
            DecodeError::ProposalWithoutValue,
        ),
        (
            {
                let mut b = vote_bytes();
                b[30] = 1;
                b.to_vec()
            },
            DecodeError::NilValueNotZero,
        ),
        (
            {
                let mut b = vote_bytes();
                b[16..20].copy_from_slice(&0u32.to_le_bytes());
                b.to_vec()
            },
            DecodeError::VoteWithValidRound,
        ),
        (
            {
                let mut b = vote_bytes();
                b[4..8].copy_from_slice(&NIL_ROUND.to_le_bytes());
                b.to_vec()
            },
            DecodeError::RoundTooLarge { round: u32::MAX },
        ),
        (
            {
                let mut b = proposal;
                b[16..20].copy_from_slice(&2u32.to_le_bytes());
                b.to_vec()
            },
            DecodeError::ValidRoundNotBelowRound {
                valid_round: 2,
                round: 2,
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            SignedMessage::decode(&bytes),
            Err(expected.clone()),
            "{expected}"
        );
    }
}

fn fuzz_seed() -> u64 {
    let seed = std::env::var("TALLY_FUZZ_SEED")
        .ok()
        .map(|text| text.parse().expect("TALLY_FUZZ_SEED is a number"))
        .unwrap_or(0x5eed_c0de);
    println!("fuzz seed {seed} (replay with TALLY_FUZZ_SEED={seed})");
    seed
}

#[test]
fn random_and_mutated_bytes_never_panic_and_never_verify() {
    let seed = fuzz_seed();
    let mut rng = SimRng::new(seed);
    let set = set();
    let samples = sample_messages();
    let mut decoded_mutants = 0;
    for iteration in 0..20_000u32 {
        // Random lengths and contents.
        let length = rng.range(0, 2 * MESSAGE_BYTES as u64) as usize;
        let bytes: Vec<u8> = (0..length).map(|_| rng.next_u64() as u8).collect();
        if let Ok(message) = SignedMessage::decode(&bytes) {
            assert_eq!(
                message.encode().as_slice(),
                bytes.as_slice(),
                "seed {seed} it {iteration}"
            );
        }
        let _ = Certificate::decode(&bytes);

        // Valid messages with 1-3 bytes changed.
        let original = samples[iteration as usize % samples.len()].encode();
        let mut mutant = original;
        for _ in 0..rng.range(1, 3) {
            let at = rng.range(0, MESSAGE_BYTES as u64 - 1) as usize;
            mutant[at] ^= 1 << rng.range(0, 7);
        }
        if mutant == original {
            continue;
        }
        if let Ok(message) = SignedMessage::decode(&mutant) {
            decoded_mutants += 1;
            assert_eq!(message.encode(), mutant, "seed {seed} it {iteration}");
            assert!(
                message.verify(&set).is_err(),
                "seed {seed} iteration {iteration}: an altered message verified"
            );
        }
    }
    assert!(
        decoded_mutants > 1000,
        "mutations mostly hit the signed fields"
    );
}

#[test]
fn certificate_decoder_checks_lengths() {
    assert!(matches!(
        Certificate::decode(&[0u8; 10]),
        Err(tally_engine::consensus::CertificateError::Length { .. })
    ));
    let mut bytes = vec![0u8; 56];
    bytes[20..24].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        Certificate::decode(&bytes),
        Err(tally_engine::consensus::CertificateError::TooManySignatures { count: 1000, .. })
    ));
    bytes[20..24].copy_from_slice(&2u32.to_le_bytes());
    assert!(matches!(
        Certificate::decode(&bytes),
        Err(tally_engine::consensus::CertificateError::Length { count: 2, .. })
    ));
}
