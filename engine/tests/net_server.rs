//! The node over TCP: many clients get every final result; a client sending garbage is cut
//! off while the others go on; Busy is explicit; backpressure pauses and resumes a
//! connection; shutdown writes every acknowledgement; queries answer from the ledger; and
//! `/metrics` parses as Prometheus text and moves under load.

mod common;

use common::{Fixture, BANK_A, BANK_B, NETWORK};
use crossbeam::channel::unbounded;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tally_engine::mempool::Ack;
use tally_engine::net::client::submit_and_wait;
use tally_engine::net::frame::{self, MessageType};
use tally_engine::net::http::fetch_metrics;
use tally_engine::net::message::{ErrorCode, Hello, Message, Role, PROTOCOL_VERSION};
use tally_engine::net::server::ServerConfig;
use tally_engine::net::{Client, ClientError, ClientOptions, NodeService, ServiceConfig};
use tally_engine::node::{NodeConfig, SubmitError};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxKind, TxRecord};

const WAIT: Duration = Duration::from_secs(60);

fn service(
    dir: &std::path::Path,
    fixture: &Fixture,
    tune: impl FnOnce(&mut NodeConfig, &mut ServiceConfig),
) -> NodeService {
    let mut node = NodeConfig::new(dir.to_path_buf());
    node.checkpoint_interval_blocks = 0;
    let mut config = ServiceConfig {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerConfig::default()
        },
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_tls: false,
    };
    tune(&mut node, &mut config);
    NodeService::start(&fixture.genesis, node, config).expect("service starts")
}

/// Transfers of 1 from bank A to bank B, ids `first..first + count`.
fn transfers(fixture: &Fixture, first: u128, count: usize) -> Vec<TxRecord> {
    (0..count as u128)
        .map(|i| fixture.tx(first + i, TxKind::Transfer, BANK_A, BANK_B, 1))
        .collect()
}

#[test]
fn many_clients_each_get_every_final_result() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, _| {});
    let addr = service.client_addr();
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 150;
    let batches: Vec<Vec<TxRecord>> = (0..CLIENTS)
        .map(|c| transfers(&fixture, 1 + (c * PER_CLIENT) as u128, PER_CLIENT))
        .collect();
    std::thread::scope(|scope| {
        for records in &batches {
            scope.spawn(move || {
                let client = Client::connect(addr).expect("connects");
                assert_eq!(client.network_id(), NETWORK);
                let (reply, acks) = unbounded::<Ack>();
                // Several submits per client, of uneven sizes.
                let mut sent = 0;
                for size in [1, 7, 50, 92] {
                    let taken = client
                        .submit(&records[sent..sent + size], &reply)
                        .expect("taken");
                    assert_eq!(taken, size);
                    sent += size;
                }
                let mut got: HashMap<u128, Ack> = HashMap::new();
                while got.len() < records.len() {
                    let ack = acks.recv_timeout(WAIT).expect("every result arrives");
                    assert!(
                        got.insert(ack.id, ack).is_none(),
                        "one result per transaction"
                    );
                }
                for record in records {
                    let ack = got[&record.id()];
                    assert_eq!(ack.code, ResultCode::Ok, "{ack:?}");
                    assert!(ack.height.is_some_and(|h| h >= 1));
                }
                assert_eq!(client.in_flight(), 0);
                assert!(
                    acks.try_recv().is_err(),
                    "nothing more than one result each"
                );
            });
        }
    });
    let client = Client::connect(addr).unwrap();
    let total = (CLIENTS * PER_CLIENT) as u64;
    let status = client.status().unwrap();
    assert_eq!(status.counters.executed, total);
    assert_eq!(status.counters.submitted, total);
    assert_eq!(status.network_id, NETWORK);
    assert_eq!(status.backend, "cpu");
    assert!(status.height >= 1);
    assert_eq!(
        client.balance(BANK_B).unwrap(),
        Some(1_000_000 + total as i64)
    );
    assert_eq!(
        client.balance(BANK_A).unwrap(),
        Some(1_000_000 - total as i64)
    );
    assert_eq!(client.balance(999_999).unwrap(), None);
    assert!(client.transaction_settled(1).unwrap());
    assert!(!client.transaction_settled(total as u128 + 1).unwrap());
    let outcome = service.shutdown();
    assert_eq!(outcome.fatal, None);
    assert_eq!(
        outcome.ledger.balance(BANK_B),
        Some(1_000_000 + total as i64)
    );
}

/// Reads frames from a raw connection until the node closes it; returns the messages'
/// types and the first Error frame.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<MessageType>, Option<(ErrorCode, String)>) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error) => panic!("the node neither answered nor closed: {error}"),
        }
    }
    let mut kinds = Vec::new();
    let mut first_error = None;
    let mut rest = &bytes[..];
    while let Ok(Some((frame, used))) = frame::decode(rest) {
        kinds.push(frame.kind);
        if let Ok(Message::Error(error)) = Message::decode(frame) {
            first_error.get_or_insert((error.code, error.text));
        }
        rest = &rest[used..];
    }
    assert!(
        rest.is_empty(),
        "the node's stream ends on a frame boundary"
    );
    (kinds, first_error)
}

fn hello_bytes(network_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
        network_id,
    })
    .encode(&mut out);
    out
}

#[test]
fn bad_clients_are_cut_off_with_a_reason_while_others_keep_working() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, _| {});
    let addr = service.client_addr();
    let good = Client::connect(addr).unwrap();
    let (acks, _) = submit_and_wait(&good, &transfers(&fixture, 1, 10), WAIT).unwrap();
    assert_eq!(acks.len(), 10);

    let mut query = Vec::new();
    Message::Query {
        request_id: 1,
        query: tally_engine::net::query::Query::Status,
    }
    .encode(&mut query);
    let mut bad_checksum = hello_bytes(0);
    bad_checksum[9] ^= 1;
    // A validator-only type with a correct checksum (what a peer running consensus sends).
    let mut validator_type = hello_bytes(0);
    validator_type[4] = 0x41;
    let sum = {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&validator_type[..8]);
        hasher.update(&validator_type[12..]);
        hasher.finalize()
    };
    validator_type[8..12].copy_from_slice(&sum.as_bytes()[..4]);
    let mut validator_hello = hello_bytes(0);
    validator_hello.truncate(0);
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Validator,
        network_id: 0,
    })
    .encode(&mut validator_hello);
    let mut old_version = Vec::new();
    Message::Hello(Hello {
        version: PROTOCOL_VERSION + 1,
        role: Role::Client,
        network_id: 0,
    })
    .encode(&mut old_version);
    let mut twice = hello_bytes(0);
    twice.extend_from_slice(&hello_bytes(0));
    let mut truncated = hello_bytes(0);
    truncated.extend_from_slice(&query[..query.len() - 3]);
    let mut bad_payload = hello_bytes(0);
    frame::encode(MessageType::SubmitBatch, &[0u8; 16], &mut bad_payload);

    let cases: Vec<(&str, Vec<u8>, ErrorCode, &str)> = vec![
        (
            "http request",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ErrorCode::BadFrame,
            "over the maximum",
        ),
        (
            "bad checksum",
            bad_checksum,
            ErrorCode::BadFrame,
            "checksum",
        ),
        (
            "validator type",
            validator_type,
            ErrorCode::BadFrame,
            "reserved for validator",
        ),
        (
            "no hello",
            query.clone(),
            ErrorCode::UnexpectedMessage,
            "expected hello first",
        ),
        (
            "validator hello",
            validator_hello,
            ErrorCode::UnexpectedMessage,
            "validator connections",
        ),
        (
            "other version",
            old_version,
            ErrorCode::VersionMismatch,
            "version",
        ),
        (
            "wrong network",
            hello_bytes(NETWORK + 1),
            ErrorCode::WrongNetwork,
            "network",
        ),
        (
            "hello twice",
            twice,
            ErrorCode::UnexpectedMessage,
            "may not send hello",
        ),
        (
            "truncated",
            truncated,
            ErrorCode::BadFrame,
            "connection ended inside a frame",
        ),
        (
            "empty batch",
            bad_payload,
            ErrorCode::BadMessage,
            "submit_batch with no records",
        ),
    ];
    let rejected_before = service.handle().metrics().connections_rejected.get();
    for (name, bytes, code, needle) in &cases {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(bytes).unwrap();
        if *name == "truncated" {
            stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let (_, error) = read_until_closed(&mut stream);
        let (got_code, text) = error.unwrap_or_else(|| panic!("{name}: no error frame"));
        assert_eq!(got_code, *code, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text:?} lacks {needle:?}");
        // The good client still works after each bad one.
        assert!(good.status().is_ok(), "{name}: the node still answers");
    }
    assert_eq!(
        service.handle().metrics().connections_rejected.get() - rejected_before,
        cases.len() as u64
    );
    // A client asking for another network hears why.
    let refused = Client::connect_with(
        addr,
        &ClientOptions {
            network_id: NETWORK + 1,
            ..ClientOptions::default()
        },
    );
    match refused {
        Err(ClientError::Refused { code, text, .. }) => {
            assert_eq!(code, ErrorCode::WrongNetwork);
            assert!(text.contains(&NETWORK.to_string()), "{text}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected to the wrong network"),
    }
    let (acks, refusal) = submit_and_wait(&good, &transfers(&fixture, 100, 10), WAIT).unwrap();
    assert_eq!(refusal, None);
    assert!(acks.iter().all(|a| a.code == ResultCode::Ok));
    assert_eq!(service.shutdown().fatal, None);
}

#[test]
fn malformed_records_are_answered_with_their_code_and_bad_signatures_too() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, _| {});
    let client = Client::connect(service.client_addr()).unwrap();
    let good = fixture.tx(1, TxKind::Transfer, BANK_A, BANK_B, 3);
    let mut forged = fixture.tx(2, TxKind::Transfer, BANK_A, BANK_B, 3);
    forged.signature[0] ^= 1;
    let mut zero_amount_bytes = *fixture
        .tx(3, TxKind::Transfer, BANK_A, BANK_B, 3)
        .as_bytes();
    zero_amount_bytes[32..40].fill(0);
    let zero_amount: TxRecord = bytemuck::cast(zero_amount_bytes);
    let (acks, refusal) = submit_and_wait(&client, &[good, forged, zero_amount], WAIT).unwrap();
    assert_eq!(refusal, None);
    let by_id: HashMap<u128, Ack> = acks.iter().map(|a| (a.id, *a)).collect();
    assert_eq!(by_id[&1].code, ResultCode::Ok);
    assert_eq!(by_id[&2].code, ResultCode::BadSignature);
    assert_eq!(by_id[&2].height, None);
    assert_eq!(by_id[&3].code, ResultCode::MalformedZeroAmount);
    service.shutdown();
}

#[test]
fn a_full_mempool_answers_busy_for_the_rest_of_the_batch() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |node, _| {
        node.mempool_tx_max = 4;
        node.sigverify_batch_tx_max = 4;
    });
    let client = Client::connect(service.client_addr()).unwrap();
    let records = transfers(&fixture, 1, 4_096);
    let (reply, acks) = unbounded();
    let accepted = match client.submit(&records, &reply) {
        Err(SubmitError::Busy { accepted }) => accepted,
        other => panic!("expected Busy, got {other:?}"),
    };
    assert!((4..4_096).contains(&accepted), "{accepted}");
    for _ in 0..accepted {
        let ack = acks
            .recv_timeout(WAIT)
            .expect("every accepted record is answered");
        assert_eq!(ack.code, ResultCode::Ok);
        assert!(
            ack.id <= accepted as u128,
            "only the first {accepted} were taken"
        );
    }
    assert!(
        acks.recv_timeout(Duration::from_millis(200)).is_err(),
        "refused records get no result"
    );
    let handle = service.handle();
    assert_eq!(handle.metrics().busy_tx.get(), (4_096 - accepted) as u64);
    // The rest, retried, goes through.
    let mut next = accepted;
    while next < records.len() {
        match client.submit(&records[next..], &reply) {
            Ok(n) => next += n,
            Err(SubmitError::Busy { accepted }) => {
                next += accepted;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(other) => panic!("{other}"),
        }
    }
    for _ in accepted..records.len() {
        assert_eq!(acks.recv_timeout(WAIT).unwrap().code, ResultCode::Ok);
    }
    service.shutdown();
}

#[test]
fn backpressure_pauses_a_connection_and_everything_still_arrives() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, config| {
        config.server.submit_batch_tx_max = 16;
        config.server.connection_inflight_tx_max = 16;
    });
    let client = Client::connect(service.client_addr()).unwrap();
    assert_eq!(client.welcome().inflight_tx_max, 16);
    let records = transfers(&fixture, 1, 400);
    // One submit call: 25 batches of 16, each sent once the previous receipt is back; the
    // node stops reading while 16 are unanswered.
    let (acks, refusal) = submit_and_wait(&client, &records, WAIT).unwrap();
    assert_eq!(refusal, None);
    assert_eq!(acks.len(), 400);
    assert!(service.handle().metrics().backpressure_pauses.get() > 0);
    service.shutdown();
}

#[test]
fn shutdown_writes_every_acknowledgement_and_then_refuses() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, _| {});
    let client = Client::connect(service.client_addr()).unwrap();
    let records = transfers(&fixture, 1, 2_000);
    let (reply, acks) = unbounded();
    let taken = client.submit(&records, &reply).unwrap();
    assert_eq!(taken, 2_000);
    // Shut down at once: the pipeline still holds most of them.
    let outcome = service.shutdown();
    assert_eq!(outcome.fatal, None);
    let mut got = 0;
    while got < taken {
        let ack = acks
            .recv_timeout(WAIT)
            .expect("acknowledged before the connection closed");
        assert_eq!(ack.code, ResultCode::Ok);
        got += 1;
    }
    assert_eq!(outcome.ledger.balance(BANK_B), Some(1_002_000));
    // The connection is closed now: a submit answers Stopped with the reason.
    match client.submit(&records[..1], &reply) {
        Err(SubmitError::Stopped { reason }) => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
}

/// Parses a `/metrics` page; every line must be a comment or a sample the parser reads.
fn scrape(text: &str) -> prometheus_parse::Scrape {
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        assert!(
            matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Sample { .. }
            ),
            "not a Prometheus sample line: {line:?}"
        );
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    use prometheus_parse::Value;
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("{metric} {label:?} missing"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => panic!("no summaries here"),
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_under_load() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, _| {});
    let metrics_addr = service.metrics_addr().expect("metrics served");
    let before = scrape(&fetch_metrics(metrics_addr).unwrap());
    assert_eq!(
        value(&before, "tally_transactions_executed_total", None),
        0.0
    );
    assert_eq!(
        value(&before, "tally_backend", Some(("backend", "cpu"))),
        1.0
    );
    assert_eq!(value(&before, "tally_up", None), 1.0);
    for queue in ["mempool", "verified", "commit"] {
        assert_eq!(
            value(&before, "tally_queue_depth", Some(("queue", queue))),
            0.0
        );
        assert!(value(&before, "tally_queue_capacity", Some(("queue", queue))) >= 1.0);
    }
    assert_eq!(value(&before, "tally_consensus_height", None), 0.0);
    assert_eq!(value(&before, "tally_peers_connected", None), 0.0);

    let clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(service.client_addr()).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for (i, client) in clients.iter().enumerate() {
            let records = transfers(&fixture, 1 + i as u128 * 1_000, 300);
            scope.spawn(move || {
                let (acks, _) = submit_and_wait(client, &records, WAIT).unwrap();
                assert_eq!(acks.len(), 300);
            });
        }
    });
    let after = scrape(&fetch_metrics(metrics_addr).unwrap());
    assert_eq!(
        value(&after, "tally_transactions_executed_total", None),
        900.0
    );
    assert_eq!(
        value(&after, "tally_transactions_submitted_total", None),
        900.0
    );
    assert!(value(&after, "tally_blocks_total", None) >= 1.0);
    assert!(value(&after, "tally_height", None) >= 1.0);
    assert_eq!(value(&after, "tally_client_connections", None), 3.0);
    assert!(value(&after, "tally_frames_received_total", None) >= 6.0);
    assert!(value(&after, "tally_network_received_bytes_total", None) >= 900.0 * 192.0);
    for stage in [
        "ingress",
        "mempool_wait",
        "sigverify",
        "verified_wait",
        "execution",
        "commit_wait",
        "log_append",
        "log_flush",
        "ack",
        "end_to_end",
    ] {
        assert!(
            value(&after, "tally_stage_seconds", Some(("stage", stage))) >= 1.0,
            "stage {stage} recorded nothing"
        );
        assert!(value(&after, "tally_stage_seconds_count", Some(("stage", stage))) >= 1.0);
    }
    assert_eq!(
        value(
            &after,
            "tally_stage_seconds_count",
            Some(("stage", "consensus"))
        ),
        0.0
    );
    for per_transaction in [
        "mempool_wait",
        "verified_wait",
        "commit_wait",
        "ack",
        "end_to_end",
    ] {
        assert_eq!(
            value(
                &after,
                "tally_stage_seconds_count",
                Some(("stage", per_transaction))
            ),
            900.0,
            "stage {per_transaction} counts every transaction once"
        );
    }
    assert_eq!(
        value(&after, "tally_batch_size_sum", Some(("batch", "submit"))),
        900.0
    );
    assert_eq!(
        value(&after, "tally_batch_size_sum", Some(("batch", "block"))),
        900.0
    );
    // Not found elsewhere, and the client port is not HTTP.
    let mut stream = TcpStream::connect(metrics_addr).unwrap();
    stream.write_all(b"GET /other HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    drop(clients);
    service.shutdown();
}

/// A subscription hears a block's events split over frames when they are more than one
/// frame holds: 5 000 queued payments released together at the end of one block.
#[test]
fn a_block_of_more_events_than_a_frame_holds_comes_in_frames_marked_complete_at_the_end() {
    use tally_engine::events::{EventKind, Subscription, EVENTS_PER_FRAME_MAX};
    const QUEUED: usize = 5_000;
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), &fixture, |_, _| {});
    let client = Client::connect(service.client_addr()).unwrap();
    // bank A's whole balance, then 5 000 more it cannot cover: they queue
    let payments: Vec<TxRecord> = (0..=QUEUED as u128)
        .map(|i| fixture.tx(1 + i, TxKind::Transfer, BANK_A, BANK_B, 1_000_000))
        .collect();
    let (acks, refusal) = submit_and_wait(&client, &payments, WAIT).unwrap();
    assert_eq!(refusal, None);
    let queued = acks.iter().filter(|a| a.code == ResultCode::Queued).count();
    assert_eq!(queued, QUEUED);
    // liquidity for all of them in one pledge: all released at the end of its block
    let pledge = fixture.tx(
        100_000,
        TxKind::Pledge,
        common::CENTRAL_BANK,
        BANK_A,
        QUEUED as u64 * 1_000_000,
    );
    let (acks, _) = submit_and_wait(&client, &[pledge], WAIT).unwrap();
    let pledge_height = acks[0].height.unwrap();
    let follower = Client::connect(service.client_addr()).unwrap();
    let (_, feed) = follower
        .subscribe(&Subscription {
            accounts: vec![BANK_B],
            from_height: pledge_height,
        })
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let batch = feed.recv_timeout(WAIT).expect("the block's events");
        assert_eq!(batch.height, pledge_height);
        assert!(batch.events.len() <= EVENTS_PER_FRAME_MAX);
        let complete = batch.complete;
        frames.push(batch);
        if complete {
            break;
        }
    }
    assert_eq!(frames.len(), QUEUED.div_ceil(EVENTS_PER_FRAME_MAX));
    let released: Vec<u128> = frames
        .iter()
        .flat_map(|frame| &frame.events)
        .filter(|event| event.kind == EventKind::Released)
        .map(|event| event.id)
        .collect();
    let expected: Vec<u128> = (2..=QUEUED as u128 + 1).collect();
    assert_eq!(
        released, expected,
        "every queued payment released once, in order"
    );
    drop(follower);
    drop(client);
    service.shutdown();
}
