//! Recovery from torn tails: every cut inside the last two entries, random garbage after a
//! cut, and truncated files. Recovery must keep the longest valid prefix, be idempotent
//! (a second open finds the same bytes) and let appends resume. And the other side of the
//! line: a damaged byte anywhere in the last, wholly written entry (its trailer shows it was
//! written) is corruption, refused with `DamagedEntry`, never cut as a tear.
//!
//! Randomised parts print their seed; re-run with `TALLY_LOG_SEED=<seed>`.

mod log_support;

use std::fs::{self, OpenOptions};
use std::path::Path;

use log_support::*;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use tally_engine::log::{
    inspect, Log, LogError, TailState, WholeEntryEvidence, FORMAT_VERSION, SEGMENT_HEADER_BYTES,
};

/// A reference log and what it must replay to.
struct Reference {
    dir: tempfile::TempDir,
    payloads: Vec<Vec<u8>>,
    /// `hashes[k]` is `last_entry_hash()` after `k` entries (`hashes[0]` is genesis).
    hashes: Vec<[u8; 32]>,
}

/// Two reference logs: the last two entries in one segment, and straddling a rollover.
fn build_references(rng: &mut ChaCha8Rng) -> (Reference, Reference) {
    let config = small_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config).expect("open");
    let mut payloads = Vec::new();
    let mut hashes = vec![log.last_entry_hash()];
    let append = |log: &mut Log,
                  payloads: &mut Vec<Vec<u8>>,
                  hashes: &mut Vec<[u8; 32]>,
                  payload: Vec<u8>| {
        log.append(&payload).expect("append");
        payloads.push(payload);
        hashes.push(log.last_entry_hash());
    };
    // Fill two segments, then stop right after the entry that starts the third one.
    while log.segment_count() < 3 {
        let payload = random_payload(rng, 400);
        append(&mut log, &mut payloads, &mut hashes, payload);
        if rng.random_range(0..4) == 0 {
            log.commit().expect("commit");
        }
    }
    log.commit().expect("commit");
    drop(log);
    let straddling = Reference {
        dir: tempfile::tempdir().expect("tempdir"),
        payloads: payloads.clone(),
        hashes: hashes.clone(),
    };
    copy_dir(dir.path(), straddling.dir.path());

    let mut log = Log::open(dir.path(), config).expect("reopen");
    let payload = random_payload(rng, 400);
    append(&mut log, &mut payloads, &mut hashes, payload);
    log.commit().expect("commit");
    drop(log);
    let spans = entry_spans(dir.path());
    assert_eq!(spans.len(), payloads.len());
    let last_two = &spans[spans.len() - 2..];
    assert_eq!(last_two[0].file, last_two[1].file, "one segment holds both");
    let straddle_spans = entry_spans(straddling.dir.path());
    let straddle_two = &straddle_spans[straddle_spans.len() - 2..];
    assert_ne!(
        straddle_two[0].file, straddle_two[1].file,
        "a rollover separates them"
    );
    let same_segment = Reference {
        dir,
        payloads,
        hashes,
    };
    (same_segment, straddling)
}

/// Damages a copy of the reference at `file`/`offset`: writes `garbage` there, zeroes the
/// rest of that segment and the entries of every later segment (the log's byte order).
fn damage(copy: &Path, file_name: &std::ffi::OsStr, offset: usize, garbage: &[u8]) {
    let files = segment_files(copy);
    let position = files
        .iter()
        .position(|file| file.file_name() == Some(file_name))
        .expect("segment in copy");
    overwrite(&files[position], offset, garbage, usize::MAX);
    for later in &files[position + 1..] {
        overwrite(later, SEGMENT_HEADER_BYTES, &[], usize::MAX);
    }
}

/// Entries whose stored bytes are untouched by the damage, counted as a prefix.
fn intact_prefix(reference: &Path, damaged: &Path) -> usize {
    let spans = entry_spans(reference);
    let mut intact = 0;
    for span in &spans {
        let original = fs::read(&span.file).expect("read reference");
        let copy_file = damaged.join(span.file.file_name().unwrap());
        let Ok(now) = fs::read(copy_file) else { break };
        if now.get(span.offset..span.end) != Some(&original[span.offset..span.end]) {
            break;
        }
        intact += 1;
    }
    intact
}

/// Opens the damaged copy and checks every recovery promise; `context` names the case.
fn check_recovery(reference: &Reference, damaged: &Path, context: &str) {
    let expected = intact_prefix(reference.dir.path(), damaged);
    let config = small_config();

    // inspect only reads: same bytes before and after, and no problem to refuse.
    let before_inspect = dir_bytes(damaged);
    let report = inspect(damaged).expect("inspect");
    assert!(report.problem.is_none(), "{context}: {:?}", report.problem);
    assert_eq!(
        report.next_sequence, expected as u64,
        "{context}: inspect count"
    );
    assert_eq!(
        dir_bytes(damaged),
        before_inspect,
        "{context}: inspect modified files"
    );

    let log = Log::open(damaged, config).unwrap_or_else(|e| panic!("{context}: open: {e}"));
    assert_eq!(
        log.next_sequence(),
        expected as u64,
        "{context}: longest valid prefix"
    );
    assert_eq!(
        log.last_entry_hash(),
        reference.hashes[expected],
        "{context}: chain head"
    );
    let mut replayed = Vec::new();
    log.replay(0, |sequence, payload| {
        assert_eq!(sequence as usize, replayed.len());
        replayed.push(payload.to_vec());
        Ok::<(), ()>(())
    })
    .expect("replay");
    assert_eq!(
        replayed[..],
        reference.payloads[..expected],
        "{context}: payloads"
    );
    drop(log);

    // Idempotent: the second open finds a clean tail and leaves the same bytes.
    let after_first = dir_bytes(damaged);
    let log = Log::open(damaged, config).expect("second open");
    assert_eq!(
        log.recovery().tail,
        TailState::Clean,
        "{context}: second open"
    );
    drop(log);
    assert_eq!(
        dir_bytes(damaged),
        after_first,
        "{context}: second open changed bytes"
    );

    // Appends resume right after the prefix and survive a reopen.
    let mut log = Log::open(damaged, config).expect("third open");
    let resumed = b"resumed after recovery".to_vec();
    assert_eq!(log.append(&resumed).expect("append"), expected as u64);
    assert_eq!(log.commit().expect("commit"), expected as u64 + 1);
    drop(log);
    let log = Log::open(damaged, config).expect("fourth open");
    assert_eq!(
        log.next_sequence(),
        expected as u64 + 1,
        "{context}: resumed"
    );
    let mut last = Vec::new();
    log.replay(expected as u64, |_, payload| {
        last = payload.to_vec();
        Ok::<(), ()>(())
    })
    .expect("replay resumed");
    assert_eq!(last, resumed, "{context}: resumed payload");
}

fn cut_every_offset(reference: &Reference, label: &str) {
    let spans = entry_spans(reference.dir.path());
    let last_two = &spans[spans.len() - 2..];
    let mut cases = 0;
    for span in last_two {
        let file_name = span.file.file_name().unwrap();
        for offset in span.offset..span.end {
            let copy = tempfile::tempdir().expect("tempdir");
            copy_dir(reference.dir.path(), copy.path());
            damage(copy.path(), file_name, offset, &[]);
            check_recovery(
                reference,
                copy.path(),
                &format!("{label} zero cut at {offset}"),
            );
            cases += 1;
        }
    }
    println!("{label}: {cases} cuts recovered");
}

#[test]
fn cut_at_every_byte_of_the_last_two_entries() {
    let mut rng = seeded_rng("cut_at_every_byte_of_the_last_two_entries");
    let (same_segment, straddling) = build_references(&mut rng);
    cut_every_offset(&same_segment, "same segment");
    cut_every_offset(&straddling, "across rollover");
}

#[test]
fn garbage_after_random_cuts() {
    let mut rng = seeded_rng("garbage_after_random_cuts");
    let (same_segment, straddling) = build_references(&mut rng);
    for (reference, label) in [
        (&same_segment, "same segment"),
        (&straddling, "across rollover"),
    ] {
        let spans = entry_spans(reference.dir.path());
        let tail = &spans[spans.len() - 4..];
        let mut refused = 0;
        for case in 0..120 {
            let span = &tail[rng.random_range(0..tail.len())];
            let offset = rng.random_range(span.offset..span.end + 64);
            let mut garbage = vec![0u8; rng.random_range(1..=600)];
            rng.fill(&mut garbage[..]);
            let copy = tempfile::tempdir().expect("tempdir");
            copy_dir(reference.dir.path(), copy.path());
            damage(
                copy.path(),
                span.file.file_name().unwrap(),
                offset,
                &garbage,
            );
            let context = format!(
                "{label} case {case}: {} garbage bytes at {offset}",
                garbage.len()
            );
            // Garbage that starts in the trailer of an entry whose header and payload are
            // intact is not what a torn write leaves (the rest of the entry was written, and
            // the trailer is known exactly): that entry is refused, not cut.
            match trailer_damaged_after_intact_body(reference.dir.path(), copy.path()) {
                Some((sequence, span)) => {
                    refused += 1;
                    match Log::open(copy.path(), small_config()) {
                        Err(LogError::DamagedEntry {
                            offset,
                            sequence: reported,
                            evidence: WholeEntryEvidence::DamagedTrailer { trailer_offset },
                            ..
                        }) => {
                            assert_eq!(offset as usize, span.offset, "{context}");
                            assert_eq!(reported as usize, sequence, "{context}");
                            assert_eq!(trailer_offset as usize, span.trailer_start, "{context}");
                        }
                        other => panic!("{context}: expected DamagedEntry, got {other:?}"),
                    }
                }
                None => check_recovery(reference, copy.path(), &context),
            }
        }
        println!(
            "{label}: {refused} of 120 cases damaged a whole entry's trailer and were refused"
        );
    }
}

#[test]
fn truncated_last_segment_is_extended_and_cut() {
    let mut rng = seeded_rng("truncated_last_segment_is_extended_and_cut");
    let (same_segment, _) = build_references(&mut rng);
    let spans = entry_spans(same_segment.dir.path());
    let last = spans.last().unwrap();
    for offset in [last.offset, last.offset + 1, last.payload_end - 1, last.end] {
        let copy = tempfile::tempdir().expect("tempdir");
        copy_dir(same_segment.dir.path(), copy.path());
        let file = copy.path().join(last.file.file_name().unwrap());
        OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(offset as u64))
            .expect("truncate");
        let log = Log::open(copy.path(), small_config()).expect("open truncated");
        assert_eq!(
            log.recovery().extended_segment.as_deref(),
            Some(file.as_path())
        );
        let expected = if offset == last.end {
            spans.len()
        } else {
            spans.len() - 1
        };
        assert_eq!(
            log.next_sequence(),
            expected as u64,
            "truncated at {offset}"
        );
        drop(log);
        assert_eq!(
            fs::metadata(&file).unwrap().len(),
            small_config().segment_bytes,
            "extended back"
        );
        check_recovery(
            &same_segment,
            copy.path(),
            &format!("truncated at {offset}"),
        );
    }
}

/// The first entry of `damaged` that differs from the reference, when its header, payload
/// and padding are intact and its trailer is neither intact nor a prefix of it followed by
/// zeros (what a torn write leaves): with its sequence and place.
fn trailer_damaged_after_intact_body(
    reference: &Path,
    damaged: &Path,
) -> Option<(usize, EntrySpan)> {
    let sequence = intact_prefix(reference, damaged);
    let span = entry_spans(reference).get(sequence)?.clone();
    let original = fs::read(&span.file).expect("read reference");
    let now = fs::read(damaged.join(span.file.file_name().unwrap())).ok()?;
    if now[span.offset..span.trailer_start] != original[span.offset..span.trailer_start] {
        return None;
    }
    let found = &now[span.trailer_start..span.end];
    let expected = &original[span.trailer_start..span.end];
    let written = found
        .iter()
        .zip(expected)
        .take_while(|(found, expected)| found == expected)
        .count();
    if found[written..].iter().all(|&byte| byte == 0) {
        None
    } else {
        Some((sequence, span))
    }
}

/// A byte flipped anywhere in the last entry, which was wholly written (and so may have been
/// acknowledged): header, payload, padding or trailer. `open` refuses with `DamagedEntry`
/// naming the file, offset and sequence, touches no file, and `inspect` reports the same;
/// the trailer (or, for a flip inside the trailer, the intact header and payload) is what
/// shows the entry was written. Both for an entry in the middle of a segment and for the
/// first entry of a fresh segment.
#[test]
fn a_flipped_byte_anywhere_in_the_last_whole_entry_is_refused_not_cut() {
    let mut rng = seeded_rng("a_flipped_byte_anywhere_in_the_last_whole_entry_is_refused_not_cut");
    let (same_segment, straddling) = build_references(&mut rng);
    for (reference, label) in [
        (&same_segment, "same segment"),
        (&straddling, "first entry of a segment"),
    ] {
        let spans = entry_spans(reference.dir.path());
        let last = spans.last().unwrap();
        let sequence = spans.len() - 1;
        let written_hash = stored_entry_hash(last);
        let mut regions = [0usize; 4];
        for position in last.offset..last.end {
            let copy = tempfile::tempdir().expect("tempdir");
            copy_dir(reference.dir.path(), copy.path());
            let file = copy.path().join(last.file.file_name().unwrap());
            let mut bytes = fs::read(&file).unwrap();
            // A flip that never leaves a zero byte, which in the trailer's last byte would
            // read as a write that stopped one byte early.
            bytes[position] ^= if bytes[position] == 0xa5 { 0x5a } else { 0xa5 };
            fs::write(&file, bytes).unwrap();
            let region = if position < last.offset + 80 {
                0
            } else if position < last.payload_end {
                1
            } else if position < last.trailer_start {
                2
            } else {
                3
            };
            regions[region] += 1;
            let context = format!("{label}: byte {position} (region {region})");
            let before = dir_bytes(copy.path());
            let error = Log::open(copy.path(), small_config())
                .map(|_| ())
                .expect_err(&context);
            let message = error.to_string();
            match error {
                LogError::DamagedEntry {
                    file: reported_file,
                    offset,
                    sequence: reported,
                    evidence,
                    ..
                } => {
                    assert_eq!(reported_file, file, "{context}");
                    assert_eq!(offset as usize, last.offset, "{context}");
                    assert_eq!(reported as usize, sequence, "{context}");
                    match evidence {
                        WholeEntryEvidence::DamagedTrailer { trailer_offset } => {
                            assert_eq!(region, 3, "{context}");
                            assert_eq!(trailer_offset as usize, last.trailer_start, "{context}");
                        }
                        WholeEntryEvidence::IntactTrailer {
                            trailer_offset,
                            entry_hash,
                        } => {
                            assert_ne!(region, 3, "{context}");
                            assert_eq!(trailer_offset as usize, last.trailer_start, "{context}");
                            assert_eq!(entry_hash, written_hash, "{context}");
                        }
                    }
                }
                other => panic!("{context}: expected DamagedEntry, got {other:?}"),
            }
            assert!(
                message.contains("not a torn tail") && message.contains("docs/OPERATIONS.md"),
                "{context}: {message}"
            );
            assert_eq!(
                dir_bytes(copy.path()),
                before,
                "{context}: open must not touch files"
            );
            let report = inspect(copy.path()).expect("inspect");
            assert!(
                matches!(
                    report.problem,
                    Some(LogError::DamagedEntry { sequence: s, .. }) if s as usize == sequence
                ),
                "{context}: inspect reported {:?}",
                report.problem
            );
            assert_eq!(report.next_sequence as usize, sequence, "{context}");
        }
        // Payload and padding lengths are random (either may be empty); header and trailer
        // are always there.
        assert_eq!(regions[0], 80, "{label}: {regions:?}");
        assert_eq!(regions[3], 56, "{label}: {regions:?}");
        println!("{label}: {regions:?} flips (header, payload, padding, trailer) refused");
    }
}

/// A log of format version 1 (entries without a trailer) is refused with an error that names
/// the file and the version, never read as damage or cut.
#[test]
fn a_log_of_another_format_version_is_refused_naming_the_version() {
    let mut rng = seeded_rng("a_log_of_another_format_version_is_refused_naming_the_version");
    let (same_segment, _) = build_references(&mut rng);
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(same_segment.dir.path(), copy.path());
    let first = segment_files(copy.path())[0].clone();
    let mut bytes = fs::read(&first).unwrap();
    // The segment header as a version 1 log wrote it (docs/STORAGE.md).
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let mut hasher = blake3::Hasher::new_derive_key("tally 2026-11 log segment header v1");
    hasher.update(&bytes[0..56]);
    let checksum = hasher.finalize();
    bytes[56..64].copy_from_slice(&checksum.as_bytes()[0..8]);
    fs::write(&first, bytes).unwrap();
    let before = dir_bytes(copy.path());
    match Log::open(copy.path(), small_config()) {
        Err(error @ LogError::UnsupportedFormatVersion { .. }) => {
            let LogError::UnsupportedFormatVersion { file, version } = &error else {
                unreachable!()
            };
            assert_eq!((file, *version), (&first, 1));
            let message = error.to_string();
            assert!(
                message.contains("format version 1")
                    && message.contains(&format!("reads version {FORMAT_VERSION} only")),
                "{message}"
            );
        }
        other => panic!("expected UnsupportedFormatVersion, got {other:?}"),
    }
    assert_eq!(dir_bytes(copy.path()), before, "nothing changed");
}

/// A validator's open (`open_repairing`) cuts a damaged last entry instead of refusing it,
/// keeps its bytes aside (durable) and reports it as awaiting repair until the log holds
/// that sequence again; damage with a valid entry after it is still refused.
#[test]
fn open_repairing_cuts_a_damaged_last_entry_keeps_it_and_reports_it_until_replaced() {
    let mut rng = seeded_rng("open_repairing_cuts_a_damaged_last_entry");
    let (same_segment, _) = build_references(&mut rng);
    let spans = entry_spans(same_segment.dir.path());
    let last = spans.last().unwrap().clone();
    let sequence = spans.len() as u64 - 1;
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(same_segment.dir.path(), copy.path());
    let file = copy.path().join(last.file.file_name().unwrap());
    let original = fs::read(&file).unwrap();
    flip_bit(&file, last.offset + 90, 3);
    let ops = std::sync::Arc::new(tally_engine::log::OsFileOps);
    let log = Log::open_repairing(copy.path(), small_config(), ops.clone()).expect("repair");
    let cut = log.recovery().cut_damaged_entry.clone().expect("cut");
    assert_eq!((cut.sequence, cut.offset as usize), (sequence, last.offset));
    assert_eq!(cut.file, file);
    assert_eq!(log.recovery().awaiting_repair, vec![sequence]);
    assert_eq!(log.next_sequence(), sequence);
    assert_eq!(
        log.last_entry_hash(),
        same_segment.hashes[sequence as usize]
    );
    let kept = fs::read(&cut.kept_in).unwrap();
    assert_eq!(
        kept.len(),
        last.end - last.offset,
        "the whole entry is kept"
    );
    assert_ne!(kept[..], original[last.offset..last.end]);
    drop(log);
    // A crash before the block is back: the next open still knows the repair is pending.
    let mut log = Log::open(copy.path(), small_config()).expect("plain open after the cut");
    assert_eq!(log.recovery().tail, TailState::Clean);
    assert_eq!(log.recovery().awaiting_repair, vec![sequence]);
    // The block taken again (here: the same payload) ends the repair.
    log.append(same_segment.payloads.last().unwrap()).unwrap();
    log.commit().unwrap();
    assert_eq!(log.last_entry_hash(), *same_segment.hashes.last().unwrap());
    drop(log);
    let log = Log::open(copy.path(), small_config()).expect("open after the repair");
    assert!(log.recovery().awaiting_repair.is_empty());
    drop(log);

    // Damage in the middle (a valid entry follows) is refused by a repairing open too.
    let middle = tempfile::tempdir().expect("tempdir");
    copy_dir(same_segment.dir.path(), middle.path());
    let span = &spans[spans.len() - 2];
    flip_bit(
        &middle.path().join(span.file.file_name().unwrap()),
        span.offset + 90,
        3,
    );
    let before = dir_bytes(middle.path());
    assert!(matches!(
        Log::open_repairing(middle.path(), small_config(), ops),
        Err(LogError::CorruptEntry { .. })
    ));
    assert_eq!(dir_bytes(middle.path()), before);
}
