//! The pool of verified transactions a validator proposes from: its own clients' and those
//! other validators passed on, in arrival order, bounded; decided ones leave it.

use super::*;

/// Verified transactions waiting for a block.
pub(super) struct Pool {
    /// Whole batches in arrival order (a batch never splits a linked chain); records already
    /// in a block are skipped and pruned.
    pub(super) chunks: VecDeque<Vec<TxRecord>>,
    /// Pending records by id: what is verified and not yet in a block.
    pub(super) pending: HashMap<u128, TxRecord>,
    /// This node's clients' transactions, answered when their block is durable.
    pub(super) local: HashMap<u128, PendingTx>,
    pub(super) max: usize,
    /// Recently decided ids, oldest first in `decided_order`.
    pub(super) decided: std::collections::HashSet<u128>,
    pub(super) decided_order: VecDeque<u128>,
}

impl Pool {
    pub(super) fn has_room(&self) -> bool {
        self.pending.len() < self.max
    }

    /// Adds a batch; returns the records taken (new ids). A record whose id is pending
    /// already is left out (and a local one answered `duplicate_id`).
    pub(super) fn add(&mut self, records: Vec<TxRecord>) -> Vec<TxRecord> {
        let mut taken = Vec::with_capacity(records.len());
        // The pool may pass its maximum by one batch: `run` stops reading batches once it
        // is reached, and nothing taken from a client is dropped.
        for record in records {
            if self.decided.contains(&record.id()) {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = self.pending.entry(record.id())
            {
                slot.insert(record);
                taken.push(record);
            }
        }
        if !taken.is_empty() {
            self.chunks.push_back(taken.clone());
        }
        taken
    }

    /// Records for the next block, in arrival order, whole chunks only, at most `max`.
    pub(super) fn take_for_block(&self, max: usize) -> Vec<TxRecord> {
        let mut out = Vec::new();
        for chunk in &self.chunks {
            let live: Vec<&TxRecord> = chunk
                .iter()
                .filter(|r| self.pending.contains_key(&r.id()))
                .collect();
            if out.len() + live.len() > max {
                break;
            }
            out.extend(live.into_iter().copied());
        }
        out
    }

    /// Removes what a decided block holds; returns this node's clients' transactions among
    /// them with their result codes.
    pub(super) fn remove_decided(
        &mut self,
        records: &[TxRecord],
        codes: &[ResultCode],
    ) -> (Vec<PendingTx>, Vec<ResultCode>) {
        let mut txs = Vec::new();
        let mut results = Vec::new();
        for (record, code) in records.iter().zip(codes) {
            let id = record.id();
            if self.pending.get(&id) == Some(record) {
                self.pending.remove(&id);
            }
            if self.decided.insert(id) {
                self.decided_order.push_back(id);
                if self.decided_order.len() > DECIDED_IDS_MAX {
                    let oldest = self.decided_order.pop_front().expect("not empty");
                    self.decided.remove(&oldest);
                }
            }
            if let Some(local) = self.local.remove(&id) {
                if local.record == *record {
                    txs.push(local);
                    results.push(*code);
                } else {
                    // Another transaction with the same id was decided first.
                    local.acknowledge(ResultCode::DuplicateId, None);
                }
            }
        }
        let pending = &self.pending;
        self.chunks.retain_mut(|chunk| {
            chunk.retain(|r| pending.get(&r.id()) == Some(r));
            !chunk.is_empty()
        });
        (txs, results)
    }
}
