//! The durable append log: every block the node settles is one entry here before any client
//! hears "settled" (DESIGN.md, decision 5; docs/STORAGE.md has the format and the rules).
//!
//! - Segment files of `LogConfig::segment_bytes` each are preallocated and memory-mapped;
//!   `append` writes each entry into its segment file with one `pwritev` (never through the
//!   map: see docs/STORAGE.md, "Why entries are written with pwritev"), and reads (`open`,
//!   `replay`) go through the map, which shares the page cache with the writes. An entry
//!   never spans two segments.
//! - Each entry carries its sequence, the BLAKE3 hash of the previous entry and its own
//!   BLAKE3 hash (the checksum), so a log verifies as one hash chain.
//! - Group commit: `append` writes into the page cache (not durable); `commit` makes
//!   everything appended durable with one msync of the written range (on Linux, fdatasync of
//!   that range). A write or durability failure poisons the log for good.
//! - `open` verifies everything, cuts a torn tail (zeroes it, so a second open sees the same
//!   bytes) and refuses to open on damage that has valid entries after it.
//!
//! Only this module writes log files (docs/ARCHITECTURE.md invariant).

mod archive;
pub mod checkpoint;
pub mod consensus_state;
mod error;
pub mod event_journal;
mod format;
pub mod history;
mod inspect;
mod io;
mod mmap;
mod prepared;
mod scan;
pub mod tax_journal;

use std::fs::{self, File, OpenOptions};
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use archive::{
    read_archived, ArchiveBase, ArchiveReport, ARCHIVE_MARKER_BYTES, ARCHIVE_MARKER_FILE_NAME,
    ARCHIVE_MARKER_MAGIC, ARCHIVE_MARKER_VERSION, ARCHIVE_SEGMENT_COUNT_MAX,
};
pub use error::{EntryFault, LogError, ReplayError, WholeEntryEvidence};
pub use format::{
    entry_bytes, segment_file_name, ENTRY_ALIGN_BYTES, ENTRY_HEADER_BYTES, ENTRY_MAGIC,
    ENTRY_TRAILER_BYTES, ENTRY_TRAILER_MAGIC, FORMAT_VERSION, GENESIS_HASH, SEGMENT_HEADER_BYTES,
    SEGMENT_MAGIC,
};
pub use inspect::{inspect, InspectReport, SegmentSummary};
pub use io::{FileOps, MmapMut, OsFileOps};
pub use prepared::PreparedEntry;
pub use scan::TailState;

use format::{
    encode_entry_header, encode_entry_trailer, read_verified_entry, SegmentHeader, ENTRY_PADDING,
};
use scan::{SegmentView, TEMPORARY_SUFFIX};

/// Name of the lock file inside the log directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Smallest accepted `segment_bytes`: one page, so that a segment holds the header and at
/// least one small entry.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest accepted `segment_bytes` (1 TiB): a bound on a single mapping.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 40;

/// Sizes of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Bytes of each new segment file, header included; a multiple of 8 between
    /// [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_MAX`]. Existing segments keep their size.
    pub segment_bytes: u64,
    /// Largest entry on disk, header, padding and trailer included (see [`entry_bytes`]); at
    /// most `segment_bytes - SEGMENT_HEADER_BYTES`. A payload may be `entry_bytes_max - 136`
    /// bytes (rounded down to 8).
    pub entry_bytes_max: u32,
}

impl Default for LogConfig {
    /// 64 MiB segments, 16 MiB entries.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 64 << 20,
            entry_bytes_max: 16 << 20,
        }
    }
}

impl LogConfig {
    /// Largest payload an entry may carry under this configuration.
    pub fn payload_bytes_max(&self) -> usize {
        let max = self.entry_bytes_max as usize;
        (max - max % ENTRY_ALIGN_BYTES).saturating_sub(ENTRY_HEADER_BYTES + ENTRY_TRAILER_BYTES)
    }

    /// Checks the limits documented on the fields.
    pub fn validate(&self) -> Result<(), LogError> {
        let invalid = |reason: String| Err(LogError::InvalidConfig { reason });
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return invalid(format!(
                "segment_bytes = {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if usize::try_from(self.segment_bytes).is_err() {
            return invalid("segment_bytes does not fit this machine's address space".into());
        }
        if !self.segment_bytes.is_multiple_of(ENTRY_ALIGN_BYTES as u64) {
            return invalid(format!(
                "segment_bytes = {} is not a multiple of {ENTRY_ALIGN_BYTES}",
                self.segment_bytes
            ));
        }
        let room = self.segment_bytes - SEGMENT_HEADER_BYTES as u64;
        if (self.entry_bytes_max as usize) < entry_bytes(1)
            || u64::from(self.entry_bytes_max) > room
        {
            return invalid(format!(
                "entry_bytes_max = {} must lie between {} and segment_bytes - {SEGMENT_HEADER_BYTES} = {room}",
                self.entry_bytes_max,
                entry_bytes(1)
            ));
        }
        Ok(())
    }
}

/// What `open` repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The tail as found (a `Torn` tail has been zeroed and its orphan segments removed).
    pub tail: TailState,
    /// Segment files left half-created by a crash, and a half-written archive marker,
    /// removed (they never held entries and were never the marker).
    pub removed_temporary_files: Vec<PathBuf>,
    /// Segments below the archive base still in the live directory: an archive stopped
    /// after writing its marker and before moving them. They are ignored (not read) and
    /// the next `archive_before` moves them.
    pub segments_below_base: Vec<PathBuf>,
    /// A last segment shorter than its header says, extended back to full length.
    pub extended_segment: Option<PathBuf>,
    /// A damaged, wholly written last entry that [`Log::open_repairing`] cut so that the
    /// block can be taken again from peers (never set by [`Log::open`], which refuses it).
    pub cut_damaged_entry: Option<CutDamagedEntry>,
    /// Sequences of damaged entries cut by this or an earlier [`Log::open_repairing`] that
    /// the log does not hold again yet (a `damaged-*.entry` file at or after the log's end):
    /// a repair still in progress, perhaps across a crash. Empty for a log that needs none.
    pub awaiting_repair: Vec<u64>,
}

/// A damaged last entry cut by [`Log::open_repairing`]: where it was, what was wrong, and
/// where its bytes were kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutDamagedEntry {
    /// The sequence of the entry (a validator's block `sequence + 1`).
    pub sequence: u64,
    /// The segment that held it.
    pub file: PathBuf,
    /// Its byte offset there.
    pub offset: u64,
    /// The first check it failed.
    pub fault: EntryFault,
    /// What showed that it had been wholly written.
    pub evidence: WholeEntryEvidence,
    /// The file in the log directory that keeps the cut bytes, for a post-mortem.
    pub kept_in: PathBuf,
}

/// Prefix of the file that keeps the bytes of a cut damaged entry (then the sequence, the
/// byte offset and `.entry`); `open` ignores it.
pub const DAMAGED_ENTRY_FILE_PREFIX: &str = "damaged-";

/// One mapped segment.
struct Segment {
    path: PathBuf,
    /// The open segment file: entries are written through it (`pwritev`), read through `map`.
    file: File,
    first_sequence: u64,
    index: u64,
    map: MmapMut,
    entry_count: u64,
    /// Offset after the last entry.
    write_offset: usize,
    /// Offset up to which the segment is known durable.
    durable_offset: usize,
}

/// The append log of one node. Single writer: `&mut self` for every change.
pub struct Log {
    dir: PathBuf,
    dir_file: File,
    /// Held for the flock; closing it releases the lock.
    _lock_file: File,
    config: LogConfig,
    ops: Arc<dyn FileOps>,
    segments: Vec<Segment>,
    next_sequence: u64,
    durable_sequence: u64,
    last_entry_hash: [u8; 32],
    /// Where the live log starts (the archive marker; genesis when there is none).
    base: ArchiveBase,
    /// Segment files below the base still in the live directory, waiting to be archived.
    segments_below_base: Vec<PathBuf>,
    /// The message of the first durability failure; once set, every call fails.
    poisoned: Option<String>,
    recovery: Recovery,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("next_sequence", &self.next_sequence)
            .field("durable_sequence", &self.durable_sequence)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Log {
    /// Opens or creates the log in `dir`, running recovery.
    ///
    /// Creates `dir` if needed and takes an exclusive lock on it. Reads the archive marker,
    /// if any: the live log then starts at the marker's segment and sequence, and its first
    /// entry must link to the marker's hash; segments below the base left by an interrupted
    /// archive are ignored (see [`Recovery::segments_below_base`]). Verifies every segment
    /// header, every entry checksum and the hash chain. A torn tail (bytes after the last
    /// valid entry that hold no valid entry, and later segments without valid entries) is
    /// zeroed and made durable, so a second open finds the same bytes; appends resume after
    /// the last valid entry.
    ///
    /// Errors: `InvalidConfig`; `Locked` when another handle has the log open;
    /// `MissingSegment` (also: the first live segment is not 0 and there is no marker),
    /// `CorruptArchiveMarker`, `ArchiveMarkerMismatch` (the marker does not describe the
    /// first live segment), `CorruptSegmentHeader`, `SegmentSequenceMismatch`, `CorruptEntry`
    /// (damage with a valid entry after it, never cut); `Io`/`Flush` when the disk fails.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        Log::open_with(dir, config, Arc::new(OsFileOps))
    }

    /// [`Log::open`] with the file operations going through `ops` (fault injection in tests;
    /// production passes [`OsFileOps`]).
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        ops: Arc<dyn FileOps>,
    ) -> Result<Log, LogError> {
        Log::open_inner(dir, config, ops, false)
    }

    /// [`Log::open_with`] for a node that can take a damaged last entry again from elsewhere
    /// (a validator: every entry is a final block that its peers hold with a certificate).
    /// Where `open` would refuse with [`LogError::DamagedEntry`] (a wholly written entry, with
    /// no valid entry after it, is damaged), this keeps the entry's bytes (from its offset to
    /// the last non-zero byte of its segment) in `damaged-<sequence>-<offset>.entry` in the
    /// log directory, made durable, then cuts the log before the entry as it cuts a torn
    /// tail, and reports it in [`Recovery::cut_damaged_entry`]. The caller must take that
    /// block again, checked, before it acts on the height. Every other problem is refused as
    /// by `open`.
    pub fn open_repairing(
        dir: &Path,
        config: LogConfig,
        ops: Arc<dyn FileOps>,
    ) -> Result<Log, LogError> {
        Log::open_inner(dir, config, ops, true)
    }

    fn open_inner(
        dir: &Path,
        config: LogConfig,
        ops: Arc<dyn FileOps>,
        repair_damaged_last: bool,
    ) -> Result<Log, LogError> {
        config.validate()?;
        let io_error = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io {
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(dir).map_err(io_error("create the log directory", dir))?;
        let dir_file = File::open(dir).map_err(io_error("open the log directory", dir))?;
        let lock_path = dir.join(LOCK_FILE_NAME);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error("open the lock file", &lock_path))?;
        if !mmap::lock_exclusive(&lock_file).map_err(io_error("lock", &lock_path))? {
            return Err(LogError::Locked {
                dir: dir.to_path_buf(),
                lock_file: lock_path,
            });
        }

        let marker = archive::read_marker(dir)?;
        let marker_path = marker.map(|_| archive::marker_path(dir));
        let base = marker.unwrap_or(ArchiveBase::GENESIS);
        let mut listing = scan::list_segments(dir)?;
        let (segments_below_base, live_files) =
            archive::split_at_base(std::mem::take(&mut listing.files), &base);
        listing.files = live_files;
        scan::check_contiguous(
            dir,
            &listing.files,
            base.segment_index,
            marker_path.as_deref(),
        )?;
        if marker.is_some() && listing.files.is_empty() {
            return Err(LogError::MissingSegment {
                dir: dir.to_path_buf(),
                index: base.segment_index,
                detail: format!(
                    "; the archive marker {} says the live log starts there, and no live \
                     segment is left",
                    archive::marker_path(dir).display()
                ),
            });
        }
        if !segments_below_base.is_empty() {
            tracing::warn!(
                count = segments_below_base.len(),
                first_sequence = base.first_sequence,
                "segments below the archive base are still in the log directory (an archive \
                 was interrupted); they are ignored until the next archive moves them"
            );
        }
        let marker_temporary = archive::marker_temporary_path(dir);
        if marker_temporary.exists() {
            listing.temporary_files.push(marker_temporary);
        }
        for path in &listing.temporary_files {
            fs::remove_file(path).map_err(io_error("remove the half-created file", path))?;
        }
        if !listing.temporary_files.is_empty() {
            sync_dir(ops.as_ref(), dir, &dir_file)?;
        }

        let mut files = Vec::with_capacity(listing.files.len());
        let mut headers = Vec::with_capacity(listing.files.len());
        let mut maps = Vec::with_capacity(listing.files.len());
        for (index, path) in &listing.files {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(io_error("open segment", path))?;
            headers.push(scan::read_segment_header(path, &file, *index)?);
            maps.push(mmap::map_mut(&file).map_err(io_error("map segment", path))?);
            files.push(file);
        }

        let mut log = Log {
            dir: dir.to_path_buf(),
            dir_file,
            _lock_file: lock_file,
            config,
            ops,
            segments: Vec::new(),
            next_sequence: 0,
            durable_sequence: 0,
            last_entry_hash: GENESIS_HASH,
            base,
            segments_below_base: segments_below_base.clone(),
            poisoned: None,
            recovery: Recovery {
                tail: TailState::Clean,
                removed_temporary_files: listing.temporary_files.clone(),
                segments_below_base,
                extended_segment: None,
                cut_damaged_entry: None,
                awaiting_repair: Vec::new(),
            },
        };
        if listing.files.is_empty() {
            let segment = log.create_segment(0, 0)?;
            log.segments.push(segment);
            return Ok(log);
        }

        let outcome = {
            let views: Vec<SegmentView<'_>> = listing
                .files
                .iter()
                .zip(&headers)
                .zip(&maps)
                .map(|(((_, path), header), map)| SegmentView {
                    path,
                    header: *header,
                    bytes: &map[..],
                })
                .collect();
            archive::check_base(marker_path.as_deref(), &base, &views[0])?;
            scan::scan(&views, &base)
        };
        let resume = outcome.resume_segment;
        match outcome.problem {
            None => {}
            Some(LogError::DamagedEntry {
                file,
                offset,
                sequence,
                fault,
                evidence,
            }) if repair_damaged_last => {
                let TailState::Torn { garbage_bytes, .. } = &outcome.tail else {
                    unreachable!("a damaged entry is non-zero bytes after the chain's end")
                };
                let start = offset as usize;
                let kept = &maps[resume][start..start + *garbage_bytes as usize];
                let kept_in = dir.join(format!(
                    "{DAMAGED_ENTRY_FILE_PREFIX}{sequence:020}-{offset}.entry"
                ));
                keep_damaged_bytes(log.ops.as_ref(), &kept_in, kept)?;
                sync_dir(log.ops.as_ref(), dir, &log.dir_file)?;
                tracing::error!(
                    file = %file.display(),
                    offset,
                    sequence,
                    %fault,
                    %evidence,
                    kept_in = %kept_in.display(),
                    "a wholly written last log entry is damaged: cutting it to take the block \
                     again from peers"
                );
                log.recovery.cut_damaged_entry = Some(CutDamagedEntry {
                    sequence,
                    file,
                    offset,
                    fault,
                    evidence,
                    kept_in,
                });
            }
            Some(problem) => return Err(problem),
        }

        if let TailState::Torn {
            file,
            offset,
            garbage_bytes,
            orphan_segments,
            ..
        } = &outcome.tail
        {
            tracing::warn!(
                file = %file.display(),
                offset,
                garbage_bytes,
                orphan_segments = orphan_segments.len(),
                "log recovery cuts a torn tail"
            );
            let start = *offset as usize;
            let end = start + *garbage_bytes as usize;
            if end > start {
                maps[resume][start..end].fill(0);
                log.ops
                    .flush_map(file, &maps[resume], start, end - start)
                    .map_err(|source| LogError::Flush {
                        action: "msync of the cut tail",
                        path: file.clone(),
                        offset: *offset,
                        bytes: *garbage_bytes,
                        source,
                    })?;
            }
            if !orphan_segments.is_empty() {
                maps.truncate(resume + 1);
                files.truncate(resume + 1);
                for orphan in orphan_segments {
                    fs::remove_file(orphan)
                        .map_err(io_error("remove the orphan segment", orphan))?;
                }
                sync_dir(log.ops.as_ref(), dir, &log.dir_file)?;
            }
        }
        log.recovery.tail = outcome.tail.clone();

        // A segment cut short (copied or truncated by hand) gets its reserved length back
        // before appends resume in it.
        let resume_header = headers[resume];
        let resume_path = &listing.files[resume].1;
        if (maps[resume].len() as u64) < resume_header.segment_bytes {
            let file = &files[resume];
            log.ops
                .allocate(resume_path, file, resume_header.segment_bytes)
                .and_then(|()| log.ops.sync_file(resume_path, file))
                .map_err(|source| LogError::Flush {
                    action: "extend the short last segment",
                    path: resume_path.clone(),
                    offset: 0,
                    bytes: resume_header.segment_bytes,
                    source,
                })?;
            maps[resume] = mmap::map_mut(file).map_err(io_error("map segment", resume_path))?;
            log.recovery.extended_segment = Some(resume_path.clone());
        }

        for (position, (map, file)) in maps.into_iter().zip(files).enumerate().take(resume + 1) {
            let scanned = &outcome.segments[position];
            log.segments.push(Segment {
                path: listing.files[position].1.clone(),
                file,
                first_sequence: headers[position].first_sequence,
                index: headers[position].index,
                map,
                entry_count: scanned.entry_count,
                write_offset: scanned.end_offset,
                durable_offset: scanned.end_offset,
            });
        }
        log.next_sequence = outcome.next_sequence;
        log.durable_sequence = outcome.next_sequence;
        log.last_entry_hash = outcome.last_entry_hash;
        log.recovery.awaiting_repair = damaged_entries_from(dir, log.next_sequence)?;
        Ok(log)
    }

    /// Calls `visit(sequence, payload)` for every valid entry in order with sequence >= from.
    ///
    /// Payloads borrow the mapped segments (no copy). Entries appended but not yet committed
    /// are included. Errors: `SequenceArchived` when `from < first_sequence()` (the entries
    /// were archived; replay never silently starts later), `SequenceBeyondEnd` when
    /// `from > next_sequence()`, `Poisoned`,
    /// `ChangedUnderLog` when verified bytes changed, or the visitor's error (replay stops).
    pub fn replay<E>(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), ReplayError<E>> {
        for item in self.entries(from)? {
            let (sequence, payload) = item?;
            visit(sequence, payload).map_err(|error| ReplayError::Visitor { sequence, error })?;
        }
        Ok(())
    }

    /// An iterator over `(sequence, payload)` of every entry with sequence >= `from`, in
    /// order; the same contract as [`Log::replay`].
    pub fn entries(&self, from: u64) -> Result<Entries<'_>, LogError> {
        self.check_poisoned()?;
        if from < self.base.first_sequence {
            return Err(LogError::SequenceArchived {
                from,
                first_sequence: self.base.first_sequence,
            });
        }
        if from > self.next_sequence {
            return Err(LogError::SequenceBeyondEnd {
                from,
                next_sequence: self.next_sequence,
            });
        }
        // Skip whole segments by their first sequence; the first live segment starts at the
        // base <= from.
        let segment = self
            .segments
            .partition_point(|segment| segment.first_sequence <= from)
            .saturating_sub(1);
        Ok(Entries {
            segments: &self.segments,
            segment,
            offset: SEGMENT_HEADER_BYTES,
            sequence: self.segments[segment].first_sequence,
            from,
        })
    }

    /// Appends one entry (not yet durable); returns its sequence (the first entry is 0).
    ///
    /// The entry (header, payload, padding) goes into the segment file with one `pwritev`
    /// (short writes are continued): into the page cache, visible to `replay` through the
    /// map at once, durable after the next `commit`. Starts a new segment when the entry does
    /// not fit in the current one; the finished segment is made durable first. Errors:
    /// `EntryTooLarge` (the log is unchanged), `Poisoned`, and `Flush` when the write or
    /// starting a segment fails (which poisons the log; nothing of the entry counts).
    ///
    /// Hashes the whole payload on the calling thread; a writer that should not wait for
    /// that takes entries prepared elsewhere ([`Log::append_prepared`]).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, LogError> {
        // Checked before hashing, so that a refused payload costs nothing.
        self.check_appendable(payload.len())?;
        self.write_entry(&PreparedEntry::new(payload))
    }

    /// Appends an entry whose payload was hashed by [`PreparedEntry::new`], typically on the
    /// thread that produced it: only the entry's first 1024-byte chunk and one join per tree
    /// level are hashed here. Writes the same bytes as [`Log::append`] of the payload, with
    /// the same errors.
    pub fn append_prepared<P: AsRef<[u8]>>(
        &mut self,
        entry: &PreparedEntry<P>,
    ) -> Result<u64, LogError> {
        self.check_appendable(entry.payload().len())?;
        self.write_entry(entry)
    }

    /// Writes an entry that `check_appendable` accepted.
    fn write_entry<P: AsRef<[u8]>>(&mut self, entry: &PreparedEntry<P>) -> Result<u64, LogError> {
        let payload = entry.payload();
        let stored_bytes = entry_bytes(payload.len());
        let current = self.segments.last().expect("an open log has a segment");
        if current.write_offset + stored_bytes > current.map.len() {
            self.roll_over()?;
        }
        let sequence = self.next_sequence;
        let previous_hash = self.last_entry_hash;
        let padding = &ENTRY_PADDING
            [..stored_bytes - ENTRY_HEADER_BYTES - ENTRY_TRAILER_BYTES - payload.len()];
        let segment = self.segments.last().expect("an open log has a segment");
        let start = segment.write_offset;
        assert!(
            start + stored_bytes <= segment.map.len(),
            "a fresh segment fits any entry"
        );
        let (header, hash) = encode_entry_header(sequence, &previous_hash, entry);
        let trailer = encode_entry_trailer(payload.len() as u32, sequence, &hash);
        if let Err(source) = io::write_all_vectored_at(
            self.ops.as_ref(),
            &segment.path,
            &segment.file,
            &mut [
                IoSlice::new(&header),
                IoSlice::new(payload),
                IoSlice::new(padding),
                IoSlice::new(&trailer),
            ],
            start as u64,
        ) {
            // Part of the entry may sit in the page cache past the last entry; nothing counts
            // it, a restart cuts it as a torn tail, and the log refuses every later call.
            let error = LogError::Flush {
                action: "write entry",
                path: segment.path.clone(),
                offset: start as u64,
                bytes: stored_bytes as u64,
                source,
            };
            return Err(self.poison(error));
        }
        let segment = self.segments.last_mut().expect("an open log has a segment");
        segment.write_offset = start + stored_bytes;
        segment.entry_count += 1;
        self.next_sequence = sequence + 1;
        self.last_entry_hash = hash;
        Ok(sequence)
    }

    /// `Poisoned` once a write or flush failed, `EntryTooLarge` for a payload the
    /// configuration does not take; nothing changes either way.
    fn check_appendable(&self, payload_bytes: usize) -> Result<(), LogError> {
        self.check_poisoned()?;
        if payload_bytes > self.config.payload_bytes_max() {
            return Err(LogError::EntryTooLarge {
                payload_bytes: payload_bytes as u64,
                entry_bytes: (ENTRY_HEADER_BYTES as u64)
                    .saturating_add(payload_bytes as u64)
                    .next_multiple_of(ENTRY_ALIGN_BYTES as u64)
                    .saturating_add(ENTRY_TRAILER_BYTES as u64),
                entry_bytes_max: self.config.entry_bytes_max,
            });
        }
        Ok(())
    }

    /// Makes every appended entry durable; returns the number of durable entries (next sequence).
    ///
    /// One msync of the bytes appended since the last commit (group commit): on Linux the
    /// same `vfs_fsync_range` as fdatasync, limited to those bytes. On failure the
    /// log is poisoned: this and every later call fails, and nothing appended since the last
    /// successful commit may be acknowledged.
    pub fn commit(&mut self) -> Result<u64, LogError> {
        self.check_poisoned()?;
        self.flush_current()?;
        self.durable_sequence = self.next_sequence;
        Ok(self.durable_sequence)
    }

    /// The sequence the next `append` returns (durable or not).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The first entry in the live directory: 0 until a prefix is archived
    /// ([`Log::archive_before`]).
    pub fn first_live_sequence(&self) -> u64 {
        self.base.first_sequence
    }

    /// The number of entries known durable: everything below this sequence is on disk.
    pub fn durable_sequence(&self) -> u64 {
        self.durable_sequence
    }

    /// Hash of the last appended entry; [`GENESIS_HASH`] for an empty log.
    pub fn last_entry_hash(&self) -> [u8; 32] {
        self.last_entry_hash
    }

    /// The message of the failure that poisoned the log, if any.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// What `open` repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log runs with.
    pub fn config(&self) -> LogConfig {
        self.config
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn check_poisoned(&self) -> Result<(), LogError> {
        match &self.poisoned {
            None => Ok(()),
            Some(first_failure) => Err(LogError::Poisoned {
                first_failure: first_failure.clone(),
            }),
        }
    }

    /// Records the first durability failure; later ones keep the first message.
    fn poison(&mut self, error: LogError) -> LogError {
        if self.poisoned.is_none() {
            tracing::error!(%error, "log poisoned");
            self.poisoned = Some(error.to_string());
        }
        error
    }

    /// msync of the current segment's bytes appended since the last flush.
    fn flush_current(&mut self) -> Result<(), LogError> {
        let segment = self.segments.last().expect("an open log has a segment");
        if segment.write_offset == segment.durable_offset {
            return Ok(());
        }
        let offset = segment.durable_offset;
        let bytes = segment.write_offset - offset;
        match self
            .ops
            .flush_map(&segment.path, &segment.map, offset, bytes)
        {
            Ok(()) => {
                let segment = self.segments.last_mut().expect("an open log has a segment");
                segment.durable_offset = segment.write_offset;
                self.durable_sequence = segment.first_sequence + segment.entry_count;
                Ok(())
            }
            Err(source) => {
                let error = LogError::Flush {
                    action: "msync",
                    path: segment.path.clone(),
                    offset: offset as u64,
                    bytes: bytes as u64,
                    source,
                };
                Err(self.poison(error))
            }
        }
    }

    /// Finishes the current segment and starts the next one.
    fn roll_over(&mut self) -> Result<(), LogError> {
        // The finished segment becomes durable before the next one exists, so that after a
        // crash a later segment never holds entries whose predecessors were lost (which
        // recovery would have to call corruption).
        self.flush_current()?;
        let current = self.segments.last().expect("an open log has a segment");
        let index = current.index + 1;
        match self.create_segment(index, self.next_sequence) {
            Ok(segment) => {
                self.segments.push(segment);
                Ok(())
            }
            Err(error) => Err(self.poison(error)),
        }
    }

    /// Creates segment `index` atomically: a temporary file is reserved, gets its header,
    /// is synced, then renamed, and the directory is synced. A crash leaves either no
    /// segment or a complete empty one (and maybe a temporary file, removed by `open`).
    fn create_segment(&self, index: u64, first_sequence: u64) -> Result<Segment, LogError> {
        let name = segment_file_name(index);
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!("{name}{TEMPORARY_SUFFIX}"));
        let header = SegmentHeader {
            index,
            first_sequence,
            segment_bytes: self.config.segment_bytes,
        };
        let flush_error = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            let bytes = self.config.segment_bytes;
            move |source| LogError::Flush {
                action,
                path,
                offset: 0,
                bytes,
                source,
            }
        };
        let result = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temporary)
                .map_err(flush_error("create segment", &temporary))?;
            let ops = self.ops.as_ref();
            ops.allocate(&temporary, &file, self.config.segment_bytes)
                .map_err(flush_error("reserve segment blocks", &temporary))?;
            io::write_all_at(ops, &temporary, &file, &header.encode(), 0)
                .map_err(flush_error("write segment header", &temporary))?;
            ops.sync_file(&temporary, &file)
                .map_err(flush_error("fdatasync of the new segment", &temporary))?;
            fs::rename(&temporary, &path).map_err(flush_error("rename new segment", &path))?;
            Ok(file)
        })();
        let file = match result {
            Ok(file) => file,
            Err(error) => {
                // Best effort: `open` removes leftovers too.
                let _ = fs::remove_file(&temporary);
                return Err(error);
            }
        };
        sync_dir(self.ops.as_ref(), &self.dir, &self.dir_file)?;
        let map = mmap::map_mut(&file).map_err(|source| LogError::Io {
            action: "map segment",
            path: path.clone(),
            source,
        })?;
        assert_eq!(map.len() as u64, self.config.segment_bytes);
        Ok(Segment {
            path,
            file,
            first_sequence,
            index,
            map,
            entry_count: 0,
            write_offset: SEGMENT_HEADER_BYTES,
            durable_offset: SEGMENT_HEADER_BYTES,
        })
    }
}

/// Sequences of the damaged entries kept in `dir` at or after `from`, in order.
fn damaged_entries_from(dir: &Path, from: u64) -> Result<Vec<u64>, LogError> {
    let io_error = |source| LogError::Io {
        action: "list the log directory",
        path: dir.to_path_buf(),
        source,
    };
    let mut sequences = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let name = entry.map_err(io_error)?.file_name();
        let sequence = name
            .to_str()
            .and_then(|name| name.strip_prefix(DAMAGED_ENTRY_FILE_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(sequence) = sequence.filter(|sequence| *sequence >= from) {
            sequences.push(sequence);
        }
    }
    sequences.sort_unstable();
    sequences.dedup();
    Ok(sequences)
}

/// Writes the bytes of a damaged entry to `path` and makes them durable before the log cuts
/// them.
fn keep_damaged_bytes(ops: &dyn FileOps, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let flush_error = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| LogError::Flush {
            action,
            path,
            offset: 0,
            bytes: bytes.len() as u64,
            source,
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(flush_error("create the file keeping a damaged entry"))?;
    io::write_all_at(ops, path, &file, bytes, 0)
        .map_err(flush_error("write the damaged entry aside"))?;
    ops.sync_file(path, &file)
        .map_err(flush_error("fdatasync of the damaged entry kept aside"))
}

fn sync_dir(ops: &dyn FileOps, dir: &Path, dir_file: &File) -> Result<(), LogError> {
    ops.sync_dir(dir, dir_file)
        .map_err(|source| LogError::Flush {
            action: "fsync of the log directory",
            path: dir.to_path_buf(),
            offset: 0,
            bytes: 0,
            source,
        })
}

/// Iterator over `(sequence, payload)`, borrowing the mapped segments; see [`Log::entries`].
pub struct Entries<'a> {
    segments: &'a [Segment],
    segment: usize,
    offset: usize,
    sequence: u64,
    from: u64,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<(u64, &'a [u8]), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let segment = self.segments.get(self.segment)?;
            if self.offset >= segment.write_offset {
                self.segment += 1;
                self.offset = SEGMENT_HEADER_BYTES;
                continue;
            }
            let bytes: &'a [u8] = &segment.map[..segment.write_offset];
            // `open` and `append` verified these bytes; re-check the cheap invariants only.
            match read_verified_entry(bytes, self.offset) {
                Some((sequence, payload, end)) if sequence == self.sequence => {
                    self.offset = end;
                    self.sequence += 1;
                    if sequence >= self.from {
                        return Some(Ok((sequence, &bytes[payload])));
                    }
                }
                _ => {
                    let error = LogError::ChangedUnderLog {
                        file: segment.path.clone(),
                        offset: self.offset as u64,
                        sequence: self.sequence,
                    };
                    self.segment = self.segments.len();
                    return Some(Err(error));
                }
            }
        }
    }
}
