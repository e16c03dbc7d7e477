//! Verification of a whole log, shared by `Log::open` (which then repairs a torn tail) and
//! `inspect` (which only reports). Works on byte slices so that it never writes.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::archive::ArchiveBase;
use super::error::LogError;
use super::format::{
    check_entry_chained, find_self_consistent_entry, is_zero, nonzero_end, parse_segment_file_name,
    whole_entry_evidence, EntryFault, SegmentHeader, SEGMENT_HEADER_BYTES,
    UNSUPPORTED_VERSION_PREFIX,
};

/// Suffix of a segment file that was being created when the process stopped. It never held
/// entries: a segment is renamed to its final name only after its header is durable.
pub(crate) const TEMPORARY_SUFFIX: &str = ".tmp";

/// The segment files of a directory, in index order.
pub(crate) struct SegmentListing {
    pub files: Vec<(u64, PathBuf)>,
    pub temporary_files: Vec<PathBuf>,
}

/// Lists the segment files of `dir` in index order (see [`check_contiguous`]).
pub(crate) fn list_segments(dir: &Path) -> Result<SegmentListing, LogError> {
    let io_error = |source| LogError::Io {
        action: "list the log directory",
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    let mut temporary_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(index) = parse_segment_file_name(name) {
            files.push((index, entry.path()));
        } else if name
            .strip_suffix(TEMPORARY_SUFFIX)
            .and_then(parse_segment_file_name)
            .is_some()
        {
            temporary_files.push(entry.path());
        }
    }
    files.sort();
    Ok(SegmentListing {
        files,
        temporary_files,
    })
}

/// Fails with `MissingSegment` unless the indices of the live `files` run `first_index`,
/// `first_index + 1`, ... without a gap. `marker` is the archive marker that set
/// `first_index` (`None` when there is none and the log must start at segment 0).
pub(crate) fn check_contiguous(
    dir: &Path,
    files: &[(u64, PathBuf)],
    first_index: u64,
    marker: Option<&Path>,
) -> Result<(), LogError> {
    for (position, (index, _)) in files.iter().enumerate() {
        let expected = first_index + position as u64;
        if *index != expected {
            let detail = match (position, marker) {
                (0, None) => format!(
                    "; the live log starts at segment {index} ({}) but there is no archive \
                     marker {} saying that the segments before it were archived (if they were, \
                     restore the marker from a backup)",
                    files[0].1.display(),
                    super::archive::marker_path(dir).display()
                ),
                (0, Some(marker)) => format!(
                    "; the archive marker {} says the live log starts at segment {expected}",
                    marker.display()
                ),
                _ => String::new(),
            };
            return Err(LogError::MissingSegment {
                dir: dir.to_path_buf(),
                index: expected,
                detail,
            });
        }
    }
    Ok(())
}

/// Opens a segment file and reads its header with plain reads (before any mapping, so a
/// short or corrupt file gives a clear error).
pub(crate) fn read_segment_header(
    path: &Path,
    file: &File,
    index: u64,
) -> Result<SegmentHeader, LogError> {
    use std::os::unix::fs::FileExt;
    let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
    let mut read_bytes = 0;
    while read_bytes < SEGMENT_HEADER_BYTES {
        let count = file
            .read_at(&mut bytes[read_bytes..], read_bytes as u64)
            .map_err(|source| LogError::Io {
                action: "read the header of segment",
                path: path.to_path_buf(),
                source,
            })?;
        if count == 0 {
            break;
        }
        read_bytes += count;
    }
    let header = SegmentHeader::decode(&bytes[..read_bytes]).map_err(|reason| {
        match reason
            .strip_prefix(UNSUPPORTED_VERSION_PREFIX)
            .and_then(|version| version.parse().ok())
        {
            Some(version) => LogError::UnsupportedFormatVersion {
                file: path.to_path_buf(),
                version,
            },
            None => LogError::CorruptSegmentHeader {
                file: path.to_path_buf(),
                reason,
            },
        }
    })?;
    if header.index != index {
        return Err(LogError::CorruptSegmentHeader {
            file: path.to_path_buf(),
            reason: format!(
                "header says segment index {}, the file name says {index}",
                header.index
            ),
        });
    }
    Ok(header)
}

/// One segment as the scan sees it.
pub(crate) struct SegmentView<'a> {
    pub path: &'a Path,
    pub header: SegmentHeader,
    pub bytes: &'a [u8],
}

/// What the scan found in one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    pub entry_count: u64,
    /// Offset after the last valid entry (the header end when there is none).
    pub end_offset: usize,
}

/// Where the valid chain ends and what lies after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailState {
    /// Only zero bytes follow the last valid entry.
    Clean,
    /// Non-zero bytes that are no valid entry follow the last valid entry (or empty segments
    /// follow a torn one): a write that did not finish. `open` zeroes them.
    Torn {
        /// The segment where the chain ends.
        file: PathBuf,
        /// Offset of the first byte after the last valid entry.
        offset: u64,
        /// The sequence the next entry would carry.
        sequence: u64,
        /// Why the bytes at `offset` are not an entry.
        fault: EntryFault,
        /// Bytes from `offset` up to the last non-zero byte (rounded up to 8).
        garbage_bytes: u64,
        /// Later segment files that hold no valid entry; `open` removes them.
        orphan_segments: Vec<PathBuf>,
    },
}

/// The result of a scan.
pub(crate) struct ScanOutcome {
    /// One per segment, up to the segment where the scan stopped.
    pub segments: Vec<SegmentScan>,
    pub next_sequence: u64,
    pub last_entry_hash: [u8; 32],
    /// Index (into the views) of the segment where appends resume.
    pub resume_segment: usize,
    /// Where the chain ends; meaningful when `problem` is `None`.
    pub tail: TailState,
    /// The first problem recovery must not repair.
    pub problem: Option<LogError>,
}

/// Verifies every entry and the hash chain across `views` (which must be non-empty and in
/// index order), starting at `base` (the chain continues from the last archived entry).
/// Never writes.
pub(crate) fn scan(views: &[SegmentView<'_>], base: &ArchiveBase) -> ScanOutcome {
    assert!(!views.is_empty(), "scan needs at least one segment");
    let mut outcome = ScanOutcome {
        segments: Vec::with_capacity(views.len()),
        next_sequence: base.first_sequence,
        last_entry_hash: base.previous_hash,
        resume_segment: 0,
        tail: TailState::Clean,
        problem: None,
    };
    if views[0].header.first_sequence != base.first_sequence {
        outcome.problem = Some(LogError::SegmentSequenceMismatch {
            file: views[0].path.to_path_buf(),
            expected: base.first_sequence,
            found: views[0].header.first_sequence,
        });
        return outcome;
    }
    for (position, view) in views.iter().enumerate() {
        let mut offset = SEGMENT_HEADER_BYTES.min(view.bytes.len());
        let mut entry_count = 0u64;
        let fault = loop {
            match check_entry_chained(
                view.bytes,
                offset,
                outcome.next_sequence,
                &outcome.last_entry_hash,
            ) {
                Ok(entry) => {
                    entry_count += 1;
                    outcome.next_sequence += 1;
                    outcome.last_entry_hash = entry.hash;
                    offset = entry.end;
                }
                Err(fault) => break fault,
            }
        };
        outcome.segments.push(SegmentScan {
            entry_count,
            end_offset: offset,
        });
        outcome.resume_segment = position;
        // The writer starts a new segment when the next entry does not fit, leaving zeros;
        // the new segment then starts at the next sequence.
        if let Some(next) = views.get(position + 1) {
            if is_zero(&view.bytes[offset..]) {
                if next.header.first_sequence == outcome.next_sequence {
                    continue;
                }
                // Entries are missing at the end of this segment. With valid entries after
                // the gap that is corruption; without, it is a tail cut inside a rollover.
                if holds_valid_entry(&views[position + 1..]) {
                    outcome.problem = Some(LogError::SegmentSequenceMismatch {
                        file: next.path.to_path_buf(),
                        expected: outcome.next_sequence,
                        found: next.header.first_sequence,
                    });
                    return outcome;
                }
            }
        }
        finish_at_chain_end(&mut outcome, views, position, offset, fault);
        return outcome;
    }
    unreachable!("the last segment always ends the scan")
}

fn holds_valid_entry(views: &[SegmentView<'_>]) -> bool {
    views
        .iter()
        .any(|view| find_self_consistent_entry(view.bytes, SEGMENT_HEADER_BYTES).is_some())
}

/// The chain ends at `offset` of segment `position`: decide between a clean end, a torn tail
/// and corruption (a valid entry somewhere after the damage).
fn finish_at_chain_end(
    outcome: &mut ScanOutcome,
    views: &[SegmentView<'_>],
    position: usize,
    offset: usize,
    fault: EntryFault,
) {
    let view = &views[position];
    let later_valid = find_self_consistent_entry(view.bytes, offset)
        .map(|found| (view.path, found))
        .or_else(|| {
            views[position + 1..].iter().find_map(|later| {
                find_self_consistent_entry(later.bytes, SEGMENT_HEADER_BYTES)
                    .map(|found| (later.path, found))
            })
        });
    if let Some((valid_file, valid_offset)) = later_valid {
        outcome.problem = Some(LogError::CorruptEntry {
            file: view.path.to_path_buf(),
            offset: offset as u64,
            sequence: outcome.next_sequence,
            fault,
            valid_file: valid_file.to_path_buf(),
            valid_offset: valid_offset as u64,
        });
        return;
    }
    // No valid entry follows: a tear, unless the entry was wholly written (its trailer says
    // so), which a torn write never leaves. That entry may have been acknowledged: refuse.
    let damaged = whole_entry_evidence(view.bytes, offset, outcome.next_sequence);
    let garbage_end = nonzero_end(view.bytes, offset);
    let orphan_segments: Vec<PathBuf> = views[position + 1..]
        .iter()
        .map(|later| later.path.to_path_buf())
        .collect();
    if let Some(evidence) = damaged {
        // Refused; the tail says what a validator's repair cuts (`Log::open_repairing`).
        outcome.problem = Some(LogError::DamagedEntry {
            file: view.path.to_path_buf(),
            offset: offset as u64,
            sequence: outcome.next_sequence,
            fault: fault.clone(),
            evidence,
        });
    }
    if garbage_end == offset && orphan_segments.is_empty() {
        outcome.tail = TailState::Clean;
    } else {
        outcome.tail = TailState::Torn {
            file: view.path.to_path_buf(),
            offset: offset as u64,
            sequence: outcome.next_sequence,
            fault,
            garbage_bytes: (garbage_end - offset) as u64,
            orphan_segments,
        };
    }
}
