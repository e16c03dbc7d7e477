//! The only unsafe code of the log: mapping segment files (and history index segments),
//! reserving their blocks, writing entries with `pwritev` and locking the log directory.
//!
//! Sharp tool: a mapping is only sound while no one truncates or rewrites the file behind
//! it. The log holds an exclusive `flock` on its directory while open (see [`lock_exclusive`]),
//! and only the log writes segment files (docs/ARCHITECTURE.md invariant), so no cooperating
//! process changes a mapped file. `inspect` maps read-only without the lock; a writer that
//! appends meanwhile can only turn zeros into entries, which inspect reports as a torn tail.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// Maps all of `file` for reading and writing.
pub(crate) fn map_mut(file: &File) -> io::Result<MmapMut> {
    // SAFETY: the caller holds the directory lock (module docs), so no other cooperating
    // process truncates or writes the file while the map lives; the log itself only changes
    // the file's length before mapping it, never after. The log's own `pwritev` of an entry
    // changes bytes past the last entry only, which no borrowed slice of the map covers
    // (`append` takes `&mut Log`, so no reader's slice is alive during the write).
    unsafe { MmapOptions::new().map_mut(file) }
}

/// Maps all of `file` read-only.
pub(crate) fn map_read(file: &File) -> io::Result<Mmap> {
    // SAFETY: segment files are never truncated by the log once created (module docs); a
    // concurrent writer only changes zero bytes past the last entry, which the reader treats
    // as an unfinished tail, so the bytes it reads are never invalid for `&[u8]`.
    unsafe { MmapOptions::new().map(file) }
}

/// Maps a history index segment read-only (`log::history`).
pub(crate) fn map_index_segment(file: &File) -> io::Result<Mmap> {
    // SAFETY: index segments are written whole under a temporary name and renamed into
    // place, never written again; the index drops a segment's map before it removes the file
    // (a removed file stays valid while mapped anyway), so the mapped bytes never change.
    unsafe { MmapOptions::new().map(file) }
}

/// Sets the file length to `bytes` and reserves its blocks, so that entry writes cannot hit
/// ENOSPC later (and the stores through the map that cut a torn tail cannot raise SIGBUS).
pub(crate) fn allocate(file: &File, bytes: u64) -> io::Result<()> {
    let length = libc::off_t::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    // SAFETY: posix_fallocate only reads its integer arguments; the descriptor is valid
    // because `file` is borrowed for the duration of the call.
    let code = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length) };
    match code {
        0 => Ok(()),
        // Filesystems without fallocate: fall back to a sparse length (documented in
        // docs/STORAGE.md: such a filesystem can still run out of space under the map).
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(bytes),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}

/// Writes some prefix of the concatenation of `parts` at `offset` with one `pwritev(2)`;
/// returns how many bytes it wrote (a short write is possible, as with `pwrite`).
pub(crate) fn write_vectored_at(
    file: &File,
    parts: &[IoSlice<'_>],
    offset: u64,
) -> io::Result<usize> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "write offset too large"))?;
    // At most IOV_MAX (1024 on Linux) slices per call; the log passes three.
    let count = libc::c_int::try_from(parts.len().min(1024)).expect("at most 1024");
    // SAFETY: `IoSlice` is ABI-compatible with `struct iovec` on Unix (documented by std);
    // `parts` borrows `count` valid slices for the duration of the call, which only reads
    // them; the descriptor is valid because `file` is borrowed for the call.
    let written = unsafe {
        libc::pwritev(
            file.as_raw_fd(),
            parts.as_ptr().cast::<libc::iovec>(),
            count,
            offset,
        )
    };
    if written < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(written as usize)
    }
}

/// Takes an exclusive advisory lock on `file` without waiting.
/// Returns `Ok(false)` when another open file description holds it.
pub(crate) fn lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock only reads its integer arguments; the descriptor is valid because
    // `file` is borrowed for the duration of the call. The lock is released when the file
    // is closed, which happens when `Log` is dropped.
    let code = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if code == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error)
    }
}
