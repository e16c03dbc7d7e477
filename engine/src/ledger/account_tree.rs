//! The accounts' Merkle tree, kept between blocks and updated for the accounts a block
//! changed: O(changed x log n) hashes per block instead of rehashing every account
//! (docs/MERKLE.md, "The state tree"). Its root is the root that `merkle::root` gives over
//! every account leaf, the same tree (keyed BLAKE3, an odd last node promoted unchanged), so
//! the state root's definition does not depend on how it was computed.

use super::tree_nodes::TreeNodes;
use rayon::prelude::*;
use std::sync::Mutex;
use tally_kernels::merkle::{self, Hash};

/// Every level of the tree (leaf hashes first, root last) and the leaves changed since the
/// last root. Behind a mutex so that `Ledger::state_root(&self)` can bring it up to date; only
/// the executor's thread ever takes it.
#[derive(Debug, Default)]
pub(super) struct AccountTree {
    inner: Mutex<Inner>,
}

#[derive(Clone, Debug, Default)]
struct Inner {
    /// Empty until first built from every leaf.
    levels: Vec<TreeNodes>,
    /// Leaf indices whose account changed since the levels were last brought up to date.
    dirty: Vec<usize>,
}

impl Clone for AccountTree {
    fn clone(&self) -> AccountTree {
        AccountTree {
            inner: Mutex::new(self.lock().clone()),
        }
    }
}

impl Inner {
    /// Makes room for `count` leaves (more than now): the new leaves are marked changed, and
    /// each level gets the nodes (and the tree the levels) that many leaves need, to be hashed
    /// along the new leaves' paths.
    fn grow(&mut self, count: usize) {
        let old = self.levels[0].len();
        self.dirty.extend(old..count);
        let mut size = count;
        let mut level = 0;
        loop {
            match self.levels.get_mut(level) {
                Some(nodes) => nodes.resize(size),
                None => self.levels.push(TreeNodes::zeroed(size)),
            }
            if size == 1 {
                break;
            }
            size = size.div_ceil(2);
            level += 1;
        }
    }
}

impl Inner {
    /// Builds every level from every leaf, on every core: the leaves hashed a task's worth
    /// at a time from `leaf` (never all laid out at once: at ten million accounts that would
    /// be a gigabyte), then each level above from the one below.
    fn build(
        &mut self,
        count: usize,
        leaf_bytes: usize,
        leaf: &(impl Fn(usize, &mut [u8]) + Sync),
    ) {
        /// Leaves per task: their bytes (about 100 KiB) stay in the core's L2.
        const LEAVES_PER_TASK: usize = 1024;
        if count == 0 {
            self.levels = vec![TreeNodes::Heap(vec![merkle::empty_root()])];
            self.dirty.clear();
            return;
        }
        // each level straight into its own storage (on huge pages where large), no copy
        let mut leaves = TreeNodes::zeroed(count);
        leaves
            .par_chunks_mut(LEAVES_PER_TASK)
            .enumerate()
            .for_each_init(
                || vec![0u8; LEAVES_PER_TASK * leaf_bytes],
                |bytes, (task, out)| {
                    let first = task * LEAVES_PER_TASK;
                    let bytes = &mut bytes[..out.len() * leaf_bytes];
                    for (offset, leaf_out) in bytes.chunks_exact_mut(leaf_bytes).enumerate() {
                        leaf(first + offset, leaf_out);
                    }
                    merkle::leaf_hashes(bytes, leaf_bytes, out);
                },
            );
        self.levels = vec![leaves];
        while let Some(below) = self.levels.last().filter(|level| level.len() > 1) {
            // parents of each pair, an odd last node promoted unchanged
            let pairs = below.len() / 2;
            let mut above = TreeNodes::zeroed(below.len().div_ceil(2));
            above[..pairs]
                .par_chunks_mut(LEAVES_PER_TASK)
                .zip(below[..2 * pairs].par_chunks(2 * LEAVES_PER_TASK))
                .for_each(|(out, children)| merkle::node_hashes(children, out));
            if below.len() % 2 == 1 {
                above[pairs] = below[below.len() - 1];
            }
            self.levels.push(above);
        }
        self.dirty.clear();
    }
}

impl AccountTree {
    /// Builds the tree from every leaf now unless it is built (a node does it at start, so
    /// that its first block does not pay for it); [`AccountTree::root`] builds it too if it
    /// was not.
    pub(super) fn build(
        &self,
        count: usize,
        leaf_bytes: usize,
        leaf: impl Fn(usize, &mut [u8]) + Sync,
    ) {
        let mut inner = self.lock();
        if inner.levels.is_empty() {
            inner.build(count, leaf_bytes, &leaf);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Notes that leaf `index` changed.
    pub(super) fn mark(&mut self, index: usize) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if !inner.levels.is_empty() {
            inner.dirty.push(index);
        }
    }

    /// The root over `count` leaves, `leaf(i)` giving the bytes of leaf `i` (`leaf_bytes`
    /// each): built from every leaf the first time, then updated for the changed leaves.
    /// Leaves appended since (accounts opened) are changed leaves too: the levels grow, and
    /// every new node lies on the path of a new leaf.
    pub(super) fn root(
        &self,
        count: usize,
        leaf_bytes: usize,
        leaf: impl Fn(usize, &mut [u8]) + Sync,
    ) -> Hash {
        let mut inner = self.lock();
        if !inner.levels.is_empty() && count > inner.levels[0].len() {
            inner.grow(count);
        }
        if inner.levels.is_empty() || inner.levels[0].len() != count {
            inner.build(count, leaf_bytes, &leaf);
            return *inner.levels.last().and_then(|l| l.first()).expect("a root");
        }
        if !inner.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut inner.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            // The changed leaves, hashed side by side (8 per SIMD call where the CPU has it).
            let mut bytes = vec![0u8; dirty.len() * leaf_bytes];
            for (&index, out) in dirty.iter().zip(bytes.chunks_exact_mut(leaf_bytes)) {
                leaf(index, out);
            }
            let mut hashes = vec![[0u8; 32]; dirty.len()];
            merkle::leaf_hashes(&bytes, leaf_bytes, &mut hashes);
            for (&index, hash) in dirty.iter().zip(&hashes) {
                inner.levels[0][index] = *hash;
            }
            // Then level by level: the parents of the changed nodes, each from its two
            // children (an odd last node promoted unchanged), hashed side by side too.
            let mut children: Vec<Hash> = Vec::with_capacity(2 * dirty.len());
            for level in 0..inner.levels.len() - 1 {
                for parent in dirty.iter_mut() {
                    *parent /= 2;
                }
                dirty.dedup();
                let (lower, upper) = inner.levels.split_at_mut(level + 1);
                let (below, above) = (&lower[level], &mut upper[0]);
                children.clear();
                let mut paired = 0;
                for &parent in &dirty {
                    let left = 2 * parent;
                    match below.get(left + 1) {
                        Some(right) => {
                            children.push(below[left]);
                            children.push(*right);
                            paired += 1;
                        }
                        None => above[parent] = below[left],
                    }
                }
                hashes.resize(paired, [0u8; 32]);
                merkle::node_hashes(&children, &mut hashes);
                let mut hashed = hashes.iter();
                for &parent in &dirty {
                    if 2 * parent + 1 < below.len() {
                        above[parent] = *hashed.next().expect("one hash per paired parent");
                    }
                }
            }
            inner.dirty = dirty;
            inner.dirty.clear();
        }
        *inner.levels.last().and_then(|l| l.first()).expect("a root")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(index: usize, out: &mut [u8]) {
        out.fill(0);
        out[..8].copy_from_slice(&(index as u64 * 7 + 1).to_le_bytes());
    }

    fn root_of(count: usize) -> Hash {
        let mut leaves = vec![0u8; count * 16];
        for (index, bytes) in leaves.chunks_exact_mut(16).enumerate() {
            leaf(index, bytes);
        }
        merkle::root(&leaves, 16)
    }

    #[test]
    fn a_tree_built_task_by_task_gives_the_root_of_one_buffer() {
        // counts around the build's task of 1 024 leaves, and a changed leaf after the build
        for count in [1, 2, 1023, 1024, 1025, 2048, 3001] {
            let tree = AccountTree::default();
            tree.build(count, 16, leaf);
            assert_eq!(tree.root(count, 16, leaf), root_of(count), "{count}");
            let mut grown = tree.clone();
            grown.mark(count);
            assert_eq!(
                grown.root(count + 1, 16, leaf),
                root_of(count + 1),
                "{count} + 1"
            );
        }
        // building again keeps a built tree and its changes
        let mut tree = AccountTree::default();
        tree.build(10, 16, leaf);
        tree.mark(3);
        tree.build(10, 16, |_, out| out.fill(0xff));
        assert_eq!(tree.root(10, 16, leaf), root_of(10));
    }

    #[test]
    fn appended_leaves_give_the_root_of_a_full_rebuild() {
        // every count from 1 to 40 grown to every larger count up to 70: odd last nodes,
        // new levels, several leaves at once
        for from in 1..=40 {
            for to in from + 1..=70 {
                let mut tree = AccountTree::default();
                assert_eq!(tree.root(from, 16, leaf), root_of(from));
                for index in from..to {
                    tree.mark(index);
                }
                assert_eq!(tree.root(to, 16, leaf), root_of(to), "{from} -> {to}");
                // and one more, on its own
                tree.mark(to);
                assert_eq!(tree.root(to + 1, 16, leaf), root_of(to + 1), "{to} + 1");
            }
        }
    }
}
