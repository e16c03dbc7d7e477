//! Drives a node with pre-signed transactions, open loop at a fixed rate or closed loop as
//! fast as the node takes them, and measures latency from each transaction's intended send
//! time to its acknowledgement.

use crate::report::Counts;
use crossbeam::channel::{unbounded, RecvTimeoutError};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_engine::mempool::Ack;
use tally_engine::node::{NodeHandle, SubmitError};
use tally_engine::tx::TxRecord;

/// How to drive the node.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Open loop at this many transactions per second; `None` is closed loop (as fast as the
    /// node takes them, with at most `in_flight_tx_max` unacknowledged).
    pub rate_per_s: Option<f64>,
    /// Stop sending after this long (or when the transactions run out).
    pub duration: Duration,
    /// Most transactions in one submit call.
    pub submit_batch_tx_max: usize,
    /// Closed loop: most transactions sent and not yet acknowledged.
    pub in_flight_tx_max: usize,
    /// How long to wait for the last acknowledgements after sending stops.
    pub drain_timeout: Duration,
    pub progress: bool,
    /// Append one line `id code height` per acknowledgement to this file, flushed at least
    /// every few milliseconds (crash tests read it to know what the node acknowledged).
    pub ack_log: Option<std::path::PathBuf>,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            rate_per_s: None,
            duration: Duration::from_secs(10),
            submit_batch_tx_max: 1024,
            in_flight_tx_max: 131_072,
            drain_timeout: Duration::from_secs(30),
            progress: false,
            ack_log: None,
        }
    }
}

/// What a run measured.
pub struct RunResult {
    /// Latency in microseconds from intended send to acknowledgement.
    pub latency_us: Histogram<u64>,
    pub counts: Counts,
    pub sent: u64,
    pub acknowledged: u64,
    /// Submit calls answered `Busy` (the rest of the batch was retried).
    pub busy_answers: u64,
    /// From the first intended send to the last acknowledgement.
    pub elapsed: Duration,
    /// Why sending stopped early, if the node stopped.
    pub stopped: Option<String>,
}

impl RunResult {
    /// Acknowledged transactions per second over the run.
    pub fn throughput_per_s(&self) -> f64 {
        self.acknowledged as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sends `txs` (ids `id_base + 1 ..= id_base + txs.len()`, in order) to the node.
///
/// Panics if the ack log cannot be created or written: a crash test without its record of
/// acknowledgements would prove nothing.
pub fn run(handle: &NodeHandle, txs: &[TxRecord], id_base: u128, config: &RunConfig) -> RunResult {
    assert!(config.submit_batch_tx_max > 0 && config.in_flight_tx_max > 0);
    let mut ack_log = config.ack_log.as_ref().map(|path| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open ack log {}: {e}", path.display()));
        std::io::BufWriter::new(file)
    });
    let start = Instant::now();
    let send_ns: Arc<Vec<AtomicU64>> =
        Arc::new((0..txs.len()).map(|_| AtomicU64::new(0)).collect());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let sending_done = Arc::new(AtomicBool::new(false));
    let (reply, acks) = unbounded::<Ack>();
    let receiver = {
        let send_ns = Arc::clone(&send_ns);
        let acknowledged = Arc::clone(&acknowledged);
        let sending_done = Arc::clone(&sending_done);
        std::thread::Builder::new()
            .name("loadgen-acks".into())
            .spawn(move || {
                let mut latency_us = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("valid histogram bounds");
                let mut counts = Counts::default();
                let mut last_ack = start;
                let mut last_flush = start;
                loop {
                    if let Some(log) = ack_log.as_mut() {
                        if last_flush.elapsed() >= Duration::from_millis(5) {
                            log.flush().expect("write the ack log");
                            last_flush = Instant::now();
                        }
                    }
                    let ack = match acks.recv_timeout(Duration::from_millis(5)) {
                        Ok(ack) => ack,
                        Err(RecvTimeoutError::Timeout) if sending_done.load(Ordering::Acquire) => {
                            break
                        }
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    if let Some(log) = ack_log.as_mut() {
                        let height = ack.height.map_or(-1, |h| h as i128);
                        writeln!(log, "{} {} {height}", ack.id, ack.code as u8)
                            .expect("write the ack log");
                    }
                    let now = Instant::now();
                    last_ack = now;
                    let slot = ack.id.wrapping_sub(id_base + 1) as usize;
                    if let Some(sent) = send_ns.get(slot) {
                        let sent_ns = sent.load(Ordering::Acquire);
                        let latency_ns = (now - start).as_nanos() as u64
                            - sent_ns.min((now - start).as_nanos() as u64);
                        latency_us.saturating_record((latency_ns / 1_000).max(1));
                    }
                    counts.add(ack.code);
                    acknowledged.fetch_add(1, Ordering::Release);
                }
                if let Some(log) = ack_log.as_mut() {
                    log.flush().expect("write the ack log");
                }
                (latency_us, counts, last_ack)
            })
            .expect("start the acknowledgement thread")
    };

    let progress = if config.progress {
        let bar = ProgressBar::new(config.duration.as_secs().max(1));
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut next = 0usize;
    let mut busy_answers = 0u64;
    let mut stopped = None;
    let mut last_progress = start;
    let mut last_acked = 0u64;
    while next < txs.len() {
        let elapsed = start.elapsed();
        if elapsed >= config.duration {
            break;
        }
        let due = match config.rate_per_s {
            Some(rate) => ((elapsed.as_secs_f64() * rate) as usize + 1).min(txs.len()),
            None => {
                let in_flight = next as u64 - acknowledged.load(Ordering::Acquire);
                let room = (config.in_flight_tx_max as u64).saturating_sub(in_flight) as usize;
                (next + room).min(txs.len())
            }
        };
        if due <= next {
            std::thread::sleep(Duration::from_micros(50));
        }
        while next < due {
            let end = (next + config.submit_batch_tx_max).min(due);
            for (slot, sent) in send_ns[next..end].iter().enumerate() {
                let intended_ns = match config.rate_per_s {
                    Some(rate) => ((next + slot) as f64 / rate * 1e9) as u64,
                    None => start.elapsed().as_nanos() as u64,
                };
                sent.store(intended_ns, Ordering::Release);
            }
            match handle.submit(&txs[next..end], &reply) {
                Ok(taken) => next += taken,
                Err(SubmitError::Busy { accepted }) => {
                    next += accepted;
                    busy_answers += 1;
                    std::thread::sleep(Duration::from_micros(200));
                    break;
                }
                Err(SubmitError::Stopped { reason }) => {
                    stopped = Some(reason);
                    break;
                }
            }
        }
        if stopped.is_some() {
            break;
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            let acked = acknowledged.load(Ordering::Acquire);
            let rate = (acked - last_acked) as f64 / last_progress.elapsed().as_secs_f64();
            progress.set_position(start.elapsed().as_secs());
            progress.set_message(format!("{acked} acknowledged, {rate:.0} tx/s"));
            last_progress = Instant::now();
            last_acked = acked;
        }
    }
    progress.finish_and_clear();
    let sent = next as u64;
    drop(reply);
    let drain_until = Instant::now() + config.drain_timeout;
    while acknowledged.load(Ordering::Acquire) < sent && Instant::now() < drain_until {
        if stopped.is_none() {
            stopped = handle.fatal_error();
        }
        if stopped.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The node holds reply senders until it acknowledges: tell the receiver to stop once
    // the channel is quiet instead of waiting for every sender to go.
    sending_done.store(true, Ordering::Release);
    let (latency_us, counts, last_ack) = receiver.join().expect("acknowledgement thread");
    let acknowledged_now = acknowledged.load(Ordering::Acquire);
    RunResult {
        latency_us,
        counts,
        sent,
        acknowledged: acknowledged_now,
        busy_answers,
        elapsed: last_ack
            .saturating_duration_since(start)
            .max(Duration::from_micros(1)),
        stopped,
    }
}
