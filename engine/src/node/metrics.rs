//! What a node measures, and its `/metrics` page (Prometheus text format, docs/OPERATIONS.md).

use super::NodeHandle;
use crate::events::{AccountEvent, EventKind};
use crate::ledger::Ledger;
use crate::metrics::{Counter, Gauge, Histogram, TextEncoder};
use crate::net::message::Quota;
use crate::net::peers::{PeerStatsHandle, Refusal};
use crate::net::tls::TlsRefusal;
use crate::result::ResultCode;
use crate::tx::{TxKind, TxRecord};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency per pipeline stage (`tally_stage_seconds{stage=...}`).
#[derive(Debug)]
pub struct StageLatency {
    /// From a SubmitBatch frame decoded to its records queued (the server's work).
    pub ingress: Histogram,
    /// From a transaction's arrival to the signature stage taking it, per transaction.
    pub mempool_wait: Histogram,
    /// One signature batch.
    pub sigverify: Histogram,
    /// From a transaction's signature batch verified to the executor (or a validator's
    /// consensus stage) taking it, per transaction: the verified queue and the block
    /// before it.
    pub verified_wait: Histogram,
    /// One consensus decision (empty until consensus is wired to the network).
    pub consensus: Histogram,
    /// Executing one block (results, transaction root, state root, entry encoding).
    pub execution: Histogram,
    /// From a block sealed to the log thread taking it into a group commit, per
    /// transaction: the commit queue and the group before it (a node alone).
    pub commit_wait: Histogram,
    /// Appending one group of blocks and making it durable.
    pub log_flush: Histogram,
    /// Writing one group's blocks to the log, before its flush.
    pub log_append: Histogram,
    /// From a transaction's block durable to its acknowledgement sent, per transaction
    /// (the event and tax journals, the history feed, the revocations before it).
    pub ack: Histogram,
    /// From a transaction's arrival to its acknowledgement, per transaction.
    pub end_to_end: Histogram,
}

impl StageLatency {
    /// Every stage with its `stage` label, in the order a transaction meets them.
    pub fn named(&self) -> [(&'static str, &Histogram); 11] {
        [
            ("ingress", &self.ingress),
            ("mempool_wait", &self.mempool_wait),
            ("sigverify", &self.sigverify),
            ("verified_wait", &self.verified_wait),
            ("consensus", &self.consensus),
            ("execution", &self.execution),
            ("commit_wait", &self.commit_wait),
            ("log_append", &self.log_append),
            ("log_flush", &self.log_flush),
            ("ack", &self.ack),
            ("end_to_end", &self.end_to_end),
        ]
    }
}

/// Batch sizes (`tally_batch_size{batch=...}`).
#[derive(Debug)]
pub struct BatchSizes {
    /// Records per SubmitBatch frame.
    pub submit: Histogram,
    /// Transactions per signature batch.
    pub sigverify: Histogram,
    /// Transactions per block.
    pub block: Histogram,
    /// Blocks per flush.
    pub group_commit: Histogram,
}

/// What the ledger settled, collected and refused, counted as blocks are sealed (on a
/// validator, blocks made by any proposer) since this process started (blocks replayed at
/// start are not counted: Prometheus counters start again with the process).
#[derive(Debug)]
pub struct BusinessMetrics {
    /// Transactions settled in their own block, and their amounts (minor units), by kind
    /// (`TxKind::ALL` order).
    settled: [Counter; TxKind::ALL.len()],
    settled_value: [Counter; TxKind::ALL.len()],
    /// Queued payments released and settled at the end of a block, and their amounts.
    released: Counter,
    released_value: Counter,
    /// Tax received by taxed payments (in their block or released from a queue), and tax
    /// reversed by refunds, minor units.
    tax_collected: Counter,
    tax_refunded: Counter,
    /// Queued payments not settled by the end of their business day (`expired`, or
    /// `end_of_day_unsettled` with a calendar).
    end_of_day_unsettled: Counter,
    /// Every record's result code, by its wire number.
    results: [Counter; 256],
    /// The RTGS queues: payments waiting and their value; open reservations and theirs
    /// (refreshed at most once a second: reading them walks the tables).
    queue_payments: Gauge,
    queue_value: Gauge,
    pending_transfers: Gauge,
    pending_value: Gauge,
    /// Payments waiting in the warehouse for their value date.
    warehouse_payments: Gauge,
    tables_read: Mutex<Option<std::time::Instant>>,
}

impl Default for BusinessMetrics {
    fn default() -> BusinessMetrics {
        BusinessMetrics {
            settled: Default::default(),
            settled_value: Default::default(),
            released: Counter::default(),
            released_value: Counter::default(),
            tax_collected: Counter::default(),
            tax_refunded: Counter::default(),
            end_of_day_unsettled: Counter::default(),
            results: std::array::from_fn(|_| Counter::default()),
            queue_payments: Gauge::default(),
            queue_value: Gauge::default(),
            pending_transfers: Gauge::default(),
            pending_value: Gauge::default(),
            warehouse_payments: Gauge::default(),
            tables_read: Mutex::new(None),
        }
    }
}

/// How often the queue and reservation gauges are read from the ledger.
const TABLES_READ_EVERY: Duration = Duration::from_secs(1);

impl BusinessMetrics {
    /// Counts a block just sealed into `ledger`: its records' result codes, what settled and
    /// the tax its events name.
    pub(crate) fn count_block(
        &self,
        ledger: &Ledger,
        records: &[TxRecord],
        results: &[ResultCode],
        events: &[AccountEvent],
    ) {
        for (record, code) in records.iter().zip(results) {
            self.results[*code as usize].inc();
            if *code != ResultCode::Ok {
                continue;
            }
            let Some(kind) = record.kind().filter(|kind| kind.moves_money()) else {
                continue;
            };
            let at = kind_index(kind);
            self.settled[at].inc();
            self.settled_value[at].add(record.amount());
        }
        for event in events {
            match event.kind {
                EventKind::Settled | EventKind::Released => {
                    if event.kind == EventKind::Released {
                        self.released.inc();
                        self.released_value.add(event.amount);
                    }
                    self.tax_collected.add(event.tax.unwrap_or(0));
                }
                EventKind::Refunded => self.tax_refunded.add(event.tax.unwrap_or(0)),
                EventKind::Expired => self.end_of_day_unsettled.inc(),
                _ => {}
            }
        }
        let mut read = self.tables_read.lock().expect("tables lock");
        if read.is_none_or(|at| at.elapsed() >= TABLES_READ_EVERY) {
            *read = Some(std::time::Instant::now());
            let queued = ledger.queued_payments(None);
            self.queue_payments.set(queued.len() as i64);
            self.queue_value
                .set(gauge_sum(queued.iter().map(|q| q.amount)));
            let pending = ledger.pending_transfers();
            self.pending_transfers.set(pending.len() as i64);
            self.pending_value
                .set(gauge_sum(pending.iter().map(|p| p.amount)));
            self.warehouse_payments.set(ledger.warehouse_len() as i64);
        }
    }

    fn render(&self, e: &mut TextEncoder) {
        let by_kind = |counters: &[Counter]| -> Vec<(&'static str, u64)> {
            TxKind::ALL
                .iter()
                .filter(|kind| kind.moves_money())
                .map(|kind| (kind.name(), counters[kind_index(*kind)].get()))
                .collect()
        };
        e.counter_family(
            "tally_settled_total",
            "Transactions settled in their own block, by kind.",
            "kind",
            &by_kind(&self.settled),
        );
        e.counter_family(
            "tally_settled_value_total",
            "Minor units moved by transactions settled in their own block, by kind.",
            "kind",
            &by_kind(&self.settled_value),
        );
        e.counter(
            "tally_released_total",
            "Queued payments released from their queue and settled (queue retry or gridlock resolution).",
            self.released.get(),
        );
        e.counter(
            "tally_released_value_total",
            "Minor units moved by queued payments released and settled.",
            self.released_value.get(),
        );
        e.counter(
            "tally_tax_collected_total",
            "Tax received by settled taxed payments, minor units.",
            self.tax_collected.get(),
        );
        e.counter(
            "tally_tax_refunded_total",
            "Tax reversed by refunds, minor units.",
            self.tax_refunded.get(),
        );
        e.counter(
            "tally_end_of_day_unsettled_total",
            "Queued payments not settled by the end of their business day (expired, or rejected end_of_day_unsettled under a calendar).",
            self.end_of_day_unsettled.get(),
        );
        let results: Vec<(&str, u64)> = ResultCode::ALL
            .iter()
            .map(|code| (code.name(), self.results[*code as usize].get()))
            .filter(|(name, count)| *count > 0 || *name == "ok")
            .collect();
        e.counter_family(
            "tally_results_total",
            "Records executed into blocks, by result code (refusals by their reason).",
            "code",
            &results,
        );
        e.gauge(
            "tally_queue_payments",
            "Payments waiting in the RTGS queues.",
            self.queue_payments.get(),
        );
        e.gauge(
            "tally_queue_value",
            "Minor units of the payments waiting in the RTGS queues.",
            self.queue_value.get(),
        );
        e.gauge(
            "tally_pending_transfers",
            "Open two-phase reservations.",
            self.pending_transfers.get(),
        );
        e.gauge(
            "tally_pending_value",
            "Minor units held by open two-phase reservations.",
            self.pending_value.get(),
        );
        e.gauge(
            "tally_warehouse_payments",
            "Payments accepted ahead of their value date, waiting for its opening.",
            self.warehouse_payments.get(),
        );
    }
}

/// A sum of amounts as a gauge's value (saturated: a gauge is an i64).
fn gauge_sum(amounts: impl Iterator<Item = u64>) -> i64 {
    let sum: u128 = amounts.map(u128::from).sum();
    i64::try_from(sum).unwrap_or(i64::MAX)
}

fn kind_index(kind: TxKind) -> usize {
    TxKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

/// Every metric of a node that is not already one of [`crate::node::NodeCounters`].
#[derive(Debug)]
pub struct NodeMetrics {
    pub stage: StageLatency,
    pub business: BusinessMetrics,
    pub batch: BatchSizes,
    /// Verified batches waiting for the executor.
    pub verified_queue_batches: Gauge,
    /// Sealed blocks waiting for the log thread.
    pub commit_queue_blocks: Gauge,
    pub consensus_height: Gauge,
    pub consensus_round: Gauge,
    /// Validator epoch in force (its set validates the current height).
    pub validator_epoch: Gauge,
    /// Validators in the epoch's set.
    pub validators: Gauge,
    /// Validators the leader reputation leaves out of round-0 proposer turns now.
    pub proposers_demoted: Gauge,
    /// Ids of decided transactions a validator's pool holds against late copies (one
    /// validity window of them).
    pub decided_ids: Gauge,
    /// Decided ids forgotten before their records expired, by the pool's cap.
    pub decided_ids_capped: Counter,
    pub client_connections: Gauge,
    pub peers_connected: Gauge,
    pub connections_accepted: Counter,
    /// Connections closed because they sent something invalid.
    pub connections_rejected: Counter,
    pub frames_received: Counter,
    /// Frames or messages refused (bad frame, bad message, unexpected message).
    pub frames_rejected: Counter,
    /// Transactions refused with Busy (mempool full).
    pub busy_tx: Counter,
    pub queries: Counter,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    /// Times a connection was paused because its unanswered work or output reached its bound.
    pub backpressure_pauses: Counter,
    /// Client connections refused in or for their TLS handshake, per
    /// [`crate::net::tls::TlsRefusal`] in the order of its `ALL`.
    pub tls_refused: [Counter; TlsRefusal::ALL.len()],
    /// Connections closed after `idle_timeout` without input.
    pub idle_closed: Counter,
    /// Connections to a TLS `/metrics` port refused in their handshake, per
    /// [`crate::net::tls::TlsRefusal`] in the order of its `ALL`.
    pub metrics_tls_refused: [Counter; TlsRefusal::ALL.len()],
    /// Requests to a TLS `/metrics` port from a role that does not read metrics (403).
    pub metrics_forbidden: Counter,
    /// Requests refused as outside the connection's certificate (Forbidden).
    pub forbidden: Counter,
    /// Open connections closed because their certificate was revoked.
    pub revoked_closed: Counter,
    /// Connections closed for too many bad signatures (their certificate then backs off).
    pub bad_signature_closed: Counter,
    /// Bytes all client connections hold in their buffers.
    pub client_buffered_bytes: Gauge,
    /// Requests (or records, for the record quotas) refused because their identity was over
    /// a quota, per [`tally_protocol::message::Quota`] in the order of its `ALL`.
    pub quota_refused: [Counter; Quota::ALL.len()],
    /// Times an identity became suspect (bad signatures past `suspect_bad_signatures` in the
    /// window): its records then go to a signature lane of their own, at its suspect rate.
    pub suspect_identities: Counter,
    /// Records verified in an isolated lane (an identity whose signatures failed recently).
    pub isolated_tx: Counter,
    /// Signature batches that had a bad signature, by lane: the common lane (everyone's) and
    /// isolated lanes.
    pub failed_batches_common: Counter,
    pub failed_batches_isolated: Counter,
    /// Blocks whose transaction root the GPU computed with their signatures (records
    /// uploaded once, `GpuBlock`).
    pub gpu_block_roots: Counter,
    /// Signature batches the GPU failed (device lost, mapping failed, kernel error), verified
    /// and hashed on the CPU instead.
    pub gpu_fallbacks: Counter,
    /// Checkpoints written and durable (counted once the writer is free for the next).
    pub checkpoints_written: Counter,
    /// Height, size and write time (encoding, writing, making durable, archiving the log
    /// before the previous one) of the newest checkpoint written since start.
    pub checkpoint_height: Gauge,
    pub checkpoint_bytes: Gauge,
    pub checkpoint_write_ms: Gauge,
    /// Connections in their handshake closed to make room for a new one at
    /// `connections_max`.
    pub connections_evicted: Counter,
    /// Signature backend in use (`cpu`, `gpu`), set at start.
    backend: Mutex<String>,
    /// The validator links' counters, read at each scrape (set when the links start).
    peer_stats: Mutex<Option<PeerStatsHandle>>,
    started: std::time::Instant,
}

impl Default for NodeMetrics {
    fn default() -> NodeMetrics {
        NodeMetrics::new()
    }
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        NodeMetrics {
            stage: StageLatency {
                ingress: Histogram::latency(),
                mempool_wait: Histogram::latency(),
                sigverify: Histogram::latency(),
                verified_wait: Histogram::latency(),
                consensus: Histogram::latency(),
                execution: Histogram::latency(),
                commit_wait: Histogram::latency(),
                log_flush: Histogram::latency(),
                log_append: Histogram::latency(),
                ack: Histogram::latency(),
                end_to_end: Histogram::latency(),
            },
            business: BusinessMetrics::default(),
            batch: BatchSizes {
                submit: Histogram::sizes(),
                sigverify: Histogram::sizes(),
                block: Histogram::sizes(),
                group_commit: Histogram::sizes(),
            },
            verified_queue_batches: Gauge::default(),
            commit_queue_blocks: Gauge::default(),
            consensus_height: Gauge::default(),
            consensus_round: Gauge::default(),
            validator_epoch: Gauge::default(),
            validators: Gauge::default(),
            proposers_demoted: Gauge::default(),
            decided_ids: Gauge::default(),
            decided_ids_capped: Counter::default(),
            client_connections: Gauge::default(),
            peers_connected: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_rejected: Counter::default(),
            frames_received: Counter::default(),
            frames_rejected: Counter::default(),
            busy_tx: Counter::default(),
            queries: Counter::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            backpressure_pauses: Counter::default(),
            tls_refused: Default::default(),
            idle_closed: Counter::default(),
            metrics_tls_refused: Default::default(),
            metrics_forbidden: Counter::default(),
            forbidden: Counter::default(),
            revoked_closed: Counter::default(),
            bad_signature_closed: Counter::default(),
            client_buffered_bytes: Gauge::default(),
            quota_refused: Default::default(),
            suspect_identities: Counter::default(),
            isolated_tx: Counter::default(),
            failed_batches_common: Counter::default(),
            gpu_block_roots: Counter::default(),
            gpu_fallbacks: Counter::default(),
            checkpoints_written: Counter::default(),
            checkpoint_height: Gauge::default(),
            checkpoint_bytes: Gauge::default(),
            checkpoint_write_ms: Gauge::default(),
            failed_batches_isolated: Counter::default(),
            connections_evicted: Counter::default(),
            backend: Mutex::new(String::from("cpu")),
            peer_stats: Mutex::new(None),
            started: std::time::Instant::now(),
        }
    }

    pub fn set_backend(&self, name: &str) {
        *self.backend.lock().expect("backend lock") = name.to_string();
    }

    /// Makes `/metrics` report the counters of these validator links.
    pub fn set_peer_stats(&self, handle: PeerStatsHandle) {
        *self.peer_stats.lock().expect("peer stats lock") = Some(handle);
    }

    pub fn backend(&self) -> String {
        self.backend.lock().expect("backend lock").clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The whole `/metrics` page of a node.
pub fn render_metrics(node: &NodeHandle) -> String {
    let m = node.metrics();
    let c = node.counters();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut e = TextEncoder::new();
    e.counter(
        "tally_transactions_submitted_total",
        "Transactions taken into the pipeline (queued or answered at ingress).",
        load(&c.submitted),
    );
    e.counter(
        "tally_transactions_rejected_at_ingress_total",
        "Malformed transactions answered at ingress.",
        load(&c.rejected_at_ingress),
    );
    e.counter(
        "tally_transactions_bad_signature_total",
        "Transactions whose signature failed verification.",
        load(&c.bad_signatures),
    );
    e.counter(
        "tally_transactions_executed_total",
        "Transactions executed into blocks (settled or rejected by the ledger).",
        load(&c.executed),
    );
    e.counter(
        "tally_transactions_busy_total",
        "Transactions refused with Busy because the mempool was full.",
        m.busy_tx.get(),
    );
    e.counter(
        "tally_blocks_total",
        "Blocks made durable.",
        load(&c.blocks),
    );
    e.counter(
        "tally_log_flushes_total",
        "Group commits of the log.",
        load(&c.flushes),
    );
    e.gauge(
        "tally_height",
        "Height of the last durable block.",
        load(&c.height) as i64,
    );
    e.gauge_family(
        "tally_queue_depth",
        "Items waiting in each queue of the pipeline (mempool: transactions; verified and commit: batches, blocks).",
        "queue",
        &[
            ("mempool", node.mempool_len() as i64),
            ("verified", m.verified_queue_batches.get()),
            ("commit", m.commit_queue_blocks.get()),
        ],
    );
    e.gauge_family(
        "tally_queue_capacity",
        "Named maximum of each queue.",
        "queue",
        &[
            ("mempool", node.mempool_capacity() as i64),
            (
                "verified",
                node.config_limits().verified_queue_batches_max as i64,
            ),
            (
                "commit",
                node.config_limits().commit_queue_blocks_max as i64,
            ),
        ],
    );
    e.histogram_family(
        "tally_stage_seconds",
        "Latency of each pipeline stage.",
        "stage",
        &m.stage.named(),
    );
    e.histogram_family(
        "tally_batch_size",
        "Size of each kind of batch (records per submit, transactions per signature batch and block, blocks per flush).",
        "batch",
        &[
            ("submit", &m.batch.submit),
            ("sigverify", &m.batch.sigverify),
            ("block", &m.batch.block),
            ("group_commit", &m.batch.group_commit),
        ],
    );
    let backend = m.backend();
    e.gauge_family(
        "tally_backend",
        "Signature backend in use (1 for the one in use).",
        "backend",
        &[(backend.as_str(), 1)],
    );
    e.gauge(
        "tally_consensus_height",
        "Consensus height (0 until consensus runs over the network).",
        m.consensus_height.get(),
    );
    e.gauge(
        "tally_consensus_round",
        "Consensus round (0 until consensus runs over the network).",
        m.consensus_round.get(),
    );
    e.gauge(
        "tally_validator_epoch",
        "Validator epoch in force (0 until the first set change by authority vote).",
        m.validator_epoch.get(),
    );
    e.gauge(
        "tally_validators",
        "Validators in the set in force (0 on a node alone).",
        m.validators.get(),
    );
    e.gauge(
        "tally_proposers_demoted",
        "Validators left out of round-0 proposer turns for missing them (leader reputation).",
        m.proposers_demoted.get(),
    );
    e.gauge(
        "tally_consensus_decided_ids",
        "Ids of decided transactions the pool holds against late copies (0 on a node alone).",
        m.decided_ids.get(),
    );
    e.counter(
        "tally_consensus_decided_ids_capped_total",
        "Decided ids forgotten by the pool's cap before their records expired.",
        m.decided_ids_capped.get(),
    );
    e.gauge(
        "tally_peers_connected",
        "Validator peers connected.",
        m.peers_connected.get(),
    );
    let peer_stats = m
        .peer_stats
        .lock()
        .expect("peer stats lock")
        .as_ref()
        .map(PeerStatsHandle::stats);
    if let Some(stats) = peer_stats {
        e.counter(
            "tally_peer_dials_total",
            "Connections this node started to validators with larger keys.",
            stats.dials,
        );
        e.counter(
            "tally_peer_dial_failures_total",
            "Connection attempts that failed before authentication without a refusal.",
            stats.dial_failures,
        );
        e.counter(
            "tally_peer_links_established_total",
            "Validator links authenticated.",
            stats.links_established,
        );
        e.counter(
            "tally_peer_reconnects_total",
            "Validator links authenticated to a validator linked before.",
            stats.reconnects,
        );
        e.counter(
            "tally_peer_links_replaced_total",
            "Live links closed because the same validator authenticated a new connection.",
            stats.links_replaced,
        );
        let refused: Vec<(&str, u64)> = Refusal::ALL
            .iter()
            .map(|reason| (reason.name(), stats.refused(*reason)))
            .collect();
        e.counter_family(
            "tally_peer_refused_total",
            "Validator connections closed by this node, per reason.",
            "reason",
            &refused,
        );
        e.counter(
            "tally_peer_frames_sent_total",
            "Frames queued to validator links (one per peer).",
            stats.frames_sent,
        );
        e.counter(
            "tally_peer_frames_received_total",
            "Frames received on validator links.",
            stats.frames_received,
        );
        e.counter(
            "tally_peer_sent_bytes_total",
            "Bytes written to validator links (handshakes included).",
            stats.bytes_sent,
        );
        e.counter(
            "tally_peer_received_bytes_total",
            "Bytes read from validator links.",
            stats.bytes_received,
        );
    }
    e.gauge(
        "tally_client_connections",
        "Client connections open.",
        m.client_connections.get(),
    );
    e.counter(
        "tally_client_connections_accepted_total",
        "Client connections accepted.",
        m.connections_accepted.get(),
    );
    let refused: Vec<(&str, u64)> = TlsRefusal::ALL
        .iter()
        .map(|reason| (reason.name(), m.tls_refused[reason.index()].get()))
        .collect();
    e.counter_family(
        "tally_client_tls_refused_total",
        "Client connections refused before any frame (TLS handshake), per reason.",
        "reason",
        &refused,
    );
    let metrics_refused: Vec<(&str, u64)> = TlsRefusal::ALL
        .iter()
        .map(|reason| (reason.name(), m.metrics_tls_refused[reason.index()].get()))
        .collect();
    e.counter_family(
        "tally_metrics_tls_refused_total",
        "Connections to the TLS /metrics port refused in the handshake, per reason.",
        "reason",
        &metrics_refused,
    );
    e.counter(
        "tally_metrics_forbidden_total",
        "Requests to the TLS /metrics port from a role that does not read metrics (403).",
        m.metrics_forbidden.get(),
    );
    e.counter(
        "tally_client_forbidden_total",
        "Requests refused as outside the connection's certificate (role, accounts covered).",
        m.forbidden.get(),
    );
    e.counter(
        "tally_client_revoked_closed_total",
        "Open client connections closed because their certificate was revoked.",
        m.revoked_closed.get(),
    );
    e.counter(
        "tally_client_bad_signature_closed_total",
        "Client connections closed for too many bad signatures.",
        m.bad_signature_closed.get(),
    );
    let quotas: Vec<(&str, u64)> = Quota::ALL
        .iter()
        .map(|quota| (quota.name(), m.quota_refused[quota.index()].get()))
        .collect();
    e.counter_family(
        "tally_client_quota_refused_total",
        "Refusals because an identity was over a quota, per quota (records for the record quotas, requests or connections for the others).",
        "quota",
        &quotas,
    );
    e.counter(
        "tally_client_suspect_identities_total",
        "Times an identity's bad signatures put its records in a signature lane of their own.",
        m.suspect_identities.get(),
    );
    e.counter(
        "tally_sigverify_isolated_tx_total",
        "Records verified in the signature lane of an identity whose signatures failed recently.",
        m.isolated_tx.get(),
    );
    e.counter_family(
        "tally_sigverify_failed_batches_total",
        "Signature batches with at least one bad signature, by lane.",
        "lane",
        &[
            ("common", m.failed_batches_common.get()),
            ("isolated", m.failed_batches_isolated.get()),
        ],
    );
    e.counter(
        "tally_gpu_block_roots_total",
        "Blocks whose transaction root the GPU computed with their signatures, records uploaded once.",
        m.gpu_block_roots.get(),
    );
    e.counter(
        "tally_gpu_fallbacks_total",
        "Signature batches the GPU failed, verified and hashed on the CPU instead.",
        m.gpu_fallbacks.get(),
    );
    e.counter(
        "tally_checkpoints_written_total",
        "Checkpoints written and made durable since start.",
        m.checkpoints_written.get(),
    );
    e.gauge(
        "tally_checkpoint_height",
        "Height of the newest checkpoint written since start (0: none yet).",
        m.checkpoint_height.get(),
    );
    e.gauge(
        "tally_checkpoint_bytes",
        "Size of the newest checkpoint written since start.",
        m.checkpoint_bytes.get(),
    );
    e.gauge(
        "tally_checkpoint_write_milliseconds",
        "Time the newest checkpoint took to encode, write, make durable and archive the log behind it.",
        m.checkpoint_write_ms.get(),
    );
    e.gauge(
        "tally_client_buffered_bytes",
        "Bytes all client connections hold in their buffers (budget: connection_buffers_bytes_max).",
        m.client_buffered_bytes.get(),
    );
    e.counter(
        "tally_client_connections_idle_closed_total",
        "Client connections closed after idle_timeout without input.",
        m.idle_closed.get(),
    );
    e.counter(
        "tally_client_connections_evicted_total",
        "Connections still in their handshake closed to make room at connections_max.",
        m.connections_evicted.get(),
    );
    e.counter(
        "tally_client_connections_rejected_total",
        "Client connections closed for sending invalid frames or messages.",
        m.connections_rejected.get(),
    );
    e.counter(
        "tally_frames_received_total",
        "Frames received from clients.",
        m.frames_received.get(),
    );
    e.counter(
        "tally_frames_rejected_total",
        "Frames refused (bad frame, bad message, unexpected message).",
        m.frames_rejected.get(),
    );
    e.counter("tally_queries_total", "Queries answered.", m.queries.get());
    e.counter(
        "tally_network_received_bytes_total",
        "Bytes read from client connections.",
        m.bytes_received.get(),
    );
    e.counter(
        "tally_network_sent_bytes_total",
        "Bytes written to client connections.",
        m.bytes_sent.get(),
    );
    e.counter(
        "tally_backpressure_pauses_total",
        "Times a connection stopped being read because its unanswered work or output reached its bound.",
        m.backpressure_pauses.get(),
    );
    e.gauge(
        "tally_up",
        "1 while the node takes transactions, 0 once it stopped.",
        i64::from(node.fatal_error().is_none()),
    );
    e.gauge(
        "tally_uptime_seconds",
        "Seconds since the node started.",
        m.uptime().as_secs() as i64,
    );
    m.business.render(&mut e);
    e.finish()
}
