//! What a run measured, in the forms load testers use: a text summary, JSON, an HdrHistogram
//! interval log (readable by HdrHistogram's own tools) and an HTML page with plots
//! ([`crate::html`]).

use crate::driver::RunResult;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tally_protocol::result::ResultCode;

/// Acknowledgements counted by result code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_code: BTreeMap<ResultCode, u64>,
}

impl Counts {
    pub fn add(&mut self, code: ResultCode) {
        *self.by_code.entry(code).or_insert(0) += 1;
    }

    pub fn total(&self) -> u64 {
        self.by_code.values().sum()
    }

    pub fn get(&self, code: ResultCode) -> u64 {
        self.by_code.get(&code).copied().unwrap_or(0)
    }

    /// Counts by code name, for JSON.
    pub fn by_name(&self) -> BTreeMap<String, u64> {
        self.by_code
            .iter()
            .map(|(code, count)| (code.name().to_string(), *count))
            .collect()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencyMs {
    /// Latencies recorded (warm-up excluded).
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl LatencyMs {
    pub fn of(histogram: &Histogram<u64>) -> LatencyMs {
        let ms = |us: u64| us as f64 / 1e3;
        LatencyMs {
            count: histogram.len(),
            mean: histogram.mean() / 1e3,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            p99_99: ms(histogram.value_at_quantile(0.9999)),
            max: ms(histogram.max()),
        }
    }
}

/// One timeline interval, for JSON and plots.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalReport {
    pub start_s: f64,
    /// The interval's length; the last one ends with the run's last acknowledgement.
    pub length_s: f64,
    pub acknowledged: u64,
    pub throughput_per_s: f64,
    pub latency_ms: LatencyMs,
    pub results: BTreeMap<String, u64>,
    /// Share of this interval's acknowledgements that are `ok`.
    pub ok_share: f64,
}

/// What one node took and answered.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub sent: u64,
    pub acknowledged: u64,
    pub ok: u64,
    /// Share of the run's acknowledgements this node gave.
    pub share: f64,
    pub latency_ms: LatencyMs,
}

/// Everything a run measured, as written to JSON and drawn in HTML.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Format version of this JSON.
    pub report_version: u32,
    pub workload: String,
    pub target: String,
    pub pacing: String,
    /// Offered open-loop rate; `None` for closed loop.
    pub offered_rate_per_s: Option<f64>,
    pub warmup_s: f64,
    pub sent: u64,
    pub acknowledged: u64,
    pub busy_answers: u64,
    pub elapsed_s: f64,
    pub throughput_per_s: f64,
    pub latency_ms: LatencyMs,
    /// Latency (ms) at the percentiles of the HdrHistogram percentile plot.
    pub latency_distribution: Vec<(f64, f64)>,
    pub results: BTreeMap<String, u64>,
    pub timeline: Vec<IntervalReport>,
    pub stopped: Option<String>,
    /// Share of acknowledgements that are `ok`.
    pub ok_share: f64,
    /// The least `ok` share the workload promises (none for a replayed recording).
    pub ok_share_promised: Option<f64>,
    /// The `ok` share fell below the promise: accounts ran dry or payments were refused
    /// that the workload meant to settle.
    pub ok_share_below_promise: bool,
    /// Each node's acknowledgements and latency (a record sent again after its node was
    /// lost counts with the node that first took it).
    pub nodes: Vec<NodeReport>,
    /// Records sent again to another node after theirs was lost.
    pub failed_over: u64,
    /// Nodes lost during the run: "address: why", in order.
    pub lost: Vec<String>,
    /// Seconds the sender waited for records that were due but not yet signed.
    pub signing_stalled_s: f64,
    /// The load generator's own signing held sending back for more than 1% of the run: the
    /// figures are its limit, not the target's.
    pub signing_limited: bool,
}

impl Report {
    pub fn new(workload: &str, result: &RunResult) -> Report {
        Report {
            report_version: 2,
            workload: workload.to_string(),
            target: result.target.clone(),
            pacing: result.pacing.to_string(),
            offered_rate_per_s: result.pacing.rate_per_s(),
            warmup_s: result.warmup.as_secs_f64(),
            sent: result.sent,
            acknowledged: result.acknowledged,
            busy_answers: result.busy_answers,
            elapsed_s: result.elapsed.as_secs_f64(),
            throughput_per_s: result.throughput_per_s(),
            latency_ms: LatencyMs::of(&result.latency_us),
            latency_distribution: distribution(&result.latency_us),
            results: result.counts.by_name(),
            timeline: result
                .timeline
                .iter()
                .map(|interval| {
                    let end_s = (interval.start_s + interval.length_s)
                        .min(result.elapsed.as_secs_f64())
                        .max(interval.start_s + 1e-3);
                    let length_s = end_s - interval.start_s;
                    IntervalReport {
                        start_s: interval.start_s,
                        length_s,
                        acknowledged: interval.acknowledged,
                        throughput_per_s: interval.acknowledged as f64 / length_s,
                        latency_ms: LatencyMs::of(&interval.latency_us),
                        results: interval.counts.by_name(),
                        ok_share: crate::driver::ok_share(&interval.counts),
                    }
                })
                .collect(),
            stopped: result.stopped.clone(),
            ok_share: result.ok_share(),
            ok_share_promised: result.ok_share_min,
            ok_share_below_promise: result.ok_share_below_promise(),
            nodes: result
                .nodes
                .iter()
                .map(|node| NodeReport {
                    node: node.name.clone(),
                    sent: node.sent,
                    acknowledged: node.acknowledged,
                    ok: node.ok,
                    share: node.acknowledged as f64 / result.acknowledged.max(1) as f64,
                    latency_ms: LatencyMs::of(&node.latency_us),
                })
                .collect(),
            failed_over: result.failed_over,
            lost: result.lost.clone(),
            signing_stalled_s: result.signing_stalled.as_secs_f64(),
            signing_limited: result.signing_limited(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

/// Percentiles from 0 to 99.999, spaced evenly in "number of nines" (the x axis of
/// HdrHistogram's percentile plots): (percentile, latency ms).
fn distribution(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    (0..=50)
        .map(|step| {
            let nines = f64::from(step) / 10.0; // 0 .. 5 nines
            let quantile = 1.0 - 10f64.powf(-nines);
            let quantile = quantile.clamp(0.0, 0.99999);
            (
                quantile * 100.0,
                histogram.value_at_quantile(quantile) as f64 / 1e3,
            )
        })
        .collect()
}

/// A plain-text summary: throughput, latency percentiles, counts by result code.
pub fn summary(result: &RunResult) -> String {
    let mut out = String::new();
    let latency = LatencyMs::of(&result.latency_us);
    let _ = writeln!(out, "target: {}; pacing: {}", result.target, result.pacing);
    let _ = writeln!(
        out,
        "throughput: {:.0} tx/s ({} acknowledged of {} sent in {:.2} s; {} busy answers)",
        result.throughput_per_s(),
        result.acknowledged,
        result.sent,
        result.elapsed.as_secs_f64(),
        result.busy_answers
    );
    let warmup = if result.warmup.is_zero() {
        String::new()
    } else {
        format!(", after {:.1} s warm-up", result.warmup.as_secs_f64())
    };
    let _ = writeln!(
        out,
        "latency (intended send to ack{warmup}): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        latency.p50, latency.p99, latency.p99_9, latency.max
    );
    let _ = writeln!(out, "results:");
    for (code, count) in &result.counts.by_code {
        let _ = writeln!(out, "  {:<32} {count:>10}", code.name());
    }
    let _ = write!(out, "{}", ok_share_lines(result));
    if result.nodes.len() > 1 {
        let _ = writeln!(out, "nodes:");
        for node in &result.nodes {
            let latency = LatencyMs::of(&node.latency_us);
            let _ = writeln!(
                out,
                "  {:<28} took {:>10}, acknowledged {:>10} ({:>5.1}%), ok {:>10}, p50 {:.2} ms, p99 {:.2} ms",
                node.name,
                node.sent,
                node.acknowledged,
                100.0 * node.acknowledged as f64 / result.acknowledged.max(1) as f64,
                node.ok,
                latency.p50,
                latency.p99
            );
        }
    }
    if result.signing_limited() {
        let _ = writeln!(
            out,
            "LIMITED BY THE LOAD GENERATOR: sending waited {:.2} s ({:.1}% of the run) for \
             transactions it had not signed yet: these figures are the load generator's \
             signing rate, not the node's; sign more ahead (--sign-ahead) or replay a \
             recording (--record, then --replay)",
            result.signing_stalled.as_secs_f64(),
            100.0 * result.signing_stalled.as_secs_f64() / result.elapsed.as_secs_f64()
        );
    }
    for lost in &result.lost {
        let _ = writeln!(out, "node lost: {lost}");
    }
    if result.failed_over > 0 {
        let _ = writeln!(
            out,
            "failed over: {} records sent again to the other nodes",
            result.failed_over
        );
    }
    if let Some(reason) = &result.stopped {
        let _ = writeln!(
            out,
            "target stopped: {reason} ({} acknowledged until then)",
            result.acknowledged
        );
    }
    out
}

/// The `ok` share over the run and its lowest interval, against the workload's promise;
/// a share below the promise gets a warning that cannot be missed.
pub fn ok_share_lines(result: &RunResult) -> String {
    let mut out = String::new();
    let share = result.ok_share();
    let lowest = result
        .timeline
        .iter()
        .filter(|interval| interval.acknowledged > 0)
        .map(|interval| (crate::driver::ok_share(&interval.counts), interval.start_s))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let promised = result.ok_share_min.map_or(String::new(), |min| {
        format!(" (the workload promises at least {:.1}%)", min * 100.0)
    });
    let lowest = lowest.map_or(String::new(), |(share, at)| {
        format!("; lowest interval {:.1}% at {at:.0} s", share * 100.0)
    });
    let _ = writeln!(out, "ok share: {:.2}%{promised}{lowest}", share * 100.0);
    if result.ok_share_below_promise() {
        let _ = writeln!(
            out,
            "WARNING: ONLY {:.2}% OF ACKNOWLEDGEMENTS ARE ok, BELOW THE {:.1}% THIS WORKLOAD PROMISES: \
             the run measured refusals (see the results above), not settlement",
            share * 100.0,
            result.ok_share_min.unwrap_or(0.0) * 100.0
        );
    }
    out
}

/// Why a report file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the HdrHistogram log: {0}")]
    Histogram(String),
}

/// The HdrHistogram interval log of a run: one compressed histogram per timeline interval,
/// latencies in microseconds (HdrHistogram's tools read it with a max value divisor of
/// 1000 for milliseconds).
pub fn hdr_interval_log(result: &RunResult) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(
            "tally-loadgen latency log: microseconds from intended send to acknowledgement",
        )
        .with_start_time(result.started_at)
        .with_base_time(result.started_at)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| ReportError::Histogram(e.to_string()))?;
    let tag = Tag::new("latency_us");
    for interval in &result.timeline {
        writer
            .write_histogram(
                &interval.latency_us,
                Duration::from_secs_f64(interval.start_s),
                Duration::from_secs_f64(interval.length_s),
                tag,
            )
            .map_err(|e| ReportError::Histogram(format!("{e:?}")))?;
    }
    drop(writer);
    Ok(out)
}

/// The files written for one run.
#[derive(Clone, Debug)]
pub struct WrittenReport {
    pub summary: PathBuf,
    pub json: PathBuf,
    pub hdr_log: PathBuf,
    pub html: PathBuf,
}

/// Writes `summary.txt`, `report.json`, `latency.hlog` and `report.html` into `dir`.
pub fn write_all(
    dir: &Path,
    workload: &str,
    result: &RunResult,
) -> Result<WrittenReport, ReportError> {
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, ReportError> {
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    };
    let report = Report::new(workload, result);
    Ok(WrittenReport {
        summary: write("summary.txt", summary(result).as_bytes())?,
        json: write("report.json", report.to_json().as_bytes())?,
        hdr_log: write("latency.hlog", &hdr_interval_log(result)?)?,
        html: write("report.html", crate::html::render(&report).as_bytes())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{NodeFigures, RunResult};
    use crate::pacing::Pacing;

    fn result(ok: u64, refused: u64, promise: Option<f64>) -> RunResult {
        let mut counts = Counts::default();
        for _ in 0..ok {
            counts.add(ResultCode::Ok);
        }
        for _ in 0..refused {
            counts.add(ResultCode::InsufficientFunds);
        }
        let histogram = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        RunResult {
            pacing: Pacing::Closed {
                in_flight_tx_max: 8,
            },
            warmup: Duration::ZERO,
            target: "test".into(),
            started_at: std::time::SystemTime::now(),
            latency_us: histogram(),
            counts,
            sent: ok + refused,
            acknowledged: ok + refused,
            busy_answers: 0,
            elapsed: Duration::from_secs(1),
            stopped: None,
            timeline: Vec::new(),
            nodes: vec![NodeFigures {
                name: "test".into(),
                sent: ok + refused,
                acknowledged: ok + refused,
                ok,
                latency_us: histogram(),
            }],
            ok_share_min: promise,
            failed_over: 0,
            lost: Vec::new(),
            signing_stalled: Duration::ZERO,
        }
    }

    #[test]
    fn an_ok_share_below_the_promise_is_reported_loudly_everywhere() {
        let drained = result(40, 60, Some(0.98));
        assert!(drained.ok_share_below_promise());
        let text = summary(&drained);
        assert!(
            text.contains("WARNING: ONLY 40.00% OF ACKNOWLEDGEMENTS ARE ok, BELOW THE 98.0%"),
            "{text}"
        );
        let report = Report::new("vat", &drained);
        assert!(report.ok_share_below_promise);
        assert!(report
            .to_json()
            .contains("\"ok_share_below_promise\": true"));
        assert!(crate::html::render(&report).contains("id=\"ok-share-warning\""));

        let kept = result(99, 1, Some(0.98));
        assert!(!kept.ok_share_below_promise());
        assert!(!summary(&kept).contains("WARNING"));
        assert!(!crate::html::render(&Report::new("vat", &kept)).contains("ok-share-warning"));
        // No promise (a replayed recording): nothing to fall below.
        assert!(!result(1, 99, None).ok_share_below_promise());
    }

    #[test]
    fn the_html_leaves_a_partial_last_interval_out_and_shows_every_result_code() {
        let mut run = result(100_000, 1, None);
        run.elapsed = Duration::from_millis(3_200);
        let interval = |start_s: f64, acknowledged: u64| crate::driver::Interval {
            start_s,
            length_s: 1.0,
            acknowledged,
            counts: Counts::default(),
            latency_us: Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap(),
        };
        // the run ends 0.2 s into its fourth interval, with 900 acknowledgements in it
        run.timeline = vec![
            interval(0.0, 33_000),
            interval(1.0, 33_000),
            interval(2.0, 33_100),
            interval(3.0, 900),
        ];
        let report = Report::new("transfer", &run);
        assert_eq!(report.timeline.len(), 4, "the JSON keeps every interval");
        let html = crate::html::render(&report);
        let figure = |id: &str| {
            let start = html.find(&format!("<figure id=\"{id}\"")).unwrap();
            html[start..start + html[start..].find("</figure>").unwrap()].to_string()
        };
        assert!(
            figure("throughput").contains(
                "the last 0.2 s, a partial interval with 900 acknowledgements, is left out"
            ),
            "{}",
            figure("throughput")
        );
        // a single refusal shows beside 100 000 ok (log scale), each bar with its count
        let results = figure("results");
        assert!(results.contains("log scale"), "{results}");
        for count in ["100000", "1"] {
            assert!(
                results.contains(&format!(">\n{count}\n</text>")),
                "{count}: {results}"
            );
        }
    }
}
