//! The seam between the log and the operating system.
//!
//! Every operation that can fail to reach the disk (reserving a file, writing the segment
//! header and the entries, fdatasync, msync, fsync of the directory) goes through
//! [`FileOps`]. Production uses [`OsFileOps`]; tests wrap it to inject short writes and
//! failed flushes while the real log logic runs over real files.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use memmap2::MmapMut;

/// The file operations of the log. Every method has the real implementation as its default,
/// so a fault injector overrides only the calls it wants to break and delegates the rest.
/// `path` names the file (or directory) the call is about, for targeted faults.
pub trait FileOps: Send + Sync + std::fmt::Debug {
    /// Sets the length of a new segment file to `bytes` and reserves its blocks.
    fn allocate(&self, path: &Path, file: &File, bytes: u64) -> io::Result<()> {
        let _ = path;
        super::mmap::allocate(file, bytes)
    }

    /// Writes some prefix of `bytes` at `offset`; returns how many bytes it wrote, which may
    /// be fewer than asked (a short write), as with `pwrite(2)`.
    fn write_at(&self, path: &Path, file: &File, bytes: &[u8], offset: u64) -> io::Result<usize> {
        let _ = path;
        file.write_at(bytes, offset)
    }

    /// Writes some prefix of the concatenation of `parts` at `offset` with one call
    /// (`pwritev(2)`); returns how many bytes it wrote, which may be fewer than asked.
    /// `append` writes every entry (header, payload, padding) this way.
    fn write_vectored_at(
        &self,
        path: &Path,
        file: &File,
        parts: &[IoSlice<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        let _ = path;
        super::mmap::write_vectored_at(file, parts, offset)
    }

    /// Writes the whole of `bytes` at the current position of `file`, a new file written in
    /// one go (a checkpoint's temporary file).
    fn write_new_file(&self, path: &Path, file: &File, bytes: &[u8]) -> io::Result<()> {
        let _ = path;
        std::io::Write::write_all(&mut &*file, bytes)
    }

    /// Makes the data of `file` durable (fdatasync).
    fn sync_file(&self, path: &Path, file: &File) -> io::Result<()> {
        let _ = path;
        file.sync_data()
    }

    /// Makes the bytes `offset..offset + bytes` of a mapped segment durable (msync MS_SYNC).
    /// On Linux this is `fdatasync` of that byte range of the file (`vfs_fsync_range`),
    /// whether the bytes were written through the map or with `pwrite`.
    fn flush_map(&self, path: &Path, map: &MmapMut, offset: usize, bytes: usize) -> io::Result<()> {
        let _ = path;
        map.flush_range(offset, bytes)
    }

    /// Makes the entries of a directory (created, renamed, removed files) durable.
    fn sync_dir(&self, path: &Path, dir: &File) -> io::Result<()> {
        let _ = path;
        dir.sync_all()
    }
}

/// The real operating system: every default method of [`FileOps`].
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileOps;

impl FileOps for OsFileOps {}

/// Writes all of `bytes` at `offset` through `ops`, continuing after short writes.
/// A write that makes no progress is an error, never a busy loop.
pub(crate) fn write_all_at(
    ops: &dyn FileOps,
    path: &Path,
    file: &File,
    mut bytes: &[u8],
    mut offset: u64,
) -> io::Result<()> {
    while !bytes.is_empty() {
        match ops.write_at(path, file, bytes, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write made no progress",
                ))
            }
            Ok(written) => {
                bytes = bytes.get(written..).ok_or_else(|| {
                    io::Error::other("write reported more bytes than it was given")
                })?;
                offset += written as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Writes all of the concatenation of `parts` at `offset` through `ops`, continuing after
/// short writes. A write that makes no progress is an error, never a busy loop.
pub(crate) fn write_all_vectored_at(
    ops: &dyn FileOps,
    path: &Path,
    file: &File,
    parts: &mut [IoSlice<'_>],
    mut offset: u64,
) -> io::Result<()> {
    let mut parts = parts;
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match ops.write_vectored_at(path, file, parts, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write made no progress",
                ))
            }
            Ok(written) => {
                let asked: usize = parts.iter().map(|part| part.len()).sum();
                if written > asked {
                    return Err(io::Error::other(
                        "write reported more bytes than it was given",
                    ));
                }
                IoSlice::advance_slices(&mut parts, written);
                offset += written as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
