//! Read-only verification of a log directory for operators (`tally inspect log DIR`).

use std::fs::File;
use std::path::{Path, PathBuf};

use super::archive::{self, ArchiveBase};
use super::error::LogError;
use super::format::{SegmentHeader, SEGMENT_HEADER_BYTES};
use super::mmap;
use super::scan::{self, SegmentView, TailState};

/// One segment file as `inspect` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The file.
    pub file: PathBuf,
    /// Index from the file name.
    pub index: u64,
    /// Length of the file.
    pub file_bytes: u64,
    /// First sequence from the header (`None` when the header is unreadable).
    pub first_sequence: Option<u64>,
    /// Valid entries in the segment.
    pub entry_count: u64,
    /// Bytes used by valid entries (headers and padding included).
    pub entry_bytes: u64,
    /// Sequence of the last valid entry, if any.
    pub last_sequence: Option<u64>,
    /// Whether the chain verification reached this segment (false after a problem).
    pub verified: bool,
}

/// What `inspect` found. `problem` is the first thing `Log::open` would refuse; a torn tail
/// is not a problem (open cuts it) and shows in `tail`.
#[derive(Debug)]
pub struct InspectReport {
    /// The directory inspected.
    pub dir: PathBuf,
    /// The archive marker: where the live log starts (`None` when nothing was archived, or
    /// when the marker is unreadable, which is then the `problem`).
    pub archive_base: Option<ArchiveBase>,
    /// Segment files below the archive base still in the directory (an interrupted
    /// archive); not verified, `open` ignores them and the next archive moves them.
    pub segments_below_base: Vec<PathBuf>,
    /// Whether the first live entry was checked to link to the marker's hash of the last
    /// archived entry (false without a marker, or when the live log holds no entry yet).
    pub archive_link_verified: bool,
    /// Every live segment file, in index order.
    pub segments: Vec<SegmentSummary>,
    /// Valid entries in the verified chain (live entries only).
    pub entry_count: u64,
    /// Bytes used by those entries.
    pub entry_bytes: u64,
    /// Sequence the next append would get.
    pub next_sequence: u64,
    /// Hash of the last valid entry (the marker's hash of the last archived entry, or
    /// [`super::GENESIS_HASH`], when the live log holds none).
    pub last_entry_hash: [u8; 32],
    /// What follows the last valid entry.
    pub tail: TailState,
    /// Half-created segment files (`.tmp`) that `open` would remove.
    pub temporary_files: Vec<PathBuf>,
    /// The first problem that makes `Log::open` refuse the log.
    pub problem: Option<LogError>,
}

impl InspectReport {
    /// True when `Log::open` would accept the log (possibly after cutting a torn tail).
    pub fn is_healthy(&self) -> bool {
        self.problem.is_none()
    }
}

/// Lists the segments and entries of the log in `dir` and verifies the whole hash chain,
/// without modifying anything (files are opened read-only, no lock is taken).
///
/// Corruption is reported in [`InspectReport::problem`]; the error is returned only when the
/// directory or a file cannot be read at all (`Io`).
pub fn inspect(dir: &Path) -> Result<InspectReport, LogError> {
    let (marker, marker_problem) = match archive::read_marker(dir) {
        Ok(marker) => (marker, None),
        Err(problem @ LogError::CorruptArchiveMarker { .. }) => (None, Some(problem)),
        Err(error) => return Err(error),
    };
    let marker_path = marker.map(|_| archive::marker_path(dir));
    let base = marker.unwrap_or(ArchiveBase::GENESIS);
    let mut listing = scan::list_segments(dir)?;
    let (segments_below_base, live_files) =
        archive::split_at_base(std::mem::take(&mut listing.files), &base);
    listing.files = live_files;
    let marker_temporary = archive::marker_temporary_path(dir);
    if marker_temporary.exists() {
        listing.temporary_files.push(marker_temporary);
    }
    let mut report = InspectReport {
        dir: dir.to_path_buf(),
        archive_base: marker,
        segments_below_base,
        archive_link_verified: false,
        segments: Vec::with_capacity(listing.files.len()),
        entry_count: 0,
        entry_bytes: 0,
        next_sequence: base.first_sequence,
        last_entry_hash: base.previous_hash,
        tail: TailState::Clean,
        temporary_files: listing.temporary_files,
        problem: marker_problem,
    };
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| LogError::Io {
            action,
            path,
            source,
        }
    };

    let mut headers: Vec<Option<SegmentHeader>> = Vec::with_capacity(listing.files.len());
    let mut maps = Vec::with_capacity(listing.files.len());
    for (index, path) in &listing.files {
        let file = File::open(path).map_err(io_error("open segment", path))?;
        let file_bytes = file
            .metadata()
            .map_err(io_error("read the metadata of segment", path))?
            .len();
        let header = match scan::read_segment_header(path, &file, *index) {
            Ok(header) => Some(header),
            Err(problem) => {
                report.problem.get_or_insert(problem);
                None
            }
        };
        report.segments.push(SegmentSummary {
            file: path.clone(),
            index: *index,
            file_bytes,
            first_sequence: header.map(|header| header.first_sequence),
            entry_count: 0,
            entry_bytes: 0,
            last_sequence: None,
            verified: false,
        });
        headers.push(header);
        if header.is_some() && report.problem.is_none() {
            maps.push(mmap::map_read(&file).map_err(io_error("map segment", path))?);
        }
    }
    if report.problem.is_none() {
        if let Err(problem) = scan::check_contiguous(
            dir,
            &listing.files,
            base.segment_index,
            marker_path.as_deref(),
        ) {
            report.problem = Some(problem);
        }
    }
    if report.problem.is_none() && marker.is_some() && listing.files.is_empty() {
        report.problem = Some(LogError::MissingSegment {
            dir: dir.to_path_buf(),
            index: base.segment_index,
            detail: format!(
                "; the archive marker {} says the live log starts there, and no live segment \
                 is left",
                archive::marker_path(dir).display()
            ),
        });
    }
    if report.problem.is_some() || listing.files.is_empty() {
        return Ok(report);
    }

    let views: Vec<SegmentView<'_>> = listing
        .files
        .iter()
        .zip(&headers)
        .zip(&maps)
        .map(|(((_, path), header), map)| SegmentView {
            path,
            header: header.expect("every header decoded when there is no problem"),
            bytes: &map[..],
        })
        .collect();
    if let Err(problem) = archive::check_base(marker_path.as_deref(), &base, &views[0]) {
        report.problem = Some(problem);
        return Ok(report);
    }
    let outcome = scan::scan(&views, &base);
    // The scan checks the first live entry's previous hash against the marker's.
    report.archive_link_verified = marker.is_some()
        && outcome
            .segments
            .first()
            .is_some_and(|first| first.entry_count > 0);
    for (summary, scanned) in report.segments.iter_mut().zip(&outcome.segments) {
        let first = summary.first_sequence.unwrap_or(0);
        summary.entry_count = scanned.entry_count;
        summary.entry_bytes = (scanned.end_offset - SEGMENT_HEADER_BYTES) as u64;
        summary.last_sequence = scanned.entry_count.checked_sub(1).map(|last| first + last);
        summary.verified = true;
        report.entry_count += scanned.entry_count;
        report.entry_bytes += summary.entry_bytes;
    }
    report.next_sequence = outcome.next_sequence;
    report.last_entry_hash = outcome.last_entry_hash;
    report.tail = outcome.tail;
    report.problem = outcome.problem;
    Ok(report)
}
