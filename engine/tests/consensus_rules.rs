//! One test per rule of Algorithm 1 (Buchman, Kwon, Milosevic 2018), driving one validator's
//! state machine with signed messages from the other three of a 4-validator set (f = 1,
//! quorum 3, skip threshold 2). Heights start at 0; proposer(h, r) = (h + r) mod 4.

use ed25519_zebra::SigningKey;
use std::collections::HashSet;
use tally_engine::consensus::{
    Action, Application, BlockId, Body, Config, ConsensusError, Event, SignedMessage, Step,
    Tendermint, Timeout, TimeoutConfig, TimeoutKind, ValidatorSet, VerifyError, VoteKind,
};

const NETWORK_ID: u64 = 0x7a11;

struct TestApp {
    invalid: HashSet<BlockId>,
}

fn value(height: u64, round: u32) -> BlockId {
    let mut value = [0xabu8; 32];
    value[..8].copy_from_slice(&height.to_le_bytes());
    value[8..12].copy_from_slice(&round.to_le_bytes());
    value
}

impl Application for TestApp {
    fn propose_value(&mut self, height: u64, round: u32) -> BlockId {
        value(height, round)
    }
    fn is_valid(&mut self, _height: u64, value: &BlockId) -> bool {
        !self.invalid.contains(value)
    }
}

struct Harness {
    keys: Vec<SigningKey>,
    set: ValidatorSet,
    machine: Tendermint,
    app: TestApp,
    height: u64,
}

fn keys() -> Vec<SigningKey> {
    (0..4u8).map(|i| SigningKey::from([i + 1; 32])).collect()
}

fn set_of(keys: &[SigningKey]) -> ValidatorSet {
    let public_keys = keys
        .iter()
        .map(|key| ed25519_zebra::VerificationKey::from(key).into())
        .collect();
    ValidatorSet::new(NETWORK_ID, 0, public_keys).expect("valid set")
}

fn config(key: &SigningKey) -> Config {
    Config {
        signing_key: *key,
        timeouts: TimeoutConfig::default(),
    }
}

/// Checks the documented order: Decide first, Persist before any Broadcast.
fn check_order(actions: &[Action]) {
    let mut seen_broadcast = false;
    for (position, action) in actions.iter().enumerate() {
        match action {
            Action::Decide(_) => assert_eq!(position, 0, "Decide must come first: {actions:?}"),
            Action::Persist(_) => assert!(!seen_broadcast, "Persist after a Broadcast"),
            Action::Broadcast(_) => seen_broadcast = true,
            Action::ScheduleTimeout { .. } => {}
        }
    }
    if seen_broadcast {
        assert!(
            actions.iter().any(|a| matches!(a, Action::Persist(_))),
            "a batch that broadcasts must persist first: {actions:?}"
        );
    }
}

fn broadcasts(actions: &[Action]) -> Vec<Body> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Broadcast(message) => Some(*message.body()),
            _ => None,
        })
        .collect()
}

fn timeouts(actions: &[Action]) -> Vec<(Timeout, u64)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::ScheduleTimeout {
                timeout,
                duration_ms,
            } => Some((*timeout, *duration_ms)),
            _ => None,
        })
        .collect()
}

fn vote(kind: VoteKind, height: u64, round: u32, value: Option<BlockId>) -> Body {
    Body::Vote {
        kind,
        height,
        round,
        value,
    }
}

impl Harness {
    /// Validator `me` starts `height`.
    fn start(me: usize, height: u64) -> (Harness, Vec<Action>) {
        let keys = keys();
        let set = set_of(&keys);
        let machine = Tendermint::new(config(&keys[me]), height);
        let mut harness = Harness {
            keys,
            set,
            machine,
            app: TestApp {
                invalid: HashSet::new(),
            },
            height,
        };
        let actions = harness.event(Event::StartHeight {
            height,
            validator_set: harness.set.clone(),
        });
        (harness, actions)
    }

    fn event(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        self.machine
            .handle(event, &mut self.app, &mut actions)
            .expect("event accepted");
        check_order(&actions);
        actions
    }

    fn sign(&self, from: usize, body: Body) -> SignedMessage {
        SignedMessage::sign(body, NETWORK_ID, &self.keys[from])
    }

    fn try_feed(&mut self, message: SignedMessage) -> Result<Vec<Action>, ConsensusError> {
        let verified = message.verify(&self.set).expect("signed by a validator");
        let mut actions = Vec::new();
        let result = self
            .machine
            .handle(Event::Message(verified), &mut self.app, &mut actions);
        check_order(&actions);
        result.map(|()| actions)
    }

    fn feed(&mut self, from: usize, body: Body) -> Vec<Action> {
        let message = self.sign(from, body);
        self.try_feed(message).expect("message accepted")
    }

    fn proposal(&mut self, round: u32, value: BlockId, valid_round: Option<u32>) -> Vec<Action> {
        let proposer = self.set.proposer(self.height, round);
        let body = Body::Proposal {
            height: self.height,
            round,
            value,
            valid_round,
        };
        self.feed(proposer, body)
    }

    fn votes(
        &mut self,
        kind: VoteKind,
        from: &[usize],
        round: u32,
        value: Option<BlockId>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for &validator in from {
            actions.extend(self.feed(validator, vote(kind, self.height, round, value)));
        }
        actions
    }

    fn timeout(&mut self, kind: TimeoutKind, round: u32) -> Vec<Action> {
        let height = self.height;
        self.event(Event::Timeout(Timeout {
            kind,
            height,
            round,
        }))
    }
}

#[test]
fn non_proposer_schedules_propose_timeout_growing_with_round() {
    // line 21; timeoutPropose(r) = 3000 + 500 r (defaults).
    let (mut h, actions) = Harness::start(1, 0);
    assert!(broadcasts(&actions).is_empty());
    let expected = Timeout {
        kind: TimeoutKind::Propose,
        height: 0,
        round: 0,
    };
    assert_eq!(timeouts(&actions), vec![(expected, 3000)]);
    assert_eq!(h.machine.step(), Step::Propose);
    // Go to round 1 through the precommit timeout (lines 65-67); round 1's proposer is 1 (us),
    // so move on to round 2 and check the duration grew.
    h.votes(VoteKind::Precommit, &[0, 2, 3], 0, None);
    let actions = h.timeout(TimeoutKind::Precommit, 0);
    assert_eq!(h.machine.round(), 1);
    assert!(matches!(
        broadcasts(&actions)[0],
        Body::Proposal { round: 1, .. }
    ));
    h.votes(VoteKind::Precommit, &[0, 2, 3], 1, None);
    let actions = h.timeout(TimeoutKind::Precommit, 1);
    assert_eq!(h.machine.round(), 2);
    let propose: Vec<_> = timeouts(&actions)
        .into_iter()
        .filter(|(t, _)| t.kind == TimeoutKind::Propose)
        .collect();
    assert_eq!(propose[0].1, 3000 + 2 * 500);
}

#[test]
fn proposer_proposes_get_value_and_prevotes_it() {
    // lines 14-19 then line 22 on its own proposal; proposer(1, 0) = 1.
    let (h, actions) = Harness::start(1, 1);
    let sent = broadcasts(&actions);
    let v = value(1, 0);
    assert_eq!(
        sent,
        vec![
            Body::Proposal {
                height: 1,
                round: 0,
                value: v,
                valid_round: None
            },
            vote(VoteKind::Prevote, 1, 0, Some(v)),
        ]
    );
    assert_eq!(h.machine.step(), Step::Prevote);
}

#[test]
fn valid_proposal_gets_prevote_invalid_gets_nil() {
    // lines 22-27
    let (mut h, _) = Harness::start(1, 0);
    let actions = h.proposal(0, value(0, 0), None);
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 0, Some(value(0, 0)))]
    );
    assert_eq!(h.machine.step(), Step::Prevote);

    let (mut h, _) = Harness::start(1, 0);
    h.app.invalid.insert(value(0, 0));
    let actions = h.proposal(0, value(0, 0), None);
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 0, None)]
    );
}

#[test]
fn polka_locks_and_precommits() {
    // lines 36-43: proposal + 2f+1 prevotes for v while step = prevote.
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    h.proposal(0, v, None);
    let actions = h.votes(VoteKind::Prevote, &[0, 2], 0, Some(v));
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Precommit, 0, 0, Some(v))]
    );
    assert_eq!(h.machine.locked(), Some((v, 0)));
    assert_eq!(h.machine.valid(), Some((v, 0)));
    assert_eq!(h.machine.step(), Step::Precommit);
    // line 34 also fired: 2f+1 prevotes of any kind schedule the prevote timeout.
    assert!(timeouts(&actions)
        .iter()
        .any(|(t, _)| t.kind == TimeoutKind::Prevote));
}

#[test]
fn two_prevotes_are_not_a_polka() {
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    // Our own prevote is the third: without it, 2 others are not enough.
    h.app.invalid.insert(v);
    h.proposal(0, v, None); // we prevote nil
    let actions = h.votes(VoteKind::Prevote, &[0, 2], 0, Some(v));
    assert!(broadcasts(&actions).is_empty());
    assert_eq!(h.machine.locked(), None);
}

#[test]
fn propose_timeout_prevotes_nil_and_prevote_timeout_precommits_nil() {
    // lines 57-60, 34-35, 61-64
    let (mut h, _) = Harness::start(1, 0);
    let actions = h.timeout(TimeoutKind::Propose, 0);
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 0, None)]
    );
    // A stale timeout (other round) does nothing.
    assert!(h.timeout(TimeoutKind::Propose, 0).is_empty());
    // Mixed prevotes: 2f+1 in total, no value has 2f+1: the prevote timeout is scheduled.
    let mut actions = h.votes(VoteKind::Prevote, &[0], 0, Some(value(0, 0)));
    actions.extend(h.votes(VoteKind::Prevote, &[2], 0, Some(value(9, 9))));
    let scheduled = timeouts(&actions);
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0.kind, TimeoutKind::Prevote);
    assert_eq!(scheduled[0].1, 1000);
    let actions = h.timeout(TimeoutKind::Prevote, 0);
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Precommit, 0, 0, None)]
    );
    assert_eq!(h.machine.step(), Step::Precommit);
    // The prevote timeout is scheduled only the first time (line 34).
    let actions = h.votes(VoteKind::Prevote, &[3], 0, None);
    assert!(timeouts(&actions).is_empty());
}

#[test]
fn nil_polka_precommits_nil() {
    // lines 44-46
    let (mut h, _) = Harness::start(1, 0);
    h.timeout(TimeoutKind::Propose, 0);
    let actions = h.votes(VoteKind::Prevote, &[0, 2], 0, None);
    assert!(broadcasts(&actions).contains(&vote(VoteKind::Precommit, 0, 0, None)));
    assert_eq!(h.machine.step(), Step::Precommit);
    assert_eq!(h.machine.locked(), None);
}

#[test]
fn precommit_quorum_of_anything_schedules_precommit_timeout_then_next_round() {
    // lines 47-48 and 65-67
    let (mut h, _) = Harness::start(2, 0);
    let mut actions = h.votes(VoteKind::Precommit, &[0], 0, None);
    actions.extend(h.votes(VoteKind::Precommit, &[1], 0, Some(value(0, 0))));
    assert!(timeouts(&actions).is_empty());
    let actions = h.votes(VoteKind::Precommit, &[3], 0, Some(value(5, 5)));
    let scheduled = timeouts(&actions);
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].0.kind, TimeoutKind::Precommit);
    h.timeout(TimeoutKind::Precommit, 0);
    assert_eq!(h.machine.round(), 1);
    assert_eq!(h.machine.step(), Step::Propose);
}

#[test]
fn locked_validator_prevotes_nil_for_another_fresh_value() {
    // line 23: lockedRound != -1 and lockedValue != v -> nil (line 26)
    let (mut h, _) = Harness::start(3, 0);
    let v = value(0, 0);
    h.proposal(0, v, None);
    h.votes(VoteKind::Prevote, &[0, 1], 0, Some(v));
    assert_eq!(h.machine.locked(), Some((v, 0)));
    h.votes(VoteKind::Precommit, &[0, 1], 0, None);
    h.timeout(TimeoutKind::Precommit, 0);
    assert_eq!(h.machine.round(), 1);
    let w = value(0, 1);
    let actions = h.proposal(1, w, None);
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 1, None)]
    );
    // The same value as the lock is fine (lockedValue_p = v).
    h.votes(VoteKind::Precommit, &[0, 1, 2], 1, None);
    h.timeout(TimeoutKind::Precommit, 1);
    let actions = h.proposal(2, v, None);
    assert_eq!(
        broadcasts(&actions)[0],
        vote(VoteKind::Prevote, 0, 2, Some(v))
    );
}

#[test]
fn polka_of_a_higher_round_unlocks() {
    // lines 28-33: proposal (w, vr) with 2f+1 prevotes for w at vr, lockedRound <= vr.
    let (mut h, _) = Harness::start(3, 0);
    let v = value(0, 0);
    let w = value(0, 1);
    h.proposal(0, v, None);
    h.votes(VoteKind::Prevote, &[0, 1], 0, Some(v));
    assert_eq!(h.machine.locked(), Some((v, 0)));
    h.votes(VoteKind::Precommit, &[0, 1], 0, None);
    h.timeout(TimeoutKind::Precommit, 0);
    // Round 1: others prevote w (a polka we saw while locked: we prevoted nil).
    h.proposal(1, w, None);
    h.votes(VoteKind::Prevote, &[0, 1, 2], 1, Some(w));
    h.votes(VoteKind::Precommit, &[0, 1, 2], 1, None);
    h.timeout(TimeoutKind::Precommit, 1);
    assert_eq!(h.machine.round(), 2);
    // Round 2's proposer re-proposes w with valid round 1: lockedRound 0 <= 1, so we prevote w.
    let actions = h.proposal(2, w, Some(1));
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 2, Some(w))]
    );
}

#[test]
fn polka_of_a_lower_round_than_the_lock_does_not_unlock() {
    // line 29 false -> line 32: lockedRound > vr and lockedValue != v.
    let (mut h, _) = Harness::start(3, 0);
    let v = value(0, 0);
    let w = value(0, 1);
    // Round 0: a polka for w that we do not take part in (we prevote and precommit nil on
    // timeouts, so it only updates validValue, lines 42-43).
    h.timeout(TimeoutKind::Propose, 0);
    h.timeout(TimeoutKind::Prevote, 0);
    h.feed(
        0,
        Body::Proposal {
            height: 0,
            round: 0,
            value: w,
            valid_round: None,
        },
    );
    h.votes(VoteKind::Prevote, &[0, 1, 2], 0, Some(w));
    h.votes(VoteKind::Precommit, &[0, 1, 2], 0, None);
    h.timeout(TimeoutKind::Precommit, 0);
    // Round 1: lock on v.
    h.proposal(1, v, None);
    h.votes(VoteKind::Prevote, &[0, 1], 1, Some(v));
    assert_eq!(h.machine.locked(), Some((v, 1)));
    h.votes(VoteKind::Precommit, &[0, 1, 2], 1, None);
    h.timeout(TimeoutKind::Precommit, 1);
    // Round 2: w with valid round 0 < lockedRound 1 -> nil.
    let actions = h.proposal(2, w, Some(0));
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 2, None)]
    );
}

#[test]
fn proposal_with_valid_round_waits_for_its_polka() {
    // line 28 needs the 2f+1 prevotes of round vr; without them nothing happens.
    let (mut h, _) = Harness::start(2, 0);
    h.votes(VoteKind::Precommit, &[0, 1, 3], 0, None);
    h.timeout(TimeoutKind::Precommit, 0);
    h.votes(VoteKind::Precommit, &[0, 1, 3], 1, None);
    h.timeout(TimeoutKind::Precommit, 1);
    assert_eq!(h.machine.round(), 2);
    // proposer(0, 2) = 2 is us; skip to round 3 (proposer 3).
    h.votes(VoteKind::Precommit, &[0, 1, 3], 2, None);
    h.timeout(TimeoutKind::Precommit, 2);
    assert_eq!(h.machine.round(), 3);
    let w = value(0, 1);
    let actions = h.proposal(3, w, Some(1));
    assert!(broadcasts(&actions).is_empty());
    assert_eq!(h.machine.step(), Step::Propose);
    h.votes(VoteKind::Prevote, &[0, 1], 1, Some(w));
    let actions = h.votes(VoteKind::Prevote, &[3], 1, Some(w));
    assert_eq!(
        broadcasts(&actions),
        vec![vote(VoteKind::Prevote, 0, 3, Some(w))]
    );
}

#[test]
fn proposer_re_proposes_its_valid_value_with_valid_round() {
    // lines 15-16 and 19: validValue_p != nil -> propose it with validRound_p.
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    h.proposal(0, v, None);
    h.votes(VoteKind::Prevote, &[0, 2], 0, Some(v));
    assert_eq!(h.machine.valid(), Some((v, 0)));
    h.votes(VoteKind::Precommit, &[0, 2], 0, None);
    let actions = h.timeout(TimeoutKind::Precommit, 0);
    // proposer(0, 1) = 1 = us.
    assert_eq!(
        broadcasts(&actions)[0],
        Body::Proposal {
            height: 0,
            round: 1,
            value: v,
            valid_round: Some(0)
        }
    );
}

#[test]
fn valid_value_updates_without_lock_when_already_precommitted() {
    // lines 36, 42-43 with step = precommit: valid changes, lock does not.
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    h.timeout(TimeoutKind::Propose, 0); // prevote nil
    h.timeout(TimeoutKind::Prevote, 0); // precommit nil
    assert_eq!(h.machine.step(), Step::Precommit);
    h.proposal(0, v, None);
    h.votes(VoteKind::Prevote, &[0, 2, 3], 0, Some(v));
    assert_eq!(h.machine.valid(), Some((v, 0)));
    assert_eq!(h.machine.locked(), None);
}

#[test]
fn f_plus_one_messages_of_a_higher_round_skip_to_it() {
    // lines 55-56
    let (mut h, _) = Harness::start(2, 0);
    h.votes(VoteKind::Prevote, &[0], 5, None);
    assert_eq!(h.machine.round(), 0, "one sender (f) is not enough");
    h.votes(VoteKind::Precommit, &[0], 5, None);
    assert_eq!(
        h.machine.round(),
        0,
        "the same sender twice still counts once"
    );
    h.votes(VoteKind::Precommit, &[3], 5, None);
    assert_eq!(h.machine.round(), 5);
    assert_eq!(h.machine.step(), Step::Propose);
}

#[test]
fn precommit_quorum_with_proposal_decides_with_a_verifiable_certificate() {
    // lines 49-54
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    h.votes(VoteKind::Precommit, &[0, 2, 3], 0, Some(v));
    assert_eq!(h.machine.height(), 0, "no proposal yet: no decision");
    let actions = h.proposal(0, v, None);
    let Action::Decide(decision) = &actions[0] else {
        panic!("expected a decision first: {actions:?}");
    };
    assert_eq!((decision.height, decision.value), (0, v));
    decision
        .certificate
        .verify(&h.set)
        .expect("certificate verifies");
    assert!(decision.certificate.signatures.len() >= 3);
    assert_eq!(h.machine.height(), 1);
    assert!(!h.machine.is_running());
    assert_eq!(h.machine.locked(), None);
    // line 54 on StartHeight: height 1, round 0.
    h.height = 1;
    let actions = h.event(Event::StartHeight {
        height: 1,
        validator_set: h.set.clone(),
    });
    assert!(h.machine.is_running());
    // proposer(1, 0) = 1 = us.
    assert!(matches!(
        broadcasts(&actions)[0],
        Body::Proposal {
            height: 1,
            round: 0,
            ..
        }
    ));
}

#[test]
fn invalid_value_is_never_decided() {
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    h.app.invalid.insert(v);
    h.proposal(0, v, None);
    let actions = h.votes(VoteKind::Precommit, &[0, 2, 3], 0, Some(v));
    assert!(!actions.iter().any(|a| matches!(a, Action::Decide(_))));
    assert_eq!(h.machine.height(), 0);
}

#[test]
fn next_height_messages_are_buffered_until_it_starts() {
    let (mut h, _) = Harness::start(1, 0);
    let v = value(0, 0);
    let next = value(1, 0);
    // Height 1 messages first: buffered, no effect.
    for from in [0, 2, 3] {
        let message = h.sign(from, vote(VoteKind::Precommit, 1, 0, Some(next)));
        assert!(h.try_feed(message).expect("buffered").is_empty());
    }
    let proposal = h.sign(
        1,
        Body::Proposal {
            height: 1,
            round: 0,
            value: next,
            valid_round: None,
        },
    );
    // proposer(1,0) = 1 is us in this harness, so use the buffered precommits only.
    let _ = proposal;
    h.proposal(0, v, None);
    h.votes(VoteKind::Precommit, &[0, 2, 3], 0, Some(v));
    assert_eq!(h.machine.height(), 1);
    h.height = 1;
    let actions = h.event(Event::StartHeight {
        height: 1,
        validator_set: h.set.clone(),
    });
    // We propose `next` at height 1 and the buffered precommits complete a decision.
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Decide(d) if d.value == next)));
    assert_eq!(h.machine.height(), 2);
}

#[test]
fn equivocation_is_kept_as_verifiable_evidence() {
    let (mut h, _) = Harness::start(1, 0);
    h.feed(3, vote(VoteKind::Prevote, 0, 0, Some(value(0, 0))));
    let second = h.sign(3, vote(VoteKind::Prevote, 0, 0, None));
    let error = h.try_feed(second).expect_err("equivocation reported");
    assert_eq!(
        error,
        ConsensusError::Equivocation {
            validator: 3,
            height: 0,
            round: 0
        }
    );
    assert_eq!(h.machine.evidence().len(), 1);
    let evidence = h.machine.evidence()[0];
    assert_eq!(evidence.validator(), h.set.public_key(3));
    evidence.verify(&h.set).expect("evidence verifies");
    // An exact duplicate is not equivocation.
    let duplicate = h.sign(3, vote(VoteKind::Prevote, 0, 0, None));
    assert!(h.try_feed(duplicate).is_ok());
    assert_eq!(h.machine.evidence().len(), 1);
    // Conflicting proposals from the proposer are evidence too.
    h.proposal(0, value(0, 0), None);
    let other = h.sign(
        0,
        Body::Proposal {
            height: 0,
            round: 0,
            value: value(7, 7),
            valid_round: None,
        },
    );
    assert!(matches!(
        h.try_feed(other),
        Err(ConsensusError::Equivocation { validator: 0, .. })
    ));
    assert_eq!(h.machine.take_evidence().len(), 2);
}

#[test]
fn each_validator_counts_once_per_round_and_type() {
    let (mut h, _) = Harness::start(1, 0);
    h.app.invalid.insert(value(0, 0));
    h.proposal(0, value(0, 0), None); // we prevote nil
    for _ in 0..3 {
        let message = h.sign(0, vote(VoteKind::Prevote, 0, 0, None));
        let _ = h.try_feed(message);
    }
    let votes = h.machine.votes().round(0).expect("round 0");
    assert_eq!(votes.count(VoteKind::Prevote, &None), 2);
    assert_eq!(votes.total(VoteKind::Prevote), 2);
    assert_eq!(h.machine.step(), Step::Prevote);
}

#[test]
fn bad_messages_are_rejected_with_specific_errors() {
    let (mut h, _) = Harness::start(1, 5);
    // Not a validator.
    let outsider = SigningKey::from([99u8; 32]);
    let message = SignedMessage::sign(vote(VoteKind::Prevote, 5, 0, None), NETWORK_ID, &outsider);
    assert!(matches!(
        message.verify(&h.set),
        Err(VerifyError::UnknownValidator { .. })
    ));
    // Altered after signing.
    let message = h.sign(0, vote(VoteKind::Prevote, 5, 0, None));
    let mut bytes = message.encode();
    bytes[8] ^= 1; // height 5 -> 4
    let altered = SignedMessage::decode(&bytes).expect("well-formed");
    assert!(matches!(
        altered.verify(&h.set),
        Err(VerifyError::BadSignature { index: 0, .. })
    ));
    // Signed for another network.
    let foreign = SignedMessage::sign(
        vote(VoteKind::Prevote, 5, 0, None),
        NETWORK_ID + 1,
        &h.keys[0],
    );
    assert!(matches!(
        foreign.verify(&h.set),
        Err(VerifyError::BadSignature { .. })
    ));
    // Wrong heights.
    let past = h.sign(0, vote(VoteKind::Prevote, 4, 0, None));
    assert_eq!(
        h.try_feed(past).expect_err("past"),
        ConsensusError::PastHeight {
            height: 4,
            current: 5
        }
    );
    let future = h.sign(0, vote(VoteKind::Prevote, 7, 0, None));
    assert_eq!(
        h.try_feed(future).expect_err("future"),
        ConsensusError::FutureHeight {
            height: 7,
            current: 5
        }
    );
    // A proposal from someone who is not the round's proposer (proposer(5, 0) = 1).
    let proposal = h.sign(
        2,
        Body::Proposal {
            height: 5,
            round: 0,
            value: value(5, 0),
            valid_round: None,
        },
    );
    assert!(matches!(
        h.try_feed(proposal),
        Err(ConsensusError::NotProposer {
            validator: 2,
            round: 0,
            proposer: 1
        })
    ));
    // A message verified against another epoch's set.
    let other_epoch = ValidatorSet::new(NETWORK_ID, 1, h.set.public_keys().to_vec()).expect("set");
    let message = h.sign(0, vote(VoteKind::Prevote, 5, 0, None));
    let verified = message.verify(&other_epoch).expect("same keys");
    let mut actions = Vec::new();
    assert_eq!(
        h.machine
            .handle(Event::Message(verified), &mut h.app, &mut actions),
        Err(ConsensusError::WrongEpoch {
            message: 1,
            current: 0
        })
    );
    // StartHeight out of order.
    assert!(matches!(
        h.machine.handle(
            Event::StartHeight {
                height: 9,
                validator_set: h.set.clone()
            },
            &mut h.app,
            &mut actions
        ),
        Err(ConsensusError::UnexpectedStartHeight {
            expected: 5,
            got: 9
        })
    ));
    assert!(actions.is_empty());
}

#[test]
fn restored_validator_resends_but_never_signs_a_conflicting_vote() {
    let (mut h, _) = Harness::start(2, 0);
    let v = value(0, 0);
    h.proposal(0, v, None);
    let actions = h.votes(VoteKind::Prevote, &[0, 1], 0, Some(v));
    let persisted = actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Persist(state) => Some(state.clone()),
            _ => None,
        })
        .expect("locking persists");
    assert_eq!(persisted.locked, Some((v, 0)));
    assert_eq!(persisted.step, Step::Precommit);
    assert!(
        persisted.polka_messages.len() >= 3,
        "the polka is kept with the lock"
    );
    let own_before = h.machine.own_messages().to_vec();

    // Crash and restart from the persisted state. The re-sent messages were persisted
    // before the crash, so this batch has nothing new to persist.
    h.machine = Tendermint::restore(config(&h.keys[2]), persisted);
    let mut actions = Vec::new();
    h.machine
        .handle(
            Event::StartHeight {
                height: 0,
                validator_set: h.set.clone(),
            },
            &mut h.app,
            &mut actions,
        )
        .expect("resume");
    let resent: Vec<SignedMessage> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(m) => Some(*m),
            _ => None,
        })
        .collect();
    assert_eq!(
        resent, own_before,
        "exactly the messages signed before the crash"
    );
    assert_eq!(h.machine.round(), 0);
    assert_eq!(h.machine.step(), Step::Precommit);
    assert_eq!(h.machine.locked(), Some((v, 0)));
    // The polka was restored with the lock: the votes count again without re-delivery.
    let votes = h.machine.votes().round(0).expect("round 0");
    assert!(votes.count(VoteKind::Prevote, &Some(v)) >= 3);
    // Timeouts from before the crash for the same round do not make it sign again.
    let actions = h.timeout(TimeoutKind::Propose, 0);
    assert!(broadcasts(&actions).is_empty());
    let actions = h.timeout(TimeoutKind::Prevote, 0);
    assert!(broadcasts(&actions).is_empty());
}

#[test]
fn non_validator_follows_without_signing() {
    let keys = keys();
    let set = set_of(&keys);
    let observer = SigningKey::from([42u8; 32]);
    let mut machine = Tendermint::new(config(&observer), 0);
    let mut app = TestApp {
        invalid: HashSet::new(),
    };
    let mut actions = Vec::new();
    machine
        .handle(
            Event::StartHeight {
                height: 0,
                validator_set: set.clone(),
            },
            &mut app,
            &mut actions,
        )
        .expect("start");
    let v = value(0, 0);
    let proposal = SignedMessage::sign(
        Body::Proposal {
            height: 0,
            round: 0,
            value: v,
            valid_round: None,
        },
        NETWORK_ID,
        &keys[0],
    );
    let mut messages = vec![proposal];
    for key in &keys[..3] {
        messages.push(SignedMessage::sign(
            vote(VoteKind::Precommit, 0, 0, Some(v)),
            NETWORK_ID,
            key,
        ));
    }
    for message in messages {
        let verified = message.verify(&set).expect("valid");
        machine
            .handle(Event::Message(verified), &mut app, &mut actions)
            .expect("accepted");
    }
    assert!(!actions.iter().any(|a| matches!(a, Action::Broadcast(_))));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Decide(d) if d.value == v)));
}
