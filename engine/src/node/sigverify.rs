//! The signature stage: batches from the mempool verified through tally-kernels (cpu, gpu
//! or auto, docs/VERIFY_RULES.md). A bad signature is answered here, and a linked chain
//! with one fails whole; only valid transactions go on, in mempool order.
//!
//! Lanes: a batch whose equation fails is split and its pieces verified again, so one bad
//! signature costs every record batched with it. The network server puts the records of an
//! identity whose signatures failed recently in a lane of its own
//! ([`crate::mempool::PendingTx::lane`]); each lane of a batch drained from the mempool is
//! verified as a batch of its own, so a failing identity's records never split the batches
//! of the others. A record's verdict does not depend on its batch (every backend gives the
//! reference verdict item by item), so lanes change costs, never verdicts.

use super::{Shared, VerifiedBatch};
use crate::mempool::{PendingTx, COMMON_LANE};
use crate::result::ResultCode;
use crate::tx::{linked_units, signing_message, TxRecord, SIGNING_MESSAGE_BYTES, TX_BYTES};
use crossbeam::channel::Sender;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tally_kernels::gpu::block::{GpuBlock, RecordLayout};
use tally_kernels::merkle::Hash;
use tally_kernels::sigverify::{SigItem, Verifier};

/// Where a record keeps its signature parts, for the GPU block kernels: the public key A,
/// then R and S (docs/PROTOCOL.md, the record layout).
pub const TX_LAYOUT: RecordLayout = RecordLayout {
    record_bytes: TX_BYTES,
    public_key: std::mem::offset_of!(TxRecord, public_key),
    r: std::mem::offset_of!(TxRecord, signature),
    s: std::mem::offset_of!(TxRecord, signature) + 32,
};

/// The GPU block path of a node that builds its own blocks (docs/ARCHITECTURE.md, "The GPU
/// in the node"): a batch's records are uploaded once, its signatures verified and its
/// transaction root computed from the same upload, and the root travels with the batch to
/// the executor, which makes the batch a block of its own. Built on the verifier's GPU
/// context when the verifier uses a GPU; `None` otherwise, or when the block kernels fail
/// their known answers on this adapter (then the node verifies through the verifier and
/// hashes on the CPU, with an error in the log).
pub(super) fn gpu_block_path(verifier: &Verifier, keys: &[[u8; 32]]) -> Option<GpuBlock> {
    let context = verifier.gpu_kernels()?.context().clone();
    match GpuBlock::new(context) {
        Ok(mut block) => {
            if let Err(error) = block.register_keys(keys) {
                tracing::warn!(%error, "GPU key tables not built; keys verify without them");
            }
            Some(block)
        }
        Err(error) => {
            tracing::error!(%error, "the GPU block kernels are refused; signatures verify through the verifier and the transaction root is hashed on the CPU");
            None
        }
    }
}

/// How long the signature stage sleeps when the mempool is empty (ingress wakes it sooner).
const IDLE_PARK: Duration = Duration::from_millis(2);

pub(super) fn sigverify_stage(
    shared: &Shared,
    verifier: &Verifier,
    mut gpu_block: Option<GpuBlock>,
    batch_max: usize,
    verified: &Sender<VerifiedBatch>,
) {
    let mut messages: Vec<[u8; SIGNING_MESSAGE_BYTES]> = Vec::with_capacity(batch_max);
    loop {
        let mut txs = Vec::with_capacity(batch_max);
        shared.mempool.drain_into(&mut txs, batch_max);
        if txs.is_empty() {
            // Stop only when no submit can still push: it raised the in-flight count before
            // it read `stopping`, so a zero count read after `stopping` means none will.
            if shared.stopping.load(Ordering::SeqCst)
                && shared.submits_in_flight.load(Ordering::SeqCst) == 0
                && shared.mempool.is_empty()
            {
                return;
            }
            std::thread::park_timeout(IDLE_PARK);
            continue;
        }
        let started = Instant::now();
        let metrics = &shared.metrics;
        {
            let mut wait = metrics.stage.mempool_wait.local();
            for tx in &txs {
                wait.observe_duration(started.saturating_duration_since(tx.received_at));
            }
        }
        metrics.batch.sigverify.observe(txs.len() as u64);
        let one_lane = txs.iter().all(|tx| tx.lane == txs[0].lane);
        let (verdicts, tx_root) = match gpu_block.as_mut() {
            Some(block) if one_lane && verifier.uses_gpu_for(txs.len()) => {
                verify_on_gpu_block(shared, verifier, block, &txs, &mut messages)
            }
            _ => (verify_lanes(shared, verifier, &txs, &mut messages), None),
        };
        let (txs, tx_root) = if verdicts.iter().all(|valid| *valid) {
            (txs, tx_root)
        } else {
            // The root was of every record; the block holds only the valid ones.
            (answer_failed_signatures(shared, txs, &verdicts), None)
        };
        metrics.stage.sigverify.observe_duration(started.elapsed());
        if txs.is_empty() {
            continue;
        }
        if verified
            .send(VerifiedBatch {
                txs,
                tx_root,
                verified_at: Instant::now(),
            })
            .is_err()
        {
            return; // the executor stopped; the node is stopping
        }
        metrics.verified_queue_batches.set(verified.len() as i64);
    }
}

/// Verifies the signatures of `txs` (one lane) on the GPU block path: one verdict per
/// record and the Merkle root of all the records (`block::tx_root`), from one upload. A GPU
/// failure inside the call verifies and hashes on the CPU (same answers, counted and logged);
/// a refused call (records that do not match the layout: a bug) verifies through the
/// verifier and gives no root.
fn verify_on_gpu_block(
    shared: &Shared,
    verifier: &Verifier,
    block: &mut GpuBlock,
    txs: &[PendingTx],
    messages: &mut Vec<[u8; SIGNING_MESSAGE_BYTES]>,
) -> (Vec<bool>, Option<Hash>) {
    let records: Vec<TxRecord> = txs.iter().map(|tx| tx.record).collect();
    let items = signature_items(shared.network_id, records.iter(), messages);
    let mut verdicts = vec![false; items.len()];
    let outcome = block.verify_and_root(
        bytemuck::cast_slice(&records),
        &TX_LAYOUT,
        &items,
        &mut verdicts,
    );
    let root = match outcome {
        Ok(run) => {
            if let Some(error) = run.fallback {
                shared.metrics.gpu_fallbacks.inc();
                tracing::warn!(%error, records = records.len(), "GPU block failed, verified and hashed on the CPU");
            }
            Some(run.root)
        }
        Err(error) => {
            shared.metrics.gpu_fallbacks.inc();
            tracing::error!(%error, "the GPU block path refused a batch; verified through the verifier");
            drop(items);
            verdicts = verify_signatures(verifier, shared.network_id, records.iter(), messages);
            None
        }
    };
    count_lane(shared, txs[0].lane, txs.len(), &verdicts);
    (verdicts, root)
}

/// Verifies the signatures of `txs`, each lane as a batch of its own (one call for the
/// common case of one lane): one verdict per record, in order.
fn verify_lanes(
    shared: &Shared,
    verifier: &Verifier,
    txs: &[PendingTx],
    messages: &mut Vec<[u8; SIGNING_MESSAGE_BYTES]>,
) -> Vec<bool> {
    let first = txs.first().map_or(COMMON_LANE, |tx| tx.lane);
    if txs.iter().all(|tx| tx.lane == first) {
        let verdicts = verify_signatures(
            verifier,
            shared.network_id,
            txs.iter().map(|tx| &tx.record),
            messages,
        );
        count_lane(shared, first, txs.len(), &verdicts);
        return verdicts;
    }
    let mut lanes: Vec<u32> = txs.iter().map(|tx| tx.lane).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let mut verdicts = vec![false; txs.len()];
    let mut positions = Vec::with_capacity(txs.len());
    for lane in lanes {
        positions.clear();
        positions.extend((0..txs.len()).filter(|&i| txs[i].lane == lane));
        let lane_verdicts = verify_signatures(
            verifier,
            shared.network_id,
            positions.iter().map(|&i| &txs[i].record),
            messages,
        );
        count_lane(shared, lane, positions.len(), &lane_verdicts);
        for (&i, verdict) in positions.iter().zip(lane_verdicts) {
            verdicts[i] = verdict;
        }
    }
    verdicts
}

fn count_lane(shared: &Shared, lane: u32, records: usize, verdicts: &[bool]) {
    let metrics = &shared.metrics;
    let failed = verdicts.contains(&false);
    if lane == COMMON_LANE {
        if failed {
            metrics.failed_batches_common.inc();
        }
    } else {
        metrics.isolated_tx.add(records as u64);
        if failed {
            metrics.failed_batches_isolated.inc();
        }
    }
}

/// Verifies the signatures of `records` signed for network `network_id`, in one batch:
/// one verdict per record, in order. `messages` is scratch space kept by the caller. The
/// signature stage and a validator's check of a proposal both verify through here.
pub(crate) fn verify_signatures<'r>(
    verifier: &Verifier,
    network_id: u64,
    records: impl Iterator<Item = &'r TxRecord> + Clone,
    messages: &mut Vec<[u8; SIGNING_MESSAGE_BYTES]>,
) -> Vec<bool> {
    let items = signature_items(network_id, records, messages);
    let mut verdicts = vec![false; items.len()];
    verifier.verify_batch(&items, &mut verdicts);
    verdicts
}

/// The signature items of `records`: each one's public key, its signing message (made into
/// `messages`, reused between batches) and its signature.
fn signature_items<'a, 'r: 'a>(
    network_id: u64,
    records: impl Iterator<Item = &'r TxRecord> + Clone,
    messages: &'a mut Vec<[u8; SIGNING_MESSAGE_BYTES]>,
) -> Vec<SigItem<'a>> {
    messages.clear();
    messages.extend(
        records
            .clone()
            .map(|record| signing_message(network_id, record)),
    );
    let messages: &'a Vec<[u8; SIGNING_MESSAGE_BYTES]> = messages;
    records
        .zip(messages.iter())
        .map(|(record, message)| SigItem {
            public_key: &record.public_key,
            message,
            signature: &record.signature,
        })
        .collect()
}

/// Answers the transactions of a signature batch that fail there and returns the others, in
/// order. A bad signature is answered `bad_signature`; a linked chain with one fails whole
/// (all or nothing), its other members answered `linked_event_failed`. Chains are found by
/// their flags: the mempool delivers each one whole and contiguous.
fn answer_failed_signatures(
    shared: &Shared,
    txs: Vec<PendingTx>,
    verdicts: &[bool],
) -> Vec<PendingTx> {
    let mut failed = vec![false; txs.len()];
    for unit in linked_units(&txs, |tx| tx.record.is_linked()) {
        if verdicts[unit.clone()].contains(&false) {
            failed[unit].fill(true);
        }
    }
    // Counted before the answers go out, so that a client that heard sees the count.
    let bad_signatures = verdicts.iter().filter(|valid| !**valid).count();
    shared
        .counters
        .bad_signatures
        .fetch_add(bad_signatures as u64, Ordering::Relaxed);
    let mut valid = Vec::with_capacity(txs.len());
    for ((tx, &signature_ok), &fails) in txs.into_iter().zip(verdicts).zip(&failed) {
        if !fails {
            valid.push(tx);
        } else if signature_ok {
            tx.acknowledge(ResultCode::LinkedEventFailed, None);
        } else {
            tx.acknowledge(ResultCode::BadSignature, None);
        }
    }
    shared.notify_ack_listeners();
    valid
}
