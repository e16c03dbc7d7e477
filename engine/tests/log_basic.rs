//! The log's ordinary life: append, commit, reopen, replay from a sequence, segment
//! rollover, limits, and the structural errors (corrupt header, missing or misplaced
//! segment, a flipped bit in the middle) that `open` must refuse.
//!
//! Randomised parts print their seed; re-run with `TALLY_LOG_SEED=<seed>`.

mod log_support;

use std::fs;

use log_support::*;
use tally_engine::log::{
    entry_bytes, inspect, segment_file_name, EntryFault, Log, LogConfig, LogError, ReplayError,
    TailState, ENTRY_HEADER_BYTES, GENESIS_HASH, SEGMENT_HEADER_BYTES,
};

fn collect(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut entries = Vec::new();
    log.replay(from, |sequence, payload| {
        entries.push((sequence, payload.to_vec()));
        Ok::<(), ()>(())
    })
    .expect("replay");
    entries
}

/// A log over several segments with random payloads, committed and closed.
fn build(dir: &std::path::Path, rng: &mut rand_chacha::ChaCha8Rng, count: usize) -> Vec<Vec<u8>> {
    let mut log = Log::open(dir, small_config()).expect("open");
    let mut payloads = Vec::new();
    for _ in 0..count {
        let payload = random_payload(rng, 700);
        assert_eq!(log.append(&payload).expect("append"), payloads.len() as u64);
        payloads.push(payload);
    }
    assert_eq!(log.commit().expect("commit"), count as u64);
    payloads
}

#[test]
fn empty_log_opens_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).expect("create");
    assert_eq!(log.next_sequence(), 0);
    assert_eq!(log.last_entry_hash(), GENESIS_HASH);
    assert_eq!(log.segment_count(), 1);
    assert!(collect(&log, 0).is_empty());
    drop(log);
    let mut log = Log::open(dir.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.next_sequence(), 0);
    assert_eq!(log.commit().expect("commit of nothing"), 0);
    let report = inspect(dir.path()).expect("inspect");
    assert_eq!(report.segments.len(), 1);
    assert_eq!(report.entry_count, 0);
    assert!(report.is_healthy());
}

#[test]
fn append_commit_reopen_replay_with_rollover() {
    let mut rng = seeded_rng("append_commit_reopen_replay_with_rollover");
    let dir = tempfile::tempdir().unwrap();
    let payloads = build(dir.path(), &mut rng, 120);
    let log = Log::open(dir.path(), small_config()).expect("reopen");
    assert!(
        log.segment_count() >= 4,
        "120 entries of up to 780 bytes span 8 KiB segments"
    );
    assert_eq!(log.next_sequence(), 120);
    assert_eq!(log.recovery().tail, TailState::Clean);
    let all = collect(&log, 0);
    assert_eq!(all.len(), 120);
    for (position, (sequence, payload)) in all.iter().enumerate() {
        assert_eq!(*sequence, position as u64);
        assert_eq!(payload, &payloads[position]);
    }
    // From a sequence in the middle of a segment, at a segment start, at the end.
    let spans = entry_spans(dir.path());
    let second_segment_start = spans
        .iter()
        .position(|span| span.file != spans[0].file)
        .expect("a second segment") as u64;
    for from in [
        1,
        57,
        second_segment_start,
        second_segment_start + 1,
        119,
        120,
    ] {
        let tail = collect(&log, from);
        assert_eq!(tail.len() as u64, 120 - from, "from {from}");
        if let Some((first, payload)) = tail.first() {
            assert_eq!(*first, from);
            assert_eq!(payload, &payloads[from as usize]);
        }
    }
    match log.replay(121, |_, _| Ok::<(), ()>(())) {
        Err(ReplayError::Log(LogError::SequenceBeyondEnd {
            from: 121,
            next_sequence: 120,
        })) => {}
        other => panic!("expected SequenceBeyondEnd, got {other:?}"),
    }
    // The entries iterator agrees with replay and borrows the same bytes.
    let iterated: Vec<u64> = log.entries(100).unwrap().map(|e| e.unwrap().0).collect();
    assert_eq!(iterated, (100..120).collect::<Vec<_>>());

    let report = inspect(dir.path()).expect("inspect");
    assert!(report.is_healthy());
    assert_eq!(report.entry_count, 120);
    assert_eq!(report.segments.len(), log.segment_count());
    assert_eq!(report.last_entry_hash, log.last_entry_hash());
    let stored: u64 = payloads.iter().map(|p| entry_bytes(p.len()) as u64).sum();
    assert_eq!(report.entry_bytes, stored);
    let mut next_first = 0;
    for segment in &report.segments {
        assert_eq!(segment.first_sequence, Some(next_first));
        next_first += segment.entry_count;
    }
}

#[test]
fn chain_head_survives_reopen_and_appends_continue() {
    let mut rng = seeded_rng("chain_head_survives_reopen_and_appends_continue");
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &mut rng, 30);
    let mut log = Log::open(dir.path(), small_config()).unwrap();
    let head = log.last_entry_hash();
    assert_ne!(head, GENESIS_HASH);
    assert_eq!(log.append(b"thirty").unwrap(), 30);
    assert_ne!(log.last_entry_hash(), head);
    let new_head = log.last_entry_hash();
    // Not committed yet, but visible to replay.
    assert_eq!(collect(&log, 30), vec![(30, b"thirty".to_vec())]);
    log.commit().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.last_entry_hash(), new_head);
    assert_eq!(log.next_sequence(), 31);
}

#[test]
fn entry_size_limit_is_exact_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = Log::open(dir.path(), config).unwrap();
    let payload_bytes_max = config.payload_bytes_max();
    assert_eq!(
        entry_bytes(payload_bytes_max),
        config.entry_bytes_max as usize
    );
    assert_eq!(log.append(&vec![7u8; payload_bytes_max]).unwrap(), 0);
    let error = log.append(&vec![7u8; payload_bytes_max + 1]).unwrap_err();
    match &error {
        LogError::EntryTooLarge {
            payload_bytes,
            entry_bytes_max,
            ..
        } => {
            assert_eq!(*payload_bytes, payload_bytes_max as u64 + 1);
            assert_eq!(*entry_bytes_max, config.entry_bytes_max);
        }
        other => panic!("expected EntryTooLarge, got {other:?}"),
    }
    assert!(error.to_string().contains("entry_bytes_max"), "{error}");
    // The refused entry changed nothing; the log goes on.
    assert_eq!(log.next_sequence(), 1);
    assert_eq!(log.append(&[]).unwrap(), 1);
    assert_eq!(log.commit().unwrap(), 2);
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(
        collect(&log, 0),
        vec![(0, vec![7u8; payload_bytes_max]), (1, vec![])]
    );
}

#[test]
fn invalid_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        LogConfig {
            segment_bytes: 1000,
            entry_bytes_max: 512,
        },
        LogConfig {
            segment_bytes: 8196,
            entry_bytes_max: 512,
        },
        LogConfig {
            segment_bytes: 8192,
            entry_bytes_max: 8192,
        },
        LogConfig {
            segment_bytes: 8192,
            entry_bytes_max: 8,
        },
    ] {
        match Log::open(dir.path(), config) {
            Err(LogError::InvalidConfig { .. }) => {}
            other => panic!("{config:?} accepted: {other:?}"),
        }
    }
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    match Log::open(dir.path(), small_config()) {
        Err(LogError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(log);
    Log::open(dir.path(), small_config()).expect("lock released on drop");
}

#[test]
fn visitor_error_stops_replay() {
    let mut rng = seeded_rng("visitor_error_stops_replay");
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &mut rng, 20);
    let log = Log::open(dir.path(), small_config()).unwrap();
    let mut seen = 0;
    let result = log.replay(5, |sequence, _| {
        seen += 1;
        if sequence == 9 {
            Err("state rejects block 9")
        } else {
            Ok(())
        }
    });
    match result {
        Err(ReplayError::Visitor { sequence: 9, error }) => {
            assert_eq!(error, "state rejects block 9")
        }
        other => panic!("expected the visitor's error, got {other:?}"),
    }
    assert_eq!(seen, 5);
}

#[test]
fn flipped_bit_in_a_middle_entry_is_reported_and_refused() {
    let mut rng = seeded_rng("flipped_bit_in_a_middle_entry_is_reported_and_refused");
    let reference = tempfile::tempdir().unwrap();
    build(reference.path(), &mut rng, 60);
    let spans = entry_spans(reference.path());
    // Entries in the first, a middle and the second-to-last position.
    for sequence in [0, spans.len() / 2, spans.len() - 2] {
        let span = &spans[sequence];
        // Every header byte, plus a spread of payload bytes and every padding byte.
        let mut positions: Vec<usize> = (span.offset..span.offset + ENTRY_HEADER_BYTES).collect();
        positions.extend((span.offset + ENTRY_HEADER_BYTES..span.payload_end).step_by(37));
        positions.extend(span.payload_end..span.end);
        for position in positions {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(reference.path(), copy.path());
            let file = copy.path().join(span.file.file_name().unwrap());
            flip_bit(&file, position, (position % 8) as u8);
            let before = dir_bytes(copy.path());
            let context = format!("entry {sequence}, byte {position}");
            match Log::open(copy.path(), small_config()) {
                Err(LogError::CorruptEntry {
                    file: reported_file,
                    offset,
                    sequence: reported_sequence,
                    fault,
                    valid_offset,
                    ..
                }) => {
                    assert_eq!(reported_file, file, "{context}");
                    assert_eq!(offset as usize, span.offset, "{context}");
                    assert_eq!(reported_sequence as usize, sequence, "{context}");
                    assert_ne!(fault, EntryFault::Zeroed, "{context}");
                    assert!(
                        valid_offset as usize > span.offset || file != span.file,
                        "{context}"
                    );
                }
                other => panic!("{context}: expected CorruptEntry, got {other:?}"),
            }
            assert_eq!(
                dir_bytes(copy.path()),
                before,
                "{context}: open must not touch files"
            );
            let report = inspect(copy.path()).unwrap();
            match &report.problem {
                Some(LogError::CorruptEntry {
                    offset,
                    sequence: s,
                    ..
                }) => {
                    assert_eq!(
                        (*offset as usize, *s as usize),
                        (span.offset, sequence),
                        "{context}"
                    );
                }
                other => panic!("{context}: inspect reported {other:?}"),
            }
            assert_eq!(
                report.next_sequence as usize, sequence,
                "{context}: verified prefix"
            );
        }
    }
}

#[test]
fn corrupt_segment_header_is_refused() {
    let mut rng = seeded_rng("corrupt_segment_header_is_refused");
    let reference = tempfile::tempdir().unwrap();
    build(reference.path(), &mut rng, 60);
    for position in 0..SEGMENT_HEADER_BYTES {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(reference.path(), copy.path());
        let file = copy.path().join(segment_file_name(1));
        flip_bit(&file, position, 3);
        match Log::open(copy.path(), small_config()) {
            Err(LogError::CorruptSegmentHeader {
                file: reported,
                reason,
            }) => {
                assert_eq!(reported, file, "byte {position}: {reason}");
            }
            other => panic!("byte {position}: expected CorruptSegmentHeader, got {other:?}"),
        }
        let report = inspect(copy.path()).unwrap();
        assert!(
            matches!(report.problem, Some(LogError::CorruptSegmentHeader { .. })),
            "byte {position}: {:?}",
            report.problem
        );
    }
}

#[test]
fn missing_or_swapped_segments_are_refused() {
    let mut rng = seeded_rng("missing_or_swapped_segments_are_refused");
    let reference = tempfile::tempdir().unwrap();
    build(reference.path(), &mut rng, 80);
    assert!(segment_files(reference.path()).len() >= 4);

    let copy = tempfile::tempdir().unwrap();
    copy_dir(reference.path(), copy.path());
    fs::remove_file(copy.path().join(segment_file_name(1))).unwrap();
    match Log::open(copy.path(), small_config()) {
        Err(LogError::MissingSegment { index: 1, .. }) => {}
        other => panic!("expected MissingSegment 1, got {other:?}"),
    }
    assert!(matches!(
        inspect(copy.path()).unwrap().problem,
        Some(LogError::MissingSegment { index: 1, .. })
    ));

    let copy = tempfile::tempdir().unwrap();
    copy_dir(reference.path(), copy.path());
    fs::remove_file(copy.path().join(segment_file_name(0))).unwrap();
    assert!(matches!(
        Log::open(copy.path(), small_config()),
        Err(LogError::MissingSegment { index: 0, .. })
    ));

    // Two segments' contents swapped: the header names another index.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(reference.path(), copy.path());
    let (one, two) = (
        copy.path().join(segment_file_name(1)),
        copy.path().join(segment_file_name(2)),
    );
    let (bytes_one, bytes_two) = (fs::read(&one).unwrap(), fs::read(&two).unwrap());
    fs::write(&one, bytes_two).unwrap();
    fs::write(&two, bytes_one).unwrap();
    match Log::open(copy.path(), small_config()) {
        Err(LogError::CorruptSegmentHeader { file, reason }) => {
            assert_eq!(file, one);
            assert!(reason.contains("index"), "{reason}");
        }
        other => panic!("expected CorruptSegmentHeader, got {other:?}"),
    }

    // A whole middle segment emptied of entries: the next one starts at the wrong sequence.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(reference.path(), copy.path());
    overwrite(
        &copy.path().join(segment_file_name(1)),
        SEGMENT_HEADER_BYTES,
        &[],
        usize::MAX,
    );
    match Log::open(copy.path(), small_config()) {
        Err(LogError::SegmentSequenceMismatch { file, .. }) => {
            assert_eq!(file, copy.path().join(segment_file_name(2)));
        }
        other => panic!("expected SegmentSequenceMismatch, got {other:?}"),
    }
}

#[test]
fn half_created_segment_is_removed() {
    let mut rng = seeded_rng("half_created_segment_is_removed");
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &mut rng, 10);
    let next = segment_files(dir.path()).len() as u64;
    let temporary = dir.path().join(format!("{}.tmp", segment_file_name(next)));
    fs::write(&temporary, b"half a header").unwrap();
    assert_eq!(
        inspect(dir.path()).unwrap().temporary_files,
        vec![temporary.clone()]
    );
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        log.recovery().removed_temporary_files,
        vec![temporary.clone()]
    );
    assert!(!temporary.exists());
    assert_eq!(log.next_sequence(), 10);
}
