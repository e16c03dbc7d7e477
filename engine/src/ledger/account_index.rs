//! Where each account sits in the ledger's account vector (sorted by id). A population of
//! millions is mostly long runs of consecutive ids (the genesis's account ranges): a run is
//! one entry, found by binary search among a few, and its accounts' positions are
//! arithmetic, with no hash table of millions of entries to miss in. Ids outside long runs
//! are in a hash table.

use std::collections::HashMap;

/// Runs of at least this many consecutive ids are kept as runs.
const RUN_MIN: usize = 64;

#[derive(Clone, Debug, Default)]
pub(super) struct AccountIndex {
    /// (first id, one past the last id, position of the first), sorted by id.
    runs: Vec<(u64, u64, usize)>,
    /// The ids outside long runs.
    scattered: HashMap<u64, usize>,
}

impl AccountIndex {
    /// The index of `ids`, sorted ascending without repeats (the ledger's accounts).
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
                    debug_assert!(id > done.1, "ids are sorted without repeats");
                    close(&mut index, done);
                    Some((id, id + 1, position))
                }
                None => Some((id, id + 1, position)),
            };
        }
        if let Some(done) = run {
            close(&mut index, done);
        }
        index
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
