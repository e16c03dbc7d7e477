//! Where each account sits in the ledger's account vector (the genesis's accounts sorted by
//! id, then those opened since in the order they were opened). A population of
//! millions is mostly long runs of consecutive ids (the genesis's account ranges): a run is
//! one entry, found by binary search among a few, and its accounts' positions are
//! arithmetic, with no hash table of millions of entries to miss in. Ids outside long runs
//! are in a hash table. Accounts opened later are added one by one, or as a run (a bank's
//! customers opened together).

use std::collections::HashMap;

/// Runs of at least this many consecutive ids are kept as runs.
const RUN_MIN: usize = 64;

#[derive(Clone, Debug, Default)]
pub(super) struct AccountIndex {
    /// (first id, one past the last id, position of the first), sorted by id (ids are
    /// unique, so runs never overlap).
    runs: Vec<(u64, u64, usize)>,
    /// The ids outside long runs.
    scattered: HashMap<u64, usize>,
}

impl AccountIndex {
    /// The index of `ids`, without repeats, in the ledger's order (the genesis's sorted, then
    /// the opened ones): a run is consecutive ids at consecutive positions.
    pub(super) fn new(ids: impl ExactSizeIterator<Item = u64>) -> AccountIndex {
        let mut index = AccountIndex::default();
        let mut run: Option<(u64, u64, usize)> = None;
        let close = |index: &mut AccountIndex, (first, end, base): (u64, u64, usize)| {
            if (end - first) as usize >= RUN_MIN {
                index.runs.push((first, end, base));
            } else {
                for (offset, id) in (first..end).enumerate() {
                    index.scattered.insert(id, base + offset);
                }
            }
        };
        for (position, id) in ids.enumerate() {
            run = match run {
                Some((first, end, base)) if end == id => Some((first, end + 1, base)),
                Some(done) => {
                    close(&mut index, done);
                    Some((id, id + 1, position))
                }
                None => Some((id, id + 1, position)),
            };
        }
        if let Some(done) = run {
            close(&mut index, done);
        }
        index.runs.sort_unstable();
        index
    }

    /// Adds account `id` at `position` (an account opened after the genesis).
    pub(super) fn insert(&mut self, id: u64, position: usize) {
        self.scattered.insert(id, position);
    }

    /// Adds the accounts `first..end` at positions from `base` on (a bank's customers).
    pub(super) fn insert_run(&mut self, first: u64, end: u64, base: usize) {
        if (end - first) as usize >= RUN_MIN {
            let at = self.runs.partition_point(|&(start, _, _)| start < first);
            self.runs.insert(at, (first, end, base));
        } else {
            for (offset, id) in (first..end).enumerate() {
                self.scattered.insert(id, base + offset);
            }
        }
    }

    /// The position of account `id`, if it exists.
    #[inline]
    pub(super) fn get(&self, id: u64) -> Option<usize> {
        let after = self.runs.partition_point(|&(first, _, _)| first <= id);
        if after > 0 {
            let (first, end, base) = self.runs[after - 1];
            if id < end {
                return Some(base + (id - first) as usize);
            }
        }
        self.scattered.get(&id).copied()
    }

    /// The position of account `id`, which must exist.
    #[inline]
    pub(super) fn at(&self, id: u64) -> usize {
        self.get(id)
            .unwrap_or_else(|| panic!("account {id} is in the ledger"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_scattered_ids_give_every_position_and_nothing_else() {
        // short runs, a long run, single ids, another long run
        let mut ids: Vec<u64> = vec![1, 2, 3, 7, 1_000, 1_001];
        ids.extend(5_000..5_000 + 300);
        ids.extend([6_000, 9_999]);
        ids.extend(1_000_000..1_000_000 + RUN_MIN as u64);
        let index = AccountIndex::new(ids.iter().copied());
        assert_eq!(index.runs.len(), 2);
        assert_eq!(index.scattered.len(), ids.len() - 300 - RUN_MIN);
        for (position, &id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(position), "{id}");
        }
        // accounts opened later: one at a time, a short run, a long run below the others
        let mut index = index;
        let mut next = ids.len();
        index.insert(5, next);
        next += 1;
        index.insert_run(10, 13, next);
        next += 3;
        index.insert_run(200, 200 + RUN_MIN as u64, next);
        assert_eq!(index.get(5), Some(ids.len()));
        assert_eq!(index.get(12), Some(ids.len() + 3));
        assert_eq!(index.get(200), Some(next));
        assert_eq!(index.get(199 + RUN_MIN as u64), Some(next + RUN_MIN - 1));
        assert_eq!(index.get(5_000), Some(6), "the genesis's runs still answer");
        // rebuilt from the same order (a restore), it answers alike
        let mut order = ids.clone();
        order.push(5);
        order.extend(10..13);
        order.extend(200..200 + RUN_MIN as u64);
        let rebuilt = AccountIndex::new(order.iter().copied());
        for (position, &id) in order.iter().enumerate() {
            assert_eq!(rebuilt.get(id), Some(position), "{id}");
            assert_eq!(index.get(id), Some(position), "{id}");
        }
        for missing in [
            0,
            4,
            8,
            999,
            1_002,
            4_999,
            5_300,
            6_001,
            999_999,
            1_000_064,
            u64::MAX,
        ] {
            assert_eq!(index.get(missing), None, "{missing}");
        }
    }
}
