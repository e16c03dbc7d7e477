//! `tally gateway bench`: the gateway against direct record submission to the same node, in
//! the same run. Each way sends the same number of bank-to-bank payments of one minor unit,
//! `concurrency` at a time (each sender waits for its payment's result before the next):
//! directly, signed records over the client library; through the gateway, pacs.009 documents
//! POSTed to a gateway on loopback that answers each with its pacs.002 once settled. The
//! figures: messages per second and the latency percentiles of each way, and the latency the
//! gateway adds (its median less the direct median).

use crate::server::{self, Server, ServerLimits};
use crate::service::Gateway;
use crate::translate::Directory;
use ed25519_zebra::SigningKey;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tally_protocol::client::{submit_and_wait, ClientOptions};
use tally_protocol::genesis::Genesis;
use tally_protocol::operator;
use tally_protocol::result::ResultCode;
use tally_protocol::tx::{TxFields, TxRecord};

/// What to measure.
pub struct BenchSpec {
    pub gateway: Arc<Gateway>,
    pub genesis: Genesis,
    /// The paying bank's key.
    pub key: SigningKey,
    pub nodes: Vec<String>,
    pub options: ClientOptions,
    pub from_bic: String,
    pub to_bic: String,
    pub messages: usize,
    pub concurrency: usize,
}

/// One way's figures.
#[derive(Clone, Debug)]
pub struct Way {
    pub messages: usize,
    pub seconds: f64,
    pub settled: usize,
    /// Latency percentiles (µs): 50, 90, 99, max.
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Way {
    fn of(mut latencies: Vec<u64>, seconds: f64, settled: usize) -> Way {
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        Way {
            messages: latencies.len(),
            seconds,
            settled,
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            max_us: at(1.0),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Both ways, same run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub concurrency: usize,
    pub direct: Way,
    pub gateway: Way,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "way", "messages", "settled", "msg/s", "p50 µs", "p90 µs", "p99 µs", "max µs"
        )?;
        for (name, way) in [("direct", &self.direct), ("gateway", &self.gateway)] {
            writeln!(
                f,
                "{:<8} {:>8} {:>8} {:>10.0} {:>9} {:>9} {:>9} {:>9}",
                name,
                way.messages,
                way.settled,
                way.per_second(),
                way.p50_us,
                way.p90_us,
                way.p99_us,
                way.max_us
            )?;
        }
        write!(
            f,
            "concurrency {}; the gateway adds {} µs at the median, {} µs at p99",
            self.concurrency,
            self.gateway.p50_us as i64 - self.direct.p50_us as i64,
            self.gateway.p99_us as i64 - self.direct.p99_us as i64
        )
    }
}

/// A pacs.009 of one minor unit from `from` to `to` with message id `msg_id`.
pub fn pacs009(directory: &Directory, msg_id: &str, from: &str, to: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08">
<FICdtTrf><GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>{now}</CreDtTm><NbOfTxs>1</NbOfTxs><SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>
<CdtTrfTxInf><PmtId><EndToEndId>{msg_id}</EndToEndId></PmtId><IntrBkSttlmAmt Ccy="{ccy}">{amount}</IntrBkSttlmAmt>
<Dbtr><FinInstnId><BICFI>{from}</BICFI></FinInstnId></Dbtr><Cdtr><FinInstnId><BICFI>{to}</BICFI></FinInstnId></Cdtr></CdtTrfTxInf></FICdtTrf>
</Document>
"#,
        now = crate::service::iso_now(),
        ccy = directory.currency.code,
        amount = directory.format(1),
    )
}

/// Runs both ways and reports them.
pub fn run(spec: &BenchSpec) -> Result<BenchReport, String> {
    let directory = Directory::of(&spec.genesis)?;
    let from = directory.account_of(&spec.from_bic).map_err(|r| r.info)?;
    let to = directory.account_of(&spec.to_bic).map_err(|r| r.info)?;
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let per_sender = spec.messages.div_ceil(spec.concurrency);
    let hash = spec.genesis.hash();
    let window = spec.genesis.settlement.validity_window_ms;

    // direct: signed records over the client library
    let started = Instant::now();
    let results: Vec<Result<(Vec<u64>, usize), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..spec.concurrency)
            .map(|sender| {
                let directory = &directory;
                scope.spawn(move || {
                    let connected = operator::connect_any(&spec.nodes, &spec.options, Some(&hash))
                        .map_err(|e| e.to_string())?;
                    let mut latencies = Vec::with_capacity(per_sender);
                    let mut settled = 0;
                    for n in 0..per_sender {
                        let id = crate::translate::record_id(
                            &spec.from_bic,
                            &format!("bench-direct-{run_id}-{sender}"),
                            &n.to_string(),
                        );
                        let begun = Instant::now();
                        let now_ms = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64);
                        let fields = TxFields::transfer(id, from, to, 1, directory.ledger)
                            .valid_until(now_ms / 1000 * 1000 + window / 2);
                        let record = TxRecord::signed(&fields, directory.network_id, &spec.key);
                        let (acks, _) =
                            submit_and_wait(&connected.client, &[record], Duration::from_secs(60))
                                .map_err(|e| e.to_string())?;
                        latencies.push(begun.elapsed().as_micros() as u64);
                        if acks.first().is_some_and(|ack| ack.code == ResultCode::Ok) {
                            settled += 1;
                        }
                    }
                    Ok((latencies, settled))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sender"))
            .collect()
    });
    let direct_seconds = started.elapsed().as_secs_f64();
    let (mut direct, mut direct_settled) = (Vec::new(), 0);
    for result in results {
        let (latencies, settled) = result?;
        direct.extend(latencies);
        direct_settled += settled;
    }

    // through the gateway: pacs.009 documents over HTTP on loopback
    let server = Server::start(
        Arc::clone(&spec.gateway),
        "127.0.0.1:0".parse().expect("an address"),
        None,
        ServerLimits {
            connections_max: spec.concurrency * 2 + 4,
            ..ServerLimits::default()
        },
    )
    .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = server.local_addr();
    let started = Instant::now();
    let results: Vec<Result<(Vec<u64>, usize), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..spec.concurrency)
            .map(|sender| {
                let directory = &directory;
                scope.spawn(move || {
                    let mut latencies = Vec::with_capacity(per_sender);
                    let mut settled = 0;
                    for n in 0..per_sender {
                        let msg_id = format!("B{}-{sender}-{n}", run_id % 1_000_000_000);
                        let document = pacs009(directory, &msg_id, &spec.from_bic, &spec.to_bic);
                        let begun = Instant::now();
                        let (status, body) =
                            server::request(addr, "POST", "/", document.as_bytes())
                                .map_err(|e| e.to_string())?;
                        latencies.push(begun.elapsed().as_micros() as u64);
                        if status == 200
                            && String::from_utf8_lossy(&body).contains("<TxSts>ACSC</TxSts>")
                        {
                            settled += 1;
                        }
                    }
                    Ok((latencies, settled))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sender"))
            .collect()
    });
    let gateway_seconds = started.elapsed().as_secs_f64();
    drop(server);
    let (mut through, mut through_settled) = (Vec::new(), 0);
    for result in results {
        let (latencies, settled) = result?;
        through.extend(latencies);
        through_settled += settled;
    }
    Ok(BenchReport {
        concurrency: spec.concurrency,
        direct: Way::of(direct, direct_seconds, direct_settled),
        gateway: Way::of(through, gateway_seconds, through_settled),
    })
}
