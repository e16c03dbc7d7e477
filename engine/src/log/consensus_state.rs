//! What a validator keeps across a crash besides its log: the consensus machine's
//! [`PersistentState`] (written before any vote it allows is sent) and the equivocation
//! evidence it has seen.
//!
//! `consensus.state`, rewritten atomically (temporary file, fdatasync, rename, directory
//! fsync), little-endian:
//!
//! ```text
//! magic "TLYCONS1" (8) | BLAKE3 of the rest (32) | height u64 | started u8 | step u8 |
//! zero u16 | round u32 | locked: flag u8, value [32], round u32 | valid: same |
//! own count u32 | polka count u32 | messages (152 bytes each, own first)
//! ```
//!
//! `evidence.log`: appended, one record per pair: magic "TLYEVID1" (8) then the two signed
//! messages (152 bytes each), fdatasync after each append.

use super::FileOps;
use crate::consensus::{Evidence, PersistentState, SignedMessage, Step, MESSAGE_BYTES};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const STATE_MAGIC: [u8; 8] = *b"TLYCONS1";
const EVIDENCE_MAGIC: [u8; 8] = *b"TLYEVID1";
/// Name of the state file in the data directory.
pub const STATE_FILE: &str = "consensus.state";
/// Name of the evidence file in the data directory.
pub const EVIDENCE_FILE: &str = "evidence.log";
/// Most messages one state file may list (own and polka together): a bound on what a damaged
/// file can make the node allocate.
const STATE_MESSAGES_MAX: usize = 16 * 1024;

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({reason}): a validator must not vote again without it; restore it from a backup, or, only if this validator's votes of its current height are known to be lost everywhere, remove it")]
    Damaged { path: PathBuf, reason: String },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateFileError {
    let path = path.to_path_buf();
    move |source| StateFileError::Io {
        action,
        path,
        source,
    }
}

/// Encodes a state (see the module comment).
pub fn encode(state: &PersistentState) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        64 + MESSAGE_BYTES * (state.own_messages.len() + state.polka_messages.len()),
    );
    body.extend_from_slice(&state.height.to_le_bytes());
    body.push(u8::from(state.started));
    body.push(match state.step {
        Step::Propose => 0,
        Step::Prevote => 1,
        Step::Precommit => 2,
    });
    body.extend_from_slice(&[0; 2]);
    body.extend_from_slice(&state.round.to_le_bytes());
    for slot in [state.locked, state.valid] {
        let (flag, value, round) = match slot {
            Some((value, round)) => (1u8, value, round),
            None => (0, [0; 32], 0),
        };
        body.push(flag);
        body.extend_from_slice(&value);
        body.extend_from_slice(&round.to_le_bytes());
    }
    body.extend_from_slice(&(state.own_messages.len() as u32).to_le_bytes());
    body.extend_from_slice(&(state.polka_messages.len() as u32).to_le_bytes());
    for message in state.own_messages.iter().chain(&state.polka_messages) {
        body.extend_from_slice(&message.encode());
    }
    let mut out = Vec::with_capacity(40 + body.len());
    out.extend_from_slice(&STATE_MAGIC);
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a state; `Err` names what is wrong.
pub fn decode(bytes: &[u8]) -> Result<PersistentState, String> {
    if bytes.len() < 40 || bytes[..8] != STATE_MAGIC {
        return Err("not a consensus state file (magic)".into());
    }
    let body = &bytes[40..];
    if blake3::hash(body).as_bytes()[..] != bytes[8..40] {
        return Err("checksum does not match".into());
    }
    let mut reader = Reader { bytes: body };
    let height = u64::from_le_bytes(reader.take()?);
    let [started, step, _, _] = reader.take::<4>()?;
    let step = match step {
        0 => Step::Propose,
        1 => Step::Prevote,
        2 => Step::Precommit,
        other => return Err(format!("step {other} is not a step")),
    };
    let round = u32::from_le_bytes(reader.take()?);
    let mut slot = || -> Result<Option<([u8; 32], u32)>, String> {
        let [flag] = reader.take::<1>()?;
        let value = reader.take::<32>()?;
        let round = u32::from_le_bytes(reader.take()?);
        Ok((flag == 1).then_some((value, round)))
    };
    let locked = slot()?;
    let valid = slot()?;
    let own = u32::from_le_bytes(reader.take()?) as usize;
    let polka = u32::from_le_bytes(reader.take()?) as usize;
    if own + polka > STATE_MESSAGES_MAX || reader.bytes.len() != (own + polka) * MESSAGE_BYTES {
        return Err(format!(
            "{own} + {polka} messages do not match the {} bytes that follow",
            reader.bytes.len()
        ));
    }
    let mut messages = reader
        .bytes
        .chunks_exact(MESSAGE_BYTES)
        .map(|chunk| SignedMessage::decode(chunk).map_err(|error| error.to_string()));
    let own_messages = messages.by_ref().take(own).collect::<Result<Vec<_>, _>>()?;
    let polka_messages = messages.collect::<Result<Vec<_>, _>>()?;
    Ok(PersistentState {
        height,
        started: started == 1,
        round,
        step,
        locked,
        valid,
        own_messages,
        polka_messages,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.bytes.len() < N {
            return Err("cut short".into());
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        Ok(head.try_into().expect("N bytes"))
    }
}

/// Writes `state` to `dir/consensus.state` atomically and durably.
pub fn write(dir: &Path, state: &PersistentState, ops: &dyn FileOps) -> Result<(), StateFileError> {
    let target = dir.join(STATE_FILE);
    let temporary = dir.join(format!("{STATE_FILE}.tmp"));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(io_error("create", &temporary))?;
        file.write_all(&encode(state))
            .map_err(io_error("write", &temporary))?;
        ops.sync_file(&temporary, &file)
            .map_err(io_error("sync", &temporary))?;
    }
    std::fs::rename(&temporary, &target).map_err(io_error("rename", &temporary))?;
    let directory = File::open(dir).map_err(io_error("open", dir))?;
    ops.sync_dir(dir, &directory).map_err(io_error("sync", dir))
}

/// Reads `dir/consensus.state`; `None` when there is none (a fresh validator).
pub fn read(dir: &Path) -> Result<Option<PersistentState>, StateFileError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Io {
                action: "read",
                path,
                source,
            })
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| StateFileError::Damaged { path, reason })
}

/// Appends `evidence` durably to `dir/evidence.log`.
pub fn append_evidence(
    dir: &Path,
    evidence: &Evidence,
    ops: &dyn FileOps,
) -> Result<(), StateFileError> {
    let path = dir.join(EVIDENCE_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_error("open", &path))?;
    let mut record = Vec::with_capacity(8 + 2 * MESSAGE_BYTES);
    record.extend_from_slice(&EVIDENCE_MAGIC);
    record.extend_from_slice(&evidence.first.encode());
    record.extend_from_slice(&evidence.second.encode());
    file.write_all(&record).map_err(io_error("write", &path))?;
    ops.sync_file(&path, &file).map_err(io_error("sync", &path))
}

/// Reads every evidence record of `dir/evidence.log` (an empty list when there is none); a
/// torn last record (a crash during an append) is ignored.
pub fn read_evidence(dir: &Path) -> Result<Vec<Evidence>, StateFileError> {
    let path = dir.join(EVIDENCE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateFileError::Io {
                action: "read",
                path,
                source,
            })
        }
    };
    let record_bytes = 8 + 2 * MESSAGE_BYTES;
    let mut out = Vec::new();
    for (index, record) in bytes.chunks_exact(record_bytes).enumerate() {
        let damaged = |reason: String| StateFileError::Damaged {
            path: path.clone(),
            reason: format!("record {index}: {reason}"),
        };
        if record[..8] != EVIDENCE_MAGIC {
            return Err(damaged("magic".into()));
        }
        let first = SignedMessage::decode(&record[8..8 + MESSAGE_BYTES])
            .map_err(|e| damaged(e.to_string()))?;
        let second = SignedMessage::decode(&record[8 + MESSAGE_BYTES..])
            .map_err(|e| damaged(e.to_string()))?;
        out.push(Evidence { first, second });
    }
    Ok(out)
}
