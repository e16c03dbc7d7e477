//! What a validator keeps across a crash besides its log: the consensus machine's
//! [`PersistentState`] (written before any vote it allows is sent) and the equivocation
//! evidence it has seen.
//!
//! Two slot files, `consensus.state.0` and `consensus.state.1`, written in turn (one
//! fdatasync per write, no rename): a write torn by a crash damages only the slot being
//! written, and the other still holds the previous state, which is all that was durable
//! before (nothing that state allowed was sent). Reading takes the intact slot with the
//! higher sequence; a single slot that is damaged is the first write, torn, and reads as no
//! state (nothing was durable before it). Each slot, little-endian:
//!
//! ```text
//! magic "TLYCONS2" (8) | BLAKE3 of the rest (32) | sequence u64 | height u64 | started u8 |
//! step u8 | zero u16 | round u32 | locked: flag u8, value [32], round u32 | valid: same |
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

const STATE_MAGIC: [u8; 8] = *b"TLYCONS2";
const EVIDENCE_MAGIC: [u8; 8] = *b"TLYEVID1";
/// Prefix of the two state slot files in the data directory (`.0`, `.1`).
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

/// The path of state slot `slot` (0 or 1).
pub fn slot_path(dir: &Path, slot: u64) -> PathBuf {
    dir.join(format!("{STATE_FILE}.{slot}"))
}

/// Encodes a state as slot contents with sequence 0 (see the module comment).
pub fn encode(state: &PersistentState) -> Vec<u8> {
    encode_with_sequence(state, 0)
}

fn encode_with_sequence(state: &PersistentState, sequence: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        72 + MESSAGE_BYTES * (state.own_messages.len() + state.polka_messages.len()),
    );
    body.extend_from_slice(&sequence.to_le_bytes());
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

/// Decodes slot contents; `Err` names what is wrong.
pub fn decode(bytes: &[u8]) -> Result<PersistentState, String> {
    decode_with_sequence(bytes).map(|(state, _)| state)
}

fn decode_with_sequence(bytes: &[u8]) -> Result<(PersistentState, u64), String> {
    if bytes.len() < 40 || bytes[..8] != STATE_MAGIC {
        return Err("not a consensus state file (magic)".into());
    }
    let body = &bytes[40..];
    if blake3::hash(body).as_bytes()[..] != bytes[8..40] {
        return Err("checksum does not match".into());
    }
    let mut reader = Reader { bytes: body };
    let sequence = u64::from_le_bytes(reader.take()?);
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
    let state = PersistentState {
        height,
        started: started == 1,
        round,
        step,
        locked,
        valid,
        own_messages,
        polka_messages,
    };
    Ok((state, sequence))
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

/// The writer of a validator's state slots.
pub struct StateFile {
    dir: PathBuf,
    next_sequence: u64,
    ops: std::sync::Arc<dyn FileOps>,
}

impl StateFile {
    /// Reads the slots of `dir` (see [`read`]) and returns a writer that continues after
    /// them, with the state read.
    pub fn open(
        dir: &Path,
        ops: std::sync::Arc<dyn FileOps>,
    ) -> Result<(StateFile, Option<PersistentState>), StateFileError> {
        let (state, sequence) = match read_slots(dir)? {
            Some((state, sequence)) => (Some(state), sequence + 1),
            None => (None, 0),
        };
        let writer = StateFile {
            dir: dir.to_path_buf(),
            next_sequence: sequence,
            ops,
        };
        Ok((writer, state))
    }

    /// Writes `state` durably into the slot not holding the newest state.
    pub fn write(&mut self, state: &PersistentState) -> Result<(), StateFileError> {
        let sequence = self.next_sequence;
        let path = slot_path(&self.dir, sequence % 2);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_error("open", &path))?;
        file.write_all(&encode_with_sequence(state, sequence))
            .map_err(io_error("write", &path))?;
        self.ops
            .sync_file(&path, &file)
            .map_err(io_error("sync", &path))?;
        if created {
            let directory = File::open(&self.dir).map_err(io_error("open", &self.dir))?;
            self.ops
                .sync_dir(&self.dir, &directory)
                .map_err(io_error("sync", &self.dir))?;
        }
        self.next_sequence += 1;
        Ok(())
    }
}

/// Reads the newest intact state of `dir`; `None` when there is none (a fresh validator).
/// A damaged slot beside an intact one is skipped (a write torn by a crash); both damaged is
/// an error.
pub fn read(dir: &Path) -> Result<Option<PersistentState>, StateFileError> {
    read_slots(dir).map(|found| found.map(|(state, _)| state))
}

fn read_slots(dir: &Path) -> Result<Option<(PersistentState, u64)>, StateFileError> {
    let mut intact: Option<(PersistentState, u64)> = None;
    let mut damaged = Vec::new();
    for slot in 0..2 {
        let path = slot_path(dir, slot);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StateFileError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        match decode_with_sequence(&bytes) {
            Ok((state, sequence)) => {
                if intact.as_ref().is_none_or(|(_, newest)| sequence > *newest) {
                    intact = Some((state, sequence));
                }
            }
            Err(reason) => damaged.push((path, reason)),
        }
    }
    let slots_found = u32::from(intact.is_some()) + damaged.len() as u32;
    match (intact, damaged.pop()) {
        // The only slot there is, damaged: the first write ever, cut by a crash before its
        // sync returned, so nothing it allowed was sent. (A second write goes to the other
        // slot, so any later state leaves two slots.)
        (None, Some((path, reason))) if slots_found == 1 => {
            tracing::warn!(path = %path.display(), %reason, "the first consensus state write was cut by a crash; starting without a state");
            Ok(None)
        }
        (None, Some((path, reason))) => Err(StateFileError::Damaged { path, reason }),
        (intact, skipped) => {
            if let Some((path, reason)) = skipped {
                tracing::warn!(path = %path.display(), %reason, "skipping a damaged consensus state slot (a write cut by a crash); the other slot holds the state");
            }
            Ok(intact)
        }
    }
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
