//! Validator links on loopback: a mesh of three exchanging frames both ways in order, a
//! restarted validator reconnecting, every handshake violation refused and counted while the
//! real links go on, backpressure both ways, and a seeded fuzz of the handshake decoders.

mod common;

use common::{proptest_config, test_seed};
use crossbeam::channel::{bounded, Receiver};
use ed25519_zebra::SigningKey;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use tally_engine::keys::public_key_of;
use tally_engine::net::frame::{self, MessageType, FRAME_BYTES_MAX, FRAME_HEADER_BYTES};
use tally_engine::net::peers::{
    decode_all_peer, decode_peer_frame, HandshakeError, PeerAuth, PeerConfig, PeerError, PeerEvent,
    PeerHello, PeerLinks, PeerSendError, PeerSpec, Refusal, HANDSHAKES_MAX, PEER_AUTH,
    PEER_AUTH_BYTES, PEER_HELLO, PEER_HELLO_BYTES, PEER_PROTOCOL_VERSION,
};

const NETWORK: u64 = 77;
const GENESIS: [u8; 32] = [9; 32];
/// How long to wait for something that must happen; a failure, never a measured time.
const WAIT: Duration = Duration::from_secs(30);
const EVENTS_MAX: usize = 4096;

/// `n` keys sorted by public key (the smallest dials everyone).
fn keys(n: usize, salt: u8) -> Vec<SigningKey> {
    let mut keys: Vec<SigningKey> = (0..n)
        .map(|i| {
            let mut seed = [salt; 32];
            seed[0] = i as u8;
            SigningKey::from(seed)
        })
        .collect();
    keys.sort_by_key(public_key_of);
    keys
}

fn pk(key: &SigningKey) -> [u8; 32] {
    public_key_of(key)
}

fn config(peers: Vec<PeerSpec>) -> PeerConfig {
    PeerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        peers,
        network_id: NETWORK,
        genesis_hash: GENESIS,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(400),
        out_bytes_max: FRAME_BYTES_MAX,
        tls: None,
    }
}

struct Node {
    key: [u8; 32],
    links: PeerLinks,
    events: Receiver<PeerEvent>,
}

fn start(listener: TcpListener, key: &SigningKey, peers: Vec<PeerSpec>, events_max: usize) -> Node {
    let (tx, events) = bounded(events_max);
    let links =
        PeerLinks::start_with_listener(listener, config(peers), *key, tx).expect("links start");
    Node {
        key: pk(key),
        links,
        events,
    }
}

/// Starts a full mesh over `keys`; `extra` validators (raw test sockets) are known to all
/// and never dialled (give them keys smaller than every node's).
fn mesh(keys: &[SigningKey], extra: &[[u8; 32]]) -> (Vec<Node>, Vec<SocketAddr>) {
    let listeners: Vec<TcpListener> = keys
        .iter()
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let nodes = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            start(
                listener,
                &keys[i],
                peers_of(keys, &addrs, i, extra),
                EVENTS_MAX,
            )
        })
        .collect();
    (nodes, addrs)
}

fn peers_of(
    keys: &[SigningKey],
    addrs: &[SocketAddr],
    me: usize,
    extra: &[[u8; 32]],
) -> Vec<PeerSpec> {
    let mut peers: Vec<PeerSpec> = (0..keys.len())
        .filter(|&j| j != me)
        .map(|j| PeerSpec {
            public_key: pk(&keys[j]),
            addr: addrs[j],
        })
        .collect();
    peers.extend(extra.iter().map(|key| PeerSpec {
        public_key: *key,
        // Never dialled: these keys are smaller, so they dial.
        addr: "127.0.0.1:9".parse().unwrap(),
    }));
    peers
}

fn next_event(node: &Node) -> PeerEvent {
    node.events
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("no event within {WAIT:?}"))
}

/// Waits for `Connected` from every key in `peers` (in any order); no frame may come first.
fn expect_connected(node: &Node, peers: &[[u8; 32]]) {
    let mut missing: Vec<[u8; 32]> = peers.to_vec();
    while !missing.is_empty() {
        match next_event(node) {
            PeerEvent::Connected { peer } => missing.retain(|k| *k != peer),
            other => panic!("expected Connected, got {other:?}"),
        }
    }
}

fn expect_disconnected(node: &Node, from: [u8; 32]) -> String {
    match next_event(node) {
        PeerEvent::Disconnected { peer, reason } if peer == from => reason,
        other => panic!(
            "expected Disconnected from {}, got {other:?}",
            hex::encode(from)
        ),
    }
}

fn payload(from: usize, to: usize, seq: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(9));
    out.push(from as u8);
    out.push(to as u8);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((0..len.saturating_sub(out.len())).map(|i| (i as u32 * 31 + seq) as u8));
    out.truncate(len.max(6));
    out
}

/// Frames (kind, payload) per sender, in arrival order.
type PerSender = BTreeMap<[u8; 32], Vec<(u8, Vec<u8>)>>;

/// Collects `count` frames and returns them per sender, in arrival order.
fn receive_frames(node: &Node, count: usize) -> PerSender {
    let mut got = PerSender::new();
    for _ in 0..count {
        match next_event(node) {
            PeerEvent::Frame {
                peer,
                kind,
                payload,
            } => got.entry(peer).or_default().push((kind, payload)),
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    got
}

/// Every node sends `per_link` frames (mixed kinds and sizes, empty and large) to every
/// other and one broadcast; every node gets exactly those, in order per sender.
fn exchange(nodes: &[Node], per_link: u32, rng: &mut ChaCha8Rng) {
    let mut expected: Vec<PerSender> = vec![BTreeMap::new(); nodes.len()];
    for (i, from) in nodes.iter().enumerate() {
        for seq in 0..per_link {
            for (j, to) in nodes.iter().enumerate() {
                if i == j {
                    continue;
                }
                let len = match seq % 5 {
                    0 => 0,
                    1 => 152,
                    2 => rng.random_range(0..2_000),
                    3 => rng.random_range(0..40_000),
                    _ => 9,
                };
                let kind = 0x42 + (seq % 62) as u8;
                let bytes = payload(i, j, seq, len);
                from.links.send(&to.key, kind, &bytes).expect("queued");
                expected[j].entry(from.key).or_default().push((kind, bytes));
            }
        }
        let bytes = payload(i, 255, per_link, 1_000);
        assert_eq!(from.links.broadcast(0x7F, &bytes), nodes.len() - 1);
        for (j, _) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            expected[j]
                .entry(from.key)
                .or_default()
                .push((0x7F, bytes.clone()));
        }
    }
    for (j, node) in nodes.iter().enumerate() {
        let count = expected[j].values().map(Vec::len).sum();
        let got = receive_frames(node, count);
        assert_eq!(got, expected[j], "frames at node {j}");
    }
}

#[test]
fn three_validators_exchange_frames_both_ways_in_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(test_seed("three_validators_exchange_frames"));
    let keys = keys(3, 1);
    let (nodes, _) = mesh(&keys, &[]);
    for node in &nodes {
        let others: Vec<[u8; 32]> = nodes
            .iter()
            .map(|n| n.key)
            .filter(|k| *k != node.key)
            .collect();
        expect_connected(node, &others);
        let mut sorted = others.clone();
        sorted.sort();
        assert_eq!(node.links.connected(), sorted);
    }
    exchange(&nodes, 40, &mut rng);
    for (i, node) in nodes.iter().enumerate() {
        let stats = node.links.stats();
        assert_eq!(stats.frames_sent, 2 * 40 + 2, "node {i}");
        assert_eq!(stats.frames_received, 2 * 40 + 2, "node {i}");
        assert_eq!(stats.links_established, 2, "node {i}");
        assert_eq!(stats.refused_total(), 0, "node {i}: {stats:?}");
        assert_eq!(stats.reconnects, 0, "node {i}");
        // The smallest key dials both others, the largest dials none.
        assert_eq!(stats.dials, (2 - i) as u64, "node {i}");
    }
    for node in nodes {
        node.links.shutdown();
    }
}

#[test]
fn a_restarted_validator_reconnects_on_the_same_address() {
    let mut rng = ChaCha8Rng::seed_from_u64(test_seed("a_restarted_validator_reconnects"));
    let keys = keys(3, 2);
    let (mut nodes, addrs) = mesh(&keys, &[]);
    for node in &nodes {
        let others: Vec<[u8; 32]> = nodes
            .iter()
            .map(|n| n.key)
            .filter(|k| *k != node.key)
            .collect();
        expect_connected(node, &others);
    }
    exchange(&nodes, 5, &mut rng);

    // The middle key both dials (the largest) and is dialled (by the smallest).
    let middle = nodes.remove(1);
    let middle_key = middle.key;
    middle.links.shutdown();
    for node in &nodes {
        let reason = expect_disconnected(node, middle_key);
        assert!(
            reason.contains("closed") || reason.contains("failed"),
            "{reason}"
        );
        assert_eq!(
            node.links.send(&middle_key, 0x42, b"x"),
            Err(PeerSendError::NotConnected)
        );
    }
    let listener = TcpListener::bind(addrs[1]).expect("the address is free again");
    let restarted = start(
        listener,
        &keys[1],
        peers_of(&keys, &addrs, 1, &[]),
        EVENTS_MAX,
    );
    nodes.insert(1, restarted);
    expect_connected(&nodes[0], &[middle_key]);
    expect_connected(&nodes[2], &[middle_key]);
    expect_connected(&nodes[1], &[nodes[0].key, nodes[2].key]);
    exchange(&nodes, 5, &mut rng);
    assert_eq!(nodes[0].links.stats().reconnects, 1);
    assert_eq!(nodes[2].links.stats().reconnects, 1);
    assert!(nodes[0].links.stats().dials >= 2);
    for node in nodes {
        node.links.shutdown();
    }
}

/// A test socket that speaks the handshake by hand.
struct Raw {
    stream: TcpStream,
    /// The node's hello (its nonce is what our auth must sign).
    hello: PeerHello,
}

fn frame_bytes(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_raw(kind, &[payload], &mut out);
    out
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = vec![0u8; FRAME_HEADER_BYTES + PEER_HELLO_BYTES];
        stream
            .read_exact(&mut buf)
            .expect("the node sends its hello first");
        let (raw, used) = decode_peer_frame(&buf).unwrap().unwrap();
        assert_eq!((raw.kind, used), (PEER_HELLO, buf.len()));
        let hello = PeerHello::decode(raw.payload).unwrap();
        assert_eq!(hello.version, PEER_PROTOCOL_VERSION);
        assert_eq!((hello.network_id, hello.genesis_hash), (NETWORK, GENESIS));
        Raw { stream, hello }
    }

    fn send(&mut self, bytes: &[u8]) {
        // The node may already have closed: a failed write shows up in expect_closed.
        let _ = self.stream.write_all(bytes);
    }

    fn hello(&mut self, key: [u8; 32], network_id: u64, genesis_hash: [u8; 32]) {
        let mut out = Vec::new();
        PeerHello {
            version: PEER_PROTOCOL_VERSION,
            network_id,
            genesis_hash,
            public_key: key,
            nonce: [0x33; 32],
        }
        .encode(&mut out);
        self.send(&out);
    }

    fn auth(&mut self, signer: &SigningKey) {
        let mut out = Vec::new();
        PeerAuth::sign(
            signer,
            NETWORK,
            &GENESIS,
            &self.hello.public_key,
            &self.hello.nonce,
        )
        .encode(&mut out);
        self.send(&out);
    }

    /// Reads the node's auth: it answers a good hello with its signature over our nonce.
    fn read_auth(&mut self) -> PeerAuth {
        let mut buf = vec![0u8; FRAME_HEADER_BYTES + PEER_AUTH_BYTES];
        self.stream.read_exact(&mut buf).expect("the node's auth");
        let (raw, _) = decode_peer_frame(&buf).unwrap().unwrap();
        assert_eq!(raw.kind, PEER_AUTH);
        PeerAuth::decode(raw.payload).unwrap()
    }

    /// Reads until the node closes the connection.
    fn expect_closed(mut self) {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("the node did not close the connection within {WAIT:?}")
                }
                Err(_) => return, // reset: closed with our bytes unread
            }
        }
    }
}

#[test]
fn handshake_violations_are_refused_counted_and_real_links_go_on() {
    let mut rng = ChaCha8Rng::seed_from_u64(test_seed("handshake_violations_are_refused"));
    // keys[0] is a validator played by raw sockets (smallest: it dials); 1 and 2 are nodes.
    let all = keys(3, 3);
    let raw_key = &all[0];
    let stranger = SigningKey::from([0xEE; 32]);
    let (nodes, addrs) = mesh(&all[1..], &[pk(raw_key)]);
    expect_connected(&nodes[0], &[nodes[1].key]);
    expect_connected(&nodes[1], &[nodes[0].key]);
    let node = &nodes[0];
    let addr = addrs[0];
    let mut expected = BTreeMap::new();
    let mut refused = |reason: Refusal, raw: Raw| {
        raw.expect_closed();
        *expected.entry(reason.name()).or_insert(0u64) += 1;
        let stats = node.links.stats();
        for r in Refusal::ALL {
            assert_eq!(
                stats.refused(r),
                expected.get(r.name()).copied().unwrap_or(0),
                "{} after a {} case",
                r.name(),
                reason.name()
            );
        }
    };

    let mut raw = Raw::connect(addr);
    raw.hello(pk(&stranger), NETWORK, GENESIS);
    refused(Refusal::UnknownKey, raw);

    let mut raw = Raw::connect(addr);
    raw.hello(pk(raw_key), NETWORK + 1, GENESIS);
    refused(Refusal::WrongNetwork, raw);

    let mut raw = Raw::connect(addr);
    raw.hello(pk(raw_key), NETWORK, [8; 32]);
    refused(Refusal::WrongGenesis, raw);

    let mut raw = Raw::connect(addr);
    let mut hello = Vec::new();
    PeerHello {
        version: PEER_PROTOCOL_VERSION + 1,
        network_id: NETWORK,
        genesis_hash: GENESIS,
        public_key: pk(raw_key),
        nonce: [1; 32],
    }
    .encode(&mut hello);
    raw.send(&hello);
    refused(Refusal::VersionMismatch, raw);

    // The larger key must be dialled by the smaller one, never the other way.
    let mut raw = Raw::connect(addr);
    raw.hello(nodes[1].key, NETWORK, GENESIS);
    refused(Refusal::DialRule, raw);

    // Signed by another key, then by the right key over the wrong nonce.
    let mut raw = Raw::connect(addr);
    raw.hello(pk(raw_key), NETWORK, GENESIS);
    raw.auth(&stranger);
    refused(Refusal::BadSignature, raw);
    let mut raw = Raw::connect(addr);
    raw.hello(pk(raw_key), NETWORK, GENESIS);
    let mut out = Vec::new();
    PeerAuth::sign(raw_key, NETWORK, &GENESIS, &node.key, &[0x33; 32]).encode(&mut out);
    raw.send(&out);
    refused(Refusal::BadSignature, raw);

    let mut raw = Raw::connect(addr);
    raw.send(&frame_bytes(PEER_HELLO, &[0; PEER_HELLO_BYTES - 1]));
    refused(Refusal::BadHandshake, raw);

    // A link frame before the hello, and one in place of the auth.
    let mut raw = Raw::connect(addr);
    raw.send(&frame_bytes(0x42, b"too early"));
    refused(Refusal::BeforeAuth, raw);
    let mut raw = Raw::connect(addr);
    raw.hello(pk(raw_key), NETWORK, GENESIS);
    raw.send(&frame_bytes(0x50, b"too early"));
    refused(Refusal::BeforeAuth, raw);

    // A client-protocol frame.
    let mut raw = Raw::connect(addr);
    let mut client_hello = Vec::new();
    frame::encode(MessageType::Hello, &[0; 12], &mut client_hello);
    raw.send(&client_hello);
    refused(Refusal::ClientType, raw);

    // Oversized (refused on the header alone) and garbage.
    let mut raw = Raw::connect(addr);
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    header[4] = 0x42;
    raw.send(&header);
    refused(Refusal::BadFrame, raw);
    let mut raw = Raw::connect(addr);
    let mut garbage = [0u8; 40];
    rng.fill_bytes(&mut garbage);
    garbage[..4].copy_from_slice(&20u32.to_le_bytes());
    garbage[5] |= 1; // reserved bytes not zero
    raw.send(&garbage);
    refused(Refusal::BadFrame, raw);

    // A long frame before authentication is refused once its header is in.
    let mut raw = Raw::connect(addr);
    raw.send(&frame_bytes(0x42, &[7; 4096])[..FRAME_HEADER_BYTES]);
    refused(Refusal::BadHandshake, raw);

    // A good handshake by hand: the node's auth verifies, the link comes up.
    let mut live = Raw::connect(addr);
    live.hello(pk(raw_key), NETWORK, GENESIS);
    live.auth(raw_key);
    let answer = live.read_auth();
    let node_vk = ed25519_zebra::VerificationKey::try_from(node.key).unwrap();
    assert!(answer.verify(&node_vk, NETWORK, &GENESIS, &pk(raw_key), &[0x33; 32]));
    expect_connected(node, &[pk(raw_key)]);
    node.links
        .send(&pk(raw_key), 0x60, b"to the raw validator")
        .unwrap();
    let mut buf = vec![0u8; FRAME_HEADER_BYTES + 20];
    live.stream.read_exact(&mut buf).unwrap();
    let (frame, _) = decode_peer_frame(&buf).unwrap().unwrap();
    assert_eq!(
        (frame.kind, frame.payload),
        (0x60, &b"to the raw validator"[..])
    );
    live.send(&frame_bytes(0x61, b"from the raw validator"));
    assert_eq!(
        next_event(node),
        PeerEvent::Frame {
            peer: pk(raw_key),
            kind: 0x61,
            payload: b"from the raw validator".to_vec()
        }
    );

    // A second authenticated link for the same key while the first is live (the validator
    // restarted, its old link silently dead): the new one replaces the old, which is
    // closed; frames go to the new one. A hello alone replaces nothing.
    let mut unauthenticated = Raw::connect(addr);
    unauthenticated.hello(pk(raw_key), NETWORK, GENESIS);
    let old = live;
    let mut live = Raw::connect(addr);
    live.hello(pk(raw_key), NETWORK, GENESIS);
    live.auth(raw_key);
    live.read_auth();
    let reason = expect_disconnected(node, pk(raw_key));
    assert!(
        reason.contains("replaced by a new authenticated connection"),
        "{reason}"
    );
    expect_connected(node, &[pk(raw_key)]);
    assert_eq!(node.links.stats().links_replaced, 1);
    old.expect_closed();
    node.links
        .send(&pk(raw_key), 0x62, b"to the new link")
        .unwrap();
    let mut buf = vec![0u8; FRAME_HEADER_BYTES + 15];
    live.stream.read_exact(&mut buf).unwrap();
    let (frame, _) = decode_peer_frame(&buf).unwrap().unwrap();
    assert_eq!((frame.kind, frame.payload), (0x62, &b"to the new link"[..]));
    drop(unauthenticated);

    // A handshake frame, then a client type, on the authenticated link close it.
    live.send(&frame_bytes(PEER_HELLO, &[0; PEER_HELLO_BYTES]));
    refused(Refusal::UnexpectedHandshake, live);
    let reason = expect_disconnected(node, pk(raw_key));
    assert!(reason.contains("handshake frame"), "{reason}");
    let mut live = Raw::connect(addr);
    live.hello(pk(raw_key), NETWORK, GENESIS);
    live.auth(raw_key);
    expect_connected(node, &[pk(raw_key)]);
    live.send(&frame_bytes(MessageType::SubmitBatch as u8, &[0; 16]));
    refused(Refusal::ClientType, live);
    expect_disconnected(node, pk(raw_key));
    assert_eq!(node.links.stats().reconnects, 2);

    // The real link never noticed.
    let (a, b) = (&nodes[0], &nodes[1]);
    a.links.send(&b.key, 0x44, b"still here").unwrap();
    b.links.send(&a.key, 0x45, b"and here").unwrap();
    assert_eq!(
        next_event(b),
        PeerEvent::Frame {
            peer: a.key,
            kind: 0x44,
            payload: b"still here".to_vec()
        }
    );
    assert_eq!(
        next_event(a),
        PeerEvent::Frame {
            peer: b.key,
            kind: 0x45,
            payload: b"and here".to_vec()
        }
    );
    assert_eq!(nodes[1].links.stats().refused_total(), 0);
    assert_eq!(a.links.connected(), vec![b.key]);
}

#[test]
fn send_answers_full_once_a_stalled_peer_has_out_bytes_max_queued() {
    let all = keys(3, 4);
    let raw_key = &all[0];
    let (nodes, addrs) = mesh(&all[1..], &[pk(raw_key)]);
    expect_connected(&nodes[0], &[nodes[1].key]);
    expect_connected(&nodes[1], &[nodes[0].key]);
    let node = &nodes[0];
    // An authenticated peer that never reads.
    let mut stalled = Raw::connect(addrs[0]);
    stalled.hello(pk(raw_key), NETWORK, GENESIS);
    stalled.auth(raw_key);
    expect_connected(node, &[pk(raw_key)]);
    let chunk = vec![0xAB; 64 * 1024];
    let mut queued = 0usize;
    let limit = 512 * 1024 * 1024; // far beyond socket buffers and out_bytes_max
    loop {
        match node.links.send(&pk(raw_key), 0x55, &chunk) {
            Ok(()) => queued += chunk.len(),
            Err(PeerSendError::Full) => break,
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(queued < limit, "never Full after {queued} bytes");
        // The link thread drains into the socket concurrently; give it a turn.
        std::thread::yield_now();
    }
    assert!(
        queued >= FRAME_BYTES_MAX - chunk.len(),
        "Full after only {queued} bytes"
    );
    // Other links are not affected.
    node.links.send(&nodes[1].key, 0x42, b"unaffected").unwrap();
    assert_eq!(
        next_event(&nodes[1]),
        PeerEvent::Frame {
            peer: node.key,
            kind: 0x42,
            payload: b"unaffected".to_vec()
        }
    );
    drop(stalled);
}

#[test]
fn a_full_event_channel_stops_reading_and_tcp_pushes_back() {
    let keys = keys(2, 5);
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let mut it = listeners.into_iter();
    let sender = start(
        it.next().unwrap(),
        &keys[0],
        peers_of(&keys, &addrs, 0, &[]),
        EVENTS_MAX,
    );
    // The receiver's channel holds one event: Connected fills it.
    let receiver = start(
        it.next().unwrap(),
        &keys[1],
        peers_of(&keys, &addrs, 1, &[]),
        1,
    );
    expect_connected(&sender, &[receiver.key]);
    let mut sent = Vec::new();
    let mut seq = 0u32;
    loop {
        let bytes = payload(0, 1, seq, 32 * 1024);
        match sender
            .links
            .send(&receiver.key, 0x42 + (seq % 62) as u8, &bytes)
        {
            Ok(()) => sent.push(bytes),
            Err(PeerSendError::Full) => break,
            Err(other) => panic!("unexpected {other:?}"),
        }
        seq += 1;
        assert!(sent.len() < 16_384, "never Full: the receiver kept reading");
        std::thread::yield_now();
    }
    // The receiver read at most what fits in its buffers; now drain and check every frame.
    expect_connected(&receiver, &[sender.key]);
    for (i, bytes) in sent.iter().enumerate() {
        match next_event(&receiver) {
            PeerEvent::Frame { kind, payload, .. } => {
                assert_eq!(kind, 0x42 + (i % 62) as u8);
                assert_eq!(&payload, bytes, "frame {i}");
            }
            other => panic!("expected frame {i}, got {other:?}"),
        }
    }
    assert_eq!(receiver.links.stats().frames_received, sent.len() as u64);
}

#[test]
fn configuration_and_send_errors_are_specific() {
    let keys = keys(3, 6);
    let own = &keys[0];
    let spec = |key: &SigningKey| PeerSpec {
        public_key: pk(key),
        addr: "127.0.0.1:9".parse().unwrap(),
    };
    let attempt = |config: PeerConfig| {
        let (tx, _rx) = bounded(1);
        match PeerLinks::start(config, *own, tx) {
            Err(PeerError::Config(text)) => text,
            Err(other) => panic!("expected a configuration error, got {other}"),
            Ok(_) => panic!("expected a configuration error"),
        }
    };
    let text = attempt(config(vec![spec(&keys[1]), spec(own)]));
    assert!(
        text.contains("peers[1]") && text.contains("own key"),
        "{text}"
    );
    let text = attempt(config(vec![spec(&keys[1]), spec(&keys[1])]));
    assert!(text.contains("listed twice"), "{text}");
    let mut bad = config(vec![spec(&keys[1])]);
    bad.backoff_min = Duration::ZERO;
    assert!(attempt(bad).contains("backoff_min"));
    let mut bad = config(vec![spec(&keys[1])]);
    bad.backoff_max = Duration::from_millis(1);
    assert!(attempt(bad).contains("backoff_max"));
    let mut bad = config(vec![spec(&keys[1])]);
    bad.out_bytes_max = 1024;
    assert!(attempt(bad).contains("out_bytes_max"));

    // Nothing listens at the peer's address: the link stays down and is re-dialled.
    let (tx, _rx) = bounded(16);
    let links = PeerLinks::start(config(vec![spec(&keys[1])]), *own, tx).unwrap();
    assert_eq!(
        links.send(&pk(&keys[1]), 0x42, b""),
        Err(PeerSendError::NotConnected)
    );
    assert_eq!(
        links.send(&pk(&keys[2]), 0x42, b""),
        Err(PeerSendError::UnknownPeer)
    );
    assert_eq!(
        links.send(&pk(&keys[1]), 0x41, b""),
        Err(PeerSendError::InvalidKind(0x41))
    );
    assert_eq!(
        links.send(&pk(&keys[1]), 0x10, b""),
        Err(PeerSendError::InvalidKind(0x10))
    );
    let big = vec![0; FRAME_BYTES_MAX];
    assert!(matches!(
        links.send(&pk(&keys[1]), 0x42, &big),
        Err(PeerSendError::Oversized(_))
    ));
    assert_eq!(links.broadcast(0x42, b"nobody"), 0);
    assert!(links.connected().is_empty());
    links.shutdown();
}

#[test]
fn handshake_payloads_round_trip_and_refuse_bad_shapes() {
    let hello = PeerHello {
        version: PEER_PROTOCOL_VERSION,
        network_id: 5,
        genesis_hash: [1; 32],
        public_key: [2; 32],
        nonce: [3; 32],
    };
    assert_eq!(PeerHello::decode(&hello.to_bytes()), Ok(hello));
    assert_eq!(
        PeerHello::decode(&[0; 111]),
        Err(HandshakeError::HelloLength(111))
    );
    let mut bytes = hello.to_bytes();
    bytes[4] = 1;
    assert_eq!(
        PeerHello::decode(&bytes),
        Err(HandshakeError::HelloReserved([0, 0, 1, 0, 0, 0]))
    );
    assert_eq!(
        PeerAuth::decode(&[0; 63]),
        Err(HandshakeError::AuthLength(63))
    );
    let key = SigningKey::from([4; 32]);
    let vk = ed25519_zebra::VerificationKey::from(&key);
    let auth = PeerAuth::sign(&key, 5, &[1; 32], &[2; 32], &[3; 32]);
    assert!(auth.verify(&vk, 5, &[1; 32], &[2; 32], &[3; 32]));
    assert!(
        !auth.verify(&vk, 6, &[1; 32], &[2; 32], &[3; 32]),
        "network bound"
    );
    assert!(
        !auth.verify(&vk, 5, &[0; 32], &[2; 32], &[3; 32]),
        "genesis bound"
    );
    assert!(
        !auth.verify(&vk, 5, &[1; 32], &[9; 32], &[3; 32]),
        "receiver bound"
    );
    assert!(
        !auth.verify(&vk, 5, &[1; 32], &[2; 32], &[4; 32]),
        "nonce bound"
    );
    let mut out = Vec::new();
    hello.encode(&mut out);
    auth.encode(&mut out);
    assert_eq!(decode_all_peer(&out), 2);
    let client = frame_bytes(MessageType::Query as u8, b"");
    assert!(decode_peer_frame(&client).is_err());
    assert_eq!(decode_all_peer(&client), 0);
}

proptest! {
    #![proptest_config(proptest_config("peer_handshake_decoders_never_panic", 2_000))]

    #[test]
    fn peer_handshake_decoders_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        kind in 0x40u8..=0x43,
        cut in 0usize..200,
    ) {
        let _ = PeerHello::decode(&bytes);
        let _ = PeerAuth::decode(&bytes);
        let _ = decode_peer_frame(&bytes);
        decode_all_peer(&bytes);
        // Random payloads in well-formed frames reach the payload decoders.
        let mut framed = Vec::new();
        frame::encode_raw(kind, &[&bytes], &mut framed);
        let end = framed.len().min(FRAME_HEADER_BYTES + cut);
        decode_all_peer(&framed[..end]);
        prop_assert!(decode_all_peer(&framed) == 1);
    }
}

#[test]
fn silent_connections_time_out_and_handshakes_are_bounded() {
    let all = keys(2, 7);
    let (nodes, addrs) = mesh(&all, &[]);
    expect_connected(&nodes[0], &[nodes[1].key]);
    expect_connected(&nodes[1], &[nodes[0].key]);
    let node = &nodes[1];
    // HANDSHAKES_MAX silent connections, each greeted by the node...
    let silent: Vec<Raw> = (0..HANDSHAKES_MAX)
        .map(|_| Raw::connect(addrs[1]))
        .collect();
    // ...then one more is closed at once, without a hello.
    let mut extra = TcpStream::connect(addrs[1]).unwrap();
    extra.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = [0u8; 256];
    match extra.read(&mut sink) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("the connection over HANDSHAKES_MAX got {n} bytes"),
    }
    assert_eq!(node.links.stats().refused(Refusal::TooManyHandshakes), 1);
    // Nobody authenticates: each is closed after HANDSHAKE_TIMEOUT.
    for raw in silent {
        raw.expect_closed();
    }
    let stats = node.links.stats();
    assert_eq!(
        stats.refused(Refusal::HandshakeTimeout),
        HANDSHAKES_MAX as u64
    );
    // The real link was never touched.
    nodes[0].links.send(&node.key, 0x42, b"after").unwrap();
    assert_eq!(
        next_event(node),
        PeerEvent::Frame {
            peer: nodes[0].key,
            kind: 0x42,
            payload: b"after".to_vec()
        }
    );
}

#[test]
fn a_dialled_address_answering_with_another_key_is_refused_and_redialled() {
    let all = keys(2, 8);
    let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = impostor.local_addr().unwrap();
    // keys[0] dials keys[1] at an address where someone else answers.
    let own = TcpListener::bind("127.0.0.1:0").unwrap();
    let node = start(
        own,
        &all[0],
        vec![PeerSpec {
            public_key: pk(&all[1]),
            addr,
        }],
        EVENTS_MAX,
    );
    for attempt in 0..2 {
        let (mut stream, _) = impostor.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = vec![0u8; FRAME_HEADER_BYTES + PEER_HELLO_BYTES];
        stream.read_exact(&mut buf).expect("the dialler's hello");
        let (raw, _) = decode_peer_frame(&buf).unwrap().unwrap();
        let hello = PeerHello::decode(raw.payload).unwrap();
        assert_eq!(hello.public_key, node.key);
        let mut raw = Raw { stream, hello };
        raw.hello([0x44; 32], NETWORK, GENESIS);
        raw.expect_closed();
        assert_eq!(
            node.links.stats().refused(Refusal::WrongPeer),
            attempt + 1,
            "attempt {attempt}"
        );
    }
    assert!(node.links.stats().dials >= 2);
    assert!(node.links.connected().is_empty());
}

#[test]
fn ordinary_frames_overtake_queued_bulk_frames() {
    let keys = keys(2, 0x51);
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let mut config = config(peers_of(&keys, &addrs, i, &[]));
        config.out_bytes_max = 128 * 1024 * 1024;
        // The receiver's channel holds one event: it stops reading while nobody takes them.
        let (tx, events) = bounded(1);
        let links = PeerLinks::start_with_listener(listener, config, keys[i], tx).unwrap();
        nodes.push(Node {
            key: pk(&keys[i]),
            links,
            events,
        });
    }
    expect_connected(&nodes[0], &[nodes[1].key]);
    expect_connected(&nodes[1], &[nodes[0].key]);
    // 48 MiB of bulk frames: far more than the sockets buffer while the receiver waits.
    let bulk_frames = 48u32;
    for seq in 0..bulk_frames {
        let mut payload = vec![0u8; 1024 * 1024];
        payload[..4].copy_from_slice(&seq.to_le_bytes());
        nodes[0]
            .links
            .send_bulk(&nodes[1].key, 0x44, &payload)
            .unwrap();
    }
    nodes[0].links.send(&nodes[1].key, 0x42, b"urgent").unwrap();
    let mut order = Vec::new();
    while order.len() < bulk_frames as usize + 1 {
        match next_event(&nodes[1]) {
            PeerEvent::Frame { kind, payload, .. } => order.push((kind, payload[..4].to_vec())),
            other => panic!("expected frames, got {other:?}"),
        }
    }
    let urgent_at = order.iter().position(|(kind, _)| *kind == 0x42).unwrap();
    assert!(
        urgent_at < bulk_frames as usize / 2,
        "the ordinary frame came {urgent_at}th of {}",
        order.len()
    );
    // Bulk frames keep their order.
    let bulk: Vec<u32> = order
        .iter()
        .filter(|(kind, _)| *kind == 0x44)
        .map(|(_, head)| u32::from_le_bytes(head[..4].try_into().unwrap()))
        .collect();
    assert_eq!(bulk, (0..bulk_frames).collect::<Vec<_>>());
}

/// A validator's TLS from a certificate of `ca` binding `key`.
fn validator_tls(
    ca: &tally_pki::Ca,
    key: [u8; 32],
    validity: tally_pki::Validity,
) -> std::sync::Arc<tally_engine::net::tls::NodeTls> {
    let identity = ca
        .issue(&tally_pki::Request {
            name: format!("validator-{}", &hex::encode(key)[..8]),
            access: tally_pki::Access::Validator,
            signers: vec![key],
            hosts: vec!["127.0.0.1".into()],
            validity,
        })
        .unwrap();
    std::sync::Arc::new(
        tally_engine::net::tls::NodeTls::new(&identity, Default::default()).unwrap(),
    )
}

fn start_tls(
    listener: TcpListener,
    key: &SigningKey,
    peers: Vec<PeerSpec>,
    tls: std::sync::Arc<tally_engine::net::tls::NodeTls>,
) -> Node {
    let (tx, events) = bounded(EVENTS_MAX);
    let mut config = config(peers);
    config.tls = Some(tls);
    let links = PeerLinks::start_with_listener(listener, config, *key, tx).expect("links start");
    Node {
        key: pk(key),
        links,
        events,
    }
}

#[test]
fn links_run_over_tls_and_a_certificate_of_another_key_or_expired_is_refused() {
    let ca = tally_pki::Ca::create(NETWORK, tally_pki::Validity::days_from_now(1)).unwrap();
    let keys = keys(3, 0x71);
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let valid = tally_pki::Validity::days_from_now(1);
    let now = std::time::SystemTime::now();
    let expired = tally_pki::Validity {
        not_before: now - Duration::from_secs(3 * 86_400),
        not_after: now - Duration::from_secs(86_400),
    };
    // 0 and 1: good certificates; 2: a certificate binding 1's key; later an expired one.
    let certificates = [
        validator_tls(&ca, pk(&keys[0]), valid),
        validator_tls(&ca, pk(&keys[1]), valid),
        validator_tls(&ca, pk(&keys[1]), valid),
    ];
    let mut nodes: Vec<Node> = listeners
        .into_iter()
        .zip(certificates)
        .enumerate()
        .map(|(i, (listener, tls))| {
            start_tls(listener, &keys[i], peers_of(&keys, &addrs, i, &[]), tls)
        })
        .collect();
    // 0 and 1 link over TLS and carry frames.
    let deadline = std::time::Instant::now() + WAIT;
    while !nodes[0].links.connected().contains(&nodes[1].key) {
        assert!(std::time::Instant::now() < deadline, "0 and 1 never linked");
        std::thread::sleep(Duration::from_millis(10));
    }
    nodes[0]
        .links
        .send(&nodes[1].key, 0x50, b"over tls")
        .unwrap();
    loop {
        match nodes[1].events.recv_timeout(WAIT).expect("an event") {
            PeerEvent::Frame {
                peer,
                kind,
                payload,
            } => {
                assert_eq!(
                    (peer, kind, payload.as_slice()),
                    (nodes[0].key, 0x50, &b"over tls"[..])
                );
                break;
            }
            PeerEvent::Connected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // 2's certificate binds another key: refused by 0 and 1, never linked.
    while nodes[0].links.stats().refused(Refusal::CertificateMismatch)
        + nodes[1].links.stats().refused(Refusal::CertificateMismatch)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mismatch was not refused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!nodes[0].links.connected().contains(&nodes[2].key));
    let stray = nodes.pop().unwrap();
    stray.links.shutdown();
    // An expired certificate with the right key: refused in TLS.
    let listener = TcpListener::bind(addrs[2]).unwrap();
    let late = start_tls(
        listener,
        &keys[2],
        peers_of(&keys, &addrs, 2, &[]),
        validator_tls(&ca, pk(&keys[2]), expired),
    );
    while nodes[0].links.stats().refused(Refusal::Tls)
        + nodes[1].links.stats().refused(Refusal::Tls)
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired certificate was not refused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!nodes[1].links.connected().contains(&late.key));
    late.links.shutdown();
    for node in nodes {
        node.links.shutdown();
    }
}

#[test]
fn a_revoked_validators_live_links_close_and_its_dials_are_refused() {
    let ca = tally_pki::Ca::create(NETWORK, tally_pki::Validity::days_from_now(1)).unwrap();
    let keys = keys(3, 0x73);
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let valid = tally_pki::Validity::days_from_now(1);
    let certificates: Vec<_> = keys
        .iter()
        .map(|key| validator_tls(&ca, pk(key), valid))
        .collect();
    let serial = certificates[2].holder().serial.clone();
    let nodes: Vec<Node> = listeners
        .into_iter()
        .zip(certificates.iter().cloned())
        .enumerate()
        .map(|(i, (listener, tls))| {
            start_tls(listener, &keys[i], peers_of(&keys, &addrs, i, &[]), tls)
        })
        .collect();
    let deadline = std::time::Instant::now() + WAIT;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        while !nodes[a].links.connected().contains(&nodes[b].key) {
            assert!(
                std::time::Instant::now() < deadline,
                "{a} and {b} never linked"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // 0 and 1 learn that 2's certificate is revoked (its block committed): both close their
    // live links to 2 on their own, with no frame to wake them.
    for certificate in &certificates[..2] {
        assert!(certificate.revocations().revoke(&serial));
    }
    for a in [0, 1] {
        while nodes[a].links.connected().contains(&nodes[2].key) {
            assert!(
                std::time::Instant::now() < deadline,
                "{a} kept its link to the revoked validator"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(nodes[a].links.stats().refused(Refusal::Revoked) >= 1);
    }
    // 2 keeps dialling (0 and 1 have the smaller keys or not): every attempt is refused, in
    // the TLS handshake when 2 dials, at the hello when 0 or 1 dial 2; 0 and 1 stay linked.
    let refused_before: u64 = nodes[..2]
        .iter()
        .map(|n| n.links.stats().refused(Refusal::Tls) + n.links.stats().refused(Refusal::Revoked))
        .sum();
    let retry_deadline = std::time::Instant::now() + WAIT;
    loop {
        let refused: u64 = nodes[..2]
            .iter()
            .map(|n| {
                n.links.stats().refused(Refusal::Tls) + n.links.stats().refused(Refusal::Revoked)
            })
            .sum();
        if refused > refused_before {
            break;
        }
        assert!(
            std::time::Instant::now() < retry_deadline,
            "no later attempt of the revoked validator was refused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for a in [0, 1] {
        assert!(!nodes[a].links.connected().contains(&nodes[2].key));
    }
    assert!(nodes[0].links.connected().contains(&nodes[1].key));
    for node in nodes {
        node.links.shutdown();
    }
}
