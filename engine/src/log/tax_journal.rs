//! The tax-day journal: one file, `DATA/tax/days.jnl`, holding the tax-total rows of every
//! finished business day (docs/STORAGE.md, "Tax-day journal"), so that `tally query
//! tax-report` answers for days older than the ledger's refund window.
//!
//! ```text
//! header  magic "TALLYTD1" | 0u64 | hash16 of the 16 bytes before
//! entry   first_day u64 | end_day u64 | count u32 | 0u32 | hash16 of the 24 bytes before |
//!         count x 104-byte row | hash16 of all the entry's bytes before it
//! row     day u64 | payee u64 | category u32 | basis u8 | 0 x3 | payments u64 | refunds u64 |
//!         gross u128 | tax u128 | refunded_gross u128 | refunded_tax u128
//! ```
//!
//! Integers are little-endian; `hash16` is the first 16 bytes of a keyed BLAKE3 hash. An
//! entry holds the days `first_day..end_day` a block's time ended (the business day of the
//! block before it, and the days without a block up to the block's own): a row never changes
//! after its day, so an entry is final. Entries follow each other in day order; a day no
//! entry covers is not kept (the journal was lost and started again after it).
//!
//! The journal is derived from the log: a block's entry is appended (and flushed) once the
//! block is durable, before a checkpoint after it is written, and recovery's replay of the
//! log after the checkpoint appends the entries it lacks again. At open, entry headers are
//! walked and the last entry is checked whole: an entry cut short or damaged ends the
//! journal where it begins, and the rest is made again from the log (for the days the
//! ledger restored from a checkpoint still holds). A damaged entry found when read is named
//! in the error.

use crate::ledger::{FinishedTaxDays, TaxReportRow, TaxTotals};
use crate::tax::TaxBasis;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The journal's directory under a node's data directory.
pub const TAX_DAYS_DIR: &str = "tax";
const FILE_NAME: &str = "days.jnl";
const MAGIC: &[u8; 8] = b"TALLYTD1";
const HEADER_BYTES: u64 = 32;
const ENTRY_HEADER_BYTES: u64 = 24 + HASH_BYTES as u64;
const HASH_BYTES: usize = 16;
/// Bytes of one row.
pub const ROW_BYTES: usize = 104;
/// Most rows one entry may hold (payees x categories x bases of one day); a count over this
/// is damage.
const ENTRY_ROWS_MAX: u32 = 1 << 28;
const HASH_CONTEXT: &str = "tally tax-day journal v1 entry";

/// Why the journal cannot be used or cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum TaxJournalError {
    #[error("tax-day journal {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a tax-day journal (bad header): remove it and the node writes it again from the log")]
    BadHeader { path: PathBuf },
    #[error("tax rows of business day {day} are not kept by this node (its tax-day journal holds {held})")]
    NotKept { day: u64, held: String },
    #[error("tax-day journal {path}: the entry of days {first_day} to {last_day} at offset {offset} is damaged: remove the file and restart the node to write it again from the log")]
    Damaged {
        path: PathBuf,
        first_day: u64,
        last_day: u64,
        offset: u64,
    },
}

/// Where one entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    first_day: u64,
    end_day: u64,
    offset: u64,
    count: u32,
}

impl Span {
    fn bytes(&self) -> u64 {
        ENTRY_HEADER_BYTES + u64::from(self.count) * ROW_BYTES as u64 + HASH_BYTES as u64
    }
}

struct Inner {
    file: File,
    /// Bytes of whole entries.
    end: u64,
    spans: Vec<Span>,
}

/// A node's tax-day journal: appended by the stage that makes blocks durable and by
/// recovery, read by tax-report queries.
pub struct TaxDayJournal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TaxDayJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaxDayJournal")
            .field("path", &self.path)
            .finish()
    }
}

fn hash16(parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    tally_protocol::journal::hash16(HASH_CONTEXT, parts)
}

fn header_bytes() -> [u8; HEADER_BYTES as usize] {
    tally_protocol::journal::header(MAGIC, 0, HASH_CONTEXT)
}

fn encode_row(day: u64, row: &TaxReportRow, out: &mut Vec<u8>) {
    out.extend_from_slice(&day.to_le_bytes());
    out.extend_from_slice(&row.payee.to_le_bytes());
    out.extend_from_slice(&row.category.to_le_bytes());
    out.push(row.basis.code());
    out.extend_from_slice(&[0u8; 3]);
    let t = &row.totals;
    out.extend_from_slice(&t.payments.to_le_bytes());
    out.extend_from_slice(&t.refunds.to_le_bytes());
    for word in [t.gross, t.tax, t.refunded_gross, t.refunded_tax] {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

fn decode_row(bytes: &[u8]) -> Option<(u64, TaxReportRow)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
    let u128_at = |at: usize| u128::from_le_bytes(bytes[at..at + 16].try_into().expect("16"));
    if bytes[21..24] != [0; 3] {
        return None;
    }
    let basis = TaxBasis::from_code(bytes[20])?;
    Some((
        u64_at(0),
        TaxReportRow {
            payee: u64_at(8),
            category: u32::from_le_bytes(bytes[16..20].try_into().expect("4")),
            basis,
            totals: TaxTotals {
                payments: u64_at(24),
                refunds: u64_at(32),
                gross: u128_at(40),
                tax: u128_at(56),
                refunded_gross: u128_at(72),
                refunded_tax: u128_at(88),
            },
        },
    ))
}

/// An entry's bytes.
fn encode_entry(days: &FinishedTaxDays) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(ENTRY_HEADER_BYTES as usize + days.rows.len() * ROW_BYTES + HASH_BYTES);
    out.extend_from_slice(&days.first_day.to_le_bytes());
    out.extend_from_slice(&days.end_day.to_le_bytes());
    out.extend_from_slice(&(days.rows.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    let hash = hash16(&[&out]);
    out.extend_from_slice(&hash);
    for (day, row) in &days.rows {
        encode_row(*day, row, &mut out);
    }
    let hash = hash16(&[&out]);
    out.extend_from_slice(&hash);
    out
}

/// The entry header at `offset`, if whole and sound.
fn read_span(file: &File, offset: u64, end: u64) -> io::Result<Option<Span>> {
    if end < offset + ENTRY_HEADER_BYTES {
        return Ok(None);
    }
    let mut header = [0u8; ENTRY_HEADER_BYTES as usize];
    file.read_exact_at(&mut header, offset)?;
    if hash16(&[&header[..24]]) != header[24..] || header[20..24] != [0; 4] {
        return Ok(None);
    }
    let span = Span {
        first_day: u64::from_le_bytes(header[..8].try_into().expect("8")),
        end_day: u64::from_le_bytes(header[8..16].try_into().expect("8")),
        offset,
        count: u32::from_le_bytes(header[16..20].try_into().expect("4")),
    };
    if span.end_day <= span.first_day || span.count > ENTRY_ROWS_MAX || end < offset + span.bytes()
    {
        return Ok(None);
    }
    Ok(Some(span))
}

/// The rows of a whole entry, or `None` if its bytes do not hash to its hash.
fn read_rows(file: &File, span: &Span) -> io::Result<Option<Vec<(u64, TaxReportRow)>>> {
    let mut bytes = vec![0u8; span.bytes() as usize];
    file.read_exact_at(&mut bytes, span.offset)?;
    let (body, hash) = bytes.split_at(bytes.len() - HASH_BYTES);
    if hash16(&[body]) != hash {
        return Ok(None);
    }
    let rows = &body[ENTRY_HEADER_BYTES as usize..];
    let mut out = Vec::with_capacity(span.count as usize);
    for row in rows.chunks_exact(ROW_BYTES) {
        match decode_row(row) {
            Some((day, row)) if (span.first_day..span.end_day).contains(&day) => {
                out.push((day, row))
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(out))
}

impl TaxDayJournal {
    /// The journal's directory in a node's data directory.
    pub fn dir_in(data_dir: &Path) -> PathBuf {
        data_dir.join(TAX_DAYS_DIR)
    }

    /// Opens (or creates) the journal in `dir`: walks its entries and cuts it where an
    /// entry is cut short or damaged (a warning names what was cut; the node writes it again
    /// from the log).
    pub fn open(dir: &Path) -> Result<TaxDayJournal, TaxJournalError> {
        let path = dir.join(FILE_NAME);
        let io_error = |source| TaxJournalError::Io {
            path: path.clone(),
            source,
        };
        let file = tally_protocol::journal::open_file(dir, FILE_NAME).map_err(io_error)?;
        let length = file.metadata().map_err(io_error)?.len();
        if length < HEADER_BYTES {
            // new, or its header was never wholly written
            file.set_len(0).map_err(io_error)?;
            file.write_all_at(&header_bytes(), 0).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            return Ok(TaxDayJournal {
                path,
                inner: Mutex::new(Inner {
                    file,
                    end: HEADER_BYTES,
                    spans: Vec::new(),
                }),
            });
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut header, 0).map_err(io_error)?;
        if header != header_bytes() {
            return Err(TaxJournalError::BadHeader { path });
        }
        let mut spans: Vec<Span> = Vec::new();
        let mut offset = HEADER_BYTES;
        while let Some(span) = read_span(&file, offset, length).map_err(io_error)? {
            if spans
                .last()
                .is_some_and(|last| span.first_day < last.end_day)
            {
                break; // out of order: damage
            }
            offset += span.bytes();
            spans.push(span);
        }
        // the last entry is where a write cut short would be: checked whole
        if let Some(last) = spans.last().copied() {
            if read_rows(&file, &last).map_err(io_error)?.is_none() {
                spans.pop();
                offset = last.offset;
            }
        }
        if offset < length {
            tracing::warn!(
                path = %path.display(),
                offset,
                cut_bytes = length - offset,
                "the tax-day journal ends in an entry cut short or damaged: cut there (the days after it are written again from the log where the ledger still holds them)"
            );
            file.set_len(offset).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
        }
        Ok(TaxDayJournal {
            path,
            inner: Mutex::new(Inner {
                file,
                end: offset,
                spans,
            }),
        })
    }

    /// Appends the days a durable block ended, flushed; returns false (and writes nothing)
    /// if the journal holds them already (a block replayed again after a restart).
    pub fn append(&self, days: &FinishedTaxDays) -> Result<bool, TaxJournalError> {
        let mut inner = self.inner.lock().expect("tax journal lock");
        if inner
            .spans
            .last()
            .is_some_and(|last| days.first_day < last.end_day)
        {
            return Ok(false);
        }
        let bytes = encode_entry(days);
        let offset = inner.end;
        let io_error = |source| TaxJournalError::Io {
            path: self.path.clone(),
            source,
        };
        inner.file.write_all_at(&bytes, offset).map_err(io_error)?;
        inner.file.sync_data().map_err(io_error)?;
        inner.end = offset + bytes.len() as u64;
        inner.spans.push(Span {
            first_day: days.first_day,
            end_day: days.end_day,
            offset,
            count: days.rows.len() as u32,
        });
        Ok(true)
    }

    /// The day ranges the journal holds, merged where they meet (`first..end`).
    pub fn held(&self) -> Vec<(u64, u64)> {
        let inner = self.inner.lock().expect("tax journal lock");
        let mut out: Vec<(u64, u64)> = Vec::new();
        for span in &inner.spans {
            match out.last_mut() {
                Some(last) if last.1 == span.first_day => last.1 = span.end_day,
                _ => out.push((span.first_day, span.end_day)),
            }
        }
        out
    }

    /// The report of `payee` (or every payee) over the business days `from_day..=to_day`,
    /// summed per payee, category and basis as [`crate::ledger::Ledger::tax_report`] sums;
    /// refused if a day of the range is not held.
    pub fn tax_report(
        &self,
        payee: Option<u64>,
        from_day: u64,
        to_day: u64,
    ) -> Result<Vec<TaxReportRow>, TaxJournalError> {
        if to_day < from_day {
            return Ok(Vec::new());
        }
        let held = self.held();
        // every day of the range in one held range
        if !held
            .iter()
            .any(|&(first, end)| first <= from_day && to_day < end)
        {
            let day = (from_day..=to_day)
                .find(|day| !held.iter().any(|&(first, end)| (first..end).contains(day)))
                .unwrap_or(from_day);
            let held = if held.is_empty() {
                "no day yet".to_string()
            } else {
                held.iter()
                    .map(|(first, end)| format!("days {first} to {}", end - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(TaxJournalError::NotKept { day, held });
        }
        let inner = self.inner.lock().expect("tax journal lock");
        let mut sums: BTreeMap<(u64, u32, TaxBasis), TaxTotals> = BTreeMap::new();
        for span in inner
            .spans
            .iter()
            .filter(|s| s.first_day <= to_day && from_day < s.end_day && s.count > 0)
        {
            let rows = read_rows(&inner.file, span)
                .map_err(|source| TaxJournalError::Io {
                    path: self.path.clone(),
                    source,
                })?
                .ok_or_else(|| TaxJournalError::Damaged {
                    path: self.path.clone(),
                    first_day: span.first_day,
                    last_day: span.end_day - 1,
                    offset: span.offset,
                })?;
            for (day, row) in rows {
                if day < from_day || day > to_day || payee.is_some_and(|p| p != row.payee) {
                    continue;
                }
                sums.entry((row.payee, row.category, row.basis))
                    .or_default()
                    .add(&row.totals);
            }
        }
        Ok(sums
            .into_iter()
            .map(|((payee, category, basis), totals)| TaxReportRow {
                payee,
                category,
                basis,
                totals,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payee: u64, category: u32, tax: u128) -> TaxReportRow {
        TaxReportRow {
            payee,
            category,
            basis: TaxBasis::ALL[0],
            totals: TaxTotals {
                payments: 1,
                gross: tax * 10,
                tax,
                refunds: 0,
                refunded_gross: 0,
                refunded_tax: 0,
            },
        }
    }

    fn days(first_day: u64, end_day: u64, rows: Vec<(u64, TaxReportRow)>) -> FinishedTaxDays {
        FinishedTaxDays {
            first_day,
            end_day,
            rows,
        }
    }

    #[test]
    fn rows_come_back_summed_per_payee_over_held_days_and_a_gap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = TaxDayJournal::open(dir.path()).unwrap();
        assert!(journal
            .append(&days(0, 10, vec![(9, row(7, 1, 5))]))
            .unwrap());
        assert!(journal
            .append(&days(10, 12, vec![(10, row(7, 1, 3)), (10, row(8, 1, 4))]))
            .unwrap());
        // a replayed block's days again: nothing written
        assert!(!journal.append(&days(10, 12, vec![])).unwrap());
        // a gap (days 12 and 13 lost), then day 14
        assert!(journal
            .append(&days(14, 15, vec![(14, row(7, 2, 1))]))
            .unwrap());
        assert_eq!(journal.held(), vec![(0, 12), (14, 15)]);
        let all = journal.tax_report(None, 0, 11).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].payee, all[0].totals.tax, all[0].totals.payments),
            (7, 8, 2)
        );
        assert_eq!((all[1].payee, all[1].totals.tax), (8, 4));
        let one = journal.tax_report(Some(8), 0, 11).unwrap();
        assert_eq!(one.len(), 1);
        assert!(journal.tax_report(Some(7), 10, 10).unwrap()[0].totals.tax == 3);
        let error = journal.tax_report(None, 11, 14).unwrap_err();
        assert!(
            matches!(error, TaxJournalError::NotKept { day: 12, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("days 0 to 11, days 14 to 14"),
            "{error}"
        );
        assert_eq!(journal.tax_report(None, 14, 14).unwrap()[0].totals.tax, 1);
        // reopened: the same
        drop(journal);
        let journal = TaxDayJournal::open(dir.path()).unwrap();
        assert_eq!(journal.held(), vec![(0, 12), (14, 15)]);
        assert_eq!(journal.tax_report(None, 0, 11).unwrap(), all);
    }

    #[test]
    fn a_last_entry_cut_short_or_damaged_is_cut_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let first = days(0, 3, vec![(2, row(7, 1, 5))]);
        let second = days(3, 4, vec![(3, row(7, 1, 6)), (3, row(9, 1, 1))]);
        {
            let journal = TaxDayJournal::open(dir.path()).unwrap();
            journal.append(&first).unwrap();
            journal.append(&second).unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        let second_at = whole.len() - encode_entry(&second).len();
        // cut at every offset inside the second entry, and a flipped byte in each of its
        // bytes: the journal keeps the first entry only, and takes the second again
        for at in second_at..whole.len() {
            for damage in [false, true] {
                let mut bytes = whole.clone();
                if damage {
                    bytes[at] ^= 0x10;
                } else {
                    bytes.truncate(at);
                }
                std::fs::write(&path, &bytes).unwrap();
                let journal = TaxDayJournal::open(dir.path()).unwrap();
                assert_eq!(journal.held(), vec![(0, 3)], "at {at}, damage {damage}");
                assert_eq!(std::fs::metadata(&path).unwrap().len(), second_at as u64);
                assert!(journal.append(&second).unwrap());
                assert_eq!(journal.held(), vec![(0, 4)]);
            }
        }
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        // damage inside an earlier entry's rows is found when read, and named
        let mut bytes = whole.clone();
        bytes[HEADER_BYTES as usize + ENTRY_HEADER_BYTES as usize + 30] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let journal = TaxDayJournal::open(dir.path()).unwrap();
        let error = journal.tax_report(None, 0, 3).unwrap_err();
        assert!(
            matches!(
                error,
                TaxJournalError::Damaged {
                    first_day: 0,
                    last_day: 2,
                    ..
                }
            ),
            "{error}"
        );
        // a file that is not a journal is refused, not overwritten
        std::fs::write(&path, [7u8; 64]).unwrap();
        assert!(matches!(
            TaxDayJournal::open(dir.path()),
            Err(TaxJournalError::BadHeader { .. })
        ));
    }
}
