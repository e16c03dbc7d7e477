//! Failover onto records that had reached the chain through the node that was lost: the
//! load generator sends them to another node, which answers `duplicate_id`, and the remote
//! target asks the ledger about each one and reports what its first copy was answered.
//!
//! One node is reached twice: directly, and through a relay that forwards every byte to the
//! node but can hold back what the node says. Records known to be on the chain (submitted
//! beforehand and acknowledged) go first through the relay, which then falls silent, so the
//! target loses it and sends them to the direct address: deterministic, with no timing in
//! what is asserted.

use crossbeam::channel::unbounded;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally_engine::net::server::ServerConfig;
use tally_engine::net::{NodeService, ServiceConfig};
use tally_engine::node::NodeConfig;
use tally_loadgen::target::{Liveness, RemoteTarget};
use tally_loadgen::{presign, run, Pacing, Population, PopulationSpec, RunConfig, TransferMix};
use tally_protocol::client::{Client, ClientOptions};
use tally_protocol::frame::{frame_len, MessageType};
use tally_protocol::result::ResultCode;
use tally_protocol::submit::Ack;
use tally_protocol::tx::TxRecord;

/// The relay passes everything.
const PASS: u8 = 0;
/// The relay holds back results, passes the next submission receipt, then falls silent.
const SILENT_AFTER_RECEIPT: u8 = 1;
/// The relay passes nothing from the node (what the client sends still reaches it).
const SILENT: u8 = 2;

/// A TCP relay to `node`; what the node says passes frame by frame according to the mode.
struct Relay {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
}

impl Relay {
    fn start(node: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(PASS));
        let shared = Arc::clone(&mode);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(node) else {
                    return;
                };
                let (mut from_client, mut to_node) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_node);
                    let _ = to_node.shutdown(Shutdown::Write);
                });
                let mode = Arc::clone(&shared);
                std::thread::spawn(move || relay_down(upstream, client, &mode));
            }
        });
        Relay { addr, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Node to client, whole frames at a time, as `mode` says. It keeps reading while silent,
/// so the node is never held up by the relay.
fn relay_down(mut from_node: TcpStream, mut to_client: TcpStream, mode: &AtomicU8) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from_node.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(total)) = frame_len(&buf) {
            if buf.len() < total {
                break;
            }
            let frame: Vec<u8> = buf.drain(..total).collect();
            let kind = frame[4];
            let pass = match mode.load(Ordering::SeqCst) {
                PASS => true,
                SILENT_AFTER_RECEIPT if kind == MessageType::Results as u8 => false,
                SILENT_AFTER_RECEIPT => {
                    if kind == MessageType::SubmitReceipt as u8 {
                        mode.store(SILENT, Ordering::SeqCst);
                    }
                    true
                }
                _ => false,
            };
            if pass && to_client.write_all(&frame).is_err() {
                return;
            }
        }
    }
    let _ = to_client.shutdown(Shutdown::Write);
}

const BATCH: usize = 100;
const COUNT: usize = 1_000;

/// A node serving over plaintext TCP, the transactions of a run, and the first batch of them
/// already settled through a direct client: their ids' codes and heights.
fn node_with_the_first_batch_settled(
    dir: &std::path::Path,
) -> (NodeService, Vec<TxRecord>, HashMap<u128, Ack>) {
    let population = Population::generate(&PopulationSpec {
        banks: 4,
        merchants: 20,
        consumers: 40,
        ..PopulationSpec::default()
    });
    let txs = presign(
        &population,
        &TransferMix {
            invalid_pct: 0,
            ..TransferMix::default()
        },
        0,
        COUNT,
    );
    let mut node = NodeConfig::new(dir.to_path_buf());
    node.checkpoint_interval_blocks = 0;
    let service = NodeService::start(
        &population.genesis,
        node,
        ServiceConfig {
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            },
            metrics_listen: None,
            metrics_tls: false,
        },
    )
    .expect("the node starts");
    let client = Client::connect(service.client_addr()).unwrap();
    let (reply, acks) = unbounded::<Ack>();
    assert_eq!(client.submit(&txs[..BATCH], &reply).unwrap(), BATCH);
    let mut settled = HashMap::new();
    while settled.len() < BATCH {
        let ack = acks
            .recv_timeout(Duration::from_secs(60))
            .expect("the first batch is answered");
        assert!(ack.height.is_some(), "{ack:?}");
        assert_ne!(ack.code, ResultCode::DuplicateId, "{ack:?}");
        settled.insert(ack.id, ack);
    }
    let accepted = settled.values().filter(|ack| ack.code.is_ok()).count();
    assert!(
        accepted >= BATCH * 9 / 10,
        "{accepted} of the first batch accepted"
    );
    (service, txs, settled)
}

/// Connects over the relay (first) and to the node itself, sets the relay's `mode`, and runs
/// every transaction closed loop with one batch in flight; returns the result and each id's
/// acknowledgements, from the ack log.
fn run_through(
    relay: &Relay,
    mode: u8,
    node: SocketAddr,
    txs: &[TxRecord],
    ack_log: &std::path::Path,
) -> (tally_loadgen::RunResult, HashMap<u128, Vec<String>>) {
    let target = RemoteTarget::connect_with(
        &[relay.addr.to_string(), node.to_string()],
        1,
        Liveness {
            silence_max: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(300),
            check_every: Duration::from_millis(50),
        },
        &ClientOptions::default(),
    )
    .expect("connects to both addresses");
    relay.set(mode);
    let result = run(
        &target,
        txs,
        &RunConfig {
            pacing: Pacing::Closed {
                in_flight_tx_max: BATCH,
            },
            submit_batch_tx_max: BATCH,
            duration: Duration::from_secs(120),
            ack_log: Some(ack_log.to_path_buf()),
            ..RunConfig::default()
        },
    );
    drop(target);
    let mut acks: HashMap<u128, Vec<String>> = HashMap::new();
    for line in std::fs::read_to_string(ack_log).unwrap().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        acks.entry(fields[0].parse().unwrap())
            .or_default()
            .push(fields[1..].join(" "));
    }
    (result, acks)
}

/// What every failover test asserts: each transaction answered once, none `duplicate_id`,
/// the settled ones with the code and height their block recorded.
fn assert_answered_once_as_recorded(
    result: &tally_loadgen::RunResult,
    acks: &HashMap<u128, Vec<String>>,
    txs: &[TxRecord],
    settled: &HashMap<u128, Ack>,
) {
    println!(
        "{:?} failed over {} lost {:?}",
        result.counts.by_name(),
        result.failed_over,
        result.lost
    );
    assert_eq!(result.stopped, None);
    assert_eq!(result.sent, COUNT as u64);
    assert_eq!(result.acknowledged, COUNT as u64, "nothing counted twice");
    assert_eq!(result.counts.total(), COUNT as u64);
    assert_eq!(
        result.counts.get(ResultCode::DuplicateId),
        0,
        "{:?}",
        result.counts.by_name()
    );
    assert_eq!(result.lost.len(), 1, "{:?}", result.lost);
    assert_eq!(acks.len(), COUNT);
    for tx in txs {
        let lines = &acks[&tx.id()];
        assert_eq!(lines.len(), 1, "id {} answered {lines:?}", tx.id());
    }
    // The first batch answered again as first recorded: the code, and the block's height
    // where the ledger still names it (a queued payment's), else none (-1). One refused the
    // first time held no id, so its copy was executed again.
    for (id, ack) in settled.iter().filter(|(_, ack)| ack.code.is_ok()) {
        let line = &acks[id][0];
        let (code, height) = line.split_once(' ').unwrap();
        assert_eq!(code, (ack.code as u8).to_string(), "id {id}: {line}");
        assert!(
            height == "-1" || height == ack.height.unwrap().to_string(),
            "id {id}: {line}, first at {:?}",
            ack.height
        );
    }
}

/// The relay passes the receipt of the first batch (the node took it) and then falls
/// silent: the target loses it and fails the batch over to the node's direct address.
#[test]
fn records_failed_over_that_had_settled_count_as_their_recorded_result() {
    let dir = tempfile::tempdir().unwrap();
    let (service, txs, settled) = node_with_the_first_batch_settled(dir.path());
    let relay = Relay::start(service.client_addr());
    let (result, acks) = run_through(
        &relay,
        SILENT_AFTER_RECEIPT,
        service.client_addr(),
        &txs,
        &dir.path().join("a"),
    );
    assert_eq!(
        relay.mode.load(Ordering::SeqCst),
        SILENT,
        "a receipt passed"
    );
    assert_answered_once_as_recorded(&result, &acks, &txs, &settled);
    assert_eq!(
        result.failed_over, BATCH as u64,
        "the first batch failed over"
    );
    assert_eq!(result.nodes[0].sent, BATCH as u64, "{:?}", result.nodes);
    let outcome = service.shutdown();
    assert_eq!(outcome.fatal, None);
}

/// The relay is silent from the start: the first batch reaches the node but its receipt
/// never comes back, so the target sends it to the node's direct address as untaken.
#[test]
fn records_sent_again_after_a_lost_receipt_count_as_their_recorded_result() {
    let dir = tempfile::tempdir().unwrap();
    let (service, txs, settled) = node_with_the_first_batch_settled(dir.path());
    let relay = Relay::start(service.client_addr());
    let (result, acks) = run_through(
        &relay,
        SILENT,
        service.client_addr(),
        &txs,
        &dir.path().join("a"),
    );
    assert_answered_once_as_recorded(&result, &acks, &txs, &settled);
    let outcome = service.shutdown();
    assert_eq!(outcome.fatal, None);
}
