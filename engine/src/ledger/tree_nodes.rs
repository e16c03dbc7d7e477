//! One level of the accounts' tree in memory of its own. With millions of accounts the lower
//! levels are hundreds of megabytes read at random, a node or two per changed account per
//! level; on 4 KiB pages nearly every such read also misses the TLB. A level this large is
//! kept in an anonymous mapping that asks the kernel for 2 MiB pages (`MADV_HUGEPAGE`, which
//! transparent huge pages honour in their default `madvise` mode), so that the whole tree's
//! translations fit the TLB. Smaller levels, and any level where the mapping cannot be made,
//! stay on the heap: same contents, same results, only slower at scale.

use memmap2::{Advice, MmapMut, MmapOptions};
use std::ops::{Deref, DerefMut};
use tally_kernels::merkle::Hash;

/// Levels of at least this many bytes are mapped (one huge page).
const MAPPED_MIN_BYTES: usize = 2 << 20;

pub(super) enum TreeNodes {
    Heap(Vec<Hash>),
    Mapped { map: MmapMut, len: usize },
}

impl std::fmt::Debug for TreeNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            TreeNodes::Heap(_) => "heap",
            TreeNodes::Mapped { .. } => "mapped",
        };
        write!(f, "TreeNodes({kind}, {} nodes)", self.len())
    }
}

impl TreeNodes {
    /// `len` zero nodes.
    pub(super) fn zeroed(len: usize) -> TreeNodes {
        let bytes = len * std::mem::size_of::<Hash>();
        if bytes >= MAPPED_MIN_BYTES {
            if let Ok(map) = MmapOptions::new().len(bytes).map_anon() {
                // Only a request: without huge pages the mapping works on small ones.
                if let Err(error) = map.advise(Advice::HugePage) {
                    tracing::debug!(%error, "the state tree's level stays on small pages");
                }
                return TreeNodes::Mapped { map, len };
            }
        }
        TreeNodes::Heap(vec![[0u8; 32]; len])
    }

    /// Grows or shrinks to `len` nodes, new ones zero.
    pub(super) fn resize(&mut self, len: usize) {
        if len == self.len() {
            return;
        }
        if let TreeNodes::Heap(nodes) = self {
            if len * std::mem::size_of::<Hash>() < MAPPED_MIN_BYTES {
                nodes.resize(len, [0u8; 32]);
                return;
            }
        }
        let mut resized = TreeNodes::zeroed(len);
        let kept = len.min(self.len());
        resized[..kept].copy_from_slice(&self[..kept]);
        *self = resized;
    }
}

impl Clone for TreeNodes {
    fn clone(&self) -> TreeNodes {
        let mut copy = TreeNodes::zeroed(self.len());
        copy.copy_from_slice(self);
        copy
    }
}

impl Deref for TreeNodes {
    type Target = [Hash];

    fn deref(&self) -> &[Hash] {
        match self {
            TreeNodes::Heap(nodes) => nodes,
            TreeNodes::Mapped { map, len } => &map.as_chunks::<32>().0[..*len],
        }
    }
}

impl DerefMut for TreeNodes {
    fn deref_mut(&mut self) -> &mut [Hash] {
        match self {
            TreeNodes::Heap(nodes) => nodes,
            TreeNodes::Mapped { map, len } => &mut map.as_chunks_mut::<32>().0[..*len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_heap_levels_hold_the_same_nodes() {
        let large = MAPPED_MIN_BYTES / 32 + 3;
        for len in [0, 1, 5, large] {
            let nodes: Vec<Hash> = (0..len).map(|i| [(i % 251) as u8; 32]).collect();
            let mut level = TreeNodes::zeroed(len);
            level.copy_from_slice(&nodes);
            assert_eq!(&level[..], &nodes[..], "{len}");
            assert_eq!(matches!(level, TreeNodes::Mapped { .. }), len == large);
            let copy = level.clone();
            assert_eq!(&copy[..], &nodes[..]);
            // growing keeps the nodes and adds zeros; it may move a level onto its own mapping
            level.resize(len + large);
            assert_eq!(&level[..len], &nodes[..]);
            assert!(level[len..].iter().all(|node| *node == [0u8; 32]));
            assert!(matches!(level, TreeNodes::Mapped { .. }));
            level[len] = [9; 32];
            assert_eq!(level[len], [9; 32]);
            assert_eq!(&copy[..], &nodes[..], "a clone is its own memory");
        }
    }
}
