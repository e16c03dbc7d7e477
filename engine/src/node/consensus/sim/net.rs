//! A simulated validator's clock and links. The clock reads the simulation's time; the
//! links queue frames in the simulation's outbox, which delivers them with the network's
//! faults. The links of an honest validator also check, at the moment a consensus message
//! of its own leaves, that the message is in its durable consensus state: a validator
//! that restarts must never sign a second, different vote (docs/PROTOCOL.md, part 3).

use super::ClusterSimFailure;
use crate::consensus::wire;
use crate::consensus::SignedMessage;
use crate::log::consensus_state as state_file;
use crate::net::peers::PeerSendError;
use crate::node::consensus::io::{Clock, Links};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Wall time of simulated millisecond 0 (1 January 2026), so block times look real.
pub(super) const WALL_MS_AT_START: u64 = 1_767_225_600_000;

/// The simulation's time, shared by every validator of a run.
#[derive(Clone, Debug)]
pub(super) struct SimClock {
    pub(super) base: Instant,
    pub(super) now_ms: Rc<Cell<u64>>,
}

impl SimClock {
    /// The simulated millisecond of `instant`, rounded up.
    pub(super) fn ms_of(&self, instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(self.base);
        since.as_millis() as u64 + u64::from(!since.subsec_nanos().is_multiple_of(1_000_000))
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms.get())
    }

    fn wall_ms(&self) -> u64 {
        WALL_MS_AT_START + self.now_ms.get()
    }
}

/// A frame one validator sent another.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) kind: u8,
    pub(super) payload: Vec<u8>,
}

/// What the links of an honest validator check when one of its own consensus messages
/// leaves.
#[derive(Debug)]
pub(super) struct DurableVotes {
    pub(super) data_dir: PathBuf,
    pub(super) failure: Rc<RefCell<Option<ClusterSimFailure>>>,
}

/// The links of validator `node` to every other validator of the run.
#[derive(Debug)]
pub(super) struct SimLinks {
    pub(super) node: usize,
    /// Every validator's key, in node order.
    pub(super) keys: Rc<Vec<[u8; 32]>>,
    pub(super) outbox: Rc<RefCell<Vec<Outgoing>>>,
    pub(super) durable_votes: Option<DurableVotes>,
}

impl SimLinks {
    fn queue(&self, to: usize, kind: u8, payload: &[u8]) {
        if kind == wire::KIND_CONSENSUS {
            self.check_durable(payload);
        }
        self.outbox.borrow_mut().push(Outgoing {
            from: self.node,
            to,
            kind,
            payload: payload.to_vec(),
        });
    }

    /// An own message must be among the own messages of the durable state of its height.
    fn check_durable(&self, payload: &[u8]) {
        let Some(check) = &self.durable_votes else {
            return;
        };
        let Ok(message) = SignedMessage::decode(payload) else {
            return;
        };
        if *message.sender() != self.keys[self.node] {
            return; // relayed
        }
        let height = message.body().height();
        let durable = match state_file::read(&check.data_dir) {
            Ok(Some(state)) if state.height > height => true, // an older height's message
            Ok(Some(state)) => state.height == height && state.own_messages.contains(&message),
            Ok(None) | Err(_) => false,
        };
        if !durable {
            let mut failure = check.failure.borrow_mut();
            failure.get_or_insert(ClusterSimFailure::UndurableVote {
                node: self.node,
                height,
                round: message.body().round(),
            });
        }
    }

    fn index_of(&self, peer: &[u8; 32]) -> Result<usize, PeerSendError> {
        self.keys
            .iter()
            .position(|key| key == peer)
            .filter(|&index| index != self.node)
            .ok_or(PeerSendError::UnknownPeer)
    }
}

impl Links for SimLinks {
    fn send(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError> {
        let to = self.index_of(peer)?;
        self.queue(to, kind, payload);
        Ok(())
    }

    fn send_bulk(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError> {
        self.send(peer, kind, payload)
    }

    fn broadcast(&self, kind: u8, payload: &[u8]) -> usize {
        let peers = (0..self.keys.len()).filter(|&to| to != self.node);
        peers.map(|to| self.queue(to, kind, payload)).count()
    }

    fn broadcast_bulk(&self, kind: u8, payload: &[u8]) -> usize {
        self.broadcast(kind, payload)
    }

    fn connected(&self) -> Vec<[u8; 32]> {
        let peers = self
            .keys
            .iter()
            .enumerate()
            .filter(|(to, _)| *to != self.node);
        peers.map(|(_, key)| *key).collect()
    }
}
