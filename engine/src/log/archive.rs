//! Archiving the log prefix before a checkpoint, and the archive marker that records the
//! new base of the log (docs/STORAGE.md, "Archiving").
//!
//! The marker file `ARCHIVE_BASE` in the log directory names the first live segment, the
//! first live sequence and the hash of the last archived entry, so the hash chain stays
//! checked across the cut. Crash order of [`Log::archive_before`]:
//!
//! 1. the new marker is written to `ARCHIVE_BASE.tmp`, fdatasynced, renamed over
//!    `ARCHIVE_BASE`, and the log directory is fsynced;
//! 2. then the segments below the base are renamed into the archive directory, and both
//!    directories are fsynced.
//!
//! Every state in between opens: before the marker rename the old marker (or none) still
//! describes the directory, and the `.tmp` file is removed by `open`; after it, segments
//! below the base that are still in the live directory are ignored by `open` (listed in
//! `Recovery::segments_below_base`) and moved by the next `archive_before`. The reverse
//! order would leave, after a crash, a directory that starts at segment k > 0 with no
//! marker, which `open` must refuse (entries could have been lost).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::format::{
    check_entry_chained, check_entry_self, EntryFault, GENESIS_HASH, SEGMENT_HEADER_BYTES,
};
use super::scan::{self, SegmentView};
use super::{io as log_io, sync_dir, Log};

/// Name of the archive marker file inside the log directory.
pub const ARCHIVE_MARKER_FILE_NAME: &str = "ARCHIVE_BASE";
/// Bytes of the archive marker file.
pub const ARCHIVE_MARKER_BYTES: usize = 80;
/// Magic at the start of the archive marker.
pub const ARCHIVE_MARKER_MAGIC: [u8; 8] = *b"TALLYBAS";
/// Format version of the archive marker; `open` refuses any other.
pub const ARCHIVE_MARKER_VERSION: u32 = 1;

const ARCHIVE_MARKER_HASH_CONTEXT: &str = "tally 2026-11 log archive marker v1";
/// Suffix of a marker being written when the process stopped; it was never the marker.
const MARKER_TEMPORARY_SUFFIX: &str = ".tmp";
const MARKER_CHECKSUM_OFFSET: usize = 72;

/// Where the live log starts: everything before it was archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveBase {
    /// Index of the first segment in the live directory.
    pub segment_index: u64,
    /// Sequence of the first entry in the live log.
    pub first_sequence: u64,
    /// Hash of the entry `first_sequence - 1` (the last archived one): the previous-entry
    /// hash that the first live entry must carry. [`GENESIS_HASH`] for an unarchived log.
    pub previous_hash: [u8; 32],
}

impl ArchiveBase {
    /// The base of a log of which nothing was archived.
    pub const GENESIS: ArchiveBase = ArchiveBase {
        segment_index: 0,
        first_sequence: 0,
        previous_hash: GENESIS_HASH,
    };

    /// The marker bytes (layout in docs/STORAGE.md).
    pub(crate) fn encode(&self) -> [u8; ARCHIVE_MARKER_BYTES] {
        let mut bytes = [0u8; ARCHIVE_MARKER_BYTES];
        bytes[0..8].copy_from_slice(&ARCHIVE_MARKER_MAGIC);
        bytes[8..12].copy_from_slice(&ARCHIVE_MARKER_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.segment_index.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.first_sequence.to_le_bytes());
        bytes[32..64].copy_from_slice(&self.previous_hash);
        let checksum = marker_checksum(&bytes[..MARKER_CHECKSUM_OFFSET]);
        bytes[MARKER_CHECKSUM_OFFSET..].copy_from_slice(&checksum);
        bytes
    }

    /// Decodes and checks marker bytes; the error says what is wrong, for an operator.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ArchiveBase, String> {
        if bytes.len() != ARCHIVE_MARKER_BYTES {
            return Err(format!(
                "file holds {} bytes, a marker holds exactly {ARCHIVE_MARKER_BYTES}",
                bytes.len()
            ));
        }
        if bytes[0..8] != ARCHIVE_MARKER_MAGIC {
            return Err(format!(
                "bad magic {:02x?}, expected TALLYBAS",
                &bytes[0..8]
            ));
        }
        if marker_checksum(&bytes[..MARKER_CHECKSUM_OFFSET]) != bytes[MARKER_CHECKSUM_OFFSET..] {
            return Err("marker checksum mismatch".to_string());
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != ARCHIVE_MARKER_VERSION {
            return Err(format!(
                "marker version {version}; this build reads version {ARCHIVE_MARKER_VERSION} only"
            ));
        }
        if bytes[12..16] != [0; 4] || bytes[64..72] != [0; 8] {
            return Err("reserved marker bytes are not zero".to_string());
        }
        let base = ArchiveBase {
            segment_index: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            first_sequence: u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")),
            previous_hash: bytes[32..64].try_into().expect("32 bytes"),
        };
        // Only whole, non-empty segments are archived: at least one segment and one entry.
        if base.segment_index == 0 || base.first_sequence == 0 {
            return Err(format!(
                "marker names segment {} and sequence {}, but an archive moves at least one \
                 segment and one entry",
                base.segment_index, base.first_sequence
            ));
        }
        Ok(base)
    }
}

fn marker_checksum(bytes: &[u8]) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_derive_key(ARCHIVE_MARKER_HASH_CONTEXT);
    hasher.update(bytes);
    hasher.finalize().as_bytes()[0..8]
        .try_into()
        .expect("8 bytes")
}

/// Path of the marker of the log in `dir`.
pub(crate) fn marker_path(dir: &Path) -> PathBuf {
    dir.join(ARCHIVE_MARKER_FILE_NAME)
}

/// Path of the half-written marker of the log in `dir`.
pub(crate) fn marker_temporary_path(dir: &Path) -> PathBuf {
    dir.join(format!(
        "{ARCHIVE_MARKER_FILE_NAME}{MARKER_TEMPORARY_SUFFIX}"
    ))
}

/// Reads the marker of the log in `dir`: `None` when there is none (nothing archived).
/// Errors: `CorruptArchiveMarker`, `Io`.
pub(crate) fn read_marker(dir: &Path) -> Result<Option<ArchiveBase>, LogError> {
    let path = marker_path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LogError::Io {
                action: "read the archive marker",
                path,
                source,
            })
        }
    };
    ArchiveBase::decode(&bytes)
        .map(Some)
        .map_err(|reason| LogError::CorruptArchiveMarker { file: path, reason })
}

/// Segment files split at the base: those still in the directory below it (left by an
/// interrupted archive) and the live ones.
pub(crate) fn split_at_base(
    files: Vec<(u64, PathBuf)>,
    base: &ArchiveBase,
) -> (Vec<PathBuf>, Vec<(u64, PathBuf)>) {
    let (below, live): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(index, _)| *index < base.segment_index);
    (below.into_iter().map(|(_, path)| path).collect(), live)
}

/// Checks that the first live segment agrees with the marker: its header starts at the
/// marker's sequence and its first entry, when one is readable, carries that sequence and
/// the marker's hash. Without this check a first entry that does not link would look like a
/// torn tail to the scan and be cut. No-op for an unarchived log (`marker` is `None`).
pub(crate) fn check_base(
    marker: Option<&Path>,
    base: &ArchiveBase,
    first: &SegmentView<'_>,
) -> Result<(), LogError> {
    let Some(marker) = marker else {
        return Ok(());
    };
    let mismatch = |reason: String| {
        Err(LogError::ArchiveMarkerMismatch {
            marker: marker.to_path_buf(),
            segment: first.path.to_path_buf(),
            reason,
        })
    };
    if first.header.first_sequence != base.first_sequence {
        return mismatch(format!(
            "the segment starts at sequence {}, the marker says the live log starts at {}",
            first.header.first_sequence, base.first_sequence
        ));
    }
    let offset = SEGMENT_HEADER_BYTES.min(first.bytes.len());
    if check_entry_self(first.bytes, offset).is_err() {
        // No readable first entry: an empty segment or a torn first append; the scan
        // links the next entry written to the marker's hash.
        return Ok(());
    }
    let header = &first.bytes[offset..offset + 48];
    let sequence = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if sequence != base.first_sequence {
        return mismatch(format!(
            "its first entry carries sequence {sequence}, the marker says {}",
            base.first_sequence
        ));
    }
    if header[16..48] != base.previous_hash {
        return mismatch(format!(
            "its first entry links to previous hash {}, the marker records {} as the hash of \
             the last archived entry",
            hex::encode(&header[16..48]),
            hex::encode(base.previous_hash)
        ));
    }
    Ok(())
}

/// What [`Log::archive_before`] moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The segment files moved, as their new paths in the archive directory, in index
    /// order (segments left below the base by an interrupted archive come first).
    pub moved_segments: Vec<PathBuf>,
    /// Bytes of the moved files.
    pub moved_bytes: u64,
    /// The first sequence still in the live log afterwards ([`Log::first_sequence`]).
    pub first_sequence: u64,
    /// Whether a new marker was written (false when only leftovers moved, or nothing).
    pub marker_written: bool,
}

/// Most segment files one `archive_before` moves; a log of 64 MiB segments reaches it after
/// 64 TiB, and a caller that archives at every checkpoint moves a handful.
pub const ARCHIVE_SEGMENT_COUNT_MAX: usize = 1 << 20;

impl Log {
    /// Moves every segment all of whose entries have sequence < `before` into `archive_dir`
    /// and records the new base of the log durably.
    ///
    /// `archive_dir` is created if needed and must be on the same filesystem as the log
    /// (segments move by rename, never by copy). The new marker is written first (a
    /// temporary file, fdatasynced, renamed, the log directory fsynced), then the segments
    /// are renamed and both directories fsynced, so a crash at any point leaves a log that
    /// opens (module docs). The segment being written is never archived, so at most
    /// `before` is rounded down to the start of the segment holding it. Segments that an
    /// interrupted earlier archive left below the base are moved too.
    ///
    /// Returns what moved; an empty report when nothing qualifies (nothing is touched then).
    ///
    /// Errors: `SequenceBeyondEnd` when `before > next_sequence()`; `Poisoned`;
    /// `ArchiveFailed` when the archive directory cannot be prepared, is on another
    /// filesystem, already holds a segment of that name, the marker cannot be written, or a
    /// move fails (the log keeps working; segments not moved stay below the base and the
    /// next call moves them); `Flush` when a directory fsync fails (poisons the log: the
    /// state on disk is valid either way, but the disk is failing).
    pub fn archive_before(
        &mut self,
        before: u64,
        archive_dir: &Path,
    ) -> Result<ArchiveReport, LogError> {
        self.check_poisoned()?;
        if before > self.next_sequence {
            return Err(LogError::SequenceBeyondEnd {
                from: before,
                next_sequence: self.next_sequence,
            });
        }
        // Segment i may go when the next one starts at or before `before`; the last
        // segment (being written) has no next one and always stays.
        let archived_count = self
            .segments
            .windows(2)
            .take_while(|pair| pair[1].first_sequence <= before)
            .count();
        if archived_count == 0 && self.segments_below_base.is_empty() {
            return Ok(ArchiveReport {
                moved_segments: Vec::new(),
                moved_bytes: 0,
                first_sequence: self.base.first_sequence,
                marker_written: false,
            });
        }
        let pending_count = self.segments_below_base.len() + archived_count;
        if pending_count > ARCHIVE_SEGMENT_COUNT_MAX {
            return Err(archive_failed(
                "archive",
                archive_dir,
                io::Error::other(format!(
                    "{pending_count} segments are more than ARCHIVE_SEGMENT_COUNT_MAX = \
                     {ARCHIVE_SEGMENT_COUNT_MAX} per call; archive in smaller steps"
                )),
            ));
        }
        let archive_dir_file = self.prepare_archive_dir(archive_dir, archived_count)?;

        let marker_written = archived_count > 0;
        if marker_written {
            let first_live = &self.segments[archived_count];
            // The first live entry links to the last archived one; an empty first live
            // segment is the one being written, so the chain head is that entry.
            let previous_hash = if first_live.entry_count > 0 {
                let link = SEGMENT_HEADER_BYTES + 16..SEGMENT_HEADER_BYTES + 48;
                first_live.map[link].try_into().expect("32 bytes")
            } else {
                assert_eq!(first_live.first_sequence, self.next_sequence);
                self.last_entry_hash
            };
            let base = ArchiveBase {
                segment_index: first_live.index,
                first_sequence: first_live.first_sequence,
                previous_hash,
            };
            assert!(base.first_sequence > self.base.first_sequence);
            assert!(base.first_sequence <= before);
            self.write_marker(&base)?;
            // From here the marker is durable: the archived segments are below the base
            // whether or not they move.
            self.base = base;
            let drained: Vec<PathBuf> = self
                .segments
                .drain(..archived_count)
                .map(|segment| segment.path)
                .collect();
            self.segments_below_base.extend(drained);
        }

        let mut moved_segments = Vec::with_capacity(self.segments_below_base.len());
        let mut moved_bytes = 0u64;
        while let Some(source) = self.segments_below_base.first().cloned() {
            let target = archive_target(&source, archive_dir);
            let bytes = fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
            fs::rename(&source, &target)
                .map_err(|error| archive_failed("move segment into the archive", &source, error))?;
            self.segments_below_base.remove(0);
            moved_bytes += bytes;
            moved_segments.push(target);
        }
        let ops = self.ops.as_ref();
        ops.sync_dir(archive_dir, &archive_dir_file)
            .map_err(|source| LogError::Flush {
                action: "fsync of the archive directory",
                path: archive_dir.to_path_buf(),
                offset: 0,
                bytes: 0,
                source,
            })
            .and_then(|()| sync_dir(ops, &self.dir, &self.dir_file))
            .map_err(|error| self.poison(error))?;
        tracing::info!(
            moved = moved_segments.len(),
            moved_bytes,
            first_sequence = self.base.first_sequence,
            archive_dir = %archive_dir.display(),
            "log prefix archived"
        );
        Ok(ArchiveReport {
            moved_segments,
            moved_bytes,
            first_sequence: self.base.first_sequence,
            marker_written,
        })
    }

    /// The first sequence still in the live log (0 until something is archived).
    pub fn first_sequence(&self) -> u64 {
        self.base.first_sequence
    }

    /// Where the live log starts ([`ArchiveBase::GENESIS`] until something is archived).
    pub fn archive_base(&self) -> ArchiveBase {
        self.base
    }

    /// Creates and opens `archive_dir` and checks, before anything changes, that every
    /// segment about to move can: same filesystem, no file of that name there yet.
    fn prepare_archive_dir(
        &self,
        archive_dir: &Path,
        archived_count: usize,
    ) -> Result<File, LogError> {
        fs::create_dir_all(archive_dir)
            .map_err(|error| archive_failed("create the archive directory", archive_dir, error))?;
        let archive_dir_file = File::open(archive_dir)
            .map_err(|error| archive_failed("open the archive directory", archive_dir, error))?;
        let device = |path: &Path| {
            fs::metadata(path)
                .map(|metadata| metadata.dev())
                .map_err(|error| archive_failed("read the metadata of", path, error))
        };
        if device(archive_dir)? != device(&self.dir)? {
            return Err(archive_failed(
                "use the archive directory",
                archive_dir,
                io::Error::new(
                    io::ErrorKind::CrossesDevices,
                    format!(
                        "it is on another filesystem than the log {}; segments move by rename, \
                         choose an archive directory on the log's filesystem",
                        self.dir.display()
                    ),
                ),
            ));
        }
        let pending = self
            .segments_below_base
            .iter()
            .chain(self.segments[..archived_count].iter().map(|s| &s.path));
        for source in pending {
            let target = archive_target(source, archive_dir);
            if target.exists() {
                return Err(archive_failed(
                    "move a segment to",
                    &target,
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a file of that name is already archived there (another log, or an \
                         earlier archive of this one?); choose another archive directory",
                    ),
                ));
            }
        }
        Ok(archive_dir_file)
    }

    /// Writes `base` as the marker atomically: temporary file, fdatasync, rename, fsync of
    /// the directory. Before the rename a failure changes nothing (`ArchiveFailed`); a
    /// failed directory fsync poisons the log (`Flush`).
    fn write_marker(&mut self, base: &ArchiveBase) -> Result<(), LogError> {
        let temporary = marker_temporary_path(&self.dir);
        let path = marker_path(&self.dir);
        let ops = self.ops.as_ref();
        let result = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temporary)
                .map_err(|e| archive_failed("create the archive marker", &temporary, e))?;
            log_io::write_all_at(ops, &temporary, &file, &base.encode(), 0)
                .map_err(|e| archive_failed("write the archive marker", &temporary, e))?;
            ops.sync_file(&temporary, &file)
                .map_err(|e| archive_failed("fdatasync the archive marker", &temporary, e))?;
            fs::rename(&temporary, &path)
                .map_err(|e| archive_failed("rename the archive marker into place", &path, e))
        })();
        if let Err(error) = result {
            // Best effort: `open` removes a leftover temporary marker too.
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        sync_dir(ops, &self.dir, &self.dir_file).map_err(|error| self.poison(error))
    }
}

/// Reads entries `from`, `from + 1`, ... out of the segments that [`Log::archive_before`]
/// moved into `archive_dir`, checking each entry's checksum and that each follows the one
/// before it, and hands them to `visit` (sequence, payload) until it returns `false` or the
/// archive ends (the later entries are in the live log). Returns how many it handed over: 0
/// when no archived segment holds `from`.
///
/// Errors: `Io` (the directory or a file cannot be read), `CorruptSegmentHeader`,
/// `DamagedArchive` (a damaged entry, or segments that do not follow each other, named with
/// file, offset and sequence).
pub fn read_archived(
    archive_dir: &Path,
    from: u64,
    mut visit: impl FnMut(u64, &[u8]) -> bool,
) -> Result<u64, LogError> {
    let listing = scan::list_segments(archive_dir)?;
    let mut segments = Vec::with_capacity(listing.files.len());
    for (index, path) in listing.files {
        let file = File::open(&path).map_err(|source| LogError::Io {
            action: "open the archived segment",
            path: path.clone(),
            source,
        })?;
        let header = scan::read_segment_header(&path, &file, index)?;
        segments.push((path, file, header));
    }
    let Some(start) = segments
        .iter()
        .rposition(|(_, _, header)| header.first_sequence <= from)
    else {
        return Ok(0);
    };
    let mut visited = 0;
    let mut sequence = segments[start].2.first_sequence;
    let mut previous: Option<[u8; 32]> = None;
    for (position, (path, file, header)) in segments.iter().enumerate().skip(start) {
        let damaged = |offset: usize, sequence: u64, fault: EntryFault| LogError::DamagedArchive {
            file: path.clone(),
            offset: offset as u64,
            sequence,
            fault,
        };
        if position > start
            && (header.index != segments[position - 1].2.index + 1
                || header.first_sequence != sequence)
        {
            // A gap: the entries after it cannot be linked to the ones handed over.
            return Err(damaged(
                SEGMENT_HEADER_BYTES,
                sequence,
                EntryFault::SequenceMismatch {
                    found: header.first_sequence,
                },
            ));
        }
        let map = super::mmap::map_read(file).map_err(|source| LogError::Io {
            action: "map the archived segment",
            path: path.clone(),
            source,
        })?;
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset < map.len() {
            if sequence < from {
                // Before `from`: walked by the lengths in the headers, not hashed (a far
                // behind peer asks again and again; each ask would hash the whole prefix).
                match super::format::read_verified_entry(&map, offset) {
                    Some((found, _, end)) if found == sequence => {
                        sequence += 1;
                        offset = end;
                        continue;
                    }
                    Some((found, _, _)) => {
                        return Err(damaged(
                            offset,
                            sequence,
                            EntryFault::SequenceMismatch { found },
                        ))
                    }
                    None => break,
                }
            }
            let checked = match &previous {
                Some(previous_hash) => check_entry_chained(&map, offset, sequence, previous_hash),
                None => check_entry_self(&map, offset),
            };
            let entry = match checked {
                Ok(entry) => entry,
                // The rest of the segment was never written.
                Err(EntryFault::Zeroed) => break,
                Err(fault) => return Err(damaged(offset, sequence, fault)),
            };
            let (found, payload, _) =
                super::format::read_verified_entry(&map, offset).expect("a checked entry reads");
            if previous.is_none() && found != sequence {
                return Err(damaged(
                    offset,
                    sequence,
                    EntryFault::SequenceMismatch { found },
                ));
            }
            if found >= from {
                visited += 1;
                if !visit(found, &map[payload]) {
                    return Ok(visited);
                }
            }
            previous = Some(entry.hash);
            sequence = found + 1;
            offset = entry.end;
        }
    }
    Ok(visited)
}

fn archive_target(source: &Path, archive_dir: &Path) -> PathBuf {
    archive_dir.join(
        source
            .file_name()
            .expect("segment paths end in a file name"),
    )
}

fn archive_failed(action: &'static str, path: &Path, source: io::Error) -> LogError {
    LogError::ArchiveFailed {
        action,
        path: path.to_path_buf(),
        source,
    }
}
