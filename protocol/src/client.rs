//! The blocking client library: one TCP connection to a node, usable from many threads.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tally_protocol::client::Client;
//! let client = Client::connect("127.0.0.1:7400")?;
//! let (reply, acks) = crossbeam::channel::unbounded();
//! # let records: Vec<tally_protocol::tx::TxRecord> = Vec::new();
//! let taken = client.submit(&records, &reply)?; // blocks for the node's receipt
//! for _ in 0..taken {
//!     let ack = acks.recv()?; // final result: id, code, height
//! }
//! println!("{:?}", client.status()?);
//! # Ok(()) }
//! ```
//!
//! With [`ClientOptions::tls`] (an identity's [`crate::identity::Identity::client_config`])
//! the connection is TLS 1.3: the client presents its certificate and checks the node's
//! against the network's CA and the address dialled. The TLS state is shared by the writers
//! and the reader thread under a lock that is never held across socket I/O: a writer
//! encrypts under it and writes the records under the writer lock (taken first, so records
//! reach the socket in the order they were made); the reader reads the socket without it
//! and decrypts under it.
//!
//! `submit` has the contract of a node's own `submit` (`tally_engine::node::NodeHandle`,
//! [`crate::submit`]): every record the node took is answered exactly once on the `reply`
//! channel, by the client's reader thread, as soon as its Results frame arrives.

use crate::events::{EventBatch, Subscription};
use crate::frame::{self, FRAME_HEADER_BYTES};
use crate::message::{
    encode_submit_batch, ErrorCode, ErrorMessage, Hello, Message, Refusal, Role, SubmitReceipt,
    Welcome, PROTOCOL_VERSION,
};
use crate::query::{AccountInfo, Answer, NodeStatus, Query, QueryResult, TxStatusInfo};
use crate::result::ResultCode;
use crate::submit::{Ack, SubmitError};
use crate::tx::{linked_units, TxRecord};
use crossbeam::channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a client connects and waits.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Longest wait for a receipt or a query's answer; past it the connection is given up.
    pub request_timeout: Duration,
    /// The network the client means; 0 accepts the node's, whatever it is.
    pub network_id: u64,
    /// TLS with this configuration (an identity's); `None` speaks plain TCP, which nodes
    /// accept only when they run with `--insecure-plaintext`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            network_id: 0,
            tls: None,
        }
    }
}

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve node address {addr}: {reason}")]
    Resolve { addr: String, reason: String },
    #[error("cannot connect to node at {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("TLS with the node at {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    #[error("node at {addr} refused the connection ({}): {text}", code.name())]
    Refused {
        addr: SocketAddr,
        code: ErrorCode,
        text: String,
    },
    #[error("node at {addr} broke the protocol: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
    #[error("connection to node at {addr} failed: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("connection to node at {addr} is closed: {reason}")]
    Closed { addr: SocketAddr, reason: String },
    #[error("node at {addr} did not answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("node refused the request ({}): {text}", code.name())]
    RequestRefused { code: ErrorCode, text: String },
    #[error("query failed: {0}")]
    QueryFailed(String),
    #[error("node answered a different query: {0:?}")]
    UnexpectedAnswer(Box<Answer>),
}

enum Reply {
    Receipt(SubmitReceipt),
    Query(QueryResult),
    Error(ErrorMessage),
}

/// Where results go: one default channel (the fast path), or per id when a caller passes a
/// different channel.
#[derive(Default)]
struct Sinks {
    default: Option<Sender<Ack>>,
    by_id: HashMap<u128, (Sender<Ack>, u32)>,
}

impl Sinks {
    fn sink_for(&mut self, id: u128) -> Option<Sender<Ack>> {
        if let Some((sender, count)) = self.by_id.get_mut(&id) {
            let sender = sender.clone();
            *count -= 1;
            if *count == 0 {
                self.by_id.remove(&id);
            }
            return Some(sender);
        }
        self.default.clone()
    }

    fn unregister(&mut self, id: u128) {
        if let Some((_, count)) = self.by_id.get_mut(&id) {
            *count -= 1;
            if *count == 0 {
                self.by_id.remove(&id);
            }
        }
    }
}

/// The TLS state of a connection, shared by the writers and the reader.
type SharedTls = Arc<Mutex<rustls::ClientConnection>>;

struct Inner {
    addr: SocketAddr,
    writer: Mutex<TcpStream>,
    tls: Option<SharedTls>,
    /// The same socket, outside the writer's lock: shutting it down unblocks a writer stuck
    /// on a node that stopped reading.
    closer: TcpStream,
    next_request: AtomicU64,
    pending: Mutex<HashMap<u64, Sender<Reply>>>,
    sinks: Mutex<Sinks>,
    /// The subscription's request id and where its events go (see [`Client::subscribe`]).
    events: Mutex<Option<(u64, Sender<EventBatch>)>>,
    in_flight: AtomicUsize,
    dead: Mutex<Option<String>>,
    options: ClientOptions,
    /// When the connection opened, and (in milliseconds since) the last frame from the node.
    opened: std::time::Instant,
    last_heard_ms: AtomicU64,
}

impl Inner {
    fn die(&self, reason: String) {
        let mut dead = self.dead.lock().expect("dead lock");
        if dead.is_none() {
            tracing::debug!(addr = %self.addr, %reason, "client connection ended");
            *dead = Some(reason);
        }
        drop(dead);
        // Waiters see their reply channel close and read the reason.
        self.pending.lock().expect("pending lock").clear();
        self.events.lock().expect("events lock").take();
        let _ = self.closer.shutdown(std::net::Shutdown::Both);
    }

    /// Writes whole frames (encrypted first under TLS).
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut socket = self.writer.lock().expect("writer lock");
        match &self.tls {
            None => socket.write_all(bytes),
            Some(tls) => {
                let records = encrypt(tls, bytes)?;
                socket.write_all(&records)
            }
        }
    }

    fn dead_reason(&self) -> Option<String> {
        self.dead.lock().expect("dead lock").clone()
    }

    fn closed_error(&self) -> ClientError {
        ClientError::Closed {
            addr: self.addr,
            reason: self
                .dead_reason()
                .unwrap_or_else(|| "the connection ended".to_string()),
        }
    }

    /// Sends a frame with a fresh request id, waits for the reply to that id.
    fn request(&self, encode: impl FnOnce(u64, &mut Vec<u8>)) -> Result<Reply, ClientError> {
        self.request_within(encode, self.options.request_timeout)
    }

    /// [`Inner::request`] with its own wait.
    fn request_within(
        &self,
        encode: impl FnOnce(u64, &mut Vec<u8>),
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        if self.dead_reason().is_some() {
            return Err(self.closed_error());
        }
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = bounded(1);
        self.pending
            .lock()
            .expect("pending lock")
            .insert(request_id, tx);
        let mut bytes = Vec::new();
        encode(request_id, &mut bytes);
        let written = self.send(&bytes);
        if let Err(source) = written {
            self.pending
                .lock()
                .expect("pending lock")
                .remove(&request_id);
            self.die(format!("write failed: {source}"));
            return Err(ClientError::Io {
                addr: self.addr,
                source,
            });
        }
        match rx.recv_timeout(timeout) {
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Disconnected) => Err(self.closed_error()),
            Err(RecvTimeoutError::Timeout) => {
                self.die(format!(
                    "no answer to request {request_id} within {timeout:?}"
                ));
                Err(ClientError::Timeout {
                    addr: self.addr,
                    timeout,
                })
            }
        }
    }
}

/// Event batches a subscription's channel holds before the connection stops reading.
pub const EVENT_BATCHES_BUFFERED: usize = 1_024;

/// One connection to a node. `Send + Sync`: share it between threads.
pub struct Client {
    inner: Arc<Inner>,
    welcome: Welcome,
    reader: Option<JoinHandle<()>>,
}

impl Client {
    /// Connects with the default options.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        Client::connect_with(addr, &ClientOptions::default())
    }

    /// Connects, says Hello and waits for the node's Welcome.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        options: &ClientOptions,
    ) -> Result<Client, ClientError> {
        let resolved: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|error| ClientError::Resolve {
                addr: String::new(),
                reason: error.to_string(),
            })?
            .collect();
        let Some(&addr) = resolved.first() else {
            return Err(ClientError::Resolve {
                addr: String::new(),
                reason: "the name resolves to no address".into(),
            });
        };
        let mut stream = TcpStream::connect_timeout(&addr, options.connect_timeout)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let io_error = |source| ClientError::Io { addr, source };
        stream.set_nodelay(true).map_err(io_error)?;
        stream
            .set_read_timeout(Some(options.connect_timeout))
            .map_err(io_error)?;
        stream
            .set_write_timeout(Some(options.connect_timeout))
            .map_err(io_error)?;
        let tls = match &options.tls {
            None => None,
            Some(config) => Some(handshake(&mut stream, addr, config)?),
        };
        let mut hello = Vec::new();
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Client,
            network_id: options.network_id,
        })
        .encode(&mut hello);
        match &tls {
            None => stream.write_all(&hello),
            Some(tls) => encrypt(tls, &hello).and_then(|records| stream.write_all(&records)),
        }
        .map_err(io_error)?;
        let mut reader = FrameSource {
            socket: stream.try_clone().map_err(io_error)?,
            tls: tls.clone(),
            raw: Vec::new(),
            raw_start: 0,
        };
        let mut buf = Vec::new();
        let welcome = match read_frame(&mut reader, &mut buf) {
            Ok(Some(bytes)) => match decode_owned(&bytes) {
                Ok(Message::Welcome(welcome)) => welcome,
                Ok(Message::Error(error)) => {
                    return Err(ClientError::Refused {
                        addr,
                        code: error.code,
                        text: error.text,
                    })
                }
                Ok(other) => {
                    return Err(ClientError::Protocol {
                        addr,
                        reason: format!("expected welcome, got {}", other.kind().name()),
                    })
                }
                Err(reason) => return Err(ClientError::Protocol { addr, reason }),
            },
            Ok(None) => {
                return Err(ClientError::Closed {
                    addr,
                    reason: "the node closed the connection before its welcome".into(),
                })
            }
            // A TLS alert before the welcome: the node refused this client's certificate.
            Err(ReadError::Io(source))
                if reader.tls.is_some() && source.kind() == io::ErrorKind::InvalidData =>
            {
                return Err(ClientError::Tls {
                    addr,
                    reason: source.to_string(),
                })
            }
            Err(ReadError::Io(source)) => return Err(ClientError::Io { addr, source }),
            Err(ReadError::Frame(reason)) => return Err(ClientError::Protocol { addr, reason }),
        };
        if welcome.version != PROTOCOL_VERSION {
            return Err(ClientError::Protocol {
                addr,
                reason: format!(
                    "node speaks protocol version {}, this client {PROTOCOL_VERSION}",
                    welcome.version
                ),
            });
        }
        stream.set_read_timeout(None).map_err(io_error)?;
        stream.set_write_timeout(None).map_err(io_error)?;
        let closer = stream.try_clone().map_err(io_error)?;
        let inner = Arc::new(Inner {
            addr,
            writer: Mutex::new(stream),
            tls,
            closer,
            next_request: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            sinks: Mutex::new(Sinks::default()),
            events: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            dead: Mutex::new(None),
            options: options.clone(),
            opened: std::time::Instant::now(),
            last_heard_ms: AtomicU64::new(0),
        });
        let reader = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("tally-client-reader".into())
                .spawn(move || read_loop(&inner, reader, buf))
                .expect("the operating system starts a thread")
        };
        Ok(Client {
            inner,
            welcome,
            reader: Some(reader),
        })
    }

    /// What the node said when the client connected.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    pub fn network_id(&self) -> u64 {
        self.welcome.network_id
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Records taken by the node and not yet answered on this connection.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Why the connection ended, if it did.
    pub fn connection_error(&self) -> Option<String> {
        self.inner.dead_reason()
    }

    /// Submits records: the contract of a node's own `submit` ([`crate::submit`]). Returns
    /// how many the node took, in order from the first; each taken record is answered exactly once on
    /// `reply`. Slices longer than the node's batch maximum go as several batches, one
    /// round trip each, cut between linked chains: a chain travels in one batch, as the
    /// protocol requires. A chain longer than the node's batch maximum cannot: it is not sent,
    /// and each of its records is answered `linked_chain_too_long` on `reply` (it counts as
    /// taken).
    ///
    /// Errors: `Busy { accepted }` when the node's mempool filled after `accepted` records;
    /// `OverQuota { accepted, quota, .. }` when this identity went over a quota of the node
    /// after `accepted` records;
    /// `Stopped` when the node stopped or the connection failed (the reason says which).
    /// When the node stops after taking part of a multi-batch slice, `Ok(taken)` is less
    /// than `records.len()` and the next call answers `Stopped`.
    pub fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        let batch_max = (self.welcome.submit_batch_tx_max as usize).max(1);
        let mut taken = 0;
        while taken < records.len() {
            let rest = &records[taken..];
            let (length, too_long) = next_batch(rest, batch_max);
            if too_long {
                for record in &rest[..length] {
                    let _ = reply.send(Ack {
                        id: record.id(),
                        code: ResultCode::LinkedChainTooLong,
                        height: None,
                    });
                }
                taken += length;
                continue;
            }
            match self.submit_batch(&rest[..length], reply) {
                Ok(n) => taken += n,
                Err(SubmitError::Busy { accepted }) => {
                    return Err(SubmitError::Busy {
                        accepted: taken + accepted,
                    })
                }
                Err(SubmitError::OverQuota {
                    accepted,
                    quota,
                    text,
                }) => {
                    return Err(SubmitError::OverQuota {
                        accepted: taken + accepted,
                        quota,
                        text,
                    })
                }
                Err(stopped) if taken == 0 => return Err(stopped),
                Err(_) => return Ok(taken),
            }
        }
        Ok(taken)
    }

    fn submit_batch(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
    ) -> Result<usize, SubmitError> {
        let inner = &*self.inner;
        let stopped = |reason: String| SubmitError::Stopped { reason };
        {
            let mut sinks = inner.sinks.lock().expect("sinks lock");
            let default = sinks.default.get_or_insert_with(|| reply.clone());
            if !default.same_channel(reply) {
                for record in records {
                    sinks
                        .by_id
                        .entry(record.id())
                        .or_insert_with(|| (reply.clone(), 0))
                        .1 += 1;
                }
            }
        }
        inner.in_flight.fetch_add(records.len(), Ordering::AcqRel);
        let outcome =
            inner.request(|request_id, bytes| encode_submit_batch(request_id, records, bytes));
        let (accepted, result) = match outcome {
            Ok(Reply::Receipt(receipt)) => {
                let accepted = (receipt.accepted as usize).min(records.len());
                let result = match receipt.refusal {
                    Refusal::None => Ok(accepted),
                    Refusal::Busy => Err(SubmitError::Busy { accepted }),
                    Refusal::OverQuota { quota, text } => Err(SubmitError::OverQuota {
                        accepted,
                        quota,
                        text,
                    }),
                    Refusal::Stopped(reason) => Err(stopped(format!("node stopped: {reason}"))),
                };
                (accepted, result)
            }
            Ok(Reply::Error(error)) => (
                0,
                Err(stopped(format!(
                    "node refused the batch ({}): {}",
                    error.code.name(),
                    error.text
                ))),
            ),
            Ok(Reply::Query(_)) => {
                inner.die("node answered a submit with a query reply".into());
                (0, Err(stopped(inner.closed_error().to_string())))
            }
            Err(error) => (0, Err(stopped(error.to_string()))),
        };
        let refused = &records[accepted..];
        if !refused.is_empty() {
            inner.in_flight.fetch_sub(refused.len(), Ordering::AcqRel);
            let mut sinks = inner.sinks.lock().expect("sinks lock");
            if !sinks.by_id.is_empty() {
                for record in refused {
                    sinks.unregister(record.id());
                }
            }
        }
        result
    }

    /// Asks the node a question.
    pub fn query(&self, query: &Query) -> Result<Answer, ClientError> {
        let reply = self.inner.request(|request_id, bytes| {
            Message::Query {
                request_id,
                query: query.clone(),
            }
            .encode(bytes)
        })?;
        self.answer_of(reply, "query")
    }

    /// The answer a query-like request (`what`) got, or why there is none.
    fn answer_of(&self, reply: Reply, what: &str) -> Result<Answer, ClientError> {
        match reply {
            Reply::Query(QueryResult::Ok(answer)) => Ok(answer),
            Reply::Query(QueryResult::Error(text)) => Err(ClientError::QueryFailed(text)),
            Reply::Error(error) => Err(ClientError::RequestRefused {
                code: error.code,
                text: error.text,
            }),
            Reply::Receipt(_) => {
                self.inner
                    .die(format!("node answered a {what} with a submit receipt"));
                Err(self.inner.closed_error())
            }
        }
    }

    /// Follows `subscription`'s accounts: returns where its events start and the node's
    /// last durable block, and a channel of one batch per block with events of those
    /// accounts, in height order. The channel holds at most `EVENT_BATCHES_BUFFERED`
    /// batches: while it is full this connection reads nothing more (results and answers
    /// included), so follow events on a connection of their own. The channel closes when
    /// the connection ends; subscribe again (on any node) from the height after the last
    /// batch handled to hear every event once. A second subscription replaces the first.
    pub fn subscribe(
        &self,
        subscription: &Subscription,
    ) -> Result<(Answer, Receiver<EventBatch>), ClientError> {
        let (tx, rx) = bounded(EVENT_BATCHES_BUFFERED);
        let reply = self.inner.request(|request_id, bytes| {
            *self.inner.events.lock().expect("events lock") = Some((request_id, tx));
            Message::Subscribe {
                request_id,
                subscription: subscription.clone(),
            }
            .encode(bytes)
        })?;
        match self.answer_of(reply, "subscription")? {
            answer @ Answer::Subscribed { .. } => Ok((answer, rx)),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// The node's height, queues, counters and backend.
    pub fn status(&self) -> Result<NodeStatus, ClientError> {
        match self.query(&Query::Status)? {
            Answer::Status(status) => Ok(*status),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// An account's balance (`None`: no such account).
    pub fn balance(&self, account: u64) -> Result<Option<i64>, ClientError> {
        match self.query(&Query::Balance { account })? {
            Answer::Balance { balance, .. } => Ok(balance),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// An account: balance, role, limits, reservations, suspension (an error names a missing
    /// account).
    pub fn account(&self, account: u64) -> Result<AccountInfo, ClientError> {
        match self.query(&Query::Account { account })? {
            Answer::Account(info) => Ok(*info),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// What the ledger knows of a transaction: settled, queued (where), pending, ...
    pub fn tx_status(&self, id: u128) -> Result<TxStatusInfo, ClientError> {
        match self.query(&Query::TxStatus { id })? {
            Answer::TxStatus(info) => Ok(*info),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// The validator set in force and the votes on its changes (an [`Answer::Validators`]).
    pub fn validators(&self) -> Result<Answer, ClientError> {
        match self.query(&Query::Validators)? {
            answer @ Answer::Validators { .. } => Ok(answer),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }

    /// Whether a transaction id has settled.
    pub fn transaction_settled(&self, id: u128) -> Result<bool, ClientError> {
        match self.query(&Query::Transaction { id })? {
            Answer::Transaction { settled, .. } => Ok(settled),
            other => Err(ClientError::UnexpectedAnswer(Box::new(other))),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.inner.closer.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Completes the TLS handshake on a blocking stream (its timeouts bound the wait).
fn handshake(
    stream: &mut TcpStream,
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> Result<SharedTls, ClientError> {
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| ClientError::Tls {
            addr,
            reason: e.to_string(),
        })?;
    // Frames are encrypted as they are sent: no bound on what waits to be encrypted.
    tls.set_buffer_limit(None);
    while tls.is_handshaking() {
        if let Err(error) = tls.complete_io(stream) {
            let reason = match error
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
            {
                Some(tls_error) => tls_error.to_string(),
                None if error.kind() == io::ErrorKind::UnexpectedEof
                    || error.kind() == io::ErrorKind::ConnectionReset =>
                {
                    format!("the node closed the connection in the handshake ({error}): it refused this client's certificate, or does not speak TLS")
                }
                None => error.to_string(),
            };
            return Err(ClientError::Tls { addr, reason });
        }
    }
    Ok(Arc::new(Mutex::new(tls)))
}

/// Encrypts `bytes` into TLS records, under the TLS lock only.
fn encrypt(tls: &SharedTls, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut tls = tls.lock().expect("tls lock");
    tls.writer().write_all(bytes)?;
    let mut records = Vec::with_capacity(bytes.len() + 64);
    while tls.wants_write() {
        tls.write_tls(&mut records)?;
    }
    Ok(records)
}

/// The byte source of the reader: the socket, decrypted when the connection is TLS.
struct FrameSource {
    socket: TcpStream,
    tls: Option<SharedTls>,
    /// Socket bytes read for the TLS layer; those before `raw_start` were handed to it.
    raw: Vec<u8>,
    raw_start: usize,
}

/// Socket bytes read at a time for the TLS layer.
const TLS_READ_BYTES: usize = 8 * 1024;

impl Read for FrameSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.socket.read(buf);
        };
        loop {
            {
                let mut tls = tls.lock().expect("tls lock");
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    // The socket ended without close_notify: the end all the same (a frame
                    // cut short shows as truncated).
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(error) => return Err(error),
                }
                // No plaintext waits: hand the TLS layer socket bytes read before, one
                // `read_tls` at a time, so that what it decrypts is read out before more
                // comes (its received plaintext is bounded: 16 KiB).
                if self.raw_start < self.raw.len() {
                    let mut fresh = &self.raw[self.raw_start..];
                    let before = fresh.len();
                    tls.read_tls(&mut fresh)?;
                    self.raw_start += before - fresh.len();
                    tls.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    continue;
                }
            }
            // Nothing waits: read the socket without the lock (writers go on).
            self.raw.resize(TLS_READ_BYTES, 0);
            let n = self.socket.read(&mut self.raw)?;
            self.raw.truncate(n);
            self.raw_start = 0;
            if n == 0 {
                // The end of the socket: the TLS layer learns it from an empty read.
                let mut tls = tls.lock().expect("tls lock");
                tls.read_tls(&mut &[][..])?;
                tls.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
    }
}

enum ReadError {
    Io(io::Error),
    Frame(String),
}

/// Reads one whole frame (header included) from a blocking stream; `Ok(None)` at a clean end
/// between frames. `buf` keeps bytes read past the frame.
fn read_frame(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, ReadError> {
    loop {
        match frame::frame_len(buf) {
            Ok(Some(total)) if buf.len() >= total => {
                let rest = buf.split_off(total);
                return Ok(Some(std::mem::replace(buf, rest)));
            }
            Ok(_) => {}
            Err(error) => return Err(ReadError::Frame(error.to_string())),
        }
        let want = match frame::frame_len(buf) {
            Ok(Some(total)) => total - buf.len(),
            _ => FRAME_HEADER_BYTES - buf.len(),
        }
        .max(64 * 1024);
        let filled = buf.len();
        buf.resize(filled + want, 0);
        let n = loop {
            match stream.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    buf.truncate(filled);
                    return Err(ReadError::Io(error));
                }
            }
        };
        buf.truncate(filled + n);
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(ReadError::Frame(frame::truncated(buf).to_string()));
        }
    }
}

fn decode_owned(bytes: &[u8]) -> Result<Message<'_>, String> {
    let frame = frame::decode_complete(bytes).map_err(|e| e.to_string())?;
    Message::decode(frame).map_err(|e| format!("bad {} message: {e}", frame.kind.name()))
}

fn read_loop(inner: &Inner, mut stream: FrameSource, mut buf: Vec<u8>) {
    let reason = loop {
        let bytes = match read_frame(&mut stream, &mut buf) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break "the node closed the connection".to_string(),
            Err(ReadError::Io(error)) => break format!("read failed: {error}"),
            Err(ReadError::Frame(reason)) => break format!("bad frame from the node: {reason}"),
        };
        heard(inner);
        let message = match decode_owned(&bytes) {
            Ok(message) => message,
            Err(reason) => break format!("bad message from the node: {reason}"),
        };
        let (request_id, reply) = match message {
            Message::Results(acks) => {
                deliver(inner, &acks);
                continue;
            }
            Message::SubmitReceipt(receipt) => (receipt.request_id, Reply::Receipt(receipt)),
            Message::QueryReply { request_id, result } => (request_id, Reply::Query(result)),
            Message::Events { request_id, batch } => {
                let sink = match &*inner.events.lock().expect("events lock") {
                    Some((id, sink)) if *id == request_id => Some(sink.clone()),
                    _ => None,
                };
                match sink {
                    // Blocks while the follower's channel is full: the node then waits too
                    // (TCP), so a slow follower holds no more than its channel.
                    Some(sink) => {
                        let _ = sink.send(batch);
                    }
                    None => tracing::debug!(request_id, "events of a subscription nobody follows"),
                }
                continue;
            }
            Message::Error(error) if error.request_id != 0 => {
                (error.request_id, Reply::Error(error))
            }
            Message::Error(error) => {
                break format!(
                    "node closed the connection ({}): {}",
                    error.code.name(),
                    error.text
                )
            }
            other => break format!("node sent an unexpected {}", other.kind().name()),
        };
        let waiter = inner
            .pending
            .lock()
            .expect("pending lock")
            .remove(&request_id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => tracing::debug!(request_id, "answer to a request nobody waits for"),
        }
    };
    inner.die(reason);
}

/// Notes that a frame arrived (what [`Client::keep_alive`] measures silence from).
fn heard(inner: &Inner) {
    let ms = inner.opened.elapsed().as_millis() as u64;
    inner.last_heard_ms.fetch_max(ms, Ordering::Relaxed);
}

impl Client {
    /// How long since the last frame from the node (or since the connection opened).
    pub fn silent_for(&self) -> Duration {
        let heard = Duration::from_millis(self.inner.last_heard_ms.load(Ordering::Relaxed));
        self.inner.opened.elapsed().saturating_sub(heard)
    }

    /// Keepalive: notices within a bounded time a node that stopped answering without
    /// closing the connection (a host that died, a cut link: no reset arrives). When
    /// records await their results and nothing has come from the node for `silence_max`,
    /// asks for its status and waits at most `probe_timeout`: a node that answers is alive
    /// (it may be waiting for its peers) and the connection stays; one that does not is
    /// given up, and the reason returned. Also returns why the connection ended when it
    /// already had. Call it periodically (a watchdog thread); it blocks only while probing.
    pub fn keep_alive(&self, silence_max: Duration, probe_timeout: Duration) -> Option<String> {
        if let Some(reason) = self.connection_error() {
            return Some(reason);
        }
        let requests = self.inner.pending.lock().expect("pending lock").len();
        let waiting = self.in_flight() > 0 || requests > 0;
        if !waiting || self.silent_for() < silence_max {
            return None;
        }
        let silent = self.silent_for();
        let probe = self.inner.request_within(
            |request_id, bytes| {
                Message::Query {
                    request_id,
                    query: Query::Status,
                }
                .encode(bytes)
            },
            probe_timeout,
        );
        match probe {
            Ok(_) => None,
            Err(error) => {
                let reason = format!(
                    "the node sent nothing for {silent:.1?} while {} records and {requests} \
                     requests awaited answers, and did not answer a keepalive status query \
                     within {probe_timeout:?} ({error})",
                    self.in_flight()
                );
                self.inner.die(reason.clone());
                Some(reason)
            }
        }
    }
}

fn deliver(inner: &Inner, acks: &[Ack]) {
    let mut sinks = inner.sinks.lock().expect("sinks lock");
    if sinks.by_id.is_empty() {
        if let Some(sink) = &sinks.default {
            for ack in acks {
                let _ = sink.send(*ack);
            }
        }
    } else {
        for ack in acks {
            if let Some(sink) = sinks.sink_for(ack.id) {
                let _ = sink.send(*ack);
            }
        }
    }
    drop(sinks);
    inner.in_flight.fetch_sub(acks.len(), Ordering::AcqRel);
}

/// How many of `records` go in the next batch of at most `batch_max`, cut before a linked
/// chain that would straddle the cut; `true` with the length of the first chain when that
/// chain alone is longer than `batch_max` (it cannot travel in one batch).
fn next_batch(records: &[TxRecord], batch_max: usize) -> (usize, bool) {
    let mut taken = 0;
    for unit in linked_units(records, TxRecord::is_linked) {
        if unit.end <= batch_max {
            taken = unit.end;
        } else if taken == 0 {
            return (unit.end, true);
        } else {
            break;
        }
    }
    (taken, false)
}

/// A stream of results for tests and tools that submit and wait: submits `records` and
/// waits for every taken record's result (at most `timeout` in all).
pub fn submit_and_wait(
    client: &Client,
    records: &[TxRecord],
    timeout: Duration,
) -> Result<(Vec<Ack>, Option<SubmitError>), ClientError> {
    let (reply, acks): (Sender<Ack>, Receiver<Ack>) = crossbeam::channel::unbounded();
    let (taken, refusal) = match client.submit(records, &reply) {
        Ok(taken) => (taken, None),
        Err(SubmitError::Busy { accepted }) => (accepted, Some(SubmitError::Busy { accepted })),
        Err(SubmitError::OverQuota {
            accepted,
            quota,
            text,
        }) => (
            accepted,
            Some(SubmitError::OverQuota {
                accepted,
                quota,
                text,
            }),
        ),
        Err(stopped) => (0, Some(stopped)),
    };
    let deadline = std::time::Instant::now() + timeout;
    let mut results = Vec::with_capacity(taken);
    while results.len() < taken {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match acks.recv_timeout(left) {
            Ok(ack) => results.push(ack),
            Err(_) => {
                return Err(match client.connection_error() {
                    Some(reason) => ClientError::Closed {
                        addr: client.peer_addr(),
                        reason,
                    },
                    None => ClientError::Timeout {
                        addr: client.peer_addr(),
                        timeout,
                    },
                })
            }
        }
    }
    Ok((results, refusal))
}
