//! A validator's configuration: its key, where it listens, its peers and its timeouts.

use crate::consensus::TimeoutConfig;
use ed25519_zebra::SigningKey;
use std::sync::Arc;
use std::time::Duration;

/// How a node takes part in a network of validators.
#[derive(Clone)]
pub struct ValidatorConfig {
    pub signing_key: SigningKey,
    /// Where the other validators connect.
    pub listen: std::net::SocketAddr,
    /// An already bound listener for `listen` (tests bind every node's port first).
    pub listener: Option<Arc<std::net::TcpListener>>,
    /// Every other validator of the current set (public key and address), and any
    /// candidate or follower to link with.
    pub peers: Vec<crate::net::peers::PeerSpec>,
    /// Not a validator yet: follow the chain until the authorities vote this key in.
    pub candidate: bool,
    pub timeouts: TimeoutConfig,
    /// A proposer with nothing to propose waits this long before proposing an empty block
    /// (which moves the clock on, so queued payments expire and retries run).
    pub empty_block_interval: Duration,
    /// Most verified transactions waiting for a block.
    pub pool_tx_max: usize,
    /// Reconnect backoff of the validator links.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Per-peer queued outbound bytes.
    pub peer_out_bytes_max: usize,
    /// TLS of the validator links (the node's identity); `None`: plain TCP
    /// (`--insecure-plaintext`).
    pub tls: Option<Arc<crate::net::tls::NodeTls>>,
}

impl ValidatorConfig {
    /// Defaults for a validator with `signing_key`, listening on `listen`.
    pub fn new(
        signing_key: SigningKey,
        listen: std::net::SocketAddr,
        peers: Vec<crate::net::peers::PeerSpec>,
    ) -> ValidatorConfig {
        ValidatorConfig {
            signing_key,
            listen,
            listener: None,
            peers,
            candidate: false,
            timeouts: TimeoutConfig {
                propose_ms: 1_500,
                propose_delta_ms: 500,
                prevote_ms: 500,
                prevote_delta_ms: 250,
                precommit_ms: 500,
                precommit_delta_ms: 250,
            },
            empty_block_interval: Duration::from_millis(500),
            pool_tx_max: 131_072,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            peer_out_bytes_max: 64 * 1024 * 1024,
            tls: None,
        }
    }
}

impl std::fmt::Debug for ValidatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorConfig")
            .field("listen", &self.listen)
            .field("peers", &self.peers.len())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}
