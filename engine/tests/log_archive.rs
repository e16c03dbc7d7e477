//! Archiving the log prefix (`Log::archive_before`): the live log keeps working and keeps
//! proving, through the archive marker, that nothing in the middle was lost. Covers reopen
//! and append after an archive, replay from and before the base, a corrupt, deleted or
//! disagreeing marker, every crash state of an archive (built by hand), archiving twice and
//! archiving nothing.
//!
//! Randomised parts print their seed; re-run with `TALLY_LOG_SEED=<seed>`.

mod log_support;

use std::fs;
use std::path::Path;

use log_support::*;
use tally_engine::log::{
    inspect, read_archived, segment_file_name, EntryFault, Log, LogError, ReplayError,
    ARCHIVE_MARKER_FILE_NAME,
};

/// About 18 entries per 8 KiB segment: 8 segments, the cut in the fifth.
const ENTRY_COUNT: usize = 150;
const ARCHIVE_BEFORE: u64 = 90;

fn collect(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut entries = Vec::new();
    log.replay(from, |sequence, payload| {
        entries.push((sequence, payload.to_vec()));
        Ok::<(), ()>(())
    })
    .expect("replay");
    entries
}

fn expected(payloads: &[Vec<u8>], from: u64) -> Vec<(u64, Vec<u8>)> {
    payloads
        .iter()
        .enumerate()
        .skip(from as usize)
        .map(|(sequence, payload)| (sequence as u64, payload.clone()))
        .collect()
}

/// A committed, closed log of `count` random non-empty payloads over several segments.
fn build(dir: &Path, rng: &mut rand_chacha::ChaCha8Rng, count: usize) -> Vec<Vec<u8>> {
    let mut log = Log::open(dir, small_config()).expect("open");
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            let mut payload = random_payload(rng, 700);
            payload.push(0xA5);
            payload
        })
        .collect();
    for payload in &payloads {
        log.append(payload).expect("append");
    }
    assert_eq!(log.commit().expect("commit"), count as u64);
    payloads
}

/// The first sequence of the segment that holds entry `sequence`, from the headers.
fn segment_start_of(dir: &Path, sequence: u64) -> (u64, u64) {
    segment_starts(dir)
        .into_iter()
        .rev()
        .find(|(_, first)| *first <= sequence)
        .expect("a segment starts at or before the sequence")
}

fn assert_archived_error(log: &Log, from: u64, first_sequence: u64) {
    match log.entries(from) {
        Err(LogError::SequenceArchived {
            from: got_from,
            first_sequence: got_first,
        }) => assert_eq!((got_from, got_first), (from, first_sequence)),
        Err(other) => panic!("expected SequenceArchived, got {other:?}"),
        Ok(_) => panic!("expected SequenceArchived, got entries"),
    }
    match log.replay(from, |_, _| Ok::<(), ()>(())) {
        Err(ReplayError::Log(LogError::SequenceArchived { .. })) => {}
        other => panic!("expected ReplayError::Log(SequenceArchived), got {other:?}"),
    }
}

/// Puts the archived segments and the live ones (without the marker) in one directory: the
/// result must open as one log from sequence 0, proving the archive is the exact prefix.
fn assert_archive_and_live_form_one_chain(archive: &Path, live: &Path, payloads: &[Vec<u8>]) {
    let joined = tempfile::tempdir().unwrap();
    for dir in [archive, live] {
        for file in segment_files(dir) {
            fs::copy(&file, joined.path().join(file.file_name().unwrap())).unwrap();
        }
    }
    let log = Log::open(joined.path(), small_config()).expect("joined log opens from 0");
    assert_eq!(log.first_sequence(), 0);
    assert_eq!(collect(&log, 0), expected(payloads, 0));
}

#[test]
fn archive_then_reopen_replay_and_append() {
    let mut rng = seeded_rng("archive_then_reopen_replay_and_append");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));
    let mut payloads = build(&dir, &mut rng, ENTRY_COUNT);
    let segments_before = segment_files(&dir);
    let (base_index, base_sequence) = segment_start_of(&dir, ARCHIVE_BEFORE);
    assert!(
        base_index >= 2,
        "the test needs several segments before the cut"
    );
    let spans = entry_spans(&dir);
    let last_archived_hash = stored_entry_hash(&spans[base_sequence as usize - 1]);

    let mut log = Log::open(&dir, small_config()).unwrap();
    let head = log.last_entry_hash();
    let report = log.archive_before(ARCHIVE_BEFORE, &archive).unwrap();
    assert!(report.marker_written);
    assert_eq!(report.first_sequence, base_sequence);
    assert_eq!(log.first_sequence(), base_sequence);
    let base = log.archive_base();
    assert_eq!(
        (base.segment_index, base.first_sequence, base.previous_hash),
        (base_index, base_sequence, last_archived_hash)
    );
    let moved: Vec<_> = (0..base_index)
        .map(|index| archive.join(segment_file_name(index)))
        .collect();
    assert_eq!(report.moved_segments, moved);
    let moved_bytes: u64 = segments_before[..base_index as usize]
        .iter()
        .map(|file| {
            fs::metadata(archive.join(file.file_name().unwrap()))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(report.moved_bytes, moved_bytes);
    for index in 0..base_index {
        assert!(!dir.join(segment_file_name(index)).exists());
    }
    assert_eq!(
        fs::read(dir.join(ARCHIVE_MARKER_FILE_NAME)).unwrap(),
        encode_marker(base_index, base_sequence, &last_archived_hash),
        "the marker follows the documented layout"
    );

    // The running log: chain head unchanged, replay from the base, before it an error.
    assert_eq!(log.last_entry_hash(), head);
    assert_eq!(
        collect(&log, base_sequence),
        expected(&payloads, base_sequence)
    );
    assert_eq!(
        collect(&log, ARCHIVE_BEFORE),
        expected(&payloads, ARCHIVE_BEFORE)
    );
    assert_archived_error(&log, 0, base_sequence);
    assert_archived_error(&log, base_sequence - 1, base_sequence);

    for _ in 0..15 {
        let payload = random_payload(&mut rng, 700);
        assert_eq!(log.append(&payload).unwrap(), payloads.len() as u64);
        payloads.push(payload);
    }
    log.commit().unwrap();
    let head = log.last_entry_hash();
    drop(log);

    let mut log = Log::open(&dir, small_config()).unwrap();
    assert_eq!(log.first_sequence(), base_sequence);
    assert_eq!(log.next_sequence(), payloads.len() as u64);
    assert_eq!(log.last_entry_hash(), head);
    assert!(log.recovery().segments_below_base.is_empty());
    assert_eq!(
        collect(&log, base_sequence),
        expected(&payloads, base_sequence)
    );
    assert_archived_error(&log, 0, base_sequence);
    let payload = b"after reopen".to_vec();
    assert_eq!(log.append(&payload).unwrap(), payloads.len() as u64);
    payloads.push(payload);
    log.commit().unwrap();
    drop(log);

    let report = inspect(&dir).unwrap();
    assert!(report.is_healthy(), "{:?}", report.problem);
    assert_eq!(report.archive_base, Some(base));
    assert!(report.archive_link_verified);
    assert_eq!(report.next_sequence, payloads.len() as u64);
    assert_eq!(report.entry_count, payloads.len() as u64 - base_sequence);
    assert_eq!(report.segments[0].index, base_index);
    assert_archive_and_live_form_one_chain(&archive, &dir, &payloads);
}

/// Entries `from..` of an archive directory, as `read_archived` hands them over, up to
/// `most`.
fn read_back(archive: &Path, from: u64, most: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut entries = Vec::new();
    read_archived(archive, from, |sequence, payload| {
        entries.push((sequence, payload.to_vec()));
        entries.len() < most
    })?;
    Ok(entries)
}

/// Archived entries read back verified (what a validator serves to a peer behind the live
/// log): from any sequence, across segments, stopped by the visitor; nothing past the
/// archive; a damaged entry and a missing segment are refused with file, offset and
/// sequence.
#[test]
fn archived_entries_read_back_verified_and_damage_is_named() {
    let mut rng = seeded_rng("archived_entries_read_back_verified_and_damage_is_named");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));
    let payloads = build(&dir, &mut rng, ENTRY_COUNT);
    let spans = entry_spans(&dir);
    let mut log = Log::open(&dir, small_config()).unwrap();
    let base_sequence = log
        .archive_before(ARCHIVE_BEFORE, &archive)
        .unwrap()
        .first_sequence;
    drop(log);
    let archived = expected(&payloads, 0)[..base_sequence as usize].to_vec();
    assert_eq!(read_back(&archive, 0, usize::MAX).unwrap(), archived);
    // From the middle of a later segment, stopped after three.
    let from = spans
        .iter()
        .position(|span| span.file.ends_with(segment_file_name(1)))
        .unwrap() as u64
        + 2;
    assert_eq!(
        read_back(&archive, from, 3).unwrap(),
        archived[from as usize..from as usize + 3].to_vec()
    );
    // The live log's entries are not in the archive.
    assert!(read_back(&archive, base_sequence, usize::MAX)
        .unwrap()
        .is_empty());

    // A flipped payload bit: the entries before it come out, then the damage is named.
    let damaged = &spans[from as usize + 1];
    assert!(
        damaged.payload_end > damaged.offset + 80,
        "a non-empty payload"
    );
    let archived_file = archive.join(damaged.file.file_name().unwrap());
    flip_bit(&archived_file, damaged.offset + 80, 3);
    let mut handed = Vec::new();
    let error = read_archived(&archive, from, |sequence, _| {
        handed.push(sequence);
        true
    })
    .unwrap_err();
    assert_eq!(handed, vec![from]);
    match error {
        LogError::DamagedArchive {
            file,
            offset,
            sequence,
            fault,
        } => {
            assert_eq!(
                (file, offset, sequence, fault),
                (
                    archived_file.clone(),
                    damaged.offset as u64,
                    from + 1,
                    EntryFault::ChecksumMismatch
                )
            );
        }
        other => panic!("expected DamagedArchive, got {other}"),
    }
    flip_bit(&archived_file, damaged.offset + 80, 3);
    assert_eq!(
        read_back(&archive, 0, usize::MAX).unwrap(),
        archived,
        "undamaged again"
    );

    // A missing segment in the middle: reading across the gap is refused.
    fs::remove_file(archive.join(segment_file_name(1))).unwrap();
    let error = read_back(&archive, 0, usize::MAX).unwrap_err();
    assert!(
        matches!(
            &error,
            LogError::DamagedArchive {
                fault: EntryFault::SequenceMismatch { .. },
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(&segment_file_name(2)), "{error}");
}

#[test]
fn marker_corrupted_deleted_or_truncated_is_refused() {
    let mut rng = seeded_rng("marker_corrupted_deleted_or_truncated_is_refused");
    let root = tempfile::tempdir().unwrap();
    let (reference, archive) = (root.path().join("log"), root.path().join("archive"));
    build(&reference, &mut rng, ENTRY_COUNT);
    let mut log = Log::open(&reference, small_config()).unwrap();
    let base = log.archive_base();
    log.archive_before(ARCHIVE_BEFORE, &archive).unwrap();
    let base_index = log.archive_base().segment_index;
    assert_ne!(log.archive_base(), base);
    drop(log);
    let marker_bytes = fs::read(reference.join(ARCHIVE_MARKER_FILE_NAME)).unwrap();

    // One flipped bit in every byte of the marker.
    for position in 0..marker_bytes.len() {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&reference, copy.path());
        let marker = copy.path().join(ARCHIVE_MARKER_FILE_NAME);
        flip_bit(&marker, position, (position % 8) as u8);
        match Log::open(copy.path(), small_config()) {
            Err(LogError::CorruptArchiveMarker { file, reason }) => {
                assert_eq!(file, marker, "byte {position}");
                assert!(!reason.is_empty());
            }
            other => panic!("byte {position}: expected CorruptArchiveMarker, got {other:?}"),
        }
        let report = inspect(copy.path()).unwrap();
        assert!(
            matches!(report.problem, Some(LogError::CorruptArchiveMarker { .. })),
            "byte {position}: {:?}",
            report.problem
        );
    }

    // Truncated.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&reference, copy.path());
    fs::write(
        copy.path().join(ARCHIVE_MARKER_FILE_NAME),
        &marker_bytes[..40],
    )
    .unwrap();
    assert!(matches!(
        Log::open(copy.path(), small_config()),
        Err(LogError::CorruptArchiveMarker { .. })
    ));

    // Deleted: the live log starts at a segment after 0 and nothing says why.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&reference, copy.path());
    fs::remove_file(copy.path().join(ARCHIVE_MARKER_FILE_NAME)).unwrap();
    let error = Log::open(copy.path(), small_config()).unwrap_err();
    match &error {
        LogError::MissingSegment { index: 0, .. } => {}
        other => panic!("expected MissingSegment 0, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(ARCHIVE_MARKER_FILE_NAME), "{message}");
    assert!(
        message.contains(&segment_file_name(base_index)),
        "{message}"
    );
    assert!(matches!(
        inspect(copy.path()).unwrap().problem,
        Some(LogError::MissingSegment { index: 0, .. })
    ));
}

#[test]
fn marker_that_disagrees_with_the_segments_is_refused() {
    let mut rng = seeded_rng("marker_that_disagrees_with_the_segments_is_refused");
    let root = tempfile::tempdir().unwrap();
    let (reference, archive) = (root.path().join("log"), root.path().join("archive"));
    build(&reference, &mut rng, ENTRY_COUNT);
    let mut log = Log::open(&reference, small_config()).unwrap();
    log.archive_before(ARCHIVE_BEFORE, &archive).unwrap();
    let base = log.archive_base();
    drop(log);
    let first_live = reference.join(segment_file_name(base.segment_index));

    let with_marker = |marker: Vec<u8>| {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&reference, copy.path());
        fs::write(copy.path().join(ARCHIVE_MARKER_FILE_NAME), marker).unwrap();
        copy
    };
    let expect_mismatch = |copy: &Path, words: &str| {
        match Log::open(copy, small_config()) {
            Err(error @ LogError::ArchiveMarkerMismatch { .. }) => {
                let message = error.to_string();
                assert!(message.contains(words), "{message}");
                assert!(
                    message.contains(&segment_file_name(base.segment_index)),
                    "{message}"
                );
            }
            other => panic!("expected ArchiveMarkerMismatch ({words}), got {other:?}"),
        }
        assert!(matches!(
            inspect(copy).unwrap().problem,
            Some(LogError::ArchiveMarkerMismatch { .. })
        ));
    };

    // Wrong hash of the last archived entry (a marker of another log of the same shape).
    let mut other_hash = base.previous_hash;
    other_hash[0] ^= 1;
    let copy = with_marker(encode_marker(
        base.segment_index,
        base.first_sequence,
        &other_hash,
    ));
    expect_mismatch(copy.path(), "previous hash");
    // The files must be untouched: a disagreeing marker is never "repaired" by a cut.
    assert_eq!(
        fs::read(copy.path().join(segment_file_name(base.segment_index))).unwrap(),
        fs::read(&first_live).unwrap()
    );

    // Wrong first sequence for that segment.
    let copy = with_marker(encode_marker(
        base.segment_index,
        base.first_sequence + 1,
        &base.previous_hash,
    ));
    expect_mismatch(copy.path(), "starts at sequence");

    // A marker naming a later segment than is there: that segment is missing.
    let copy = with_marker(encode_marker(
        base.segment_index + 100,
        base.first_sequence + 500,
        &base.previous_hash,
    ));
    match Log::open(copy.path(), small_config()) {
        Err(error @ LogError::MissingSegment { .. }) => {
            assert!(
                error.to_string().contains(ARCHIVE_MARKER_FILE_NAME),
                "{error}"
            );
        }
        other => panic!("expected MissingSegment, got {other:?}"),
    }

    // A marker naming an earlier segment than the first live one: segments are missing.
    let copy = with_marker(encode_marker(1, 1, &base.previous_hash));
    match Log::open(copy.path(), small_config()) {
        Err(LogError::MissingSegment {
            index: 1, detail, ..
        }) => {
            assert!(detail.contains(ARCHIVE_MARKER_FILE_NAME), "{detail}");
        }
        other => panic!("expected MissingSegment 1, got {other:?}"),
    }
}

#[test]
fn every_crash_state_of_an_archive_opens() {
    let mut rng = seeded_rng("every_crash_state_of_an_archive_opens");
    let root = tempfile::tempdir().unwrap();
    let original = root.path().join("original");
    let payloads = build(&original, &mut rng, ENTRY_COUNT);
    let finished = root.path().join("finished");
    copy_dir(&original, &finished);
    let mut log = Log::open(&finished, small_config()).unwrap();
    log.archive_before(ARCHIVE_BEFORE, &root.path().join("finished-archive"))
        .unwrap();
    let base = log.archive_base();
    drop(log);
    let marker = fs::read(finished.join(ARCHIVE_MARKER_FILE_NAME)).unwrap();
    assert!(base.segment_index >= 2);

    // (state, marker written, segments moved, half-written marker present)
    let states: &[(&str, bool, u64, bool)] = &[
        ("crash while writing the marker", false, 0, true),
        ("marker in place, nothing moved", true, 0, false),
        ("marker in place, one segment moved", true, 1, false),
        (
            "marker in place, one segment moved, stale temporary",
            true,
            1,
            true,
        ),
        (
            "marker in place, all moved",
            true,
            base.segment_index,
            false,
        ),
    ];
    for &(label, marker_written, moved_count, temporary) in states {
        let state = tempfile::tempdir().unwrap();
        let (dir, archive) = (state.path().join("log"), state.path().join("archive"));
        copy_dir(&original, &dir);
        fs::create_dir_all(&archive).unwrap();
        if marker_written {
            fs::write(dir.join(ARCHIVE_MARKER_FILE_NAME), &marker).unwrap();
        }
        if temporary {
            fs::write(
                dir.join(format!("{ARCHIVE_MARKER_FILE_NAME}.tmp")),
                &marker[..33],
            )
            .unwrap();
        }
        for index in 0..moved_count {
            let name = segment_file_name(index);
            fs::rename(dir.join(&name), archive.join(&name)).unwrap();
        }

        let report = inspect(&dir).unwrap();
        assert!(report.is_healthy(), "{label}: {:?}", report.problem);
        let mut log = Log::open(&dir, small_config()).unwrap();
        let (first, left_below) = if marker_written {
            (base.first_sequence, base.segment_index - moved_count)
        } else {
            (0, 0)
        };
        assert_eq!(log.first_sequence(), first, "{label}");
        assert_eq!(log.next_sequence(), ENTRY_COUNT as u64, "{label}");
        assert_eq!(
            log.recovery().segments_below_base.len() as u64,
            left_below,
            "{label}"
        );
        assert_eq!(
            report.segments_below_base,
            log.recovery().segments_below_base
        );
        assert_eq!(
            log.recovery().removed_temporary_files.len(),
            usize::from(temporary),
            "{label}"
        );
        assert_eq!(collect(&log, first), expected(&payloads, first), "{label}");
        if first > 0 {
            assert_archived_error(&log, 0, first);
        }

        // Archiving again finishes the interrupted one.
        let again = log.archive_before(ARCHIVE_BEFORE, &archive).unwrap();
        assert_eq!(again.first_sequence, base.first_sequence, "{label}");
        assert_eq!(again.marker_written, !marker_written, "{label}");
        assert_eq!(
            again.moved_segments.len() as u64,
            base.segment_index - moved_count,
            "{label}"
        );
        log.append(b"after the crash").unwrap();
        log.commit().unwrap();
        drop(log);
        let log = Log::open(&dir, small_config()).unwrap();
        assert!(log.recovery().segments_below_base.is_empty(), "{label}");
        assert_eq!(log.first_sequence(), base.first_sequence);
        assert_eq!(
            fs::read(dir.join(ARCHIVE_MARKER_FILE_NAME)).unwrap(),
            marker,
            "{label}"
        );
        drop(log);
        let mut all = payloads.clone();
        all.push(b"after the crash".to_vec());
        assert_archive_and_live_form_one_chain(&archive, &dir, &all);
    }

    // The reverse order (segments moved before the marker) would leave this state, which
    // must be refused: it is indistinguishable from lost segments.
    let state = tempfile::tempdir().unwrap();
    copy_dir(&original, state.path());
    fs::remove_file(state.path().join(segment_file_name(0))).unwrap();
    assert!(matches!(
        Log::open(state.path(), small_config()),
        Err(LogError::MissingSegment { index: 0, .. })
    ));
}

#[test]
fn archiving_twice_moves_the_rest_and_keeps_the_chain() {
    let mut rng = seeded_rng("archiving_twice_moves_the_rest_and_keeps_the_chain");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));
    let mut payloads = build(&dir, &mut rng, ENTRY_COUNT);
    let mut log = Log::open(&dir, small_config()).unwrap();
    let first = log.archive_before(40, &archive).unwrap();
    assert!(first.marker_written && first.first_sequence > 0);

    // The same cut again moves nothing and writes no marker.
    let repeat = log.archive_before(40, &archive).unwrap();
    assert!(repeat.moved_segments.is_empty() && !repeat.marker_written);
    assert_eq!(repeat.first_sequence, first.first_sequence);

    for _ in 0..30 {
        let payload = random_payload(&mut rng, 700);
        log.append(&payload).unwrap();
        payloads.push(payload);
    }
    log.commit().unwrap();
    let cut = log.next_sequence() - 5;
    let second = log.archive_before(cut, &archive).unwrap();
    assert!(second.marker_written);
    assert!(second.first_sequence > first.first_sequence && second.first_sequence <= cut);
    assert_eq!(log.segment_count(), segment_files(&dir).len());
    assert_eq!(
        collect(&log, second.first_sequence),
        expected(&payloads, second.first_sequence)
    );
    assert_archived_error(&log, first.first_sequence, second.first_sequence);

    // Everything up to the segment being written: that one always stays.
    let everything = log.archive_before(log.next_sequence(), &archive).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(segment_files(&dir).len(), 1);
    assert_eq!(everything.first_sequence, log.first_sequence());
    drop(log);

    let log = Log::open(&dir, small_config()).unwrap();
    assert_eq!(log.next_sequence(), payloads.len() as u64);
    assert_eq!(
        collect(&log, log.first_sequence()),
        expected(&payloads, log.first_sequence())
    );
    drop(log);
    assert_archive_and_live_form_one_chain(&archive, &dir, &payloads);
}

#[test]
fn nothing_to_archive_touches_nothing() {
    let mut rng = seeded_rng("nothing_to_archive_touches_nothing");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));

    // An empty log, and a log of one segment: the segment being written never moves.
    let mut log = Log::open(&dir, small_config()).unwrap();
    let report = log.archive_before(0, &archive).unwrap();
    assert!(report.moved_segments.is_empty() && !report.marker_written);
    for _ in 0..3 {
        log.append(&random_payload(&mut rng, 100)).unwrap();
    }
    log.commit().unwrap();
    let before = dir_bytes(&dir);
    let report = log.archive_before(3, &archive).unwrap();
    assert!(report.moved_segments.is_empty() && !report.marker_written);
    assert_eq!(report.first_sequence, 0);
    assert_eq!(log.first_sequence(), 0);
    assert!(!archive.exists(), "nothing to archive creates nothing");
    assert_eq!(dir_bytes(&dir), before);

    // A cut beyond the end is the caller's mistake.
    assert!(matches!(
        log.archive_before(4, &archive),
        Err(LogError::SequenceBeyondEnd {
            from: 4,
            next_sequence: 3
        })
    ));
    assert_eq!(collect(&log, 0).len(), 3);
}

#[test]
fn occupied_archive_directory_is_refused_before_anything_changes() {
    let mut rng = seeded_rng("occupied_archive_directory_is_refused_before_anything_changes");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));
    let payloads = build(&dir, &mut rng, ENTRY_COUNT);
    fs::create_dir_all(&archive).unwrap();
    fs::write(archive.join(segment_file_name(1)), b"another log's segment").unwrap();
    assert!(segment_start_of(&dir, ARCHIVE_BEFORE).0 >= 2);
    let before = dir_bytes(&dir);

    let mut log = Log::open(&dir, small_config()).unwrap();
    match log.archive_before(ARCHIVE_BEFORE, &archive) {
        Err(error @ LogError::ArchiveFailed { .. }) => {
            assert!(error.to_string().contains("already archived"), "{error}");
        }
        other => panic!("expected ArchiveFailed, got {other:?}"),
    }
    assert!(log.poisoned().is_none());
    assert_eq!(log.first_sequence(), 0);
    assert_eq!(dir_bytes(&dir), before, "the live log is unchanged");
    assert_eq!(
        fs::read(archive.join(segment_file_name(1))).unwrap(),
        b"another log's segment"
    );
    assert_eq!(collect(&log, 0), expected(&payloads, 0));

    // A cleared archive directory then works.
    fs::remove_file(archive.join(segment_file_name(1))).unwrap();
    let report = log.archive_before(ARCHIVE_BEFORE, &archive).unwrap();
    assert!(report.marker_written);
}

#[test]
fn torn_first_live_entry_is_cut_and_the_chain_resumes_at_the_marker() {
    let mut rng = seeded_rng("torn_first_live_entry_is_cut_and_the_chain_resumes_at_the_marker");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));
    let mut log = Log::open(&dir, small_config()).unwrap();
    let mut payloads = Vec::new();
    // Append until a rollover: the segment being written then holds exactly one entry.
    while log.segment_count() < 3 {
        let payload = random_payload(&mut rng, 700);
        log.append(&payload).unwrap();
        payloads.push(payload);
    }
    log.commit().unwrap();
    let last = log.next_sequence() - 1;
    let report = log.archive_before(log.next_sequence(), &archive).unwrap();
    assert_eq!(report.first_sequence, last);
    let base = log.archive_base();
    drop(log);

    // Tear the only live entry (a write that stopped after 16 bytes: the rest reads as the
    // zeros that were there): it is a torn tail, cut, and appends link to the marker.
    let spans = entry_spans(&dir);
    assert_eq!(spans.len(), 1);
    overwrite(&spans[0].file, spans[0].offset + 16, &[], usize::MAX);
    let mut log = Log::open(&dir, small_config()).unwrap();
    assert!(matches!(
        log.recovery().tail,
        tally_engine::log::TailState::Torn { sequence, .. } if sequence == last
    ));
    assert_eq!(log.first_sequence(), last);
    assert_eq!(log.next_sequence(), last);
    assert_eq!(log.last_entry_hash(), base.previous_hash);
    assert!(collect(&log, last).is_empty());
    // The first live segment is empty and is the one being written: nothing to archive.
    let nothing = log.archive_before(last, &archive).unwrap();
    assert!(nothing.moved_segments.is_empty() && !nothing.marker_written);
    payloads.truncate(last as usize);
    for _ in 0..3 {
        let payload = random_payload(&mut rng, 700);
        log.append(&payload).unwrap();
        payloads.push(payload);
    }
    log.commit().unwrap();
    drop(log);
    let log = Log::open(&dir, small_config()).unwrap();
    assert_eq!(collect(&log, last), expected(&payloads, last));
    drop(log);
    assert!(inspect(&dir).unwrap().archive_link_verified);
    assert_archive_and_live_form_one_chain(&archive, &dir, &payloads);
}

/// Fails every directory fsync once switched on; everything else is the real system.
#[derive(Debug, Default)]
struct FailingDirectorySync {
    fail: std::sync::atomic::AtomicBool,
}

impl tally_engine::log::FileOps for FailingDirectorySync {
    fn sync_dir(&self, path: &Path, dir: &std::fs::File) -> std::io::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("injected directory fsync failure"));
        }
        tally_engine::log::OsFileOps.sync_dir(path, dir)
    }
}

#[test]
fn failed_directory_fsync_while_archiving_poisons_and_the_log_reopens() {
    let mut rng = seeded_rng("failed_directory_fsync_while_archiving_poisons_and_the_log_reopens");
    let root = tempfile::tempdir().unwrap();
    let (dir, archive) = (root.path().join("log"), root.path().join("archive"));
    let payloads = build(&dir, &mut rng, ENTRY_COUNT);
    let faults = std::sync::Arc::new(FailingDirectorySync::default());
    let mut log = Log::open_with(&dir, small_config(), faults.clone()).unwrap();
    faults.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    match log.archive_before(ARCHIVE_BEFORE, &archive) {
        Err(error @ LogError::Flush { .. }) => {
            assert!(error.to_string().contains("poisoned"), "{error}");
        }
        other => panic!("expected Flush, got {other:?}"),
    }
    assert!(log.poisoned().is_some());
    assert!(matches!(log.append(b"x"), Err(LogError::Poisoned { .. })));
    drop(log);

    // Whatever reached the disk is a valid state: the restart opens and replays.
    let log = Log::open(&dir, small_config()).unwrap();
    let first = log.first_sequence();
    assert!(first <= ARCHIVE_BEFORE);
    assert_eq!(collect(&log, first), expected(&payloads, first));
}
