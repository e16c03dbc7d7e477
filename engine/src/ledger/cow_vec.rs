//! A vector in fixed chunks behind `Arc`, copied on write: cloning it clones the chunk
//! pointers (O(chunks), not O(elements)), and a later write through either copy copies only
//! the chunk it touches (`Arc::make_mut`). A chunk is an `Arc<[T]>`, its elements in the
//! `Arc`'s own allocation, so that a read follows one pointer from the chunk table. The
//! ledger keeps its accounts in one, so that the copy a checkpoint is written from
//! ([`super::Ledger::copy_for_snapshot`]) costs the executor microseconds at millions of
//! accounts, and the chunks the next blocks change are copied once each while the checkpoint
//! thread still holds the copy.
//!
//! A write does not pay an atomic read-modify-write on the chunk's reference count
//! (`Arc::make_mut` and `Arc::get_mut` do one, a locked instruction that waits for the memory
//! accesses before it). The vector remembers which chunks it alone holds (`owned`: set when
//! it made a chunk or `Arc::make_mut` made it unique, cleared for every chunk when it is
//! cloned) and writes those in place; this module's one `unsafe` block rests on that
//! invariant, which debug builds check at every such write.

#![allow(unsafe_code)]

use std::ops::{Index, IndexMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Elements per chunk: a write after a copy copies this many (about 17 KiB of accounts), and
/// a copy clones one pointer per this many.
pub const COW_CHUNK: usize = 128;

/// A growable vector whose clone shares its chunks until they are written.
pub struct CowVec<T> {
    /// Every chunk but the last holds exactly [`COW_CHUNK`] elements; the last holds 1 to
    /// [`COW_CHUNK`] (there is no empty chunk).
    chunks: Vec<Arc<[T]>>,
    /// Per chunk: true only while this vector holds the chunk's one reference (no other
    /// `Arc` to it, and no `Weak` is ever made). Set when the chunk is made here or made
    /// unique by `Arc::make_mut`; cleared for every chunk whenever the vector is cloned (the
    /// only way a chunk gets a second reference). Atomic so that `clone` (`&self`) can clear
    /// it; a write reads and sets it through `&mut`, with no atomic operation.
    owned: Vec<AtomicBool>,
    len: usize,
}

impl<T> Default for CowVec<T> {
    fn default() -> CowVec<T> {
        CowVec {
            chunks: Vec::new(),
            owned: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Clone for CowVec<T> {
    /// Shares every chunk (one pointer each); neither vector owns a chunk until a write
    /// makes it unique again.
    fn clone(&self) -> CowVec<T> {
        for owned in &self.owned {
            owned.store(false, Ordering::Relaxed);
        }
        CowVec {
            chunks: self.chunks.clone(),
            owned: self.chunks.iter().map(|_| AtomicBool::new(false)).collect(),
            len: self.len,
        }
    }
}

impl<T: Clone> CowVec<T> {
    pub fn new() -> CowVec<T> {
        CowVec::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        if index < self.len {
            Some(&self.chunks[index / COW_CHUNK][index % COW_CHUNK])
        } else {
            None
        }
    }

    /// The element at `index` for writing: its chunk is copied first if a clone shares it.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index < self.len {
            Some(&mut self.chunk_mut(index / COW_CHUNK)[index % COW_CHUNK])
        } else {
            None
        }
    }

    /// Chunk `at` for writing: in place if this vector owns it, else made unique (copied if
    /// a clone still holds it) and owned from then on.
    #[inline]
    fn chunk_mut(&mut self, at: usize) -> &mut [T] {
        let owned = self.owned[at].get_mut();
        let chunk = &mut self.chunks[at];
        if *owned {
            debug_assert!(
                Arc::get_mut(chunk).is_some(),
                "an owned chunk has no other reference"
            );
            // SAFETY: `owned` is true only while `chunk` is the one reference to its
            // allocation (see the field): no other `Arc` or `Weak` can read or write it, and
            // the `&mut` borrow of `chunk` (through `&mut self`) lasts as long as the slice
            // returned, so nothing else reaches it through this vector either. The pointer
            // comes from the `Arc`'s own allocation pointer, as `Arc::get_mut` uses it.
            unsafe { &mut *(Arc::as_ptr(chunk) as *mut [T]) }
        } else {
            *owned = true;
            Arc::make_mut(chunk)
        }
    }

    /// Adds one element (copying the last chunk if it is partial: O([`COW_CHUNK`])).
    pub fn push(&mut self, value: T) {
        self.extend(std::iter::once(value));
    }

    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            chunks: self.chunks.iter(),
            current: Default::default(),
            left: self.len,
        }
    }

    /// How many chunks `self` and `other` share (for tests).
    pub fn shared_chunks(&self, other: &CowVec<T>) -> usize {
        self.chunks
            .iter()
            .zip(&other.chunks)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

/// The elements in order.
#[derive(Clone)]
pub struct Iter<'a, T> {
    chunks: std::slice::Iter<'a, Arc<[T]>>,
    current: std::slice::Iter<'a, T>,
    left: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(item) = self.current.next() {
                self.left -= 1;
                return Some(item);
            }
            self.current = self.chunks.next()?.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T: Clone> Index<usize> for CowVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, index: usize) -> &T {
        // the last chunk holds exactly what is left: an index past the end is out of its
        // bounds (or past the chunks)
        &self.chunks[index / COW_CHUNK][index % COW_CHUNK]
    }
}

impl<T: Clone> IndexMut<usize> for CowVec<T> {
    #[inline]
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunk_mut(index / COW_CHUNK)[index % COW_CHUNK]
    }
}

impl<T: Clone> Extend<T> for CowVec<T> {
    /// O(elements added), plus one copy of a partial last chunk.
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return;
        }
        let mut chunk: Vec<T> = Vec::with_capacity(COW_CHUNK);
        if !self.len.is_multiple_of(COW_CHUNK) {
            let last = self.chunks.pop().expect("a partial chunk");
            self.owned.pop();
            chunk.extend_from_slice(&last);
        }
        for value in values {
            chunk.push(value);
            self.len += 1;
            if chunk.len() == COW_CHUNK {
                self.chunks.push(Arc::from(std::mem::take(&mut chunk)));
                self.owned.push(AtomicBool::new(true));
                chunk.reserve_exact(COW_CHUNK);
            }
        }
        if !chunk.is_empty() {
            self.chunks.push(Arc::from(chunk));
            self.owned.push(AtomicBool::new(true));
        }
    }
}

impl<T: Clone> FromIterator<T> for CowVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> CowVec<T> {
        let mut out = CowVec::new();
        out.extend(values);
        out
    }
}

impl<T: Clone> From<Vec<T>> for CowVec<T> {
    fn from(values: Vec<T>) -> CowVec<T> {
        values.into_iter().collect()
    }
}

impl<'a, T: Clone> IntoIterator for &'a CowVec<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: Clone + PartialEq> PartialEq for CowVec<T> {
    fn eq(&self, other: &CowVec<T>) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Clone + std::fmt::Debug> std::fmt::Debug for CowVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_pushes_and_iterates_like_a_vec_across_chunk_edges() {
        for len in [
            0usize,
            1,
            COW_CHUNK - 1,
            COW_CHUNK,
            COW_CHUNK + 1,
            5 * COW_CHUNK + 3,
        ] {
            let plain: Vec<u64> = (0..len as u64).map(|i| i * 3).collect();
            let mut cow = CowVec::from(plain.clone());
            assert_eq!(cow.len(), len);
            assert!(cow.iter().copied().eq(plain.iter().copied()));
            assert_eq!(cow.iter().len(), len);
            for (i, value) in plain.iter().enumerate() {
                assert_eq!(cow[i], *value);
            }
            assert_eq!(cow.get(len), None);
            let from_iter: Vec<u64> = (&cow).into_iter().copied().collect();
            assert_eq!(from_iter, plain);
            cow.push(7);
            assert_eq!(cow[len], 7);
            assert_eq!(cow.len(), len + 1);
        }
    }

    #[test]
    fn a_clone_shares_every_chunk_and_a_write_copies_only_its_own() {
        let original: CowVec<u64> = (0..10 * COW_CHUNK as u64).collect();
        let mut live = original.clone();
        assert_eq!(live.shared_chunks(&original), 10);
        live[3 * COW_CHUNK + 5] = 1_000_000;
        *live.get_mut(9 * COW_CHUNK).expect("in range") += 1;
        live.push(42);
        // the copy keeps what it had; the live vector copied two chunks and added one
        assert_eq!(original[3 * COW_CHUNK + 5], (3 * COW_CHUNK + 5) as u64);
        assert_eq!(original[9 * COW_CHUNK], (9 * COW_CHUNK) as u64);
        assert_eq!(original.len(), 10 * COW_CHUNK);
        assert_eq!(live[3 * COW_CHUNK + 5], 1_000_000);
        assert_eq!(live[9 * COW_CHUNK], (9 * COW_CHUNK) as u64 + 1);
        assert_eq!(live.shared_chunks(&original), 8);
        // a second copy: the chunks the live vector owned again are shared again, and a
        // write copies them once more
        let second = live.clone();
        live[3 * COW_CHUNK + 5] = 7;
        assert_eq!(second[3 * COW_CHUNK + 5], 1_000_000);
        assert_eq!(live[3 * COW_CHUNK + 5], 7);
        drop(second);
        // once the copy is gone, writes go in place
        drop(original);
        let before = Arc::as_ptr(&live.chunks[3]).cast::<u64>();
        live[3 * COW_CHUNK] = 5;
        assert_eq!(Arc::as_ptr(&live.chunks[3]).cast::<u64>(), before);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn an_index_past_the_end_panics_even_inside_the_last_chunk() {
        let cow: CowVec<u8> = (0..3).collect();
        let _ = cow[3];
    }
}
