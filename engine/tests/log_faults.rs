//! Fault injection at the syscall seam (`FileOps`): the real log over real files, with
//! failed flushes, short writes and failed allocations injected. A failed flush must never
//! yield a durable sequence and must poison the log for good (no retry: fsyncgate).

mod log_support;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use log_support::*;
use tally_engine::log::{FileOps, Log, LogError, MmapMut, OsFileOps, ReplayError};

/// Delegates to the real operating system unless a fault is switched on.
#[derive(Debug, Default)]
struct Faults {
    fail_flush: AtomicBool,
    fail_allocate: AtomicBool,
    fail_sync_dir: AtomicBool,
    /// Writes at most this many bytes per call (0: no limit).
    short_write_bytes: AtomicUsize,
    flush_calls: AtomicUsize,
    write_calls: AtomicUsize,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl FileOps for Faults {
    fn allocate(&self, path: &Path, file: &std::fs::File, bytes: u64) -> io::Result<()> {
        if self.fail_allocate.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        OsFileOps.allocate(path, file, bytes)
    }

    fn write_at(
        &self,
        path: &Path,
        file: &std::fs::File,
        bytes: &[u8],
        offset: u64,
    ) -> io::Result<usize> {
        self.write_calls.fetch_add(1, Ordering::SeqCst);
        let limit = self.short_write_bytes.load(Ordering::SeqCst);
        let bytes = if limit > 0 {
            &bytes[..bytes.len().min(limit)]
        } else {
            bytes
        };
        OsFileOps.write_at(path, file, bytes, offset)
    }

    fn flush_map(&self, path: &Path, map: &MmapMut, offset: usize, bytes: usize) -> io::Result<()> {
        self.flush_calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(injected("msync"));
        }
        OsFileOps.flush_map(path, map, offset, bytes)
    }

    fn sync_dir(&self, path: &Path, dir: &std::fs::File) -> io::Result<()> {
        if self.fail_sync_dir.load(Ordering::SeqCst) {
            return Err(injected("directory fsync"));
        }
        OsFileOps.sync_dir(path, dir)
    }
}

fn open_with_faults(dir: &Path) -> (Log, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let log = Log::open_with(dir, small_config(), faults.clone()).expect("open");
    (log, faults)
}

fn assert_poisoned(log: &mut Log, first_failure_contains: &str) {
    let message = log.poisoned().expect("log is poisoned").to_string();
    assert!(message.contains(first_failure_contains), "{message}");
    match log.commit() {
        Err(LogError::Poisoned { first_failure }) => assert_eq!(first_failure, message),
        other => panic!("commit after poison: {other:?}"),
    }
    assert!(matches!(
        log.append(b"more"),
        Err(LogError::Poisoned { .. })
    ));
    assert!(matches!(
        log.replay(0, |_, _| Ok::<(), ()>(())),
        Err(ReplayError::Log(LogError::Poisoned { .. }))
    ));
}

#[test]
fn group_commit_is_one_flush_per_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_with_faults(dir.path());
    for round in 0..3u64 {
        for _ in 0..5 {
            log.append(&[round as u8; 100]).unwrap();
        }
        let before = faults.flush_calls.load(Ordering::SeqCst);
        assert_eq!(log.commit().unwrap(), (round + 1) * 5);
        assert_eq!(
            faults.flush_calls.load(Ordering::SeqCst),
            before + 1,
            "one msync"
        );
    }
    let before = faults.flush_calls.load(Ordering::SeqCst);
    assert_eq!(log.commit().unwrap(), 15);
    assert_eq!(
        faults.flush_calls.load(Ordering::SeqCst),
        before,
        "nothing to flush"
    );
}

#[test]
fn failed_flush_gives_no_durable_sequence_and_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_with_faults(dir.path());
    for _ in 0..10 {
        log.append(&[1u8; 64]).unwrap();
    }
    assert_eq!(log.commit().unwrap(), 10);
    for _ in 0..5 {
        log.append(&[2u8; 64]).unwrap();
    }
    faults.fail_flush.store(true, Ordering::SeqCst);
    match log.commit() {
        Err(LogError::Flush { action, .. }) => assert_eq!(action, "msync"),
        other => panic!("commit under a failed msync: {other:?}"),
    }
    assert_eq!(
        log.durable_sequence(),
        10,
        "nothing after the failure is durable"
    );
    // The disk is healthy again, but the log never retries.
    faults.fail_flush.store(false, Ordering::SeqCst);
    let flushes = faults.flush_calls.load(Ordering::SeqCst);
    assert_poisoned(&mut log, "injected msync failure");
    assert_eq!(
        faults.flush_calls.load(Ordering::SeqCst),
        flushes,
        "no retry reached the disk"
    );
    assert_eq!(log.durable_sequence(), 10);
    drop(log);
    // A restart re-reads the log: the acknowledged prefix is there.
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert!(log.next_sequence() >= 10);
}

#[test]
fn failed_flush_at_rollover_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_with_faults(dir.path());
    let payload = [3u8; 1000];
    while log.segment_count() == 1 {
        log.append(&payload).unwrap();
        log.commit().unwrap();
    }
    let durable = log.durable_sequence();
    // Fill the second segment without committing, then fail the flush the rollover needs.
    let mut appended = 0;
    faults.fail_flush.store(true, Ordering::SeqCst);
    let error = loop {
        match log.append(&payload) {
            Ok(_) => appended += 1,
            Err(error) => break error,
        }
        assert!(appended < 100, "rollover never happened");
    };
    assert!(matches!(error, LogError::Flush { .. }), "{error:?}");
    assert_eq!(log.durable_sequence(), durable);
    assert_eq!(log.segment_count(), 2, "no segment after a failed flush");
    faults.fail_flush.store(false, Ordering::SeqCst);
    assert_poisoned(&mut log, "msync");
}

#[test]
fn failed_segment_creation_poisons_and_leaves_no_segment() {
    for fault in ["allocate", "sync_dir"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, faults) = open_with_faults(dir.path());
        let payload = [4u8; 1500];
        let mut committed = 0;
        match fault {
            "allocate" => faults.fail_allocate.store(true, Ordering::SeqCst),
            _ => faults.fail_sync_dir.store(true, Ordering::SeqCst),
        }
        let error = loop {
            match log.append(&payload) {
                Ok(_) => committed = log.commit().unwrap(),
                Err(error) => break error,
            }
        };
        assert!(
            matches!(error, LogError::Flush { .. }),
            "{fault}: {error:?}"
        );
        assert_eq!(log.durable_sequence(), committed, "{fault}");
        assert_poisoned(&mut log, "");
        drop(log);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{fault}: {leftovers:?}");
        let log = Log::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.next_sequence(), committed, "{fault}");
    }
}

#[test]
fn short_writes_still_create_valid_segments() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    faults.short_write_bytes.store(3, Ordering::SeqCst);
    let mut log = Log::open_with(dir.path(), small_config(), faults.clone()).unwrap();
    let mut rng = seeded_rng("short_writes_still_create_valid_segments");
    let mut payloads = Vec::new();
    while log.segment_count() < 3 {
        let payload = random_payload(&mut rng, 900);
        log.append(&payload).unwrap();
        payloads.push(payload);
    }
    log.commit().unwrap();
    assert!(
        faults.write_calls.load(Ordering::SeqCst) >= 3 * 64 / 3,
        "headers written 3 bytes at a time"
    );
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    let mut replayed = Vec::new();
    log.replay(0, |_, payload| {
        replayed.push(payload.to_vec());
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(replayed, payloads);
}

#[test]
fn failed_flush_while_cutting_a_torn_tail_refuses_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), small_config()).unwrap();
        log.append(b"kept").unwrap();
        log.commit().unwrap();
    }
    let spans = entry_spans(dir.path());
    overwrite(&spans[0].file, spans[0].end, b"torn garbage", usize::MAX);
    let faults = Arc::new(Faults::default());
    faults.fail_flush.store(true, Ordering::SeqCst);
    match Log::open_with(dir.path(), small_config(), faults) {
        Err(LogError::Flush { .. }) => {}
        other => panic!("expected Flush, got {other:?}"),
    }
    // The zeroes written through the shared map may already sit in the page cache, so the
    // retry finds a torn or a clean tail; either way the valid prefix is intact.
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.next_sequence(), 1);
}
