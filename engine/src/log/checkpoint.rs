//! Checkpoint files: snapshots of the ledger state at a block height, so that a restart
//! replays only the log after the newest checkpoint.
//!
//! A checkpoint is written to `checkpoint-<height>.tmp`, made durable, renamed to
//! `checkpoint-<height:020>.ckpt` and the directory synced: a crash leaves either the old set
//! of checkpoints or the new one, never a half-written file under the final name. A write that
//! fails (no space left, say) removes its temporary file before it reports the error, and a
//! node removes the temporary files a crash left behind when it starts
//! ([`remove_temporaries`]). The bytes
//! are opaque here (the ledger encodes and checks them); this module only adds a BLAKE3
//! checksum over the whole file so that a damaged checkpoint is never loaded.

use super::FileOps;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".ckpt";
const TEMPORARY_SUFFIX: &str = ".tmp";
const PREFIX: &str = "checkpoint-";
/// Checkpoints kept on disk; older ones are removed after a new one is durable.
pub const CHECKPOINTS_KEPT: usize = 2;

/// Errors of checkpoint files.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    move |source| CheckpointError::Io {
        action,
        path,
        source,
    }
}

/// Path of the checkpoint of `height` in `dir`.
pub fn checkpoint_path(dir: &Path, height: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{height:020}{SUFFIX}"))
}

/// Writes the checkpoint of `height` atomically and durably, then removes all but the
/// newest [`CHECKPOINTS_KEPT`].
pub fn write_checkpoint(
    dir: &Path,
    height: u64,
    bytes: &[u8],
    ops: &dyn FileOps,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let temporary = dir.join(format!("{PREFIX}{height:020}{TEMPORARY_SUFFIX}"));
    let target = checkpoint_path(dir, height);
    let directory = File::open(dir).map_err(io("open", dir))?;
    let written = write_durably(&temporary, bytes, ops)
        .and_then(|()| std::fs::rename(&temporary, &target).map_err(io("rename", &temporary)));
    if let Err(error) = written {
        // Nothing of a failed write stays behind: the temporary file goes (removing needs
        // no space), and the directory is synced so that it stays gone.
        if std::fs::remove_file(&temporary).is_ok() {
            let _ = ops.sync_dir(dir, &directory);
        }
        return Err(error);
    }
    ops.sync_dir(dir, &directory).map_err(io("sync", dir))?;
    let mut heights = list_heights(dir)?;
    heights.sort_unstable();
    if heights.len() > CHECKPOINTS_KEPT {
        for old in &heights[..heights.len() - CHECKPOINTS_KEPT] {
            let path = checkpoint_path(dir, *old);
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
        ops.sync_dir(dir, &directory).map_err(io("sync", dir))?;
    }
    Ok(target)
}

/// Writes `bytes` and their BLAKE3 checksum to a new file at `path` and makes it durable.
fn write_durably(path: &Path, bytes: &[u8], ops: &dyn FileOps) -> Result<(), CheckpointError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io("create", path))?;
    ops.write_new_file(path, &file, bytes)
        .map_err(io("write", path))?;
    ops.write_new_file(path, &file, blake3::hash(bytes).as_bytes())
        .map_err(io("write", path))?;
    ops.sync_file(path, &file).map_err(io("sync", path))
}

/// Removes the temporary files of checkpoint writes that a crash cut short; returns how many.
pub fn remove_temporaries(dir: &Path) -> Result<usize, CheckpointError> {
    if !dir.exists() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) && name.ends_with(TEMPORARY_SUFFIX) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn list_heights(dir: &Path) -> Result<Vec<u64>, CheckpointError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut heights = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(height) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            heights.push(height);
        }
    }
    Ok(heights)
}

/// A checkpoint found on disk whose checksum holds.
pub struct StoredCheckpoint {
    pub height: u64,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// A checkpoint file that failed its checksum.
pub struct DamagedCheckpoint {
    pub path: PathBuf,
    pub reason: String,
}

/// The checkpoints in `dir`, newest first, with the ones whose checksum fails reported
/// separately, so the caller can say what it skipped.
pub fn load_checkpoints(
    dir: &Path,
) -> Result<(Vec<StoredCheckpoint>, Vec<DamagedCheckpoint>), CheckpointError> {
    let mut heights = list_heights(dir)?;
    heights.sort_unstable_by(|a, b| b.cmp(a));
    let mut good = Vec::new();
    let mut damaged = Vec::new();
    for height in heights {
        let path = checkpoint_path(dir, height);
        let mut bytes = std::fs::read(&path).map_err(io("read", &path))?;
        if bytes.len() < 32 {
            damaged.push(DamagedCheckpoint {
                path,
                reason: "shorter than its checksum".to_string(),
            });
            continue;
        }
        let checksum = bytes.split_off(bytes.len() - 32);
        if blake3::hash(&bytes).as_bytes()[..] != checksum[..] {
            damaged.push(DamagedCheckpoint {
                path,
                reason: "checksum mismatch".to_string(),
            });
            continue;
        }
        good.push(StoredCheckpoint {
            height,
            path,
            bytes,
        });
    }
    Ok((good, damaged))
}
