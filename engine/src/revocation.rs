//! The certificate revocation list a node enforces on its ports (docs/SECURITY.md,
//! "Revocation"): the node configuration's `revoked`, the ledger's list at start (the genesis's
//! `revoked` and every committed revocation, kind 14), and each revocation as its block
//! commits. It lives beside the node and the network server, since both use it: the commit
//! stage adds to it, the TLS check of every new connection reads it, and the client server
//! closes open connections whose serial it gains.

use std::collections::HashSet;
use std::sync::RwLock;

/// Serial numbers (hex) of revoked certificates, shared by a node's ports and changed while
/// they run.
#[derive(Debug, Default)]
pub struct Revocations {
    serials: RwLock<HashSet<String>>,
    /// Revocations so far: the ports look for open connections to close when it moves.
    generation: std::sync::atomic::AtomicU64,
}

impl Revocations {
    pub fn new(serials: impl IntoIterator<Item = String>) -> Revocations {
        Revocations {
            serials: RwLock::new(serials.into_iter().map(|s| s.to_lowercase()).collect()),
            generation: Default::default(),
        }
    }

    /// Adds a serial; returns whether it was new. New connections with it are refused at
    /// once; the client server closes the open ones at its next turn: at once after a
    /// committed block (its acknowledgements wake the server), else within its timeout sweep
    /// (a quarter of a second).
    pub fn revoke(&self, serial: &str) -> bool {
        let new = self
            .serials
            .write()
            .expect("revocations lock")
            .insert(serial.to_lowercase());
        if new {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        new
    }

    /// Moves at each new revocation.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a serial was revoked since `seen` (a generation this port last looked at),
    /// which it moves to the current one: the ports call it at each turn and look for open
    /// connections to close only when it says so.
    pub fn revoked_since(&self, seen: &mut u64) -> bool {
        let generation = self.generation();
        let moved = generation != *seen;
        *seen = generation;
        moved
    }

    pub fn is_revoked(&self, serial: &str) -> bool {
        self.serials
            .read()
            .expect("revocations lock")
            .contains(&serial.to_lowercase())
    }
}

/// The hex form of a serial's canonical bytes, as the TLS check reads serials.
pub fn serial_hex(serial: &[u8]) -> String {
    hex::encode(serial)
}
