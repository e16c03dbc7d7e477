//! Drives a target with transactions signed up front or while the run goes, open loop
//! (constant or Poisson rate) or closed loop, and measures latency from each transaction's
//! intended send time to its acknowledgement.
//!
//! One sender thread paces submissions; one receiver thread takes acknowledgements, records
//! latencies in an HDR histogram and builds the timeline (per-interval throughput, latency
//! and result codes) that the reports plot. Transactions whose intended send time falls in
//! the warm-up are sent and counted but kept out of the latency figures.

use crate::pacing::Pacing;
use crate::report::Counts;
use crate::target::Target;
use crossbeam::channel::{unbounded, Receiver, RecvTimeoutError, TryRecvError};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tally_protocol::submit::Ack;
use tally_protocol::submit::SubmitError;
use tally_protocol::tx::TxRecord;

/// Highest latency the histograms hold, in microseconds (one hour).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// How to drive the target.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub pacing: Pacing,
    /// Stop sending after this long (or when the transactions run out).
    pub duration: Duration,
    /// Transactions meant to be sent in this first part of the run are kept out of the
    /// latency figures (they still count as sent and acknowledged).
    pub warmup: Duration,
    /// Most transactions in one submit call.
    pub submit_batch_tx_max: usize,
    /// How long to wait for the last acknowledgements after sending stops.
    pub drain_timeout: Duration,
    /// Width of one timeline interval.
    pub interval: Duration,
    pub progress: bool,
    /// Append one line `id code height` per acknowledgement to this file, flushed at least
    /// every few milliseconds (crash tests read it to know what the node acknowledged).
    pub ack_log: Option<std::path::PathBuf>,
}

impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            pacing: Pacing::Closed {
                in_flight_tx_max: 131_072,
            },
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            submit_batch_tx_max: 1024,
            drain_timeout: Duration::from_secs(30),
            interval: Duration::from_secs(1),
            progress: false,
            ack_log: None,
        }
    }
}

/// What happened in one interval of the run (by acknowledgement time).
#[derive(Clone, Debug)]
pub struct Interval {
    /// Seconds from the start of the run to the start of the interval.
    pub start_s: f64,
    pub length_s: f64,
    pub acknowledged: u64,
    pub counts: Counts,
    /// Latencies (microseconds) of the acknowledgements in this interval, warm-up excluded.
    pub latency_us: Histogram<u64>,
}

/// What a run measured.
pub struct RunResult {
    pub pacing: Pacing,
    pub warmup: Duration,
    pub target: String,
    /// Wall-clock time of the start of the run (the HdrHistogram log's StartTime).
    pub started_at: std::time::SystemTime,
    /// Latency in microseconds from intended send to acknowledgement, warm-up excluded.
    pub latency_us: Histogram<u64>,
    pub counts: Counts,
    pub sent: u64,
    pub acknowledged: u64,
    /// Submit calls answered `Busy` (the rest of the batch was retried).
    pub busy_answers: u64,
    /// From the first intended send to the last acknowledgement.
    pub elapsed: Duration,
    /// Why sending stopped early, if the target stopped.
    pub stopped: Option<String>,
    pub timeline: Vec<Interval>,
    /// What each node of the target took and answered.
    pub nodes: Vec<NodeFigures>,
    /// The least share of `ok` the workload promises (set by the session that knows the
    /// workload); a run below it is reported loudly.
    pub ok_share_min: Option<f64>,
    /// Records sent again to another node after theirs was lost (remote targets).
    pub failed_over: u64,
    /// Nodes lost during the run: "address: why", in order (remote targets).
    pub lost: Vec<String>,
    /// Time the sender waited for records that were due but not yet signed: the load
    /// generator's own limit, not the target's.
    pub signing_stalled: Duration,
}

/// What one node of the target took and answered.
#[derive(Clone, Debug)]
pub struct NodeFigures {
    pub name: String,
    /// Records the node took.
    pub sent: u64,
    pub acknowledged: u64,
    pub ok: u64,
    /// Latencies (microseconds) of its acknowledgements, warm-up excluded.
    pub latency_us: Histogram<u64>,
}

impl RunResult {
    /// Share of acknowledgements that are `ok` (1 when nothing was acknowledged).
    pub fn ok_share(&self) -> f64 {
        ok_share(&self.counts)
    }

    /// Whether the load generator's own signing held sending back for more than 1% of the
    /// run.
    pub fn signing_limited(&self) -> bool {
        self.signing_stalled.as_secs_f64() > 0.01 * self.elapsed.as_secs_f64()
    }

    /// Whether the `ok` share fell below what the workload promises.
    pub fn ok_share_below_promise(&self) -> bool {
        self.ok_share_min
            .is_some_and(|min| self.acknowledged > 0 && self.ok_share() < min)
    }

    /// Acknowledged transactions per second over the run.
    pub fn throughput_per_s(&self) -> f64 {
        self.acknowledged as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a run sends.
pub enum Records<'a> {
    /// Every record, signed before the clock started (generated, or a recording).
    All(&'a [TxRecord]),
    /// `total` records with consecutive ids from `first_id`, signed while the run goes, in
    /// chunks a signer sends just ahead of when they are needed (the channel's capacity
    /// bounds how far ahead).
    Stream {
        first_id: u128,
        total: usize,
        chunks: Receiver<Vec<TxRecord>>,
    },
}

impl Records<'_> {
    fn total(&self) -> usize {
        match self {
            Records::All(records) => records.len(),
            Records::Stream { total, .. } => *total,
        }
    }
}

/// Where the sender takes its records from, by position.
struct Feed<'a> {
    records: Records<'a>,
    chunk: Vec<TxRecord>,
    chunk_start: usize,
    /// Time the sender waited for records that were due but not signed yet.
    stalled: Duration,
}

impl Feed<'_> {
    /// Records from `from` up to `to` (fewer at a chunk's end); `None` when the records ran
    /// out (a signer that stopped) or `deadline` passed while waiting for them.
    fn slice(&mut self, from: usize, to: usize, deadline: Instant) -> Option<&[TxRecord]> {
        match &self.records {
            Records::All(records) => return Some(&records[from..to.min(records.len())]),
            Records::Stream { chunks, .. } => {
                while from >= self.chunk_start + self.chunk.len() {
                    let next = match chunks.try_recv() {
                        Ok(chunk) => chunk,
                        Err(TryRecvError::Disconnected) => return None,
                        Err(TryRecvError::Empty) => {
                            let waited = Instant::now();
                            let chunk = loop {
                                match chunks.recv_timeout(Duration::from_millis(10)) {
                                    Ok(chunk) => break Some(chunk),
                                    Err(RecvTimeoutError::Disconnected) => break None,
                                    Err(RecvTimeoutError::Timeout)
                                        if Instant::now() >= deadline =>
                                    {
                                        break None
                                    }
                                    Err(RecvTimeoutError::Timeout) => {}
                                }
                            };
                            self.stalled += waited.elapsed();
                            chunk?
                        }
                    };
                    self.chunk_start += self.chunk.len();
                    self.chunk = next;
                }
            }
        }
        let offset = from - self.chunk_start;
        let end = (to - self.chunk_start).min(self.chunk.len());
        Some(&self.chunk[offset..end])
    }
}

/// Most positions whose send time and node the run remembers at once: a record answered
/// after this many later ones were sent has no latency (only a node stalled for millions of
/// records gets there).
const SLOTS_MAX: usize = 1 << 22;

/// Per-position send time and node, in a ring indexed by position.
struct Slots {
    mask: usize,
    tag: Vec<AtomicU64>,
    send_ns: Vec<AtomicU64>,
    node: Vec<AtomicU8>,
}

impl Slots {
    fn new(total: usize) -> Slots {
        let capacity = total.clamp(1, SLOTS_MAX).next_power_of_two();
        Slots {
            mask: capacity - 1,
            tag: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            send_ns: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            node: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    fn set_send(&self, position: usize, ns: u64) {
        let slot = position & self.mask;
        self.send_ns[slot].store(ns, Ordering::Relaxed);
        self.tag[slot].store(position as u64 + 1, Ordering::Release);
    }

    fn set_node(&self, position: usize, node: u8) {
        self.node[position & self.mask].store(node, Ordering::Release);
    }

    /// (intended send time, node) of `position`, unless its slot was reused since.
    fn get(&self, position: usize) -> Option<(u64, u8)> {
        let slot = position & self.mask;
        (self.tag[slot].load(Ordering::Acquire) == position as u64 + 1).then(|| {
            (
                self.send_ns[slot].load(Ordering::Relaxed),
                self.node[slot].load(Ordering::Acquire),
            )
        })
    }
}

/// Finds a transaction's position from its id: arithmetic when the ids are consecutive (as
/// generated workloads are), a map otherwise (recorded or hand-made workloads).
enum IdIndex {
    Consecutive { first: u128, count: usize },
    Map(HashMap<u128, usize>),
}

impl IdIndex {
    fn new(txs: &[TxRecord]) -> IdIndex {
        let first = txs.first().map_or(0, TxRecord::id);
        let consecutive = txs
            .iter()
            .enumerate()
            .all(|(slot, tx)| tx.id() == first.wrapping_add(slot as u128));
        if consecutive {
            IdIndex::Consecutive {
                first,
                count: txs.len(),
            }
        } else {
            IdIndex::Map(
                txs.iter()
                    .enumerate()
                    .map(|(slot, tx)| (tx.id(), slot))
                    .collect(),
            )
        }
    }

    fn slot(&self, id: u128) -> Option<usize> {
        match self {
            IdIndex::Consecutive { first, count } => {
                let slot = id.wrapping_sub(*first);
                (slot < *count as u128).then_some(slot as usize)
            }
            IdIndex::Map(map) => map.get(&id).copied(),
        }
    }
}

/// Share of `counts` that are `ok` (1 when empty).
pub fn ok_share(counts: &Counts) -> f64 {
    let total = counts.total();
    if total == 0 {
        return 1.0;
    }
    counts.get(tally_protocol::result::ResultCode::Ok) as f64 / total as f64
}

/// How often the sender asks the target whether it stopped while it waits.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Most nodes the per-node figures tell apart (the rest count with the last).
const NODES_MAX: usize = 255;

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// Live figures the receiver publishes for the progress bar.
#[derive(Default)]
struct Live {
    acknowledged: AtomicU64,
    last_interval_p99_us: AtomicU64,
}

/// Sends `txs` in order to `target` and measures what comes back.
///
/// Panics if the ack log cannot be created or written: a crash test without its record of
/// acknowledgements would prove nothing.
pub fn run(target: &dyn Target, txs: &[TxRecord], config: &RunConfig) -> RunResult {
    run_records(target, Records::All(txs), config)
}

/// [`run`] over records signed before the clock started or signed while it runs.
pub fn run_records(target: &dyn Target, records: Records<'_>, config: &RunConfig) -> RunResult {
    assert!(config.submit_batch_tx_max > 0);
    assert!(
        !config.interval.is_zero(),
        "the timeline interval must be positive"
    );
    if let Pacing::Closed { in_flight_tx_max } = config.pacing {
        assert!(in_flight_tx_max > 0);
    }
    let mut ack_log = config.ack_log.as_ref().map(|path| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open ack log {}: {e}", path.display()));
        std::io::BufWriter::new(file)
    });
    let total = records.total();
    let index = match &records {
        Records::All(txs) => IdIndex::new(txs),
        Records::Stream {
            first_id, total, ..
        } => IdIndex::Consecutive {
            first: *first_id,
            count: *total,
        },
    };
    let slots = Slots::new(total);
    let node_names = target.nodes();
    let node_count = node_names.len().clamp(1, NODES_MAX);
    let started_at = std::time::SystemTime::now();
    let start = Instant::now();
    let live = Live::default();
    let sending_done = AtomicBool::new(false);
    let warmup_ns = config.warmup.as_nanos() as u64;
    let interval_ns = config.interval.as_nanos() as u64;
    let (reply, acks) = unbounded::<Ack>();

    std::thread::scope(|scope| {
        let receiver = std::thread::Builder::new()
            .name("loadgen-acks".into())
            .spawn_scoped(scope, || {
                let mut latency_us = new_histogram();
                let mut counts = Counts::default();
                let mut timeline: Vec<Interval> = Vec::new();
                let mut per_node: Vec<(u64, u64, Histogram<u64>)> =
                    (0..node_count).map(|_| (0, 0, new_histogram())).collect();
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
                    let now_ns = (now - start).as_nanos() as u64;
                    let bucket = (now_ns / interval_ns) as usize;
                    while timeline.len() <= bucket {
                        if let Some(done) = timeline.last() {
                            live.last_interval_p99_us
                                .store(done.latency_us.value_at_quantile(0.99), Ordering::Relaxed);
                        }
                        timeline.push(Interval {
                            start_s: (timeline.len() as u64 * interval_ns) as f64 / 1e9,
                            length_s: interval_ns as f64 / 1e9,
                            acknowledged: 0,
                            counts: Counts::default(),
                            latency_us: new_histogram(),
                        });
                    }
                    let interval = &mut timeline[bucket];
                    if let Some((sent_ns, node)) = index.slot(ack.id).and_then(|p| slots.get(p)) {
                        let node = &mut per_node[(node as usize).min(node_count - 1)];
                        node.0 += 1;
                        if ack.code == tally_protocol::result::ResultCode::Ok {
                            node.1 += 1;
                        }
                        if sent_ns >= warmup_ns {
                            let latency = (now_ns.saturating_sub(sent_ns) / 1_000).max(1);
                            latency_us.saturating_record(latency);
                            interval.latency_us.saturating_record(latency);
                            node.2.saturating_record(latency);
                        }
                    }
                    interval.acknowledged += 1;
                    interval.counts.add(ack.code);
                    counts.add(ack.code);
                    live.acknowledged.fetch_add(1, Ordering::Release);
                }
                if let Some(log) = ack_log.as_mut() {
                    log.flush().expect("write the ack log");
                }
                (latency_us, counts, timeline, last_ack, per_node)
            })
            .expect("start the acknowledgement thread");

        let mut feed = Feed {
            records,
            chunk: Vec::new(),
            chunk_start: 0,
            stalled: Duration::ZERO,
        };
        let (sent, busy_answers, mut stopped, sent_by_node) = send(
            target, &mut feed, total, config, &slots, &live, start, reply,
        );
        let signing_stalled = feed.stalled;
        drop(feed);
        let drain_until = Instant::now() + config.drain_timeout;
        while live.acknowledged.load(Ordering::Acquire) < sent && Instant::now() < drain_until {
            if stopped.is_none() {
                stopped = target.fatal_error();
            }
            if stopped.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // The target holds reply senders until it acknowledges: tell the receiver to stop
        // once the channel is quiet instead of waiting for every sender to go.
        sending_done.store(true, Ordering::Release);
        let (latency_us, counts, timeline, last_ack, per_node) =
            receiver.join().expect("acknowledgement thread");
        let nodes = per_node
            .into_iter()
            .enumerate()
            .map(|(i, (acknowledged, ok, latency_us))| NodeFigures {
                name: node_names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("node {i}")),
                sent: sent_by_node.get(i).copied().unwrap_or(0),
                acknowledged,
                ok,
                latency_us,
            })
            .collect();
        RunResult {
            pacing: config.pacing,
            warmup: config.warmup,
            target: target.describe(),
            started_at,
            latency_us,
            counts,
            sent,
            acknowledged: live.acknowledged.load(Ordering::Acquire),
            busy_answers,
            elapsed: last_ack
                .saturating_duration_since(start)
                .max(Duration::from_micros(1)),
            stopped,
            timeline,
            nodes,
            ok_share_min: None,
            failed_over: target.failed_over(),
            lost: target.lost(),
            signing_stalled,
        }
    })
}

/// The sender loop: returns (sent, busy answers, why the target stopped, taken by each
/// node).
#[allow(clippy::too_many_arguments)]
fn send(
    target: &dyn Target,
    feed: &mut Feed<'_>,
    total: usize,
    config: &RunConfig,
    slots: &Slots,
    live: &Live,
    start: Instant,
    reply: crossbeam::channel::Sender<Ack>,
) -> (u64, u64, Option<String>, Vec<u64>) {
    let mut sent_by_node = vec![0u64; NODES_MAX];
    let mut last_stop_check = start;
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
    let mut times = config.pacing.times();
    // Open loop: positions before `scheduled` have their intended send time in `slots`;
    // `upcoming` is the next one's.
    let mut scheduled = 0usize;
    let mut upcoming = times.as_mut().and_then(Iterator::next);
    let deadline = start + config.duration;
    let mut ran_out = false;
    while next < total && !ran_out {
        let elapsed = start.elapsed();
        if elapsed >= config.duration {
            break;
        }
        let elapsed_ns = elapsed.as_nanos() as u64;
        let due = match (times.as_mut(), config.pacing) {
            (Some(times), _) => {
                while let Some(at) = upcoming.filter(|&at| at <= elapsed_ns && scheduled < total) {
                    slots.set_send(scheduled, at);
                    scheduled += 1;
                    upcoming = times.next();
                }
                scheduled
            }
            (None, Pacing::Closed { in_flight_tx_max }) => {
                let in_flight = next as u64 - live.acknowledged.load(Ordering::Acquire);
                let room = (in_flight_tx_max as u64).saturating_sub(in_flight) as usize;
                (next + room).min(total)
            }
            (None, _) => unreachable!("open-loop pacing always has send times"),
        };
        if due <= next {
            // Waiting (for room in the window, or for the next send time): a target that
            // stopped answering ends the run instead of leaving it waiting to the end.
            if last_stop_check.elapsed() >= STOP_CHECK {
                last_stop_check = Instant::now();
                if let Some(reason) = target.fatal_error() {
                    stopped = Some(reason);
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        while next < due {
            let Some(batch) =
                feed.slice(next, (next + config.submit_batch_tx_max).min(due), deadline)
            else {
                ran_out = true;
                break;
            };
            let end = next + batch.len();
            if times.is_none() {
                let now_ns = start.elapsed().as_nanos() as u64;
                for position in next..end {
                    slots.set_send(position, now_ns);
                }
            }
            let (node, outcome) = target.submit_routed(batch, &reply);
            let node = node.min(NODES_MAX - 1);
            let taken = match outcome {
                Ok(taken)
                | Err(SubmitError::Busy { accepted: taken })
                | Err(SubmitError::OverQuota {
                    accepted: taken, ..
                }) => taken,
                Err(SubmitError::Stopped { .. }) => 0,
            };
            sent_by_node[node] += taken as u64;
            for position in next..next + taken {
                slots.set_node(position, node as u8);
            }
            match outcome {
                Ok(taken) => next += taken,
                Err(SubmitError::Busy { accepted })
                | Err(SubmitError::OverQuota { accepted, .. }) => {
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
            let acked = live.acknowledged.load(Ordering::Acquire);
            let rate = (acked - last_acked) as f64 / last_progress.elapsed().as_secs_f64();
            let p99_ms = live.last_interval_p99_us.load(Ordering::Relaxed) as f64 / 1e3;
            progress.set_position(start.elapsed().as_secs());
            progress.set_message(format!(
                "{acked} acknowledged, {rate:.0} tx/s, p99 {p99_ms:.1} ms (last interval)"
            ));
            last_progress = Instant::now();
            last_acked = acked;
        }
    }
    progress.finish_and_clear();
    (next as u64, busy_answers, stopped, sent_by_node)
}
