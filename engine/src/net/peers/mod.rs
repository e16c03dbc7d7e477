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
//! - With TLS (`PeerConfig::tls`) every link is TLS 1.3 with a validator certificate of the
//!   network on both sides (`net::tls`), and the handshake above runs inside it: the
//!   certificate admits the machine to the network, the handshake proves the consensus key,
//!   and the certificate must bind that same key (docs/DESIGN.md, decision 14). A TLS
//!   failure is refused as [`Refusal::Tls`], a certificate of another key as
//!   [`Refusal::CertificateMismatch`].
//! - Bounded buffers: at most `out_bytes_max` outbound bytes queued per peer (beyond it
//!   [`PeerLinks::send`] answers [`PeerSendError::Full`]); inbound frames go to the caller's
//!   (bounded) event channel, and while it is full no connection is read, so TCP pushes back
//!   on the senders.

mod handshake;
mod link;

pub use handshake::{auth_signing_bytes, HandshakeError, PeerAuth, PeerHello};
use link::{Dial, LinkThread, PeerInfo};

use crate::net::conn::{FramedConn, ReadOutcome};
use crate::net::event_loop::{self, EventLoop};
use crate::net::frame::{self, FrameError, RawFrame, FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX};
use crossbeam::channel::{Sender, TrySendError};
use ed25519_zebra::{Signature, SigningKey, VerificationKey};
use mio::net::{TcpListener, TcpStream};
use mio::{Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io;
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
/// Most socket reads for one connection per loop turn, so that one busy link cannot starve
/// the others.
const READS_PER_TURN_MAX: usize = 32;
/// Poll timeout while the event channel is full.
const BLOCKED_RETRY: Duration = Duration::from_millis(5);

/// Bulk bytes moved into a connection's output at a time (see `take_queued`): the soft
/// bound of a connection's output, past which bulk frames wait in their lane.
const BULK_CHUNK_BYTES: usize = 256 * 1024;
/// Readiness events taken per poll-loop turn.
const EVENTS_PER_TURN: usize = 256;

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
    /// TLS of every link (this node's identity); `None`: plain TCP.
    pub tls: Option<Arc<crate::net::tls::NodeTls>>,
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
pub const REFUSAL_KINDS: usize = 17;

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
    /// The TLS handshake failed (no, a foreign, an expired or a revoked certificate, not
    /// TLS); the log names the reason.
    Tls,
    /// The TLS certificate is not a validator certificate binding the key of the hello.
    CertificateMismatch,
    /// The peer's certificate is on the revocation list: refused at the hello of a link this
    /// node dialled, and a live link closed when its serial is revoked.
    Revoked,
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
        Refusal::Tls,
        Refusal::CertificateMismatch,
        Refusal::Revoked,
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
            Refusal::Tls => "tls",
            Refusal::CertificateMismatch => "certificate_mismatch",
            Refusal::Revoked => "revoked",
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
        let (event_loop, waker) =
            EventLoop::new(&mut listener, EVENTS_PER_TURN).map_err(PeerError::Poll)?;
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
            event_loop,
            listener,
            shared: Arc::clone(&shared),
            events,
            events_gone: false,
            pending: VecDeque::new(),
            peers,
            dials,
            conns: HashMap::new(),
            more_work: false,
            revocation_generation: 0,
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
        let shared = &self.shared;
        event_loop::stop_thread(
            &shared.stopped,
            &shared.waker,
            &mut self.thread,
            "validator link",
        );
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

#[cfg(test)]
mod tests {
    use super::*;

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
