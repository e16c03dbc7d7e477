//! Errors of the log. Every message names the file, byte offset and sequence it is about and
//! says what the operator should do.

use std::io;
use std::path::PathBuf;

pub use super::format::{EntryFault, WholeEntryEvidence};

/// What went wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The configuration cannot describe a working log.
    #[error("invalid log configuration: {reason}; fix the node configuration")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// An operating-system call failed outside the commit path (opening, mapping, listing).
    #[error("could not {action} {}: {source}; check the disk, permissions and free space", path.display())]
    Io {
        /// What the log was doing, e.g. "map segment".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },

    /// Making data durable failed. The log is poisoned: the kernel may have dropped the dirty
    /// pages, so a retry could report success for data that is gone (fsyncgate).
    #[error(
        "could not make {bytes} bytes at offset {offset} of {} durable ({action}): {source}; \
         the log is poisoned and nothing appended since the last commit is acknowledged: \
         stop the node, check the disk, and restart it so that recovery re-reads the log",
        path.display()
    )]
    Flush {
        /// The call that failed (msync, fdatasync, fsync of the directory, segment creation).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// First byte of the range being made durable.
        offset: u64,
        /// Bytes of the range.
        bytes: u64,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },

    /// An earlier durability failure poisoned the log; no call succeeds any more.
    #[error(
        "the log is poisoned by an earlier failure and refuses every call; first failure: \
         {first_failure}; stop the node and restart it"
    )]
    Poisoned {
        /// The message of the first failure.
        first_failure: String,
    },

    /// Another process (or another `Log` in this process) has the log open.
    #[error("the log in {} is already open in another process or handle (lock file {}); stop the other node first", dir.display(), lock_file.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// The lock file.
        lock_file: PathBuf,
    },

    /// An entry larger than `entry_bytes_max`.
    #[error(
        "entry of {payload_bytes} payload bytes needs {entry_bytes} bytes on disk, more than \
         entry_bytes_max = {entry_bytes_max}; split the block or raise entry_bytes_max"
    )]
    EntryTooLarge {
        /// Payload bytes asked for.
        payload_bytes: u64,
        /// Bytes the entry would take with header and padding.
        entry_bytes: u64,
        /// The configured maximum.
        entry_bytes_max: u32,
    },

    /// A segment header is unreadable or inconsistent.
    #[error("segment {} has a corrupt header: {reason}; restore this file from a replica or backup", file.display())]
    CorruptSegmentHeader {
        /// The segment file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A segment file between the first and the last is missing.
    #[error(
        "segment index {index} ({}) is missing from {}{detail}; restore it from a replica or \
         backup, the log cannot skip entries",
        super::format::segment_file_name(*index),
        dir.display()
    )]
    MissingSegment {
        /// The log directory.
        dir: PathBuf,
        /// The missing index.
        index: u64,
        /// What else the operator should know (empty, or starting with "; "), e.g. that an
        /// archive marker is missing.
        detail: String,
    },

    /// `replay`/`entries` asked for entries that were archived out of the live log.
    #[error(
        "replay from sequence {from} asked, but entries before sequence {first_sequence} were \
         archived out of the live log; replay from a checkpoint at or after {first_sequence}, \
         or restore the archived segments to read older entries"
    )]
    SequenceArchived {
        /// The sequence asked for.
        from: u64,
        /// The first sequence still in the live log.
        first_sequence: u64,
    },

    /// The archive marker file is unreadable or inconsistent.
    #[error(
        "archive marker {} is corrupt: {reason}; the log cannot know where its live part \
         starts: restore the marker from a backup or replica (`tally inspect log` shows the \
         first live segment)",
        file.display()
    )]
    CorruptArchiveMarker {
        /// The marker file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The archive marker does not describe the first live segment.
    #[error(
        "archive marker {} disagrees with the first live segment {}: {reason}; the marker \
         belongs to another log or another cut, or entries are missing: do not delete \
         anything, run `tally inspect log` and restore the log (marker and segments) from a \
         replica or backup",
        marker.display(),
        segment.display()
    )]
    ArchiveMarkerMismatch {
        /// The marker file.
        marker: PathBuf,
        /// The first live segment.
        segment: PathBuf,
        /// What disagrees.
        reason: String,
    },

    /// Archiving stopped without damage: the live log keeps working.
    #[error(
        "could not {action} {}: {source}; archiving stopped, the live log keeps working: fix \
         the cause and archive again (segments not moved yet stay in the live directory below \
         its base and the next archive moves them)",
        path.display()
    )]
    ArchiveFailed {
        /// What the archive was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },

    /// A segment does not start with the sequence that follows the previous segment.
    #[error(
        "segment {} starts at sequence {found} but the previous segments end before \
         sequence {expected}; segments are out of order or entries are missing: restore the log \
         from a replica or backup",
        file.display()
    )]
    SegmentSequenceMismatch {
        /// The segment file.
        file: PathBuf,
        /// The sequence the previous segments lead to.
        expected: u64,
        /// The first sequence in the segment header.
        found: u64,
    },

    /// A damaged entry with a valid entry after it: corruption in the middle of the log,
    /// which recovery never cuts.
    #[error(
        "entry {sequence} at byte {offset} of {} is damaged ({fault}), but a valid entry \
         follows at byte {valid_offset} of {}; this is corruption inside the log, not a torn \
         tail, so the log will not open: keep all files, run `tally inspect log` and restore \
         the log from a replica or backup",
        file.display(),
        valid_file.display()
    )]
    CorruptEntry {
        /// The segment holding the damaged entry.
        file: PathBuf,
        /// Byte offset of the damaged entry in that file.
        offset: u64,
        /// The sequence the damaged entry should carry.
        sequence: u64,
        /// What is wrong with it.
        fault: EntryFault,
        /// The segment holding the first valid entry after the damage.
        valid_file: PathBuf,
        /// Byte offset of that entry.
        valid_offset: u64,
    },

    /// A damaged entry with no valid entry after it that was nevertheless wholly written (its
    /// trailer shows it): corruption of an entry that may have been acknowledged, which
    /// recovery never cuts as a torn tail.
    #[error(
        "entry {sequence} at byte {offset} of {} is damaged ({fault}), and it was wholly \
         written: {evidence}; a torn write never leaves that, so this is corruption of an entry \
         that may have been acknowledged, not a torn tail, and the log will not open: keep all \
         files and run `tally inspect log`; a validator repairs the entry from its peers at \
         start (docs/OPERATIONS.md, \"A damaged log entry\"), a node alone must be restored \
         from a backup or replica",
        file.display()
    )]
    DamagedEntry {
        /// The segment holding the damaged entry.
        file: PathBuf,
        /// Byte offset of the damaged entry in that file.
        offset: u64,
        /// The sequence the damaged entry carries.
        sequence: u64,
        /// The first check it fails.
        fault: EntryFault,
        /// What shows that it was wholly written.
        evidence: WholeEntryEvidence,
    },

    /// A segment written by another version of the log format.
    #[error(
        "segment {} was written in log format version {version}; this build reads version {} \
         only (version 2 added the entry trailer that tells a torn write from a damaged entry, \
         docs/STORAGE.md): run this data directory with the release that wrote it, or start \
         this node from an empty data directory (a validator catches up from its peers)",
        file.display(),
        super::format::FORMAT_VERSION
    )]
    UnsupportedFormatVersion {
        /// The segment file.
        file: PathBuf,
        /// The version in its header.
        version: u32,
    },

    /// An archived segment holds a damaged entry, or its entries do not follow each other.
    #[error(
        "archived entry {sequence} at byte {offset} of {} is damaged ({fault}); restore the \
         archive from a replica or backup",
        file.display()
    )]
    DamagedArchive {
        /// The archived segment file.
        file: PathBuf,
        /// Byte offset of the entry.
        offset: u64,
        /// The sequence expected there.
        sequence: u64,
        /// What is wrong with it.
        fault: EntryFault,
    },

    /// `replay` was asked to start after the last entry.
    #[error(
        "replay from sequence {from} asked, but the log ends before sequence {next_sequence}; \
         the caller's state is ahead of its log: do not start the node on this log"
    )]
    SequenceBeyondEnd {
        /// The sequence asked for.
        from: u64,
        /// The next sequence of the log.
        next_sequence: u64,
    },

    /// Bytes that `open` verified changed under the log (memory corruption or an outside
    /// writer); the check runs during replay.
    #[error(
        "entry at byte {offset} of {} no longer reads as entry {sequence}; the mapped file \
         changed under the running node: stop it and run `tally inspect log`",
        file.display()
    )]
    ChangedUnderLog {
        /// The segment file.
        file: PathBuf,
        /// Byte offset.
        offset: u64,
        /// The sequence expected there.
        sequence: u64,
    },
}

/// The error of [`super::Log::replay`]: the log's own or the visitor's.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The visitor returned an error; replay stopped at that entry.
    #[error("replay visitor stopped at sequence {sequence}: {error}")]
    Visitor {
        /// The sequence of the entry the visitor rejected.
        sequence: u64,
        /// The visitor's error.
        error: E,
    },
}
