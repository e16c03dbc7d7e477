//! The event journal: one file, `DATA/events/events.jnl`, holding every block's account
//! events from its first height on, one entry per block, heights contiguous (docs/STORAGE.md,
//! "Event journal").
//!
//! ```text
//! header  magic "TALLYEV2" | first_height u64 | hash16 of the 16 bytes before
//! entry   height u64 | time_ms u64 | day_ended u64 (u64::MAX: none) | count u32 | 0u32 |
//!         count x 104-byte event | hash16 of all before it
//! event   kind u8 | has u8 (1: related_id, 2: tax, 4: exclusive basis) | 0 x6 | id u128 |
//!         related_id u128 | payer u64 | payee u64 | amount u64 | tax u64 | tax_account u64 |
//!         payer_balance i64 | payee_balance i64 | tax_account_balance i64
//! ```
//!
//! (`TALLYEV1`, without the block stamp and the balances, is not read: a journal of that
//! version is started again and the log's blocks replayed at start fill it.)
//!
//! Integers are little-endian; `hash16` is the first 16 bytes of a keyed BLAKE3 hash. The
//! journal is derived from the log and written after the log makes a block durable, without
//! a flush of its own: it is flushed before each checkpoint is handed to its writer, so after
//! a crash it holds at least every block up to the newest checkpoint, and recovery's replay
//! of the log after that checkpoint writes the blocks it lacks again. An entry cut short or
//! damaged ends the journal where it begins (the rest is made again from the log); a gap
//! the log cannot fill (the journal lost, the log's older blocks archived) starts the
//! journal again at the first block replayed, and subscriptions from before it are refused
//! with the height they may start from.
//!
//! Every [`SPARSE_EVERY`]-th entry's height and offset (and the first entry's) are also
//! appended to `events.sparse`, 32 bytes each:
//!
//! ```text
//! point   height u64 | offset u64 | hash16 of the journal's header and the 16 bytes before
//! ```
//!
//! so that an open checks the journal from the last remembered point on, not from its
//! start: a start costs the entries since that point (at most [`SPARSE_EVERY`] and what was
//! appended after), not the node's whole history. The entries before it are checked when read
//! (every read checks its entry's hash): a damaged one is named to the subscription that
//! reads it. The points file is advisory: points that do not check, or a last point whose
//! entry is not there, make the open check the whole journal as without it, and the open
//! rewrites the file to the points it then holds.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tally_protocol::events::{AccountEvent, BlockStamp, EventKind};

/// The journal's directory under a node's data directory.
pub const EVENTS_DIR: &str = "events";
const FILE_NAME: &str = "events.jnl";
const SPARSE_FILE_NAME: &str = "events.sparse";
const SPARSE_POINT_BYTES: usize = 32;
const SPARSE_CONTEXT: &str = "tally events journal v2 sparse point";
const MAGIC: &[u8; 8] = b"TALLYEV2";
const HEADER_BYTES: u64 = 32;
const ENTRY_HEADER_BYTES: usize = 32;
const HASH_BYTES: usize = 16;
/// Bytes of one event in the journal.
pub const EVENT_BYTES: usize = 104;
/// Most events one entry may hold: a block's records each make at most one event, and the
/// end of a block at most one per queued payment or reservation; a count over this is damage.
const ENTRY_EVENTS_MAX: u32 = 1 << 22;
/// Every this many heights the journal remembers an entry's offset, to start reading there.
const SPARSE_EVERY: u64 = 256;
const HASH_CONTEXT: &str = "tally events journal v2 entry";

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("event journal {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("event journal {path}: block {height} follows block {last}; the journal holds contiguous heights")]
    Gap {
        path: PathBuf,
        height: u64,
        last: u64,
    },
    #[error(
        "events before block {first} are not kept by this node (its event journal starts there)"
    )]
    Before { first: u64 },
    #[error("event journal {path}: the entry of block {height} at offset {offset} is damaged ({reason})")]
    Damaged {
        path: PathBuf,
        height: u64,
        offset: u64,
        reason: String,
    },
}

/// Where a reader is: the next height it reads and, once known, that entry's offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub next_height: u64,
    offset: Option<u64>,
}

impl Cursor {
    pub fn at(height: u64) -> Cursor {
        Cursor {
            next_height: height,
            offset: None,
        }
    }
}

struct Inner {
    file: File,
    /// Bytes of whole entries.
    end: u64,
    first_height: u64,
    /// `first_height - 1` while the journal is empty.
    last_height: u64,
    /// (height, offset) of every `SPARSE_EVERY`-th entry, by height.
    sparse: Vec<(u64, u64)>,
    /// `events.sparse`: `sparse`, one point per 32 bytes.
    sparse_file: File,
}

/// A node's event journal: appended by the stage that makes blocks durable, read by the
/// client server for its subscriptions.
pub struct EventJournal {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// A second handle to read through without holding the lock.
    reader: File,
}

impl std::fmt::Debug for EventJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventJournal")
            .field("path", &self.path)
            .finish()
    }
}

fn hash16(parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    tally_protocol::journal::hash16(HASH_CONTEXT, parts)
}

fn header_bytes(first_height: u64) -> [u8; HEADER_BYTES as usize] {
    tally_protocol::journal::header(MAGIC, first_height, HASH_CONTEXT)
}

/// A sparse point's 32 bytes, bound to the journal's header (its first height).
fn sparse_point(first_height: u64, height: u64, offset: u64) -> [u8; SPARSE_POINT_BYTES] {
    let mut point = [0u8; SPARSE_POINT_BYTES];
    point[0..8].copy_from_slice(&height.to_le_bytes());
    point[8..16].copy_from_slice(&offset.to_le_bytes());
    let hash = tally_protocol::journal::hash16(
        SPARSE_CONTEXT,
        &[&header_bytes(first_height), &point[..16]],
    );
    point[16..].copy_from_slice(&hash);
    point
}

/// The points of `events.sparse` that check, in order, up to the first that does not: each
/// bound to this journal's first height, heights and offsets rising, the first at the first
/// entry, every offset inside the journal's `len` bytes.
fn read_sparse(file: &File, first_height: u64, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let size = file.metadata()?.len() as usize;
    let mut raw = vec![0u8; size - size % SPARSE_POINT_BYTES];
    file.read_exact_at(&mut raw, 0)?;
    let mut points: Vec<(u64, u64)> = Vec::new();
    for chunk in raw.chunks_exact(SPARSE_POINT_BYTES) {
        let height = u64::from_le_bytes(chunk[0..8].try_into().expect("8"));
        let offset = u64::from_le_bytes(chunk[8..16].try_into().expect("8"));
        let follows = match points.last() {
            None => height == first_height && offset == HEADER_BYTES,
            Some(&(h, o)) => height > h && offset > o,
        };
        if !follows
            || offset >= len
            || chunk != sparse_point(first_height, height, offset).as_slice()
        {
            break;
        }
        points.push((height, offset));
    }
    Ok(points)
}

/// An event's 104 bytes.
pub fn encode_event(event: &AccountEvent, out: &mut Vec<u8>) {
    let mut has = 0u8;
    if event.related_id.is_some() {
        has |= 1;
    }
    if event.tax.is_some() {
        has |= 2;
    }
    if event.exclusive {
        has |= 4;
    }
    out.push(event.kind.code());
    out.push(has);
    out.extend_from_slice(&[0u8; 6]);
    out.extend_from_slice(&event.id.to_le_bytes());
    out.extend_from_slice(&event.related_id.unwrap_or(0).to_le_bytes());
    for word in [
        event.payer,
        event.payee,
        event.amount,
        event.tax.unwrap_or(0),
        event.tax_account.unwrap_or(0),
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for balance in [
        event.payer_balance,
        event.payee_balance,
        event.tax_account_balance.unwrap_or(0),
    ] {
        out.extend_from_slice(&balance.to_le_bytes());
    }
}

/// Reads an event's 104 bytes.
pub fn decode_event(bytes: &[u8]) -> Result<AccountEvent, String> {
    assert_eq!(bytes.len(), EVENT_BYTES);
    let kind =
        EventKind::from_code(bytes[0]).ok_or_else(|| format!("unknown event kind {}", bytes[0]))?;
    let has = bytes[1];
    if has & !7 != 0 || bytes[2..8].iter().any(|b| *b != 0) {
        return Err("reserved bits set".into());
    }
    let u128_at = |at: usize| u128::from_le_bytes(bytes[at..at + 16].try_into().expect("16"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
    let i64_at = |at: usize| i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
    Ok(AccountEvent {
        kind,
        id: u128_at(8),
        related_id: (has & 1 != 0).then(|| u128_at(24)),
        payer: u64_at(40),
        payee: u64_at(48),
        amount: u64_at(56),
        tax: (has & 2 != 0).then(|| u64_at(64)),
        tax_account: (has & 2 != 0).then(|| u64_at(72)),
        exclusive: has & 4 != 0,
        payer_balance: i64_at(80),
        payee_balance: i64_at(88),
        tax_account_balance: (has & 2 != 0).then(|| i64_at(96)),
    })
}

/// What one read of an entry found.
enum EntryRead {
    Whole {
        height: u64,
        stamp: BlockStamp,
        events: Vec<AccountEvent>,
        bytes: u64,
    },
    /// Fewer bytes than the entry needs: the end.
    Short,
    Damaged(String),
}

fn read_entry(file: &File, offset: u64, end: u64, decode: bool) -> io::Result<EntryRead> {
    if end < offset + ENTRY_HEADER_BYTES as u64 {
        return Ok(EntryRead::Short);
    }
    let mut header = [0u8; ENTRY_HEADER_BYTES];
    file.read_exact_at(&mut header, offset)?;
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8"));
    let height = word(0);
    let stamp = BlockStamp {
        time_ms: word(8),
        day_ended: Some(word(16)).filter(|day| *day != u64::MAX),
    };
    let count = u32::from_le_bytes(header[24..28].try_into().expect("4"));
    if header[28..32] != [0; 4] {
        return Ok(EntryRead::Damaged("reserved bytes not zero".into()));
    }
    if count > ENTRY_EVENTS_MAX {
        return Ok(EntryRead::Damaged(format!("{count} events")));
    }
    let bytes = (ENTRY_HEADER_BYTES + count as usize * EVENT_BYTES + HASH_BYTES) as u64;
    if end < offset + bytes {
        return Ok(EntryRead::Short);
    }
    let mut body = vec![0u8; bytes as usize - ENTRY_HEADER_BYTES];
    file.read_exact_at(&mut body, offset + ENTRY_HEADER_BYTES as u64)?;
    let (payload, hash) = body.split_at(body.len() - HASH_BYTES);
    if hash16(&[&header, payload]) != hash {
        return Ok(EntryRead::Damaged("hash mismatch".into()));
    }
    let mut events = Vec::new();
    if decode {
        events.reserve(count as usize);
        for chunk in payload.chunks_exact(EVENT_BYTES) {
            match decode_event(chunk) {
                Ok(event) => events.push(event),
                Err(reason) => return Ok(EntryRead::Damaged(reason)),
            }
        }
    }
    Ok(EntryRead::Whole {
        height,
        stamp,
        events,
        bytes,
    })
}

impl EventJournal {
    /// Opens (or creates) the journal in `dir`. A damaged header starts a new, empty
    /// journal; an entry cut short, damaged or out of sequence ends the journal where it
    /// begins. Each is logged with what was dropped.
    pub fn open(dir: &Path) -> Result<EventJournal, JournalError> {
        let path = dir.join(FILE_NAME);
        let io_error = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let file = tally_protocol::journal::open_file(dir, FILE_NAME).map_err(io_error)?;
        let len = file.metadata().map_err(io_error)?.len();
        let mut header = [0u8; HEADER_BYTES as usize];
        let header_ok = len >= HEADER_BYTES && {
            file.read_exact_at(&mut header, 0).map_err(io_error)?;
            header == header_bytes(u64::from_le_bytes(header[8..16].try_into().expect("8")))
        };
        let reader = file.try_clone().map_err(io_error)?;
        let sparse_path = dir.join(SPARSE_FILE_NAME);
        let sparse_file =
            tally_protocol::journal::open_file(dir, SPARSE_FILE_NAME).map_err(|source| {
                JournalError::Io {
                    path: sparse_path.clone(),
                    source,
                }
            })?;
        let journal = EventJournal {
            path: path.clone(),
            inner: Mutex::new(Inner {
                file,
                end: HEADER_BYTES,
                first_height: 1,
                last_height: 0,
                sparse: Vec::new(),
                sparse_file,
            }),
            reader,
        };
        if !header_ok {
            if len > 0 {
                tracing::warn!(path = %path.display(), bytes = len, "event journal header damaged; starting the journal again (the log's blocks replayed at start fill it)");
            }
            journal.restart_at(1)?;
            return Ok(journal);
        }
        let first_height = u64::from_le_bytes(header[8..16].try_into().expect("8"));
        let mut inner = journal.inner.lock().expect("journal lock");
        inner.first_height = first_height;
        inner.last_height = first_height - 1;
        let mut offset = HEADER_BYTES;
        // Check from the last remembered point whose entry is there, not from the start.
        let sparse_error = |source| JournalError::Io {
            path: sparse_path.clone(),
            source,
        };
        let remembered =
            read_sparse(&inner.sparse_file, first_height, len).map_err(sparse_error)?;
        // (the last point's entry may be the torn tail: then the one before it)
        let mut start = None;
        for (index, &(height, at)) in remembered.iter().enumerate().rev().take(2) {
            let read = read_entry(&inner.file, at, len, false).map_err(io_error)?;
            if matches!(read, EntryRead::Whole { height: found, .. } if found == height) {
                start = Some(index);
                break;
            }
        }
        match start {
            Some(index) => {
                let (height, at) = remembered[index];
                inner.sparse = remembered[..index].to_vec();
                inner.last_height = height - 1;
                offset = at;
            }
            None if !remembered.is_empty() => {
                tracing::warn!(path = %path.display(), "event journal's remembered entries are not where events.sparse says; the whole journal is checked");
            }
            None => {}
        }
        loop {
            let read = read_entry(&inner.file, offset, len, false).map_err(io_error)?;
            match read {
                EntryRead::Whole { height, bytes, .. } if height == inner.last_height + 1 => {
                    if height.is_multiple_of(SPARSE_EVERY) || inner.sparse.is_empty() {
                        inner.sparse.push((height, offset));
                    }
                    inner.last_height = height;
                    offset += bytes;
                }
                EntryRead::Whole { height, .. } => {
                    tracing::warn!(path = %path.display(), offset, height, expected = inner.last_height + 1, "event journal entry out of sequence; the journal ends before it");
                    break;
                }
                EntryRead::Short => {
                    if offset < len {
                        tracing::warn!(path = %path.display(), offset, bytes = len - offset, "event journal ends in an entry cut short; cut");
                    }
                    break;
                }
                EntryRead::Damaged(reason) => {
                    tracing::warn!(path = %path.display(), offset, %reason, "event journal entry damaged; the journal ends before it");
                    break;
                }
            }
        }
        inner.end = offset;
        if offset < len {
            inner.file.set_len(offset).map_err(io_error)?;
        }
        if inner.sparse != remembered {
            let mut bytes = Vec::with_capacity(inner.sparse.len() * SPARSE_POINT_BYTES);
            for &(height, at) in &inner.sparse {
                bytes.extend_from_slice(&sparse_point(first_height, height, at));
            }
            inner.sparse_file.set_len(0).map_err(sparse_error)?;
            inner
                .sparse_file
                .write_all_at(&bytes, 0)
                .map_err(sparse_error)?;
        }
        drop(inner);
        Ok(journal)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first height it holds (or would hold, while empty).
    pub fn first_height(&self) -> u64 {
        self.inner.lock().expect("journal lock").first_height
    }

    /// The last height it holds (`first_height() - 1` while empty).
    pub fn last_height(&self) -> u64 {
        self.inner.lock().expect("journal lock").last_height
    }

    /// Empties the journal, to start at `first_height`.
    fn restart_at(&self, first_height: u64) -> Result<(), JournalError> {
        let mut inner = self.inner.lock().expect("journal lock");
        let io_error = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        // the points first: a crash between the two leaves none that could name the new file
        inner
            .sparse_file
            .set_len(0)
            .map_err(|source| self.sparse_error(source))?;
        inner.file.set_len(0).map_err(io_error)?;
        inner
            .file
            .write_all_at(&header_bytes(first_height), 0)
            .map_err(io_error)?;
        inner.file.sync_data().map_err(io_error)?;
        inner.end = HEADER_BYTES;
        inner.first_height = first_height;
        inner.last_height = first_height - 1;
        inner.sparse.clear();
        Ok(())
    }

    /// Appends block `height`'s events. The block must follow the last one held.
    pub fn append(
        &self,
        height: u64,
        stamp: BlockStamp,
        events: &[AccountEvent],
    ) -> Result<(), JournalError> {
        let mut inner = self.inner.lock().expect("journal lock");
        if height != inner.last_height + 1 {
            return Err(JournalError::Gap {
                path: self.path.clone(),
                height,
                last: inner.last_height,
            });
        }
        let mut bytes = Vec::with_capacity(ENTRY_HEADER_BYTES + events.len() * EVENT_BYTES + 16);
        bytes.extend_from_slice(&height.to_le_bytes());
        bytes.extend_from_slice(&stamp.time_ms.to_le_bytes());
        bytes.extend_from_slice(&stamp.day_ended.unwrap_or(u64::MAX).to_le_bytes());
        bytes.extend_from_slice(&(events.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&[0u8; 4]);
        for event in events {
            encode_event(event, &mut bytes);
        }
        let hash = hash16(&[&bytes]);
        bytes.extend_from_slice(&hash);
        let offset = inner.end;
        inner
            .file
            .write_all_at(&bytes, offset)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        if height.is_multiple_of(SPARSE_EVERY) || inner.sparse.is_empty() {
            let point = sparse_point(inner.first_height, height, offset);
            let at = (inner.sparse.len() * SPARSE_POINT_BYTES) as u64;
            inner
                .sparse_file
                .write_all_at(&point, at)
                .map_err(|source| self.sparse_error(source))?;
            inner.sparse.push((height, offset));
        }
        inner.end += bytes.len() as u64;
        inner.last_height = height;
        Ok(())
    }

    /// Appends block `height`'s events made again by recovery's replay: a block the journal
    /// holds already is skipped; one after a gap starts the journal again at it (logged).
    pub fn append_replayed(
        &self,
        height: u64,
        stamp: BlockStamp,
        events: &[AccountEvent],
    ) -> Result<(), JournalError> {
        let (first, last) = {
            let inner = self.inner.lock().expect("journal lock");
            (inner.first_height, inner.last_height)
        };
        if height <= last && height >= first {
            return Ok(());
        }
        if height != last + 1 {
            tracing::warn!(path = %self.path.display(), first, last, height, "event journal does not reach the first block replayed; it starts again there (subscriptions from before it are refused)");
            self.restart_at(height)?;
        }
        self.append(height, stamp, events)
    }

    /// Makes the journal end at the log's last block `tip`, before new blocks are appended:
    /// blocks after it are cut (logged); a journal that ends before it (lost, or older than
    /// the checkpoint recovery started from with nothing replayed after it) starts again
    /// after it (logged).
    pub fn end_at(&self, tip: u64) -> Result<(), JournalError> {
        let (first, last) = {
            let inner = self.inner.lock().expect("journal lock");
            (inner.first_height, inner.last_height)
        };
        if last < tip {
            tracing::warn!(path = %self.path.display(), first, last, tip, "event journal ends before the log's last block; it starts again after it (subscriptions from before it are refused)");
            return self.restart_at(tip + 1);
        }
        self.truncate_after(tip)
    }

    /// Drops every block after `height` (the log ends there).
    fn truncate_after(&self, height: u64) -> Result<(), JournalError> {
        let inner = self.inner.lock().expect("journal lock");
        if inner.last_height <= height {
            return Ok(());
        }
        let dropped = inner.last_height - height;
        drop(inner);
        if height < self.first_height() {
            tracing::warn!(path = %self.path.display(), height, "event journal starts after the log's end; starting it again");
            return self.restart_at(height + 1);
        }
        let mut cursor = Cursor::at(height + 1);
        self.seek(&mut cursor)?;
        let offset = cursor.offset.expect("the journal holds height + 1");
        let mut inner = self.inner.lock().expect("journal lock");
        tracing::warn!(path = %self.path.display(), height, dropped, "event journal holds blocks after the log's end; cut");
        inner
            .file
            .set_len(offset)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        inner.end = offset;
        inner.last_height = height;
        inner.sparse.retain(|(h, _)| *h <= height);
        let kept = (inner.sparse.len() * SPARSE_POINT_BYTES) as u64;
        inner
            .sparse_file
            .set_len(kept)
            .map_err(|source| self.sparse_error(source))?;
        Ok(())
    }

    fn sparse_error(&self, source: io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.with_file_name(SPARSE_FILE_NAME),
            source,
        }
    }

    /// Makes what was appended durable.
    pub fn sync(&self) -> Result<(), JournalError> {
        let inner = self.inner.lock().expect("journal lock");
        inner.file.sync_data().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Finds the offset of `cursor.next_height`'s entry (which must be held).
    fn seek(&self, cursor: &mut Cursor) -> Result<(), JournalError> {
        if cursor.offset.is_some() {
            return Ok(());
        }
        let (mut height, mut offset, end) = {
            let inner = self.inner.lock().expect("journal lock");
            if cursor.next_height < inner.first_height {
                return Err(JournalError::Before {
                    first: inner.first_height,
                });
            }
            let at = inner
                .sparse
                .partition_point(|(h, _)| *h <= cursor.next_height);
            let (height, offset) = if at == 0 {
                (inner.first_height, HEADER_BYTES)
            } else {
                inner.sparse[at - 1]
            };
            (height, offset, inner.end)
        };
        while height < cursor.next_height {
            match read_entry(&self.reader, offset, end, false).map_err(|source| {
                JournalError::Io {
                    path: self.path.clone(),
                    source,
                }
            })? {
                EntryRead::Whole { bytes, .. } => {
                    offset += bytes;
                    height += 1;
                }
                EntryRead::Short => break,
                EntryRead::Damaged(reason) => {
                    return Err(JournalError::Damaged {
                        path: self.path.clone(),
                        height,
                        offset,
                        reason,
                    })
                }
            }
        }
        cursor.offset = Some(offset);
        Ok(())
    }

    /// Reads up to `max_blocks` blocks from `cursor` (advanced past them), each passed to
    /// `each` with its events; stops at the last block held. Returns how many it read.
    pub fn read(
        &self,
        cursor: &mut Cursor,
        max_blocks: usize,
        mut each: impl FnMut(u64, BlockStamp, Vec<AccountEvent>),
    ) -> Result<usize, JournalError> {
        let (last, end) = {
            let inner = self.inner.lock().expect("journal lock");
            (inner.last_height, inner.end)
        };
        if cursor.next_height > last {
            return Ok(0);
        }
        self.seek(cursor)?;
        let mut read = 0;
        while read < max_blocks && cursor.next_height <= last {
            let offset = cursor.offset.expect("sought");
            let entry =
                read_entry(&self.reader, offset, end, true).map_err(|source| JournalError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            match entry {
                EntryRead::Whole {
                    height,
                    stamp,
                    events,
                    bytes,
                } if height == cursor.next_height => {
                    each(height, stamp, events);
                    cursor.next_height += 1;
                    cursor.offset = Some(offset + bytes);
                    read += 1;
                }
                EntryRead::Whole { height, .. } => {
                    return Err(JournalError::Damaged {
                        path: self.path.clone(),
                        height: cursor.next_height,
                        offset,
                        reason: format!("found block {height}"),
                    })
                }
                EntryRead::Short => break,
                EntryRead::Damaged(reason) => {
                    return Err(JournalError::Damaged {
                        path: self.path.clone(),
                        height: cursor.next_height,
                        offset,
                        reason,
                    })
                }
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> AccountEvent {
        AccountEvent {
            kind: EventKind::ALL[n as usize % EventKind::ALL.len()],
            id: u128::from(n) << 70 | 7,
            related_id: n.is_multiple_of(2).then_some(u128::from(n) + 1),
            payer: n,
            payee: n + 1,
            amount: n * 100,
            tax: n.is_multiple_of(3).then_some(n),
            tax_account: n.is_multiple_of(3).then_some(9),
            exclusive: n.is_multiple_of(6),
            payer_balance: n as i64 - 50,
            payee_balance: -(n as i64),
            tax_account_balance: n.is_multiple_of(3).then_some(n as i64 * 3),
        }
    }

    /// Block `height`'s stamp: every fifth block ends a business day.
    fn stamp(height: u64) -> BlockStamp {
        BlockStamp {
            time_ms: height * 1_000 + 7,
            day_ended: height.is_multiple_of(5).then_some(height / 5),
        }
    }

    fn block(height: u64) -> Vec<AccountEvent> {
        (0..height % 4).map(|i| event(height * 10 + i)).collect()
    }

    fn read_all(journal: &EventJournal, from: u64) -> Vec<(u64, Vec<AccountEvent>)> {
        let mut cursor = Cursor::at(from);
        let mut out = Vec::new();
        while journal
            .read(&mut cursor, 7, |h, s, e| {
                assert_eq!(s, stamp(h), "block {h}'s stamp reads back");
                out.push((h, e))
            })
            .unwrap()
            > 0
        {}
        out
    }

    #[test]
    fn events_read_back_from_any_height_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        for height in 1..=600 {
            journal
                .append(height, stamp(height), &block(height))
                .unwrap();
        }
        drop(journal);
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!((journal.first_height(), journal.last_height()), (1, 600));
        for from in [1, 2, 255, 256, 257, 513, 600] {
            let read = read_all(&journal, from);
            assert_eq!(read.len() as u64, 601 - from, "from {from}");
            for (height, events) in read {
                assert_eq!(events, block(height));
            }
        }
        assert!(read_all(&journal, 601).is_empty());
        assert!(matches!(
            journal.append(602, stamp(602), &[]),
            Err(JournalError::Gap {
                height: 602,
                last: 600,
                ..
            })
        ));
    }

    #[test]
    fn a_torn_or_damaged_tail_is_cut_and_written_again_by_replay() {
        let dir = tempfile::tempdir().unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        for height in 1..=10 {
            journal
                .append(height, stamp(height), &block(height))
                .unwrap();
        }
        let path = journal.path().to_path_buf();
        drop(journal);
        let len = std::fs::metadata(&path).unwrap().len();
        // cut inside the last entry: a tear
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!(journal.last_height(), 9);
        // replay writes block 10 again and skips what is held
        for height in 5..=10 {
            journal
                .append_replayed(height, stamp(height), &block(height))
                .unwrap();
        }
        assert_eq!(journal.last_height(), 10);
        drop(journal);
        // a flipped byte in block 3's entry: the journal ends before it
        let mut bytes = std::fs::read(&path).unwrap();
        let third = HEADER_BYTES as usize
            + (1..3u64)
                .map(|h| ENTRY_HEADER_BYTES + block(h).len() * EVENT_BYTES + HASH_BYTES)
                .sum::<usize>();
        bytes[third + ENTRY_HEADER_BYTES + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!(journal.last_height(), 2);
        assert_eq!(read_all(&journal, 1).len(), 2);
    }

    #[test]
    fn an_open_checks_from_the_last_remembered_entry_and_older_damage_is_named_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        for height in 1..=700 {
            journal
                .append(height, stamp(height), &block(height))
                .unwrap();
        }
        let path = journal.path().to_path_buf();
        let sparse = dir.path().join(SPARSE_FILE_NAME);
        drop(journal);
        // points at heights 1, 256 and 512
        assert_eq!(
            std::fs::metadata(&sparse).unwrap().len(),
            3 * SPARSE_POINT_BYTES as u64
        );
        let offset_of = |height: u64| {
            HEADER_BYTES as usize
                + (1..height)
                    .map(|h| ENTRY_HEADER_BYTES + block(h).len() * EVENT_BYTES + HASH_BYTES)
                    .sum::<usize>()
        };
        // a flipped byte in block 300's entry, before the last point: the open does not read
        // it, every block is kept, and a read through it names the damage
        let mut bytes = std::fs::read(&path).unwrap();
        let clean = bytes.clone();
        bytes[offset_of(300) + ENTRY_HEADER_BYTES + 5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!((journal.first_height(), journal.last_height()), (1, 700));
        assert_eq!(read_all(&journal, 512).len(), 189);
        let mut cursor = Cursor::at(290);
        let error = journal.read(&mut cursor, 100, |_, _, _| {}).unwrap_err();
        assert!(
            matches!(error, JournalError::Damaged { height: 300, .. }),
            "{error}"
        );
        drop(journal);
        // the same damage after the last point is found at open: the journal ends before it
        let mut bytes = clean.clone();
        bytes[offset_of(600) + ENTRY_HEADER_BYTES + 5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!(journal.last_height(), 599);
        drop(journal);
        // points that do not check (or no file) make the open check the whole journal, and
        // the file is written again
        std::fs::write(&path, &clean).unwrap();
        for points in [vec![0xAAu8; 3 * SPARSE_POINT_BYTES], Vec::new()] {
            std::fs::write(&sparse, &points).unwrap();
            let mut damaged = clean.clone();
            damaged[offset_of(300) + ENTRY_HEADER_BYTES + 5] ^= 1;
            std::fs::write(&path, &damaged).unwrap();
            let journal = EventJournal::open(dir.path()).unwrap();
            assert_eq!(journal.last_height(), 299, "the whole journal checked");
            drop(journal);
            assert_eq!(
                std::fs::metadata(&sparse).unwrap().len(),
                2 * SPARSE_POINT_BYTES as u64,
                "points at 1 and 256 written again"
            );
            std::fs::write(&path, &clean).unwrap();
        }
        // a tear inside the entry of the last point (block 512): the point before it is used
        let journal = EventJournal::open(dir.path()).unwrap();
        for height in 300..=700 {
            journal
                .append_replayed(height, stamp(height), &block(height))
                .unwrap();
        }
        drop(journal);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len((offset_of(512) + 10) as u64).unwrap();
        drop(file);
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!(journal.last_height(), 511);
        assert_eq!(read_all(&journal, 250).len(), 262);
        assert_eq!(
            std::fs::metadata(&sparse).unwrap().len(),
            2 * SPARSE_POINT_BYTES as u64
        );
    }

    #[test]
    fn a_gap_restarts_the_journal_and_older_heights_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        journal.append(1, stamp(1), &block(1)).unwrap();
        // the log's blocks 2..=99 are in a checkpoint: replay starts at 100
        journal
            .append_replayed(100, stamp(100), &block(100))
            .unwrap();
        assert_eq!((journal.first_height(), journal.last_height()), (100, 100));
        let mut cursor = Cursor::at(50);
        assert!(matches!(
            journal.read(&mut cursor, 1, |_, _, _| {}),
            Err(JournalError::Before { first: 100 })
        ));
        drop(journal);
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!((journal.first_height(), journal.last_height()), (100, 100));
        assert_eq!(read_all(&journal, 100), vec![(100, block(100))]);
    }

    #[test]
    fn blocks_after_the_logs_end_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        for height in 1..=300 {
            journal
                .append(height, stamp(height), &block(height))
                .unwrap();
        }
        journal.end_at(260).unwrap();
        assert_eq!(journal.last_height(), 260);
        journal.append(261, stamp(261), &block(261)).unwrap();
        drop(journal);
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!(journal.last_height(), 261);
        assert_eq!(read_all(&journal, 255).len(), 7);
        // a journal behind the log's end starts again after it
        journal.end_at(400).unwrap();
        assert_eq!((journal.first_height(), journal.last_height()), (401, 400));
        journal.append(401, stamp(401), &block(401)).unwrap();
    }

    #[test]
    fn a_damaged_header_starts_an_empty_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        journal.append(1, stamp(1), &block(1)).unwrap();
        let path = journal.path().to_path_buf();
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let journal = EventJournal::open(dir.path()).unwrap();
        assert_eq!((journal.first_height(), journal.last_height()), (1, 0));
    }
}
