//! The reports of a run: JSON, HdrHistogram interval log, HTML with plots, and recorded
//! workloads that replay byte for byte.

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::time::Duration;
use tally_loadgen::recording::{self, RecordingError};
use tally_loadgen::report::write_all;
use tally_loadgen::session::{run_loadgen, LoadgenError, LoadgenOptions};
use tally_loadgen::{Pacing, WorkloadName};

fn options(workload: WorkloadName) -> LoadgenOptions {
    LoadgenOptions {
        workload,
        seed: 3,
        banks: 4,
        invalid_pct: 5,
        pacing: Pacing::Poisson {
            rate_per_s: 1_500.0,
            seed: 3,
        },
        duration: Duration::from_millis(2_500),
        ..LoadgenOptions::default()
    }
}

#[test]
fn a_run_writes_summary_json_hdr_log_and_html_that_agree() {
    let out = tempfile::tempdir().unwrap();
    let outcome = run_loadgen(&LoadgenOptions {
        out_dir: Some(out.path().to_path_buf()),
        ..options(WorkloadName::Vat)
    })
    .unwrap();
    let result = &outcome.result;
    assert!(result.stopped.is_none());
    assert!(result.acknowledged > 2_000, "{}", result.acknowledged);
    assert_eq!(result.acknowledged, result.sent);
    let written = outcome.written.as_ref().expect("reports written");

    // JSON: the figures of the run, the timeline, the result codes.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written.json).unwrap()).unwrap();
    assert_eq!(json["workload"], "vat");
    assert_eq!(json["acknowledged"].as_u64(), Some(result.acknowledged));
    assert_eq!(json["sent"].as_u64(), Some(result.sent));
    assert_eq!(json["offered_rate_per_s"].as_f64(), Some(1_500.0));
    let results = json["results"].as_object().unwrap();
    let total: u64 = results.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, result.acknowledged);
    assert!(results["ok"].as_u64().unwrap() > 0);
    assert!(
        results.contains_key("bad_signature"),
        "5% invalid: {results:?}"
    );
    let timeline = json["timeline"].as_array().unwrap();
    assert!(
        timeline.len() >= 2,
        "a 2.5 s run has at least 2 one-second intervals"
    );
    let timeline_acks: u64 = timeline
        .iter()
        .map(|i| i["acknowledged"].as_u64().unwrap())
        .sum();
    assert_eq!(timeline_acks, result.acknowledged);
    assert!(
        json["latency_ms"]["p99"].as_f64().unwrap() >= json["latency_ms"]["p50"].as_f64().unwrap()
    );
    // The ok share over the run and per interval, against the workload's promise: 5%
    // deliberately invalid, everything else settles.
    let ok_share = json["ok_share"].as_f64().unwrap();
    let promised = json["ok_share_promised"].as_f64().unwrap();
    assert!(
        (promised - WorkloadName::Vat.ok_share_min(5)).abs() < 1e-9,
        "{promised}"
    );
    assert!((0.93..0.97).contains(&ok_share), "{ok_share}");
    assert_eq!(json["ok_share_below_promise"], false);
    assert!(timeline
        .iter()
        .all(|i| i["ok_share"].as_f64().unwrap() > 0.85));
    let summary = std::fs::read_to_string(&written.summary).unwrap();
    assert!(summary.contains("ok share: "), "{summary}");
    assert!(!summary.contains("WARNING"), "{summary}");

    // HdrHistogram log: one histogram per interval, together holding every latency.
    let log = std::fs::read(&written.hdr_log).unwrap();
    let mut deserializer = Deserializer::new();
    let mut intervals = 0;
    let mut merged = Histogram::<u64>::new(3).unwrap();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(interval) = entry.unwrap() {
            let bytes = base64_decode(interval.encoded_histogram());
            let histogram: Histogram<u64> = deserializer.deserialize(&mut &bytes[..]).unwrap();
            merged.add(&histogram).unwrap();
            intervals += 1;
        }
    }
    assert_eq!(intervals, timeline.len());
    assert_eq!(merged.len(), result.latency_us.len());
    assert_eq!(merged.max(), result.latency_us.max());

    // HTML: a complete page with the four plots drawn (lines and bars in inline SVG).
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for id in [
        "throughput",
        "latency-over-time",
        "latency-percentiles",
        "ok-share",
        "results",
    ] {
        let start = html
            .find(&format!("<figure id=\"{id}\">"))
            .unwrap_or_else(|| panic!("{id}"));
        let figure = &html[start..start + html[start..].find("</figure>").unwrap()];
        assert!(figure.contains("<svg"), "{id} has an SVG plot");
        let marks = if id == "results" {
            "<rect"
        } else {
            "<polyline"
        };
        assert!(figure.contains(marks), "{id} draws its data");
    }
    assert!(html.contains("bad_signature"));
    assert!(html.contains(&format!("<td>{}</td>", result.acknowledged)));

    // The text summary names the throughput and the codes.
    let summary = std::fs::read_to_string(&written.summary).unwrap();
    assert!(summary.contains("throughput:") && summary.contains("bad_signature"));

    // Rewriting into another directory gives the same JSON (the report is a function of the
    // run).
    let again = tempfile::tempdir().unwrap();
    let rewritten = write_all(again.path(), "vat", result).unwrap();
    assert_eq!(
        std::fs::read_to_string(rewritten.json).unwrap(),
        std::fs::read_to_string(&written.json).unwrap()
    );
}

/// Standard base64 (the interval log's encoding), decoded by hand to keep the test free of
/// another dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[test]
fn a_recorded_workload_replays_byte_for_byte_and_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vat.tlw");
    // Closed loop over a fixed count, so both runs send every transaction.
    let options = |workload| LoadgenOptions {
        pacing: Pacing::Closed {
            in_flight_tx_max: 4_096,
        },
        closed_loop_tx_count: 3_000,
        duration: Duration::from_secs(120),
        ..options(workload)
    };
    let recorded = run_loadgen(&LoadgenOptions {
        record: Some(file.clone()),
        ..options(WorkloadName::Vat)
    })
    .unwrap();
    let recording = recording::read(&file).unwrap();
    assert_eq!(recording.workload, "vat");
    assert_eq!(recording.records.len(), recorded.signed_tx_count);

    // Replaying gives the same transactions, hence the same result codes (retail payments
    // do not queue, so the codes do not depend on block boundaries).
    let replayed = run_loadgen(&LoadgenOptions {
        replay: Some(file.clone()),
        ..options(WorkloadName::Vat)
    })
    .unwrap();
    assert_eq!(replayed.signed_tx_count, recorded.signed_tx_count);
    assert_eq!(replayed.result.sent, 3_000);
    assert_eq!(recorded.result.sent, 3_000);
    assert_eq!(replayed.result.counts, recorded.result.counts);

    // Another population (seed) did not sign these: refused before anything is sent.
    let error = run_loadgen(&LoadgenOptions {
        replay: Some(file.clone()),
        seed: 4,
        ..options(WorkloadName::Vat)
    })
    .err()
    .expect("genesis mismatch");
    assert!(
        matches!(error, LoadgenError::GenesisMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--seed"));

    // A flipped byte, a cut file and a foreign file each get their own error.
    let bytes = std::fs::read(&file).unwrap();
    let damaged = dir.path().join("damaged.tlw");
    let mut flipped = bytes.clone();
    flipped[200] ^= 1;
    std::fs::write(&damaged, &flipped).unwrap();
    assert!(matches!(
        recording::read(&damaged),
        Err(RecordingError::BadChecksum { .. })
    ));
    std::fs::write(&damaged, &bytes[..bytes.len() - 100]).unwrap();
    let error = recording::read(&damaged).unwrap_err();
    assert!(matches!(error, RecordingError::WrongSize { .. }), "{error}");
    assert!(error.to_string().contains("truncated"));
    std::fs::write(&damaged, b"not a recording at all").unwrap();
    assert!(matches!(
        recording::read(&damaged),
        Err(RecordingError::NotARecording { .. })
    ));
}
