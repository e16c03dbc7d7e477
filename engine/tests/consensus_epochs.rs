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
    // The same change twice (inserted before the leader reputation: an empty list of
    // records, 8 bytes).
    assert_eq!(
        damaged(&|b| {
            put_u64(b, pending_count, 3);
            let first_end = first_change + 33 + 8 + 32;
            let first: Vec<u8> = b[first_change..first_end].to_vec();
            let at = b.len() - 8;
            b.splice(at..at, first);
        }),
        invalid("pending change order")
    );
    let records_count = bytes.len() - 8;
    assert_eq!(
        damaged(&|b| put_u64(b, records_count, 257)),
        invalid("reputation record count")
    );
}

/// Feeds `schedule` the chain of heights `from..to` in which the validators of `silent`
/// (indexes) never propose: a height whose round-0 proposer is silent is decided in the
/// first round whose proposer is not. Returns the round-0 proposer of each height.
fn run_chain(
    schedule: &mut ValidatorSchedule,
    from: u64,
    to: u64,
    silent: &[usize],
) -> Vec<(u64, usize)> {
    let mut turns = Vec::new();
    for height in from..to {
        let set = schedule.current().clone();
        let round_zero = set.proposer(height, 0);
        let mut rounds: Vec<usize> = (0..set.len() as u32)
            .map(|round| set.proposer(height, round))
            .collect();
        // Rounds above 0 rotate over every validator: any n rounds give each one turn.
        let turns_of_all = {
            let mut sorted = rounds.clone();
            sorted.sort_unstable();
            sorted
        };
        assert_eq!(
            turns_of_all,
            (0..set.len()).collect::<Vec<_>>(),
            "height {height}"
        );
        rounds.retain(|index| !silent.contains(index));
        let builder = rounds[0];
        schedule.on_block_proposer(height, builder as u32);
        schedule.on_decided(height).expect("in order");
        turns.push((height, round_zero));
    }
    turns
}

#[test]
fn leader_reputation_demotes_a_silent_proposer_and_readmits_it() {
    use tally_engine::consensus::validators::{DEMOTION_DOUBLINGS_MAX, DEMOTION_HEIGHTS};
    let mut schedule = ValidatorSchedule::new(set(0, &[1, 2, 3, 4]), u64::MAX).expect("schedule");
    // Healthy: plain round-robin, as before reputation.
    for (height, round_zero) in run_chain(&mut schedule, 1, 2, &[]) {
        assert_eq!(round_zero, (height % 4) as usize);
    }
    // Validator 2 falls silent at height 2, its turn: it misses it once, then is left out.
    let turns = run_chain(&mut schedule, 2, 3, &[2]);
    assert_eq!(turns, vec![(2, 2)]);
    assert!(schedule.current().is_demoted(2));
    assert_eq!(schedule.current().demoted_count(), 1);
    let until = 3 + DEMOTION_HEIGHTS;
    let turns = run_chain(&mut schedule, 3, until, &[2]);
    assert!(turns.iter().all(|(_, proposer)| *proposer != 2));
    // Its turns go to the next validator in the rotation.
    assert!(turns.iter().any(|(height, p)| height % 4 == 2 && *p == 3));
    // Readmitted after DEMOTION_HEIGHTS heights, on probation (a short trial at its next
    // round-0 turn): still silent, it misses once more and is left out twice as long.
    assert!(!schedule.current().is_demoted(2));
    assert!(schedule.current().is_on_probation(2));
    assert!(!schedule.current().is_on_probation(1));
    let turns = run_chain(&mut schedule, until, until + 4, &[2]);
    let missed_at = turns.iter().find(|(_, p)| *p == 2).expect("a turn").0;
    let standing = schedule.standings().next().expect("a record").1;
    assert_eq!(standing.misses, 2);
    assert_eq!(standing.demoted_until, missed_at + 1 + 2 * DEMOTION_HEIGHTS);
    // Misses in a row double the time, up to the bound.
    let mut height = until + 4;
    for misses in 3..=(DEMOTION_DOUBLINGS_MAX + 3) {
        // Walk to its next round-0 turn, which it misses.
        loop {
            let turn = run_chain(&mut schedule, height, height + 1, &[2]);
            height += 1;
            if turn[0].1 == 2 {
                break;
            }
        }
        let standing = *schedule.standings().next().expect("a record").1;
        assert_eq!(standing.misses, misses);
        let doublings = (misses - 1).min(DEMOTION_DOUBLINGS_MAX);
        assert_eq!(
            standing.demoted_until,
            height + (DEMOTION_HEIGHTS << doublings)
        );
    }
    // Back: once readmitted, it proposes its turn and its record is cleared; the rotation
    // is plain round-robin again.
    while schedule.current().is_demoted(2) {
        run_chain(&mut schedule, height, height + 1, &[]);
        height += 1;
    }
    assert!(schedule.current().is_on_probation(2));
    let turns = run_chain(&mut schedule, height, height + 4, &[]);
    assert!(turns.iter().any(|(_, p)| *p == 2));
    assert_eq!(schedule.standings().count(), 0);
    assert!(!schedule.current().is_on_probation(2));
    for (height, round_zero) in run_chain(&mut schedule, height + 4, height + 12, &[]) {
        assert_eq!(round_zero, (height % 4) as usize);
    }
}

#[test]
fn leader_reputation_is_the_same_on_every_validator_and_after_a_restart() {
    // Two validators follow the same chain; a third restarts from the encoded schedule
    // (what a checkpoint keeps) half way. All three name the same proposers throughout.
    let mut first = ValidatorSchedule::new(set(0, &[1, 2, 3, 4, 5, 6, 7]), 50).expect("schedule");
    let mut second = first.clone();
    let a = run_chain(&mut first, 1, 300, &[4, 6]);
    let b = run_chain(&mut second, 1, 150, &[4, 6]);
    let mut bytes = Vec::new();
    second.encode(&mut bytes);
    let (mut restarted, _) = ValidatorSchedule::decode(&bytes).expect("decode");
    restarted.set_next_height(150);
    let c = run_chain(&mut restarted, 150, 300, &[4, 6]);
    assert_eq!(a[..149], b[..]);
    assert_eq!(a[149..], c[..]);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    first.encode(&mut x);
    restarted.encode(&mut y);
    assert_eq!(x, y);
    // Both silent validators are left out (7 validators: 5 left is a quorum), across the
    // epoch changes every 50 heights.
    assert!(a[20..].iter().all(|(_, p)| *p != 4 && *p != 6));
    assert!(first.current().is_demoted(4) && first.current().is_demoted(6));
}

#[test]
fn too_few_eligible_proposers_fall_back_to_round_robin() {
    // Four validators, two silent: after both are demoted, two are left, fewer than a
    // quorum of three, so round 0 is plain round-robin again (the network cannot decide
    // without one of them anyway); rounds above 0 still reach every validator.
    let mut schedule = ValidatorSchedule::new(set(0, &[1, 2, 3, 4]), u64::MAX).expect("schedule");
    run_chain(&mut schedule, 1, 5, &[2, 3]);
    assert!(schedule.current().is_demoted(2));
    assert!(schedule.current().is_demoted(3));
    for (height, round_zero) in run_chain(&mut schedule, 5, 40, &[2, 3]) {
        assert_eq!(round_zero, (height % 4) as usize);
    }
    // One validator alone is never demoted.
    let mut alone = ValidatorSchedule::new(set(0, &[1]), u64::MAX).expect("schedule");
    alone.on_block_proposer(1, 0);
    alone.on_decided(1).expect("decided");
    assert_eq!(alone.standings().count(), 0);
    assert_eq!(alone.current().proposer(2, 0), 0);
}

#[test]
fn leader_reputation_follows_keys_across_a_set_change() {
    // Validators 1 and 3 (indexes 0 and 2) are demoted; the authorities remove validator 1,
    // so from the next epoch validator 3 has index 1 and is still left out, and the removed
    // validator's record goes with it.
    let mut schedule =
        ValidatorSchedule::new(set(0, &[1, 2, 3, 4, 5, 6, 7]), 20).expect("schedule");
    run_chain(&mut schedule, 1, 8, &[0, 2]);
    assert!(schedule.current().is_demoted(0) && schedule.current().is_demoted(2));
    assert_eq!(schedule.standings().count(), 2);
    for voter in [2, 3, 4, 5, 6] {
        schedule
            .vote(&public(voter), ValidatorChange::Remove(public(1)))
            .expect("vote");
    }
    run_chain(&mut schedule, 8, 20, &[0, 2]);
    assert_eq!(schedule.current().epoch(), 1);
    assert_eq!(schedule.current().len(), 6);
    assert!(schedule.current().is_demoted(1));
    assert_eq!(schedule.current().demoted_count(), 1);
    assert_eq!(schedule.standings().count(), 1);
    assert_eq!(*schedule.standings().next().unwrap().0, public(3));
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
