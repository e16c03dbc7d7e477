//! The consensus stage's seams to the world outside it, so that the same driver, host, pool
//! and block sync run in a node and in the deterministic simulator
//! ([`crate::validator::sim`]):
//!
//! - [`Clock`]: the monotonic time its timers use and the wall time a proposal carries;
//! - [`Links`]: the validator links it sends frames on (frames arrive as
//!   [`crate::net::peers::PeerEvent`]s, which the stage's owner feeds in);
//! - storage is the real log, consensus state file and checkpoints over a
//!   [`crate::log::FileOps`], the seam at which the simulator loses unsynced writes and
//!   tears them at a crash.

use crate::net::peers::{PeerLinks, PeerSendError};
use std::time::Instant;

/// Time as the consensus stage sees it.
pub(crate) trait Clock {
    /// Monotonic time, for timeouts and intervals.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch, for the timestamps of proposals.
    fn wall_ms(&self) -> u64;
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        crate::node::now_ms()
    }
}

/// The validator links as the consensus stage uses them (see [`PeerLinks`] for the meaning
/// of each call: the ordinary lane for consensus messages, the bulk lane for transactions
/// and blocks).
pub(crate) trait Links {
    fn send(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError>;
    fn send_bulk(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError>;
    /// Returns how many peers the frame was queued for.
    fn broadcast(&self, kind: u8, payload: &[u8]) -> usize;
    fn broadcast_bulk(&self, kind: u8, payload: &[u8]) -> usize;
    /// Peers with a live link.
    fn connected(&self) -> Vec<[u8; 32]>;
}

impl Links for PeerLinks {
    fn send(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError> {
        PeerLinks::send(self, peer, kind, payload)
    }

    fn send_bulk(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError> {
        PeerLinks::send_bulk(self, peer, kind, payload)
    }

    fn broadcast(&self, kind: u8, payload: &[u8]) -> usize {
        PeerLinks::broadcast(self, kind, payload)
    }

    fn broadcast_bulk(&self, kind: u8, payload: &[u8]) -> usize {
        PeerLinks::broadcast_bulk(self, kind, payload)
    }

    fn connected(&self) -> Vec<[u8; 32]> {
        PeerLinks::connected(self)
    }
}
