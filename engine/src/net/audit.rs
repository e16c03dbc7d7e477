//! The audit trail of the client port (docs/SECURITY.md, "Audit trail"): one line per
//! submission (accepted or refused), per request refused as outside a certificate, per
//! connection authenticated or refused in TLS, and per connection closed for revocation or
//! bad signatures, each attributed to the certificate that sent it. Central-bank operations
//! are submissions of the central bank's certificate.
//!
//! The file (`audit.log` in the node's data directory) is JSON lines, hash-chained: each line
//! is `{"entry":{...},"prev":HEX,"hash":HEX}` where `hash` is BLAKE3 over `prev`'s 32 bytes
//! and the entry's JSON, so that removing or changing a line breaks the chain from there on
//! ([`verify`], `tally inspect audit`). Lines are written by the client server's thread and
//! flushed at each poll-loop turn; a crash loses at most the lines of the last turn.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the file, from 0.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `submit`, `forbidden`, `authenticated`, `tls_refused`, `closed_revoked`,
    /// `closed_bad_signatures`.
    pub event: String,
    /// The certificate's holder, serial and role (empty before authentication or without
    /// TLS).
    pub identity: String,
    pub serial: String,
    pub role: String,
    /// The peer's address.
    pub peer: String,
    pub request_id: u64,
    /// Records in the batch, taken, refused (submissions).
    pub records: u64,
    pub accepted: u64,
    pub refused: u64,
    /// The reason of a refusal, or what was refused.
    pub detail: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    entry: AuditEntry,
    prev: String,
    hash: String,
}

/// Why an audit file does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path}, line {line}: {reason}")]
    Broken {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

fn chain(prev: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(&serde_json::to_vec(entry).expect("an entry serialises"));
    *hasher.finalize().as_bytes()
}

/// Reads and checks every line of an audit file; returns the entries.
pub fn verify(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut prev = [0u8; 32];
    let mut entries = Vec::new();
    for (index, text) in reader.lines().enumerate() {
        let text = text.map_err(io)?;
        let broken = |reason: String| AuditError::Broken {
            path: path.to_path_buf(),
            line: index as u64 + 1,
            reason,
        };
        let line: Line =
            serde_json::from_str(&text).map_err(|e| broken(format!("not an audit line: {e}")))?;
        if line.prev != hex::encode(prev) {
            return Err(broken(format!(
                "prev {} is not the hash of the line before ({})",
                line.prev,
                hex::encode(prev)
            )));
        }
        if line.entry.seq != index as u64 {
            return Err(broken(format!(
                "seq {} where {index} was expected (a line is missing or added)",
                line.entry.seq
            )));
        }
        let hash = chain(&prev, &line.entry);
        if line.hash != hex::encode(hash) {
            return Err(broken(
                "the hash does not match the entry: the line was changed".into(),
            ));
        }
        prev = hash;
        entries.push(line.entry);
    }
    Ok(entries)
}

/// The writer of an audit file.
pub struct AuditLog {
    path: PathBuf,
    file: BufWriter<File>,
    prev: [u8; 32],
    seq: u64,
}

impl AuditLog {
    /// Opens (or creates) the file at `path`, checking the chain so far and going on from its
    /// end.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let (prev, seq) = if path.exists() {
            let entries = verify(path)?;
            let mut prev = [0u8; 32];
            for entry in &entries {
                prev = chain(&prev, entry);
            }
            (prev, entries.len() as u64)
        } else {
            ([0u8; 32], 0)
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
            prev,
            seq,
        })
    }

    /// Appends an entry (its `seq` and `time_ms` are set here).
    pub fn record(&mut self, mut entry: AuditEntry) {
        entry.seq = self.seq;
        entry.time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let hash = chain(&self.prev, &entry);
        let line = Line {
            entry,
            prev: hex::encode(self.prev),
            hash: hex::encode(hash),
        };
        let mut text = serde_json::to_vec(&line).expect("a line serialises");
        text.push(b'\n');
        if let Err(error) = self.file.write_all(&text) {
            tracing::error!(path = %self.path.display(), %error, "cannot write the audit log");
        }
        self.prev = hash;
        self.seq += 1;
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) {
        if let Err(error) = self.file.flush() {
            tracing::error!(path = %self.path.display(), %error, "cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(event: &str) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time_ms: 0,
            event: event.into(),
            identity: "bank-a".into(),
            serial: "01".into(),
            role: "bank".into(),
            peer: "127.0.0.1:1".into(),
            request_id: 1,
            records: 3,
            accepted: 3,
            refused: 0,
            detail: String::new(),
        }
    }

    #[test]
    fn the_chain_goes_on_across_opens_and_a_changed_or_missing_line_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path).unwrap();
        log.record(entry("submit"));
        log.record(entry("forbidden"));
        log.flush();
        drop(log);
        let mut log = AuditLog::open(&path).unwrap();
        log.record(entry("authenticated"));
        log.flush();
        let entries = verify(&path).unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.seq, e.event.as_str()))
                .collect::<Vec<_>>(),
            [(0, "submit"), (1, "forbidden"), (2, "authenticated")]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let changed = text.replacen("\"accepted\":3", "\"accepted\":2", 1);
        std::fs::write(&path, changed).unwrap();
        let error = verify(&path).unwrap_err().to_string();
        assert!(error.contains("line 1: the hash does not match"), "{error}");
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let error = verify(&path).unwrap_err().to_string();
        assert!(error.contains("line 2: prev"), "{error}");
    }
}
