//! `tally gateway serve` as a process in front of a `tally node` process: every message type
//! in (camt.050, pacs.009, pacs.008 with tax, pacs.004, camt.056), each answered with its
//! pacs.002 and booked in the camt.054 of the banks' gateways, compared field by field; the
//! refusals (malformed XML, an unknown BIC, a wrong currency, a duplicate message id, too many
//! decimals) each with their own reason; and over a day with a queue, a refund and a
//! gridlock, a camt.053 per account whose opening balance plus its entries is its closing
//! balance, which is the node's.

mod common;

use common::{start_node, tally};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use tally_engine::keys::{generate_key, public_key_of, write_key_file};
use tally_gateway::iso::{AccountEntries, OutDocument, TxStatus};
use tally_gateway::server::request;
use tally_gateway::translate::record_id;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway/samples");

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{SAMPLES}/{name}.xml")).unwrap()
}

/// Writes the keys and genesis: central bank CENTDEFF (1), tax authority (2), banks
/// BKAADEFF (10, 1 000.00) and BKBBDEFF (11, 500.00), a consumer of bank A (100, 500.00) and
/// a merchant of bank B (200); EUR; tax category 1 at 19% inclusive.
fn write_network(dir: &Path) {
    let mut keys = Vec::new();
    for name in ["v0", "cb", "tax", "a", "b"] {
        let key = generate_key();
        write_key_file(&dir.join(format!("{name}.key")), &key).unwrap();
        keys.push(hex::encode(public_key_of(&key)));
    }
    let genesis = format!(
        r#"network_id = 7
ledger = 978

[currency]
code = "EUR"
minor_unit_digits = 2

[[validators]]
name = "v0"
public_key = "{v0}"

[[tax_rates]]
category = 1
rate_bp = 1900
basis = "inclusive"
rounding = "half_up"

[[accounts]]
id = 1
name = "central bank"
role = "central_bank"
owner = "{cb}"
bic = "CENTDEFF"

[[accounts]]
id = 2
name = "tax authority"
role = "tax_authority"
owner = "{tax}"

[[accounts]]
id = 10
name = "bank a"
role = "bank"
owner = "{a}"
balance = 100000
bic = "BKAADEFF"

[[accounts]]
id = 11
name = "bank b"
role = "bank"
owner = "{b}"
balance = 50000
bic = "BKBBDEFF"

[[accounts]]
id = 100
name = "consumer of a"
role = "consumer"
owner = "{a}"
bank = 10
balance = 50000

[[accounts]]
id = 200
name = "merchant of b"
role = "merchant"
owner = "{b}"
bank = 11
"#,
        v0 = keys[0],
        cb = keys[1],
        tax = keys[2],
        a = keys[3],
        b = keys[4],
    );
    std::fs::write(dir.join("genesis.toml"), genesis).unwrap();
}

/// A process killed when the test ends, passing or not.
struct KillOnDrop(Child);

/// The network of [`write_network`] in `dir` with its node running, stopped when the guard
/// drops: the node's client address and the guard.
fn running_network(dir: &Path) -> (String, KillOnDrop) {
    write_network(dir);
    let node = start_node(dir);
    let address = node.address.clone();
    let (child, _) = node.drain_output();
    (address, KillOnDrop(child))
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct GatewayProcess {
    child: Child,
    addr: SocketAddr,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(dir: &Path, node: &str, key: &str, follow: &[&str]) -> GatewayProcess {
    start_gateway_with(dir, node, key, follow, &[])
}

/// As [`start_gateway`], with more arguments.
fn start_gateway_with(
    dir: &Path,
    node: &str,
    key: &str,
    follow: &[&str],
    more: &[&str],
) -> GatewayProcess {
    let genesis = dir.join("genesis.toml");
    let key = dir.join(key);
    let mut args = vec![
        "--node",
        node,
        "--insecure-plaintext",
        "--genesis",
        genesis.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    for account in follow {
        args.extend(["--follow", account]);
    }
    args.extend(more);
    spawn_gateway(&args, "http")
}

/// `tally gateway serve` with `args` on a free loopback port; returns once it printed where
/// it listens (`scheme://`).
fn spawn_gateway(args: &[&str], scheme: &str) -> GatewayProcess {
    let mut child = tally()
        .args([
            "gateway",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--result-timeout-s",
            "20",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = format!("gateway: {scheme}://");
    let addr = loop {
        let line = lines
            .next()
            .expect("the gateway prints where it listens")
            .unwrap();
        if let Some(url) = line.strip_prefix(&prefix) {
            break url.trim().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    GatewayProcess { child, addr }
}

fn post(gateway: &GatewayProcess, xml: &str) -> OutDocument {
    let (status, body) = request(gateway.addr, "POST", "/", xml.as_bytes()).unwrap();
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    OutDocument::from_xml(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn get(gateway: &GatewayProcess, target: &str) -> OutDocument {
    let (status, body) = request(gateway.addr, "GET", target, b"").unwrap();
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{target}: {text}");
    OutDocument::from_xml(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The one transaction status of a pacs.002, checked against its original message.
fn single_status(document: &OutDocument, msg_id: &str, schema: &str) -> TxStatus {
    assert_eq!(
        document.xmlns,
        "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"
    );
    let report = document.pacs002.as_ref().expect("a pacs.002");
    assert_eq!(report.original_group.msg_id, msg_id);
    assert_eq!(report.original_group.msg_name, schema);
    assert_eq!(report.original_group.status, None);
    assert_eq!(report.transactions.len(), 1);
    report.transactions[0].clone()
}

fn settled(status: &TxStatus, e2e: &str, id: u128) {
    assert_eq!(status.end_to_end_id, e2e);
    assert_eq!(status.status, "ACSC", "{status:?}");
    assert_eq!(status.reason, None);
    assert_eq!(status.clearing_ref, Some(format!("{id:032x}")));
}

fn rejected(document: &OutDocument, code: &str, says: &str) {
    let status = &document.pacs002.as_ref().unwrap().transactions[0];
    assert_eq!(status.status, "RJCT", "{status:?}");
    let reason = status.reason.as_ref().unwrap();
    assert_eq!(reason.reason.code, code, "{reason:?}");
    assert!(
        reason.info.iter().any(|info| info.contains(says)),
        "{reason:?}"
    );
}

/// Signed minor units of an ISO amount and its credit/debit indicator.
fn signed(value: &str, sign: &str) -> i64 {
    let (units, cents) = value.split_once('.').unwrap();
    let minor = units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap();
    if sign == "DBIT" {
        -minor
    } else {
        minor
    }
}

/// The notifications of `account` in a camt.054.
fn notifications_of(document: &OutDocument, account: u64) -> Vec<AccountEntries> {
    document
        .camt054
        .as_ref()
        .expect("a camt.054")
        .notifications
        .iter()
        .filter(|n| n.account.id.other.as_ref().unwrap().id == account.to_string())
        .cloned()
        .collect()
}

/// Waits until `account`'s notifications on `gateway` include the record `id` with status
/// `status`, and returns that entry's notification.
fn notified(gateway: &GatewayProcess, account: u64, id: u128, status: &str) -> AccountEntries {
    await_notification(|| get(gateway, "/camt.054?from=0"), account, id, status)
}

/// Fetches camt.054s until `account`'s notifications include the record `id` with status
/// `status` (for up to 30 s); that entry's notification.
fn await_notification(
    fetch: impl Fn() -> OutDocument,
    account: u64,
    id: u128,
    status: &str,
) -> AccountEntries {
    let reference = format!("{id:032x}");
    for _ in 0..300 {
        if let Some(found) = notifications_of(&fetch(), account)
            .into_iter()
            .find(|n| n.entries[0].servicer_ref == reference && n.entries[0].status.code == status)
        {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no {status} notification of {reference} on account {account}");
}

fn node_balance(node: &str, account: u64) -> i64 {
    let client = tally_engine::net::Client::connect(node).unwrap();
    client.balance(account).unwrap().unwrap()
}

#[test]
fn iso_20022_messages_settle_and_a_days_statements_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let (address, _node) = running_network(dir.path());
    let central = start_gateway(dir.path(), &address, "cb.key", &[]);
    let bank_a = start_gateway(dir.path(), &address, "a.key", &["BKAADEFF", "100"]);
    let bank_b = start_gateway(dir.path(), &address, "b.key", &["BKBBDEFF", "200"]);

    // camt.050 from the central bank to bank A: a pledge of 1 000.00
    let status = single_status(
        &post(&central, &sample("camt.050")),
        "CENT-050-0001",
        "camt.050.001.05",
    );
    let pledge = record_id("CENTDEFF", "CENT-050-0001", "LIQ-1");
    settled(&status, "LIQ-1", pledge);
    let credit = notified(&bank_a, 10, pledge, "BOOK");
    let entry = &credit.entries[0];
    assert_eq!(
        (entry.amount.value.as_str(), entry.amount.currency.as_str()),
        ("1000.00", "EUR")
    );
    assert_eq!(entry.sign, "CRDT");
    assert_eq!(entry.code.proprietary.code, "settled");
    assert_eq!(entry.details.tx.refs.end_to_end_id, "NOTPROVIDED");
    assert_eq!(
        credit
            .account
            .servicer
            .as_ref()
            .unwrap()
            .institution
            .bic
            .as_deref(),
        Some("BKAADEFF")
    );

    // pacs.009 from bank A to bank B, 250.00
    let status = single_status(
        &post(&bank_a, &sample("pacs.009")),
        "BKAA-009-0001",
        "pacs.009.001.08",
    );
    let transfer = record_id("BKAADEFF", "BKAA-009-0001", "E2E-009-1");
    settled(&status, "E2E-009-1", transfer);
    assert_eq!(status.tx_id.as_deref(), Some("BKAA-TX-1"));
    let debit = notified(&bank_a, 10, transfer, "BOOK");
    let entry = &debit.entries[0];
    assert_eq!(entry.amount.value, "250.00");
    assert_eq!(entry.sign, "DBIT");
    assert_eq!(entry.details.tx.refs.end_to_end_id, "E2E-009-1");
    assert_eq!(
        entry.details.tx.refs.msg_id.as_deref(),
        Some("BKAA-009-0001")
    );
    let parties = entry.details.tx.parties.as_ref().unwrap();
    assert_eq!(parties.debtor_account.id.other.as_ref().unwrap().id, "10");
    assert_eq!(parties.creditor_account.id.other.as_ref().unwrap().id, "11");
    let credit = notified(&bank_b, 11, transfer, "BOOK");
    assert_eq!(credit.entries[0].amount.value, "250.00");
    assert_eq!(credit.entries[0].sign, "CRDT");

    // pacs.008 with a tax category: a taxed payment of 119.00 from the consumer of A to the
    // merchant of B; 19% inclusive is 19.00 of tax, so the merchant is credited 100.00
    let status = single_status(
        &post(&bank_a, &sample("pacs.008")),
        "BKAA-008-0001",
        "pacs.008.001.08",
    );
    let taxed = record_id("BKAADEFF", "BKAA-008-0001", "INV-2026-0042");
    settled(&status, "INV-2026-0042", taxed);
    assert_eq!(
        notified(&bank_a, 100, taxed, "BOOK").entries[0]
            .amount
            .value,
        "119.00"
    );
    let credit = notified(&bank_b, 200, taxed, "BOOK");
    assert_eq!(credit.entries[0].amount.value, "100.00");
    assert_eq!(credit.entries[0].sign, "CRDT");

    // pacs.004 from bank B returning it: a refund of the taxed payment
    let status = single_status(
        &post(&bank_b, &sample("pacs.004")),
        "BKBB-004-0001",
        "pacs.004.001.09",
    );
    let refund = record_id("BKBBDEFF", "BKBB-004-0001", "RTR-0042");
    settled(&status, "INV-2026-0042", refund);
    let back = notified(&bank_a, 100, refund, "BOOK");
    assert_eq!(back.entries[0].amount.value, "119.00");
    assert_eq!(back.entries[0].sign, "CRDT");
    assert_eq!(back.entries[0].code.proprietary.code, "refunded");
    let paid_back = notified(&bank_b, 200, refund, "BOOK");
    assert_eq!(paid_back.entries[0].amount.value, "100.00");
    assert_eq!(paid_back.entries[0].sign, "DBIT");

    // a pacs.009 bank A cannot cover queues (ACSP); camt.056 cancels it
    let queued_xml = sample("pacs.009")
        .replace("BKAA-009-0001", "BKAA-009-0002")
        .replace("E2E-009-1", "E2E-009-2")
        .replace("250.00", "90000.00");
    let status = single_status(
        &post(&bank_a, &queued_xml),
        "BKAA-009-0002",
        "pacs.009.001.08",
    );
    assert_eq!(status.status, "ACSP", "{status:?}");
    let queued = record_id("BKAADEFF", "BKAA-009-0002", "E2E-009-2");
    let pending = notified(&bank_a, 10, queued, "PDNG");
    assert_eq!(pending.entries[0].amount.value, "90000.00");
    assert!(pending.entries[0].booked.is_none());
    let status = single_status(
        &post(&bank_a, &sample("camt.056")),
        "BKAA-056-0001",
        "camt.056.001.08",
    );
    // the payment is reported cancelled (CANC), and its camt.054 says so: nothing moved
    assert_eq!(status.end_to_end_id, "E2E-009-2");
    assert_eq!(status.status, "CANC", "{status:?}");
    assert_eq!(status.reason, None);
    assert_eq!(
        status.clearing_ref,
        Some(format!(
            "{:032x}",
            record_id("BKAADEFF", "BKAA-056-0001", "CXL-1")
        ))
    );
    let cancelled = notified(&bank_a, 10, queued, "INFO");
    assert_eq!(cancelled.entries[0].code.proprietary.code, "cancelled");
    assert_eq!(cancelled.entries[0].amount.value, "90000.00");
    let intraday = get(&bank_a, "/camt.052?account=10");
    let pending: Vec<&str> = intraday.camt052.as_ref().unwrap().reports[0]
        .entries
        .iter()
        .filter(|e| e.servicer_ref == format!("{queued:032x}"))
        .map(|e| e.status.code.as_str())
        .collect();
    assert_eq!(pending, ["INFO"], "no longer pending once cancelled");
    // cancelling it again: the queue no longer holds it
    let again = sample("camt.056").replace("BKAA-056-0001", "BKAA-056-0002");
    rejected(&post(&bank_a, &again), "NOOR", "queued_payment_not_found");

    // the refusals, each with its own reason
    let malformed = post(
        &bank_a,
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08\"><FICdtTrf><GrpHdr>",
    );
    let group = &malformed.pacs002.as_ref().unwrap().original_group;
    assert_eq!(group.status.as_deref(), Some("RJCT"));
    assert_eq!(group.reason.as_ref().unwrap().reason.code, "FF01");
    let with = |from: &str, to: &str| {
        sample("pacs.009")
            .replace("BKAA-009-0001", "BKAA-009-0099")
            .replace(from, to)
    };
    rejected(
        &post(
            &bank_a,
            &with(
                "<Cdtr><FinInstnId><BICFI>BKBBDEFF",
                "<Cdtr><FinInstnId><BICFI>NOBKDEFF",
            ),
        ),
        "RC01",
        "BIC NOBKDEFF names no participant",
    );
    rejected(
        &post(&bank_a, &with("Ccy=\"EUR\"", "Ccy=\"GBP\"")),
        "AM11",
        "this network settles EUR",
    );
    rejected(
        &post(&bank_a, &with("250.00", "250.005")),
        "AM12",
        "has 3 decimals",
    );
    rejected(&post(&bank_a, &sample("pacs.009")), "AM05", "duplicate_id");

    // a gridlock: each bank pays the other one minor unit more than it holds; the queue's
    // gridlock resolution settles both
    let held_a = node_balance(&address, 10);
    let held_b = node_balance(&address, 11);
    let gridlock = |bank: &GatewayProcess, msg: &str, from: &str, to: &str, minor: i64| {
        let xml = sample("pacs.009")
            .replace("BKAA-009-0001", msg)
            .replace("E2E-009-1", msg)
            .replace(
                "<Dbtr><FinInstnId><BICFI>BKAADEFF",
                &format!("<Dbtr><FinInstnId><BICFI>{from}"),
            )
            .replace(
                "<Cdtr><FinInstnId><BICFI>BKBBDEFF",
                &format!("<Cdtr><FinInstnId><BICFI>{to}"),
            )
            .replace("250.00", &format!("{}.{:02}", minor / 100, minor % 100));
        single_status(&post(bank, &xml), msg, "pacs.009.001.08")
    };
    let a_to_b = gridlock(&bank_a, "GRID-A", "BKAADEFF", "BKBBDEFF", held_a + 1);
    assert_eq!(a_to_b.status, "ACSP", "{a_to_b:?}");
    let b_to_a = gridlock(&bank_b, "GRID-B", "BKBBDEFF", "BKAADEFF", held_b + 1);
    assert!(
        ["ACSP", "ACSC"].contains(&b_to_a.status.as_str()),
        "{b_to_a:?}"
    );
    let a_id = record_id("BKAADEFF", "GRID-A", "GRID-A");
    let released = notified(&bank_a, 10, a_id, "BOOK");
    assert_eq!(released.entries[0].code.proprietary.code, "released");
    assert_eq!(node_balance(&address, 10), held_b);
    assert_eq!(node_balance(&address, 11), held_a);

    // booking dates are the times of the blocks that booked the entries, as the node's
    // event stream stamps them
    let block_times = {
        let client = tally_engine::net::Client::connect(&address).unwrap();
        let until = released.entries[0].reference.parse::<u64>().unwrap();
        let (_, batches) = client
            .subscribe(&tally_protocol::events::Subscription {
                accounts: vec![10],
                from_height: 1,
            })
            .unwrap();
        let mut times = std::collections::HashMap::new();
        while let Ok(batch) = batches.recv_timeout(std::time::Duration::from_secs(20)) {
            times.insert(batch.height, batch.stamp.time_ms);
            if batch.height >= until {
                break;
            }
        }
        times
    };
    let booked_a = notifications_of(&get(&bank_a, "/camt.054?from=0"), 10);
    let mut checked = 0;
    for note in booked_a
        .iter()
        .filter(|n| n.entries[0].status.code == "BOOK")
    {
        let entry = &note.entries[0];
        let height = entry.reference.parse::<u64>().unwrap();
        let time_ms = block_times[&height];
        assert_eq!(
            entry.booked.as_ref().unwrap().date_time,
            tally_gateway::books::iso_of_ms(time_ms),
            "{entry:?}"
        );
        assert_eq!(
            entry.valued.as_ref().unwrap().date,
            tally_protocol::calendar::format_date(time_ms / 86_400_000)
        );
        checked += 1;
    }
    assert!(checked >= 3, "{checked} entries checked");

    // camt.052 keeps the period open; camt.053 closes it: for every account, the opening
    // balance plus the booked entries is the closing balance, which is the node's
    for (gateway, accounts) in [(&bank_a, [10u64, 100]), (&bank_b, [11, 200])] {
        let report = get(gateway, "/camt.052");
        assert_eq!(
            report.xmlns,
            "urn:iso:std:iso:20022:tech:xsd:camt.052.001.08"
        );
        assert_eq!(report.camt052.as_ref().unwrap().reports.len(), 2);
        let document = get(gateway, "/camt.053");
        assert_eq!(
            document.xmlns,
            "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
        );
        let statements = &document.camt053.as_ref().unwrap().statements;
        assert_eq!(statements.len(), 2);
        for (statement, account) in statements.iter().zip(accounts) {
            assert_eq!(
                statement.account.id.other.as_ref().unwrap().id,
                account.to_string()
            );
            assert_eq!(statement.sequence, Some(1));
            let [opening, closing] = &statement.balances[..] else {
                panic!("two balances: {statement:?}")
            };
            assert_eq!(opening.kind.code.code, "OPBD");
            assert_eq!(closing.kind.code.code, "CLBD");
            let booked: i64 = statement
                .entries
                .iter()
                .filter(|e| e.status.code == "BOOK")
                .map(|e| signed(&e.amount.value, &e.sign))
                .sum();
            let opening = signed(&opening.amount.value, &opening.sign);
            let closing = signed(&closing.amount.value, &closing.sign);
            assert_eq!(
                opening + booked,
                closing,
                "account {account}: {statement:?}"
            );
            assert_eq!(
                closing,
                node_balance(&address, account),
                "account {account}"
            );
            let summary = &statement.summary.as_ref().unwrap().total;
            assert_eq!(
                summary.count as usize,
                statement
                    .entries
                    .iter()
                    .filter(|e| e.status.code == "BOOK")
                    .count()
            );
            assert_eq!(signed(&summary.net.amount, &summary.net.sign), booked);
        }
        // the day of bank A held a queue, a refund and a gridlock's release
        if accounts[0] == 10 {
            let kinds: Vec<&str> = statements
                .iter()
                .flat_map(|s| s.entries.iter().map(|e| e.code.proprietary.code.as_str()))
                .collect();
            for kind in ["settled", "queued", "refunded", "released"] {
                assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
            }
        }
        // the next statement opens at the closing balance, with no entries
        let next = get(gateway, &format!("/camt.053?account={}", accounts[0]));
        let statement = &next.camt053.as_ref().unwrap().statements[0];
        assert_eq!(statement.sequence, Some(2));
        assert!(statement.entries.is_empty());
        assert_eq!(statement.balances[0].amount, statement.balances[1].amount);
    }

    // HTTP refusals: an unknown path, a wrong method, an unfollowed account, a body over the
    // maximum
    assert_eq!(request(bank_a.addr, "GET", "/nothing", b"").unwrap().0, 404);
    assert_eq!(request(bank_a.addr, "GET", "/", b"").unwrap().0, 405);
    let (status, body) = request(bank_a.addr, "GET", "/camt.053?account=BKBBDEFF", b"").unwrap();
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no account followed is named \"BKBBDEFF\""));
    // statements by day exist only on a network with a business-day calendar
    let (status, body) = request(bank_a.addr, "GET", "/camt.053?date=2026-12-07", b"").unwrap();
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("this network has no business-day calendar"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let mut stream = std::net::TcpStream::connect(bank_a.addr).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let (status, body) = tally_protocol::http::parse_response(&response).unwrap();
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("over the maximum of 1048576 bytes"));

    drop((central, bank_a, bank_b));
}

/// Bank A's gateway keeps its books under `--data-dir`: killed (SIGKILL) between two of its
/// payments, with a payment to bank A settling while it is down, it reloads them when started
/// again and follows on from the last block it booked, so its statement holds each payment
/// once and ends at the node's balance. With its books damaged in the middle it refuses to
/// start, naming the damage.
#[test]
fn the_gateways_books_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (address, _node) = running_network(dir.path());
    let data = dir.path().join("gateway-a");
    let data_arg = data.to_str().unwrap().to_string();
    let more = ["--data-dir", data_arg.as_str()];
    let start_a = || start_gateway_with(dir.path(), &address, "a.key", &["BKAADEFF"], &more);
    let bank_b = start_gateway(dir.path(), &address, "b.key", &["BKBBDEFF"]);
    let opening = node_balance(&address, 10);
    let bank_a = start_a();
    let pay = |gateway: &GatewayProcess, bic: &str, msg: &str, xml: &str| {
        let e2e = format!("E2E-{msg}");
        let id = record_id(bic, msg, &e2e);
        let xml = xml.replace("BKAA-009-0001", msg).replace("E2E-009-1", &e2e);
        settled(
            &single_status(&post(gateway, &xml), msg, "pacs.009.001.08"),
            &e2e,
            id,
        );
        id
    };
    let first = pay(&bank_a, "BKAADEFF", "A-1", &sample("pacs.009"));
    notified(&bank_a, 10, first, "BOOK");
    drop(bank_a);
    let b_to_a = sample("pacs.009")
        .replace(
            "<Dbtr><FinInstnId><BICFI>BKAADEFF",
            "<Dbtr><FinInstnId><BICFI>BKBBDEFF",
        )
        .replace(
            "<Cdtr><FinInstnId><BICFI>BKBBDEFF",
            "<Cdtr><FinInstnId><BICFI>BKAADEFF",
        )
        .replace("250.00", "40.00");
    let paid_in = pay(&bank_b, "BKBBDEFF", "B-1", &b_to_a);
    let bank_a = start_a();
    let second = pay(
        &bank_a,
        "BKAADEFF",
        "A-2",
        &sample("pacs.009").replace("250.00", "10.00"),
    );
    notified(&bank_a, 10, second, "BOOK");
    notified(&bank_a, 10, paid_in, "BOOK");
    let document = get(&bank_a, "/camt.053?account=10");
    let statement = &document.camt053.as_ref().unwrap().statements[0];
    let ids: Vec<&str> = statement
        .entries
        .iter()
        .map(|e| e.servicer_ref.as_str())
        .collect();
    let hex = |id: u128| format!("{id:032x}");
    assert_eq!(ids, [hex(first), hex(paid_in), hex(second)], "each once");
    assert_eq!(
        statement.entries[0].details.tx.refs.end_to_end_id, "E2E-A-1",
        "the ids of what it sent before the restart are kept too"
    );
    let [opening_balance, closing] = &statement.balances[..] else {
        panic!("two balances: {statement:?}")
    };
    let entries: i64 = statement
        .entries
        .iter()
        .map(|e| signed(&e.amount.value, &e.sign))
        .sum();
    let opened = signed(&opening_balance.amount.value, &opening_balance.sign);
    assert_eq!(opened, opening);
    assert_eq!(
        opened + entries,
        signed(&closing.amount.value, &closing.sign)
    );
    assert_eq!(
        signed(&closing.amount.value, &closing.sign),
        node_balance(&address, 10)
    );
    drop(bank_a);

    // the books damaged in the middle: the gateway does not start, and says why
    let path = data.join("books.jnl");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[45] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let genesis = dir.path().join("genesis.toml");
    let key = dir.path().join("a.key");
    let output = tally()
        .args(["gateway", "serve", "--listen", "127.0.0.1:0", "--node"])
        .args([address.as_str(), "--insecure-plaintext", "--genesis"])
        .args([
            genesis.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ])
        .args(["--follow", "BKAADEFF", "--data-dir", &data_arg])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("the entry at offset 32 is damaged (hash mismatch)")
            && said.contains("cannot be reloaded whole"),
        "{said}"
    );
    drop(bank_b);
}

/// POSTs `body` to a gateway over TLS as the holder of `identity`: the status and body.
fn post_tls(addr: SocketAddr, identity: &Path, body: &str) -> std::io::Result<(u16, String)> {
    https(addr, identity, "POST", "/", body)
}

/// One request to a gateway's TLS listener with the hub's certificate.
fn https(
    addr: SocketAddr,
    identity: &Path,
    method: &str,
    target: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let config = tally_pki::Identity::load(identity)
        .unwrap()
        .client_config()
        .unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr)?);
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
        }
        Err(error) => return Err(error),
    }
    let (status, body) = tally_protocol::http::parse_response(&response)?;
    Ok((status, String::from_utf8(body).unwrap()))
}

/// The gateway listener's certificate and the payment hub's, from the bank's own CA in
/// `cluster/bank-ca` (the listener's names 127.0.0.1, where the hub reaches it), both bound to
/// the bank's key `signer`: (listener identity, hub identity).
fn bank_certificates(cluster: &Path, signer: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let bank_ca = cluster.join("bank-ca");
    let ok = |output: std::process::Output| {
        assert!(output.status.success(), "{}", common::text(&output))
    };
    ok(common::run(&[
        "pki",
        "init",
        "--dir",
        bank_ca.to_str().unwrap(),
        "--network-id",
        "1",
    ]));
    let listener = cluster.join("gateway-a.identity");
    let hub = cluster.join("hub.identity");
    for (name, role, hosts, out) in [
        (
            "gateway-a",
            "validator",
            vec!["--host", "127.0.0.1"],
            &listener,
        ),
        ("hub", "bank", vec![], &hub),
    ] {
        let mut args = vec![
            "pki",
            "issue",
            "--ca",
            bank_ca.to_str().unwrap(),
            "--name",
            name,
            "--role",
            role,
            "--signer",
            signer.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(hosts);
        ok(common::run(&args));
    }
    (listener, hub)
}

#[test]
fn the_gateway_serves_its_hub_over_tls_with_the_banks_own_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path();
    let config = common::single_node_cluster(cluster, &["--banks", "2"]);
    // name the two banks by BIC and the currency by its code
    let genesis_path = cluster.join("genesis.toml");
    let genesis = std::fs::read_to_string(&genesis_path)
        .unwrap()
        .replacen("id = 1000\n", "id = 1000\nbic = \"BKAADEFF\"\n", 1)
        .replacen("id = 1001\n", "id = 1001\nbic = \"BKBBDEFF\"\n", 1);
    std::fs::write(
        &genesis_path,
        format!("{genesis}\n[currency]\ncode = \"EUR\"\n"),
    )
    .unwrap();
    let participants = cluster.join("participants");
    let node = common::start_tls_node(&config);
    let (node_child, address) = node.drain_output();
    let _node = KillOnDrop(node_child);
    let (listener, hub) = bank_certificates(cluster, &participants.join("bank-1000.key"));
    let signer = participants.join("bank-1000.key");
    let gateway = spawn_gateway(
        &[
            "--node",
            &address,
            "--identity",
            participants.join("bank-1000.identity").to_str().unwrap(),
            "--listen-identity",
            listener.to_str().unwrap(),
            "--genesis",
            genesis_path.to_str().unwrap(),
            "--key-file",
            participants.join("bank-1000.key").to_str().unwrap(),
            "--follow",
            "BKAADEFF",
        ],
        "https",
    );
    let payment = sample("pacs.009").replace("250.00", "0.01");
    let (status, body) = post_tls(gateway.addr, &hub, &payment).unwrap();
    assert_eq!(status, 200, "{body}");
    let document = OutDocument::from_xml(&body).unwrap();
    let id = record_id("BKAADEFF", "BKAA-009-0001", "E2E-009-1");
    settled(
        &single_status(&document, "BKAA-009-0001", "pacs.009.001.08"),
        "E2E-009-1",
        id,
    );
    // plain HTTP to the TLS listener gets no HTTP answer, nor does a certificate of the
    // network's CA (not the hub's)
    assert!(request(gateway.addr, "POST", "/", payment.as_bytes()).is_err());
    assert!(post_tls(
        gateway.addr,
        &participants.join("bank-1001.identity"),
        &payment
    )
    .is_err());
    // without a listener identity the gateway refuses to start over TLS
    let refused = common::run(&[
        "gateway",
        "serve",
        "--node",
        &address,
        "--identity",
        participants.join("bank-1000.identity").to_str().unwrap(),
        "--genesis",
        genesis_path.to_str().unwrap(),
        "--key-file",
        signer.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(common::text(&refused).contains("the TLS listener needs --listen-identity"));
    drop(gateway);
}

/// A pacs.009 from bank A (BKAADEFF) to bank B (BKBBDEFF), urgent or not, with a value date
/// or none.
fn interbank(
    msg_id: &str,
    e2e: &str,
    amount: &str,
    urgent: bool,
    value_date: Option<&str>,
) -> String {
    let mut xml = sample("pacs.009")
        .replace("BKAA-009-0001", msg_id)
        .replace("E2E-009-1", e2e)
        .replace(">250.00<", &format!(">{amount}<"));
    if !urgent {
        xml = xml.replace(
            "<PmtTpInf>\n        <InstrPrty>HIGH</InstrPrty>\n      </PmtTpInf>\n",
            "",
        );
        assert!(!xml.contains("HIGH"), "the sample's priority left out");
    }
    if let Some(date) = value_date {
        xml = xml.replace(
            "</IntrBkSttlmAmt>",
            &format!("</IntrBkSttlmAmt><IntrBkSttlmDt>{date}</IntrBkSttlmDt>"),
        );
    }
    xml
}

/// A pacs.008 from bank A's own account to merchant `merchant` at bank B, without tax: a
/// customer payment (a merchant is a party), subject to the customer cut-off.
fn customer(msg_id: &str, e2e: &str, merchant: u64) -> String {
    let xml = sample("pacs.008");
    let tax_start = xml.find("<Tax>").unwrap();
    let tax_end = xml.find("</Tax>").unwrap() + "</Tax>".len();
    let xml = format!("{}{}", &xml[..tax_start], &xml[tax_end..]);
    xml.replace("BKAA-008-0001", msg_id)
        .replace("INV-2026-0042", e2e)
        .replace(">119.00<", ">10.00<")
        .replace("<Id>100</Id>", "<Id>1000</Id>")
        .replace("<Id>200</Id>", &format!("<Id>{merchant}</Id>"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sleeps until the wall clock (which the validators' block times follow) is `at_ms`.
fn sleep_until(at_ms: u64) {
    let now = now_ms();
    if at_ms > now {
        std::thread::sleep(std::time::Duration::from_millis(at_ms - now));
    }
}

/// A business day on four validator processes, through bank A's gateway over TLS: before
/// the opening a payment is refused `business_day_closed` and two payments dated today are
/// warehoused (`ACSP`); at the opening both settle (`settled_at_opening`, booked in
/// camt.054); in the day a payment bank A cannot cover queues and a customer payment
/// settles; after the customer cut-off a customer payment is refused `after_cut_off` while
/// an interbank one settles; the end of day rejects the queued payment
/// (`end_of_day_unsettled`, a camt.054 entry that moved nothing) and refuses what comes
/// after; bank A's camt.053 adds up and ends at the node's balance. The calendar is set a
/// few seconds ahead of the wall clock, so the day lasts about a minute.
#[test]
fn a_business_day_runs_through_the_gateway_on_four_validator_processes() {
    const DAY_MS: u64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path();
    let output = common::run(&[
        "cluster",
        "init",
        "--validators",
        "4",
        "--dir",
        cluster.to_str().unwrap(),
        "--base-port",
        "0",
        "--banks",
        "2",
    ]);
    assert!(output.status.success(), "{}", common::text(&output));
    // a day that does not cross midnight UTC
    if now_ms() % DAY_MS > DAY_MS - 120_000 {
        sleep_until(now_ms() - now_ms() % DAY_MS + DAY_MS + 1_000);
    }
    let start = now_ms();
    let (today, since_midnight) = (start / DAY_MS, start % DAY_MS);
    let opening = since_midnight + 20_000;
    let customer_cut_off = opening + 12_000;
    let interbank_cut_off = opening + 24_000;
    let end_of_day = opening + 30_000;
    let midnight = start - since_midnight;
    let genesis_path = cluster.join("genesis.toml");
    let genesis = std::fs::read_to_string(&genesis_path)
        .unwrap()
        .replacen("id = 1000\n", "id = 1000\nbic = \"BKAADEFF\"\n", 1)
        .replacen("id = 1001\n", "id = 1001\nbic = \"BKBBDEFF\"\n", 1);
    let merchant: u64 = genesis
        .split("[[accounts]]")
        .find(|account| account.contains("role = \"merchant\""))
        .and_then(|account| account.lines().find_map(|l| l.strip_prefix("id = ")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(
        &genesis_path,
        format!(
            "{genesis}\n[currency]\ncode = \"EUR\"\n\n[settlement.calendar]\nopening_ms = {opening}\n\
             customer_cut_off_ms = {customer_cut_off}\ninterbank_cut_off_ms = {interbank_cut_off}\n\
             end_of_day_ms = {end_of_day}\n"
        ),
    )
    .unwrap();
    let mut nodes = Vec::new();
    let mut addresses = Vec::new();
    for index in 0..4 {
        let (child, address) =
            common::start_tls_node(&cluster.join(format!("node-{index}.toml"))).drain_output();
        nodes.push(KillOnDrop(child));
        addresses.push(address);
    }
    let participants = cluster.join("participants");
    let bank_key = participants.join("bank-1000.key");
    let bank_identity = participants.join("bank-1000.identity");
    let (listener, hub) = bank_certificates(cluster, &bank_key);
    let mut args = vec![];
    for address in &addresses {
        args.extend(["--node", address.as_str()]);
    }
    let (identity, listen_identity, genesis_arg, key) = (
        bank_identity.to_str().unwrap().to_string(),
        listener.to_str().unwrap().to_string(),
        genesis_path.to_str().unwrap().to_string(),
        bank_key.to_str().unwrap().to_string(),
    );
    args.extend([
        "--identity",
        &identity,
        "--listen-identity",
        &listen_identity,
        "--genesis",
        &genesis_arg,
        "--key-file",
        &key,
        "--follow",
        "BKAADEFF",
    ]);
    let gateway = spawn_gateway(&args, "https");
    let send = |xml: &str| -> OutDocument {
        let (status, body) = post_tls(gateway.addr, &hub, xml).unwrap();
        assert_eq!(status, 200, "{body}");
        OutDocument::from_xml(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    let report = |target: &str| -> OutDocument {
        for _ in 0..600 {
            let (status, body) = https(gateway.addr, &hub, "GET", target, "").unwrap();
            match status {
                200 => return OutDocument::from_xml(&body).unwrap(),
                // the gateway's books are behind the node's balance for a moment
                503 => std::thread::sleep(std::time::Duration::from_millis(100)),
                _ => panic!("{target}: {status} {body}"),
            }
        }
        panic!("{target}: the gateway's books never caught up")
    };
    let node = common::tls_client(&bank_identity, addresses[1].as_str()).unwrap();
    let status_of = |id: u128| node.tx_status(id).unwrap();
    let date = {
        let (y, m, d) = tally_gateway::translate::civil_from_days(today as i64);
        format!("{y:04}-{m:02}-{d:02}")
    };
    assert!(
        now_ms() < midnight + opening,
        "the cluster took too long to start: the day opened already"
    );

    // before the opening: a payment is refused, two dated today are warehoused
    rejected(
        &send(&interbank("A-EARLY", "E-EARLY", "1.00", false, None)),
        "TM01",
        "business_day_closed",
    );
    let normal = record_id("BKAADEFF", "A-W1", "E-W1");
    let urgent = record_id("BKAADEFF", "A-W2", "E-W2");
    for (msg, e2e, amount, high) in [
        ("A-W1", "E-W1", "2.00", false),
        ("A-W2", "E-W2", "3.00", true),
    ] {
        let status = single_status(
            &send(&interbank(msg, e2e, amount, high, Some(&date))),
            msg,
            "pacs.009.001.08",
        );
        assert_eq!(status.status, "ACSP", "{status:?}");
    }
    assert_eq!(status_of(normal).status, "warehoused");
    assert_eq!(status_of(urgent).value_date, Some(today));

    // the opening settles both, booked for bank A
    sleep_until(midnight + opening + 1_000);
    let opened_normal = notified_within(&gateway, &hub, 1000, normal, "BOOK");
    assert_eq!(opened_normal.entries[0].amount.value, "2.00");
    notified_within(&gateway, &hub, 1000, urgent, "BOOK");
    let (normal_status, urgent_status) = (status_of(normal), status_of(urgent));
    assert_eq!(normal_status.status, "settled_at_opening");
    assert_eq!(urgent_status.status, "settled_at_opening");
    assert_eq!(
        normal_status.height, urgent_status.height,
        "the same opening block"
    );
    // an operator's look: the day, its phase and the next boundary
    let status = common::run(&["status", "--node", &addresses[2], "--identity", &identity]);
    let printed = common::text(&status);
    assert!(status.status.success(), "{printed}");
    let day_row = printed
        .lines()
        .find(|line| line.starts_with("business day"))
        .unwrap_or_else(|| panic!("{printed}"));
    // open, or (on a slow machine) already past the customer cut-off
    assert!(
        day_row.contains(&format!(
            "{date} (day {today}), open; next customer_cut_off in "
        )) || day_row.contains(&format!("{date} (day {today}), after_cut_off:customer")),
        "{day_row}"
    );

    // in the day: more than bank A holds queues; a customer payment settles
    let held = node.balance(1000).unwrap().unwrap();
    let too_much = format!("{}.00", held / 100 + 1_000);
    let queued = record_id("BKAADEFF", "A-Q", "E-Q");
    let status = single_status(
        &send(&interbank("A-Q", "E-Q", &too_much, false, None)),
        "A-Q",
        "pacs.009.001.08",
    );
    assert_eq!(status.status, "ACSP", "{status:?}");
    assert_eq!(status_of(queued).status, "queued");
    let paid = record_id("BKAADEFF", "A-C1", "E-C1");
    settled(
        &single_status(
            &send(&customer("A-C1", "E-C1", merchant)),
            "A-C1",
            "pacs.008.001.08",
        ),
        "E-C1",
        paid,
    );

    // after the customer cut-off: customer payments refused, interbank ones settle (urgent:
    // a normal one would queue behind the queued payment, which it may not overtake)
    sleep_until(midnight + customer_cut_off + 1_000);
    rejected(
        &send(&customer("A-C2", "E-C2", merchant)),
        "TM01",
        "after_cut_off",
    );
    let late = record_id("BKAADEFF", "A-I2", "E-I2");
    settled(
        &single_status(
            &send(&interbank("A-I2", "E-I2", "4.00", true, None)),
            "A-I2",
            "pacs.009.001.08",
        ),
        "E-I2",
        late,
    );

    // the end of day rejects the queued payment; what comes after is refused
    sleep_until(midnight + end_of_day + 1_000);
    let mut rejected_at_end = None;
    for _ in 0..100 {
        let status = status_of(queued);
        if status.status != "queued" {
            rejected_at_end = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rejected_at_end = rejected_at_end.expect("the end of day rejects the queue");
    assert_eq!(rejected_at_end.status, "end_of_day_unsettled");
    notified_within(&gateway, &hub, 1000, queued, "INFO");
    rejected(
        &send(&interbank("A-LATE", "E-LATE", "1.00", false, None)),
        "TM01",
        "business_day_closed",
    );

    // bank A's statement of the day, made at the end of day without being asked for (the
    // hub fetches it by date, or by sequence number as it fetches camt.054s): opening plus
    // entries is closing, the node's balance
    let day_statement = || {
        for _ in 0..300 {
            let document = report(&format!("/camt.053?date={date}&account=BKAADEFF"));
            let statements = document.camt053.expect("a camt.053").statements;
            if let Some(statement) = statements.into_iter().next() {
                return statement;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no statement of {date}")
    };
    let statement = &day_statement();
    assert_eq!(statement.id, format!("1000-{date}"));
    let made: Vec<String> = report("/camt.053?from=0")
        .camt053
        .unwrap()
        .statements
        .into_iter()
        .map(|statement| statement.id)
        .collect();
    assert_eq!(
        made,
        std::slice::from_ref(&statement.id),
        "the day's one statement"
    );
    // a day that is no date is refused, naming the form
    let (status, body) = https(gateway.addr, &hub, "GET", "/camt.053?date=2026-13-01", "").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("date=2026-13-01 is not a date (YYYY-MM-DD)"),
        "{body}"
    );
    let balance = |code: &str| {
        let found = statement
            .balances
            .iter()
            .find(|b| b.kind.code.code == code)
            .unwrap_or_else(|| panic!("no {code} balance"));
        signed(&found.amount.value, &found.sign)
    };
    let entries: i64 = statement
        .entries
        .iter()
        .filter(|e| e.status.code == "BOOK")
        .map(|e| signed(&e.amount.value, &e.sign))
        .sum();
    assert_eq!(balance("OPBD") + entries, balance("CLBD"));
    assert_eq!(balance("CLBD"), node.balance(1000).unwrap().unwrap());
    let booked: Vec<&str> = statement
        .entries
        .iter()
        .filter(|e| e.status.code == "BOOK")
        .map(|e| e.amount.value.as_str())
        .collect();
    for amount in ["2.00", "3.00", "10.00", "4.00"] {
        assert!(booked.contains(&amount), "{amount} booked: {booked:?}");
    }
    drop(gateway);
    drop(nodes);
}

/// As [`notified`], over the TLS listener with the hub's certificate.
fn notified_within(
    gateway: &GatewayProcess,
    hub: &Path,
    account: u64,
    id: u128,
    status: &str,
) -> AccountEntries {
    let fetch = || {
        let (code, body) = https(gateway.addr, hub, "GET", "/camt.054?from=0", "").unwrap();
        assert_eq!(code, 200, "{body}");
        OutDocument::from_xml(&body).unwrap()
    };
    await_notification(fetch, account, id, status)
}
