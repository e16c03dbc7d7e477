//! The link thread: one mio poll loop that dials, accepts, authenticates, reads and writes
//! every validator link, with backoff, bounded buffers and per-connection refusals. The
//! sockets, their buffers and the poll are the shared ones of `net::conn` and
//! `net::event_loop`; what is here is the validator link's own: dialling, the handshake, the
//! peers' queues and the refusals.

use super::*;

pub(super) struct PeerInfo {
    pub(super) key: VerificationKey,
    /// A link to it has been up before (the next one counts as a reconnect).
    pub(super) ever_live: bool,
}

/// Dialling state for a validator with a larger key than this node's.
pub(super) struct Dial {
    pub(super) addr: SocketAddr,
    /// Delay before the next attempt after a failure.
    pub(super) backoff: Duration,
    pub(super) next_attempt: Instant,
    /// The connection of the attempt in progress or the live link.
    pub(super) conn: Option<Token>,
}

pub(super) enum Stage {
    /// Dialled, the TCP connection not yet established.
    Connecting,
    /// Our hello sent; waiting for theirs.
    AwaitHello,
    /// Hello exchanged, our auth sent; waiting for theirs.
    AwaitAuth { remote: [u8; 32], nonce: [u8; 32] },
    /// Authenticated.
    Live { peer: [u8; 32] },
}

pub(super) struct Conn {
    /// The socket, its input and its output (bounded softly by [`BULK_CHUNK_BYTES`]: past
    /// it bulk frames wait in their lane).
    pub(super) io: FramedConn,
    /// The validator this node dialled on this connection (None: accepted).
    pub(super) dialled: Option<[u8; 32]>,
    pub(super) started: Instant,
    pub(super) stage: Stage,
    /// Our nonce for this connection.
    pub(super) nonce: [u8; 32],
    /// Bytes at the front of the unwritten output that are not counted in the peer's
    /// `queued` (handshake frames).
    pub(super) uncounted: usize,
}

impl AsMut<FramedConn> for Conn {
    fn as_mut(&mut self) -> &mut FramedConn {
        &mut self.io
    }
}

impl Conn {
    pub(super) fn live_peer(&self) -> Option<[u8; 32]> {
        match self.stage {
            Stage::Live { peer } => Some(peer),
            _ => None,
        }
    }
}

/// How a connection ends.
pub(super) enum Close {
    /// Closed by this node for a reason that has a counter.
    Refused(Refusal, String),
    /// Ended otherwise (peer closed, socket error, connect failed).
    Ended(String),
}

/// How often, at the latest, the link thread looks for links whose certificate was revoked.
const REVOCATION_SWEEP: Duration = Duration::from_millis(250);

pub(super) struct LinkThread {
    pub(super) own: [u8; 32],
    pub(super) key: SigningKey,
    pub(super) config: PeerConfig,
    pub(super) event_loop: EventLoop,
    pub(super) listener: TcpListener,
    pub(super) shared: Arc<Shared>,
    pub(super) events: Sender<PeerEvent>,
    /// The receiver was dropped: events are discarded.
    pub(super) events_gone: bool,
    /// Events not yet taken by the channel; while any wait, no connection is decoded.
    pub(super) pending: VecDeque<PeerEvent>,
    pub(super) peers: HashMap<[u8; 32], PeerInfo>,
    pub(super) dials: HashMap<[u8; 32], Dial>,
    pub(super) conns: HashMap<Token, Conn>,
    /// A connection stopped with input left to read (read budget spent): poll again at once.
    pub(super) more_work: bool,
    /// The revocation list's generation at the last look for revoked links.
    pub(super) revocation_generation: u64,
}

impl LinkThread {
    pub(super) fn run(&mut self) {
        loop {
            let timeout = self.poll_timeout();
            match self.event_loop.wait(timeout, &mut self.conns) {
                Ok(true) => self.accept(),
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, "validator link poll failed; closing every link");
                    break;
                }
            }
            if self.shared.stopped.load(Ordering::SeqCst) {
                break;
            }
            self.shared.wake_pending.store(false, Ordering::SeqCst);
            self.flush_events();
            self.close_revoked();
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
            self.event_loop.deregister(&mut conn.io);
        }
        tracing::info!("validator links stopped");
    }

    pub(super) fn poll_timeout(&self) -> Option<Duration> {
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
        if self.config.tls.is_some() {
            // Look for revoked links at least this often, even on quiet links.
            timeout = Some(timeout.map_or(REVOCATION_SWEEP, |t| t.min(REVOCATION_SWEEP)));
        }
        // Round up so that a deadline has passed when the poll returns.
        timeout.map(|t| t + Duration::from_millis(1))
    }

    pub(super) fn emit(&mut self, event: PeerEvent) {
        self.pending.push_back(event);
        self.flush_events();
    }

    pub(super) fn flush_events(&mut self) {
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

    /// A connection over `io` (already registered), with its hello queued when it was
    /// accepted.
    pub(super) fn new_conn(&self, io: FramedConn, dialled: Option<[u8; 32]>) -> Conn {
        let mut nonce = [0u8; 32];
        rand::fill(&mut nonce);
        let mut conn = Conn {
            io,
            dialled,
            started: Instant::now(),
            stage: if dialled.is_some() {
                Stage::Connecting
            } else {
                Stage::AwaitHello
            },
            nonce,
            uncounted: 0,
        };
        if dialled.is_none() {
            self.send_hello(&mut conn);
        }
        conn
    }

    pub(super) fn send_hello(&self, conn: &mut Conn) {
        let before = conn.io.pending_out();
        PeerHello {
            version: PEER_PROTOCOL_VERSION,
            network_id: self.config.network_id,
            genesis_hash: self.config.genesis_hash,
            public_key: self.own,
            nonce: conn.nonce,
        }
        .encode(conn.io.output());
        conn.uncounted += conn.io.pending_out() - before;
    }

    pub(super) fn handshakes(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.live_peer().is_none())
            .count()
    }

    pub(super) fn accept(&mut self) {
        loop {
            let (stream, addr) = match event_loop::accept(&self.listener) {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
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
            let mut io = match &self.config.tls {
                Some(tls) => FramedConn::with_tls(stream, addr, BULK_CHUNK_BYTES, tls.accept()),
                None => FramedConn::new(stream, addr, BULK_CHUNK_BYTES),
            };
            let token = match self.event_loop.register(&mut io) {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%addr, %error, "cannot register a validator connection");
                    continue;
                }
            };
            configure_link_socket(io.stream(), addr);
            tracing::debug!(%addr, "validator connection accepted");
            let conn = self.new_conn(io, None);
            self.conns.insert(token, conn);
        }
    }

    pub(super) fn dial_due(&mut self) {
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
                Ok(stream) => {
                    configure_link_socket(&stream, addr);
                    let mut io = match &self.config.tls {
                        Some(tls) => {
                            FramedConn::with_tls(stream, addr, BULK_CHUNK_BYTES, tls.dial(addr))
                        }
                        None => FramedConn::new(stream, addr, BULK_CHUNK_BYTES),
                    };
                    let token = match self.event_loop.register(&mut io) {
                        Ok(token) => token,
                        Err(error) => {
                            tracing::warn!(%addr, %error, "cannot register a validator connection");
                            self.dial_failed(&peer);
                            continue;
                        }
                    };
                    let conn = self.new_conn(io, Some(peer));
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
    pub(super) fn dial_failed(&mut self, peer: &[u8; 32]) {
        let max = self.config.backoff_max;
        if let Some(dial) = self.dials.get_mut(peer) {
            dial.conn = None;
            dial.next_attempt = Instant::now() + dial.backoff;
            dial.backoff = (dial.backoff * 2).min(max);
        }
    }

    pub(super) fn expire_handshakes(&mut self) {
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

    pub(super) fn count_refusal(&self, reason: Refusal, addr: SocketAddr, text: &str) {
        self.shared.counters.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%addr, reason = reason.name(), detail = %text, "closing a validator connection");
    }

    /// Closes a connection (already removed from `conns`): counts and logs the reason, ends
    /// the peer's link and schedules the next dial.
    pub(super) fn close(&mut self, mut conn: Conn, close: Close) {
        self.event_loop.deregister(&mut conn.io);
        let text = match close {
            Close::Refused(reason, text) => {
                self.count_refusal(reason, conn.io.addr(), &text);
                text
            }
            Close::Ended(text) => {
                if conn.live_peer().is_none() {
                    self.shared
                        .counters
                        .dial_failures
                        .fetch_add(u64::from(conn.dialled.is_some()), Ordering::Relaxed);
                    tracing::debug!(addr = %conn.io.addr(), detail = %text, "validator connection ended before authentication");
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
            tracing::info!(addr = %conn.io.addr(), peer = %short(&peer), reason = %text, "validator link down");
            self.emit(PeerEvent::Disconnected { peer, reason: text });
        }
        if let Some(peer) = conn.dialled {
            self.dial_failed(&peer);
        }
    }

    pub(super) fn service(&mut self, token: Token) {
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

    pub(super) fn service_conn(&mut self, conn: &mut Conn) -> Result<(), Close> {
        if matches!(conn.stage, Stage::Connecting) {
            match conn.io.connect_finished() {
                Ok(true) => {
                    conn.stage = Stage::AwaitHello;
                    self.send_hello(conn);
                }
                Ok(false) => return Ok(()),
                Err(error) => return Err(Close::Ended(format!("connect failed: {error}"))),
            }
        }
        let mut reads = 0;
        loop {
            let bulk_left = self.take_queued(conn);
            self.write_out(conn)?;
            if bulk_left && conn.io.pending_out() == 0 {
                // The socket took everything: no writable event will come for the rest.
                self.more_work = true;
            }
            self.decode_buffered(conn)?;
            if !self.pending.is_empty() {
                // The event channel is full: leave the input in the socket (TCP pushes back).
                break;
            }
            if conn.io.eof() {
                if let Some(error) = conn.io.truncated_input() {
                    return Err(Close::Refused(
                        Refusal::BadFrame,
                        format!("bad frame: {error}"),
                    ));
                }
                return Err(Close::Ended("the validator closed the connection".into()));
            }
            if !conn.io.readable() {
                break;
            }
            if reads == READS_PER_TURN_MAX {
                self.more_work = true;
                break;
            }
            reads += 1;
            match conn.io.read_some() {
                Ok(ReadOutcome::Bytes(n)) => {
                    self.shared
                        .counters
                        .bytes_received
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Ok(ReadOutcome::Eof) => {}
                Ok(ReadOutcome::Empty) => break,
                Err(error) => {
                    if let Some(tls_error) = conn.io.tls_error() {
                        let reason = crate::net::tls::TlsRefusal::of(tls_error);
                        return Err(Close::Refused(
                            Refusal::Tls,
                            format!("{}: {tls_error}", reason.name()),
                        ));
                    }
                    return Err(Close::Ended(format!("read failed: {error}")));
                }
            }
        }
        self.write_out(conn)
    }

    /// Moves frames queued by callers into the connection's output: every ordinary frame,
    /// then bulk frames while less than [`BULK_CHUNK_BYTES`] wait to be written. Returns
    /// whether bulk frames are left behind.
    pub(super) fn take_queued(&self, conn: &mut Conn) -> bool {
        let Some(peer) = conn.live_peer() else {
            return false;
        };
        let Some(slot) = self.shared.slot(&peer) else {
            return false;
        };
        let mut state = lock(slot);
        conn.io.queue_all(&mut state.out);
        if state.bulk.is_empty() || conn.io.output_full() {
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
        conn.io.queue(&state.bulk[..cut]);
        state.bulk.drain(..cut);
        !state.bulk.is_empty()
    }

    /// Writes as much output as the socket takes, and counts what was written against the
    /// peer's queue (handshake frames excepted).
    pub(super) fn write_out(&self, conn: &mut Conn) -> Result<(), Close> {
        let (written, result) = conn.io.write_out();
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
        result.map_err(|error| Close::Ended(format!("write failed: {error}")))
    }

    /// Decodes and handles whole frames in the read buffer while the event channel has
    /// room.
    pub(super) fn decode_buffered(&mut self, conn: &mut Conn) -> Result<(), Close> {
        while self.pending.is_empty() {
            // The frame borrows the input while it is handled with the connection.
            let mut input = conn.io.take_input();
            if conn.live_peer().is_none() {
                // Before authentication only handshake frames are expected: refuse a longer
                // frame as soon as its header is in, without buffering it.
                if let Some(total) = input.frame_over(FRAME_HEADER_BYTES + PEER_HELLO_BYTES) {
                    conn.io.put_input(input);
                    return Err(Close::Refused(
                        Refusal::BadHandshake,
                        format!(
                            "a frame of {total} bytes before authentication; handshake frames are at most {} bytes",
                            FRAME_HEADER_BYTES + PEER_HELLO_BYTES
                        ),
                    ));
                }
            }
            let outcome = match decode_peer_frame(input.unread()) {
                Ok(Some((raw, used))) => {
                    let handled = self.handle(conn, raw);
                    input.consume(used);
                    handled
                }
                Ok(None) => {
                    conn.io.put_input(input);
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
            conn.io.put_input(input);
            outcome?;
        }
        Ok(())
    }

    pub(super) fn handle(&mut self, conn: &mut Conn, raw: RawFrame<'_>) -> Result<(), Close> {
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

    pub(super) fn on_hello(&mut self, conn: &mut Conn, payload: &[u8]) -> Result<(), Close> {
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
        if let Some(certificate) = conn.io.peer_certificate() {
            let holder = tally_pki::read_certificate(certificate)
                .map_err(|e| Close::Refused(Refusal::CertificateMismatch, e.to_string()))?;
            // An accepted link's certificate was checked against the list in the TLS
            // handshake; a dialled validator's is checked here.
            if self.is_revoked(certificate) {
                return Err(Close::Refused(
                    Refusal::Revoked,
                    format!("the certificate of {} is revoked", holder.name),
                ));
            }
            if holder.access != tally_pki::Access::Validator || !holder.signers.contains(&remote) {
                return Err(Close::Refused(
                    Refusal::CertificateMismatch,
                    format!(
                        "the TLS certificate of {} ({}) does not bind validator key {}",
                        holder.name,
                        holder.access,
                        hex::encode(remote)
                    ),
                ));
            }
        } else if self.config.tls.is_some() {
            return Err(Close::Refused(
                Refusal::CertificateMismatch,
                "a hello before the TLS handshake verified a certificate".into(),
            ));
        }
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
        let before = conn.io.pending_out();
        auth.encode(conn.io.output());
        conn.uncounted += conn.io.pending_out() - before;
        conn.stage = Stage::AwaitAuth {
            remote,
            nonce: conn.nonce,
        };
        Ok(())
    }

    /// Whether the certificate's serial is on this node's revocation list.
    fn is_revoked(&self, certificate: &rustls::pki_types::CertificateDer<'_>) -> bool {
        let Some(tls) = &self.config.tls else {
            return false;
        };
        tally_pki::serial_of(certificate)
            .map(|serial| tls.revocations().is_revoked(&serial))
            .unwrap_or(false)
    }

    /// Closes the connections (live links and handshakes) whose certificate was revoked
    /// since the last look: a revoked validator loses its links as soon as the revocation's
    /// block commits, and its next dials are refused in the TLS handshake or at the hello.
    pub(super) fn close_revoked(&mut self) {
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
            .conns
            .iter()
            .filter(|(_, conn)| {
                conn.io
                    .peer_certificate()
                    .is_some_and(|certificate| self.is_revoked(certificate))
            })
            .map(|(token, _)| *token)
            .collect();
        for token in revoked {
            let conn = self.conns.remove(&token).expect("found");
            self.close(
                conn,
                Close::Refused(Refusal::Revoked, "its certificate was revoked".into()),
            );
        }
    }

    /// Closes the live link of `remote`, if any, because `replacement` (from `addr`) has just
    /// authenticated as the same validator: a restarted validator dials again while this
    /// node may still hold its old, silently dead link. The newest authenticated connection
    /// wins; only the holder of the validator's key can authenticate one.
    pub(super) fn replace_live_link(&mut self, remote: &[u8; 32], addr: SocketAddr) {
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
                conn.io.addr()
            );
            self.close(conn, Close::Ended(text));
        }
    }

    pub(super) fn on_auth(
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
        self.replace_live_link(&remote, conn.io.addr());
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
        tracing::info!(addr = %conn.io.addr(), peer = %short(&remote), "validator link up");
        self.emit(PeerEvent::Connected { peer: remote });
        Ok(())
    }
}

/// Sets the options of a validator link's socket: no Nagle delay, TCP keepalive
/// ([`LINK_KEEPALIVE_IDLE`], [`LINK_KEEPALIVE_INTERVAL`], [`LINK_KEEPALIVE_PROBES`]) and, on
/// Linux, [`LINK_UNACKNOWLEDGED_TIMEOUT`], so that a link whose peer vanished without closing
/// it (machine or network down) ends and is dialled again instead of staying half open. A
/// refused option is logged; the link still works, it only notices a dead peer later.
pub(super) fn configure_link_socket(stream: &TcpStream, addr: SocketAddr) {
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
pub(super) fn short(key: &[u8; 32]) -> String {
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
}
