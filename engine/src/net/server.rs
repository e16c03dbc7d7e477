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
//! (nothing received, nothing owed) is closed after `idle_timeout`. When `connections_max`
//! connections are open, a new one takes the place of the oldest connection still in its
//! handshake, so that connections which never authenticate cannot lock authenticated
//! clients out; only when every open connection has authenticated is the new one refused.

use super::access::{Directory, Scope};
use super::audit::{AuditEntry, AuditError, AuditLog};
use super::conn::{FramedConn, ReadOutcome};
use super::event_loop::{self, EventLoop};
use super::frame::{self, FRAME_BYTES_MAX};
use super::message::{
    encode_results, ErrorCode, ErrorMessage, Hello, Message, Refusal, Role, SubmitReceipt, Welcome,
    PROTOCOL_VERSION, SUBMIT_BATCH_TX_MAX,
};
use super::query::{answer_from_ledger, node_status, Answer, Query, QueryResult, OFFLINE_ONLY};
use super::tls::{NodeTls, TlsRefusal};
use crate::mempool::Ack;
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
            audit,
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
    /// The audit trail (the thread's alone).
    audit: Option<RefCell<AuditLog>>,
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
            let timeout = if finishing_since.is_some()
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
        }
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

    /// Why a newly authenticated connection is not admitted: its certificate is in its
    /// back-off after bad signatures, or has `identity_connections_max` connections open.
    fn admit(&mut self, scope: &Scope) -> Option<String> {
        if let Some(until) = self.backoff.get(&scope.serial) {
            if Instant::now() < *until {
                return Some(format!(
                    "{} is refused for {:?} more after {} bad signatures",
                    scope.name,
                    until.saturating_duration_since(Instant::now()),
                    self.config.bad_signatures_max
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
            format!(
                "{} has {open} connections open (identity_connections_max = {}); retry later",
                scope.name, self.config.identity_connections_max
            )
        })
    }

    /// Counts a connection's records refused for bad signatures; past `bad_signatures_max`
    /// in the window, closes it and refuses its certificate for `bad_signature_backoff`.
    fn count_bad_signatures(&mut self, conn: &mut Connection, bad: u64) {
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

    /// Closes the open connections whose certificate was revoked since the last look.
    fn close_revoked(&mut self) {
        let Some(tls) = self.config.tls.clone() else {
            return;
        };
        let generation = tls.revocations().generation();
        if generation == self.revocation_generation {
            return;
        }
        self.revocation_generation = generation;
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
                self.connections.insert(token, conn);
            }
            Closed::Yes => {
                self.buffered = self.buffered.saturating_sub(before);
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
                            let empty = Directory::default();
                            let directory = self.config.directory.as_deref().unwrap_or(&empty);
                            let scope = Scope::new(&holder, directory);
                            let refusal = self.admit(&scope);
                            conn.scope = Some(Arc::new(scope));
                            if let Some(text) = refusal {
                                self.audit(conn, "not_admitted", 0, [0; 3], &text);
                                self.reject(conn, ErrorCode::Busy, text);
                                continue;
                            }
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
            other => {
                let text = format!("a client may not send {}", other.kind().name());
                self.reject(conn, ErrorCode::UnexpectedMessage, text);
            }
        }
    }

    fn greet(&self, conn: &mut Connection, hello: Hello) {
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

    fn submit(&self, conn: &mut Connection, request_id: u64, records: &[crate::tx::TxRecord]) {
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
        let metrics = self.node.metrics();
        metrics.batch.submit.observe(records.len() as u64);
        let (accepted, refusal) = match self.node.submit(records, &conn.acks_tx) {
            Ok(taken) => (taken, Refusal::None),
            Err(SubmitError::Busy { accepted }) => (accepted, Refusal::Busy),
            Err(SubmitError::Stopped { reason }) => (0, Refusal::Stopped(reason)),
        };
        let refused = records.len() - accepted;
        if refusal == Refusal::Busy {
            metrics.busy_tx.add(refused as u64);
        }
        let refusal = if refused == 0 { Refusal::None } else { refusal };
        let detail = match &refusal {
            Refusal::None => "",
            Refusal::Busy => "busy",
            Refusal::Stopped(_) => "stopped",
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

    fn query(&self, token: Token, conn: &mut Connection, request_id: u64, query: Query) {
        self.node.metrics().queries.inc();
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
                // What reads the log or every tax record is answered offline only.
                _ => QueryResult::Error(OFFLINE_ONLY.into()),
            };
            return Message::QueryReply { request_id, result }.encode(conn.io.output());
        }
        let replies = self.replies_tx.clone();
        let waker = Arc::clone(&self.waker);
        let asked = self.node.query_ledger(Box::new(move |ledger| {
            // a participant's transaction query: its accounts are looked up first
            if let Some((scope, id)) = check {
                if let Err(text) = scope.may_read_transaction(ledger, id) {
                    if replies
                        .send((token, Vec::new(), Some((request_id, text))))
                        .is_ok()
                    {
                        let _ = waker.wake();
                    }
                    return;
                }
            }
            let result = if query.needs_ledger() {
                answer_from_ledger(ledger, &query)
            } else {
                QueryResult::Error(OFFLINE_ONLY.into())
            };
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
            Err(SubmitError::Busy { .. }) => (
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

    /// Moves acknowledgements from the connection's channel to its output, while the output
    /// is under its bound (the rest wait in the channel, bounded by the in-flight limit).
    fn move_acks(&mut self, conn: &mut Connection) {
        while !conn.io.output_full() && !self.over_budget(conn) {
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

fn refuse(conn: &mut Connection, request_id: u64, code: ErrorCode, text: String) {
    Message::Error(ErrorMessage {
        request_id,
        code,
        text,
    })
    .encode(conn.io.output());
    conn.closing = Some(Instant::now());
}
