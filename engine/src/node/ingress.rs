//! Ingress: what a client (or the network server for it) calls. Each record's format is
//! checked here, a linked chain is taken or refused whole, and what is taken goes into the
//! bounded mempool (full: `Busy`, never a silent drop). Ledger queries are queued here for
//! the stage that holds the ledger.

use super::{NodeCounters, NodeMetrics, QueueLimits, Shared, SubmitError};
use crate::ledger::Ledger;
use crate::mempool::{Ack, PendingTx, COMMON_LANE};
use crate::result::ResultCode;
use crate::tx::{linked_units, TxRecord};
use crossbeam::channel::Sender;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// A question about the state, run by the executor thread between blocks (never during
/// one), so it sees a consistent ledger. It must be quick: it holds up execution.
pub type LedgerQuery = Box<dyn FnOnce(&Ledger) + Send>;

/// Called after acknowledgements were sent (once per group of blocks, not per transaction),
/// so that a network front can wake up and forward them.
pub type AckListener = Arc<dyn Fn() + Send + Sync>;

/// Most ledger queries waiting for the executor; past it `query_ledger` answers Busy.
pub const LEDGER_QUERY_QUEUE_MAX: usize = 1_024;

/// A cheap handle for submitting transactions from any thread.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) shared: Arc<Shared>,
}

impl NodeHandle {
    /// Checks each record's format and queues it. Malformed records are answered at once
    /// through `reply` with their result code. A linked chain (a run of linked records and
    /// the record that closes it, within this call) is taken or refused whole: open at the
    /// end of `records`, longer than [`NodeHandle::linked_chain_tx_max`], or with a malformed
    /// record, every record of it is answered at once. Returns the number of records taken
    /// (answered or queued).
    ///
    /// Errors: `Busy { accepted }` when the mempool filled after `accepted` records (the
    /// rest were not taken; `accepted` never ends inside a chain); `Stopped` when the node
    /// no longer takes transactions.
    pub fn submit(&self, records: &[TxRecord], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        self.submit_in_lane(records, reply, COMMON_LANE)
    }

    /// [`NodeHandle::submit`], with the signature lane of the records
    /// ([`crate::mempool::PendingTx::lane`]): the network server puts the records of an
    /// identity whose signatures failed recently in a lane of their own, verified in batches
    /// apart from everyone else's.
    pub fn submit_in_lane(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
        lane: u32,
    ) -> Result<usize, SubmitError> {
        self.shared.submits_in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.submit_counted(records, reply, lane);
        self.shared.submits_in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn submit_counted(
        &self,
        records: &[TxRecord],
        reply: &Sender<Ack>,
        lane: u32,
    ) -> Result<usize, SubmitError> {
        if let Some(reason) = self.shared.stopped_reason() {
            return Err(SubmitError::Stopped { reason });
        }
        let received_at = Instant::now();
        let counters = &self.shared.counters;
        let pending = |record: &TxRecord| PendingTx {
            record: *record,
            reply: reply.clone(),
            received_at,
            lane,
        };
        // One unit at a time: a record of its own, or a whole linked chain (a maximal run
        // of linked records and the record that closes it), which is taken or refused whole.
        for unit in linked_units(records, TxRecord::is_linked) {
            let (start, end) = (unit.start, unit.end);
            let pushed = if end == start + 1 && !records[start].is_linked() {
                let record = &records[start];
                if let Err(code) = self.ingress_check(record) {
                    counters.rejected_at_ingress.fetch_add(1, Ordering::Relaxed);
                    pending(record).acknowledge(code, None);
                    true
                } else {
                    self.shared.mempool.push(pending(record)).is_ok()
                }
            } else {
                let chain = &records[start..end];
                match self.chain_refusal(chain) {
                    Some(codes) => {
                        counters
                            .rejected_at_ingress
                            .fetch_add(chain.len() as u64, Ordering::Relaxed);
                        for (record, code) in chain.iter().zip(codes) {
                            pending(record).acknowledge(code, None);
                        }
                        true
                    }
                    None => {
                        let unit: Box<[PendingTx]> = chain.iter().map(pending).collect();
                        self.shared.mempool.push_chain(unit).is_ok()
                    }
                }
            };
            if !pushed {
                // Nothing of this unit was taken: the client retries from its start.
                self.wake_sigverify();
                counters
                    .submitted
                    .fetch_add(start as u64, Ordering::Relaxed);
                return Err(SubmitError::Busy { accepted: start });
            }
        }
        counters
            .submitted
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        self.wake_sigverify();
        Ok(records.len())
    }

    /// The checks a record passes before it is queued: its format, and that it has not
    /// expired (its `valid_until` is not before the last executed block's time, which never
    /// runs backwards, so no later block could execute it). Whether `valid_until` is within
    /// the validity window depends on the time of the block that executes it, which only
    /// the executor knows.
    fn ingress_check(&self, record: &TxRecord) -> Result<(), ResultCode> {
        record.validate()?;
        if record.valid_until() < self.shared.counters.block_time_ms.load(Ordering::Acquire) {
            return Err(ResultCode::Expired);
        }
        Ok(())
    }

    /// Why a linked chain (`chain`: its linked records and, unless it is open, the record
    /// that closes it) cannot be taken, as each member's code; `None` when it can.
    fn chain_refusal(&self, chain: &[TxRecord]) -> Option<Vec<ResultCode>> {
        let every = |code| Some(vec![code; chain.len()]);
        if chain.last().is_some_and(TxRecord::is_linked) {
            return every(ResultCode::LinkedEventChainOpen);
        }
        if chain.len() > self.shared.linked_chain_tx_max {
            return every(ResultCode::LinkedChainTooLong);
        }
        let codes: Vec<ResultCode> = chain
            .iter()
            .map(|record| match self.ingress_check(record) {
                Ok(()) => ResultCode::LinkedEventFailed,
                Err(code) => code,
            })
            .collect();
        codes
            .iter()
            .any(|code| *code != ResultCode::LinkedEventFailed)
            .then_some(codes)
    }

    /// Most transactions in one linked chain this node takes: [`LINKED_CHAIN_TX_MAX`], or
    /// its mempool or block size when smaller.
    pub fn linked_chain_tx_max(&self) -> usize {
        self.shared.linked_chain_tx_max
    }

    /// Decodes raw bytes into a record and submits it; a malformed record is answered
    /// through `reply` with its specific result code.
    pub fn submit_bytes(&self, bytes: &[u8], reply: &Sender<Ack>) -> Result<usize, SubmitError> {
        match TxRecord::decode(bytes) {
            Ok(record) => self.submit(&[record], reply),
            Err(error) => {
                let id = bytes
                    .get(..16)
                    .map_or(0, |b| u128::from_le_bytes(b.try_into().expect("16 bytes")));
                let _ = reply.send(Ack {
                    id,
                    code: error.into(),
                    height: None,
                });
                self.shared
                    .counters
                    .rejected_at_ingress
                    .fetch_add(1, Ordering::Relaxed);
                Ok(1)
            }
        }
    }

    /// The pipeline's counters.
    pub fn counters(&self) -> &NodeCounters {
        &self.shared.counters
    }

    /// Transactions waiting in the mempool.
    pub fn mempool_len(&self) -> usize {
        self.shared.mempool.len()
    }

    /// Why the node stopped, if it did.
    pub fn fatal_error(&self) -> Option<String> {
        self.shared.fatal.lock().expect("fatal lock").clone()
    }

    /// Why the node no longer takes transactions (stopped, or shutting down), if so.
    pub fn stopped_reason(&self) -> Option<String> {
        self.shared.stopped_reason()
    }

    /// The node's metrics (latencies, batch sizes, queue depths, network counters).
    pub fn metrics(&self) -> &NodeMetrics {
        &self.shared.metrics
    }

    /// Mempool capacity (`mempool_tx_max`).
    pub fn mempool_capacity(&self) -> usize {
        self.shared.mempool.capacity()
    }

    /// The named maxima of the node's queues.
    pub fn config_limits(&self) -> QueueLimits {
        self.shared.limits
    }

    pub fn network_id(&self) -> u64 {
        self.shared.network_id
    }

    pub fn genesis_hash(&self) -> [u8; 32] {
        self.shared.genesis_hash
    }

    /// Height of the last durable block.
    pub fn height(&self) -> u64 {
        self.shared.counters.height.load(Ordering::Acquire)
    }

    /// Registers a function called after acknowledgements were sent (once per group of
    /// blocks or signature batch with failures, never per transaction) and when the node
    /// stops. It runs on a pipeline thread: it must be quick and must not block (waking a
    /// poll loop is the intended use).
    pub fn add_ack_listener(&self, listener: AckListener) {
        self.shared
            .ack_listeners
            .write()
            .expect("listeners lock")
            .push(listener);
    }

    /// Queues a question about the state for the executor, which runs it between blocks.
    /// `Busy` when [`LEDGER_QUERY_QUEUE_MAX`] are already waiting; `Stopped` when the node
    /// stopped (a query queued just before the stop may be dropped unanswered: callers that
    /// wait for an answer must also watch for the stop).
    pub fn query_ledger(&self, query: LedgerQuery) -> Result<(), SubmitError> {
        if let Some(reason) = self.shared.stopped_reason() {
            return Err(SubmitError::Stopped { reason });
        }
        self.shared
            .ledger_queries
            .0
            .try_send(query)
            .map_err(|_| SubmitError::Busy { accepted: 0 })
    }

    pub(super) fn wake_sigverify(&self) {
        if let Some(thread) = self.shared.sigverify_thread.lock().expect("lock").as_ref() {
            thread.unpark();
        }
    }
}
