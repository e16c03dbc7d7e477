//! The history index: where every transaction of the log is, on disk (docs/STORAGE.md, "The
//! history index").
//!
//! Two mappings over every block of the log and of its archive:
//!
//! - transaction id -> (height, position in the block), for the record's own id and, marked
//!   as a reference, for the id a record names in `related_id` (a refund's payment, a post's
//!   or void's reservation, a queue instruction's payment);
//! - account -> (height, position) of every record that names it as debit or credit account.
//!
//! The index is a run of immutable, sorted segment files (`hist-<first>-<last>.idx`), each
//! covering a contiguous range of heights, plus the blocks indexed since the last segment in
//! memory (at most [`RECENT_ENTRIES_MAX`] entries; then they are written as a segment). A
//! new segment is merged with the one before it while that one is less than twice its size,
//! so a history of `n` entries has `O(log n)` segments and a look-up costs a binary search
//! in each, over memory-mapped files: the resident memory of the index is bounded by the
//! recent buffer, whatever the history's length.
//!
//! A segment is checked when it is opened (header checksum, body hash, its range follows
//! the one before). A damaged or missing segment is never trusted: it is removed with a
//! warning that names it, with every later one, and the heights it covered are indexed
//! again from the log. Segments written but not yet removed by an interrupted merge are
//! recognised by their ranges (one inside another) and removed.

use crate::tx::TxRecord;
use memmap2::Mmap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Magic at the start of a history index segment.
const SEGMENT_MAGIC: [u8; 8] = *b"TLYHIDX1";
/// Format version of a segment.
const SEGMENT_VERSION: u32 = 1;
/// Bytes of a segment's header.
const HEADER_BYTES: usize = 96;
/// Bytes of one entry.
const ENTRY_BYTES: usize = 32;
/// Bytes of entries hashed and written at a time when a segment is written.
const BODY_CHUNK_BYTES: usize = 64 * 1024;
/// BLAKE3 derive-key context of a segment's body hash.
const BODY_CONTEXT: &str = "tally 2026-12 history index segment body v1";
/// BLAKE3 derive-key context of a segment header's checksum.
const HEADER_CONTEXT: &str = "tally 2026-12 history index segment header v1";
/// Most entries held in memory before they are written as a segment.
pub const RECENT_ENTRIES_MAX: usize = 1 << 17;

/// An entry's flag: the key is the id the record names in `related_id`, not its own.
pub const REFERENCE: u32 = 1;

/// What the index takes of a record: its id, the id it names in `related_id` (0: none) and
/// its debit and credit accounts (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordKeys {
    pub id: u128,
    pub related_id: u128,
    pub debit: u64,
    pub credit: u64,
}

impl From<&TxRecord> for RecordKeys {
    fn from(record: &TxRecord) -> RecordKeys {
        RecordKeys {
            id: record.id(),
            related_id: record.related_id(),
            debit: record.debit_account(),
            credit: record.credit_account(),
        }
    }
}

/// One entry of the index: a key (an id, or an account as `u128`), where, and a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub key: u128,
    pub height: u64,
    pub index: u32,
    pub flags: u32,
}

impl Entry {
    fn encode(&self, out: &mut [u8]) {
        out[0..16].copy_from_slice(&self.key.to_le_bytes());
        out[16..24].copy_from_slice(&self.height.to_le_bytes());
        out[24..28].copy_from_slice(&self.index.to_le_bytes());
        out[28..32].copy_from_slice(&self.flags.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Entry {
        Entry {
            key: u128::from_le_bytes(bytes[0..16].try_into().expect("16 bytes")),
            height: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            index: u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes")),
            flags: u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes")),
        }
    }
}

/// Why the index could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryIndexError {
    #[error("history index: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("history index: block {height} given after {indexed} (blocks are indexed in order)")]
    OutOfOrder { height: u64, indexed: u64 },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> HistoryIndexError {
    let path = path.to_path_buf();
    move |source| HistoryIndexError::Io {
        action,
        path,
        source,
    }
}

/// One immutable, sorted segment file, mapped.
struct Segment {
    path: PathBuf,
    first_height: u64,
    last_height: u64,
    tx_count: usize,
    account_count: usize,
    map: Option<Mmap>,
}

impl Segment {
    fn entries(&self) -> usize {
        self.tx_count + self.account_count
    }

    fn entry(&self, section: Section, at: usize) -> Entry {
        let base = HEADER_BYTES
            + match section {
                Section::Tx => 0,
                Section::Account => self.tx_count * ENTRY_BYTES,
            };
        let map = self.map.as_ref().expect("a segment with entries is mapped");
        Entry::decode(&map[base + at * ENTRY_BYTES..base + (at + 1) * ENTRY_BYTES])
    }

    fn count(&self, section: Section) -> usize {
        match section {
            Section::Tx => self.tx_count,
            Section::Account => self.account_count,
        }
    }

    /// The first position of `section` whose entry is not below `probe`.
    fn lower_bound(&self, section: Section, probe: &Entry) -> usize {
        let (mut low, mut high) = (0, self.count(section));
        while low < high {
            let mid = (low + high) / 2;
            if self.entry(section, mid) < *probe {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Tx,
    Account,
}

/// A segment written to disk but not yet part of the index (see [`HistoryIndex::install`]).
pub struct PreparedSegment {
    segment: Segment,
    /// Segments it replaces (a merge), by path.
    replaces: Vec<PathBuf>,
    /// Recent entries it holds (a flush): the heights up to this one leave memory.
    flushed_through: Option<u64>,
}

/// What [`HistoryIndex::open`] found.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// Damaged, out-of-place or missing segments, removed (their heights are indexed again).
    pub removed: Vec<String>,
    /// Leftovers of an interrupted write or merge, removed (nothing lost).
    pub leftovers: usize,
}

/// The on-disk history index of one data directory (`<data_dir>/index`).
pub struct HistoryIndex {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Entries of the blocks after the last segment, in block order.
    recent_tx: Vec<Entry>,
    recent_accounts: Vec<Entry>,
    /// The first height the index covers (1 unless the log's first blocks could not be read).
    base_height: u64,
    /// The last height indexed (segments and recent entries); `base_height - 1` when none.
    indexed: u64,
}

impl HistoryIndex {
    /// The index's directory in a data directory.
    pub fn dir_in(data_dir: &Path) -> PathBuf {
        data_dir.join("index")
    }

    /// Opens (creating it if needed) the index in `dir`, checking every segment. Damaged
    /// segments are removed, with every later one, and named in the report (and in a
    /// warning): their heights are indexed again from the log by whoever adds blocks.
    pub fn open(dir: &Path) -> Result<(HistoryIndex, OpenReport), HistoryIndexError> {
        fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        let mut report = OpenReport::default();
        let mut found = Vec::new();
        for item in fs::read_dir(dir).map_err(io_error("list", dir))? {
            let item = item.map_err(io_error("list", dir))?;
            let path = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(io_error("remove", &path))?;
                report.leftovers += 1;
                continue;
            }
            if !(name.starts_with("hist-") && name.ends_with(".idx")) {
                continue;
            }
            match read_segment(&path, true) {
                Ok(segment) => found.push(segment),
                Err(reason) => {
                    let line = format!("{} is damaged ({reason})", path.display());
                    fs::remove_file(&path).map_err(io_error("remove", &path))?;
                    report.removed.push(line);
                }
            }
        }
        // by first height; of two with the same first, the wider first (a merge's result)
        found.sort_by_key(|s| (s.first_height, std::cmp::Reverse(s.last_height)));
        let mut segments: Vec<Segment> = Vec::new();
        let mut gap = false;
        for segment in found {
            let covered = segments.last().map(|s| s.last_height);
            let superseded = covered.is_some_and(|last| segment.last_height <= last);
            let follows = match covered {
                None => true,
                Some(last) => segment.first_height == last + 1,
            };
            if superseded && !gap {
                // merged into the one before, whose removal a crash interrupted
                fs::remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
                report.leftovers += 1;
            } else if gap || !follows {
                gap = true;
                report.removed.push(format!(
                    "{} (heights {} to {}) does not follow the segments before it",
                    segment.path.display(),
                    segment.first_height,
                    segment.last_height
                ));
                fs::remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
            } else {
                segments.push(segment);
            }
        }
        if !report.removed.is_empty() {
            sync_dir(dir)?;
        }
        for line in &report.removed {
            tracing::warn!(
                "history index: {line}; removed, and its heights are indexed again from the log"
            );
        }
        let base_height = segments.first().map_or(1, |s| s.first_height);
        let indexed = segments.last().map_or(base_height - 1, |s| s.last_height);
        Ok((
            HistoryIndex {
                dir: dir.to_path_buf(),
                segments,
                recent_tx: Vec::new(),
                recent_accounts: Vec::new(),
                base_height,
                indexed,
            },
            report,
        ))
    }

    /// The first height the index covers.
    pub fn base_height(&self) -> u64 {
        self.base_height
    }

    /// The last height indexed (`base_height() - 1` when none).
    pub fn indexed_height(&self) -> u64 {
        self.indexed
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Entries held in memory (the blocks after the last segment).
    pub fn recent_entries(&self) -> usize {
        self.recent_tx.len() + self.recent_accounts.len()
    }

    /// Starts the index over at `height` (nothing before it can be read any more): every
    /// segment is removed.
    pub fn restart_at(&mut self, height: u64) -> Result<(), HistoryIndexError> {
        for segment in self.segments.drain(..) {
            drop(segment.map);
            fs::remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
        }
        sync_dir(&self.dir)?;
        self.recent_tx.clear();
        self.recent_accounts.clear();
        self.base_height = height;
        self.indexed = height - 1;
        Ok(())
    }

    /// Adds block `height` (the next after [`HistoryIndex::indexed_height`]) with its records.
    pub fn add_block(
        &mut self,
        height: u64,
        records: &[TxRecord],
    ) -> Result<(), HistoryIndexError> {
        let keys: Vec<RecordKeys> = records.iter().map(RecordKeys::from).collect();
        self.add_block_keys(height, &keys)
    }

    /// Adds block `height` (the next after [`HistoryIndex::indexed_height`]) with the keys of
    /// its records, in block order.
    pub fn add_block_keys(
        &mut self,
        height: u64,
        records: &[RecordKeys],
    ) -> Result<(), HistoryIndexError> {
        if height != self.indexed + 1 {
            return Err(HistoryIndexError::OutOfOrder {
                height,
                indexed: self.indexed,
            });
        }
        for (index, record) in records.iter().enumerate() {
            let index = index as u32;
            let at = |key: u128, flags: u32| Entry {
                key,
                height,
                index,
                flags,
            };
            self.recent_tx.push(at(record.id, 0));
            if record.related_id != 0 {
                self.recent_tx.push(at(record.related_id, REFERENCE));
            }
            let (debit, credit) = (record.debit, record.credit);
            if debit != 0 {
                self.recent_accounts.push(at(u128::from(debit), 0));
            }
            if credit != 0 && credit != debit {
                self.recent_accounts.push(at(u128::from(credit), 0));
            }
        }
        self.indexed = height;
        Ok(())
    }

    /// Whether the recent entries should be written as a segment.
    pub fn flush_due(&self) -> bool {
        self.recent_entries() >= RECENT_ENTRIES_MAX
    }

    /// Writes the recent entries as a segment file (durable, not yet part of the index: see
    /// [`HistoryIndex::install`]). Reads only, so queries go on meanwhile.
    pub fn prepare_flush(&self) -> Result<Option<PreparedSegment>, HistoryIndexError> {
        let first = self
            .segments
            .last()
            .map_or(self.base_height, |s| s.last_height + 1);
        if self.indexed < first {
            return Ok(None);
        }
        let mut tx = self.recent_tx.clone();
        let mut accounts = self.recent_accounts.clone();
        tx.sort_unstable();
        accounts.sort_unstable();
        let (tx_count, account_count) = (tx.len(), accounts.len());
        let segment = write_segment(
            &self.dir,
            first,
            self.indexed,
            tx.into_iter(),
            accounts.into_iter(),
            tx_count,
            account_count,
        )?;
        Ok(Some(PreparedSegment {
            segment,
            replaces: Vec::new(),
            flushed_through: Some(self.indexed),
        }))
    }

    /// Merges the last [`MERGE_FANOUT`] segments into one when they are of one tier (the
    /// first of them holds less than twice the entries of the last): durable, not yet part of
    /// the index. Reads only.
    pub fn prepare_merge(&self) -> Result<Option<PreparedSegment>, HistoryIndexError> {
        let n = self.segments.len();
        if n < MERGE_FANOUT {
            return Ok(None);
        }
        let tier = &self.segments[n - MERGE_FANOUT..];
        if tier[0].entries() >= 2 * tier[MERGE_FANOUT - 1].entries() {
            return Ok(None);
        }
        // read with plain buffered reads, not through the maps: a merge reads every entry,
        // and pages touched through a map would stay in the node's resident memory
        let merged = |section: Section| -> Result<EntryIter, HistoryIndexError> {
            let mut merged: EntryIter = Box::new(FileEntries::open(&tier[0], section)?);
            for segment in &tier[1..] {
                merged = Box::new(MergeSorted::new(
                    merged,
                    FileEntries::open(segment, section)?,
                ));
            }
            Ok(merged)
        };
        let (tx, accounts) = (merged(Section::Tx)?, merged(Section::Account)?);
        let segment = write_segment(
            &self.dir,
            tier[0].first_height,
            tier[MERGE_FANOUT - 1].last_height,
            tx,
            accounts,
            tier.iter().map(|s| s.tx_count).sum(),
            tier.iter().map(|s| s.account_count).sum(),
        )?;
        Ok(Some(PreparedSegment {
            segment,
            replaces: tier.iter().map(|s| s.path.clone()).collect(),
            flushed_through: None,
        }))
    }

    /// Makes a prepared segment part of the index: the recent entries it holds leave memory,
    /// the segments it merged are removed.
    pub fn install(&mut self, prepared: PreparedSegment) -> Result<(), HistoryIndexError> {
        if let Some(through) = prepared.flushed_through {
            self.recent_tx.retain(|e| e.height > through);
            self.recent_accounts.retain(|e| e.height > through);
        }
        if !prepared.replaces.is_empty() {
            let keep = self.segments.len() - prepared.replaces.len();
            for old in self.segments.drain(keep..) {
                drop(old.map);
                fs::remove_file(&old.path).map_err(io_error("remove", &old.path))?;
            }
        }
        self.segments.push(prepared.segment);
        sync_dir(&self.dir)
    }

    /// Writes the recent entries and merges as due, in place (a caller that holds the index
    /// alone: a stopped node's data directory, tests, a node's indexer at shutdown).
    pub fn flush(&mut self) -> Result<(), HistoryIndexError> {
        if let Some(prepared) = self.prepare_flush()? {
            self.install(prepared)?;
        }
        self.compact()
    }

    /// Merges segments as due, in place.
    pub fn compact(&mut self) -> Result<(), HistoryIndexError> {
        while let Some(prepared) = self.prepare_merge()? {
            self.install(prepared)?;
        }
        Ok(())
    }

    /// Where transaction `id` appears (its own record, and records that name it in
    /// `related_id`, flagged [`REFERENCE`]), in block order.
    pub fn transaction(&self, id: u128) -> Vec<Entry> {
        let mut found = Vec::new();
        let probe = Entry {
            key: id,
            height: 0,
            index: 0,
            flags: 0,
        };
        for segment in &self.segments {
            let mut at = segment.lower_bound(Section::Tx, &probe);
            while at < segment.tx_count {
                let entry = segment.entry(Section::Tx, at);
                if entry.key != id {
                    break;
                }
                found.push(entry);
                at += 1;
            }
        }
        found.extend(self.recent_tx.iter().filter(|e| e.key == id));
        found
    }

    /// Up to `limit` positions of records naming `account`, from (`height`, `index`) on, in
    /// block order; and whether more follow.
    pub fn account(
        &self,
        account: u64,
        height: u64,
        index: u32,
        limit: usize,
    ) -> (Vec<Entry>, bool) {
        let key = u128::from(account);
        let probe = Entry {
            key,
            height,
            index,
            flags: 0,
        };
        let mut found = Vec::new();
        for segment in self.segments.iter().filter(|s| s.last_height >= height) {
            let mut at = segment.lower_bound(Section::Account, &probe);
            while at < segment.account_count {
                let entry = segment.entry(Section::Account, at);
                if entry.key != key {
                    break;
                }
                if found.len() == limit {
                    return (found, true);
                }
                found.push(entry);
                at += 1;
            }
        }
        for entry in self
            .recent_accounts
            .iter()
            .filter(|e| e.key == key && (e.height, e.index) >= (height, index))
        {
            if found.len() == limit {
                return (found, true);
            }
            found.push(*entry);
        }
        (found, false)
    }
}

/// The entries of one section of a segment, read from its file in order.
struct FileEntries {
    reader: BufReader<File>,
    left: usize,
}

impl FileEntries {
    fn open(segment: &Segment, section: Section) -> Result<FileEntries, HistoryIndexError> {
        let mut file = File::open(&segment.path).map_err(io_error("open", &segment.path))?;
        let offset = HEADER_BYTES
            + match section {
                Section::Tx => 0,
                Section::Account => segment.tx_count * ENTRY_BYTES,
            };
        file.seek(SeekFrom::Start(offset as u64))
            .map_err(io_error("read", &segment.path))?;
        Ok(FileEntries {
            reader: BufReader::with_capacity(1 << 20, file),
            left: segment.count(section),
        })
    }
}

impl Iterator for FileEntries {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut bytes = [0u8; ENTRY_BYTES];
        // a segment cut short under us ends early: the writer's count check refuses it
        self.reader.read_exact(&mut bytes).ok()?;
        Some(Entry::decode(&bytes))
    }
}

/// Segments merged into one at a time: each entry is rewritten about `log4(n)` times (half
/// the writes and hashing of pairwise merges), and a history has at most three segments of
/// each tier.
pub const MERGE_FANOUT: usize = 4;

/// Entries in key order, from a segment file or a merge of several.
type EntryIter = Box<dyn Iterator<Item = Entry>>;

/// Merges two sorted iterators.
struct MergeSorted<A: Iterator<Item = Entry>, B: Iterator<Item = Entry>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = Entry>, B: Iterator<Item = Entry>> MergeSorted<A, B> {
    fn new(a: A, b: B) -> Self {
        MergeSorted {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = Entry>, B: Iterator<Item = Entry>> Iterator for MergeSorted<A, B> {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

fn segment_name(first: u64, last: u64) -> String {
    format!("hist-{first:020}-{last:020}.idx")
}

/// Writes a segment (temporary file, fdatasync, rename, directory fsync) and maps it.
fn write_segment(
    dir: &Path,
    first_height: u64,
    last_height: u64,
    tx: impl Iterator<Item = Entry>,
    accounts: impl Iterator<Item = Entry>,
    tx_count: usize,
    account_count: usize,
) -> Result<Segment, HistoryIndexError> {
    let path = dir.join(segment_name(first_height, last_height));
    let tmp = dir.join(format!("{}.tmp", segment_name(first_height, last_height)));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_error("create", &tmp))?;
    let written = (|| -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        out.write_all(&[0u8; HEADER_BYTES])?;
        // Entries are encoded into a chunk and the chunk hashed and written whole: BLAKE3
        // hashes a long input several 1 KiB chunks at a time with SIMD, 32-byte updates one
        // at a time (the digest is the same).
        let mut body = blake3::Hasher::new_derive_key(BODY_CONTEXT);
        let mut chunk: Vec<u8> = Vec::with_capacity(BODY_CHUNK_BYTES);
        let mut bytes = [0u8; ENTRY_BYTES];
        let mut put = |entry: Entry, chunk: &mut Vec<u8>| -> io::Result<()> {
            entry.encode(&mut bytes);
            chunk.extend_from_slice(&bytes);
            if chunk.len() >= BODY_CHUNK_BYTES {
                body.update(chunk);
                out.write_all(chunk)?;
                chunk.clear();
            }
            Ok(())
        };
        let (mut tx_written, mut accounts_written) = (0usize, 0usize);
        for entry in tx {
            put(entry, &mut chunk)?;
            tx_written += 1;
        }
        for entry in accounts {
            put(entry, &mut chunk)?;
            accounts_written += 1;
        }
        body.update(&chunk);
        out.write_all(&chunk)?;
        if (tx_written, accounts_written) != (tx_count, account_count) {
            return Err(io::Error::other(format!(
                "{tx_written} and {accounts_written} entries read, {tx_count} and \
                 {account_count} expected: a segment was cut short"
            )));
        }
        let header = encode_header(
            first_height,
            last_height,
            tx_count as u64,
            account_count as u64,
            body.finalize().as_bytes(),
        );
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.sync_data()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(HistoryIndexError::Io {
            action: "write",
            path: tmp,
            source,
        });
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(io_error("rename into place", &tmp))?;
    sync_dir(dir)?;
    read_segment(&path, false).map_err(|reason| HistoryIndexError::Io {
        action: "read back",
        path,
        source: io::Error::other(reason),
    })
}

fn encode_header(
    first: u64,
    last: u64,
    tx: u64,
    accounts: u64,
    body: &[u8; 32],
) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&first.to_le_bytes());
    header[24..32].copy_from_slice(&last.to_le_bytes());
    header[32..40].copy_from_slice(&tx.to_le_bytes());
    header[40..48].copy_from_slice(&accounts.to_le_bytes());
    header[48..80].copy_from_slice(body);
    let checksum = blake3::Hasher::new_derive_key(HEADER_CONTEXT)
        .update(&header[0..80])
        .finalize();
    header[80..88].copy_from_slice(&checksum.as_bytes()[0..8]);
    header
}

/// Opens, checks (with `verify`, the body hash too) and maps a segment; the reason it is
/// refused otherwise. The checks read the file with plain reads: a segment's pages enter the
/// node's resident memory only when a query looks into them.
fn read_segment(path: &Path, verify: bool) -> Result<Segment, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot be opened: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len() as usize;
    if len < HEADER_BYTES {
        return Err(format!("{len} bytes, shorter than its header"));
    }
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact(&mut header)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if header[0..8] != SEGMENT_MAGIC {
        return Err("wrong magic".to_string());
    }
    let checksum = blake3::Hasher::new_derive_key(HEADER_CONTEXT)
        .update(&header[0..80])
        .finalize();
    if header[80..88] != checksum.as_bytes()[0..8] || header[88..96] != [0; 8] {
        return Err("header checksum mismatch".to_string());
    }
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != SEGMENT_VERSION {
        return Err(format!(
            "format version {version}, this build reads {SEGMENT_VERSION}"
        ));
    }
    let (first_height, last_height) = (word(16), word(24));
    let (tx_count, account_count) = (word(32) as usize, word(40) as usize);
    let expected =
        (tx_count as u128 + account_count as u128) * ENTRY_BYTES as u128 + HEADER_BYTES as u128;
    if expected != len as u128 || first_height == 0 || last_height < first_height {
        return Err("header does not match the file".to_string());
    }
    if verify {
        let mut body = blake3::Hasher::new_derive_key(BODY_CONTEXT);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|e| format!("cannot be read: {e}"))?;
            if read == 0 {
                break;
            }
            body.update(&buffer[..read]);
        }
        if body.finalize().as_bytes()[..] != header[48..80] {
            return Err("body hash mismatch".to_string());
        }
    }
    let map =
        super::mmap::map_index_segment(&file).map_err(|e| format!("cannot be mapped: {e}"))?;
    Ok(Segment {
        path: path.to_path_buf(),
        first_height,
        last_height,
        tx_count,
        account_count,
        map: Some(map),
    })
}

fn sync_dir(dir: &Path) -> Result<(), HistoryIndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))
}
