//! Validator links: a full mesh of authenticated connections between the validators of a
//! network, kept by one thread running a mio poll loop (docs/PROTOCOL.md part 2, "Validator
//! links").
//!
//! - One connection per pair: the validator with the smaller public key dials, the other
//!   accepts; both directions carry frames. Dialling is non-blocking and retried with
//!   exponential backoff (`backoff_min` doubling up to `backoff_max`); a dropped link is
//!   re-dialled.
//! - Every new connection is mutually authenticated before any other frame: each side sends
//!   [`PeerHello`] (type `0x40`) with a fresh nonce, then [`PeerAuth`] (type `0x41`), its
//!   validator key's signature over the other side's nonce. A connection that breaks the
//!   handshake or the frame rules is closed with a specific [`Refusal`] (a warning and a
//!   counter in [`PeerStats`]); other links are never affected.
//! - Bounded buffers: at most `out_bytes_max` outbound bytes queued per peer (beyond it
//!   [`PeerLinks::send`] answers [`PeerSendError::Full`]); inbound frames go to the caller's
//!   (bounded) event channel, and while it is full no connection is read, so TCP pushes back
//!   on the senders.

use super::frame::{self, FrameError, RawFrame, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX};
use crossbeam::channel::{Sender, TrySendError};
use ed25519_zebra::{Signature, SigningKey, VerificationKey};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frame type of [`PeerHello`], the first frame each side sends on a validator link.
pub const PEER_HELLO: u8 = 0x40;
/// Frame type of [`PeerAuth`], the second frame each side sends.
pub const PEER_AUTH: u8 = 0x41;
/// Frame types the caller may send and receive on an authenticated link.
pub const PEER_FRAME_KINDS: RangeInclusive<u8> = 0x42..=0x7F;
/// Version of the validator-link handshake.
pub const PEER_PROTOCOL_VERSION: u16 = 1;
/// Payload bytes of a [`PeerHello`].
pub const PEER_HELLO_BYTES: usize = 112;
/// Payload bytes of a [`PeerAuth`].
pub const PEER_AUTH_BYTES: usize = 64;
/// Domain tag at the front of the bytes a [`PeerAuth`] signature covers. It separates link
/// signatures from consensus (`TALLY-BFT-V1`) and transaction (`TALLY-TX-V1`) signatures.
pub const PEER_AUTH_DOMAIN_TAG: [u8; 16] = *b"TALLY-PEER-V1\0\0\0";
/// Bytes a [`PeerAuth`] signature covers (see [`auth_signing_bytes`]).
pub const PEER_AUTH_SIGNING_BYTES: usize = 16 + 8 + 32 + 32 + 32 + 32;
/// How long a new connection (dialled or accepted) may take to connect and authenticate.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections being authenticated at once; one more accepted is closed at once.
pub const HANDSHAKES_MAX: usize = 64;
/// A link with nothing received for this long is probed by TCP keepalive.
pub const LINK_KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// Time between keepalive probes.
pub const LINK_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// Unanswered keepalive probes after which the kernel closes the link.
pub const LINK_KEEPALIVE_PROBES: u32 = 3;
/// Sent bytes left unacknowledged by the peer for this long close the link (Linux
/// `TCP_USER_TIMEOUT`): a peer whose machine or network died is noticed in seconds, not after
/// the kernel's retransmission limit of about 15 minutes.
pub const LINK_UNACKNOWLEDGED_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes read from a socket at a time when no larger frame is expected.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Most socket reads for one connection per loop turn, so that one busy link cannot starve
/// the others.
const READS_PER_TURN_MAX: usize = 32;
/// Poll timeout while the event channel is full.
const BLOCKED_RETRY: Duration = Duration::from_millis(5);

/// Bulk bytes moved into a connection's output at a time (see `take_queued`).
const BULK_CHUNK_BYTES: usize = 256 * 1024;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// One other validator: its key and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    pub public_key: [u8; 32],
    pub addr: SocketAddr,
}

/// Configuration of the validator links of one node.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Where other validators connect to this one (ignored by
    /// [`PeerLinks::start_with_listener`]).
    pub listen: SocketAddr,
    /// Every other validator (this node's own key excluded).
    pub peers: Vec<PeerSpec>,
    pub network_id: u64,
    pub genesis_hash: [u8; 32],
    /// First reconnect delay; doubles after each failed attempt up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Most outbound bytes queued per peer (frames included whole); beyond it `send`
    /// answers [`PeerSendError::Full`]. At least one largest frame.
    pub out_bytes_max: usize,
}

impl PeerConfig {
    /// Checks the configuration against this node's own key; the error names the field.
    pub fn check(&self, own_key: &[u8; 32]) -> Result<(), String> {
        if self.backoff_min.is_zero() {
            return Err("backoff_min must be above zero".into());
        }
        if self.backoff_max < self.backoff_min {
            return Err(format!(
                "backoff_max ({:?}) must be at least backoff_min ({:?})",
                self.backoff_max, self.backoff_min
            ));
        }
        if self.out_bytes_max < frame::FRAME_BYTES_MAX {
            return Err(format!(
                "out_bytes_max ({}) must be at least one frame ({} bytes)",
                self.out_bytes_max,
                frame::FRAME_BYTES_MAX
            ));
        }
        for (i, peer) in self.peers.iter().enumerate() {
            if &peer.public_key == own_key {
                return Err(format!(
                    "peers[{i}] is this node's own key {}: list only the other validators",
                    hex::encode(peer.public_key)
                ));
            }
            if self.peers[..i]
                .iter()
                .any(|p| p.public_key == peer.public_key)
            {
                return Err(format!(
                    "peers[{i}]: key {} is listed twice",
                    hex::encode(peer.public_key)
                ));
            }
            if VerificationKey::try_from(peer.public_key).is_err() {
                return Err(format!(
                    "peers[{i}]: {} is not an Ed25519 public key",
                    hex::encode(peer.public_key)
                ));
            }
        }
        Ok(())
    }
}

/// What the links report to the caller, in order per peer: `Connected`, its frames in the
/// order they were sent, `Disconnected`, and again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A link to `peer` is authenticated; frames can be sent to it.
    Connected { peer: [u8; 32] },
    /// The link to `peer` closed; frames queued for it were dropped.
    Disconnected { peer: [u8; 32], reason: String },
    /// A frame from `peer`; `kind` is in [`PEER_FRAME_KINDS`].
    Frame {
        peer: [u8; 32],
        kind: u8,
        payload: Vec<u8>,
    },
}

/// Why the links cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("invalid validator link configuration: {0}")]
    Config(String),
    #[error("cannot listen for validators on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot set up the validator link poll loop: {0}")]
    Poll(io::Error),
}

/// Why a frame was not queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerSendError {
    #[error("the outbound queue to this validator is full (out_bytes_max); send it again later")]
    Full,
    #[error("no authenticated link to this validator at the moment")]
    NotConnected,
    #[error("this public key is not one of the configured validators")]
    UnknownPeer,
    #[error("the validator links have stopped")]
    Stopped,
    #[error("frame type {0:#04x} cannot be sent on a validator link: types 0x42..=0x7f only")]
    InvalidKind(u8),
    #[error("payload of {0} bytes is over the frame maximum of {FRAME_PAYLOAD_BYTES_MAX}")]
    Oversized(usize),
}

/// How many kinds of [`Refusal`] there are.
pub const REFUSAL_KINDS: usize = 14;

/// Reads the [`PeerStats`] of a [`PeerLinks`] (see [`PeerLinks::stats_handle`]).
#[derive(Clone)]
pub struct PeerStatsHandle(Arc<Shared>);

impl PeerStatsHandle {
    /// Counters since the links started.
    pub fn stats(&self) -> PeerStats {
        self.0.stats()
    }
}

impl std::fmt::Debug for PeerStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PeerStatsHandle").finish_non_exhaustive()
    }
}

/// Why a connection was closed by this node: each refusal has a counter in [`PeerStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The hello named a key that is not a configured validator.
    UnknownKey,
    /// The validator dialled answered with another key.
    WrongPeer,
    /// A validator with the larger key dialled this one: the smaller key dials.
    DialRule,
    /// The hello spoke another handshake version.
    VersionMismatch,
    /// The hello named another network id.
    WrongNetwork,
    /// The hello named another genesis hash.
    WrongGenesis,
    /// A hello or auth payload that does not decode, or an oversized frame before
    /// authentication.
    BadHandshake,
    /// The auth signature does not verify.
    BadSignature,
    /// A frame other than the next handshake frame before authentication.
    BeforeAuth,
    /// A handshake frame on an authenticated link.
    UnexpectedHandshake,
    /// A type outside `0x40..=0x7F` (client protocol or unknown).
    ClientType,
    /// A frame that does not decode (oversized, reserved bytes, checksum, truncated).
    BadFrame,
    /// Not authenticated within [`HANDSHAKE_TIMEOUT`].
    HandshakeTimeout,
    /// [`HANDSHAKES_MAX`] connections were already being authenticated.
    TooManyHandshakes,
}

impl Refusal {
    /// Every refusal, in the order of [`PeerStats::refused`].
    pub const ALL: [Refusal; REFUSAL_KINDS] = [
        Refusal::UnknownKey,
        Refusal::WrongPeer,
        Refusal::DialRule,
        Refusal::VersionMismatch,
        Refusal::WrongNetwork,
        Refusal::WrongGenesis,
        Refusal::BadHandshake,
        Refusal::BadSignature,
        Refusal::BeforeAuth,
        Refusal::UnexpectedHandshake,
        Refusal::ClientType,
        Refusal::BadFrame,
        Refusal::HandshakeTimeout,
        Refusal::TooManyHandshakes,
    ];

    /// snake_case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownKey => "unknown_key",
            Refusal::WrongPeer => "wrong_peer",
            Refusal::DialRule => "dial_rule",
            Refusal::VersionMismatch => "version_mismatch",
            Refusal::WrongNetwork => "wrong_network",
            Refusal::WrongGenesis => "wrong_genesis",
            Refusal::BadHandshake => "bad_handshake",
            Refusal::BadSignature => "bad_signature",
            Refusal::BeforeAuth => "before_auth",
            Refusal::UnexpectedHandshake => "unexpected_handshake",
            Refusal::ClientType => "client_type",
            Refusal::BadFrame => "bad_frame",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::TooManyHandshakes => "too_many_handshakes",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every refusal is in ALL")
    }
}

/// Counters of the validator links since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Frames queued by `send` and `broadcast` (one per peer).
    pub frames_sent: u64,
    /// Frames delivered as [`PeerEvent::Frame`].
    pub frames_received: u64,
    /// Bytes written to validator sockets (handshakes included).
    pub bytes_sent: u64,
    /// Bytes read from validator sockets.
    pub bytes_received: u64,
    /// Connection attempts this node started.
    pub dials: u64,
    /// Attempts that failed before authentication without a refusal (refused, reset,
    /// timed out).
    pub dial_failures: u64,
    /// Links authenticated.
    pub links_established: u64,
    /// Links authenticated to a validator that had been linked before.
    pub reconnects: u64,
    /// Live links closed because the same validator authenticated a new connection (it
    /// restarted, or its side of the old link died unnoticed).
    pub links_replaced: u64,
    /// Connections closed by this node, per [`Refusal`] in the order of [`Refusal::ALL`].
    pub refused: [u64; REFUSAL_KINDS],
}

impl PeerStats {
    /// Connections closed for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()]
    }

    /// Connections closed for any reason.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }
}

/// Why a handshake payload does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("peer hello of {0} bytes, expected {PEER_HELLO_BYTES}")]
    HelloLength(usize),
    #[error("peer hello reserved bytes must be zero, got {0:02x?}")]
    HelloReserved([u8; 6]),
    #[error("peer auth of {0} bytes, expected {PEER_AUTH_BYTES}")]
    AuthLength(usize),
}

/// The first frame each side sends (type `0x40`).
///
/// ```text
/// offset size field
///      0    2 version (u16 LE)
///      2    6 reserved, zero
///      8    8 network id (u64 LE)
///     16   32 genesis hash
///     48   32 sender's validator public key
///     80   32 nonce: fresh random bytes for this connection
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHello {
    pub version: u16,
    pub network_id: u64,
    pub genesis_hash: [u8; 32],
    pub public_key: [u8; 32],
    pub nonce: [u8; 32],
}

impl PeerHello {
    /// The payload bytes.
    pub fn to_bytes(&self) -> [u8; PEER_HELLO_BYTES] {
        let mut out = [0u8; PEER_HELLO_BYTES];
        out[..2].copy_from_slice(&self.version.to_le_bytes());
        out[8..16].copy_from_slice(&self.network_id.to_le_bytes());
        out[16..48].copy_from_slice(&self.genesis_hash);
        out[48..80].copy_from_slice(&self.public_key);
        out[80..112].copy_from_slice(&self.nonce);
        out
    }

    /// Appends the whole frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::encode_raw(PEER_HELLO, &[&self.to_bytes()], out);
    }

    /// Decodes a payload. The version is returned as sent (the link checks it).
    pub fn decode(payload: &[u8]) -> Result<PeerHello, HandshakeError> {
        if payload.len() != PEER_HELLO_BYTES {
            return Err(HandshakeError::HelloLength(payload.len()));
        }
        let reserved: [u8; 6] = payload[2..8].try_into().expect("6 bytes");
        if reserved != [0; 6] {
            return Err(HandshakeError::HelloReserved(reserved));
        }
        Ok(PeerHello {
            version: u16::from_le_bytes(payload[..2].try_into().expect("2 bytes")),
            network_id: u64::from_le_bytes(payload[8..16].try_into().expect("8 bytes")),
            genesis_hash: payload[16..48].try_into().expect("32 bytes"),
            public_key: payload[48..80].try_into().expect("32 bytes"),
            nonce: payload[80..112].try_into().expect("32 bytes"),
        })
    }
}

/// The second frame each side sends (type `0x41`): a 64-byte Ed25519 signature over
/// [`auth_signing_bytes`] with the sender as signer and the other side's nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAuth {
    pub signature: [u8; 64],
}

impl PeerAuth {
    /// Signs for the link from `key` (the signer) to `receiver`, answering its `nonce`.
    pub fn sign(
        key: &SigningKey,
        network_id: u64,
        genesis_hash: &[u8; 32],
        receiver: &[u8; 32],
        receiver_nonce: &[u8; 32],
    ) -> PeerAuth {
        let signer: [u8; 32] = VerificationKey::from(key).into();
        let message =
            auth_signing_bytes(network_id, genesis_hash, &signer, receiver, receiver_nonce);
        PeerAuth {
            signature: key.sign(&message).to_bytes(),
        }
    }

    /// Checks the signature of `signer` (ZIP-215, the project's one rule).
    pub fn verify(
        &self,
        signer: &VerificationKey,
        network_id: u64,
        genesis_hash: &[u8; 32],
        receiver: &[u8; 32],
        receiver_nonce: &[u8; 32],
    ) -> bool {
        let signer_bytes: [u8; 32] = (*signer).into();
        let message = auth_signing_bytes(
            network_id,
            genesis_hash,
            &signer_bytes,
            receiver,
            receiver_nonce,
        );
        signer
            .verify(&Signature::from_bytes(&self.signature), &message)
            .is_ok()
    }

    /// Appends the whole frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::encode_raw(PEER_AUTH, &[&self.signature], out);
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8]) -> Result<PeerAuth, HandshakeError> {
        let signature: [u8; 64] = payload
            .try_into()
            .map_err(|_| HandshakeError::AuthLength(payload.len()))?;
        Ok(PeerAuth { signature })
    }
}

/// The bytes a [`PeerAuth`] signature covers: domain tag, network id (u64 LE), genesis
/// hash, signer's key, receiver's key, receiver's nonce.
pub fn auth_signing_bytes(
    network_id: u64,
    genesis_hash: &[u8; 32],
    signer: &[u8; 32],
    receiver: &[u8; 32],
    receiver_nonce: &[u8; 32],
) -> [u8; PEER_AUTH_SIGNING_BYTES] {
    let mut out = [0u8; PEER_AUTH_SIGNING_BYTES];
    out[..16].copy_from_slice(&PEER_AUTH_DOMAIN_TAG);
    out[16..24].copy_from_slice(&network_id.to_le_bytes());
    out[24..56].copy_from_slice(genesis_hash);
    out[56..88].copy_from_slice(signer);
    out[88..120].copy_from_slice(receiver);
    out[120..152].copy_from_slice(receiver_nonce);
    out
}

/// Why bytes on a validator link are not a frame the link takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerFrameError {
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("message type {0:#04x} is not a validator-link type (0x40..=0x7f)")]
    ClientType(u8),
}

/// Decodes the frame at the front of a validator link's buffer: `Ok(None)` until it has
/// arrived whole; types outside `0x40..=0x7F` are refused.
pub fn decode_peer_frame(buf: &[u8]) -> Result<Option<(RawFrame<'_>, usize)>, PeerFrameError> {
    match frame::decode_raw(buf)? {
        Some((raw, _)) if !frame::VALIDATOR_TYPES.contains(&raw.kind) => {
            Err(PeerFrameError::ClientType(raw.kind))
        }
        other => Ok(other),
    }
}

/// Decodes every frame at the front of `bytes` the way a validator link does, and each
/// handshake payload, until the bytes run out or one is refused; returns how many frames
/// decoded. The fuzz target (`fuzz/fuzz_targets/net_decode.rs`) and the seeded fuzz test
/// feed it hostile bytes: it must never panic.
pub fn decode_all_peer(mut bytes: &[u8]) -> usize {
    let mut frames = 0;
    while let Ok(Some((raw, used))) = decode_peer_frame(bytes) {
        frames += 1;
        match raw.kind {
            PEER_HELLO => {
                if let Ok(hello) = PeerHello::decode(raw.payload) {
                    assert_eq!(hello.to_bytes().as_slice(), raw.payload);
                }
            }
            PEER_AUTH => {
                if let Ok(auth) = PeerAuth::decode(raw.payload) {
                    assert_eq!(auth.signature.as_slice(), raw.payload);
                }
            }
            _ => {}
        }
        bytes = &bytes[used..];
    }
    frames
}

/// Per-peer outbound state shared between callers and the link thread.
struct Slot {
    key: [u8; 32],
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// An authenticated link is up.
    live: bool,
    /// Encoded frames not yet taken by the link thread.
    out: Vec<u8>,
    /// Encoded bulk frames (see [`PeerLinks::broadcast_bulk`]), taken only when the
    /// connection's output is nearly empty.
    bulk: Vec<u8>,
    /// Bytes queued for this peer and not yet written: `out` plus what the link thread took
    /// and has not written. Bounded by `out_bytes_max`.
    queued: usize,
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    dials: AtomicU64,
    dial_failures: AtomicU64,
    links_established: AtomicU64,
    reconnects: AtomicU64,
    links_replaced: AtomicU64,
    refused: [AtomicU64; REFUSAL_KINDS],
}

struct Shared {
    /// Sorted by key.
    slots: Vec<Slot>,
    counters: Counters,
    waker: Waker,
    wake_pending: AtomicBool,
    stopped: AtomicBool,
    out_bytes_max: usize,
}

impl Shared {
    fn slot(&self, key: &[u8; 32]) -> Option<&Slot> {
        self.slots
            .binary_search_by(|s| s.key.cmp(key))
            .ok()
            .map(|i| &self.slots[i])
    }

    fn stats(&self) -> PeerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PeerStats {
            frames_sent: get(&c.frames_sent),
            frames_received: get(&c.frames_received),
            bytes_sent: get(&c.bytes_sent),
            bytes_received: get(&c.bytes_received),
            dials: get(&c.dials),
            dial_failures: get(&c.dial_failures),
            links_established: get(&c.links_established),
            reconnects: get(&c.reconnects),
            links_replaced: get(&c.links_replaced),
            refused: std::array::from_fn(|i| get(&c.refused[i])),
        }
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

fn lock(slot: &Slot) -> MutexGuard<'_, SlotState> {
    // A panic while holding the lock cannot leave the state half-written (each critical
    // section is a few field updates), so a poisoned lock is still usable.
    slot.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running validator links of one node.
pub struct PeerLinks {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl PeerLinks {
    /// Binds `config.listen` and starts the link thread. Events go to `events` (bounded by
    /// the caller: while it is full, no link is read).
    pub fn start(
        config: PeerConfig,
        key: SigningKey,
        events: Sender<PeerEvent>,
    ) -> Result<PeerLinks, PeerError> {
        config
            .check(&VerificationKey::from(&key).into())
            .map_err(PeerError::Config)?;
        let listener = TcpListener::bind(config.listen).map_err(|source| PeerError::Bind {
            addr: config.listen,
            source,
        })?;
        PeerLinks::start_inner(config, key, events, listener)
    }

    /// Like [`PeerLinks::start`], on a listener the caller has bound (so that every node's
    /// address is known before any starts); `config.listen` is ignored.
    pub fn start_with_listener(
        listener: std::net::TcpListener,
        config: PeerConfig,
        key: SigningKey,
        events: Sender<PeerEvent>,
    ) -> Result<PeerLinks, PeerError> {
        config
            .check(&VerificationKey::from(&key).into())
            .map_err(PeerError::Config)?;
        listener.set_nonblocking(true).map_err(PeerError::Poll)?;
        PeerLinks::start_inner(config, key, events, TcpListener::from_std(listener))
    }

    fn start_inner(
        config: PeerConfig,
        key: SigningKey,
        events: Sender<PeerEvent>,
        mut listener: TcpListener,
    ) -> Result<PeerLinks, PeerError> {
        let addr = listener.local_addr().map_err(PeerError::Poll)?;
        let poll = Poll::new().map_err(PeerError::Poll)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(PeerError::Poll)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(PeerError::Poll)?;
        let mut slots: Vec<Slot> = config
            .peers
            .iter()
            .map(|p| Slot {
                key: p.public_key,
                state: Mutex::new(SlotState::default()),
            })
            .collect();
        slots.sort_by_key(|s| s.key);
        let shared = Arc::new(Shared {
            slots,
            counters: Counters::default(),
            waker,
            wake_pending: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            out_bytes_max: config.out_bytes_max,
        });
        let own: [u8; 32] = VerificationKey::from(&key).into();
        let now = Instant::now();
        let mut peers = HashMap::new();
        let mut dials = HashMap::new();
        for spec in &config.peers {
            let vk = VerificationKey::try_from(spec.public_key).expect("checked by config.check");
            peers.insert(
                spec.public_key,
                PeerInfo {
                    key: vk,
                    ever_live: false,
                },
            );
            if own < spec.public_key {
                dials.insert(
                    spec.public_key,
                    Dial {
                        addr: spec.addr,
                        backoff: config.backoff_min,
                        next_attempt: now,
                        conn: None,
                    },
                );
            }
        }
        let mut io = LinkThread {
            own,
            key,
            config,
            poll,
            listener,
            shared: Arc::clone(&shared),
            events,
            events_gone: false,
            pending: VecDeque::new(),
            peers,
            dials,
            conns: HashMap::new(),
            next_token: FIRST_CONNECTION,
            more_work: false,
        };
        let thread = std::thread::Builder::new()
            .name("tally-peers".into())
            .spawn(move || io.run())
            .map_err(PeerError::Poll)?;
        Ok(PeerLinks {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// The address other validators connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues one frame for `peer`. Frames to one peer arrive in the order they were queued,
    /// while its link stays up; a link that drops loses what was queued on it.
    pub fn send(&self, peer: &[u8; 32], kind: u8, payload: &[u8]) -> Result<(), PeerSendError> {
        self.send_in(peer, kind, payload, false)
    }

    /// Queues one frame for every peer with a live link and room in its queue; returns how
    /// many it was queued for. An invalid kind or an oversized payload (caller bugs) is
    /// logged and queued for none.
    pub fn broadcast(&self, kind: u8, payload: &[u8]) -> usize {
        self.broadcast_in(kind, payload, false)
    }

    /// Like [`PeerLinks::broadcast`], in the bulk lane: these frames leave only when the
    /// link has little else to write, so frames sent the ordinary way (consensus messages)
    /// never wait behind megabytes of bulk (transactions, blocks for a lagging peer). Frames
    /// of one lane keep their order; the two lanes are not ordered with each other.
    pub fn broadcast_bulk(&self, kind: u8, payload: &[u8]) -> usize {
        self.broadcast_in(kind, payload, true)
    }

    /// Like [`PeerLinks::send`], in the bulk lane (see [`PeerLinks::broadcast_bulk`]).
    pub fn send_bulk(
        &self,
        peer: &[u8; 32],
        kind: u8,
        payload: &[u8],
    ) -> Result<(), PeerSendError> {
        self.send_in(peer, kind, payload, true)
    }

    fn send_in(
        &self,
        peer: &[u8; 32],
        kind: u8,
        payload: &[u8],
        bulk: bool,
    ) -> Result<(), PeerSendError> {
        check_frame(kind, payload)?;
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Err(PeerSendError::Stopped);
        }
        let slot = self.shared.slot(peer).ok_or(PeerSendError::UnknownPeer)?;
        self.queue_in(slot, kind, &[payload], bulk)?;
        self.shared.wake();
        Ok(())
    }

    fn broadcast_in(&self, kind: u8, payload: &[u8], bulk: bool) -> usize {
        if let Err(error) = check_frame(kind, payload) {
            tracing::error!(%error, "broadcast refused");
            return 0;
        }
        if self.shared.stopped.load(Ordering::SeqCst) {
            return 0;
        }
        let queued = self
            .shared
            .slots
            .iter()
            .filter(|slot| self.queue_in(slot, kind, &[payload], bulk).is_ok())
            .count();
        if queued > 0 {
            self.shared.wake();
        }
        queued
    }

    fn queue_in(
        &self,
        slot: &Slot,
        kind: u8,
        parts: &[&[u8]],
        bulk: bool,
    ) -> Result<(), PeerSendError> {
        let bytes = FRAME_HEADER_BYTES + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut state = lock(slot);
        if !state.live {
            return Err(PeerSendError::NotConnected);
        }
        if state.queued + bytes > self.shared.out_bytes_max {
            return Err(PeerSendError::Full);
        }
        let lane = if bulk {
            &mut state.bulk
        } else {
            &mut state.out
        };
        frame::encode_raw(kind, parts, lane);
        state.queued += bytes;
        drop(state);
        self.shared
            .counters
            .frames_sent
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Validators with a live link, sorted by key.
    pub fn connected(&self) -> Vec<[u8; 32]> {
        self.shared
            .slots
            .iter()
            .filter(|slot| lock(slot).live)
            .map(|slot| slot.key)
            .collect()
    }

    /// Counters since start.
    pub fn stats(&self) -> PeerStats {
        self.shared.stats()
    }

    /// A handle that reads [`Self::stats`] from elsewhere (the `/metrics` page) for as long
    /// as it lives, also after the links stopped.
    pub fn stats_handle(&self) -> PeerStatsHandle {
        PeerStatsHandle(self.shared.clone())
    }

    /// Closes every link and the listener and joins the thread. Queued frames are dropped;
    /// no further events are sent.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the validator link thread panicked");
            }
        }
    }
}

impl Drop for PeerLinks {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_frame(kind: u8, payload: &[u8]) -> Result<(), PeerSendError> {
    if !PEER_FRAME_KINDS.contains(&kind) {
        return Err(PeerSendError::InvalidKind(kind));
    }
    if payload.len() > FRAME_PAYLOAD_BYTES_MAX {
        return Err(PeerSendError::Oversized(payload.len()));
    }
    Ok(())
}

struct PeerInfo {
    key: VerificationKey,
    /// A link to it has been up before (the next one counts as a reconnect).
    ever_live: bool,
}

/// Dialling state for a validator with a larger key than this node's.
struct Dial {
    addr: SocketAddr,
    /// Delay before the next attempt after a failure.
    backoff: Duration,
    next_attempt: Instant,
    /// The connection of the attempt in progress or the live link.
    conn: Option<Token>,
}

enum Stage {
    /// Dialled, the TCP connection not yet established.
    Connecting,
    /// Our hello sent; waiting for theirs.
    AwaitHello,
    /// Hello exchanged, our auth sent; waiting for theirs.
    AwaitAuth { remote: [u8; 32], nonce: [u8; 32] },
    /// Authenticated.
    Live { peer: [u8; 32] },
}

struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    /// The validator this node dialled on this connection (None: accepted).
    dialled: Option<[u8; 32]>,
    started: Instant,
    stage: Stage,
    /// Our nonce for this connection.
    nonce: [u8; 32],
    read_buf: Vec<u8>,
    read_start: usize,
    /// Bytes to write: `out[out_start..]`.
    out: Vec<u8>,
    out_start: usize,
    /// Bytes at the front of the unwritten output that are not counted in the peer's
    /// `queued` (handshake frames).
    uncounted: usize,
    readable: bool,
    eof: bool,
}

impl Conn {
    fn live_peer(&self) -> Option<[u8; 32]> {
        match self.stage {
            Stage::Live { peer } => Some(peer),
            _ => None,
        }
    }
}

/// How a connection ends.
enum Close {
    /// Closed by this node for a reason that has a counter.
    Refused(Refusal, String),
    /// Ended otherwise (peer closed, socket error, connect failed).
    Ended(String),
}

struct LinkThread {
    own: [u8; 32],
    key: SigningKey,
    config: PeerConfig,
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    events: Sender<PeerEvent>,
    /// The receiver was dropped: events are discarded.
    events_gone: bool,
    /// Events not yet taken by the channel; while any wait, no connection is decoded.
    pending: VecDeque<PeerEvent>,
    peers: HashMap<[u8; 32], PeerInfo>,
    dials: HashMap<[u8; 32], Dial>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    /// A connection stopped with input left to read (read budget spent): poll again at once.
    more_work: bool,
}

impl LinkThread {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self.poll_timeout();
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(%error, "validator link poll failed; closing every link");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => {
                        if let Some(conn) = self.conns.get_mut(&token) {
                            if event.is_readable() || event.is_read_closed() {
                                conn.readable = true;
                            }
                        }
                    }
                }
            }
            if self.shared.stopped.load(Ordering::SeqCst) {
                break;
            }
            self.shared.wake_pending.store(false, Ordering::SeqCst);
            self.flush_events();
            self.dial_due();
            self.expire_handshakes();
            self.more_work = false;
            let tokens: Vec<Token> = self.conns.keys().copied().collect();
            for token in tokens {
                self.service(token);
            }
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
        for slot in &self.shared.slots {
            let mut state = lock(slot);
            state.live = false;
            state.out = Vec::new();
            state.bulk = Vec::new();
            state.queued = 0;
        }
        for (_, mut conn) in self.conns.drain() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        tracing::info!("validator links stopped");
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if self.more_work {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut wake_at: Option<Instant> = None;
        let mut consider = |at: Instant| {
            wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
        };
        for dial in self.dials.values() {
            if dial.conn.is_none() {
                consider(dial.next_attempt);
            }
        }
        for conn in self.conns.values() {
            if conn.live_peer().is_none() {
                consider(conn.started + HANDSHAKE_TIMEOUT);
            }
        }
        let mut timeout = wake_at.map(|at| at.saturating_duration_since(now));
        if !self.pending.is_empty() {
            timeout = Some(timeout.map_or(BLOCKED_RETRY, |t| t.min(BLOCKED_RETRY)));
        }
        // Round up so that a deadline has passed when the poll returns.
        timeout.map(|t| t + Duration::from_millis(1))
    }

    fn emit(&mut self, event: PeerEvent) {
        self.pending.push_back(event);
        self.flush_events();
    }

    fn flush_events(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            if self.events_gone {
                continue;
            }
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    tracing::warn!(
                        "the validator link event receiver is gone; events are dropped from now on"
                    );
                    self.events_gone = true;
                }
            }
        }
    }

    fn new_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    fn new_conn(&self, stream: TcpStream, addr: SocketAddr, dialled: Option<[u8; 32]>) -> Conn {
        let mut nonce = [0u8; 32];
        rand::fill(&mut nonce);
        let mut conn = Conn {
            stream,
            addr,
            dialled,
            started: Instant::now(),
            stage: if dialled.is_some() {
                Stage::Connecting
            } else {
                Stage::AwaitHello
            },
            nonce,
            read_buf: Vec::new(),
            read_start: 0,
            out: Vec::new(),
            out_start: 0,
            uncounted: 0,
            readable: true,
            eof: false,
        };
        if dialled.is_none() {
            self.send_hello(&mut conn);
        }
        conn
    }

    fn send_hello(&self, conn: &mut Conn) {
        let before = conn.out.len();
        PeerHello {
            version: PEER_PROTOCOL_VERSION,
            network_id: self.config.network_id,
            genesis_hash: self.config.genesis_hash,
            public_key: self.own,
            nonce: conn.nonce,
        }
        .encode(&mut conn.out);
        conn.uncounted += conn.out.len() - before;
    }

    fn handshakes(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.live_peer().is_none())
            .count()
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::warn!(%error, "accepting a validator connection failed");
                    return;
                }
            };
            if self.handshakes() >= HANDSHAKES_MAX {
                self.count_refusal(
                    Refusal::TooManyHandshakes,
                    addr,
                    &format!("{HANDSHAKES_MAX} connections are already being authenticated"),
                );
                continue;
            }
            let token = self.new_token();
            if let Err(error) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(%addr, %error, "cannot register a validator connection");
                continue;
            }
            configure_link_socket(&stream, addr);
            tracing::debug!(%addr, "validator connection accepted");
            let conn = self.new_conn(stream, addr, None);
            self.conns.insert(token, conn);
        }
    }

    fn dial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<[u8; 32]> = self
            .dials
            .iter()
            .filter(|(_, d)| d.conn.is_none() && d.next_attempt <= now)
            .map(|(k, _)| *k)
            .collect();
        for peer in due {
            let addr = self.dials[&peer].addr;
            self.shared.counters.dials.fetch_add(1, Ordering::Relaxed);
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    configure_link_socket(&stream, addr);
                    let token = self.new_token();
                    if let Err(error) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        tracing::warn!(%addr, %error, "cannot register a validator connection");
                        self.dial_failed(&peer);
                        continue;
                    }
                    let conn = self.new_conn(stream, addr, Some(peer));
                    self.conns.insert(token, conn);
                    self.dials.get_mut(&peer).expect("dial").conn = Some(token);
                }
                Err(error) => {
                    tracing::debug!(%addr, %error, peer = %short(&peer), "dialling a validator failed");
                    self.shared
                        .counters
                        .dial_failures
                        .fetch_add(1, Ordering::Relaxed);
                    self.dial_failed(&peer);
                }
            }
        }
    }

    /// Schedules the next attempt for `peer` after its backoff, and doubles the backoff.
    fn dial_failed(&mut self, peer: &[u8; 32]) {
        let max = self.config.backoff_max;
        if let Some(dial) = self.dials.get_mut(peer) {
            dial.conn = None;
            dial.next_attempt = Instant::now() + dial.backoff;
            dial.backoff = (dial.backoff * 2).min(max);
        }
    }

    fn expire_handshakes(&mut self) {
        let expired: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.live_peer().is_none() && c.started.elapsed() >= HANDSHAKE_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            let conn = self.conns.remove(&token).expect("listed");
            let close = if matches!(conn.stage, Stage::Connecting) {
                Close::Ended(format!(
                    "connecting did not finish within {HANDSHAKE_TIMEOUT:?}"
                ))
            } else {
                Close::Refused(
                    Refusal::HandshakeTimeout,
                    format!("not authenticated within {HANDSHAKE_TIMEOUT:?}"),
                )
            };
            self.close(conn, close);
        }
    }

    fn count_refusal(&self, reason: Refusal, addr: SocketAddr, text: &str) {
        self.shared.counters.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%addr, reason = reason.name(), detail = %text, "closing a validator connection");
    }

    /// Closes a connection (already removed from `conns`): counts and logs the reason, ends
    /// the peer's link and schedules the next dial.
    fn close(&mut self, mut conn: Conn, close: Close) {
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let text = match close {
            Close::Refused(reason, text) => {
                self.count_refusal(reason, conn.addr, &text);
                text
            }
            Close::Ended(text) => {
                if conn.live_peer().is_none() {
                    self.shared
                        .counters
                        .dial_failures
                        .fetch_add(u64::from(conn.dialled.is_some()), Ordering::Relaxed);
                    tracing::debug!(addr = %conn.addr, detail = %text, "validator connection ended before authentication");
                }
                text
            }
        };
        if let Some(peer) = conn.live_peer() {
            if let Some(slot) = self.shared.slot(&peer) {
                let mut state = lock(slot);
                state.live = false;
                state.out = Vec::new();
                state.bulk = Vec::new();
                state.queued = 0;
            }
            tracing::info!(addr = %conn.addr, peer = %short(&peer), reason = %text, "validator link down");
            self.emit(PeerEvent::Disconnected { peer, reason: text });
        }
        if let Some(peer) = conn.dialled {
            self.dial_failed(&peer);
        }
    }

    fn service(&mut self, token: Token) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        match self.service_conn(&mut conn) {
            Ok(()) => {
                self.conns.insert(token, conn);
            }
            Err(close) => self.close(conn, close),
        }
    }

    fn service_conn(&mut self, conn: &mut Conn) -> Result<(), Close> {
        if matches!(conn.stage, Stage::Connecting) {
            if let Some(error) = conn.stream.take_error().ok().flatten() {
                return Err(Close::Ended(format!("connect failed: {error}")));
            }
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.stage = Stage::AwaitHello;
                    self.send_hello(conn);
                }
                Err(error)
                    if error.kind() == io::ErrorKind::NotConnected
                        || error.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(());
                }
                Err(error) => return Err(Close::Ended(format!("connect failed: {error}"))),
            }
        }
        let mut reads = 0;
        loop {
            let bulk_left = self.take_queued(conn);
            self.write_out(conn)?;
            if bulk_left && conn.out_start == conn.out.len() {
                // The socket took everything: no writable event will come for the rest.
                self.more_work = true;
            }
            self.decode_buffered(conn)?;
            if !self.pending.is_empty() {
                // The event channel is full: leave the input in the socket (TCP pushes back).
                break;
            }
            if conn.eof {
                let rest = &conn.read_buf[conn.read_start..];
                if !rest.is_empty() {
                    let error = frame::truncated(rest);
                    return Err(Close::Refused(
                        Refusal::BadFrame,
                        format!("bad frame: {error}"),
                    ));
                }
                return Err(Close::Ended("the validator closed the connection".into()));
            }
            if !conn.readable {
                break;
            }
            if reads == READS_PER_TURN_MAX {
                self.more_work = true;
                break;
            }
            reads += 1;
            match self.read_some(conn) {
                Ok(true) => {}
                Ok(false) => {
                    conn.readable = false;
                    break;
                }
                Err(error) => return Err(Close::Ended(format!("read failed: {error}"))),
            }
        }
        self.write_out(conn)
    }

    /// Moves frames queued by callers into the connection's output: every ordinary frame,
    /// then bulk frames while less than [`BULK_CHUNK_BYTES`] wait to be written. Returns
    /// whether bulk frames are left behind.
    fn take_queued(&self, conn: &mut Conn) -> bool {
        let Some(peer) = conn.live_peer() else {
            return false;
        };
        let Some(slot) = self.shared.slot(&peer) else {
            return false;
        };
        let mut state = lock(slot);
        if !state.out.is_empty() {
            if conn.out_start == conn.out.len() {
                conn.out.clear();
                conn.out_start = 0;
                std::mem::swap(&mut conn.out, &mut state.out);
            } else {
                conn.out.extend_from_slice(&state.out);
                state.out.clear();
            }
        }
        if state.bulk.is_empty() || conn.out.len() - conn.out_start >= BULK_CHUNK_BYTES {
            return !state.bulk.is_empty();
        }
        // Whole frames only (each was encoded whole, header first).
        let mut cut = 0;
        while cut < state.bulk.len() {
            let length = u32::from_le_bytes(state.bulk[cut..cut + 4].try_into().expect("4 bytes"));
            let next = cut + FRAME_HEADER_BYTES + length as usize;
            if cut > 0 && next > BULK_CHUNK_BYTES {
                break;
            }
            cut = next;
        }
        conn.out.extend_from_slice(&state.bulk[..cut]);
        state.bulk.drain(..cut);
        !state.bulk.is_empty()
    }

    /// Writes as much output as the socket takes.
    fn write_out(&self, conn: &mut Conn) -> Result<(), Close> {
        let mut written = 0;
        let mut result = Ok(());
        while conn.out_start < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_start..]) {
                Ok(0) => {
                    result = Err(Close::Ended(
                        "write failed: the socket took no bytes".into(),
                    ));
                    break;
                }
                Ok(n) => {
                    conn.out_start += n;
                    written += n;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    result = Err(Close::Ended(format!("write failed: {error}")));
                    break;
                }
            }
        }
        if written > 0 {
            self.shared
                .counters
                .bytes_sent
                .fetch_add(written as u64, Ordering::Relaxed);
            let counted = written.saturating_sub(conn.uncounted);
            conn.uncounted = conn.uncounted.saturating_sub(written);
            if counted > 0 {
                if let Some(slot) = conn.live_peer().and_then(|p| self.shared.slot(&p)) {
                    let mut state = lock(slot);
                    state.queued = state.queued.saturating_sub(counted);
                }
            }
        }
        if conn.out_start == conn.out.len() {
            conn.out.clear();
            conn.out_start = 0;
            if conn.out.capacity() > 4 * frame::FRAME_BYTES_MAX {
                conn.out.shrink_to(frame::FRAME_BYTES_MAX);
            }
        } else if conn.out_start > conn.out.len() / 2 {
            conn.out.drain(..conn.out_start);
            conn.out_start = 0;
        }
        result
    }

    /// Reads once into the buffer. `Ok(true)`: read something or saw the end; `Ok(false)`:
    /// no bytes waiting.
    fn read_some(&self, conn: &mut Conn) -> io::Result<bool> {
        if conn.read_start > 0 {
            conn.read_buf.drain(..conn.read_start);
            conn.read_start = 0;
        }
        let want = match frame::frame_len(&conn.read_buf) {
            Ok(Some(total)) => total
                .saturating_sub(conn.read_buf.len())
                .max(READ_CHUNK_BYTES),
            _ => READ_CHUNK_BYTES,
        };
        let filled = conn.read_buf.len();
        conn.read_buf.resize(filled + want, 0);
        loop {
            match conn.stream.read(&mut conn.read_buf[filled..]) {
                Ok(0) => {
                    conn.read_buf.truncate(filled);
                    conn.eof = true;
                    return Ok(true);
                }
                Ok(n) => {
                    conn.read_buf.truncate(filled + n);
                    self.shared
                        .counters
                        .bytes_received
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    conn.read_buf.truncate(filled);
                    return Ok(false);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    conn.read_buf.truncate(filled);
                    return Err(error);
                }
            }
        }
    }

    /// Decodes and handles whole frames in the read buffer while the event channel has
    /// room.
    fn decode_buffered(&mut self, conn: &mut Conn) -> Result<(), Close> {
        while self.pending.is_empty() {
            let buf = std::mem::take(&mut conn.read_buf);
            let front = &buf[conn.read_start..];
            if conn.live_peer().is_none() {
                // Before authentication only handshake frames are expected: refuse a longer
                // frame as soon as its header is in, without buffering it.
                if let Ok(Some(total)) = frame::frame_len(front) {
                    if total > FRAME_HEADER_BYTES + PEER_HELLO_BYTES {
                        conn.read_buf = buf;
                        return Err(Close::Refused(
                            Refusal::BadHandshake,
                            format!(
                                "a frame of {total} bytes before authentication; handshake frames are at most {} bytes",
                                FRAME_HEADER_BYTES + PEER_HELLO_BYTES
                            ),
                        ));
                    }
                }
            }
            let outcome = match decode_peer_frame(front) {
                Ok(Some((raw, used))) => {
                    conn.read_start += used;
                    self.handle(conn, raw)
                }
                Ok(None) => {
                    conn.read_buf = buf;
                    break;
                }
                Err(PeerFrameError::ClientType(kind)) => Err(Close::Refused(
                    Refusal::ClientType,
                    format!("message type {kind:#04x} is not a validator-link type (0x40..=0x7f)"),
                )),
                Err(PeerFrameError::Frame(error)) => Err(Close::Refused(
                    Refusal::BadFrame,
                    format!("bad frame: {error}"),
                )),
            };
            conn.read_buf = buf;
            outcome?;
        }
        if conn.read_start == conn.read_buf.len() {
            conn.read_buf.clear();
            conn.read_start = 0;
        }
        Ok(())
    }

    fn handle(&mut self, conn: &mut Conn, raw: RawFrame<'_>) -> Result<(), Close> {
        match (&conn.stage, raw.kind) {
            (Stage::Live { peer }, kind) if PEER_FRAME_KINDS.contains(&kind) => {
                let peer = *peer;
                self.shared
                    .counters
                    .frames_received
                    .fetch_add(1, Ordering::Relaxed);
                self.emit(PeerEvent::Frame {
                    peer,
                    kind,
                    payload: raw.payload.to_vec(),
                });
                Ok(())
            }
            (Stage::Live { .. }, kind) => Err(Close::Refused(
                Refusal::UnexpectedHandshake,
                format!("handshake frame {kind:#04x} on an authenticated link"),
            )),
            (Stage::AwaitHello, PEER_HELLO) => self.on_hello(conn, raw.payload),
            (Stage::AwaitAuth { remote, nonce }, PEER_AUTH) => {
                let (remote, nonce) = (*remote, *nonce);
                self.on_auth(conn, remote, nonce, raw.payload)
            }
            (Stage::AwaitHello, kind) => Err(Close::Refused(
                Refusal::BeforeAuth,
                format!("frame type {kind:#04x} before the peer hello"),
            )),
            (_, kind) => Err(Close::Refused(
                Refusal::BeforeAuth,
                format!("frame type {kind:#04x} where the peer auth was expected"),
            )),
        }
    }

    fn on_hello(&mut self, conn: &mut Conn, payload: &[u8]) -> Result<(), Close> {
        let hello = PeerHello::decode(payload)
            .map_err(|e| Close::Refused(Refusal::BadHandshake, e.to_string()))?;
        if hello.version != PEER_PROTOCOL_VERSION {
            return Err(Close::Refused(
                Refusal::VersionMismatch,
                format!(
                    "handshake version {} is not spoken here; this node speaks version {PEER_PROTOCOL_VERSION}",
                    hello.version
                ),
            ));
        }
        if hello.network_id != self.config.network_id {
            return Err(Close::Refused(
                Refusal::WrongNetwork,
                format!(
                    "the validator runs network {}, this node runs network {}",
                    hello.network_id, self.config.network_id
                ),
            ));
        }
        if hello.genesis_hash != self.config.genesis_hash {
            return Err(Close::Refused(
                Refusal::WrongGenesis,
                format!(
                    "the validator's genesis hash is {}, this node's is {}",
                    hex::encode(hello.genesis_hash),
                    hex::encode(self.config.genesis_hash)
                ),
            ));
        }
        let remote = hello.public_key;
        match conn.dialled {
            Some(expected) if expected != remote => {
                return Err(Close::Refused(
                    Refusal::WrongPeer,
                    format!(
                        "dialled validator {} but key {} answered",
                        hex::encode(expected),
                        hex::encode(remote)
                    ),
                ));
            }
            Some(_) => {}
            None => {
                if !self.peers.contains_key(&remote) {
                    return Err(Close::Refused(
                        Refusal::UnknownKey,
                        format!("key {} is not a configured validator", hex::encode(remote)),
                    ));
                }
                if remote > self.own {
                    return Err(Close::Refused(
                        Refusal::DialRule,
                        format!(
                            "validator {} has the larger key: this node dials it, not the other way",
                            hex::encode(remote)
                        ),
                    ));
                }
            }
        }
        let auth = PeerAuth::sign(
            &self.key,
            self.config.network_id,
            &self.config.genesis_hash,
            &remote,
            &hello.nonce,
        );
        let before = conn.out.len();
        auth.encode(&mut conn.out);
        conn.uncounted += conn.out.len() - before;
        conn.stage = Stage::AwaitAuth {
            remote,
            nonce: conn.nonce,
        };
        Ok(())
    }

    /// Closes the live link of `remote`, if any, because `replacement` (from `addr`) has just
    /// authenticated as the same validator: a restarted validator dials again while this
    /// node may still hold its old, silently dead link. The newest authenticated connection
    /// wins; only the holder of the validator's key can authenticate one.
    fn replace_live_link(&mut self, remote: &[u8; 32], addr: SocketAddr) {
        let old = self
            .conns
            .iter()
            .find(|(_, conn)| conn.live_peer() == Some(*remote))
            .map(|(token, _)| *token);
        if let Some(token) = old {
            let conn = self.conns.remove(&token).expect("found");
            self.shared
                .counters
                .links_replaced
                .fetch_add(1, Ordering::Relaxed);
            let text = format!(
                "replaced by a new authenticated connection from {addr} (the old one from {})",
                conn.addr
            );
            self.close(conn, Close::Ended(text));
        }
    }

    fn on_auth(
        &mut self,
        conn: &mut Conn,
        remote: [u8; 32],
        nonce: [u8; 32],
        payload: &[u8],
    ) -> Result<(), Close> {
        let auth = PeerAuth::decode(payload)
            .map_err(|e| Close::Refused(Refusal::BadHandshake, e.to_string()))?;
        let info = self.peers.get(&remote).expect("checked at hello");
        if !auth.verify(
            &info.key,
            self.config.network_id,
            &self.config.genesis_hash,
            &self.own,
            &nonce,
        ) {
            return Err(Close::Refused(
                Refusal::BadSignature,
                format!(
                    "the auth signature of validator {} does not verify",
                    hex::encode(remote)
                ),
            ));
        }
        self.replace_live_link(&remote, conn.addr);
        let slot = self.shared.slot(&remote).expect("a configured validator");
        {
            let mut state = lock(slot);
            state.live = true;
            state.out.clear();
            state.bulk.clear();
            state.queued = 0;
        }
        conn.stage = Stage::Live { peer: remote };
        let counters = &self.shared.counters;
        counters.links_established.fetch_add(1, Ordering::Relaxed);
        let info = self.peers.get_mut(&remote).expect("checked at hello");
        if info.ever_live {
            counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        info.ever_live = true;
        if let Some(dial) = self.dials.get_mut(&remote) {
            dial.backoff = self.config.backoff_min;
        }
        tracing::info!(addr = %conn.addr, peer = %short(&remote), "validator link up");
        self.emit(PeerEvent::Connected { peer: remote });
        Ok(())
    }
}

/// Sets the options of a validator link's socket: no Nagle delay, TCP keepalive
/// ([`LINK_KEEPALIVE_IDLE`], [`LINK_KEEPALIVE_INTERVAL`], [`LINK_KEEPALIVE_PROBES`]) and, on
/// Linux, [`LINK_UNACKNOWLEDGED_TIMEOUT`], so that a link whose peer vanished without closing
/// it (machine or network down) ends and is dialled again instead of staying half open. A
/// refused option is logged; the link still works, it only notices a dead peer later.
fn configure_link_socket(stream: &TcpStream, addr: SocketAddr) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(LINK_KEEPALIVE_IDLE)
        .with_interval(LINK_KEEPALIVE_INTERVAL)
        .with_retries(LINK_KEEPALIVE_PROBES);
    let mut results = vec![
        ("TCP_NODELAY", socket.set_tcp_nodelay(true)),
        ("SO_KEEPALIVE", socket.set_tcp_keepalive(&keepalive)),
    ];
    #[cfg(target_os = "linux")]
    results.push((
        "TCP_USER_TIMEOUT",
        socket.set_tcp_user_timeout(Some(LINK_UNACKNOWLEDGED_TIMEOUT)),
    ));
    for (option, result) in results {
        if let Err(error) = result {
            tracing::warn!(%addr, option, %error, "cannot set a validator link socket option");
        }
    }
}

/// The first bytes of a key, for logs.
fn short(key: &[u8; 32]) -> String {
    hex::encode(&key[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_sockets_probe_idle_peers_and_bound_unacknowledged_data() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dialled = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        for stream in [dialled, accepted] {
            let stream = TcpStream::from_std(stream);
            let before = socket2::SockRef::from(&stream);
            assert!(!before.keepalive().unwrap());
            configure_link_socket(&stream, addr);
            let socket = socket2::SockRef::from(&stream);
            assert!(socket.tcp_nodelay().unwrap());
            assert!(socket.keepalive().unwrap());
            assert_eq!(socket.tcp_keepalive_time().unwrap(), LINK_KEEPALIVE_IDLE);
            assert_eq!(
                socket.tcp_keepalive_interval().unwrap(),
                LINK_KEEPALIVE_INTERVAL
            );
            assert_eq!(
                socket.tcp_keepalive_retries().unwrap(),
                LINK_KEEPALIVE_PROBES
            );
            #[cfg(target_os = "linux")]
            assert_eq!(
                socket.tcp_user_timeout().unwrap(),
                Some(LINK_UNACKNOWLEDGED_TIMEOUT)
            );
        }
    }

    #[test]
    fn refusals_have_distinct_names_and_counter_slots() {
        let mut names: Vec<&str> = Refusal::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REFUSAL_KINDS);
        for (i, reason) in Refusal::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }

    #[test]
    fn peer_frames_pass_and_client_frames_are_refused() {
        let mut out = Vec::new();
        frame::encode_raw(0x42, &[b"consensus"], &mut out);
        let (raw, used) = decode_peer_frame(&out).unwrap().unwrap();
        assert_eq!(
            (raw.kind, raw.payload, used),
            (0x42, &b"consensus"[..], out.len())
        );
        // The client decoder refuses the same bytes.
        assert_eq!(frame::decode(&out), Err(FrameError::ValidatorType(0x42)));
        let mut client = Vec::new();
        frame::encode(frame::MessageType::Hello, &[0; 12], &mut client);
        assert_eq!(
            decode_peer_frame(&client),
            Err(PeerFrameError::ClientType(0x01))
        );
        assert_eq!(decode_peer_frame(&client[..5]), Ok(None));
    }
}
