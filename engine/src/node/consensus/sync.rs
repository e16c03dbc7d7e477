//! Block sync: a lagging validator asks its peers for decided blocks; a validator serves
//! them from its live log or its archive, and takes a synced block only with a certificate
//! of the validator set that extends its own chain.

use super::*;

impl<C: Clock, L: Links> Driver<C, L> {
    pub(super) fn request_sync(&mut self, peer: Option<&[u8; 32]>) {
        if self
            .last_sync_request
            .is_some_and(|at| self.since(at) < SYNC_REQUEST_GAP)
        {
            return;
        }
        self.last_sync_request = Some(self.now());
        self.last_sync_from = self.host.tip.height + 1;
        let from = (self.host.tip.height + 1).to_le_bytes();
        match peer {
            Some(peer) => {
                let _ = self.host.links.send(peer, wire::KIND_SYNC_REQUEST, &from);
            }
            None => {
                self.host.links.broadcast(wire::KIND_SYNC_REQUEST, &from);
            }
        }
    }

    /// A peer still voting at a height this node has decided lags (it missed the decision):
    /// send it the blocks from that height, at most every [`LAGGING_PEER_GAP`] per peer.
    /// Messages that merely arrive late (right after the decision) are left alone.
    pub(super) fn help_lagging_peer(&mut self, peer: &[u8; 32], height: u64) {
        let late_copy =
            height == self.host.tip.height && self.since(self.committed_at) < LAGGING_PEER_GAP;
        let recently = self
            .helped
            .get(peer)
            .is_some_and(|at| self.since(*at) < LAGGING_PEER_GAP);
        if late_copy || recently {
            return;
        }
        let now = self.now();
        self.helped.insert(*peer, now);
        self.serve_sync(peer, height);
    }

    /// Sends the proposal bodies and consensus messages of the current height to `peer` (or
    /// to all).
    pub(super) fn send_height_state(&self, peer: Option<&[u8; 32]>) {
        let height = self.machine.height();
        let links = &self.host.links;
        let send = |kind: u8, payload: &[u8]| match peer {
            Some(peer) => {
                let _ = links.send(peer, kind, payload);
            }
            None => {
                links.broadcast(kind, payload);
            }
        };
        // In id order: what leaves does not hang on a map's iteration order.
        let mut bodies: Vec<(&BlockId, &ProposalBody)> = self
            .host
            .proposals
            .iter()
            .filter(|(_, body)| body.header.height() == height)
            .collect();
        bodies.sort_unstable_by_key(|(id, _)| **id);
        for (_, body) in bodies {
            send(wire::KIND_PROPOSAL_BODY, &body.encode());
        }
        for message in self.machine.known_messages() {
            send(wire::KIND_CONSENSUS, &message.encode());
        }
    }

    /// Sends decided blocks from `from_height` on, read from the log.
    pub(super) fn serve_sync(&self, peer: &[u8; 32], from_height: u64) {
        if from_height == 0 || from_height > self.host.tip.height {
            return;
        }
        let last = self
            .host
            .tip
            .height
            .min(from_height + SYNC_BLOCKS_PER_REQUEST - 1);
        let count = (last - from_height + 1) as usize;
        let log = self.log.read().expect("log lock");
        let entries = match log.entries(from_height - 1) {
            Ok(entries) => entries,
            Err(LogError::SequenceArchived { .. }) => {
                drop(log);
                self.serve_sync_from_archive(peer, from_height, count);
                return;
            }
            Err(_) => return,
        };
        for item in entries.take(count) {
            let Ok((_, entry)) = item else { return };
            if self
                .host
                .links
                .send_bulk(peer, wire::KIND_SYNC_BLOCK, entry)
                .is_err()
            {
                return; // the link is full or down: the peer asks again
            }
        }
    }

    /// Sends `count` decided blocks from `from_height` on out of the archived log segments
    /// (a peer far behind asks for blocks the live log no longer holds); the peer asks
    /// again for what follows. Nothing is sent without an archive directory or when the
    /// archive does not hold them; a damaged archive is logged.
    pub(super) fn serve_sync_from_archive(&self, peer: &[u8; 32], from_height: u64, count: usize) {
        let Some(archive_dir) = &self.limits.archive_dir else {
            return;
        };
        let mut sent = 0;
        let read = crate::log::read_archived(archive_dir, from_height - 1, |_, entry| {
            if self
                .host
                .links
                .send_bulk(peer, wire::KIND_SYNC_BLOCK, entry)
                .is_err()
            {
                return false; // the link is full or down: the peer asks again
            }
            sent += 1;
            sent < count
        });
        if let Err(error) = read {
            tracing::error!(%error, from_height, "cannot serve block sync from the archive");
        }
    }

    /// A decided block from a peer: checked against the validator set, then committed.
    pub(super) fn on_sync_block(&mut self, peer: &[u8; 32], entry: &[u8]) -> Result<(), Fatal> {
        let view = block::decode_entry(entry).expect("decoded by wire::decode");
        let height = view.header.height();
        if height != self.host.tip.height + 1 {
            if height > self.host.tip.height + 1 {
                self.request_sync(Some(peer));
            }
            return Ok(());
        }
        let refuse = |reason: String| {
            tracing::warn!(peer = %hex::encode(&peer[..8]), height, %reason, "refusing a sync block");
        };
        let Some(certificate_bytes) = view.certificate else {
            refuse("no certificate".into());
            return Ok(());
        };
        let certificate = match Certificate::decode(certificate_bytes) {
            Ok(certificate) => certificate,
            Err(error) => {
                refuse(error.to_string());
                return Ok(());
            }
        };
        let id = block::proposal_id(&view.header);
        if certificate.height != height || certificate.value != id {
            refuse("the certificate is for another block".into());
            return Ok(());
        }
        if let Err(error) = certificate.verify(&self.host.set) {
            refuse(error.to_string());
            return Ok(());
        }
        let body = ProposalBody {
            header: block::unsealed(&view.header),
            records: view.records.to_vec(),
        };
        let claimed = view.header;
        self.commit(body, certificate, Some(&claimed))?;
        if self.repairing {
            // The machine, restored from its state beyond the cut block, is kept (a fresh
            // one could sign a second vote for a slot it signed before the crash); it goes on
            // once the chain reaches the height before its own.
            if self.machine.height() == self.host.tip.height + 1 {
                self.repairing = false;
                tracing::info!(height, "damaged log entry repaired from a peer's copy");
            }
            return Ok(());
        }
        // The machine was at this height (or waiting for it): move it on.
        let machine_config = MachineConfig {
            signing_key: self.config.signing_key,
            timeouts: self.config.timeouts,
        };
        self.machine = Tendermint::new(machine_config, self.host.tip.height + 1);
        self.undelivered = None;
        self.timers.clear();
        // The last block a request can bring: ask for the next ones at once, so a validator
        // far behind catches up as fast as it executes, not one request per gap.
        if self.host.tip.height + 1 >= self.last_sync_from + SYNC_BLOCKS_PER_REQUEST {
            self.last_sync_request = None;
            self.request_sync(Some(peer));
        }
        Ok(())
    }
}
