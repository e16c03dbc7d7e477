//! Validator sets (thresholds, rotation), validator changes by authority vote taking effect
//! at the next epoch, and independent verification of commit certificates.

use ed25519_zebra::{SigningKey, VerificationKey};
use tally_engine::consensus::validators::ChangeVoteOutcome;
use tally_engine::consensus::{
    Body, Certificate, CertificateError, CommitSignature, ScheduleDecodeError, ScheduleError,
    SignedMessage, ValidatorChange, ValidatorSchedule, ValidatorSet, ValidatorSetError, VoteKind,
};

const NETWORK_ID: u64 = 0xe90c;

fn key(i: u8) -> SigningKey {
    SigningKey::from([i; 32])
}

fn public(i: u8) -> [u8; 32] {
    VerificationKey::from(&key(i)).into()
}

fn set(epoch: u64, members: &[u8]) -> ValidatorSet {
    ValidatorSet::new(
        NETWORK_ID,
        epoch,
        members.iter().map(|i| public(*i)).collect(),
    )
    .expect("valid set")
}

#[test]
fn thresholds_and_rotation() {
    for (n, f, quorum) in [(1, 0, 1), (4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7)] {
        let members: Vec<u8> = (1..=n as u8).collect();
        let set = set(0, &members);
        assert_eq!(set.faults_tolerated(), f, "n = {n}");
        assert_eq!(set.quorum(), quorum, "n = {n}");
        assert_eq!(set.skip_threshold(), f + 1, "n = {n}");
        // Two quorums share more than f validators: at least one honest.
        assert!(2 * set.quorum() > n + f);
    }
    let set = set(0, &[1, 2, 3, 4]);
    assert_eq!(set.proposer(0, 0), 0);
    assert_eq!(set.proposer(0, 1), 1);
    assert_eq!(set.proposer(1, 0), 1);
    assert_eq!(set.proposer(6, 3), 1);
    assert_eq!(
        set.proposer(u64::MAX, u32::MAX),
        ((u64::MAX % 4 + u32::MAX as u64 % 4) % 4) as usize
    );
    assert_eq!(set.index_of(&public(3)), Some(2));
    assert_eq!(set.index_of(&public(9)), None);
}

#[test]
fn invalid_sets_are_refused() {
    assert_eq!(
        ValidatorSet::new(1, 0, vec![]),
        Err(ValidatorSetError::Empty)
    );
    assert!(matches!(
        ValidatorSet::new(1, 0, vec![public(1), public(2), public(1)]),
        Err(ValidatorSetError::Duplicate { .. })
    ));
    assert!(matches!(
        ValidatorSet::new(1, 0, vec![[0u8; 32]; 300]),
        Err(ValidatorSetError::TooMany { count: 300, .. })
    ));
    // y = 2 is not the y-coordinate of a curve point.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert!(matches!(
        ValidatorSet::new(1, 0, vec![not_a_point]),
        Err(ValidatorSetError::InvalidKey { .. })
    ));
}

#[test]
fn authority_vote_changes_the_set_at_the_next_epoch() {
    let heights_per_epoch = 10;
    let mut schedule =
        ValidatorSchedule::new(set(0, &[1, 2, 3, 4]), heights_per_epoch).expect("schedule");
    let newcomer = public(5);
    // Only current validators vote; a quorum (3 of 4) adopts the change.
    assert!(matches!(
        schedule.vote(&public(9), ValidatorChange::Add(newcomer)),
        Err(ScheduleError::NotAValidator { .. })
    ));
    assert_eq!(
        schedule.vote(&public(1), ValidatorChange::Add(newcomer)),
        Ok(ChangeVoteOutcome::Counted {
            votes: 1,
            quorum: 3
        })
    );
    assert_eq!(
        schedule.vote(&public(1), ValidatorChange::Add(newcomer)),
        Ok(ChangeVoteOutcome::Duplicate)
    );
    schedule
        .vote(&public(2), ValidatorChange::Add(newcomer))
        .expect("vote");
    assert_eq!(
        schedule.vote(&public(3), ValidatorChange::Add(newcomer)),
        Ok(ChangeVoteOutcome::Adopted)
    );
    // Removing validator 1 gets only two votes: not adopted.
    schedule
        .vote(&public(2), ValidatorChange::Remove(public(1)))
        .expect("vote");
    schedule
        .vote(&public(3), ValidatorChange::Remove(public(1)))
        .expect("vote");
    assert!(matches!(
        schedule.vote(&public(4), ValidatorChange::Add(newcomer)),
        Err(ScheduleError::AlreadyMember { .. })
    ));

    // Adopted, but not in force before the epoch boundary.
    for height in 0..heights_per_epoch - 1 {
        assert_eq!(schedule.set_for_height(height).expect("epoch 0").len(), 4);
        assert_eq!(schedule.on_decided(height), Ok(None));
    }
    assert!(matches!(
        schedule.set_for_height(heights_per_epoch),
        Err(ScheduleError::OtherEpoch {
            height_epoch: 1,
            epoch: 0,
            ..
        })
    ));
    let next = schedule
        .on_decided(heights_per_epoch - 1)
        .expect("boundary")
        .expect("new set")
        .clone();
    assert_eq!(next.epoch(), 1);
    assert_eq!(
        next.public_keys(),
        &[public(1), public(2), public(3), public(4), newcomer]
    );
    assert_eq!(
        schedule.set_for_height(heights_per_epoch).expect("epoch 1"),
        &next
    );
    // The unadopted removal was dropped with the epoch; 5 validators: quorum 4.
    assert_eq!(next.quorum(), 4);
    assert_eq!(
        schedule.vote(&public(2), ValidatorChange::Remove(public(1))),
        Ok(ChangeVoteOutcome::Counted {
            votes: 1,
            quorum: 4
        })
    );
}

/// Schedule bytes (what state roots commit to and checkpoints store) read back equal, and
/// every kind of damage is refused with the field it hit: each cut, and each invalid field.
#[test]
fn schedule_bytes_round_trip_and_damage_names_its_field() {
    let mut schedule = ValidatorSchedule::new(set(3, &[1, 2, 3, 4]), 10).expect("schedule");
    for voter in [1, 2, 3] {
        schedule
            .vote(&public(voter), ValidatorChange::Add(public(5)))
            .expect("vote");
    }
    for voter in [1, 2] {
        schedule
            .vote(&public(voter), ValidatorChange::Remove(public(4)))
            .expect("vote");
    }
    schedule
        .vote(&public(3), ValidatorChange::Add(public(6)))
        .expect("vote");
    let mut bytes = Vec::new();
    schedule.encode(&mut bytes);
    let (decoded, read) = ValidatorSchedule::decode(&bytes).expect("round trip");
    assert_eq!(read, bytes.len());
    let mut again = Vec::new();
    decoded.encode(&mut again);
    assert_eq!(again, bytes);
    assert_eq!(decoded.next_public_keys(), schedule.next_public_keys());
    assert_eq!(decoded.pending().count(), 2);
    // Trailing bytes are the caller's (a snapshot's next section): not read.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[7; 5]);
    assert_eq!(
        ValidatorSchedule::decode(&longer).expect("prefix").1,
        bytes.len()
    );

    // Every cut is refused as truncated, never read as a smaller schedule.
    for cut in 0..bytes.len() {
        assert!(
            matches!(
                ValidatorSchedule::decode(&bytes[..cut]),
                Err(ScheduleDecodeError::Truncated(_))
            ),
            "cut at {cut}"
        );
    }
    assert_eq!(
        ValidatorSchedule::decode(&bytes[..30]).err(),
        Some(ScheduleDecodeError::Truncated("current validators"))
    );

    // Offsets of the layout: epoch length, network id, epoch, current keys (count, keys),
    // next keys (count, keys), pending count, then per change: kind, key, voters.
    let current_count = 24;
    let next_count = current_count + 8 + 4 * 32;
    let pending_count = next_count + 8 + 5 * 32;
    let first_change = pending_count + 8;
    let put_u64 = |bytes: &mut Vec<u8>, at: usize, value: u64| {
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes())
    };
    let damaged = |change: &dyn Fn(&mut Vec<u8>)| {
        let mut copy = bytes.clone();
        change(&mut copy);
        ValidatorSchedule::decode(&copy).err()
    };
    let invalid = |field| Some(ScheduleDecodeError::Invalid(field));
    assert_eq!(damaged(&|b| put_u64(b, 0, 0)), invalid("heights per epoch"));
    assert_eq!(
        damaged(&|b| put_u64(b, current_count, 257)),
        invalid("current validators")
    );
    // A repeated key makes the current set invalid.
    assert_eq!(
        damaged(&|b| {
            let first: Vec<u8> = b[current_count + 8..current_count + 40].to_vec();
            b[current_count + 40..current_count + 72].copy_from_slice(&first);
        }),
        invalid("current validators")
    );
    assert_eq!(
        damaged(&|b| put_u64(b, next_count, 257)),
        invalid("next validators")
    );
    assert_eq!(
        damaged(&|b| {
            // An empty next set: the count says 0 and the keys are gone.
            put_u64(b, next_count, 0);
            b.drain(next_count + 8..next_count + 8 + 5 * 32);
        }),
        invalid("next validators")
    );
    assert_eq!(
        damaged(&|b| put_u64(b, pending_count, 1025)),
        invalid("pending change count")
    );
    assert_eq!(
        damaged(&|b| b[first_change] = 3),
        invalid("pending change kind")
    );
    assert_eq!(
        damaged(&|b| put_u64(b, first_change + 33, 257)),
        invalid("pending change voters")
    );
    // The same change twice.
    assert_eq!(
        damaged(&|b| {
            put_u64(b, pending_count, 3);
            let first_end = first_change + 33 + 8 + 32;
            let first: Vec<u8> = b[first_change..first_end].to_vec();
            b.extend_from_slice(&first);
        }),
        invalid("pending change order")
    );
}

fn precommit_signature(i: u8, height: u64, round: u32, value: [u8; 32]) -> CommitSignature {
    let message = SignedMessage::sign(
        Body::Vote {
            kind: VoteKind::Precommit,
            height,
            round,
            value: Some(value),
        },
        NETWORK_ID,
        &key(i),
    );
    CommitSignature {
        validator: public(i),
        signature: *message.signature(),
    }
}

fn certificate(signers: &[u8]) -> Certificate {
    let value = [0x42; 32];
    Certificate {
        epoch: 0,
        height: 12,
        round: 3,
        value,
        signatures: signers
            .iter()
            .map(|i| precommit_signature(*i, 12, 3, value))
            .collect(),
    }
}

#[test]
fn certificates_verify_independently_and_refuse_forgeries() {
    let set = set(0, &[1, 2, 3, 4]);
    let good = certificate(&[1, 2, 4]);
    good.verify(&set).expect("quorum of valid precommits");
    let decoded = Certificate::decode(&good.encode()).expect("round trip");
    assert_eq!(decoded, good);
    decoded.verify(&set).expect("decoded verifies");

    assert!(matches!(
        certificate(&[1, 2]).verify(&set),
        Err(CertificateError::NotEnoughSignatures {
            have: 2,
            need: 3,
            ..
        })
    ));
    assert!(matches!(
        certificate(&[1, 2, 2]).verify(&set),
        Err(CertificateError::DuplicateValidator { .. })
    ));
    assert!(matches!(
        certificate(&[1, 2, 5]).verify(&set),
        Err(CertificateError::UnknownValidator { .. })
    ));
    let mut other_value = good.clone();
    other_value.value[0] ^= 1;
    assert!(matches!(
        other_value.verify(&set),
        Err(CertificateError::BadSignature { .. })
    ));
    let mut other_round = good.clone();
    other_round.round += 1;
    assert!(matches!(
        other_round.verify(&set),
        Err(CertificateError::BadSignature { .. })
    ));
    let other_network =
        ValidatorSet::new(NETWORK_ID + 1, 0, set.public_keys().to_vec()).expect("set");
    assert!(matches!(
        good.verify(&other_network),
        Err(CertificateError::BadSignature { .. })
    ));
    let next_epoch = set_with_epoch(&set, 1);
    assert!(matches!(
        good.verify(&next_epoch),
        Err(CertificateError::EpochMismatch {
            certificate: 0,
            set: 1
        })
    ));
}

fn set_with_epoch(set: &ValidatorSet, epoch: u64) -> ValidatorSet {
    ValidatorSet::new(set.network_id(), epoch, set.public_keys().to_vec()).expect("set")
}
