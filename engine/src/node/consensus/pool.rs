//! The pool of verified transactions a validator proposes from: its own clients' and those
//! other validators passed on, in arrival order, bounded; decided ones leave it.

use super::*;
use std::collections::{BTreeSet, HashSet};

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
    /// Ids of decided records whose `valid_until` is not before the last final block's time:
    /// a copy arriving late (passed on by a peer, verified after the block that held it) is
    /// not proposed again. Once the final block time passes an id's `valid_until`, the id is
    /// forgotten: every later block refuses the record as expired, and [`Pool::add`] drops
    /// such a copy. So the set holds at most one validity window of decided records.
    decided: HashSet<u128>,
    /// The same ids by (`valid_until`, id): the order in which they are forgotten.
    decided_by_expiry: BTreeSet<(u64, u128)>,
    /// Most ids held in `decided` (a safety net: one validity window of decisions should stay
    /// far below it); past it the ids nearest their expiry are forgotten early.
    decided_max: usize,
    /// Ids forgotten early by `decided_max` since start.
    pub(super) decided_capped: u64,
}

impl Pool {
    pub(super) fn new(max: usize, decided_max: usize) -> Pool {
        Pool {
            chunks: VecDeque::new(),
            pending: HashMap::new(),
            local: HashMap::new(),
            max,
            decided: HashSet::new(),
            decided_by_expiry: BTreeSet::new(),
            decided_max,
            decided_capped: 0,
        }
    }

    /// Whether a record with this id was decided and its window is still open.
    pub(super) fn is_decided(&self, id: u128) -> bool {
        self.decided.contains(&id)
    }

    /// Decided ids held (at most one validity window of them, and `decided_max`).
    pub(super) fn decided_count(&self) -> usize {
        self.decided.len()
    }

    pub(super) fn has_room(&self) -> bool {
        self.pending.len() < self.max
    }

    /// Adds a batch; returns the records taken (new ids). A record whose id is pending
    /// already or was decided is left out (and a local one answered `duplicate_id`), and so
    /// is a record whose `valid_until` is before `final_time_ms`, the last final block's
    /// time: no later block can execute it.
    pub(super) fn add(&mut self, records: Vec<TxRecord>, final_time_ms: u64) -> Vec<TxRecord> {
        let mut taken = Vec::with_capacity(records.len());
        // The pool may pass its maximum by one batch: `run` stops reading batches once it
        // is reached, and nothing taken from a client is dropped.
        for record in records {
            if record.valid_until() < final_time_ms || self.decided.contains(&record.id()) {
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

    /// Removes what a decided block holds, remembers its ids and forgets those whose
    /// `valid_until` is before `final_time_ms` (the time of that block, now the last final
    /// one); returns this node's clients' transactions among them with their result codes.
    pub(super) fn remove_decided(
        &mut self,
        records: &[TxRecord],
        codes: &[ResultCode],
        final_time_ms: u64,
    ) -> (Vec<PendingTx>, Vec<ResultCode>) {
        let mut txs = Vec::new();
        let mut results = Vec::new();
        for (record, code) in records.iter().zip(codes) {
            let id = record.id();
            if self.pending.get(&id) == Some(record) {
                self.pending.remove(&id);
            }
            if self.decided.insert(id) {
                self.decided_by_expiry.insert((record.valid_until(), id));
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
        self.forget_decided(final_time_ms);
        let pending = &self.pending;
        self.chunks.retain_mut(|chunk| {
            chunk.retain(|r| pending.get(&r.id()) == Some(r));
            !chunk.is_empty()
        });
        (txs, results)
    }

    /// Forgets the decided ids whose records expired before `final_time_ms`, then, past
    /// `decided_max`, those nearest their expiry (counted in `decided_capped`).
    fn forget_decided(&mut self, final_time_ms: u64) {
        while let Some(&(valid_until, id)) = self.decided_by_expiry.first() {
            let capped = self.decided.len() > self.decided_max;
            if valid_until >= final_time_ms && !capped {
                break;
            }
            self.decided_by_expiry.pop_first();
            self.decided.remove(&id);
            if valid_until >= final_time_ms {
                self.decided_capped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::TxFields;

    fn record(id: u128, valid_until: u64) -> TxRecord {
        TxRecord::new(&TxFields::transfer(id, 1, 2, 10, 1).valid_until(valid_until))
    }

    /// Decides one block at `time_ms` whose records are valid for `window_ms`.
    fn decide(pool: &mut Pool, next_id: &mut u128, time_ms: u64, count: usize, window_ms: u64) {
        let records: Vec<TxRecord> = (0..count)
            .map(|_| {
                *next_id += 1;
                record(*next_id, time_ms + window_ms)
            })
            .collect();
        let taken = pool.add(records.clone(), time_ms);
        assert_eq!(taken.len(), count);
        let codes = vec![ResultCode::Ok; count];
        pool.remove_decided(&records, &codes, time_ms);
        assert!(pool.pending.is_empty() && pool.chunks.is_empty());
    }

    #[test]
    fn decided_ids_stop_growing_once_the_validity_window_has_turned_over() {
        // blocks every 100 ms of 50 records each, valid for 1 s: one window holds 11 blocks
        let (window_ms, step_ms, per_block) = (1_000, 100, 50);
        let mut pool = Pool::new(1 << 16, 1 << 20);
        let mut next_id = 0;
        let mut sizes = Vec::new();
        for block in 0..400u64 {
            decide(
                &mut pool,
                &mut next_id,
                block * step_ms,
                per_block,
                window_ms,
            );
            sizes.push(pool.decided_count());
        }
        let bound = per_block * (window_ms / step_ms + 1) as usize;
        // filled within the first window, then flat through 39 more turnovers
        assert_eq!(sizes[9], 10 * per_block);
        assert!(sizes[10..].iter().all(|&n| n == bound), "{sizes:?}");
        assert_eq!(pool.decided_by_expiry.len(), bound);
        assert_eq!(pool.decided_capped, 0);
    }

    #[test]
    fn a_late_copy_of_a_decided_record_is_never_taken_again() {
        let mut pool = Pool::new(1 << 16, 1 << 20);
        let late = record(7, 1_500);
        pool.add(vec![late], 1_000);
        pool.remove_decided(&[late], &[ResultCode::InsufficientFunds], 1_000);
        // within its window: remembered as decided (a refused record leaves no id in the
        // ledger, so the pool's memory is what keeps it from being proposed again)
        assert!(pool.is_decided(7));
        assert!(pool.add(vec![late], 1_200).is_empty());
        // once the final block time passes its valid_until, the id is forgotten and a copy
        // is dropped as expired instead
        let mut next_id = 100;
        decide(&mut pool, &mut next_id, 1_501, 1, 1_000);
        assert!(!pool.is_decided(7));
        assert!(pool.add(vec![late], 1_501).is_empty());
        assert!(pool.pending.is_empty());
        // a record still valid at the final block time is taken
        assert_eq!(pool.add(vec![record(8, 1_501)], 1_501).len(), 1);
    }

    #[test]
    fn the_decided_id_cap_forgets_the_ids_nearest_their_expiry_and_counts_them() {
        let mut pool = Pool::new(1 << 16, 10);
        let records: Vec<TxRecord> = (1..=25).map(|id| record(id, 10_000 + id as u64)).collect();
        pool.add(records.clone(), 0);
        pool.remove_decided(&records, &[ResultCode::Ok; 25], 0);
        assert_eq!(pool.decided_count(), 10);
        assert_eq!(pool.decided_capped, 15);
        assert!((1..=15).all(|id| !pool.is_decided(id)));
        assert!((16..=25).all(|id| pool.is_decided(id)));
        // expiry forgets the rest without counting them as capped
        pool.remove_decided(&[], &[], 20_000);
        assert_eq!(pool.decided_count(), 0);
        assert_eq!(pool.decided_capped, 15);
    }
}
