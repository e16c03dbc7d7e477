//! A simulated validator's disk: the real files of its data directory, written through
//! [`FileOps`], with the durability of a real disk modelled. Writes land in the files at
//! once (the page cache); a sync makes them durable. At a crash, every write since the last
//! sync of its file is kept, lost or torn (a prefix kept), as a disk may do, and a state
//! slot whose sync did not finish is cut short. A sync may itself be where the node
//! crashes: it then fails, and the node stops in the middle of what it was doing.
//!
//! Syncs do not reach the operating system: durability here is the model's, which keeps
//! thousands of simulated blocks fast.

use crate::consensus::sim::SimRng;
use crate::log::{
    entry_bytes, FileOps, MmapMut, OsFileOps, ENTRY_HEADER_BYTES, ENTRY_MAGIC, ENTRY_TRAILER_BYTES,
    ENTRY_TRAILER_MAGIC, SEGMENT_HEADER_BYTES,
};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One write not yet made durable: where, and what the file held there before.
#[derive(Debug)]
struct Unsynced {
    offset: u64,
    before: Vec<u8>,
}

#[derive(Debug, Default)]
struct DiskState {
    /// Writes since each file's last sync, oldest first.
    unsynced: BTreeMap<PathBuf, Vec<Unsynced>>,
    /// Files whose sync the crash interrupted (written without [`FileOps`]: state slots).
    interrupted: Vec<PathBuf>,
    /// Syncs until the injected crash (`None`: no crash planned).
    syncs_until_crash: Option<u64>,
    crashed: bool,
}

/// The [`FileOps`] of one simulated validator.
#[derive(Debug, Default)]
pub(super) struct SimDisk {
    state: Mutex<DiskState>,
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash")
}

impl SimDisk {
    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().expect("disk lock")
    }

    /// Plans a crash at the `syncs`-th sync from now (`None`: none).
    pub(super) fn plan_crash(&self, syncs: Option<u64>) {
        self.lock().syncs_until_crash = syncs;
    }

    /// Whether a planned crash happened (the node must stop now).
    pub(super) fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The crash: every write since its file's last sync is kept, lost or torn, and every
    /// interrupted state slot is cut at a random length. Returns how many writes were lost
    /// or torn. The disk works again afterwards.
    pub(super) fn crash(&self, rng: &mut SimRng) -> io::Result<u64> {
        let mut state = self.lock();
        let mut damaged = 0;
        for (path, writes) in std::mem::take(&mut state.unsynced) {
            let file = OpenOptions::new().write(true).open(&path)?;
            // Newest first, so that an older write's `before` is what ends up on disk when
            // both are undone.
            for write in writes.iter().rev() {
                let keep = match rng.range(0, 2) {
                    0 => continue,                                         // it reached the disk
                    1 => 0,                                                // lost
                    _ => rng.range(0, write.before.len() as u64) as usize, // torn
                };
                file.write_all_at(&write.before[keep..], write.offset + keep as u64)?;
                damaged += 1;
            }
        }
        for path in std::mem::take(&mut state.interrupted) {
            if let Ok(length) = std::fs::metadata(&path).map(|m| m.len()) {
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(rng.range(0, length))?;
                damaged += 1;
            }
        }
        state.crashed = false;
        state.syncs_until_crash = None;
        Ok(damaged)
    }

    /// A sync of `path`: makes its writes durable, or is where the planned crash happens.
    fn sync(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if state.crashed {
            return Err(crashed_error());
        }
        if let Some(left) = state.syncs_until_crash.as_mut() {
            if *left == 0 {
                state.crashed = true;
                state.interrupted.push(path.to_path_buf());
                return Err(crashed_error());
            }
            *left -= 1;
        }
        state.unsynced.remove(path);
        Ok(())
    }

    /// Notes what `file` holds at `offset..offset + bytes` before a write there.
    fn before_write(&self, path: &Path, file: &File, offset: u64, bytes: usize) -> io::Result<()> {
        let mut state = self.lock();
        if state.crashed {
            return Err(crashed_error());
        }
        let mut before = vec![0u8; bytes];
        let mut read = 0;
        while read < bytes {
            match file.read_at(&mut before[read..], offset + read as u64)? {
                0 => break, // past the end: the file grows, nothing was there
                n => read += n,
            }
        }
        before.truncate(read);
        state
            .unsynced
            .entry(path.to_path_buf())
            .or_default()
            .push(Unsynced { offset, before });
        Ok(())
    }
}

impl FileOps for SimDisk {
    fn write_at(&self, path: &Path, file: &File, bytes: &[u8], offset: u64) -> io::Result<usize> {
        self.before_write(path, file, offset, bytes.len())?;
        OsFileOps.write_at(path, file, bytes, offset)
    }

    fn write_vectored_at(
        &self,
        path: &Path,
        file: &File,
        parts: &[IoSlice<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        let bytes = parts.iter().map(|part| part.len()).sum();
        self.before_write(path, file, offset, bytes)?;
        OsFileOps.write_vectored_at(path, file, parts, offset)
    }

    fn sync_file(&self, path: &Path, _file: &File) -> io::Result<()> {
        self.sync(path)
    }

    fn flush_map(
        &self,
        path: &Path,
        _map: &MmapMut,
        _offset: usize,
        _bytes: usize,
    ) -> io::Result<()> {
        self.sync(path)
    }

    fn sync_dir(&self, _path: &Path, _dir: &File) -> io::Result<()> {
        let state = self.lock();
        if state.crashed {
            return Err(crashed_error());
        }
        Ok(())
    }
}

/// A disk fault in a durable entry: flips one byte (never to zero) of the last wholly
/// written entry of the log in `log_dir`, found by the documented format (an entry whose
/// trailer names its sequence). Returns whether there was such an entry.
pub(super) fn damage_last_entry(log_dir: &Path, rng: &mut SimRng) -> io::Result<bool> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(log_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("segment-") && name.ends_with(".log"))
        })
        .collect();
    segments.sort();
    let mut last = None;
    for path in segments {
        let bytes = std::fs::read(&path)?;
        let mut offset = SEGMENT_HEADER_BYTES;
        while let Some(header) = bytes.get(offset..offset + ENTRY_HEADER_BYTES) {
            if header[0..4] != ENTRY_MAGIC {
                break;
            }
            let length = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
            let end = offset + entry_bytes(length);
            let Some(trailer) = bytes.get(end - ENTRY_TRAILER_BYTES..end) else {
                break;
            };
            if trailer[0..4] != ENTRY_TRAILER_MAGIC || trailer[8..16] != header[8..16] {
                break;
            }
            last = Some((path.clone(), offset, end));
            offset = end;
        }
    }
    let Some((path, start, end)) = last else {
        return Ok(false);
    };
    let position = rng.range(start as u64, end as u64 - 1);
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position)?;
    byte[0] ^= if byte[0] == 0xa5 { 0x5a } else { 0xa5 };
    file.write_all_at(&byte, position)?;
    Ok(true)
}
