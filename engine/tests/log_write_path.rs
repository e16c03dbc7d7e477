//! The entry write path: `append` writes each entry into its segment file with one
//! `pwritev` (`FileOps::write_vectored_at`) and reads go through the map. Checks that short
//! vectored writes still give a valid log, that a failed entry write poisons the log with
//! nothing of the entry counted, that written entries are visible to `replay` before the
//! commit, and that the bytes on disk are the documented format (an independent encoder).
//! Entries prepared on another thread (`PreparedEntry`, `append_prepared`) give the same
//! bytes as `append`, and are refused the same way.

mod log_support;

use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use log_support::*;
use rand::RngExt;
use tally_engine::log::{
    FileOps, Log, LogConfig, LogError, OsFileOps, PreparedEntry, ReplayError, SEGMENT_HEADER_BYTES,
};

/// Caps every entry write at `limit` bytes (cut inside a slice when needed) or fails it.
#[derive(Debug, Default)]
struct EntryWrites {
    /// Bytes per `write_vectored_at` call at most (0: no limit).
    limit: AtomicUsize,
    fail: AtomicBool,
    calls: AtomicUsize,
}

impl FileOps for EntryWrites {
    fn write_vectored_at(
        &self,
        path: &Path,
        file: &std::fs::File,
        parts: &[IoSlice<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        let limit = self.limit.load(Ordering::SeqCst);
        if limit == 0 {
            return OsFileOps.write_vectored_at(path, file, parts, offset);
        }
        // Keep whole slices while they fit, then a cut piece of the next one.
        let mut kept: Vec<IoSlice<'_>> = Vec::new();
        let mut room = limit;
        for part in parts {
            if room == 0 {
                break;
            }
            let take = part.len().min(room);
            kept.push(IoSlice::new(&part[..take]));
            room -= take;
        }
        OsFileOps.write_vectored_at(path, file, &kept, offset)
    }
}

fn payloads(rng: &mut rand_chacha::ChaCha8Rng, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|_| random_payload(rng, 900)).collect()
}

fn replayed(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    log.replay(0, |_, payload| {
        out.push(payload.to_vec());
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

#[test]
fn short_vectored_writes_give_the_same_bytes() {
    let mut rng = seeded_rng("short_vectored_writes_give_the_same_bytes");
    let entries = payloads(&mut rng, 40);
    let plain = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(plain.path(), small_config()).unwrap();
        for payload in &entries {
            log.append(payload).unwrap();
        }
        log.commit().unwrap();
    }
    // 1, 7 (inside the header), 79, 80, 81 (around the header's end), 83 bytes per call.
    for limit in [1usize, 7, 79, 80, 81, 83] {
        let dir = tempfile::tempdir().unwrap();
        let ops = Arc::new(EntryWrites::default());
        ops.limit.store(limit, Ordering::SeqCst);
        let mut log = Log::open_with(dir.path(), small_config(), ops.clone()).unwrap();
        for payload in &entries {
            log.append(payload).unwrap();
        }
        assert_eq!(log.commit().unwrap(), entries.len() as u64);
        assert!(
            ops.calls.load(Ordering::SeqCst) > entries.len(),
            "limit {limit}: writes were cut"
        );
        assert_eq!(replayed(&log), entries, "limit {limit}");
        drop(log);
        assert_eq!(
            dir_bytes(dir.path()),
            dir_bytes(plain.path()),
            "limit {limit}: same files, same bytes"
        );
        let log = Log::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.next_sequence(), entries.len() as u64);
    }
}

#[test]
fn failed_entry_write_poisons_and_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ops = Arc::new(EntryWrites::default());
    let mut log = Log::open_with(dir.path(), small_config(), ops.clone()).unwrap();
    for round in 0..3u8 {
        log.append(&[round; 300]).unwrap();
    }
    assert_eq!(log.commit().unwrap(), 3);
    let head = log.last_entry_hash();
    ops.fail.store(true, Ordering::SeqCst);
    match log.append(&[9u8; 300]) {
        Err(LogError::Flush { action, offset, .. }) => {
            assert_eq!(action, "write entry");
            assert!(offset >= SEGMENT_HEADER_BYTES as u64);
        }
        other => panic!("append under a failed write: {other:?}"),
    }
    assert_eq!(log.next_sequence(), 3, "the failed entry got no sequence");
    assert_eq!(log.durable_sequence(), 3);
    assert_eq!(log.last_entry_hash(), head, "the chain head did not move");
    ops.fail.store(false, Ordering::SeqCst);
    let message = log.poisoned().expect("poisoned").to_string();
    assert!(message.contains("write entry"), "{message}");
    assert!(matches!(log.append(b"x"), Err(LogError::Poisoned { .. })));
    assert!(matches!(log.commit(), Err(LogError::Poisoned { .. })));
    assert!(matches!(
        log.replay(0, |_, _| Ok::<(), ()>(())),
        Err(ReplayError::Log(LogError::Poisoned { .. }))
    ));
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.next_sequence(), 3);
    assert_eq!(log.last_entry_hash(), head);
}

#[test]
fn a_write_cut_short_and_then_failed_leaves_a_tail_that_recovery_cuts() {
    // The first call writes 100 bytes of the entry, the next fails: part of an entry sits
    // in the file after the last committed one, as after a crash in the middle of a write.
    #[derive(Debug, Default)]
    struct HalfThenFail {
        armed: AtomicBool,
        calls: AtomicUsize,
    }
    impl FileOps for HalfThenFail {
        fn write_vectored_at(
            &self,
            path: &Path,
            file: &std::fs::File,
            parts: &[IoSlice<'_>],
            offset: u64,
        ) -> io::Result<usize> {
            if !self.armed.load(Ordering::SeqCst) {
                return OsFileOps.write_vectored_at(path, file, parts, offset);
            }
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                joined.truncate(100);
                return OsFileOps.write_vectored_at(path, file, &[IoSlice::new(&joined)], offset);
            }
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let ops = Arc::new(HalfThenFail::default());
    let mut log = Log::open_with(dir.path(), small_config(), ops.clone()).unwrap();
    log.append(b"committed").unwrap();
    log.commit().unwrap();
    ops.armed.store(true, Ordering::SeqCst);
    assert!(matches!(
        log.append(&[7u8; 500]),
        Err(LogError::Flush {
            action: "write entry",
            ..
        })
    ));
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.next_sequence(), 1);
    assert!(
        matches!(
            log.recovery().tail,
            tally_engine::log::TailState::Torn { .. }
        ),
        "{:?}",
        log.recovery().tail
    );
    assert_eq!(replayed(&log), vec![b"committed".to_vec()]);
}

#[test]
fn written_entries_are_visible_before_commit_and_match_the_documented_format() {
    let mut rng = seeded_rng("written_entries_are_visible_before_commit");
    let entries = payloads(&mut rng, 30);
    let dir = tempfile::tempdir().unwrap();
    // One segment holds all 30 entries: no rollover makes any of them durable early.
    let config = LogConfig {
        segment_bytes: 64 << 10,
        entry_bytes_max: 2048,
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut expected_hashes = Vec::new();
    let mut previous = [0u8; 32];
    for (sequence, payload) in entries.iter().enumerate() {
        assert_eq!(log.append(payload).unwrap(), sequence as u64);
        // The entry hash from the documented layout: derive_key over bytes 0..48, payload.
        let mut header = Vec::with_capacity(48);
        header.extend_from_slice(b"TLYE");
        header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        header.extend_from_slice(&(sequence as u64).to_le_bytes());
        header.extend_from_slice(&previous);
        let mut hasher = blake3::Hasher::new_derive_key("tally 2026-11 log entry v1");
        hasher.update(&header);
        hasher.update(payload);
        let hash: [u8; 32] = *hasher.finalize().as_bytes();
        assert_eq!(log.last_entry_hash(), hash, "entry {sequence}");
        expected_hashes.push(hash);
        previous = hash;
    }
    assert_eq!(log.durable_sequence(), 0, "nothing committed yet");
    assert_eq!(replayed(&log), entries, "replay sees written entries");
    // The files (read with read(2), not the map) hold the entries already.
    let spans = entry_spans(dir.path());
    assert_eq!(spans.len(), entries.len());
    for (sequence, (span, hash)) in spans.iter().zip(&expected_hashes).enumerate() {
        assert_eq!(&stored_entry_hash(span), hash);
        let bytes = std::fs::read(&span.file).unwrap();
        assert!(bytes[span.payload_end..span.trailer_start]
            .iter()
            .all(|&b| b == 0));
        // The trailer from the documented layout: magic, length, sequence, entry hash, then
        // 8 bytes of derive_key over those 48 bytes; it ends the entry.
        let mut trailer = Vec::with_capacity(56);
        trailer.extend_from_slice(b"TLYT");
        trailer.extend_from_slice(&((span.payload_end - span.offset - 80) as u32).to_le_bytes());
        trailer.extend_from_slice(&(sequence as u64).to_le_bytes());
        trailer.extend_from_slice(hash);
        let mut hasher = blake3::Hasher::new_derive_key("tally 2026-12 log entry trailer v2");
        hasher.update(&trailer);
        trailer.extend_from_slice(&hasher.finalize().as_bytes()[0..8]);
        assert_eq!(span.end - span.trailer_start, 56);
        assert_eq!(
            bytes[span.trailer_start..span.end],
            trailer[..],
            "entry {sequence}"
        );
    }
    assert_eq!(log.commit().unwrap(), entries.len() as u64);
}

/// Payload lengths around the BLAKE3 tree's chunk and subtree edges (the hashed input is the
/// 48 header bytes and the payload), plus random ones.
fn tree_edge_payloads(rng: &mut rand_chacha::ChaCha8Rng) -> Vec<Vec<u8>> {
    let mut lengths = vec![0usize, 1, 975, 976, 977, 1000, 2000, 2024, 3024, 4096, 5000];
    for chunks in [4usize, 8, 9, 16, 17, 64, 65, 200, 256, 257] {
        for delta in [-49i64, -48, -47, 0, 1] {
            lengths.push((chunks as i64 * 1024 + delta) as usize);
        }
    }
    for _ in 0..20 {
        lengths.push(rng.random_range(0..=300 * 1024));
    }
    lengths
        .into_iter()
        .map(|length| {
            let mut payload = vec![0u8; length];
            rng.fill(&mut payload[..]);
            payload
        })
        .collect()
}

#[test]
fn entries_prepared_on_another_thread_give_the_same_bytes_as_append() {
    let mut rng = seeded_rng("entries_prepared_on_another_thread_give_the_same_bytes");
    let entries = tree_edge_payloads(&mut rng);
    let config = LogConfig {
        segment_bytes: 1 << 20,
        entry_bytes_max: 512 << 10,
    };
    let plain = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(plain.path(), config).unwrap();
        for payload in &entries {
            log.append(payload).unwrap();
        }
        log.commit().unwrap();
    }
    let prepared = tempfile::tempdir().unwrap();
    let mut log = Log::open(prepared.path(), config).unwrap();
    let (sender, receiver) = std::sync::mpsc::sync_channel::<PreparedEntry>(4);
    std::thread::scope(|scope| {
        let entries = &entries;
        scope.spawn(move || {
            for payload in entries {
                sender.send(PreparedEntry::new(payload.clone())).unwrap();
            }
        });
        for (sequence, entry) in receiver.iter().enumerate() {
            assert_eq!(log.append_prepared(&entry).unwrap(), sequence as u64);
            assert_eq!(entry.payload(), &entries[sequence][..]);
        }
    });
    assert_eq!(log.commit().unwrap(), entries.len() as u64);
    assert_eq!(replayed(&log), entries);
    drop(log);
    assert_eq!(
        dir_bytes(prepared.path()),
        dir_bytes(plain.path()),
        "same files, same bytes"
    );
    // The hashes are the documented ones: a fresh open verifies every entry and the chain
    // with the one-pass hash, and the independent walk reads the same stored hashes.
    let log = Log::open(prepared.path(), config).unwrap();
    assert_eq!(log.next_sequence(), entries.len() as u64);
    let spans = entry_spans(prepared.path());
    assert_eq!(spans.len(), entries.len());
    let mut previous = [0u8; 32];
    for (sequence, (span, payload)) in spans.iter().zip(&entries).enumerate() {
        let mut hasher = blake3::Hasher::new_derive_key("tally 2026-11 log entry v1");
        hasher.update(b"TLYE");
        hasher.update(&(payload.len() as u32).to_le_bytes());
        hasher.update(&(sequence as u64).to_le_bytes());
        hasher.update(&previous);
        hasher.update(payload);
        let hash: [u8; 32] = *hasher.finalize().as_bytes();
        assert_eq!(stored_entry_hash(span), hash, "entry {sequence}");
        previous = hash;
    }
    assert_eq!(log.last_entry_hash(), previous);
}

#[test]
fn prepared_entries_are_refused_like_appended_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ops = Arc::new(EntryWrites::default());
    let config = small_config();
    let mut log = Log::open_with(dir.path(), config, ops.clone()).unwrap();
    log.append_prepared(&PreparedEntry::new(vec![1u8; 500]))
        .unwrap();
    assert_eq!(log.commit().unwrap(), 1);
    let head = log.last_entry_hash();
    // One byte over the largest payload: refused, nothing changes, the log goes on.
    let oversized = PreparedEntry::new(vec![2u8; config.payload_bytes_max() + 1]);
    match log.append_prepared(&oversized) {
        Err(LogError::EntryTooLarge {
            payload_bytes,
            entry_bytes_max,
            ..
        }) => {
            assert_eq!(payload_bytes, config.payload_bytes_max() as u64 + 1);
            assert_eq!(entry_bytes_max, config.entry_bytes_max);
        }
        other => panic!("oversized prepared entry: {other:?}"),
    }
    assert_eq!(log.next_sequence(), 1);
    assert_eq!(log.last_entry_hash(), head);
    let largest = PreparedEntry::new(vec![3u8; config.payload_bytes_max()]);
    assert_eq!(log.append_prepared(&largest).unwrap(), 1);
    // A failed write poisons the log; prepared entries are refused from then on.
    ops.fail.store(true, Ordering::SeqCst);
    let next = PreparedEntry::new(vec![4u8; 100]);
    assert!(matches!(
        log.append_prepared(&next),
        Err(LogError::Flush {
            action: "write entry",
            ..
        })
    ));
    ops.fail.store(false, Ordering::SeqCst);
    assert!(matches!(
        log.append_prepared(&next),
        Err(LogError::Poisoned { .. })
    ));
    assert_eq!(log.next_sequence(), 2, "the failed entry got no sequence");
    assert_eq!(log.durable_sequence(), 1);
    drop(log);
    // Only the committed entry is known durable; the second one was written before the
    // failure and sits in the page cache, so a restart finds both, never the failed third.
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.next_sequence(), 2);
}
