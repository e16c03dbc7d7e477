//! Storage figures: the append log against the raw disk it runs on, and the restart time of
//! a log the size of a million transactions.
//!
//! `measure_log_vs_raw` runs, in one process on one directory (so on one disk and one
//! filesystem), three writers that do the same work per commit:
//! 1. raw: one `pwrite` per entry of exactly the bytes the log stores for it (payload plus
//!    the 80-byte header, padding and 56-byte trailer), `fdatasync` every
//!    `entries_per_commit` writes. It
//!    appends to new 64 MiB files (sized with `set_len`, so each write lands on new file
//!    space, as the log's do) and fsyncs the directory once per new file, which any writer
//!    that wants its data found after a crash must do: the floor a log pays on this disk.
//! 2. log: `Log::append_prepared` of `entry_bytes` payloads and `Log::commit` every
//!    `entries_per_commit` appends (segment rollover included). The payloads are prepared
//!    (`PreparedEntry::new`, the payload-only part of the entry hash) on a producer thread,
//!    one commit's worth at a time, as a node's execution stage prepares each block while
//!    its log stage waits for the previous flush. The producer runs at most one commit ahead.
//! 3. log, one thread: `Log::append` (the whole hash on the writer's thread) and
//!    `Log::commit`, for comparison.
//!
//! The three alternate in rounds so that all see the same background load: the round's
//! leader (each by turns) commits for a fiftieth of `duration`, then the others make exactly
//! as many commits, until the three have run for `3 * duration` together. Short rounds keep
//! the sides close in time: this disk's commit time drifts over seconds. All end with the same
//! number of commits and entries; each side's rate is over its own time.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tally_engine::log::{entry_bytes as log_entry_bytes, Log, LogConfig, PreparedEntry};

/// Bytes of each raw file, the same as a default log segment.
pub const RAW_FILE_BYTES: u64 = 64 << 20;
/// Bytes of one transaction record in the replay measurement.
pub const TX_RECORD_BYTES: usize = 192;
/// Transactions per block (one log entry) in the replay measurement.
pub const BLOCK_TX_COUNT: usize = 4096;

/// One writer's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterFigures {
    /// Entries written and made durable.
    pub entries: u64,
    /// Commits (fdatasync or msync calls).
    pub commits: u64,
    /// Bytes that reached the disk, headers included.
    pub disk_bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Mean time of one commit call.
    pub commit_latency_us_mean: f64,
    /// Slowest commit call.
    pub commit_latency_us_max: f64,
}

impl WriterFigures {
    /// Durable entries per second.
    pub fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    /// Commits per second.
    pub fn commits_per_second(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64()
    }

    /// Disk bytes per second, in MiB.
    pub fn mib_per_second(&self) -> f64 {
        self.disk_bytes as f64 / self.elapsed.as_secs_f64() / (1024.0 * 1024.0)
    }
}

/// The log against raw writes at one entry size and commit interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StorageFigures {
    /// Payload bytes per entry.
    pub entry_bytes: usize,
    /// Entries per commit (group size).
    pub entries_per_commit: usize,
    /// Raw pwrite + fdatasync.
    pub raw: WriterFigures,
    /// `Log::append_prepared` + `Log::commit`, entries prepared on a producer thread (as in
    /// a node).
    pub log: WriterFigures,
    /// `Log::append` + `Log::commit` on one thread.
    pub log_one_thread: WriterFigures,
}

impl StorageFigures {
    /// Log entries per second over raw entries per second (1.0: as fast as the raw disk).
    pub fn log_to_raw_ratio(&self) -> f64 {
        self.log.entries_per_second() / self.raw.entries_per_second()
    }

    /// The same for the log on one thread (`Log::append`).
    pub fn log_one_thread_to_raw_ratio(&self) -> f64 {
        self.log_one_thread.entries_per_second() / self.raw.entries_per_second()
    }
}

impl std::fmt::Display for StorageFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "entry {} B, {} entries/commit",
            self.entry_bytes, self.entries_per_commit
        )?;
        for (name, figures) in [
            ("raw", &self.raw),
            ("log", &self.log),
            ("log, one thread", &self.log_one_thread),
        ] {
            writeln!(
                f,
                "  {name:>15}: {:>10.0} entries/s {:>8.0} commits/s {:>8.1} MiB/s  commit mean {:>7.1} us, max {:>8.1} us",
                figures.entries_per_second(),
                figures.commits_per_second(),
                figures.mib_per_second(),
                figures.commit_latency_us_mean,
                figures.commit_latency_us_max
            )?;
        }
        write!(
            f,
            "  log/raw: {:.2} (one thread: {:.2})",
            self.log_to_raw_ratio(),
            self.log_one_thread_to_raw_ratio()
        )
    }
}

/// Restart figures of a log holding `tx_count` transactions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayFigures {
    /// Transactions in the log.
    pub tx_count: u64,
    /// Entries (blocks) in the log.
    pub entries: u64,
    /// Bytes of payload replayed.
    pub payload_bytes: u64,
    /// `Log::open`: listing, mapping, verifying every checksum and the chain.
    pub open: Duration,
    /// `Log::replay` from sequence 0 over every payload (touching each byte).
    pub replay: Duration,
}

impl ReplayFigures {
    /// Open plus replay: the log's share of a node restart.
    pub fn restart(&self) -> Duration {
        self.open + self.replay
    }
}

impl std::fmt::Display for ReplayFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = self.payload_bytes as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "restart of {} tx ({} entries, {mib:.0} MiB): open+verify {:.1} ms ({:.0} MiB/s), replay {:.1} ms, total {:.1} ms",
            self.tx_count,
            self.entries,
            self.open.as_secs_f64() * 1e3,
            mib / self.open.as_secs_f64(),
            self.replay.as_secs_f64() * 1e3,
            self.restart().as_secs_f64() * 1e3
        )
    }
}

/// Running sums of commit latency.
#[derive(Default)]
struct CommitClock {
    commits: u64,
    total: Duration,
    max: Duration,
}

impl CommitClock {
    fn record(&mut self, took: Duration) {
        self.commits += 1;
        self.total += took;
        self.max = self.max.max(took);
    }

    fn figures(&self, entries: u64, disk_bytes: u64, elapsed: Duration) -> WriterFigures {
        WriterFigures {
            entries,
            commits: self.commits,
            disk_bytes,
            elapsed,
            commit_latency_us_mean: self.total.as_secs_f64() * 1e6 / self.commits.max(1) as f64,
            commit_latency_us_max: self.max.as_secs_f64() * 1e6,
        }
    }
}

/// Raw sequential `pwrite` + `fdatasync` into new files of [`RAW_FILE_BYTES`].
struct RawWriter {
    dir: std::path::PathBuf,
    dir_file: File,
    buffer: Vec<u8>,
    file: File,
    file_index: u64,
    offset: u64,
}

impl RawWriter {
    fn new(dir: &Path, write_bytes: usize) -> RawWriter {
        std::fs::create_dir_all(dir).expect("create raw dir");
        let dir_file = File::open(dir).expect("open raw dir");
        // Distinct bytes per entry would not change what the disk does; a fixed pattern
        // that is not zero keeps any layer from skipping the write.
        let buffer = vec![0xA5u8; write_bytes];
        let file = Self::new_file(dir, &dir_file, 0);
        RawWriter {
            dir: dir.to_path_buf(),
            dir_file,
            buffer,
            file,
            file_index: 0,
            offset: 0,
        }
    }

    fn new_file(dir: &Path, dir_file: &File, index: u64) -> File {
        let path = dir.join(format!("raw-{index:06}.bin"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        file.set_len(RAW_FILE_BYTES)
            .unwrap_or_else(|e| panic!("size {}: {e}", path.display()));
        dir_file.sync_all().expect("fsync raw dir");
        file
    }

    /// Writes `entries` buffers and makes them durable; returns the time of the fdatasync.
    fn commit_round(&mut self, entries: usize) -> Duration {
        let bytes = self.buffer.len() as u64;
        for _ in 0..entries {
            if self.offset + bytes > RAW_FILE_BYTES {
                self.file.sync_data().expect("fdatasync raw file");
                self.file_index += 1;
                self.file = Self::new_file(&self.dir, &self.dir_file, self.file_index);
                self.offset = 0;
            }
            self.file
                .write_all_at(&self.buffer, self.offset)
                .expect("write raw file");
            self.offset += bytes;
        }
        let before = Instant::now();
        self.file.sync_data().expect("fdatasync raw file");
        before.elapsed()
    }
}

/// `Log::append` + `Log::commit` on one thread.
struct LogWriter {
    log: Log,
    payload: Vec<u8>,
}

impl LogWriter {
    fn new(dir: &Path, entry_bytes: usize) -> LogWriter {
        LogWriter {
            log: Log::open(dir, LogConfig::default()).unwrap_or_else(|e| panic!("{e}")),
            payload: vec![0x5Au8; entry_bytes],
        }
    }

    /// Appends `entries` payloads and commits; returns the time of the commit.
    fn commit_round(&mut self, entries: usize) -> Duration {
        for _ in 0..entries {
            self.log
                .append(&self.payload)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let before = Instant::now();
        self.log.commit().unwrap_or_else(|e| panic!("{e}"));
        before.elapsed()
    }
}

/// One commit's worth of prepared entries.
type PreparedGroup = Vec<PreparedEntry<Arc<[u8]>>>;

/// `Log::append_prepared` + `Log::commit`, fed by a producer thread that prepares one
/// commit's entries at a time and runs at most one commit ahead of the writer.
struct PreparedLogWriter {
    log: Log,
    groups: Option<Receiver<PreparedGroup>>,
    producer: Option<JoinHandle<()>>,
}

impl PreparedLogWriter {
    fn new(dir: &Path, entry_bytes: usize, entries_per_commit: usize) -> PreparedLogWriter {
        let payload: Arc<[u8]> = vec![0x6Bu8; entry_bytes].into();
        // Capacity 0: the producer hands over a group only when the writer takes it, so it
        // prepares the next group while the writer appends and commits this one.
        let (sender, groups) = sync_channel::<PreparedGroup>(0);
        let producer = std::thread::Builder::new()
            .name("bench-log-producer".into())
            .spawn(move || loop {
                let group = (0..entries_per_commit)
                    .map(|_| PreparedEntry::new(Arc::clone(&payload)))
                    .collect();
                if sender.send(group).is_err() {
                    return;
                }
            })
            .expect("spawn the producer thread");
        PreparedLogWriter {
            log: Log::open(dir, LogConfig::default()).unwrap_or_else(|e| panic!("{e}")),
            groups: Some(groups),
            producer: Some(producer),
        }
    }

    /// Appends one prepared group and commits; returns the time of the commit.
    fn commit_round(&mut self) -> Duration {
        let group = self
            .groups
            .as_ref()
            .expect("the producer runs until drop")
            .recv()
            .expect("the producer thread runs");
        for entry in &group {
            self.log
                .append_prepared(entry)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let before = Instant::now();
        self.log.commit().unwrap_or_else(|e| panic!("{e}"));
        before.elapsed()
    }
}

impl Drop for PreparedLogWriter {
    fn drop(&mut self) {
        // Closing the receiver ends the producer's next send.
        self.groups = None;
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}

/// One side's running totals over its rounds.
#[derive(Default)]
struct Side {
    clock: CommitClock,
    elapsed: Duration,
}

impl Side {
    /// Commits until `limit` has passed (at least once) or `count` times; returns the count.
    fn run(
        &mut self,
        mut commit: impl FnMut() -> Duration,
        limit: Option<Duration>,
        count: u64,
    ) -> u64 {
        let start = Instant::now();
        let mut done = 0u64;
        loop {
            let took = commit();
            self.clock.record(took);
            done += 1;
            match limit {
                Some(limit) if start.elapsed() >= limit => break,
                Some(_) => {}
                None if done >= count => break,
                None => {}
            }
        }
        self.elapsed += start.elapsed();
        done
    }
}

/// Measures raw sequential write + fdatasync and the log's append + commit (entries prepared
/// on a producer thread, and all on one thread) at the same entry size and commit interval,
/// in subdirectories of `dir` (same disk), alternating in rounds (see the module docs) for
/// about `3 * duration` in all. All sides make the same number of commits of the same bytes.
///
/// Assumes `dir` is writable, has room for what `duration` of writing produces, and that
/// `entry_bytes` fits the default log configuration (16 MiB entries). The files stay in
/// `dir` for the caller to remove.
///
/// # Panics
/// On any I/O or log error: a benchmark has no figure to give when the disk fails.
pub fn measure_log_vs_raw(
    dir: &Path,
    entry_bytes: usize,
    entries_per_commit: usize,
    duration: Duration,
) -> StorageFigures {
    assert!(
        entries_per_commit > 0,
        "commit at least one entry at a time"
    );
    let stored_bytes = log_entry_bytes(entry_bytes);
    let mut raw_writer = RawWriter::new(&dir.join("raw"), stored_bytes);
    let mut log_writer = PreparedLogWriter::new(&dir.join("log"), entry_bytes, entries_per_commit);
    let mut one_thread_writer = LogWriter::new(&dir.join("log-one-thread"), entry_bytes);
    let mut sides: [Side; 3] = Default::default();
    let slice = duration / 50;
    let mut leader = 0usize;
    let mut commit = |side: usize| match side {
        0 => raw_writer.commit_round(entries_per_commit),
        1 => log_writer.commit_round(),
        _ => one_thread_writer.commit_round(entries_per_commit),
    };
    while sides.iter().map(|side| side.elapsed).sum::<Duration>() < 3 * duration {
        let count = sides[leader].run(|| commit(leader), Some(slice), 0);
        for follower in (1..3).map(|step| (leader + step) % 3) {
            sides[follower].run(|| commit(follower), None, count);
        }
        leader = (leader + 1) % 3;
    }
    let entries = log_writer.log.durable_sequence();
    assert_eq!(
        one_thread_writer.log.durable_sequence(),
        entries,
        "both logs made the same commits"
    );
    let raw_entries = sides[0].clock.commits * entries_per_commit as u64;
    assert_eq!(raw_entries, entries, "raw and log made the same commits");
    let disk_bytes = entries * stored_bytes as u64;
    let [raw, log, one_thread] = sides;
    StorageFigures {
        entry_bytes,
        entries_per_commit,
        raw: raw.clock.figures(entries, disk_bytes, raw.elapsed),
        log: log.clock.figures(entries, disk_bytes, log.elapsed),
        log_one_thread: one_thread
            .clock
            .figures(entries, disk_bytes, one_thread.elapsed),
    }
}

/// Writes a log of `tx_count` 192-byte records as blocks of [`BLOCK_TX_COUNT`] (one entry per
/// block), then measures `Log::open` and a full `Log::replay` (the page cache is warm:
/// this is the CPU cost of a restart, not the disk's).
///
/// # Panics
/// On any I/O or log error, or when `dir` already holds a log.
pub fn measure_replay(dir: &Path, tx_count: u64) -> ReplayFigures {
    let log_dir = dir.join("replay-log");
    assert!(!log_dir.exists(), "{} already exists", log_dir.display());
    let mut block = vec![0u8; BLOCK_TX_COUNT * TX_RECORD_BYTES];
    let mut entries = 0u64;
    {
        let mut log = Log::open(&log_dir, LogConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut written = 0u64;
        while written < tx_count {
            let txs = (tx_count - written).min(BLOCK_TX_COUNT as u64) as usize;
            for (index, record) in block[..txs * TX_RECORD_BYTES]
                .chunks_exact_mut(TX_RECORD_BYTES)
                .enumerate()
            {
                // Distinct records, so that no layer can compress or deduplicate them.
                record[..8].copy_from_slice(&(written + index as u64).to_le_bytes());
                record[8..16].copy_from_slice(&entries.to_le_bytes());
            }
            log.append(&block[..txs * TX_RECORD_BYTES])
                .unwrap_or_else(|e| panic!("{e}"));
            log.commit().unwrap_or_else(|e| panic!("{e}"));
            written += txs as u64;
            entries += 1;
        }
    }
    let start = Instant::now();
    let log = Log::open(&log_dir, LogConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let open = start.elapsed();
    assert_eq!(log.next_sequence(), entries);
    let start = Instant::now();
    let mut payload_bytes = 0u64;
    let mut checksum = 0u64;
    log.replay(0, |_, payload| {
        payload_bytes += payload.len() as u64;
        // Touch every record as a node's replay would: read its first word.
        for record in payload.chunks_exact(TX_RECORD_BYTES) {
            checksum =
                checksum.wrapping_add(u64::from_le_bytes(record[..8].try_into().expect("8 bytes")));
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let replay = start.elapsed();
    assert_eq!(payload_bytes, tx_count * TX_RECORD_BYTES as u64);
    assert_eq!(
        checksum,
        tx_count * tx_count.saturating_sub(1) / 2,
        "every record seen once"
    );
    ReplayFigures {
        tx_count,
        entries,
        payload_bytes,
        open,
        replay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_give_consistent_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let figures = measure_log_vs_raw(dir.path(), 192, 8, Duration::from_millis(50));
        let writers = [figures.raw, figures.log, figures.log_one_thread];
        for writer in writers {
            assert!(writer.entries > 0 && writer.commits > 0);
            assert_eq!(writer.entries, writer.commits * 8);
            // All write what the log stores: 192 payload + 80 header + 56 trailer bytes per
            // entry.
            assert_eq!(writer.disk_bytes, writer.entries * 328);
            assert!(writer.elapsed > Duration::ZERO);
        }
        assert_eq!(figures.raw.commits, figures.log.commits, "same commits");
        assert_eq!(figures.raw.commits, figures.log_one_thread.commits);
        // Rounds rotate until the sides together ran three times the duration; any side
        // alone may have run less (the faster ones).
        let together: Duration = writers.iter().map(|writer| writer.elapsed).sum();
        assert!(together >= 3 * Duration::from_millis(50));
        // Both logs hold what was appended, verified by a fresh open.
        for name in ["log", "log-one-thread"] {
            let log = Log::open(&dir.path().join(name), LogConfig::default()).expect("reopen");
            assert_eq!(log.next_sequence(), figures.log.entries, "{name}");
        }
        let replay = measure_replay(dir.path(), 10_000);
        assert_eq!(replay.entries, 3);
        assert_eq!(replay.payload_bytes, 10_000 * 192);
    }
}
