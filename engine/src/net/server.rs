//! The client-facing server: one ingress thread with a mio poll loop.
//!
//! It accepts connections, decodes frames incrementally from each connection's read buffer,
//! hands SubmitBatch records to [`NodeHandle::submit`] and writes the results back as they
//! come out of the pipeline. Acknowledgements arrive on one crossbeam channel per
//! connection; the node wakes the loop (a [`mio::Waker`]) after each group of them.
//!
//! Backpressure, never unbounded buffers: a connection may have at most
//! `connection_inflight_tx_max` records submitted and unanswered and at most
//! `connection_output_bytes_max` bytes waiting to be written; at either bound the server
//! stops reading that connection (TCP then pushes back on the client) until it drains. A
//! connection that sends a bad frame or message gets an Error frame and is closed, with a
//! log line; the node and the other connections go on.
//!
//! TLS (`ServerConfig::tls`): every connection first completes a TLS 1.3 handshake with a
//! certificate of this network (`net::tls`); one that fails is closed before any frame is
//! read, with its reason logged and counted (`tally_client_tls_refused_total{reason}`).
//! Without TLS the port speaks plain TCP (`--insecure-plaintext`, tests and benchmarks).
//! A connection has `handshake_timeout` to finish its handshake and Hello, and an idle one
//! (nothing received, nothing owed, no subscription) is closed after `idle_timeout`. When `connections_max`
//! connections are open, a new one takes the place of the oldest connection still in its
//! handshake, so that connections which never authenticate cannot lock authenticated
//! clients out; only when every open connection has authenticated is the new one refused.
//!
//! Per-identity quotas (an identity is a certificate; without TLS, each connection is one):
//! records in flight and bytes of unread output summed over its connections, records and
//! queries per second (token buckets), connections open. A request over a quota is refused
//! with its quota named (a SubmitReceipt's `OverQuota` refusal, an Error frame
//! `over_quota`), never dropped, and counted (`tally_client_quota_refused_total{quota}`).
//! An identity whose records fail their signature check `suspect_bad_signatures` times in
//! [`BAD_SIGNATURE_WINDOW`] becomes suspect for `suspect_duration`: its records go to a
//! signature lane of their own (`node::sigverify`, verified apart from everyone else's, so
//! its bad signatures never split the batches of others) at most `suspect_submit_tx_per_s`
//! a second.

use super::access::{Directory, Scope};
use super::audit::{AuditEntry, AuditError, AuditLog};
use super::conn::{FramedConn, ReadOutcome};
use super::event_loop::{self, EventLoop};
use super::frame::{self, FRAME_BYTES_MAX};
use super::message::{
    encode_results, ErrorCode, ErrorMessage, Hello, Message, Quota, Refusal, Role, SubmitReceipt,
    Welcome, PROTOCOL_VERSION, SUBMIT_BATCH_TX_MAX,
};
use super::query::{
    answer_from_ledger, node_status, Answer, Answerer, Query, QueryResult, NEEDS_LOG,
};
use super::tls::{NodeTls, TlsRefusal};
use crate::mempool::{Ack, COMMON_LANE};
use crate::node::{NodeHandle, SubmitError};
use crossbeam::channel::{unbounded, Receiver, Sender};
use mio::net::TcpListener;
use mio::{Token, Waker};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits of the client server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port; see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Most client connections open at once; one more is refused with an Error frame.
    pub connections_max: usize,
    /// Most records one connection may have submitted and not yet answered.
    pub connection_inflight_tx_max: usize,
    /// Most bytes waiting to be written to one connection.
    pub connection_output_bytes_max: usize,
    /// Most records in one SubmitBatch (at most [`SUBMIT_BATCH_TX_MAX`]).
    pub submit_batch_tx_max: usize,
    /// At shutdown, how long to keep writing results to clients that read slowly.
    pub drain_timeout: Duration,
    /// How long a new connection may take to finish its TLS handshake and its Hello.
    pub handshake_timeout: Duration,
    /// A connection that sent nothing for this long, with nothing in flight and no output
    /// waiting, is closed.
    pub idle_timeout: Duration,
    /// TLS of the port; `None` speaks plain TCP (`--insecure-plaintext` only).
    pub tls: Option<Arc<NodeTls>>,
    /// The genesis's accounts, for roles and read privacy (`net::access`); set by
    /// `NodeService::start`.
    pub directory: Option<Arc<Directory>>,
    /// One budget for what every connection holds in its buffers (unread input, output not
    /// yet written). Past it, a connection that holds [`CONNECTION_SHARE_BYTES`] or more is
    /// neither read nor given more output until the total falls, so clients that do not read
    /// cannot take more than the budget plus that share each.
    pub connection_buffers_bytes_max: usize,
    /// Most connections open at once with one certificate; one more is refused (Busy).
    pub identity_connections_max: usize,
    /// A connection whose records failed their signature check this many times within
    /// [`BAD_SIGNATURE_WINDOW`] is closed, and its certificate is refused for
    /// `bad_signature_backoff`.
    pub bad_signatures_max: u64,
    pub bad_signature_backoff: Duration,
    /// Most records one identity may have submitted and not yet answered, over all its
    /// connections; past it the rest of a batch is refused (`OverQuota`).
    pub identity_inflight_tx_max: usize,
    /// Records per second one identity may submit (a token bucket holding one second's
    /// worth, or one batch when that is more).
    pub identity_submit_tx_per_s: u64,
    /// Queries per second one identity may ask (a token bucket holding one second's worth).
    pub identity_queries_per_s: u64,
    /// Most bytes of output waiting for one identity to read, over all its connections: at
    /// it, its requests are refused (their answers would add more), and a connection of it
    /// holding [`CONNECTION_SHARE_BYTES`] or more is neither read nor given more results.
    pub identity_output_bytes_max: usize,
    /// Bad signatures of one identity within [`BAD_SIGNATURE_WINDOW`] that make it suspect.
    pub suspect_bad_signatures: u64,
    /// Records per second a suspect identity may submit (its own signature lane).
    pub suspect_submit_tx_per_s: u64,
    /// How long an identity stays suspect after its last bad signature.
    pub suspect_duration: Duration,
    /// The audit trail's file (`net::audit`); `NodeService::start` sets `audit.log` in the
    /// data directory. `None`: no audit trail.
    pub audit_log: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            connections_max: 1_024,
            connection_inflight_tx_max: 65_536,
            connection_output_bytes_max: 8 * 1024 * 1024,
            submit_batch_tx_max: SUBMIT_BATCH_TX_MAX,
            drain_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            tls: None,
            directory: None,
            connection_buffers_bytes_max: 256 * 1024 * 1024,
            identity_connections_max: 64,
            bad_signatures_max: 1_000,
            bad_signature_backoff: Duration::from_secs(30),
            identity_inflight_tx_max: 262_144,
            identity_submit_tx_per_s: 200_000,
            identity_queries_per_s: 1_000,
            identity_output_bytes_max: 32 * 1024 * 1024,
            suspect_bad_signatures: 16,
            suspect_submit_tx_per_s: 1_000,
            suspect_duration: Duration::from_secs(60),
            audit_log: None,
        }
    }
}

impl ServerConfig {
    /// Checks the limits; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.connections_max == 0 {
            return Err("connections_max must be at least 1".into());
        }
        if self.submit_batch_tx_max == 0 || self.submit_batch_tx_max > SUBMIT_BATCH_TX_MAX {
            return Err(format!(
                "submit_batch_tx_max must be 1 to {SUBMIT_BATCH_TX_MAX}, got {}",
                self.submit_batch_tx_max
            ));
        }
        if self.connection_inflight_tx_max < self.submit_batch_tx_max {
            return Err(format!(
                "connection_inflight_tx_max ({}) must be at least submit_batch_tx_max ({})",
                self.connection_inflight_tx_max, self.submit_batch_tx_max
            ));
        }
        if self.identity_connections_max == 0 {
            return Err("identity_connections_max must be at least 1".into());
        }
        if self.bad_signatures_max == 0 {
            return Err("bad_signatures_max must be at least 1".into());
        }
        if self.identity_inflight_tx_max < self.submit_batch_tx_max {
            return Err(format!(
                "identity_inflight_tx_max ({}) must be at least submit_batch_tx_max ({})",
                self.identity_inflight_tx_max, self.submit_batch_tx_max
            ));
        }
        for (name, value) in [
            ("identity_submit_tx_per_s", self.identity_submit_tx_per_s),
            ("identity_queries_per_s", self.identity_queries_per_s),
            ("suspect_bad_signatures", self.suspect_bad_signatures),
            ("suspect_submit_tx_per_s", self.suspect_submit_tx_per_s),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.identity_output_bytes_max < FRAME_BYTES_MAX {
            return Err(format!(
                "identity_output_bytes_max ({}) must be at least one frame ({FRAME_BYTES_MAX} bytes)",
                self.identity_output_bytes_max
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err("handshake_timeout must be above zero".into());
        }
        if self.idle_timeout < self.handshake_timeout {
            return Err(format!(
                "idle_timeout ({:?}) must be at least handshake_timeout ({:?})",
                self.idle_timeout, self.handshake_timeout
            ));
        }
        if self.connection_buffers_bytes_max < self.connection_output_bytes_max {
            return Err(format!(
                "connection_buffers_bytes_max ({}) must be at least connection_output_bytes_max ({})",
                self.connection_buffers_bytes_max, self.connection_output_bytes_max
            ));
        }
        if self.connection_output_bytes_max < FRAME_BYTES_MAX {
            return Err(format!(
                "connection_output_bytes_max ({}) must be at least one frame ({FRAME_BYTES_MAX} bytes)",
                self.connection_output_bytes_max
            ));
        }
        Ok(())
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot set up the poll loop: {0}")]
    Poll(io::Error),
    #[error("cannot open the audit trail: {0}")]
    Audit(#[from] AuditError),
}

/// Readiness events taken per poll-loop turn.
const EVENTS_PER_TURN: usize = 1_024;
/// How long a connection closed for an error may take to receive its Error frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// The window over which a connection's bad signatures are counted against
/// `bad_signatures_max`.
pub const BAD_SIGNATURE_WINDOW: Duration = Duration::from_secs(10);

/// What a connection may always hold, past the budget of all connections' buffers
/// (`connection_buffers_bytes_max`): the one that holds less is still read and written.
pub const CONNECTION_SHARE_BYTES: usize = 64 * 1024;
/// How often connections are checked against the handshake and idle timeouts.
const TIMEOUT_SWEEP: Duration = Duration::from_millis(250);

/// A running server.
pub struct Server {
    addr: SocketAddr,
    waker: Arc<Waker>,
    finish: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds the listener and starts the ingress thread.
    pub fn start(node: NodeHandle, config: ServerConfig) -> Result<Server, ServerError> {
        config.check().map_err(ServerError::Config)?;
        let mut listener =
            TcpListener::bind(config.listen).map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(ServerError::Poll)?;
        let audit = match &config.audit_log {
            Some(path) => Some(RefCell::new(AuditLog::open(path)?)),
            None => None,
        };
        let (event_loop, waker) =
            EventLoop::new(&mut listener, EVENTS_PER_TURN).map_err(ServerError::Poll)?;
        let waker = Arc::new(waker);
        {
            let waker = Arc::clone(&waker);
            node.add_ack_listener(Arc::new(move || {
                let _ = waker.wake();
            }));
        }
        let finish = Arc::new(AtomicBool::new(false));
        let (replies_tx, replies_rx) = unbounded();
        let mut ingress = Ingress {
            node,
            config,
            event_loop,
            listener: Some(listener),
            waker: Arc::clone(&waker),
            finish: Arc::clone(&finish),
            connections: HashMap::new(),
            replies_tx,
            replies_rx,
            scratch: Vec::new(),
            buffered: 0,
            revocation_generation: 0,
            backoff: HashMap::new(),
            identities: HashMap::new(),
            identity_ids: HashMap::new(),
            next_identity: COMMON_LANE + 1,
            audit,
            subscriptions_behind: false,
        };
        let thread = std::thread::Builder::new()
            .name("tally-ingress".into())
            .spawn(move || ingress.run())
            .expect("the operating system starts a thread");
        Ok(Server {
            addr,
            waker,
            finish,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and reading, writes every result still pending (waiting
    /// at most the configured drain timeout for slow readers), closes every connection and
    /// joins the thread. Call after [`crate::node::Node::shutdown`], so that every
    /// acknowledgement has been produced.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        event_loop::stop_thread(&self.finish, &self.waker, &mut self.thread, "ingress");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A ledger query's answer on its way back to the server thread: the connection, the encoded
/// reply, and the request id and reason when it was refused instead.
type QueryReply = (Token, Vec<u8>, Option<(u64, String)>);

struct Connection {
    /// The socket, its input and its output (bounded softly by
    /// `connection_output_bytes_max`).
    io: FramedConn,
    acks_tx: Sender<Ack>,
    acks_rx: Receiver<Ack>,
    /// Records taken and not yet answered.
    inflight: usize,
    /// Ledger queries sent to the executor and not yet answered.
    queries_pending: usize,
    greeted: bool,
    /// What the certificate's holder may do, once the TLS handshake has verified it.
    scope: Option<Arc<Scope>>,
    /// When the connection was accepted.
    opened: Instant,
    /// When bytes last arrived.
    last_input: Instant,
    /// Records of this connection that failed their signature check in the current window,
    /// and when the window began.
    bad_signatures: u64,
    bad_window: Instant,
    /// Set when the connection is being closed: stop reading, flush, then drop.
    closing: Option<Instant>,
    paused: bool,
    /// The identity whose quotas it counts against (`Ingress::identities`), once known: at
    /// authentication with TLS, at Hello without.
    identity: Option<u32>,
    /// Its output bytes last added to its identity's `output`.
    counted_out: usize,
    /// After a refusal over a rate quota, the connection is not read until then (about when
    /// the bucket holds what was refused), so that a client resending at once costs the node
    /// no more than TCP's pushback.
    rate_paused_until: Option<Instant>,
    /// Its subscription to accounts' events, if it made one.
    subscription: Option<Following>,
}

/// A connection's subscription: the accounts it follows and the next block to send.
struct Following {
    request_id: u64,
    accounts: std::collections::HashSet<u64>,
    cursor: crate::events::Cursor,
}

/// Most blocks of the event journal one connection's turn reads, so that a subscription
/// catching up from far back shares the server with the others.
const EVENT_BLOCKS_PER_TURN: usize = 1_024;

/// A token bucket: `rate` tokens a second, holding at most `capacity`.
struct Bucket {
    tokens: f64,
    rate: f64,
    capacity: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, capacity: u64) -> Bucket {
        Bucket {
            tokens: capacity as f64,
            rate: rate as f64,
            capacity: capacity as f64,
            last: Instant::now(),
        }
    }

    /// Whole tokens available now.
    fn available(&mut self) -> usize {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.tokens as usize
    }

    fn take(&mut self, count: usize) {
        self.tokens = (self.tokens - count as f64).max(0.0);
    }
}

/// What one identity (a certificate; without TLS, one connection) holds and may still do.
struct IdentityState {
    /// The certificate's serial, or the connection's address without TLS.
    key: String,
    /// For refusal texts: the certificate's name, or the address.
    name: String,
    /// Connections counted against it.
    connections: usize,
    /// Records taken and not yet answered, over its connections.
    inflight: usize,
    /// Output bytes waiting, over its connections.
    output: usize,
    submit: Bucket,
    queries: Bucket,
    suspect_submit: Bucket,
    /// Its bad signatures in the current window, and when the window began.
    bad_signatures: u64,
    bad_window: Instant,
    /// Until when its records go to its own signature lane, at its suspect rate.
    suspect_until: Option<Instant>,
}

impl IdentityState {
    fn suspect(&self) -> bool {
        self.suspect_until
            .is_some_and(|until| Instant::now() < until)
    }
}

impl AsMut<FramedConn> for Connection {
    fn as_mut(&mut self) -> &mut FramedConn {
        &mut self.io
    }
}

struct Ingress {
    node: NodeHandle,
    config: ServerConfig,
    event_loop: EventLoop,
    listener: Option<TcpListener>,
    waker: Arc<Waker>,
    finish: Arc<AtomicBool>,
    connections: HashMap<Token, Connection>,
    /// Answers of ledger queries, from the executor thread: the connection, the encoded reply, and the request and
    /// reason when the executor thread refused it (a transaction outside the certificate).
    replies_tx: Sender<QueryReply>,
    replies_rx: Receiver<QueryReply>,
    scratch: Vec<Ack>,
    /// Bytes all connections hold in their buffers (see `connection_buffers_bytes_max`).
    buffered: usize,
    /// The revocations' generation last acted on.
    revocation_generation: u64,
    /// Certificates (serials) refused until then after too many bad signatures.
    backoff: HashMap<String, Instant>,
    /// Identities with a connection open or a suspicion running, by id (also their
    /// signature lane while suspect; never [`COMMON_LANE`]), and their ids by key.
    identities: HashMap<u32, IdentityState>,
    identity_ids: HashMap<String, u32>,
    next_identity: u32,
    /// The audit trail (the thread's alone).
    audit: Option<RefCell<AuditLog>>,
    /// Whether a subscription was left behind the event journal in the last turn (the next
    /// turn then comes at once).
    subscriptions_behind: bool,
}

enum Closed {
    No,
    Yes,
}

impl Ingress {
    fn run(&mut self) {
        let mut finishing_since: Option<Instant> = None;
        let mut last_sweep = Instant::now();
        loop {
            let timeout = if std::mem::take(&mut self.subscriptions_behind) {
                Some(Duration::ZERO)
            } else if finishing_since.is_some()
                || self.connections.values().any(|c| c.closing.is_some())
            {
                Some(Duration::from_millis(50))
            } else if self.connections.is_empty() {
                None
            } else {
                Some(TIMEOUT_SWEEP)
            };
            match self.event_loop.wait(timeout, &mut self.connections) {
                Ok(true) => self.accept(),
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, "client server poll failed; closing every client connection");
                    return;
                }
            }
            if finishing_since.is_none() && self.finish.load(Ordering::SeqCst) {
                finishing_since = Some(Instant::now());
                if let Some(mut listener) = self.listener.take() {
                    self.event_loop.deregister_listener(&mut listener);
                }
            }
            self.forward_query_replies();
            // a committed revocation wakes this loop (the block's acknowledgements): its
            // connections close at once, not at the next sweep
            self.close_revoked();
            if let Some(audit) = &self.audit {
                audit.borrow_mut().flush();
            }
            if finishing_since.is_none() && last_sweep.elapsed() >= TIMEOUT_SWEEP {
                last_sweep = Instant::now();
                self.expire();
                self.node
                    .metrics()
                    .client_buffered_bytes
                    .set(self.buffered as i64);
            }
            let tokens: Vec<Token> = self.connections.keys().copied().collect();
            for token in tokens {
                self.service(token, finishing_since.is_some());
            }
            if let Some(since) = finishing_since {
                let all_flushed = self
                    .connections
                    .values()
                    .all(|c| c.io.pending_out() == 0 && c.acks_rx.is_empty());
                if all_flushed || since.elapsed() >= self.config.drain_timeout {
                    let left = self.connections.len();
                    for (_, mut conn) in self.connections.drain() {
                        self.event_loop.deregister(&mut conn.io);
                    }
                    self.node.metrics().client_connections.set(0);
                    tracing::info!(connections = left, "client server stopped");
                    return;
                }
            }
        }
    }

    /// Closes connections past their handshake or idle timeout.
    fn expire(&mut self) {
        let handshake = self.config.handshake_timeout;
        let idle = self.config.idle_timeout;
        let expired: Vec<(Token, bool)> = self
            .connections
            .iter()
            .filter(|(_, c)| c.closing.is_none())
            .filter_map(|(token, c)| {
                if !c.greeted && c.opened.elapsed() >= handshake {
                    Some((*token, true))
                } else if c.greeted
                    && c.inflight == 0
                    && c.queries_pending == 0
                    && c.io.pending_out() == 0
                    && c.subscription.is_none()
                    && c.last_input.elapsed() >= idle
                {
                    Some((*token, false))
                } else {
                    None
                }
            })
            .collect();
        for (token, in_handshake) in expired {
            let Some(mut conn) = self.connections.remove(&token) else {
                continue;
            };
            let metrics = self.node.metrics();
            if in_handshake {
                metrics.tls_refused[TlsRefusal::Timeout.index()].inc();
                tracing::warn!(peer = %conn.io.addr(), reason = TlsRefusal::Timeout.name(), timeout = ?handshake, "refusing a client connection: no handshake and hello in time");
            } else {
                metrics.idle_closed.inc();
                tracing::info!(peer = %conn.io.addr(), timeout = ?idle, "closing an idle client connection");
            }
            self.buffered = self.buffered.saturating_sub(conn.io.buffered());
            self.event_loop.deregister(&mut conn.io);
            metrics
                .client_connections
                .set(self.connections.len() as i64);
            self.release(&conn);
        }
        self.forget_identities();
    }

    /// Appends an event of `conn` to the audit trail.
    fn audit(
        &self,
        conn: &Connection,
        event: &str,
        request_id: u64,
        counts: [u64; 3],
        detail: &str,
    ) {
        let Some(audit) = &self.audit else {
            return;
        };
        let (identity, serial, role) = match &conn.scope {
            Some(scope) => (
                scope.name.clone(),
                scope.serial.clone(),
                scope.access.name().to_string(),
            ),
            None => Default::default(),
        };
        audit.borrow_mut().record(AuditEntry {
            seq: 0,
            time_ms: 0,
            event: event.into(),
            identity,
            serial,
            role,
            peer: conn.io.addr().to_string(),
            request_id,
            records: counts[0],
            accepted: counts[1],
            refused: counts[2],
            detail: detail.into(),
        });
    }

    /// Counts `conn` against the identity `key` (made when new).
    fn join_identity(&mut self, conn: &mut Connection, key: String, name: String) {
        let id = match self.identity_ids.get(&key) {
            Some(id) => *id,
            None => {
                let mut id = self.next_identity;
                while id == COMMON_LANE || self.identities.contains_key(&id) {
                    id = id.wrapping_add(1);
                }
                self.next_identity = id.wrapping_add(1);
                let config = &self.config;
                let submit_burst = config
                    .identity_submit_tx_per_s
                    .max(config.submit_batch_tx_max as u64);
                let suspect_burst = config
                    .suspect_submit_tx_per_s
                    .max(crate::mempool::LINKED_CHAIN_TX_MAX as u64);
                self.identities.insert(
                    id,
                    IdentityState {
                        key: key.clone(),
                        name,
                        connections: 0,
                        inflight: 0,
                        output: 0,
                        submit: Bucket::new(config.identity_submit_tx_per_s, submit_burst),
                        queries: Bucket::new(
                            config.identity_queries_per_s,
                            config.identity_queries_per_s,
                        ),
                        suspect_submit: Bucket::new(config.suspect_submit_tx_per_s, suspect_burst),
                        bad_signatures: 0,
                        bad_window: Instant::now(),
                        suspect_until: None,
                    },
                );
                self.identity_ids.insert(key, id);
                id
            }
        };
        self.identities
            .get_mut(&id)
            .expect("just listed")
            .connections += 1;
        conn.identity = Some(id);
    }

    /// Takes a closed connection's counts off its identity; forgets an identity with no
    /// connection left and no suspicion running.
    fn release(&mut self, conn: &Connection) {
        let Some(id) = conn.identity else {
            return;
        };
        let Some(identity) = self.identities.get_mut(&id) else {
            return;
        };
        identity.connections = identity.connections.saturating_sub(1);
        identity.inflight = identity.inflight.saturating_sub(conn.inflight);
        identity.output = identity.output.saturating_sub(conn.counted_out);
        if identity.connections == 0 && !identity.suspect() {
            let key = identity.key.clone();
            self.identities.remove(&id);
            self.identity_ids.remove(&key);
        }
    }

    /// Forgets identities with no connection whose suspicion has ended.
    fn forget_identities(&mut self) {
        let done: Vec<u32> = self
            .identities
            .iter()
            .filter(|(_, identity)| identity.connections == 0 && !identity.suspect())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(identity) = self.identities.remove(&id) {
                self.identity_ids.remove(&identity.key);
            }
        }
    }

    /// Brings the connection's identity's output count up to date with its output buffer.
    fn sync_output(&mut self, conn: &mut Connection) {
        let Some(id) = conn.identity else {
            return;
        };
        let now = conn.io.pending_out();
        if let Some(identity) = self.identities.get_mut(&id) {
            identity.output = (identity.output + now).saturating_sub(conn.counted_out);
        }
        conn.counted_out = now;
    }

    /// Whether the connection's identity has `identity_output_bytes_max` bytes of output
    /// unread and this connection holds at least its share of them.
    fn identity_output_full(&self, conn: &Connection) -> bool {
        conn.io.pending_out() >= CONNECTION_SHARE_BYTES && self.identity_output_over(conn).is_some()
    }

    /// The identity's unread output (this connection's counted as it is now) and its name,
    /// when at `identity_output_bytes_max`.
    fn identity_output_over(&self, conn: &Connection) -> Option<(usize, &str)> {
        let identity = self.identities.get(&conn.identity?)?;
        let output = (identity.output + conn.io.pending_out()).saturating_sub(conn.counted_out);
        (output >= self.config.identity_output_bytes_max)
            .then_some((output, identity.name.as_str()))
    }

    /// How many of `wanted` records the connection's identity may submit now, the quota
    /// that stops the rest (with the refusal's text) and the signature lane they go to.
    fn submit_allowance(
        &mut self,
        conn: &Connection,
        wanted: usize,
    ) -> (usize, Option<(Quota, String)>, u32) {
        let config = &self.config;
        let Some(identity) = conn.identity.and_then(|id| self.identities.get_mut(&id)) else {
            return (wanted, None, COMMON_LANE);
        };
        let suspect = identity.suspect();
        let output = (identity.output + conn.io.pending_out()).saturating_sub(conn.counted_out);
        let output_room = if output >= config.identity_output_bytes_max {
            0
        } else {
            wanted
        };
        let suspect_room = if suspect {
            identity.suspect_submit.available()
        } else {
            wanted
        };
        let checks = [
            (Quota::UnreadOutput, output_room),
            (
                Quota::InflightRecords,
                config
                    .identity_inflight_tx_max
                    .saturating_sub(identity.inflight),
            ),
            (Quota::SubmitRate, identity.submit.available()),
            (Quota::SuspectSubmitRate, suspect_room),
        ];
        let mut allowed = wanted;
        let mut over = None;
        for (quota, room) in checks {
            if room < allowed {
                allowed = room;
                over = Some(quota);
            }
        }
        let name = &identity.name;
        let text = over.map(|quota| {
            let text = match quota {
                Quota::UnreadOutput => format!(
                    "{name} has {output} bytes of output unread (at most {}); read the answers, then retry",
                    config.identity_output_bytes_max
                ),
                Quota::InflightRecords => format!(
                    "{name} has {} records in flight (at most {}); retry as answers arrive",
                    identity.inflight, config.identity_inflight_tx_max
                ),
                Quota::SubmitRate => format!(
                    "{name} may submit {} records a second; retry later",
                    config.identity_submit_tx_per_s
                ),
                _ => format!(
                    "{name} sent {} bad signatures within {BAD_SIGNATURE_WINDOW:?}: until {:?} after its last one its records are verified apart, at most {} a second",
                    identity.bad_signatures, config.suspect_duration, config.suspect_submit_tx_per_s
                ),
            };
            (quota, format!("{quota}: {text}"))
        });
        let lane = if suspect {
            conn.identity.expect("found")
        } else {
            COMMON_LANE
        };
        (allowed, text, lane)
    }

    /// Counts records taken for the connection's identity against its quotas.
    fn spend_submit(&mut self, conn: &Connection, taken: usize) {
        if let Some(identity) = conn.identity.and_then(|id| self.identities.get_mut(&id)) {
            identity.inflight += taken;
            identity.submit.take(taken);
            if identity.suspect() {
                identity.suspect_submit.take(taken);
            }
        }
    }

    /// Why the connection's identity may not ask a query now (its quota and the text), if
    /// so; else counts the query against its rate.
    fn query_refusal(&mut self, conn: &Connection) -> Option<(Quota, String)> {
        if let Some((output, name)) = self.identity_output_over(conn) {
            let text = format!(
                "{}: {name} has {output} bytes of output unread (at most {}); read the answers, then retry",
                Quota::UnreadOutput,
                self.config.identity_output_bytes_max
            );
            return Some((Quota::UnreadOutput, text));
        }
        let rate = self.config.identity_queries_per_s;
        let identity = self.identities.get_mut(&conn.identity?)?;
        if identity.queries.available() == 0 {
            let text = format!(
                "{}: {} may ask {rate} queries a second; retry later",
                Quota::QueryRate,
                identity.name
            );
            return Some((Quota::QueryRate, text));
        }
        identity.queries.take(1);
        None
    }

    /// Why a newly authenticated connection is not admitted (the code and text): its
    /// certificate is in its back-off after bad signatures, or has
    /// `identity_connections_max` connections open.
    fn admit(&mut self, scope: &Scope) -> Option<(ErrorCode, String)> {
        if let Some(until) = self.backoff.get(&scope.serial) {
            if Instant::now() < *until {
                return Some((
                    ErrorCode::Busy,
                    format!(
                        "{} is refused for {:?} more after {} bad signatures",
                        scope.name,
                        until.saturating_duration_since(Instant::now()),
                        self.config.bad_signatures_max
                    ),
                ));
            }
            self.backoff.remove(&scope.serial);
        }
        let open = self
            .connections
            .values()
            .filter(|c| {
                c.closing.is_none() && c.scope.as_ref().is_some_and(|s| s.serial == scope.serial)
            })
            .count();
        (open >= self.config.identity_connections_max).then(|| {
            self.node.metrics().quota_refused[Quota::Connections.index()].inc();
            let text = format!(
                "{}: {} has {open} connections open (identity_connections_max = {}); retry later",
                Quota::Connections,
                scope.name,
                self.config.identity_connections_max
            );
            (ErrorCode::OverQuota, text)
        })
    }

    /// Counts a connection's records refused for bad signatures; past `bad_signatures_max`
    /// in the window, closes it and refuses its certificate for `bad_signature_backoff`.
    fn count_bad_signatures(&mut self, conn: &mut Connection, bad: u64) {
        self.suspect_identity(conn, bad);
        if conn.bad_window.elapsed() >= BAD_SIGNATURE_WINDOW {
            conn.bad_window = Instant::now();
            conn.bad_signatures = 0;
        }
        conn.bad_signatures += bad;
        if conn.bad_signatures < self.config.bad_signatures_max {
            return;
        }
        let backoff = self.config.bad_signature_backoff;
        let name = match &conn.scope {
            Some(scope) => {
                self.backoff
                    .insert(scope.serial.clone(), Instant::now() + backoff);
                scope.name.clone()
            }
            None => conn.io.addr().to_string(),
        };
        self.node.metrics().bad_signature_closed.inc();
        let text = format!(
            "{} bad signatures within {BAD_SIGNATURE_WINDOW:?}: {name} is refused for {backoff:?}",
            conn.bad_signatures
        );
        self.audit(conn, "closed_bad_signatures", 0, [0; 3], &text);
        self.reject(conn, ErrorCode::Forbidden, text);
    }

    /// Counts an identity's bad signatures; at `suspect_bad_signatures` within the window it
    /// becomes suspect (its records go to its own signature lane at its suspect rate) until
    /// `suspect_duration` after its last bad signature.
    fn suspect_identity(&mut self, conn: &Connection, bad: u64) {
        let (threshold, duration) = (
            self.config.suspect_bad_signatures,
            self.config.suspect_duration,
        );
        let Some(identity) = conn.identity.and_then(|id| self.identities.get_mut(&id)) else {
            return;
        };
        if identity.bad_window.elapsed() >= BAD_SIGNATURE_WINDOW {
            identity.bad_window = Instant::now();
            identity.bad_signatures = 0;
        }
        identity.bad_signatures += bad;
        if identity.bad_signatures < threshold {
            return;
        }
        let was_suspect = identity.suspect();
        identity.suspect_until = Some(Instant::now() + duration);
        if was_suspect {
            return;
        }
        let text = format!(
            "{} bad signatures within {BAD_SIGNATURE_WINDOW:?}: records verified in a lane of their own, at most {} a second",
            identity.bad_signatures, self.config.suspect_submit_tx_per_s
        );
        tracing::warn!(peer = %conn.io.addr(), name = %identity.name, reason = %text, "identity suspect");
        self.node.metrics().suspect_identities.inc();
        self.audit(conn, "suspect", 0, [0; 3], &text);
    }

    /// Closes the open connections whose certificate was revoked since the last look.
    fn close_revoked(&mut self) {
        let Some(tls) = self.config.tls.clone() else {
            return;
        };
        if !tls
            .revocations()
            .revoked_since(&mut self.revocation_generation)
        {
            return;
        }
        let revoked: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                c.scope
                    .as_ref()
                    .is_some_and(|scope| tls.revocations().is_revoked(&scope.serial))
            })
            .map(|(token, _)| *token)
            .collect();
        for token in revoked {
            let Some(mut conn) = self.connections.remove(&token) else {
                continue;
            };
            let scope = conn.scope.as_ref().expect("filtered");
            tracing::warn!(peer = %conn.io.addr(), name = %scope.name, serial = %scope.serial, "closing the connection of a revoked certificate");
            self.audit(&conn, "closed_revoked", 0, [0; 3], "");
            self.node.metrics().revoked_closed.inc();
            self.buffered = self.buffered.saturating_sub(conn.io.buffered());
            self.event_loop.deregister(&mut conn.io);
            self.release(&conn);
        }
        self.node
            .metrics()
            .client_connections
            .set(self.connections.len() as i64);
    }

    /// Makes room for a new connection at `connections_max`: closes the oldest connection
    /// still in its handshake. Returns false when every open connection has authenticated.
    fn evict_one_unauthenticated(&mut self) -> bool {
        let oldest = self
            .connections
            .iter()
            .filter(|(_, c)| !c.greeted && c.closing.is_none())
            .min_by_key(|(_, c)| c.opened)
            .map(|(token, _)| *token);
        let Some(token) = oldest else {
            return false;
        };
        let mut conn = self.connections.remove(&token).expect("listed");
        tracing::debug!(peer = %conn.io.addr(), "closing the oldest unauthenticated connection to make room");
        self.buffered = self.buffered.saturating_sub(conn.io.buffered());
        self.event_loop.deregister(&mut conn.io);
        self.release(&conn);
        self.node.metrics().connections_evicted.inc();
        true
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (stream, peer) = match event_loop::accept(listener) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
                Err(error) => {
                    // Out of file descriptors and the like: the listener stays; try later.
                    tracing::warn!(%error, "accepting a client connection failed");
                    return;
                }
            };
            if self.connections.len() >= self.config.connections_max {
                self.evict_one_unauthenticated();
            }
            let out_bound = self.config.connection_output_bytes_max;
            let mut io = match &self.config.tls {
                Some(tls) => FramedConn::with_tls(stream, peer, out_bound, tls.accept()),
                None => FramedConn::new(stream, peer, out_bound),
            };
            let token = match self.event_loop.register(&mut io) {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%peer, %error, "cannot register a client connection");
                    continue;
                }
            };
            let _ = io.stream().set_nodelay(true);
            let (acks_tx, acks_rx) = unbounded();
            let mut conn = Connection {
                io,
                acks_tx,
                acks_rx,
                inflight: 0,
                queries_pending: 0,
                greeted: false,
                scope: None,
                opened: Instant::now(),
                last_input: Instant::now(),
                bad_signatures: 0,
                bad_window: Instant::now(),
                closing: None,
                paused: false,
                identity: None,
                counted_out: 0,
                rate_paused_until: None,
                subscription: None,
            };
            let metrics = self.node.metrics();
            metrics.connections_accepted.inc();
            if self.connections.len() >= self.config.connections_max {
                tracing::warn!(%peer, max = self.config.connections_max, "refusing a client connection: too many connections");
                refuse(
                    &mut conn,
                    0,
                    ErrorCode::Busy,
                    format!(
                        "too many client connections (connections_max = {}); retry later",
                        self.config.connections_max
                    ),
                );
            } else {
                tracing::debug!(%peer, "client connected");
            }
            self.connections.insert(token, conn);
            metrics
                .client_connections
                .set(self.connections.len() as i64);
        }
    }

    fn forward_query_replies(&mut self) {
        while let Ok((token, bytes, forbidden)) = self.replies_rx.try_recv() {
            if let Some(mut conn) = self.connections.remove(&token) {
                conn.queries_pending = conn.queries_pending.saturating_sub(1);
                match forbidden {
                    Some((request_id, text)) => self.forbid(&mut conn, request_id, text),
                    None => conn.io.queue(&bytes),
                }
                self.sync_output(&mut conn);
                self.connections.insert(token, conn);
            }
        }
    }

    /// Moves acknowledgements to the output, writes, reads and decodes: everything one
    /// connection needs after a wake-up. Drops the connection when it is done.
    fn service(&mut self, token: Token, finishing: bool) {
        let Some(mut conn) = self.connections.remove(&token) else {
            return;
        };
        let before = conn.io.buffered();
        let closed = self.service_connection(token, &mut conn, finishing);
        match closed {
            Closed::No => {
                self.buffered = (self.buffered + conn.io.buffered()).saturating_sub(before);
                self.sync_output(&mut conn);
                self.connections.insert(token, conn);
            }
            Closed::Yes => {
                self.buffered = self.buffered.saturating_sub(before);
                self.release(&conn);
                self.event_loop.deregister(&mut conn.io);
                self.node
                    .metrics()
                    .client_connections
                    .set(self.connections.len() as i64);
                tracing::debug!(peer = %conn.io.addr(), "client connection closed");
            }
        }
    }

    fn service_connection(
        &mut self,
        token: Token,
        conn: &mut Connection,
        finishing: bool,
    ) -> Closed {
        loop {
            self.move_acks(conn);
            if conn.subscription.is_some() && self.send_events(conn) {
                self.subscriptions_behind = true;
            }
            let (written, result) = conn.io.write_out();
            self.node.metrics().bytes_sent.add(written as u64);
            if let Err(error) = result {
                tracing::debug!(peer = %conn.io.addr(), %error, "client connection write failed");
                return Closed::Yes;
            }
            if let Some(since) = conn.closing {
                if since.elapsed() >= CLOSE_LINGER {
                    return Closed::Yes;
                }
                if conn.io.pending_out() > 0 {
                    return Closed::No;
                }
                // Error frame written: send FIN, then discard what the peer still sends until
                // it closes, so that closing does not reset the connection before the peer
                // has read the Error frame.
                conn.io.shutdown_write();
                return if conn.io.discard_input() {
                    Closed::Yes
                } else {
                    Closed::No
                };
            }
            if finishing {
                return Closed::No;
            }
            if self.backpressured(conn) {
                if !conn.paused {
                    conn.paused = true;
                    self.node.metrics().backpressure_pauses.inc();
                }
                return Closed::No;
            }
            conn.paused = false;
            // Frames already buffered first, then the socket.
            if self.decode_buffered(token, conn) {
                continue;
            }
            if conn.closing.is_some() || self.backpressured(conn) {
                continue;
            }
            if conn.io.eof() {
                if let Some(error) = conn.io.truncated_input() {
                    self.reject(conn, ErrorCode::BadFrame, format!("bad frame: {error}"));
                    continue;
                }
                // The peer sent everything it will; stay until its answers are written.
                if conn.inflight == 0 && conn.queries_pending == 0 && conn.io.pending_out() == 0 {
                    return Closed::Yes;
                }
                return Closed::No;
            }
            if !conn.io.readable() {
                return Closed::No;
            }
            match conn.io.read_some() {
                Ok(ReadOutcome::Bytes(n)) => {
                    conn.last_input = Instant::now();
                    self.node.metrics().bytes_received.add(n as u64);
                }
                Ok(ReadOutcome::Eof) => {}
                Ok(ReadOutcome::Empty) => return Closed::No,
                Err(error) => {
                    if let Some(tls_error) = conn.io.tls_error() {
                        let reason = TlsRefusal::of(tls_error);
                        self.node.metrics().tls_refused[reason.index()].inc();
                        self.audit(conn, "tls_refused", 0, [0; 3], reason.name());
                        tracing::warn!(peer = %conn.io.addr(), reason = reason.name(), detail = %tls_error, "refusing a client connection");
                    } else {
                        tracing::debug!(peer = %conn.io.addr(), %error, "client connection read failed");
                    }
                    return Closed::Yes;
                }
            }
            if conn.scope.is_none() && !conn.io.handshaking() {
                if let Some(certificate) = conn.io.peer_certificate() {
                    match tally_pki::read_certificate(certificate) {
                        Ok(holder) => {
                            tracing::info!(peer = %conn.io.addr(), name = %holder.name, role = %holder.access, serial = %holder.serial, "client authenticated");
                            let directory: Arc<Directory> =
                                self.config.directory.clone().unwrap_or_default();
                            let scope = Scope::new(&holder, &directory);
                            let refusal = self.admit(&scope);
                            let (key, name) = (scope.serial.clone(), scope.name.clone());
                            conn.scope = Some(Arc::new(scope));
                            if let Some((code, text)) = refusal {
                                self.audit(conn, "not_admitted", 0, [0; 3], &text);
                                self.reject(conn, code, text);
                                continue;
                            }
                            self.join_identity(conn, key, name);
                            self.audit(conn, "authenticated", 0, [0; 3], "");
                        }
                        // The verifier read it already: not expected.
                        Err(error) => {
                            self.reject(conn, ErrorCode::BadMessage, error.to_string());
                            continue;
                        }
                    }
                }
            }
        }
    }

    fn backpressured(&self, conn: &Connection) -> bool {
        conn.inflight >= self.config.connection_inflight_tx_max
            || conn.io.output_full()
            || self.over_budget(conn)
            || self.identity_output_full(conn)
            || conn
                .rate_paused_until
                .is_some_and(|until| Instant::now() < until)
    }

    /// Whether all connections' buffers are past their budget and this one holds at least
    /// its share.
    fn over_budget(&self, conn: &Connection) -> bool {
        self.buffered >= self.config.connection_buffers_bytes_max
            && conn.io.buffered() >= CONNECTION_SHARE_BYTES
    }

    /// Decodes and handles whole frames already in the read buffer while the connection is
    /// not backpressured. Returns whether it handled any.
    fn decode_buffered(&mut self, token: Token, conn: &mut Connection) -> bool {
        let mut handled = false;
        while conn.closing.is_none() && !self.backpressured(conn) {
            // The frame borrows the input while its message is handled with the connection.
            let mut input = conn.io.take_input();
            let outcome = match frame::decode(input.unread()) {
                Ok(Some((frame, used))) => {
                    self.node.metrics().frames_received.inc();
                    match Message::decode(frame) {
                        Ok(message) => self.handle(token, conn, message),
                        Err(error) => {
                            let text = format!("bad {} message: {error}", frame.kind.name());
                            self.reject(conn, ErrorCode::BadMessage, text);
                        }
                    }
                    input.consume(used);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(error) => Err(error),
            };
            conn.io.put_input(input);
            match outcome {
                Ok(true) => handled = true,
                Ok(false) => break,
                Err(error) => {
                    self.reject(conn, ErrorCode::BadFrame, format!("bad frame: {error}"));
                    break;
                }
            }
        }
        handled
    }

    /// Sends an Error frame and closes the connection once it is written.
    fn reject(&self, conn: &mut Connection, code: ErrorCode, text: String) {
        tracing::warn!(peer = %conn.io.addr(), code = code.name(), reason = %text, "closing a client connection");
        let metrics = self.node.metrics();
        metrics.frames_rejected.inc();
        metrics.connections_rejected.inc();
        refuse(conn, 0, code, text);
    }

    fn handle(&mut self, token: Token, conn: &mut Connection, message: Message<'_>) {
        if !conn.greeted {
            let Message::Hello(hello) = message else {
                let text = format!("expected hello first, got {}", message.kind().name());
                return self.reject(conn, ErrorCode::UnexpectedMessage, text);
            };
            return self.greet(conn, hello);
        }
        match message {
            Message::SubmitBatch {
                request_id,
                records,
            } => self.submit(conn, request_id, records),
            Message::Query { request_id, query } => self.query(token, conn, request_id, query),
            Message::Subscribe {
                request_id,
                subscription,
            } => self.subscribe(conn, request_id, subscription),
            other => {
                let text = format!("a client may not send {}", other.kind().name());
                self.reject(conn, ErrorCode::UnexpectedMessage, text);
            }
        }
    }

    fn greet(&mut self, conn: &mut Connection, hello: Hello) {
        if hello.version != PROTOCOL_VERSION {
            let text = format!(
                "protocol version {} is not spoken here; this node speaks version {PROTOCOL_VERSION}",
                hello.version
            );
            return self.reject(conn, ErrorCode::VersionMismatch, text);
        }
        if hello.role != Role::Client {
            let text =
                "validator connections are not accepted yet: this port serves clients".to_string();
            return self.reject(conn, ErrorCode::UnexpectedMessage, text);
        }
        let network_id = self.node.network_id();
        if hello.network_id != 0 && hello.network_id != network_id {
            let text = format!(
                "this node runs network {network_id}, the client asked for network {}",
                hello.network_id
            );
            return self.reject(conn, ErrorCode::WrongNetwork, text);
        }
        conn.greeted = true;
        if self.config.tls.is_none() {
            // Without certificates, each connection is an identity of its own.
            let addr = conn.io.addr().to_string();
            self.join_identity(conn, format!("plaintext {addr}"), addr);
        }
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            network_id,
            genesis_hash: self.node.genesis_hash(),
            height: self.node.height(),
            submit_batch_tx_max: self.config.submit_batch_tx_max as u32,
            inflight_tx_max: self.config.connection_inflight_tx_max as u32,
        })
        .encode(conn.io.output());
    }

    fn submit(&mut self, conn: &mut Connection, request_id: u64, records: &[crate::tx::TxRecord]) {
        if records.len() > self.config.submit_batch_tx_max {
            let text = format!(
                "submit_batch of {} records is over this node's submit_batch_tx_max {}",
                records.len(),
                self.config.submit_batch_tx_max
            );
            return self.reject(conn, ErrorCode::BadMessage, text);
        }
        if let Some(Err(text)) = conn.scope.as_ref().map(|s| s.may_submit(records)) {
            return self.forbid(conn, request_id, text);
        }
        let started = Instant::now();
        self.node
            .metrics()
            .batch
            .submit
            .observe(records.len() as u64);
        let (allowed, over, lane) = self.submit_allowance(conn, records.len());
        // A linked chain is taken or refused whole: cut between chains.
        let cut = chains_within(records, allowed);
        let (accepted, refusal) = if cut == 0 {
            (0, Refusal::None)
        } else {
            match self
                .node
                .submit_in_lane(&records[..cut], &conn.acks_tx, lane)
            {
                Ok(taken) => (taken, Refusal::None),
                Err(SubmitError::Busy { accepted }) => (accepted, Refusal::Busy),
                Err(SubmitError::OverQuota { accepted, .. }) => (accepted, Refusal::Busy),
                Err(SubmitError::Stopped { reason }) => (0, Refusal::Stopped(reason)),
            }
        };
        self.spend_submit(conn, accepted);
        let refused = records.len() - accepted;
        let metrics = self.node.metrics();
        let refusal = match (refusal, over) {
            (Refusal::None, Some((quota, text))) if refused > 0 => {
                metrics.quota_refused[quota.index()].add(refused as u64);
                let rate = match quota {
                    Quota::SubmitRate => Some(self.config.identity_submit_tx_per_s),
                    Quota::SuspectSubmitRate => Some(self.config.suspect_submit_tx_per_s),
                    _ => None,
                };
                if let Some(rate) = rate {
                    conn.rate_paused_until = Some(Instant::now() + rate_pause(refused, rate));
                }
                Refusal::OverQuota { quota, text }
            }
            (Refusal::Busy, _) => {
                metrics.busy_tx.add(refused as u64);
                Refusal::Busy
            }
            (refusal, _) => refusal,
        };
        let refusal = if refused == 0 { Refusal::None } else { refusal };
        let detail = match &refusal {
            Refusal::None => "",
            Refusal::Busy => "busy",
            Refusal::Stopped(_) => "stopped",
            Refusal::OverQuota { quota, .. } => quota.name(),
        };
        self.audit(
            conn,
            "submit",
            request_id,
            [records.len() as u64, accepted as u64, refused as u64],
            detail,
        );
        conn.inflight += accepted;
        Message::SubmitReceipt(SubmitReceipt {
            request_id,
            accepted: accepted as u32,
            refused: refused as u32,
            refusal,
        })
        .encode(conn.io.output());
        metrics.stage.ingress.observe_duration(started.elapsed());
    }

    /// Answers a request outside the connection's certificate with Forbidden; the connection
    /// stays.
    fn forbid(&self, conn: &mut Connection, request_id: u64, text: String) {
        tracing::warn!(peer = %conn.io.addr(), request_id, reason = %text, "forbidden request");
        self.audit(conn, "forbidden", request_id, [0; 3], &text);
        self.node.metrics().forbidden.inc();
        Message::Error(ErrorMessage {
            request_id,
            code: ErrorCode::Forbidden,
            text,
        })
        .encode(conn.io.output());
    }

    fn query(&mut self, token: Token, conn: &mut Connection, request_id: u64, query: Query) {
        if self.refused_over_query_quota(conn, request_id) {
            return;
        }
        if let Some(Err(text)) = conn.scope.as_ref().map(|s| s.may_query(&query)) {
            return self.forbid(conn, request_id, text);
        }
        let check = conn.scope.as_ref().and_then(|scope| {
            scope
                .transaction_to_check(&query)
                .map(|id| (Arc::clone(scope), id))
        });
        if check.is_none() && !query.needs_ledger() {
            let result = match query {
                Query::Status => QueryResult::Ok(Answer::Status(Box::new(node_status(
                    &self.node,
                    self.connections.len() as u64 + 1,
                )))),
                _ => QueryResult::Error(NEEDS_LOG.into()),
            };
            return Message::QueryReply { request_id, result }.encode(conn.io.output());
        }
        let replies = self.replies_tx.clone();
        let waker = Arc::clone(&self.waker);
        let log = self.node.log_weak();
        let history_index = self.node.history_index();
        let tax_days = self.node.tax_days();
        let archive_dir = self.node.archive_dir().map(std::path::Path::to_path_buf);
        let shared_events = self.node.events();
        let scope = conn.scope.clone();
        let asked = self.node.query_ledger(Box::new(move |ledger| {
            let forbid = |text: String| {
                if replies
                    .send((token, Vec::new(), Some((request_id, text))))
                    .is_ok()
                {
                    let _ = waker.wake();
                }
            };
            // a participant's transaction query: its accounts are looked up first (a
            // history, which may hold its own rejected attempts, after the search)
            let refused = check
                .as_ref()
                .and_then(|(scope, id)| scope.may_read_transaction(ledger, *id).err());
            let history = matches!(query, Query::TxHistory { .. });
            // a transaction the ledger no longer holds is read from the history index
            let status = matches!(query, Query::TxStatus { .. });
            if let Some(text) = &refused {
                if !history && !status {
                    return forbid(text.clone());
                }
            }
            // the log is taken here, for this query only: a node that stops closes it
            let reads_log = matches!(query.answerer(), Answerer::History) || status;
            let log = match reads_log {
                true => log.as_ref().and_then(std::sync::Weak::upgrade),
                false => None,
            };
            let visible = |record: &crate::tx::TxRecord| {
                scope.as_ref().is_none_or(|scope| scope.may_see(record))
            };
            let result = match (reads_log, &log) {
                (true, Some(log)) => {
                    let log = log.read().expect("log lock");
                    let index = history_index
                        .as_ref()
                        .map(|index| index.read().expect("index lock"));
                    let events = shared_events.as_deref();
                    let source = crate::query::HistorySource {
                        log: &log,
                        archive_dir: archive_dir.as_deref(),
                        index: index.as_deref(),
                        events,
                    };
                    match (&query, &refused) {
                        // refused by the ledger: only what the history shows it may see
                        (Query::TxStatus { id }, Some(text)) => {
                            match crate::query::tx_status_from_history(
                                ledger,
                                &source,
                                *id,
                                crate::query::HistoryReach::Running,
                                &visible,
                            ) {
                                Ok(Some(info)) => QueryResult::Ok(Answer::TxStatus(Box::new(info))),
                                Ok(None) => return forbid(text.clone()),
                                Err(error) => QueryResult::Error(error.to_string()),
                            }
                        }
                        _ => crate::query::answer_with_log(
                            ledger,
                            &source,
                            &query,
                            crate::query::HistoryReach::Running,
                            visible,
                        )
                        .unwrap_or_else(|error| QueryResult::Error(error.to_string())),
                    }
                }
                (true, None) if status => match &refused {
                    Some(text) => return forbid(text.clone()),
                    None => answer_from_ledger(ledger, &query),
                },
                (true, None) => QueryResult::Error(NEEDS_LOG.into()),
                (false, _) => match (&query, &tax_days) {
                    // days older than the ledger's refund window from the tax-day journal
                    (
                        Query::TaxReport {
                            payee,
                            from_day,
                            to_day,
                        },
                        Some(journal),
                    ) => crate::net::query::tax_report_with_days(
                        ledger, journal, *payee, *from_day, *to_day,
                    ),
                    _ => answer_from_ledger(ledger, &query),
                },
            };
            if let Some(text) = refused {
                // nothing of it the asker may see: refused as any other participant's id
                if matches!(&result, QueryResult::Ok(Answer::TxHistory { blocks, .. }) if blocks.is_empty())
                {
                    return forbid(text);
                }
            }
            let mut bytes = Vec::new();
            Message::QueryReply { request_id, result }.encode(&mut bytes);
            if replies.send((token, bytes, None)).is_ok() {
                let _ = waker.wake();
            }
        }));
        let (code, text) = match asked {
            Ok(()) => {
                conn.queries_pending += 1;
                return;
            }
            Err(SubmitError::Busy { .. } | SubmitError::OverQuota { .. }) => (
                ErrorCode::Busy,
                "too many queries waiting for the executor; retry later".to_string(),
            ),
            Err(SubmitError::Stopped { reason }) => (ErrorCode::Stopped, reason),
        };
        Message::Error(ErrorMessage {
            request_id,
            code,
            text,
        })
        .encode(conn.io.output());
    }

    /// Counts a query (or subscription) and refuses it, answering `over_quota`, when its
    /// identity is over a query quota; over the rate, the connection is not read for about
    /// as long as the bucket needs. Returns whether it was refused.
    fn refused_over_query_quota(&mut self, conn: &mut Connection, request_id: u64) -> bool {
        self.node.metrics().queries.inc();
        let Some((quota, text)) = self.query_refusal(conn) else {
            return false;
        };
        self.node.metrics().quota_refused[quota.index()].inc();
        if quota == Quota::QueryRate {
            let pause = rate_pause(1, self.config.identity_queries_per_s);
            conn.rate_paused_until = Some(Instant::now() + pause);
        }
        self.audit(conn, "over_quota", request_id, [0; 3], &text);
        Message::Error(ErrorMessage {
            request_id,
            code: ErrorCode::OverQuota,
            text,
        })
        .encode(conn.io.output());
        true
    }

    /// Takes a subscription (replacing the connection's earlier one): answers where its
    /// events start, or why it is refused; its events follow in `send_events`.
    fn subscribe(
        &mut self,
        conn: &mut Connection,
        request_id: u64,
        subscription: crate::events::Subscription,
    ) {
        if self.refused_over_query_quota(conn, request_id) {
            return;
        }
        if let Some(Err(text)) = conn
            .scope
            .as_ref()
            .map(|scope| scope.may_follow(&subscription.accounts))
        {
            return self.forbid(conn, request_id, text);
        }
        let result = match (subscription.check(), self.node.events()) {
            (Err(text), _) => QueryResult::Error(text),
            (Ok(()), None) => QueryResult::Error("this node keeps no event journal".into()),
            (Ok(()), Some(journal)) if subscription.from_height < journal.first_height() => {
                QueryResult::Error(
                    crate::events::JournalError::Before {
                        first: journal.first_height(),
                    }
                    .to_string(),
                )
            }
            (Ok(()), Some(journal)) => {
                conn.subscription = Some(Following {
                    request_id,
                    accounts: subscription.accounts.iter().copied().collect(),
                    cursor: crate::events::Cursor::at(subscription.from_height),
                });
                QueryResult::Ok(Answer::Subscribed {
                    from_height: subscription.from_height,
                    height: journal.last_height(),
                })
            }
        };
        if matches!(result, QueryResult::Error(_)) {
            conn.subscription = None;
        }
        Message::QueryReply { request_id, result }.encode(conn.io.output());
    }

    /// Sends the subscription's next blocks with events of its accounts, while the output
    /// has room, at most `EVENT_BLOCKS_PER_TURN` blocks read per turn. Returns whether the
    /// subscription is still behind the journal (more to read at the next turn).
    fn send_events(&mut self, conn: &mut Connection) -> bool {
        let Some(journal) = self.node.events() else {
            return false;
        };
        // taken out while it sends, so that the connection's and its identity's output
        // bounds can be looked at between reads
        let Some(mut following) = conn.subscription.take() else {
            return false;
        };
        let mut read = 0;
        let mut failed = None;
        while read < EVENT_BLOCKS_PER_TURN
            && !conn.io.output_full()
            && !self.identity_output_full(conn)
            && following.cursor.next_height <= journal.last_height()
        {
            let accounts = &following.accounts;
            let request_id = following.request_id;
            let output = conn.io.output();
            match journal.read(&mut following.cursor, 64, |height, stamp, events| {
                let events: Vec<_> = events
                    .into_iter()
                    .filter(|event| accounts.iter().any(|account| event.names(*account)))
                    .collect();
                // a block that ends a business day reaches every subscription, with or
                // without events, so each follower learns where the day ends
                let parts = events
                    .len()
                    .div_ceil(crate::events::EVENTS_PER_FRAME_MAX)
                    .max(usize::from(stamp.day_ended.is_some()));
                for index in 0..parts {
                    let from = index * crate::events::EVENTS_PER_FRAME_MAX;
                    let to = (from + crate::events::EVENTS_PER_FRAME_MAX).min(events.len());
                    Message::Events {
                        request_id,
                        batch: crate::events::EventBatch {
                            height,
                            stamp,
                            events: events[from..to].to_vec(),
                            complete: index + 1 == parts,
                        },
                    }
                    .encode(output);
                }
            }) {
                Ok(0) => break,
                Ok(blocks) => read += blocks,
                Err(error) => {
                    failed = Some((request_id, error.to_string()));
                    break;
                }
            }
        }
        if let Some((request_id, text)) = failed {
            tracing::error!(peer = %conn.io.addr(), reason = %text, "a subscription's events cannot be read; it ends");
            Message::Error(ErrorMessage {
                request_id,
                code: ErrorCode::Stopped,
                text,
            })
            .encode(conn.io.output());
            return false;
        }
        let behind = following.cursor.next_height <= journal.last_height();
        conn.subscription = Some(following);
        behind
    }

    /// Moves acknowledgements from the connection's channel to its output, while the output
    /// is under its bound (the rest wait in the channel, bounded by the in-flight limit).
    fn move_acks(&mut self, conn: &mut Connection) {
        while !conn.io.output_full() && !self.over_budget(conn) && !self.identity_output_full(conn)
        {
            self.scratch.clear();
            self.scratch.extend(
                conn.acks_rx
                    .try_iter()
                    .take(super::message::RESULTS_PER_FRAME_MAX),
            );
            if self.scratch.is_empty() {
                return;
            }
            conn.inflight = conn.inflight.saturating_sub(self.scratch.len());
            if let Some(identity) = conn.identity.and_then(|id| self.identities.get_mut(&id)) {
                identity.inflight = identity.inflight.saturating_sub(self.scratch.len());
            }
            if conn.closing.is_none() {
                encode_results(&self.scratch, conn.io.output());
                let bad = self
                    .scratch
                    .iter()
                    .filter(|ack| ack.code == crate::result::ResultCode::BadSignature)
                    .count() as u64;
                if bad > 0 {
                    self.count_bad_signatures(conn, bad);
                }
            }
        }
    }
}

/// How long a connection is not read after `refused` records (or queries) over a rate of
/// `rate` a second: about until the bucket holds them again, within 10 ms and 500 ms (well
/// inside a client's patience for a receipt).
fn rate_pause(refused: usize, rate: u64) -> Duration {
    Duration::from_secs_f64(refused as f64 / rate.max(1) as f64)
        .clamp(Duration::from_millis(10), Duration::from_millis(500))
}

/// The length of the longest prefix of `records` of at most `allowed` records that ends
/// between linked chains.
fn chains_within(records: &[crate::tx::TxRecord], allowed: usize) -> usize {
    if allowed >= records.len() {
        return records.len();
    }
    let mut end = 0;
    for unit in crate::tx::linked_units(records, crate::tx::TxRecord::is_linked) {
        if unit.end > allowed {
            break;
        }
        end = unit.end;
    }
    end
}

fn refuse(conn: &mut Connection, request_id: u64, code: ErrorCode, text: String) {
    Message::Error(ErrorMessage {
        request_id,
        code,
        text,
    })
    .encode(conn.io.output());
    conn.closing = Some(Instant::now());
}
