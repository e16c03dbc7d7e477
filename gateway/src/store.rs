//! The gateway's books on disk: `DATA/books.jnl` under its data directory (`--data-dir`), an
//! append-only journal of what the books were made from, so a gateway started again reloads
//! them and resumes its subscription after the last block it booked: nothing is booked twice
//! and nothing is missed (docs/ISO20022.md, "The books on disk").
//!
//! ```text
//! header  magic "TALLYGB1" | 0u64 | hash16 of the 16 bytes before
//! entry   length u32 | 0u32 | length bytes of JSON (a `Record`) | hash16 of all before it
//! ```
//!
//! The framing is the node's journals' (`tally_protocol::journal`). Each record is written
//! before the books in memory change, so the file never holds less than the books did. At
//! open an entry cut short, or damaged and last in the file (a write torn by a crash), is cut
//! with a warning; a damaged entry with whole entries after it is refused
//! ([`StoreError::Damaged`]): the books would silently lose what it held.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tally_protocol::events::{AccountEvent, BlockStamp};
use tally_protocol::journal::{self, HASH_BYTES, HEADER_BYTES};

/// The journal's file under the gateway's data directory.
pub const FILE_NAME: &str = "books.jnl";
const MAGIC: &[u8; 8] = b"TALLYGB1";
const HASH_CONTEXT: &str = "tally gateway books v1 entry";
const ENTRY_HEADER_BYTES: usize = 8;
/// Most bytes of one record (a block's events for the accounts followed, as JSON); a length
/// over this is damage.
pub const RECORD_BYTES_MAX: u32 = 1 << 30;

/// What the books were made from, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The books opened at `height`: the followed accounts' balances then.
    Open {
        height: u64,
        balances: Vec<(u64, i64)>,
        opened: String,
    },
    /// One block's events, booked whole.
    Block {
        height: u64,
        stamp: BlockStamp,
        events: Vec<AccountEvent>,
    },
    /// A camt.053 asked for closed these accounts' periods at `now` (a network without a
    /// business-day calendar).
    Closed { accounts: Vec<u64>, now: String },
    /// A payment this gateway sent: its record id, message id and end-to-end id.
    Sent {
        id: u128,
        msg_id: String,
        end_to_end_id: String,
    },
}

/// Why the books on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("gateway books {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a gateway's books (bad header): move it away to start with empty books, or give the right --data-dir")]
    BadHeader { path: PathBuf },
    #[error("gateway books {path}: the entry at offset {offset} is damaged ({reason}) and {after} bytes of entries follow it: the books cannot be reloaded whole; restore the file from a copy, or move it away to start books anew from the ledger")]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
        after: u64,
    },
}

/// The open journal, appended to.
pub struct Store {
    path: PathBuf,
    file: File,
    end: u64,
}

enum Read {
    Whole(Record, u64),
    Short,
    Damaged(String, u64),
}

fn read_entry(bytes: &[u8], offset: usize) -> Read {
    let Some(head) = bytes.get(offset..offset + ENTRY_HEADER_BYTES) else {
        return Read::Short;
    };
    let length = u32::from_le_bytes(head[..4].try_into().expect("4"));
    if length > RECORD_BYTES_MAX {
        return Read::Short;
    }
    let total = ENTRY_HEADER_BYTES + length as usize + HASH_BYTES;
    let Some(entry) = bytes.get(offset..offset + total) else {
        return Read::Short;
    };
    let (body, hash) = entry.split_at(total - HASH_BYTES);
    if journal::hash16(HASH_CONTEXT, &[body]) != hash {
        return Read::Damaged("hash mismatch".into(), total as u64);
    }
    if head[4..8] != [0; 4] {
        return Read::Damaged("reserved bytes not zero".into(), total as u64);
    }
    match serde_json::from_slice(&body[ENTRY_HEADER_BYTES..]) {
        Ok(record) => Read::Whole(record, total as u64),
        Err(error) => Read::Damaged(format!("not a record: {error}"), total as u64),
    }
}

impl Store {
    /// Opens (or creates) the books in `dir` and reads back every record.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Record>), StoreError> {
        let path = dir.join(FILE_NAME);
        let io_error = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let file = journal::open_file(dir, FILE_NAME).map_err(io_error)?;
        let bytes = std::fs::read(&path).map_err(io_error)?;
        if bytes.is_empty() {
            file.write_all_at(&journal::header(MAGIC, 0, HASH_CONTEXT), 0)
                .map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            return Ok((
                Store {
                    path,
                    file,
                    end: HEADER_BYTES as u64,
                },
                Vec::new(),
            ));
        }
        if journal::read_header(&bytes, MAGIC, HASH_CONTEXT).is_none() {
            return Err(StoreError::BadHeader { path });
        }
        let mut records = Vec::new();
        let mut offset = HEADER_BYTES;
        loop {
            match read_entry(&bytes, offset) {
                Read::Whole(record, length) => {
                    records.push(record);
                    offset += length as usize;
                }
                Read::Short => break,
                Read::Damaged(reason, length) => {
                    let after = bytes.len().saturating_sub(offset + length as usize);
                    if after > 0 {
                        return Err(StoreError::Damaged {
                            path,
                            offset: offset as u64,
                            reason,
                            after: after as u64,
                        });
                    }
                    break;
                }
            }
        }
        if offset < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                offset,
                bytes = bytes.len() - offset,
                "the gateway's books end in an entry cut short or damaged (a write a crash tore): cut; the blocks it held are booked again from the node"
            );
            file.set_len(offset as u64).map_err(io_error)?;
        }
        Ok((
            Store {
                path,
                file,
                end: offset as u64,
            },
            records,
        ))
    }

    /// Appends a record (written, not flushed: the page cache holds it across a crash of the
    /// process; a machine's crash may lose the last ones, which are booked again).
    pub fn append(&mut self, record: &Record) -> Result<(), StoreError> {
        let body = serde_json::to_vec(record).expect("a record serialises");
        let mut bytes = Vec::with_capacity(ENTRY_HEADER_BYTES + body.len() + HASH_BYTES);
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&[0u8; 4]);
        bytes.extend_from_slice(&body);
        let hash = journal::hash16(HASH_CONTEXT, &[&bytes]);
        bytes.extend_from_slice(&hash);
        self.file
            .write_all_at(&bytes, self.end)
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// Makes what was appended durable.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.file
            .flush()
            .and_then(|()| self.file.sync_data())
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record::Open {
                height: 4,
                balances: vec![(10, 1_000), (11, -5)],
                opened: "2026-12-07T08:00:00Z".into(),
            },
            Record::Sent {
                id: u128::MAX - 3,
                msg_id: "M1".into(),
                end_to_end_id: "E1".into(),
            },
            Record::Block {
                height: 5,
                stamp: BlockStamp {
                    time_ms: 1_765_000_000_000,
                    day_ended: Some(20_429),
                },
                events: Vec::new(),
            },
            Record::Closed {
                accounts: vec![10],
                now: "2026-12-07T18:00:00Z".into(),
            },
        ]
    }

    fn written(dir: &Path) -> PathBuf {
        let (mut store, read) = Store::open(dir).unwrap();
        assert!(read.is_empty());
        for record in records() {
            store.append(&record).unwrap();
        }
        store.path().to_path_buf()
    }

    #[test]
    fn records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        written(dir.path());
        let (mut store, read) = Store::open(dir.path()).unwrap();
        assert_eq!(read, records());
        store
            .append(&Record::Closed {
                accounts: vec![11],
                now: "x".into(),
            })
            .unwrap();
        drop(store);
        assert_eq!(Store::open(dir.path()).unwrap().1.len(), 5);
    }

    #[test]
    fn a_damaged_tail_is_cut_and_a_damaged_middle_refused() {
        // a tail cut short: cut, the entries before it kept
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let (_, read) = Store::open(dir.path()).unwrap();
        assert_eq!(read, records()[..3]);
        assert!(std::fs::metadata(&path).unwrap().len() < len - 5);
        // the last entry damaged: cut too
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - HASH_BYTES - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Store::open(dir.path()).unwrap().1, records()[..3]);
        // an entry in the middle damaged: refused, naming where
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES + ENTRY_HEADER_BYTES + 4] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        match Store::open(dir.path()) {
            Err(StoreError::Damaged {
                offset,
                reason,
                after,
                ..
            }) => {
                assert_eq!(offset, HEADER_BYTES as u64);
                assert_eq!(reason, "hash mismatch");
                assert!(after > 0);
            }
            other => panic!("not refused: {:?}", other.map(|(_, read)| read)),
        }
        let message = Store::open(dir.path()).err().unwrap().to_string();
        assert!(message.contains("cannot be reloaded whole"), "{message}");
        // not a gateway's books
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"TALLYEV2 something else entirely",
        )
        .unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::BadHeader { .. })
        ));
    }
}
