//! The client port over TLS, on real sockets: a client with a certificate of this network
//! settles; no certificate, a self-signed one, one from a CA impersonating this network's,
//! another network's, an expired, a not yet
//! valid and a revoked one are each refused before any frame, with their reason in the
//! counters; a plaintext client is refused too; and 2,000 connections that never finish a
//! handshake (idle, or one byte a second) do not keep an authenticated client out; each
//! per-identity quota (submit rate, queries per second, records in flight and unread output
//! over an identity's connections, the suspect rate) refuses with its name, and an identity
//! whose signatures fail is verified in its own lane.

mod common;

use common::{Fixture, BANK_A, BANK_B, NETWORK};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tally_engine::keys::{generate_key, public_key_of};
use tally_engine::net::client::submit_and_wait;
use tally_engine::net::frame;
use tally_engine::net::http::fetch_metrics;
use tally_engine::net::message::{
    encode_submit_batch, ErrorCode, Hello, Message, Quota, Refusal, Role, PROTOCOL_VERSION,
};
use tally_engine::net::query::{Answer, Query};
use tally_engine::net::server::ServerConfig;
use tally_engine::net::tls::{NodeTls, Revocations};
use tally_engine::net::{Client, ClientError, ClientOptions, NodeService, ServiceConfig};
use tally_engine::node::{NodeConfig, SubmitError};
use tally_engine::result::ResultCode;
use tally_engine::tx::{TxKind, TxRecord};
use tally_pki::{Access, Ca, Identity, Request, Validity};

const WAIT: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

struct Network {
    ca: Ca,
    node: Identity,
    revocations: Arc<Revocations>,
    /// Bank A's key: what `participant` certificates bind.
    bank_a: [u8; 32],
}

impl Network {
    fn new(fixture: &Fixture) -> Network {
        let ca = Ca::create(NETWORK, Validity::days_from_now(30)).unwrap();
        let node = ca
            .issue(&Request {
                name: "validator-0".into(),
                access: Access::Validator,
                signers: vec![public_key_of(&generate_key())],
                hosts: vec!["127.0.0.1".into()],
                validity: Validity::days_from_now(30),
            })
            .unwrap();
        Network {
            ca,
            node,
            revocations: Arc::new(Revocations::default()),
            bank_a: public_key_of(&fixture.keys[&BANK_A]),
        }
    }

    /// A bank certificate binding bank A's key.
    fn participant(&self, name: &str, validity: Validity) -> Identity {
        self.ca
            .issue(&Request {
                name: name.into(),
                access: Access::Bank,
                signers: vec![self.bank_a],
                hosts: Vec::new(),
                validity,
            })
            .unwrap()
    }

    fn start(
        &self,
        dir: &std::path::Path,
        fixture: &Fixture,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> NodeService {
        let mut node = NodeConfig::new(dir.to_path_buf());
        node.checkpoint_interval_blocks = 0;
        let tls = NodeTls::new(&self.node, Arc::clone(&self.revocations)).unwrap();
        let mut server = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(Arc::new(tls)),
            ..ServerConfig::default()
        };
        tune(&mut server);
        let config = ServiceConfig {
            server,
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            metrics_tls: false,
        };
        NodeService::start(&fixture.genesis, node, config).expect("service starts")
    }
}

fn issue(ca: &Ca, name: &str, validity: Validity) -> Identity {
    ca.issue(&Request {
        name: name.into(),
        access: Access::Bank,
        signers: vec![public_key_of(&generate_key())],
        hosts: Vec::new(),
        validity,
    })
    .unwrap()
}

fn options(identity: &Identity) -> ClientOptions {
    ClientOptions {
        tls: Some(identity.client_config().unwrap()),
        ..ClientOptions::default()
    }
}

fn transfers(fixture: &Fixture, first: u128, count: usize) -> Vec<TxRecord> {
    (0..count as u128)
        .map(|i| fixture.tx(first + i, TxKind::Transfer, BANK_A, BANK_B, 1))
        .collect()
}

/// Starts a node on `dir` with a revocation list of its own (empty: what it refuses comes from
/// its ledger), checkpoints every `checkpoint_interval_blocks` (0: none), /metrics plain or
/// over TLS.
fn start_fresh(
    network: &Network,
    dir: &std::path::Path,
    fixture: &Fixture,
    checkpoint_interval_blocks: u64,
    metrics_tls: bool,
) -> (NodeService, Arc<Revocations>) {
    let mut node = NodeConfig::new(dir.to_path_buf());
    node.checkpoint_interval_blocks = checkpoint_interval_blocks;
    let revocations = Arc::new(Revocations::default());
    let tls = NodeTls::new(&network.node, Arc::clone(&revocations)).unwrap();
    let config = ServiceConfig {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(Arc::new(tls)),
            ..ServerConfig::default()
        },
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_tls,
    };
    let service = NodeService::start(&fixture.genesis, node, config).expect("service starts");
    (service, revocations)
}

/// The central bank's revocation of `serial`, debiting `debit`, signed by `signer`'s key.
fn revocation(fixture: &Fixture, id: u128, signer: u64, debit: u64, serial: &str) -> TxRecord {
    let fields = tally_engine::tx::TxFields::revoke_certificate(id, common::LEDGER, debit, serial)
        .unwrap()
        .valid_until(common::VALID_UNTIL);
    fixture.signed_by(signer, &fields)
}

fn one_result(client: &Client, record: TxRecord) -> ResultCode {
    let (acks, error) = submit_and_wait(client, &[record], WAIT).unwrap();
    assert!(error.is_none(), "{error:?}");
    acks[0].code
}

fn refused_as_revoked(addr: std::net::SocketAddr, identity: &Identity) {
    match Client::connect_with(addr, &options(identity)) {
        Err(ClientError::Tls { reason, .. }) => {
            assert!(reason.contains("CertificateRevoked"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

/// The value of `tally_client_tls_refused_total{reason="..."}`.
fn refused(service: &NodeService, reason: &str) -> u64 {
    let text = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
    let needle = format!("tally_client_tls_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&needle))
        .unwrap_or_else(|| panic!("no {needle} in the metrics"))
        .trim()
        .parse()
        .unwrap()
}

fn frames_received(service: &NodeService) -> u64 {
    let text = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("tally_frames_received_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn certificates_of_this_network_settle_and_every_other_is_refused_with_its_reason() {
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |_| {});
    let addr = service.client_addr();

    // A participant of this network: submits and settles over TLS.
    let bank = network.participant("bank-a", Validity::days_from_now(1));
    let client = Client::connect_with(addr, &options(&bank)).expect("connects over TLS");
    assert_eq!(client.network_id(), NETWORK);
    let (acks, error) = submit_and_wait(&client, &transfers(&fixture, 1, 300), WAIT).unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acks.len(), 300);
    assert!(acks.iter().all(|ack| ack.code == ResultCode::Ok));
    assert_eq!(client.balance(BANK_A).unwrap(), Some(999_700));
    let frames_before = frames_received(&service);

    let refused_with = |identity: Option<&Identity>, tls: Arc<rustls::ClientConfig>| {
        let _ = identity;
        let options = ClientOptions {
            tls: Some(tls),
            ..ClientOptions::default()
        };
        match Client::connect_with(addr, &options) {
            Err(ClientError::Tls { reason, .. }) => reason,
            Err(other) => panic!("refused, but not in TLS: {other}"),
            Ok(_) => panic!("a connection that should be refused was accepted"),
        }
    };

    // No certificate at all (the node's CA trusted, nothing presented).
    let no_cert =
        rustls::ClientConfig::builder_with_provider(tally_protocol::identity::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(bank.roots().unwrap())
            .with_no_client_auth();
    let reason = refused_with(None, Arc::new(no_cert));
    assert!(reason.contains("CertificateRequired"), "{reason}");

    // Self-signed.
    let own = rcgen::generate_simple_self_signed(vec!["bank-a".to_string()]).unwrap();
    let self_signed = Identity {
        certificate: own.cert.pem(),
        private_key: own.key_pair.serialize_pem(),
        ..bank.clone()
    };
    refused_with(Some(&self_signed), self_signed.client_config().unwrap());

    // A CA impersonating this network's: the same name, another key.
    let impostor = Ca::create(NETWORK, Validity::days_from_now(1)).unwrap();
    let mut forged = issue(&impostor, "bank-a", Validity::days_from_now(1));
    // It trusts the real network's CA for the node, so only its own certificate is wrong.
    forged.ca_certificate = bank.ca_certificate.clone();
    refused_with(Some(&forged), forged.client_config().unwrap());

    // Another network's CA.
    let other_ca = Ca::create(NETWORK + 1, Validity::days_from_now(1)).unwrap();
    let mut foreign = issue(&other_ca, "bank-x", Validity::days_from_now(1));
    foreign.ca_certificate = bank.ca_certificate.clone();
    refused_with(Some(&foreign), foreign.client_config().unwrap());

    // Expired and not yet valid.
    let now = SystemTime::now();
    let expired = network.participant(
        "bank-old",
        Validity {
            not_before: now - 3 * DAY,
            not_after: now - DAY,
        },
    );
    let reason = refused_with(Some(&expired), expired.client_config().unwrap());
    assert!(reason.contains("CertificateExpired"), "{reason}");
    let early = network.participant(
        "bank-new",
        Validity {
            not_before: now + DAY,
            not_after: now + 3 * DAY,
        },
    );
    refused_with(Some(&early), early.client_config().unwrap());

    // Revoked.
    let revoked = network.participant("bank-gone", Validity::days_from_now(1));
    assert!(network.revocations.revoke(&revoked.serial));
    let reason = refused_with(Some(&revoked), revoked.client_config().unwrap());
    assert!(reason.contains("CertificateRevoked"), "{reason}");

    // Plain TCP to a TLS port: a Hello frame is not a TLS record.
    let mut plain = TcpStream::connect(addr).unwrap();
    let mut hello = Vec::new();
    tally_engine::net::message::Message::Hello(tally_engine::net::message::Hello {
        version: tally_engine::net::message::PROTOCOL_VERSION,
        role: tally_engine::net::message::Role::Client,
        network_id: NETWORK,
    })
    .encode(&mut hello);
    plain.write_all(&hello).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut rest);
    assert!(
        Client::connect(addr).is_err(),
        "a plaintext client is refused"
    );

    // Every reason counted once (the plaintext ones twice), and no frame was decoded from any
    // of them.
    let deadline = Instant::now() + WAIT;
    let expected = [
        ("no_certificate", 1),
        ("unknown_ca", 2),
        ("bad_certificate", 1),
        ("expired", 1),
        ("not_yet_valid", 1),
        ("revoked", 1),
        ("protocol", 2),
    ];
    for (reason, count) in expected {
        while refused(&service, reason) < count {
            assert!(Instant::now() < deadline, "{reason} not counted");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(refused(&service, reason), count, "{reason}");
    }
    assert_eq!(frames_received(&service), frames_before);
    // The authenticated client was not disturbed.
    assert_eq!(client.balance(BANK_A).unwrap(), Some(999_700));
    drop(client);
    service.shutdown();
}

/// Raises the open-file limit to its hard maximum (2,000 connections take 4,000 descriptors
/// in this process).
fn raise_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit write and read the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted as libc::rlim_t {
            limit.rlim_cur = limit.rlim_max.min(wanted as libc::rlim_t);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

#[test]
fn connections_that_never_authenticate_do_not_lock_an_identity_out() {
    const IDLE: usize = 1_000;
    const SLOW: usize = 1_000;
    raise_file_limit(8_192);
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |server| {
        server.handshake_timeout = Duration::from_secs(3);
    });
    let addr = service.client_addr();
    // 1,000 connections that never send a byte, 1,000 that send one byte a second.
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // A TLS handshake record header, one byte a second on each connection.
            let header = [0x16u8, 0x03, 0x01, 0x02, 0x00];
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for stream in &mut slow {
                    let _ = stream.write_all(&header[sent % header.len()..][..1]);
                }
                sent += 1;
                for _ in 0..10 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            slow
        })
    };
    // The honest identity connects and settles at once, every time.
    let bank = network.participant("bank-a", Validity::days_from_now(1));
    for round in 0..3u128 {
        let started = Instant::now();
        let client = Client::connect_with(addr, &options(&bank)).expect("connects past the crowd");
        let (acks, error) =
            submit_and_wait(&client, &transfers(&fixture, 1 + round * 100, 100), WAIT).unwrap();
        assert!(error.is_none(), "{error:?}");
        assert_eq!(acks.len(), 100);
        assert!(acks.iter().all(|ack| ack.code == ResultCode::Ok));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "round {round} took {:?}",
            started.elapsed()
        );
        if round == 0 {
            // Wait past the handshake timeout: the crowd is closed, the client stays.
            std::thread::sleep(Duration::from_secs(4));
            assert_eq!(client.balance(BANK_A).unwrap(), Some(999_900));
        }
    }
    assert!(refused(&service, "handshake_timeout") > 0);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(dripper.join().unwrap());
    drop(idle);
    service.shutdown();
}

/// An identity of `access` binding the keys of `accounts` (the fixture's).
fn holder_of(
    network: &Network,
    fixture: &Fixture,
    name: &str,
    access: Access,
    accounts: &[u64],
) -> Identity {
    network
        .ca
        .issue(&Request {
            name: name.into(),
            access,
            signers: accounts
                .iter()
                .map(|id| public_key_of(&fixture.keys[id]))
                .collect(),
            hosts: Vec::new(),
            validity: Validity::days_from_now(1),
        })
        .unwrap()
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    match result {
        Err(ClientError::RequestRefused { code, text }) => {
            assert_eq!(
                code,
                tally_engine::net::message::ErrorCode::Forbidden,
                "{text}"
            );
            text
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
}

fn submit_forbidden(client: &Client, records: &[TxRecord]) -> String {
    let (reply, _acks) = crossbeam::channel::unbounded();
    match client.submit(records, &reply) {
        Err(tally_engine::node::SubmitError::Stopped { reason }) => {
            assert!(reason.contains("(forbidden)"), "{reason}");
            reason
        }
        other => panic!("expected a forbidden batch, got {other:?}"),
    }
}

#[test]
fn roles_and_read_privacy_are_enforced_by_the_node() {
    use common::{ALICE, BOB, CENTRAL_BANK, SHOP, TAX};
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |_| {});
    let addr = service.client_addr();
    let connect = |identity: &Identity| Client::connect_with(addr, &options(identity)).unwrap();
    let bank_a = connect(&holder_of(
        &network,
        &fixture,
        "bank-a",
        Access::Bank,
        &[BANK_A],
    ));

    // Bank A moves its own money and its customer's.
    let (acks, error) = submit_and_wait(
        &bank_a,
        &[
            fixture.tx(1, TxKind::Transfer, BANK_A, BANK_B, 5),
            fixture.tx(2, TxKind::TaxedPayment, ALICE, SHOP, 100),
        ],
        WAIT,
    )
    .unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(acks.len(), 2);
    // Not B's, even signed with the key B lent it: the whole batch is refused.
    let text = submit_forbidden(
        &bank_a,
        &[
            fixture.tx(3, TxKind::Transfer, BANK_A, BANK_B, 1),
            fixture.tx(4, TxKind::Transfer, BANK_B, BANK_A, 1),
        ],
    );
    assert!(text.contains("debits account 11"), "{text}");
    submit_forbidden(&bank_a, &[fixture.tx(5, TxKind::Transfer, BOB, ALICE, 1)]);
    // It reads its accounts and its customers', not B's.
    assert_eq!(bank_a.balance(BANK_A).unwrap(), Some(1_000_000 - 5));
    assert!(bank_a.balance(ALICE).unwrap().is_some());
    for query in [
        Query::Balance { account: BANK_B },
        Query::Account { account: BOB },
        Query::Queue {
            payer: Some(BANK_B),
        },
        Query::Queue { payer: None },
        Query::AccountHistory {
            account: BANK_B,
            from: None,
            limit: None,
        },
        // an id the ledger does not hold: refused as another bank's would be
        Query::TxStatus { id: 999 },
        Query::Transaction { id: 999 },
    ] {
        let text = forbidden(bank_a.query(&query));
        assert!(text.contains("bank-a (bank) may not read"), "{text}");
    }
    assert!(bank_a.status().is_ok());
    // its own transaction's status it reads
    assert_eq!(bank_a.tx_status(1).unwrap().status, "settled");

    // The tax authority reads tax reports and moves no money.
    let tax = connect(&holder_of(
        &network,
        &fixture,
        "tax",
        Access::TaxAuthority,
        &[TAX],
    ));
    let report = tax.query(&Query::TaxReport {
        payee: Some(SHOP),
        from_day: 0,
        to_day: u64::MAX / 2,
    });
    assert!(report.is_ok(), "{report:?}");
    let text = submit_forbidden(&tax, &[fixture.tx(6, TxKind::Transfer, TAX, BANK_A, 1)]);
    assert!(text.contains("the tax authority moves no money"), "{text}");
    forbidden(tax.balance(BANK_B));

    // An auditor reads everything and moves nothing.
    let auditor = connect(&holder_of(
        &network,
        &fixture,
        "auditor",
        Access::Auditor,
        &[],
    ));
    assert_eq!(auditor.balance(BANK_B).unwrap(), Some(1_000_000 + 5));
    assert!(auditor.tx_status(1).is_ok());
    assert!(auditor.query(&Query::Queue { payer: None }).is_ok());
    let text = submit_forbidden(
        &auditor,
        &[fixture.tx(7, TxKind::Transfer, BANK_A, BANK_B, 1)],
    );
    assert!(text.contains("moves nothing"), "{text}");

    // The central bank's operator reads all and pledges from its issuance account.
    let central = connect(&holder_of(
        &network,
        &fixture,
        "cb",
        Access::CentralBank,
        &[CENTRAL_BANK],
    ));
    assert!(central.balance(BANK_B).unwrap().is_some());
    let (acks, error) = submit_and_wait(
        &central,
        &[fixture.tx(8, TxKind::Pledge, CENTRAL_BANK, BANK_A, 10)],
        WAIT,
    )
    .unwrap();
    assert!(error.is_none() && acks.len() == 1, "{error:?}");
    submit_forbidden(
        &central,
        &[fixture.tx(9, TxKind::Transfer, BANK_A, BANK_B, 1)],
    );

    // Monitoring reads /metrics only.
    let monitoring = connect(&holder_of(
        &network,
        &fixture,
        "mon",
        Access::Monitoring,
        &[],
    ));
    forbidden(monitoring.status().map(|_| ()));
    let metrics = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
    let counted: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tally_client_forbidden_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(counted, 14, "every refusal counted once");
    drop((bank_a, tax, auditor, central, monitoring));
    service.shutdown();
    // The audit trail attributes each submission and refusal to its certificate.
    let entries = tally_engine::net::audit::verify(&dir.path().join("audit.log")).unwrap();
    let of = |identity: &str, event: &str| {
        entries
            .iter()
            .filter(|e| e.identity == identity && e.event == event)
            .count()
    };
    assert_eq!(of("bank-a", "authenticated"), 1);
    assert_eq!(of("bank-a", "submit"), 1);
    assert_eq!(of("bank-a", "forbidden"), 2 + 7);
    assert_eq!(of("cb", "submit"), 1);
    assert_eq!(of("auditor", "forbidden"), 1);
    let pledge = entries
        .iter()
        .find(|e| e.identity == "cb" && e.event == "submit")
        .unwrap();
    assert_eq!(
        (pledge.role.as_str(), pledge.records, pledge.accepted),
        ("central_bank", 1, 1)
    );
}

#[test]
fn a_revoked_identity_is_closed_at_once_and_refused_after() {
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |_| {});
    let addr = service.client_addr();
    let bank = network.participant("bank-a", Validity::days_from_now(1));
    let other = network.participant("bank-b", Validity::days_from_now(1));
    let client = Client::connect_with(addr, &options(&bank)).unwrap();
    let bystander = Client::connect_with(addr, &options(&other)).unwrap();
    assert!(client.status().is_ok());
    assert!(network.revocations.revoke(&bank.serial));
    let deadline = Instant::now() + WAIT;
    while client.connection_error().is_none() {
        assert!(
            Instant::now() < deadline,
            "the revoked connection stayed open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(client.status().is_err());
    // Within a sweep of the revocation, and only that identity's.
    assert!(bystander.status().is_ok());
    let text = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "tally_client_revoked_closed_total 1"),
        "{text}"
    );
    match Client::connect_with(addr, &options(&bank)) {
        Err(ClientError::Tls { reason, .. }) => {
            assert!(reason.contains("CertificateRevoked"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    drop((client, bystander));
    service.shutdown();
}

#[test]
fn clients_that_never_read_stay_within_the_buffer_budget() {
    const BUDGET: usize = 4 * 1024 * 1024;
    const READERS_NOT: usize = 8;
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeConfig::new(dir.path().to_path_buf());
    node.checkpoint_interval_blocks = 0;
    let config = ServiceConfig {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            connection_output_bytes_max: tally_engine::net::frame::FRAME_BYTES_MAX,
            connection_buffers_bytes_max: BUDGET,
            // The budget of all connections is what this test is about, not the rate.
            identity_queries_per_s: 1_000_000,
            ..ServerConfig::default()
        },
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_tls: false,
    };
    let service = NodeService::start(&fixture.genesis, node, config).unwrap();
    let addr = service.client_addr();
    // Each asks for the node's status 20,000 times (about 20 MiB of answers) and reads none.
    let mut request = Vec::new();
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
        network_id: NETWORK,
    })
    .encode(&mut request);
    for id in 1..=20_000u64 {
        Message::Query {
            request_id: id,
            query: Query::Status,
        }
        .encode(&mut request);
    }
    let writers: Vec<_> = (0..READERS_NOT)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_write_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                // The node stops reading: the write blocks, then times out.
                let _ = stream.write_all(&request);
                stream
            })
        })
        .collect();
    let streams: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(600));
    let buffered = |service: &NodeService| -> u64 {
        let text = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("tally_client_buffered_bytes "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let held = buffered(&service);
    // Full, and within the budget plus each connection's share and one answer over it.
    let slack = READERS_NOT as u64 * 2 * 64 * 1024;
    assert!(
        held >= (BUDGET / 2) as u64,
        "the attack did not fill the budget: {held}"
    );
    assert!(
        held <= BUDGET as u64 + slack,
        "{held} bytes held, budget {BUDGET}"
    );
    // A client that reads is still answered.
    let client = Client::connect(addr).unwrap();
    assert!(client.status().is_ok());
    assert!(buffered(&service) <= BUDGET as u64 + slack);
    drop(streams);
    drop(client);
    service.shutdown();
}

#[test]
fn bad_signatures_close_the_sender_for_its_back_off_and_identities_have_a_connection_quota() {
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |server| {
        server.bad_signatures_max = 50;
        server.bad_signature_backoff = Duration::from_secs(60);
        server.identity_connections_max = 2;
    });
    let addr = service.client_addr();
    let attacker = network.participant("bank-a", Validity::days_from_now(1));
    let honest = holder_of(&network, &fixture, "bank-b", Access::Bank, &[BANK_B]);
    // Two connections per identity; a third is refused.
    let first = Client::connect_with(addr, &options(&attacker)).unwrap();
    let second = Client::connect_with(addr, &options(&attacker)).unwrap();
    match Client::connect_with(addr, &options(&attacker)) {
        Err(ClientError::Refused { text, .. }) => {
            assert!(text.contains("identity_connections_max = 2"), "{text}")
        }
        other => panic!(
            "a third connection was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    drop(second);
    // Records whose signatures fail: past 50, the connection is closed.
    let mut bad = transfers(&fixture, 1_000, 200);
    for record in &mut bad {
        record.signature[0] ^= 0x40;
    }
    let (reply, acks) = crossbeam::channel::unbounded();
    let _ = first.submit(&bad[..100], &reply);
    let deadline = Instant::now() + WAIT;
    while first.connection_error().is_none() {
        assert!(Instant::now() < deadline, "the connection was not closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reason = first.connection_error().unwrap();
    assert!(reason.contains("bad signatures"), "{reason}");
    assert!(acks
        .try_iter()
        .all(|ack: tally_engine::mempool::Ack| ack.code == ResultCode::BadSignature));
    // Its certificate is refused for the back-off, the honest identity goes on.
    std::thread::sleep(Duration::from_millis(300));
    match Client::connect_with(addr, &options(&attacker)) {
        Err(ClientError::Refused { text, .. }) => {
            assert!(text.contains("is refused for"), "{text}")
        }
        other => panic!("the attacker came back at once: {:?}", other.map(|_| ())),
    }
    let client = Client::connect_with(addr, &options(&honest)).unwrap();
    let records: Vec<TxRecord> = (0..50u128)
        .map(|i| fixture.tx(5_000 + i, TxKind::Transfer, BANK_B, BANK_A, 1))
        .collect();
    let (acks, error) = submit_and_wait(&client, &records, WAIT).unwrap();
    assert!(error.is_none() && acks.iter().all(|a| a.code == ResultCode::Ok));
    drop((first, client));
    service.shutdown();
}

#[test]
fn a_central_bank_revocation_closes_the_identity_at_once_and_survives_restarts() {
    use common::CENTRAL_BANK;
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    // Once recovered from the log alone, once from a checkpoint after every block.
    for checkpoint_interval in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let (service, revocations) =
            start_fresh(&network, dir.path(), &fixture, checkpoint_interval, false);
        let addr = service.client_addr();
        let bank_a = holder_of(&network, &fixture, "bank-a", Access::Bank, &[BANK_A]);
        let bank_b = holder_of(&network, &fixture, "bank-b", Access::Bank, &[BANK_B]);
        let cb = holder_of(
            &network,
            &fixture,
            "cb",
            Access::CentralBank,
            &[CENTRAL_BANK],
        );
        let client_a = Client::connect_with(addr, &options(&bank_a)).unwrap();
        let client_b = Client::connect_with(addr, &options(&bank_b)).unwrap();
        let central = Client::connect_with(addr, &options(&cb)).unwrap();
        assert!(client_a.status().is_ok());

        // A bank's revocation, on its own account with its own key, is refused with its code.
        assert_eq!(
            one_result(
                &client_b,
                revocation(&fixture, 1, BANK_B, BANK_B, &bank_a.serial)
            ),
            ResultCode::NotCentralBank
        );
        assert!(!revocations.is_revoked(&bank_a.serial));
        assert!(
            client_a.status().is_ok(),
            "a refused revocation closes nothing"
        );

        // The central bank's settles; it is in force when the central bank hears so.
        assert_eq!(
            one_result(
                &central,
                revocation(&fixture, 2, CENTRAL_BANK, CENTRAL_BANK, &bank_a.serial)
            ),
            ResultCode::Ok
        );
        assert!(revocations.is_revoked(&bank_a.serial));
        let deadline = Instant::now() + WAIT;
        while client_a.connection_error().is_none() {
            assert!(
                Instant::now() < deadline,
                "the revoked connection stayed open"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(client_a.status().is_err());
        assert!(
            client_b.status().is_ok(),
            "only that identity's connections"
        );
        refused_as_revoked(addr, &bank_a);
        // the client hears the alert as the node counts it
        let deadline = Instant::now() + WAIT;
        while refused(&service, "revoked") != 1 {
            assert!(Instant::now() < deadline, "the refusal was not counted");
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
        assert!(
            text.lines()
                .any(|l| l == "tally_client_revoked_closed_total 1"),
            "{text}"
        );
        // Twice is refused with its code.
        assert_eq!(
            one_result(
                &central,
                revocation(&fixture, 3, CENTRAL_BANK, CENTRAL_BANK, &bank_a.serial)
            ),
            ResultCode::CertificateAlreadyRevoked
        );
        drop((client_a, client_b, central));
        service.shutdown();

        // Restarted with an empty list of its own: the ledger's list is in force again.
        let (service, revocations) =
            start_fresh(&network, dir.path(), &fixture, checkpoint_interval, false);
        assert!(service.replayed_height() >= 2);
        assert!(revocations.is_revoked(&bank_a.serial));
        let addr = service.client_addr();
        refused_as_revoked(addr, &bank_a);
        let client_b = Client::connect_with(addr, &options(&bank_b)).unwrap();
        assert!(client_b.status().is_ok());
        drop(client_b);
        service.shutdown();
        if checkpoint_interval == 1 {
            let checkpoints = std::fs::read_dir(dir.path().join("checkpoints"))
                .map(|d| d.count())
                .unwrap_or(0);
            assert!(
                checkpoints > 0,
                "a checkpoint was written and recovered from"
            );
        }
    }
}

#[test]
fn a_bank_reads_its_own_transactions_status_and_not_another_banks() {
    use common::{ALICE, BOB, SHOP, TAX};
    use tally_engine::net::query::Query;
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |_| {});
    let addr = service.client_addr();
    let connect = |name: &str, access: Access, accounts: &[u64]| {
        let identity = holder_of(&network, &fixture, name, access, accounts);
        Client::connect_with(addr, &options(&identity)).unwrap()
    };
    let bank_a = connect("bank-a", Access::Bank, &[BANK_A]);
    let bank_b = connect("bank-b", Access::Bank, &[BANK_B]);
    let tax = connect("tax", Access::TaxAuthority, &[TAX]);
    // A's customers pay each other (a taxed payment); B's customer pays B.
    let (acks, error) = submit_and_wait(
        &bank_a,
        &[fixture.tx(1, TxKind::TaxedPayment, ALICE, SHOP, 100)],
        WAIT,
    )
    .unwrap();
    assert!(
        error.is_none() && acks[0].code == ResultCode::Ok,
        "{acks:?} {error:?}"
    );
    let (acks, error) = submit_and_wait(
        &bank_b,
        &[fixture.tx(2, TxKind::Transfer, BOB, BANK_B, 5)],
        WAIT,
    )
    .unwrap();
    assert!(
        error.is_none() && acks[0].code == ResultCode::Ok,
        "{acks:?} {error:?}"
    );

    // Each bank reads its own.
    assert_eq!(bank_a.tx_status(1).unwrap().status, "settled");
    assert!(bank_a.transaction_settled(1).unwrap());
    assert_eq!(bank_b.tx_status(2).unwrap().status, "settled");
    // Not the other's; and an unknown id is refused in the same words.
    let other = forbidden(bank_a.tx_status(2));
    let unknown = forbidden(bank_a.tx_status(2_000_000));
    assert!(
        other.contains("bank-a (bank) may not read transaction 2"),
        "{other}"
    );
    assert_eq!(
        other.replace(" 2:", " ID:"),
        unknown.replace(" 2000000:", " ID:")
    );
    forbidden(bank_a.query(&Query::Transaction { id: 2 }));
    forbidden(bank_a.query(&Query::TxHistory { id: 2 }));
    forbidden(bank_b.tx_status(1));
    // Its own history it reads: the block that carried it, with its result code.
    match bank_a.query(&Query::TxHistory { id: 1 }) {
        Ok(Answer::TxHistory { blocks, .. }) => {
            assert_eq!(blocks.len(), 1, "{blocks:?}");
            assert_eq!((blocks[0].id, blocks[0].result.as_str()), (1, "ok"));
        }
        other => panic!("{other:?}"),
    }
    // The tax authority reads taxed payments, not other transactions.
    let status = tax.tx_status(1).unwrap();
    assert!(status.taxed.is_some(), "{status:?}");
    forbidden(tax.tx_status(2));
    drop((bank_a, bank_b, tax));
    service.shutdown();
}

#[test]
fn metrics_over_tls_answer_monitoring_central_bank_and_auditor_only() {
    use tally_engine::net::http::fetch_metrics_tls;
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let (service, revocations) = start_fresh(&network, dir.path(), &fixture, 0, true);
    let metrics = service.metrics_addr().unwrap();
    for (access, signers) in [
        (Access::Monitoring, &[][..]),
        (Access::CentralBank, &[common::CENTRAL_BANK][..]),
        (Access::Auditor, &[][..]),
    ] {
        let identity = holder_of(&network, &fixture, "reader", access, signers);
        let text = fetch_metrics_tls(metrics, identity.client_config().unwrap())
            .unwrap_or_else(|e| panic!("{access}: {e}"));
        assert!(text.contains("tally_client_connections"), "{text}");
    }
    // A wrong role: the handshake succeeds, the request is forbidden.
    let bank = holder_of(&network, &fixture, "bank-a", Access::Bank, &[BANK_A]);
    let error = fetch_metrics_tls(metrics, bank.client_config().unwrap()).unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
    // A monitoring certificate of a CA impersonating this network's (the client trusts the
    // real CA for the node, so only its own certificate is wrong), plain HTTP, no
    // certificate, and a revoked monitoring certificate are refused.
    let impostor = Ca::create(NETWORK, Validity::days_from_now(1)).unwrap();
    let mut forged = impostor
        .issue(&Request {
            name: "mon".into(),
            access: Access::Monitoring,
            signers: Vec::new(),
            hosts: Vec::new(),
            validity: Validity::days_from_now(1),
        })
        .unwrap();
    forged.ca_certificate = bank.ca_certificate.clone();
    assert!(fetch_metrics_tls(metrics, forged.client_config().unwrap()).is_err());
    let no_cert =
        rustls::ClientConfig::builder_with_provider(tally_protocol::identity::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(bank.roots().unwrap())
            .with_no_client_auth();
    assert!(fetch_metrics_tls(metrics, Arc::new(no_cert)).is_err());
    assert!(
        fetch_metrics(metrics).is_err(),
        "plain HTTP on a TLS endpoint"
    );
    let gone = holder_of(&network, &fixture, "mon-gone", Access::Monitoring, &[]);
    assert!(fetch_metrics_tls(metrics, gone.client_config().unwrap()).is_ok());
    assert!(revocations.revoke(&gone.serial));
    assert!(fetch_metrics_tls(metrics, gone.client_config().unwrap()).is_err());
    // Each refusal is counted by its reason.
    let monitoring = holder_of(&network, &fixture, "mon", Access::Monitoring, &[]);
    let text = fetch_metrics_tls(metrics, monitoring.client_config().unwrap()).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(value("tally_metrics_forbidden_total"), 1);
    assert_eq!(
        value("tally_metrics_tls_refused_total{reason=\"revoked\"}"),
        1
    );
    assert_eq!(
        value("tally_metrics_tls_refused_total{reason=\"protocol\"}"),
        1
    );
    assert_eq!(
        value("tally_metrics_tls_refused_total{reason=\"no_certificate\"}"),
        1
    );
    assert!(
        value("tally_metrics_tls_refused_total{reason=\"unknown_ca\"}")
            + value("tally_metrics_tls_refused_total{reason=\"bad_certificate\"}")
            >= 1
    );
    service.shutdown();
}

/// The value of a metric line `name` (with its labels) on the node's `/metrics` page.
fn metric(service: &NodeService, name: &str) -> u64 {
    let text = fetch_metrics(service.metrics_addr().unwrap()).unwrap();
    let needle = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&needle))
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
        .trim()
        .parse()
        .unwrap()
}

fn quota_refused(service: &NodeService, quota: Quota) -> u64 {
    metric(
        service,
        &format!(
            "tally_client_quota_refused_total{{quota=\"{}\"}}",
            quota.name()
        ),
    )
}

fn over_quota<T: std::fmt::Debug>(result: Result<T, ClientError>, quota: Quota) -> String {
    match result {
        Err(ClientError::RequestRefused { code, text }) => {
            assert_eq!(code, ErrorCode::OverQuota, "{text}");
            assert!(text.starts_with(quota.name()), "{text}");
            text
        }
        other => panic!("expected over quota {quota}, got {other:?}"),
    }
}

/// A TLS connection driven by hand: frames written and read raw, so that a test can send
/// several requests in one write and leave answers unread.
struct RawTls {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    input: Vec<u8>,
}

impl RawTls {
    fn connect(addr: std::net::SocketAddr, identity: &Identity) -> RawTls {
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = rustls::ClientConnection::new(identity.client_config().unwrap(), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        RawTls {
            stream: rustls::StreamOwned::new(tls, tcp),
            input: Vec::new(),
        }
    }

    fn hello() -> Vec<u8> {
        let mut bytes = Vec::new();
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Client,
            network_id: NETWORK,
        })
        .encode(&mut bytes);
        bytes
    }

    /// The next receipt or Error frame (Welcome and Results frames are skipped).
    fn next_reply(&mut self) -> Message<'static> {
        use std::io::Read;
        loop {
            if let Some((frame, used)) = frame::decode(&self.input).unwrap() {
                let message = match Message::decode(frame).unwrap() {
                    Message::SubmitReceipt(receipt) => Some(Message::SubmitReceipt(receipt)),
                    Message::Error(error) => Some(Message::Error(error)),
                    _ => None,
                };
                self.input.drain(..used);
                if let Some(message) = message {
                    return message;
                }
                continue;
            }
            let mut chunk = [0u8; 65_536];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the node closed the connection");
            self.input.extend_from_slice(&chunk[..n]);
        }
    }
}

#[test]
fn an_identity_over_its_submit_or_query_rate_is_refused_with_the_quota_named() {
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |server| {
        server.submit_batch_tx_max = 64;
        server.identity_submit_tx_per_s = 100;
        server.identity_queries_per_s = 5;
    });
    let addr = service.client_addr();
    let bank = network.participant("bank-a", Validity::days_from_now(1));
    let client = Client::connect_with(addr, &options(&bank)).unwrap();
    // A bucket of 100 records: batches of 64, the second cut, the rest refused, named.
    let (acks, refusal) = submit_and_wait(&client, &transfers(&fixture, 1, 300), WAIT).unwrap();
    let accepted = match refusal {
        Some(SubmitError::OverQuota {
            accepted,
            quota,
            text,
        }) => {
            assert_eq!(quota, Quota::SubmitRate);
            assert!(
                text.starts_with(
                    "identity_submit_tx_per_s: bank-a may submit 100 records a second"
                ),
                "{text}"
            );
            accepted
        }
        other => panic!("expected the submit rate quota, got {other:?}"),
    };
    assert!((100..=102).contains(&accepted), "{accepted}");
    assert_eq!(acks.len(), accepted);
    assert!(acks.iter().all(|ack| ack.code == ResultCode::Ok));
    assert_eq!(
        quota_refused(&service, Quota::SubmitRate),
        128 - accepted as u64
    );
    // Refused records were not taken: sent again after the bucket refills, they settle.
    std::thread::sleep(Duration::from_millis(1_100));
    let (acks, refusal) = submit_and_wait(
        &client,
        &transfers(&fixture, 1 + accepted as u128, 64),
        WAIT,
    )
    .unwrap();
    assert!(refusal.is_none(), "{refusal:?}");
    assert!(acks.iter().all(|ack| ack.code == ResultCode::Ok));
    // Five queries a second: the sixth at once is refused, the connection stays.
    let started = Instant::now();
    for _ in 0..5 {
        client.status().unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(150));
    let text = over_quota(client.status(), Quota::QueryRate);
    assert!(text.contains("may ask 5 queries a second"), "{text}");
    assert_eq!(quota_refused(&service, Quota::QueryRate), 1);
    std::thread::sleep(Duration::from_millis(400));
    client
        .status()
        .expect("answered again once the bucket refilled");
    drop(client);
    service.shutdown();
}

#[test]
fn records_in_flight_and_unread_output_are_quotas_of_the_identity_over_its_connections() {
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let output_max = frame::FRAME_BYTES_MAX;
    let service = network.start(dir.path(), &fixture, |server| {
        server.submit_batch_tx_max = 16;
        server.identity_inflight_tx_max = 16;
        server.identity_output_bytes_max = output_max;
        server.identity_queries_per_s = 1_000_000;
    });
    let addr = service.client_addr();
    let bank = network.participant("bank-a", Validity::days_from_now(1));
    // Two batches in one write: the first takes the identity's 16 records in flight, the
    // second, decoded before any of them is answered, is refused whole, its quota named.
    let mut raw = RawTls::connect(addr, &bank);
    let mut request = RawTls::hello();
    let records = transfers(&fixture, 1, 32);
    encode_submit_batch(1, &records[..16], &mut request);
    encode_submit_batch(2, &records[16..], &mut request);
    raw.stream.write_all(&request).unwrap();
    let mut receipts = Vec::new();
    while receipts.len() < 2 {
        match raw.next_reply() {
            Message::SubmitReceipt(receipt) => receipts.push(receipt),
            other => panic!("expected receipts, got {other:?}"),
        }
    }
    receipts.sort_by_key(|receipt| receipt.request_id);
    assert_eq!((receipts[0].accepted, receipts[0].refused), (16, 0));
    assert_eq!((receipts[1].accepted, receipts[1].refused), (0, 16));
    match &receipts[1].refusal {
        Refusal::OverQuota { quota, text } => {
            assert_eq!(*quota, Quota::InflightRecords);
            assert!(
                text.starts_with(
                    "identity_inflight_tx_max: bank-a has 16 records in flight (at most 16)"
                ),
                "{text}"
            );
        }
        other => panic!("expected the in-flight quota, got {other:?}"),
    }
    assert_eq!(quota_refused(&service, Quota::InflightRecords), 16);
    drop(raw);
    // A connection of the identity that asks and never reads: once the identity holds its
    // unread-output quota, the node stops reading that connection, and another connection
    // of the same identity has its requests refused, the quota named; its answers would
    // only add to what the identity leaves unread.
    let mut request = RawTls::hello();
    for id in 1..=20_000u64 {
        Message::Query {
            request_id: id,
            query: Query::Status,
        }
        .encode(&mut request);
    }
    let writer = {
        let mut raw = RawTls::connect(addr, &bank);
        raw.stream
            .sock
            .set_write_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        std::thread::spawn(move || {
            let _ = raw.stream.write_all(&request);
            raw
        })
    };
    let unread = writer.join().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let buffered = metric(&service, "tally_client_buffered_bytes");
    assert!(
        buffered >= (output_max / 2) as u64,
        "the client did not fill its quota: {buffered}"
    );
    assert!(
        buffered <= (output_max + 2 * 64 * 1024) as u64,
        "{buffered} bytes held for an identity whose quota is {output_max}"
    );
    let client = Client::connect_with(addr, &options(&bank)).unwrap();
    over_quota(client.status(), Quota::UnreadOutput);
    let (acks, refusal) = submit_and_wait(&client, &transfers(&fixture, 100, 4), WAIT).unwrap();
    assert!(acks.is_empty());
    assert!(
        matches!(
            refusal,
            Some(SubmitError::OverQuota {
                accepted: 0,
                quota: Quota::UnreadOutput,
                ..
            })
        ),
        "{refusal:?}"
    );
    assert!(quota_refused(&service, Quota::UnreadOutput) >= 5);
    // Another identity is served as before.
    let other = holder_of(&network, &fixture, "bank-b", Access::Bank, &[BANK_B]);
    let other = Client::connect_with(addr, &options(&other)).unwrap();
    other.status().unwrap();
    // Once the reader goes away, its identity's output is released.
    drop(unread);
    std::thread::sleep(Duration::from_millis(600));
    client
        .status()
        .expect("the identity's unread output was released");
    drop((client, other));
    service.shutdown();
}

#[test]
fn an_identity_whose_signatures_fail_is_verified_in_its_own_lane_at_its_suspect_rate() {
    let fixture = Fixture::new();
    let network = Network::new(&fixture);
    let dir = tempfile::tempdir().unwrap();
    let service = network.start(dir.path(), &fixture, |server| {
        server.suspect_bad_signatures = 10;
        server.suspect_submit_tx_per_s = 10;
        server.bad_signatures_max = 100_000;
    });
    let addr = service.client_addr();
    let attacker = network.participant("bank-a", Validity::days_from_now(1));
    let honest = holder_of(&network, &fixture, "bank-b", Access::Bank, &[BANK_B]);
    let bad = |mut record: TxRecord| {
        record.signature[0] ^= 0x40;
        record
    };
    let attacker = Client::connect_with(addr, &options(&attacker)).unwrap();
    let honest = Client::connect_with(addr, &options(&honest)).unwrap();
    // Twenty bad signatures make the attacker suspect.
    let first: Vec<TxRecord> = transfers(&fixture, 1, 20).into_iter().map(bad).collect();
    let (acks, _) = submit_and_wait(&attacker, &first, WAIT).unwrap();
    assert!(acks.iter().all(|ack| ack.code == ResultCode::BadSignature));
    assert_eq!(metric(&service, "tally_client_suspect_identities_total"), 1);
    let common_failed_before = metric(
        &service,
        "tally_sigverify_failed_batches_total{lane=\"common\"}",
    );
    // From now on its records, half of them bad, are verified apart from the honest
    // client's, at most its suspect burst (one linked chain's worth, 512) at once.
    let mixed: Vec<TxRecord> = transfers(&fixture, 1_000, 600)
        .into_iter()
        .enumerate()
        .map(|(i, record)| if i % 2 == 0 { bad(record) } else { record })
        .collect();
    let honest_records: Vec<TxRecord> = (0..400u128)
        .map(|i| fixture.tx(5_000 + i, TxKind::Transfer, BANK_B, BANK_A, 1))
        .collect();
    let honest_thread = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for chunk in honest_records.chunks(50) {
            let (mut some, refusal) = submit_and_wait(&honest, chunk, WAIT).unwrap();
            assert!(refusal.is_none(), "{refusal:?}");
            acks.append(&mut some);
        }
        (honest, acks)
    });
    let (acks, refusal) = submit_and_wait(&attacker, &mixed, WAIT).unwrap();
    let (honest, honest_acks) = honest_thread.join().unwrap();
    match refusal {
        Some(SubmitError::OverQuota {
            accepted, quota, ..
        }) => {
            assert_eq!(quota, Quota::SuspectSubmitRate);
            assert_eq!(accepted, 512);
        }
        other => panic!("expected the suspect rate, got {other:?}"),
    }
    assert_eq!(quota_refused(&service, Quota::SuspectSubmitRate), 600 - 512);
    // Verdicts are those of each record alone.
    let by_id: std::collections::HashMap<u128, ResultCode> =
        acks.iter().map(|ack| (ack.id, ack.code)).collect();
    for (i, record) in mixed[..512].iter().enumerate() {
        let expected = if i % 2 == 0 {
            ResultCode::BadSignature
        } else {
            ResultCode::Ok
        };
        assert_eq!(by_id[&record.id()], expected, "record {i}");
    }
    assert_eq!(honest_acks.len(), 400);
    assert!(honest_acks.iter().all(|ack| ack.code == ResultCode::Ok));
    // The honest client's batches never held a bad signature.
    assert!(metric(&service, "tally_sigverify_isolated_tx_total") >= 512);
    assert_eq!(
        metric(
            &service,
            "tally_sigverify_failed_batches_total{lane=\"common\"}"
        ),
        common_failed_before
    );
    assert!(
        metric(
            &service,
            "tally_sigverify_failed_batches_total{lane=\"isolated\"}"
        ) >= 1
    );
    drop((attacker, honest));
    service.shutdown();
}
